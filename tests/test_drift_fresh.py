"""Saved drift reports on a store still being written (observatory/drift_fresh.py): the
collector appending later steps keeps a report fresh, any row changed inside its window
makes it stale; the page's default view is the newest fresh scheduled report.

The store is a copy of the 14-day demo store cut at 2026-11-29 12:00 (as if collected up
to then: the hour files after 12:00 do not exist yet); "the collector appends a step"
writes the 12:01 rows of the original store into a new hour file ``h13`` of each
partition of the day, as the collector writes (new file, renamed over).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from drift_support import drift_store, finish_on_demand, reset_on_demand
from streamlit.testing.v1 import AppTest

from observatory import drift_archive as da
from observatory import drift_fresh
from observatory.demo import build_store
from observatory.drift_engine import DriftReport, Reference, compute_drift, settings_of
from observatory.drift_report import to_dict, write_report
from observatory.hour_files import hour_file_name, hour_index
from observatory.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
DAY = timedelta(hours=24)
REF = Reference.parse("7d")
CUT = datetime(2026, 11, 29, 12, 0)  # the copy's latest step before the append
EARLY = datetime(2026, 11, 29, 6, 0)  # an earlier scheduled report's window end
STEP = timedelta(minutes=1)
TABLES = ("counters", "gauges", "histograms")


def _rewrite(path: Path, table: pa.Table) -> None:
    """Replace ``path`` with ``table`` as the store does: a new file renamed over it."""
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _upto(table: pa.Table, end: datetime) -> pa.Table:
    return table.filter(pc.less_equal(table["ts_utc"], pa.scalar(end, pa.timestamp("us"))))


def _day_files(root: Path, day: str) -> list[Path]:
    return sorted(p for t in TABLES for p in (root / "lake" / t).glob(f"*/date={day}/*/*.parquet"))


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drift_store(tmp_path_factory)


@pytest.fixture(scope="module")
def live(original: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The demo store as collected up to CUT (a copy: the shared store is never written)."""
    root = tmp_path_factory.mktemp("live") / "store"
    shutil.copytree(original, root)
    for path in _day_files(root, "2026-11-29"):
        # The build wrote the whole day as one part.parquet (issue #9); a collector
        # that ran up to CUT left hour files h00..h12 (hours after 12:00: none yet).
        cut = _upto(pq.read_table(path), CUT)
        path.unlink()
        hours = pa.array([hour_index(t, t.date()) for t in cut["ts_utc"].to_pylist()])
        for k in sorted(set(hours.to_pylist())):
            _rewrite(path.parent / hour_file_name(k), cut.filter(pc.equal(hours, k)))
    for path in _day_files(root, "2026-11-30"):
        path.unlink()
    return Store(root)


@pytest.fixture(scope="module")
def archive(live: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scheduled reports of the windows ending at EARLY and CUT, written as JSON."""
    out = tmp_path_factory.mktemp("scheduled")
    for end in (EARLY, CUT):
        write_report(compute_drift(live, window=DAY, reference=REF, end=end), out, "json")
    return out


@pytest.fixture(scope="module")
def appended(live: Store, original: Path, archive: Path) -> Store:
    """The collector's next run: the 12:01 step of every partition of the day, written
    to a new hour file (h13: (12:00, 13:00])."""
    created = []
    for source in _day_files(original, "2026-11-29"):  # one part.parquet each (issue #9)
        rows = _upto(pq.read_table(source), CUT + STEP)
        step = rows.filter(pc.greater(rows["ts_utc"], pa.scalar(CUT, pa.timestamp("us"))))
        path = live.root / source.parent.relative_to(original) / _hour_file(source, CUT + STEP).name
        if path.exists() or not step.num_rows:
            continue
        _rewrite(path, step)
        created.append(path.name)
    assert created and set(created) == {"h13.parquet"}
    return live


def _saved(archive: Path, end: datetime) -> DriftReport:
    return da.load_report(archive / f"drift-{end:%Y-%m-%dT%H%M}Z-24h.json")


def _numbers(report: DriftReport) -> dict[str, Any]:
    """A report's JSON without what differs between two runs of the same question."""
    out = to_dict(report)
    out.pop("generated_utc")
    out["settings"] = settings_of(out["settings"]["store"], REF)
    return out


@pytest.fixture
def gauge_part(appended: Store) -> Iterator[Path]:
    """A gauge partition folder of the window end's day, its files restored after the
    test (files it adds removed)."""
    folder = appended.partition_dir(
        "gauges", "accuracy", datetime(2026, 11, 29).date(), "us-west-2"
    )
    kept = {
        p: pq.read_table(p)
        for p in appended.partition_files("gauges", "accuracy", CUT.date(), "us-west-2")
    }
    yield folder
    for path in set(folder.glob("*.parquet")) - set(kept):
        path.unlink()
    for path, table in kept.items():
        _rewrite(path, table)


def _hour_file(folder: Path, at: datetime) -> Path:
    """The hour file of ``folder`` holding the step ending at ``at`` (hour_files)."""
    return folder / hour_file_name(hour_index(at, at.date()))


def _rows(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(folder.glob("*.parquet")))


def _changed(table: pa.Table, at: datetime, change: Callable[[float], float]) -> pa.Table:
    """``table`` with the ``mean`` of its first row at ``at`` changed."""
    ts = table["ts_utc"].to_pylist()
    i = ts.index(at)
    means = table["mean"].to_pylist()
    means[i] = change(means[i])
    return table.set_column(table.schema.get_field_index("mean"), "mean", pa.array(means))


def test_the_report_records_its_edge_files_before_reading(archive: Path) -> None:
    fp = _saved(archive, CUT).settings[drift_fresh.FINGERPRINT_KEY]
    assert fp["read_to"] == CUT.isoformat()
    assert fp["read_from"] == (CUT - DAY - timedelta(days=7)).isoformat()
    edge = fp["edge"]
    # Every source of every signal in each of the 3 regions, on the window end's day:
    # one digest per hour file h00..h12.
    assert len({key.rsplit("/", 1)[0] for key in edge}) == 3 * 11
    assert all("date=2026-11-29" in key for key in edge)
    prefix = "gauges/signal=accuracy/date=2026-11-29/region=us-west-2/"
    gauge = {k.removeprefix(prefix): v for k, v in edge.items() if k.startswith(prefix)}
    assert sorted(gauge) == [f"h{h:02d}.parquet" for h in range(13)]
    # 12 h of 1-minute steps in (00:00, 12:00] plus the 00:00 step, per model/arm series.
    n = sum(v[0] for v in gauge.values())
    assert n % 721 == 0 and n > 0 and gauge["h01.parquet"][0] == 60 * n // 721


def test_a_step_appended_after_the_window_keeps_the_report_fresh_and_exact(
    appended: Store, archive: Path
) -> None:
    hit = da.covering_report(archive, appended, DAY, REF, CUT)
    assert hit is not None
    assert da.stale_files(appended.root, hit.report) == []
    # The fast path shows what the straightforward computation gives now.
    assert _numbers(hit.report) == _numbers(
        compute_drift(appended, window=DAY, reference=REF, end=CUT)
    )
    # The page's default view at the latest data (12:01): the newest fresh report.
    assert da.latest_fresh(archive, appended.root, DAY, REF, CUT + STEP) == (
        archive / "drift-2026-11-29T1200Z-24h.json"
    )


def test_a_row_rewritten_inside_the_window_makes_the_report_stale(
    appended: Store, archive: Path, gauge_part: Path
) -> None:
    gauge_file = _hour_file(gauge_part, datetime(2026, 11, 29, 11, 0))
    kept = pq.read_table(gauge_file)
    _rewrite(gauge_file, _changed(kept, datetime(2026, 11, 29, 11, 0), lambda x: x + 0.01))
    assert da.stale_files(appended.root, _saved(archive, CUT)) == [gauge_file]
    assert da.covering_report(archive, appended, DAY, REF, CUT) is None
    # 11:00 lies after the 06:00 report's window: that one stays fresh and is shown.
    assert da.stale_files(appended.root, _saved(archive, EARLY)) == []
    assert da.latest_fresh(archive, appended.root, DAY, REF, CUT + STEP) == (
        archive / "drift-2026-11-29T0600Z-24h.json"
    )
    # The same rows again (the file rewritten, in another order): fresh again.
    _rewrite(gauge_file, kept.take(list(range(kept.num_rows))[::-1]))
    assert da.covering_report(archive, appended, DAY, REF, CUT) is not None


def test_the_window_end_step_is_inside_and_a_step_after_it_is_not(
    appended: Store, archive: Path, gauge_part: Path
) -> None:
    after = _hour_file(gauge_part, CUT + STEP)
    _rewrite(after, _changed(pq.read_table(after), CUT + STEP, lambda x: x + 0.5))
    assert da.covering_report(archive, appended, DAY, REF, CUT) is not None
    gauge_file = _hour_file(gauge_part, CUT)
    _rewrite(gauge_file, _changed(pq.read_table(gauge_file), CUT, lambda x: x + 1e-12))
    assert da.stale_files(appended.root, _saved(archive, CUT)) == [gauge_file]


def test_files_created_or_removed_on_the_edge_day(
    appended: Store, archive: Path, gauge_part: Path
) -> None:
    kept = _rows(gauge_part)
    # A new hour file in a partition: fresh with rows after the window only, stale
    # with rows inside it.
    extra = gauge_part / "h24.parquet"
    _rewrite(extra, kept.filter(pc.greater(kept["ts_utc"], pa.scalar(CUT, pa.timestamp("us")))))
    assert da.covering_report(archive, appended, DAY, REF, CUT) is not None
    _rewrite(extra, kept.slice(0, 1))
    assert da.stale_files(appended.root, _saved(archive, CUT)) == [extra]
    extra.unlink()
    assert da.covering_report(archive, appended, DAY, REF, CUT) is not None
    gauge_file = _hour_file(gauge_part, CUT)
    new = gauge_part.parent / "region=eu-west-9" / "h12.parquet"
    new.parent.mkdir()
    try:
        _rewrite(new, kept.filter(pc.greater(kept["ts_utc"], pa.scalar(CUT, pa.timestamp("us")))))
        assert da.covering_report(archive, appended, DAY, REF, CUT) is not None
        _rewrite(new, kept)  # a new region's rows inside the window
        assert da.stale_files(appended.root, _saved(archive, CUT)) == [new]
    finally:
        shutil.rmtree(new.parent)
    gauge_file.unlink()
    assert da.stale_files(appended.root, _saved(archive, CUT)) == [gauge_file]


def test_an_older_day_keeps_the_modification_time_rule(appended: Store, archive: Path) -> None:
    path = next(
        (appended.lake / "counters" / "signal=errors" / "date=2026-11-28").glob("*/*.parquet")
    )
    st, folder = path.stat(), path.parent.stat()
    try:  # a rewrite (the store's, or any atomic replace) moves the file's and the folder's time
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**15))
        os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns + 10**15))
        assert da.stale_files(appended.root, _saved(archive, CUT)) == [path]
        # A file removed (the folder changed, no file did): stale too.
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert da.stale_files(appended.root, _saved(archive, CUT)) == [path.parent]
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))


def test_page_shows_the_latest_scheduled_report_and_computes_on_request(
    appended: Store, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVATORY_STORE", str(appended.root))
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(archive))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    asked: list[Any] = []
    hold: list[threading.Event] = []
    saved = _saved(archive, CUT)
    reset_on_demand()

    def no_computation(*args: object, **kwargs: Any) -> DriftReport:
        asked.append(kwargs.get("end"))
        for release in hold:
            assert release.wait(60)
        return saved

    monkeypatch.setattr("app.drift_data.compute_drift", no_computation)
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("views/drift.py").run()
    assert not at.exception, [e.value for e in at.exception]
    infos = "\n".join(str(i.value) for i in at.info).replace("\\", "")
    assert "Drift as of 2026-11-29 12:00 UTC" in infos
    assert "drift-2026-11-29T1200Z-24h.json" in infos and "up to 2026-11-29 12:01 UTC" in infos
    assert asked == []
    table = next(d.value for d in at.dataframe if "reference" in d.value.columns)
    assert table.reset_index(drop=True).equals(saved.summary().reset_index(drop=True))
    button = next(b for b in at.button if b.label == "Compute now for the latest data")
    assert "about" in str(button.help) and " s," in str(button.help)
    release = threading.Event()
    hold.append(release)  # the computation waits: the page must not
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    captions = "\n".join(str(c.value) for c in at.caption).replace("\\", "")
    assert "drift-2026-11-29T1200Z-24h.json while drift for the latest data is computed" in (
        captions
    )
    status = "\n".join(str(i.value) for i in at.info).replace("\\", "")
    assert "Computing drift for the 24 h window ending 2026-11-29 12:01 UTC, started " in status
    assert f"about {saved.settings['compute_s']:.0f} s expected" in status
    release.set()
    finish_on_demand()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert asked == [CUT + STEP]
    captions = "\n".join(str(c.value) for c in at.caption)
    assert "Computed now for the latest data (on demand in " in captions


def test_the_demo_writes_the_report_the_page_opens_on(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    summary = build_store(
        tmp_path / "demo",
        days=2,
        regions=["sa-east-1"],
        end=datetime(2026, 11, 30, tzinfo=UTC),
        drift_reports=reports,
    )
    path = reports / "drift-2026-11-30T0000Z-24h.json"
    assert summary.endswith(f"; drift report {path}")
    assert da.latest_fresh(reports, tmp_path / "demo", DAY, REF, datetime(2026, 11, 30)) == path
    assert da.load_report(path).settings["compute_s"] >= 0

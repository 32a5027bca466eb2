"""Saved drift reports read back (observatory/drift_archive.py): exactly the computed
report, and used only when they answer the question (settings, window, fresh files)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from drift_support import END, drift_store
from streamlit.testing.v1 import AppTest

from observatory import drift_archive as da
from observatory.drift_engine import (
    DEFAULT_SIGNALS,
    DriftReport,
    Reference,
    compute_drift,
    signal_by_name,
)
from observatory.drift_report import report_head, to_dict, write_report
from observatory.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
DAY = timedelta(hours=24)
NAIVE_END = END.replace(tzinfo=None)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(drift_store(tmp_path_factory))


@pytest.fixture(scope="module")
def computed(store: Store) -> DriftReport:
    return compute_drift(store, window=DAY, reference=Reference.parse("7d"), end=END)


@pytest.fixture(scope="module")
def archive(computed: DriftReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drift-archive")
    write_report(computed, out, "json")
    return out


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_saved_report_reads_back_exactly(computed: DriftReport, archive: Path) -> None:
    loaded = da.load_report(archive / "drift-2026-11-30T0000Z-24h.json")
    # Every number, verdict, distribution and over-time point, as the JSON holds them.
    assert to_dict(loaded) == to_dict(computed)
    assert loaded.window == DAY and loaded.window_end == NAIVE_END
    assert loaded.reference == computed.reference
    assert loaded.summary_line() == computed.summary_line()
    pd.testing.assert_frame_equal(loaded.summary(), computed.summary())
    assert len(loaded.slices) == len(computed.slices) > 100
    n_metrics = n_points = 0
    for a, b in zip(loaded.slices, computed.slices, strict=True):
        assert (a.key, a.verdict, a.fired, a.rebinned, a.alarm) == (
            b.key,
            b.verdict,
            b.fired,
            b.rebinned,
            b.alarm,
        )
        for ra, rb in zip(a.results, b.results, strict=True):
            assert (ra.metric, ra.verdict, ra.fired, ra.note) == (
                rb.metric,
                rb.verdict,
                rb.fired,
                rb.note,
            )
            for x, y in [
                (ra.value, rb.value),
                (ra.threshold, rb.threshold),
                (ra.learned, rb.learned),
            ]:
                assert _same(x, y), (a.key, ra.metric)
            n_metrics += 1
        assert a.distribution == b.distribution
        if len(b.over_time):
            want = b.over_time.reset_index(drop=True)
            got = a.over_time[list(want.columns)].reset_index(drop=True)  # a view's index
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
            n_points += len(want)
    assert n_metrics > 800 and n_points > 500


def test_covering_report_only_for_the_same_question(
    store: Store, archive: Path, computed: DriftReport
) -> None:
    ref = Reference.parse("7d")
    hit = da.covering_report(archive, store, DAY, ref, END)
    assert hit is not None and hit.path.name == "drift-2026-11-30T0000Z-24h.json"
    assert to_dict(hit.report) == to_dict(computed)
    # Another reference, window, end, signal setting or store: not this report.
    assert da.covering_report(archive, store, DAY, Reference.parse("14d"), END) is None
    assert da.covering_report(archive, store, DAY, Reference.parse("week-ago"), END) is None
    assert da.covering_report(archive, store, timedelta(hours=6), ref, END) is None
    assert da.covering_report(archive, store, DAY, ref, END - timedelta(hours=1)) is None
    assert da.covering_report(archive, store, DAY, ref, None) is None
    strict = [s if s.name != "accuracy" else signal_by_name("accuracy") for s in DEFAULT_SIGNALS]
    assert da.covering_report(archive, store, DAY, ref, END, signals=strict) is not None
    other = [s for s in DEFAULT_SIGNALS if s.name != "ttft"]
    assert da.covering_report(archive, store, DAY, ref, END, signals=other) is None
    assert da.covering_report(archive, store, DAY, ref, END, step_s=300) is None
    assert da.covering_report(archive, Store(archive), DAY, ref, END) is None


def test_a_data_file_changed_after_the_report_makes_it_stale(store: Store, archive: Path) -> None:
    ref = Reference.parse("7d")
    assert da.covering_report(archive, store, DAY, ref, END) is not None
    # A file the report read (the window's last day) rewritten after it was computed.
    part = next((store.lake / "counters" / "signal=errors" / "date=2026-11-29").glob("*/*.parquet"))
    # A day before the reference began: not read, so not a reason.
    unread = next(
        (store.lake / "counters" / "signal=errors" / "date=2026-11-21").glob("*/*.parquet")
    )
    # A rewrite moves the file's time and its partition folder's (the store's stamp).
    kept = {p: p.stat() for p in (part, unread, part.parent, unread.parent)}
    try:
        for p in (unread, unread.parent):
            os.utime(p, ns=(kept[p].st_atime_ns, kept[p].st_mtime_ns + 10**15))
        assert da.covering_report(archive, store, DAY, ref, END) is not None
        for p in (part, part.parent):
            os.utime(p, ns=(kept[p].st_atime_ns, kept[p].st_mtime_ns + 10**15))
        loaded = da.load_report(archive / "drift-2026-11-30T0000Z-24h.json")
        assert da.stale_files(store.root, loaded) == [part]
        assert da.covering_report(archive, store, DAY, ref, END) is None
    finally:  # the roll-ups are fresh only with the partition folder's exact mtime
        for p, st in kept.items():
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert da.covering_report(archive, store, DAY, ref, END) is not None


def test_bad_files_are_refused_with_their_name(tmp_path: Path, computed: DriftReport) -> None:
    bad = tmp_path / "drift-2026-11-30T0000Z-24h.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"drift-2026-11-30T0000Z-24h\.json"):
        da.load_report(bad)
    old = to_dict(computed)
    del old["settings"]
    bad.write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(ValueError, match="no settings"):
        da.load_report(bad)
    bad.write_text(json.dumps({"schema": "other/1"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a drift report"):
        da.load_report(bad)


def _all_slices(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "reference" in d.value.columns)


def test_page_reads_the_saved_report_and_shows_what_it_would_compute(
    store: Store, archive: Path, computed: DriftReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store.root))
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(archive))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)

    def no_computation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the page computed drift although a saved report covers it")

    monkeypatch.setattr("app.drift_data.compute_drift", no_computation)
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("views/drift.py").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = "\n".join(str(c.value) for c in at.caption).replace("\\", "")  # Markdown escapes
    assert "Read from the saved report drift-2026-11-30T0000Z-24h.json" in captions
    pd.testing.assert_frame_equal(
        _all_slices(at).reset_index(drop=True), computed.summary().reset_index(drop=True)
    )
    assert at.selectbox(key="drift_slice").value == computed.drifted[0].key


def test_report_head_is_the_report_without_its_slices(archive: Path, tmp_path: Path) -> None:
    path = archive / "drift-2026-11-30T0000Z-24h.json"
    full = json.loads(path.read_text(encoding="utf-8"))
    head = report_head(path, chunk=1024)  # several reads before the slices begin
    assert head == {**full, "slices": []}
    assert head["verdict"] == "critical" and head["settings"]["reference"] == "7d"
    other = tmp_path / "other.json"  # not render_json's layout: parsed whole
    other.write_text(json.dumps({"verdict": "ok", "slices": [1]}), encoding="utf-8")
    assert report_head(other) == {"verdict": "ok", "slices": [1]}


def _copy(src: Path, dst: Path, keep_times: bool = True) -> Store:
    """A copy of the store in another folder, with ``cp -a`` (``keep_times=False``:
    ``cp -r``, whose files and folders get new times)."""
    subprocess.run(["cp", "-a" if keep_times else "-r", str(src), str(dst)], check=True)
    return Store(dst)


def _rewrite_keeping_mtime(path: Path, table: pa.Table) -> None:
    """``path`` rewritten with ``table``, its and its folder's times set back: a store
    whose data differs although no file is newer than the report."""
    kept = {p: p.stat() for p in (path, path.parent)}
    pq.write_table(table, path)
    for p, st in kept.items():
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_copy_of_the_store_answers_and_a_store_with_other_data_does_not(
    store: Store, archive: Path, computed: DriftReport, tmp_path: Path
) -> None:
    ref = Reference.parse("7d")
    name = "drift-2026-11-30T0000Z-24h.json"
    assert computed.settings["store"] == str(store.root.resolve())
    assert computed.settings["fingerprint"]["listing"]  # the earlier dates' files
    # The same data in another folder (times kept, as cp -a, cp -al, rsync -a do).
    copy = _copy(store.root, tmp_path / "copy")
    hit = da.covering_report(archive, copy, DAY, ref, END)
    assert hit is not None and to_dict(hit.report) == to_dict(computed)
    assert da.latest_fresh(archive, copy.root, DAY, ref, NAIVE_END) == archive / name
    # A copy with new file times: the times say nothing, refused (the page computes).
    new_times = _copy(store.root, tmp_path / "cp-r", keep_times=False)
    assert da.covering_report(archive, new_times, DAY, ref, END) is None
    # Other data on the window end's date, no file newer than the report: every edge
    # file of a copy is digested, so the changed row is found.
    other = _copy(store.root, tmp_path / "other-edge")
    day = other.lake / "gauges" / "signal=accuracy" / "date=2026-11-30" / "region=us-west-2"
    path = next(day.glob("*.parquet"))
    table = pq.read_table(path)
    means = table["mean"].to_pylist()
    means[0] += 0.01
    column = table.schema.get_field_index("mean")
    _rewrite_keeping_mtime(path, table.set_column(column, "mean", pa.array(means)))
    assert da.stale_files(other.root, da.load_report(archive / name)) == [path]
    assert da.covering_report(archive, other, DAY, ref, END) is None
    # Other data on an earlier date (one row fewer), times set back: the listing of
    # the earlier dates' files (names and sizes) differs.
    other = _copy(store.root, tmp_path / "other-early")
    day = other.lake / "gauges" / "signal=accuracy" / "date=2026-11-27" / "region=us-west-2"
    path = next(day.glob("*.parquet"))
    size = path.stat().st_size
    _rewrite_keeping_mtime(path, pq.read_table(path).slice(1))
    assert path.stat().st_size != size  # the precondition of this check
    assert da.stale_files(other.root, da.load_report(archive / name)) == [other.root]
    assert da.covering_report(archive, other, DAY, ref, END) is None
    # The original folder keeps the modification-time rule (same data: fresh).
    assert da.covering_report(archive, store, DAY, ref, END) is not None

"""The shared filters' catalogue (app/filter_catalogue.py) against the minute rows.

The reference is what the sidebar read before: the named queries that take DISTINCT
over every minute row (``overview_time_bounds``, ``overview_regions``,
``overview_models``, ``filters_arms``), run on the same real store (a demo store built
through the store's own write path, real Parquet files and DuckDB).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from app_support import demo_store

import app.filter_catalogue as fc
from app import data
from app.filter_catalogue import FilterCatalogue, read_catalogue
from observatory.folder_exchange import exchange_supported
from observatory.hour_files import LEGACY_FILE
from observatory.store import SCHEMAS, Store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("catalogue") / "demo")


@pytest.fixture
def store(demo: Path, tmp_path: Path) -> Store:
    """A private copy of the demo store (``copytree`` keeps nanosecond mtimes, so the
    roll-ups stay fresh)."""
    return Store(shutil.copytree(demo, tmp_path / "store"))


def reference(store: Store) -> FilterCatalogue:
    """The catalogue as the DISTINCT over the minute rows computes it."""
    bounds = store.named("overview_time_bounds")
    regions = store.named("overview_regions")
    last = bounds["last_ts"].iloc[0]
    return FilterCatalogue(
        first=None if pd.isna(last) else pd.Timestamp(bounds["first_ts"].iloc[0]).to_pydatetime(),
        last=None if pd.isna(last) else pd.Timestamp(last).to_pydatetime(),
        regions=regions[["region", "display_name"]].reset_index(drop=True),
        models=store.named("overview_models")["model"].tolist(),
        arms=store.named("filters_arms")["arm"].tolist(),
    )


def assert_same(got: FilterCatalogue, want: FilterCatalogue) -> None:
    assert (got.first, got.last) == (want.first, want.last)
    assert got.models == want.models
    assert got.arms == want.arms
    pd.testing.assert_frame_equal(got.regions, want.regions, check_dtype=False)


def request_plan(store: Store) -> tuple[int, int]:
    """How many request partitions have a fresh roll-up, and how many do not."""
    files = sorted((store.lake / "counters" / "signal=requests").glob("date=*/region=*/*.parquet"))
    days = sorted({datetime.fromisoformat(p.parent.parent.name[5:]) for p in files})
    plan = store.hourly_plan(
        "counters", ["requests"], days[0] - timedelta(microseconds=1), days[-1] + timedelta(days=1)
    )
    return len(plan.hourly), len(plan.minutes_all)


def test_demo_store_equals_distinct_over_minute_rows(store: Store) -> None:
    fresh, stale = request_plan(store)
    assert fresh > 0 and stale == 0  # the roll-up path is the one exercised
    got = read_catalogue(store)
    assert_same(got, reference(store))
    # the demo fleet: 3 regions, its models, two arms; 1 day of 1-minute steps
    assert got.regions["region"].tolist() == ["ap-south-1", "eu-west-1", "us-east-1"]
    assert len(got.models) >= 2 and len(got.arms) >= 2
    assert got.first is not None and got.last is not None
    assert got.last - got.first >= timedelta(hours=23)


def _add_request_row(path: Path, model: str, arm: str) -> None:
    """Rewrite a requests partition with one more row, keeping its roll-up as it was.

    A fake of a writer killed between replacing a data file and its roll-up (a real
    writer only leaves this state when killed at that instant): the data file is
    replaced as the store replaces it (a new file renamed over it, which changes the
    partition's stamp), and the roll-up, which lacks the new labels, is not.
    """
    rows = pq.read_table(path, schema=SCHEMAS["counters"])
    last = rows.slice(rows.num_rows - 1, 1).to_pylist()[0]
    extra = pa.Table.from_pylist([{**last, "model": model, "arm": arm}], schema=rows.schema)
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.concat_tables([rows, extra]), tmp)
    os.replace(tmp, path)


def test_stale_rollup_falls_back_to_minute_rows(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = read_catalogue(store)  # every label file is now seen by this process
    files = sorted((store.lake / "counters" / "signal=requests").glob("date=*/region=*/*.parquet"))
    _add_request_row(files[-1], "canary-model", "canary")
    fresh, stale = request_plan(store)
    assert stale == 1 and fresh > 0
    sql: list[str] = []
    query = store.query
    monkeypatch.setattr(store, "query", lambda text, params=None: sql.append(text) or query(text))
    got = read_catalogue(store)
    # only the changed partition's labels were read again (its minute rows)
    label_reads = [q for q in sql if "file_index" in q]
    assert len(label_reads) == 1 and label_reads[0].count(".parquet'") == 1
    assert files[-1].as_posix() in label_reads[0]
    assert "canary-model" not in before.models and "canary" not in before.arms
    assert "canary-model" in got.models and "canary" in got.arms
    monkeypatch.undo()
    assert_same(got, reference(store))


def test_labels_of_other_signals_and_uncatalogued_regions(store: Store) -> None:
    assert "" not in reference(store).models
    # a model label only the GPU gauges lack, written through the store's write path
    where = "WHERE signal = 'gpu_utilization' AND region = 'eu-west-1'"
    original = store.query(f"SELECT * EXCLUDE (region) FROM gauges {where}")
    lo = pd.Timestamp(original["ts_utc"].min()) - pd.Timedelta(minutes=1)
    hi = pd.Timestamp(original["ts_utc"].max())
    unlabelled = original.assign(model=None)  # GPUs no exporter attributes to a model
    store.replace_window("gauges", "eu-west-1", ["gpu_utilization"], lo, hi, unlabelled)
    # a region with data but no row in the regions catalogue
    catalogue = store.query("SELECT * FROM regions")
    store.write_regions(catalogue[catalogue["region"] != "ap-south-1"])
    store.refresh()
    got = read_catalogue(store)  # every gauge file read in one query
    assert "" in got.models and "" not in got.arms
    row = got.regions[got.regions["region"] == "ap-south-1"]
    assert row["display_name"].tolist() == ["ap-south-1"]
    assert_same(got, reference(store))
    # labels were kept per file: putting the labels back is seen, and only there
    store.replace_window("gauges", "eu-west-1", ["gpu_utilization"], lo, hi, original)
    again = read_catalogue(store)
    assert "" not in again.models
    assert_same(again, reference(store))


def test_store_without_request_data(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty")
    store.write_regions([{"region": "us-east-1", "display_name": "Virginia"}])
    got = read_catalogue(store)
    assert (got.first, got.last, got.models, got.arms) == (None, None, [], [])
    assert got.regions.to_dict("list") == {"region": ["us-east-1"], "display_name": ["Virginia"]}
    assert_same(got, reference(store))


def test_emptied_first_partition(store: Store) -> None:
    # the earliest date's request partitions hold no rows (as a window rewrite that
    # dropped every row leaves them): the first step comes from a later date
    files = sorted((store.lake / "counters" / "signal=requests").glob("date=*/region=*/*.parquet"))
    earliest = files[0].parent.parent
    for path in earliest.glob("region=*/*.parquet"):
        pq.write_table(SCHEMAS["counters"].empty_table(), path)
    want = reference(store)
    assert want.first is not None and want.first.date() > date.fromisoformat(earliest.name[5:])
    assert_same(read_catalogue(store), want)


def test_warm_up_reads_every_label_file_and_changes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's warm-up (a background thread) leaves every label file remembered:
    the first page then reads no labels, and lists what it would have listed without
    the warm-up (the minute-row reference); a file changed after the warm-up is read
    again, so its new labels show."""
    fc._SEEN.clear()
    fc.warm_in_background(store.root).join(timeout=120)
    assert fc._SEEN  # the warm-up read the labels
    sql: list[str] = []
    query = store.query
    monkeypatch.setattr(store, "query", lambda text, params=None: sql.append(text) or query(text))
    first_page = read_catalogue(store)
    assert not [q for q in sql if "file_index" in q]  # no label file read again
    monkeypatch.undo()
    assert_same(first_page, reference(store))
    files = sorted((store.lake / "counters" / "signal=requests").glob("date=*/region=*/*.parquet"))
    _add_request_row(files[0], "after-warm-up", "late")
    later = read_catalogue(store)
    assert "after-warm-up" in later.models and "late" in later.arms
    assert_same(later, reference(store))


def test_warm_up_of_a_missing_or_empty_store_does_nothing(tmp_path: Path) -> None:
    fc.warm_in_background(tmp_path / "nowhere").join(timeout=30)
    (tmp_path / "empty").mkdir()
    fc.warm_in_background(tmp_path / "empty").join(timeout=30)
    assert not (tmp_path / "nowhere").exists()  # a reader creates nothing


class QueryLog:
    """Every SQL text ``store`` runs while installed (the real queries run)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sql: list[str] = []
        query = store.query

        def logged(text: str, params: object = None) -> pd.DataFrame:
            self.sql.append(text)
            return query(text)

        monkeypatch.setattr(store, "query", logged)

    def parquet_reads(self) -> list[str]:
        """The queries that name Parquet files of the lake (data or roll-ups)."""
        return [q for q in self.sql if ".parquet'" in q]


def _requests(region: str, model: str, start: datetime, end: datetime) -> pd.DataFrame:
    """One instance's request increases, one step a minute in ``(start, end]``."""
    steps = pd.date_range(start + timedelta(minutes=1), end, freq="1min")
    return pd.DataFrame(
        {
            "ts_utc": steps,
            "signal": "requests",
            "model": model,
            "arm": "stable",
            "instance": "gpu-0",
            "value": [float(i % 7) for i in range(len(steps))],
            "unit": "requests",
        }
    )


def test_unchanged_store_reads_no_file_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one read, an unchanged store costs one ``stat`` per partition folder: no
    query reads a Parquet file of the lake (only the regions catalogue is queried)."""
    fc._SEEN.clear()
    fc._STEPS.clear()
    first = read_catalogue(store)
    log = QueryLog(store, monkeypatch)
    again = read_catalogue(store)
    assert log.parquet_reads() == []
    assert log.sql == ["SELECT region, display_name FROM regions"]
    monkeypatch.undo()
    assert_same(again, first)
    assert_same(again, reference(store))


def test_a_write_to_today_shows_a_new_region_and_model_reading_only_its_partitions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector step writes today's partitions (a new region, a new model in an old
    one): their folders get new stamps, so exactly those partitions are read again,
    from their roll-ups (written with the data), and the new labels show."""
    before = read_catalogue(store)
    assert before.last is not None
    end = before.last - timedelta(hours=1)  # the last day's partitions (not midnight's)
    start = end - timedelta(minutes=5)
    store.replace_window(
        "counters",
        "sa-east-1",
        ["requests"],
        start,
        end,
        _requests("sa-east-1", "new-model", start, end),
    )
    store.replace_window(
        "counters",
        "eu-west-1",
        ["requests"],
        start,
        end,
        pd.concat(
            [
                store.query(
                    "SELECT * EXCLUDE (region) FROM counters WHERE signal = 'requests' "
                    f"AND region = 'eu-west-1' AND ts_utc > '{start}' AND ts_utc <= '{end}'"
                ),
                _requests("eu-west-1", "canary-model", start, end),
            ]
        ),
    )
    log = QueryLog(store, monkeypatch)
    got = read_catalogue(store)
    label_reads = [q for q in log.sql if "file_index" in q]
    assert len(label_reads) == 1  # requests' labels: the two written partitions only
    day = f"date={end.date().isoformat()}"
    for region in ("sa-east-1", "eu-west-1"):
        assert f"counters_hourly/signal=requests/{day}/region={region}/" in label_reads[0]
    assert label_reads[0].count(".parquet'") == 2
    monkeypatch.undo()
    assert "sa-east-1" in got.regions["region"].tolist()
    assert "sa-east-1" not in before.regions["region"].tolist()
    assert {"new-model", "canary-model"} <= set(got.models)
    assert not {"new-model", "canary-model"} & set(before.models)
    assert_same(got, reference(store))


def test_a_day_compacted_under_the_read_is_listed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed-day compaction swaps a partition folder: hour files the catalogue listed
    vanish before DuckDB opens them.  The gap cannot be hit on demand, so the test
    compacts right before the first query that names an hour file runs (the files,
    the compaction and DuckDB's error are real); the read lists again and gets the
    same answer as the reference."""
    if not exchange_supported(tmp_path):
        pytest.skip("this file system cannot exchange folders (no compaction)")
    store = Store(tmp_path / "store")
    day = datetime(2026, 3, 10)
    for region, model in (("eu-west-1", "m1"), ("us-east-1", "m2")):
        for k in range(0, 24, 6):  # four 6-hour collector windows: hour files
            lo, hi = day + timedelta(hours=k), day + timedelta(hours=k + 6)
            store.replace_window(
                "counters", region, ["requests"], lo, hi, _requests(region, model, lo, hi)
            )
    hi = day + timedelta(days=1, hours=1)
    store.replace_window(
        "counters",
        "eu-west-1",
        ["requests"],
        hi - timedelta(hours=1),
        hi,
        _requests("eu-west-1", "m1", hi - timedelta(hours=1), hi),
    )
    want = reference(store)
    fc._STEPS.clear()
    query = store.query
    ran: list[str] = []  # the first step's reads
    compacted: list[int] = []

    def compacting(text: str, params: object = None) -> pd.DataFrame:
        if "/h0" in text and not compacted:  # hour files listed, not read yet
            with store.writer():
                compacted.append(store.compact_closed(now=day + timedelta(days=3)).compacted)
        if "min(ts_utc)" in text:
            ran.append(text)
        return query(text)

    monkeypatch.setattr(store, "query", compacting)
    got = read_catalogue(store)
    monkeypatch.undo()
    assert compacted == [4]  # both regions, both days (the midnight step is in day 2)
    assert len(ran) == 2 and "/h0" in ran[0]
    assert LEGACY_FILE in ran[1] and "/h0" not in ran[1]
    assert_same(got, want)
    assert got.first == day + timedelta(minutes=1)


def test_warm_up_builds_the_pages_store_once_and_pages_wait_for_it(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``app.data.warm_up`` builds the DuckDB views of the very Store the pages get from
    ``shared_store``; a page asking while that build runs waits for it instead of
    building a second one.  The build is slowed down (a wrapper that sleeps) only to
    make the page's request land inside it every time."""
    data._shared_store.clear()
    building = threading.Event()
    builds: list[int] = []
    build = Store._build_connection

    def slow_build(self: Store) -> object:
        builds.append(1)
        building.set()
        time.sleep(0.5)
        return build(self)

    monkeypatch.setattr(Store, "_build_connection", slow_build)
    fc._SEEN.clear()
    warm = data.warm_up(demo)
    assert building.wait(timeout=60)
    page_store = data.shared_store(str(demo.resolve()))  # as app/filters.py asks
    warm.join(timeout=120)
    assert builds == [1]
    assert fc._SEEN  # the catalogue was read through it
    assert data.shared_store(str(demo.resolve())) is page_store
    page_store.query("SELECT count(*) FROM counters")
    assert builds == [1]  # the views were built once, by the warm-up
    data._shared_store.clear()


def test_serve_warms_the_catalogue_then_runs_streamlit_in_process(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``observatory serve`` starts the warm-up (views and catalogue,
    :func:`app.data.warm_up`) for its store before Streamlit, and runs Streamlit's CLI
    in its own process (a supervisor's SIGTERM reaches the server)."""
    from click.testing import CliRunner
    from streamlit.web import cli as streamlit_cli

    from observatory.cli import main

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(data, "warm_up", lambda root: calls.append(("warm", root)))
    monkeypatch.setattr(
        streamlit_cli, "main", lambda args, prog_name: calls.append(("streamlit", args))
    )
    monkeypatch.setattr("os.chdir", lambda path: None)
    monkeypatch.setattr("os.environ", dict(os.environ))
    result = CliRunner().invoke(main, ["serve", "--store", str(demo), "--port", "8599"])
    assert result.exit_code == 0, result.output
    assert [c[0] for c in calls] == ["warm", "streamlit"]
    assert calls[0][1] == demo.resolve()
    args = calls[1][1]
    assert isinstance(args, list) and args[:2] == [
        "run",
        str(Path(fc.__file__).resolve().parent / "main.py"),
    ]
    assert "8599" in args and os.environ["OBSERVATORY_STORE"] == str(demo.resolve())


def _restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new server process: the per-process memory starts empty."""
    monkeypatch.setattr(fc, "_SEEN", {})
    monkeypatch.setattr(fc, "_INTERNED", {})
    monkeypatch.setattr(fc, "_UNSAVED", set())
    monkeypatch.setattr(fc, "_LOADED", set())
    monkeypatch.setattr(fc, "_STEPS", {})
    monkeypatch.setattr(fc, "_KEPT_AT", {})


def test_a_restart_reads_only_the_partitions_written_since(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _restart(monkeypatch)
    first = read_catalogue(store)
    kept = fc._kept_path(store)
    assert kept is not None and kept.exists()
    read: list[str] = []
    original = fc._labels_by_folder

    def spy(s: Store, files: list[fc.LabelFile], columns: tuple[str, ...]) -> dict:
        read.extend(folder for folder, _, _ in files)
        return original(s, files, columns)

    monkeypatch.setattr(fc, "_labels_by_folder", spy)
    _restart(monkeypatch)
    again = read_catalogue(store)
    assert read == []  # every partition's labels came from the kept file
    assert_same(again, first)
    assert_same(again, reference(store))
    # A write after the restart: that partition only is read by the next process.
    part = next(iter(store.partitions("counters", ["requests"])))
    rows = pq.read_table(part.files()[0], schema=SCHEMAS["counters"])
    step = pd.Timestamp(rows["ts_utc"][0].as_py())
    with store.writer():
        store.replace_window(
            "counters", part.region, ["requests"], step - timedelta(minutes=1), step,
            rows.slice(0, 1).to_pandas().assign(signal="requests"),
        )  # fmt: skip
    _restart(monkeypatch)
    assert_same(read_catalogue(store), reference(store))
    assert set(read) == {os.fspath(part.folder)}


def test_a_damaged_kept_file_is_read_past(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _restart(monkeypatch)
    read_catalogue(store)
    kept = fc._kept_path(store)
    assert kept is not None
    kept.write_text('{"version": 1, "entries": [["x", ', encoding="utf-8")
    _restart(monkeypatch)
    assert_same(read_catalogue(store), reference(store))
    assert kept.read_text(encoding="utf-8").startswith('{"version":1')  # rewritten whole

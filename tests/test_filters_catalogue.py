"""The shared filters' catalogue (app/filter_catalogue.py) against the minute rows.

The reference is what the sidebar read before: the named queries that take DISTINCT
over every minute row (``overview_time_bounds``, ``overview_regions``,
``overview_models``, ``filters_arms``), run on the same real store (a demo store built
through the store's own write path, real Parquet files and DuckDB).
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from app_support import demo_store

import app.filter_catalogue as fc
from app.filter_catalogue import FilterCatalogue, read_catalogue
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


def test_serve_warms_the_catalogue_then_runs_streamlit_in_process(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``observatory serve`` starts the warm-up for its store before Streamlit, and runs
    Streamlit's CLI in its own process (a supervisor's SIGTERM reaches the server)."""
    from click.testing import CliRunner
    from streamlit.web import cli as streamlit_cli

    from observatory.cli import main

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(fc, "warm_in_background", lambda root: calls.append(("warm", root)))
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

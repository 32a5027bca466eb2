"""The Parquet lake: idempotent atomic window rewrites, DuckDB views, concurrent readers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from observatory.store import SCHEMAS, Store, StoreError, coarser_rollup, hourly_rollup

ROOT = Path(__file__).resolve().parent.parent
DAY = datetime(2024, 3, 1)
MIN = timedelta(minutes=1)


def _counter_frame(
    start: datetime,
    end: datetime,
    signal: str = "requests",
    value: float = 1.0,
    models: tuple[str, ...] = ("llama",),
) -> pd.DataFrame:
    """One row per minute step in ``(start, end]`` per model, all with ``value``."""
    steps = pd.date_range(start + MIN, end, freq="1min")
    frames = [
        pd.DataFrame(
            {
                "ts_utc": steps,
                "model": model,
                "arm": "v1",
                "instance": "",
                "value": value,
                "signal": signal,
                "unit": "requests",
            }
        )
        for model in models
    ]
    return pd.concat(frames, ignore_index=True)


def _sums(store: Store, where: str = "TRUE") -> tuple[int, float]:
    df = store.query(
        f"SELECT count(*) AS n, coalesce(sum(value), 0) AS s FROM counters WHERE {where}"
    )
    return int(df["n"].iloc[0]), float(df["s"].iloc[0])


def _reader(root: Path) -> Store:
    """A fresh reader (views are built on first use; new tables need a new connection)."""
    return Store(root)


# --------------------------------------------------------------------------- write/read


def test_replace_window_writes_and_reads_back(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start, end = DAY, DAY + timedelta(hours=2)
    frame = pd.concat(
        [
            _counter_frame(start, end, "requests", 3.0, ("a", "b")),
            _counter_frame(start, end, "errors", 0.5),
        ],
        ignore_index=True,
    )
    result = store.replace_window("counters", "eu", ["requests", "errors"], start, end, frame)
    assert result.rows == 360
    assert result.files == 4  # per signal, the hour files h01 and h02 of one day
    assert [p.name for p in store.partition_files("counters", "requests", DAY.date(), "eu")] == [
        "h01.parquet",
        "h02.parquet",
    ]
    reader = _reader(tmp_path)
    df = reader.query(
        "SELECT signal, model, count(*) AS n, sum(value) AS s, "
        "min(ts_utc) AS first, max(ts_utc) AS last "
        "FROM counters WHERE region = 'eu' GROUP BY ALL ORDER BY signal, model"
    )
    assert df["signal"].tolist() == ["errors", "requests", "requests"]
    assert df["model"].tolist() == ["llama", "a", "b"]
    assert df["n"].tolist() == [120, 120, 120]
    assert df["s"].tolist() == [60.0, 360.0, 360.0]
    assert pd.Timestamp(df["first"].iloc[0]) == pd.Timestamp(start + MIN)
    assert pd.Timestamp(df["last"].iloc[0]) == pd.Timestamp(end)
    assert set(reader.query("SELECT DISTINCT unit FROM counters")["unit"]) == {"requests"}


def test_aware_datetimes_are_utc(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start = datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
    end = start + timedelta(minutes=10)
    naive = _counter_frame(start.replace(tzinfo=None), end.replace(tzinfo=None))
    store.replace_window("counters", "eu", ["requests"], start, end, naive)
    df = _reader(tmp_path).query("SELECT min(ts_utc) AS t FROM counters")
    assert pd.Timestamp(df["t"].iloc[0]) == pd.Timestamp("2024-03-01 01:01:00")


def test_rewriting_the_same_window_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start, end = DAY + timedelta(hours=22), DAY + timedelta(hours=26)  # crosses midnight
    frame = _counter_frame(start, end, value=2.0, models=("a", "b"))
    store.replace_window("counters", "eu", ["requests"], start, end, frame)
    first = _sums(_reader(tmp_path))
    paths = sorted(tmp_path.glob("lake/counters/*/*/*/*.parquet"))
    tables = [pq.read_table(p) for p in paths]
    # hour files: 22:00-24:00 on the first day (h23, h24), midnight's step (h00) and
    # 00:00-02:00 (h01, h02) on the second
    assert [f"{p.parent.parent.name}/{p.name}" for p in paths] == [
        "date=2024-03-01/h23.parquet",
        "date=2024-03-01/h24.parquet",
        "date=2024-03-02/h00.parquet",
        "date=2024-03-02/h01.parquet",
        "date=2024-03-02/h02.parquet",
    ]
    for _ in range(2):
        store.replace_window("counters", "eu", ["requests"], start, end, frame)
    assert _sums(_reader(tmp_path)) == first == (480, 960.0)
    assert sorted(tmp_path.glob("lake/counters/*/*/*/*.parquet")) == paths
    for p, t in zip(paths, tables, strict=True):
        assert pq.read_table(p).equals(t)
    # no temporary files are left behind
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp")]


def test_overlapping_window_replaces_only_rows_inside_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a0, a1 = DAY, DAY + timedelta(hours=2)
    b0, b1 = DAY + timedelta(hours=1), DAY + timedelta(hours=3)
    store.replace_window("counters", "eu", ["requests"], a0, a1, _counter_frame(a0, a1, value=1.0))
    store.replace_window("counters", "eu", ["requests"], b0, b1, _counter_frame(b0, b1, value=10.0))
    reader = _reader(tmp_path)
    assert _sums(reader) == (180, 60 * 1.0 + 120 * 10.0)
    # (a0, b0] keeps the old rows, including the row exactly at b0 (outside (b0, b1])
    assert _sums(reader, f"ts_utc <= TIMESTAMP '{b0}'") == (60, 60.0)
    assert _sums(reader, f"ts_utc > TIMESTAMP '{b0}'") == (120, 1200.0)
    dup = reader.query(
        "SELECT ts_utc, count(*) AS n FROM counters GROUP BY ts_utc HAVING count(*) > 1"
    )
    assert dup.empty


def test_other_regions_and_signals_are_untouched_and_empty_signal_empties(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start, end = DAY, DAY + timedelta(hours=1)
    both = pd.concat(
        [_counter_frame(start, end, "requests"), _counter_frame(start, end, "errors", 2.0)]
    )
    store.replace_window("counters", "eu", ["requests", "errors"], start, end, both)
    store.replace_window(
        "counters", "us", ["requests"], start, end, _counter_frame(start, end, value=5.0)
    )
    # rewrite eu/errors only, with no rows: its rows in the window go away
    store.replace_window("counters", "eu", ["errors"], start, end, pd.DataFrame())
    reader = _reader(tmp_path)
    got = reader.query(
        "SELECT region, signal, count(*) AS n, sum(value) AS s "
        "FROM counters GROUP BY ALL ORDER BY ALL"
    )
    assert got.values.tolist() == [["eu", "requests", 60, 60.0], ["us", "requests", 60, 300.0]]
    # The emptied partition stays as an empty file (a reader that listed it must not
    # fail with "file not found"); it holds no rows.
    (emptied,) = store.partition_files("counters", "errors", DAY.date(), "eu")
    assert emptied.name == "h01.parquet"
    assert pq.read_metadata(emptied).num_rows == 0


@pytest.mark.parametrize(
    "ts",
    [DAY, DAY - MIN, DAY + timedelta(hours=1, seconds=1)],
    ids=["at-start", "before-start", "after-end"],
)
def test_rows_outside_the_window_are_refused(tmp_path: Path, ts: datetime) -> None:
    store = Store(tmp_path)
    start, end = DAY, DAY + timedelta(hours=1)
    frame = _counter_frame(start, end)
    frame.loc[0, "ts_utc"] = ts
    with pytest.raises(StoreError, match="outside the window"):
        store.replace_window("counters", "eu", ["requests"], start, end, frame)
    assert not store.has_data()  # nothing was written


def test_row_exactly_at_window_end_is_accepted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start, end = DAY, DAY + MIN
    frame = _counter_frame(start, end)
    assert frame["ts_utc"].tolist() == [pd.Timestamp(end)]
    assert store.replace_window("counters", "eu", ["requests"], start, end, frame).rows == 1


def test_bad_table_columns_and_signals_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start, end = DAY, DAY + timedelta(minutes=5)
    frame = _counter_frame(start, end)
    with pytest.raises(StoreError, match="unknown table"):
        store.replace_window("counter", "eu", ["requests"], start, end, frame)
    with pytest.raises(StoreError, match="lack columns"):
        store.replace_window(
            "counters", "eu", ["requests"], start, end, frame.drop(columns=["unit"])
        )
    with pytest.raises(StoreError, match="errors"):
        store.replace_window(
            "counters", "eu", ["requests"], start, end, frame.assign(signal="errors")
        )
    assert not store.has_data()


def test_gauges_and_histograms_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start, end = DAY, DAY + timedelta(minutes=2)
    gauges = pd.DataFrame(
        {
            "ts_utc": [DAY + MIN, DAY + 2 * MIN],
            "model": "m",
            "arm": "",
            "instance": "node-a/0",
            "mean": [0.5, 0.25],
            "max": [0.9, 0.5],
            "last": [0.4, 0.1],
            "samples": np.array([4, 4], dtype=np.int32),
            "step_s": np.int32(60),
            "signal": "gpu_utilization",
            "unit": "ratio",
        }
    )
    hist = pd.DataFrame(
        {
            "ts_utc": [DAY + MIN] * 3,
            "model": "m",
            "arm": "",
            "le": [0.5, 1.0, math.inf],
            "value": [5.0, 8.0, 11.0],
            "signal": "latency",
            "unit": "seconds",
        }
    )
    store.replace_window("gauges", "eu", ["gpu_utilization"], start, end, gauges)
    store.replace_window("histograms", "eu", ["latency"], start, end, hist)
    reader = _reader(tmp_path)
    g = reader.query("SELECT * FROM gauges ORDER BY ts_utc")
    assert g["mean"].tolist() == [0.5, 0.25]
    assert g["samples"].tolist() == [4, 4]
    assert set(g["region"]) == {"eu"}
    h = reader.query("SELECT le, value FROM histograms ORDER BY le")
    assert h["le"].tolist() == [0.5, 1.0, math.inf]
    assert h["value"].tolist() == [5.0, 8.0, 11.0]
    assert reader.query("SELECT count(*) AS n FROM counters")["n"].iloc[0] == 0


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("view", ["counters", "gauges", "histograms", "regions", "collection_runs"])
def test_views_of_an_empty_store_exist_and_are_empty(tmp_path: Path, view: str) -> None:
    store = Store(tmp_path / "never-written")
    df = store.query(f"SELECT * FROM {view}")
    assert len(df) == 0
    assert len(df.columns) >= 5
    assert not store.has_data()


def test_regions_and_run_log_views(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_regions(
        pd.DataFrame(
            [
                {
                    "region": "eu",
                    "display_name": None,
                    "latitude": 50.1,
                    "longitude": 8.7,
                    "url": "http://eu",
                },
                {
                    "region": "us",
                    "display_name": "Virginia",
                    "latitude": 39.0,
                    "longitude": -77.5,
                    "url": "http://us",
                },
            ]
        )
    )
    store.append_run_log(
        {"region": "eu", "status": "ok", "rows": 12, "started_utc": "2024-03-01T00:00:00"}
    )
    store.append_run_log({"region": "us", "status": "failed", "rows": 0, "error": "boom"})
    reader = _reader(tmp_path)
    regions = reader.query("SELECT region, display_name FROM regions ORDER BY region")
    assert regions.values.tolist() == [["eu", "eu"], ["us", "Virginia"]]  # display name defaults
    as_frame = pq.read_table(tmp_path / "lake" / "regions" / "regions.parquet")
    # The collector passes dicts (no pandas in its process): the same file contents.
    store.write_regions(as_frame.to_pylist())
    assert pq.read_table(tmp_path / "lake" / "regions" / "regions.parquet").equals(as_frame)
    runs = reader.query("SELECT region, status, rows, error FROM collection_runs ORDER BY region")
    assert runs["rows"].tolist() == [12, 0]
    assert runs["error"].tolist()[1] == "boom"


def test_state_round_trip_and_bad_query(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.read_state() == {"regions": {}}
    state = {"regions": {"eu": {"collected_until": "2024-03-01T00:00:00+00:00"}}}
    store.write_state(state)
    assert store.read_state() == state
    assert json.loads((tmp_path / "state.json").read_text()) == state
    with pytest.raises(StoreError, match="query failed"):
        store.query("SELECT no_such_column FROM counters")


def test_refresh_picks_up_a_table_that_appeared(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert _sums(store) == (0, 0.0)  # built while the lake was empty
    start, end = DAY, DAY + timedelta(minutes=3)
    store.replace_window("counters", "eu", ["requests"], start, end, _counter_frame(start, end))
    store.refresh()
    assert _sums(store) == (3, 3.0)


# --------------------------------------------------------------------------- concurrency

_WRITER = """
import sys, pickle
from datetime import datetime
from observatory.store import Store
root, start, end, frame_path = sys.argv[1:5]
n = int(sys.argv[5])
with open(frame_path, "rb") as fh:
    frame = pickle.load(fh)
store = Store(root)
for _ in range(n):
    with store.writer():
        store.replace_window("counters", "eu", ["requests", "errors"],
                             datetime.fromisoformat(start), datetime.fromisoformat(end), frame)
"""

_READER = """
import json, sys, time
from pathlib import Path
from observatory.store import Store
root, done, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
store = Store(root)
sums, errors, during = [], [], 0
while True:
    finished = done.exists()
    try:
        df = store.query("SELECT count(*) AS n, sum(value) AS s FROM counters")
        sums.append([int(df["n"].iloc[0]), float(df["s"].iloc[0])])
    except Exception as exc:  # any failure is a test failure; report it
        errors.append(f"{type(exc).__name__}: {exc}")
    ready.touch()
    during += not finished
    if finished and len(sums) + len(errors) >= 5:
        break
print(json.dumps({"sums": sums, "errors": errors[:5], "n_errors": len(errors), "during": during}))
"""


def test_readers_never_see_a_half_written_or_doubled_window(tmp_path: Path) -> None:
    """One process rewrites a window 30 times while two others sum it in a loop."""
    root = tmp_path / "store"
    store = Store(root)
    start, end = DAY + timedelta(hours=23), DAY + timedelta(hours=25)  # two day partitions
    frame = pd.concat(
        [
            _counter_frame(start, end, "requests", 1.5, ("a", "b", "c")),
            _counter_frame(start, end, "errors", 0.25, ("a", "b", "c")),
        ],
        ignore_index=True,
    )
    expected = (len(frame), float(frame["value"].sum()))
    store.replace_window("counters", "eu", ["requests", "errors"], start, end, frame)
    assert _sums(_reader(root)) == expected
    frame_path = tmp_path / "frame.pkl"
    frame.to_pickle(frame_path)
    done = tmp_path / "writer-done"
    env_cwd = str(ROOT)
    ready = [tmp_path / f"reader-{i}-ready" for i in range(2)]
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_READER), str(root), str(done), str(r)],
            cwd=env_cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(r.exists() for r in ready), "readers did not start"
        writer = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(_WRITER),
                str(root),
                start.isoformat(),
                end.isoformat(),
                str(frame_path),
                "30",
            ],
            cwd=env_cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        done.touch()
    outputs = [r.communicate(timeout=120) for r in readers]
    assert writer.returncode == 0, writer.stderr
    for (out, err), proc in zip(outputs, readers, strict=True):
        assert proc.returncode == 0, err
        report = json.loads(out)
        assert report["n_errors"] == 0, report["errors"]
        assert len(report["sums"]) >= 5
        assert report["during"] > 0  # the reader overlapped the writer
        observed = {tuple(s) for s in report["sums"]}
        assert observed == {expected}, f"readers saw {sorted(observed)}; expected only {expected}"
    assert _sums(_reader(root)) == expected
    assert not [p for p in root.rglob("*") if p.name.startswith(".tmp")]


# --------------------------------------------------------------------------- roll-up, housekeeping


def test_hourly_rollup_holds_the_step_sums_of_every_rewrite(tmp_path: Path) -> None:
    """The roll-up beside each partition sums its steps per right-closed hour (over
    instances), follows every rewrite of a window, and carries the partition's stamp."""
    store = Store(tmp_path)
    frame = pd.concat(
        [
            _counter_frame(DAY, DAY + timedelta(hours=3), value=v, models=("a", "b")).assign(
                instance=inst
            )
            for inst, v in (("n1", 1.0), ("n2", 0.25))
        ],
        ignore_index=True,
    )
    store.replace_window("counters", "eu", ["requests"], DAY, DAY + timedelta(hours=3), frame)
    # Rewrite 30 minutes across an hour boundary with other values (pandas and Arrow paths).
    part = _counter_frame(DAY + 90 * MIN, DAY + 120 * MIN, value=3.0, models=("a",))
    store.replace_window("counters", "eu", ["requests"], DAY + 90 * MIN, DAY + 120 * MIN, part)
    path = store.partition_dir("counters", "requests", DAY.date(), "eu")
    rollup = store.rollup_path("counters", path)
    stamp = store.partition_stamp("counters", "requests", DAY.date(), "eu")
    assert rollup.stat().st_mtime_ns == stamp == path.stat().st_mtime_ns
    steps = store.query(
        "SELECT date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour AS h, "
        "model, sum(value) AS v, count(*) AS n FROM counters GROUP BY ALL ORDER BY h, model"
    )
    hours = pq.read_table(rollup).to_pandas().sort_values(["hour_utc", "model"])
    assert hours["hour_utc"].tolist() == steps["h"].tolist()
    assert hours["value"].tolist() == steps["v"].tolist()
    assert hours["rows"].tolist() == steps["n"].tolist()
    # Hour 02:00 of model a: 30 steps x 2 instances x 1.25, then minutes 91..120 -> 3.0 each.
    a2 = hours[(hours["model"] == "a") & (hours["hour_utc"] == DAY + timedelta(hours=2))]
    assert a2["value"].iloc[0] == 30 * 1.25 + 30 * 3.0 and a2["rows"].iloc[0] == 90
    plan = store.hourly_plan("counters", ["requests"], DAY, DAY + timedelta(hours=3))
    assert plan.hourly == [rollup] and plan.minutes_split == [] and plan.minutes_all == []


def test_housekeeping_removes_old_temp_files_under_the_writer_lock(tmp_path: Path) -> None:
    """A killed writer leaves ``.tmp-*`` files (made here by hand: a SIGKILL between
    mkstemp and os.replace is hard to hit); the next writer removes the old ones only."""
    store = Store(tmp_path)
    store.replace_window(
        "counters", "eu", ["requests"], DAY, DAY + 5 * MIN, _counter_frame(DAY, DAY + 5 * MIN)
    )
    folder = store.partition_dir("counters", "requests", DAY.date(), "eu")
    old, fresh = folder / ".tmp-dead.parquet.tmp", folder / ".tmp-busy.parquet.tmp"
    state_tmp = tmp_path / ".tmp-state.json.tmp"
    for p in (old, fresh, state_tmp):
        p.write_bytes(b"half a file")
    hour_ago = time.time() - 3600
    for p in (old, state_tmp):
        os.utime(p, (hour_ago, hour_ago))
    with Store(tmp_path).writer():  # a new writer process's first lock
        pass
    assert not old.exists() and not state_tmp.exists() and fresh.exists()
    assert _sums(_reader(tmp_path)) == (5, 5.0)  # stored data untouched
    again = Store(tmp_path).housekeeping()
    assert again.tmp_removed == 0 and again.rollups_rebuilt == 0


# --------------------------------------------------------------------------- Arrow write path


def _dictionary_strings(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as the collector hands it over: an Arrow table whose strings are
    dictionary-encoded (``collectors.transform.blocks_table``)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return pa.table(
        [c.dictionary_encode() if pa.types.is_string(c.type) else c for c in table.columns],
        names=table.column_names,
    )


def test_arrow_path_writes_what_the_pandas_path_writes(tmp_path: Path) -> None:
    """Rows of two signals over midnight, in shuffled order and with dictionary-encoded
    strings, land in the same partition files and roll-ups, row for row, as the same
    rows written through the pandas path; strings read back as plain ``string``."""
    start, end = DAY + timedelta(hours=22), DAY + timedelta(hours=26)
    frame = pd.concat(
        [
            _counter_frame(start, end, "requests", 2.0, ("a", "b")),
            _counter_frame(start, end, "errors", 0.5, ("c",)),
        ],
        ignore_index=True,
    )
    frame["value"] = np.arange(len(frame), dtype=np.float64)  # every row tells apart
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    by_pandas, by_arrow = Store(tmp_path / "pandas"), Store(tmp_path / "arrow")
    by_pandas.replace_window("counters", "eu", ["requests", "errors"], start, end, shuffled)
    result = by_arrow.replace_window(
        "counters", "eu", ["requests", "errors"], start, end, _dictionary_strings(shuffled)
    )
    # 2 signals x 5 hour files (h23, h24; h00, h01, h02)
    assert (result.rows, result.files) == (len(frame), 10)
    files = sorted(
        p.relative_to(tmp_path / "pandas") for p in (tmp_path / "pandas").rglob("*.parquet")
    )
    assert len(files) == 10 + 3 * 4  # hour files, daily, hourly and 5-minute roll-ups per day
    for rel in files:
        want, got = (
            pq.read_table(tmp_path / "pandas" / rel),
            pq.read_table(tmp_path / "arrow" / rel),
        )
        assert got.schema.equals(want.schema), rel
        assert got.equals(want), rel
    one = by_arrow.partition_files("counters", "errors", (DAY + timedelta(days=1)).date(), "eu")
    assert pq.read_table(one[0])["model"].type == pa.string()
    assert pa.concat_tables(pq.read_table(f) for f in one)["value"].to_pylist() == sorted(
        frame[(frame["signal"] == "errors") & (frame["ts_utc"] >= DAY + timedelta(days=1))]["value"]
    )


def test_rollup_written_from_dictionary_rows_equals_the_one_rebuilt_from_the_file(
    tmp_path: Path,
) -> None:
    """The roll-up made at write time (from the collector's dictionary-encoded rows)
    is the one housekeeping rebuilds from the stored file (plain strings), exactly."""
    start, end = DAY, DAY + timedelta(hours=5)
    frame = pd.concat(
        [
            _counter_frame(start, end, value=v, models=("a", "b", "c")).assign(instance=i)
            for i, v in (("n1", 0.1), ("n2", 0.7), ("n3", 1e-3))
        ],
        ignore_index=True,
    )
    store = Store(tmp_path)
    store.replace_window("counters", "eu", ["requests"], start, end, _dictionary_strings(frame))
    path = store.partition_dir("counters", "requests", DAY.date(), "eu")
    rollup = store.rollup_path("counters", path)
    fine = store.rollup_path("counters", path, 300)
    written, written_fine = pq.read_table(rollup), pq.read_table(fine)
    assert written.num_rows == 5 * 3  # hours x models
    assert written_fine.num_rows == 5 * 12 * 3  # 5-minute periods x models
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))  # now stale
    assert Store(tmp_path).housekeeping().rollups_rebuilt == 1  # one partition, both tiers
    assert pq.read_table(rollup).equals(written)
    assert pq.read_table(fine).equals(written_fine)


def test_coarser_rollup_equals_the_rollup_of_the_rows(tmp_path: Path) -> None:
    """Hours summed from the 5-minute roll-up equal hours summed from the minute rows:
    counts exactly, float sums to a relative 1e-15; gauges' maxima and minute masks
    exactly.  Windows start mid-hour; one step per minute."""
    start, end = DAY + timedelta(minutes=17), DAY + timedelta(hours=3, minutes=43)
    counters = _counter_frame(start, end, value=0.1, models=("a", "b")).assign(instance="n1")
    counters["value"] = np.arange(len(counters)) * 0.37
    table = pa.Table.from_pandas(counters[SCHEMAS["counters"].names], preserve_index=False)
    table = table.cast(SCHEMAS["counters"])
    order = [("hour_utc", "ascending"), ("model", "ascending")]
    fine = hourly_rollup("counters", table, 300)
    direct = hourly_rollup("counters", table).sort_by(order)
    derived = coarser_rollup("counters", fine, 3600).sort_by(order)
    assert derived["rows"].to_pylist() == direct["rows"].to_pylist()
    assert direct["rows"].to_pylist() == [43, 43, 60, 60, 60, 60, 43, 43]  # 2 models
    np.testing.assert_allclose(derived["value"], direct["value"], rtol=1e-15)
    steps = pd.date_range(start + timedelta(minutes=1), end, freq="1min")
    gauges = pa.table(
        {
            "ts_utc": pa.array(steps.to_pydatetime(), pa.timestamp("us")),
            "model": ["a"] * len(steps),
            "arm": [None] * len(steps),
            "instance": ["g0"] * len(steps),
            "mean": [None if i % 7 == 0 else 0.1 * i for i in range(len(steps))],
            "max": [float(i % 13) for i in range(len(steps))],
            "last": [0.0] * len(steps),
            "samples": [4] * len(steps),
            "step_s": [60] * len(steps),
            "unit": ["x"] * len(steps),
        },
        schema=SCHEMAS["gauges"],
    )
    direct = hourly_rollup("gauges", gauges)
    derived = coarser_rollup("gauges", hourly_rollup("gauges", gauges, 300), 3600)
    for col in ("hour_utc", "seconds", "step_max", "max", "samples", "rows", "minutes"):
        assert derived[col].to_pylist() == direct[col].to_pylist(), col
    assert direct["minutes"][0].as_py() == sum(1 << m for m in range(17, 60))
    np.testing.assert_allclose(derived["weighted"], direct["weighted"], rtol=1e-15)


def test_store_and_collector_modules_do_not_import_pandas() -> None:
    """The store, the collector and its transform import pandas only where a DataFrame
    is made, so a process that never makes one (``collect --dry-run``) does not pay for
    it.  (A collector run still loads it: pyarrow's pandas shim imports pandas on the
    first Arrow array built, about 0.14 CPU-seconds; docs/architecture.md, store.)"""
    code = (
        "import sys, observatory.cli, observatory.store, collectors.collect\n"
        "print(sorted(m for m in ('pandas', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_long_lived_connection_sees_later_writes_and_view_key_says_when_to_rebuild(
    tmp_path: Path,
) -> None:
    """The dashboard keeps one Store per :meth:`Store.view_key` across data versions
    (app/data.py): its views must list files again per query, and the key must change
    exactly when a view's source changes (a table got its first file)."""
    store = Store(tmp_path)
    t0 = datetime(2026, 1, 1)
    with store.writer():
        store.replace_window(
            "counters", "r1", ["requests"], t0, t0 + 5 * MIN, _counter_frame(t0, t0 + 5 * MIN)
        )
    key = store.view_key()
    assert _sums(store) == (5, 5.0)
    later = t0 + timedelta(days=1)
    with store.writer():  # a new region, a new date, and more steps on the first date
        store.replace_window(
            "counters",
            "r2",
            ["requests"],
            later,
            later + 3 * MIN,
            _counter_frame(later, later + 3 * MIN, value=2.0),
        )
        store.replace_window(
            "counters",
            "r1",
            ["requests"],
            t0 + 5 * MIN,
            t0 + 7 * MIN,
            _counter_frame(t0 + 5 * MIN, t0 + 7 * MIN),
        )
    assert _sums(store) == (10, 13.0)  # the same connection, built before the writes
    assert Store(tmp_path).view_key() == key
    gauges = pd.DataFrame(
        {
            "signal": ["gpu_utilization"],
            "ts_utc": [t0 + MIN],
            "model": ["llama"],
            "arm": ["v1"],
            "instance": ["gpu0"],
            "mean": [0.5],
            "max": [0.5],
            "last": [0.5],
            "samples": [1],
            "step_s": [60],
            "unit": ["ratio"],
        }
    )
    with store.writer():
        store.replace_window("gauges", "r1", ["gpu_utilization"], t0, t0 + MIN, gauges)
    new_key = Store(tmp_path).view_key()
    assert new_key != key
    assert dict(new_key)["gauges"] != dict(key)["gauges"]
    assert dict(new_key)["counters"] == dict(key)["counters"]


def test_a_file_where_the_store_folder_should_be_is_a_clear_error(tmp_path: Path) -> None:
    in_the_way = tmp_path / "store"
    in_the_way.write_text("not a folder")
    want = r"cannot create the store folder .*store: a file is there"
    with pytest.raises(StoreError, match=want), Store(in_the_way).writer():
        pass
    assert in_the_way.read_text() == "not a folder"  # left as it was

"""Hour files inside the day partition (observatory/hour_files.py, Store.replace_window):
which file holds which step, roll-ups patched per rewritten hour equal to roll-ups
rebuilt from every row, legacy ``part.parquet`` partitions read and rewritten, a
writer killed between data and roll-ups, and the stamps other modules key on.

Everything runs on real Parquet files and DuckDB.  The only fake is the killed
writer: the store's roll-up writer is made to raise (a SIGKILL between two renames
cannot be hit on demand), which leaves the files exactly as such a kill would.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from observatory import experiment_state
from observatory.hour_files import (
    LEGACY_FILE,
    file_span,
    folder_stamp,
    hour_file_name,
    hour_index,
    hour_range,
    overlaps,
)
from observatory.slo_cache import SliceCache, Source
from observatory.store import (
    GPU_STEP_SIGNALS,
    GPU_STEPS_SCHEMA,
    ROLLUP_OF,
    ROLLUP_SCHEMAS,
    ROLLUP_TIERS,
    SCHEMAS,
    Store,
    gpu_steps_rollup,
    hourly_rollup,
)

DAY = datetime(2026, 3, 10)
MIN = timedelta(minutes=1)
H = timedelta(hours=1)
REGION = "eu-west-1"
SIGNALS = {
    "counters": ["requests", "errors"],
    "histograms": ["latency"],
    "gauges": ["gpu_utilization", "gpu_power", "cost"],
}
LES = [0.1, 0.5, 1.0, float("inf")]


def _frame(table: str, start: datetime, end: datetime, seed: int) -> pd.DataFrame:
    """Random rows of every signal of ``table``, one step a minute in ``(start, end]``:
    2 models x 2 instances (GPUs), histograms per ``le``; a model label missing on
    one gauge series (NULLs must roll up too)."""
    rng = np.random.default_rng(seed)
    steps = pd.date_range(start + MIN, end, freq="1min")
    parts = []
    for sig in SIGNALS[table]:
        for model in ("m1", "m2"):
            for inst in ("gpu-0", "gpu-1"):
                n = len(steps)
                base = {"ts_utc": steps, "signal": sig, "model": model, "arm": "v1"}
                if table == "counters":
                    rows = {**base, "instance": inst, "value": rng.integers(0, 50, n) * 1.0}
                    parts.append(pd.DataFrame({**rows, "unit": "requests"}))
                elif table == "histograms":
                    if inst == "gpu-1":
                        continue
                    for le in LES:
                        rows = {**base, "le": le, "value": rng.integers(0, 9, n) * 1.0}
                        parts.append(pd.DataFrame({**rows, "unit": "s"}))
                else:
                    mean = rng.random(n) * (100 if sig == "gpu_power" else 1)
                    label = None if (model, inst, sig) == ("m2", "gpu-1", "cost") else model
                    rows = {**base, "model": label, "instance": inst, "mean": mean}
                    rows |= {"max": mean * 1.5, "last": mean, "samples": 4, "step_s": 60}
                    parts.append(pd.DataFrame({**rows, "unit": "W"}))
    return pd.concat(parts, ignore_index=True)


def _write(store: Store, start: datetime, end: datetime, seed: int) -> None:
    for table in SIGNALS:
        frame = _frame(table, start, end, seed)
        store.replace_window(table, REGION, SIGNALS[table], start, end, frame)


def _all_rows(store: Store, table: str, signal: str, day: date) -> pa.Table:
    files = store.partition_files(table, signal, day, REGION)
    return pa.concat_tables(pq.read_table(f, schema=SCHEMAS[table]) for f in files)


def _frame_of(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().reset_index(drop=True)


def assert_rollups_equal_a_rebuild(store: Store, days: list[date]) -> None:
    """Every roll-up tier and GPU-step roll-up of ``days`` is fresh and equals the
    roll-up of all its partition's rows now (counts exactly, float sums to 1e-12)."""
    for table, signals in SIGNALS.items():
        for sig in signals:
            for day in days:
                rows = _all_rows(store, table, sig, day)
                folder = store.partition_dir(table, sig, day, REGION)
                for period, names in ROLLUP_TIERS.items():
                    got = pq.read_table(
                        store.rollup_path(table, folder, period),
                        schema=ROLLUP_SCHEMAS[names[table]],
                    )
                    want = hourly_rollup(table, rows, period)
                    pd.testing.assert_frame_equal(
                        _frame_of(got), _frame_of(want), check_exact=False, rtol=1e-12
                    )
                plan = store.hourly_plan(table, [sig], DAY - H, DAY + 48 * H)
                assert not plan.minutes_all, f"{table}/{sig}: a roll-up is stale"
    for day in days:
        files = [
            f for s in GPU_STEP_SIGNALS for f in store.partition_files("gauges", s, day, REGION)
        ]
        got = pq.read_table(store.gpu_steps_path(day, REGION), schema=GPU_STEPS_SCHEMA)
        pd.testing.assert_frame_equal(
            _frame_of(got), _frame_of(gpu_steps_rollup(files)), check_exact=False, rtol=1e-12
        )
    assert not store.gpu_steps_plan(DAY - H, DAY + 48 * H).minutes_all


def _sums(store: Store) -> tuple[int, float, float]:
    """Rows and sums from the minute rows of every table (a new reader)."""
    reader = Store(store.root)
    c = reader.query("SELECT count(*) AS n, sum(value) AS v FROM counters").iloc[0]
    g = reader.query("SELECT sum(mean) AS m FROM gauges").iloc[0]
    return int(c["n"]), float(c["v"]), round(float(g["m"]), 9)


# --------------------------------------------------------------------------- layout


def test_hour_file_of_a_step_is_its_rollup_hour() -> None:
    d = DAY.date()
    assert hour_index(DAY, d) == 0  # midnight's step: h00 (roll-up hour_utc = midnight)
    assert hour_index(DAY + timedelta(microseconds=1), d) == 1
    assert hour_index(DAY + H, d) == 1
    assert hour_index(DAY + H + MIN, d) == 2
    assert hour_index(DAY + 24 * H - MIN, d) == 24
    with pytest.raises(ValueError, match="does not lie on"):
        hour_index(DAY + 24 * H, d)  # the next day's h00
    assert hour_file_name(7) == "h07.parquet"
    assert file_span(d, "h00.parquet") == (DAY - timedelta(microseconds=1), DAY)
    assert file_span(d, "h13.parquet") == (DAY + 12 * H, DAY + 13 * H)
    assert file_span(d, LEGACY_FILE) == (DAY - timedelta(microseconds=1), DAY + 24 * H)
    assert file_span(d, "notes.parquet") is None
    assert list(hour_range(d, DAY - MIN, DAY + MIN)) == [0, 1]
    assert list(hour_range(d, DAY + 22 * H, DAY + 26 * H)) == [23, 24]
    assert list(hour_range(d, DAY + 24 * H, DAY + 25 * H)) == []
    assert list(hour_range(d, DAY + 5 * H, DAY + 5 * H + MIN)) == [6]
    assert overlaps(d, "h06.parquet", DAY + 5 * H, DAY + 5 * H + MIN)
    assert not overlaps(d, "h06.parquet", DAY + 6 * H, DAY + 7 * H)
    assert overlaps(d, "unknown.parquet", DAY, DAY + MIN)


def test_the_folder_stamp_changes_with_every_file_operation(tmp_path: Path) -> None:
    """What the freshness rule relies on, checked on the file system tests run on:
    creating, renaming over and removing a file each change the folder's time."""
    folder = tmp_path / "p"
    folder.mkdir()
    seen = [folder_stamp(folder)]
    (folder / ".tmp-a").write_bytes(b"x")
    seen.append(folder_stamp(folder))
    os.replace(folder / ".tmp-a", folder / "h01.parquet")
    seen.append(folder_stamp(folder))
    (folder / ".tmp-b").write_bytes(b"y")
    os.replace(folder / ".tmp-b", folder / "h01.parquet")  # replace an existing file
    seen.append(folder_stamp(folder))
    (folder / "h01.parquet").unlink()
    seen.append(folder_stamp(folder))
    assert len(set(seen)) == len(seen), seen
    assert folder_stamp(tmp_path / "missing") is None


def test_a_step_writes_only_its_hour_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, DAY + 22 * H, DAY + 26 * H, seed=1)  # across midnight
    d1, d2 = DAY.date(), (DAY + 24 * H).date()
    names = [p.name for p in store.partition_files("counters", "requests", d1, REGION)]
    assert names == ["h23.parquet", "h24.parquet"]
    names = [p.name for p in store.partition_files("counters", "requests", d2, REGION)]
    assert names == ["h00.parquet", "h01.parquet", "h02.parquet"]
    for day in (d1, d2):  # every file holds only the steps of its hour
        for path in store.partition_files("gauges", "gpu_power", day, REGION):
            ts = pq.read_table(path)["ts_utc"].to_pylist()
            lo, hi = file_span(day, path.name) or (None, None)
            assert ts and all(lo < t <= hi for t in ts), path
    before = {p: p.stat().st_mtime_ns for p in store.data_files("counters")}
    result = store.replace_window(
        "counters",
        REGION,
        ["requests", "errors"],
        DAY + 23 * H + 30 * MIN,
        DAY + 23 * H + 31 * MIN,
        _frame("counters", DAY + 23 * H + 30 * MIN, DAY + 23 * H + 31 * MIN, seed=2),
    )
    changed = sorted(
        p.relative_to(store.lake).as_posix()
        for p in store.data_files("counters")
        if p.stat().st_mtime_ns != before[p]
    )
    assert result.files == 2 and changed == [
        f"counters/signal={s}/date={d1}/region={REGION}/h24.parquet" for s in ("errors", "requests")
    ]
    assert_rollups_equal_a_rebuild(store, [d1, d2])


def test_patched_rollups_equal_a_rebuild_after_steps_rewrites_and_deletions(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    with store.writer():
        _write(store, DAY + 20 * H, DAY + 21 * H, seed=3)  # a backfill of one hour
        t = DAY + 21 * H
        for i in range(4):  # collector steps, the last one across midnight's hour
            _write(store, t, t + 50 * MIN if i == 0 else t + MIN, seed=10 + i)
            t += 50 * MIN if i == 0 else MIN
        _write(store, DAY + 20 * H + 55 * MIN, DAY + 21 * H + 5 * MIN, seed=20)  # rewrite
        for table, signals in SIGNALS.items():  # delete one minute of every signal
            empty = _frame(table, DAY, DAY, seed=0)
            store.replace_window(table, REGION, signals, t - MIN, t, empty)
    assert_rollups_equal_a_rebuild(store, [DAY.date()])
    # The rewritten 21:00 hour holds the rewrite's values, not the first write's.
    got = store.query(
        "SELECT sum(value) AS v FROM counters WHERE ts_utc > TIMESTAMP '2026-03-10 20:55:00' "
        "AND ts_utc <= TIMESTAMP '2026-03-10 21:05:00'"
    )["v"].iloc[0]
    assert (
        got
        == _frame("counters", DAY + 20 * H + 55 * MIN, DAY + 21 * H + 5 * MIN, 20)["value"].sum()
    )


# --------------------------------------------------------------------------- killed writer


def _killed(*args: object, **kwargs: object) -> None:
    """The fake kill: raised where the writer would write its roll-ups."""
    raise KeyboardInterrupt("killed between the data files and the roll-ups")


def test_a_writer_killed_before_its_rollups_leaves_them_stale_until_housekeeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    _write(store, DAY, DAY + 2 * H, seed=4)
    window = (DAY + 90 * MIN, DAY + 91 * MIN)
    want = _frame("counters", *window, seed=5)
    monkeypatch.setattr(Store, "_write_rollups", _killed)
    monkeypatch.setattr(Store, "_write_gpu_steps", _killed)
    with pytest.raises(KeyboardInterrupt):
        store.replace_window("counters", REGION, ["requests", "errors"], *window, want)
    with pytest.raises(KeyboardInterrupt):
        store.replace_window(
            "gauges", REGION, SIGNALS["gauges"], *window, _frame("gauges", *window, 6)
        )
    monkeypatch.undo()
    # The data is written; the roll-ups of the killed partitions are never read.
    reader = Store(tmp_path)
    plan = reader.hourly_plan("counters", ["requests"], DAY, DAY + 2 * H)
    assert plan.minutes_all == reader.partition_files("counters", "requests", DAY.date(), REGION)
    assert reader.gpu_steps_plan(DAY, DAY + 2 * H).hourly == []
    window_sum = reader.query(
        "SELECT sum(value) AS v FROM "
        + reader.window_rows("counters", ["requests"], DAY, DAY + 2 * H)
    )["v"].iloc[0]
    steps = reader.query("SELECT sum(value) AS v FROM counters WHERE signal = 'requests'")
    assert window_sum == steps["v"].iloc[0]
    done = reader.housekeeping()
    # The kill stops each call in its first partition (requests, gpu_utilization); the
    # GPU-step roll-up of the day was stale too.
    assert done.rollups_rebuilt == 1 + 1 + 1
    assert_rollups_equal_a_rebuild(reader, [DAY.date()])


# --------------------------------------------------------------------------- legacy day files


def _to_day_file(store: Store, day: date) -> None:
    """Rewrite ``day``'s partitions as a store from before hour files holds them: one
    ``part.parquet`` each, its roll-ups stamped with its modification time, the
    GPU-step roll-up with the newer of its two partitions'."""
    gpu = []
    for table, signals in SIGNALS.items():
        for sig in signals:
            files = store.partition_files(table, sig, day, REGION)
            rows = pa.concat_tables(pq.read_table(f, schema=SCHEMAS[table]) for f in files)
            legacy = store.partition_dir(table, sig, day, REGION) / LEGACY_FILE
            pq.write_table(rows, legacy, store_schema=False)
            for f in files:
                f.unlink()
            stamp = legacy.stat().st_mtime_ns
            for period in ROLLUP_TIERS if table in ROLLUP_OF else ():
                os.utime(store.rollup_path(table, legacy, period), ns=(stamp, stamp))
            if sig in GPU_STEP_SIGNALS:
                gpu.append(stamp)
    os.utime(store.gpu_steps_path(day, REGION), ns=(max(gpu), max(gpu)))


def test_a_legacy_day_file_is_read_and_its_rollups_stay_fresh(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, DAY, DAY + 3 * H, seed=7)
    before = _sums(store)
    _to_day_file(store, DAY.date())
    assert [p.name for p in store.partition_files("counters", "errors", DAY.date(), REGION)] == [
        LEGACY_FILE
    ]
    assert _sums(store) == pytest.approx(before, rel=1e-12)
    assert_rollups_equal_a_rebuild(store, [DAY.date()])  # the former stamps still count


def test_a_write_into_a_legacy_partition_deletes_from_it_then_writes_hour_files(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    _write(store, DAY, DAY + 2 * H + 30 * MIN, seed=8)
    _to_day_file(store, DAY.date())
    legacy = store.partition_dir("counters", "requests", DAY.date(), REGION) / LEGACY_FILE
    # A rewrite of rows the day file holds (01:59-02:01): removed from it, then in h02/h03.
    window = (DAY + 118 * MIN, DAY + 121 * MIN)
    _write(store, *window, seed=9)
    held = pq.read_table(legacy)["ts_utc"].to_pylist()
    assert len(held) == 4 * (150 - 3) and not [t for t in held if window[0] < t <= window[1]]
    names = [p.name for p in store.partition_files("counters", "requests", DAY.date(), REGION)]
    assert names == ["h02.parquet", "h03.parquet", LEGACY_FILE]
    dup = store.query(
        "SELECT ts_utc, signal, model, instance FROM counters GROUP BY ALL HAVING count(*) > 1"
    )
    assert dup.empty
    assert_rollups_equal_a_rebuild(store, [DAY.date()])
    # The next step after the day file's rows (02:30-02:31): the day file keeps its
    # rows (only its time moves), the hour's roll-up sums its rows and the new one.
    kept = pq.read_table(legacy)
    _write(store, DAY + 150 * MIN, DAY + 151 * MIN, seed=10)
    assert pq.read_table(legacy).equals(kept)
    assert_rollups_equal_a_rebuild(store, [DAY.date()])
    assert _sums(store)[0] == 2 * 4 * 151  # requests and errors, 2 models x 2 GPUs


def test_a_writer_killed_in_a_legacy_partition_never_leaves_a_fresh_old_rollup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    _write(store, DAY, DAY + 2 * H, seed=11)
    _to_day_file(store, DAY.date())
    monkeypatch.setattr(Store, "_write_rollups", _killed)
    with pytest.raises(KeyboardInterrupt):  # a step after the day file's rows
        store.replace_window(
            "counters", REGION, SIGNALS["counters"], DAY + 2 * H, DAY + 2 * H + MIN,
            _frame("counters", DAY + 2 * H, DAY + 2 * H + MIN, seed=12),
        )  # fmt: skip
    monkeypatch.undo()
    plan = store.hourly_plan("counters", ["requests"], DAY, DAY + 3 * H)
    assert plan.hourly == [] and len(plan.minutes_all) == 2  # h03 and the day file
    assert store.housekeeping().rollups_rebuilt == 1  # the kill stopped the call there
    assert_rollups_equal_a_rebuild(store, [DAY.date()])


# --------------------------------------------------------------------------- stamps of readers


def test_a_new_hour_file_changes_every_readers_stamp(tmp_path: Path) -> None:
    """The SLO slice cache, the experiment fingerprint and the partition stamp all see
    a step that only adds a new hour file to a partition."""
    store = Store(tmp_path)
    _write(store, DAY, DAY + H, seed=13)
    source = Source("counters", ("requests",))
    cache = SliceCache(store, tmp_path / "cache")
    block = experiment_state.Block(0, DAY, DAY + 24 * H)
    before = (
        cache.stamp(source, [DAY.date()]),
        experiment_state.fingerprint(store, block, [REGION]),
        store.partition_stamp("counters", "requests", DAY.date(), REGION),
    )
    _write(store, DAY + H, DAY + H + MIN, seed=14)  # h02 appears
    assert [p.name for p in store.partition_files("counters", "requests", DAY.date(), REGION)] == [
        "h01.parquet",
        "h02.parquet",
    ]
    after = (
        cache.stamp(source, [DAY.date()]),
        experiment_state.fingerprint(store, block, [REGION]),
        store.partition_stamp("counters", "requests", DAY.date(), REGION),
    )
    assert all(a != b for a, b in zip(before, after, strict=True))
    assert after[2] is not None and before[2] is not None and after[2] > before[2]


# --------------------------------------------------------------------------- whole-day writes


def _names(store: Store, table: str, signal: str, day: date) -> list[str]:
    return [p.name for p in store.partition_files(table, signal, day, REGION)]


def test_a_whole_day_window_writes_one_day_file(tmp_path: Path) -> None:
    """A backfill batch's window (D-1 23:59, D 23:59] stores date D as one file, and
    the demo's (D 00:00, D+1 00:00] too (midnight's step goes to D+1's h00)."""
    store = Store(tmp_path)
    _write(store, DAY - MIN, DAY + 24 * H - MIN, seed=30)
    d = DAY.date()
    assert _names(store, "counters", "requests", d) == [LEGACY_FILE]
    assert_rollups_equal_a_rebuild(store, [d])
    want = _frame("counters", DAY - MIN, DAY + 24 * H - MIN, seed=30)
    assert _sums(store)[:2] == (len(want), want["value"].sum())
    other = Store(tmp_path / "demo-window")
    _write(other, DAY, DAY + 24 * H, seed=31)
    assert _names(other, "counters", "requests", d) == [LEGACY_FILE]
    assert _names(other, "counters", "requests", d + timedelta(days=1)) == ["h00.parquet"]


def test_a_whole_day_rewrite_empties_the_hour_files_then_writes_the_day_file(
    tmp_path: Path,
) -> None:
    """Delete then write over a day of hour files; a row before the window (midnight's
    step, in h00) is kept; a partial-day window still writes hour files."""
    store = Store(tmp_path)
    _write(store, DAY - MIN, DAY + 5 * H, seed=32)  # h00 .. h05
    _write(store, DAY + 10 * H, DAY + 10 * H + MIN, seed=33)  # a partial day: hour files
    d = DAY.date()
    assert _names(store, "counters", "requests", d) == [
        hour_file_name(k) for k in (0, 1, 2, 3, 4, 5, 11)
    ]
    _write(store, DAY, DAY + 24 * H - MIN, seed=34)  # every step after midnight
    files = store.partition_files("counters", "requests", d, REGION)
    assert [f.name for f in files] == [*_names(store, "counters", "requests", d)]
    held = {f.name: pq.read_metadata(f).num_rows for f in files}
    assert held["h00.parquet"] == 4 and held[LEGACY_FILE] == 4 * (24 * 60 - 1)
    assert all(n == 0 for name, n in held.items() if name not in ("h00.parquet", LEGACY_FILE))
    first = _frame("counters", DAY - MIN, DAY + 5 * H, seed=32)
    midnight = first[first["ts_utc"] == DAY]
    rest = _frame("counters", DAY, DAY + 24 * H - MIN, seed=34)
    assert _sums(store)[:2] == (
        len(midnight) + len(rest),
        midnight["value"].sum() + rest["value"].sum(),
    )
    assert_rollups_equal_a_rebuild(store, [d])


# --------------------------------------------------------------------------- compaction


def test_folders_swap_atomically_on_this_file_system(tmp_path: Path) -> None:
    """Compaction needs renameat2(RENAME_EXCHANGE); checked where the tests run."""
    from observatory.folder_exchange import exchange, exchange_supported

    assert exchange_supported(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "old").write_text("a")
    (b / "new").write_text("b")
    os.utime(b, ns=(1_000_000_007, 1_000_000_007))
    exchange(a, b)
    assert [p.name for p in a.iterdir()] == ["new"] and [p.name for p in b.iterdir()] == ["old"]
    assert os.stat(a).st_mtime_ns == 1_000_000_007  # the stamp moves with the folder


def test_compaction_merges_closed_days_and_keeps_rows_stamps_and_rollups(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    with store.writer():
        _write(store, DAY + 20 * H, DAY + 26 * H, seed=40)  # two partial days
        for t in (DAY + 26 * H, DAY + 26 * H + MIN):  # collector steps
            _write(store, t, t + MIN, seed=41)
    d1, d2 = DAY.date(), (DAY + 24 * H).date()
    before = _sums(store)
    stamps = {p.folder: folder_stamp(p.folder) for t in SIGNALS for p in store.partitions(t)}
    with store.writer():
        # Two days later at 10:00: d2 is "yesterday", only d1 is closed.
        done = store.compact_closed(now=DAY + 58 * H)
    assert (done.compacted, done.skipped, done.supported) == (6, 0, True)
    assert _names(store, "counters", "requests", d1) == [LEGACY_FILE]
    assert _names(store, "counters", "requests", d2) == [hour_file_name(k) for k in (0, 1, 2, 3)]
    assert not list(store.lake.rglob(".tmp-compact*"))
    assert {
        p.folder: folder_stamp(p.folder) for t in SIGNALS for p in store.partitions(t)
    } == stamps
    assert _sums(store) == pytest.approx(before, rel=1e-12)
    assert_rollups_equal_a_rebuild(store, [d1, d2])  # fresh: same stamps, same rows
    with store.writer():  # the next minute: nothing new to list
        assert store.compact_closed(now=DAY + 58 * H + MIN).listed == 0
        done = store.compact_closed(now=DAY + 82 * H)  # a day later d2 closes
    assert done.compacted == 6 and _sums(store) == pytest.approx(before, rel=1e-12)
    assert_rollups_equal_a_rebuild(store, [d1, d2])
    # A region re-collected after an outage writes into a compacted day: exact (delete
    # then write into part.parquet), a mixed folder (part.parquet + h22).
    with store.writer():
        _write(store, DAY + 21 * H, DAY + 21 * H + MIN, seed=42)
    assert _names(store, "counters", "requests", d1) == ["h22.parquet", LEGACY_FILE]
    mixed = _sums(store)
    assert mixed[0] == before[0] and mixed[1] != before[1]  # new values, same steps
    legacy_mtime = os.stat(store.partition_dir("counters", "requests", d1, REGION) / LEGACY_FILE)
    # Its next compaction merges both files: every row once (the writer kept them disjoint).
    with store.writer():
        done = store.compact_closed(now=DAY + 82 * H + MIN)
    assert (done.compacted, done.skipped, done.remaining) == (6, 0, 0)
    assert _names(store, "counters", "requests", d1) == [LEGACY_FILE]
    assert _sums(store) == pytest.approx(mixed, rel=1e-12)
    merged = os.stat(store.partition_dir("counters", "requests", d1, REGION) / LEGACY_FILE)
    assert merged.st_mtime_ns == legacy_mtime.st_mtime_ns  # a legacy roll-up stamp kept
    assert merged.st_ino != legacy_mtime.st_ino  # a new file: readers that planned it rerun
    assert_rollups_equal_a_rebuild(store, [d1, d2])


def test_compaction_with_a_budget_goes_on_in_the_next_calls(tmp_path: Path) -> None:
    """``budget_s`` spreads a closed date over calls: at least one partition a call,
    the note moved only when the date is done, rows and roll-ups unchanged."""
    store = Store(tmp_path)
    with store.writer():
        _write(store, DAY + 20 * H, DAY + 23 * H, seed=44)
    before = _sums(store)
    note = tmp_path / "compaction.json"
    counts = []
    with store.writer():
        for minute in range(10):
            done = store.compact_closed(now=DAY + 58 * H + minute * MIN, budget_s=0.0)
            counts.append((done.compacted, done.remaining))
            assert note.exists() == (done.remaining == 0)
            if not done.remaining:
                break
    assert counts == [(1, 5), (1, 4), (1, 3), (1, 2), (1, 1), (1, 0)]
    assert all(
        [f.name for f in p.files()] == [LEGACY_FILE] for t in SIGNALS for p in store.partitions(t)
    )
    assert _sums(store) == pytest.approx(before, rel=1e-12)
    assert_rollups_equal_a_rebuild(store, [DAY.date()])


def test_a_named_query_planned_before_a_compaction_reruns_on_fresh_file_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault: a closed day compacted between planning a named query (its
    ``{{rows:...}}`` expanded into hour-file lists) and running it.  The gap between
    the two cannot be hit on demand, so the test compacts inside the planning step
    (``Store._expand_rows`` wrapped); the files are real, DuckDB's error is real."""
    store = Store(tmp_path)
    _write(store, DAY, DAY + 6 * H, seed=43)
    params = {
        "start": DAY + 30 * MIN,  # edges inside h01 and h06: minute rows of hour files
        "end": DAY + 5 * H + 7 * MIN,
        "regions": [REGION],
        "models": ["m1", "m2"],
        "arms": ["v1"],
        "all_arms": ["v1"],
    }
    want = Store(tmp_path).named("overview_counters_by_region", **params)
    rows = _frame("counters", DAY, DAY + 6 * H, 43)
    inside = (rows["ts_utc"] > params["start"]) & (rows["ts_utc"] <= params["end"])
    assert want["requests"].iloc[0] == rows[inside & (rows["signal"] == "requests")]["value"].sum()
    expand = Store._expand_rows
    plans: list[str] = []

    def planned_then_compacted(self: Store, *args: object, **kwargs: object) -> str:
        sql = expand(self, *args, **kwargs)  # type: ignore[arg-type]
        plans.append(sql)
        if len(plans) == 1:
            with self.writer():
                assert self.compact_closed(now=DAY + 72 * H).compacted == 6
        return sql

    monkeypatch.setattr(Store, "_expand_rows", planned_then_compacted)
    reader = Store(tmp_path)
    got = reader.named("overview_counters_by_region", **params)
    assert len(plans) == 2 and "h06.parquet" in plans[0] and "h06.parquet" not in plans[1]
    pd.testing.assert_frame_equal(got, want)


def test_a_split_hour_reads_only_its_hour_files(tmp_path: Path) -> None:
    """Plans read the hour files of the hours a window edge cuts, not the day."""
    store = Store(tmp_path)
    _write(store, DAY + 2 * H, DAY + 10 * H, seed=50)  # a partial day: hour files
    split = [DAY + 4 * H, DAY + 8 * H]
    plan = store.hourly_plan("counters", ["requests"], DAY + 3 * H + MIN, DAY + 7 * H + MIN, split)
    assert plan.hourly and not plan.minutes_all
    assert [p.name for p in plan.minutes_split] == ["h04.parquet", "h08.parquet"]

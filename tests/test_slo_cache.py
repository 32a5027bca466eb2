"""The SLO slice cache: status from cached hourly slice sums equals the step computation.

A 3-day demo store of two regions (counters, gauges, latency and ttft histograms) and
every example SLO that is not batched (Timeslices p99 latency and accuracy, gauge
Occurrences, counter and gauge spend budgets, a calendar-window latency SLO).  Each
status from the cache (cold: computed and written; warm: read back) is compared with
the engine without a cache, every column, at times on the hour, mid-hour (window
edges cut hours) and on midnight; then after a rewritten partition, with a cache
folder that cannot be written, and with a slice that does not divide an hour.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from observatory.demo import build_store
from observatory.slo_cache import CACHE_ENV, SliceCache
from observatory.slo_engine import SloEngine, _cacheable_hours
from observatory.slo_specs import SloDefinition, load_specs
from observatory.store import Store

ROOT = Path(__file__).resolve().parent.parent
END = datetime(2026, 3, 1)
REGIONS = ["us-east-1", "eu-west-1"]
KEY = ["region", "model", "arm"]
H = timedelta(hours=1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slo-cache-demo")
    build_store(root, days=3, regions=REGIONS, end=END)
    return root


@pytest.fixture(scope="module")
def slos() -> list[SloDefinition]:
    every = load_specs([ROOT / "examples" / "slo"])
    return [s for s in every if not SloEngine.batchable(s)]


def _copy(demo: Path, tmp_path: Path) -> Store:
    """A copy of the demo store that keeps nanosecond mtimes (roll-ups stay fresh)."""
    import shutil

    dest = tmp_path / "store"
    shutil.copytree(demo, dest, copy_function=shutil.copy2)
    return Store(dest)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal frames: every column, row for row (groups sorted), floats to 1e-12."""
    x = a.sort_values(KEY).reset_index(drop=True)
    y = b.sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-12, atol=0)


def _sums_equal(plain: SloEngine, cached: SloEngine, slo: SloDefinition, at: datetime) -> None:
    """Window sums equal: slice counts exactly, bad/total exactly for counts."""
    key = ["window", *KEY]
    a = plain.window_sums(slo, at).sort_values(key).reset_index(drop=True)
    b = cached.window_sums(slo, at).sort_values(key).reset_index(drop=True)
    assert len(a) == len(b) > 0
    assert (a[key] == b[key]).all().all()
    assert (a["slices"].to_numpy() == b["slices"].to_numpy()).all()
    assert (a["expected"].to_numpy() == b["expected"].to_numpy()).all()
    if slo.method == "Timeslices":  # slice counts: integers, exact
        assert (a[["bad", "total"]].to_numpy() == b[["bad", "total"]].to_numpy()).all()
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "at",
    [END - 2 * H, END - 5 * H + timedelta(minutes=37), END - 24 * H],
    ids=["on-the-hour", "mid-hour", "midnight"],
)
def test_status_from_the_cache_equals_the_step_computation(
    demo: Path, slos: list[SloDefinition], tmp_path: Path, at: datetime
) -> None:
    store = Store(demo)
    plain = SloEngine(store, cache=False)
    cache = SliceCache(store, tmp_path / "cache")
    cached = SloEngine(store, cache=cache)
    kinds = {(s.method, s.indicator.kind) for s in slos}
    assert {("Timeslices", "percentile"), ("Timeslices", "gauge"), ("Occurrences", "budget")} <= (
        kinds
    )
    for slo in slos:
        want = plain.status(slo, at)
        _same(cached.status(slo, at), want)  # cold: computed and written
        _sums_equal(plain, cached, slo, at)  # warm: read back
    assert cache.write_error is None
    assert cache.written > 0 and cache.reused > 0
    computed = cache.computed
    for slo in slos:
        _same(cached.status(slo, at), plain.status(slo, at))
    assert cache.computed == computed  # nothing recomputed when warm
    # With data: p99 latency over 3 days of 2 regions x models, global row first.
    p99 = next(s for s in slos if s.name == "p99-latency")
    st = cached.status(p99, at)
    assert st.iloc[0][KEY].tolist() == ["*", "*", "*"] and st["total"].iloc[0] > 0


def test_missing_spans_are_joined_then_cut_into_days() -> None:
    # One compute call per day at most: a fresh cache of a large fleet otherwise runs a
    # single query over a month of minute rows (6 GiB at the 20-region scale fleet).
    from observatory.slo_cache import _merge_spans

    t = datetime(2026, 11, 1)
    h = timedelta(hours=1)
    day = timedelta(days=1)
    spans = [(t + k * h, t + (k + 1) * h) for k in range(60)] + [(t + 70 * h, t + 71 * h)]
    assert _merge_spans(spans) == [
        (t, t + day),
        (t + day, t + 2 * day),
        (t + 2 * day, t + 60 * h),
        (t + 70 * h, t + 71 * h),
    ]
    assert _merge_spans(spans, longest=timedelta(days=3)) == [
        (t, t + 60 * h),
        (t + 70 * h, t + 71 * h),
    ]


def test_cacheable_hours_leave_cut_hours_and_the_edges_to_the_steps() -> None:
    at = datetime(2026, 3, 1, 10, 37)
    secs = [300, 3600, 6 * 3600]  # 5m, 1h, 6h
    hours, ranges = _cacheable_hours(
        at - timedelta(seconds=secs[-1]), at, secs, timedelta(minutes=5)
    )
    # Window (04:37, 10:37]: whole hours 06:00 .. 10:00 except those an edge cuts
    # (04:37, 09:37 and 10:32 cut the hours ending 05:00, 10:00 and 11:00).
    assert hours == [datetime(2026, 3, 1, h) for h in (6, 7, 8, 9)]
    assert ranges == [
        (datetime(2026, 3, 1, 4, 32), datetime(2026, 3, 1, 5)),
        (datetime(2026, 3, 1, 9), at),
    ]


def test_a_rewritten_partition_invalidates_its_days(
    demo: Path, slos: list[SloDefinition], tmp_path: Path
) -> None:
    store = _copy(demo, tmp_path)
    at = END - 3 * H
    cache = SliceCache(store, tmp_path / "cache")
    cached = SloEngine(store, cache=cache)
    gauge = next(s for s in slos if s.name == "gpu-availability")
    before = cached.status(gauge, at)
    # Rewrite one region-day of GPU utilisation: every GPU-minute idle (bad).
    day = (END - 2 * 24 * H).date()
    for path in store.partition_files("gauges", "gpu_utilization", day, REGIONS[0]):
        table = pq.read_table(path)
        zero = pa.array(np.zeros(table.num_rows))
        for col in ("mean", "max", "last"):
            table = table.set_column(table.schema.get_field_index(col), col, zero)
        pq.write_table(table, path)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    folder = store.partition_dir("gauges", "gpu_utilization", day, REGIONS[0])
    os.utime(folder, ns=(folder.stat().st_atime_ns, folder.stat().st_mtime_ns + 1_000_000))
    computed = cache.computed
    after = cached.status(gauge, at)
    _same(after, SloEngine(store, cache=False).status(gauge, at))
    row = after[after["region"] == REGIONS[0]].iloc[0]
    old = before[before["region"] == REGIONS[0]].iloc[0]
    assert row["total"] == old["total"] and row["bad"] > old["bad"]
    # The rewritten date's day part and midnight hour, and the previous day's midnight.
    assert cache.computed - computed == 3


def test_a_cache_folder_that_cannot_be_written_falls_back(
    demo: Path, slos: list[SloDefinition], tmp_path: Path
) -> None:
    store = Store(demo)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file in the way\n")
    cache = SliceCache(store, blocked / "slo")
    cached = SloEngine(store, cache=cache)
    plain = SloEngine(store, cache=False)
    at = END - 5 * H + timedelta(minutes=37)
    for slo in slos:
        _same(cached.status(slo, at), plain.status(slo, at))
    assert (
        cache.written == 0
        and cache.write_error
        and "cannot write the SLO cache" in (cache.write_error)
    )
    assert blocked.read_text() == "a file in the way\n"


def test_a_slice_that_does_not_divide_an_hour_is_not_cached(
    demo: Path, slos: list[SloDefinition], tmp_path: Path
) -> None:
    store = Store(demo)
    p99 = next(s for s in slos if s.name == "p99-latency")
    odd = dataclasses.replace(p99, slice_window=timedelta(minutes=7))
    cache = SliceCache(store, tmp_path / "cache")
    at = END - 2 * H
    _same(
        SloEngine(store, cache=cache).status(odd, at), SloEngine(store, cache=False).status(odd, at)
    )
    assert cache.written == 0 and not (tmp_path / "cache").exists()


def test_the_cache_lives_outside_the_store_one_folder_per_store(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shared"))
    a = SliceCache(Store(demo)).root
    b = SliceCache(Store(tmp_path / "other")).root
    assert a.parent == b.parent == tmp_path / "shared" and a != b
    assert a.name.startswith(demo.name + "-")
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert SliceCache(Store(demo)).root.parent == tmp_path / "xdg" / "observatory" / "slo"
    assert SloEngine(Store(demo)).cache is not None
    monkeypatch.setenv(CACHE_ENV, "off")
    assert SloEngine(Store(demo)).cache is None


def _history_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal histories: same rows and columns; counts (slices, tier states) exactly,
    float sums to rounding: window sums are differences of running sums, so their
    rounding error is relative to the running sums (1e-12 of the largest)."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    exact = [c for c in a.columns if c.startswith("slices_") or a[c].dtype == bool]
    for col in ["ts_utc", *KEY, *exact]:
        assert (a[col].to_numpy() == b[col].to_numpy()).all(), col
    scale = float(np.nanmax(np.abs(b[["cum_bad", "cum_total"]].to_numpy())))
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize(
    ("end", "days", "every"),
    [
        (END - 5 * H + timedelta(minutes=37), 1.0, timedelta(minutes=1)),
        (END - 2 * H, 0.25, timedelta(minutes=5)),
        (END - 24 * H, 1.0, timedelta(minutes=10)),
    ],
    ids=["mid-hour-1m", "on-the-hour-5m", "midnight-10m"],
)
def test_history_from_the_cache_equals_the_step_computation(
    demo: Path, tmp_path: Path, end: datetime, days: float, every: timedelta
) -> None:
    """Every example SLO (batched ones too: history has no batch): the burn-down
    history read from the cached hours plus the slices of the hours an evaluation
    (or one shifted back by a window) falls in equals the history from all slices."""
    store = Store(demo)
    plain = SloEngine(store, cache=False)
    cache = SliceCache(store, tmp_path / "cache")
    cached = SloEngine(store, cache=cache)
    start = end - timedelta(days=days)
    every_slo = load_specs([ROOT / "examples" / "slo"])
    for slo in every_slo:
        want = plain.history(slo, start=start, end=end, every=every)
        _history_same(cached.history(slo, start=start, end=end, every=every), want)  # cold
        _history_same(cached.history(slo, start=start, end=end, every=every), want)  # warm
    assert cache.write_error is None and cache.reused > 0
    assert len(list(cache.root.iterdir())) == len(every_slo)  # one cache key per SLO

# ruff: noqa: E501  (the reference SQL is kept as written in sql/queries)
"""Named queries read through the hourly roll-ups equal the minute-row queries.

Every converted query of ``sql/queries`` (``{{rows:...}}``, :meth:`Store.window_rows`)
is run on a real generated store (``observatory.large_fleet``, plus a region of
crafted GPU rows: idle and boundary utilisations, arm-less and power-only GPUs, a NULL
mean) and compared with :data:`REFERENCE`, the straightforward query over every minute
row (the query as it was before the roll-ups; for ``gpu_*`` and ``work_by_day`` with
rows whose arm the filter does not know kept, ``$all_arms``).  Windows start and end
mid-hour and on the hour; buckets below, at and above an hour; one roll-up made stale.
Integer counts must be equal; float sums of gauges equal to a relative 1e-12 (the
order of additions differs, as between two DuckDB scans of the same rows).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from observatory.large_fleet import FleetSize, build
from observatory.store import Store, StoreError

#: The minute-row reference of each converted named query.
REFERENCE: dict[str, str] = {
    "work_by_day": """
WITH work AS (
    SELECT
        region,
        coalesce(model, '') AS model,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        sum(value) FILTER (WHERE signal = 'requests') AS requests,
        sum(value) FILTER (WHERE signal IN ('prompt_tokens', 'generation_tokens')) AS tokens,
        sum(value) FILTER (WHERE signal = 'energy') AS energy_j
    FROM counters
    WHERE signal IN ('requests', 'prompt_tokens', 'generation_tokens', 'energy')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
), spend AS (
    SELECT
        region,
        coalesce(model, '') AS model,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'cost') AS cost_usd,
        sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'gpu_cost') AS gpu_cost_usd
    FROM gauges
    WHERE signal IN ('cost', 'gpu_cost')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
)
SELECT region, model, day, requests, tokens, energy_j, cost_usd, gpu_cost_usd
FROM work FULL OUTER JOIN spend USING (region, model, day)
ORDER BY region, model, day;
""",
    "gpu_by_group": """
WITH gpu_steps AS (
    SELECT
        ts_utc,
        region,
        coalesce(model, '') AS model,
        arm,
        instance,
        max(mean) FILTER (WHERE signal = 'gpu_utilization') AS util,
        max(mean) FILTER (WHERE signal = 'gpu_power') AS power_w,
        max(step_s) AS step_s
    FROM gauges
    WHERE signal IN ('gpu_utilization', 'gpu_power')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
)
SELECT
    region,
    model,
    sum(util * step_s) AS util_weighted_s,
    sum(step_s) FILTER (WHERE util IS NOT NULL) AS gpu_seconds,
    sum(power_w * step_s) AS power_energy_j,
    sum(step_s) FILTER (WHERE power_w IS NOT NULL) AS power_seconds,
    sum(step_s) FILTER (WHERE util < $floor_pct / 100) AS idle_gpu_seconds,
    sum(power_w * step_s) FILTER (WHERE util < $floor_pct / 100) AS idle_energy_j
FROM gpu_steps
GROUP BY region, model
ORDER BY region, model;
""",
    "gpu_series": """
SELECT
    CASE WHEN $split = 'model' THEN coalesce(model, '') ELSE region END AS series,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    sum(mean * step_s) FILTER (WHERE signal = 'gpu_utilization') AS util_weighted_s,
    sum(step_s) FILTER (WHERE signal = 'gpu_utilization' AND mean IS NOT NULL) AS gpu_seconds,
    sum(mean * step_s) FILTER (WHERE signal = 'gpu_power') AS power_energy_j,
    count(DISTINCT ts_utc) FILTER (WHERE signal = 'gpu_power')
        * max(step_s) FILTER (WHERE signal = 'gpu_power') AS covered_s
FROM gauges
WHERE signal IN ('gpu_utilization', 'gpu_power')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY ALL
ORDER BY series, bucket_end;
""",
    "latency_by_group": """
SELECT signal, region, coalesce(model, '') AS model, le, sum(value) AS value
FROM histograms
WHERE signal IN ('latency', 'ttft', 'itl')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND list_contains($arms, coalesce(arm, ''))
GROUP BY ALL
ORDER BY signal, region, model, le;
""",
    "latency_series": """
SELECT
    CASE WHEN $split = 'model' THEN coalesce(model, '') ELSE region END AS series,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    le,
    sum(value) AS value
FROM histograms
WHERE signal = $signal
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND list_contains($arms, coalesce(arm, ''))
GROUP BY ALL
ORDER BY series, bucket_end, le;
""",
    "overview_counters_by_region": """
SELECT
    region,
    coalesce(sum(value) FILTER (WHERE signal = 'requests'), 0) AS requests,
    coalesce(sum(value) FILTER (WHERE signal = 'errors'), 0) AS errors,
    sum(value) FILTER (WHERE signal = 'energy') AS energy_j,
    sum(value) FILTER (WHERE signal = 'prompt_tokens') AS prompt_tokens,
    sum(value) FILTER (WHERE signal = 'generation_tokens') AS generation_tokens
FROM counters
WHERE signal IN ('requests', 'errors', 'energy', 'prompt_tokens', 'generation_tokens')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region
ORDER BY region;
""",
    "overview_gauges_by_region": """
SELECT
    region,
    sum(mean * step_s) FILTER (WHERE signal = 'gpu_utilization') AS gpu_util_weighted,
    sum(step_s) FILTER (WHERE signal = 'gpu_utilization' AND mean IS NOT NULL) AS gpu_util_seconds,
    sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'cost') AS cost_usd
FROM gauges
WHERE signal IN ('gpu_utilization', 'cost')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region
ORDER BY region;
""",
    "overview_latency_by_region": """
SELECT region, le, sum(value) AS value
FROM histograms
WHERE signal = 'latency'
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region, le
ORDER BY region, le;
""",
    "overview_series_counters": """
SELECT
    region,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    coalesce(sum(value) FILTER (WHERE signal = 'requests'), 0) AS requests,
    coalesce(sum(value) FILTER (WHERE signal = 'errors'), 0) AS errors
FROM counters
WHERE signal IN ('requests', 'errors')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY ALL
ORDER BY region, bucket_end;
""",
    "overview_series_latency": """
SELECT
    region,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    le,
    sum(value) AS value
FROM histograms
WHERE signal = 'latency'
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY ALL
ORDER BY region, bucket_end, le;
""",
}

UTC_END = datetime.fromisoformat("2026-03-04T00:00:00+00:00")
DAY1, DAY2 = datetime(2026, 3, 2), datetime(2026, 3, 3)
CRAFTED = "zz-crafted"
#: Utilisations of the crafted GPUs, cycled per step: whole-percent boundaries and
#: their neighbours, below 0, above 1, no mean.
UTILS = [0.0, 0.05, 0.0999999999, 0.1, 0.1000000001, 0.11, 0.5, 1.0, 1.2, -0.01, None]
WINDOWS = {
    "mid-hour edges, two dates": (
        DAY1 + timedelta(hours=7, minutes=17),
        DAY2 + timedelta(hours=5, minutes=43),
    ),
    "whole hours": (DAY1, DAY2 + timedelta(hours=6)),
    "inside one hour": (
        DAY2 + timedelta(hours=2, minutes=10),
        DAY2 + timedelta(hours=2, minutes=50),
    ),
    "5-minute edges": (
        DAY1 + timedelta(hours=22, minutes=35),
        DAY2 + timedelta(hours=1, minutes=5),
    ),
    "inside one 5-minute period": (
        DAY2 + timedelta(hours=3, minutes=11),
        DAY2 + timedelta(hours=3, minutes=14),
    ),
}
BUCKETS = [60, 300, 900, 3600, 7200, 86400]
KEYS = {
    "latency_by_group": ["signal", "region", "model", "le"],
    "latency_series": ["series", "bucket_end", "le"],
    "gpu_by_group": ["region", "model"],
    "gpu_series": ["series", "bucket_end"],
    "work_by_day": ["region", "model", "day"],
    "overview_counters_by_region": ["region"],
    "overview_gauges_by_region": ["region"],
    "overview_latency_by_region": ["region", "le"],
    "overview_series_counters": ["region", "bucket_end"],
    "overview_series_latency": ["region", "bucket_end", "le"],
}
#: Queries of counts only (counter and histogram increases): equal exactly.
EXACT = {
    "latency_by_group",
    "latency_series",
    "overview_counters_by_region",
    "overview_latency_by_region",
    "overview_series_counters",
    "overview_series_latency",
}


def _crafted_gauges() -> pd.DataFrame:
    """Five hours of minute rows of three GPUs in :data:`CRAFTED` on DAY2: g0 (model
    m-a, arm v1), g1 (no model, no arm), g2 (power only), with :data:`UTILS`."""
    steps = pd.date_range(DAY2 + timedelta(minutes=1), DAY2 + timedelta(hours=5), freq="1min")
    rows = []
    for i, ts in enumerate(steps):
        for inst, model, arm in (("g0", "m-a", "v1"), ("g1", None, None), ("g2", "m-a", "v2")):
            util = UTILS[(i + (inst == "g1") * 3) % len(UTILS)]
            power = 100.0 + 3.5 * (i % 17)
            signals = (
                {"gpu_power": power}
                if inst == "g2"
                else {"gpu_utilization": util, "gpu_power": power}
            )
            for sig, mean in signals.items():
                rows.append((ts, model, arm, inst, mean, sig))
            if inst == "g1":
                rows.append((ts, model, arm, "", 2.5 + i % 3, "cost"))
    frame = pd.DataFrame(rows, columns=["ts_utc", "model", "arm", "instance", "mean", "signal"])
    frame["max"] = frame["mean"]
    frame["last"] = frame["mean"]
    frame["samples"] = 4
    frame["step_s"] = 60
    frame["unit"] = "x"
    return frame


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("rollup_store")
    size = FleetSize(regions=2, models=2, arms=2, gpus_per_model=4, days=2, quality_models=0)
    build(root, size, end=UTC_END)
    s = Store(root)
    with s.writer():
        s.replace_window(
            "gauges",
            CRAFTED,
            ["gpu_utilization", "gpu_power", "cost"],
            DAY2,
            DAY2 + timedelta(hours=5),
            _crafted_gauges(),
        )
    # Stale roll-ups: a partition written after its roll-up (a killed writer: its
    # folder's stamp moved on).
    for table, sig in (
        ("counters", "requests"),
        ("histograms", "latency"),
        ("gauges", "gpu_utilization"),
    ):
        path = s.partition_dir(table, sig, DAY2.date(), "us-east-1")
        t = time.time_ns()  # rewritten now, after every file of the build
        os.utime(path, ns=(t, t))
    # One tier stale, the other fresh (a writer killed between the two roll-ups): the
    # 5-minute roll-up of one partition, the hourly roll-up of another.
    for table, sig, period in (
        ("counters", "requests", 300),
        ("histograms", "latency", 3600),
        ("gauges", "gpu_power", 300),
        ("gauges", "gpu_utilization", 3600),
    ):
        path = s.partition_dir(table, sig, DAY1.date(), "us-west-2")
        rollup = s.rollup_path(table, path, period)
        old = rollup.stat().st_mtime_ns - 1_000_000
        os.utime(rollup, ns=(old, old))
    s.refresh()
    return s


def _params(store: Store, start: datetime, end: datetime, arms: list[str]) -> dict[str, object]:
    regions = sorted(store.query("SELECT DISTINCT region FROM gauges")["region"])
    models = [
        *sorted(
            store.query("SELECT DISTINCT coalesce(model, '') AS m FROM counters UNION SELECT ''")[
                "m"
            ]
        ),
        "m-a",
    ]
    return {
        "start": start,
        "end": end,
        "regions": regions,
        "models": models,
        "arms": arms,
        "all_arms": ["v1", "v2"],
    }


def _compare(name: str, fast: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(fast.columns) == list(ref.columns), name
    assert len(fast) == len(ref) > 0, (name, len(fast), len(ref))
    keys = KEYS[name]
    fast = fast.sort_values(keys, ignore_index=True)
    ref = ref.sort_values(keys, ignore_index=True)
    for col in fast.columns:
        a, b = fast[col], ref[col]
        if col in keys or not pd.api.types.is_numeric_dtype(b):
            assert a.tolist() == b.tolist(), (name, col)
            continue
        a, b = a.astype(float).to_numpy(), b.astype(float).to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), (name, col)
        if name in EXACT:
            np.testing.assert_array_equal(a, b, err_msg=f"{name}.{col}")
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, err_msg=f"{name}.{col}")


def _check(store: Store, name: str, **params: object) -> pd.DataFrame:
    fast = store.named(name, **params)
    used = {k: v for k, v in params.items() if f"${k}" in REFERENCE[name]}
    _compare(name, fast, store.query(REFERENCE[name], used))
    return fast


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("arms", [["v1", "v2"], ["v1"]])
def test_window_queries_equal_minute_rows(store: Store, window: str, arms: list[str]) -> None:
    params = _params(store, *WINDOWS[window], arms)
    for name in (
        "latency_by_group",
        "work_by_day",
        "overview_counters_by_region",
        "overview_gauges_by_region",
        "overview_latency_by_region",
    ):
        _check(store, name, **params)
    for floor in (0, 5, 10, 11, 50, 100):
        _check(store, "gpu_by_group", floor_pct=floor, **params)


@pytest.mark.parametrize("bucket_s", BUCKETS)
def test_series_queries_equal_minute_rows(store: Store, bucket_s: int) -> None:
    for window in WINDOWS.values():
        params = {**_params(store, *window, ["v1", "v2"]), "bucket_s": bucket_s}
        for split in ("region", "model"):
            _check(store, "latency_series", signal="latency", split=split, **params)
            _check(store, "gpu_series", split=split, **params)
        _check(store, "overview_series_counters", **params)
        _check(store, "overview_series_latency", **params)


def test_idle_waste_per_floor_is_real(store: Store) -> None:
    """The crafted GPUs' idle seconds grow with the floor, by the steps at each percent."""
    params = _params(store, DAY2, DAY2 + timedelta(hours=5), ["v1", "v2"])
    idle = {}
    for floor in (0, 5, 10, 11, 100):
        df = _check(store, "gpu_by_group", floor_pct=floor, **params)
        idle[floor] = df.loc[df["region"] == CRAFTED, "idle_gpu_seconds"].fillna(0).sum()
    # per cycle of 11 steps and GPU with a utilisation: below 0: 1 step; below 5 %:
    # +1 (0.0); below 10 %: +2 (0.05, 0.0999999999); below 11 %: +2 (0.1, 0.1000000001)
    assert idle[0] > 0
    assert idle[0] < idle[5] < idle[10] < idle[11] < idle[100]
    cycles = 300 / len(UTILS)
    assert idle[10] - idle[5] == pytest.approx(2 * 2 * cycles * 60, rel=0.05)


def test_plans_read_rollups_and_minute_rows(store: Store) -> None:
    """The fast path really reads roll-ups, and the stale partition from minute rows."""
    start, end = WINDOWS["mid-hour edges, two dates"]
    split = [DAY1 + timedelta(hours=8), DAY2 + timedelta(hours=6)]
    for table, sig in (
        ("counters", "requests"),
        ("histograms", "latency"),
        ("gauges", "gpu_utilization"),
    ):
        plan = store.hourly_plan(table, [sig], start, end, split)
        stale = store.partition_files(table, sig, DAY2.date(), "us-east-1")
        assert plan.hourly and plan.minutes_split
        assert stale and set(stale) <= set(plan.minutes_all)
        # The build writes whole days, stored as one part.parquet per partition-day
        # (issue #9): the split hours read those (hour files: test_store_hour_files).
        assert {p.name for p in plan.minutes_split} == {"part.parquet"}
    steps = store.gpu_steps_plan(start, end, split)
    assert steps.hourly and steps.minutes_split
    for sig in ("gpu_utilization", "gpu_power"):
        files = store.partition_files("gauges", sig, DAY2.date(), "us-east-1")
        assert files and set(files) <= set(steps.minutes_all)


def test_window_rows_take_the_coarsest_tier_per_piece(store: Store) -> None:
    """Whole hours from the hourly tier; an edge hour cut off the 5-minute grid from
    minute rows whole (its hour file is opened anyway), one on the grid from the
    5-minute tier; 5-minute buckets never read hours; a stale tier is skipped for its
    partition only."""
    start, end = DAY1 + timedelta(hours=7, minutes=17), DAY2 + timedelta(hours=5, minutes=43)
    sql = store.window_rows("histograms", ["latency"], start, end)
    assert "lake/histograms_hourly/" in sql
    assert (
        "hour_utc > TIMESTAMP '2026-03-02 08:00:00' AND hour_utc <= TIMESTAMP '2026-03-03 05:00:00'"
        in sql
    )
    assert (
        "ts_utc > TIMESTAMP '2026-03-02 07:17:00' AND ts_utc <= TIMESTAMP '2026-03-02 08:00:00'"
        in sql
    )
    assert (
        "ts_utc > TIMESTAMP '2026-03-03 05:00:00' AND ts_utc <= TIMESTAMP '2026-03-03 05:43:00'"
        in sql
    )
    three = timedelta(minutes=3)
    on_grid = store.window_rows("histograms", ["latency"], start + three, end - three)
    assert (
        "hour_utc > TIMESTAMP '2026-03-02 07:20:00' AND hour_utc <= TIMESTAMP '2026-03-02 08:00:00'"
        in on_grid
    )
    assert (
        "hour_utc > TIMESTAMP '2026-03-03 05:00:00' AND hour_utc <= TIMESTAMP '2026-03-03 05:40:00'"
        in on_grid
    )
    # no minute rows for the edge hours (only the stale partitions' whole windows)
    assert "ts_utc <= TIMESTAMP '2026-03-02 08:00:00'" not in on_grid
    assert "ts_utc > TIMESTAMP '2026-03-03 05:00:00'" not in on_grid
    five = store.window_rows("histograms", ["latency"], start, end, bucket_s=300)
    assert "_hourly/" not in five
    assert "lake/histograms_5m/" in five
    # us-west-2's DAY1 hourly latency roll-up is stale: its whole hours come from 5-min rows
    stale_hourly = "histograms_hourly/signal=latency/date=2026-03-02/region=us-west-2"
    assert stale_hourly not in sql
    assert "histograms_5m/signal=latency/date=2026-03-02/region=us-west-2" in sql
    assert store.window_rows("counters", ["requests"], start, end, bucket_s=90).count("_5m/") == 0
    with pytest.raises(StoreError, match="bucket_s must be a positive integer"):
        store.window_rows("counters", ["requests"], start, end, bucket_s=0)


def test_housekeeping_rebuilds_stale_gauge_and_gpu_step_rollups(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with s.writer():
        s.replace_window(
            "gauges",
            CRAFTED,
            ["gpu_utilization", "gpu_power", "cost"],
            DAY2,
            DAY2 + timedelta(hours=5),
            _crafted_gauges(),
        )
    util = s.partition_dir("gauges", "gpu_utilization", DAY2.date(), CRAFTED)
    rollup = s.rollup_path("gauges", util)
    steps = s.gpu_steps_path(DAY2.date(), CRAFTED)
    assert rollup.stat().st_mtime_ns == s.partition_stamp(
        "gauges", "gpu_utilization", DAY2.date(), CRAFTED
    )
    assert pq.read_table(steps).num_rows > 0
    t = time.time_ns()
    os.utime(util, ns=(t, t))
    assert s.gpu_steps_plan(DAY2, DAY2 + timedelta(hours=5)).hourly == []
    done = s.housekeeping()
    assert done.rollups_rebuilt == 2  # the gauge partition (both tiers), the GPU-step one
    assert s.gpu_steps_plan(DAY2, DAY2 + timedelta(hours=5)).hourly == [steps]


def test_placeholder_errors_name_the_query(store: Store) -> None:
    with pytest.raises(StoreError, match=r"latency_by_group.*\$start"):
        store.named("latency_by_group", regions=[], models=[], arms=[])
    with pytest.raises(StoreError, match="window rows of 'nope'"):
        store.window_rows("nope", None, DAY1, DAY2)

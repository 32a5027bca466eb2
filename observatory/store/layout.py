"""Where the store keeps what: table and roll-up schemas, tier periods, file and
folder names of the lake (the layout in :mod:`observatory.store`'s docstring).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

_COMMON = [
    ("ts_utc", pa.timestamp("us")),
    ("model", pa.string()),
    ("arm", pa.string()),
]
SCHEMAS: dict[str, pa.Schema] = {
    "counters": pa.schema(
        [*_COMMON, ("instance", pa.string()), ("value", pa.float64()), ("unit", pa.string())]
    ),
    "gauges": pa.schema(
        [
            *_COMMON,
            ("instance", pa.string()),
            ("mean", pa.float64()),
            ("max", pa.float64()),
            ("last", pa.float64()),
            ("samples", pa.int32()),
            ("step_s", pa.int32()),
            ("unit", pa.string()),
        ]
    ),
    "histograms": pa.schema(
        [*_COMMON, ("le", pa.float64()), ("value", pa.float64()), ("unit", pa.string())]
    ),
}
#: Tables that keep an exact hourly roll-up beside them, and its table name.
ROLLUP_OF: dict[str, str] = {
    "counters": "counters_hourly",
    "histograms": "histograms_hourly",
    "gauges": "gauges_hourly",
}
#: The 5-minute tier: the same roll-ups per 5-minute period (``lake/<table>_5m/``; the
#: period's end is in ``hour_utc`` too, so one SQL text reads either tier).  It serves
#: series in buckets of a multiple of 5 minutes (the 24 h presets) and the edges of a
#: window's whole hours (:meth:`Store.window_rows`).
ROLLUP_5M_OF: dict[str, str] = {t: t + "_5m" for t in ROLLUP_OF}
#: The daily tier (``lake/<table>_daily/``): the same sums per UTC day, period end in
#: ``hour_utc`` like the other tiers: the day ``(D 00:00, D+1 00:00]``.  A partition of
#: date D holds the steps of ``[D 00:00, D+1 00:00)``, so its daily roll-up has two
#: rows per group: ``hour_utc = D 00:00`` (the step at midnight, the last one of the
#: day before, as the hourly tier gives it to the hour ``(D-1 23:00, D 00:00]``) and
#: ``D+1 00:00`` (every other step).  It serves long windows' whole days (the SLO
#: batched pass, :meth:`Store.window_rows` with ``tiers`` naming it).
DAY_S = 86400
ROLLUP_DAILY_OF: dict[str, str] = {t: t + "_daily" for t in ROLLUP_OF}
#: Roll-up tiers, coarsest first: period (seconds) -> {data table: roll-up table}.
ROLLUP_TIERS: dict[int, dict[str, str]] = {
    DAY_S: ROLLUP_DAILY_OF,
    3600: ROLLUP_OF,
    300: ROLLUP_5M_OF,
}
#: Tiers :meth:`Store.window_rows` uses when the caller names none.  Not the daily
#: tier: a gauge row's ``minutes`` holds minutes of an hour, so a daily row's mask (the
#: OR over 24 hours) no longer counts a day's distinct steps, and page queries count
#: them per hour bucket (``gpu_series``).  Callers summing counters or histograms over
#: long windows name the daily tier (``tiers``).
WINDOW_TIERS: tuple[int, ...] = (3600, 300)
_ROLLUP_COMMON = [
    ("hour_utc", pa.timestamp("us")),
    ("model", pa.string()),
    ("arm", pa.string()),
]
#: Roll-up rows: sums of ``value`` and the number of rows summed, per hour (the END of
#: ``(hour_utc - 1h, hour_utc]``), model, arm (and ``le``), over instances.
ROLLUP_SCHEMAS: dict[str, pa.Schema] = {
    "counters_hourly": pa.schema([*_ROLLUP_COMMON, ("value", pa.float64()), ("rows", pa.int64())]),
    "histograms_hourly": pa.schema(
        [*_ROLLUP_COMMON, ("le", pa.float64()), ("value", pa.float64()), ("rows", pa.int64())]
    ),
    # Per hour, model, arm and instance: weighted = sum(mean * step_s) and seconds =
    # sum(step_s) over rows with a mean; step_max = max(step_s); max = max(max);
    # samples = sum(samples); rows = rows summed; minutes = bit m set when a row's
    # ts_utc lies in minute m of the hour, (hour_utc - 1h + m min, ... + (m + 1) min].
    "gauges_hourly": pa.schema(
        [
            *_ROLLUP_COMMON,
            ("instance", pa.string()),
            ("weighted", pa.float64()),
            ("seconds", pa.int64()),
            ("step_max", pa.int32()),
            ("max", pa.float64()),
            ("samples", pa.int64()),
            ("rows", pa.int64()),
            ("minutes", pa.uint64()),
        ]
    ),
}
ROLLUP_SCHEMAS.update({ROLLUP_5M_OF[t]: ROLLUP_SCHEMAS[h] for t, h in ROLLUP_OF.items()})
ROLLUP_SCHEMAS.update({ROLLUP_DAILY_OF[t]: ROLLUP_SCHEMAS[h] for t, h in ROLLUP_OF.items()})
#: The GPU-step roll-up (``lake/gpu_steps_hourly/signal=gpu_steps/date=/region=``): one
#: file per date and region, built from that date's and region's ``gpu_utilization``
#: and ``gpu_power`` partitions together (:data:`GPU_STEP_SIGNALS`).  A GPU-step is one
#: (ts_utc, model, arm, instance) with its utilisation ``util`` and power ``power_w``
#: (each the max of its rows' means; ``step_s`` the max of their steps).  Per hour,
#: model, arm and ``pct`` (:data:`PCT_SQL`: the whole percents p in 1..100 with
#: p / 100 <= util; -1 below 0; NULL without a utilisation): util_weighted =
#: sum(util * step_s), seconds = sum(step_s), power_energy_j = sum(power_w * step_s),
#: power_seconds = sum(step_s) of steps with a power, rows = GPU-steps.
GPU_STEPS = "gpu_steps_hourly"
GPU_STEP_SIGNALS = ("gpu_utilization", "gpu_power")
GPU_STEPS_SCHEMA = pa.schema(
    [
        *_ROLLUP_COMMON,
        ("pct", pa.int16()),
        ("util_weighted", pa.float64()),
        ("seconds", pa.int64()),
        ("power_energy_j", pa.float64()),
        ("power_seconds", pa.int64()),
        ("rows", pa.int64()),
    ]
)
#: ``pct`` of a utilisation ``util`` (0-1): the number of whole percents p in 1..100
#: with p / 100 <= util (IEEE doubles, as the floor ``P / 100`` a caller passes), -1
#: for util < 0, NULL without one.  Hence ``util < P / 100`` exactly when ``pct < P``
#: for every whole percent P in 0..100: idle waste below any whole-percent floor is a
#: sum over ``pct``.  ``p0`` (floor(util * 100), clamped) is off by at most one.
PCT_SQL = """CASE WHEN util IS NULL THEN NULL WHEN util < 0 THEN -1
     WHEN p0 >= 1 AND p0::DOUBLE / 100.0::DOUBLE > util THEN p0 - 1
     WHEN p0 < 100 AND (p0 + 1)::DOUBLE / 100.0::DOUBLE <= util THEN p0 + 1
     ELSE p0 END"""
#: The GPU-steps of gauge rows ``{src}`` that pass ``{where}`` (minute rows), with pct.
GPU_STEPS_SQL = (
    "SELECT *, ("
    + PCT_SQL
    + """)::SMALLINT AS pct FROM (
    SELECT *, least(100, greatest(0, floor(util * 100)))::INTEGER AS p0 FROM (
        SELECT ts_utc, {region} coalesce(model, '') AS model, arm, instance,
               max(mean) FILTER (WHERE signal = 'gpu_utilization') AS util,
               max(mean) FILTER (WHERE signal = 'gpu_power') AS power_w,
               max(step_s) AS step_s
        FROM {src} WHERE signal IN ('gpu_utilization', 'gpu_power') AND ({where})
        GROUP BY ALL))"""
)
#: The file name of a roll-up's day partition (one file per date, region and signal).
ROLLUP_FILE = "part.parquet"
#: :meth:`Store.housekeeping` builds missing 5-minute roll-ups on this many newest
#: dates only (the 24 h and 7 d presets); writers write both tiers of every partition.
FINE_TIER_DAYS = 8
#: Seconds of roll-up rebuilds :meth:`Store.writer`'s housekeeping does per take of
#: the lock (the rest at the next takes), like the collector's compaction budget.
HOUSEKEEPING_BUDGET_S = 10.0
#: Temporary files of an atomic replace start with this (``.tmp-*.parquet.tmp``).
TMP_PREFIX = ".tmp-"
#: A temporary file older than this is left over by a killed writer (the writer lock
#: is held while it is cleaned; see :meth:`Store.writer`).
STALE_TMP_AGE = timedelta(minutes=10)
#: Where a partition folder is built when its closed day is compacted, and where the
#: old folder lies after the swap until it is deleted: ``date=D/.tmp-compact/region=R``
#: (one level deeper than a partition, so the views' ``*/*/*/*.parquet`` glob and
#: :meth:`Store.partitions` never see it; :meth:`Store.housekeeping` removes leftovers).
COMPACT_DIR = ".tmp-compact"
#: How long after a date ends its hour files are compacted by default: the collector
#: rewrites at most its ``settle`` plus a ``refetch`` window behind the newest step;
#: a day later nothing rewrites the date unless a region was down (then the write is
#: still exact, it only costs a day file's rewrite, docs/architecture.md).
COMPACT_GRACE = timedelta(days=1)
#: The compaction note beside the lake: the newest date all of whose partitions were
#: compacted (so a call lists only dates after it, plus partitions it wrote since).
COMPACTION_NOTE = "compaction.json"
REGION_SCHEMA = pa.schema(
    [
        ("region", pa.string()),
        ("display_name", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("url", pa.string()),
    ]
)


#: A query that fails because a Parquet file it reads was replaced while it ran, or
#: whose files changed while it ran, is run this many times in all (see
#: :func:`_torn_read`, :meth:`Store.query_planned`), waiting 0.05 s doubling to
#: 0.8 s between (tenacity's ``wait_exponential``): 1.55 s of waits in all, so a
#: query over the files a collector step is rewriting (a few seconds for 20 regions)
#: can outlast the step's writes.

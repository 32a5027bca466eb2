"""Roll-up rows computed from data rows: exact hourly, 5-minute and daily sums and the
GPU-step roll-up (docs/architecture.md, "Hourly roll-up").
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from observatory.store.files import StoreError
from observatory.store.layout import GPU_STEPS_SCHEMA, GPU_STEPS_SQL, ROLLUP_SCHEMAS, ROLLUP_TIERS


def hourly_rollup(table: str, rows: pa.Table, period_s: int = 3600) -> pa.Table:
    """The hourly (or ``period_s``) roll-up of one partition's rows (schema
    :data:`ROLLUP_SCHEMAS`).

    Rows are summed per hour ``hour_utc`` (the END of the right-closed hour
    ``(hour_utc - 1h, hour_utc]`` holding the step end ``ts_utc``), ``model``, ``arm``
    (and ``le`` for histograms), over instances; ``rows`` counts the summed rows.
    Sums of per-step increases add up: a window of whole hours sums to what its
    steps sum to (exactly for integer counts below 2**53).

    Gauges (``gauges_hourly``) keep per hour, model, arm and instance the sums that
    time-weighted means need (``weighted`` = sum(mean * step_s), ``seconds`` =
    sum(step_s) over rows with a mean), ``max``, ``samples``, ``rows``, the longest
    step and a bit mask of the minutes holding a step (distinct steps of a group of
    series: the popcount of the OR of their masks, for steps of 60 s or more on the
    minute grid).  Float sums are exact up to the order of additions (a relative
    1e-15), as two DuckDB scans of the same rows are.

    With ``period_s`` = 300 the same sums per 5-minute period (:data:`ROLLUP_5M_OF`;
    ``hour_utc`` is then the period's end, and a gauge row's ``minutes`` still has
    the bits of its minutes of the hour); with 86400 per UTC day ``(D, D + 1d]``
    (:data:`ROLLUP_DAILY_OF`; ``minutes`` the OR of the day's hours).

    Args:
        table: ``counters``, ``histograms`` or ``gauges``.
        rows: the partition's rows (the table's schema).
        period_s: a key of :data:`ROLLUP_TIERS` (86400, 3600 or 300).

    Raises:
        StoreError: ``period_s`` is not a roll-up tier.
    """
    return _period_sums(table, rows, period_s, from_rollup=False)


_HOUR_OF = "date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour"


def _period_end(period_s: int, column: str = "ts_utc") -> str:
    """SQL: the end of the epoch-aligned right-closed ``period_s`` period holding ``column``."""
    us = period_s * 1_000_000
    return f"make_timestamp((epoch_us({column}) + {us - 1}) // {us} * {us})"


def coarser_rollup(table: str, finer: pa.Table, period_s: int) -> pa.Table:
    """The ``period_s`` roll-up of ``table`` from its roll-up ``finer`` of a shorter
    period that divides ``period_s`` (e.g. hours from 5-minute periods): sums of sums
    and counts, max of maxima, OR of minute masks.  Equal to :func:`hourly_rollup` of
    the minute rows (integer counts exactly; float sums up to the order of additions,
    a relative 1e-15), and cheaper: the finer roll-up has fewer rows.

    Raises:
        StoreError: ``period_s`` is not a roll-up tier.
    """
    return _period_sums(table, finer, period_s, from_rollup=True)


def _period_sums(table: str, src: pa.Table, period_s: int, from_rollup: bool) -> pa.Table:
    """:func:`hourly_rollup` (``src``: minute rows) or :func:`coarser_rollup` (``src``:
    a finer roll-up, whose ``rows`` are summed instead of counted)."""
    if period_s not in ROLLUP_TIERS:
        raise StoreError(f"no {period_s}-second roll-up tier; expected one of {list(ROLLUP_TIERS)}")
    schema = ROLLUP_SCHEMAS[ROLLUP_TIERS[period_s][table]]
    if src.num_rows == 0:
        return schema.empty_table()
    time_col = "hour_utc" if from_rollup else "ts_utc"
    if table == "gauges":
        sql = _GAUGES_COARSER_SQL if from_rollup else _GAUGES_ROLLUP_SQL
        return _duckdb_rollup(
            sql.format(period_end=_period_end(period_s, time_col)), {"rows_": src}, schema
        )
    hour = pc.ceil_temporal(src[time_col], multiple=period_s, unit="second")
    keys = [k for k in schema.names if k not in ("hour_utc", "value", "rows")]
    columns = {"hour_utc": hour, **{k: src[k] for k in keys}, "value": src["value"]}
    if from_rollup:
        columns["rows"] = src["rows"]
        count: tuple[Any, ...] = ("rows", "sum")
    else:
        count = ("value", "count", pc.CountOptions(mode="all"))
    grouped = (
        pa.table(columns)
        .group_by(["hour_utc", *keys], use_threads=False)
        .aggregate([("value", "sum"), count])
    )
    out = pa.table(
        {
            "hour_utc": grouped["hour_utc"],
            **{k: grouped[k] for k in keys},
            "value": grouped["value_sum"],
            "rows": grouped["rows_sum" if from_rollup else "value_count"],
        }
    ).cast(schema)
    return out.sort_by([(k, "ascending") for k in ("hour_utc", *keys)])


#: ``minutes`` bit of a step: its minute of the (right-closed) hour, 0-59.
_MINUTE_BIT = "(1::UBIGINT << (((epoch_us(ts_utc) - 1) % 3600000000) // 60000000)::INTEGER)"
_GAUGES_ROLLUP_SQL = f"""
SELECT {{period_end}} AS hour_utc, model, arm, instance,
       sum(mean * step_s) AS weighted,
       sum(step_s) FILTER (WHERE mean IS NOT NULL) AS seconds,
       max(step_s) AS step_max, max(max) AS max, sum(samples) AS samples,
       count(*) AS "rows", bit_or({_MINUTE_BIT}) AS minutes
FROM rows_ GROUP BY ALL ORDER BY ALL"""
_GAUGES_COARSER_SQL = """
SELECT {period_end} AS hour_utc, model, arm, instance,
       sum(weighted) AS weighted, sum(seconds) AS seconds, max(step_max) AS step_max,
       max(max) AS max, sum(samples) AS samples, sum("rows") AS "rows",
       bit_or(minutes) AS minutes
FROM rows_ GROUP BY ALL ORDER BY ALL"""
_GPU_STEPS_ROLLUP_SQL = f"""
SELECT {_HOUR_OF} AS hour_utc, model, arm, pct,
       sum(util * step_s) AS util_weighted, sum(step_s) AS seconds,
       sum(power_w * step_s) AS power_energy_j,
       sum(step_s) FILTER (WHERE power_w IS NOT NULL) AS power_seconds,
       count(*) AS "rows"
FROM ({{steps}}) GROUP BY ALL ORDER BY ALL"""


def _duckdb_rollup(sql: str, tables: dict[str, pa.Table], schema: pa.Schema) -> pa.Table:
    """Run a roll-up ``sql`` over Arrow ``tables`` (registered by name) on a private
    one-thread DuckDB (sums add in row order) and cast the result to ``schema``.

    The connection is kept per thread (opening one costs 10-50 ms, more than a
    partition's roll-up); the tables are unregistered after each call.
    """
    con: duckdb.DuckDBPyConnection | None = getattr(_ROLLUP_DUCKDB, "con", None)
    if con is None:
        con = duckdb.connect(":memory:", config={"threads": 1})
        con.execute("SET TimeZone='UTC'")
        _ROLLUP_DUCKDB.con = con
    try:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table().select(schema.names).cast(schema)
    finally:
        for name in tables:
            con.unregister(name)


#: One private DuckDB connection per writing thread (:func:`_duckdb_rollup`).
_ROLLUP_DUCKDB = threading.local()


def gpu_steps_rollup(
    files: list[Path], lo: datetime | None = None, hi: datetime | None = None
) -> pa.Table:
    """The GPU-step roll-up (:data:`GPU_STEPS_SCHEMA`) of one date's and region's
    ``gpu_utilization`` and ``gpu_power`` data ``files`` (those that exist), or of
    their steps in ``(lo, hi]`` only (naive UTC; whole hours for a roll-up update).

    Utilisation and power rows of one (ts_utc, model, arm, instance) form a GPU-step,
    as ``sql/queries/gpu_by_group.sql`` pairs them; steps are summed per hour, model,
    arm and whole-percent utilisation ``pct`` (:data:`PCT_SQL`).
    """
    if not files:
        return GPU_STEPS_SCHEMA.empty_table()
    listed = ", ".join("'" + f.as_posix().replace("'", "''") + "'" for f in files)
    src = f"read_parquet([{listed}], hive_partitioning=true, hive_types={{'signal': VARCHAR}})"
    where = "TRUE"
    if lo is not None and hi is not None:
        where = (
            f"ts_utc > TIMESTAMP '{lo.isoformat(sep=' ')}' "
            f"AND ts_utc <= TIMESTAMP '{hi.isoformat(sep=' ')}'"
        )
    steps = GPU_STEPS_SQL.format(src=src, where=where, region="")
    return _duckdb_rollup(_GPU_STEPS_ROLLUP_SQL.format(steps=steps), {}, GPU_STEPS_SCHEMA)

"""The store: a Hive-partitioned Parquet lake, read through DuckDB views.

This is the only module that imports DuckDB.  Layout under the store folder::

    lake/<table>/signal=<signal>/date=<YYYY-MM-DD>/region=<region>/part.parquet
    lake/<table>_hourly/signal=.../part.parquet   hourly roll-up of counters,
                                        histograms and gauges, one per data partition
    lake/<table>_5m/signal=.../part.parquet       the same per 5-minute period
    lake/gpu_steps_hourly/signal=gpu_steps/date=/region=/part.parquet
                                        GPU-steps (utilisation + power) per hour and
                                        whole utilisation percent, one per date/region
    lake/regions/regions.parquet        one row per configured region
    runs.jsonl                          the collector's run log (one JSON object a line)
    state.json                          per region: collected up to (UTC)
    .writer.lock                        serialises writers across processes

Why files and not one DuckDB database: DuckDB lets one process at a time open a
database file read-write and a reader blocks the writer, so a collector writing on
its own schedule would lock out the dashboard and ad hoc SQL.  Parquet files that are
replaced atomically (write to a temporary name in the same folder, ``os.replace``)
give readers that never take a lock and never see a half-written file, idempotent
re-writes of a window, and a layout Spark, Trino or Polars read as it is.  See
``docs/architecture.md``.

Tables (``ts_utc`` is the END of a right-closed step ``(ts_utc - step, ts_utc]``, UTC):

- ``counters``: exact per-step increases (``value``) of counter signals.
- ``gauges``: per-step ``mean``, ``max``, ``last`` of gauge samples, ``samples`` seen
  and ``step_s`` (the step length in seconds).
- ``histograms``: per-step increases of each cumulative bucket ``le``.
- ``counters_hourly``, ``histograms_hourly``, ``gauges_hourly``: exact hourly sums of
  the three above (:func:`hourly_rollup`), rewritten with their data partition and
  stamped with its modification time; a stale one is never read
  (:meth:`Store.hourly_plan`) and is rebuilt by the next writer
  (:meth:`Store.housekeeping`).  ``counters_5m``, ``histograms_5m``, ``gauges_5m``:
  the same per 5-minute period (:data:`ROLLUP_TIERS`), for 5-minute series and the
  edges of a window's whole hours.
- ``gpu_steps_hourly``: GPU-steps of a date and region per hour and whole percent of
  utilisation (:func:`gpu_steps_rollup`), stamped with the newer of its two
  partitions' modification times (:meth:`Store.gpu_steps_plan`).
- Named queries read "the rows of a window" through these with a
  ``{{rows:<table>:<signals>}}`` placeholder (:meth:`Store.window_rows`).  See
  ``docs/architecture.md``, "Hourly roll-up".

Readers: :meth:`Store.query` / :meth:`Store.named` for trusted SQL (the dashboard's
named queries); :meth:`Store.sandbox` (:class:`SafeSQL`) for untrusted ad hoc SQL, on
a separate locked-down DuckDB instance (docs/sql.md).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

if TYPE_CHECKING:  # pandas is imported where it is used: a collector run never needs
    import pandas as pd  # it, and importing it costs about 0.4 CPU-seconds at start-up

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

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
#: Roll-up tiers, coarsest first: period (seconds) -> {data table: roll-up table}.
ROLLUP_TIERS: dict[int, dict[str, str]] = {3600: ROLLUP_OF, 300: ROLLUP_5M_OF}
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
#: :meth:`Store.housekeeping` builds missing 5-minute roll-ups on this many newest
#: dates only (the 24 h and 7 d presets); writers write both tiers of every partition.
FINE_TIER_DAYS = 8
#: Temporary files of an atomic replace start with this (``.tmp-*.parquet.tmp``).
TMP_PREFIX = ".tmp-"
#: A temporary file older than this is left over by a killed writer (the writer lock
#: is held while it is cleaned; see :meth:`Store.writer`).
STALE_TMP_AGE = timedelta(minutes=10)
REGION_SCHEMA = pa.schema(
    [
        ("region", pa.string()),
        ("display_name", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("url", pa.string()),
    ]
)


#: A query that fails because a Parquet file it reads was replaced while it ran is run
#: this many times in all (see :func:`_torn_read`).
TORN_READ_ATTEMPTS = 3
#: What DuckDB reports when a file's footer and pages came from two versions of it: a
#: writer's ``os.replace`` landed between DuckDB's opens of the same path (seen under
#: the 10-session load test, docs/scaling.md).  Readers take no lock, so the query is
#: run again and then reads the new file whole.
_TORN_READ_MESSAGES = re.compile(
    r"TProtocolException|No magic bytes found|Invalid Input Error: .*parquet", re.IGNORECASE
)


def _torn_read(exc: BaseException) -> bool:
    """True for a DuckDB error that a concurrent atomic replace of a read file explains."""
    return isinstance(exc, duckdb.Error) and bool(_TORN_READ_MESSAGES.search(str(exc)))


class StoreError(RuntimeError):
    """A store operation failed; the message names the file or query."""


class StoreMissing(StoreError):
    """The store folder does not exist or holds no data yet."""


def _to_utc_naive(t: datetime) -> datetime:
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


def _dates_in(start: datetime, end: datetime) -> list[date]:
    """Dates of the steps in the right-closed window ``(start, end]``."""
    first = (start + timedelta(microseconds=1)).date()
    days = (end.date() - first).days
    return [first + timedelta(days=i) for i in range(days + 1)]


@contextlib.contextmanager
def _replacing(path: Path, suffix: str, mtime_ns: int | None = None) -> Iterator[str]:
    """Yield a temporary name beside ``path``; on success it replaces ``path`` atomically.

    The file is made world-readable (0644, like a normal file) before the rename:
    ``mkstemp`` creates it 0600.  With ``mtime_ns`` the file's modification time is
    set before the rename, so it appears with that time (the roll-up's freshness
    stamp).  On any error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    with _replacing(path, path.suffix + ".tmp") as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write_table(path: Path, table: pa.Table, mtime_ns: int | None = None) -> None:
    # The temporary name must not end in .parquet: readers glob ``*.parquet`` (DuckDB's
    # glob matches dot-files) and would read a half-written or a second copy of the data.
    with _replacing(path, ".parquet.tmp", mtime_ns) as tmp:
        # store_schema=False: no Arrow schema in the metadata, so a string column
        # written dictionary-encoded (:func:`_column`) reads back as ``string`` like
        # one written plain; the Parquet types alone give this store's Arrow types.
        pq.write_table(table, tmp, compression="zstd", row_group_size=256_000, store_schema=False)


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
    the bits of its minutes of the hour).

    Args:
        table: ``counters``, ``histograms`` or ``gauges``.
        rows: the partition's rows (the table's schema).
        period_s: a key of :data:`ROLLUP_TIERS` (3600 or 300).

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
    return out.sort_by([("hour_utc", "ascending")])


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


def gpu_steps_rollup(files: list[Path]) -> pa.Table:
    """The GPU-step roll-up (:data:`GPU_STEPS_SCHEMA`) of one date's and region's
    ``gpu_utilization`` and ``gpu_power`` partition ``files`` (those that exist).

    Utilisation and power rows of one (ts_utc, model, arm, instance) form a GPU-step,
    as ``sql/queries/gpu_by_group.sql`` pairs them; steps are summed per hour, model,
    arm and whole-percent utilisation ``pct`` (:data:`PCT_SQL`).
    """
    if not files:
        return GPU_STEPS_SCHEMA.empty_table()
    listed = ", ".join("'" + f.as_posix().replace("'", "''") + "'" for f in files)
    src = f"read_parquet([{listed}], hive_partitioning=true, hive_types={{'signal': VARCHAR}})"
    steps = GPU_STEPS_SQL.format(src=src, where="TRUE", region="")
    return _duckdb_rollup(_GPU_STEPS_ROLLUP_SQL.format(steps=steps), {}, GPU_STEPS_SCHEMA)


def _is_sorted(ts: pa.ChunkedArray) -> bool:
    """True when ``ts`` is already in ascending order (then no sort is needed)."""
    if len(ts) < 2:
        return True
    arr = ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
    return bool(pc.all(pc.greater_equal(arr.slice(1), arr.slice(0, len(arr) - 1))).as_py())


def _outside(path: Path, start: datetime, end: datetime) -> bool:
    """True when the file's ``ts_utc`` statistics show no row in ``(start, end]``."""
    try:
        meta = pq.read_metadata(path)
        col = meta.schema.to_arrow_schema().get_field_index("ts_utc")
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            if stats is None or not stats.has_min_max:
                return False
            lo, hi = stats.min, stats.max
            if not (hi <= start or lo > end):
                return False
        return True
    except (OSError, pa.ArrowException, ValueError, TypeError):
        return False


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[Any]]:
    """``column`` as integer codes and the distinct values they index (codes of equal
    values are equal).  A dictionary column with one chunk (what the collector's
    ``blocks_table`` builds) gives its indices without touching a string."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(column.type) or column.null_count:
        column = pc.dictionary_encode(column.cast(pa.string()), null_encoding="encode")
    values = column.dictionary.to_pylist()
    first: dict[Any, int] = {}
    remap = np.fromiter((first.setdefault(v, i) for i, v in enumerate(values)), np.int64)
    return remap[column.indices.to_numpy(zero_copy_only=False)], values


def _column(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    """``column`` as ``kind``, except that dictionary-encoded strings stay encoded for
    a string column: the Parquet writer stores them as they are (the file holds the
    same strings, read back as ``string``) instead of hashing every string again."""
    t = column.type
    if pa.types.is_string(kind) and pa.types.is_dictionary(t) and pa.types.is_string(t.value_type):
        return column
    return column.cast(kind)


def _split_by_signal_and_date(new: pa.Table, schema: pa.Schema) -> dict[tuple[str, date], pa.Table]:
    """The rows of ``new`` (a ``signal`` column plus ``schema``'s columns) per (signal,
    date of ``ts_utc``), with ``schema``'s columns (strings possibly dictionary-encoded,
    :func:`_column`); each part keeps the rows' order.

    One stable sort by (signal, date) and zero-copy slices: every row is moved once,
    not once per signal and date as with a filter per partition.
    """
    codes, values = _codes(new["signal"])
    ts = new["ts_utc"].cast(pa.timestamp("us"))
    day = ts.cast(pa.int64()).to_numpy() // 86_400_000_000
    lo, width = int(day.min()), int(day.max() - day.min()) + 1
    key = codes * width + (day - lo)
    body = pa.table(
        [_column(new[c], f.type) for c, f in zip(schema.names, schema, strict=True)],
        names=schema.names,
    )
    if len(key) > 1 and bool((key[1:] < key[:-1]).any()):
        order = np.argsort(key, kind="stable")
        key, body = key[order], body.take(pa.array(order))
    cuts = [0, *(np.flatnonzero(key[1:] != key[:-1]) + 1).tolist(), len(key)]
    epoch = date(1970, 1, 1)
    out: dict[tuple[str, date], pa.Table] = {}
    for a, b in itertools.pairwise(cuts):
        k = int(key[a])
        sig = values[k // width]
        out[(sig, epoch + timedelta(days=lo + k % width))] = body.slice(a, b - a)
    return out


def _split_dates(split_hours: Iterable[datetime]) -> set[date]:
    """Dates holding steps of the hours ending at ``split_hours``."""
    return {d for h in split_hours for d in _dates_in(_to_utc_naive(h) - timedelta(hours=1), h)}


_EPOCH = datetime(1970, 1, 1)


def _align(t: datetime, period_s: int, up: bool) -> datetime:
    """``t`` (naive UTC) rounded down (or ``up``) to an epoch-aligned ``period_s`` boundary."""
    us = (t - _EPOCH) // timedelta(microseconds=1)
    step = period_s * 1_000_000
    q = -(-us // step) if up else us // step
    return _EPOCH + timedelta(microseconds=q * step)


def _tier_pieces(
    start: datetime, end: datetime, periods: tuple[int, ...]
) -> list[tuple[int, datetime, datetime]]:
    """``(start, end]`` cut into ``(period, lo, hi)`` pieces: the whole periods of the
    coarsest tier of ``periods`` (descending), then recursively the edges left over
    with the finer tiers; period 0 marks the minute rows of what no tier covers."""
    if start >= end:
        return []
    if not periods:
        return [(0, start, end)]
    a, b = _align(start, periods[0], True), _align(end, periods[0], False)
    if a >= b:
        return _tier_pieces(start, end, periods[1:])
    rest = periods[1:]
    return [*_tier_pieces(start, a, rest), (periods[0], a, b), *_tier_pieces(b, end, rest)]


@dataclass(frozen=True)
class _Partition:
    """One partition of :meth:`Store.window_rows`: its date, data files (one; two for
    GPU-steps) and fresh roll-up file per tier period."""

    day: date
    data: list[Path]
    tiers: dict[int, Path]


#: GPU-steps of minute rows as :meth:`Store.window_rows` columns (``FROM (`` steps ``)``).
_GPU_STEPS_MINUTE_SQL = (
    "SELECT ts_utc, region, model, arm, pct, util * step_s AS util_weighted, "
    "step_s::BIGINT AS seconds, power_w * step_s AS power_energy_j, "
    "(CASE WHEN power_w IS NOT NULL THEN step_s END)::BIGINT AS power_seconds, "
    "1::BIGINT AS n FROM "
)


_LABELS = "signal, region, model, arm"
#: Columns of :meth:`Store.window_rows` per table: (from minute rows, from roll-up rows).
_WINDOW_COLUMNS: dict[str, tuple[str, str]] = {
    "counters": (
        f"ts_utc, {_LABELS}, value, 1::BIGINT AS n",
        f'hour_utc AS ts_utc, {_LABELS}, value, "rows" AS n',
    ),
    "histograms": (
        f"ts_utc, {_LABELS}, le, value, 1::BIGINT AS n",
        f'hour_utc AS ts_utc, {_LABELS}, le, value, "rows" AS n',
    ),
    "gauges": (
        f"ts_utc, {_LABELS}, instance, mean * step_s AS weighted, "
        "(CASE WHEN mean IS NOT NULL THEN step_s END)::BIGINT AS seconds, "
        "step_s AS step_max, max, samples::BIGINT AS samples, 1::BIGINT AS n, "
        f"{_MINUTE_BIT} AS minutes",
        f"hour_utc AS ts_utc, {_LABELS}, instance, weighted, seconds, step_max, max, "
        'samples, "rows" AS n, minutes',
    ),
}
#: ``{{rows:<kind>}}``, ``{{rows:<kind>:sig1,sig2}}`` or ``{{rows:<kind>:$param}}`` in a
#: named query: :meth:`Store.window_rows` of those signals over ``($start, $end]``.
_ROWS_PLACEHOLDER = re.compile(r"\{\{rows:(\w+)(?::([^}]*))?\}\}")


@dataclass(frozen=True)
class Housekeeping:
    """What :meth:`Store.housekeeping` did: temporary files removed, and partitions
    whose roll-ups (one tier or both; a GPU-step roll-up counts one) were rebuilt."""

    tmp_removed: int
    rollups_rebuilt: int


@dataclass(frozen=True)
class HourlyPlan:
    """Files that answer window sums with the hourly roll-up (:meth:`Store.hourly_plan`).

    Attributes:
        hourly: fresh roll-up files (whole hours).
        minutes_split: their data files (read only for hours a window edge splits).
        minutes_all: data files without a fresh roll-up (read in full).
    """

    hourly: list[Path]
    minutes_split: list[Path]
    minutes_all: list[Path]

    def add(self, rollup: Path | None, data: list[Path], split: bool) -> None:
        """Plan one partition: its fresh ``rollup`` (and its ``data`` files when a
        window edge cuts one of its hours, ``split``), or without one its ``data``."""
        if rollup is None:
            self.minutes_all.extend(data)
        else:
            self.hourly.append(rollup)
            if split:
                self.minutes_split.extend(data)


@dataclass(frozen=True)
class WriteResult:
    """What one :meth:`Store.replace_window` did: rows written and files touched."""

    rows: int
    files: int


def _create_views(con: duckdb.DuckDBPyConnection, sources: dict[str, str]) -> None:
    """Create the empty tables of ``sql/schema.sql`` and the views of ``sql/views.sql``."""
    con.execute((SQL_DIR / "schema.sql").read_text(encoding="utf-8"))
    con.execute((SQL_DIR / "views.sql").read_text(encoding="utf-8").format(**sources))


class Store:
    """The Parquet lake at ``root``: writes for collectors, DuckDB views for readers.

    Writers (collector, demo builder) call :meth:`replace_window`; readers (dashboard,
    ad hoc SQL) call :meth:`query`.  Readers never lock anything.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.lake = self.root / "lake"
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_lock = threading.Lock()
        self._sandbox: SafeSQL | None = None
        self._housekept = False

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def writer(self, timeout: float = 600) -> Iterator[None]:
        """Hold the writer lock (one writing process at a time; readers unaffected).

        Raises:
            StoreError: the store folder cannot be created (a file is in the way, no
                permission).
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the store folder {self.root}: {exc.strerror or exc}"
            ) from None
        with FileLock(str(self.root / ".writer.lock"), timeout=timeout):
            if not self._housekept:
                self.housekeeping()
                self._housekept = True
            yield

    def housekeeping(
        self, tmp_age: timedelta = STALE_TMP_AGE, fine_days: int = FINE_TIER_DAYS
    ) -> Housekeeping:
        """Clean up after a killed writer; call it holding the writer lock.

        :meth:`writer` runs it once per :class:`Store` object, when it first takes
        the lock (a collector daemon: once at start).

        - Temporary files (``.tmp-*``) anywhere in the store that are older than
          ``tmp_age`` are removed: a writer killed between creating one and its
          ``os.replace`` leaves it.  Readers never see them (they read ``*.parquet``);
          the age guard keeps a file some other, lock-free writer is writing now.
        - Hourly roll-ups whose data partition changed after them (a writer killed
          between the two replaces), or that are missing, are rebuilt from the
          partition.  Readers never use a stale roll-up (see :meth:`hourly_plan`).
          The 5-minute tier is rebuilt so only on the newest ``fine_days`` dates of
          each table (a store from an older version gets it where the short presets
          read; older dates read hours plus minute rows, still exact, and get the tier
          when a writer rewrites them).

        Returns:
            what was done: temporary files removed, roll-ups rebuilt.
        """
        removed = 0
        cutoff = time.time() - tmp_age.total_seconds()
        if self.root.exists():
            for folder, _dirs, files in os.walk(self.root):
                for name in files:
                    if not name.startswith(TMP_PREFIX):
                        continue
                    path = Path(folder) / name
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < cutoff:
                            path.unlink()
                            removed += 1
        rebuilt = 0
        for table in ROLLUP_OF:
            dates = {p.name for p in (self.lake / table).glob("signal=*/date=*")}
            recent = set(sorted(dates)[-fine_days:]) if fine_days > 0 else set()
            for path in (self.lake / table).glob("signal=*/date=*/region=*/part.parquet"):
                tiers = [p for p in ROLLUP_TIERS if p == 3600 or path.parent.parent.name in recent]
                stale = [p for p in tiers if self._rollup_fresh(table, path, p) is None]
                if stale:
                    try:
                        rows = pq.read_table(path, schema=SCHEMAS[table])
                    except (OSError, pa.ArrowException) as exc:
                        raise StoreError(f"cannot read {path}: {exc}") from exc
                    self._write_rollup(table, path, rows, stale)
                    rebuilt += 1
        pairs = {
            (p.parent.parent.name, p.parent.name)
            for sig in GPU_STEP_SIGNALS
            for p in (self.lake / "gauges" / f"signal={sig}").glob("date=*/region=*/part.parquet")
        }
        for day_dir, region_dir in sorted(pairs):
            day = date.fromisoformat(day_dir.removeprefix("date="))
            region = region_dir.removeprefix("region=")
            if self._gpu_steps_fresh(day, region) is None:
                self._write_gpu_steps(day, region)
                rebuilt += 1
        return Housekeeping(tmp_removed=removed, rollups_rebuilt=rebuilt)

    def rollup_path(self, table: str, path: Path, period_s: int = 3600) -> Path:
        """The hourly (or ``period_s``, :data:`ROLLUP_TIERS`) roll-up file of the data
        partition ``path`` of ``table``."""
        return self.lake / ROLLUP_TIERS[period_s][table] / path.relative_to(self.lake / table)

    def _rollup_fresh(self, table: str, path: Path, period_s: int = 3600) -> Path | None:
        """The roll-up of ``path`` when it was derived from the file there now, else None.

        A roll-up carries its data file's modification time (nanoseconds) as its own:
        every rewrite of the data file gives it a new time, so a roll-up left behind by
        a writer killed between the two replaces does not match.
        """
        rollup = self.rollup_path(table, path, period_s)
        try:
            fresh = rollup.stat().st_mtime_ns == path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        return rollup if fresh else None

    def _write_rollup(
        self, table: str, path: Path, rows: pa.Table, periods: Iterable[int] = ROLLUP_TIERS
    ) -> None:
        """Write the roll-ups (every tier of ``periods``) of data partition ``path``
        from its ``rows``, stamped with the data file's modification time.  The finest
        tier is summed from the rows, each coarser one from the finer roll-up
        (:func:`coarser_rollup`): one pass over the rows."""
        stamp = path.stat().st_mtime_ns
        finer: tuple[int, pa.Table] | None = None
        for period in sorted(periods):
            if finer is not None and period % finer[0] == 0:
                rollup = coarser_rollup(table, finer[1], period)
            else:
                rollup = hourly_rollup(table, rows, period)
            _atomic_write_table(self.rollup_path(table, path, period), rollup, stamp)
            finer = (period, rollup)

    def _write_partition(
        self, table: str, path: Path, rows: pa.Table, gpu_steps: set[tuple[date, str]]
    ) -> None:
        """Replace one data partition, then its hourly roll-up (stamped with its mtime);
        for GPU utilisation or power, add its (date, region) to ``gpu_steps``, whose
        GPU-step roll-ups the caller rebuilds once all its partitions are written."""
        _atomic_write_table(path, rows)
        if table in ROLLUP_OF:
            self._write_rollup(table, path, rows)
        signal = path.parent.parent.parent.name.removeprefix("signal=")
        if table == "gauges" and signal in GPU_STEP_SIGNALS:
            day = date.fromisoformat(path.parent.parent.name.removeprefix("date="))
            gpu_steps.add((day, path.parent.name.removeprefix("region=")))

    def _gpu_step_files(self, day: date, region: str) -> list[Path]:
        """The ``gpu_utilization`` and ``gpu_power`` partitions of ``day`` and ``region``
        that exist."""
        paths = (self.partition_path("gauges", s, day, region) for s in GPU_STEP_SIGNALS)
        return [p for p in paths if p.exists()]

    def gpu_steps_path(self, day: date, region: str) -> Path:
        """The GPU-step roll-up file of ``day`` and ``region`` (:data:`GPU_STEPS`)."""
        return self.partition_path(GPU_STEPS, "gpu_steps", day, region)

    def _gpu_steps_stamp(self, files: list[Path]) -> int:
        """The freshness stamp of a GPU-step roll-up built from ``files``: the newest
        of their modification times (ns).  Any later rewrite of either partition gives
        it a newer time, so the stamp no longer matches (clocks are assumed not to go
        back)."""
        return max(p.stat().st_mtime_ns for p in files)

    def _gpu_steps_fresh(self, day: date, region: str) -> Path | None:
        """The GPU-step roll-up of ``day`` and ``region`` when built from the files
        there now (its mtime is :meth:`_gpu_steps_stamp` of them), else None."""
        rollup = self.gpu_steps_path(day, region)
        try:
            files = self._gpu_step_files(day, region)
            if not files:
                return None
            fresh = rollup.stat().st_mtime_ns == self._gpu_steps_stamp(files)
        except FileNotFoundError:
            return None
        return rollup if fresh else None

    def _write_gpu_steps(self, day: date, region: str) -> None:
        files = self._gpu_step_files(day, region)
        if files:
            stamp = self._gpu_steps_stamp(files)
            _atomic_write_table(self.gpu_steps_path(day, region), gpu_steps_rollup(files), stamp)

    def hourly_plan(
        self,
        table: str,
        signals: Iterable[str],
        start: datetime,
        end: datetime,
        split_hours: Iterable[datetime] = (),
        use_rollup: bool = True,
    ) -> HourlyPlan:
        """Which files answer sums over the steps ``(start, end]`` of ``signals``.

        For every data partition of those dates: with a fresh roll-up, the roll-up
        (whole hours) and, when its date holds steps of one of ``split_hours`` (hour
        ends whose hour a window edge cuts), the data file for those steps; without
        a fresh roll-up (never built, or stale after a killed writer), the data file
        alone, read in full.  Reading these instead of the step rows is exact.
        ``use_rollup=False`` reads every data file in full (the step-row baseline).

        Raises:
            StoreError: ``table`` keeps no roll-up.
        """
        if table not in ROLLUP_OF:
            raise StoreError(f"{table} keeps no hourly roll-up; expected one of {list(ROLLUP_OF)}")
        start, end = _to_utc_naive(start), _to_utc_naive(end)
        split_dates = _split_dates(split_hours)
        plan = HourlyPlan([], [], [])
        for day, path in self._data_partitions(table, signals, _dates_in(start, end)):
            rollup = self._rollup_fresh(table, path) if use_rollup else None
            plan.add(rollup, [path], day in split_dates)
        return plan

    def _data_partitions(
        self, table: str, signals: Iterable[str], dates: list[date]
    ) -> Iterator[tuple[date, Path]]:
        """``(date, data file)`` of every partition of ``table``, ``signals`` and ``dates``."""
        for sig in signals:
            for day in dates:
                folder = self.lake / table / f"signal={sig}" / f"date={day.isoformat()}"
                if not folder.is_dir():
                    continue
                for region_dir in sorted(folder.iterdir()):
                    path = region_dir / "part.parquet"
                    if region_dir.name.startswith("region=") and path.exists():
                        yield day, path

    def gpu_steps_plan(
        self,
        start: datetime,
        end: datetime,
        split_hours: Iterable[datetime] = (),
        use_rollup: bool = True,
    ) -> HourlyPlan:
        """:meth:`hourly_plan` for GPU-steps: per date and region of ``(start, end]``,
        the fresh GPU-step roll-up (``hourly``) and, on dates of ``split_hours``, its
        ``gpu_utilization`` and ``gpu_power`` files (``minutes_split``); without a
        fresh one, those files in full (``minutes_all``)."""
        start, end = _to_utc_naive(start), _to_utc_naive(end)
        split_dates = _split_dates(split_hours)
        plan = HourlyPlan([], [], [])
        for day in _dates_in(start, end):
            regions = {
                p.name.removeprefix("region=")
                for sig in GPU_STEP_SIGNALS
                for p in (self.lake / "gauges" / f"signal={sig}" / f"date={day}").glob("region=*")
            }
            for region in sorted(regions):
                files = self._gpu_step_files(day, region)
                rollup = self._gpu_steps_fresh(day, region) if use_rollup else None
                plan.add(rollup, files, day in split_dates)
        return plan

    def _window_partitions(
        self,
        kind: str,
        signals: Iterable[str],
        start: datetime,
        end: datetime,
        periods: list[int],
        use_rollup: bool,
    ) -> list[_Partition]:
        """The partitions of ``kind`` (``signals``) on the dates of ``(start, end]``,
        each with its fresh roll-ups among the tiers ``periods``."""
        out: list[_Partition] = []
        dates = _dates_in(start, end)
        if kind == "gpu_steps":
            for day in dates:
                regions = {
                    p.name.removeprefix("region=")
                    for sig in GPU_STEP_SIGNALS
                    for p in (self.lake / "gauges" / f"signal={sig}" / f"date={day}").glob(
                        "region=*"
                    )
                }
                for region in sorted(regions):
                    fresh = self._gpu_steps_fresh(day, region) if use_rollup else None
                    tiers = {3600: fresh} if fresh is not None and 3600 in periods else {}
                    out.append(_Partition(day, self._gpu_step_files(day, region), tiers))
            return out
        for day, path in self._data_partitions(kind, signals, dates):
            tiers = {}
            for period in periods if use_rollup else []:
                rollup = self._rollup_fresh(kind, path, period)
                if rollup is not None:
                    tiers[period] = rollup
            out.append(_Partition(day, [path], tiers))
        return out

    def window_rows(
        self,
        kind: str,
        signals: Iterable[str] | None,
        start: datetime,
        end: datetime,
        use_rollup: bool = True,
        bucket_s: int | None = None,
        tiers: Iterable[int] | None = None,
    ) -> str:
        """SQL (a parenthesised subquery) for "the rows of ``signals`` of ``kind`` in
        the window ``(start, end]``", read from the coarsest exact roll-up tier that
        fits each part of it (:data:`ROLLUP_TIERS`): per partition, its whole hours
        from the fresh hourly roll-up, the whole 5-minute periods of the hours an edge
        cuts from the fresh 5-minute roll-up, only the 5-minute periods an edge cuts
        from the minute rows; a tier a partition lacks fresh is skipped for it (no
        fresh roll-up at all: its minute rows).  Exact: a roll-up row holds the sums
        of its period's steps.

        The bounds are SQL literals (no parameters), so Parquet row-group statistics
        prune the minute rows.  A row's ``ts_utc`` is a step's end or its roll-up
        period's end (``hour_utc``): a query may group rows into epoch-aligned time
        buckets of ``bucket_s`` seconds when it passes ``bucket_s``, which restricts
        the tiers to periods dividing it (e.g. 300 s buckets: the 5-minute tier and
        minute rows; 90 s: minute rows only).

        Columns (``n``: minute rows summed, 1 for a step row):

        - ``counters``: ts_utc, signal, region, model, arm, value, n;
        - ``histograms``: the same plus le;
        - ``gauges``: ts_utc, signal, region, model, arm, instance, weighted
          (mean * step_s), seconds (step_s where mean is not NULL), step_max, max,
          samples, n, minutes (:data:`ROLLUP_SCHEMAS` ``gauges_hourly``; the minute
          bits of the hour, in either tier);
        - ``gpu_steps`` (no signals; hourly tier only): ts_utc, region, model (``''``
          for none), arm, pct (:data:`PCT_SQL`), util_weighted, seconds,
          power_energy_j, power_seconds, n (:data:`GPU_STEPS_SCHEMA`).

        Args:
            kind: ``counters``, ``histograms``, ``gauges`` or ``gpu_steps``.
            signals: the signals to read (None: every signal stored in the table).
            start, end: the window (naive UTC or aware).
            use_rollup: False reads minute rows only (the baseline).
            bucket_s: the caller's time bucket in seconds (None: no time buckets).
            tiers: the tier periods allowed (None: all; ``[3600]``: hourly only, the
                former behaviour, for benchmarks).

        Raises:
            StoreError: unknown ``kind``, or ``bucket_s`` not a positive integer.
        """
        if kind not in (*ROLLUP_OF, "gpu_steps"):
            raise StoreError(
                f"window rows of {kind!r}: expected one of {[*ROLLUP_OF, 'gpu_steps']}"
            )
        if bucket_s is not None and (int(bucket_s) != bucket_s or bucket_s <= 0):
            raise StoreError(
                f"window rows of {kind}: bucket_s must be a positive integer, got {bucket_s!r}"
            )
        start, end = _to_utc_naive(start), _to_utc_naive(end)
        allowed = (3600,) if kind == "gpu_steps" else tuple(ROLLUP_TIERS)
        periods = [
            p
            for p in allowed
            if (bucket_s is None or int(bucket_s) % p == 0) and (tiers is None or p in tiers)
        ]
        if signals is None and kind != "gpu_steps":
            signals = sorted(
                p.name.removeprefix("signal=") for p in (self.lake / kind).glob("signal=*")
            )
        partitions = self._window_partitions(kind, signals or [], start, end, periods, use_rollup)
        groups: dict[tuple[int, ...], list[_Partition]] = {}
        for part in partitions:
            groups.setdefault(tuple(sorted(part.tiers, reverse=True)), []).append(part)
        selects = []
        for group_tiers, members in groups.items():
            for period, lo, hi in _tier_pieces(start, end, group_tiers):
                days = set(_dates_in(lo, hi))
                chosen = [m for m in members if m.day in days]
                if chosen:
                    selects.append(self._piece_select(kind, period, chosen, lo, hi))
        if not selects:
            selects.append(self._piece_select(kind, 0, [], start, end))
        return "(" + "\n UNION ALL ".join(selects) + ")"

    def _piece_select(
        self, kind: str, period: int, parts: list[_Partition], lo: datetime, hi: datetime
    ) -> str:
        """One SELECT of :meth:`window_rows`: the rows of ``parts`` in ``(lo, hi]``,
        from their ``period`` roll-ups (0: their minute rows)."""
        col = "hour_utc" if period else "ts_utc"
        where = (
            f"{col} > TIMESTAMP '{lo.isoformat(sep=' ')}' "
            f"AND {col} <= TIMESTAMP '{hi.isoformat(sep=' ')}'"
        )
        if period:
            files = [m.tiers[period] for m in parts]
            if kind == "gpu_steps":
                return (
                    "SELECT hour_utc AS ts_utc, region, model, arm, pct, util_weighted, "
                    'seconds, power_energy_j, power_seconds, "rows" AS n FROM '
                    f"{self.parquet_source(GPU_STEPS, files)} WHERE {where}"
                )
            source = self.parquet_source(ROLLUP_TIERS[period][kind], files)
            return f"SELECT {_WINDOW_COLUMNS[kind][1]} FROM {source} WHERE {where}"
        data = [f for m in parts for f in m.data]
        if kind == "gpu_steps":
            source = self.parquet_source("gauges", data)
            return (
                _GPU_STEPS_MINUTE_SQL
                + "("
                + GPU_STEPS_SQL.format(
                    src=source, where=where if data else "FALSE", region="region,"
                )
                + ")"
            )
        source = self.parquet_source(kind, data)
        return f"SELECT {_WINDOW_COLUMNS[kind][0]} FROM {source} WHERE {where if data else 'FALSE'}"

    def bucket_bounds(self, signal: str) -> list[float]:
        """The distinct ``le`` bounds stored for a histogram signal, ascending.

        Read from the fresh hourly roll-ups (60x fewer rows than the steps) and from
        the data files that have none.
        """
        rollups: list[Path] = []
        data: list[Path] = []
        for path in (self.lake / "histograms" / f"signal={signal}").glob(
            "date=*/region=*/part.parquet"
        ):
            rollup = self._rollup_fresh("histograms", path)
            if rollup is None:
                data.append(path)
            else:
                rollups.append(rollup)
        sql = (
            f"SELECT DISTINCT le FROM (SELECT le FROM "
            f"{self.parquet_source('histograms_hourly', rollups)} UNION ALL "
            f"SELECT le FROM {self.parquet_source('histograms', data)}) ORDER BY le"
        )
        return [float(x) for x in self.query(sql)["le"]]

    def latest_step(self, table: str, signals: Iterable[str]) -> datetime | None:
        """The last stored ``ts_utc`` of ``signals`` in ``table`` (None without rows).

        Reads only the newest date partitions (newest first, until one holds rows),
        not the whole table.
        """
        signals = list(signals)
        by_date: dict[str, list[Path]] = {}
        for sig in signals:
            for path in (self.lake / table / f"signal={sig}").glob("date=*/region=*/part.parquet"):
                by_date.setdefault(path.parent.parent.name, []).append(path)
        for day in sorted(by_date, reverse=True):
            df = self.query(
                f"SELECT max(ts_utc) AS t FROM {self.parquet_source(table, by_date[day])}"
            )
            t = df["t"].iloc[0]
            import pandas as pd

            if pd.notna(t):
                return pd.Timestamp(t).to_pydatetime()
        return None

    def parquet_source(self, table: str, files: list[Path]) -> str:
        """SQL that reads ``files`` of ``table`` (or its roll-up) with the Hive columns.

        An empty list reads the table's empty typed stand-in of ``sql/schema.sql``.
        """
        if not files:
            return f"_empty_{table}"
        listed = ", ".join("'" + f.as_posix().replace("'", "''") + "'" for f in files)
        return (
            f"read_parquet([{listed}], hive_partitioning=true, "
            "hive_types={'signal': VARCHAR, 'date': DATE, 'region': VARCHAR})"
        )

    def partition_path(self, table: str, signal: str, day: date, region: str) -> Path:
        """The file holding one table's rows of one signal, day and region."""
        return (
            self.lake
            / table
            / f"signal={signal}"
            / f"date={day.isoformat()}"
            / f"region={region}"
            / "part.parquet"
        )

    def replace_window(
        self,
        table: str,
        region: str,
        signals: Iterable[str],
        start: datetime,
        end: datetime,
        frame: pd.DataFrame | pa.Table,
    ) -> WriteResult:
        """Replace every stored row of ``region`` and ``signals`` in ``(start, end]`` by ``frame``.

        Idempotent: writing the same window twice leaves the same files.  Rows of
        other windows, signals and regions are untouched.  Each touched partition
        file is rewritten atomically.

        Args:
            table: ``counters``, ``gauges`` or ``histograms``.
            region: region name.
            signals: every signal this window covers; a signal with no rows in
                ``frame`` has its old rows in the window deleted.
            start, end: the window, UTC (naive or aware).
            frame: rows with a ``signal`` column plus the table's columns; every
                ``ts_utc`` must lie in ``(start, end]``.  A pyarrow Table is taken
                as it is (the collector's fast path: no pandas conversion).

        Raises:
            StoreError: unknown table, missing columns or rows outside the window.
        """
        if table not in SCHEMAS:
            raise StoreError(f"unknown table {table!r}; expected one of {sorted(SCHEMAS)}")
        schema = SCHEMAS[table]
        signal_list = list(signals)
        start, end = _to_utc_naive(start), _to_utc_naive(end)
        if isinstance(frame, pa.Table):
            return self._replace_window_arrow(table, region, signal_list, start, end, frame)
        missing = [c for c in ["signal", *schema.names] if c not in frame.columns]
        if len(frame) and missing:
            raise StoreError(f"{table}: rows for region {region} lack columns {missing}")
        import pandas as pd

        if len(frame):
            ts = pd.to_datetime(frame["ts_utc"])
            bad = (ts <= start) | (ts > end)
            if bad.any():
                raise StoreError(
                    f"{table}: region {region}: {int(bad.sum())} rows fall outside the window "
                    f"({start.isoformat()}, {end.isoformat()}], e.g. {ts[bad].iloc[0]}"
                )
            extra = set(frame["signal"].unique()) - set(signal_list)
            if extra:
                raise StoreError(
                    f"{table}: region {region}: rows of signals {sorted(extra)} "
                    f"not in {signal_list}"
                )
            frame = frame.assign(_date=ts.dt.date)
        rows = files = 0
        gpu_steps: set[tuple[date, str]] = set()
        start_pa = pa.scalar(start, type=pa.timestamp("us"))
        end_pa = pa.scalar(end, type=pa.timestamp("us"))
        grouped = dict(tuple(frame.groupby(["signal", "_date"], sort=False))) if len(frame) else {}
        for sig in signal_list:
            for day in _dates_in(start, end):
                path = self.partition_path(table, sig, day, region)
                new = grouped.get((sig, day))
                parts: list[pa.Table] = []
                if path.exists():
                    try:
                        old = pq.read_table(path, schema=schema)
                    except (OSError, pa.ArrowException) as exc:
                        raise StoreError(f"cannot read {path}: {exc}") from exc
                    keep = pc.or_(
                        pc.less_equal(old["ts_utc"], start_pa), pc.greater(old["ts_utc"], end_pa)
                    )
                    parts.append(old.filter(keep))
                elif new is None:
                    continue
                if new is not None:
                    parts.append(
                        pa.Table.from_pandas(new[schema.names], schema=schema, preserve_index=False)
                    )
                    rows += len(new)
                combined = pa.concat_tables(parts) if parts else schema.empty_table()
                # An emptied partition stays as an empty file: deleting it could make a
                # reader that already listed it fail with "file not found".
                combined = combined.sort_by([("ts_utc", "ascending")])
                self._write_partition(table, path, combined, gpu_steps)
                files += 1
        for day, reg in sorted(gpu_steps):
            self._write_gpu_steps(day, reg)
        return WriteResult(rows=rows, files=files)

    def _replace_window_arrow(
        self,
        table: str,
        region: str,
        signal_list: list[str],
        start: datetime,
        end: datetime,
        new: pa.Table,
    ) -> WriteResult:
        """:meth:`replace_window` for rows given as a pyarrow Table (same semantics)."""
        schema = SCHEMAS[table]
        missing = [c for c in ["signal", *schema.names] if c not in new.column_names]
        if new.num_rows and missing:
            raise StoreError(f"{table}: rows for region {region} lack columns {missing}")
        start_pa = pa.scalar(start, type=pa.timestamp("us"))
        end_pa = pa.scalar(end, type=pa.timestamp("us"))
        parts_by_key: dict[tuple[str, date], pa.Table] = {}
        if new.num_rows:
            ts = new["ts_utc"].cast(pa.timestamp("us"))
            bad = pc.or_(pc.less_equal(ts, start_pa), pc.greater(ts, end_pa))
            if pc.any(bad).as_py():
                raise StoreError(
                    f"{table}: region {region}: {pc.sum(bad).as_py()} rows fall outside the "
                    f"window ({start.isoformat()}, {end.isoformat()}]"
                )
            parts_by_key = _split_by_signal_and_date(new, schema)
            extra = {sig for sig, _day in parts_by_key} - set(signal_list)
            if extra:
                raise StoreError(
                    f"{table}: region {region}: rows of signals {sorted(extra)} "
                    f"not in {signal_list}"
                )
        rows = files = 0
        gpu_steps: set[tuple[date, str]] = set()
        for sig in signal_list:
            for day in _dates_in(start, end):
                path = self.partition_path(table, sig, day, region)
                fresh = parts_by_key.get((sig, day))
                parts: list[pa.Table] = []
                if fresh is None and path.exists() and _outside(path, start, end):
                    continue  # nothing to add and nothing of the window to delete
                if path.exists():
                    try:
                        old = pq.read_table(path, schema=schema)
                    except (OSError, pa.ArrowException) as exc:
                        raise StoreError(f"cannot read {path}: {exc}") from exc
                    keep = pc.or_(
                        pc.less_equal(old["ts_utc"], start_pa), pc.greater(old["ts_utc"], end_pa)
                    )
                    parts.append(old.filter(keep))
                elif fresh is None:
                    continue
                if fresh is not None:
                    parts.append(fresh.cast(schema) if parts else fresh)
                    rows += fresh.num_rows
                combined = pa.concat_tables(parts) if parts else schema.empty_table()
                if not _is_sorted(combined["ts_utc"]):
                    combined = combined.sort_by([("ts_utc", "ascending")])
                self._write_partition(table, path, combined, gpu_steps)
                files += 1
        for day, reg in sorted(gpu_steps):
            self._write_gpu_steps(day, reg)
        return WriteResult(rows=rows, files=files)

    def write_regions(self, regions: pd.DataFrame | list[dict[str, Any]]) -> None:
        """Replace the region catalogue (name, display name, coordinates, URL).

        Args:
            regions: a DataFrame with the columns of :data:`REGION_SCHEMA`, or one
                dict per region with those keys (no pandas needed).
        """
        if isinstance(regions, list):
            table = pa.Table.from_pylist(regions, schema=REGION_SCHEMA)
        else:
            table = pa.Table.from_pandas(
                regions[REGION_SCHEMA.names], schema=REGION_SCHEMA, preserve_index=False
            )
        _atomic_write_table(self.lake / "regions" / "regions.parquet", table)

    def append_run_log(self, record: dict[str, Any]) -> None:
        """Append one collector run record to ``runs.jsonl`` (one line, one write)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=str, sort_keys=True) + "\n"
        with open(self.root / "runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line)

    def read_state(self) -> dict[str, Any]:
        """The collector's state (``{"regions": {name: {"collected_until": iso}}}``)."""
        path = self.root / "state.json"
        if not path.exists():
            return {"regions": {}}
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable collector state: {exc}") from exc

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace the collector's state atomically."""
        atomic_write_bytes(
            self.root / "state.json", json.dumps(state, indent=2, sort_keys=True).encode()
        )

    # ------------------------------------------------------------------ reading
    def has_data(self) -> bool:
        """True when at least one partition file exists."""
        return any(self.lake.glob("*/signal=*/date=*/region=*/*.parquet"))

    def _source(self, table: str) -> str:
        if any((self.lake / table).glob("signal=*/date=*/region=*/*.parquet")):
            glob = (self.lake / table).as_posix().replace("'", "''") + "/*/*/*/*.parquet"
            return (
                f"read_parquet('{glob}', hive_partitioning=true, "
                "hive_types={'signal': VARCHAR, 'date': DATE, 'region': VARCHAR})"
            )
        return f"_empty_{table}"

    def _view_sources(self) -> dict[str, str]:
        """What each ``{placeholder}`` of ``sql/views.sql`` reads: a lake file or an empty table."""
        regions = self.lake / "regions" / "regions.parquet"
        sources = {t: self._source(t) for t in SCHEMAS}
        sources["regions"] = (
            "read_parquet('" + regions.as_posix().replace("'", "''") + "')"
            if regions.exists()
            else "_empty_regions"
        )
        runs = self.root / "runs.jsonl"
        sources["runs"] = (
            "read_json('" + runs.as_posix().replace("'", "''") + "', format='newline_delimited', "
            "columns={'started_utc': 'TIMESTAMP', 'finished_utc': 'TIMESTAMP', "
            "'region': 'VARCHAR', "
            "'status': 'VARCHAR', 'window_start_utc': 'TIMESTAMP', 'window_end_utc': 'TIMESTAMP', "
            "'rows': 'BIGINT', 'error': 'VARCHAR'})"
            if runs.exists()
            else "_empty_runs"
        )
        return sources

    def _build_connection(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone='UTC'")
        _create_views(con, self._view_sources())
        return con

    def connect(self) -> duckdb.DuckDBPyConnection:
        """The root DuckDB connection (in-memory, views over the lake), built once.

        Call :meth:`refresh` after new partitions appear for a table that was empty.
        """
        with self._con_lock:
            if self._con is None:
                self._con = self._build_connection()
            return self._con

    def refresh(self) -> None:
        """Rebuild the views (new tables may have appeared since :meth:`connect`)."""
        with self._con_lock:
            if self._con is not None:
                self._con.close()
            self._con = None
            if self._sandbox is not None:
                self._sandbox.close()
            self._sandbox = None

    def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pd.DataFrame:
        """Run ``sql`` on its own cursor (thread-safe) and return a DataFrame.

        Raises:
            StoreError: DuckDB rejected the query; the message holds its text.
        """
        try:
            for attempt in Retrying(
                retry=retry_if_exception(_torn_read),
                stop=stop_after_attempt(TORN_READ_ATTEMPTS),
                wait=wait_fixed(0.05),
                reraise=True,
            ):
                with attempt:
                    cur = self.connect().cursor()
                    try:
                        return cur.execute(sql, params or {}).df()
                    finally:
                        cur.close()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        raise AssertionError("unreachable: Retrying returns or raises")

    def sandbox(self, limits: SandboxLimits | None = None) -> SafeSQL:
        """The sandbox that runs untrusted SQL over this store (:class:`SafeSQL`).

        Without ``limits`` the store's shared sandbox (default limits, built once,
        rebuilt after :meth:`refresh`); with ``limits`` a new one that the caller closes.
        """
        if limits is not None:
            return SafeSQL(self, limits)
        with self._con_lock:
            if self._sandbox is None:
                self._sandbox = SafeSQL(self)
            return self._sandbox

    def named(self, name: str, *, use_rollup: bool = True, **params: Any) -> pd.DataFrame:
        """Run the named query ``sql/queries/<name>.sql`` with ``$param`` placeholders.

        Only the parameters the query references are bound (a page may pass its
        whole filter set).  ``{{rows:<kind>[:signals]}}`` placeholders become
        :meth:`window_rows` for ``$start``/``$end`` and ``$bucket_s``: the coarsest
        exact roll-up tier whose period divides ``$bucket_s`` (hours, 5 minutes),
        minute rows for the rest, unless ``use_rollup`` is False or the environment
        sets ``OBSERVATORY_ROLLUP=0`` (minute rows only, the benchmarks' baseline);
        ``OBSERVATORY_ROLLUP=hourly`` allows the hourly tier only (the former path).

        Raises:
            StoreError: no such named query, a placeholder without ``start``/``end``
                or with an unknown kind or parameter, or the query failed.
        """
        path = SQL_DIR / "queries" / f"{name}.sql"
        if not path.exists():
            raise StoreError(f"no named query {name!r} in {path.parent}")
        sql = path.read_text(encoding="utf-8")
        if _ROWS_PLACEHOLDER.search(sql):
            mode = os.environ.get("OBSERVATORY_ROLLUP", "1")
            use_rollup = use_rollup and mode != "0"
            tiers = [3600] if mode == "hourly" else None
            sql = self._expand_rows(name, sql, params, use_rollup, tiers)
        code = "\n".join(x for x in sql.split("\n") if not x.lstrip().startswith("--"))
        used = {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", code)}
        return self.query(sql, used)

    def _expand_rows(
        self,
        name: str,
        sql: str,
        params: dict[str, Any],
        use_rollup: bool,
        tiers: list[int] | None = None,
    ) -> str:
        """``sql`` with its ``{{rows:...}}`` placeholders replaced (:meth:`named`)."""
        if "start" not in params or "end" not in params:
            raise StoreError(f"named query {name}: {{{{rows:...}}}} needs $start and $end")
        bucket = params.get("bucket_s")

        def expand(match: re.Match[str]) -> str:
            kind, listed = match.group(1), match.group(2)
            signals: list[str] | None = None
            if listed and listed.strip().startswith("$"):
                key = listed.strip()[1:]
                if key not in params:
                    raise StoreError(f"named query {name}: {match.group(0)} needs ${key}")
                value = params[key]
                signals = [value] if isinstance(value, str) else list(value)
            elif listed:
                signals = [x.strip() for x in listed.split(",") if x.strip()]
            try:
                return self.window_rows(
                    kind,
                    signals,
                    params["start"],
                    params["end"],
                    use_rollup,
                    None if bucket is None else int(bucket),
                    tiers,
                )
            except StoreError as exc:
                raise StoreError(f"named query {name}: {exc}") from None

        # Comment lines keep their text (a placeholder named in a comment is not SQL).
        return "\n".join(
            line if line.lstrip().startswith("--") else _ROWS_PLACEHOLDER.sub(expand, line)
            for line in sql.split("\n")
        )

    def data_version(self) -> float:
        """A number that changes whenever a writer finished (for cache keys)."""
        stamp = self.root / ".version"
        return stamp.stat().st_mtime if stamp.exists() else 0.0

    def touch_version(self) -> None:
        """Mark that new data was written (readers' caches key on it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".version").write_text(datetime.now(UTC).isoformat(), encoding="utf-8")


# ====================================================================== sandbox
# Untrusted ad hoc SQL (the dashboard's SQL page, ``observatory sql``) runs on a
# separate in-memory DuckDB instance with the same views, locked down as described in
# docs/sql.md ("Safety"): file access only under the lake, no extensions, no settings
# changes, time / memory / thread / row limits, one read-only statement per query.

#: Why a statement type is refused (DuckDB's parser names the type).
_REFUSED_TYPES: dict[str, str] = {
    "COPY": "COPY reads or writes files",
    "EXPORT": "EXPORT DATABASE writes files",
    "ATTACH": "ATTACH opens another database",
    "DETACH": "DETACH changes the catalog",
    "LOAD": "INSTALL and LOAD add extensions",
    "SET": "SET, RESET, USE and PRAGMA name=value change settings",
    "VARIABLE_SET": "SET VARIABLE changes session state",
    "PRAGMA": "PRAGMA statements run commands (use the pragma_*() table functions or DESCRIBE)",
    "CALL": "CALL runs procedures (use SELECT * FROM function() instead)",
    "CREATE": "CREATE changes the catalog",
    "INSERT": "INSERT writes data",
    "UPDATE": "UPDATE writes data",
    "DELETE": "DELETE writes data",
    "DROP": "DROP changes the catalog",
    "ALTER": "ALTER changes the catalog",
    "MULTI": "this statement expands into several (e.g. PIVOT without an IN list)",
}
#: Functions that execute SQL text given as data, or escape the time and memory limits.
_DENIED_FUNCTIONS = frozenset(
    {
        "query",
        "query_table",
        "json_execute_serialized_sql",
        "json_deserialize_sql",
        "destroy_external_resource",
    }
)
_LENGTH_CAPPED = frozenset({"repeat", "lpad", "rpad"})
_WIDTH_CAPPED = frozenset({"format", "printf"})
_LOCAL_ONLY_SETTINGS = frozenset({"enable_progress_bar"})
_MAX_STRING_LENGTH = 10_000_000


def _function_calls(node: Any) -> Iterator[tuple[str, list[Any]]]:
    """Every ``(function name, argument expressions)`` in a ``json_serialize_sql`` tree.

    Table functions (``FROM f(...)``) are found too: they are function nodes inside a
    ``TABLE_FUNCTION`` reference.
    """
    if isinstance(node, dict):
        name = node.get("function_name")
        if isinstance(name, str):
            args = [
                a.get("expression", a) for a in node.get("arguments") or [] if isinstance(a, dict)
            ]
            args += list(node.get("children") or [])
            yield name.lower(), args
        for value in node.values():
            yield from _function_calls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _function_calls(item)


def _constant_text(node: Any) -> str | None:
    """The text of a string constant node, else None."""
    if isinstance(node, dict) and node.get("class") == "CONSTANT":
        literal = node.get("literal")
        if isinstance(literal, dict) and literal.get("kind") == "STRING":
            return str(literal.get("text", ""))
    return None


def _constant_number(node: Any) -> float | None:
    """The value of a numeric constant node (also under a cast), else None."""
    if not isinstance(node, dict):
        return None
    if node.get("class") == "CAST":
        return _constant_number(node.get("child"))
    literal = node.get("literal")
    if (
        node.get("class") == "CONSTANT"
        and isinstance(literal, dict)
        and literal.get("kind") in ("INTEGER", "NUMERIC", "DECIMAL", "FLOAT", "DOUBLE")
    ):
        try:
            return float(literal.get("text", ""))
        except ValueError:
            return None
    return None


_READ_ONLY_KINDS = "SELECT, WITH, VALUES, FROM, TABLE, DESCRIBE, SHOW, SUMMARIZE, PIVOT, EXPLAIN"
_LOCKED = "the configuration has been locked"


def _sql_literal(value: object) -> str:
    """A trusted Python value as a DuckDB literal (for ``SET``, which takes no parameters)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_sql_literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of the untrusted-SQL sandbox (:class:`SafeSQL`).

    Attributes:
        max_rows: most rows one query returns; a longer result is cut there and
            flagged ``truncated``.
        timeout_s: wall-clock limit of one query, fetching included.
        memory_limit: DuckDB ``memory_limit`` of the sandbox instance, shared by its
            concurrent queries; nothing spills to disk.
        threads: DuckDB worker threads of the sandbox instance.
        max_query_chars: longest query text accepted.
        max_concurrent: queries that run at once; others wait up to ``timeout_s``.
    """

    max_rows: int = 10_000
    timeout_s: float = 30.0
    memory_limit: str = "2GB"
    threads: int = field(default_factory=_default_threads)
    max_query_chars: int = 100_000
    max_concurrent: int = 4


SQLErrorKind = Literal["refused", "timeout", "memory", "busy", "failed"]


class SQLError(StoreError):
    """An untrusted query was refused or failed.

    Attributes:
        kind: ``refused`` (not allowed: statement type, length, a file outside the
            lake, a settings change), ``timeout``, ``memory``, ``busy`` (no free
            slot) or ``failed`` (DuckDB rejected it: syntax, unknown column, ...).
    The message says why and includes DuckDB's own message, with the ``LINE n:``
    excerpt and caret that mark the position, when DuckDB produced one.
    """

    def __init__(self, kind: SQLErrorKind, message: str):
        super().__init__(message)
        self.kind: SQLErrorKind = kind


@dataclass(frozen=True)
class SQLResult:
    """The rows of one sandboxed query.

    Attributes:
        table: the rows (at most ``max_rows``), with DuckDB's Arrow types.
        types: DuckDB's type name of each column (``TIMESTAMP``, ``DOUBLE``, ...).
        truncated: the query returned more than ``max_rows`` rows; ``table`` holds
            the first ``max_rows``.
        max_rows: the row cap this query ran with.
        elapsed_s: wall-clock seconds, checks and fetching included.
        statement: ``SELECT`` or ``EXPLAIN``.
    """

    table: pa.Table
    types: list[str]
    truncated: bool
    max_rows: int
    elapsed_s: float
    statement: str

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self.table.column_names)

    @property
    def num_rows(self) -> int:
        """Rows returned (after the cap)."""
        return int(self.table.num_rows)

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame (duplicate column names are kept)."""
        return self.table.to_pandas()

    def to_parquet(self, where: str | os.PathLike[str] | BinaryIO) -> None:
        """Write the rows as Parquet.

        Column names made unique (``a``, ``a_2``); types Parquet cannot hold
        (``INTERVAL``) written as their text.
        """
        table = self.table
        seen: dict[str, int] = {}
        names = []
        for name in table.column_names:
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
        table = table.rename_columns(names)
        for i, f in enumerate(table.schema):
            if pa.types.is_interval(f.type):
                text = pa.array(
                    [None if v is None else str(v) for v in table.column(i).to_pylist()]
                )
                table = table.set_column(i, pa.field(f.name, pa.string()), text)
        pq.write_table(table, where)


class SafeSQL:
    """Runs untrusted SQL on a locked-down, in-memory DuckDB instance over the lake.

    The instance has the views of ``sql/views.sql`` and, set before
    ``lock_configuration=true`` (so no query can undo them):
    ``enable_external_access=false`` with ``allowed_directories`` = the lake folder
    and ``allowed_paths`` = the run log (every file reader, ``glob``, ``COPY``,
    ``ATTACH``, ``INSTALL`` and Python replacement scans are refused elsewhere),
    extension auto-install/auto-load off, ``max_execution_time``, ``memory_limit``,
    ``threads``, no temporary directory (nothing spills to disk).  Before running,
    DuckDB's own parser must find exactly one statement, of type ``SELECT`` (which
    covers WITH, VALUES, FROM-first, TABLE, DESCRIBE, SHOW, SUMMARIZE) or an
    ``EXPLAIN`` of one.  A timer interrupts a query that outlives
    ``timeout_s`` (DuckDB checks ``max_execution_time`` only at some points).
    Rows are streamed and cut at ``max_rows``.  Each query runs on its own cursor:
    a refused or failed query leaves the instance serving others.

    Thread-safe.  Build it with :meth:`Store.sandbox`.
    """

    def __init__(self, store: Store, limits: SandboxLimits | None = None):
        self.limits = limits or SandboxLimits()
        # Absolute paths: allowed_directories compares paths as DuckDB resolves them.
        self._store = Store(store.root.resolve())
        self._slots = threading.BoundedSemaphore(self.limits.max_concurrent)
        self._lock = threading.Lock()
        try:
            self._con: duckdb.DuckDBPyConnection | None = self._build()
        except duckdb.Error as exc:
            raise SQLError("failed", f"cannot open the SQL sandbox on {store.root}: {exc}") from exc

    @property
    def lake(self) -> Path:
        """The only folder the sandbox reads."""
        return self._store.lake

    def _build(self) -> duckdb.DuckDBPyConnection:
        lim = self.limits
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET GLOBAL TimeZone='UTC'")
            _create_views(con, self._store._view_sources())
            runs = self._store.root / "runs.jsonl"
            settings: list[tuple[str, object]] = [
                ("threads", int(lim.threads)),
                ("memory_limit", lim.memory_limit),
                ("temp_directory", ""),
                ("max_temp_directory_size", "0B"),
                ("max_execution_time", max(1, int(lim.timeout_s * 1000))),
                ("autoinstall_known_extensions", False),
                ("autoload_known_extensions", False),
                ("allow_community_extensions", False),
                ("python_enable_replacements", False),
                ("allow_persistent_secrets", False),
                ("enable_progress_bar", False),
                ("allowed_directories", [self._store.lake.as_posix().rstrip("/") + "/"]),
                ("allowed_paths", [runs.as_posix()] if runs.exists() else []),
                ("enable_external_access", False),
                ("lock_configuration", True),  # last: nothing above can be changed now
            ]
            for name, value in settings:
                # GLOBAL where DuckDB allows it: a plain SET is local to this connection
                # and would not reach the cursors queries run on (max_execution_time).
                scope = "" if name in _LOCAL_ONLY_SETTINGS else "GLOBAL "
                con.execute(f"SET {scope}{name} = {_sql_literal(value)}")
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        """Close the instance (queries after this raise :class:`SQLError`)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                raise SQLError("failed", "the SQL sandbox is closed")
            return self._con.cursor()

    # ------------------------------------------------------------ checks
    def check(self, sql: str) -> str:
        """Raise :class:`SQLError` (``refused``/``failed``) unless ``sql`` may run.

        Returns:
            the statement type that would run (``SELECT`` or ``EXPLAIN``).
        """
        cur = self._cursor()
        try:
            return self._check(sql, cur)[1]
        finally:
            cur.close()

    def _check(self, sql: str, cur: duckdb.DuckDBPyConnection) -> tuple[Any, str]:
        if not isinstance(sql, str):
            raise SQLError("refused", "refused: the query must be text")
        if len(sql) > self.limits.max_query_chars:
            raise SQLError(
                "refused",
                f"refused: the query is {len(sql):,} characters long; "
                f"the limit is {self.limits.max_query_chars:,}",
            )
        statements = self._parse(sql, cur)
        if not statements:
            raise SQLError("refused", "refused: the query is empty")
        if len(statements) > 1:
            kinds = ", ".join(self._type_name(s) for s in statements)
            raise SQLError(
                "refused",
                f"refused: {len(statements)} statements ({kinds}); run one query at a time",
            )
        statement = statements[0]
        kind = self._type_name(statement)
        if kind == "SELECT":
            self._check_functions(sql, cur)
            return statement, kind
        if kind == "EXPLAIN":
            explained = self._explained(sql)
            if explained is None:
                raise SQLError(
                    "refused",
                    "refused: EXPLAIN ANALYZE runs the query; use EXPLAIN, or run the query",
                )
            inner = self._parse(explained, cur)
            if len(inner) == 1 and self._type_name(inner[0]) == "SELECT":
                self._check_functions(explained, cur)
                return statement, kind
            raise SQLError(
                "refused",
                f"refused: EXPLAIN is allowed only of one read-only query ({_READ_ONLY_KINDS})",
            )
        reason = _REFUSED_TYPES.get(
            kind,
            "this statement is not a read-only query"
            if kind == "UNKNOWN"
            else f"{kind} statements are not read-only queries",
        )
        raise SQLError(
            "refused",
            f"refused: {reason}. Only read-only queries run here ({_READ_ONLY_KINDS}).",
        )

    @staticmethod
    def _type_name(statement: Any) -> str:
        try:
            return str(getattr(statement.type, "name", statement.type)).upper()
        except ValueError:  # a statement type the Python client cannot name (UPDATE EXTENSIONS)
            return "UNKNOWN"

    @staticmethod
    def _parse(sql: str, cur: duckdb.DuckDBPyConnection) -> list[Any]:
        try:
            return list(cur.extract_statements(sql))
        except duckdb.ParserException as exc:
            raise SQLError("failed", f"query failed: {exc}") from None
        except (duckdb.Error, ValueError) as exc:
            # e.g. a statement type the Python client cannot name (UPDATE EXTENSIONS)
            raise SQLError("refused", f"refused: not a read-only query ({exc})") from None

    @staticmethod
    def _explained(sql: str) -> str | None:
        """The text after ``EXPLAIN``; None for ``EXPLAIN ANALYZE`` (refused: it executes).

        ``duckdb.tokenize`` gives offsets in UTF-8 bytes, so the text is cut as bytes:
        cutting the ``str`` by those offsets let non-ASCII characters in a comment shift
        the cut and smuggle a COPY past this check.
        """
        raw = sql.encode("utf-8")
        starts = [
            start for start, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment
        ]
        words = []
        for start in starts[:2]:
            word = b""
            for byte in raw[start : start + 16]:
                if not (chr(byte).isalpha() or byte == ord("_")):
                    break
                word += bytes([byte])
            words.append(word.decode("ascii", "replace").upper())
        if not words or words[0] != "EXPLAIN":
            return ""
        if len(words) > 1 and words[1] in ("ANALYZE", "ANALYSE"):
            return None
        return raw[starts[1] :].decode("utf-8") if len(starts) > 1 else ""

    def _check_functions(self, sql: str, cur: duckdb.DuckDBPyConnection) -> None:
        """Refuse functions that run SQL text or free memory outside the limits.

        The query is parsed to DuckDB's own JSON syntax tree (``json_serialize_sql``)
        and every called function is checked against :data:`_DENIED_FUNCTIONS`;
        ``repeat``/``lpad``/``rpad`` with a constant length above a cap are refused too
        (their memory is not counted by ``memory_limit``).
        """
        try:
            rows = cur.execute("SELECT json_serialize_sql($q)", {"q": sql}).fetchall()
            row = rows[0] if rows else None
        except duckdb.Error as exc:
            raise SQLError("failed", f"query failed: {exc}") from None
        tree = json.loads(row[0]) if row and row[0] else {}
        if tree.get("error"):
            raise SQLError("failed", f"query failed: {tree.get('error_message', tree)}")
        for name, args in _function_calls(tree):
            if name in _DENIED_FUNCTIONS:
                raise SQLError("refused", f"refused: {name}() is not allowed here")
            if name in _LENGTH_CAPPED and len(args) >= 2:
                # The length must be a constant within the cap: these functions build
                # the whole string at once, outside memory_limit and the interrupt.
                value = _constant_number(args[1])
                if value is None or value > _MAX_STRING_LENGTH:
                    shown = "a computed length" if value is None else f"a length of {value:,.0f}"
                    raise SQLError(
                        "refused",
                        f"refused: {name}() with {shown}; the length must be a number "
                        f"up to {_MAX_STRING_LENGTH:,}",
                    )
            if name in _WIDTH_CAPPED and args:
                text = _constant_text(args[0])
                if text is None or re.search(r"\d{8,}", text):
                    raise SQLError(
                        "refused",
                        f"refused: {name}() needs a constant format without widths over 7 digits",
                    )

    # ------------------------------------------------------------ running
    def run(self, sql: str, max_rows: int | None = None) -> SQLResult:
        """Check and run one untrusted query.

        Args:
            sql: one read-only statement (a trailing ``;`` and comments are fine).
            max_rows: row cap for this query (default ``limits.max_rows``).

        Raises:
            SQLError: refused, stopped (time, memory), busy or failed; the message
                says which and why.
        """
        cap = self.limits.max_rows if max_rows is None else int(max_rows)
        if cap < 0:
            raise SQLError("refused", f"refused: max_rows must be 0 or more, got {cap}")
        began = time.perf_counter()
        if not self._slots.acquire(timeout=self.limits.timeout_s):
            raise SQLError(
                "busy",
                f"busy: {self.limits.max_concurrent} queries are already running; try again",
            )
        try:
            return self._run(sql, cap, began)
        finally:
            self._slots.release()

    def _run(self, sql: str, cap: int, began: float) -> SQLResult:
        cur = self._cursor()
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            cur.interrupt()

        timer = threading.Timer(self.limits.timeout_s, stop)
        timer.daemon = True
        try:
            statement, kind = self._check(sql, cur)
            timer.start()
            rel = cur.sql(statement)
            types = [str(t) for t in rel.types]
            reader = rel.to_arrow_reader(max(2048, min(cap + 1, 65_536)))
            batches: list[pa.RecordBatch] = []
            rows = 0
            try:
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows > cap:
                        break
            finally:
                reader.close()
            table = pa.Table.from_batches(batches, schema=reader.schema)
            truncated = table.num_rows > cap
            if truncated:
                table = table.slice(0, cap)
            return SQLResult(
                table=table,
                types=types,
                truncated=truncated,
                max_rows=cap,
                elapsed_s=time.perf_counter() - began,
                statement=kind,
            )
        except SQLError:
            raise
        except duckdb.Error as exc:
            raise self._failure(exc, fired.is_set()) from None
        except Exception as exc:  # the service must survive anything a query provokes
            raise SQLError("failed", f"query failed: {type(exc).__name__}: {exc}") from None
        finally:
            timer.cancel()
            cur.close()

    def _failure(self, exc: duckdb.Error, timed_out: bool) -> SQLError:
        text = str(exc)
        if timed_out or isinstance(exc, duckdb.InterruptException):
            return SQLError(
                "timeout",
                f"stopped: the query ran longer than the {self.limits.timeout_s:g} s limit.\n"
                f"DuckDB: {text}",
            )
        if isinstance(exc, duckdb.OutOfMemoryException):
            return SQLError(
                "memory",
                "stopped: the query needs more memory than the sandbox's "
                f"{self.limits.memory_limit} limit; aggregate more or add a LIMIT.\n"
                f"DuckDB: {text}",
            )
        if isinstance(exc, duckdb.PermissionException):
            return SQLError(
                "refused",
                f"refused: the SQL sandbox reads only the store's data folder "
                f"{self.lake}/ (use the views).\nDuckDB: {text}",
            )
        if _LOCKED in text:
            return SQLError("refused", f"refused: settings are locked in the SQL sandbox.\n{text}")
        return SQLError("failed", f"query failed: {text}")

    # ------------------------------------------------------------ catalogue
    def columns(self) -> pd.DataFrame:
        """Every view's columns and DuckDB types: ``view``, ``column``, ``type``, ``position``."""
        cur = self._cursor()
        try:
            return cur.execute(
                "SELECT table_name AS view, column_name AS column, data_type AS type, "
                "column_index AS position FROM duckdb_columns() "
                "WHERE NOT internal AND table_name IN "
                "(SELECT view_name FROM duckdb_views() WHERE NOT internal) "
                "ORDER BY view, position"
            ).df()
        finally:
            cur.close()

"""The store: a Hive-partitioned Parquet lake, read through DuckDB views.

This is the only module that imports DuckDB.  Layout under the store folder::

    lake/<table>/signal=<signal>/date=<YYYY-MM-DD>/region=<region>/hKK.parquet
                                        a data partition: one file per hour of the day,
                                        named by the END of its rows' roll-up hour
                                        (h00: the midnight step only; h01 (00:00, 01:00]
                                        ... h24 (23:00, 24:00); observatory.hour_files)
    lake/<table>/.../region=<region>/part.parquet  the whole day: written by a
                                        whole-day window (backfill, demo) or by the
                                        compaction of a closed day's hour files
                                        (Store.compact_closed), and by stores written
                                        before hour files
    lake/<table>/.../date=<D>/.tmp-compact/region=<region>/  a compaction in progress
    lake/<table>_hourly/signal=.../part.parquet   hourly roll-up of counters,
                                        histograms and gauges, one per data partition
    lake/<table>_5m/signal=.../part.parquet       the same per 5-minute period
    lake/gpu_steps_hourly/signal=gpu_steps/date=/region=/part.parquet
                                        GPU-steps (utilisation + power) per hour and
                                        whole utilisation percent, one per date/region
    lake/regions/regions.parquet        one row per configured region
    runs.jsonl                          the collector's run log (one JSON object a line)
    state.json                          per region: collected up to (UTC)
    compaction.json                     the newest date whose hour files are compacted
    .compaction-mark                    a counter, odd while a partition folder is
                                        swapped (readers rerun queries that overlap)
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
  the three above (:func:`hourly_rollup`), one file per day partition, updated with
  their data partition (the rewritten hours' rows replaced) and stamped with the
  partition folder's modification time (:meth:`Store.partition_stamp`; a roll-up
  written before hour files carries its ``part.parquet``'s); a stale one is never read
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

Which files a partition holds is known here only: other modules list them with
:meth:`Store.partitions`, :meth:`Store.partition_files`, :meth:`Store.data_files` and
detect changes with :meth:`Store.partition_stamp`.

Readers: :meth:`Store.query` / :meth:`Store.named` for trusted SQL (the dashboard's
named queries); :meth:`Store.sandbox` (:class:`SafeSQL`) for untrusted ad hoc SQL, on
a separate locked-down DuckDB instance (docs/sql.md).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from observatory.folder_exchange import ExchangeUnsupported, exchange, exchange_supported
from observatory.hour_files import (
    HOURS,
    LEGACY_FILE,
    folder_files,
    folder_stamp,
    hour_file_name,
    hour_indices,
    hour_range,
    hour_span,
    overlaps,
)

if TYPE_CHECKING:  # pandas is imported where it is used: a collector run never needs
    import pandas as pd  # it, and importing it costs about 0.4 CPU-seconds at start-up

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
log = logging.getLogger(__name__)

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
TORN_READ_ATTEMPTS = 6


class _TornRead(Exception):
    """One attempt of :meth:`Store.query_planned` read files that changed while it ran
    (``files``), or failed with a DuckDB ``error`` such a change explains: try again."""

    def __init__(self, files: list[str], error: duckdb.Error | None) -> None:
        super().__init__(", ".join(files))
        self.files = files
        self.error = error

#: What DuckDB reports when a file's footer and pages came from two versions of it: a
#: writer's ``os.replace`` landed between DuckDB's opens of the same path (seen under
#: the 10-session load test, docs/scaling.md).  Readers take no lock, so the query is
#: run again and then reads the new file whole.
#: A file listed when the query was planned and gone when it is opened (a closed
#: day's hour files compacted in between, :meth:`Store.compact_closed`) reads "No
#: files found" or "No such file": the query runs again on fresh file lists.
_TORN_READ_MESSAGES = re.compile(
    r"TProtocolException|No magic bytes found|Invalid Input Error: .*parquet"
    r"|No files found that match the pattern|No such file or directory",
    re.IGNORECASE,
)


def _torn_read(exc: BaseException) -> bool:
    """True for a DuckDB error that a concurrent atomic replace of a read file explains."""
    return isinstance(exc, duckdb.Error) and bool(_TORN_READ_MESSAGES.search(str(exc)))


#: A file a query names itself: a quoted SQL string literal ending in ``.parquet``
#: without glob characters (``parquet_source``'s lists, ``read_parquet('<file>')``).
#: A glob (a view over ``*/*/*/*.parquet``) is not matched: DuckDB lists it.
_LISTED_FILE = re.compile(r"'((?:[^'*?\[]|'')+\.parquet)'")
#: The compaction mark beside the lake (:meth:`Store.compact_partition`): a counter,
#: odd while a partition folder is being swapped, even otherwise.  Readers of globs
#: (views) compare it before and after a query (:func:`_compaction_mark`).
COMPACTION_MARK = ".compaction-mark"
#: An odd compaction mark older than this is a killed compactor's, not a swap.
_MARK_STALE_S = 30.0

#: A file's identity for the torn-read check: (inode, mtime in ns, size in bytes);
#: None when it does not exist.  A writer's atomic replace gives a new inode.
FileIdentity = tuple[int, int, int] | None


def planned_files(sql: str) -> list[str]:
    """The Parquet files ``sql`` names as string literals (no globs), in order, once
    each: what :meth:`Store.query` checks for a replace during the query."""
    found = (m.group(1).replace("''", "'") for m in _LISTED_FILE.finditer(sql))
    return list(dict.fromkeys(found))


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """``(st_ino, st_mtime_ns, st_size)`` of ``path`` (one ``stat``), None when missing."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def tree_identities(root: str | os.PathLike[str]) -> dict[str, FileIdentity]:
    """:func:`file_identity` of every file under ``root``, by path relative to it (to
    check that a hard-link copy's writers left the original's files alone)."""
    return {
        os.path.relpath(os.path.join(folder, name), root): file_identity(
            os.path.join(folder, name)
        )
        for folder, _, files in os.walk(root)
        for name in files
    }


def _changed(files: list[str], before: list[FileIdentity]) -> list[str]:
    """The ``files`` whose identity is no longer the one recorded in ``before``."""
    return [f for f, old in zip(files, before, strict=True) if file_identity(f) != old]


def _compaction_mark(root: Path) -> tuple[int, bool]:
    """The compaction mark of the store at ``root``: (counter, a swap in progress).

    ``(0, False)`` without a mark; an odd counter older than :data:`_MARK_STALE_S`
    (a compactor killed between its two writes) counts as no swap in progress.
    """
    path = root / COMPACTION_MARK
    try:
        with open(path, "rb") as fh:
            text = fh.read()
            age = time.time() - os.fstat(fh.fileno()).st_mtime
    except FileNotFoundError:
        return 0, False
    try:
        value = int(text)
    except ValueError:
        return -1, False
    return value, value % 2 == 1 and age < _MARK_STALE_S


class StoreError(RuntimeError):
    """A store operation failed; the message names the file or query."""


_T = TypeVar("_T")
#: What a read reports when a data file it listed was removed before it opened it.
_VANISHED = re.compile(r"No such file or directory|No files found that match", re.IGNORECASE)


def retry_on_vanished(read: Callable[[], _T], what: str) -> _T:
    """``read()``, run once more when it fails because a data file it listed was gone
    when it opened it: a closed day compacted between the listing and the read
    (:meth:`Store.compact_closed`; once per partition, a day after its date ends).

    For readers that list partition files and then read them outside
    :meth:`Store.query_planned` (caches keyed by file lists, pyarrow readers):
    ``read`` must list the files again itself.  A second failure is raised.

    Args:
        read: lists the files and reads them; no argument.
        what: the reader, for the log line (e.g. ``"experiment listing"``).

    Raises:
        whatever ``read`` raises the second time, or the first time when the error
        is not a vanished file (:class:`StoreError` or :class:`FileNotFoundError`).
    """
    try:
        return read()
    except FileNotFoundError as exc:
        log.info("%s: %s vanished while it was read; listing again", what, exc.filename)
    except StoreError as exc:
        if not _VANISHED.search(str(exc)):
            raise
        log.info("%s: a listed file vanished while it was read (%s); listing again", what, exc)
    return read()


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


def env_rollup(tiers: Iterable[int] | None = None) -> tuple[bool, list[int] | None]:
    """The roll-up tiers a reader may use, as ``$OBSERVATORY_ROLLUP`` says (the
    benchmarks' baselines; read on each call): ``0`` gives ``(False, None)`` (minute
    rows only), ``hourly`` ``(True, [3600])`` (the hourly tier only, the former path),
    anything else (default) ``(True, tiers)`` (the reader's own choice of tiers, None
    for :data:`WINDOW_TIERS`).  Passed on as :meth:`Store.window_rows`'s
    ``use_rollup`` and ``tiers``."""
    mode = os.environ.get("OBSERVATORY_ROLLUP", "1")
    if mode == "0":
        return False, None
    if mode == "hourly":
        return True, [3600]
    return True, None if tiers is None else list(tiers)


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


def _inside(path: Path, start: datetime, end: datetime) -> bool:
    """True when the file's ``ts_utc`` statistics show every row in ``(start, end]``
    (an empty file: True; unknown statistics or an unreadable footer: False)."""
    try:
        meta = pq.read_metadata(path)
        col = meta.schema.to_arrow_schema().get_field_index("ts_utc")
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            if group.num_rows == 0:
                continue
            stats = group.column(col).statistics
            if stats is None or not stats.has_min_max or stats.null_count:
                return False
            if not (stats.min > start and stats.max <= end):
                return False
        return True
    except (OSError, pa.ArrowException, ValueError, TypeError):
        return False


def _empty(path: Path) -> bool:
    """True when the data file holds no row (footer only; an unreadable one: False)."""
    try:
        return pq.read_metadata(path).num_rows == 0
    except (OSError, pa.ArrowException):
        return False


def _covers_day(folder: Path, day: date, start: datetime, end: datetime) -> bool:
    """True when the window ``(start, end]`` is a whole-day write of partition
    ``folder`` of ``day``: it holds every step of the day after midnight (hour files
    ``h01`` .. ``h24``; midnight's own step, ``h00``, may lie before the window, as in
    a window ``(D 00:00, D+1 00:00]``) and every data file the window overlaps holds
    only rows inside it (footer statistics), so the write replaces all their rows.
    Such a write stores the day as one ``part.parquet`` (:meth:`Store._write_day_file`)."""
    reach = hour_range(day, start, end)
    if reach.start > 1 or reach.stop != len(HOURS):
        return False
    return all(
        _inside(f, start, end) for f in folder_files(folder) if overlaps(day, f.name, start, end)
    )


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


def _split_by_hour(rows: pa.Table, day: date) -> dict[int, pa.Table]:
    """The rows of one partition of ``day`` per hour file index (0-24,
    :func:`observatory.hour_files.hour_indices`); each part keeps the rows' order.
    A collector step (one minute) is one hour: no sort, no copy."""
    if rows.num_rows == 0:
        return {}
    ts = rows["ts_utc"].cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
    index = hour_indices(ts, day)
    if index.min() == index.max():
        return {int(index[0]): rows}
    order = np.argsort(index, kind="stable")
    index, rows = index[order], rows.take(pa.array(order))
    cuts = [0, *(np.flatnonzero(index[1:] != index[:-1]) + 1).tolist(), len(index)]
    return {int(index[a]): rows.slice(a, b - a) for a, b in itertools.pairwise(cuts)}


def _read_rows(path: Path, schema: pa.Schema) -> pa.Table:
    """All rows of one store file as ``schema``.

    Raises:
        StoreError: the file cannot be read (the message names it).
    """
    try:
        return pq.read_table(path, schema=schema)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def _concat(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """``parts`` as one table of ``schema`` (a single part is returned as it is, its
    strings possibly dictionary-encoded, :func:`_column`)."""
    if not parts:
        return schema.empty_table()
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables([t.cast(schema) for t in parts])


def _ts_scalar(t: datetime) -> pa.Scalar:
    return pa.scalar(t, type=pa.timestamp("us"))


def _within(rows: pa.Table, column: str, lo: datetime, hi: datetime) -> pa.Table:
    """The rows of ``rows`` whose ``column`` lies in ``(lo, hi]``."""
    col = rows[column]
    return rows.filter(pc.and_(pc.greater(col, _ts_scalar(lo)), pc.less_equal(col, _ts_scalar(hi))))


def _outside_window(rows: pa.Table, start: datetime, end: datetime) -> pa.Table:
    """The rows of ``rows`` whose ``ts_utc`` lies outside ``(start, end]``."""
    ts = rows["ts_utc"]
    return rows.filter(
        pc.or_(pc.less_equal(ts, _ts_scalar(start)), pc.greater(ts, _ts_scalar(end)))
    )


def _patched(old: pa.Table, part: pa.Table, lo: datetime, hi: datetime) -> pa.Table:
    """Roll-up ``old`` (sorted by ``hour_utc`` first) with its periods in ``(lo, hi]``
    replaced by ``part`` (the new roll-up of those periods, sorted): still sorted."""
    col = old["hour_utc"]
    before = old.filter(pc.less_equal(col, _ts_scalar(lo)))
    after = old.filter(pc.greater(col, _ts_scalar(hi)))
    return pa.concat_tables([before, part.cast(old.schema), after])


def _restamp(folder: Path) -> int:
    """Give a partition ``folder`` a new modification time (ns) and return it: the
    freshness stamp of the roll-ups written from its files now.

    The time is the wall clock (so "modified since" checks hold), made different from
    the folder's current time: two writes within one timer tick of a file system with
    coarse timestamps still give two stamps, and a writer killed before its roll-ups
    leaves a folder time that no roll-up carries.
    """
    stamp = max(time.time_ns(), os.stat(folder).st_mtime_ns + 1)
    os.utime(folder, ns=(stamp, stamp))
    return stamp


def _subfolders(folder: Path, prefix: str) -> list[str]:
    """Names (``prefix`` removed) of the sub-folders of ``folder`` named ``prefix...``,
    sorted; empty when ``folder`` does not exist."""
    try:
        with os.scandir(folder) as entries:
            return sorted(
                e.name[len(prefix) :] for e in entries if e.name.startswith(prefix) and e.is_dir()
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _stamp_options(folder: Path) -> tuple[int, int | None] | None:
    """The stamps a fresh roll-up of partition ``folder`` may carry: the folder's
    modification time (ns), and its legacy ``part.parquet``'s (None without one; the
    stamp of roll-ups written before hour files; a writer changes that file's time
    before it writes into the partition).  None when the folder does not exist."""
    stamp = folder_stamp(folder)
    if stamp is None:
        return None
    try:
        return stamp, os.stat(folder / LEGACY_FILE).st_mtime_ns
    except FileNotFoundError:
        return stamp, None


@dataclass(frozen=True)
class _Change:
    """Hours of a partition just rewritten (:meth:`Store._write_rollups`): the roll-up
    periods in ``(lo, hi]`` are replaced by those of ``rows()``, the partition's rows
    of that span, in the tiers of ``fresh`` (whose old roll-up was fresh)."""

    lo: datetime
    hi: datetime
    rows: Callable[[], pa.Table]
    fresh: frozenset[int]


@dataclass(frozen=True)
class _Written:
    """One partition written by a window: data files written and the hour file
    indices whose rows (and roll-up periods) changed."""

    files: int
    hours: range


def _files_of_hours(day: date, files: list[Path], hour_ends: list[datetime]) -> list[Path]:
    """The ``files`` of a partition of ``day`` that may hold steps of the hours ending
    at ``hour_ends`` (each hour ``(h - 1 h, h]``)."""
    return [
        f for f in files if any(overlaps(day, f.name, h - timedelta(hours=1), h) for h in hour_ends)
    ]


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


@dataclass
class _Partition:
    """One partition of :meth:`Store.window_rows`: its date, data folders (one; two for
    GPU-steps) and fresh roll-up file per tier period."""

    day: date
    folders: list[Path]
    tiers: dict[int, Path]

    @functools.cached_property
    def _files(self) -> list[Path]:
        return [f for folder in self.folders for f in folder_files(folder)]

    def files(self, lo: datetime, hi: datetime) -> list[Path]:
        """Its data files that may hold steps in ``(lo, hi]`` (listed once; hour files
        of other hours are left out, a ``part.parquet`` never)."""
        return [f for f in self._files if overlaps(self.day, f.name, lo, hi)]


@dataclass(frozen=True)
class DataPartition:
    """One data partition folder ``lake/<table>/signal=/date=/region=/``
    (:meth:`Store.partitions`).

    Attributes:
        table: ``counters``, ``gauges`` or ``histograms``.
        signal, day, region: its Hive keys (``day`` a UTC date).
        folder: the folder; its data files are :meth:`files`.
    """

    table: str
    signal: str
    day: date
    region: str
    folder: Path

    def files(self) -> list[Path]:
        """Its data files now (hour files, then a legacy ``part.parquet``), sorted;
        one folder listing."""
        return folder_files(self.folder)


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
class Compaction:
    """What :meth:`Store.compact_closed` did.

    Attributes:
        compacted: partition folders whose data files became one ``part.parquet``.
        skipped: always 0 since folders with a ``part.parquet`` beside hour files
            are compacted too (kept for callers that read it).
        listed: partition folders looked at (the cost of finding them).
        supported: False when the file system cannot swap folders atomically
            (nothing is compacted then).
        remaining: candidates left for a later call because the call's time budget
            ran out (:meth:`Store.compact_closed` ``budget_s``).
    """

    compacted: int
    skipped: int
    listed: int
    supported: bool
    remaining: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What one :meth:`Store.replace_window` did: rows written and files touched."""

    rows: int
    files: int


def _create_views(con: duckdb.DuckDBPyConnection, sources: dict[str, str]) -> None:
    """Create the empty tables of ``sql/schema.sql`` and the views of ``sql/views.sql``.

    DuckDB binds a view when it is created, and binding a view over the lake lists
    every file of its glob; a view built on ``counters`` binds ``counters`` again, so
    the nine views listed the lake eight times.  So every view is first created over
    the empty typed tables (the files' types: sql/schema.sql), then only the views
    that read a ``{placeholder}`` are created again over the lake: three listings.
    Each query binds its views again by name, so the derived views read the lake
    (same rows, same types; bench/view_build.py measures both ways).
    """
    con.execute((SQL_DIR / "schema.sql").read_text(encoding="utf-8"))
    stand_in = (SQL_DIR / "views.sql").read_text(encoding="utf-8")
    stand_in = stand_in.format(**{name: f"_empty_{name}" for name in sources})
    con.execute(stand_in)
    empty = re.compile(r"\b_empty_(" + "|".join(map(re.escape, sources)) + r")\b")
    for statement in duckdb.extract_statements(stand_in):
        if empty.search(statement.query):
            con.execute(empty.sub(lambda m: sources[m.group(1)], statement.query))


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
        #: partition folders this object wrote hour files into (compaction candidates)
        self._written: set[DataPartition] = set()
        self._exchange_ok: bool | None = None
        #: False: queries skip the torn-read file check (:meth:`query_planned`;
        #: benchmarks' baseline only)
        self.verify_files = True
        #: queries run again because a file they read changed (tests, benchmarks)
        self.torn_retries = 0

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
            what = (
                "a file is there, not a folder"
                if self.root.exists() and not self.root.is_dir()
                else exc.strerror or str(exc)
            )
            raise StoreError(f"cannot create the store folder {self.root}: {what}") from None
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
          between writing data files and roll-ups), or that are missing, are rebuilt
          from all the partition's files.  Readers never use a stale roll-up (see
          :meth:`hourly_plan`); so is the daily tier (from the fresh hourly roll-up
          when only the daily one is missing: a store from an older version gets
          it at the cost of reading its hourly files).  The 5-minute tier is
          rebuilt so only on the newest ``fine_days`` dates of each table (a store
          from an older version gets it where the short presets read; older dates
          read hours plus minute rows, still exact, and get the tier when a writer
          rewrites them).

        Returns:
            what was done: temporary files removed, roll-ups rebuilt.

        Raises:
            StoreError: a data file of a stale partition cannot be read.
        """
        removed = 0
        cutoff = time.time() - tmp_age.total_seconds()
        if self.root.exists():
            for folder, dirs, files in os.walk(self.root):
                if COMPACT_DIR in dirs:  # a compaction killed before or after its swap
                    dirs.remove(COMPACT_DIR)
                    shutil.rmtree(Path(folder) / COMPACT_DIR, ignore_errors=True)
                    removed += 1
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
            recent = set(self.stored_dates(table)[-fine_days:]) if fine_days > 0 else set()
            for part in self.partitions(table):
                tiers = [p for p in ROLLUP_TIERS if p >= 3600 or part.day in recent]
                stale = [p for p in tiers if self._rollup_fresh(table, part.folder, p) is None]
                stamp = folder_stamp(part.folder)
                if stale and stamp is not None:
                    rows = functools.cache(lambda f=part.folder, t=table: self._all_rows(t, f))
                    self._write_rollups(table, part.folder, stamp, rows, stale)
                    rebuilt += 1
        pairs = {
            (part.day, part.region)
            for part in self.partitions("gauges", GPU_STEP_SIGNALS)
            if part.files()
        }
        for day, region in sorted(pairs):
            if self._gpu_steps_fresh(day, region) is None:
                self._write_gpu_steps(day, region)
                rebuilt += 1
        return Housekeeping(tmp_removed=removed, rollups_rebuilt=rebuilt)

    # ------------------------------------------------------------------ layout
    def partition_dir(self, table: str, signal: str, day: date, region: str) -> Path:
        """The folder of one data partition (or of a roll-up table's day file):
        ``lake/<table>/signal=<signal>/date=<day>/region=<region>``."""
        return (
            self.lake / table / f"signal={signal}" / f"date={day.isoformat()}" / f"region={region}"
        )

    def partition_files(self, table: str, signal: str, day: date, region: str) -> list[Path]:
        """The data files of one partition now, sorted (hour files ``h00``-``h24``, then a
        ``part.parquet`` written before hour files); empty when it has none.  One
        folder listing; the files are replaced atomically, so a reader may find one
        gone later (a query then retries, :meth:`query`)."""
        return folder_files(self.partition_dir(table, signal, day, region))

    def partition_stamp(self, table: str, signal: str, day: date, region: str) -> int | None:
        """A number (ns) that changes whenever any data file of the partition is
        written, created or removed: the folder's modification time (None: no
        partition).  Writers set it to a new wall-clock time after each write, so it
        is also "when the partition last changed" (one ``stat``)."""
        return folder_stamp(self.partition_dir(table, signal, day, region))

    def stored_dates(self, table: str, signals: Iterable[str] | None = None) -> list[date]:
        """The dates with a partition folder of ``table`` (``signals``; None: all),
        ascending (folder listings only)."""
        days: set[date] = set()
        for sig in self.stored_signals(table) if signals is None else signals:
            names = _subfolders(self.lake / table / f"signal={sig}", "date=")
            days.update(d for d in map(_parse_date, names) if d)
        return sorted(days)

    def stored_signals(self, table: str) -> list[str]:
        """The signals with a folder in ``table``, sorted (one folder listing)."""
        return _subfolders(self.lake / table, "signal=")

    def partitions(
        self,
        table: str,
        signals: Iterable[str] | None = None,
        dates: Iterable[date] | None = None,
        regions: Iterable[str] | None = None,
    ) -> Iterator[DataPartition]:
        """The data partition folders of ``table`` (of ``signals``, ``dates`` and
        ``regions``; None: every one stored), by signal, date and region.

        Folder listings only (no data file is opened or listed): a page planning
        thousands of partitions pays one listing per date folder.  A folder whose
        name is not a date is skipped.
        """
        wanted = None if regions is None else set(regions)
        for sig in self.stored_signals(table) if signals is None else signals:
            sig_dir = self.lake / table / f"signal={sig}"
            if dates is None:
                days = [d for d in (_parse_date(n) for n in _subfolders(sig_dir, "date=")) if d]
            else:
                days = list(dates)
            for day in days:
                date_dir = sig_dir / f"date={day.isoformat()}"
                for region in _subfolders(date_dir, "region="):
                    if wanted is None or region in wanted:
                        yield DataPartition(table, sig, day, region, date_dir / f"region={region}")

    def data_files(
        self,
        table: str,
        signals: Iterable[str] | None = None,
        dates: Iterable[date] | None = None,
        regions: Iterable[str] | None = None,
    ) -> Iterator[Path]:
        """Every data file of the partitions :meth:`partitions` lists (one listing per
        partition folder)."""
        for part in self.partitions(table, signals, dates, regions):
            yield from part.files()

    def _all_rows(self, table: str, folder: Path) -> pa.Table:
        """Every row of a partition folder's data files (``table``'s schema).

        Raises:
            StoreError: a file cannot be read.
        """
        schema = SCHEMAS[table]
        return _concat([_read_rows(f, schema) for f in folder_files(folder)], schema)

    # ------------------------------------------------------------------ roll-ups
    def rollup_path(self, table: str, partition: Path, period_s: int = 3600) -> Path:
        """The hourly (or ``period_s``, :data:`ROLLUP_TIERS`) roll-up file of a data
        partition of ``table``: ``partition`` is its folder (or a data file in it)."""
        folder = partition.parent if partition.suffix == ".parquet" else partition
        return self._rollup_paths(table, folder, [period_s])[period_s]

    def _rollup_paths(self, table: str, folder: Path, periods: Iterable[int]) -> dict[int, Path]:
        """:meth:`rollup_path` of partition ``folder`` for each tier of ``periods``
        (string operations: planners call it for thousands of partitions)."""
        base = os.fspath(self.lake / table) + os.sep
        text = os.fspath(folder)
        rel = text[len(base) :] if text.startswith(base) else str(folder.relative_to(base))
        lake = os.fspath(self.lake)
        return {
            p: Path(os.path.join(lake, ROLLUP_TIERS[p][table], rel, ROLLUP_FILE)) for p in periods
        }

    def _rollup_fresh(self, table: str, folder: Path, period_s: int = 3600) -> Path | None:
        """The roll-up of partition ``folder`` when derived from its files now, else None
        (:meth:`_fresh_rollups` of one tier)."""
        return self._fresh_rollups(table, folder, [period_s]).get(period_s)

    def _fresh_rollups(self, table: str, folder: Path, periods: Iterable[int]) -> dict[int, Path]:
        """The roll-ups of partition ``folder`` among the tiers ``periods`` that are
        derived from its files now, by period.

        Fresh: the roll-up's modification time (ns) equals the folder's
        (:meth:`partition_stamp`; every write gives the folder a new time, so a roll-up
        left behind by a writer killed before it no longer matches), or, for a roll-up
        written before hour files, its ``part.parquet``'s (a writer changes that time
        too before it writes into such a partition).  One ``stat`` per roll-up, one of
        the folder, and one of ``part.parquet`` when a roll-up does not match the folder.
        """
        out: dict[int, Path] = {}
        stamp: int | None = None
        legacy: int | None = None
        for period, rollup in self._rollup_paths(table, folder, periods).items():
            try:
                mtime = rollup.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if stamp is None:
                stamp = folder_stamp(folder) or -1
            if mtime == stamp:
                out[period] = rollup
                continue
            if legacy is None:  # a roll-up written before hour files: its part.parquet's time
                try:
                    legacy = os.stat(folder / LEGACY_FILE).st_mtime_ns
                except FileNotFoundError:
                    legacy = -1
            if mtime == legacy:
                out[period] = rollup
        return out

    def _write_rollups(
        self,
        table: str,
        folder: Path,
        stamp: int,
        all_rows: Callable[[], pa.Table],
        periods: Iterable[int] = ROLLUP_TIERS,
        change: _Change | None = None,
    ) -> None:
        """Write the roll-ups (every tier of ``periods``) of partition ``folder``,
        stamped ``stamp``.  A tier in ``change.fresh`` is patched: its old periods in
        ``(change.lo, change.hi]`` are replaced by the roll-up of ``change.rows()``;
        any other tier is rebuilt from ``all_rows()``.  The finest tier is summed from
        rows, each coarser one from the finer roll-up (:func:`coarser_rollup`): one
        pass over the rows.  A tier whose periods the change does not cover whole (the
        daily tier after an hour's write) is summed again from the whole finer roll-up
        just written (a partition's 25 hours, not its rows).  When ``periods`` holds no
        finer tier, a fresh finer roll-up on disk is read instead of the rows
        (:meth:`housekeeping` adding the daily tier to an older store).

        Raises:
            StoreError: an old roll-up or a data file cannot be read.
        """
        finer: tuple[int, pa.Table, pa.Table] | None = None  # period, whole, changed part
        periods = sorted(periods)
        base = self._fresh_finer(table, folder, periods[0]) if periods and not change else None
        if base is not None:
            rows = _read_rows(base[1], ROLLUP_SCHEMAS[ROLLUP_TIERS[base[0]][table]])
            finer = (base[0], rows, rows)
        for period in periods:
            path = self.rollup_path(table, folder, period)
            coarse = finer is not None and period % finer[0] == 0
            aligned = change is not None and all(
                _align(t, period, False) == t for t in (change.lo, change.hi)
            )
            if change is not None and period in change.fresh and aligned:
                if finer is not None and coarse:
                    part = coarser_rollup(table, finer[2], period)
                else:
                    part = hourly_rollup(table, change.rows(), period)
                schema = ROLLUP_SCHEMAS[ROLLUP_TIERS[period][table]]
                whole = _patched(_read_rows(path, schema), part, change.lo, change.hi)
            else:
                if finer is not None and coarse:
                    whole = coarser_rollup(table, finer[1], period)
                else:
                    whole = hourly_rollup(table, all_rows(), period)
                part = whole if change is None else _within(whole, "hour_utc", change.lo, change.hi)
            _atomic_write_table(path, whole, stamp)
            finer = (period, whole, part)

    def _fresh_finer(self, table: str, folder: Path, period: int) -> tuple[int, Path] | None:
        """The coarsest fresh roll-up of ``folder`` whose period divides ``period`` and
        is shorter (its period and file), or None."""
        for finer in sorted(ROLLUP_TIERS, reverse=True):
            if finer < period and period % finer == 0:
                path = self._rollup_fresh(table, folder, finer)
                if path is not None:
                    return finer, path
        return None

    def _gpu_step_folders(self, day: date, region: str) -> list[Path]:
        """The ``gpu_utilization`` and ``gpu_power`` partition folders of ``day`` and
        ``region`` (whether or not they exist)."""
        return [self.partition_dir("gauges", s, day, region) for s in GPU_STEP_SIGNALS]

    def _gpu_step_files(self, day: date, region: str) -> list[Path]:
        """The data files of the ``gpu_utilization`` and ``gpu_power`` partitions of
        ``day`` and ``region``."""
        return [f for folder in self._gpu_step_folders(day, region) for f in folder_files(folder)]

    def gpu_steps_path(self, day: date, region: str) -> Path:
        """The GPU-step roll-up file of ``day`` and ``region`` (:data:`GPU_STEPS`)."""
        return self.partition_dir(GPU_STEPS, "gpu_steps", day, region) / ROLLUP_FILE

    def _gpu_steps_fresh(self, day: date, region: str) -> Path | None:
        """The GPU-step roll-up of ``day`` and ``region`` when built from the files
        there now, else None.

        Its modification time is the newest of its two partitions' stamps
        (:meth:`partition_stamp`; before hour files, of their ``part.parquet``s): any
        later write into either partition gives that one a newer stamp, so the newest
        no longer matches (clocks are assumed not to go back).
        """
        options = [o for o in map(_stamp_options, self._gpu_step_folders(day, region)) if o]
        if not options:
            return None
        rollup = self.gpu_steps_path(day, region)
        try:
            stamp = rollup.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        # Either every partition's folder stamp (this writer) or every partition's
        # day-file time (a roll-up written before hour files), never a mix: a mix
        # would take a partition whose folder changed (a killed writer) for fresh.
        if stamp == max(o[0] for o in options):
            return rollup
        legacy = [o[1] for o in options]
        if all(t is not None for t in legacy) and stamp == max(t for t in legacy if t is not None):
            return rollup
        return None

    def _write_gpu_steps(
        self, day: date, region: str, change: tuple[datetime, datetime] | None = None
    ) -> None:
        """Write the GPU-step roll-up of ``day`` and ``region``: rebuilt from every
        file, or with ``change`` = ``(lo, hi]`` (whole hours; the old roll-up must be
        fresh from before the write) only those hours' rows replaced."""
        folders = self._gpu_step_folders(day, region)
        stamps = [s for s in map(folder_stamp, folders) if s is not None]
        if not stamps:
            return
        path = self.gpu_steps_path(day, region)
        files = [f for folder in folders for f in folder_files(folder)]
        if change is None:
            rollup = gpu_steps_rollup(files)
        else:
            lo, hi = change
            part = gpu_steps_rollup([f for f in files if overlaps(day, f.name, lo, hi)], lo, hi)
            rollup = _patched(_read_rows(path, GPU_STEPS_SCHEMA), part, lo, hi)
        _atomic_write_table(path, rollup, max(stamps))

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
        (whole hours) and, for the hours of ``split_hours`` (hour ends whose hour a
        window edge cuts) that the partition holds, the data files holding those
        hours' steps (their hour files, and a legacy ``part.parquet``); without a fresh
        roll-up (never built, or stale after a killed writer), all its data files,
        read in full.  Reading these instead of the step rows is exact.
        ``use_rollup=False`` reads every data file in full (the step-row baseline).

        Raises:
            StoreError: ``table`` keeps no roll-up.
        """
        if table not in ROLLUP_OF:
            raise StoreError(f"{table} keeps no hourly roll-up; expected one of {list(ROLLUP_OF)}")
        start, end = _to_utc_naive(start), _to_utc_naive(end)
        split = [_to_utc_naive(h) for h in split_hours]
        split_dates = _split_dates(split)
        plan = HourlyPlan([], [], [])
        for part in self.partitions(table, signals, _dates_in(start, end)):
            rollup = self._rollup_fresh(table, part.folder) if use_rollup else None
            cut = part.day in split_dates
            if rollup is None:
                data = part.files()
            elif cut:
                data = _files_of_hours(part.day, part.files(), split)
            else:
                data = []
            plan.add(rollup, data, cut)
        return plan

    def gpu_steps_plan(
        self,
        start: datetime,
        end: datetime,
        split_hours: Iterable[datetime] = (),
        use_rollup: bool = True,
    ) -> HourlyPlan:
        """:meth:`hourly_plan` for GPU-steps: per date and region of ``(start, end]``,
        the fresh GPU-step roll-up (``hourly``) and, on dates of ``split_hours``, the
        ``gpu_utilization`` and ``gpu_power`` files of those hours
        (``minutes_split``); without a fresh one, all their files (``minutes_all``)."""
        start, end = _to_utc_naive(start), _to_utc_naive(end)
        split = [_to_utc_naive(h) for h in split_hours]
        split_dates = _split_dates(split)
        plan = HourlyPlan([], [], [])
        for day, region in self._gpu_step_partitions(_dates_in(start, end)):
            rollup = self._gpu_steps_fresh(day, region) if use_rollup else None
            cut = day in split_dates
            files = self._gpu_step_files(day, region) if rollup is None or cut else []
            plan.add(rollup, files if rollup is None else _files_of_hours(day, files, split), cut)
        return plan

    def _gpu_step_partitions(self, dates: list[date]) -> list[tuple[date, str]]:
        """(date, region) of every ``gpu_utilization`` or ``gpu_power`` partition of
        ``dates``, sorted."""
        return sorted(
            {(p.day, p.region) for p in self.partitions("gauges", GPU_STEP_SIGNALS, dates)}
        )

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
            for day, region in self._gpu_step_partitions(dates):
                fresh = self._gpu_steps_fresh(day, region) if use_rollup else None
                tiers = {3600: fresh} if fresh is not None and 3600 in periods else {}
                out.append(_Partition(day, self._gpu_step_folders(day, region), tiers))
            return out
        for part in self.partitions(kind, signals, dates):
            tiers = self._fresh_rollups(kind, part.folder, periods) if use_rollup else {}
            out.append(_Partition(part.day, [part.folder], tiers))
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
        cuts: Iterable[datetime] = (),
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
            tiers: the tier periods allowed (None: :data:`WINDOW_TIERS`, hours and 5
                minutes; ``[86400, 3600, 300]``: the daily tier too, for sums of
                counters and histograms; ``[3600]``: hourly only, for benchmarks).
            cuts: times inside the window no piece may straddle (the SLO batched
                pass's window and maintenance edges): every row then lies wholly on
                one side of each cut, dated by its step's or period's end.

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
        allowed = (
            (3600,) if kind == "gpu_steps" else tuple(ROLLUP_TIERS) if tiers else WINDOW_TIERS
        )
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
        bounds = sorted({start, end} | {c for c in map(_to_utc_naive, cuts) if start < c < end})
        selects = []
        for group_tiers, members in groups.items():
            pieces = [
                piece
                for a, b in itertools.pairwise(bounds)
                for piece in _tier_pieces(a, b, group_tiers)
            ]
            for period, lo, hi in pieces:
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
        data = [f for m in parts for f in m.files(lo, hi)]
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

    def bucket_layouts(self, signal: str) -> pd.DataFrame:
        """The ``le`` bounds each series of a histogram signal has: one row per
        ``region``, ``model``, ``arm`` (a missing label as ``""``) and ``le``.

        Exporters differ (vLLM, TGI and Prometheus's own histograms have other bounds),
        so a threshold is read from each series' own buckets (docs/slo.md).  Read from
        the fresh hourly roll-ups (60x fewer rows than the steps) and from the data
        files of partitions that have none.
        """

        def plan() -> str:
            rollups: list[Path] = []
            data: list[Path] = []
            for part in self.partitions("histograms", [signal]):
                rollup = self._rollup_fresh("histograms", part.folder)
                if rollup is None:
                    data.extend(part.files())
                else:
                    rollups.append(rollup)
            cols = "region, coalesce(model, '') AS model, coalesce(arm, '') AS arm, le"
            return (
                f"SELECT DISTINCT * FROM (SELECT {cols} FROM "
                f"{self.parquet_source('histograms_hourly', rollups)} UNION ALL "
                f"SELECT {cols} FROM {self.parquet_source('histograms', data)}) "
                "ORDER BY region, model, arm, le"
            )

        return self.query_planned(plan)

    def latest_step(self, table: str, signals: Iterable[str]) -> datetime | None:
        """The last stored ``ts_utc`` of ``signals`` in ``table`` (None without rows).

        Reads only the newest date partitions (newest first, until one holds rows),
        not the whole table.
        """
        signals = list(signals)
        for day in reversed(self.stored_dates(table, signals)):
            if not list(self.data_files(table, signals, [day])):
                continue
            df = self.query_planned(functools.partial(self._max_ts_sql, table, signals, [day]))
            t = df["t"].iloc[0]
            import pandas as pd

            if pd.notna(t):
                return pd.Timestamp(t).to_pydatetime()
        return None

    def _max_ts_sql(self, table: str, signals: list[str], dates: list[date]) -> str:
        """SQL: the newest ``ts_utc`` of the data files of ``signals`` on ``dates`` now."""
        files = list(self.data_files(table, signals, dates))
        return f"SELECT max(ts_utc) AS t FROM {self.parquet_source(table, files)}"

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

        Idempotent: writing the same window twice leaves the same rows.  Rows of other
        windows, signals and regions are untouched.  Only the hour files the window
        touches are rewritten (read, the window's rows dropped, the new ones added,
        replaced atomically); an emptied file stays as an empty file (a reader may
        have listed it).  A legacy ``part.parquet`` holding rows of the window is
        rewritten without them first, then the hour files are written ("delete then
        write": a reader may briefly miss those rows, never count them twice).  Then
        the partition folder gets a new stamp and the roll-ups of the rewritten hours
        are replaced in each tier (:meth:`_write_rollups`; a tier that was stale or
        missing is rebuilt from all the partition's files), and so is the GPU-step
        roll-up of GPU utilisation and power.

        Args:
            table: ``counters``, ``gauges`` or ``histograms``.
            region: region name.
            signals: every signal this window covers; a signal with no rows in
                ``frame`` has its old rows in the window deleted.
            start, end: the window, UTC (naive or aware).
            frame: rows with a ``signal`` column plus the table's columns; every
                ``ts_utc`` must lie in ``(start, end]``.  A pyarrow Table is taken
                as it is (the collector's fast path: no pandas conversion).

        Returns:
            rows written and data files written.

        Raises:
            StoreError: unknown table, missing columns, rows outside the window or of
                other signals, or a stored file that cannot be read (named).
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
            if ts.dt.tz is not None:
                ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
            bad = (ts <= start) | (ts > end)
            if bad.any():
                raise StoreError(
                    f"{table}: region {region}: {int(bad.sum())} rows fall outside the window "
                    f"({start.isoformat()}, {end.isoformat()}], e.g. {ts[bad].iloc[0]}"
                )
            body = frame[["signal", *schema.names]].assign(ts_utc=ts)
            rows = pa.Table.from_pandas(body, preserve_index=False)
        else:
            rows = pa.table({"signal": pa.array([], pa.string())})
        return self._replace_window_arrow(table, region, signal_list, start, end, rows)

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
        parts_by_key: dict[tuple[str, date], pa.Table] = {}
        if new.num_rows:
            ts = new["ts_utc"].cast(pa.timestamp("us"))
            bad = pc.or_(pc.less_equal(ts, _ts_scalar(start)), pc.greater(ts, _ts_scalar(end)))
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
        gpu = table == "gauges" and bool(set(signal_list) & set(GPU_STEP_SIGNALS))
        for day in _dates_in(start, end):
            gpu_fresh = gpu and self._gpu_steps_fresh(day, region) is not None
            gpu_hours: list[int] = []
            for sig in signal_list:
                fresh = parts_by_key.get((sig, day))
                rows += fresh.num_rows if fresh is not None else 0
                written = self._write_partition(table, sig, day, region, start, end, fresh)
                if written is None:
                    continue
                files += written.files
                if sig in GPU_STEP_SIGNALS:
                    gpu_hours += [written.hours.start, written.hours.stop - 1]
            if gpu_hours:
                lo = hour_span(day, min(gpu_hours))[0]
                hi = hour_span(day, max(gpu_hours))[1]
                self._write_gpu_steps(day, region, (lo, hi) if gpu_fresh else None)
        return WriteResult(rows=rows, files=files)

    def _write_partition(
        self,
        table: str,
        signal: str,
        day: date,
        region: str,
        start: datetime,
        end: datetime,
        new: pa.Table | None,
    ) -> _Written | None:
        """Write the window ``(start, end]`` of one partition (``new``: its rows, or
        None to delete the window's rows), then its roll-ups; None when nothing in
        it changes (no new rows, no stored row in the window)."""
        schema = SCHEMAS[table]
        folder = self.partition_dir(table, signal, day, region)
        if new is not None and new.num_rows and _covers_day(folder, day, start, end):
            return self._write_day_file(table, folder, day, start, end, new)
        by_hour = _split_by_hour(new, day) if new is not None else {}
        todo = [
            k
            for k in hour_range(day, start, end)
            if k in by_hour
            or (
                (folder / hour_file_name(k)).exists()
                and not _outside(folder / hour_file_name(k), start, end)
            )
        ]
        legacy = folder / LEGACY_FILE
        has_legacy = legacy.exists()
        legacy_hit = has_legacy and not _outside(legacy, start, end)
        if not todo and not legacy_hit:
            return None
        tiers = [
            p for p in ROLLUP_TIERS if table in ROLLUP_OF and self._rollup_fresh(table, folder, p)
        ]
        keep = functools.partial(_outside_window, start=start, end=end)
        legacy_rows: pa.Table | None = None
        if legacy_hit:  # delete first: a reader may miss these rows, never see them twice
            legacy_rows = keep(_read_rows(legacy, schema))
            _atomic_write_table(legacy, legacy_rows)
        elif has_legacy:  # its time is a roll-up stamp of the old layout: change it
            now = time.time_ns()
            os.utime(legacy, ns=(now, now))
        written: dict[int, pa.Table] = {}
        for k in todo:
            path = folder / hour_file_name(k)
            parts = [keep(_read_rows(path, schema))] if path.exists() else []
            if k in by_hour:
                parts.append(by_hour[k])
            combined = _concat(parts, schema)
            if not _is_sorted(combined["ts_utc"]):
                combined = combined.sort_by([("ts_utc", "ascending")])
            _atomic_write_table(path, combined)
            written[k] = combined
        stamp = _restamp(folder)
        self._written.add(DataPartition(table, signal, day, region, folder))
        hours = hour_range(day, start, end) if legacy_hit else range(todo[0], todo[-1] + 1)
        if table in ROLLUP_OF:
            lo, hi = hour_span(day, hours.start)[0], hour_span(day, hours.stop - 1)[1]

            def changed_rows() -> pa.Table:
                parts = [
                    written[k] if k in written else _read_rows(folder / hour_file_name(k), schema)
                    for k in hours
                    if k in written or (folder / hour_file_name(k)).exists()
                ]
                if has_legacy:
                    old = legacy_rows if legacy_rows is not None else _read_rows(legacy, schema)
                    parts.append(_within(old, "ts_utc", lo, hi))
                return _concat(parts, schema)

            def all_rows() -> pa.Table:  # what this write holds in memory is not read again
                held = {hour_file_name(k): t for k, t in written.items()}
                if legacy_rows is not None:
                    held[LEGACY_FILE] = legacy_rows
                files = folder_files(folder)
                return _concat(
                    [held[f.name] if f.name in held else _read_rows(f, schema) for f in files],
                    schema,
                )

            change = _Change(lo, hi, functools.cache(changed_rows), frozenset(tiers))
            self._write_rollups(
                table, folder, stamp, functools.cache(all_rows), ROLLUP_TIERS, change
            )
        return _Written(files=len(todo) + int(legacy_hit), hours=hours)

    def _write_day_file(
        self, table: str, folder: Path, day: date, start: datetime, end: datetime, new: pa.Table
    ) -> _Written:
        """Write a whole-day window (:func:`_covers_day`) of partition ``folder`` as
        one ``part.parquet``: the hour files of the window that hold rows are emptied
        first, then the day file replaces any old one ("delete then write", as for
        legacy day files: a reader in between may miss the window's rows, never count
        them twice), then the folder gets a new stamp and every roll-up tier is
        rebuilt from the partition's rows (``new`` plus an ``h00`` before the window).
        One file per partition-day, as before hour files: what whole-day writers
        (backfill, ``observatory demo``, test fixtures) cost and what readers open.

        Raises:
            StoreError: a data file outside the window cannot be read (named).
        """
        schema = SCHEMAS[table]
        rows = new if _is_sorted(new["ts_utc"]) else new.sort_by([("ts_utc", "ascending")])
        emptied = 0
        kept: list[Path] = []
        for path in folder_files(folder):
            if path.name == LEGACY_FILE:
                continue
            if not overlaps(day, path.name, start, end):
                kept.append(path)
            elif not _empty(path):
                _atomic_write_table(path, schema.empty_table())
                emptied += 1
        _atomic_write_table(folder / LEGACY_FILE, rows)
        stamp = _restamp(folder)
        if table in ROLLUP_OF:

            def all_rows() -> pa.Table:
                return _concat([*(_read_rows(f, schema) for f in kept), rows], schema)

            self._write_rollups(table, folder, stamp, functools.cache(all_rows), ROLLUP_TIERS)
        return _Written(files=1 + emptied, hours=hour_range(day, start, end))

    # ------------------------------------------------------------------ compaction
    def compact_partition(self, part: DataPartition) -> bool:
        """Merge the data files of one partition into one ``part.parquet``, swapping
        folders so that readers never see a double count or a gap.  Call it holding
        the writer lock (:meth:`writer`), on a closed day (:meth:`compact_closed`).

        The rows (every hour file and a ``part.parquet`` beside them, sorted by
        ``ts_utc``) are written into ``date=D/.tmp-compact/region=R/``
        (:data:`COMPACT_DIR`), that folder gets the partition folder's stamp (its
        modification time: the roll-ups stay fresh), and the two folders are
        exchanged in one ``renameat2(RENAME_EXCHANGE)``
        (:mod:`observatory.folder_exchange`); then the old folder is deleted.  A
        reader that listed an old hour file and opens it after the swap gets "file
        not found" and runs again (:meth:`query_planned`).

        A folder holding a ``part.parquet`` beside hour files (a day file written into
        later) is compacted too: the writer keeps their rows disjoint (a write over
        the day file's rows deletes them from it before it writes the hour file), so
        their union is exact.  The new file has the old one's name; a reader that
        opened the old hour files before the swap and the new ``part.parquet`` after
        it would count the hour files' rows twice, so the swap is bracketed by the
        compaction mark (:data:`COMPACTION_MARK`), which every :meth:`query` checks,
        and the new file's identity differs from the old one's (planned files are
        checked too).  The new file keeps the old ``part.parquet``'s modification
        time (a roll-up stamp of stores written before hour files).

        Returns:
            True when the partition was compacted; False when there was nothing to
            do (no hour file).

        Raises:
            ExchangeUnsupported: the file system cannot exchange folders (nothing
                changed).
            StoreError: a data file cannot be read (named); nothing changed.
        """
        folder = part.folder
        files = folder_files(folder)
        if not any(f.name != LEGACY_FILE for f in files):
            return False
        stamp = folder_stamp(folder)
        if stamp is None:
            return False
        schema = SCHEMAS[part.table]
        rows = _concat([_read_rows(f, schema) for f in files], schema)
        if not _is_sorted(rows["ts_utc"]):
            rows = rows.sort_by([("ts_utc", "ascending")])
        legacy_time = file_identity(folder / LEGACY_FILE)
        side = folder.parent / COMPACT_DIR / folder.name
        if side.exists():
            shutil.rmtree(side)
        side.mkdir(parents=True)
        _atomic_write_table(
            side / LEGACY_FILE, rows, None if legacy_time is None else legacy_time[1]
        )
        os.utime(side, ns=(stamp, stamp))
        if folder_stamp(folder) != stamp:  # the writer lock makes this impossible
            raise StoreError(f"{folder} changed while it was compacted; left as it was")
        self._bump_mark(swapping=True)
        try:
            exchange(side, folder)
            if folder_stamp(folder) != stamp:  # a file system that stamps the swap
                os.utime(folder, ns=(stamp, stamp))
        finally:
            self._bump_mark(swapping=False)
        shutil.rmtree(side)
        with contextlib.suppress(OSError):
            side.parent.rmdir()
        return True

    def _bump_mark(self, swapping: bool) -> None:
        """Move the compaction mark (:data:`COMPACTION_MARK`) to its next odd value
        before a swap (``swapping``), to its next even value after one.

        Written to a temporary name and renamed (readers see one value or the next),
        without ``fsync``: after a crash a reader only needs it to differ.
        """
        value = max(_compaction_mark(self.root)[0], 0) + 1
        if value % 2 != int(swapping):
            value += 1
        self.root.mkdir(parents=True, exist_ok=True)
        with _replacing(self.root / COMPACTION_MARK, ".tmp") as tmp, open(tmp, "w") as fh:
            fh.write(str(value))

    def compact_closed(
        self,
        now: datetime | None = None,
        grace: timedelta = COMPACT_GRACE,
        budget_s: float | None = None,
    ) -> Compaction:
        """Compact every closed day's partitions (:meth:`compact_partition`): a date
        D is closed when ``D + 1 day + grace <= now`` (default: dates older than
        yesterday, UTC).  Call it holding the writer lock, after writing.

        Cheap when called every minute: it lists only the partitions of dates after
        the newest date it finished before (:data:`COMPACTION_NOTE`; the first call
        on a store lists every date) plus the partitions this object wrote hour files
        into since its last call; nothing is listed on a minute with neither.  A
        partition written later into an already compacted date by another process
        keeps its hour files (still exact) until a writer of it compacts it.  When
        the file system cannot exchange folders atomically, nothing is compacted and
        a warning is logged once per store object.

        With ``budget_s`` the work is spread over calls (issue #9: a newly closed
        date of a 20-region fleet is 17 CPU-s, too much for one collector step): no
        partition is started once ``budget_s`` seconds of wall-clock time have
        passed since the call began, the rest is left (:attr:`Compaction.remaining`)
        and the note is not moved, so the next call lists the same dates again (a
        folder listing per partition; those already compacted hold one file and are
        passed over) and goes on, oldest first.  A call overruns the budget by at
        most one partition's compaction, and compacts at least one partition
        (a partition already compacted costs a folder listing and does not count).

        Returns:
            counts of what was done (:class:`Compaction`).

        Raises:
            StoreError: a data file of a closed partition cannot be read (named);
                the partitions before it are compacted, the rest stay as they were.
        """
        began = time.monotonic()
        now = _to_utc_naive(now or datetime.now(UTC))
        last_closed = (now - grace).date() - timedelta(days=1)
        try:
            note = json.loads((self.root / COMPACTION_NOTE).read_text(encoding="utf-8"))
            done = date.fromisoformat(note["through"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            done = None
        candidates = {p for p in self._written if p.day <= last_closed}
        scan = done is None or done < last_closed
        if scan:
            for table in SCHEMAS:
                days = [
                    d
                    for d in self.stored_dates(table)
                    if d <= last_closed and (done is None or d > done)
                ]
                candidates.update(self.partitions(table, dates=days))
        if not candidates:
            if scan:
                self._note_compacted(last_closed)
            return Compaction(0, 0, 0, True)
        if self._exchange_ok is None:
            self.lake.mkdir(parents=True, exist_ok=True)
            self._exchange_ok = exchange_supported(self.lake)
            if not self._exchange_ok:
                log.warning(
                    "compaction skipped: %s cannot swap folders atomically "
                    "(renameat2 RENAME_EXCHANGE); closed days keep their hour files",
                    self.lake,
                )
        if not self._exchange_ok:
            return Compaction(0, 0, len(candidates), False)
        compacted = 0
        todo = sorted(candidates, key=lambda p: (p.day, p.folder))
        for i, part in enumerate(todo):
            if budget_s is not None and compacted and time.monotonic() - began >= budget_s:
                return Compaction(compacted, 0, len(candidates), True, remaining=len(todo) - i)
            try:
                if self.compact_partition(part):
                    compacted += 1
            except ExchangeUnsupported as exc:
                self._exchange_ok = False
                log.warning("compaction skipped: %s", exc)
                return Compaction(compacted, 0, len(candidates), False)
            self._written.discard(part)
        if scan:
            self._note_compacted(last_closed)
        return Compaction(compacted, 0, len(candidates), True)

    def _note_compacted(self, through: date) -> None:
        """Record that every partition of dates up to ``through`` was compacted."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            self.root / COMPACTION_NOTE, json.dumps({"through": through.isoformat()}).encode()
        )

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

    def view_key(self) -> tuple[tuple[str, str], ...]:
        """What the views of :meth:`connect` read, as a hashable key: each view's
        source (a file pattern, or an empty table while its folder has no file).

        A view over a file pattern lists the files again in every query, so a
        connection stays current while data is written; it needs rebuilding only when
        this key changes (a table got its first file).  A few ``glob`` calls, each
        stopping at the first file."""
        return tuple(sorted(self._view_sources().items()))

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

        Checked for torn reads (:meth:`query_planned`): a query is run again when a
        Parquet file it names was replaced while it ran, or a compaction swapped a
        partition folder meanwhile.  A caller that lists files itself should use
        :meth:`query_planned`, which lists them again for each attempt.

        Raises:
            StoreError: DuckDB rejected the query (the message holds its text), or
                the files it names changed in every attempt (they are named).
        """
        return self._query_retrying(lambda: sql, params, replans=False)

    def query_planned(
        self, build: Callable[[], str], params: dict[str, Any] | list[Any] | None = None
    ) -> pd.DataFrame:
        """Run the SQL that ``build()`` returns, planning it again for each attempt.

        ``build`` lists the files to read (e.g. :meth:`partition_files` and
        :meth:`parquet_source`) and returns SQL naming them.  Each attempt records
        the identity (inode, mtime ns, size: :func:`file_identity`) of every file the
        SQL names before the query and compares it after: a file replaced, created or
        removed meanwhile (a collector's atomic replace, a compaction) may have given
        DuckDB a mix of two versions without an error (docs/architecture.md, "Readers
        and writers"), so the result is dropped and ``build`` is called again.  So is
        a DuckDB error that such a change explains (:func:`_torn_read`), and any
        query that overlapped the swap of a partition folder (the compaction mark:
        this covers views over globs against compaction).  At most
        :data:`TORN_READ_ATTEMPTS` attempts.  Cost: two ``stat`` calls per named
        file and two reads of a small file per attempt (bench/torn_reads.py).

        Raises:
            StoreError: DuckDB rejected the query (its message), or the named files
                changed during every attempt (the changed files are named).
        """
        return self._query_retrying(build, params)

    def _query_retrying(
        self,
        build: Callable[[], str],
        params: dict[str, Any] | list[Any] | None,
        replans: bool = True,
    ) -> pd.DataFrame:
        """:meth:`query_planned`; ``verify_files`` False skips the identity check
        (the benchmarks' baseline).  Without ``replans`` (``build`` returns the same
        SQL each time) an error over a named file that is gone is raised at once:
        running it again cannot help; the caller lists again (:func:`retry_on_vanished`)."""
        def once() -> pd.DataFrame:
            sql = build()
            files = planned_files(sql) if self.verify_files else []
            before = [file_identity(f) for f in files]
            mark = _compaction_mark(self.root) if self.verify_files else (0, False)
            try:
                cur = self.connect().cursor()  # builds the views on first use: may fail too
                try:
                    frame = cur.execute(sql, params or {}).df()
                finally:
                    cur.close()
            except duckdb.Error as exc:
                gone = not replans and any(file_identity(f) is None for f in files)
                if _torn_read(exc) and not gone:
                    raise _TornRead(_changed(files, before), exc) from exc
                raise StoreError(f"query failed: {exc}") from exc
            changed = _changed(files, before)
            if self.verify_files:
                after = _compaction_mark(self.root)
                if mark[1] or after[1] or after[0] != mark[0]:
                    changed.append(f"{self.root / COMPACTION_MARK} (a partition folder swap)")
            if changed:
                self.torn_retries += 1
                raise _TornRead(changed, None)
            return frame

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_TornRead),
                stop=stop_after_attempt(TORN_READ_ATTEMPTS),
                wait=wait_exponential(multiplier=0.05, max=0.8),
                reraise=True,
            ):
                with attempt:
                    return once()
        except _TornRead as torn:
            shown = ", ".join(torn.files[:5]) + (
                f" and {len(torn.files) - 5} more" if len(torn.files) > 5 else ""
            )
            if torn.error is not None:
                note = f" (changed or gone while it ran: {shown})" if torn.files else ""
                raise StoreError(f"query failed: {torn.error}{note}") from torn.error
            raise StoreError(
                f"query gave up after {TORN_READ_ATTEMPTS} attempts: files it reads were "
                f"replaced while it ran each time (a writer or compaction is busy): {shown}"
            ) from None
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
        text = path.read_text(encoding="utf-8")
        code = "\n".join(x for x in text.split("\n") if not x.lstrip().startswith("--"))
        code = _ROWS_PLACEHOLDER.sub("", code)  # an expansion binds no parameter
        used = {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", code)}
        if not _ROWS_PLACEHOLDER.search(text):
            return self.query(text, used)
        allowed, tiers = env_rollup()
        use_rollup = use_rollup and allowed
        # Each attempt expands the placeholders again: fresh file lists after a
        # closed day was compacted (or a roll-up replaced) between planning and running.
        return self._query_retrying(
            lambda: self._expand_rows(name, text, params, use_rollup, tiers), used
        )

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


#: DuckDB's "Did you mean" guess when it names a system table, not a store view.
_SYSTEM_GUESS = re.compile(
    r'\s*Did you mean "(?:pg_|sqlite_|duckdb_|information_schema)[^"]*"\??', re.IGNORECASE
)


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
        if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
            return SQLError("failed", f"query failed: {self._unknown_name(text)}")
        return SQLError("failed", f"query failed: {text}")

    def _unknown_name(self, text: str) -> str:
        """A catalogue error without DuckDB's guess when it names one of DuckDB's own
        system tables (``pg_sequences``, ``sqlite_schema``, ...), which the sandbox user
        never meant, plus the store's views to choose from."""
        text = _SYSTEM_GUESS.sub("", text).rstrip()
        cur = self._cursor()
        try:
            views = [
                r[0]
                for r in cur.execute(
                    "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
                ).fetchall()
            ]
        except duckdb.Error:
            return text
        finally:
            cur.close()
        return f"{text}\nThe store's views: {', '.join(views)}." if views else text

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

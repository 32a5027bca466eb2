"""The store: a Hive-partitioned Parquet lake, read through DuckDB views.

This package is the only code that imports DuckDB; its modules:

- :mod:`~observatory.store.layout`: schemas, tier periods, file and folder names;
- :mod:`~observatory.store.files`: atomic replaces, file identities, torn and vanished
  reads, the errors;
- :mod:`~observatory.store.rollups`: roll-up rows from data rows;
- :mod:`~observatory.store.partitions`: rows split into partitions and hour files, a
  window's tier pieces;
- :mod:`~observatory.store.core`: :class:`Store` (writes, housekeeping, compaction,
  reads);
- :mod:`~observatory.store.sandbox`: :class:`SafeSQL`, the locked-down ad hoc SQL.

Layout under the store folder::

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

from observatory.store.core import FILTER_PARAMS, Store
from observatory.store.files import (
    COMPACTION_MARK,
    TORN_READ_ATTEMPTS,
    WRITE_MARK,
    StoreError,
    StoreMissing,
    atomic_write_bytes,
    env_rollup,
    file_identity,
    planned_files,
    retry_on_vanished,
    tree_identities,
    write_mark,
)
from observatory.store.layout import (
    COMPACT_GRACE,
    DAY_S,
    GPU_STEP_SIGNALS,
    GPU_STEPS_SCHEMA,
    ROLLUP_DAILY_OF,
    ROLLUP_OF,
    ROLLUP_SCHEMAS,
    ROLLUP_TIERS,
    SCHEMAS,
    SQL_DIR,
    WINDOW_TIERS,
)
from observatory.store.partitions import DataPartition
from observatory.store.rollups import coarser_rollup, gpu_steps_rollup, hourly_rollup
from observatory.store.sandbox import SafeSQL, SandboxLimits, SQLError, SQLResult

__all__ = [
    "COMPACTION_MARK",
    "COMPACT_GRACE",
    "DAY_S",
    "FILTER_PARAMS",
    "GPU_STEPS_SCHEMA",
    "GPU_STEP_SIGNALS",
    "ROLLUP_DAILY_OF",
    "ROLLUP_OF",
    "ROLLUP_SCHEMAS",
    "ROLLUP_TIERS",
    "SCHEMAS",
    "SQL_DIR",
    "TORN_READ_ATTEMPTS",
    "WINDOW_TIERS",
    "WRITE_MARK",
    "DataPartition",
    "SQLError",
    "SQLResult",
    "SafeSQL",
    "SandboxLimits",
    "Store",
    "StoreError",
    "StoreMissing",
    "atomic_write_bytes",
    "coarser_rollup",
    "env_rollup",
    "file_identity",
    "gpu_steps_rollup",
    "hourly_rollup",
    "planned_files",
    "retry_on_vanished",
    "tree_identities",
    "write_mark",
]

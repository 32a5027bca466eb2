"""The store: a Hive-partitioned Parquet lake, read through DuckDB views.

This is the only module that imports DuckDB.  Layout under the store folder::

    lake/<table>/signal=<signal>/date=<YYYY-MM-DD>/region=<region>/part.parquet
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
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock

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
REGION_SCHEMA = pa.schema(
    [
        ("region", pa.string()),
        ("display_name", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("url", pa.string()),
    ]
)


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _atomic_write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name must not end in .parquet: readers glob ``*.parquet`` (DuckDB's
    # glob matches dot-files) and would read a half-written or a second copy of the data.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet.tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class WriteResult:
    """What one :meth:`Store.replace_window` did: rows written and files touched."""

    rows: int
    files: int


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

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def writer(self, timeout: float = 600) -> Iterator[None]:
        """Hold the writer lock (one writing process at a time; readers unaffected)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".writer.lock"), timeout=timeout):
            yield

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
        frame: pd.DataFrame,
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
                ``ts_utc`` must lie in ``(start, end]``.

        Raises:
            StoreError: unknown table, missing columns or rows outside the window.
        """
        if table not in SCHEMAS:
            raise StoreError(f"unknown table {table!r}; expected one of {sorted(SCHEMAS)}")
        schema = SCHEMAS[table]
        signal_list = list(signals)
        start, end = _to_utc_naive(start), _to_utc_naive(end)
        missing = [c for c in ["signal", *schema.names] if c not in frame.columns]
        if len(frame) and missing:
            raise StoreError(f"{table}: rows for region {region} lack columns {missing}")
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
                _atomic_write_table(path, combined)
                files += 1
        return WriteResult(rows=rows, files=files)

    def write_regions(self, regions: pd.DataFrame) -> None:
        """Replace the region catalogue (name, display name, coordinates, URL)."""
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

    def _build_connection(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone='UTC'")
        con.execute((SQL_DIR / "schema.sql").read_text(encoding="utf-8"))
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
        con.execute((SQL_DIR / "views.sql").read_text(encoding="utf-8").format(**sources))
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

    def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pd.DataFrame:
        """Run ``sql`` on its own cursor (thread-safe) and return a DataFrame.

        Raises:
            StoreError: DuckDB rejected the query; the message holds its text.
        """
        cur = self.connect().cursor()
        try:
            return cur.execute(sql, params or {}).df()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        finally:
            cur.close()

    def named(self, name: str, **params: Any) -> pd.DataFrame:
        """Run the named query ``sql/queries/<name>.sql`` with ``$param`` placeholders.

        Raises:
            StoreError: no such named query, or the query failed.
        """
        path = SQL_DIR / "queries" / f"{name}.sql"
        if not path.exists():
            raise StoreError(f"no named query {name!r} in {path.parent}")
        return self.query(path.read_text(encoding="utf-8"), params)

    def data_version(self) -> float:
        """A number that changes whenever a writer finished (for cache keys)."""
        stamp = self.root / ".version"
        return stamp.stat().st_mtime if stamp.exists() else 0.0

    def touch_version(self) -> None:
        """Mark that new data was written (readers' caches key on it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".version").write_text(datetime.now(UTC).isoformat(), encoding="utf-8")

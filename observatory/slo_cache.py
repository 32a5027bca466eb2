"""The SLO slice cache: exact per-hour sums of each SLO's judged slices (recording rules).

What Sloth's and Pyrra's recording rules do for Prometheus, done exactly for the store:
for one SLO (its compiled slice query and parameters, hashed into :func:`cache_key`)
and one UTC day ``D``, the sums per hour ``hour_utc`` (the END of ``(hour_utc - 1h,
hour_utc]``) and group (region, model, arm, the global roll-up included) of the SLO's
slices ending in ``(D, D + 1d]``: ``bad`` and ``total`` (the slices' judged values,
as ``slo_slices.sql`` gives them) and ``slices`` (how many of them the store holds rows
for).  A slice length that divides an hour keeps every slice inside one hour, so a
window made of whole hours is the sum of those hours' rows (docs/slo.md, "Slice cache").

One Parquet file per SLO and day, ``<cache root>/<key>/<D>.parquet`` (the root: a
folder per store outside it, :func:`default_root`), holds two parts with their own
validity stamps (the sorted relative paths and nanosecond modification times of the
source partitions they were computed from, kept in the file's metadata):

- ``day``: hours ``D + 1h .. D + 23h``, whose steps all lie in the date-``D``
  partitions of the SLO's signals;
- ``midnight``: the hour ending at ``D + 1d``, whose last step (``ts_utc = D + 1d``)
  lies in the date-``D + 1`` partitions (a store partitions by the date of ``ts_utc``).

A part is used only while the partitions it read are exactly the ones there now
(same files, same mtimes): a collector run, a backfill or a rewritten partition
changes an mtime and the part is recomputed.  So in a live store the day being
collected (and the hour before its midnight) is recomputed on every data change,
every day before it is read from the cache.

Writes go to a temporary file beside the target (``.tmp-*.parquet.tmp``, never read)
and ``os.replace`` it, so concurrent readers
see the old file or the new one.  A cache folder that cannot be written is not an
error: the sums are still computed (and returned), just not kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from observatory.store import Store, atomic_write_bytes, retry_on_vanished

#: Environment variable naming another cache root (``off``: no cache by default).
CACHE_ENV = "OBSERVATORY_SLO_CACHE"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
#: Columns of a cache file, in order.
COLUMNS = ("hour_utc", "region", "model", "arm", "bad", "total", "slices")
SCHEMA = pa.schema(
    [
        ("hour_utc", pa.timestamp("us")),
        ("region", pa.string()),
        ("model", pa.string()),
        ("arm", pa.string()),
        ("bad", pa.float64()),
        ("total", pa.float64()),
        ("slices", pa.int64()),
    ]
)
_PARTS = ("day", "midnight")


def cache_key(sql: str, params: dict[str, Any]) -> str:
    """A stable hex key (32 characters) for an SLO's slice query and its parameters.

    Any change of the query text, the signals, filters, thresholds, grouping, slice
    length, budgeting method or maintenance windows gives another key (another folder).
    """
    text = json.dumps({"sql": sql, "params": params}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def day_of_hour(hour_end: datetime) -> date:
    """The cache day ``D`` holding the hour that ends at ``hour_end`` (``(D, D + 1d]``)."""
    return (hour_end - HOUR).date()


@dataclass(frozen=True)
class Source:
    """Where an SLO's events live: the store table and its signals."""

    table: str
    signals: tuple[str, ...]


def days_in(start: datetime, end: datetime) -> list[date]:
    """The dates of the steps ending in ``(start, end]`` (a store partitions by the date
    of ``ts_utc``)."""
    first = (start + timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((end.date() - first).days + 1)]


def partition_files(store: Store, source: Source, days: Iterable[date]) -> list[Path]:
    """The data files of ``source``'s signals for ``days`` (every region), sorted."""
    days = list(days)
    files: list[Path] = []
    for sig in source.signals:
        for day in days:
            files.extend(store.data_files(source.table, [sig], [day]))
    return sorted(files)


def slice_cache_disabled() -> bool:
    """True when ``$OBSERVATORY_SLO_CACHE`` is ``off`` (engines then use no cache)."""
    return os.environ.get(CACHE_ENV, "").strip().lower() == "off"


def default_root(store: Store) -> Path:
    """Where a store's cache lives unless told: ``$OBSERVATORY_SLO_CACHE`` (else
    ``$XDG_CACHE_HOME/observatory/slo``, else ``~/.cache/observatory/slo``), in a folder
    ``<store folder name>-<hash of its absolute path>`` per store.

    Not inside the store: the dashboard and ``observatory slo`` are readers, and a
    reader never writes into the lake (it may be read-only, or shared).
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = (
        Path(env) if env else (Path(xdg) if xdg else Path.home() / ".cache") / "observatory" / "slo"
    )
    tag = hashlib.sha256(str(store.root.resolve()).encode("utf-8")).hexdigest()[:12]
    return base / f"{store.root.name}-{tag}"


class SliceCache:
    """The per-SLO, per-day hourly slice sums of one store (see the module docstring).

    Args:
        store: the store the sums are computed from.
        root: the cache folder (default: :func:`default_root`).

    Attributes:
        written, reused, computed: parts written, read valid from the cache, and
            computed since this object was made (for benches and tests).
        write_error: the last failure to write (None: none), e.g. a read-only folder.
    """

    def __init__(self, store: Store, root: str | os.PathLike[str] | None = None):
        self.store = store
        self.root = Path(root) if root is not None else default_root(store)
        self.written = 0
        self.reused = 0
        self.computed = 0
        self.write_error: str | None = None

    # ------------------------------------------------------------------ stamps
    def stamp(self, source: Source, days: Iterable[date]) -> str:
        """The validity stamp of the partitions of ``source`` for ``days``: JSON of the
        sorted (path relative to the lake, mtime in ns) pairs of the files there now."""
        days = list(days)
        listing = self._listing(source, days)
        return _stamp([pair for day in days for pair in listing[day]])

    def _listing(self, source: Source, days: Iterable[date]) -> dict[date, list[tuple[str, int]]]:
        """(relative path, mtime in ns) of each data file of ``source``, per date (one
        ``stat`` per file)."""
        out: dict[date, list[tuple[str, int]]] = {}
        for day in set(days):
            pairs = out.setdefault(day, [])
            for path in partition_files(self.store, source, [day]):
                try:
                    mtime = path.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                pairs.append((path.relative_to(self.store.lake).as_posix(), mtime))
        return out

    # ------------------------------------------------------------------ files
    def path(self, key: str, day: date) -> Path:
        """The cache file of one SLO (``key``) and day."""
        return self.root / key / f"{day.isoformat()}.parquet"

    def _read(self, key: str, day: date) -> tuple[pa.Table | None, dict[str, str]]:
        """The file's rows and stamps (None, {} when missing or unreadable)."""
        path = self.path(key, day)
        try:
            with pq.ParquetFile(path) as pf:
                meta = pf.schema_arrow.metadata or {}
                table = pf.read().replace_schema_metadata(None)
            if table.schema != SCHEMA:
                table = table.select(list(COLUMNS)).cast(SCHEMA)
        except (OSError, KeyError, pa.ArrowException):
            return None, {}
        stamps = {
            p: meta[f"observatory.sources.{p}".encode()].decode()
            for p in _PARTS
            if f"observatory.sources.{p}".encode() in meta
        }
        return table, stamps

    def _write(self, key: str, day: date, rows: pa.Table, stamps: dict[str, str]) -> None:
        """Write one day's file atomically (temporary file + ``os.replace``)."""
        path = self.path(key, day)
        table = rows.replace_schema_metadata(
            {f"observatory.sources.{p}": s for p, s in stamps.items()}
        )
        try:
            atomic_write_bytes(path, parquet_bytes(table))
        except OSError as exc:
            self.write_error = f"cannot write the SLO cache {path}: {exc.strerror or exc}"
            return
        self.written += 1

    # ------------------------------------------------------------------ hours
    def hours(
        self,
        key: str,
        source: Source,
        days: Sequence[date],
        compute: Callable[[datetime, datetime], pd.DataFrame],
    ) -> pd.DataFrame:
        """The hourly rows (:data:`COLUMNS`) of ``days``, from the cache where valid.

        Args:
            key: the SLO's :func:`cache_key`.
            source: the table and signals its slices read (for the stamps).
            days: the UTC days wanted.
            compute: ``compute(start, end)`` returns the hourly rows of the slices
                ending in ``(start, end]`` (both on whole hours); it is called once
                per run of consecutive missing or stale parts.

        Returns:
            the rows of every hour of ``days`` (hours without slices have no row).

        A data file listed for the stamps and gone when ``compute`` reads it (a closed
        day compacted meanwhile) makes it list and compute again, once
        (:func:`observatory.store.retry_on_vanished`): the stamps then name the new
        files.

        Raises:
            StoreError: ``compute`` failed (twice for a vanished file).
        """
        wanted = sorted(set(days))

        def once() -> pd.DataFrame:  # one listing and its reads
            tables: list[pa.Table] = []
            todo: list[tuple[date, dict[str, str], pa.Table | None, list[str]]] = []
            listing = self._listing(source, [*wanted, *(d + timedelta(days=1) for d in wanted)])
            for day in wanted:
                after = listing[day + timedelta(days=1)]
                stamps = {
                    "day": _stamp(listing[day]),
                    "midnight": _stamp(listing[day] + after),
                }
                table, old = self._read(key, day)
                valid = [p for p in _PARTS if table is not None and old.get(p) == stamps[p]]
                kept = None
                if table is not None and valid:
                    kept = table if len(valid) == len(_PARTS) else _within(table, day, valid)
                    self.reused += len(valid)
                if len(valid) == len(_PARTS):
                    tables.append(kept)
                else:
                    todo.append((day, stamps, kept, [p for p in _PARTS if p not in valid]))
            spans = _merge_spans([_span(d, part) for d, _, _, missing in todo for part in missing])
            fresh = [
                pa.Table.from_pandas(
                    compute(a, b)[list(COLUMNS)], schema=SCHEMA, preserve_index=False
                )
                for a, b in spans
            ]
            new = pa.concat_tables(fresh) if fresh else SCHEMA.empty_table()
            for day, stamps, kept, missing in todo:
                rows = _within(new, day, missing)
                if kept is not None:
                    rows = pa.concat_tables([kept, rows])
                self.computed += len(missing)
                self._write(key, day, rows, stamps)
                tables.append(rows)
            return (pa.concat_tables(tables) if tables else SCHEMA.empty_table()).to_pandas()

        return retry_on_vanished(once, f"SLO slice cache {key}")


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of a Parquet file (its schema metadata kept)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _stamp(pairs: list[tuple[str, int]]) -> str:
    return json.dumps(sorted(pairs), separators=(",", ":"))


def _within(table: pa.Table, day: date, parts: Sequence[str]) -> pa.Table:
    """The rows of ``table`` whose hour lies in one of ``parts`` of ``day``."""
    hour = table["hour_utc"]
    mask = None
    for part in parts:
        a, b = _span(day, part)
        inside = pc.and_(
            pc.greater(hour, pa.scalar(a, pa.timestamp("us"))),
            pc.less_equal(hour, pa.scalar(b, pa.timestamp("us"))),
        )
        mask = inside if mask is None else pc.or_(mask, inside)
    return table.filter(mask) if mask is not None else table.slice(0, 0)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def _span(day: date, part: str) -> tuple[datetime, datetime]:
    """The ``(start, end]`` of slice ends a part of a day holds."""
    start = _midnight(day)
    return (start, start + DAY - HOUR) if part == "day" else (start + DAY - HOUR, start + DAY)


#: The longest span one ``compute`` call covers.  A fresh cache of a large fleet is
#: otherwise one query over every missing day's minute rows: 30 days of the 20-region
#: scale fleet held 6.1 GiB at its peak (`observatory slo status` from an empty cache,
#: /usr/bin/time); a day per query bounds DuckDB's working set to one day's groups.
MAX_SPAN = timedelta(days=1)


def _merge_spans(
    spans: list[tuple[datetime, datetime]], longest: timedelta = MAX_SPAN
) -> list[tuple[datetime, datetime]]:
    """Adjacent ``(start, end]`` spans joined (one query per run), each run then cut
    into pieces of at most ``longest`` (the last one shorter)."""
    runs: list[tuple[datetime, datetime]] = []
    for a, b in sorted(spans):
        if runs and runs[-1][1] == a:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))
    out: list[tuple[datetime, datetime]] = []
    for a, b in runs:
        while b - a > longest:
            out.append((a, a + longest))
            a += longest
        out.append((a, b))
    return out

"""The :class:`Store`: the Parquet lake's writes (windows, roll-ups, housekeeping,
compaction of closed days) and reads (views, named queries, window rows); the layout
is described in :mod:`observatory.store`."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from filelock import FileLock
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from observatory.folder_exchange import ExchangeUnsupported, exchange, exchange_supported
from observatory.hour_files import (
    LEGACY_FILE,
    folder_files,
    folder_stamp,
    hour_file_name,
    hour_range,
    hour_span,
    overlaps,
)
from observatory.store.files import (
    COMPACTION_MARK,
    TORN_READ_ATTEMPTS,
    WRITE_MARK,
    StoreError,
    _atomic_write_table,
    _changed,
    _compaction_mark,
    _dates_in,
    _replacing,
    _to_utc_naive,
    _torn_read,
    _TornRead,
    atomic_write_bytes,
    env_rollup,
    file_identity,
    planned_files,
    read_mark,
)
from observatory.store.layout import (
    COMPACT_DIR,
    COMPACT_GRACE,
    COMPACTION_NOTE,
    FINE_TIER_DAYS,
    GPU_STEP_SIGNALS,
    GPU_STEPS,
    GPU_STEPS_SCHEMA,
    GPU_STEPS_SQL,
    HOUSEKEEPING_BUDGET_S,
    REGION_SCHEMA,
    ROLLUP_FILE,
    ROLLUP_OF,
    ROLLUP_SCHEMAS,
    ROLLUP_TIERS,
    SCHEMAS,
    SQL_DIR,
    STALE_TMP_AGE,
    TMP_PREFIX,
    WINDOW_TIERS,
)
from observatory.store.partitions import (
    _GPU_STEPS_MINUTE_SQL,
    _WINDOW_COLUMNS,
    DataPartition,
    _align,
    _Change,
    _concat,
    _covers_day,
    _empty,
    _files_of_hours,
    _is_sorted,
    _outside,
    _outside_window,
    _parse_date,
    _Partition,
    _patched,
    _read_rows,
    _restamp,
    _split_by_hour,
    _split_by_signal_and_date,
    _split_dates,
    _stamp_options,
    _subfolders,
    _tier_pieces,
    _ts_scalar,
    _within,
    _Written,
)
from observatory.store.rollups import coarser_rollup, gpu_steps_rollup, hourly_rollup

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    # pandas is imported where it is used: a collector run never needs
    import pandas as pd  # it, and importing it costs about 0.4 CPU-seconds at start-up

    from observatory.store.sandbox import SafeSQL, SandboxLimits

_ROWS_PLACEHOLDER = re.compile(r"\{\{rows:(\w+)(?::([^}]*))?\}\}")


#: The filter parameters of the dashboard's named queries (``VARCHAR[]``); None for
#: one of them means every value (:meth:`Store.named`).
FILTER_PARAMS = ("regions", "models", "arms")
#: ``list_contains($regions|$models|$arms, <expression>)`` (one level of parentheses
#: inside the expression, as in ``coalesce(model, '')``).
_FILTER_PREDICATE = re.compile(
    r"list_contains\(\$(" + "|".join(FILTER_PARAMS) + r"),\s*(?:[^()]|\([^()]*\))*\)"
)


def _unfiltered(sql: str, params: dict[str, Any]) -> str:
    """``sql`` with each ``list_contains($k, ...)`` predicate replaced by ``TRUE`` for
    every filter parameter ``k`` of :data:`FILTER_PARAMS` that ``params`` gives as
    None (every value selected)."""
    every = {k for k in FILTER_PARAMS if k in params and params[k] is None}
    if not every:
        return sql
    return _FILTER_PREDICATE.sub(lambda m: "TRUE" if m.group(1) in every else m.group(0), sql)


@dataclass(frozen=True)
class Housekeeping:
    """What :meth:`Store.housekeeping` did: temporary files removed, and partitions
    whose roll-ups (one tier or both; a GPU-step roll-up counts one) were rebuilt."""

    tmp_removed: int
    rollups_rebuilt: int
    #: False when the time budget ran out before every stale roll-up was rebuilt
    #: (the next call goes on; readers meanwhile use the finer tiers, still exact).
    complete: bool = True


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

        While it is held the write mark (:data:`WRITE_MARK`) is odd: the SQL sandbox,
        whose views list files by glob, waits for it or runs a query again when a
        write overlapped it (:meth:`SafeSQL.run`).

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
            self._bump_mark(True, WRITE_MARK)
            try:
                if not self._housekept:
                    done = self.housekeeping(budget_s=HOUSEKEEPING_BUDGET_S)
                    self._housekept = done.complete
                    if not done.complete:
                        log.info(
                            "housekeeping rebuilt %d roll-up(s) in its %g s budget; the "
                            "next writer goes on",
                            done.rollups_rebuilt,
                            HOUSEKEEPING_BUDGET_S,
                        )
                yield
            finally:
                self._bump_mark(False, WRITE_MARK)

    def housekeeping(
        self,
        tmp_age: timedelta = STALE_TMP_AGE,
        fine_days: int = FINE_TIER_DAYS,
        budget_s: float | None = None,
    ) -> Housekeeping:
        """Clean up after a killed writer; call it holding the writer lock.

        :meth:`writer` runs it when it first takes the lock for a :class:`Store`
        object (a collector daemon: at start), with a budget of
        :data:`HOUSEKEEPING_BUDGET_S` seconds for the roll-up rebuilds, and again at
        each later take until a pass completes: a store from an older version gains
        a tier over several collector runs, never one long hold of the lock (the
        daily tier's first build took 112.5 s at the 20-region scale fleet).

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

        Args:
            tmp_age: temporary files older than this are a killed writer's.
            fine_days: the newest dates per table that get the 5-minute tier.
            budget_s: seconds after which no further partition's roll-ups are
                rebuilt (at least one is; None: no limit).

        Returns:
            what was done: temporary files removed, roll-ups rebuilt, and whether
            every stale roll-up was (``complete``).

        Raises:
            StoreError: a data file of a stale partition cannot be read.
        """
        began = time.monotonic()

        def over_budget() -> bool:
            return budget_s is not None and time.monotonic() - began > budget_s

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
                    if rebuilt and over_budget():
                        return Housekeeping(removed, rebuilt, complete=False)
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
                if rebuilt and over_budget():
                    return Housekeeping(removed, rebuilt, complete=False)
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
        allowed = (3600,) if kind == "gpu_steps" else tuple(ROLLUP_TIERS) if tiers else WINDOW_TIERS
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

    def _bump_mark(self, swapping: bool, name: str = COMPACTION_MARK) -> None:
        """Move a mark (the compaction mark :data:`COMPACTION_MARK`, or the write mark
        :data:`WRITE_MARK`) to its next odd value before a swap or write
        (``swapping``), to its next even value after one.

        Written to a temporary name and renamed (readers see one value or the next),
        without ``fsync``: after a crash a reader only needs it to differ.
        """
        value = max(read_mark(self.root / name, 0.0)[0], 0) + 1
        if value % 2 != int(swapping):
            value += 1
        self.root.mkdir(parents=True, exist_ok=True)
        with _replacing(self.root / name, ".tmp") as tmp, open(tmp, "w") as fh:
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
        from observatory.store.sandbox import SafeSQL  # it builds Stores: imported late

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

        A filter parameter of :data:`FILTER_PARAMS` given as None selects every value:
        the query's ``list_contains($<name>, ...)`` predicates become ``TRUE`` (rows
        whose value the caller does not know count too), so the default view does not
        pay for a filter that keeps everything: DuckDB turns each such predicate into
        a hash semi-join over every row (a third of the 24 h page queries' time at
        the 20-region scale fleet, docs/scaling.md).  Other uses of the parameter
        are bound to NULL.

        Raises:
            StoreError: no such named query, a placeholder without ``start``/``end``
                or with an unknown kind or parameter, or the query failed.
        """
        path = SQL_DIR / "queries" / f"{name}.sql"
        if not path.exists():
            raise StoreError(f"no named query {name!r} in {path.parent}")
        text = _unfiltered(path.read_text(encoding="utf-8"), params)
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

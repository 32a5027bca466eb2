"""Rows and partition folders: splitting written rows by signal, date and hour, the
window's tier pieces (:meth:`Store.window_rows`) and a data partition's files.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from observatory.hour_files import (
    HOURS,
    LEGACY_FILE,
    folder_files,
    folder_stamp,
    hour_indices,
    hour_range,
    overlaps,
)
from observatory.store.files import StoreError, _dates_in, _to_utc_naive
from observatory.store.rollups import _MINUTE_BIT


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
    with the finer tiers; period 0 marks the minute rows of what no tier covers.

    An edge of an hourly (or finer) piece that needs minute rows anyway (it does not
    start or end on the finer tier's grid) is read from minute rows whole: they lie
    in the same hour file, so the finer tier's file would only add a file to open
    (about 0.1 ms each; ``work_by_day`` over 24 h at 20 regions 96 -> 76 ms, 700 ->
    500 files; docs/scaling.md).  An edge on the finer grid still reads that tier."""
    if start >= end:
        return []
    if not periods:
        return [(0, start, end)]
    a, b = _align(start, periods[0], True), _align(end, periods[0], False)
    if a >= b:
        return _tier_pieces(start, end, periods[1:])
    rest, period = periods[1:], periods[0]
    return [*_edge(start, a, rest, period), (period, a, b), *_edge(b, end, rest, period)]


def _edge(
    lo: datetime, hi: datetime, finer: tuple[int, ...], period_s: int
) -> list[tuple[int, datetime, datetime]]:
    """The pieces of an edge ``(lo, hi]`` of a ``period_s`` piece (:func:`_tier_pieces`)."""
    pieces = _tier_pieces(lo, hi, finer)
    if period_s <= 3600 and any(p == 0 for p, _, _ in pieces):
        return [(0, lo, hi)]
    return pieces


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

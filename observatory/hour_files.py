"""Hour files: which file of a data partition folder holds which rows.

A data partition ``lake/<table>/signal=S/date=D/region=R/`` holds one Parquet file per
hour of the day, named by the END of the hourly roll-up period its rows fall in (a
row's ``ts_utc`` is its step's END; the hourly roll-up's ``hour_utc`` is the ceiling
hour, :func:`observatory.store.hourly_rollup`):

- ``h00.parquet``: only ``ts_utc == D 00:00:00`` (the step ending at midnight, which
  the partition of date D holds and the roll-up puts in ``hour_utc = D 00:00``);
- ``hKK.parquet`` (K = 1..24): ``ts_utc`` in ``(D + (K-1) h, D + K h]`` (``h24``'s
  upper end, midnight, belongs to the next date's ``h00``).

So each hour file's hourly roll-up is exactly the roll-up rows of one ``hour_utc``,
and a 1-minute collector step rewrites one hour of rows, not the day so far.

``part.parquet`` (:data:`LEGACY_FILE`) holds a whole day: a write whose window covers
the day, a closed day's compacted hour files, or a store written before hour files.
Readers treat it as one more data file of the partition that may hold rows of any hour.

Pure path and time arithmetic (no I/O beyond listing a folder and one ``stat``); the
store (:mod:`observatory.store`) is the one place that uses it to read and write.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np

__all__ = [
    "HOURS",
    "LEGACY_FILE",
    "file_span",
    "folder_files",
    "folder_stamp",
    "hour_file_name",
    "hour_index",
    "hour_indices",
    "hour_range",
    "hour_span",
    "overlaps",
]

#: The day-partition file: a whole-day write or a compacted closed day (issue #9), and
#: what stores written before hour files hold.
LEGACY_FILE = "part.parquet"
#: Hour file indices of a day: 0 (midnight's step only) .. 24.
HOURS = range(25)
_HOUR = timedelta(hours=1)
_HOUR_US = 3_600_000_000
_TICK = timedelta(microseconds=1)
_HOUR_NAME = re.compile(r"h(\d\d)\.parquet")


def hour_file_name(index: int) -> str:
    """The file name of hour ``index`` (0-24) of a day: ``h00.parquet`` .. ``h24.parquet``.

    Raises:
        ValueError: ``index`` is not in 0..24.
    """
    if index not in HOURS:
        raise ValueError(f"hour file index {index} is not in 0..24")
    return f"h{index:02d}.parquet"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def hour_index(ts_utc: datetime, day: date) -> int:
    """The hour file index (0-24) of a step ending at ``ts_utc`` (naive UTC) on ``day``:
    the number of whole hours from midnight to the ceiling hour of ``ts_utc``.

    Raises:
        ValueError: ``ts_utc`` does not lie on ``day`` (its date must be ``day``).
    """
    if ts_utc.date() != day:
        raise ValueError(f"step {ts_utc.isoformat()} does not lie on {day.isoformat()}")
    us = (ts_utc - _midnight(day)) // _TICK
    return -(-us // _HOUR_US)


def hour_indices(ts_us: np.ndarray, day: date) -> np.ndarray:
    """:func:`hour_index` of many steps: ``ts_us`` (int64 microseconds since the epoch,
    every one on ``day``) -> int64 indices 0-24."""
    midnight_us = (_midnight(day) - datetime(1970, 1, 1)) // _TICK
    return -(-(ts_us - midnight_us) // _HOUR_US)


def hour_span(day: date, index: int) -> tuple[datetime, datetime]:
    """The right-closed span ``(lo, hi]`` of step ends that hour file ``index`` of
    ``day`` holds (naive UTC; hour 0 is ``(midnight - 1 us, midnight]``)."""
    end = _midnight(day) + index * _HOUR
    return (end - _TICK if index == 0 else end - _HOUR), end


def file_span(day: date, name: str) -> tuple[datetime, datetime] | None:
    """The span ``(lo, hi]`` of step ends a data file named ``name`` on ``day`` may
    hold: an hour file's hour, the whole day for :data:`LEGACY_FILE`, None for a name
    that is neither (not a data file of this layout)."""
    if name == LEGACY_FILE:
        midnight = _midnight(day)
        return midnight - _TICK, midnight + 24 * _HOUR
    m = _HOUR_NAME.fullmatch(name)
    if m is None or int(m.group(1)) not in HOURS:
        return None
    return hour_span(day, int(m.group(1)))


def overlaps(day: date, name: str, lo: datetime, hi: datetime) -> bool:
    """True when data file ``name`` of ``day`` may hold a step in ``(lo, hi]``
    (unknown names: True, so nothing is ever skipped by mistake)."""
    span = file_span(day, name)
    return span is None or (span[0] < hi and lo < span[1])


def hour_range(day: date, start: datetime, end: datetime) -> range:
    """The hour file indices of ``day`` that hold steps of the window ``(start, end]``
    (naive UTC); empty when the window holds no step of ``day``."""
    midnight = _midnight(day)
    lo = max(start, midnight - _TICK)
    hi = min(end, midnight + 24 * _HOUR - _TICK)
    if lo >= hi:
        return range(0)
    return range(hour_index(lo + _TICK, day), hour_index(hi, day) + 1)


def folder_files(folder: Path) -> list[Path]:
    """The data files of a partition ``folder`` (``*.parquet``, not the writers'
    temporary ``.tmp-*`` files), sorted by name (hour files, then ``part.parquet``);
    empty when the folder does not exist."""
    try:
        with os.scandir(folder) as entries:
            names = [
                e.name
                for e in entries
                if e.name.endswith(".parquet") and not e.name.startswith(".")
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / n for n in sorted(names)]


def folder_stamp(folder: Path) -> int | None:
    """The modification time (ns) of a partition ``folder``, None when it is missing.

    Every file created, renamed into or removed from the folder changes it (POSIX
    directory semantics; checked on ext4 and tmpfs), and the store's writer sets it to
    a new value after each write (:meth:`observatory.store.Store.replace_window`), so
    it changes whenever any data file of the partition does.
    """
    try:
        return os.stat(folder).st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return None

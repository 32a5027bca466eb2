"""File-level safety of the lake: atomic replaces, file identities, the torn-read and
vanished-file checks readers run around every query, and the store's errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from observatory.store.layout import TMP_PREFIX

log = logging.getLogger(__name__)

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
#: The write mark beside the lake (:meth:`Store.writer`): a counter, odd while a
#: writer holds the writer lock, even otherwise.  The SQL sandbox, whose views list
#: files by glob (so no per-file identity check is possible), compares it before and
#: after a query: a write that overlapped may have replaced a file between DuckDB's
#: two opens of it (docs/architecture.md, "Readers and writers").
WRITE_MARK = ".write-mark"
#: An odd write mark older than this is a killed writer's (a collector run holds the
#: lock for seconds; housekeeping works within its budget).
_WRITE_MARK_STALE_S = 300.0

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
        os.path.relpath(os.path.join(folder, name), root): file_identity(os.path.join(folder, name))
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
    return read_mark(root / COMPACTION_MARK, _MARK_STALE_S)


def write_mark(root: Path) -> tuple[int, bool]:
    """The write mark (:data:`WRITE_MARK`) of the store at ``root``: (counter, a
    writer holds the lock); an odd counter older than :data:`_WRITE_MARK_STALE_S`
    counts as no writer."""
    return read_mark(root / WRITE_MARK, _WRITE_MARK_STALE_S)


def read_mark(path: Path, stale_s: float) -> tuple[int, bool]:
    """A mark file's (counter, odd and younger than ``stale_s``); ``(0, False)``
    without one, ``(-1, False)`` for one that does not hold a number."""
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
    return value, value % 2 == 1 and age < stale_s


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

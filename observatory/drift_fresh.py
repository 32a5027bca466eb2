"""Is a saved drift report still what the store says?  (The Drift page's fast path.)

A report read rows ``(read_from, read_to]`` of its signals' data files (the hour files,
or a day's ``part.parquet`` of an older store, of each table, signal, date and region
partition: :meth:`observatory.store.Store.partitions`; ``read_to`` is the window's
end).  It is fresh when every one of those rows is as it was when the report began
reading.  Only partitions whose stamp (:meth:`observatory.store.Store.partition_stamp`,
changed by every write into the partition) is at or after
``settings["read_started_utc"]`` are looked at file by file.  Two rules decide:

- **files wholly before the window's end date** keep the modification-time rule: a
  file modified (or created) at or after ``settings["read_started_utc"]`` makes the
  report stale, and so does a partition that changed with no such file (a file
  removed).  Only a backfill rewrites these, so this is exact in the safe direction
  (a rewrite outside the report's rows also refuses it).
- **files of the window end's date** (``read_to``'s date; the edge the collector keeps
  appending to): the report records, before reading anything, a digest of each such
  file's rows inside ``(read_from, read_to]`` (:func:`fingerprint`).  A file modified
  since is still fresh when the digest of its rows inside the window is unchanged
  (:func:`stale_files`): the collector appending later steps keeps the report fresh,
  any changed, added or removed row inside the window makes it stale.

**A copy of the store** (the same data in another folder: ``cp -a``, ``cp -al``,
``rsync -a``, a restored backup) answers too: the report's question does not include
the folder (:func:`observatory.drift_archive.same_question`), and when the store is
not the folder the report recorded (``settings["store"]``), :func:`stale_files` is
stricter, since modification times say nothing about another folder's history:

- the data files of the dates before the window end's must be listed as the report
  recorded them: the same names under ``lake/`` with the same sizes (the digest of
  the listing, :func:`listing_digest`), and none modified since the report began
  (so a copy that kept its files' times; a copy with new times is stale);
- every file of the window end's date is re-digested (not only those modified since)
  and the digests must equal the recorded ones, with no file added or missing.

A different store with different data is refused by both rules: its edge files'
digests differ, and so does its listing (unless every earlier file has the same name
and size, and none was modified since the report began).

The digest of a file's rows is ``[count, sum of h1, sum of h2]`` (sums modulo 2**64)
with ``h1``, ``h2`` two DuckDB ``hash`` values of the whole row (every column of the
table's schema, :data:`observatory.store.SCHEMAS`): order-independent (the collector
may rewrite a file in another row order), duplicate rows count, and a changed row goes
unseen only when both 64-bit sums collide.  The digest is taken before the report
reads its rows, so a file that changes during the computation is seen as changed.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from observatory.store import SCHEMAS, Store, StoreError, retry_on_vanished

__all__ = [
    "FINGERPRINT_KEY",
    "LISTING_KEY",
    "edge_digests",
    "fingerprint",
    "listing_digest",
    "read_span",
    "stale_files",
]

#: The key of :func:`fingerprint`'s record in a report's ``settings``.
FINGERPRINT_KEY = "fingerprint"

#: The key of :func:`listing_digest`'s value in :func:`fingerprint`'s record.
LISTING_KEY = "listing"

#: The store table holding each kind of drift signal's sources.
TABLE_OF_KIND = {
    "histogram": "histograms",
    "gauge": "gauges",
    "ratio": "counters",
    "labels": "counters",
}

_MOD = 1 << 64
_DIGEST_SQL = """
SELECT filename, count(*) AS n,
       CAST(sum(CAST(hash({cols}) AS HUGEINT)) % {mod} AS UBIGINT) AS h1,
       CAST(sum(CAST(hash({cols}, 'observatory-drift') AS HUGEINT)) % {mod} AS UBIGINT) AS h2
FROM {source}
WHERE ts_utc > $lo AND ts_utc <= $hi
GROUP BY ALL
"""


def read_span(
    start: datetime, end: datetime, periods: Iterable[tuple[datetime, datetime]]
) -> tuple[datetime, datetime]:
    """``(read_from, read_to)``: the rows a drift computation of the window
    ``(start, end]`` with the given reference ``periods`` reads (UTC naive)."""
    spans = [(start, end), *periods]
    return min(a for a, _ in spans), max(b for _, b in spans)


def _sources(signals: dict[str, Any]) -> dict[str, list[str]]:
    """Table -> the source signals of the report's ``settings["signals"]``."""
    out: dict[str, list[str]] = {}
    for sig in signals.values():
        table = TABLE_OF_KIND[sig["kind"]]
        out.setdefault(table, [])
        out[table] += [s for s in sig["sources"] if s not in out[table]]
    return out


def edge_digests(
    store: Store, files: dict[str, list[Path]], lo: datetime, hi: datetime
) -> dict[str, list[int]]:
    """The digest ``[count, h1, h2]`` of each file's rows in ``(lo, hi]`` (module doc).

    Args:
        store: the store the files belong to.
        files: table -> its data files (any that vanished are skipped).
        lo, hi: the rows' range, UTC naive.

    Returns:
        ``{"<table>/signal=/date=/region=/<file>": [n, h1, h2]}`` (the file's path
        under ``lake/``) for the files holding at least one row in the range.

    Raises:
        StoreError: a file could not be read (e.g. another schema).
    """
    out: dict[str, list[int]] = {}
    for table, paths in files.items():
        present = [p for p in paths if p.is_file()]
        if not present:
            continue
        cols = ", ".join(f'"{name}"' for name in SCHEMAS[table].names)
        sql = _DIGEST_SQL.format(cols=cols, mod=_MOD, source=store.parquet_source(table, present))
        df = store.query(sql, {"lo": lo, "hi": hi})
        for row in df.itertuples(index=False):
            key = Path(str(row.filename)).relative_to(store.lake).as_posix()
            out[key] = [int(row.n), int(row.h1), int(row.h2)]
    return out


def _edge_files(store: Store, sources: dict[str, list[str]], day: date) -> dict[str, list[Path]]:
    return {
        table: list(store.data_files(table, signals, [day])) for table, signals in sources.items()
    }


def listing_digest(store: Store, sources: dict[str, list[str]], lo: datetime, hi: datetime) -> str:
    """SHA-256 (hex) of the sorted lines ``"<path under lake/> <size in bytes>"`` of the
    data files of ``sources`` (table -> signals) on the dates from ``lo``'s up to the
    day before ``hi``'s: what a copy of the store must hold unchanged (module doc).
    One ``stat`` per file (about 5,000 for a 24 h window against 7 days at 20 regions).
    """
    lines = []
    for table, signals in sources.items():
        for part in store.partitions(table, signals, _dates(lo, hi)[:-1]):
            for path in part.files():
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # replaced meanwhile: listed by name only
                    size = -1
                lines.append(f"{path.relative_to(store.lake).as_posix()} {size}\n")
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode())
    return digest.hexdigest()


def fingerprint(
    store: Store, signals: dict[str, Any], lo: datetime, hi: datetime
) -> dict[str, Any]:
    """What :func:`stale_files` checks later, recorded before a report reads its rows.

    Args:
        store: the store about to be read.
        signals: the report's ``settings["signals"]``
            (:func:`observatory.drift_engine.settings_of`).
        lo, hi: the rows it reads, ``(lo, hi]`` (:func:`read_span`), UTC naive.

    Returns:
        ``{"read_from", "read_to" (ISO 8601), "edge": {file: [n, h1, h2]}, "listing"}``:
        the digests of the files of ``hi``'s date (:func:`edge_digests`) and the
        listing digest of the earlier dates' files (:func:`listing_digest`).

    Raises:
        StoreError: an edge file could not be read.
    """
    sources = _sources(signals)

    def digests() -> dict[str, list[int]]:
        files = _edge_files(store, sources, hi.date())
        out = edge_digests(store, files, lo, hi)  # skips files gone since the listing
        gone = [p for paths in files.values() for p in paths if not p.is_file()]
        if gone:
            raise FileNotFoundError(errno.ENOENT, "listed and gone before read", str(gone[0]))
        return out

    return {
        "read_from": lo.isoformat(),
        "read_to": hi.isoformat(),
        # a file listed and compacted away before it is read: list again, once
        "edge": retry_on_vanished(digests, "drift fingerprint"),
        LISTING_KEY: listing_digest(store, sources, lo, hi),
    }


def _epoch_ns(utc_naive: datetime) -> int:
    """Nanoseconds since the epoch of a naive UTC time (file mtimes' scale)."""
    delta = utc_naive - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _dates(lo: datetime, hi: datetime) -> list[date]:
    return [lo.date() + timedelta(days=i) for i in range((hi.date() - lo.date()).days + 1)]


def _modified_since(path: Path, cutoff_ns: int) -> bool:
    try:
        return path.stat().st_mtime_ns >= cutoff_ns
    except FileNotFoundError:
        return False


def _is_copy(root: Path, settings: dict[str, Any]) -> bool:
    """True when ``root`` is not the folder the report was computed on."""
    recorded = settings.get("store")
    return bool(recorded) and Path(str(recorded)) != root.resolve()


def _edge_differs(
    store: Store, sources: dict[str, list[str]], fp: dict[str, Any], lo: datetime, hi: datetime
) -> list[Path]:
    """The files of ``hi``'s date whose digests differ from the recorded ones (a copy:
    every file digested; a file added with rows in the range, or missing, differs)."""
    try:
        now = edge_digests(store, _edge_files(store, sources, hi.date()), lo, hi)
    except StoreError:
        return [store.root]
    recorded: dict[str, list[int]] = fp.get("edge", {})
    keys = sorted(k for k in set(now) | set(recorded) if now.get(k) != recorded.get(k))
    return [store.lake / k for k in keys]


def stale_files(
    store_root: str | os.PathLike[str],
    settings: dict[str, Any],
    span: tuple[datetime, datetime] | None = None,
    store: Store | None = None,
) -> list[Path]:
    """The data files that make a report with these ``settings`` stale (empty: fresh).

    Args:
        store_root: the store folder.
        settings: the report's ``settings`` (with ``read_started_utc``; with
            :data:`FINGERPRINT_KEY` for the edge rule, see the module docstring).
        span: ``(read_from, read_to)`` of a report written without a fingerprint
            (then every file uses the modification-time rule).
        store: a reader of ``store_root`` for the digests (default: a new one).

    Returns:
        The files modified (or created) since the report began reading whose rows
        inside the report's range may differ: outside the window end's date, every
        such file; on it, those whose digest changed, and recorded files now gone.
        A report without ``read_started_utc`` or a span gives ``[store_root]``, and so
        does a copy (``store_root`` is not ``settings["store"]``) whose listing of the
        earlier dates differs (module docstring).
    """
    root = Path(store_root)
    began = settings.get("read_started_utc")
    fp = settings.get(FINGERPRINT_KEY)
    if fp:
        span = (datetime.fromisoformat(fp["read_from"]), datetime.fromisoformat(fp["read_to"]))
    if not began or span is None:
        return [root]
    lo, hi = span
    cutoff = _epoch_ns(datetime.fromisoformat(began))
    sources = _sources(settings.get("signals", {}))
    store = store or Store(root)
    copy = _is_copy(root, settings)
    if copy and (not fp or fp.get(LISTING_KEY) != listing_digest(store, sources, lo, hi)):
        return [root]  # another folder whose earlier files differ (or an old report)
    stale: list[Path] = []
    changed_edge: dict[str, list[Path]] = {}
    for table, signals in sources.items():
        for part in store.partitions(table, signals, _dates(lo, hi)):
            if copy and part.day == hi.date():
                continue  # every edge file is digested below
            stamp = store.partition_stamp(table, part.signal, part.day, part.region)
            if stamp is None or stamp < cutoff:
                continue  # nothing in the partition changed since the report began
            changed = [p for p in part.files() if _modified_since(p, cutoff)]
            if fp and part.day == hi.date():
                changed_edge.setdefault(table, []).extend(changed)
            else:  # a changed folder without a changed file lost one (a copy: listed)
                stale.extend(changed or ([] if copy else [part.folder]))
    if not fp:
        return stale
    if copy:
        return stale or _edge_differs(store, sources, fp, lo, hi)
    recorded: dict[str, list[int]] = fp.get("edge", {})
    gone = [k for k in recorded if not (root / "lake" / k).is_file()]
    stale += [root / "lake" / k for k in gone]
    if changed_edge and not stale:  # no digest needed once stale
        try:
            now = edge_digests(store, changed_edge, lo, hi)
        except StoreError:
            return [p for paths in changed_edge.values() for p in paths]
        lake = store.lake
        for path in (p for paths in changed_edge.values() for p in paths):
            key = path.relative_to(lake).as_posix()
            if now.get(key) != recorded.get(key):
                stale.append(path)
    return stale

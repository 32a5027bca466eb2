"""The shared filters' catalogue: time bounds, regions, models and arms of the store.

What the sidebar of every analysis page lists.  It equals what the reference named
queries compute over the minute rows (``overview_time_bounds``, ``overview_regions``,
``overview_models``, ``filters_arms``) but reads far less:

- labels (region, model, arm) of the counter, histogram and gauge signals come from
  their exact hourly roll-ups (``lake/<table>_hourly``, 60x fewer rows) where a roll-up is
  fresh, and from the minute rows of the partitions whose roll-up is stale or missing
  (:meth:`observatory.store.Store.hourly_plan` decides; docs/architecture.md,
  "Hourly roll-up").  A roll-up has one row per hour, model and arm of its partition,
  so it holds exactly the partition's label values;
- the first and latest step of request data from the earliest and the newest date
  partitions only (the date partition of a step is a non-decreasing function of its
  time, so the extreme steps lie there);
- each file's labels are kept for the life of the process, keyed by its path,
  modification time (ns), size and inode: a partition is replaced atomically, so only
  the files written since the last read (today's, in a live store) are read again.

``observatory serve`` calls :func:`warm_in_background` when the server starts: one
read in a background thread fills that per-process memory, so the first page a
viewer opens lists the filters from it instead of reading every file.

No Streamlit here: :func:`read_catalogue` takes a :class:`~observatory.store.Store`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from observatory.store import ROLLUP_OF, Store, StoreError

log = logging.getLogger(__name__)

#: The request signal: its regions, arms and time bounds are the filters'.
REQUESTS = "requests"
#: Signals whose model labels the model filter lists, per table (as ``overview_models``).
MODEL_SIGNALS: dict[str, tuple[str, ...]] = {
    "counters": (REQUESTS, "errors", "energy", "prompt_tokens", "generation_tokens"),
    "gauges": ("gpu_utilization", "cost"),
    "histograms": ("latency",),
}


@dataclass(frozen=True)
class FilterCatalogue:
    """Every value the shared filters offer.

    Attributes:
        first, last: the first and latest step end of request data (UTC naive);
            None when the store holds no request rows.
        regions: ``region`` and ``display_name`` of every region of the regions
            catalogue or with request data, sorted by region (``display_name`` falls
            back to the region).
        models: every model label of :data:`MODEL_SIGNALS` (``""`` = no label), sorted.
        arms: every arm label of the request data (``""`` = no label), sorted.
    """

    first: datetime | None
    last: datetime | None
    regions: pd.DataFrame
    models: list[str]
    arms: list[str]


def _partitions(store: Store, table: str, signal: str) -> dict[date, list[Path]]:
    """The data files of one signal, by partition date."""
    by_date: dict[date, list[Path]] = {}
    for part in store.partitions(table, [signal]):
        by_date.setdefault(part.day, []).extend(part.files())
    return by_date


def _label_files(
    store: Store, table: str, signals: tuple[str, ...]
) -> list[tuple[str, list[Path]]]:
    """``(table or roll-up name, files)`` whose rows carry the labels of ``signals``."""
    if table not in ROLLUP_OF:
        files = [p for sig in signals for ps in _partitions(store, table, sig).values() for p in ps]
        return [(table, files)]
    days = store.stored_dates(table, signals)
    if not days:
        return []
    # hourly_plan takes the window (start, end]: these bounds cover the dates found.
    start = datetime.combine(days[0], time()) - timedelta(microseconds=1)
    plan = store.hourly_plan(table, signals, start, datetime.combine(days[-1], time()))
    return [(ROLLUP_OF[table], plan.hourly), (table, plan.minutes_all)]


Labels = frozenset[tuple[str, ...]]
#: Distinct labels of every file read so far: ``(path, columns)`` -> (the file's
#: ``(mtime_ns, size, inode)`` when read, its labels).  Partition files are replaced
#: atomically (a new inode and modification time), so a changed identity means the
#: file must be read again; an unchanged one (every closed day) is not read again.
_SEEN: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, int, int], Labels]] = {}
_SEEN_MAX = 500_000  # entries (about 100 bytes each; label sets are shared)
_INTERNED: dict[Labels, Labels] = {}
_SEEN_LOCK = threading.Lock()


def _distinct(
    store: Store, name: str, files: list[Path], columns: tuple[str, ...]
) -> set[tuple[str, ...]]:
    """Distinct ``columns`` (a missing label as ``""``) over ``files`` of table ``name``.

    Files read before in this process and unchanged since (:data:`_SEEN`) are not
    read again; the others are read in one query.
    """
    out: set[tuple[str, ...]] = set()
    unread: dict[str, tuple[int, int, int]] = {}
    for path in files:
        try:
            st = path.stat()
        except FileNotFoundError:  # removed since it was listed: no rows to show
            continue
        ident = (st.st_mtime_ns, st.st_size, st.st_ino)
        seen = _SEEN.get((path.as_posix(), columns))
        if seen is not None and seen[0] == ident:
            out |= seen[1]
        else:
            unread[path.as_posix()] = ident
    if not unread:
        return out
    listed = list(unread)
    # DuckDB numbers the files of a list in its order (``file_index``): grouping by that
    # integer and the bare columns (not an expression such as coalesce) is the cheap way
    frame = store.query(
        f"SELECT DISTINCT file_index, {', '.join(columns)} "
        f"FROM {store.parquet_source(name, [Path(f) for f in listed])}"
    )
    by_file: dict[str, set[tuple[str, ...]]] = {}
    for index, *values in frame.itertuples(index=False, name=None):
        label = tuple("" if v is None or pd.isna(v) else str(v) for v in values)
        by_file.setdefault(listed[index], set()).add(label)
    with _SEEN_LOCK:
        if len(_SEEN) + len(unread) > _SEEN_MAX:
            _SEEN.clear()
            _INTERNED.clear()
        for file, ident in unread.items():
            labels = frozenset(by_file.get(file, ()))
            labels = _INTERNED.setdefault(labels, labels)
            _SEEN[(file, columns)] = (ident, labels)
            out |= labels
    return out


def _request_labels(store: Store) -> set[tuple[str, ...]]:
    """Distinct ``(region, model, arm)`` of the request data (``""`` for a missing label)."""
    return {
        label
        for name, files in _label_files(store, "counters", (REQUESTS,))
        for label in _distinct(store, name, files, ("region", "model", "arm"))
    }


def _other_models(store: Store) -> set[str]:
    """Distinct model labels of :data:`MODEL_SIGNALS` but requests (``""`` = none).

    Only the ``model`` column is read, from the roll-ups where fresh.
    """
    return {
        label[0]
        for table, signals in MODEL_SIGNALS.items()
        for name, files in _label_files(store, table, tuple(s for s in signals if s != REQUESTS))
        for label in _distinct(store, name, files, ("model",))
    }


def _first_step(store: Store, by_date: dict[date, list[Path]]) -> datetime | None:
    """The first ``ts_utc`` of the files ``by_date`` (None without rows).

    Reads the earliest date partition, and every file only when that one holds no rows.
    """
    if not by_date:
        return None
    sql = "SELECT min(ts_utc) AS t FROM {}"
    first = store.query(sql.format(store.parquet_source("counters", by_date[min(by_date)])))
    t = first["t"].iloc[0]
    if pd.isna(t):  # an emptied partition: rare, so the full read is acceptable
        every = [path for files in by_date.values() for path in files]
        t = store.query(sql.format(store.parquet_source("counters", every)))["t"].iloc[0]
    return None if pd.isna(t) else pd.Timestamp(t).to_pydatetime()


def _regions(store: Store, with_data: list[str]) -> pd.DataFrame:
    """The regions catalogue plus regions with data but no catalogue row."""
    named = store.query("SELECT region, display_name FROM regions")
    names = dict(zip(named["region"], named["display_name"], strict=True))
    every = sorted(set(names) | set(with_data))
    return pd.DataFrame({"region": every, "display_name": [names.get(r, r) for r in every]})


def read_catalogue(store: Store) -> FilterCatalogue:
    """The shared filters' catalogue of ``store`` (see the module docstring for how).

    One read at a time per process (:data:`_READ_LOCK`): a page that asks while the
    server's warm-up is reading waits for it and then reads only what changed,
    instead of reading every file a second time beside it.

    Raises:
        StoreError: a file of the store cannot be read.
    """
    with _READ_LOCK:
        return _read_catalogue(store)


#: Serialises :func:`read_catalogue` (the warm-up thread and the sessions' runs).
_READ_LOCK = threading.Lock()


def _read_catalogue(store: Store) -> FilterCatalogue:
    requests = _partitions(store, "counters", REQUESTS)
    labels = _request_labels(store)
    return FilterCatalogue(
        first=_first_step(store, requests),
        last=store.latest_step("counters", [REQUESTS]),
        regions=_regions(store, sorted({region for region, _, _ in labels})),
        models=sorted({model for _, model, _ in labels} | _other_models(store)),
        arms=sorted({arm for _, _, arm in labels}),
    )


def warm_in_background(root: str | Path) -> threading.Thread:
    """Read the catalogue of the store at ``root`` once, in a daemon thread, so that
    every file's labels are remembered (:data:`_SEEN`) before the first page asks.

    What the pages then show is unchanged: they still call :func:`read_catalogue`,
    which re-reads any file changed since (a new modification time or inode).  A
    missing or empty store is skipped; a read error is logged (the first page reads
    the store itself and shows the error).

    Returns:
        the started thread (``join`` it to wait for the warm-up).
    """

    def warm() -> None:
        store = Store(root)
        try:
            if store.has_data():
                read_catalogue(store)
        except (StoreError, OSError) as exc:
            log.warning("filter catalogue warm-up of %s failed: %s", root, exc)
        finally:
            store.refresh()  # closes its DuckDB connection

    thread = threading.Thread(target=warm, name="observatory-catalogue-warm-up", daemon=True)
    thread.start()
    return thread

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
  time, so the extreme steps lie there), remembered per date as the labels are;
- each partition's labels are kept for the life of the process, keyed by its folder
  and the folder's stamp (modification time, :meth:`observatory.store.Store.partition_stamp`):
  the writer gives the folder a new stamp with every write and closed-day compaction
  keeps it, so checking a partition is one ``stat`` of its folder (not one per file),
  and only the partitions written since the last read (today's, in a live store) are
  read again;
- a file listed and then gone before DuckDB opens it (a closed day compacted under
  the read) makes the read list the files again and run once more.

``observatory serve`` starts :func:`app.data.warm_up`, which calls
:func:`warm_in_background` with the dashboard's shared Store: one read in a background
thread builds that Store's DuckDB views and fills the per-process memory, so the first
page a viewer opens finds both ready (or waits for them while the warm-up runs)
instead of building and reading them itself.

No Streamlit here: :func:`read_catalogue` takes a :class:`~observatory.store.Store`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic as time_now

import pandas as pd

from observatory.hour_files import folder_stamp
from observatory.store import (
    ROLLUP_OF,
    DataPartition,
    Store,
    StoreError,
    atomic_write_bytes,
    retry_on_vanished,
)

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


#: A file whose rows carry a partition's labels: (the partition folder, as a string;
#: ``table`` or its roll-up table; the file).
LabelFile = tuple[str, str, Path]


def _label_files(store: Store, table: str, parts: list[DataPartition]) -> list[LabelFile]:
    """The files whose rows carry the labels of the partitions ``parts``: each one's
    fresh hourly roll-up (one file; 60x fewer rows), else its data files
    (:meth:`observatory.store.Store.hourly_plan` decides).  Folder listings and
    ``stat`` calls of the dates of ``parts`` only."""
    if table not in ROLLUP_OF:
        return [(os.fspath(part.folder), table, f) for part in parts for f in part.files()]
    wanted = {os.fspath(part.folder) for part in parts}
    days = sorted({part.day for part in parts})
    # hourly_plan takes the window (start, end]: these bounds cover the dates of parts.
    start = datetime.combine(days[0], time()) - timedelta(microseconds=1)
    signals = sorted({part.signal for part in parts})
    plan = store.hourly_plan(table, signals, start, datetime.combine(days[-1], time()))
    # a roll-up table mirrors its data table's signal=/date=/region= folders
    rollup, data = (os.fspath(store.lake / name) for name in (ROLLUP_OF[table], table))
    out: list[LabelFile] = []
    for path in plan.hourly:
        folder = data + os.path.dirname(os.fspath(path))[len(rollup) :]
        if folder in wanted:
            out.append((folder, ROLLUP_OF[table], path))
    for path in plan.minutes_all:
        folder = os.path.dirname(os.fspath(path))
        if folder in wanted:
            out.append((folder, table, path))
    return out


Labels = frozenset[tuple[str, ...]]
#: Distinct labels of every partition read so far: ``(folder, columns)`` -> (the
#: folder's stamp when read, the labels of its rows).  The writer gives a partition
#: folder a new stamp (modification time) with every write, and compaction keeps it
#: (same rows), so an unchanged stamp means unchanged labels: a closed day is never
#: read again, a written one (today's, in a live store) is.
_SEEN: dict[tuple[str, tuple[str, ...]], tuple[int, Labels]] = {}
_SEEN_MAX = 500_000  # entries (about 100 bytes each; label sets are shared)
_INTERNED: dict[Labels, Labels] = {}
_SEEN_LOCK = threading.Lock()
#: Partitions read in this process since :data:`_SEEN` was last kept on disk.
_UNSAVED: set[tuple[str, tuple[str, ...]]] = set()
#: Store roots whose kept labels were loaded into :data:`_SEEN` in this process.
_LOADED: set[str] = set()
#: The file beside the store's SLO slice cache (``observatory.slo_cache.default_root``:
#: outside the store, which readers never write) that keeps :data:`_SEEN`'s entries of
#: that store across restarts, so the first catalogue read of a new server process
#: reads only the partitions written since (a stamp per folder) instead of every
#: partition's labels (0.8 s at the 20-region fleet).
KEPT_FILE = "filter-catalogue.json"
_KEPT_VERSION = 1
#: After its first write in a process, the kept file is rewritten at most this often:
#: in a live store every collector step gives today's partitions new stamps, and the
#: whole file (thousands of partitions) need not be serialised on the page run that
#: reads them each minute; a restart re-reads at most this much of today's writes.
KEEP_EVERY_S = 300.0
#: When each store's kept file was last written in this process (monotonic seconds).
_KEPT_AT: dict[str, float] = {}


def _kept_path(store: Store) -> Path | None:
    """Where ``store``'s labels are kept across restarts (None: caching is off,
    ``OBSERVATORY_SLO_CACHE=off``)."""
    from observatory.slo_cache import default_root, slice_cache_disabled

    return None if slice_cache_disabled() else default_root(store) / KEPT_FILE


def _load_kept(store: Store) -> None:
    """Add the labels kept for ``store`` (:data:`KEPT_FILE`) to :data:`_SEEN`, once per
    process and store; a missing, unreadable or other-version file is ignored (the
    partitions are then read, as on a first start)."""
    root = os.fspath(store.root.resolve())
    if root in _LOADED:
        return
    _LOADED.add(root)
    path = _kept_path(store)
    if path is None:
        return
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("version") != _KEPT_VERSION or kept.get("lake") != os.fspath(store.lake):
            return
        entries = kept["entries"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    with _SEEN_LOCK:
        for folder, columns, stamp, labels in entries:
            key = (str(folder), tuple(columns))
            if key not in _SEEN and isinstance(stamp, int):
                value = frozenset(tuple(str(v) for v in row) for row in labels)
                _SEEN[key] = (stamp, _INTERNED.setdefault(value, value))


def _keep(store: Store) -> None:
    """Write :data:`_SEEN`'s entries of ``store`` to :data:`KEPT_FILE` when partitions
    were read since the last write, at most every :data:`KEEP_EVERY_S` after the first
    (temporary file + rename; a failure to write is logged and changes nothing else)."""
    path = _kept_path(store)
    prefix = os.fspath(store.lake) + os.sep
    last = _KEPT_AT.get(prefix)
    if last is not None and time_now() - last < KEEP_EVERY_S:
        return
    with _SEEN_LOCK:
        if path is None or not any(k[0].startswith(prefix) for k in _UNSAVED):
            return
        _KEPT_AT[prefix] = time_now()
        entries = [
            [folder, list(columns), stamp, sorted(list(row) for row in labels)]
            for (folder, columns), (stamp, labels) in _SEEN.items()
            if folder.startswith(prefix)
        ]
        _UNSAVED.difference_update([k for k in _UNSAVED if k[0].startswith(prefix)])
    body = {"version": _KEPT_VERSION, "lake": os.fspath(store.lake), "entries": entries}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(body, separators=(",", ":")).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot keep the filter catalogue's labels in %s: %s", path, exc)


def _distinct(
    store: Store, table: str, signals: tuple[str, ...], columns: tuple[str, ...]
) -> set[tuple[str, ...]]:
    """Distinct ``columns`` (a missing label as ``""``) of the rows of ``signals`` in
    ``table``.

    One ``stat`` per partition folder (its stamp); partitions read before in this
    process with the same stamp (:data:`_SEEN`) are not read again, the others are
    read in one query per kind of file (their fresh roll-ups, else their data files).
    """
    out: set[tuple[str, ...]] = set()
    unread: dict[str, tuple[DataPartition, int]] = {}
    for part in store.partitions(table, signals):
        folder = os.fspath(part.folder)
        stamp = folder_stamp(part.folder)  # taken before any read: a later write changes it
        if stamp is None:  # removed since it was listed: no rows to show
            continue
        seen = _SEEN.get((folder, columns))
        if seen is not None and seen[0] == stamp:
            out |= seen[1]
        else:
            unread[folder] = (part, stamp)
    if not unread:
        return out
    parts = [part for part, _ in unread.values()]
    by_folder = retry_on_vanished(  # a day compacted under the read: list again, once
        lambda: _labels_by_folder(store, _label_files(store, table, parts), columns),
        "filter catalogue",
    )
    with _SEEN_LOCK:
        if len(_SEEN) + len(unread) > _SEEN_MAX:
            _SEEN.clear()
            _INTERNED.clear()
        for folder, (_, stamp) in unread.items():
            labels = frozenset(by_folder.get(folder, ()))
            labels = _INTERNED.setdefault(labels, labels)
            _SEEN[(folder, columns)] = (stamp, labels)
            _UNSAVED.add((folder, columns))
            out |= labels
    return out


def _labels_by_folder(
    store: Store, files: list[LabelFile], columns: tuple[str, ...]
) -> dict[str, set[tuple[str, ...]]]:
    """Distinct ``columns`` (a missing label as ``""``) of ``files``, by partition
    folder; one query per kind of file (roll-up, data)."""
    by_kind: dict[str, list[LabelFile]] = {}
    for file in files:
        by_kind.setdefault(file[1], []).append(file)
    by_folder: dict[str, set[tuple[str, ...]]] = {}
    bare = ", ".join(columns)
    labels = ", ".join(f"coalesce({c}, '')" for c in columns)
    for kind, listed in by_kind.items():
        # DuckDB numbers the files of a list in its order (``file_index``): DISTINCT over
        # that integer and the bare columns is the cheap way; coalesce after it
        frame = store.query(
            f"SELECT file_index, {labels} FROM ("
            f"SELECT DISTINCT file_index, {bare} "
            f"FROM {store.parquet_source(kind, [path for _, _, path in listed])})"
        )
        for index, *values in frame.itertuples(index=False, name=None):
            by_folder.setdefault(listed[index][0], set()).add(tuple(values))
    return by_folder


def _request_labels(store: Store) -> set[tuple[str, ...]]:
    """Distinct ``(region, model, arm)`` of the request data (``""`` for a missing label)."""
    return _distinct(store, "counters", (REQUESTS,), ("region", "model", "arm"))


def _other_models(store: Store) -> set[str]:
    """Distinct model labels of :data:`MODEL_SIGNALS` but requests (``""`` = none).

    Only the ``model`` column is read, from the roll-ups where fresh.
    """
    return {
        label[0]
        for table, signals in MODEL_SIGNALS.items()
        for label in _distinct(store, table, tuple(s for s in signals if s != REQUESTS), ("model",))
    }


#: The first or last step of each date's request partitions read so far:
#: ``(store root, "min" or "max", date)`` -> (the partitions' folders and stamps when
#: read, the step or None for no rows).
_STEPS: dict[
    tuple[Path, str, date], tuple[tuple[tuple[Path, int | None], ...], datetime | None]
] = {}


def _day_step(store: Store, day: date, agg: str) -> datetime | None:
    """``agg`` (``min`` or ``max``) of ``ts_utc`` over the request rows of date ``day``
    (None without rows): remembered while no partition of the date changes its stamp,
    else read from the date's data files (one query; listed again once if a file
    vanishes under it)."""
    parts = list(store.partitions("counters", [REQUESTS], [day]))
    stamps = tuple((part.folder, folder_stamp(part.folder)) for part in parts)
    key = (store.root, agg, day)
    seen = _STEPS.get(key)
    if seen is not None and seen[0] == stamps:
        return seen[1]

    def step(files: list[Path]) -> datetime | None:
        sql = f"SELECT {agg}(ts_utc) AS t FROM {store.parquet_source('counters', files)}"
        t = store.query(sql)["t"].iloc[0]
        return None if pd.isna(t) else pd.Timestamp(t).to_pydatetime()

    value = retry_on_vanished(  # a day compacted under the read: list again, once
        lambda: step([f for part in parts for f in part.files()]), "filter catalogue"
    )
    with _SEEN_LOCK:
        if len(_STEPS) > _SEEN_MAX:
            _STEPS.clear()
        _STEPS[key] = (stamps, value)
    return value


def _extreme_step(store: Store, agg: str) -> datetime | None:
    """The first (``min``) or latest (``max``) step end of the request data (None
    without rows).

    The date partition of a step is a non-decreasing function of its time, so the
    extreme step lies in the earliest (latest) date with rows: dates are read from
    that end until one holds rows (an emptied partition holds none).
    """
    days = store.stored_dates("counters", [REQUESTS])
    for day in days if agg == "min" else reversed(days):
        value = _day_step(store, day, agg)
        if value is not None:
            return value
    return None


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
    _load_kept(store)
    labels = _request_labels(store)
    catalogue = FilterCatalogue(
        first=_extreme_step(store, "min"),
        last=_extreme_step(store, "max"),
        regions=_regions(store, sorted({region for region, _, _ in labels})),
        models=sorted({model for _, model, _ in labels} | _other_models(store)),
        arms=sorted({arm for _, _, arm in labels}),
    )
    _keep(store)
    return catalogue


def warm_in_background(
    root: str | Path, open_store: Callable[[str], Store] | None = None
) -> threading.Thread:
    """Read the catalogue of the store at ``root`` once, in a daemon thread, so that
    every partition's labels are remembered (:data:`_SEEN`) before the first page asks.

    ``open_store(str(root))`` gives the Store to read through: the dashboard passes its
    shared one (:func:`app.data.warm_up`), so the warm-up also builds the DuckDB views
    the pages then use; without it a private Store is opened and closed afterwards.
    What the pages then show is unchanged: they still call :func:`read_catalogue`,
    which re-reads any partition written since (a new folder stamp).  A missing or
    empty store is skipped; a read error is logged (the first page reads the store
    itself and shows the error).

    Returns:
        the started thread (``join`` it to wait for the warm-up).
    """

    def warm() -> None:
        if not Store(root).has_data():
            return
        try:
            store = (open_store or Store)(str(root))
            try:
                read_catalogue(store)
            finally:
                if open_store is None:
                    store.refresh()  # closes the private Store's DuckDB connection
        except (StoreError, OSError) as exc:
            log.warning("filter catalogue warm-up of %s failed: %s", root, exc)

    thread = threading.Thread(target=warm, name="observatory-catalogue-warm-up", daemon=True)
    thread.start()
    return thread

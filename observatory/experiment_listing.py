"""The experiment list of a store (``sql/queries/experiment_arms.sql``), kept per data file.

Every data file of the ``requests`` counter and of the ``accuracy`` gauge contributes
its rows (first/last step with requests, requests per model and arm; models with an
accuracy gauge), saved in the state folder (:mod:`observatory.experiment_files`) with
the file's modification time (ns) and size.  Data files (hour files,
:mod:`observatory.hour_files`) are replaced atomically, so only files whose fingerprint
changed since the last call are read again (the current hour's, in a live store); the
list is the same aggregate as the query's over all data.
"""

from __future__ import annotations

import pandas as pd

from observatory.experiment_files import (
    best_effort,
    memory,
    memory_lock,
    stat,
    state_dir,
    write_frame,
)
from observatory.store import Store, retry_on_vanished

_ARMS_SQL = (
    "SELECT filename, region, model, arm, min(ts_utc) AS first_ts, max(ts_utc) AS last_ts, "
    "sum(value) AS requests FROM {src} WHERE value > 0 AND arm IS NOT NULL AND arm <> '' "
    "AND model IS NOT NULL GROUP BY ALL"
)
_ACC_SQL = "SELECT DISTINCT filename, region, model FROM {src} WHERE model IS NOT NULL"
_LISTED = {("counters", "requests"): _ARMS_SQL, ("gauges", "accuracy"): _ACC_SQL}


def _listing_files(store: Store) -> dict[str, tuple[int, int]]:
    out = {}
    for table, signal in _LISTED:
        for path in store.data_files(table, [signal]):
            out[path.relative_to(store.lake).as_posix()] = stat(path)
    return out


def _read_contributions(store: Store, files: list[str]) -> pd.DataFrame:
    """Per data file, its rows of the listing (``file`` names it; one row without a
    model for a file that holds none, to keep its fingerprint)."""
    parts = []
    for (table, signal), sql in _LISTED.items():
        mine = [f for f in files if f.startswith(f"{table}/signal={signal}/")]
        if not mine:
            continue
        frame = store.query(
            sql.format(src=store.parquet_source(table, [store.lake / f for f in mine]))
        )
        lake = store.lake.as_posix() + "/"
        frame["file"] = [str(f).removeprefix(lake) for f in frame["filename"]]
        frame["kind"] = signal
        empty = sorted(set(mine) - set(frame["file"]))
        parts.append(frame.drop(columns="filename"))
        parts.append(pd.DataFrame({"file": empty, "kind": signal}))
    cols = ["file", "kind", "region", "model", "arm", "first_ts", "last_ts", "requests"]
    return pd.concat([p.reindex(columns=cols) for p in parts], ignore_index=True)


def arms_frame(store: Store) -> pd.DataFrame:
    """What ``sql/queries/experiment_arms.sql`` returns over all data, from per-file rows.

    Files whose fingerprint changed since the last call (in this process or saved in
    the state folder) are read; the rest comes from the saved rows.  Columns:
    ``model``, ``arm``, ``first_ts``, ``last_ts``, ``requests``, ``regions`` (sorted
    list), ``has_accuracy``, sorted by model and arm.  A file listed and gone before
    it is read (a closed day compacted meanwhile) makes it list again, once
    (:func:`observatory.store.retry_on_vanished`).

    Raises:
        StoreError: a data file could not be read (named), twice for a vanished one.
    """
    return retry_on_vanished(lambda: _arms_frame(store), "experiment listing")


def _arms_frame(store: Store) -> pd.DataFrame:
    """:func:`arms_frame`, one listing."""
    folder = state_dir(store)
    saved_path = folder / "listing.parquet"
    now = _listing_files(store)
    with memory_lock:
        saved = memory.get(str(saved_path))
    if saved is None and saved_path.exists():
        try:
            saved = pd.read_parquet(saved_path)
        except (OSError, ValueError):
            saved = None
    if saved is None:
        saved = pd.DataFrame(columns=["file", "mtime_ns", "size"])
    seen = dict(
        zip(saved["file"], zip(saved["mtime_ns"], saved["size"], strict=True), strict=False)
    )
    changed = [f for f, fp in now.items() if seen.get(f) != fp]
    if changed or set(seen) - set(now):
        keep = saved[saved["file"].isin(set(now) - set(changed))]
        new = _read_contributions(store, changed) if changed else keep.iloc[:0].copy()
        new["mtime_ns"] = [now[f][0] for f in new["file"]]
        new["size"] = [now[f][1] for f in new["file"]]
        saved = pd.concat([keep, new], ignore_index=True)
        best_effort(write_frame, saved_path, saved)
    with memory_lock:
        cached = memory.get(f"listing:{saved_path}")
        if cached is not None and cached[0] is saved:
            return cached[1].copy()
    out = _aggregate_listing(saved)
    with memory_lock:
        memory[str(saved_path)] = saved
        memory[f"listing:{saved_path}"] = (saved, out)
    return out.copy()


def _aggregate_listing(rows: pd.DataFrame) -> pd.DataFrame:
    cols = ["model", "arm", "first_ts", "last_ts", "requests", "regions", "has_accuracy"]
    if rows.empty:  # no listed file yet (an empty store, or no requests counter)
        return pd.DataFrame(columns=cols)
    req = rows[(rows["kind"] == "requests") & rows["model"].notna()]
    if req.empty:
        return pd.DataFrame(columns=cols)
    acc = set(rows.loc[(rows["kind"] == "accuracy") & rows["model"].notna(), "model"])
    keys = ["model", "arm"]
    out = (
        req.groupby(keys, sort=True)
        .agg(first_ts=("first_ts", "min"), last_ts=("last_ts", "max"), requests=("requests", "sum"))
        .reset_index()
    )
    regions = req[[*keys, "region"]].drop_duplicates().sort_values([*keys, "region"])
    out["regions"] = regions.groupby(keys, sort=True)["region"].agg(list).to_numpy()
    out["has_accuracy"] = out["model"].isin(acc)
    return out[cols]

"""The dashboard's only door to the store: cached Store objects and cached named queries.

- The store folder comes from ``OBSERVATORY_STORE`` (``observatory serve`` sets it;
  default ``data/demo``); the health thresholds from the configuration file named by
  ``OBSERVATORY_CONFIG`` when set, else the defaults.
- One :class:`~observatory.store.Store` per store folder and view shape
  (:meth:`~observatory.store.Store.view_key`) is kept with ``st.cache_resource``: its
  views list the files again in every query, so it serves every data version; a table
  that gets its first file gives a new key and so a fresh Store whose views read it
  (the old one is dropped, its in-memory DuckDB closed when no run uses it).
- Query results are kept with ``st.cache_data(ttl=60)`` keyed by
  ``(store folder, query name, params, data version)``.

Pages never import DuckDB or the Store themselves; they call :func:`query`.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import streamlit as st

from analytics.overview import Thresholds
from app.filter_catalogue import warm_in_background
from observatory.config import ConfigError, load_config
from observatory.store import Store, StoreError

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("data/demo")
StoreStatus = Literal["missing", "empty", "ready"]

__all__ = ["StoreError", "StoreInfo", "query", "store_info", "thresholds"]


@dataclass(frozen=True)
class StoreInfo:
    """Where the store is and whether it can be read.

    Attributes:
        path: the store folder.
        status: ``missing`` (no such folder), ``empty`` (no data files yet), ``ready``.
    """

    path: Path
    status: StoreStatus


def store_path() -> Path:
    """The store folder the dashboard reads (``OBSERVATORY_STORE``, default ``data/demo``)."""
    value = os.environ.get("OBSERVATORY_STORE", "").strip()
    return Path(value) if value else DEFAULT_STORE


def store_info() -> StoreInfo:
    """The store folder and its status (checked on every run: cheap file-system tests)."""
    path = store_path()
    if not path.is_dir():
        return StoreInfo(path, "missing")
    return StoreInfo(path, "ready" if Store(path).has_data() else "empty")


def _release(store: Store) -> None:
    store.refresh()  # closes the in-memory DuckDB connection


@st.cache_resource(max_entries=4, show_spinner=False, on_release=_release)
def _shared_store(path: str, views: tuple[tuple[str, str], ...]) -> Store:
    """The Store of ``path`` whose views read ``views`` (:meth:`Store.view_key`)."""
    del views  # part of the cache key only
    store = Store(path)
    store.connect()
    return store


def shared_store(path: str) -> Store:
    """The dashboard's shared Store of ``path``.

    The same Store, with its DuckDB views, serves every data version: a view over a
    file pattern lists the files again in each query, so it sees every write, and
    building the views costs 0.3 s at the large fleet (they list every file of 30
    days), which each page paid after every collector write when the Store was kept
    per data version.  A new Store is built only when :meth:`Store.view_key` changes
    (a table got its first file).  DuckDB caches no local file data or Parquet
    metadata across queries by default (``cache_local_files``,
    ``parquet_metadata_cache``: false), so a long-lived connection reads no stale data.
    """
    return _shared_store(path, Store(path).view_key())


def warm_up(path: str | Path) -> threading.Thread:
    """Start the server's warm-up for the store at ``path`` (``observatory serve`` calls
    it before Streamlit starts): a daemon thread that builds the DuckDB views of the
    very Store the pages use (:func:`shared_store` of the resolved path, as the pages
    call it) and reads the filter catalogue through it
    (:func:`app.filter_catalogue.warm_in_background`).

    Single flight: a page that asks for the Store while the warm-up builds it waits for
    that build (``st.cache_resource`` computes a value once, other callers wait on its
    lock) instead of building a second one; one catalogue read at a time likewise.
    Then it reads the drift archive's newest report into the Drift page's cache
    (:func:`app.drift_data.preload_newest_report`), after the catalogue so that the two
    do not share the cores, and last calls :func:`gc.freeze`: the long-lived objects
    the warm-up made (views, catalogue, report) leave the cyclic garbage collector's
    generations, so its full collections during page runs do not walk them again.
    Measured (``bench/page_times.py --modes warmed --repeat 3``, with and without
    ``--gc-freeze``, large fleet): 0.06-0.11 s less per page (Overview 0.99 -> 0.88 s,
    Latency 0.57 -> 0.49, Cost & Carbon 0.61 -> 0.51), small fleet unchanged.

    Returns:
        the started thread (``join`` it to wait for the whole warm-up).
    """
    catalogue = warm_in_background(Path(path).resolve(), open_store=shared_store)

    def drift_report() -> None:
        from app import drift_data

        catalogue.join()
        try:
            drift_data.preload_newest_report()
        except Exception:  # the page reads it again and shows what went wrong
            log.exception("warm-up: reading the newest drift report failed")
        gc.freeze()  # once, after the warm-up: see the docstring

    thread = threading.Thread(target=drift_report, name="observatory-warm-drift", daemon=True)
    thread.start()
    return thread


@st.cache_data(ttl=60, max_entries=512, show_spinner=False)
def _named(
    path: str, name: str, params: tuple[tuple[str, Any], ...], version: float
) -> pd.DataFrame:
    del version  # part of the cache key only
    return shared_store(path).named(
        name, **{k: list(v) if isinstance(v, tuple) else v for k, v in params}
    )


def query(name: str, **params: Any) -> pd.DataFrame:
    """Run the named query ``sql/queries/<name>.sql`` (cached for 60 s per data version).

    List parameters (``regions``, ``models``) are order-insensitive and may be given
    as lists or tuples.

    Raises:
        StoreError: the query failed (the message says why).
    """
    path = store_path()
    version = Store(path).data_version()
    key = tuple(
        sorted(
            (k, tuple(sorted(v)) if isinstance(v, list | tuple | set) else v)
            for k, v in params.items()
        )
    )
    return _named(str(path.resolve()), name, key, version)


def thresholds() -> tuple[Thresholds, str | None]:
    """The health thresholds, and a message when the configuration could not be read.

    From ``health`` of the file named by ``OBSERVATORY_CONFIG``; the defaults
    (error ratio 1 %, p99 20 s) when it is unset or invalid.
    """
    config_path = os.environ.get("OBSERVATORY_CONFIG", "").strip()
    if not config_path:
        return Thresholds(), None
    try:
        health = load_config(config_path).settings.health
    except ConfigError as exc:
        return Thresholds(), f"Using default health thresholds: {exc.messages[0]}"
    return Thresholds(
        max_error_ratio=health.max_error_ratio, max_p99_seconds=health.max_p99_seconds
    ), None

"""The Regressions page's data: the regression report over the dashboard's store, cached.

Keyed by the store folder, its data version and the page's choices (history and bin
length), so a new collection run or a new annotation shows on the next run.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from app import data
from observatory import annotations as notes
from observatory.regressions import Report, analyse
from observatory.store import Store

__all__ = ["report"]


@st.cache_data(ttl=300, show_spinner="Finding regressions ...", max_entries=8)
def _report(path: str, version: float, noted: float, lookback_s: int, bin_s: int) -> Report:
    del noted  # cache key only: the annotations file's modification time
    store = data._store(path, version)  # the dashboard's shared Store
    return analyse(store, lookback=timedelta(seconds=lookback_s), bin_s=bin_s)


def report(lookback: timedelta, bin_s: int = 300) -> Report:
    """Regressions, events and deployment verdicts over ``lookback`` before the latest data.

    Raises:
        observatory.store.StoreError: a query failed.
        observatory.store.StoreMissing: the store holds no data.
    """
    path = data.store_path()
    version = Store(path).data_version()
    notes_file = notes.path(path)
    noted = notes_file.stat().st_mtime if notes_file.exists() else 0.0
    return _report(str(path.resolve()), version, noted, int(lookback.total_seconds()), bin_s)

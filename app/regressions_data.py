"""The Regressions page's data: the regression report over the dashboard's store, cached.

Keyed by the store folder, its data version, the annotations file and the page's
choices (the window's end, lookback and bin length), so a new collection run or a new
annotation shows on the next run.  The analysis covers the whole fleet (one cached
result); :func:`selected` narrows it to the sidebar's regions, models and arms.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import streamlit as st

from app import data
from app.filters import Filters
from observatory import annotations as notes
from observatory.regressions import DEFAULT_BIN_S, Report, analyse
from observatory.store import Store

__all__ = ["report", "selected"]


@st.cache_data(ttl=300, show_spinner="Finding regressions ...", max_entries=8)
def _report(
    path: str, version: float, noted: float, end: datetime | None, lookback_s: int, bin_s: int
) -> Report:
    del noted  # cache key only: the annotations file's modification time
    store = data.shared_store(path)  # the dashboard's shared Store
    return analyse(store, end=end, lookback=timedelta(seconds=lookback_s), bin_s=bin_s)


def report(lookback: timedelta, end: datetime | None = None, bin_s: int = DEFAULT_BIN_S) -> Report:
    """Regressions, events and deployment verdicts over ``(end - lookback, end]``.

    Args:
        lookback: the window's length (the page passes the sidebar's time range).
        end: the window's end, UTC (naive = UTC); default: the latest stored step.
        bin_s: the bin length in seconds.

    Raises:
        observatory.store.StoreError: a query failed.
        observatory.store.StoreMissing: the store holds no data.
    """
    path = data.store_path()
    version = Store(path).data_version()
    notes_file = notes.path(path)
    noted = notes_file.stat().st_mtime if notes_file.exists() else 0.0
    return _report(str(path.resolve()), version, noted, end, int(lookback.total_seconds()), bin_s)


def selected(report: Report, filters: Filters) -> Report:
    """``report`` narrowed to the sidebar's regions, models and arms.

    Regressions, deployment verdicts and the per-bin ``signals`` frame keep only
    the selected slices (:meth:`app.filters.Filters.keeps`); events keep those of a
    selected region (fleet-wide events, without a region, stay).
    """
    return dataclasses.replace(
        report,
        regressions=[r for r in report.regressions if filters.keeps(r.region, r.model, r.arm)],
        verdicts=[v for v in report.verdicts if filters.keeps(v.region, v.model, v.arm)],
        events=[e for e in report.events if e.region is None or e.region in filters.regions],
        signals=report.signals[filters.mask(report.signals).to_numpy()],
    )

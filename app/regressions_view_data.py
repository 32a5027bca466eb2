"""The Regressions page's data: precomputed findings when they cover the sidebar's
window, otherwise the analysis of the selected regions now (cached).

Precomputed findings (:mod:`observatory.regressions_findings`, written by
``observatory regressions precompute``) are used when their lookback and bin length
are the sidebar's, they end at the sidebar's end or at most :data:`MAX_AGE` before it
(the page then says how far behind they are), and no annotation was recorded after
they were written.  Otherwise the page runs the same analysis now
(:func:`observatory.regressions_findings.compute`, a few regions at a time, no
incremental state: the page never writes into the store) on the selected regions
only; that costs what the analysis always cost and grows with the regions selected.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import streamlit as st

from app import data
from app.filters import Filters
from observatory import annotations as notes
from observatory import regressions_findings as rf
from observatory import regressions_state
from observatory.regressions import DEFAULT_BIN_S, _aware
from observatory.store import Store

__all__ = ["MAX_AGE", "findings"]

#: How far behind the sidebar's end precomputed findings may be and still be shown
#: (``OBSERVATORY_REGRESSIONS_MAX_AGE`` in minutes overrides it).
MAX_AGE = timedelta(minutes=15)


def _max_age() -> timedelta:
    raw = os.environ.get("OBSERVATORY_REGRESSIONS_MAX_AGE", "").strip()
    if not raw:
        return MAX_AGE
    try:
        return timedelta(minutes=float(raw))
    except ValueError:
        st.warning(f"OBSERVATORY_REGRESSIONS_MAX_AGE={raw!r} is not minutes; using 15.")
        return MAX_AGE


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


@st.cache_resource(ttl=300, max_entries=8, show_spinner=False)
def _stored(path: str, bin_s: int, lookback_s: int, stamp: int) -> rf.Findings | None:
    del stamp  # cache key only: findings.json's modification time
    return rf.load(Path(path), bin_s, timedelta(seconds=lookback_s))


@st.cache_resource(ttl=300, max_entries=4, show_spinner="Finding regressions ...")
def _computed(
    path: str,
    version: float,
    noted: int,
    end: datetime,
    lookback_s: int,
    bin_s: int,
    regions: tuple[str, ...],
) -> rf.Findings:
    del noted  # cache key only: the annotations file's modification time
    store = data.shared_store(path)  # the dashboard's shared Store
    lookback = timedelta(seconds=lookback_s)
    # a few regions at a time: memory bounded by one batch (the same findings)
    return rf.compute(store, end, lookback, bin_s, regions=list(regions) or None)


@st.cache_data(show_spinner=False, max_entries=8)
def _kept_regressions(path: str, bin_s: int, stamp: int) -> tuple[datetime, list[Any]] | None:
    del stamp  # cache key only
    return regressions_state.load_regressions(Path(path), bin_s)


def open_before(
    f: Filters, start: datetime, bin_s: int = DEFAULT_BIN_S
) -> tuple[list[Any], datetime | None]:
    """Regressions that began before ``start`` (the page's lookback) and are still open
    and worse, in the filters' selection, from the whole-fleet analysis that
    ``observatory regressions`` keeps in ``<store>/.regressions/`` (14 days by default),
    and the end of that analysis; ``([], None)`` when none was kept.

    The page's own analysis covers only the sidebar's range, where such a change is the
    baseline; an operator must still see it as open (as the CLI lists it).
    """
    path = data.store_path().resolve()
    files = regressions_state.folder(path).glob("state-*.json")
    stamp = max((_mtime(p) for p in files), default=0)
    kept = _kept_regressions(str(path), bin_s, stamp) if stamp else None
    if kept is None:
        return [], None
    end, regs = kept
    cut = start.replace(tzinfo=None)
    older = [
        r
        for r in regs
        if r.open and r.worse and r.start <= cut and f.keeps(r.region, r.model, r.arm)
    ]
    return older, end


def findings(f: Filters, bin_s: int = DEFAULT_BIN_S) -> tuple[rf.Findings, str]:
    """The findings over the sidebar's window and a caption saying where they come from.

    Raises:
        observatory.store.StoreError: a query failed (on-demand path).
        observatory.store.StoreMissing: the store holds no data (on-demand path).
    """
    path = data.store_path().resolve()
    lookback = f.span
    folder = rf.findings_folder(path, bin_s, lookback)
    stamp = _mtime(folder / "findings.json")
    noted = _mtime(notes.path(path))
    end = _aware(f.end)
    if stamp and noted <= stamp:
        found = _stored(str(path), bin_s, int(lookback.total_seconds()), stamp)
        if found is not None and timedelta(0) <= end - found.end <= _max_age():
            behind = end - found.end
            note = "precomputed by `observatory regressions precompute`" + (
                f", {behind} behind the latest step" if behind else ""
            )
            return found, note
    everything = not f.all_regions or set(f.regions) >= set(f.all_regions)
    regions = () if everything else tuple(sorted(f.regions))
    version = Store(path).data_version()
    found = _computed(str(path), version, noted, end, int(lookback.total_seconds()), bin_s, regions)
    return found, (
        "computed now for the selected regions (no precomputed findings for this range: "
        "running 'observatory regressions precompute' with this lookback makes this page fast)"
    )

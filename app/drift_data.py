"""The Drift page's data: drift computed on demand over the dashboard's store, the
report archive.

The store is the one :mod:`app.data` keeps (the dashboard's only door to the store).
Drift computed on demand runs in the server's background worker
(:func:`on_demand`, :mod:`observatory.drift_ondemand`): once per question for all
sessions, one question at a time; a finished report is used while it is fresh
(:func:`fresh`: the digests and modification times of what it read).  The report
archive is the folder named by ``OBSERVATORY_DRIFT_REPORTS`` (default
``reports/drift``), where ``observatory report drift`` and ``observatory run`` write.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import data
from app.filters import Filters
from observatory import drift_archive
from observatory.drift_archive import archive_folder
from observatory.drift_engine import DriftReport, Reference, _utc_naive, compute_drift
from observatory.drift_fresh import stale_files
from observatory.drift_ondemand import OnDemandDrift, Question
from observatory.drift_report import list_reports
from observatory.store import Store

__all__ = [
    "archive",
    "archive_path",
    "archive_table",
    "fresh",
    "on_demand",
    "preload_newest_report",
    "question",
    "saved_report",
    "selected",
    "store",
]


@st.cache_resource(max_entries=4, show_spinner="Reading the saved drift report ...")
def _saved(path: str, mtime_ns: int, size: int) -> DriftReport:
    """A JSON report of the archive, read once per file version (shared, never mutated)."""
    del mtime_ns, size  # cache key only
    return drift_archive.load_report(path)


def saved_report(path: Path) -> DriftReport | None:
    """The archive's JSON report at ``path`` (cached per file version, shared by every
    session), None if unreadable."""
    try:
        stat = path.stat()
        return _saved(str(path), stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):
        return None


def preload_newest_report() -> DriftReport | None:
    """Read the archive's newest JSON report into :func:`saved_report`'s cache.

    The server's warm-up calls it (:func:`app.data.warm_up`): the scheduled report of
    the page's default question is the newest one the job wrote, and reading it is
    most of the page's time at a large fleet (a 29 MB JSON at 20 regions: 0.4 s).
    None without a readable JSON report.
    """
    try:
        newest = max(archive_path().glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    except (OSError, ValueError):  # no folder, or no report in it
        return None
    return saved_report(newest)


def archive_path() -> Path:
    """The report archive folder (``OBSERVATORY_DRIFT_REPORTS``, default ``reports/drift``;
    :func:`observatory.drift_archive.archive_folder`)."""
    return archive_folder()


def _compute(question: Question) -> DriftReport:
    """``compute_drift`` of the whole fleet for ``question``, on its own Store (runs in
    the on-demand worker thread: no Streamlit, no DuckDB connection shared with a page)."""
    reader = Store(question.store)
    try:
        return compute_drift(
            reader,
            window=question.window,
            reference=Reference.parse(question.reference),
            end=question.end,
        )
    finally:
        reader.refresh()  # closes its DuckDB connection


@st.cache_resource(show_spinner=False)
def on_demand() -> OnDemandDrift:
    """The server process's on-demand drift runs, shared by every session
    (:class:`observatory.drift_ondemand.OnDemandDrift`: one run at a time, single flight)."""
    return OnDemandDrift(_compute)


def question(window: timedelta, reference: str, end: datetime) -> Question:
    """The on-demand question of the page: the whole fleet of the dashboard's store,
    the window of ``window`` ending at ``end`` (UTC; to the minute, as ``compute_drift``).

    Raises:
        ValueError: a bad reference.
    """
    Reference.parse(reference)  # a bad reference fails here, not in the worker
    return Question(
        str(data.store_path().resolve()),
        window,
        reference,
        _utc_naive(end).replace(second=0, microsecond=0),
    )


def fresh(report: DriftReport) -> bool:
    """True while no row ``report`` read has changed in the dashboard's store
    (:func:`observatory.drift_fresh.stale_files` on its settings)."""
    return not stale_files(data.store_path(), report.settings, None, store())


def store() -> Store:
    """The dashboard's shared, connected :class:`Store` of the current data version
    (for the saved reports' freshness digests: no new DuckDB connection per check)."""
    path = data.store_path()
    return data.shared_store(str(path.resolve()))


def selected(report: DriftReport, filters: Filters) -> DriftReport:
    """``report`` with only the slices the sidebar's regions, models and arms select.

    The report is computed once for the whole fleet (cached) and narrowed here, so
    changing a filter costs no new computation; each slice's verdict depends only on
    its own data, so the narrowed report equals one computed for the selection.
    ``verdict``, ``drifted`` and ``summary_line`` follow the kept slices.
    """
    kept = [s for s in report.slices if filters.keeps(s.region, s.model, s.arm)]
    return dataclasses.replace(report, slices=kept)


def archive() -> list[dict[str, Any]]:
    """Reports in the archive folder, newest first (see ``list_reports``)."""
    return list_reports(archive_path())


def archive_table(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """The archive as shown (Drift and Reports pages): one row per report file.

    Columns: File, Window end (UTC), Window, Format, Verdict, Summary, KB.
    """
    return pd.DataFrame(
        [
            {
                "File": r["name"],
                "Window end (UTC)": r["window_end"],
                "Window": r["window"],
                "Format": r["format"],
                "Verdict": r["verdict"],
                "Summary": r["summary"],
                "KB": round(r["bytes"] / 1024),
            }
            for r in reports
        ]
    )

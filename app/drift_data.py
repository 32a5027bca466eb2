"""The Drift page's data: drift reports computed over the dashboard's store, cached.

The store is the one :mod:`app.data` keeps (the dashboard's only door to the store);
results are cached with ``st.cache_data`` keyed by the store folder, its data version
and the page's choices, so a new collection run shows on the next run.  The report
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
from observatory.drift_archive import archive_folder
from observatory.drift_engine import DriftReport, Reference, compute_drift
from observatory.drift_report import list_reports
from observatory.store import Store

__all__ = ["archive", "archive_path", "archive_table", "report", "selected", "store"]


def archive_path() -> Path:
    """The report archive folder (``OBSERVATORY_DRIFT_REPORTS``, default ``reports/drift``;
    :func:`observatory.drift_archive.archive_folder`)."""
    return archive_folder()


@st.cache_data(ttl=300, show_spinner="Computing drift ...", max_entries=8)
def _report(
    path: str, version: float, window_s: int, reference: str, end: datetime | None
) -> DriftReport:
    store = data.shared_store(path)  # the dashboard's shared Store
    return compute_drift(
        store, window=timedelta(seconds=window_s), reference=Reference.parse(reference), end=end
    )


def report(window: timedelta, reference: str, end: datetime | None = None) -> DriftReport:
    """Drift of every signal slice in the window ending at ``end`` (default: latest data).

    Raises:
        observatory.store.StoreError: a query failed.
        ValueError: a bad window or reference, or an empty store.
    """
    path = data.store_path()
    version = Store(path).data_version()
    return _report(str(path.resolve()), version, int(window.total_seconds()), reference, end)


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

"""The Drift page's data: drift reports computed over the dashboard's store, cached.

The store is the one :mod:`app.data` keeps (the dashboard's only door to the store);
results are cached with ``st.cache_data`` keyed by the store folder, its data version
and the page's choices, so a new collection run shows on the next run.  The report
archive is the folder named by ``OBSERVATORY_DRIFT_REPORTS`` (default
``reports/drift``), where ``observatory report drift`` and ``observatory run`` write.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import streamlit as st

from app import data
from observatory.drift_engine import DriftReport, Reference, compute_drift
from observatory.drift_report import list_reports
from observatory.store import Store

DEFAULT_ARCHIVE = Path("reports/drift")

__all__ = ["archive", "archive_path", "report"]


def archive_path() -> Path:
    """The report archive folder (``OBSERVATORY_DRIFT_REPORTS``, default ``reports/drift``)."""
    value = os.environ.get("OBSERVATORY_DRIFT_REPORTS", "").strip()
    return Path(value) if value else DEFAULT_ARCHIVE


@st.cache_data(ttl=300, show_spinner="Computing drift ...", max_entries=8)
def _report(
    path: str, version: float, window_s: int, reference: str, end: datetime | None
) -> DriftReport:
    store = data._store(path, version)  # the dashboard's shared Store
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


def archive() -> list[dict[str, Any]]:
    """Reports in the archive folder, newest first (see ``list_reports``)."""
    return list_reports(archive_path())

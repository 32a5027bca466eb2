"""Reports: the archive of drift reports and experiment reports, to open or download.

Drift reports are listed with the Drift page's own function
(:func:`app.drift_data.archive`: the folder named by ``OBSERVATORY_DRIFT_REPORTS``,
default ``reports/drift``, where ``observatory report drift`` and ``observatory run``
write).  Experiment reports are the ``.html``, ``.md`` and ``.json`` files in the
folder named by ``OBSERVATORY_EXPERIMENT_REPORTS`` (default ``reports/experiments``),
written by ``observatory experiment report NAME --format html --out <folder>/...``.
File names and contents are shown as text; an HTML report opens only on request,
in an isolated iframe.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import drift_data
from app.ui import md, show_report_file

DEFAULT_EXPERIMENT_REPORTS = Path("reports/experiments")
FORMATS = {".html": "html", ".md": "md", ".json": "json"}


def experiment_archive_path() -> Path:
    """The experiment report folder (``OBSERVATORY_EXPERIMENT_REPORTS``)."""
    value = os.environ.get("OBSERVATORY_EXPERIMENT_REPORTS", "").strip()
    return Path(value) if value else DEFAULT_EXPERIMENT_REPORTS


def experiment_archive(folder: Path) -> list[dict[str, Any]]:
    """Report files in ``folder``, newest first: path, name, format, written (UTC), bytes."""
    if not folder.is_dir():
        return []
    rows = []
    for p in folder.iterdir():
        fmt = FORMATS.get(p.suffix.lower())
        if fmt is None or not p.is_file() or p.name.startswith("."):
            continue
        stat = p.stat()
        written = datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None)
        rows.append(
            {"path": p, "name": p.name, "format": fmt, "written": written, "bytes": stat.st_size}
        )
    return sorted(rows, key=lambda r: (r["written"], r["name"]), reverse=True)


def _open(reports: list[dict[str, Any]], key: str) -> None:
    names = [r["name"] for r in reports]
    name = st.selectbox("Open a report", names, key=key)
    picked = next(r for r in reports if r["name"] == name)
    show_report_file(picked["path"], picked["format"], key)


st.title("Reports")
st.caption("All dates are UTC.")

st.subheader("Drift reports")
drift_folder = drift_data.archive_path()
try:
    drift = drift_data.archive()
except OSError as exc:
    st.error(f"Could not read the drift report folder {md(drift_folder)}: {md(exc)}")
    drift = []
if not drift:
    st.info(
        f"No drift reports in {md(drift_folder)} yet. Write one with "
        f"`observatory report drift --out {md(drift_folder)}` or schedule them with "
        "`observatory run` (docs/drift.md); `OBSERVATORY_DRIFT_REPORTS` names another folder."
    )
else:
    st.dataframe(
        drift_data.archive_table(drift),
        hide_index=True,
        key="drift_reports",
    )
    _open(drift, "drift_report_pick")

st.subheader("Experiment reports")
exp_folder = experiment_archive_path()
try:
    experiments = experiment_archive(exp_folder)
except OSError as exc:
    st.error(f"Could not read the experiment report folder {md(exp_folder)}: {md(exc)}")
    experiments = []
if not experiments:
    st.info(
        f"No experiment reports in {md(exp_folder)} yet. Write one with "
        f"`observatory experiment report NAME --format html --out {md(exp_folder)}/NAME.html` "
        "(docs/experiments.md); `OBSERVATORY_EXPERIMENT_REPORTS` names another folder."
    )
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "File": r["name"],
                    "Written (UTC)": r["written"],
                    "Format": r["format"],
                    "KB": round(r["bytes"] / 1024),
                }
                for r in experiments
            ]
        ),
        hide_index=True,
        key="experiment_reports",
    )
    _open(experiments, "experiment_report_pick")

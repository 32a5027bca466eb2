"""Collection health: the collector's last run per region (status, window, error)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data
from app.ui import md

st.title("Collection health")
info = data.store_info()
if info.status == "missing":
    st.error(
        f"No store at {md(info.path)}. Run `observatory demo` or "
        "`observatory collect --config ...` to create one."
    )
    st.stop()

try:
    runs = data.query("collection_runs_latest")
except data.StoreError as exc:
    st.error(f"Could not read the collector's run log (`runs.jsonl`): {md(exc)}")
    st.stop()

collected = runs[runs["status"].notna()]
if collected.empty:
    st.info(
        "No collection runs recorded yet. Runs appear here after "
        "`observatory collect --config ...` (the demo store is built without the collector)."
    )
    if not runs.empty:
        st.caption("Regions in the catalogue: " + ", ".join(md(r) for r in runs["region"]))
    st.stop()

failed = collected[collected["status"] == "failed"]
never = runs[runs["status"].isna()]
cols = st.columns(3)
cols[0].metric("Regions collected", f"{len(collected)}", border=True)
cols[1].metric("Last run failed", f"{len(failed)}", border=True)
cols[2].metric("Never collected", f"{len(never)}", border=True)
if len(failed):
    st.warning(f"The last run failed in {len(failed)} region(s); the error column says why.")

table = pd.DataFrame(
    {
        "Region": runs["region"],
        "Name": runs["display_name"].fillna(""),
        "Status": runs["status"].fillna("never collected"),
        "Last run started (UTC)": runs["started_utc"],
        "Finished (UTC)": runs["finished_utc"],
        "Window start (UTC)": runs["window_start_utc"],
        "Window end (UTC)": runs["window_end_utc"],
        "Rows": runs["rows"],
        "Runs": runs["runs"],
        "Failed runs": runs["failed_runs"],
        "Error": runs["error"].fillna(""),
    }
)
st.dataframe(
    table,
    hide_index=True,
    key="runs_table",
    column_config={
        "Last run started (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        "Finished (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        "Window start (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "Window end (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "Rows": st.column_config.NumberColumn(format="localized"),
        "Error": st.column_config.TextColumn(width="large"),
    },
)

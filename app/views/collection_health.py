"""Collection health: per region and signal, from the collector's run log and state.

Last successful collection, lag, coverage (last run and last 24 h), errors (last
24 h and the last error's text) and each region's run history.  The arithmetic is
:mod:`analytics.collection_health`; the file reads :mod:`app.collection_data`.
Refreshed live at the sidebar's "Live refresh" interval (default 1 min).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from analytics.collection_health import (
    STATUSES,
    HealthThresholds,
    RunLog,
    format_age,
    parse_run_log,
    region_summary,
    run_history,
    signal_health,
    status_grid,
)
from app import collection_data, data
from app.charts import palette
from app.filters import refresh_seconds
from app.ui import HEALTH_COLORS, md, plotly_text

#: Status -> colour (the Overview's health colours: ok green, warning amber, ...).
STATUS_COLORS = {
    "ok": HEALTH_COLORS["ok"],
    "lagging": HEALTH_COLORS["warning"],
    "failing": HEALTH_COLORS["critical"],
    "no data": HEALTH_COLORS["no data"],
}
MAX_SKIPPED_SHOWN = 5

st.title("Collection health")
info = data.store_info()
if info.status == "missing":
    st.error(
        f"No store at {md(info.path)}. Run `observatory demo` or "
        "`observatory collect --config ...` to create one."
    )
    st.stop()

settings = collection_data.collection_settings()
sb = st.sidebar
sb.header("Collection health")
lag_steps = sb.number_input(
    "Lagging after (steps of lag)",
    min_value=0.0,
    max_value=10_000.0,
    value=3.0,
    step=1.0,
    key="health_lag_steps",
    help="Steps of lag tolerated beyond the expected delay (settle + one step + the "
    "region's median time between runs).",
)
min_coverage = sb.number_input(
    "Lagging below coverage (share 0-1)",
    min_value=0.0,
    max_value=1.0,
    value=0.95,
    step=0.01,
    key="health_min_coverage",
    help="A last run whose share of expected (series, step) pairs is below this.",
)
sb.caption(
    f"Step {settings.step_s:g} s, settle {settings.settle_s:g} s (from {md(settings.source)})."
)
if settings.problem:
    sb.warning(f"Using the default step and settle: {md(settings.problem)}")
THRESHOLDS = HealthThresholds(
    step_s=settings.step_s,
    settle_s=settings.settle_s,
    lag_steps=float(lag_steps),
    min_coverage=float(min_coverage),
)


def _no_run_log() -> None:
    path = md(info.path / collection_data.RUN_LOG)
    if collection_data.is_demo_store(info.path):
        st.info(
            f"No collection runs recorded yet: {path} does not exist. This is the demo "
            "store (`observatory demo` writes the simulated fleet straight into the lake, "
            "without the collector), so it has no run log: only the newest stored step "
            "and lag of each signal are shown. Run `observatory collect --config ...` "
            "against your Prometheus servers to see real collection health."
        )
    else:
        st.info(
            f"No collection runs recorded yet: {path} does not exist. Runs appear here "
            "after `observatory collect --config ...` (each region's outcome is "
            "appended to it)."
        )


def _skipped(log: RunLog) -> None:
    if not log.skipped:
        return
    first = log.skipped[0]
    lines = "\n".join(f"- line {s.line}: {md(s.reason)}" for s in log.skipped[:MAX_SKIPPED_SHOWN])
    more = len(log.skipped) - MAX_SKIPPED_SHOWN
    st.warning(
        f"Skipped {len(log.skipped)} line(s) of {md(first.source)} that could not be read "
        "(a truncated last line is a run that was killed while writing; nothing else "
        f"is lost):\n{lines}" + (f"\n- ... and {more} more" if more > 0 else "")
    )


def _grid_figure(health: pd.DataFrame) -> go.Figure:
    """Signal x region heatmap coloured by status."""
    grid = status_grid(health)
    codes = {s: i for i, s in enumerate(STATUSES)}
    z = grid.apply(lambda col: col.map(lambda s: codes.get(s) if s else None)).to_numpy(
        dtype=float, na_value=float("nan")
    )
    n = len(STATUSES)
    scale = []
    for i, s in enumerate(STATUSES):
        scale += [(i / n, STATUS_COLORS[s]), ((i + 1) / n, STATUS_COLORS[s])]
    text = grid.apply(lambda col: col.map(lambda s: s or "")).to_numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[plotly_text(r) for r in grid.columns],
            y=[plotly_text(s) for s in grid.index],
            text=text,
            texttemplate="%{text}",
            colorscale=scale,
            zmin=-0.5,
            zmax=n - 0.5,
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="%{y} in %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(180, 26 * len(grid.index) + 80),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"side": "top", "type": "category"},
    )
    return fig


def _history_figure(history: pd.DataFrame) -> go.Figure:
    """Duration, samples and errors of every run, per region."""
    colors = palette(history["region"].unique(), "region")
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=("Duration (s)", "Samples", "Errors"),
    )
    for region, g in history.groupby("region", sort=True):
        name = plotly_text(region)
        for row, col in enumerate(("seconds", "samples", "errors"), start=1):
            fig.add_trace(
                go.Scatter(
                    x=g["started_utc"],
                    y=g[col],
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=row == 1,
                    line={"color": colors[str(region)]},
                    customdata=g["status"].map(plotly_text),
                    hovertemplate=f"{name}<br>%{{x|%Y-%m-%d %H:%M:%S}} UTC<br>"
                    "%{y} (%{customdata})<extra></extra>",
                ),
                row=row,
                col=1,
            )
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def _region_table(runs: pd.DataFrame, names: dict[str, str]) -> None:
    summary = region_summary(runs, names)
    failed = summary[summary["status"] == "failed"]
    collected = summary[summary["status"].notna()]
    cols = st.columns(3)
    cols[0].metric("Regions collected", f"{len(collected)}", border=True)
    cols[1].metric("Last run failed", f"{len(failed)}", border=True)
    cols[2].metric("Never collected", f"{len(summary) - len(collected)}", border=True)
    if len(failed):
        st.warning(f"The last run failed in {len(failed)} region(s); the error column says why.")
    st.subheader("Last run per region")
    table = pd.DataFrame(
        {
            "Region": summary["region"],
            "Name": summary["region"].map(lambda r: names.get(r, "")),
            "Status": summary["status"].fillna("never collected"),
            "Last run started (UTC)": summary["started_utc"],
            "Finished (UTC)": summary["finished_utc"],
            "Window start (UTC)": summary["window_start_utc"],
            "Window end (UTC)": summary["window_end_utc"],
            "Rows": summary["rows"],
            "Runs": summary["runs"],
            "Failed runs": summary["failed_runs"],
            "Error": summary["error"].fillna(""),
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


def _signal_table(health: pd.DataFrame) -> None:
    table = pd.DataFrame(
        {
            "Region": health["region"],
            "Signal": health["signal"],
            "Status": health["status"],
            "Last success (UTC)": health["last_success_utc"],
            "Last success age": health["last_success_age_s"].map(format_age),
            "Lag": health["lag_s"].map(format_age),
            "Lag allowed": health["allowed_lag_s"].map(format_age),
            "Newest stored step (UTC)": health["newest_step_utc"],
            "Collected until (UTC)": health["collected_until_utc"],
            "Coverage last run": health["coverage_last_run"],
            "Coverage 24 h": health["coverage_24h"],
            "Errors 24 h": health["errors_24h"],
            "Last error": health["last_error"].fillna(""),
            "Last error at (UTC)": health["last_error_utc"],
        }
    )
    when = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")
    share = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        table,
        hide_index=True,
        key="signals_table",
        column_config={
            "Last success (UTC)": when,
            "Newest stored step (UTC)": when,
            "Collected until (UTC)": when,
            "Last error at (UTC)": when,
            "Coverage last run": share,
            "Coverage 24 h": share,
            "Last error": st.column_config.TextColumn(width="large"),
        },
    )


def render() -> None:
    """The page body (a fragment: reruns on the live-refresh interval)."""
    try:
        read = collection_data.read_run_log(info.path)
    except OSError as exc:
        st.error(f"Could not read {md(info.path / collection_data.RUN_LOG)}: {md(exc)}")
        return
    marks, problem = collection_data.read_marks(info.path)
    if problem:
        st.warning(f"Lag without the collector's state: {md(problem)}")
    newest = collection_data.newest_steps(info.path) if info.status == "ready" else {}
    names = collection_data.catalogue(newest)
    if read is None:
        _no_run_log()
        runs = parse_run_log([]).runs
    else:
        _skipped(read.log)
        runs = read.log.runs
        if read.first_line > 1:
            st.caption(
                f"The run log has {read.total_lines:,} lines; the newest "
                f"{read.total_lines - read.first_line + 1:,} (from line {read.first_line:,}) "
                "are shown."
            )

    now = datetime.now(UTC)
    health = signal_health(runs, now, THRESHOLDS, marks, newest, regions=names)
    if not runs.empty:
        _region_table(runs, names)

    st.subheader("Per region and signal")
    counts = health["status"].value_counts()
    cols = st.columns(len(STATUSES))
    for col, status in zip(cols, STATUSES, strict=True):
        col.metric(status.capitalize(), f"{int(counts.get(status, 0))}", border=True)
    st.caption(
        f"Now {now:%Y-%m-%d %H:%M:%S} UTC. Lagging: lag above settle + one step + the "
        f"region's median time between runs + {THRESHOLDS.lag_steps:g} step(s) of "
        f"{THRESHOLDS.step_s:g} s, or a last run's coverage below "
        f"{THRESHOLDS.min_coverage:.0%}. Failing: the latest run that reached the signal "
        "recorded an error. The run log records errors per region: a run's error is "
        "charged to the signals it recorded no coverage for."
    )
    st.plotly_chart(_grid_figure(health), key="status_grid", config={"displayModeBar": False})
    _signal_table(health)

    if not runs.empty:
        st.subheader("Run history")
        st.plotly_chart(
            _history_figure(run_history(runs)),
            key="run_history",
            config={"displayModeBar": False},
        )


st.fragment(render, run_every=refresh_seconds())()

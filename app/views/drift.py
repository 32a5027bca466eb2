"""Drift: a heatmap of the drift metric by signal x region, drill-down into one slice
(overlaid distributions, drift over time, every metric), and the report archive."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import streamlit.components.v1 as components

from analytics import drift as dm
from app import drift_data
from app.data import StoreError
from app.ui import md, plotly_text, require_store
from observatory.drift_engine import OVER_TIME_METRICS
from observatory.drift_report import dist_figure, over_time_figure

WINDOWS = {
    "6 hours": timedelta(hours=6),
    "24 hours": timedelta(hours=24),
    "7 days": timedelta(days=7),
}
REFERENCES = {
    "previous 7 days": "7d",
    "previous 14 days": "14d",
    "same window a week earlier": "week-ago",
}
METRICS = {
    "PSI": "psi",
    "Jensen-Shannon distance (log base 2)": "js",
    "Hellinger distance": "hellinger",
    "Wasserstein-1 / reference std": "wasserstein",
}
#: Metrics the drift-over-time chart can draw.
TIME_METRICS = {
    "PSI": "psi",
    "Jensen-Shannon distance (log base 2)": "js",
    "Hellinger distance": "hellinger",
    "Wasserstein-1 / reference std": "wasserstein",
    "KS statistic (lower bound on buckets)": "ks",
}
ICON = {"ok": "", "warning": "⚠", "critical": "✖", "insufficient data": "?"}

st.title("Drift")
require_store()

c1, c2, c3 = st.columns(3)
window_label = c1.selectbox("Window", list(WINDOWS), index=1, key="drift-window")
reference_label = c2.selectbox("Reference", list(REFERENCES), index=0, key="drift-reference")
metric_label = c3.selectbox("Heatmap metric", list(METRICS), index=0, key="drift-metric")
metric = METRICS[metric_label]

try:
    report = drift_data.report(WINDOWS[window_label], REFERENCES[reference_label])
except (StoreError, ValueError) as exc:
    st.error(f"Could not compute drift: {md(exc)}")
    st.stop()

verdict = report.verdict
box = {"critical": st.error, "warning": st.warning, "ok": st.success}.get(verdict, st.info)
box(
    f"**{md(verdict.upper())}**: {md(report.summary_line())}. Window "
    f"{report.window_start:%Y-%m-%d %H:%M} .. {report.window_end:%Y-%m-%d %H:%M} UTC."
)
st.caption(
    "A slice (signal x region x model x arm) drifts when its PSI crosses the customary "
    "threshold (0.1 warning, 0.25 critical) and also the threshold learned from the "
    "reference cut into window-long chunks (median + 3 robust sigma). Jensen-Shannon "
    "distance uses log base 2 (0-1). p-values are context, never the alarm. "
    "Load-driven signals (GPU utilisation, energy per request) compare with the same "
    "window a week earlier. Accuracy (late labels) counts labels in the window they "
    "arrived in: warning when the 95% interval of the change lies below 0 and accuracy "
    "fell by at least 1 point, critical from 5 points; its heatmap cell shows the drop in "
    "points, coloured so that 1 point matches the chosen metric's warning level."
)
if not report.slices:
    st.info("No signal has data in this window.")
    st.stop()

# ---------------------------------------------------------------- heatmap
summary = report.summary()
rule = dm.RULES[metric]
rows = []
for s in report.slices:
    r = s.metric(metric)
    value, shown = (r.value if r is not None else math.nan), ""
    if r is None and s.kind == "labels":  # the accuracy drop, on the chosen metric's scale
        own = s.metric(s.alarm)
        if own is not None and math.isfinite(own.value):
            scale = (rule.warning or 0.1) / (dm.RULES[s.alarm].warning or 1.0)
            value, shown = own.value * scale, f"{own.value * 100:.2g} pts"
    rows.append(
        {
            "signal": s.title,
            "region": s.region,
            "value": value,
            "shown": shown,
            "severity": dm.SEVERITY[s.verdict],
            "verdict": s.verdict,
        }
    )
cells = pd.DataFrame(rows)
worst = (
    cells.sort_values(["severity", "value"], ascending=False)
    .groupby(["signal", "region"], sort=False)
    .first()
    .reset_index()
)
signals = list(dict.fromkeys(s.title for s in report.slices))
regions = sorted(cells["region"].unique())
z = worst.pivot(index="signal", columns="region", values="value").reindex(
    index=signals, columns=regions
)
verd = worst.pivot(index="signal", columns="region", values="verdict").reindex(
    index=signals, columns=regions
)
shown_cells = worst.pivot(index="signal", columns="region", values="shown").reindex(
    index=signals, columns=regions
)
zmax = max(rule.critical or (rule.warning or 0.1) * 2.5, 0.05)
text = [
    [
        ""
        if pd.isna(v)
        else f"{shown_cells.iloc[i, j] or format(v, '.3g')} {ICON.get(str(verd.iloc[i, j]), '')}"
        for j, v in enumerate(row)
    ]
    for i, row in enumerate(z.to_numpy())
]
fig = go.Figure(
    go.Heatmap(
        z=z.to_numpy(),
        x=[plotly_text(r) for r in regions],
        y=[plotly_text(s) for s in signals],
        text=text,
        texttemplate="%{text}",
        zmin=0,
        zmax=zmax,
        colorscale=[[0, "#f7fbff"], [0.4, "#fdd49e"], [1, "#d7301f"]],
        colorbar={"title": {"text": plotly_text(metric_label)}},
        hovertemplate="%{y} in %{x}<br>worst model/arm: %{z:.4g}<extra></extra>",
    )
)
fig.update_layout(
    height=90 + 45 * len(signals),
    margin={"l": 10, "r": 10, "t": 30, "b": 10},
    title=plotly_text(f"{metric_label}, worst model/arm per cell (✖ critical, ⚠ warning)"),
    yaxis={"autorange": "reversed"},
)
st.plotly_chart(fig, width="stretch")

# ---------------------------------------------------------------- drill-down
st.subheader("Drill-down")
keys = [s.key for s in report.slices]
drifted = [s.key for s in report.drifted]
default = keys.index(drifted[0]) if drifted else 0
choice = st.selectbox(
    "Signal / region / model / arm",
    keys,
    index=default,
    key="drift-slice",
    format_func=lambda k: f"{k}  ({next(s.verdict for s in report.slices if s.key == k)})",
)
chosen = next(s for s in report.slices if s.key == choice)
st.markdown(
    f"**{md(chosen.verdict)}** against {md(chosen.reference)}"
    + (f"; fired: {md(chosen.fired)}" if chosen.fired else "")
    + ("; re-binned (bucket layouts differ)" if chosen.rebinned else "")
)
metrics_table = pd.DataFrame(
    [
        {
            "metric": r.label,
            "value": r.value,
            "threshold": r.threshold,
            "learned": r.learned,
            "verdict": r.verdict,
            "fired / note": r.fired or r.note,
            "n reference": r.n_ref,
            "n current": r.n_cur,
        }
        for r in chosen.results
    ]
)
st.dataframe(metrics_table, hide_index=True, width="stretch")
left, right = st.columns(2)
if chosen.distribution:
    left.plotly_chart(dist_figure(chosen), width="stretch", key="drift-dist")
time_metric = None
if chosen.kind == "labels":
    right.caption(
        "Accuracy per label-arrival window (as long as the window) with its 95% Wilson "
        "interval, against the reference accuracy."
    )
elif len(chosen.over_time):
    # Default: the first metric that fired, else the heatmap's metric.
    fired = [m for m in chosen.fired_metrics if m in OVER_TIME_METRICS]
    first = fired[0] if fired else (metric if metric in OVER_TIME_METRICS else chosen.alarm)
    names = list(TIME_METRICS)
    time_label = right.selectbox(
        "Over-time metric",
        names,
        index=names.index(next(k for k, v in TIME_METRICS.items() if v == first)),
        key=f"drift-time-metric-{choice}",
    )
    time_metric = TIME_METRICS[time_label]
if len(chosen.over_time):
    right.plotly_chart(
        over_time_figure(chosen, report, time_metric), width="stretch", key="drift-time"
    )
else:
    right.caption("No drift-over-time curve for this reference.")

with st.expander("All slices"):
    st.dataframe(summary, hide_index=True, width="stretch")

# ---------------------------------------------------------------- archive
st.subheader("Report archive")
folder = drift_data.archive_path()
reports = drift_data.archive()
if not reports:
    st.info(
        f"No reports in {md(folder)} yet. Write one with `observatory report drift --out "
        f"{md(folder)}` or schedule them with `observatory run` (docs/drift.md); "
        "`OBSERVATORY_DRIFT_REPORTS` names another folder."
    )
    st.stop()
listing = pd.DataFrame(
    [
        {
            "file": r["name"],
            "window end (UTC)": r["window_end"],
            "window": r["window"],
            "format": r["format"],
            "verdict": r["verdict"],
            "summary": r["summary"],
            "KB": round(r["bytes"] / 1024),
        }
        for r in reports
    ]
)
st.dataframe(listing, hide_index=True, width="stretch")
name = st.selectbox("Open a report", [r["name"] for r in reports], key="drift-report")
picked = next(r for r in reports if r["name"] == name)
raw = picked["path"].read_bytes()
mime = {"html": "text/html", "md": "text/markdown", "json": "application/json"}[picked["format"]]
st.download_button(f"Download {name}", raw, file_name=name, mime=mime)
if picked["format"] == "html":
    if st.toggle("Show the HTML report here", value=False):
        components.html(raw.decode("utf-8"), height=900, scrolling=True)
elif picked["format"] == "json":
    st.json(raw.decode("utf-8"), expanded=1)
else:
    st.code(raw.decode("utf-8"), language="markdown")

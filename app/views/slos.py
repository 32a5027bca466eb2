"""SLOs: every SLO's status, remaining budget and burn rates; a detail view per SLO.

The list is sorted by remaining error budget (least first) and filtered by region,
model, service and state.  The detail shows the budget burn-down, the burn rate per
window against the alert tiers' factors, when each tier fired and recovered, and
the per-group breakdown behind the global roll-up (which adds events, never
averages ratios).
"""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import slo as slomath
from app import slo_data
from app.ui import md, plotly_text, require_store

STATE_COLORS = {
    slomath.EXHAUSTED: "#7B1F1F",
    slomath.PAGE: "#D62728",
    slomath.TICKET: "#F0A202",
    slomath.INSUFFICIENT: "#9E9E9E",
    slomath.NO_DATA: "#9E9E9E",
    slomath.NO_BUDGET: "#6A4C93",
    slomath.OK: "#2E9E5B",
}
STATE_LABELS = {
    slomath.EXHAUSTED: "budget exhausted",
    slomath.PAGE: "page",
    slomath.TICKET: "ticket",
    slomath.INSUFFICIENT: "too few events",
    slomath.NO_DATA: "no data",
    slomath.NO_BUDGET: "no error budget (100 %)",
    slomath.OK: "ok",
}
BURN_COLUMNS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
HISTORY_SPANS = {"Last 24 h": 1.0, "Last 3 days": 3.0, "Last 7 days": 7.0, "Last 14 days": 14.0}


def _pct(v: float, digits: int = 2) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{100 * v:.{digits}f} %"


def _hours(v: float) -> str:
    if v is None or math.isnan(v):
        return "—"
    if math.isinf(v):
        return "never"
    return f"{v / 24:.1f} days" if v >= 48 else f"{v:.1f} h"


def _group_label(row: pd.Series) -> str:
    parts = [str(row[c]) for c in ("region", "model", "arm") if row[c] != "*"]
    return " / ".join(parts) if parts else "global"


st.title("SLOs")
require_store()
try:
    slos = slo_data.definitions()
except slo_data.SpecError as exc:
    st.error(f"The SLO specs have {len(exc.messages)} mistake(s); fix them and reload.")
    st.code("\n".join(exc.messages), language=None)
    st.stop()
if not slos:
    st.info("No SLOs defined. Point `OBSERVATORY_SLO_SPECS` at OpenSLO or Sloth files.")
    st.stop()
by_name = {d.name: d for d in slos}
maintenance, maintenance_problem = slo_data.maintenance()
if maintenance_problem:
    st.warning(md(maintenance_problem))
elif maintenance:
    st.caption(
        f"{len(maintenance)} maintenance window(s) of the configuration are left out of every "
        "SLO's events: "
        + "; ".join(
            f"{m.start:%Y-%m-%d %H:%M} → {m.end:%Y-%m-%d %H:%M} UTC"
            + (f" ({', '.join(m.regions)})" if m.regions else "")
            + (f" {md(m.reason)}" if m.reason else "")
            for m in maintenance
        )
    )
with st.spinner("Computing SLOs ..."):
    table = slo_data.status(slos)

# ---------------------------------------------------------------- filters
sb = st.sidebar
sb.header("SLO filters")
regions = sorted(r for r in table["region"].unique() if r != "*")
models = sorted(m for m in table["model"].unique() if m != "*")
services = sorted(table["service"].unique())
pick_regions = sb.multiselect("Region", regions, key="slo_regions", help="Empty: all")
pick_models = sb.multiselect("Model", models, key="slo_models", help="Empty: all")
pick_services = sb.multiselect("Service", services, key="slo_services", help="Empty: all")
pick_states = sb.multiselect(
    "State", list(STATE_LABELS), format_func=STATE_LABELS.get, key="slo_states"
)
show_groups = sb.toggle("Show per-group rows", value=False, key="slo_groups")
show_groups = show_groups or bool(pick_regions or pick_models)

view = table.copy()
if not show_groups:
    view = view[(view["region"] == "*") & (view["model"] == "*") & (view["arm"] == "*")]
if pick_regions:  # rows of the picked regions (per-region groups)
    view = view[view["region"].isin(pick_regions)]
if pick_models:  # rows of the picked models, and rows not split by model
    view = view[view["model"].isin(pick_models) | (view["model"] == "*")]
if pick_services:
    view = view[view["service"].isin(pick_services)]
if pick_states:
    view = view[view["state"].isin(pick_states)]
view = view.sort_values("remaining", na_position="last")

counts = slo_data.headline_counts(table, slos)
cols = st.columns(5)
cols[0].metric("SLOs", len(slos))
cols[1].metric(
    "Paging",
    counts[slomath.PAGE],
    help="SLOs with a page tier firing now in the global roll-up or in any group "
    "(the open episodes of the alert timeline).",
)
cols[2].metric(
    "Ticket",
    counts[slomath.TICKET],
    help="SLOs with a ticket tier firing now anywhere, and no page.",
)
cols[3].metric(
    "Budget exhausted", counts[slomath.EXHAUSTED], help="SLOs with any group out of budget."
)
cols[4].metric("No data", counts[slomath.NO_DATA])
if pick_regions or pick_models:
    st.caption("Region and model filters show the per-group rows of those regions and models.")

shown = pd.DataFrame(
    {
        "SLO": view["display_name"],
        "name": view["slo"],
        "service": view["service"],
        "group": [_group_label(r) for _, r in view.iterrows()],
        "state": view["state"].map(STATE_LABELS),
        "SLI": view["sli"],
        "target": view["target"],
        "remaining": view["remaining"],
        **{
            f"burn {w}": view.get(f"burn_{w}", pd.Series(math.nan, index=view.index))
            for w in BURN_COLUMNS
        },
        "coverage": view["coverage"],
        "exhausted in (h)": view["tte_hours"],
        "firing": view["firing"],
        "method": view["method"],
        "approx.": view["approximate"],
    }
)
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    column_config={
        "SLI": st.column_config.NumberColumn(format="percent"),
        "target": st.column_config.NumberColumn(format="percent"),
        "remaining": st.column_config.ProgressColumn(
            "remaining budget", min_value=0.0, max_value=1.0, format="percent"
        ),
        "coverage": st.column_config.NumberColumn(format="percent"),
        **{f"burn {w}": st.column_config.NumberColumn(format="%.2f") for w in BURN_COLUMNS},
        "exhausted in (h)": st.column_config.NumberColumn(format="%.1f"),
    },
)
st.caption(
    "Remaining budget may be negative (overspent). Burn rate 1 spends the budget exactly "
    "by the end of the SLO period. Windows are right-closed (t − w, t] on step ends; "
    "zero-traffic steps add no events and never turn a window into NaN."
)

# ---------------------------------------------------------------- detail
st.header("Detail")
names = list(view["slo"].unique()) or list(by_name)
choice = st.selectbox(
    "SLO", names, format_func=lambda n: f"{by_name[n].display_name} ({n})", key="slo_detail"
)
slo = by_name[choice]
rows = table[table["slo"] == choice]
is_global = (rows["region"] == "*") & (rows["model"] == "*") & (rows["arm"] == "*")
rows = pd.concat([rows[is_global], rows[~is_global].sort_values("remaining")])  # global first
groups = [_group_label(r) for _, r in rows.iterrows()]
group_choice = st.selectbox("Group", groups, key="slo_group")
row = rows.iloc[groups.index(group_choice)]
key = (row["region"], row["model"], row["arm"])

st.markdown(
    f"**{md(slo.display_name)}** — service {md(slo.service)}, {md(slo.indicator.kind)} SLI, "
    f"{md(slo.method)}, target {slo.target * 100:g} % over "
    + (
        f"calendar {md(slo.calendar.duration)} ({md(slo.calendar.tz)})"
        if slo.calendar
        else f"a rolling {slomath.window_name(slo.period)}"
    )
    + f". Source: `{slo.source}`"
)
m = st.columns(5)
m[0].metric("State", STATE_LABELS.get(row["state"], row["state"]))
m[1].metric("SLI", _pct(row["sli"], 3))
m[2].metric("Remaining budget", _pct(row["remaining"], 1))
m[3].metric("Exhausted in", _hours(row["tte_hours"]))
m[4].metric("Coverage", _pct(row["coverage"], 0))
if row["approximate"]:
    st.info(
        "Approximate: the latency threshold lies between histogram buckets and is interpolated."
    )
if row["state"] == slomath.NO_BUDGET:
    st.info("A 100 % target leaves no error budget: any bad event violates it.")

span_label = st.radio("History", list(HISTORY_SPANS), index=2, horizontal=True, key="slo_span")
days = HISTORY_SPANS[span_label]
every = timedelta(minutes=1 if days <= 1 else 5 if days <= 7 else 10)
with st.spinner("Evaluating history ..."):
    hist = slo_data.history(slo, days, every)
if hist.empty:
    st.info("No data for this SLO in the store.")
    st.stop()
g = hist[(hist["region"] == key[0]) & (hist["model"] == key[1]) & (hist["arm"] == key[2])]

left, right = st.columns(2)
burn_down = go.Figure(
    go.Scatter(
        x=g["ts_utc"],
        y=g["remaining"],
        mode="lines",
        name="remaining",
        line={"color": "#1F77B4"},
        hovertemplate="%{x|%Y-%m-%d %H:%M}: %{y:.1%}<extra></extra>",
    )
)
burn_down.add_hline(y=0, line={"dash": "dash", "color": STATE_COLORS[slomath.EXHAUSTED]})
burn_down.update_layout(
    title="Error budget remaining (burn-down)",
    height=320,
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
    yaxis_tickformat=".0%",
)
left.plotly_chart(burn_down, width="stretch", key="slo_burndown")

burn = go.Figure()
for w in slo.windows:
    col = f"burn_{w}"
    if col in g:
        burn.add_trace(
            go.Scatter(
                x=g["ts_utc"],
                y=g[col],
                mode="lines",
                name=w,
                connectgaps=False,
                line={"width": 1.3},
            )
        )
for tier in slo.tiers:
    burn.add_hline(
        y=tier.factor,
        line={"dash": "dot", "color": STATE_COLORS.get(tier.severity, "#555555"), "width": 1},
        annotation_text=plotly_text(f"{tier.name} ×{tier.factor:g}"),
        annotation_position="top left",
    )
burn.update_layout(
    title="Burn rate per window, with tier thresholds",
    height=320,
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
    yaxis_type="log",
)
right.plotly_chart(burn, width="stretch", key="slo_burn")

st.subheader("Alert timeline")
tl = slo_data.timeline(slo, hist)
mine = tl[(tl["region"] == key[0]) & (tl["model"] == key[1]) & (tl["arm"] == key[2])]
if tl.empty:
    st.success(f"No tier fired in any group over the {span_label.lower()}.")
else:
    end = hist["ts_utc"].max()
    fig = go.Figure()
    for _, e in tl.iterrows():
        label = f"{_group_label(e)} · {e['tier']}"
        stop = e["recovered"] if pd.notna(e["recovered"]) else end
        fig.add_trace(
            go.Scatter(
                x=[e["fired"], stop],
                y=[plotly_text(label)] * 2,
                mode="lines",
                line={"color": STATE_COLORS.get(e["severity"], "#555555"), "width": 10},
                showlegend=False,
                hovertemplate=plotly_text(label) + "<br>%{x|%Y-%m-%d %H:%M}<extra></extra>",
            )
        )
    fig.update_layout(
        height=120 + 28 * tl[["region", "model", "arm", "tier"]].drop_duplicates().shape[0],
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    st.plotly_chart(fig, width="stretch", key="slo_timeline")
    st.dataframe(
        tl.assign(group=[_group_label(r) for _, r in tl.iterrows()])[
            ["group", "tier", "severity", "fired", "recovered", "evaluations", "peak_burn"]
        ],
        hide_index=True,
        width="stretch",
    )
    if mine.empty:
        st.caption(f"No tier fired for {md(group_choice)}.")

st.subheader("Per-group breakdown")
st.caption(
    "The global row adds every group's events (sum of bad over sum of total); it is not "
    "the mean of the groups' ratios."
)
breakdown = rows.assign(group=[_group_label(r) for _, r in rows.iterrows()])
st.dataframe(
    breakdown[
        [
            "group",
            "state",
            "total",
            "bad",
            "sli",
            "remaining",
            "burn_1h",
            "burn_1d",
            "coverage",
            "firing",
        ]
    ],
    hide_index=True,
    width="stretch",
    column_config={
        "sli": st.column_config.NumberColumn("SLI", format="percent"),
        "remaining": st.column_config.NumberColumn(format="percent"),
        "coverage": st.column_config.NumberColumn(format="percent"),
        "burn_1h": st.column_config.NumberColumn("burn 1h", format="%.2f"),
        "burn_1d": st.column_config.NumberColumn("burn 1d", format="%.2f"),
    },
)

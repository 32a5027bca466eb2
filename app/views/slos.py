"""SLOs: every SLO's status, remaining budget and burn rates; a detail view per SLO.

The shared sidebar filters (:mod:`app.filters`) apply: regions, models and arms
narrow the SLOs split by them to those groups (:func:`app.slo_data.selected_rows`);
the time range's end is the evaluation time (presets: now, at the latest data;
custom dates: the last day's end, :func:`app.slo_data.evaluation_time`) and the
detail's charts cover the range.  Service, state and per-group rows are this page's
own filters; the selected SLO is kept in the URL (``?slo=``).  The list is sorted
by remaining error budget (least first).  The detail shows the budget burn-down,
the burn rate per window against the alert tiers' factors, when each tier fired and
recovered, and the per-group breakdown behind the global roll-up (which adds
events, never averages ratios).  The body runs under :func:`app.filters.live`
(heavy: live refresh starts Off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import slo as slomath
from app import slo_data
from app.filters import Filters, live, require_selection, shared_filters, url_choice
from app.ui import md, plotly_text
from observatory.slo_specs import SloDefinition

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
#: Size and margins of the detail's two charts.
CHART_LAYOUT: dict[str, Any] = {"height": 320, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}


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


def _history_every(span: timedelta) -> timedelta:
    """The evaluation interval of the detail's history: at most ~2000 points per line."""
    days = span.total_seconds() / 86400
    return timedelta(minutes=1 if days <= 1 else 5 if days <= 7 else 10)


@dataclass(frozen=True)
class PageChoices:
    """This page's own sidebar choices (drawn before the fragment: it cannot write there)."""

    slos: list[SloDefinition]
    slo: str
    services: list[str]
    states: list[str]
    show_groups: bool


def _listing(selected: pd.DataFrame, c: PageChoices) -> pd.DataFrame:
    """The rows of the list: global roll-ups (or each selected group), filtered, sorted."""
    is_global = (selected["region"] == "*") & (selected["model"] == "*") & (selected["arm"] == "*")
    view = selected
    if not c.show_groups:  # SLOs without a global row (narrowed) show their selected groups
        view = selected[is_global | ~selected["slo"].isin(selected.loc[is_global, "slo"])]
    if c.services:
        view = view[view["service"].isin(c.services)]
    if c.states:
        view = view[view["state"].isin(c.states)]
    return view.sort_values("remaining", na_position="last")


def _summary(selected: pd.DataFrame, view: pd.DataFrame, c: PageChoices) -> None:
    counts = slo_data.headline_counts(selected, c.slos)
    cols = st.columns(5)
    cols[0].metric("SLOs", selected["slo"].nunique(), help="SLOs with rows in the selection.")
    cols[1].metric(
        "Paging",
        counts[slomath.PAGE],
        help="SLOs with a page tier firing in the global roll-up or in any selected group "
        "(the open episodes of the alert timeline).",
    )
    cols[2].metric(
        "Ticket",
        counts[slomath.TICKET],
        help="SLOs with a ticket tier firing in the selection, and no page.",
    )
    cols[3].metric(
        "Budget exhausted", counts[slomath.EXHAUSTED], help="SLOs with any group out of budget."
    )
    cols[4].metric("No data", counts[slomath.NO_DATA])
    shown = pd.DataFrame(
        {
            "SLO": view["display_name"],
            "name": view["slo"],
            "service": view["service"],
            "group": [_group_label(r) for _, r in view.iterrows()],
            "state": view["state"].map(STATE_LABELS),
            # In percent, printed with three decimals: a rounded "99 %" beside a target
            # of "99 %" hid why an SLO is out of budget (99.412 % vs 99.5 %).
            "SLI": 100 * view["sli"],
            "target": 100 * view["target"],
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
            "state": st.column_config.TextColumn(width="medium"),
            "SLI": st.column_config.NumberColumn(format="%.3f %%"),
            "target": st.column_config.NumberColumn(format="%.3f %%"),
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


def _charts(slo: SloDefinition, g: pd.DataFrame) -> None:
    """The burn-down and the burn rate per window of one group's history."""
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
        title="Error budget remaining (burn-down)", yaxis_tickformat=".0%", **CHART_LAYOUT
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
        title="Burn rate per window, with tier thresholds", yaxis_type="log", **CHART_LAYOUT
    )
    right.plotly_chart(burn, width="stretch", key="slo_burn")


def _timeline(tl: pd.DataFrame, end: object, f: Filters, group_choice: str) -> None:
    st.subheader("Alert timeline")
    if tl.empty:
        st.success(f"No tier fired in the selected groups over the {f.range_label.lower()}.")
        return
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
    groups = [_group_label(r) for _, r in tl.iterrows()]
    st.dataframe(
        tl.assign(group=groups)[
            ["group", "tier", "severity", "fired", "recovered", "evaluations", "peak_burn"]
        ],
        hide_index=True,
        width="stretch",
    )
    if group_choice not in groups:
        st.caption(f"No tier fired for {md(group_choice)}.")


def _breakdown(rows: pd.DataFrame) -> None:
    st.subheader("Per-group breakdown")
    st.caption(
        "The global row adds every group's events (sum of bad over sum of total); it is not "
        "the mean of the groups' ratios. When the sidebar narrows the regions, models or "
        "arms an SLO is split by, only the selected groups are listed, without the global row."
    )
    breakdown = rows.assign(
        group=[_group_label(r) for _, r in rows.iterrows()],
        state=rows["state"].map(STATE_LABELS).fillna(rows["state"]),
        sli=100 * rows["sli"],
    )
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
            "state": st.column_config.TextColumn(width="medium"),
            "sli": st.column_config.NumberColumn("SLI", format="%.3f %%"),
            "remaining": st.column_config.NumberColumn(format="percent"),
            "coverage": st.column_config.NumberColumn(format="percent"),
            "burn_1h": st.column_config.NumberColumn("burn 1h", format="%.2f"),
            "burn_1d": st.column_config.NumberColumn("burn 1d", format="%.2f"),
        },
    )


def _detail(table: pd.DataFrame, f: Filters, c: PageChoices) -> None:
    st.header("Detail")
    slo = next(d for d in c.slos if d.name == c.slo)
    rows = table[table["slo"] == slo.name]
    if rows.empty:
        st.info(
            f"{md(slo.display_name)} has no group in the selected regions, models and arms; "
            "widen the sidebar's filters or pick another SLO."
        )
        return
    is_global = (rows["region"] == "*") & (rows["model"] == "*") & (rows["arm"] == "*")
    rows = pd.concat([rows[is_global], rows[~is_global].sort_values("remaining")])
    groups = [_group_label(r) for _, r in rows.iterrows()]
    group_choice = st.selectbox("Group", groups, key="slo_group")
    row = rows.iloc[groups.index(group_choice)]
    key = (row["region"], row["model"], row["arm"])
    st.markdown(
        f"**{md(slo.display_name)}** — service {md(slo.service)}, {md(slo.indicator.kind)} "
        f"SLI, {md(slo.method)}, target {slo.target * 100:g} % over "
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

    at = slo_data.evaluation_time(f.range_label, f.end)
    with st.spinner("Evaluating history ...", show_time=True):
        hist = slo_data.history(slo, f.span.total_seconds() / 86400, _history_every(f.span), at)
    if hist.empty:
        st.info("No data for this SLO in the store.")
        return
    g = hist[(hist["region"] == key[0]) & (hist["model"] == key[1]) & (hist["arm"] == key[2])]
    _charts(slo, g)
    tl = slo_data.timeline(slo, hist)
    chosen = set(zip(rows["region"], rows["model"], rows["arm"], strict=True))
    tl = tl[[k in chosen for k in zip(tl["region"], tl["model"], tl["arm"], strict=True)]]
    _timeline(tl, hist["ts_utc"].max(), f, group_choice)
    _breakdown(rows)


def render(f: Filters, c: PageChoices) -> None:
    """The page's body (a fragment: reruns on the live-refresh interval, Off by default)."""
    st.caption(md(f.caption()))
    st.caption(slo_data.specs_caption())
    st.caption(
        "Status is evaluated at the end of the time range: now (each SLO's latest data) "
        "for a preset, the end of the last chosen day for custom dates. Each SLO keeps "
        "its own windows (its period and burn-rate windows), so the range's start changes "
        "only the detail's charts, which cover the range. Regions, models and arms narrow "
        "the SLOs split by them to those groups; SLOs not split by them are listed whole."
    )
    maintenance, maintenance_problem = slo_data.maintenance()
    if maintenance_problem:
        st.warning(md(maintenance_problem))
    elif maintenance:
        st.caption(
            f"{len(maintenance)} maintenance window(s) of the configuration are left out of "
            "every SLO's events: "
            + "; ".join(
                f"{m.start:%Y-%m-%d %H:%M} → {m.end:%Y-%m-%d %H:%M} UTC"
                + (f" ({', '.join(m.regions)})" if m.regions else "")
                + (f" {md(m.reason)}" if m.reason else "")
                for m in maintenance
            )
        )
    at = slo_data.evaluation_time(f.range_label, f.end)
    with st.spinner("Computing SLOs ...", show_time=True):
        table = slo_data.status(c.slos, at)
    lag = slo_data.status_source(c.slos, at)
    if lag:
        st.caption(md(lag))
    selected = slo_data.selected_rows(table, f)
    _summary(selected, _listing(selected, c), c)
    _detail(selected, f, c)


def _choices(slos: list[SloDefinition]) -> PageChoices:
    """This page's sidebar: the SLO (in the URL), service, state, per-group rows."""
    sb = st.sidebar
    sb.header("SLO")
    slo = url_choice(  # no format_func: the URL holds the shown text, here the name
        "SLO",
        [d.name for d in slos],
        key="slo",
        help="The SLO of the detail below, by name (kept in the URL as ?slo=<name>).",
    )
    services = sb.multiselect(
        "Service", sorted({d.service for d in slos}), key="slo_services", help="Empty: all"
    )
    states = sb.multiselect(
        "State", list(STATE_LABELS), format_func=lambda s: STATE_LABELS[s], key="slo_states"
    )
    groups = sb.toggle("Show per-group rows", value=False, key="slo_groups")
    return PageChoices(slos, slo, list(services), list(states), bool(groups))


st.title("SLOs")
filters = shared_filters()
require_selection(filters)
try:
    definitions = slo_data.definitions()
except slo_data.SpecError as exc:
    st.error(f"The SLO specs have {len(exc.messages)} mistake(s); fix them and reload.")
    st.code("\n".join(exc.messages), language=None)
    st.stop()
if not definitions:
    st.info(
        "No SLOs defined. Start the dashboard with `observatory serve --slo-specs "
        "FILE_OR_FOLDER` (or set `OBSERVATORY_SLO_SPECS`) naming OpenSLO or Sloth files."
    )
    st.stop()
choices = _choices(definitions)
live(lambda f: render(f, choices), filters, heavy=True)

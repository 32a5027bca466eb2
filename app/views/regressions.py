"""Regressions: a timeline of detected regressions and deployment verdicts across
regions, filterable; each opens a chart of its signal with the change point, the
before/after levels (95% intervals) and the suspected cause."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.regressions import SIGNALS
from app import regressions_data
from app.data import StoreError
from app.ui import md, plotly_text, region_colors, require_store
from observatory import regressions as reg
from observatory.store import StoreMissing

HISTORY = {"3 days": 3, "7 days": 7, "14 days": 14, "30 days": 30}
SEVERITY_COLOR = {"critical": "#d62728", "warning": "#ff7f0e", "improvement": "#2ca02c"}
VERDICT_SYMBOL = {"Pass": "circle-open", "Marginal": "diamond-open", "Fail": "x"}

st.title("Regressions")
require_store()

with st.sidebar:
    history = st.selectbox("History analysed", list(HISTORY), index=2)
    show_improvements = st.checkbox("Show improvements", value=False)
    only_open = st.checkbox("Only open regressions", value=False)
    pass_score = st.number_input("Verdict: Pass at score ≥", 0.0, 100.0, 95.0, step=1.0)
    marginal_score = st.number_input(
        "Verdict: Marginal at score ≥",
        0.0,
        float(pass_score),
        min(75.0, float(pass_score)),
        step=1.0,
    )

try:
    report = regressions_data.report(timedelta(days=HISTORY[history]))
except (StoreError, StoreMissing) as exc:
    st.error(f"Could not analyse the store: {md(exc)}")
    st.stop()
    raise  # unreachable

regs = report.regressions
all_regions = sorted({r.region for r in regs} | set(report.signals["region"].unique()))
with st.sidebar:
    regions = st.multiselect("Regions", all_regions, default=all_regions)
    signals = st.multiselect("Signals", list(SIGNALS), default=list(SIGNALS))
shown = [
    r
    for r in regs
    if r.region in regions
    and r.signal in signals
    and (show_improvements or r.worse)
    and (not only_open or r.open)
]
verdicts = [
    v
    for v in reg.deployment_verdicts(
        report.signals, report.events, pass_score=pass_score, marginal_score=marginal_score
    )
    if v.region in regions
]
open_crit = reg.open_critical(shown)

st.caption(
    f"{report.start:%Y-%m-%d %H:%M} → {report.end:%Y-%m-%d %H:%M} UTC · "
    f"{report.bin_s // 60}-minute bins · {len(shown)} shown of {len(regs)} changes · "
    f"{len(verdicts)} deployment verdicts"
)
c1, c2, c3 = st.columns(3)
c1.metric("Open critical", len(open_crit))
c2.metric("Open (all)", sum(1 for r in shown if r.open and r.worse))
c3.metric("Deployments judged", len(verdicts))

# ------------------------------------------------------------------ timeline
colors = region_colors(all_regions)
fig = go.Figure()
for sev, color in SEVERITY_COLOR.items():
    pts = [r for r in shown if r.severity == sev]
    if not pts:
        continue
    fig.add_trace(
        go.Scatter(
            x=[r.start for r in pts],
            y=[r.region for r in pts],
            mode="markers",
            name=sev,
            marker={"color": color, "size": 12, "line": {"width": 1, "color": "#333"}},
            text=[
                plotly_text(
                    f"{r.signal} {r.model}/{r.arm}: {r.relative:+.1%}"
                    + (f" · cause: {r.cause.description}" if r.cause else "")
                )
                for r in pts
            ],
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y}<br>%{text}<extra></extra>",
        )
    )
for verdict, symbol in VERDICT_SYMBOL.items():
    vpts = [v for v in verdicts if v.verdict.verdict == verdict]
    if not vpts:
        continue
    fig.add_trace(
        go.Scatter(
            x=[v.event.time for v in vpts],
            y=[v.region for v in vpts],
            mode="markers",
            name=f"deployment: {verdict}",
            marker={"symbol": symbol, "size": 14, "color": "#1f77b4"},
            text=[plotly_text(f"{v.event.description}: {v.verdict.reason}") for v in vpts],
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y}<br>%{text}<extra></extra>",
        )
    )
fig.update_layout(
    height=120 + 40 * max(len(regions), 1),
    margin={"l": 10, "r": 10, "t": 30, "b": 10},
    xaxis_title="UTC",
    legend={"orientation": "h"},
    title="Timeline",
)
st.plotly_chart(fig, width="stretch")

# ------------------------------------------------------------------ table
if not shown:
    st.success("No regression in the selection.")
else:
    tab = reg.table(shown)
    tab["change"] = tab["change"].map(lambda v: f"{v:+.1%}")
    tab["before"] = [reg.fmt_value(r.before, r.unit) for r in shown]
    tab["after"] = [reg.fmt_value(r.after, r.unit) for r in shown]
    event = st.dataframe(
        tab,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="regression_table",
    )
    rows = event.selection.rows if event and event.selection else []
    pick = shown[rows[0]] if rows else shown[0]

    # -------------------------------------------------------------- chart
    st.subheader(f"{pick.signal} · {pick.region} · {pick.model}/{pick.arm}")
    spec = SIGNALS[pick.signal]
    s = reg.series(report, pick.region, pick.model, pick.arm, pick.signal)
    lo = pd.Timestamp(pick.start) - pd.Timedelta(days=2)
    hi = pd.Timestamp(pick.end or report.end.replace(tzinfo=None)) + pd.Timedelta(days=1)
    s = s[(s.bin_end >= lo) & (s.bin_end <= hi)]
    ch = go.Figure()
    ch.add_trace(
        go.Scatter(
            x=s["bin_end"],
            y=s["value"],
            mode="lines",
            name=pick.signal,
            line={"color": colors.get(pick.region, "#555"), "width": 1},
        )
    )
    start = pd.Timestamp(pick.start)
    after_end = pd.Timestamp(pick.end) if pick.end else s["bin_end"].max()
    for label, level, ci, x0, x1 in (
        ("before", pick.before, pick.before_ci, s["bin_end"].min(), start),
        ("after", pick.after, pick.after_ci, start, after_end),
    ):
        ch.add_shape(
            type="rect",
            x0=x0,
            x1=x1,
            y0=ci[0],
            y1=ci[1],
            fillcolor="#888",
            opacity=0.2,
            line={"width": 0},
        )
        ch.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[level, level],
                mode="lines",
                name=f"{label} level",
                line={"dash": "dash", "width": 2},
            )
        )
    ch.add_vline(x=start, line={"color": SEVERITY_COLOR[pick.severity], "width": 2})
    if pick.cause:
        ch.add_vline(x=pd.Timestamp(pick.cause.time), line={"color": "#1f77b4", "dash": "dot"})
    ch.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis_title=f"{pick.signal} ({spec.unit})",
        xaxis_title="UTC",
    )
    st.plotly_chart(ch, width="stretch")
    cause = (
        f"{md(pick.cause.description)} ({pick.cause.kind}, {pick.cause.time:%Y-%m-%d %H:%M} UTC)"
        if pick.cause
        else "no event in the store near the start (no annotation, label change or traffic shift)"
    )
    st.markdown(
        f"**Start** {pick.start:%Y-%m-%d %H:%M} UTC · **before** "
        f"{reg.fmt_value(pick.before, pick.unit)} "
        f"[{reg.fmt_value(pick.before_ci[0], pick.unit)}, "
        f"{reg.fmt_value(pick.before_ci[1], pick.unit)}] · **after** "
        f"{reg.fmt_value(pick.after, pick.unit)} "
        f"[{reg.fmt_value(pick.after_ci[0], pick.unit)}, "
        f"{reg.fmt_value(pick.after_ci[1], pick.unit)}] · **change** {pick.relative:+.1%} "
        f"(at the same traffic) · {'open' if pick.open else 'closed'}  \n"
        f"**Suspected cause:** {cause}"
    )

# ------------------------------------------------------------------ verdicts


def _verdict_table(rows: list[reg.DeploymentVerdict]) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "time_utc": v.event.time,
                    "verdict": v.verdict.verdict,
                    "score": v.verdict.score,
                    "region": v.region,
                    "model": v.model,
                    "arm": v.arm,
                    "compared": v.event.description,
                    "reason": v.verdict.reason,
                }
                for v in rows
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _span(text: str, what: str) -> tuple[datetime, datetime] | None:
    """``START..END`` (UTC ISO 8601) from a text input, or a warning and None."""
    try:
        a, b = (datetime.fromisoformat(p.strip()) for p in text.split(".."))
    except ValueError:
        st.warning(f"{what}: expected START..END such as 2026-11-27T10:00..2026-11-27T11:00")
        return None
    if b <= a:
        st.warning(f"{what}: the range ends before it starts")
        return None
    return a.replace(tzinfo=None), b.replace(tzinfo=None)


st.subheader("Deployment verdicts")
st.caption(
    f"Kayenta-style judge: Pass at score ≥ {pass_score:g}, Marginal at ≥ {marginal_score:g} "
    "(sidebar); each signal by Mann-Whitney U and the Hodges-Lehmann shift."
)
mode = st.radio(
    "Compare",
    ["Deployment events", "Two time ranges", "Two arms"],
    horizontal=True,
    key="verdict_mode",
)
last_bin = pd.Timestamp(report.end.replace(tzinfo=None)).floor("h")
fmt = "%Y-%m-%dT%H:%M"
if mode == "Deployment events":
    if not verdicts:
        st.caption(
            "No deployment in the history: record one with `observatory annotate` "
            "(label changes, a new arm or model, are found automatically)."
        )
    else:
        _verdict_table(verdicts)
elif mode == "Two time ranges":
    c1, c2 = st.columns(2)
    day = pd.Timedelta(days=1)
    hour = pd.Timedelta(hours=1)
    base_text = c1.text_input(
        "Baseline (UTC)", f"{last_bin - day - hour:{fmt}}..{last_bin - day:{fmt}}"
    )
    canary_text = c2.text_input("Canary (UTC)", f"{last_bin - hour:{fmt}}..{last_bin:{fmt}}")
    base, canary = _span(base_text, "Baseline"), _span(canary_text, "Canary")
    if base and canary:
        rows = [
            v
            for v in reg.range_verdicts(
                report.signals, base, canary, pass_score=pass_score, marginal_score=marginal_score
            )
            if v.region in regions
        ]
        if rows:
            _verdict_table(rows)
        else:
            st.caption("No series has data in both ranges (within the history analysed).")
else:
    arms = sorted(str(a) for a in report.signals["arm"].unique())
    c1, c2, c3 = st.columns(3)
    control = c1.selectbox("Control arm", arms, index=0)
    experiment = c2.selectbox("Experiment arm", arms, index=min(1, len(arms) - 1))
    during_text = c3.text_input(
        "During (UTC)", f"{last_bin - pd.Timedelta(days=1):{fmt}}..{last_bin:{fmt}}"
    )
    during = _span(during_text, "During")
    if control == experiment:
        st.caption("Pick two different arms.")
    elif during:
        rows = [
            v
            for v in reg.arm_verdicts(
                report.signals,
                control,
                experiment,
                during,
                pass_score=pass_score,
                marginal_score=marginal_score,
            )
            if v.region in regions
        ]
        if rows:
            _verdict_table(rows)
        else:
            st.caption("No model serves both arms in that range.")

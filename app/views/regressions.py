"""Regressions: a timeline of detected regressions and deployment verdicts across
regions; each opens a chart of its signal with the change point, the before/after
levels (95% intervals) and the suspected cause.

The sidebar's shared filters (:func:`app.filters.shared_filters`) choose the
lookback (the time range: the regressions are found in ``(start, end]``) and the
regions, models and arms shown.  The findings are precomputed off the request path
(``observatory regressions precompute``) or, for a range they do not cover, computed
for the selected regions (:func:`app.regressions_view_data.findings`); the page
narrows them to the selection and reads the per-bin signals only of the regions and
times it draws or judges.  The page's own controls (signals, improvements, open only,
the verdict thresholds and what the verdicts compare) are kept in the URL too.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.regressions import SIGNALS
from app import regressions_view_data
from app.charts import palette
from app.data import StoreError
from app.filters import URL_STATE, Filters, live, require_selection, shared_filters
from app.ui import md, plotly_text
from observatory import regressions as reg
from observatory.regressions_findings import Findings
from observatory.store import StoreMissing

SEVERITY_COLOR = {"critical": "#d62728", "warning": "#ff7f0e", "improvement": "#2ca02c"}
VERDICT_SYMBOL = {"Pass": "circle-open", "Marginal": "diamond-open", "Fail": "x"}
COMPARE = ["Deployment events", "Two time ranges", "Two arms"]
TIME_FORMAT = "%Y-%m-%dT%H:%M"
#: The table's level columns are raw means, its change is load-adjusted: say so.
TABLE_LABELS = {
    "before": "before (mean)",
    "after": "after (mean)",
    "change": "change (same traffic)",
}


@dataclasses.dataclass(frozen=True)
class Choices:
    """The page's own controls: which regressions are listed and the verdict thresholds."""

    signals: list[str]
    improvements: bool
    only_open: bool
    pass_score: float
    marginal_score: float


def _choices() -> Choices:
    """Draw the page's controls (one row) and return them."""
    c1, c2, c3, c4 = st.columns([3, 1.5, 1, 1], vertical_alignment="bottom")
    signals = c1.multiselect(
        "Signals",
        list(SIGNALS),
        default=list(SIGNALS),
        key="reg_signals",
        **URL_STATE,
    )
    improvements = c2.checkbox(
        "Show improvements",
        value=False,
        key="reg_improvements",
        **URL_STATE,
    )
    only_open = c2.checkbox(
        "Only open regressions",
        value=False,
        key="reg_open",
        **URL_STATE,
    )
    pass_score = c3.number_input(
        "Verdict: Pass at score ≥",
        0.0,
        100.0,
        95.0,
        step=1.0,
        key="reg_pass",
        **URL_STATE,
    )
    marginal_score = c4.number_input(
        "Verdict: Marginal at score ≥",
        0.0,
        100.0,
        75.0,
        step=1.0,
        key="reg_marginal",
        **URL_STATE,
    )
    if marginal_score > pass_score:
        st.caption(f"Marginal above Pass: using Marginal at ≥ {pass_score:g}.")
        marginal_score = pass_score
    return Choices(
        list(signals), bool(improvements), bool(only_open), float(pass_score), marginal_score
    )


def _spans(fs: Findings, f: Filters) -> pd.DataFrame:
    """The selected series' first and last bin per region (``min``, ``max``)."""
    spans = fs.spans[f.mask(fs.spans).to_numpy()]
    return spans.groupby("region").agg(min=("first", "min"), max=("last", "max"))


def _timeline(
    f: Filters,
    spans: pd.DataFrame,
    shown: list[reg.rg.Regression],
    verdicts: list[reg.DeploymentVerdict],
) -> None:
    """One row per region: the analysed bins (region colour), regressions, verdicts.

    Traces are plain dicts and the figure is built once (one validation pass), so
    20 regions cost little more than 2 (docs/scaling.md)."""
    colors = palette(f.all_regions, "region")
    marker_hover = "%{x|%Y-%m-%d %H:%M} UTC<br>%{y}<br>%{text}<extra></extra>"
    ordered = spans.sort_index()
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": [first, last],
            "y": [plotly_text(region)] * 2,
            "mode": "lines",
            "name": plotly_text(region),
            "showlegend": False,
            "line": {"color": colors.get(str(region), "#888"), "width": 8},
            "opacity": 0.35,
            "hovertemplate": "%{y}: analysed to %{x|%Y-%m-%d %H:%M} UTC<extra></extra>",
        }
        for region, first, last in zip(ordered.index, ordered["min"], ordered["max"], strict=True)
    ]
    for sev, color in SEVERITY_COLOR.items():
        pts = [r for r in shown if r.severity == sev]
        if pts:
            traces.append(
                {
                    "type": "scatter",
                    "x": [r.start for r in pts],
                    "y": [plotly_text(r.region) for r in pts],
                    "mode": "markers",
                    "name": sev,
                    "marker": {
                        "color": color,
                        "size": 12,
                        "line": {"width": 1, "color": "#333"},
                    },
                    "text": [
                        plotly_text(
                            f"{r.signal} {r.model}/{r.arm}: {r.relative:+.1%}"
                            + (f" · cause: {r.cause.description}" if r.cause else "")
                        )
                        for r in pts
                    ],
                    "hovertemplate": marker_hover,
                }
            )
    for verdict, symbol in VERDICT_SYMBOL.items():
        vpts = [v for v in verdicts if v.verdict.verdict == verdict]
        if vpts:
            traces.append(
                {
                    "type": "scatter",
                    "x": [v.event.time for v in vpts],
                    "y": [plotly_text(v.region) for v in vpts],
                    "mode": "markers",
                    "name": f"deployment: {verdict}",
                    "marker": {"symbol": symbol, "size": 14, "color": "#1f77b4"},
                    "text": [
                        plotly_text(f"{v.event.description}: {v.verdict.reason}") for v in vpts
                    ],
                    "hovertemplate": marker_hover,
                }
            )
    rows = [plotly_text(r) for r in sorted(spans.index.astype(str))]
    fig = go.Figure(
        data=traces,
        layout={
            "height": 120 + 40 * max(len(rows), 1),
            "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
            "xaxis": {"title": {"text": "UTC"}},
            "yaxis": {"categoryorder": "array", "categoryarray": rows},
            "legend": {"orientation": "h"},
            "title": {"text": "Timeline"},
        },
    )
    st.plotly_chart(fig, width="stretch", key="regression_timeline")


def _detail(fs: Findings, pick: reg.rg.Regression, color: str) -> None:
    """The picked regression's signal with the change point, levels and suspected cause."""
    st.subheader(f"{pick.signal} · {pick.region} · {pick.model}/{pick.arm}")
    spec = SIGNALS[pick.signal]
    s = fs.series(pick.region, pick.model, pick.arm, pick.signal)
    lo = pd.Timestamp(pick.start) - pd.Timedelta(days=2)
    hi = pd.Timestamp(pick.end or fs.end.replace(tzinfo=None)) + pd.Timedelta(days=1)
    s = s[(s.bin_end >= lo) & (s.bin_end <= hi)]
    ch = go.Figure()
    ch.add_trace(
        go.Scatter(
            x=s["bin_end"],
            y=s["value"],
            mode="lines",
            name=pick.signal,
            line={"color": color, "width": 1},
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
    st.plotly_chart(ch, width="stretch", key="regression_detail")
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


def _range_text(where: Any, label: str, key: str, a: pd.Timestamp, b: pd.Timestamp) -> str:
    """A ``START..END`` text input kept in the URL, defaulting to ``a..b`` (UTC)."""
    return str(
        where.text_input(
            label,
            f"{a:{TIME_FORMAT}}..{b:{TIME_FORMAT}}",
            key=key,
            **URL_STATE,
        )
    )


def _selected_signals(
    fs: Findings, f: Filters, *spans: tuple[datetime, datetime], every_arm: bool = False
) -> pd.DataFrame:
    """The selected series' signals with ``bin_end`` in any of ``spans`` (read per region)."""
    sig = fs.signals_within(f.regions, spans)
    chosen = dataclasses.replace(f, arms=f.all_arms) if every_arm else f
    return sig[_kept(chosen, sig)]


def _kept(f: Filters, sig: pd.DataFrame) -> Any:
    """:meth:`Filters.mask` of a signals frame, decided once per category of each label
    (the same rows; millions of rows in "Two arms" over the whole fleet)."""
    keep = pd.Series(True, index=sig.index)
    for col in reg.rg.KEYS:
        cats = pd.Index(sig[col].cat.categories.astype(str))
        allowed = cats[f.mask(pd.DataFrame({col: cats})).to_numpy()]
        keep &= sig[col].isin(allowed)
    return keep.to_numpy()


def _verdicts(
    f: Filters,
    fs: Findings,
    c: Choices,
    events: list[reg.DeploymentVerdict],
) -> None:
    """Deployment verdicts: at deployment events, between two time ranges, or two arms."""
    st.subheader("Deployment verdicts")
    st.caption(
        f"Kayenta-style judge: Pass at score ≥ {c.pass_score:g}, Marginal at ≥ "
        f"{c.marginal_score:g}; each signal by Mann-Whitney U and the Hodges-Lehmann shift."
    )
    mode = st.radio(
        "Compare",
        COMPARE,
        horizontal=True,
        key="verdict_mode",
        **URL_STATE,
    )
    last_bin = pd.Timestamp(fs.end.replace(tzinfo=None)).floor("h")
    hour, day = pd.Timedelta(hours=1), pd.Timedelta(days=1)
    if mode == "Two time ranges":
        c1, c2 = st.columns(2)
        base_text = _range_text(
            c1, "Baseline (UTC)", "reg_baseline", last_bin - day - hour, last_bin - day
        )
        canary_text = _range_text(c2, "Canary (UTC)", "reg_canary", last_bin - hour, last_bin)
        base, canary = _span(base_text, "Baseline"), _span(canary_text, "Canary")
        if base and canary:
            rows = reg.range_verdicts(
                _selected_signals(fs, f, base, canary),
                base,
                canary,
                pass_score=c.pass_score,
                marginal_score=c.marginal_score,
            )
            if rows:
                _verdict_table(rows)
            else:
                st.caption("No series has data in both ranges (within the time range).")
        return
    if mode == "Two arms":
        # Arms are compared with each other, so the sidebar's arm filter does not apply.
        arms = fs.arms
        c1, c2, c3 = st.columns(3)
        control = c1.selectbox(
            "Control arm",
            arms,
            index=0,
            key="reg_control",
            **URL_STATE,
        )
        experiment = c2.selectbox(
            "Experiment arm",
            arms,
            index=min(1, len(arms) - 1),
            key="reg_experiment",
            **URL_STATE,
        )
        during = _span(
            _range_text(c3, "During (UTC)", "reg_during", last_bin - day, last_bin), "During"
        )
        if control == experiment:
            st.caption("Pick two different arms.")
        elif during:
            every_arm = dataclasses.replace(f, arms=f.all_arms)
            rows = [
                v
                for v in reg.arm_verdicts(
                    _selected_signals(fs, f, during, every_arm=True),
                    str(control),
                    str(experiment),
                    during,
                    pass_score=c.pass_score,
                    marginal_score=c.marginal_score,
                )
                if every_arm.keeps(v.region, v.model)
            ]
            if rows:
                _verdict_table(rows)
            else:
                st.caption("No selected model serves both arms in that range.")
        return
    if events:
        _verdict_table(events)
    else:
        st.caption(
            "No deployment in the time range: record one with `observatory annotate` "
            "(label changes, a new arm or model, are found automatically)."
        )


def render(f: Filters) -> None:
    """The page's body (a fragment: reruns on the live-refresh interval, Off by default)."""
    st.caption(md(f.caption()))
    c = _choices()
    try:
        fs, source = regressions_view_data.findings(f)
    except (StoreError, StoreMissing) as exc:
        st.error(f"Could not analyse the store: {md(exc)}")
        return
    mine = [r for r in fs.regressions if f.keeps(r.region, r.model, r.arm)]
    shown = [
        r
        for r in mine
        if r.signal in c.signals and (c.improvements or r.worse) and (not c.only_open or r.open)
    ]
    events = [e for e in fs.events if e.region is None or e.region in f.regions]
    rows = fs.verdict_rows
    verdicts = reg.deployment_verdicts(
        rows[_kept(f, rows)],
        events,
        pass_score=c.pass_score,
        marginal_score=c.marginal_score,
    )
    st.caption(
        f"Lookback: the sidebar's time range, {fs.start:%Y-%m-%d %H:%M} → "
        f"{fs.end:%Y-%m-%d %H:%M} UTC · {fs.bin_s // 60}-minute bins · "
        f"{len(shown)} shown of {len(fs.regressions)} changes in the "
        f"{len(fs.regions)} analysed regions · {len(verdicts)} deployment verdicts · "
        f"findings {md(source)}. A change that began before the range is its baseline, "
        "not a regression in it: choose a longer range to see it."
    )
    older, kept_end = regressions_view_data.open_before(f, fs.start, fs.bin_s)
    older = [r for r in older if r.signal in c.signals]
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Open critical",
        len(reg.open_critical(shown)) + len(reg.open_critical(older)),
        help="Began in the range, or earlier and still open (listed below the tiles).",
    )
    m2.metric("Open (all)", sum(1 for r in shown if r.open and r.worse) + len(older))
    m3.metric("Deployments judged", len(verdicts))
    if older:
        st.warning(
            f"**{len(older)} regression(s) that began before this range are still open** "
            f"(from the 14-day analysis `observatory regressions` keeps, up to "
            f"{kept_end:%Y-%m-%d %H:%M} UTC). In this range they are the baseline; choose "
            "a longer range to see them on the timeline."
        )
        early = reg.table(older)
        early["change"] = early["change"].map(lambda v: f"{v:+.1%}")
        st.dataframe(early, hide_index=True, key="open_before")
    spans = _spans(fs, f)
    if spans.empty:
        st.info(
            "No signal in this time range for the selected regions, models and arms. "
            "Choose a longer time range or other filters."
        )
        return
    _timeline(f, spans, shown, verdicts)
    if not shown:
        st.success("No regression in the selection.")
    else:
        tab = reg.table(shown)
        tab["change"] = tab["change"].map(lambda v: f"{v:+.1%}")
        tab["before"] = [reg.fmt_value(r.before, r.unit) for r in shown]
        tab["after"] = [reg.fmt_value(r.after, r.unit) for r in shown]
        tab = tab.rename(columns=TABLE_LABELS)
        st.caption(
            "before / after: plain means of the signal over the segments on either side; "
            "change: relative, like for like (load-adjusted signals at the same traffic, "
            "so it can differ from after / before)."
        )
        event = st.dataframe(
            tab,
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="single-row",
            key="regression_table",
        )
        picked = event.selection.rows if event and event.selection else []
        pick = shown[picked[0]] if picked and picked[0] < len(shown) else shown[0]
        _detail(fs, pick, palette(f.all_regions, "region").get(pick.region, "#555"))
    _verdicts(f, fs, c, verdicts)


st.title("Regressions")
filters = shared_filters()
require_selection(filters)
live(render, filters, heavy=True)

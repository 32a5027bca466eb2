"""Plotly figures of the Experiments page: cumulative effect, regions, efficiency frontier.

Every label value (arm, region, metric names from configuration or exporters) is
escaped with :func:`app.ui.plotly_text`.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from analytics.experiment_metrics import MetricDef, MetricResult
from app.ui import plotly_text

ARM_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def cumulative_chart(cum: pd.DataFrame, label: str) -> go.Figure:
    """The relative effect over time with the fixed-horizon and always-valid intervals.

    Args:
        cum: :func:`analytics.experiment_metrics.cumulative_effect` rows.
        label: the metric's name for the title.
    """
    fig = go.Figure()
    x = cum["ts_utc"]
    for low, high, name, color in (
        ("seq_low", "seq_high", "always-valid (sequential) interval", "rgba(31,119,180,0.15)"),
        ("fixed_low", "fixed_high", "fixed-horizon interval", "rgba(31,119,180,0.35)"),
    ):
        fig.add_trace(
            go.Scatter(
                x=pd.concat([x, x[::-1]]),
                y=pd.concat([100 * cum[high], 100 * cum[low][::-1]]),
                fill="toself",
                fillcolor=color,
                line={"width": 0},
                name=name,
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x, y=100 * cum["estimate"], mode="lines+markers", name="lift",
            line={"color": "#1f77b4"},
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>lift %{y:+.2f}%<extra></extra>",
        )
    )  # fmt: skip
    fig.add_hline(y=0, line={"color": "#555", "dash": "dot"})
    fig.update_layout(
        title=f"Cumulative effect on {plotly_text(label)} (relative lift, %)",
        height=360,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.2},
        yaxis_title="lift (%)",
    )
    return fig


def region_chart(results: dict[str, MetricResult]) -> go.Figure:
    """A forest plot: the relative lift and interval per region (and pooled).

    Args:
        results: region (or ``all regions``) -> the metric's result there.
    """
    fig = go.Figure()
    names, est, lo, hi, colors = [], [], [], [], []
    for region, r in results.items():
        f = r.fixed
        if f is None or not math.isfinite(f.estimate):
            continue
        names.append(plotly_text(region))
        est.append(100 * f.estimate)
        lo.append(100 * (f.estimate - f.ci_low))
        hi.append(100 * (f.ci_high - f.estimate))
        colors.append("#333" if region == "all regions" else "#1f77b4")
    fig.add_trace(
        go.Scatter(
            x=est, y=names, mode="markers", marker={"color": colors, "size": 10},
            error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
            hovertemplate="%{y}: %{x:+.2f}%<extra></extra>", showlegend=False,
        )
    )  # fmt: skip
    fig.add_vline(x=0, line={"color": "#555", "dash": "dot"})
    fig.update_layout(
        height=max(220, 45 * len(names) + 80),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="relative lift (%), 95% interval",
        yaxis={"autorange": "reversed"},
    )
    return fig


def frontier_chart(frontier: pd.DataFrame, x_metric: MetricDef, y_metric: MetricDef) -> go.Figure:
    """Each arm placed by quality (y) against cost or energy (x), with intervals.

    Args:
        frontier: :func:`observatory.experiment_engine.frontier` rows.
    """
    fig = go.Figure()
    for i, arm in enumerate(dict.fromkeys(frontier["arm"])):
        rows = frontier[frontier["arm"] == arm].set_index("metric")
        if x_metric.name not in rows.index or y_metric.name not in rows.index:
            continue
        xr, yr = rows.loc[x_metric.name], rows.loc[y_metric.name]
        if not (math.isfinite(xr["value"]) and math.isfinite(yr["value"])):
            continue
        ys = 100.0 if y_metric.unit == "ratio" else 1.0
        fig.add_trace(
            go.Scatter(
                x=[xr["value"]], y=[ys * yr["value"]], mode="markers+text",
                text=[plotly_text(arm)], textposition="top center", name=plotly_text(arm),
                marker={"size": 14, "color": ARM_COLORS[i % len(ARM_COLORS)]},
                error_x={"type": "data", "symmetric": False,
                         "array": [xr["ci_high"] - xr["value"]],
                         "arrayminus": [xr["value"] - xr["ci_low"]]},
                error_y={"type": "data", "symmetric": False,
                         "array": [ys * (yr["ci_high"] - yr["value"])],
                         "arrayminus": [ys * (yr["value"] - yr["ci_low"])]},
            )
        )  # fmt: skip
    y_unit = "%" if y_metric.unit == "ratio" else y_metric.unit
    fig.update_layout(
        title=f"{plotly_text(y_metric.label)} vs {plotly_text(x_metric.label)}",
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis_title=f"{plotly_text(x_metric.label)} ({x_metric.unit}) — lower is better",
        yaxis_title=f"{plotly_text(y_metric.label)} ({y_unit}) — higher is better",
        showlegend=False,
    )
    return fig

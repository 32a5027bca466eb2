"""Plotly figures shared by the pages: the fleet map, lines per series, bars; the palette.

Every label value is escaped with :func:`app.ui.plotly_text` (Plotly renders a
subset of HTML in labels and hover text).  Figures set no template or background:
``st.plotly_chart`` applies the Streamlit theme, so they follow the light or dark
theme the viewer picked.  Colours come from :func:`palette`, the same per region,
arm and model on every page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from analytics.overview import HEALTH_LEVELS, Thresholds, format_number
from app.ui import HEALTH_COLORS, plotly_text

PaletteKind = Literal["region", "arm", "model"]
#: One qualitative palette per kind of label, readable on light and dark backgrounds.
PALETTES: dict[str, list[str]] = {
    "region": plotly.colors.qualitative.D3 + plotly.colors.qualitative.Dark2,
    "arm": ["#1F6FEB", "#E8590C", "#2F9E44", "#AE3EC9", "#F08C00", "#0C8599"],
    "model": plotly.colors.qualitative.Set2 + plotly.colors.qualitative.Pastel1,
}


def palette(values: Iterable[str], kind: PaletteKind = "region") -> dict[str, str]:
    """A fixed colour per value (by sorted value), the same on every chart and page.

    Pass every value the store knows (``Filters.all_regions``, ``all_arms``,
    ``all_models``), not only the selected ones, so that a value keeps its colour
    when the filter changes.  Colours repeat after the palette's length.
    """
    colours = PALETTES[kind]
    return {v: colours[i % len(colours)] for i, v in enumerate(sorted({str(v) for v in values}))}


def _pct(v: float, digits: int = 2) -> str:
    return "no data" if not math.isfinite(v) else f"{100 * v:.{digits}f} %"


def _secs(v: float) -> str:
    return "no data" if not math.isfinite(v) else f"{v:.2f} s"


def _state_text(row: object, level: str) -> str:
    """The hover's state line: the SLO state when the row has one, else the health."""
    state = getattr(row, "slo_state", None)
    if not isinstance(state, str):
        return f"Health: {level}"
    count = getattr(row, "slo_count", 0)
    count = int(count) if pd.notna(count) else 0
    worst = str(getattr(row, "slo_worst", "") or "")
    text = f"SLO state: {state}"
    if worst:
        text += f" ({plotly_text(worst)})"
    return text + (
        f"<br>SLOs split by region here: {count}" if count else "<br>No SLO split by region here"
    )


def fleet_map(summary: pd.DataFrame) -> go.Figure:
    """Each region at its coordinates, coloured by health, sized by requests.

    Args:
        summary: :func:`analytics.overview.region_summary` rows; regions without
            coordinates are left out (the page lists them).  With a ``slo_state``
            column (the state's label, e.g. ``page``), plus ``slo_worst`` (the SLOs
            and groups in that state) and ``slo_count`` (SLOs split by region), the
            hover says the SLO state and those counts instead of the health level.
    """
    located = summary.dropna(subset=["latitude", "longitude"])
    peak = float(located["requests"].max()) if len(located) else 0.0
    fig = go.Figure()
    for level in HEALTH_LEVELS:
        rows = located[located["health"] == level]
        if rows.empty:
            continue
        sizes = [
            14 + 34 * math.sqrt(r / peak) if peak > 0 and r > 0 else 11 for r in rows["requests"]
        ]
        custom = np.array(
            [
                [
                    plotly_text(row.display_name),
                    plotly_text(row.region),
                    _state_text(row, level),
                    format_number(row.requests),
                    _pct(row.error_ratio),
                    _secs(row.p50),
                    _secs(row.p99),
                    _pct(row.gpu_utilization, 1),
                    "no data" if not math.isfinite(row.cost_usd) else f"${row.cost_usd:,.2f}",
                ]
                for row in rows.itertuples()
            ],
            dtype=object,
        ).reshape(-1, 9)
        fig.add_trace(
            go.Scattergeo(
                lat=rows["latitude"],
                lon=rows["longitude"],
                mode="markers+text",
                text=[plotly_text(r) for r in rows["region"]],
                textposition="top center",
                textfont={"size": 11},
                marker={
                    "size": sizes,
                    "color": HEALTH_COLORS[level],
                    "opacity": 0.85,
                    "line": {"width": 1, "color": "#FFFFFF"},
                },
                name=level,
                customdata=custom,
                hovertemplate=(
                    "<b>%{customdata[0]}</b> (%{customdata[1]})<br>"
                    "%{customdata[2]}<br>"
                    "Requests: %{customdata[3]}<br>"
                    "Error ratio: %{customdata[4]}<br>"
                    "p50 / p99: %{customdata[5]} / %{customdata[6]}<br>"
                    "GPU utilisation: %{customdata[7]}<br>"
                    "Cost: %{customdata[8]}<extra></extra>"
                ),
                showlegend=False,  # the page's caption explains all four colours
            )
        )
    fig.update_geos(
        projection_type="natural earth",
        showland=True,
        landcolor="#EEF0F3",
        showcountries=True,
        countrycolor="#D0D4DA",
        showocean=True,
        oceancolor="#FAFBFC",
        coastlinecolor="#C0C4CA",
        showframe=False,
        bgcolor="rgba(0,0,0,0)",
        lataxis_range=[-60, 80],
    )
    fig.update_layout(
        height=430,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
    )
    return fig


def _plain(column: pd.Series) -> np.ndarray:
    """``column`` as a numpy array; a time-zone aware time column as its wall times,
    which is how Plotly draws a pandas column with a time zone."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_localize(None)
    return column.to_numpy()


def _split(frame: pd.DataFrame, by: str, columns: list[str]) -> list[tuple[object, dict]]:
    """``frame``'s ``columns`` as numpy arrays per value of ``by``, in sorted order.

    The rows ``frame.groupby(by, sort=True)`` gives (rows without a ``by`` value left
    out, each group's rows in frame order), from one stable sort instead of a
    DataFrame per group: building a figure's traces from arrays costs a fixed few
    operations per trace, not a pandas selection each.
    """
    codes, keys = pd.factorize(frame[by], sort=True)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.searchsorted(sorted_codes, np.arange(len(keys) + 1), side="left")
    arrays = {c: _plain(frame[c])[order] for c in columns}
    return [
        (key, {c: a[bounds[i] : bounds[i + 1]] for c, a in arrays.items()})
        for i, key in enumerate(keys)
    ]


def series_chart(
    series: pd.DataFrame,
    column: str,
    title: str,
    y_title: str,
    colors: dict[str, str],
    percent: bool = False,
    limit: float | None = None,
    by: str = "region",
    x: str = "bucket_end",
    y_format: str = ":,.2f",
) -> go.Figure:
    """One line per series (a region by default) over time.

    The figure is built in one step from plain trace dicts over numpy arrays (one
    validation pass), which keeps its cost per line small when there are many
    regions (docs/scaling.md, "Pages: what grows with the regions").

    Args:
        series: rows with ``by``, ``x`` and ``column`` (e.g.
            :func:`analytics.overview.timeseries` rows).
        column: the figure to plot (``requests_per_min``, ``error_ratio``, ``p99``).
        title, y_title: chart and axis titles.
        colors: series value -> colour (:func:`palette`).
        percent: format the axis as a percentage (values are 0-1 ratios).
        limit: draw the health limit as a dashed line.
        by: the column naming the series.
        x: the time column (UTC).
        y_format: Plotly's number format of the hover value (without ``percent``).
    """
    value = ":.2%" if percent else y_format
    traces = []
    for key, rows in _split(series, by, [x, column]):
        name = plotly_text(key)
        traces.append(
            {
                "type": "scatter",
                "x": rows[x],
                "y": rows[column],
                "mode": "lines",
                "name": name,
                "line": {"color": colors.get(str(key), "#555555"), "width": 1.6},
                "connectgaps": False,
                "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC: %{y"
                + value
                + "}<extra>"
                + name
                + "</extra>",
            }
        )
    yaxis: dict[str, object] = {"title": {"text": y_title}, "rangemode": "tozero"}
    if percent:
        yaxis["tickformat"] = ".1%"
    fig = go.Figure(
        data=traces,
        layout={
            "title": {"text": title, "font": {"size": 15}},
            "height": 300,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "legend": {"orientation": "v"},
            "hovermode": "closest",
            "xaxis": {"title": {"text": "bucket end (UTC)"}},
            "yaxis": yaxis,
        },
    )
    if limit is not None and math.isfinite(limit):
        fig.add_hline(
            y=limit,
            line={"dash": "dash", "color": HEALTH_COLORS["critical"], "width": 1},
            annotation_text="limit",
            annotation_position="top left",
        )
    return fig


def threshold_for(column: str, thresholds: Thresholds) -> float | None:
    """The health limit that applies to a plotted column, if any."""
    return {"error_ratio": thresholds.max_error_ratio, "p99": thresholds.max_p99_seconds}.get(
        column
    )


def bar_chart(
    frame: pd.DataFrame,
    x: str,
    y: str,
    color_by: str,
    colors: dict[str, str],
    title: str,
    y_title: str,
    y_format: str = ",.2f",
) -> go.Figure:
    """Grouped bars: one bar per ``x`` value and ``color_by`` value.

    Built in one step from trace dicts over numpy arrays, as :func:`series_chart`.

    Args:
        frame: rows with ``x``, ``y`` and ``color_by``.
        colors: ``color_by`` value -> colour (:func:`palette`).
        y_format: Plotly's number format of the hover value.
    """
    traces = []
    for key, rows in _split(frame, color_by, [x, y]):
        name = plotly_text(key)
        traces.append(
            {
                "type": "bar",
                "x": [plotly_text(v) for v in rows[x]],
                "y": rows[y],
                "name": name,
                "marker": {"color": colors.get(str(key), "#555555")},
                "hovertemplate": "%{x}: %{y:" + y_format + "}<extra>" + name + "</extra>",
            }
        )
    return go.Figure(
        data=traces,
        layout={
            "title": {"text": plotly_text(title), "font": {"size": 15}},
            "height": 320,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "barmode": "group",
            # x holds labels: without a category axis Plotly reads "2026-11-29" as a
            # date and drops a label such as "2026-12-01 (partial)" from the axis.
            "xaxis": {"type": "category", "categoryorder": "category ascending"},
            "yaxis": {"title": {"text": y_title}},
        },
    )

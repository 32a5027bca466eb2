"""Overview: the fleet at a glance — headline figures, the map, trends per region.

The shared sidebar filters (:mod:`app.filters`: time range, regions, models, arms)
select the rows every query adds up; the body runs under :func:`app.filters.live`.
The map is coloured by each region's worst SLO state (as on the SLOs page) when SLO
specs split by region exist, else by health against the configuration's thresholds
(``health`` in ``OBSERVATORY_CONFIG``), which also draw the limit lines on the trends.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from analytics import slo as slomath
from analytics.overview import (
    Headline,
    Thresholds,
    choose_bucket_seconds,
    compact_number,
    format_number,
    headline,
    region_summary,
    timeseries,
)
from app import data, slo_data
from app.charts import fleet_map, series_chart, threshold_for
from app.filters import Filters, live, require_selection, shared_filters
from app.region_catalogue import read_catalogue, region_rows
from app.ui import map_config, md, metric_tiles, region_colors, run_query
from app.work_sums import overview_by_region, overview_series_rows


def _pct(v: float, digits: int = 2) -> str:
    return "—" if not math.isfinite(v) else f"{100 * v:.{digits}f} %"


def _usd(v: float) -> str:
    if not math.isfinite(v):
        return "—"
    return f"${v:,.0f}" if abs(v) >= 1000 else f"${v:,.2f}"


def _secs(v: float) -> str:
    return "—" if not math.isfinite(v) else f"{v:.2f} s"


#: Map colour (a health level of app.charts.fleet_map) of each SLO region state.
SLO_HEALTH = {
    slomath.PAGE: "critical",
    slomath.EXHAUSTED: "critical",
    slomath.TICKET: "warning",
    slomath.OK: "ok",
    slomath.NO_DATA: "no data",
}
SLO_STATE_LABELS = {
    slomath.PAGE: "page",
    slomath.EXHAUSTED: "budget exhausted",
    slomath.TICKET: "ticket",
    slomath.OK: "ok",
    slomath.NO_DATA: "no data",
}


def _slo_region_states(f: Filters) -> tuple[pd.DataFrame | None, str]:
    """Each selected region's worst SLO state and a note; None (and why) when no SLO applies.

    Evaluated at :func:`app.slo_data.evaluation_time` of the range (presets: now); only
    the rows of the selected models and arms count (SLOs not split by them count whole).
    """
    try:
        slos = slo_data.definitions()
    except slo_data.SpecError as exc:
        return None, f"The SLO specs have {len(exc.messages)} mistake(s) (see the SLOs page)."
    if not slos:
        return None, "No SLO specs are configured (`OBSERVATORY_SLO_SPECS`)."
    at = slo_data.evaluation_time(f.range_label, f.end)
    try:
        table = slo_data.status(slos, at)
        lag = slo_data.status_source(slos, at)
    except data.StoreError as exc:
        return None, f"SLO status could not be computed: {exc}."
    states = slo_data.region_states(slo_data.selected_rows(table, f), slos)
    if states.empty:
        return None, "No SLO is split by region."
    at = pd.to_datetime(table["at"]).max()
    when = f"at {at:%Y-%m-%d %H:%M} UTC" if pd.notna(at) else "no data"
    counted = states["slos"].max()
    return states, f"{counted} SLO(s) per region, {when}" + (f". {lag}" if lag else "")


def _headline(head: Headline) -> None:
    """The eight headline figures of the selection, in two rows of four."""
    figures = [
        (
            "Requests",
            format_number(head.requests),
            "Finished requests in the window, all outcomes.",
        ),
        (
            "Error ratio",
            _pct(head.error_ratio),
            "Errors / requests over the whole selection (not a mean of ratios).",
        ),
        (
            "GPU utilisation",
            _pct(head.gpu_utilization, 1),
            "Time-weighted mean over all GPUs of the selection.",
        ),
        (
            "Cost",
            _usd(head.cost_usd),
            "Serving nodes' cost: their USD-per-hour gauge integrated over the window.",
        ),
        ("p50 latency", _secs(head.p50), "End-to-end request latency, median."),
        ("p95 latency", _secs(head.p95), "End-to-end request latency."),
        (
            "p99 latency",
            _secs(head.p99),
            "From summed histogram buckets, interpolated like Prometheus histogram_quantile.",
        ),
        (
            "Energy (kWh)",
            format_number(head.energy_kwh, 1),
            f"GPU energy. Tokens processed: {format_number(head.tokens)} "
            f"({compact_number(head.tokens)}).",
        ),
    ]
    metric_tiles(figures)


def _map(summary: pd.DataFrame, f: Filters, thresholds: Thresholds) -> pd.DataFrame:
    """Draw the legend, the map and its caption; returns ``summary`` with the SLO columns."""
    st.subheader("Regions")
    slo_states, slo_note = _slo_region_states(f)
    if slo_states is not None:
        by_region = slo_states.set_index("region")
        state = summary["region"].map(by_region["state"]).fillna(slomath.NO_DATA)
        summary = summary.assign(
            health=state.map(SLO_HEALTH),
            slo_state=state.map(SLO_STATE_LABELS),
            slo_worst=summary["region"].map(by_region["worst"]).fillna(""),
            slo_count=summary["region"].map(by_region["slos"]).fillna(0),
        )
        st.markdown(
            ":red-badge[● page or budget exhausted] :orange-badge[● ticket] :green-badge[● ok] "
            ":gray-badge[● no data]"
        )
        st.caption(
            f"Colour: the worst state of the SLOs split by region ({slo_note}), as on the "
            "SLOs page: page or ticket when a tier of that severity fires in any group of "
            "the region (of the selected models and arms). Evaluated at the end of the time "
            "range: now for a preset, the last chosen day's end for custom dates. Marker "
            "size: requests in the window."
        )
        quiet = summary["slo_state"].isin([SLO_STATE_LABELS[slomath.OK], "no data"])
        shown = summary.assign(slo_worst=summary["slo_worst"].where(~quiet, ""))
    else:
        st.markdown(
            ":green-badge[● ok] :orange-badge[● warning] :red-badge[● critical] "
            ":gray-badge[● no data]"
        )
        st.caption(
            f"{md(slo_note)} Health in the window instead: critical above "
            f"{100 * thresholds.max_error_ratio:g} % errors or "
            f"p99 above {thresholds.max_p99_seconds:g} s, warning above "
            f"{100 * thresholds.warning_fraction:g} % of either limit. Marker size: requests."
        )
        shown = summary
    st.plotly_chart(fleet_map(shown), key="fleet_map", config=map_config())
    unmapped = summary[summary["latitude"].isna() | summary["longitude"].isna()]["region"]
    if len(unmapped):
        st.caption(
            "Not on the map (no coordinates in the region catalogue): "
            + ", ".join(md(r) for r in unmapped)
        )
    return summary


def _region_table(summary: pd.DataFrame) -> None:
    table = pd.DataFrame(
        {
            "Region": summary["region"],
            "Name": summary["display_name"],
            "Health": summary["slo_state"] if "slo_state" in summary else summary["health"],
            **({"SLOs in that state": summary["slo_worst"]} if "slo_worst" in summary else {}),
            "Requests": summary["requests"],
            "Error ratio (%)": 100 * summary["error_ratio"],
            "p50 (s)": summary["p50"],
            "p95 (s)": summary["p95"],
            "p99 (s)": summary["p99"],
            "GPU util. (%)": 100 * summary["gpu_utilization"],
            "Energy (kWh)": summary["energy_kwh"],
            "Cost (USD)": summary["cost_usd"],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        key="region_table",
        column_config={
            "Requests": st.column_config.NumberColumn(format="localized"),
            "Error ratio (%)": st.column_config.NumberColumn(format="%.3f"),
            "p50 (s)": st.column_config.NumberColumn(format="%.2f"),
            "p95 (s)": st.column_config.NumberColumn(format="%.2f"),
            "p99 (s)": st.column_config.NumberColumn(format="%.2f"),
            "GPU util. (%)": st.column_config.NumberColumn(format="%.1f"),
            "Energy (kWh)": st.column_config.NumberColumn(format="%.1f"),
            "Cost (USD)": st.column_config.NumberColumn(format="dollar"),
        },
    )


def _trends(
    f: Filters, thresholds: Thresholds, counters: pd.DataFrame, latency: pd.DataFrame
) -> None:
    """The trend charts from the per-bucket rows (``overview_counters_by_bucket``,
    ``overview_series_latency``) that :func:`render` also sums per region."""
    bucket_s = choose_bucket_seconds(f.span)
    series = timeseries(overview_series_rows(counters), latency, f.start, f.end, bucket_s)
    st.subheader("Trends per region")
    width = f"{bucket_s // 3600}-hour" if bucket_s % 3600 == 0 else f"{bucket_s // 60}-minute"
    st.caption(
        f"{width} buckets (UTC, labelled by their end). Dashed lines: the health limits "
        "of the configuration."
    )
    colors = region_colors(f.all_regions)
    for column, title, y_title, percent in [
        ("requests_per_min", "Requests per minute", "requests / min", False),
        ("error_ratio", "Error ratio", "errors / requests", True),
        ("p99", "p99 latency", "seconds", False),
    ]:
        st.plotly_chart(
            series_chart(
                series,
                column,
                title,
                y_title,
                colors,
                percent=percent,
                limit=threshold_for(column, thresholds),
            ),
            key=f"series_{column}",
        )


def _params(f: Filters) -> dict[str, Any]:
    """The overview queries' parameters: :meth:`Filters.arm_params`."""
    return f.arm_params()


def render(f: Filters) -> None:
    """The page's body (a fragment: reruns on the live-refresh interval)."""
    thresholds, config_problem = data.thresholds()
    if config_problem:
        st.warning(md(config_problem))
    st.caption(md(f.caption()) + f" · store {md(data.store_path())}")
    params = _params(f)
    # One read of the window's counter rows and one of its latency buckets, per time
    # bucket: summed per region here for the headline, map and table, and drawn as the
    # trends (each read reads the window's edges of every region once, not twice).
    series_params = {**params, "bucket_s": choose_bucket_seconds(f.span)}
    by_bucket = run_query("overview_counters_by_bucket", **series_params)
    latency_by_bucket = run_query("overview_series_latency", **series_params)
    counters, latency = overview_by_region(by_bucket, latency_by_bucket)
    gauges = run_query("overview_gauges_by_region", **params)
    head = headline(counters, latency, gauges)
    # overview_regions' rows without its scan of every request row: the filters'
    # catalogue already lists the regions with request rows (app/region_catalogue.py)
    try:
        catalogue = region_rows(read_catalogue(data.store_path()), f.all_regions)
    except data.StoreError as exc:
        st.error(f"Could not read the store: {md(exc)}. Check the store folder, then reload.")
        st.stop()
        raise  # unreachable: st.stop() ends the run
    summary = region_summary(
        catalogue[catalogue["region"].isin(f.regions)],
        counters,
        latency,
        gauges,
        thresholds,
        regions=f.regions,
    )
    _headline(head)
    if head.requests <= 0:
        st.info(
            "No requests in this window for the selected regions, models and arms. "
            "Try a longer time range or other filters."
        )
    summary = _map(summary, f, thresholds)
    _region_table(summary)
    if head.requests > 0:
        _trends(f, thresholds, by_bucket, latency_by_bucket)


st.title("Overview")
filters = shared_filters()
require_selection(filters)
live(render, filters)

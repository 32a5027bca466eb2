"""Overview: the fleet at a glance — headline figures, the map, trends per region."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analytics import slo as slomath
from analytics.overview import (
    choose_bucket_seconds,
    compact_number,
    format_number,
    headline,
    region_summary,
    timeseries,
)
from app import data, slo_data
from app.charts import fleet_map, series_chart, threshold_for
from app.filters import sidebar_filters
from app.ui import map_config, md, region_colors, require_store


def _run(name: str, **params: object) -> pd.DataFrame:
    try:
        return data.query(name, **params)
    except data.StoreError as exc:
        st.error(f"Could not read the store (query `{name}`): {md(exc)}")
        st.stop()
        raise  # unreachable: st.stop() ends the run


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


def _slo_region_states() -> tuple[pd.DataFrame | None, str]:
    """Each region's worst SLO state now and a note; None (and why) when no SLO applies."""
    try:
        slos = slo_data.definitions()
    except slo_data.SpecError as exc:
        return None, f"The SLO specs have {len(exc.messages)} mistake(s) (see the SLOs page)."
    if not slos:
        return None, "No SLO specs are configured (`OBSERVATORY_SLO_SPECS`)."
    try:
        table = slo_data.status(slos)
    except data.StoreError as exc:
        return None, f"SLO status could not be computed: {exc}."
    states = slo_data.region_states(table, slos)
    if states.empty:
        return None, "No SLO is split by region."
    at = pd.to_datetime(table["at"]).max()
    when = f"at {at:%Y-%m-%d %H:%M} UTC" if pd.notna(at) else "no data"
    counted = states["slos"].max()
    return states, f"{counted} SLO(s) per region, {when}"


st.title("Overview")
info = require_store()
thresholds, config_problem = data.thresholds()
if config_problem:
    st.warning(md(config_problem))

bounds = _run("overview_time_bounds")
latest = bounds["last_ts"].iloc[0] if len(bounds) else None
if latest is None or pd.isna(latest):
    st.info(
        f"The store at {md(info.path)} holds no request data yet (no `requests` signal). "
        "Check the region presets, run `observatory collect --config ...`, then reload."
    )
    st.stop()
latest = pd.Timestamp(latest).to_pydatetime()
first_ts = bounds["first_ts"].iloc[0]
first = None if pd.isna(first_ts) else pd.Timestamp(first_ts).to_pydatetime()
catalogue = _run("overview_regions")
models = _run("overview_models")["model"].tolist()
filters = sidebar_filters(catalogue, models, latest, first)

st.caption(
    f"{filters.range_label}: {filters.start:%Y-%m-%d %H:%M} → {filters.end:%Y-%m-%d %H:%M} UTC · "
    f"{len(filters.regions)} of {len(filters.all_regions)} regions · store {md(info.path)}"
)
if filters.selects_nothing:
    st.warning(
        "The filters select nothing: choose at least one region and one model in the sidebar."
    )
    st.stop()

window = {
    "start": filters.start,
    "end": filters.end,
    "regions": filters.regions,
    "models": filters.models,
}
counters = _run("overview_counters_by_region", **window)
latency = _run("overview_latency_by_region", **window)
gauges = _run("overview_gauges_by_region", **window)
head = headline(counters, latency, gauges)
selected_catalogue = catalogue[catalogue["region"].isin(filters.regions)]
summary = region_summary(
    selected_catalogue, counters, latency, gauges, thresholds, regions=filters.regions
)

# ---------------------------------------------------------------- headline figures
row1 = st.columns(4)
row1[0].metric(
    "Requests",
    format_number(head.requests),
    border=True,
    help="Finished requests in the window, all outcomes.",
)
row1[1].metric(
    "Error ratio",
    _pct(head.error_ratio),
    border=True,
    help="Errors / requests over the whole selection (not a mean of ratios).",
)
row1[2].metric(
    "GPU utilisation",
    _pct(head.gpu_utilization, 1),
    border=True,
    help="Time-weighted mean over all GPUs of the selection.",
)
row1[3].metric(
    "Cost",
    _usd(head.cost_usd),
    border=True,
    help="Serving nodes' cost: their USD-per-hour gauge integrated over the window.",
)
row2 = st.columns(4)
row2[0].metric(
    "p50 latency", _secs(head.p50), border=True, help="End-to-end request latency, median."
)
row2[1].metric("p95 latency", _secs(head.p95), border=True, help="End-to-end request latency.")
row2[2].metric(
    "p99 latency",
    _secs(head.p99),
    border=True,
    help="From summed histogram buckets, interpolated like Prometheus histogram_quantile.",
)
row2[3].metric(
    "Energy (kWh)",
    format_number(head.energy_kwh, 1),
    border=True,
    help=f"GPU energy. Tokens processed: {format_number(head.tokens)} "
    f"({compact_number(head.tokens)}).",
)

if head.requests <= 0:
    st.info(
        "No requests in this window for the selected regions and models. "
        "Try a longer time range or other filters."
    )

# ---------------------------------------------------------------- map
st.subheader("Regions")
slo_states, slo_note = _slo_region_states()
if slo_states is not None:
    state = summary["region"].map(slo_states.set_index("region")["state"]).fillna(slomath.NO_DATA)
    worst = summary["region"].map(slo_states.set_index("region")["worst"]).fillna("")
    summary = summary.assign(
        health=state.map(SLO_HEALTH), slo_state=state.map(SLO_STATE_LABELS), slo_worst=worst
    )
    st.markdown(
        ":red-badge[● page or budget exhausted] :orange-badge[● ticket] :green-badge[● ok] "
        ":gray-badge[● no data]"
    )
    st.caption(
        f"Colour: the worst state now of the SLOs split by region ({slo_note}), as on the "
        "SLOs page: page or ticket when a tier of that severity fires in any group of the "
        "region. Marker size: requests in the window."
    )
else:
    st.markdown(
        ":green-badge[● ok] :orange-badge[● warning] :red-badge[● critical] :gray-badge[● no data]"
    )
    st.caption(
        f"{md(slo_note)} Health in the window instead: critical above "
        f"{100 * thresholds.max_error_ratio:g} % errors or "
        f"p99 above {thresholds.max_p99_seconds:g} s, warning above "
        f"{100 * thresholds.warning_fraction:g} % of either limit. Marker size: requests."
    )
st.plotly_chart(fleet_map(summary), key="fleet_map", config=map_config())
unmapped = summary[summary["latitude"].isna() | summary["longitude"].isna()]["region"].tolist()
if unmapped:
    st.caption(
        "Not on the map (no coordinates in the region catalogue): "
        + ", ".join(md(r) for r in unmapped)
    )

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

# ---------------------------------------------------------------- trends
if head.requests > 0:
    bucket_s = choose_bucket_seconds(filters.span)
    series_params = {**window, "bucket_s": bucket_s}
    series = timeseries(
        _run("overview_series_counters", **series_params),
        _run("overview_series_latency", **series_params),
        filters.start,
        filters.end,
        bucket_s,
    )
    st.subheader("Trends per region")
    width = f"{bucket_s // 3600}-hour" if bucket_s % 3600 == 0 else f"{bucket_s // 60}-minute"
    st.caption(f"{width} buckets (UTC, labelled by their end).")
    colors = region_colors(filters.all_regions)
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

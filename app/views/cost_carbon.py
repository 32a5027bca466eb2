"""Cost & Carbon: USD per region per day, cost per unit of work, gCO2e per region,
and what moving load to a cleaner region would save.

Cost is the serving cost gauge (OpenCost's node cost, else the price table's
``gpu_cost``) integrated over time; carbon is GPU energy x PUE x grid intensity
with the factors shown in the table (:mod:`analytics.cost`, :mod:`analytics.carbon`;
overrides from the experiments file's ``carbon`` section when
``OBSERVATORY_EXPERIMENTS`` names one).
"""

from __future__ import annotations

import math
import os

import pandas as pd
import streamlit as st

from analytics.carbon import CarbonModel
from analytics.cost import DEFAULT_CAPACITY_CEILING, carbon_by_region, shift_savings, unit_costs
from analytics.energy import gpu_table
from app.charts import bar_chart, palette
from app.filters import URL_STATE, Filters, live, require_selection, shared_filters, url_choice
from app.ui import md, metric_tiles, run_query
from app.work_sums import PARTIAL, day_labels, per_region_day, per_region_model
from observatory.config import ConfigError
from observatory.experiments_config import ENV_FILE, load_experiments


def _carbon_model() -> CarbonModel:
    path = os.environ.get(ENV_FILE, "").strip()
    if not path:
        return CarbonModel()
    try:
        return load_experiments(path).carbon
    except ConfigError as exc:
        st.warning(f"Using the published carbon factors: {md(exc.messages[0])}")
        return CarbonModel()


def _usd(v: float) -> str:
    if not math.isfinite(v):
        return "—"
    return f"${v:,.0f}" if abs(v) >= 1000 else f"${v:,.2f}"


def _grams(v: float) -> str:
    if not math.isfinite(v):
        return "—"
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.2f} t"
    return f"{v / 1e3:,.1f} kg" if abs(v) >= 1e3 else f"{v:,.0f} g"


def render(f: Filters) -> None:
    """The page's body (a fragment: reruns on the live-refresh interval)."""
    st.caption(md(f.caption()))
    params = f.arm_params()
    work = run_query("work_by_day", spinner="Reading cost and work…", **params)
    counters, by_day = per_region_model(work), per_region_day(work)
    gauges = run_query("gpu_by_group", floor_pct=0, **params)
    regions = gpu_table(gauges, counters, ["region"])
    if regions.empty or not (
        regions["cost_usd"].notna().any() or regions["energy_j"].notna().any()
    ):
        st.info(
            "No cost or energy data in this window for the selected regions, models and "
            "arms. Try a longer time range or other filters; if the store has none, add "
            "the `opencost` preset or a price table (`regions[].prices`) for cost, and the "
            "`dcgm` preset for energy."
        )
        return
    regions["cost_usd"] = regions["cost_usd"].where(
        regions["cost_usd"].notna(), regions["gpu_cost_usd"]
    )
    costs = unit_costs(regions)
    total = unit_costs(
        pd.DataFrame(
            [
                {
                    "cost_usd": costs["cost_usd"].sum(min_count=1),
                    "requests": costs["requests"].sum(min_count=1),
                    "tokens": costs["tokens"].sum(min_count=1),
                }
            ]
        )
    ).iloc[0]
    model = _carbon_model()
    carbon = carbon_by_region(regions, model)
    grams = float(carbon["gco2e"].sum(min_count=1))
    metric_tiles(
        [
            ("Cost", _usd(total["cost_usd"]), "Serving cost in USD."),
            (
                "Cost per 1k requests",
                _usd(total["usd_per_1k_requests"]),
                "USD / requests x 1000.",
            ),
            (
                "Cost per 1M tokens",
                _usd(total["usd_per_1m_tokens"]),
                "USD / (prompt + generated tokens) x 1e6.",
            ),
            (
                "Operational carbon",
                _grams(grams),
                "GPU kWh x PUE x grid intensity (gCO2e/kWh), per region.",
            ),
        ]
    )

    st.subheader("Cost per region per day")
    daily = by_day.dropna(subset=["cost_usd"])
    if daily.empty:
        st.info(
            "No cost signal for this selection: add the `opencost` preset or a price "
            "table (`regions[].prices`) to the regions, then collect again."
        )
    else:
        daily = daily.assign(day=day_labels(daily["day"], f.start, f.end))
        st.plotly_chart(
            bar_chart(
                daily,
                "day",
                "cost_usd",
                "region",
                palette(f.all_regions, "region"),
                "USD per region per UTC day",
                "USD",
            ),
            key="cost_daily_chart",
        )
        if daily["day"].str.endswith(PARTIAL).any():
            st.caption(
                "Days marked *partial* are cut by the time range (it starts after 00:00 "
                "UTC or ends before the day's end): their bars hold only that part of the day."
            )
    st.dataframe(
        pd.DataFrame(
            {
                "Region": costs["region"],
                "Cost (USD)": costs["cost_usd"],
                "Requests": costs["requests"],
                "Tokens": costs["tokens"],
                "USD per 1k requests": costs["usd_per_1k_requests"],
                "USD per 1M tokens": costs["usd_per_1m_tokens"],
            }
        ),
        hide_index=True,
        key="cost_table",
        column_config={
            "Cost (USD)": st.column_config.NumberColumn(format="dollar"),
            "Requests": st.column_config.NumberColumn(format="localized"),
            "Tokens": st.column_config.NumberColumn(format="localized"),
            "USD per 1k requests": st.column_config.NumberColumn(format="%.4f"),
            "USD per 1M tokens": st.column_config.NumberColumn(format="%.4f"),
        },
    )

    st.subheader("Carbon per region")
    st.dataframe(
        pd.DataFrame(
            {
                "Region": carbon["region"],
                "GPU energy (kWh)": carbon["energy_kwh"],
                "PUE": carbon["pue"],
                "Grid intensity (gCO2e/kWh)": carbon["grid_g_per_kwh"],
                "Intensity source": carbon["source"],
                "gCO2e": carbon["gco2e"],
                "gCO2e per request": carbon["g_per_request"],
            }
        ),
        hide_index=True,
        key="carbon_table",
        column_config={
            "GPU energy (kWh)": st.column_config.NumberColumn(format="%.2f"),
            "PUE": st.column_config.NumberColumn(format="%.3f"),
            "Grid intensity (gCO2e/kWh)": st.column_config.NumberColumn(format="%.1f"),
            "gCO2e": st.column_config.NumberColumn(format="localized"),
            "gCO2e per request": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption(
        "Operational carbon = GPU energy x PUE x the grid's yearly average intensity "
        "(Cloud Carbon Footprint's tables; not hourly marginal figures). Override a "
        f"region's factors in the experiments file's `carbon` section (`{ENV_FILE}`)."
    )
    unknown = carbon[carbon["grid_g_per_kwh"].isna()]["region"].tolist()
    if unknown:
        st.warning(
            "No grid intensity for "
            + ", ".join(md(r) for r in unknown)
            + ": add them under `carbon.grid_g_per_kwh` in the experiments file."
        )

    st.subheader("Moving load to a cleaner region")
    movable = carbon[carbon["g_per_request"].notna()]["region"].tolist()
    if len(movable) < 2:
        st.info(
            "Select at least two regions with requests and a known grid intensity to "
            "compare moving load between them."
        )
        return
    dirtiest = carbon.loc[carbon["g_per_request"].idxmax(), "region"]
    ordered = [dirtiest, *[r for r in movable if r != dirtiest]]
    left, right = st.columns(2)
    with left:
        source = url_choice("Move requests from", ordered, key="shift_from", sidebar=False)
    share = right.slider(
        "Share of its requests to move (%)",
        0,
        100,
        20,
        step=5,
        key="shift_pct",
        **URL_STATE,
    )
    util = dict(zip(regions["region"], regions["gpu_utilization"], strict=True))
    shift = shift_savings(carbon, util, source, share / 100.0, DEFAULT_CAPACITY_CEILING)
    if shift.destination is None:
        st.info(f"Nothing to move: {md(shift.reason)}.")
        return
    capped = shift.moved_requests < shift.wanted_requests
    st.metric(
        f"Carbon saved by moving {share} % of {md(source)} to {md(shift.destination)}",
        _grams(shift.saved_g),
        delta=f"-{100 * shift.saved_share:.1f} % of the selection's carbon"
        if math.isfinite(shift.saved_share)
        else None,
        delta_color="inverse",
        border=True,
    )
    st.caption(
        md(
            f"{shift.moved_requests:,.0f} of {shift.wanted_requests:,.0f} requests moved"
            + (f" (capped by {shift.destination}'s capacity)" if capped else "")
            + f". Destination: the region with the lowest gCO2e per request that has headroom."
            f" Assumptions: a moved request uses the DESTINATION's measured energy per request"
            f" (its GPU kWh / requests in this window) at its PUE and grid intensity; the"
            f" destination takes requests until its mean GPU utilisation reaches"
            f" {100 * DEFAULT_CAPACITY_CEILING:g} %, utilisation growing in proportion to"
            f" requests. Latency to users and data residency are not considered."
        )
    )


st.title("Cost & Carbon")
filters = shared_filters()
require_selection(filters)
live(render, filters, heavy=False)

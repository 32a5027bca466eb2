"""GPUs & Energy: utilisation, power and energy per region and model, efficiency, idle waste.

Sums come from ``sql/queries/gpu_*.sql`` and ``work_by_day.sql``; every ratio is formed
from them in :mod:`analytics.energy` (units and formulas there).  Idle-GPU waste counts GPU-steps
below the sidebar's utilisation floor (``?idle_floor=10``, percent).
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analytics.energy import DEFAULT_IDLE_FLOOR, gpu_table, power_series
from analytics.overview import choose_bucket_seconds, format_number
from app.charts import bar_chart, palette, series_chart
from app.filters import (
    URL_STATE,
    Filters,
    live,
    model_label,
    require_selection,
    shared_filters,
    url_choice,
)
from app.ui import md, metric_tiles, run_query
from app.work_sums import per_region_model

SPLITS = {"region": "Region", "model": "Model"}


def _fmt(v: float, unit: str = "", digits: int = 1) -> str:
    if not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f}{unit}"


def render(f: Filters, floor: float) -> None:
    """The page's body (a fragment: reruns on the live-refresh interval)."""
    st.caption(md(f.caption()))
    params = f.arm_params()
    gauges = run_query(
        "gpu_by_group", spinner="Reading GPU gauges…", floor_pct=round(100 * floor), **params
    )
    counters = per_region_model(run_query("work_by_day", **params))
    if gauges.empty:
        st.info(
            "No GPU utilisation or power in this window for the selected regions, models "
            "and arms. Try a longer time range or other filters; if the store has none, "
            "add the `dcgm` preset to the regions (dcgm-exporter's DCGM_FI_DEV_GPU_UTIL, "
            "DCGM_FI_DEV_POWER_USAGE and DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION)."
        )
        return
    fleet = gpu_table(gauges, counters, []).iloc[0]
    metric_tiles(
        [
            (
                "GPU utilisation",
                _fmt(100 * fleet["gpu_utilization"], " %"),
                "Time-weighted mean over all GPU-steps of the selection.",
            ),
            (
                "Mean power per GPU",
                _fmt(fleet["mean_power_w"], " W", 0),
                "Board power (W) averaged over GPU-steps.",
            ),
            (
                "GPU energy",
                _fmt(fleet["energy_kwh"], " kWh"),
                "The GPU energy counter (else the power integral), kWh = J / 3.6e6.",
            ),
            (
                "Tokens per joule",
                _fmt(fleet["tokens_per_joule"], "", 3),
                "(prompt + generated tokens) / GPU joules.",
            ),
            (
                "Energy per 1k requests",
                _fmt(fleet["kwh_per_1k_requests"], " kWh", 3),
                "GPU kWh / requests x 1000.",
            ),
            (
                "Idle GPU-hours",
                _fmt(fleet["idle_gpu_hours"], "", 1),
                f"GPU-steps below {100 * floor:g} % utilisation; "
                f"{_fmt(100 * fleet['idle_share'], ' %')} of {_fmt(fleet['gpu_hours'])} "
                "GPU-hours.",
            ),
            (
                "Idle energy",
                _fmt(fleet["idle_kwh"], " kWh"),
                "Power integral over the idle GPU-steps.",
            ),
            (
                "Idle cost",
                "—" if not math.isfinite(fleet["idle_usd"]) else f"${fleet['idle_usd']:,.2f}",
                "Idle GPU-hours x the group's cost per GPU-hour (serving cost / GPU-hours), "
                "summed over regions and models.",
            ),
        ]
    )
    if not math.isfinite(fleet["idle_usd"]):
        st.caption(
            "No cost signal for this selection: add the `opencost` preset or a price "
            "table (`regions[].prices`) to see idle cost in USD."
        )

    split = url_choice(
        "Lines per", list(SPLITS), key="gpu_split", sidebar=False, format_func=SPLITS.get
    )
    bucket_s = choose_bucket_seconds(f.span)
    series = power_series(
        run_query(
            "gpu_series",
            spinner="Reading GPU series…",
            split=split,
            bucket_s=bucket_s,
            **params,
        )
    )
    if split == "model":
        series["series"] = series["series"].map(model_label)
        colors = palette([model_label(m) for m in f.all_models], "model")
    else:
        colors = palette(f.all_regions, "region")
    left, right = st.columns(2)
    left.plotly_chart(
        series_chart(
            series, "gpu_utilization", "GPU utilisation", "0-1", colors, percent=True, by="series"
        ),
        key="gpu_util_chart",
    )
    right.plotly_chart(
        series_chart(
            series, "power_w", "Total GPU power", "watts", colors, by="series", y_format=":,.0f"
        ),
        key="gpu_power_chart",
    )

    st.subheader("Per region and model")
    table = gpu_table(gauges, counters, ["region", "model"])
    table["model"] = table["model"].map(model_label)
    st.plotly_chart(
        bar_chart(
            table,
            "region",
            "energy_kwh",
            "model",
            palette([model_label(m) for m in f.all_models], "model"),
            "GPU energy per region and model",
            "kWh",
        ),
        key="gpu_energy_chart",
    )
    shown = pd.DataFrame(
        {
            "Region": table["region"],
            "Model": table["model"],
            "GPU util. (%)": 100 * table["gpu_utilization"],
            "Power per GPU (W)": table["mean_power_w"],
            "GPU-hours": table["gpu_hours"],
            "Energy (kWh)": table["energy_kwh"],
            "Tokens per J": table["tokens_per_joule"],
            "kWh per 1k requests": table["kwh_per_1k_requests"],
            "Idle GPU-hours": table["idle_gpu_hours"],
            "Idle (%)": 100 * table["idle_share"],
            "Idle kWh": table["idle_kwh"],
            "Idle USD": table["idle_usd"],
        }
    )
    st.dataframe(
        shown,
        hide_index=True,
        key="gpu_table",
        column_config={
            "GPU util. (%)": st.column_config.NumberColumn(format="%.1f"),
            "Power per GPU (W)": st.column_config.NumberColumn(format="%.0f"),
            "GPU-hours": st.column_config.NumberColumn(format="%.1f"),
            "Energy (kWh)": st.column_config.NumberColumn(format="%.2f"),
            "Tokens per J": st.column_config.NumberColumn(format="%.3f"),
            "kWh per 1k requests": st.column_config.NumberColumn(format="%.4f"),
            "Idle GPU-hours": st.column_config.NumberColumn(format="%.1f"),
            "Idle (%)": st.column_config.NumberColumn(format="%.1f"),
            "Idle kWh": st.column_config.NumberColumn(format="%.2f"),
            "Idle USD": st.column_config.NumberColumn(format="dollar"),
        },
    )
    st.caption(
        f"Requests in the selection: {format_number(float(fleet['requests']))}. "
        "Idle cost charges an idle GPU-hour at its group's average cost per GPU-hour."
    )


st.title("GPUs & Energy")
filters = shared_filters()
require_selection(filters)
# Whole percents: the GPU-step roll-up sums utilisation per whole percent, so idle
# waste below a whole-percent floor is exact (docs/architecture.md, "Hourly roll-up").
floor_pct = st.sidebar.number_input(
    "Idle below (% utilisation)",
    min_value=0,
    max_value=100,
    value=round(100 * DEFAULT_IDLE_FLOOR),
    step=1,
    key="idle_floor",
    **URL_STATE,
    help="A GPU-step whose mean utilisation is below this counts as idle.",
)
live(lambda f: render(f, int(floor_pct) / 100), filters, heavy=False)

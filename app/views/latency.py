"""Latency: p50 / p90 / p99 over time per region or model, TTFT and inter-token latency.

Percentiles come from histogram buckets summed over each time bucket (and over the
window for the table), interpolated as Prometheus's ``histogram_quantile``
(:mod:`analytics.latency`); the time buckets are aggregated in SQL
(``sql/queries/latency_series.sql``), at most 400 points per line.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analytics.latency import (
    LATENCY_QUANTILES,
    LATENCY_SIGNALS,
    p99_matrix,
    percentile_series,
    percentile_table,
)
from analytics.overview import choose_bucket_seconds
from app.charts import palette, series_chart
from app.filters import Filters, live, model_label, require_selection, shared_filters, url_choice
from app.ui import md, run_query

SPLITS = {"region": "Region", "model": "Model"}


def _secs(v: float) -> str:
    return "—" if not math.isfinite(v) else (f"{v:.3f} s" if v < 1 else f"{v:.2f} s")


def _signal_section(f: Filters, signal: str, rows: pd.DataFrame, split: str) -> None:
    st.subheader(LATENCY_SIGNALS[signal])
    overall = percentile_table(rows, by=[])
    cols = st.columns(len(LATENCY_QUANTILES) + 1)
    for col, name in zip(cols, LATENCY_QUANTILES, strict=False):
        col.metric(
            f"{name} {signal}",
            _secs(float(overall[name].iloc[0])) if len(overall) else "—",
            border=True,
            help="Over the whole selection: buckets summed, then interpolated "
            "(Prometheus histogram_quantile).",
        )
    observed = float(overall["observations"].iloc[0]) if len(overall) else 0.0
    cols[-1].metric("Observations", f"{observed:,.0f}", border=True)
    bucket_s = choose_bucket_seconds(f.span)
    buckets = run_query(
        "latency_series",
        spinner=f"Computing {signal} percentiles over time…",
        signal=signal,
        split=split,
        bucket_s=bucket_s,
        **f.params(),
    )
    series = percentile_series(buckets, pd.Timestamp(f.start), pd.Timestamp(f.end), bucket_s)
    if split == "model":
        series["series"] = series["series"].map(model_label)
        colors = palette([model_label(m) for m in f.all_models], "model")
    else:
        colors = palette(f.all_regions, "region")
    width = f"{bucket_s // 3600}-hour" if bucket_s % 3600 == 0 else f"{bucket_s // 60}-minute"
    st.caption(f"{width} buckets (UTC, labelled by their end); one line per {split}.")
    for tab, name in zip(st.tabs(["p99", "p90", "p50"]), ["p99", "p90", "p50"], strict=True):
        with tab:
            st.plotly_chart(
                series_chart(
                    series,
                    name,
                    f"{name} {LATENCY_SIGNALS[signal].lower()}",
                    "seconds",
                    colors,
                    by="series",
                    y_format=":.3f",
                ),
                key=f"latency_{signal}_{name}",
            )


def render(f: Filters) -> None:
    """The page's body (a fragment: reruns on the live-refresh interval)."""
    st.caption(md(f.caption()))
    split = url_choice(
        "Lines per", list(SPLITS), key="latency_split", sidebar=False, format_func=SPLITS.get
    )
    rows = run_query("latency_by_group", spinner="Reading latency histograms…", **f.params())
    present = [s for s in LATENCY_SIGNALS if s in set(rows["signal"])]
    if not present:
        st.info(
            "No latency histograms in this window for the selected regions, models and arms. "
            "Try a longer time range or other filters; if the store has none at all, "
            "check that the regions use the `vllm` preset (it maps "
            "`vllm:e2e_request_latency_seconds`, TTFT and inter-token latency)."
        )
        return
    for signal in present:
        _signal_section(f, signal, rows[rows["signal"] == signal], split)
    missing = [LATENCY_SIGNALS[s] for s in LATENCY_SIGNALS if s not in present]
    if missing:
        st.caption(
            "Not in the store for this selection: "
            + ", ".join(missing)
            + " (vLLM exports them as `vllm:time_to_first_token_seconds` and "
            "`vllm:time_per_output_token_seconds`)."
        )

    st.subheader("p99 by region and model")
    main = present[0]
    table = percentile_table(rows[rows["signal"] == main], by=["region", "model"])
    grid = p99_matrix(table)
    grid.columns = [model_label(c) for c in grid.columns]
    grid.index.name = "Region"
    st.caption(f"{LATENCY_SIGNALS[main]}, p99 in seconds over the whole window; empty: no data.")
    st.dataframe(
        grid.reset_index(),
        hide_index=True,
        key="p99_table",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in grid.columns},
    )


st.title("Latency")
filters = shared_filters()
require_selection(filters)
live(render, filters, heavy=False)

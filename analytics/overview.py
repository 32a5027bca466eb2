"""The fleet overview's arithmetic: headline figures, percentiles, health, time series.

Pure functions on pandas frames (the results of the ``sql/queries/overview_*.sql``
named queries); no Streamlit and no DuckDB here, so every number the Overview page
shows can be checked by a unit test.

Rules followed throughout:

- Ratios are computed from summed events, never averaged: the error ratio of a group
  is ``sum(errors) / sum(requests)``, the GPU utilisation of a group is
  ``sum(mean * step_s) / sum(step_s)`` (time-weighted).
- Percentiles come from summed cumulative histogram buckets through
  :func:`analytics.histogram.histogram_quantile` (Prometheus semantics).  Buckets of
  several series can only be added when they share one ``le`` layout; a bound that
  one group lacks is filled from the bucket below (a running maximum), which is a
  lower bound on that bucket's count.
- A quantity with nothing to measure is ``NaN`` (shown as "no data"), never 0.

Units: latency in seconds, energy in joules (``energy_kwh`` = J / 3.6e6), cost in
USD, GPU utilisation and error ratio as 0-1 ratios, times UTC (naive).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from analytics.histogram import histogram_quantile

Health = Literal["ok", "warning", "critical", "no data"]
HEALTH_LEVELS: tuple[Health, ...] = ("ok", "warning", "critical", "no data")
#: The percentiles shown on the Overview (column name -> quantile).
QUANTILES: dict[str, float] = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
JOULES_PER_KWH = 3.6e6
#: Bucket widths (seconds) that the time series may use, finest first.
BUCKET_CHOICES_S: tuple[int, ...] = (60, 300, 3600, 6 * 3600, 86400)
#: Time-range presets of the Overview: label -> span, anchored at the latest data time.
TIME_RANGES: dict[str, timedelta] = {
    "Last 1 h": timedelta(hours=1),
    "Last 6 h": timedelta(hours=6),
    "Last 24 h": timedelta(hours=24),
    "Last 7 d": timedelta(days=7),
    "Last 14 d": timedelta(days=14),
}
COUNTER_COLUMNS = ("requests", "errors", "energy_j", "prompt_tokens", "generation_tokens")


@dataclass(frozen=True)
class Thresholds:
    """When a region is unhealthy (``health`` in the configuration file).

    Attributes:
        max_error_ratio: an error ratio above this (0-1) is critical.
        max_p99_seconds: a p99 latency above this (seconds) is critical.
        warning_fraction: above this fraction of either limit (but not above the
            limit) a region is a warning.
    """

    max_error_ratio: float = 0.01
    max_p99_seconds: float = 20.0
    warning_fraction: float = 0.8


@dataclass(frozen=True)
class Headline:
    """The Overview's headline figures for the whole selection (NaN: no data).

    Attributes:
        requests, errors: finished and failed requests in the window (counts).
        error_ratio: ``errors / requests``, 0-1.
        p50, p95, p99: request latency percentiles, seconds.
        gpu_utilization: time-weighted mean GPU utilisation, 0-1.
        energy_kwh: GPU energy, kWh.
        cost_usd: serving cost, USD.
        tokens: prompt plus generated tokens.
    """

    requests: float
    errors: float
    error_ratio: float
    p50: float
    p95: float
    p99: float
    gpu_utilization: float
    energy_kwh: float
    cost_usd: float
    tokens: float


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is 0, negative or NaN."""
    if denominator is None or not np.isfinite(denominator) or denominator <= 0:
        return math.nan
    return float(numerator) / float(denominator)


def error_ratio(
    errors: Sequence[float] | pd.Series, requests: Sequence[float] | pd.Series
) -> float:
    """The error ratio of several groups together: ``sum(errors) / sum(requests)``.

    Not the mean of the groups' ratios: a group with little traffic must not weigh as
    much as a busy one.  NaN when there were no requests.
    """
    return ratio(
        float(np.nansum(np.asarray(errors, dtype=np.float64))),
        float(np.nansum(np.asarray(requests, dtype=np.float64))),
    )


def percentiles(
    buckets: pd.DataFrame,
    by: Sequence[str] = (),
    quantiles: Mapping[str, float] = QUANTILES,
    le: str = "le",
    value: str = "value",
) -> pd.DataFrame:
    """Latency percentiles per group from summed cumulative bucket counts.

    Args:
        buckets: one or more rows per ``(*by, le)``; ``value`` is the cumulative count
            of observations ``<= le`` (rows of the same group and bound are added
            first, so per-step rows can be passed as they are).  ``le`` in seconds,
            ``inf`` for the ``+Inf`` bucket.
        by: the group columns (none: one row for everything).
        quantiles: output column -> quantile (0-1).
        le, value: the names of the bound and count columns.

    Returns:
        One row per group: the ``by`` columns, one column per quantile (in the unit
        of ``le``; NaN without observations or without a ``+Inf`` bucket) and
        ``observations`` (the ``+Inf`` count, i.e. the number of observations).
    """
    by = list(by)
    names = list(quantiles)
    if buckets.empty:
        return pd.DataFrame(
            {
                **{c: pd.Series([], dtype=object) for c in by},
                **{n: pd.Series([], dtype=np.float64) for n in [*names, "observations"]},
            }
        )
    frame = buckets[[*by, le, value]].copy()
    frame[le] = frame[le].astype(np.float64)
    frame[value] = frame[value].astype(np.float64)
    if by:
        wide = frame.groupby([*by, le])[value].sum().unstack(le)
    else:
        wide = frame.groupby(le)[value].sum().to_frame().T
    wide = wide.sort_index(axis=1)
    bounds = wide.columns.to_numpy(dtype=np.float64)
    # A bound a group lacks is NaN here; histogram_quantile fills it from below.
    counts = np.maximum.accumulate(np.nan_to_num(wide.to_numpy(dtype=np.float64), nan=0.0), axis=1)
    out = pd.DataFrame(index=wide.index)
    for name, q in quantiles.items():
        out[name] = np.asarray(histogram_quantile(q, bounds, counts), dtype=np.float64).reshape(-1)
    out["observations"] = counts[:, -1] if np.isposinf(bounds[-1]) else np.nan
    if by:
        return out.reset_index()
    return out.reset_index(drop=True)


def classify_health(
    requests: float, error_ratio_value: float, p99_seconds: float, thresholds: Thresholds
) -> Health:
    """The health of one region (or the fleet) in a window.

    - ``no data``: no requests (0 or NaN);
    - ``critical``: error ratio above ``max_error_ratio`` or p99 above
      ``max_p99_seconds`` (a value equal to its limit is within it);
    - ``warning``: either above ``warning_fraction`` of its limit;
    - ``ok``: otherwise.  A NaN p99 (no latency histogram) is judged on errors alone.
    """
    if requests is None or not np.isfinite(requests) or requests <= 0:
        return "no data"
    er = error_ratio_value if np.isfinite(error_ratio_value) else 0.0
    p99 = p99_seconds if p99_seconds is not None and np.isfinite(p99_seconds) else None
    if er > thresholds.max_error_ratio or (p99 is not None and p99 > thresholds.max_p99_seconds):
        return "critical"
    f = thresholds.warning_fraction
    if er > f * thresholds.max_error_ratio or (
        p99 is not None and p99 > f * thresholds.max_p99_seconds
    ):
        return "warning"
    return "ok"


def _sum(frame: pd.DataFrame, column: str) -> float:
    if frame.empty or column not in frame:
        return math.nan
    values = frame[column].astype(np.float64)
    return float(values.sum()) if values.notna().any() else math.nan


def headline(
    counters: pd.DataFrame, latency_buckets: pd.DataFrame, gauges: pd.DataFrame
) -> Headline:
    """The headline figures of a selection.

    Args:
        counters: per region: ``requests``, ``errors``, ``energy_j``,
            ``prompt_tokens``, ``generation_tokens`` (sums over the window).
        latency_buckets: per region and ``le``: ``value``, the summed cumulative count.
        gauges: per region: ``gpu_util_weighted`` (sum of mean * step_s, ratio
            seconds), ``gpu_util_seconds`` (sum of step_s), ``cost_usd``.
    """
    requests = _sum(counters, "requests")
    errors = _sum(counters, "errors")
    pct = percentiles(latency_buckets)
    p = {n: float(pct[n].iloc[0]) if len(pct) else math.nan for n in QUANTILES}
    tokens = _sum(counters, "prompt_tokens")
    gen = _sum(counters, "generation_tokens")
    energy = _sum(counters, "energy_j")
    return Headline(
        requests=0.0 if math.isnan(requests) else requests,
        errors=0.0 if math.isnan(errors) else errors,
        error_ratio=ratio(errors if not math.isnan(errors) else 0.0, requests),
        p50=p["p50"],
        p95=p["p95"],
        p99=p["p99"],
        gpu_utilization=ratio(_sum(gauges, "gpu_util_weighted"), _sum(gauges, "gpu_util_seconds")),
        energy_kwh=energy / JOULES_PER_KWH,
        cost_usd=_sum(gauges, "cost_usd"),
        tokens=float(np.nansum([tokens, gen]))
        if not (math.isnan(tokens) and math.isnan(gen))
        else math.nan,
    )


def region_summary(
    catalogue: pd.DataFrame,
    counters: pd.DataFrame,
    latency_buckets: pd.DataFrame,
    gauges: pd.DataFrame,
    thresholds: Thresholds,
    regions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per region: the figures of the headline, per region, and its health.

    Args:
        catalogue: ``region``, ``display_name``, ``latitude``, ``longitude`` (the
            ``regions`` view; a region with data but no catalogue row gets NaN
            coordinates and its name as display name).
        counters, latency_buckets, gauges: as for :func:`headline`, with ``region``.
        thresholds: health limits.
        regions: the regions to list (default: every region of the catalogue and of
            the data); a selected region without rows is listed with health
            ``no data``.

    Returns:
        Columns ``region``, ``display_name``, ``latitude``, ``longitude``,
        ``requests``, ``errors``, ``error_ratio``, ``p50``, ``p95``, ``p99``,
        ``gpu_utilization``, ``energy_kwh``, ``cost_usd``, ``tokens``, ``health``;
        sorted by region.  Counts of a region without rows are 0, ratios and
        percentiles NaN.
    """
    names: list[str] = (
        list(regions)
        if regions is not None
        else sorted(
            set(catalogue.get("region", pd.Series(dtype=object)).dropna())
            | set(counters.get("region", pd.Series(dtype=object)).dropna())
        )
    )
    out = pd.DataFrame({"region": sorted(set(names))})
    cat = (
        catalogue[["region", "display_name", "latitude", "longitude"]].drop_duplicates("region")
        if not catalogue.empty
        else pd.DataFrame(columns=["region", "display_name", "latitude", "longitude"])
    )
    out = out.merge(cat, on="region", how="left")
    out["display_name"] = out["display_name"].where(out["display_name"].notna(), out["region"])
    out["latitude"] = out["latitude"].astype(np.float64)
    out["longitude"] = out["longitude"].astype(np.float64)
    cnt = (
        counters.groupby("region")[[c for c in COUNTER_COLUMNS if c in counters]].sum(min_count=1)
        if not counters.empty
        else pd.DataFrame(columns=list(COUNTER_COLUMNS))
    )
    out = out.merge(cnt, left_on="region", right_index=True, how="left")
    for col in COUNTER_COLUMNS:
        if col not in out:
            out[col] = np.nan
        out[col] = out[col].astype(np.float64)
    out["requests"] = out["requests"].fillna(0.0)
    out["errors"] = out["errors"].fillna(0.0)
    out["error_ratio"] = [ratio(e, r) for e, r in zip(out["errors"], out["requests"], strict=True)]
    pct = percentiles(latency_buckets, by=["region"]) if not latency_buckets.empty else None
    if pct is not None:
        out = out.merge(pct.drop(columns="observations"), on="region", how="left")
    else:
        for name in QUANTILES:
            out[name] = np.nan
    if not gauges.empty:
        g = gauges.groupby("region")[["gpu_util_weighted", "gpu_util_seconds", "cost_usd"]].sum(
            min_count=1
        )
        out = out.merge(g, left_on="region", right_index=True, how="left")
    else:
        out[["gpu_util_weighted", "gpu_util_seconds", "cost_usd"]] = np.nan
    out["gpu_utilization"] = [
        ratio(w, s) for w, s in zip(out["gpu_util_weighted"], out["gpu_util_seconds"], strict=True)
    ]
    out["energy_kwh"] = out["energy_j"] / JOULES_PER_KWH
    out["tokens"] = out[["prompt_tokens", "generation_tokens"]].sum(axis=1, min_count=1)
    out["cost_usd"] = out["cost_usd"].astype(np.float64)
    out["health"] = [
        classify_health(r, e, p, thresholds)
        for r, e, p in zip(out["requests"], out["error_ratio"], out["p99"], strict=True)
    ]
    columns = [
        "region",
        "display_name",
        "latitude",
        "longitude",
        "requests",
        "errors",
        "error_ratio",
        *QUANTILES,
        "gpu_utilization",
        "energy_kwh",
        "cost_usd",
        "tokens",
        "health",
    ]
    return out[columns].reset_index(drop=True)


def choose_bucket_seconds(span: timedelta, max_points: int = 400) -> int:
    """The finest bucket of :data:`BUCKET_CHOICES_S` giving at most ``max_points`` per series.

    1 h -> 60 s, 6 h -> 60 s, 24 h -> 300 s, 7 d and 14 d -> 3600 s.
    """
    seconds = max(span.total_seconds(), 1.0)
    for bucket in BUCKET_CHOICES_S:
        if seconds / bucket <= max_points:
            return bucket
    return BUCKET_CHOICES_S[-1]


def window(latest: datetime, span: timedelta) -> tuple[datetime, datetime]:
    """The right-closed window of a preset anchored at ``latest``: ``(latest - span, latest]``.

    Raises:
        ValueError: ``span`` is not positive.
    """
    if span <= timedelta(0):
        raise ValueError(f"a time range must be positive, got {span}")
    return latest - span, latest


def timeseries(
    counters: pd.DataFrame,
    latency_buckets: pd.DataFrame,
    start: datetime,
    end: datetime,
    bucket_s: int,
) -> pd.DataFrame:
    """Per-region time series of request rate, error ratio and p99 latency.

    Args:
        counters: per ``region`` and ``bucket_end`` (the end of a right-closed time
            bucket ``(bucket_end - bucket_s, bucket_end]``): ``requests``, ``errors``.
        latency_buckets: per ``region``, ``bucket_end`` and ``le``: ``value``.
        start, end: the window ``(start, end]`` (UTC, naive); buckets at its edges
            only partly overlap it, and their rate is over the overlap.
        bucket_s: bucket width in seconds.

    Returns:
        One row per region that has counter rows and per bucket from the first to
        the last bucket of the window: ``region``, ``bucket_end``, ``requests``,
        ``errors``, ``requests_per_min`` (requests per minute over the part of the
        bucket inside the window), ``error_ratio`` (0-1), ``p99`` (seconds).  A bucket
        without rows has NaN figures (a gap in the chart, not a zero).
    """
    cols = ["region", "bucket_end", "requests", "errors", "requests_per_min", "error_ratio", "p99"]
    if counters.empty:
        return pd.DataFrame(
            {c: pd.Series([], dtype=object if c == "region" else np.float64) for c in cols}
        )
    step = pd.Timedelta(seconds=bucket_s)
    first = pd.Timestamp(start).floor(step) + step  # the bucket holding the first step after start
    last = pd.Timestamp(end).ceil(step)
    grid = pd.date_range(first, last, freq=step)
    regions = sorted(counters["region"].dropna().unique())
    full = pd.MultiIndex.from_product([regions, grid], names=["region", "bucket_end"])
    c = counters.assign(bucket_end=pd.to_datetime(counters["bucket_end"]))
    c = c.groupby(["region", "bucket_end"])[["requests", "errors"]].sum(min_count=1)
    out = c.reindex(full).reset_index()
    be = out["bucket_end"]
    lo = np.maximum((be - step).to_numpy(), np.datetime64(pd.Timestamp(start).to_datetime64()))
    hi = np.minimum(be.to_numpy(), np.datetime64(pd.Timestamp(end).to_datetime64()))
    covered_min = (hi - lo) / np.timedelta64(60, "s")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["requests_per_min"] = np.where(covered_min > 0, out["requests"] / covered_min, np.nan)
    req = out["requests"].to_numpy(dtype=np.float64)
    err = out["errors"].fillna(0.0).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["error_ratio"] = np.where(req > 0, err / np.where(req > 0, req, 1.0), np.nan)
    if not latency_buckets.empty:
        lb = latency_buckets.assign(bucket_end=pd.to_datetime(latency_buckets["bucket_end"]))
        p99 = percentiles(lb, by=["region", "bucket_end"], quantiles={"p99": QUANTILES["p99"]})
        out = out.merge(
            p99[["region", "bucket_end", "p99"]], on=["region", "bucket_end"], how="left"
        )
    else:
        out["p99"] = np.nan
    return out[cols]


def format_number(value: Any, digits: int = 0, suffix: str = "") -> str:
    """``1,234,567`` style text; ``—`` for NaN or None (a figure with no data)."""
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f}{suffix}"


def compact_number(value: Any, digits: int = 1) -> str:
    """``548.6 M`` style text (k, M, G, T); ``—`` for NaN or None."""
    text = format_number(value, 0)
    if text == "—":
        return text
    v = float(value)
    for factor, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= factor:
            return f"{v / factor:,.{digits}f}{suffix}"
    return text

"""Latency percentiles over time and per region x model, from histogram buckets.

Pure functions on the results of ``sql/queries/latency_*.sql``.  Percentiles are
computed after summing the cumulative ``le`` buckets of every row of a group (all
steps of a time bucket, all instances), then interpolated inside the bucket that
holds the rank, as Prometheus's ``histogram_quantile`` does
(:func:`analytics.overview.percentiles`, :func:`analytics.histogram.histogram_quantile`).
A percentile is never an average of per-step percentiles.

Units: ``le`` and every percentile in the signal's unit (seconds for ``latency``,
``ttft`` and ``itl``); times UTC (naive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analytics.overview import percentiles

#: The percentiles of the Latency page: column -> quantile (0-1).
LATENCY_QUANTILES: dict[str, float] = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
#: Histogram signals the Latency page shows, with their titles, when the store has them.
LATENCY_SIGNALS: dict[str, str] = {
    "latency": "End-to-end latency",
    "ttft": "Time to first token (TTFT)",
    "itl": "Inter-token latency (ITL)",
}


def percentile_series(
    buckets: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, bucket_s: int
) -> pd.DataFrame:
    """p50, p90 and p99 per series and time bucket.

    Args:
        buckets: rows ``series``, ``bucket_end``, ``le``, ``value`` (cumulative count
            of observations ``<= le`` summed over the bucket's steps).
        start, end: the window ``(start, end]``: every bucket from the first to the
            last one of the window is listed per series.
        bucket_s: bucket width in seconds.

    Returns:
        Rows ``series``, ``bucket_end``, ``p50``, ``p90``, ``p99``, ``observations``
        sorted by series and time; a bucket without observations has NaN percentiles
        (a gap in the chart, not a zero).
    """
    cols = ["series", "bucket_end", *LATENCY_QUANTILES, "observations"]
    if buckets.empty:
        return pd.DataFrame({c: pd.Series([], dtype=np.float64) for c in cols})
    frame = buckets.assign(bucket_end=pd.to_datetime(buckets["bucket_end"]))
    pct = percentiles(frame, by=["series", "bucket_end"], quantiles=LATENCY_QUANTILES)
    step = pd.Timedelta(seconds=bucket_s)
    grid = pd.date_range(
        pd.Timestamp(start).floor(step) + step, pd.Timestamp(end).ceil(step), freq=step
    )
    series = sorted(pct["series"].unique())
    full = pd.MultiIndex.from_product([series, grid], names=["series", "bucket_end"])
    out = pct.set_index(["series", "bucket_end"]).reindex(full).reset_index()
    out.loc[out["observations"].fillna(0) <= 0, list(LATENCY_QUANTILES)] = np.nan
    return out[cols]


def percentile_table(buckets: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """p50, p90, p99 and the number of observations per group over the whole window.

    Args:
        buckets: rows with the ``by`` columns, ``le`` and ``value``.
        by: the group columns (e.g. ``["region", "model"]``).
    """
    return percentiles(buckets, by=list(by), quantiles=LATENCY_QUANTILES)


def p99_matrix(table: pd.DataFrame, rows: str = "region", columns: str = "model") -> pd.DataFrame:
    """The p99 of :func:`percentile_table` (grouped by ``rows`` and ``columns``) as a grid.

    Returns:
        One row per ``rows`` value, one column per ``columns`` value; NaN where the
        pair has no observations.
    """
    if table.empty:
        return pd.DataFrame()
    grid = table.pivot_table(index=rows, columns=columns, values="p99", aggfunc="first")
    grid.columns = [str(c) for c in grid.columns]
    return grid.sort_index()

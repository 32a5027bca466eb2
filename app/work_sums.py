"""The ``work_by_day`` rows (work, energy and serving cost per region, model and UTC
day, ``sql/queries/work_by_day.sql``) summed the ways the GPUs & Energy and the
Cost & Carbon pages show them, and the Overview's per-bucket rows summed per region.

One query per page reads the window's counter and cost rows once; the sums here are
sums of sums, so integer counts (requests, tokens) are exact and float sums (energy,
USD) equal one SQL sum over the same rows up to the order of additions.  A sum
skips NaN and stays NaN when every summand is NaN (``min_count=1``): no data is not 0.
No Streamlit here.
"""

from __future__ import annotations

import pandas as pd

#: The summed columns of ``work_by_day``: requests, tokens (prompt + generated),
#: energy_j (J, the GPU energy counter), cost_usd and gpu_cost_usd (USD).
WORK_COLUMNS = ["requests", "tokens", "energy_j", "cost_usd", "gpu_cost_usd"]


def per_region_model(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` summed over the days: one row per region and model with
    :data:`WORK_COLUMNS` (the counters :func:`analytics.energy.gpu_table` takes).

    Args:
        rows: ``work_by_day`` rows: ``region``, ``model``, ``day`` and
            :data:`WORK_COLUMNS`.
    """
    return rows.groupby(["region", "model"], as_index=False, sort=True)[WORK_COLUMNS].sum(
        min_count=1
    )


def per_region_day(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` summed over the models: one row per region and UTC day.

    Args:
        rows: ``work_by_day`` rows: ``region``, ``model``, ``day`` and
            :data:`WORK_COLUMNS`.

    Returns:
        ``region``, ``day``, ``cost_usd`` (USD: the cost gauge's, else the
        ``gpu_cost`` price table's, decided per region and day), ``requests`` and
        ``tokens``.
    """
    days = rows.groupby(["region", "day"], as_index=False, sort=True)[WORK_COLUMNS].sum(min_count=1)
    days["cost_usd"] = days["cost_usd"].where(days["cost_usd"].notna(), days["gpu_cost_usd"])
    return days[["region", "day", "cost_usd", "requests", "tokens"]]


#: The Overview's counter sums per region (``overview_counters_by_region``'s columns):
#: requests and errors (requests), energy_j (J), prompt and generation tokens.
OVERVIEW_COUNTERS = ["requests", "errors", "energy_j", "prompt_tokens", "generation_tokens"]


def overview_by_region(
    counters: pd.DataFrame, latency: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Overview's window sums per region from its per-bucket rows.

    Args:
        counters: ``overview_counters_by_bucket`` rows: ``region``, ``bucket_end``,
            :data:`OVERVIEW_COUNTERS`, ``series_rows``.
        latency: ``overview_series_latency`` rows: ``region``, ``bucket_end``, ``le``
            (seconds), ``value`` (requests that took <= le).

    Returns:
        ``(counters, latency)``: ``region`` and :data:`OVERVIEW_COUNTERS` (the rows of
        ``overview_counters_by_region``), and ``region``, ``le``, ``value`` (those of
        ``overview_latency_by_region``), sorted like them.  Sums of the buckets' sums:
        integer counts are exact; energy equals one SQL sum up to the order of
        additions; a column with no row in any bucket stays NaN (``min_count=1``),
        as SQL's ``sum`` is NULL.
    """
    by_region = counters.groupby("region", as_index=False, sort=True)[OVERVIEW_COUNTERS].sum(
        min_count=1
    )
    by_region[["requests", "errors"]] = by_region[["requests", "errors"]].fillna(0.0)
    buckets = latency.groupby(["region", "le"], as_index=False, sort=True)["value"].sum()
    return by_region, buckets


def overview_series_rows(counters: pd.DataFrame) -> pd.DataFrame:
    """The buckets of ``overview_counters_by_bucket`` that hold request or error rows,
    with ``region``, ``bucket_end``, ``requests``, ``errors``: the rows of
    ``overview_series_counters`` (the Overview's trend lines)."""
    kept = counters[counters["series_rows"] > 0]
    return kept[["region", "bucket_end", "requests", "errors"]].reset_index(drop=True)


#: Appended to a day's label when the window covers only part of it.
PARTIAL = " (partial)"


def day_labels(days: pd.Series, start: object, end: object) -> pd.Series:
    """``YYYY-MM-DD`` per UTC day of ``days``, with :data:`PARTIAL` appended where the
    window ``(start, end]`` covers only part of the day: day D holds the steps of
    ``(D 00:00, D+1 00:00]`` (``work_by_day``'s ``ts_utc - 1 µs`` cast to a date), so it
    is whole when ``start <= D 00:00`` and ``D+1 00:00 <= end``.

    Args:
        days: dates (``datetime.date``, Timestamps or ISO strings).
        start, end: the window, naive UTC datetimes or Timestamps.
    """
    d = pd.to_datetime(days)
    whole = (d >= pd.Timestamp(start)) & (d + pd.Timedelta(days=1) <= pd.Timestamp(end))
    return d.dt.strftime("%Y-%m-%d") + (~whole).map({True: PARTIAL, False: ""})

"""GPU utilisation, power, energy, efficiency and idle-GPU waste.

Pure functions on the sums returned by ``sql/queries/gpu_*.sql``: SQL adds up
per-step rows exactly; every ratio is formed here from those sums (a ratio of sums,
never a mean of ratios), so that a group, a region and the fleet combine exactly.

Units and formulas:

- GPU utilisation: 0-1, time-weighted over GPU-steps,
  ``sum(util_mean * step_s) / sum(step_s)`` (dcgm-exporter's ``DCGM_FI_DEV_GPU_UTIL``
  converted to 0-1 on ingest).
- Power: watts.  Mean power per GPU = ``sum(power_mean * step_s) / sum(step_s)``
  (J / s = W); the fleet's mean draw = GPU energy / window seconds.
- Energy: joules in the store; kWh = J / 3.6e6 (1 kWh = 3.6 MJ).  The ``energy``
  counter (dcgm-exporter's ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``) is used when
  present, else the integral of the power gauge (``sum(power_mean * step_s)``).
- Tokens per joule: (prompt + generated tokens) / GPU joules.
- Energy per 1k requests: kWh / requests * 1000.
- Idle-GPU waste: GPU-steps whose mean utilisation is below a floor (default 10 %)
  count as idle.  Idle GPU-hours = ``sum(step_s) / 3600`` over idle GPU-steps; idle
  kWh = the power integral over those steps / 3.6e6; idle USD = idle GPU-hours x the
  group's cost per GPU-hour (its serving cost, USD, / its GPU-hours; the ``gpu_cost``
  signal when no ``cost`` signal exists).  The cost per GPU-hour is an average over
  the group: an idle GPU is charged as much as a busy one, as a cloud bill does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

JOULES_PER_KWH = 3.6e6
SECONDS_PER_HOUR = 3600.0
#: The default utilisation floor below which a GPU-step counts as idle (0-1).
DEFAULT_IDLE_FLOOR = 0.10

#: Sum columns of :func:`efficiency`'s input (added up when rows are combined).
SUM_COLUMNS = (
    "util_weighted_s",
    "gpu_seconds",
    "power_energy_j",
    "power_seconds",
    "idle_gpu_seconds",
    "idle_energy_j",
    "energy_j",
    "requests",
    "tokens",
    "cost_usd",
    "gpu_cost_usd",
)


def _div(num: pd.Series, den: pd.Series) -> pd.Series:
    """``num / den`` element-wise, NaN where ``den`` is 0, negative or missing."""
    n = num.astype(np.float64)
    d = den.astype(np.float64)
    return n.where(d > 0) / d.where(d > 0)


def combine(groups: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Add the :data:`SUM_COLUMNS` of ``groups`` up per ``by`` (``[]``: one fleet row).

    Missing columns are NaN; a column that is NaN in every row of a group stays NaN
    (no data is not 0).
    """
    frame = groups.copy()
    for col in SUM_COLUMNS:
        if col not in frame:
            frame[col] = np.nan
        frame[col] = frame[col].astype(np.float64)
    if not by:
        return frame[list(SUM_COLUMNS)].sum(min_count=1).to_frame().T
    return frame.groupby(by, sort=True)[list(SUM_COLUMNS)].sum(min_count=1).reset_index()


def efficiency(sums: pd.DataFrame) -> pd.DataFrame:
    """The GPU page's figures from the sums of :func:`combine` (one row per group).

    Args:
        sums: rows with :data:`SUM_COLUMNS`: ``util_weighted_s`` (ratio-seconds),
            ``gpu_seconds`` (s), ``power_energy_j`` (J, power integral),
            ``power_seconds`` (s), ``idle_gpu_seconds`` (s), ``idle_energy_j`` (J),
            ``energy_j`` (J, the energy counter), ``requests``, ``tokens``,
            ``cost_usd`` and ``gpu_cost_usd`` (USD).

    Returns:
        ``sums`` plus ``gpu_utilization`` (0-1), ``mean_power_w`` (W per GPU),
        ``gpu_hours``, ``energy_kwh``, ``tokens_per_joule``, ``kwh_per_1k_requests``,
        ``usd_per_gpu_hour``, ``idle_gpu_hours``, ``idle_share`` (0-1 of GPU-hours),
        ``idle_kwh`` and ``idle_usd``; NaN where the inputs are missing.
    """
    out = sums.copy()
    out["gpu_utilization"] = _div(out["util_weighted_s"], out["gpu_seconds"])
    out["mean_power_w"] = _div(out["power_energy_j"], out["power_seconds"])
    out["gpu_hours"] = out["gpu_seconds"] / SECONDS_PER_HOUR
    energy_j = out["energy_j"].where(out["energy_j"].notna(), out["power_energy_j"])
    out["energy_kwh"] = energy_j / JOULES_PER_KWH
    out["tokens_per_joule"] = _div(out["tokens"], energy_j)
    out["kwh_per_1k_requests"] = 1000.0 * _div(out["energy_kwh"], out["requests"])
    cost = out["cost_usd"].where(out["cost_usd"].notna(), out["gpu_cost_usd"])
    out["usd_per_gpu_hour"] = _div(cost, out["gpu_hours"])
    idle_s = out["idle_gpu_seconds"].where(out["gpu_seconds"] > 0)
    out["idle_gpu_hours"] = idle_s.fillna(0.0).where(out["gpu_seconds"] > 0) / SECONDS_PER_HOUR
    out["idle_share"] = _div(out["idle_gpu_hours"], out["gpu_hours"])
    idle_j = out["idle_energy_j"].where(out["idle_energy_j"].notna(), 0.0)
    out["idle_kwh"] = (idle_j / JOULES_PER_KWH).where(out["power_seconds"] > 0)
    out["idle_usd"] = out["idle_gpu_hours"] * out["usd_per_gpu_hour"]
    return out


def gpu_table(gauges: pd.DataFrame, counters: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group (``by``, e.g. ``["region", "model"]``): the figures of :func:`efficiency`.

    Args:
        gauges: ``gpu_by_group`` rows (region, model and the GPU sums).
        counters: per region and model, ``energy_j``, ``requests``, ``tokens``,
            ``cost_usd`` and ``gpu_cost_usd`` (``work_by_day`` rows summed over the
            days, :func:`app.work_sums.per_region_model`).
        by: the group columns, a subset of ``["region", "model"]``; ``[]`` gives the
            fleet's one row.
    """
    keys = ["region", "model"]
    merged = (
        gauges.merge(counters, on=keys, how="outer", suffixes=("", "_counters"))
        if not gauges.empty or not counters.empty
        else pd.DataFrame(columns=keys)
    )
    return efficiency(combine(merged, by))


def power_series(series: pd.DataFrame) -> pd.DataFrame:
    """Utilisation and total power draw per series and time bucket.

    Args:
        series: ``gpu_series`` rows: ``series``, ``bucket_end``, ``util_weighted_s``,
            ``gpu_seconds``, ``power_energy_j`` (J over the bucket's steps) and
            ``covered_s`` (seconds of the bucket that have power samples).

    Returns:
        ``series``, ``bucket_end``, ``gpu_utilization`` (0-1) and ``power_w``
        (the series' total draw, W = J / covered seconds).
    """
    out = series[["series", "bucket_end"]].copy()
    out["gpu_utilization"] = _div(series["util_weighted_s"], series["gpu_seconds"])
    out["power_w"] = _div(series["power_energy_j"], series["covered_s"])
    return out


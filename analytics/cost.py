"""Serving cost per unit of work, operational carbon per region, and load shifting.

Pure functions on the sums of ``sql/queries/work_by_day.sql`` (per region and model,
summed over the days) and ``gpu_by_group``.  Units: USD; energy in joules (kWh = J / 3.6e6); carbon
in grams CO2e (gCO2e); grid intensity in gCO2e per kWh.

- Cost per 1k requests = USD / requests x 1000; per 1M tokens = USD / tokens x 1e6
  (tokens = prompt + generated).
- Operational carbon = energy (kWh) x PUE x grid intensity (gCO2e/kWh), Cloud
  Carbon Footprint's method and yearly average tables (:mod:`analytics.carbon`).
- Moving load (:func:`shift_savings`): moving ``m`` requests from region S to
  region D saves ``m x (e_S x c_S - e_D x c_D)`` grams, where ``e`` is the region's
  GPU energy per request (kWh, measured in the window) and ``c`` its
  PUE x grid intensity: the moved requests are assumed to cost the DESTINATION's
  energy per request.  Capacity: D takes at most the requests that bring its mean
  GPU utilisation to a ceiling (default 80 %), assuming utilisation grows in
  proportion to requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.carbon import GRID_G_PER_KWH, CarbonModel

JOULES_PER_KWH = 3.6e6
#: Default ceiling of a destination's mean GPU utilisation after a move (0-1).
DEFAULT_CAPACITY_CEILING = 0.80


def _div(num: pd.Series, den: pd.Series) -> pd.Series:
    n = num.astype(np.float64)
    d = den.astype(np.float64)
    return n.where(d > 0) / d.where(d > 0)


def unit_costs(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus ``usd_per_1k_requests`` and ``usd_per_1m_tokens``.

    Args:
        frame: rows with ``cost_usd`` (USD), ``requests`` and ``tokens`` (counts).
    """
    out = frame.copy()
    out["usd_per_1k_requests"] = 1e3 * _div(out["cost_usd"], out["requests"])
    out["usd_per_1m_tokens"] = 1e6 * _div(out["cost_usd"], out["tokens"])
    return out


def intensity_source(region: str, model: CarbonModel) -> str:
    """Where the grid intensity of ``region`` comes from, in words."""
    if region in model.grid_overrides:
        return "configuration override"
    for provider, table in GRID_G_PER_KWH.items():
        if region in table:
            return f"Cloud Carbon Footprint, {provider.upper()} yearly average"
    if model.default_grid is not None:
        return "configured default"
    return "unknown: add it to the carbon overrides"


def carbon_by_region(energy: pd.DataFrame, model: CarbonModel) -> pd.DataFrame:
    """Operational carbon per region, with the factors used.

    Args:
        energy: rows ``region``, ``energy_j`` (GPU joules), ``requests``.
        model: grid intensities and PUEs (published tables plus overrides).

    Returns:
        ``region``, ``energy_kwh``, ``requests``, ``pue``, ``grid_g_per_kwh``,
        ``source``, ``gco2e`` (grams), ``g_per_request``; NaN carbon where the grid
        intensity is unknown.
    """
    out = energy[["region", "energy_j", "requests"]].copy()
    out["energy_kwh"] = out["energy_j"].astype(np.float64) / JOULES_PER_KWH
    out["pue"] = [model.pue(r) for r in out["region"]]
    out["grid_g_per_kwh"] = [model.grid_factor(r) for r in out["region"]]
    out["source"] = [intensity_source(r, model) for r in out["region"]]
    out["gco2e"] = out["energy_kwh"] * out["pue"] * out["grid_g_per_kwh"]
    out["g_per_request"] = _div(out["gco2e"], out["requests"])
    cols = ["region", "energy_kwh", "requests", "pue", "grid_g_per_kwh", "source", "gco2e"]
    return out[[*cols, "g_per_request"]].sort_values("region").reset_index(drop=True)


@dataclass(frozen=True)
class Shift:
    """What moving part of one region's requests to the cleanest region would save.

    Attributes:
        source, destination: region names (destination None: no region qualifies).
        wanted_requests: the requests asked to move (fraction x source requests).
        moved_requests: the requests the destination can take (capacity-limited).
        headroom_requests: the destination's capacity (inf when its utilisation
            is unknown and no limit applies).
        saved_g: gCO2e saved in the window (negative: the move would emit more).
        saved_share: ``saved_g`` over the fleet's gCO2e (0-1).
        reason: why nothing moves, when nothing does.
    """

    source: str
    destination: str | None
    wanted_requests: float
    moved_requests: float
    headroom_requests: float
    saved_g: float
    saved_share: float
    reason: str = ""


def shift_savings(
    carbon: pd.DataFrame,
    utilization: dict[str, float],
    source: str,
    fraction: float,
    ceiling: float = DEFAULT_CAPACITY_CEILING,
) -> Shift:
    """Carbon saved by moving ``fraction`` of ``source``'s requests to the cleanest region.

    The destination is the region of ``carbon`` (other than ``source``) with the
    lowest gCO2e per request that has requests, a known intensity and headroom.
    Formula and assumptions: see the module docstring.

    Args:
        carbon: :func:`carbon_by_region` rows.
        utilization: region -> mean GPU utilisation in the window (0-1).
        source: the region whose load moves.
        fraction: the share of its requests to move, 0-1.
        ceiling: the highest mean utilisation a destination may reach (0-1].

    Raises:
        ValueError: ``fraction`` outside 0-1, ``ceiling`` outside (0, 1], or
            ``source`` not in ``carbon``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0-1, got {fraction}")
    if not 0.0 < ceiling <= 1.0:
        raise ValueError(f"ceiling must be within (0, 1], got {ceiling}")
    rows = carbon.set_index("region")
    if source not in rows.index:
        raise ValueError(f"region {source!r} is not among {sorted(rows.index)}")
    src = rows.loc[source]
    wanted = fraction * float(src["requests"])
    total = float(np.nansum(rows["gco2e"].to_numpy(dtype=np.float64)))

    def _none(reason: str) -> Shift:
        return Shift(source, None, wanted, 0.0, 0.0, 0.0, 0.0, reason)

    if not math.isfinite(float(src["g_per_request"])):
        return _none(f"{source} has no requests or no known grid intensity")
    best: tuple[float, str, float] | None = None
    for region, row in rows.iterrows():
        g = float(row["g_per_request"])
        if region == source or not math.isfinite(g) or g >= float(src["g_per_request"]):
            continue
        util = utilization.get(str(region), math.nan)
        if math.isfinite(util) and util > 0:
            headroom = max(0.0, float(row["requests"]) * (ceiling / util - 1.0))
        else:
            headroom = math.inf
        if headroom <= 0:
            continue
        if best is None or g < best[0]:
            best = (g, str(region), headroom)
    if best is None:
        return _none(f"no region with spare capacity emits less per request than {source}")
    g_dst, dest, headroom = best
    moved = min(wanted, headroom)
    saved = moved * (float(src["g_per_request"]) - g_dst)
    share = saved / total if total > 0 else math.nan
    return Shift(source, dest, wanted, moved, headroom, saved, share)

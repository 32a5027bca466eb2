"""Operational carbon: energy x PUE x grid emission factor, per cloud region.

Pure module (no I/O).  Operational CO2e (grams) = energy (kWh) x PUE x grid factor
(g CO2e per kWh).  The factors and PUEs are Cloud Carbon Footprint's published
tables, as summarised in the project's sources reference (``shared/reference/
sources.md``, "Carbon: grid emission factors"): they are yearly averages per region,
not hourly marginal intensities.  Override them per region (a configuration file's
``carbon`` section, see :mod:`observatory.experiments_config`) where better figures
(for instance the provider's own reports or a grid operator's) exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

JOULES_PER_KWH = 3.6e6

#: Power usage effectiveness per provider (Cloud Carbon Footprint).
PUE: dict[str, float] = {"aws": 1.135, "gcp": 1.1, "azure": 1.185}

#: Grid emission factors, grams CO2e per kWh, per provider region (Cloud Carbon Footprint).
GRID_G_PER_KWH: dict[str, dict[str, float]] = {
    "aws": {
        "us-east-1": 379.1,
        "us-east-2": 410.6,
        "us-west-1": 322.2,
        "us-west-2": 322.2,
        "eu-central-1": 311.0,
        "eu-west-1": 278.6,
        "eu-west-2": 225.0,
        "eu-west-3": 51.1,
        "eu-north-1": 8.8,
        "ap-south-1": 708.2,
        "ap-southeast-2": 760.0,
        "ap-northeast-1": 465.8,
        "ca-central-1": 120.0,
        "sa-east-1": 61.7,
        "af-south-1": 900.6,
    },
    "gcp": {
        "us-central1": 456.0,
        "us-east1": 434.0,
        "us-east4": 309.0,
        "us-west1": 60.0,
        "europe-west1": 110.0,
        "europe-west4": 283.0,
        "europe-north1": 127.0,
        "asia-south1": 670.0,
    },
}


@dataclass(frozen=True)
class CarbonModel:
    """Grid factors and PUE per region, with overrides.

    Attributes:
        grid_overrides: region -> g CO2e per kWh, replacing the published factor.
        pue_overrides: region -> PUE, replacing the provider's.
        default_grid: factor for a region found nowhere (None: unknown, NaN).
        default_pue: PUE for a region whose provider is unknown.
    """

    grid_overrides: Mapping[str, float] = field(default_factory=dict)
    pue_overrides: Mapping[str, float] = field(default_factory=dict)
    default_grid: float | None = None
    default_pue: float = 1.135

    def provider(self, region: str) -> str | None:
        """``aws`` or ``gcp`` when the region is in the published table, else None."""
        for provider, table in GRID_G_PER_KWH.items():
            if region in table:
                return provider
        return None

    def grid_factor(self, region: str) -> float:
        """g CO2e per kWh of the region's grid (NaN when unknown and no default)."""
        if region in self.grid_overrides:
            return float(self.grid_overrides[region])
        provider = self.provider(region)
        if provider is not None:
            return GRID_G_PER_KWH[provider][region]
        return math.nan if self.default_grid is None else float(self.default_grid)

    def pue(self, region: str) -> float:
        """Power usage effectiveness of the region's data centres."""
        if region in self.pue_overrides:
            return float(self.pue_overrides[region])
        provider = self.provider(region)
        return PUE[provider] if provider is not None else self.default_pue

    def grams_per_joule(self, region: str) -> float:
        """g CO2e per joule of IT energy: PUE x grid factor / 3.6e6."""
        return self.pue(region) * self.grid_factor(region) / JOULES_PER_KWH

    def grams(self, joules: float, region: str) -> float:
        """Operational g CO2e of ``joules`` of IT (GPU) energy used in ``region``."""
        return joules * self.grams_per_joule(region)

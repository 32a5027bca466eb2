"""analytics/energy.py, analytics/cost.py and analytics/latency.py on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.carbon import CarbonModel
from analytics.cost import carbon_by_region, shift_savings, unit_costs
from analytics.energy import efficiency, gpu_table
from analytics.latency import p99_matrix, percentile_series, percentile_table


def _gauges() -> pd.DataFrame:
    # Two GPUs for one hour each in r1/m (one idle: 5 % for 1800 s at 100 W).
    return pd.DataFrame(
        {
            "region": ["r1", "r2"],
            "model": ["m", "m"],
            "util_weighted_s": [0.5 * 7200, 0.25 * 3600],
            "gpu_seconds": [7200.0, 3600.0],
            "power_energy_j": [300.0 * 7200, 200.0 * 3600],
            "power_seconds": [7200.0, 3600.0],
            "idle_gpu_seconds": [1800.0, np.nan],
            "idle_energy_j": [100.0 * 1800, np.nan],
        }
    )


def _counters() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": ["r1", "r2"],
            "model": ["m", "m"],
            "requests": [2000.0, 500.0],
            "tokens": [3.6e6, 1.0e6],
            "energy_j": [3.6e6, np.nan],  # r2 has no energy counter: power integral
            "cost_usd": [8.0, np.nan],
            "gpu_cost_usd": [np.nan, 2.5],
        }
    )


def test_efficiency_per_group() -> None:
    t = gpu_table(_gauges(), _counters(), ["region"]).set_index("region")
    assert t.loc["r1", "gpu_utilization"] == 0.5
    assert t.loc["r1", "mean_power_w"] == 300.0
    assert t.loc["r1", "energy_kwh"] == 1.0  # 3.6 MJ
    assert t.loc["r1", "tokens_per_joule"] == 1.0
    assert t.loc["r1", "kwh_per_1k_requests"] == 0.5
    assert t.loc["r1", "usd_per_gpu_hour"] == 4.0  # $8 over 2 GPU-hours
    assert t.loc["r1", "idle_gpu_hours"] == 0.5
    assert t.loc["r1", "idle_share"] == 0.25
    assert t.loc["r1", "idle_kwh"] == pytest.approx(0.05)  # 100 W x 1800 s
    assert t.loc["r1", "idle_usd"] == 2.0
    # r2: energy from the power integral, price from gpu_cost, no idle step.
    assert t.loc["r2", "energy_kwh"] == pytest.approx(0.2)
    assert t.loc["r2", "usd_per_gpu_hour"] == 2.5
    assert t.loc["r2", "idle_gpu_hours"] == 0.0
    assert t.loc["r2", "idle_usd"] == 0.0


def test_fleet_row_is_a_ratio_of_sums() -> None:
    fleet = gpu_table(_gauges(), _counters(), []).iloc[0]
    assert fleet["gpu_utilization"] == pytest.approx((3600 + 900) / 10800)  # not (0.5+0.25)/2
    assert fleet["requests"] == 2500.0


def test_no_data_is_nan_not_zero() -> None:
    empty = efficiency(
        pd.DataFrame(
            {c: [np.nan] for c in ["util_weighted_s", "gpu_seconds", "power_energy_j",
                                   "power_seconds", "idle_gpu_seconds", "idle_energy_j",
                                   "energy_j", "requests", "tokens", "cost_usd",
                                   "gpu_cost_usd"]}
        )
    ).iloc[0]  # fmt: skip
    for col in ("gpu_utilization", "energy_kwh", "idle_gpu_hours", "idle_usd"):
        assert math.isnan(empty[col]), col


def test_unit_costs() -> None:
    out = unit_costs(pd.DataFrame({"cost_usd": [5.0, 1.0], "requests": [1000.0, 0.0],
                                   "tokens": [2e6, 0.0]}))  # fmt: skip
    assert out["usd_per_1k_requests"].iloc[0] == 5.0
    assert out["usd_per_1m_tokens"].iloc[0] == 2.5
    assert math.isnan(out["usd_per_1k_requests"].iloc[1])


def test_carbon_uses_published_factors_and_overrides() -> None:
    energy = pd.DataFrame(
        {"region": ["eu-north-1", "ap-south-1", "mars-1"], "energy_j": [3.6e9] * 3,
         "requests": [1e6, 1e6, 1e6]}
    )  # fmt: skip
    c = carbon_by_region(energy, CarbonModel()).set_index("region")
    # 1000 kWh x 1.135 x 8.8 g/kWh (Cloud Carbon Footprint, AWS eu-north-1).
    assert c.loc["eu-north-1", "gco2e"] == pytest.approx(1000 * 1.135 * 8.8)
    assert c.loc["ap-south-1", "gco2e"] == pytest.approx(1000 * 1.135 * 708.2)
    assert math.isnan(c.loc["mars-1", "gco2e"])
    assert c.loc["mars-1", "source"].startswith("unknown")
    over = carbon_by_region(energy, CarbonModel(grid_overrides={"mars-1": 50.0}))
    row = over.set_index("region").loc["mars-1"]
    assert row["source"] == "configuration override"
    assert row["gco2e"] == pytest.approx(1000 * 1.135 * 50.0)


def _carbon() -> pd.DataFrame:
    # g per request: dirty 2.0, clean 0.5, mid 1.0.
    return pd.DataFrame(
        {
            "region": ["dirty", "clean", "mid"],
            "requests": [1000.0, 1000.0, 1000.0],
            "gco2e": [2000.0, 500.0, 1000.0],
            "g_per_request": [2.0, 0.5, 1.0],
        }
    )


def test_shift_moves_to_the_cleanest_region_with_room() -> None:
    s = shift_savings(_carbon(), {"clean": 0.4, "mid": 0.4}, "dirty", 0.5, ceiling=0.8)
    assert s.destination == "clean"
    assert s.headroom_requests == pytest.approx(1000.0)  # 0.4 -> 0.8 doubles its load
    assert s.moved_requests == 500.0
    assert s.saved_g == pytest.approx(500 * (2.0 - 0.5))
    assert s.saved_share == pytest.approx(750 / 3500)


def test_shift_is_capped_by_capacity_and_skips_full_regions() -> None:
    s = shift_savings(_carbon(), {"clean": 0.8, "mid": 0.5}, "dirty", 1.0, ceiling=0.8)
    assert s.destination == "mid"  # clean is at the ceiling already
    assert s.headroom_requests == pytest.approx(600.0)
    assert s.moved_requests == pytest.approx(600.0)
    assert s.saved_g == pytest.approx(600 * (2.0 - 1.0))
    none = shift_savings(_carbon(), {}, "clean", 0.5)
    assert none.destination is None and "no region" in none.reason
    with pytest.raises(ValueError, match="fraction"):
        shift_savings(_carbon(), {}, "dirty", 1.5)
    with pytest.raises(ValueError, match="nowhere"):
        shift_savings(_carbon(), {}, "nowhere", 0.5)


def test_latency_percentiles_after_summing_buckets() -> None:
    # Two steps of one bucket: 10 obs <= 1 s, 10 more <= 2 s in total.
    buckets = pd.DataFrame(
        {
            "series": ["a"] * 6,
            "bucket_end": [pd.Timestamp("2026-01-01 00:05")] * 6,
            "le": [1.0, 2.0, math.inf] * 2,
            "value": [5.0, 10.0, 10.0, 5.0, 10.0, 10.0],
        }
    )
    out = percentile_series(
        buckets, pd.Timestamp("2026-01-01 00:00"), pd.Timestamp("2026-01-01 00:10"), 300
    )
    assert len(out) == 2  # 00:05 and 00:10; the second has no data
    first = out.iloc[0]
    assert first["p50"] == 1.0  # rank 10 of 20: the top of the first bucket
    assert first["p90"] == pytest.approx(1.8)  # rank 18: 8/10 into (1, 2]
    assert first["observations"] == 20
    assert math.isnan(out.iloc[1]["p99"])
    table = percentile_table(
        buckets.rename(columns={"series": "region"}).assign(model="m"), ["region", "model"]
    )
    assert p99_matrix(table).loc["a", "m"] == pytest.approx(1.98)

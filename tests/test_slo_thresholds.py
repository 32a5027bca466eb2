"""Threshold readings per series' bucket layout (analytics/slo_thresholds.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analytics.slo_thresholds import reading, threshold_readings

VLLM = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, math.inf]
PROM = [0.1, 0.2, 0.4, 1, 3, 8, 20, 60, 120, math.inf]  # prometheus_http_request_duration


def _layouts(series: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    rows = [(r, m, a, le) for (r, m, a), les in series.items() for le in les]
    return pd.DataFrame(rows, columns=["region", "model", "arm", "le"])


def test_reading_is_exact_on_a_bound_and_interpolates_inside_a_bucket() -> None:
    assert reading(VLLM, 10.0) == (10.0, 10.0, 1.0, True)
    # (10 - 8) / (20 - 8): histogram_fraction's linear interpolation inside (8, 20]
    lower, upper, frac, exact = reading(PROM, 10.0)
    assert (lower, upper, exact) == (8.0, 20.0, False) and frac == pytest.approx(1 / 6)
    assert reading([0.5, math.inf], 0.25) == (None, 0.5, 0.5, False)  # first bucket from 0
    assert reading([math.inf], 10.0) == (10.0, 10.0, 1.0, True)  # no buckets: no data
    assert reading(PROM, 200.0, percentile=True) == (math.inf, math.inf, 1.0, True)


def test_each_series_gets_its_own_reading_and_the_sql_parameters_name_them() -> None:
    r = threshold_readings(
        _layouts({("r1", "llama", "v1"): VLLM, ("r2", "prometheus", ""): PROM}), 10.0
    )
    assert r.default == (10.0, 10.0, 1.0, True)  # the union holds 10: exact for vLLM
    assert list(r.series) == [("r2", "prometheus", "")]
    assert r.approximate and "interpolated in (8, 20]" in r.note and "le=10 (exact)" in r.note
    p = r.params()
    assert (p["lower"], p["upper"], p["frac"]) == (10.0, 10.0, 1.0)
    assert (p["lay_region"], p["lay_model"], p["lay_arm"]) == (["r2"], ["prometheus"], [""])
    assert (p["lay_lower"], p["lay_upper"]) == ([8.0], [20.0])
    assert p["les"] == [8.0, 10.0, 20.0, math.inf]
    # One layout for every series: no per-series parameters, as before.
    same = threshold_readings(_layouts({("r1", "a", ""): VLLM, ("r2", "b", ""): VLLM}), 10.0)
    assert same.series == {} and not same.approximate and same.note == "le=10 (exact)"
    assert same.params()["les"] == [10.0, math.inf]

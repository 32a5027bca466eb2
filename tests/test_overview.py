"""analytics.overview with hand-computed values: percentiles, ratios, health, series."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.overview import (
    Thresholds,
    choose_bucket_seconds,
    classify_health,
    compact_number,
    error_ratio,
    format_number,
    headline,
    percentiles,
    region_summary,
    timeseries,
    window,
)

INF = math.inf
LE = [0.5, 1.0, 2.5, INF]


def _buckets(region: str, cumulative: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"region": region, "le": LE, "value": cumulative})


def _counters(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "region": r,
                "requests": req,
                "errors": err,
                "energy_j": 3.6e6,
                "prompt_tokens": 10.0,
                "generation_tokens": 5.0,
            }
            for r, req, err in rows
        ]
    )


def _gauges(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["region", "gpu_util_weighted", "gpu_util_seconds", "cost_usd"]
    )


# --------------------------------------------------------------------------- percentiles


def test_p99_is_prometheus_interpolation_inside_the_bucket() -> None:
    # 200 requests: 120 <= 0.5 s, 60 in (0.5, 1], 19 in (1, 2.5], 1 above 2.5 s.
    # p99: rank 198 lies in (1, 2.5] (cumulative 180 -> 199): 1 + 1.5 * (198 - 180) / 19
    # p50: rank 100 lies in (0, 0.5]: 0.5 * 100 / 120
    # p95: rank 190 lies in (1, 2.5]: 1 + 1.5 * 10 / 19
    out = percentiles(_buckets("a", [120, 180, 199, 200]))
    assert out["p99"].iloc[0] == pytest.approx(1 + 1.5 * 18 / 19, rel=1e-12)
    assert out["p50"].iloc[0] == pytest.approx(0.5 * 100 / 120, rel=1e-12)
    assert out["p95"].iloc[0] == pytest.approx(1 + 1.5 * 10 / 19, rel=1e-12)
    assert out["observations"].iloc[0] == 200


def test_percentiles_sum_per_step_rows_and_groups_before_interpolating() -> None:
    # The same histogram as above, split into two steps (rows are added per le first).
    step1 = _buckets("a", [100, 150, 160, 160])
    step2 = _buckets("a", [20, 30, 39, 40])
    other = _buckets("b", [0, 0, 10, 10])  # all of b in (1, 2.5]
    out = percentiles(pd.concat([step1, step2, other]), by=["region"]).set_index("region")
    assert out.loc["a", "p99"] == pytest.approx(1 + 1.5 * 18 / 19, rel=1e-12)
    # b: rank 5 of 10 in (1, 2.5]: 1 + 1.5 * 5 / 10
    assert out.loc["b", "p50"] == pytest.approx(1.75, rel=1e-12)
    # Together (210 requests): p50 rank 105 in (0, 0.5]: 0.5 * 105 / 120
    both = percentiles(pd.concat([step1, step2, other]))
    assert both["p50"].iloc[0] == pytest.approx(0.5 * 105 / 120, rel=1e-12)


def test_percentiles_rank_in_inf_bucket_and_no_observations() -> None:
    # 10 of 100 above 2.5 s: p99 (rank 99) is in +Inf -> the highest finite bound
    out = percentiles(
        pd.concat([_buckets("a", [50, 80, 90, 100]), _buckets("z", [0, 0, 0, 0])]), by=["region"]
    ).set_index("region")
    assert out.loc["a", "p99"] == 2.5
    assert math.isnan(out.loc["z", "p99"])  # no observations: no data, not 0
    assert out.loc["z", "observations"] == 0


def test_percentiles_fill_a_missing_bound_from_below() -> None:
    # Group b has no le=1.0 row: its cumulative count there is taken as that of le=0.5.
    a = _buckets("a", [10, 20, 30, 40])
    b = pd.DataFrame({"region": "b", "le": [0.5, 2.5, INF], "value": [10.0, 20.0, 20.0]})
    out = percentiles(pd.concat([a, b]), by=["region"]).set_index("region")
    # b: cumulative [10, 10, 20, 20]; p75 rank 15 -> (1, 2.5]: 1 + 1.5 * 5 / 10
    q = percentiles(pd.concat([a, b]), by=["region"], quantiles={"p75": 0.75}).set_index("region")
    assert q.loc["b", "p75"] == pytest.approx(1.75)
    assert out.loc["a", "p50"] == pytest.approx(1.0)  # rank 20 -> exactly the top of (0.5, 1]


def test_percentiles_of_nothing_is_empty() -> None:
    out = percentiles(pd.DataFrame(columns=["region", "le", "value"]), by=["region"])
    assert out.empty and {"region", "p50", "p95", "p99"} <= set(out.columns)


# --------------------------------------------------------------------------- ratios


def test_error_ratio_is_sum_over_sum_not_the_mean_of_ratios() -> None:
    # A busy region: 10 errors in 1000 requests (1 %); a quiet one: 5 in 10 (50 %).
    # Fleet: 15 / 1010 = 1.485 %, while the mean of the two ratios would be 25.5 %.
    errors, requests = [10.0, 5.0], [1000.0, 10.0]
    assert error_ratio(errors, requests) == pytest.approx(15 / 1010, rel=1e-12)
    assert error_ratio(errors, requests) != pytest.approx(np.mean([0.01, 0.5]))
    head = headline(
        _counters([("busy", 1000, 10), ("quiet", 10, 5)]), pd.DataFrame(), pd.DataFrame()
    )
    assert head.error_ratio == pytest.approx(15 / 1010, rel=1e-12)
    assert head.requests == 1010 and head.errors == 15


def test_error_ratio_without_requests_is_nan() -> None:
    assert math.isnan(error_ratio([0.0], [0.0]))
    assert math.isnan(error_ratio([], []))


def test_headline_figures_and_units() -> None:
    counters = _counters([("a", 150, 1), ("b", 50, 1)])
    buckets = pd.concat([_buckets("a", [90, 135, 149, 150]), _buckets("b", [30, 45, 50, 50])])
    # GPU utilisation: a 0.5 over 600 GPU-seconds, b 0.2 over 1800: (300 + 360) / 2400
    gauges = _gauges([("a", 300.0, 600.0, 12.5), ("b", 360.0, 1800.0, 7.5)])
    head = headline(counters, buckets, gauges)
    assert head.requests == 200
    assert head.error_ratio == pytest.approx(2 / 200)
    assert head.p99 == pytest.approx(1 + 1.5 * 18 / 19)  # summed: [120, 180, 199, 200]
    assert head.gpu_utilization == pytest.approx(660 / 2400)
    assert head.energy_kwh == pytest.approx(2.0)  # 2 x 3.6e6 J
    assert head.cost_usd == pytest.approx(20.0)
    assert head.tokens == pytest.approx(30.0)


def test_headline_of_an_empty_selection_has_no_data() -> None:
    head = headline(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    assert head.requests == 0
    for value in (head.error_ratio, head.p99, head.gpu_utilization, head.energy_kwh, head.cost_usd):
        assert math.isnan(value)


# --------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("requests", "ratio", "p99", "expected"),
    [
        (100, 0.0, 1.0, "ok"),
        (100, 0.01, 20.0, "warning"),  # exactly at both limits: within them, not critical
        (100, 0.0101, 1.0, "critical"),  # errors above 1 %
        (100, 0.0, 20.5, "critical"),  # p99 above 20 s
        (100, 0.0085, 1.0, "warning"),  # above 80 % of the error limit
        (100, 0.0, 16.5, "warning"),  # above 80 % of the p99 limit (16 s)
        (100, 0.008, 16.0, "ok"),  # exactly 80 %: not yet a warning
        (100, 0.0, math.nan, "ok"),  # no latency histogram: judged on errors alone
        (100, 0.02, math.nan, "critical"),
        (0, math.nan, math.nan, "no data"),
        (math.nan, math.nan, math.nan, "no data"),
    ],
)
def test_health_against_thresholds(
    requests: float, ratio: float, p99: float, expected: str
) -> None:
    assert (
        classify_health(
            requests, ratio, p99, Thresholds(max_error_ratio=0.01, max_p99_seconds=20.0)
        )
        == expected
    )


def test_region_summary_lists_catalogue_regions_without_data_as_no_data() -> None:
    catalogue = pd.DataFrame(
        {
            "region": ["a", "b", "quiet"],
            "display_name": ["A", "B", "Quiet"],
            "latitude": [1.0, 2.0, 3.0],
            "longitude": [4.0, 5.0, 6.0],
        }
    )
    counters = _counters([("a", 1000, 5), ("b", 1000, 50), ("unmapped", 10, 0)])
    buckets = pd.concat([_buckets("a", [900, 990, 1000, 1000]), _buckets("b", [0, 0, 10, 1000])])
    gauges = _gauges([("a", 30.0, 60.0, 1.0)])
    out = region_summary(catalogue, counters, buckets, gauges, Thresholds()).set_index("region")
    assert list(out.index) == ["a", "b", "quiet", "unmapped"]
    assert out.loc["a", "health"] == "ok"
    assert out.loc["b", "health"] == "critical"  # 5 % errors and p99 in +Inf (2.5 s) -> errors
    assert out.loc["quiet", "health"] == "no data"
    assert out.loc["quiet", "requests"] == 0 and math.isnan(out.loc["quiet", "error_ratio"])
    assert (
        math.isnan(out.loc["unmapped", "latitude"])
        and out.loc["unmapped", "display_name"] == "unmapped"
    )
    assert out.loc["a", "gpu_utilization"] == pytest.approx(0.5)
    assert math.isnan(out.loc["b", "gpu_utilization"])
    # a selection restricts the rows
    only = region_summary(catalogue, counters, buckets, gauges, Thresholds(), regions=["b"])
    assert only["region"].tolist() == ["b"]


# --------------------------------------------------------------------------- time


def test_bucket_width_follows_the_range() -> None:
    assert choose_bucket_seconds(timedelta(hours=1)) == 60
    assert choose_bucket_seconds(timedelta(hours=6)) == 60
    assert choose_bucket_seconds(timedelta(hours=24)) == 300
    assert choose_bucket_seconds(timedelta(days=7)) == 3600
    assert choose_bucket_seconds(timedelta(days=14)) == 3600
    assert choose_bucket_seconds(timedelta(days=400)) == 86400


def test_window_is_anchored_at_the_latest_data() -> None:
    latest = datetime(2026, 11, 30)
    assert window(latest, timedelta(hours=6)) == (datetime(2026, 11, 29, 18), latest)
    with pytest.raises(ValueError, match="positive"):
        window(latest, timedelta(0))


def test_timeseries_rates_over_the_covered_part_and_gaps_stay_gaps() -> None:
    start, end = datetime(2026, 11, 30, 0, 2), datetime(2026, 11, 30, 0, 20)
    t = pd.Timestamp
    counters = pd.DataFrame(
        {
            "region": ["a", "a", "a"],
            # bucket (0:00, 0:05] overlaps the window for 3 minutes; (0:10, 0:15] has no rows
            "bucket_end": [t("2026-11-30 00:05"), t("2026-11-30 00:10"), t("2026-11-30 00:20")],
            "requests": [30.0, 100.0, 0.0],
            "errors": [3.0, 1.0, 0.0],
        }
    )
    lat = pd.DataFrame(
        {
            "region": "a",
            "bucket_end": t("2026-11-30 00:10"),
            "le": LE,
            "value": [120.0, 180, 199, 200],
        }
    )
    out = timeseries(counters, lat, start, end, 300).set_index("bucket_end")
    assert list(out.index) == [
        t("2026-11-30 00:05"),
        t("2026-11-30 00:10"),
        t("2026-11-30 00:15"),
        t("2026-11-30 00:20"),
    ]
    assert out.loc[t("2026-11-30 00:05"), "requests_per_min"] == pytest.approx(10.0)  # 30 in 3 min
    assert out.loc[t("2026-11-30 00:10"), "requests_per_min"] == pytest.approx(20.0)  # 100 in 5 min
    assert out.loc[t("2026-11-30 00:05"), "error_ratio"] == pytest.approx(0.1)
    assert out.loc[t("2026-11-30 00:10"), "p99"] == pytest.approx(1 + 1.5 * 18 / 19)
    assert math.isnan(out.loc[t("2026-11-30 00:15"), "requests_per_min"])  # a gap, not zero
    assert math.isnan(out.loc[t("2026-11-30 00:20"), "error_ratio"])  # no requests: no ratio
    assert out.loc[t("2026-11-30 00:20"), "requests_per_min"] == 0.0


def test_number_formatting() -> None:
    assert format_number(1234567.0) == "1,234,567"
    assert format_number(math.nan) == "—"
    assert format_number(None) == "—"
    assert format_number(12.345, 1, " kWh") == "12.3 kWh"
    assert compact_number(548_640_117) == "548.6 M"
    assert compact_number(999) == "999"
    assert compact_number(math.nan) == "—"

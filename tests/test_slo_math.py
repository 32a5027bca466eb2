"""SLO mathematics against every reference value of shared/reference/slo.md."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import slo
from analytics.counters import reset_aware_deltas

D30, D28, D7 = timedelta(days=30), timedelta(days=28), timedelta(days=7)
H, M = timedelta(hours=1), timedelta(minutes=1)
MS = timedelta(milliseconds=1)


# ---------------------------------------------------------------- budget
@pytest.mark.parametrize(
    ("target", "period", "minutes"),
    [(0.999, D30, 43.2), (0.999, D28, 40.32), (0.995, D30, 216.0), (0.9999, D30, 4.32)],
)
def test_budget_minutes(target: float, period: timedelta, minutes: float) -> None:
    assert slo.budget_minutes(target, period) == pytest.approx(minutes, rel=1e-12)


def test_consumed_and_remaining_example() -> None:
    b = slo.error_budget(bad=900, total=1_500_000, target=0.999)
    assert b.error_ratio == pytest.approx(0.0006)
    assert b.consumed == pytest.approx(0.60)
    assert b.remaining == pytest.approx(0.40)
    assert b.allowed_bad == pytest.approx(1500)
    assert b.state == slo.OK and not b.violated


def test_remaining_goes_negative_when_overspent() -> None:
    b = slo.error_budget(bad=3000, total=1_500_000, target=0.999)
    assert b.consumed == pytest.approx(2.0)
    assert b.remaining == pytest.approx(-1.0)
    assert b.state == slo.EXHAUSTED and b.violated


def test_hundred_percent_target_has_no_budget_and_never_divides_by_zero() -> None:
    with np.errstate(all="raise"):
        b = slo.error_budget(bad=1, total=1000, target=1.0)
        assert b.state == slo.NO_BUDGET
        assert b.budget_fraction == 0.0 and b.allowed_bad == 0.0
        assert math.isnan(b.consumed) and math.isnan(b.remaining)
        assert b.violated
        assert not slo.error_budget(bad=0, total=1000, target=1.0).violated
        assert np.isnan(slo.burn_rate([0.1, 0.0], 1.0)).all()
        assert slo.budget_minutes(1.0, D30) == 0.0
        assert slo.detection_time(H, 14.4, 1.0, 0.5) is None
    assert (slo.window_state([10.0], target=1.0) == slo.NO_BUDGET).all()


def test_no_data_and_minimum_events() -> None:
    assert slo.error_budget(bad=0, total=0, target=0.99).state == slo.NO_DATA
    assert math.isnan(slo.error_budget(bad=0, total=0, target=0.99).error_ratio)
    assert slo.error_budget(bad=1, total=5, target=0.99, min_events=10).state == slo.INSUFFICIENT
    ratio = slo.error_ratio([1, 1, 0], [0, 5, 50], min_events=10)
    assert np.isnan(ratio[0]) and np.isnan(ratio[1]) and ratio[2] == 0.0
    states = slo.window_state([0, 5, 50], min_events=10, target=0.99)
    assert states.tolist() == [slo.NO_DATA, slo.INSUFFICIENT, slo.OK]


def test_invalid_target() -> None:
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="target"):
            slo.error_budget_fraction(bad)


# ---------------------------------------------------------------- burn rate
def test_burn_rate_and_time_to_exhaustion() -> None:
    assert slo.burn_rate(0.001, 0.999) == pytest.approx(1.0)
    assert slo.burn_rate(0.0144, 0.999) == pytest.approx(14.4)
    # Burn rate 1 spends the budget exactly by the end of the period: period / b.
    assert slo.time_to_exhaustion(1.0, D30) == D30
    assert slo.time_to_exhaustion(14.4, D30) == pytest.approx(timedelta(hours=50), abs=MS)
    assert slo.time_to_exhaustion(2.0, D30, remaining=0.4) == timedelta(days=6)
    assert slo.time_to_exhaustion(2.0, D30, remaining=-0.1) == timedelta(0)
    assert slo.time_to_exhaustion(0.0, D30) is None
    assert slo.time_to_exhaustion(math.nan, D30) is None


# ---------------------------------------------------------------- tiers
def _factors(tiers: list[slo.AlertTier]) -> list[float]:
    return [t.factor for t in tiers]


def test_sre_tiers_30d() -> None:
    tiers = slo.alert_tiers(D30)
    assert _factors(tiers) == pytest.approx([14.4, 6.0, 3.0, 1.0])
    assert [(t.severity, slo.window_name(t.long), slo.window_name(t.short)) for t in tiers] == [
        ("page", "1h", "5m"),
        ("page", "6h", "30m"),
        ("ticket", "1d", "2h"),
        ("ticket", "3d", "6h"),
    ]
    assert [t.budget_share for t in tiers] == [0.02, 0.05, 0.10, 0.10]


def test_sre_tiers_28d() -> None:
    assert _factors(slo.alert_tiers(D28)) == pytest.approx([13.44, 5.6, 2.8, 0.9333333333])


def test_tiers_7d_custom_shares() -> None:
    shape = [
        (sev, long, short, share)
        for (sev, long, short, _), share in zip(
            slo.SRE_TIER_SHAPE, (0.08, 0.125, 0.20, 0.42), strict=True
        )
    ]
    assert _factors(slo.alert_tiers(D7, shape)) == pytest.approx([13.44, 3.5, 1.4, 0.98])


def test_alert_factor_formula() -> None:
    assert slo.alert_factor(0.02, D30, H) == pytest.approx(14.4)
    assert slo.alert_factor(0.05, D30, 6 * H) == pytest.approx(6.0)


def test_pyrra_windows_and_absent_alert() -> None:
    t28 = slo.pyrra_tiers(D28)
    assert [(slo.window_name(t.short), slo.window_name(t.long)) for t in t28] == [
        ("5m", "1h"),
        ("30m", "6h"),
        ("2h", "1d"),
        ("6h", "4d"),
    ]
    assert _factors(t28) == [14, 7, 2, 1]
    t14 = slo.pyrra_tiers(timedelta(weeks=2))
    assert [(slo.window_name(t.short), slo.window_name(t.long)) for t in t14] == [
        ("3m", "30m"),
        ("15m", "3h"),
        ("1h", "12h"),
        ("3h", "2d"),
    ]
    assert slo.pyrra_absent_after(0.99) == timedelta(seconds=504 + 120)


def test_detection_time_reference() -> None:
    # T = 99.9 %, 30 d, constant 1.5 % errors: 1h window after 57.6 min, 5m after 4.8 min.
    assert slo.detection_time(H, 14.4, 0.999, 0.015) == pytest.approx(
        timedelta(minutes=57.6), abs=MS
    )
    assert slo.detection_time(5 * M, 14.4, 0.999, 0.015) == pytest.approx(
        timedelta(minutes=4.8), abs=MS
    )
    # ... so the page fires at about 57.6 min, having spent about 2 % of the budget.
    assert slo.budget_spent(0.015, timedelta(minutes=57.6), 0.999, D30) == pytest.approx(0.02)
    # Below the threshold ratio the window never crosses.
    assert slo.detection_time(H, 14.4, 0.999, 0.0144) == pytest.approx(H, abs=MS)
    assert slo.detection_time(H, 14.4, 0.999, 0.01) is None


def test_detection_time_by_simulation() -> None:
    """A constant 1.5 % error ratio from minute 0, evaluated per minute with rolling sums."""
    n = 180
    total = np.full(n + 60, 1000.0)
    bad = np.where(np.arange(n + 60) >= 60, 15.0, 0.0)  # errors start after an hour
    tier = slo.alert_tiers(D30)[0]
    burn = {
        w: slo.burn_rate(
            slo.error_ratio(slo.rolling_sums(bad, int(w / M)), slo.rolling_sums(total, int(w / M))),
            0.999,
        )
        for w in (tier.long, tier.short)
    }
    firing = slo.tier_states(burn, [tier])[tier.name]
    first = int(np.flatnonzero(firing)[0]) - 59  # minutes of errors when it first fires
    assert first == 58  # 57.6 min, at one-minute evaluations: the 58th minute


# ---------------------------------------------------------------- tier states, episodes
def test_tier_states_need_both_windows_and_ignore_nan() -> None:
    tiers = slo.alert_tiers(D30)[:1]
    burn = {H: np.array([20.0, 20.0, 5.0, np.nan]), 5 * M: np.array([20.0, 1.0, 20.0, 20.0])}
    assert slo.tier_states(burn, tiers)["page-1h"].tolist() == [True, False, False, False]
    # Strictly greater, as Sloth's ">" rules.
    at = {H: np.array([14.4]), 5 * M: np.array([14.4])}
    assert not slo.tier_states(at, tiers)["page-1h"][0]


def test_alert_episodes() -> None:
    t = pd.date_range("2024-01-01", periods=8, freq="1min")
    ep = slo.alert_episodes(t, [0, 1, 1, 0, 0, 1, 1, 1])
    assert ep["fired"].tolist() == [t[1], t[5]]
    assert ep["recovered"].iloc[0] == t[3] and pd.isna(ep["recovered"].iloc[1])
    assert ep["evaluations"].tolist() == [2, 3]
    assert slo.alert_episodes(t[:0], []).empty


# ---------------------------------------------------------------- budgeting methods
def _day_night() -> tuple[np.ndarray, np.ndarray]:
    """24 h of 5-minute slices: 12 h day (66,500 requests, no errors per slice),
    12 h night (1,500 requests, 51 errors = 3.4 %)."""
    total = np.concatenate([np.full(144, 66_500.0), np.full(144, 1_500.0)])
    bad = np.concatenate([np.zeros(144), np.full(144, 51.0)])
    return bad, total


def test_occurrences_vs_mean_of_ratios_day_night() -> None:
    bad, total = _day_night()
    good = total - bad
    occurrences_error = 1 - slo.sli_occurrences(good, total)
    ratio_slices_error = 1 - slo.sli_ratio_timeslices(good, total)
    assert occurrences_error == pytest.approx(0.00075)  # 0.075 %
    assert ratio_slices_error == pytest.approx(0.017)  # 1.7 %
    assert ratio_slices_error / occurrences_error == pytest.approx(22.67, abs=0.01)  # ~23x burn
    # The roll-up of the two halves as sum(bad)/sum(total) equals Occurrences.
    assert bad.sum() / total.sum() == pytest.approx(occurrences_error)


def test_timeslices() -> None:
    bad, total = _day_night()
    good_slice, has_data = slo.timeslice_good(total - bad, total, slice_target=0.99)
    assert slo.sli_timeslices(good_slice, has_data) == pytest.approx(0.5)  # nights miss 99 %
    good_slice, has_data = slo.timeslice_good(total - bad, total, slice_target=0.95)
    assert slo.sli_timeslices(good_slice, has_data) == 1.0
    assert math.isnan(slo.sli_timeslices([], []))


def test_zero_traffic_slot_does_not_poison_longer_windows() -> None:
    total = np.array([100.0, 100.0, 0.0, 100.0, 100.0])
    bad = np.array([1.0, 0.0, 0.0, 2.0, 1.0])
    ratios = slo.slice_ratios(total - bad, total)
    assert np.isnan(ratios[2]) and np.isfinite(np.delete(ratios, 2)).all()
    # Sloth-style mean of ratios turns the longer window into NaN ...
    assert np.isnan(np.mean(ratios))
    # ... Observatory's window sums do not.
    sums_bad, sums_total = slo.rolling_sums(bad, 3), slo.rolling_sums(total, 3)
    err = slo.error_ratio(sums_bad, sums_total)
    assert np.isfinite(err).all()
    assert err[3] == pytest.approx(2 / 200)  # window (t-3, t] = slots 1..3, slot 2 empty
    assert slo.sli_occurrences(total - bad, total) == pytest.approx(1 - 4 / 400)
    assert slo.sli_ratio_timeslices(total - bad, total) == pytest.approx(1 - 0.04 / 4)
    # A window that holds only the empty slot has no SLI: no data, not 0 % or 100 %.
    assert np.isnan(slo.error_ratio(slo.rolling_sums(bad, 1), slo.rolling_sums(total, 1))[2])


def test_rolling_sums_right_closed() -> None:
    v = np.arange(1.0, 7.0)  # steps ending at t=1..6
    # window of 2 steps at t=4 holds the steps ending at 3 and 4: (4-2, 4].
    assert slo.rolling_sums(v, 2).tolist() == [1, 3, 5, 7, 9, 11]
    assert slo.rolling_sums([1.0, np.nan, 2.0], 5).tolist() == [1, 1, 3]


def test_maintenance_mask_and_coverage() -> None:
    t = pd.date_range("2024-01-01 00:01", periods=10, freq="1min")
    m = slo.maintenance_mask(t, [(datetime(2024, 1, 1, 0, 3), datetime(2024, 1, 1, 0, 5))])
    # Steps ending at 00:04 and 00:05 lie in (00:03, 00:05]; 00:03 does not.
    assert t[m].strftime("%H:%M").tolist() == ["00:04", "00:05"]
    assert slo.coverage([5, 0], [10, 0])[0] == 0.5 and np.isnan(slo.coverage([0], [0])[0])


def test_dense_steps_marks_missing_steps_as_no_data() -> None:
    f = pd.DataFrame({"ts_utc": pd.to_datetime(["2024-01-01 00:01", "2024-01-01 00:03"]), "x": 1.0})
    d = slo.dense_steps(f, datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 3), M)
    assert len(d) == 3 and np.isnan(d["x"].iloc[1])


def test_slo_state_order() -> None:
    tiers = slo.alert_tiers(D30)
    assert slo.slo_state(0.5, {"page-1h": False, "ticket-1d": True}, tiers) == slo.TICKET
    assert slo.slo_state(0.5, {"page-1h": True, "ticket-1d": True}, tiers) == slo.PAGE
    assert slo.slo_state(-0.1, {"page-1h": True}, tiers) == slo.EXHAUSTED
    assert slo.slo_state(math.nan, {}, tiers, slo.NO_DATA) == slo.NO_DATA
    assert slo.slo_state(0.9, {}, tiers) == slo.OK


# ---------------------------------------------------------------- counters
def _reset_counter() -> tuple[np.ndarray, np.ndarray]:
    """A counter at 1/s sampled every 15 s; the process restarts at 607 s (just after
    minute 10), losing the 7 increments since the last scrape, and counts from 0."""
    t = np.arange(0.0, 901.0, 15.0)
    v = np.where(t < 607, t, t - 607)
    return t, v


def test_counter_reset_exact_vs_prometheus_extrapolation() -> None:
    t, v = _reset_counter()
    start, end = 450.0, 750.0  # 5-minute window; truth: 300 increments happened in it
    inside = (t > start) & (t <= end)
    prev = int(np.flatnonzero(t == start)[0])
    # Exact reset-aware deltas, with the previous sample (what the store holds): 293.
    exact = reset_aware_deltas(v[prev : int(np.flatnonzero(inside)[-1]) + 1]).sum()
    assert exact == 293
    # Prometheus 3 (left-open range) extrapolates: 278 x 300 / 285 = 292.63.
    assert slo.prometheus_increase(t, v, start, end) == pytest.approx(292.63, abs=0.005)
    # Prometheus 2 (closed range) selects the sample at the window start too: 293, no
    # extrapolation when samples sit on both edges.
    assert slo.prometheus_increase(t, v, start, end, left_open=False) == pytest.approx(293)


def test_prometheus_increase_extrapolation_rules() -> None:
    t = np.array([10.0, 20.0, 30.0])
    v = np.array([5.0, 6.0, 7.0])
    # Gaps of 10 s < 1.1 x 10 s: extrapolate all the way to (0, 40].
    assert slo.prometheus_increase(t, v, 0.0, 40.0) == pytest.approx(2 * 40 / 20)
    # Gaps of 50 s: only half an interval each side.
    assert slo.prometheus_increase(t, v, -40.0, 80.0) == pytest.approx(2 * 30 / 20)
    # Never extrapolated below the counter's zero point.
    assert slo.prometheus_increase(t, np.array([0.5, 1.5, 2.5]), 0.0, 30.0) == pytest.approx(
        2 * 25 / 20
    )
    assert math.isnan(slo.prometheus_increase(t[:1], v[:1], 0.0, 40.0))


# ---------------------------------------------------------------- histograms
LE = [0.3, 0.5, 1.0, 2.0, math.inf]


def test_threshold_at_bucket_bound_is_exact() -> None:
    tb = slo.threshold_buckets(LE, 1.0)
    assert tb.exact and tb.lower == tb.upper == 1.0
    assert slo.good_below(LE, [10, 30, 80, 95, 100], 1.0) == 80


def test_threshold_inside_bucket_interpolates_and_is_flagged() -> None:
    tb = slo.threshold_buckets(LE, 1.5)
    assert not tb.exact and (tb.lower, tb.upper) == (1.0, 2.0) and tb.fraction == 0.5
    assert slo.good_below(LE, [10, 30, 80, 95, 100], 1.5) == pytest.approx(87.5)
    # Below the first bound the bucket starts at 0.
    assert slo.good_below(LE, [10, 30, 80, 95, 100], 0.15) == pytest.approx(5.0)
    # Above the last finite bound: the +Inf bucket cannot be interpolated.
    above = slo.threshold_buckets(LE, 5.0)
    assert not above.exact and slo.good_below(LE, [10, 30, 80, 95, 100], 5.0) == 95
    rows = slo.good_below(LE, [[10, 30, 80, 95, 100], [0, 0, 0, 0, 0]], 1.0)
    assert rows.tolist() == [80, 0]


# ---------------------------------------------------------------- calendar windows
def test_calendar_month_in_time_zone() -> None:
    start, end = slo.calendar_period(
        datetime(2024, 3, 15, 12), "1M", datetime(2024, 1, 1), "America/New_York"
    )
    assert (start, end) == (datetime(2024, 3, 1, 5), datetime(2024, 4, 1, 4))  # DST in March
    # Right-closed: the instant a month ends belongs to that month.
    s2, e2 = slo.calendar_period(
        datetime(2024, 4, 1, 4), "1M", datetime(2024, 1, 1), "America/New_York"
    )
    assert (s2, e2) == (start, end)
    q = slo.calendar_period(datetime(2024, 5, 2), "1Q", datetime(2024, 1, 1), "UTC")
    assert q == (datetime(2024, 4, 1), datetime(2024, 7, 1))
    w = slo.calendar_period(datetime(2024, 5, 2, 10), "1w", datetime(2024, 1, 1), "UTC")
    assert w == (datetime(2024, 4, 29), datetime(2024, 5, 6))  # ISO weeks from a Monday
    with pytest.raises(ValueError, match="calendar duration"):
        slo.calendar_period(datetime(2024, 5, 2), "1x", datetime(2024, 1, 1))


def test_window_names() -> None:
    assert [slo.window_name(w) for w in slo.BURN_WINDOWS.values()] == list(slo.BURN_WINDOWS)
    assert slo.window_name(D30) == "30d" and slo.window_name(timedelta(seconds=90)) == "90s"

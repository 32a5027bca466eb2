"""Exact counter arithmetic: reset-aware deltas and right-closed step attribution."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.counters import reset_aware_deltas, step_ends

# --------------------------------------------------------------------------- helpers


def _prometheus_increase(t_s: np.ndarray, v: np.ndarray, start_s: float, end_s: float) -> float:
    """Prometheus's ``increase()`` over ``(start, end]`` (promql/functions.go extrapolatedRate).

    Only the samples inside the range are seen; the raw increase between the first and
    last of them is extrapolated towards the range edges (half an interval at most
    beyond 1.1 average intervals, never below a counter value of zero).
    """
    inside = (t_s > start_s) & (t_s <= end_s)
    t, x = t_s[inside], v[inside]
    raw = float(reset_aware_deltas(x).sum())
    sampled = t[-1] - t[0]
    avg = sampled / (len(t) - 1)
    to_start, to_end = t[0] - start_s, end_s - t[-1]
    if to_start >= avg * 1.1:
        to_start = avg / 2
    if to_end >= avg * 1.1:
        to_end = avg / 2
    if raw > 0 and x[0] >= 0:
        to_start = min(to_start, sampled * (x[0] / raw))
    return raw * (sampled + to_start + to_end) / sampled


def _slo_reference_series() -> tuple[np.ndarray, np.ndarray]:
    """The reference case of slo.md, "Counter resets".

    A counter that grows at 1/s is scraped every 15 s, at t = 8, 23, 38, ... s (the
    scrape phase is 8 s).  Its value is the number of seconds since the process
    (re)started; the process starts at t = 0 and restarts at minute 10 (t = 600 s).
    The window is the 5 minutes (480 s, 780 s], so the truth is 300.

    - The scrape before the window (t = 473) is the baseline of the first delta.
    - The scrapes around the restart are t = 593 (value 593) and t = 608 (value 8):
      the reset-aware delta is 8, but the true increase is 15 (7 s before the restart
      were never scraped).  Sum of the 20 deltas: 19 x 15 + 8 = 293.
    - Prometheus sees only the 20 in-window samples (488 ... 773): raw 18 x 15 + 8 =
      278, extrapolated over 8 s + 285 s + 7 s: 278 x 300 / 285 = 292.63.
    """
    t = np.arange(8, 900, 15, dtype=np.float64)
    v = np.where(t < 600, t, t - 600)
    return t, v


# --------------------------------------------------------------------------- deltas


def test_plain_increase_and_first_sample_has_no_delta() -> None:
    d = reset_aware_deltas([5.0, 7.0, 7.0, 10.5])
    assert d.dtype == np.float64
    np.testing.assert_array_equal(d, [2.0, 0.0, 3.5])


@pytest.mark.parametrize("values", [[], [42.0]])
def test_fewer_than_two_samples_give_no_delta(values: list[float]) -> None:
    d = reset_aware_deltas(values)
    assert d.shape == (0,)
    assert d.dtype == np.float64


def test_reset_counts_the_new_value_from_zero() -> None:
    # 100 -> 110 (+10), reset: 3 (+3), 9 (+6), reset to 0 (+0), 4 (+4)
    d = reset_aware_deltas([100, 110, 3, 9, 0, 4])
    np.testing.assert_array_equal(d, [10, 3, 6, 0, 4])
    assert d.sum() == 23


def test_reset_to_exact_previous_value_is_not_a_reset() -> None:
    # equal value: a zero increase, never "v" (which would count 50 twice)
    np.testing.assert_array_equal(reset_aware_deltas([50, 50, 51]), [0, 1])


def test_integer_input_is_converted_to_float() -> None:
    d = reset_aware_deltas(np.array([1, 4, 2], dtype=np.int64))
    assert d.dtype == np.float64
    np.testing.assert_array_equal(d, [3.0, 2.0])


def test_deltas_of_a_split_series_add_up_with_the_shared_boundary_sample() -> None:
    v = np.array([0, 3, 9, 2, 8, 20, 1, 4], dtype=np.float64)
    whole = reset_aware_deltas(v).sum()
    # two adjacent windows: the second uses the last sample of the first as baseline
    assert reset_aware_deltas(v[:4]).sum() + reset_aware_deltas(v[3:]).sum() == whole
    assert whole == 3 + 6 + 2 + 6 + 12 + 1 + 3


def test_slo_reference_case_raw_deltas_give_293() -> None:
    t, v = _slo_reference_series()
    start, end = 480.0, 780.0
    # the deltas that belong to (start, end] are those whose LATER sample is inside;
    # delta i ends at sample i + 1
    later = t[1:]
    d = reset_aware_deltas(v)
    in_window = (later > start) & (later <= end)
    assert in_window.sum() == 20
    assert d[in_window].sum() == 293.0
    # the restart costs exactly the 7 unscraped seconds before it
    assert d[(later > 600) & (later <= 615)].tolist() == [8.0]
    truth = end - start  # 1/s over 300 s
    assert truth == 300.0


def test_slo_reference_case_prometheus_extrapolation_gives_292_63() -> None:
    t, v = _slo_reference_series()
    assert _prometheus_increase(t, v, 480.0, 780.0) == pytest.approx(292.63, abs=0.005)
    assert _prometheus_increase(t, v, 480.0, 780.0) == pytest.approx(278 * 300 / 285)


def test_extrapolated_increases_do_not_add_up_but_exact_deltas_do() -> None:
    t, v = _slo_reference_series()
    d = reset_aware_deltas(v)
    later = t[1:]

    def exact(a: float, b: float) -> float:
        return float(d[(later > a) & (later <= b)].sum())

    assert exact(480, 630) + exact(630, 780) == exact(480, 780) == 293.0
    prom = _prometheus_increase(t, v, 480, 630) + _prometheus_increase(t, v, 630, 780)
    assert prom != pytest.approx(_prometheus_increase(t, v, 480, 780), abs=0.01)


# --------------------------------------------------------------------------- steps


def test_step_ends_are_right_closed() -> None:
    step = 60_000
    ts = [1, 59_999, 60_000, 60_001, 119_999, 120_000, 120_001]
    np.testing.assert_array_equal(
        step_ends(ts, step), [60_000, 60_000, 60_000, 120_000, 120_000, 120_000, 180_000]
    )


def test_sample_exactly_on_a_boundary_belongs_to_the_step_ending_there() -> None:
    step = 15_000
    ks = np.arange(0, 50)
    np.testing.assert_array_equal(step_ends(ks * step, step), ks * step)


def test_step_ends_at_zero_and_negative_times() -> None:
    step = 1_000
    np.testing.assert_array_equal(
        step_ends([0, -1, -999, -1000, -1001], step), [0, 0, 0, -1000, -1000]
    )


def test_step_ends_realistic_epoch_milliseconds() -> None:
    step = 60_000
    t0 = 1_700_000_040_000  # a multiple of 60 s
    assert t0 % step == 0
    got = step_ends([t0, t0 + 1, t0 + 59_999, t0 + 60_000], step)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [t0, t0 + step, t0 + step, t0 + step])


@pytest.mark.parametrize("step", [0, -60_000])
def test_step_must_be_positive(step: int) -> None:
    with pytest.raises(ValueError, match="step must be positive"):
        step_ends([1, 2, 3], step)


def test_reference_case_attributed_to_minute_steps() -> None:
    t, v = _slo_reference_series()
    later_ms = (t[1:] * 1000).astype(np.int64)
    d = reset_aware_deltas(v)
    ends = step_ends(later_ms, 60_000)
    inside = (later_ms > 480_000) & (later_ms <= 780_000)
    per_step = {int(e): float(d[inside & (ends == e)].sum()) for e in np.unique(ends[inside])}
    # five minute steps ending at 540, 600, 660, 720, 780 s; 4 scrapes each
    assert sorted(per_step) == [540_000, 600_000, 660_000, 720_000, 780_000]
    assert per_step[600_000] == 60.0
    assert per_step[660_000] == 53.0  # the restart step loses 7
    assert sum(per_step.values()) == 293.0

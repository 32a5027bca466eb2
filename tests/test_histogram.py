"""histogram_quantile against hand-computed Prometheus semantics (promql/quantile.go)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.histogram import decumulate, histogram_quantile

INF = math.inf
# 10 observations <= 0.1, 20 in (0.1, 0.5], 10 in (0.5, 1], 10 above 1: 50 in all
LE = [0.1, 0.5, 1.0, INF]
CUM = [10.0, 30.0, 40.0, 50.0]


def _q(q: float, le=LE, cum=CUM) -> float:
    out = histogram_quantile(q, le, cum)
    assert np.ndim(out) == 0
    return float(out)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # rank 25 -> bucket (0.1, 0.5], 15 of its 20: 0.1 + 0.4 * 15/20
        (0.5, 0.4),
        # rank 17.5 -> 0.1 + 0.4 * 7.5/20
        (0.35, 0.25),
        # rank 37.5 -> bucket (0.5, 1], 7.5 of 10: 0.5 + 0.5 * 0.75
        (0.75, 0.875),
        # rank exactly 40 = cumulative count of le=1 -> first bucket reaching it: 1.0
        (0.8, 1.0),
        # rank exactly 10 -> the top of the lowest bucket
        (0.2, 0.1),
    ],
)
def test_linear_interpolation_inside_the_bucket(q: float, expected: float) -> None:
    assert _q(q) == pytest.approx(expected, rel=1e-12)


def test_lowest_bucket_starts_at_zero_when_its_bound_is_positive() -> None:
    # rank 5 of 10 in (0, 0.1] -> 0.05 (not interpolated from -inf or from 0.1)
    assert _q(0.1) == pytest.approx(0.05)
    assert _q(0.02) == pytest.approx(0.01)  # rank 1 -> 0.1 * 1/10
    # q = 0 with observations in the lowest bucket: its start, 0
    assert _q(0.0) == 0.0


def test_rank_in_inf_bucket_returns_highest_finite_bound() -> None:
    assert _q(0.81) == 1.0  # rank 40.5 > 40
    assert _q(0.99) == 1.0
    assert _q(1.0) == 1.0
    # everything in +Inf: any q gives the highest finite bound
    assert _q(0.5, [0.1, 0.2, INF], [0, 0, 7]) == 0.2


def test_lowest_bucket_with_non_positive_bound_returns_that_bound() -> None:
    le = [-1.0, 0.0, 1.0, INF]
    cum = [2.0, 4.0, 8.0, 8.0]
    assert _q(0.1, le, cum) == -1.0  # rank 0.8 in the lowest bucket (upper <= 0)
    assert _q(0.25, le, cum) == -1.0  # rank 2
    assert _q(0.375, le, cum) == pytest.approx(-0.5)  # rank 3: -1 + 1 * 1/2
    assert _q(0.75, le, cum) == pytest.approx(0.5)  # rank 6: 0 + 1 * 2/4
    # lowest bound exactly 0 is also "<= 0"
    assert _q(0.1, [0.0, 1.0, INF], [5.0, 10.0, 10.0]) == 0.0


def test_q_zero_with_empty_lowest_bucket_is_nan_like_prometheus() -> None:
    # rank 0 -> lowest bucket (0 >= 0), count 0: 0 + 0.1 * 0/0 = NaN in Go too
    assert math.isnan(_q(0.0, [0.1, 0.5, INF], [0.0, 5.0, 10.0]))


# --------------------------------------------------------------------------- special cases


@pytest.mark.parametrize(
    ("le", "cum"),
    [
        ([0.1, 0.5, 1.0], [10.0, 30.0, 40.0]),  # no +Inf bucket
        ([INF], [10.0]),  # fewer than two buckets
        ([1.0], [10.0]),
        ([0.1, 0.5, 1.0, INF], [0.0, 0.0, 0.0, 0.0]),  # zero observations
    ],
    ids=["no-inf", "only-inf", "single-finite", "zero-count"],
)
def test_nan_cases(le: list[float], cum: list[float]) -> None:
    for q in (0.0, 0.5, 0.99, 1.0):
        assert math.isnan(_q(q, le, cum))


def test_q_out_of_range_gives_infinities_before_any_bucket_check() -> None:
    assert _q(-0.01) == -INF
    assert _q(1.01) == INF
    assert _q(-1, [1.0], [3.0]) == -INF  # even for invalid buckets, as in Prometheus
    assert _q(2, [0.1, 0.5], [0.0, 0.0]) == INF
    assert math.isnan(_q(math.nan))


def test_non_monotone_cumulative_counts_are_fixed_by_running_max() -> None:
    # le=0.5 reports 8 < 10: Prometheus lifts it to 10 -> [10, 10, 30, 40]
    le = [0.1, 0.5, 1.0, INF]
    cum = [10.0, 8.0, 30.0, 40.0]
    # rank 20 -> bucket (0.5, 1], 10 of its 20: 0.75 (unfixed data would give 0.7727)
    assert _q(0.5, le, cum) == pytest.approx(0.75)
    assert _q(0.5, le, cum) == _q(0.5, le, [10.0, 10.0, 30.0, 40.0])


def test_running_max_also_raises_the_total() -> None:
    # +Inf bucket 25 < 30 of le=1: the total becomes 30, rank 15 -> 0.1 + 0.4 * 5/10
    le = [0.1, 0.5, 1.0, INF]
    assert _q(0.5, le, [10.0, 20.0, 30.0, 25.0]) == pytest.approx(0.3)


def test_unsorted_le_input_is_sorted_with_its_counts() -> None:
    order = [2, 3, 0, 1]
    le = [LE[i] for i in order]
    cum = [CUM[i] for i in order]
    for q in (0.0, 0.1, 0.35, 0.5, 0.75, 0.8, 0.99):
        assert _q(q, le, cum) == _q(q)
    assert _q(0.5, le, cum) == pytest.approx(0.4)


def test_vllm_latency_buckets_p99() -> None:
    le = [
        0.3,
        0.5,
        0.8,
        1,
        1.5,
        2,
        2.5,
        5,
        10,
        15,
        20,
        30,
        40,
        50,
        60,
        120,
        240,
        480,
        960,
        1920,
        7680,
        INF,
    ]
    per_bucket = np.zeros(len(le))
    per_bucket[[1, 3, 7, 9]] = [500, 300, 150, 50]  # 1000 requests
    cum = np.cumsum(per_bucket)
    # p99 rank 990 -> bucket (10, 15] holds 951..1000: 10 + 5 * 40/50 = 14
    assert _q(0.99, le, cum) == pytest.approx(14.0)
    # p50 rank 500 -> top of (0.3, 0.5]
    assert _q(0.5, le, cum) == pytest.approx(0.5)


# --------------------------------------------------------------------------- vectorised


def test_vectorised_rows_equal_per_row_results() -> None:
    rng = np.random.default_rng(7)
    le = np.array([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, INF])
    per = rng.integers(0, 20, size=(40, le.size)).astype(float)
    per[3] = 0.0  # zero observations -> NaN
    per[5, :-1] = 0.0  # all in +Inf
    per[7, 0] = 0.0  # empty lowest bucket
    cum = np.cumsum(per, axis=1)
    cum[11, 2] = cum[11, 1] - 3  # a non-monotone row
    shuffle = rng.permutation(le.size)
    for q in (0.0, 0.01, 0.5, 0.9, 0.99, 1.0, -0.5, 1.5):
        rows = histogram_quantile(q, le, cum)
        assert rows.shape == (40,)
        singles = np.array([histogram_quantile(q, le, c) for c in cum])
        np.testing.assert_array_equal(rows, singles)
        # the same with le (and columns) in a shuffled order
        np.testing.assert_array_equal(histogram_quantile(q, le[shuffle], cum[:, shuffle]), rows)
    p50 = histogram_quantile(0.5, le, cum)
    assert math.isnan(p50[3])
    assert p50[5] == 2.5


def test_vectorised_special_cases_keep_the_row_shape() -> None:
    cum = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 5.0]])
    assert histogram_quantile(-1, [1.0, INF], cum).tolist() == [-INF] * 3
    assert histogram_quantile(2, [1.0, INF], cum).tolist() == [INF] * 3
    assert np.isnan(histogram_quantile(0.5, [1.0, 2.0], cum)).all()
    np.testing.assert_allclose(histogram_quantile(0.5, [1.0, INF], cum), [1.0, 2 / 3, 1.0])


# --------------------------------------------------------------------------- decumulate


def test_decumulate_gives_per_bucket_counts() -> None:
    np.testing.assert_array_equal(decumulate(CUM), [10.0, 20.0, 10.0, 10.0])
    assert decumulate(CUM).sum() == CUM[-1]


def test_decumulate_forces_monotonicity_and_never_goes_negative() -> None:
    got = decumulate([10.0, 8.0, 30.0, 25.0])
    np.testing.assert_array_equal(got, [10.0, 0.0, 20.0, 0.0])
    assert (got >= 0).all()


def test_decumulate_works_on_the_last_axis() -> None:
    cum = np.array([[1.0, 3.0, 6.0], [0.0, 0.0, 4.0], [5.0, 2.0, 7.0]])
    np.testing.assert_array_equal(decumulate(cum), [[1, 2, 3], [0, 0, 4], [5, 0, 2]])
    # round trip: cumsum of decumulated counts is the running max of the input
    np.testing.assert_array_equal(
        np.cumsum(decumulate(cum), axis=-1), np.maximum.accumulate(cum, axis=-1)
    )

"""Drift metrics (analytics/drift.py) against the reference vectors of stats.md and raw samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analytics import drift
from analytics.drift import Buckets
from analytics.histogram import histogram_quantile

P = [0.25, 0.25, 0.25, 0.25]
Q = [0.1, 0.2, 0.3, 0.4]
CHI_REF = [16, 18, 16, 14, 12, 12]
CHI_CUR = [16, 16, 16, 16, 16, 8]
PROM_DEFAULT = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FINE = tuple(np.round(np.arange(0.05, 20.0001, 0.05), 4))


def bucketed(samples: np.ndarray, bounds: tuple[float, ...]) -> Buckets:
    le = np.append(np.asarray(bounds, dtype=float), np.inf)
    cumulative = np.array([(samples <= b).sum() for b in le], dtype=float)
    return Buckets.from_cumulative(le, cumulative)


# ------------------------------------------------------------------ reference vectors
def test_psi_reference_vector() -> None:
    assert drift.psi(P, Q) == pytest.approx(0.228217, abs=1e-6)


def test_js_distance_reference_vector_both_bases() -> None:
    assert drift.js_distance(P, Q) == pytest.approx(0.200503, abs=1e-6)  # base 2 (default)
    assert drift.js_distance(P, Q, base=math.e) == pytest.approx(0.166930, abs=1e-6)
    assert drift.js_distance(P, Q) == pytest.approx(
        drift.js_distance(P, Q, base=math.e) / math.sqrt(math.log(2)), rel=1e-12
    )


def test_kl_reference_vector() -> None:
    assert drift.kl_divergence(P, Q) == pytest.approx(0.106440, abs=1e-6)


def test_chi_square_reference_vector_and_doubled_reference() -> None:
    assert drift.chi_square_p(CHI_REF, CHI_CUR) == pytest.approx(0.67309, abs=1e-5)
    doubled = [2 * c for c in CHI_REF]
    assert drift.chi_square_p(doubled, CHI_CUR) == pytest.approx(0.67309, abs=1e-5)


def test_hellinger_reference_vector() -> None:
    assert drift.hellinger(CHI_REF, CHI_CUR) == pytest.approx(0.06812, abs=1e-5)
    assert drift.hellinger(CHI_CUR, CHI_REF) == pytest.approx(0.06812, abs=1e-5)


def test_g_test_reference_vector() -> None:
    assert drift.g_test_p([5, 5, 8], [4, 6, 8]) == pytest.approx(0.8176, abs=1e-4)


def test_psi_epsilon_for_empty_buckets_as_evidently() -> None:
    # Evidently replaces a zero share by 1e-4 without re-normalising.
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.4, 0.2])
    pe = np.array([0.5, 0.5, 1e-4])
    expected = float(np.sum((q - pe) * np.log(q / pe)))
    assert drift.psi(p, q) == pytest.approx(expected, rel=1e-12)
    assert drift.psi(P, P) == 0.0


# ------------------------------------------------------------------ buckets
def test_from_cumulative_monotone_dedup_and_inf() -> None:
    # "1" and "1.0" are one bucket (added); a non-monotone cumulative is repaired by a
    # running maximum as histogram_quantile does; +Inf is added when missing.
    h = Buckets.from_cumulative([0.5, 1.0, 1.0, 2.0], [3, 4, 2, 5])
    assert list(h.le) == [0.5, 1.0, 2.0, math.inf]
    assert list(h.counts) == [3, 3, 0, 0]  # cumulative 3, 6, 6(max of 5), 6
    h2 = Buckets.from_cumulative([1, 2, math.inf, 0.5], [4, 6, 10, 1])
    assert list(h2.counts) == [1, 3, 2, 4]
    assert h2.total == 10


def test_quantile_matches_histogram_quantile() -> None:
    rng = np.random.default_rng(1)
    h = bucketed(rng.lognormal(-1, 0.7, 5000), PROM_DEFAULT)
    for q in (0.5, 0.9, 0.99):
        assert h.quantile(q) == pytest.approx(
            float(histogram_quantile(q, h.le, h.cumulative())), rel=1e-12
        )


def test_rebin_exact_on_shared_bounds_and_conserves_total() -> None:
    rng = np.random.default_rng(2)
    x = rng.lognormal(0, 1, 4000)
    fine = bucketed(x, (0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
    coarse = drift.rebin(fine, [0.5, 2.5, 10.0])
    assert list(coarse.cumulative()) == [
        (x <= 0.5).sum(),
        (x <= 2.5).sum(),
        (x <= 10).sum(),
        x.size,
    ]
    split = drift.rebin(fine, [0.75, 1.0])  # 0.75 halfway inside (0.5, 1]
    assert split.total == pytest.approx(x.size)
    assert split.cumulative()[0] == pytest.approx(
        (x <= 0.5).sum() + 0.5 * ((x > 0.5) & (x <= 1)).sum()
    )


def test_align_different_layouts_uses_shared_bounds() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 0.8, 20_000)
    a = bucketed(x, (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0))  # vLLM-like
    b = bucketed(x, (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))  # Prometheus-like
    ra, rb = drift.align(a, b)
    assert list(ra.le) == [0.5, 1.0, 2.5, 5.0, 10.0, math.inf]
    np.testing.assert_allclose(ra.counts, rb.counts)  # same samples: identical after re-binning
    assert drift.psi(ra.counts, rb.counts) == 0.0
    # Few shared bounds: the coarser layout inside the common range; only the finer
    # side is interpolated, so the same samples give a small (not zero) PSI.
    c = bucketed(x, (0.4, 0.7, 1.2, 3.0))
    rc, rb2 = drift.align(c, b)
    # Inside the common range [0.4, 3.0] b has 3 bounds, c has 4: b's layout is used.
    assert list(rc.le) == [0.5, 1.0, 2.5, math.inf]
    np.testing.assert_allclose(rb2.cumulative()[:-1], [(x <= v).sum() for v in (0.5, 1, 2.5)])
    assert rb2.total == pytest.approx(b.total)
    assert drift.psi(rc.counts, rb2.counts) < 0.03  # the binning error of non-nested layouts


# ------------------------------------------------------------------ against raw samples
def test_ks_on_bucket_bounds_is_a_lower_bound() -> None:
    rng = np.random.default_rng(4)
    for shift in (1.0, 1.1, 1.3):
        a = rng.lognormal(-1.5, 0.8, 20_000)
        b = rng.lognormal(-1.5, 0.8, 20_000) * shift
        exact = stats.ks_2samp(a, b).statistic
        d, p = drift.ks_edges(bucketed(a, PROM_DEFAULT), bucketed(b, PROM_DEFAULT))
        assert d <= exact + 1e-12
        assert 0 <= p <= 1


def test_wasserstein_close_to_raw_samples_on_fine_buckets() -> None:
    rng = np.random.default_rng(5)
    a = rng.lognormal(0, 0.5, 20_000)
    b = rng.lognormal(0.2, 0.5, 20_000)
    exact = stats.wasserstein_distance(a, b)
    w = drift.wasserstein(bucketed(a, FINE), bucketed(b, FINE))
    assert w == pytest.approx(exact, rel=0.02)
    exact_norm = exact / np.std(a)
    assert drift.wasserstein_norm(bucketed(a, FINE), bucketed(b, FINE)) == pytest.approx(
        exact_norm, rel=0.03
    )


def test_wasserstein_piecewise_linear_crossing() -> None:
    # Two one-bucket-wide uniform distributions on (0, 1] and (1, 2]: W1 = 1.
    a = Buckets(np.array([1.0, 2.0, math.inf]), np.array([10.0, 0.0, 0.0]))
    b = Buckets(np.array([1.0, 2.0, math.inf]), np.array([0.0, 10.0, 0.0]))
    assert drift.wasserstein(a, b) == pytest.approx(1.0)
    # Uniform (0, 2] vs uniform (0, 1] + (1, 2] halves: same distribution.
    c = Buckets(np.array([2.0, math.inf]), np.array([10.0, 0.0]))
    d = Buckets(np.array([1.0, 2.0, math.inf]), np.array([5.0, 5.0, 0.0]))
    assert drift.wasserstein(c, d) == pytest.approx(0.0, abs=1e-12)


def test_moments_uniform_within_buckets() -> None:
    h = Buckets(np.array([1.0, 2.0, math.inf]), np.array([1.0, 1.0, 0.0]))
    mean, sd = h.moments()  # uniform on (0, 2]
    assert mean == pytest.approx(1.0)
    assert sd == pytest.approx(2 / math.sqrt(12))


# ------------------------------------------------------------------ verdicts
def _by_metric(results: list[drift.MetricResult]) -> dict[str, drift.MetricResult]:
    return {r.metric: r for r in results}


def test_insufficient_data_is_not_a_verdict() -> None:
    ref = Buckets(np.array([1.0, 2.0, math.inf]), np.array([50.0, 40.0, 10.0]))
    cur = Buckets(np.array([1.0, 2.0, math.inf]), np.array([10.0, 40.0, 50.0]))
    res = _by_metric(drift.compare_histograms(ref, cur, min_count=1000))
    assert {r.verdict for r in res.values()} == {"insufficient data"}
    assert res["psi"].value > 0.25  # computed, but not judged


def test_p_values_never_alarm_at_large_counts() -> None:
    rng = np.random.default_rng(6)
    a = rng.lognormal(-1.5, 0.8, 200_000)
    b = rng.lognormal(-1.5, 0.8, 200_000) * 1.03  # 3% shift: tiny effect, huge N
    res = _by_metric(drift.compare_histograms(bucketed(a, PROM_DEFAULT), bucketed(b, PROM_DEFAULT)))
    assert res["chi2_p"].value < 1e-6 and res["ks_p"].value < 1e-6
    assert res["chi2_p"].verdict == "ok" and res["ks_p"].verdict == "ok"
    assert drift.worst([r.verdict for r in res.values()]) == "ok"


def test_fixed_thresholds_fire_and_are_named() -> None:
    rng = np.random.default_rng(7)
    a = rng.lognormal(-1.5, 0.8, 20_000)
    b = rng.lognormal(-1.5, 0.8, 20_000) * 2.0
    res = _by_metric(drift.compare_histograms(bucketed(a, PROM_DEFAULT), bucketed(b, PROM_DEFAULT)))
    assert res["psi"].verdict == "critical"
    assert res["psi"].threshold == 0.25
    assert "fixed >= 0.25 (critical)" in res["psi"].fired
    assert res["js"].verdict == "warning" and "fixed >= 0.1" in res["js"].fired
    assert res["p50_shift"].value == pytest.approx(1.0, abs=0.15)
    assert res["p50_shift"].detail["current"] > res["p50_shift"].detail["reference"]


def test_learned_threshold_mean_plus_three_sigma_and_robust() -> None:
    assert drift.learned_threshold([1.0, 2.0, 3.0]) == pytest.approx(2.0 + 3.0 * 1.0)
    assert math.isnan(drift.learned_threshold([1.0, 2.0]))
    # Robust: median + 3 x 1.4826 x MAD; two drifted chunks barely move it.
    clean = [0.010, 0.012, 0.011, 0.009, 0.010]
    assert drift.learned_threshold(clean, robust=True) == pytest.approx(0.010 + 3 * 1.4826 * 0.001)
    contaminated = [*clean, 0.4, 0.5]
    assert drift.learned_threshold(contaminated, robust=True) < 0.03
    assert drift.learned_threshold(contaminated) > 0.5  # mean + 3 sigma is swamped


def test_learned_threshold_and_rules() -> None:
    rng = np.random.default_rng(8)
    chunks = [bucketed(rng.lognormal(-1.5, 0.8, 50_000), PROM_DEFAULT) for _ in range(7)]
    ref = Buckets(chunks[0].le, np.sum([c.counts for c in chunks], axis=0))
    same = bucketed(rng.lognormal(-1.5, 0.8, 50_000), PROM_DEFAULT)
    shifted = bucketed(rng.lognormal(-1.5, 0.8, 50_000) * 1.15, PROM_DEFAULT)
    quiet = _by_metric(drift.compare_histograms(ref, same, chunks))
    assert quiet["psi"].verdict == "ok", quiet["psi"]
    assert quiet["psi"].learned < 0.01
    # A 15% shift: far above the learned threshold, below the customary 0.1.
    both = _by_metric(drift.compare_histograms(ref, shifted, chunks))
    assert both["psi"].value < 0.1 and both["psi"].value > both["psi"].learned
    assert both["psi"].verdict == "ok"  # "both": an effect size is needed too
    either = _by_metric(drift.compare_histograms(ref, shifted, chunks, rule="either"))
    assert either["psi"].verdict == "warning"
    assert either["psi"].fired.startswith("learned >=")
    assert "7 reference chunks" in either["psi"].fired
    assert either["psi"].threshold == pytest.approx(either["psi"].learned)
    learned = _by_metric(drift.compare_histograms(ref, shifted, chunks, rule="learned"))
    assert learned["psi"].verdict == "warning"
    fixed = _by_metric(drift.compare_histograms(ref, shifted, chunks, rule="fixed"))
    assert fixed["psi"].verdict == "ok"


def test_fixed_threshold_inside_reference_variability_does_not_alarm() -> None:
    # Small noisy chunks: the customary 0.1 is crossed by noise alone; the learned
    # threshold (rule "both") keeps it quiet and the note says why.
    r = drift.judge("psi", 0.12, 5000, 5000, learned=0.2, n_chunks=7)
    assert r.verdict == "ok" and r.fired == ""
    assert "within the reference's own variability" in r.note
    assert r.threshold == 0.1
    fired = drift.judge("psi", 0.3, 5000, 5000, learned=0.2, n_chunks=7)
    assert fired.verdict == "critical" and fired.threshold == 0.25
    assert fired.fired.startswith("fixed >= 0.25 (critical) and learned >= 0.2")
    alone = drift.judge("psi", 0.12, 5000, 5000)  # nothing learned: fixed alone
    assert alone.verdict == "warning" and "fixed threshold alone" in alone.note


def test_compare_values_gauge_drift() -> None:
    rng = np.random.default_rng(9)
    ref = rng.normal(0.83, 0.004, 7 * 1440)
    chunks = np.split(ref, 7)
    quiet = _by_metric(drift.compare_values(ref, rng.normal(0.83, 0.004, 1440), chunks))
    assert drift.worst([r.verdict for r in quiet.values()]) == "ok"
    dropped = _by_metric(drift.compare_values(ref, rng.normal(0.78, 0.004, 1440), chunks))
    assert dropped["psi"].verdict == "critical"
    assert dropped["wasserstein"].value == pytest.approx(0.05 / 0.004, rel=0.05)
    few = _by_metric(drift.compare_values(ref, [0.5, 0.5], chunks))
    assert few["psi"].verdict == "insufficient data"


# ------------------------------------------------------------------ late labels
def test_accuracy_windows_wilson() -> None:
    out = drift.accuracy_windows([80, 0, 45], [100, 0, 50])
    assert out["accuracy"][0] == pytest.approx(0.8)
    assert math.isnan(out["accuracy"][1])
    # Wilson 95% interval of 80/100: (0.7112, 0.8666).
    assert out["low"][0] == pytest.approx(0.7112, abs=1e-4)
    assert out["high"][0] == pytest.approx(0.8666, abs=1e-4)


def test_wilson_interval_against_scipy_and_newcombe() -> None:
    # Newcombe (1998), Stat Med 17:857, Table I, method 3 (Wilson score): 81/263 ->
    # 0.2553 to 0.3662; and scipy's implementation of the same interval.
    low, high = drift.wilson_interval(81, 263)
    assert (float(low), float(high)) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    for k, n in ((81, 263), (0, 20), (20, 20), (4140, 5000)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = drift.wilson_interval(k, n)
        assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_accuracy_change_newcombe_method_10() -> None:
    # Newcombe (1998), Stat Med 17:873, Table II, example (a), method 10 (hybrid score):
    # 56/70 - 48/80 = 0.2000, 95% interval 0.0524 to 0.3339.
    c = drift.accuracy_change(48, 80, 56, 70, min_labels=1)
    assert c.difference == pytest.approx(0.2)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.0524, 0.3339), abs=5e-5)


def test_accuracy_change_test() -> None:
    drop = drift.accuracy_change(8300, 10_000, 3800, 5000)
    assert drop.difference == pytest.approx(-0.07)
    assert drop.ci_high < 0 and drop.p_value < 1e-20
    assert drop.verdict == "critical"  # 7 points >= 5
    two = drift.accuracy_change(8300, 10_000, 4050, 5000)
    assert two.difference == pytest.approx(-0.02) and two.verdict == "warning"
    results = {r.metric: r for r in drift.accuracy_results(two)}
    assert results["accuracy_drop"].value == pytest.approx(0.02)
    assert results["accuracy_drop"].threshold == 0.01
    assert results["accuracy_drop"].fired.startswith("drop 2.00 points >= 1 (warning)")
    # pooled 12350/15000, se = sqrt(p(1-p)(1/10000 + 1/5000)) = 0.0066058, z = 3.0276
    assert results["accuracy_p"].verdict == "ok"
    assert results["accuracy_p"].value == pytest.approx(0.002465, rel=1e-3)
    same = drift.accuracy_change(8300, 10_000, 4140, 5000)
    assert same.verdict == "ok" and same.ci_low < 0 < same.ci_high + 0.01
    tiny = drift.accuracy_change(830_000, 1_000_000, 827_000, 1_000_000)
    assert tiny.p_value < 1e-5 and tiny.verdict == "ok"  # significant but under min_drop
    few = drift.accuracy_change(80, 100, 30, 50)
    assert few.verdict == "insufficient data"
    (res, _) = drift.accuracy_results(few)
    assert res.verdict == "insufficient data" and res.note.startswith("insufficient labels")


def test_w1_and_ks_of_raw_values_match_scipy() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.2, 1.3, 1500)
    w1, ks = drift.w1_ks(a, b)
    assert w1 == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    assert ks == pytest.approx(stats.ks_2samp(a, b).statistic, rel=1e-12)
    ties = np.round(a, 1), np.round(b, 1)  # per-step gauges repeat values
    assert drift.w1_ks(*ties)[1] == pytest.approx(stats.ks_2samp(*ties).statistic, rel=1e-12)
    got = drift.value_metrics(a, b)
    assert got["wasserstein"] == pytest.approx(w1 / np.std(a))
    assert set(got) == {"psi", "js", "hellinger", "wasserstein", "ks"}


def test_value_metrics_windows_equal_value_metrics_exactly() -> None:
    """The over-time fast path gives the very floats of one value_metrics call per window."""
    rng = np.random.default_rng(7)
    ref = np.round(rng.normal(0.8, 0.05, 10_080), 3)  # rounded: many ties, like gauges
    bounds = drift.value_buckets(ref, ref[:1])[0].le[:-1]
    windows = [np.round(rng.normal(0.8 + 0.01 * i, 0.05, 1_440), 3) for i in range(12)]
    windows.append(np.full(600, 0.8))
    fast = drift.value_metrics_windows(ref, windows, bounds)
    slow = [drift.value_metrics(ref, w, bounds=bounds) for w in windows]
    assert fast == slow  # dict equality: every float identical
    assert fast[-1]["ks"] > 0 and fast[11]["psi"] > fast[0]["psi"]
    with pytest.raises(ValueError, match="no reference values"):
        drift.value_metrics_windows([np.nan], windows, bounds)

"""A/B statistics: every reference vector of shared/reference/stats.md ("A/B arms"), to 4
decimals, plus the properties the engines promise (corrections, quantiles, guards,
Simpson warning, verdict)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analytics.experiments import (
    Comparison,
    Guards,
    MeanStats,
    MetricOutcome,
    ProportionStats,
    RatioStats,
    adjust_p_values,
    bayesian_test,
    benjamini_hochberg,
    cs_halfwidth,
    direction_disagreement,
    effect,
    holm,
    proportion_test,
    quantile_interval,
    quantile_test,
    sequential_test,
    srm_test,
    verdict,
    welch_test,
)

A = MeanStats(3407, 1396.87, 52377.9767)
B = MeanStats(3461, 2422.7, 134698.29)
A4 = MeanStats(3000, 1396.87, 52377.9767)


def approx(x: float) -> object:
    return pytest.approx(x, abs=5e-5)


# ------------------------------------------------------------ reference vectors
def test_ref1_welch_relative() -> None:
    r = welch_test(A, B, relative=True)
    assert r.estimate == approx(0.70732)
    assert r.se == approx(0.37879)
    assert (r.ci_low, r.ci_high) == (approx(-0.03526), approx(1.44989))
    assert r.p_value == approx(0.06191)


def test_ref2_welch_absolute() -> None:
    r = welch_test(A, B, relative=False)
    assert r.estimate == approx(0.29)
    assert r.se == approx(0.12478)
    assert (r.ci_low, r.ci_high) == (approx(0.04538), approx(0.53462))
    assert r.p_value == approx(0.02016)


def test_ref3_proportions_relative() -> None:
    r = proportion_test(ProportionStats(28, 14), ProportionStats(30, 16), relative=True)
    assert r.estimate == approx(0.06667)
    assert r.se == approx(0.2717)
    assert (r.ci_low, r.ci_high) == (approx(-0.47767), approx(0.61101))
    assert r.p_value == approx(0.80707)


def test_ref4_one_sided_greater() -> None:
    rel = welch_test(A4, B, relative=True, alternative="greater")
    assert rel.estimate == approx(0.503361)
    assert rel.se == approx(0.333412)
    assert rel.ci_low == approx(-0.045137)
    assert rel.ci_high == math.inf
    assert rel.p_value == approx(0.065583)
    ab = welch_test(A4, B, relative=False, alternative="greater")
    assert ab.estimate == approx(0.234377)
    assert ab.se == approx(0.129831)
    assert ab.ci_low == approx(0.020791)
    assert ab.p_value == approx(0.035543)


def test_one_sided_less_mirrors_greater() -> None:
    g = welch_test(A4, B, relative=False, alternative="greater")
    le = welch_test(B, A4, relative=False, alternative="less")
    assert le.ci_high == pytest.approx(-g.ci_low)
    assert le.ci_low == -math.inf
    assert le.p_value == pytest.approx(g.p_value)


@pytest.mark.parametrize(
    ("tuning", "low", "high"),
    [(1000, -0.55844, 1.56516), (5000, -0.50972, 1.51644)],
)
def test_ref5_sequential_two_tuning_sizes(tuning: int, low: float, high: float) -> None:
    r = sequential_test(A4, B, relative=True, tuning=tuning)
    assert r.estimate == approx(0.50336)
    assert (r.ci_low, r.ci_high) == (approx(low), approx(high))
    assert r.engine == "sequential"


def test_ref6_sequential_proportions() -> None:
    r = sequential_test(ProportionStats(3000, 1396), ProportionStats(3461, 2422), tuning=5000)
    assert r.estimate == approx(0.50386)
    assert r.se == approx(0.03386)
    assert (r.ci_low, r.ci_high) == (approx(0.40098), approx(0.60675))


def test_ref7_bayesian_proportions_flat_prior() -> None:
    r = bayesian_test(ProportionStats(100, 49), ProportionStats(100, 51))
    assert r.estimate == approx(0.04082)
    assert r.se == approx(0.14725)
    assert (r.ci_low, r.ci_high) == (approx(-0.24779), approx(0.32943))
    assert r.chance_to_win == approx(0.60918)


def test_ref8_bayesian_means_flat_prior() -> None:
    r = bayesian_test(MeanStats(10, 100, 1002.25), MeanStats(10, 105, 1111.5))
    assert r.estimate == approx(0.05)
    assert r.se == approx(0.03572)
    assert (r.ci_low, r.ci_high) == (approx(-0.02), approx(0.12))
    assert r.chance_to_win == approx(0.91923)


def test_ref9_srm() -> None:
    r = srm_test({"control": 1000, "treatment": 1200}, {"control": 0.5, "treatment": 0.5})
    assert r.p_value == pytest.approx(2.0079e-05, rel=5e-5)
    assert r.flagged
    assert not srm_test({"a": 1000, "b": 1040}).flagged


# ------------------------------------------------------------ properties
def test_sequential_interval_is_wider_than_fixed_and_p_is_consistent() -> None:
    fixed = welch_test(A4, B)
    seq = sequential_test(A4, B)
    assert seq.ci_low < fixed.ci_low and seq.ci_high > fixed.ci_high
    # the always-valid p is the alpha at which the sequence touches 0
    w = cs_halfwidth(seq.se**2, A4.n + B.n, seq.p_value)
    assert w == pytest.approx(abs(seq.estimate), rel=1e-6)
    strong = sequential_test(ProportionStats(3000, 1396), ProportionStats(3461, 2422))
    assert strong.p_value < 1e-10 and strong.significant


def test_bayesian_lower_is_better_inverts_chance_and_risk() -> None:
    up = bayesian_test(MeanStats(10, 100, 1002.25), MeanStats(10, 105, 1111.5))
    down = bayesian_test(
        MeanStats(10, 100, 1002.25), MeanStats(10, 105, 1111.5), higher_is_better=False
    )
    assert down.chance_to_win == pytest.approx(1 - up.chance_to_win)
    assert down.risk_treatment == pytest.approx(up.risk_control)
    # risk = E[max(0, -X)] for X ~ N(mu, sd): check by numerical integration
    x = np.linspace(up.estimate - 10 * up.se, up.estimate + 10 * up.se, 200_001)
    pdf = stats.norm.pdf(x, up.estimate, up.se)
    expected = np.trapezoid(np.maximum(0, -x) * pdf, x)
    assert up.risk_treatment == pytest.approx(expected, rel=1e-4)


def test_bayesian_informative_prior_shrinks_towards_prior_mean() -> None:
    flat = bayesian_test(MeanStats(10, 100, 1002.25), MeanStats(10, 105, 1111.5))
    tight = bayesian_test(
        MeanStats(10, 100, 1002.25), MeanStats(10, 105, 1111.5), prior_variance=0.03572**2
    )
    assert tight.estimate == pytest.approx(flat.estimate / 2, rel=1e-3)
    assert tight.se < flat.se


def test_ratio_stats_match_the_delta_method_by_simulation() -> None:
    rng = np.random.default_rng(1)
    d = rng.poisson(50, 400).astype(float) + 1
    m = d * rng.normal(2.0, 0.3, 400)
    r = RatioStats.from_values(m, d)
    assert r.mean == pytest.approx(m.sum() / d.sum())
    # bootstrap SE of the ratio of sums
    boots = []
    for _ in range(2000):
        i = rng.integers(0, 400, 400)
        boots.append(m[i].sum() / d[i].sum())
    assert math.sqrt(r.variance / r.n) == pytest.approx(np.std(boots), rel=0.1)
    # sums add up
    half = RatioStats.from_values(m[:200], d[:200]) + RatioStats.from_values(m[200:], d[200:])
    assert half.mean == pytest.approx(r.mean) and half.variance == pytest.approx(r.variance)


def test_mean_stats_from_values_and_effect_nan_cases() -> None:
    s = MeanStats.from_values([1.0, 2.0, np.nan, 3.0])
    assert (s.n, s.mean, s.variance) == (3, 2.0, 1.0)
    zero = MeanStats(5, 0.0, 1.0)
    assert math.isnan(effect(zero, s, relative=True).estimate)
    assert math.isnan(welch_test(MeanStats(0, 0, 0), s).p_value)


def test_holm_and_bh_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    h = holm(p)
    assert h[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(h[4])
    bh = benjamini_hochberg(p)
    assert bh[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values(p, "none")[0] == 0.01
    with pytest.raises(ValueError):
        adjust_p_values(p, "bonferroni")  # type: ignore[arg-type]


def test_quantile_interval_iid_uses_dky_ranks() -> None:
    le = [1.0, 2.0, 3.0, 4.0, math.inf]
    cum = np.array([100.0, 300.0, 700.0, 1000.0, 1000.0])
    est = quantile_interval(le, cum, 0.5)
    assert est.value == pytest.approx(2.5)
    z = stats.norm.ppf(0.975)
    half = z * math.sqrt(0.25 / 1000)
    # ranks n (0.5 -/+ z sqrt(v(1-v)/n)) interpolated in bucket (2, 3] holding 400
    assert est.ci_low == pytest.approx(2 + (1000 * (0.5 - half) - 300) / 400)
    assert est.ci_high == pytest.approx(2 + (1000 * (0.5 + half) - 300) / 400)


def test_quantile_interval_clustered_is_wider_when_replicates_differ() -> None:
    rng = np.random.default_rng(3)
    le = np.array([0.5, 1, 2, 4, 8, 16, math.inf])
    reps = []
    for _ in range(300):
        scale = rng.lognormal(0, 0.4)  # minute-level shared slowness: clustering
        x = rng.lognormal(np.log(2 * scale), 0.5, 50)
        reps.append([(x <= b).sum() for b in le])
    reps_a = np.array(reps, dtype=float)
    clustered = quantile_interval(le, reps_a, 0.95)
    iid = quantile_interval(le, reps_a.sum(axis=0), 0.95)
    assert clustered.value == pytest.approx(iid.value)
    assert clustered.replicates == 300
    assert clustered.ci_high - clustered.ci_low > 1.5 * (iid.ci_high - iid.ci_low)


def test_quantile_test_detects_a_shift() -> None:
    rng = np.random.default_rng(4)
    le = np.array([0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, math.inf])

    def arm(factor: float) -> np.ndarray:
        return np.array(
            [
                [(x <= b).sum() for b in le]
                for x in (rng.lognormal(np.log(2 * factor), 0.4, 40) for _ in range(500))
            ],
            dtype=float,
        )

    c, t = quantile_interval(le, arm(1.0), 0.5), quantile_interval(le, arm(1.2), 0.5)
    r = quantile_test(c, t)
    assert r.significant and r.estimate > 0
    assert abs(r.estimate - 0.2) < 0.03  # linear interpolation in buckets blurs the exact 20%


def test_guards() -> None:
    g = Guards(min_units=30, min_observations=1000)
    assert g.check({"v1": 100, "v2": 100}, {"v1": 5000, "v2": 5000}) is None
    assert "too few units" in (g.check({"v1": 10, "v2": 100}) or "")
    assert "too few observations" in (g.check({"v1": 100, "v2": 100}, {"v1": 10, "v2": 5000}) or "")


def _res(est: float, lo: float, hi: float) -> Comparison:
    return Comparison(est, 0.1, lo, hi, 0.01, math.inf, 0.05, True)


def test_direction_disagreement_and_simpson() -> None:
    ok = {"a": _res(0.1, 0.05, 0.15), "b": _res(0.08, 0.01, 0.15)}
    assert direction_disagreement(ok, _res(0.09, 0.05, 0.13)) is None
    split = {"a": _res(0.1, 0.05, 0.15), "b": _res(-0.1, -0.15, -0.05)}
    assert "disagree" in (direction_disagreement(split) or "")
    simpson = {"a": _res(0.02, -0.01, 0.05), "b": _res(0.01, -0.02, 0.04)}
    assert "Simpson" in (direction_disagreement(simpson, _res(-0.05, -0.08, -0.02)) or "")


def _outcome(name: str, role: str, hib: bool, est: float, lo: float, hi: float, **kw: object):
    return MetricOutcome(
        name, name, role, hib, Comparison(est, 0.01, lo, hi, 0.001, math.inf, 0.05, True), **kw
    )  # type: ignore[arg-type]


def test_verdict_trade_off_sentence_and_srm_override() -> None:
    outcomes = [
        _outcome("accuracy", "primary", True, 0.021, 0.015, 0.027,
                 better_phrase="is {size} more accurate"),
        _outcome("cost", "guardrail", False, 0.18, 0.15, 0.21,
                 worse_phrase="costs {size} more per 1k requests"),
        _outcome("slow", "guardrail", False, 0.6, 0.4, 0.8,
                 ratio_phrase="burns the latency SLO {x}x faster"),
    ]  # fmt: skip
    decision, text = verdict("B", "A", outcomes)
    assert decision == "trade-off"
    assert text.startswith("B is 2.1% more accurate (CI +1.5% to +2.7%) but costs 18.0% more")
    assert "burns the latency SLO 1.60x faster" in text
    bad = srm_test({"A": 1000, "B": 1200})
    decision, text = verdict("B", "A", outcomes, bad)
    assert decision == "untrustworthy" and "Sample ratio mismatch" in text
    nothing = [MetricOutcome("accuracy", "accuracy", "primary", True, _res(0.0, -0.1, 0.1), 0.5)]
    assert verdict("B", "A", nothing)[0] == "inconclusive"


def test_distribution_shortcuts_give_scipy_stats_bits() -> None:
    from analytics import experiments as ab

    rng = np.random.default_rng(3)
    for df in (1.0, 2.5, 7.0, 143.2, 1e5, math.inf):
        for x in (*rng.normal(0, 4, 40), 0.0, 40.0, -40.0, math.inf):
            assert ab.t_sf(x, df) == float(stats.t.sf(x, df))
            assert ab.t_cdf(x, df) == float(stats.t.cdf(x, df))
            assert ab.norm_sf(x) == float(stats.norm.sf(x))
            assert ab.norm_cdf(x) == float(stats.norm.cdf(x))
        for q in (*rng.uniform(0.5, 1.0, 40), 0.975, 0.95, 0.5, 1.0):
            assert ab.t_ppf(q, df) == float(stats.t.ppf(q, df))
            assert ab.norm_ppf(q) == float(stats.norm.ppf(q))
    mu, sd = 0.013, 0.004  # the Bayesian engine's P(effect > 0)
    assert ab.norm_sf((0.0 - mu) / sd) == float(stats.norm.sf(0.0, loc=mu, scale=sd))

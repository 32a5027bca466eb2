"""Deployment verdicts: Hodges-Lehmann interval, Kayenta's classifier and judge."""

from __future__ import annotations

import numpy as np
import pytest

import analytics.verdict as verdict
from analytics.verdict import SignalSpec, classify, hodges_lehmann, judge

# Kayenta's reference cases (statistics reference notes, stats.md; Kayenta's ClassifierSuite).
CANARY_HIGH = [20, 22, 21, 25, 30]
BASELINE_LOW = [1, 2.2, 1.1, 2.5, 3]
CANARY_MIXED = [10, 12.2, 10.1, 12.5, 23]
BASELINE_MIXED = [20, 22, 21, 25, 30]


def test_kayenta_reference_high() -> None:
    spec = SignalSpec("m", tolerance=0.10, confidence=0.95, effect_gate=(0.8, 1.2))
    r = classify(CANARY_HIGH, BASELINE_LOW, spec)
    assert r.classification == "High"
    assert r.ratio == pytest.approx(23.6 / 1.96)


def test_kayenta_reference_pass_with_effect_gate() -> None:
    spec = SignalSpec("m", tolerance=0.10, confidence=0.95, effect_gate=(0.5, 1.0))
    r = classify(CANARY_MIXED, BASELINE_MIXED, spec)
    assert r.classification == "Pass"
    assert r.ratio == pytest.approx(0.5745762711864406)


def test_effect_gate_vetoes_a_clear_low() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(100, 1, 40)
    canary = base - 5  # clearly lower, but only by 5%
    assert classify(canary, base, SignalSpec("m")).classification == "Low"
    gated = classify(canary, base, SignalSpec("m", effect_gate=(0.9, 1.1)))
    assert gated.classification == "Pass"
    assert "effect gate" in gated.reason


def test_direction_only_watches_one_side() -> None:
    spec = SignalSpec("latency", direction="increase")
    assert classify(CANARY_HIGH, BASELINE_LOW, spec).classification == "High"
    assert classify(BASELINE_LOW, CANARY_HIGH, spec).classification == "Pass"
    spec = SignalSpec("accuracy", direction="decrease")
    assert classify(BASELINE_LOW, CANARY_HIGH, spec).classification == "Low"


# --------------------------------------------------------------------------- Hodges-Lehmann


def test_hodges_lehmann_exact_matches_r() -> None:
    # R: wilcox.test(c(20,22,21,25,30), c(1,2.2,1.1,2.5,3), conf.int=TRUE)
    #    -> 95% CI 17.8 27.8, difference in location 20 (median of the 25 differences)
    s = hodges_lehmann(CANARY_HIGH, BASELINE_LOW, 0.95)
    assert s.exact
    assert (s.estimate, s.lower, s.upper) == pytest.approx((20.0, 17.8, 27.8))
    assert s.pvalue == pytest.approx(2 / 252)  # all 25 differences positive: 2 / C(10, 5)


def test_u_distribution_counts() -> None:
    cdf = verdict._u_cdf(5, 5)
    # P(U <= u) for u = 0, 1, 2, 3 with m = n = 5: 1, 2, 4, 7 of 252 arrangements
    assert cdf[:4] == pytest.approx((1 / 252, 2 / 252, 4 / 252, 7 / 252))
    assert verdict._qwilcox(0.025, 5, 5) == 3


def test_hodges_lehmann_asymptotic_with_ties_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(10.5, 2, 200))  # integers: many ties
    y = np.round(rng.normal(10.0, 2, 150))
    s = hodges_lehmann(x, y, 0.95)
    assert not s.exact
    assert s.lower <= s.estimate <= s.upper
    assert s.lower < 0.5 < s.upper + 1.0


def test_large_sample_order_statistics_by_bisection_equal_materialised(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    diffs = np.sort((x[:, None] - y[None, :]).ravel())
    monkeypatch.setattr(verdict, "_MATERIALISE_MAX", 10)
    for k in (0, 1, 500, 29_999, 30_000, diffs.size - 1):
        assert verdict._kth_difference(x, y, k) == diffs[k]
    big = hodges_lehmann(rng.normal(1, 1, 3000), rng.normal(0, 1, 2000))
    assert big.lower < 1.0 < big.upper
    assert big.upper - big.lower < 0.2


@pytest.mark.parametrize("n", [8, 60])
def test_hodges_lehmann_interval_covers_the_true_shift(n: int) -> None:
    rng = np.random.default_rng(n)
    covered = 0
    reps = 300
    for _ in range(reps):
        x = rng.standard_t(4, n) + 2.0
        y = rng.standard_t(4, n)
        s = hodges_lehmann(x, y, 0.90)
        covered += s.lower <= 2.0 <= s.upper
    assert 0.85 <= covered / reps <= 0.96


def test_hodges_lehmann_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        hodges_lehmann([], [1.0])
    with pytest.raises(ValueError):
        hodges_lehmann([1.0, np.nan], [1.0])
    with pytest.raises(ValueError):
        hodges_lehmann([1.0], [2.0], confidence=1.0)


# --------------------------------------------------------------------------- judge


def _specs(critical: str | None = None) -> list[SignalSpec]:
    return [SignalSpec(f"s{i}", critical=f"s{i}" == critical) for i in range(20)]


def test_judge_scores_pass_marginal_fail() -> None:
    rng = np.random.default_rng(5)
    control = {f"s{i}": rng.normal(10, 1, 30) for i in range(20)}
    same = {k: v + rng.normal(0, 0.01, 30) for k, v in control.items()}
    assert judge(same, control, _specs()).verdict == "Pass"
    one_bad = dict(same, s0=control["s0"] + 10)
    v = judge(one_bad, control, _specs())
    assert (v.verdict, v.score) == ("Pass", 95.0)
    five_bad = dict(same, **{f"s{i}": control[f"s{i}"] + 10 for i in range(5)})
    v = judge(five_bad, control, _specs())
    assert (v.verdict, v.score) == ("Marginal", 75.0)
    six_bad = dict(same, **{f"s{i}": control[f"s{i}"] + 10 for i in range(6)})
    assert judge(six_bad, control, _specs()).verdict == "Fail"
    # configurable thresholds
    assert judge(six_bad, control, _specs(), pass_score=70, marginal_score=50).verdict == "Pass"


def test_judge_critical_signal_fails_everything() -> None:
    rng = np.random.default_rng(6)
    control = {f"s{i}": rng.normal(10, 1, 30) for i in range(20)}
    exp = dict(control, s3=control["s3"] + 10)
    v = judge(exp, control, _specs(critical="s3"))
    assert (v.verdict, v.score) == ("Fail", 0.0)
    assert "s3" in v.reason


def test_judge_half_without_data_fails() -> None:
    control = {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]}
    exp = {"a": [1.0, 2.0, 3.0]}
    v = judge(exp, control, [SignalSpec("a"), SignalSpec("b")])
    assert v.verdict == "Fail"
    assert "no data" in v.reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arms", "v1,v2", "--arm", "v2"], "--arm narrows --baseline/--canary"),
        (
            ["--baseline", "2026-11-01..2026-11-02", "--canary", "2026-11-02..2026-11-03",
             "--during", "2026-11-01..2026-11-02"],
            "--during goes with --arms",
        ),
    ],
)  # fmt: skip
def test_verdict_refuses_options_it_would_ignore(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from observatory.cli import main

    result = CliRunner().invoke(main, ["regressions", "verdict", *args, "--store", "/nonexistent"])
    assert result.exit_code == 2, result.output
    assert message in result.output

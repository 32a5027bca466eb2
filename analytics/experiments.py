"""A/B statistics from sufficient statistics: Welch, sequential, Bayesian, SRM, corrections.

Pure functions over numbers and numpy arrays (no DuckDB, no Streamlit, no network).
Formulas follow GrowthBook's stats engine (``gbstats``) as summarised, with reference
values, in the project's statistics reference (``shared/reference/stats.md``, section
"A/B arms"); the tests reproduce every reference vector to 4 decimals.

Vocabulary and units:

- An *arm* is summarised by sufficient statistics over its *units* (the
  observations treated as independent): ``n`` units, ``sum`` of the unit values,
  ``sum_sq`` of their squares (:class:`MeanStats`); ``n`` and successes for 0/1
  units (:class:`ProportionStats`); and for ratio metrics (``sum m / sum d``, e.g.
  seconds of latency per request) the sums of ``m``, ``d``, ``m^2``, ``d^2`` and
  ``m*d`` (:class:`RatioStats`).  Every arm exposes ``n``, ``mean`` (the metric's
  value, in its unit) and ``variance`` (the per-unit variance, so that the variance
  of ``mean`` is ``variance / n``).
- The *effect* is treatment minus control: absolute (``mu_T - mu_C``, in the
  metric's unit) or relative (``(mu_T - mu_C) / |mu_C|``, a fraction: 0.05 = +5%).
- ``alpha`` is the two-sided error rate (0.05 gives 95% intervals).

Sources:

- Welch's t with Satterthwaite degrees of freedom; delta-method variance of the
  relative lift ``s_T^2/(n_T mu_C^2) + s_C^2 mu_T^2/(n_C mu_C^4)`` (GrowthBook
  ``frequentist/tests.py``; Deng, Knoblich and Lu, "Applying the Delta Method in
  Metric Analytics", KDD 2018).
- Ratio metrics: per-unit variance ``(var_m - 2 R cov_md + R^2 var_d) / mu_d^2``
  with ``R = mu_m / mu_d`` (the delta method; GrowthBook ``RatioStatistic``).
- Sequential testing: asymptotic confidence sequences (Waudby-Smith et al. 2023,
  arXiv:2103.06476, eq. 9 for the width and eq. 161 for the tuning ``rho``), as
  GrowthBook implements them: half-width
  ``sqrt(s2) * sqrt(2 (N rho^2 + 1) ln(sqrt(N rho^2 + 1) / alpha) / (N rho)^2)``
  with ``N = n_C + n_T``, ``s2 = var(effect) * N`` and
  ``rho = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / N*)``.
- Bayesian: Gaussian posterior of the effect with a Gaussian prior (flat by
  default, GrowthBook's effect-size Bayesian engine); chance to win ``P(effect > 0)``
  (``P(effect < 0)`` when lower is better); risk = expected loss from the
  truncated-normal means.
- Sample ratio mismatch: Pearson chi-square goodness of fit of unit counts against
  the configured weights, flagged at p < 0.001 (GrowthBook, Eppo).
- Multiple testing: Holm-Bonferroni (Holm 1979) and Benjamini-Hochberg (1995,
  ``scipy.stats.false_discovery_control``).
- Quantile metrics: the rank interval ``n (q -/+ z sqrt(var(p)))`` of Deng,
  Knoblich and Lu (KDD 2018, section "quantile metrics"; the reference calls it
  Deng-Knoblich-Yu) read off a histogram; ``var(p)`` is ``q(1-q)/n`` for independent
  observations, or the delta-method variance of the share of observations below the
  quantile over clustered replicates (per-minute histograms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from analytics.histogram import histogram_quantile

FloatArray = npt.NDArray[np.float64]
Alternative = Literal["two-sided", "greater", "less"]
Correction = Literal["holm", "bh", "none"]

#: SRM is flagged below this p-value (GrowthBook and Eppo; Statsig warns at 0.01).
SRM_THRESHOLD = 0.001
#: GrowthBook's default tuning sample size N* of the confidence sequences.
DEFAULT_TUNING = 5000


# ---------------------------------------------------------------- distributions
# scipy.stats.t and scipy.stats.norm compute these with the same special functions
# (scipy 1.17, ``_continuous_distns``: ``t_gen._sf = stdtr(df, -x)``, ``_cdf = stdtr``,
# ``_ppf = stdtrit``; ``norm`` with ``ndtr`` and ``ndtri``), after argument checks
# that cost about 0.3 ms a call: the per-region tables make thousands of calls.  The
# same bits (tests/test_experiments_stats.py compares them with scipy.stats).
def t_sf(x: float, df: float) -> float:
    """Student's t survival function, ``scipy.stats.t.sf(x, df)``."""
    return float(special.stdtr(df, -x))


def t_cdf(x: float, df: float) -> float:
    """Student's t distribution function, ``scipy.stats.t.cdf(x, df)``."""
    return float(special.stdtr(df, x))


def t_ppf(q: float, df: float) -> float:
    """Student's t quantile, ``scipy.stats.t.ppf(q, df)`` for 0 < q <= 1."""
    return float(special.stdtrit(df, q))


def norm_sf(x: float) -> float:
    """Standard normal survival function, ``scipy.stats.norm.sf(x)``."""
    return float(special.ndtr(-x))


def norm_cdf(x: float) -> float:
    """Standard normal distribution function, ``scipy.stats.norm.cdf(x)``."""
    return float(special.ndtr(x))


def norm_ppf(q: float) -> float:
    """Standard normal quantile, ``scipy.stats.norm.ppf(q)`` for 0 < q <= 1."""
    return float(special.ndtri(q))


# ---------------------------------------------------------------- arms
class ArmStats(Protocol):
    """What every arm summary exposes: units, the metric's value and per-unit variance."""

    @property
    def n(self) -> float: ...

    @property
    def mean(self) -> float: ...

    @property
    def variance(self) -> float: ...


def _sample_var(n: float, total: float, sum_sq: float) -> float:
    if n <= 1:
        return 0.0
    return max((sum_sq - total * total / n) / (n - 1), 0.0)


@dataclass(frozen=True)
class MeanStats:
    """A mean metric: ``n`` units with values ``y``; ``sum`` = sum y, ``sum_sq`` = sum y^2."""

    n: float
    sum: float
    sum_sq: float

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> MeanStats:
        """Sufficient statistics of the finite values in ``values`` (shape ``(n,)``)."""
        y = np.asarray(values, dtype=np.float64)
        y = y[np.isfinite(y)]
        return cls(float(y.size), float(y.sum()), float(np.square(y).sum()))

    @property
    def mean(self) -> float:
        """sum / n (NaN without units)."""
        return self.sum / self.n if self.n > 0 else math.nan

    @property
    def variance(self) -> float:
        """Sample variance with n - 1 (0 for fewer than 2 units)."""
        return _sample_var(self.n, self.sum, self.sum_sq)

    def __add__(self, other: MeanStats) -> MeanStats:
        return MeanStats(self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq)


@dataclass(frozen=True)
class ProportionStats:
    """A proportion: ``n`` independent 0/1 units of which ``successes`` are 1.

    The per-unit variance is ``p (1 - p)`` (GrowthBook's ``ProportionStatistic``).
    """

    n: float
    successes: float

    @property
    def mean(self) -> float:
        """successes / n."""
        return self.successes / self.n if self.n > 0 else math.nan

    @property
    def variance(self) -> float:
        """p (1 - p)."""
        p = self.mean
        return p * (1.0 - p) if self.n > 0 else 0.0


@dataclass(frozen=True)
class RatioStats:
    """A ratio metric ``sum m / sum d`` over ``n`` units, each with a numerator ``m``
    and a denominator ``d`` (e.g. per minute: seconds of latency and requests).

    ``mean`` is the ratio of sums (never an average of per-unit ratios); ``variance``
    the delta-method per-unit variance, so that ``variance / n`` is the variance of
    ``mean``.
    """

    n: float
    sum_m: float
    sum_m_sq: float
    sum_d: float
    sum_d_sq: float
    sum_md: float

    @classmethod
    def from_values(cls, m: npt.ArrayLike, d: npt.ArrayLike) -> RatioStats:
        """Sufficient statistics of paired numerators and denominators, shape ``(n,)``.

        Units where either value is not finite are dropped.
        """
        mm = np.asarray(m, dtype=np.float64)
        dd = np.asarray(d, dtype=np.float64)
        ok = np.isfinite(mm) & np.isfinite(dd)
        mm, dd = mm[ok], dd[ok]
        return cls(
            float(mm.size),
            float(mm.sum()),
            float(np.square(mm).sum()),
            float(dd.sum()),
            float(np.square(dd).sum()),
            float((mm * dd).sum()),
        )

    @property
    def mean(self) -> float:
        """sum m / sum d (NaN when sum d is 0)."""
        return self.sum_m / self.sum_d if self.sum_d != 0 else math.nan

    @property
    def variance(self) -> float:
        """Delta method: (var_m - 2 R cov_md + R^2 var_d) / mu_d^2, R = mu_m / mu_d."""
        if self.n <= 1 or self.sum_d == 0:
            return 0.0 if self.n <= 1 else math.nan
        n = self.n
        mu_m, mu_d = self.sum_m / n, self.sum_d / n
        var_m = _sample_var(n, self.sum_m, self.sum_m_sq)
        var_d = _sample_var(n, self.sum_d, self.sum_d_sq)
        cov = (self.sum_md - self.sum_m * self.sum_d / n) / (n - 1)
        r = mu_m / mu_d
        return max((var_m - 2.0 * r * cov + r * r * var_d) / (mu_d * mu_d), 0.0)

    def __add__(self, other: RatioStats) -> RatioStats:
        return RatioStats(
            self.n + other.n,
            self.sum_m + other.sum_m,
            self.sum_m_sq + other.sum_m_sq,
            self.sum_d + other.sum_d,
            self.sum_d_sq + other.sum_d_sq,
            self.sum_md + other.sum_md,
        )


# ---------------------------------------------------------------- effects
@dataclass(frozen=True)
class Effect:
    """A point estimate of treatment vs control and the variance of that estimate."""

    estimate: float
    variance: float
    relative: bool

    @property
    def se(self) -> float:
        """Standard error, sqrt(variance)."""
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan


def effect(control: ArmStats, treatment: ArmStats, relative: bool = True) -> Effect:
    """The effect of ``treatment`` over ``control`` and its variance.

    Absolute: ``mu_T - mu_C``, variance ``s_T^2/n_T + s_C^2/n_C``.  Relative:
    ``(mu_T - mu_C) / |mu_C|``, delta-method variance
    ``s_T^2/(n_T mu_C^2) + s_C^2 mu_T^2/(n_C mu_C^4)``.  NaN when an arm has no
    units or (relative) the control mean is 0.
    """
    nc, nt = control.n, treatment.n
    mc, mt = control.mean, treatment.mean
    if nc <= 0 or nt <= 0 or not (math.isfinite(mc) and math.isfinite(mt)):
        return Effect(math.nan, math.nan, relative)
    vc, vt = control.variance / nc, treatment.variance / nt
    if not relative:
        return Effect(mt - mc, vt + vc, relative)
    if mc == 0:
        return Effect(math.nan, math.nan, relative)
    return Effect((mt - mc) / abs(mc), vt / mc**2 + vc * mt**2 / mc**4, relative)


def welch_df(control: ArmStats, treatment: ArmStats) -> float:
    """Welch-Satterthwaite degrees of freedom of the two arms' mean difference."""
    nc, nt = control.n, treatment.n
    if nc <= 1 or nt <= 1:
        return math.nan
    vc, vt = control.variance / nc, treatment.variance / nt
    denom = vc**2 / (nc - 1) + vt**2 / (nt - 1)
    if denom <= 0:
        return math.inf
    return (vc + vt) ** 2 / denom


@dataclass(frozen=True)
class Comparison:
    """One comparison of treatment against control.

    Attributes:
        estimate: the effect (absolute in the metric's unit, or relative fraction).
        se: its standard error.
        ci_low, ci_high: the interval (``-inf``/``inf`` on the open side of a
            one-sided test); for ``engine="sequential"`` the always-valid interval.
        p_value: two-sided or one-sided p (sequential: always-valid p).
        df: Welch degrees of freedom (``inf`` for normal-based intervals).
        engine: ``fixed`` (fixed horizon), ``sequential`` or ``bayesian``.
        chance_to_win: Bayesian only, P(treatment better).
        risk_control, risk_treatment: Bayesian only, the expected loss (in the
            effect's unit) of keeping control / shipping treatment.
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    alpha: float
    relative: bool
    alternative: Alternative = "two-sided"
    engine: str = "fixed"
    chance_to_win: float = math.nan
    risk_control: float = math.nan
    risk_treatment: float = math.nan

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0 (the p-value is below alpha)."""
        return bool(self.ci_low > 0 or self.ci_high < 0)

    @property
    def direction(self) -> int:
        """+1 when the interval lies above 0, -1 below, 0 when it covers 0."""
        return 1 if self.ci_low > 0 else (-1 if self.ci_high < 0 else 0)


def _nan_result(alpha: float, relative: bool, alternative: Alternative, engine: str) -> Comparison:
    nan = math.nan
    return Comparison(nan, nan, nan, nan, nan, nan, alpha, relative, alternative, engine)


def welch_test(
    control: ArmStats,
    treatment: ArmStats,
    relative: bool = True,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> Comparison:
    """Fixed-horizon Welch t-test of treatment vs control (GrowthBook's ``TwoSidedTTest``
    and ``OneSidedTreatment{Greater,Lesser}TTest``).

    ``greater`` tests H1: effect > 0 and gives the interval ``[lower, inf)``;
    ``less`` tests H1: effect < 0 and gives ``(-inf, upper]``.
    """
    eff = effect(control, treatment, relative)
    df = welch_df(control, treatment)
    se = eff.se
    if not (math.isfinite(eff.estimate) and math.isfinite(se)) or se <= 0 or math.isnan(df):
        return _nan_result(alpha, relative, alternative, "fixed")
    t = eff.estimate / se
    if alternative == "two-sided":
        p = 2.0 * t_sf(abs(t), df)
        q = t_ppf(1.0 - alpha / 2.0, df)
        lo, hi = eff.estimate - q * se, eff.estimate + q * se
    elif alternative == "greater":
        p = t_sf(t, df)
        lo, hi = eff.estimate - t_ppf(1.0 - alpha, df) * se, math.inf
    else:
        p = t_cdf(t, df)
        lo, hi = -math.inf, eff.estimate + t_ppf(1.0 - alpha, df) * se
    return Comparison(eff.estimate, se, lo, hi, p, df, alpha, relative, alternative, "fixed")


def proportion_test(
    control: ProportionStats,
    treatment: ProportionStats,
    relative: bool = True,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> Comparison:
    """Welch test on proportions (variance p(1-p) per unit), as GrowthBook does."""
    return welch_test(control, treatment, relative, alternative, alpha)


# ---------------------------------------------------------------- sequential
def cs_rho(alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """The confidence sequence's ``rho`` for tuning sample size ``N*`` (eq. 161)."""
    la = -2.0 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1.0)) / tuning)


def cs_halfwidth(
    variance: float, n_total: float, alpha: float, tuning: float = DEFAULT_TUNING
) -> float:
    """Half-width of the asymptotic confidence sequence (eq. 9).

    Args:
        variance: the variance of the effect estimate (``se^2``).
        n_total: units in both arms, ``N = n_C + n_T``.
        alpha: two-sided error rate; tuning: ``N*``.
    """
    if n_total <= 0 or not math.isfinite(variance):
        return math.nan
    rho = cs_rho(alpha, tuning)
    s2 = variance * n_total
    nr2 = n_total * rho * rho
    return math.sqrt(s2) * math.sqrt(
        2.0 * (nr2 + 1.0) * math.log(math.sqrt(nr2 + 1.0) / alpha) / (n_total * rho) ** 2
    )


def always_valid_p(estimate: float, variance: float, n_total: float, tuning: float) -> float:
    """Smallest alpha whose confidence sequence excludes 0 (the half-width falls with alpha)."""
    if variance <= 0:
        return 0.0 if estimate != 0 else 1.0
    target = abs(estimate)
    hi_log = math.log(0.999)
    if cs_halfwidth(variance, n_total, 0.999, tuning) > target:
        return 1.0
    lo_log = -700.0
    if cs_halfwidth(variance, n_total, math.exp(lo_log), tuning) <= target:
        return 0.0
    for _ in range(80):  # bisection on ln(alpha)
        mid = 0.5 * (lo_log + hi_log)
        if cs_halfwidth(variance, n_total, math.exp(mid), tuning) > target:
            lo_log = mid
        else:
            hi_log = mid
    return math.exp(hi_log)


def sequential_test(
    control: ArmStats,
    treatment: ArmStats,
    relative: bool = True,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> Comparison:
    """Two-sided sequential test: an always-valid interval that may be looked at any time.

    The interval is the asymptotic confidence sequence around the same point
    estimate and variance as :func:`welch_test`; the p-value is the always-valid
    one (the smallest alpha whose sequence excludes 0).  ``tuning`` (N*) is the
    total number of units at which the sequence is tightest.
    """
    return sequential_from_effect(
        effect(control, treatment, relative), control.n + treatment.n, alpha, tuning
    )


def sequential_from_effect(
    eff: Effect, n_total: float, alpha: float = 0.05, tuning: float = DEFAULT_TUNING
) -> Comparison:
    """The confidence sequence around an effect estimate with ``n_total`` units in all."""
    if not (math.isfinite(eff.estimate) and math.isfinite(eff.variance)) or n_total < 2:
        return _nan_result(alpha, eff.relative, "two-sided", "sequential")
    w = cs_halfwidth(eff.variance, n_total, alpha, tuning)
    p = always_valid_p(eff.estimate, eff.variance, n_total, tuning)
    return Comparison(
        eff.estimate, eff.se, eff.estimate - w, eff.estimate + w, p, math.inf, alpha,
        eff.relative, "two-sided", "sequential",
    )  # fmt: skip


# ---------------------------------------------------------------- Bayesian
def bayesian_test(
    control: ArmStats,
    treatment: ArmStats,
    relative: bool = True,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    prior_mean: float = 0.0,
    prior_variance: float = math.inf,
) -> Comparison:
    """Gaussian-posterior chance to win and risk (GrowthBook's effect Bayesian engine).

    The likelihood of the effect is Normal(estimate, se^2) (:func:`effect`); the
    prior Normal(``prior_mean``, ``prior_variance``), flat by default (infinite
    variance).  ``chance_to_win`` = P(effect > 0), or P(effect < 0) when lower is
    better; the interval is the central ``1 - alpha`` credible interval;
    ``risk_treatment`` = E[loss if treatment is shipped] and ``risk_control`` =
    E[loss if control is kept], both >= 0 in the effect's unit, from the
    truncated-normal means: E[max(0, -X)] = s phi(mu/s) - mu Phi(-mu/s).
    """
    return bayesian_from_effect(
        effect(control, treatment, relative), alpha, higher_is_better, prior_mean, prior_variance
    )


def bayesian_from_effect(
    eff: Effect,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    prior_mean: float = 0.0,
    prior_variance: float = math.inf,
) -> Comparison:
    """The Gaussian posterior of an effect estimate (see :func:`bayesian_test`)."""
    if not (math.isfinite(eff.estimate) and math.isfinite(eff.variance)) or eff.variance <= 0:
        return _nan_result(alpha, eff.relative, "two-sided", "bayesian")
    if math.isfinite(prior_variance) and prior_variance > 0:
        precision = 1.0 / prior_variance + 1.0 / eff.variance
        post_var = 1.0 / precision
        post_mean = post_var * (prior_mean / prior_variance + eff.estimate / eff.variance)
    else:
        post_mean, post_var = eff.estimate, eff.variance
    sd = math.sqrt(post_var)
    z = norm_ppf(1.0 - alpha / 2.0)
    p_up = norm_sf((0.0 - post_mean) / sd)
    # E[max(0, X)] and E[max(0, -X)] for X ~ N(mu, sd^2)
    pdf = float(stats.norm.pdf(post_mean / sd))
    gain = post_mean * norm_cdf(post_mean / sd) + sd * pdf
    loss = sd * pdf - post_mean * norm_cdf(-post_mean / sd)
    if higher_is_better:
        ctw, risk_t, risk_c = p_up, loss, gain
    else:
        ctw, risk_t, risk_c = 1.0 - p_up, gain, loss
    return Comparison(
        estimate=post_mean,
        se=sd,
        ci_low=post_mean - z * sd,
        ci_high=post_mean + z * sd,
        p_value=math.nan,
        df=math.inf,
        alpha=alpha,
        relative=eff.relative,
        engine="bayesian",
        chance_to_win=ctw,
        risk_control=risk_c,
        risk_treatment=risk_t,
    )


# ---------------------------------------------------------------- SRM
@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check: observed vs expected unit counts per arm."""

    arms: tuple[str, ...]
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    weights: tuple[float, ...]
    chi2: float
    p_value: float
    threshold: float = SRM_THRESHOLD

    @property
    def flagged(self) -> bool:
        """True when p < threshold: the split differs from the configured weights."""
        return bool(math.isfinite(self.p_value) and self.p_value < self.threshold)

    @property
    def observed_shares(self) -> tuple[float, ...]:
        """Each arm's share of all units."""
        total = sum(self.observed)
        return tuple(o / total if total > 0 else math.nan for o in self.observed)


def srm_test(
    counts: Mapping[str, float],
    weights: Mapping[str, float] | None = None,
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """Pearson chi-square goodness of fit of unit counts per arm against ``weights``.

    Args:
        counts: units (requests, users) per arm.
        weights: configured traffic weights per arm (any positive scale; equal
            when None).  Every arm of ``counts`` needs a weight.
        threshold: flag below this p-value (0.001 by default).

    Raises:
        ValueError: an arm without a (positive) weight, or fewer than two arms.
    """
    arms = tuple(counts)
    if len(arms) < 2:
        raise ValueError("an SRM check needs at least two arms")
    w = {a: 1.0 for a in arms} if weights is None else dict(weights)
    missing = [a for a in arms if a not in w or not w[a] > 0]
    if missing:
        raise ValueError(f"arms without a positive weight: {missing}")
    obs = np.array([float(counts[a]) for a in arms])
    wv = np.array([float(w[a]) for a in arms])
    wv = wv / wv.sum()
    total = obs.sum()
    exp = wv * total
    if total <= 0:
        return SrmResult(arms, tuple(obs), tuple(exp), tuple(wv), math.nan, math.nan, threshold)
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    p = float(stats.chi2.sf(chi2, len(arms) - 1))
    return SrmResult(arms, tuple(obs), tuple(exp), tuple(wv), chi2, p, threshold)


# ---------------------------------------------------------------- multiple testing
def holm(p_values: npt.ArrayLike) -> FloatArray:
    """Holm-Bonferroni adjusted p-values (NaNs stay NaN and are not counted).

    Step-down: sort the m finite p-values ascending, p_adj(i) = max_{j<=i} min(1,
    (m - j + 1) p(j)).
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    vals = p[ok]
    order = np.argsort(vals, kind="stable")
    adj = np.minimum(1.0, (m - np.arange(m)) * vals[order])
    adj = np.maximum.accumulate(adj)
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

    NaNs stay NaN and are not counted.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    fdc = getattr(stats, "false_discovery_control", None)
    if fdc is not None:
        out[ok] = fdc(p[ok], method="bh")
        return out
    vals = p[ok]  # pragma: no cover - scipy < 1.11
    m = vals.size
    order = np.argsort(vals)[::-1]
    adj = np.minimum.accumulate(vals[order] * m / np.arange(m, 0, -1))
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def adjust_p_values(p_values: npt.ArrayLike, method: Correction = "holm") -> FloatArray:
    """Adjust p-values for multiple comparisons: ``holm``, ``bh`` or ``none``."""
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=np.float64).copy()
    raise ValueError(f"unknown correction {method!r}; expected holm, bh or none")


# ---------------------------------------------------------------- quantiles
@dataclass(frozen=True)
class QuantileEstimate:
    """A quantile read from histogram buckets, with its Deng-Knoblich-Lu interval.

    Attributes:
        q: the quantile (0.99 for p99).
        value, ci_low, ci_high: in the unit of the bucket bounds (seconds).
        n: observations in the histogram.
        replicates: clustered replicates used for the variance (0: independent).
        se_share: standard error of the share of observations below the quantile.
        se: standard error of ``value``, (ci_high - ci_low) / (2 z) (a normal
            approximation used to compare two arms).
    """

    q: float
    value: float
    ci_low: float
    ci_high: float
    n: float
    replicates: int
    se_share: float
    se: float


def quantile_interval(
    le: npt.ArrayLike,
    cumulative: npt.ArrayLike,
    q: float,
    alpha: float = 0.05,
) -> QuantileEstimate:
    """A quantile of histogram buckets and its Deng-Knoblich-Lu rank interval.

    Args:
        le: bucket upper bounds, shape ``(k,)``, ``inf`` for ``+Inf``.
        cumulative: cumulative counts, shape ``(k,)`` for independent observations,
            or ``(m, k)`` for ``m`` clustered replicates (e.g. per-minute histograms,
            inside which observations are not independent).
        q: the quantile, in (0, 1).
        alpha: two-sided error rate of the interval.

    The point estimate is ``histogram_quantile(q)`` of the summed buckets.  The
    interval is the values at ranks ``n (q -/+ z se)`` (linear interpolation inside
    buckets, as the point estimate), where ``se`` is ``sqrt(q (1 - q) / n)`` for
    independent observations and, for replicates, the delta-method standard error
    of ``sum_i below_i / sum_i n_i`` (``below_i``: replicate i's observations at or
    below the estimate, interpolated like the estimate).  Interpolation inside a
    bucket is an approximation that the interval does not include.
    """
    bounds = np.asarray(le, dtype=np.float64)
    counts = np.asarray(cumulative, dtype=np.float64)
    order = np.argsort(bounds, kind="stable")
    bounds = bounds[order]
    counts = counts[..., order]
    reps = counts if counts.ndim == 2 else None
    total = counts.sum(axis=0) if reps is not None else counts
    total = np.maximum.accumulate(np.nan_to_num(total), axis=-1)
    n = float(total[-1]) if total.size else 0.0
    value = float(histogram_quantile(q, bounds, total))
    nan = math.nan
    if n <= 0 or not math.isfinite(value):
        return QuantileEstimate(q, value, nan, nan, n, 0, nan, nan)
    if reps is None:
        se_share = math.sqrt(q * (1.0 - q) / n)
        m_reps = 0
    else:
        mono = np.maximum.accumulate(np.nan_to_num(reps), axis=1)
        below = _interpolated_below(bounds, mono, value)
        m_reps, se_share = _clustered_se(RatioStats.from_values(below, mono[:, -1]))
    return _rank_interval(q, value, bounds, total, n, m_reps, se_share, alpha)


def _clustered_se(ratio: RatioStats) -> tuple[int, float]:
    """Replicates, and the delta-method standard error of the share below the estimate."""
    return int(ratio.n), (math.sqrt(ratio.variance / ratio.n) if ratio.n > 1 else math.nan)


def _rank_interval(
    q: float,
    value: float,
    bounds: FloatArray,
    total: FloatArray,
    n: float,
    m_reps: int,
    se_share: float,
    alpha: float,
) -> QuantileEstimate:
    """The values at ranks ``n (q -/+ z se_share)`` of the summed buckets ``total``."""
    nan = math.nan
    z = norm_ppf(1.0 - alpha / 2.0)
    if not math.isfinite(se_share):
        return QuantileEstimate(q, value, nan, nan, n, m_reps, se_share, nan)
    lo_q = min(max(q - z * se_share, 0.0), 1.0)
    hi_q = min(max(q + z * se_share, 0.0), 1.0)
    lo = float(histogram_quantile(lo_q, bounds, total))
    hi = float(histogram_quantile(hi_q, bounds, total))
    if not math.isfinite(lo):  # q - z se at 0 and an empty first bucket
        lo = 0.0 if bounds[0] > 0 else float(bounds[0])
    se = (hi - lo) / (2.0 * z)
    return QuantileEstimate(q, value, lo, hi, n, m_reps, se_share, se)


def _below_position(bounds: FloatArray, value: float) -> tuple[int | None, int, float]:
    """Where ``value`` falls in sorted ``bounds``: ``(lo, hi, frac)`` such that the
    observations at or below it are ``c[lo] + frac (c[hi] - c[lo])`` of a cumulative
    bucket vector ``c`` (``c[lo]`` = 0 when ``lo`` is None), as
    ``histogram_quantile`` interpolates."""
    finite = bounds[np.isfinite(bounds)]
    i = int(np.searchsorted(bounds, value, side="left"))
    if i >= finite.size:  # at or beyond the highest finite bound
        return None, finite.size - 1, 1.0
    upper = bounds[i]
    lower = (0.0 if upper > 0 else float(upper)) if i == 0 else float(bounds[i - 1])
    frac = 1.0 if upper == lower else (value - lower) / (upper - lower)
    return (None if i == 0 else i - 1), i, float(frac)


def _interpolated_below(bounds: FloatArray, cumulative: FloatArray, value: float) -> FloatArray:
    """Per replicate, observations <= ``value`` interpolated linearly inside its bucket."""
    lo, hi, frac = _below_position(bounds, value)
    if lo is None and frac == 1.0:
        return cumulative[:, hi].astype(np.float64)
    c_lo = np.zeros(cumulative.shape[0]) if lo is None else cumulative[:, lo]
    return c_lo + frac * (cumulative[:, hi] - c_lo)


@dataclass(frozen=True)
class BucketMoments:
    """Sums over ``rows`` clustered replicates of their cumulative bucket vectors ``c``
    (shape ``(k,)`` each, made monotone, ``+Inf`` last): what
    :func:`quantile_interval_from_moments` needs instead of the replicates.

    Attributes:
        rows: replicates summed.
        sums: ``sum c_j``, shape ``(k,)``.
        squares: ``sum c_j^2``, shape ``(k,)``.
        adjacent: ``sum c_j c_(j+1)``, shape ``(k-1,)``.
        with_total: ``sum c_j c_(k-1)`` (each bucket times the replicate's total),
            shape ``(k,)``.
    """

    rows: float
    sums: FloatArray
    squares: FloatArray
    adjacent: FloatArray
    with_total: FloatArray


def quantile_interval_from_moments(
    le: npt.ArrayLike, moments: BucketMoments, q: float, alpha: float = 0.05
) -> QuantileEstimate:
    """:func:`quantile_interval` of clustered replicates from their :class:`BucketMoments`.

    The share below the estimate of replicate i is ``a c_lo + b c_hi`` (fixed
    ``lo``, ``hi``, ``a``, ``b`` for a given estimate, :func:`_below_position`), so
    the delta-method ratio statistics over replicates are linear combinations of the
    sums, squares and adjacent products: the same interval as from the replicates,
    to float rounding.

    Raises:
        ValueError: ``le`` is not sorted ascending.
    """
    bounds = np.asarray(le, dtype=np.float64)
    if np.any(np.diff(bounds) < 0):
        raise ValueError("bucket bounds must be sorted ascending")
    total = np.maximum.accumulate(np.nan_to_num(moments.sums))
    n = float(total[-1]) if total.size else 0.0
    value = float(histogram_quantile(q, bounds, total))
    nan = math.nan
    if n <= 0 or not math.isfinite(value):
        return QuantileEstimate(q, value, nan, nan, n, 0, nan, nan)
    lo, hi, f = _below_position(bounds, value)
    s, ss, st = moments.sums, moments.squares, moments.with_total
    if lo is None:
        sum_b, sum_bb, sum_bt = f * s[hi], f * f * ss[hi], f * st[hi]
    else:
        g = 1.0 - f
        sum_b = g * s[lo] + f * s[hi]
        sum_bb = g * g * ss[lo] + 2.0 * f * g * moments.adjacent[lo] + f * f * ss[hi]
        sum_bt = g * st[lo] + f * st[hi]
    sum_b, sum_bb, sum_bt = float(sum_b), float(sum_bb), float(sum_bt)
    m_reps, se_share = _clustered_se(
        RatioStats(moments.rows, sum_b, sum_bb, float(s[-1]), float(ss[-1]), sum_bt)
    )
    return _rank_interval(q, value, bounds, total, n, m_reps, se_share, alpha)


def quantile_test(
    control: QuantileEstimate,
    treatment: QuantileEstimate,
    relative: bool = True,
    alpha: float = 0.05,
) -> Comparison:
    """Compare two arms' quantiles with a normal approximation.

    Each arm's standard error is its Deng-Knoblich-Lu interval width / (2 z);
    absolute difference variance ``se_T^2 + se_C^2``; relative lift by the delta
    method ``se_T^2/q_C^2 + se_C^2 q_T^2/q_C^4``.
    """
    qc, qt = control.value, treatment.value
    sc, st_ = control.se, treatment.se
    if not all(math.isfinite(v) for v in (qc, qt, sc, st_)):
        return _nan_result(alpha, relative, "two-sided", "fixed")
    if relative:
        if qc == 0:
            return _nan_result(alpha, relative, "two-sided", "fixed")
        est, var = (qt - qc) / abs(qc), st_**2 / qc**2 + sc**2 * qt**2 / qc**4
    else:
        est, var = qt - qc, st_**2 + sc**2
    if var <= 0:
        return _nan_result(alpha, relative, "two-sided", "fixed")
    se = math.sqrt(var)
    z = norm_ppf(1.0 - alpha / 2.0)
    p = 2.0 * norm_sf(abs(est / se))
    return Comparison(est, se, est - z * se, est + z * se, p, math.inf, alpha, relative)


# ---------------------------------------------------------------- guards
@dataclass(frozen=True)
class Guards:
    """Minimum sample sizes below which no statistics are reported.

    ``min_units``: units (replicates) per arm; ``min_observations``: observations
    (e.g. requests) per arm behind those units.
    """

    min_units: int = 30
    min_observations: float = 100.0

    def check(
        self,
        units: Mapping[str, float],
        observations: Mapping[str, float] | None = None,
    ) -> str | None:
        """None when every arm has enough data, else the reason in plain words."""
        short = [f"{a} ({u:,.0f})" for a, u in units.items() if u < self.min_units]
        if short:
            return (
                f"too few units: {', '.join(short)}; at least {self.min_units} per arm are "
                "needed before any statistics are shown"
            )
        if observations is not None:
            low = [f"{a} ({o:,.0f})" for a, o in observations.items() if o < self.min_observations]
            if low:
                return (
                    f"too few observations: {', '.join(low)}; at least "
                    f"{self.min_observations:,.0f} per arm are needed"
                )
        return None


# ---------------------------------------------------------------- regions
def direction_disagreement(
    by_region: Mapping[str, Comparison], pooled: Comparison | None = None
) -> str | None:
    """A warning when regions disagree in direction (a possible Simpson's paradox).

    Warns when (1) some regions' intervals lie above 0 and others' below 0, (2) the
    pooled interval excludes 0 on one side while a region's excludes it on the other,
    or (3) the pooled point estimate has the opposite sign of every region's point
    estimate (two or more regions): the pooled result then comes from how traffic
    is spread over regions, not from the arms.
    """
    up = sorted(r for r, t in by_region.items() if t.direction > 0)
    down = sorted(r for r, t in by_region.items() if t.direction < 0)
    if up and down:
        return (
            f"Regions disagree in direction: the treatment is significantly higher in "
            f"{', '.join(up)} and lower in {', '.join(down)}; the pooled figure hides this."
        )
    if pooled is not None and pooled.direction != 0:
        against = down if pooled.direction > 0 else up
        if against:
            return (
                f"The pooled effect is {'up' if pooled.direction > 0 else 'down'} but "
                f"{', '.join(against)} is significantly the other way."
            )
    if pooled is not None and math.isfinite(pooled.estimate) and pooled.estimate != 0:
        signs = [np.sign(t.estimate) for t in by_region.values() if math.isfinite(t.estimate)]
        if len(signs) >= 2 and all(s == -np.sign(pooled.estimate) for s in signs):
            return (
                "Simpson's paradox: every region moves one way and the pooled result the "
                "other; the arms' traffic is spread differently over regions."
            )
    return None


# ---------------------------------------------------------------- cumulative
def cumulative_sums(values: npt.ArrayLike, checkpoints: npt.ArrayLike) -> FloatArray:
    """Sums of ``values`` up to each checkpoint index (exclusive), shape ``(len(checkpoints),)``.

    ``checkpoints`` are counts of leading elements (e.g. ``np.searchsorted`` of
    checkpoint times in sorted replicate times).
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(v))])
    return c[np.asarray(checkpoints, dtype=np.int64)]


# ---------------------------------------------------------------- verdict
@dataclass(frozen=True)
class MetricOutcome:
    """What the verdict needs to know about one metric of one treatment arm.

    Attributes:
        name: metric key; label: the metric's name in words ("accuracy").
        role: ``primary``, ``guardrail`` or ``secondary``.
        higher_is_better: direction of "better".
        result: the comparison (relative results are fractions).
        adjusted_p: the multiple-testing-adjusted p-value (NaN for Bayesian).
        better_phrase, worse_phrase: a verb phrase with ``{size}`` for the size of
            the change, e.g. "is {size} more accurate", "costs {size} more per 1k
            requests".
        ratio_phrase: when set, a worse change is said as a multiple with ``{x}``,
            e.g. "burns the latency SLO {x}x faster".
        guard: a minimum-sample message instead of a result.
    """

    name: str
    label: str
    role: str
    higher_is_better: bool
    result: Comparison | None
    adjusted_p: float = math.nan
    better_phrase: str = "is {size} better in {label}"
    worse_phrase: str = "is {size} worse in {label}"
    ratio_phrase: str | None = None
    guard: str | None = None

    @property
    def verdict_direction(self) -> int:
        """+1 significantly better, -1 significantly worse, 0 neither (after correction).

        Bayesian results count at a chance to win of at least 95% (or at most 5%).
        """
        r = self.result
        if r is None or self.guard:
            return 0
        if r.engine == "bayesian":
            ctw = r.chance_to_win
            if not math.isfinite(ctw):
                return 0
            return 1 if ctw >= 0.95 else (-1 if ctw <= 0.05 else 0)
        p = self.adjusted_p if math.isfinite(self.adjusted_p) else r.p_value
        if not (math.isfinite(p) and p < r.alpha) or r.direction == 0:
            return 0
        return r.direction if self.higher_is_better else -r.direction


def ci_text(r: Comparison) -> str:
    """The interval in words: ``CI +1.2% to +2.3%`` (relative) or ``CI +0.01 to +0.02``."""
    lo, hi = r.ci_low, r.ci_high
    if r.relative:
        return f"CI {100 * lo:+.1f}% to {100 * hi:+.1f}%"
    return f"CI {lo:+.3g} to {hi:+.3g}"


def _phrase(o: MetricOutcome, better: bool) -> str:
    r = o.result
    assert r is not None
    if not better and o.ratio_phrase and r.relative:
        factor = 1.0 + r.estimate
        lo, hi = 1.0 + r.ci_low, 1.0 + r.ci_high
        if o.higher_is_better:  # worse means lower: say how many times less
            factor, lo, hi = 1.0 / factor, 1.0 / hi, 1.0 / lo
        return o.ratio_phrase.format(x=f"{factor:.2f}", label=o.label) + (
            f" (CI {lo:.2f}x to {hi:.2f}x)"
        )
    template = o.better_phrase if better else o.worse_phrase
    size = f"{100 * abs(r.estimate):.1f}%" if r.relative else f"{abs(r.estimate):.3g}"
    return template.format(size=size, label=o.label) + f" ({ci_text(r)})"


def verdict(
    treatment: str,
    control: str,
    outcomes: Sequence[MetricOutcome],
    srm: SrmResult | None = None,
) -> tuple[str, str]:
    """A plain-language verdict and a decision for one treatment arm against control.

    Returns ``(decision, text)``; decision is one of ``untrustworthy`` (sample-ratio
    mismatch: nothing else is said), ``ship`` (the primary metric is better and no
    guardrail worse), ``trade-off`` (the primary metric is better and a guardrail
    worse), ``do not ship`` (the primary metric, or only guardrails, worse),
    ``inconclusive`` (no significant difference on the primary metric) or
    ``insufficient data`` (the minimum-sample guard holds on the primary metric).
    Significance uses the corrected p-values.

    Example: "v2 is 1.7% more accurate (CI +1.6% to +1.8%) but costs 18.0% more per
    1k requests (CI ...) and burns the latency SLO 1.60x faster (CI ...) than v1."
    """
    if srm is not None and srm.flagged:
        shares = ", ".join(
            f"{a} {100 * s:.2f}% (configured {100 * w:.1f}%)"
            for a, s, w in zip(srm.arms, srm.observed_shares, srm.weights, strict=True)
        )
        return (
            "untrustworthy",
            f"Sample ratio mismatch (p = {srm.p_value:.2g}): the traffic split ({shares}) is "
            "not the configured one, so every comparison may be biased. Find the cause "
            "(routing, crashes, logging) before reading the results.",
        )
    primary = [o for o in outcomes if o.role == "primary"]
    if primary and all(o.guard for o in primary):
        return "insufficient data", f"Not enough data yet: {primary[0].guard}."
    main = [o for o in outcomes if o.role in ("primary", "guardrail")]
    better = [o for o in main if o.verdict_direction > 0]
    worse = [o for o in main if o.verdict_direction < 0]
    lead = [o for o in better if o.role == "primary"] or better[:1]
    rest = [o for o in better if o not in lead]
    sentence = ""
    if lead:
        sentence = f"{treatment} " + " and ".join(_phrase(o, True) for o in lead)
    if worse:
        sentence = (sentence + " but " if sentence else f"{treatment} ") + _join(
            [_phrase(o, False) for o in worse]
        )
    primary_dir = [o.verdict_direction for o in primary]
    guard_worse = any(o.role == "guardrail" for o in worse)
    if any(d > 0 for d in primary_dir):
        decision = "trade-off" if guard_worse else "ship"
    elif any(d < 0 for d in primary_dir) or (worse and not better):
        decision = "do not ship"
    else:
        decision = "inconclusive"
    if sentence:
        text = f"{sentence} than {control}."
    else:
        names = ", ".join(o.label for o in primary) or "any metric"
        text = (
            f"No significant difference between {treatment} and {control} in {names} or "
            "the guardrails (after correction for multiple comparisons): keep collecting "
            "data, or accept that any effect is smaller than the intervals."
        )
    if rest:
        text += " It also " + _join([_phrase(o, True) for o in rest]) + "."
    if sentence and primary and not any(primary_dir):
        text += f" The primary metric ({primary[0].label}) shows no significant difference."
    others = [o for o in outcomes if o.role not in ("primary", "guardrail")]
    moved = [(o, o.verdict_direction) for o in others if o.verdict_direction != 0]
    if moved:
        text += " Secondary metrics: it " + _join([_phrase(o, d > 0) for o, d in moved]) + "."
    return decision, text


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]

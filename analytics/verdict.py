"""Deployment verdicts: canary / before-after judgement as Kayenta's judge (pure).

Per signal (:func:`classify`):

1. Mann-Whitney U test of the experiment (canary, "after") against the control
   (baseline, "before") and the Hodges-Lehmann estimate of the shift
   ``experiment - control`` with its confidence interval (:func:`hodges_lehmann`;
   scipy has none).
2. A tolerance band ``+/- tolerance x |estimate|`` around 0: the signal is **High**
   when the interval's lower end lies above the band, **Low** when its upper end lies
   below it (only in the signal's watched direction).
3. An effect-size gate on ``mean(experiment) / mean(control)``: High also needs the
   ratio at or above ``effect_gate[1]``, Low at or below ``effect_gate[0]``; otherwise
   the signal passes (a statistically clear but tiny shift does not fail a deploy).

Then :func:`judge`: a critical signal classified High or Low (or without data) fails
the whole analysis; half or more signals without data fail it; otherwise the score is
``100 x passes / classified`` and the verdict is Pass at ``>= pass_score`` (95),
Marginal at ``>= marginal_score`` (75), else Fail.

Hodges-Lehmann interval: the estimate is the median of the ``m x n`` pairwise
differences; the interval is the pair of order statistics of those differences at
the ranks where the Mann-Whitney statistic reaches its ``alpha / 2`` quantiles -
exact (the U distribution counted by recursion, as R's ``qwilcox``) when both samples
have fewer than 50 values and no ties; otherwise R's asymptotic interval (the shifts
where the normal statistic of the rank sum, with continuity and tie corrections,
crosses ``-/+ z``), which is what Kayenta's ``MannWhitney`` computes, found here by
bisection.  The estimate is always the median of the pairwise differences (found by
counting and bisection for large samples, never materialising the ``m n``
differences).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

Direction = Literal["increase", "decrease", "either"]
Classification = Literal["Pass", "High", "Low", "Nodata"]
FloatArray = npt.NDArray[np.float64]

#: Above this many pairwise differences, order statistics are found by bisection.
_MATERIALISE_MAX = 4_000_000


@dataclass(frozen=True)
class ShiftEstimate:
    """Hodges-Lehmann shift ``experiment - control`` with its interval and the U test."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    pvalue: float
    exact: bool


# --------------------------------------------------------------------------- Hodges-Lehmann


@lru_cache(maxsize=256)
def _u_cdf(m: int, n: int) -> tuple[float, ...]:
    """P(U <= u) for u = 0..m n under H0 (no ties), counted by recursion."""
    # f[i][j] = counts of U for samples of i and j (as a polynomial in q).
    table: dict[tuple[int, int], np.ndarray] = {}

    def f(i: int, j: int) -> np.ndarray:
        if (i, j) in table:
            return table[(i, j)]
        if i == 0 or j == 0:
            out = np.ones(1)
        else:
            # The largest value comes from the first sample (adds j) or the second (adds 0).
            a, b = f(i - 1, j), f(i, j - 1)
            out = np.zeros(i * j + 1)
            out[j : j + a.size] += a
            out[: b.size] += b
        table[(i, j)] = out
        return out

    for i in range(m + 1):  # fill bottom-up to keep the recursion shallow
        for j in range(n + 1):
            f(i, j)
    counts = f(m, n)
    return tuple(float(c) for c in np.cumsum(counts) / counts.sum())


def _qwilcox(p: float, m: int, n: int) -> int:
    """Smallest u with P(U <= u) >= p (R's ``qwilcox``)."""
    cdf = _u_cdf(m, n)
    for u, c in enumerate(cdf):
        if c >= p * (1 - 64 * np.finfo(float).eps):
            return u
    return m * n


def _count_le(x: FloatArray, y_sorted: FloatArray, t: float) -> int:
    """Number of pairs with ``x_i - y_j <= t``."""
    return int((y_sorted.size - np.searchsorted(y_sorted, x - t, side="left")).sum())


def _kth_difference(x: FloatArray, y: FloatArray, k: int) -> float:
    """The k-th smallest (0-based) of the pairwise differences ``x_i - y_j``."""
    m, n = x.size, y.size
    if m * n <= _MATERIALISE_MAX:
        diffs = (x[:, None] - y[None, :]).ravel()
        return float(np.partition(diffs, k)[k])
    ys = np.sort(y)
    lo = float(x.min() - ys[-1])
    hi = float(x.max() - ys[0])
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if _count_le(x, ys, mid) >= k + 1:
            hi = mid
        else:
            lo = mid
    # Snap to the largest actual difference <= hi: the k-th one.
    idx = np.searchsorted(ys, x - hi, side="left")
    ok = idx < n
    return float((x[ok] - ys[idx[ok]]).max()) if ok.any() else hi


def _tie_term(x: FloatArray, y: FloatArray) -> float:
    """R's tie correction ``sum(t^3 - t) / ((m + n)(m + n - 1))`` from ties within each sample.

    Ties between ``x - mu`` and ``y`` only happen at the jump points of the statistic.
    """
    total = 0.0
    for v in (x, y):
        _, t = np.unique(v, return_counts=True)
        t = t.astype(np.float64)
        total += float((t**3 - t).sum())
    n = x.size + y.size
    return total / (n * (n - 1))


def _asymptotic_root(x: FloatArray, y: FloatArray, quantile: float) -> float:
    """The shift ``mu`` where R's normal statistic of ``x - mu`` against ``y`` crosses ``quantile``.

    The statistic (rank sum minus its mean, continuity-corrected, over the
    tie-corrected standard deviation) falls as ``mu`` grows; the root is found by
    bisection, each step counting ``y`` below each ``x_i - mu`` in ``O(m log n)``.
    """
    m, n = x.size, y.size
    ys = np.sort(y)
    sigma = math.sqrt(m * n / 12 * ((m + n + 1) - _tie_term(x, y)))

    def f(mu: float) -> float:
        shifted = x - mu
        below = np.searchsorted(ys, shifted, side="left")
        equal = np.searchsorted(ys, shifted, side="right") - below
        dz = float(below.sum()) + 0.5 * float(equal.sum()) - m * n / 2
        if sigma == 0:
            return -quantile
        return (dz - 0.5 * float(np.sign(dz))) / sigma - quantile

    lo, hi = float(x.min() - ys[-1]), float(x.max() - ys[0])
    if f(lo) <= 0:
        return lo
    if f(hi) >= 0:
        return hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def hodges_lehmann(
    experiment: npt.ArrayLike, control: npt.ArrayLike, confidence: float = 0.95
) -> ShiftEstimate:
    """Hodges-Lehmann shift of ``experiment`` over ``control`` with its confidence interval.

    Args:
        experiment: the canary / after sample.
        control: the baseline / before sample.
        confidence: two-sided confidence level of the interval.

    Raises:
        ValueError: an empty sample, NaN values or a confidence outside (0, 1).
    """
    x = np.asarray(experiment, dtype=np.float64).ravel()
    y = np.asarray(control, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need at least one value")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("samples hold NaN values; drop them first")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m, n = x.size, y.size
    mn = m * n
    alpha = 1 - confidence
    ties = np.unique(np.concatenate([x, y])).size < m + n
    exact = m < 50 and n < 50 and not ties
    if exact:
        qu = max(_qwilcox(alpha / 2, m, n), 1)
        # R: c(diffs[qu], diffs[m n - qu + 1]), 1-based
        lower = _kth_difference(x, y, qu - 1)
        upper = _kth_difference(x, y, mn - qu)
    else:
        z = float(stats.norm.ppf(1 - alpha / 2))
        lower = _asymptotic_root(x, y, z)
        upper = _asymptotic_root(x, y, -z)
    if mn % 2:
        estimate = _kth_difference(x, y, mn // 2)
    else:
        estimate = (_kth_difference(x, y, mn // 2 - 1) + _kth_difference(x, y, mn // 2)) / 2
    if np.ptp(np.concatenate([x, y])) == 0:
        pvalue = 1.0
    else:
        method = "exact" if exact else "asymptotic"
        pvalue = float(stats.mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue)
    return ShiftEstimate(estimate, lower, upper, confidence, pvalue, exact)


# --------------------------------------------------------------------------- judge


@dataclass(frozen=True)
class SignalSpec:
    """How one signal is judged.

    Attributes:
        name: the signal.
        direction: which change fails it: ``increase`` (latency, errors), ``decrease``
            (accuracy, throughput) or ``either``.
        critical: a failure of this signal fails the whole analysis.
        effect_gate: ``(allowed_decrease, allowed_increase)`` of
            ``mean(experiment) / mean(control)``; Low needs the ratio at or below the
            first, High at or above the second.  ``(1, 1)`` disables the gate.
        tolerance: half-width of the tolerance band as a share of ``|estimate|``.
        confidence: confidence of the Hodges-Lehmann interval (Kayenta's judge: 0.98).
    """

    name: str
    direction: Direction = "either"
    critical: bool = False
    effect_gate: tuple[float, float] = (1.0, 1.0)
    tolerance: float = 0.25
    confidence: float = 0.98


@dataclass(frozen=True)
class SignalResult:
    """One signal's classification and the figures behind it."""

    name: str
    classification: Classification
    critical: bool
    ratio: float
    shift: ShiftEstimate | None
    reason: str


@dataclass(frozen=True)
class Verdict:
    """The analysis: ``Pass`` / ``Marginal`` / ``Fail``, its score and per-signal results."""

    verdict: Literal["Pass", "Marginal", "Fail"]
    score: float
    signals: list[SignalResult] = field(default_factory=list)
    reason: str = ""


def _clean(values: npt.ArrayLike) -> FloatArray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[~np.isnan(v)]


def classify(
    experiment: npt.ArrayLike, control: npt.ArrayLike, spec: SignalSpec | None = None
) -> SignalResult:
    """Classify one signal as Pass, High, Low or Nodata (NaN values are removed)."""
    spec = spec or SignalSpec("signal")
    x, y = _clean(experiment), _clean(control)
    if x.size == 0 or y.size == 0:
        return SignalResult(spec.name, "Nodata", spec.critical, math.nan, None, "missing data")
    if np.array_equal(np.sort(x), np.sort(y)) or np.unique(np.concatenate([x, y])).size == 1:
        return SignalResult(spec.name, "Pass", False, 1.0, None, "identical data")
    cmean = float(y.mean())
    ratio = 1.0 if cmean == 0 else float(x.mean()) / cmean
    shift = hodges_lehmann(x, y, spec.confidence)
    band = spec.tolerance * abs(shift.estimate)
    high = spec.direction in ("increase", "either") and shift.lower > band
    low = spec.direction in ("decrease", "either") and shift.upper < -band
    if high and ratio >= spec.effect_gate[1]:
        cls: Classification = "High"
        reason = f"shift {shift.estimate:.4g} [{shift.lower:.4g}, {shift.upper:.4g}] > band"
    elif low and ratio <= spec.effect_gate[0]:
        cls = "Low"
        reason = f"shift {shift.estimate:.4g} [{shift.lower:.4g}, {shift.upper:.4g}] < band"
    else:
        cls = "Pass"
        if high or low:
            reason = f"mean ratio {ratio:.3g} inside the effect gate {spec.effect_gate}"
        else:
            reason = "interval overlaps the tolerance band"
    failed = cls in ("High", "Low")
    return SignalResult(spec.name, cls, spec.critical and failed, ratio, shift, reason)


def judge(
    experiment: Mapping[str, npt.ArrayLike],
    control: Mapping[str, npt.ArrayLike],
    specs: Sequence[SignalSpec],
    pass_score: float = 95.0,
    marginal_score: float = 75.0,
) -> Verdict:
    """Judge every signal of ``specs`` and combine them into one verdict.

    Args:
        experiment, control: signal name -> values (a missing name is "no data").
        specs: the signals to judge.
        pass_score, marginal_score: score thresholds of Pass and Marginal.
    """
    if not specs:
        raise ValueError("no signal to judge")
    if not 0 <= marginal_score <= pass_score <= 100:
        raise ValueError("expected 0 <= marginal_score <= pass_score <= 100")
    results = [classify(experiment.get(s.name, []), control.get(s.name, []), s) for s in specs]
    nodata = [r for r in results if r.classification == "Nodata"]
    classified = [r for r in results if r.classification != "Nodata"]
    critical = [
        r.name
        for r, s in zip(results, specs, strict=True)
        if s.critical and r.classification in ("High", "Low", "Nodata")
    ]
    passes = sum(1 for r in classified if r.classification == "Pass")
    score = 100.0 * passes / len(classified) if classified else 0.0
    if critical:
        return Verdict("Fail", 0.0, results, f"critical signal(s) failed: {', '.join(critical)}")
    if 2 * len(nodata) >= len(results):
        return Verdict(
            "Fail", 0.0, results, f"{len(nodata)} of {len(results)} signals have no data"
        )
    if score >= pass_score:
        verdict: Literal["Pass", "Marginal", "Fail"] = "Pass"
    elif score >= marginal_score:
        verdict = "Marginal"
    else:
        verdict = "Fail"
    failed = [f"{r.name} {r.classification}" for r in classified if r.classification != "Pass"]
    return Verdict(verdict, score, results, "; ".join(failed) or "every signal passed")

"""Drift metrics on histogram buckets and on per-step values, with their thresholds.

Pure: numpy and scipy only (no Streamlit, DuckDB or network).  Methods, thresholds and
reference values follow the statistics reference notes (stats.md); the sources are named at
each function.

Conventions
-----------
- *Reference* ``p`` and *current* ``q``: the reference is the distribution we trust
  (a baseline period, the previous N days, the same window a week earlier), the
  current one is the window under test.  Every two-argument function takes the
  reference first.
- A histogram is a :class:`Buckets`: upper bounds ``le`` (shape ``(k,)``, sorted, the
  last one ``+inf``) and **per-bucket** counts (shape ``(k,)``), i.e. cumulative
  Prometheus buckets de-cumulated after forcing monotonicity (running maximum) and
  clamping at 0, as ``histogram_quantile`` does (:func:`Buckets.from_cumulative`).
  Counts are observations (requests, predictions), so the metrics are exact on them.
- The lowest bucket starts at 0 when its upper bound is positive (else at that bound),
  and the ``+Inf`` bucket's mass is placed at the highest finite bound, as
  ``histogram_quantile`` does; everything that needs a position inside a bucket
  (re-binning, KS, Wasserstein, standard deviation) assumes observations spread
  uniformly inside the bucket (a piecewise-linear CDF).
- Logarithms: PSI, KL and the G-test use the natural log; the Jensen-Shannon
  distance uses log base 2 by default (range [0, 1], NannyML's convention), and says so
  in its label; base e (Evidently's, range [0, 0.8326]) is available with ``base``.

Alarms
------
Only effect sizes raise alarms: PSI, Jensen-Shannon distance, Hellinger distance and
the normalised Wasserstein-1 distance.  p-values (chi-square, G-test, KS) are
reported for context but never alarm, because at the counts a fleet produces every
tiny shift is "significant" (Evidently switches to distances above 1000 rows).
Each alarm metric has a fixed threshold (PSI 0.1 warning / 0.25 critical; JS 0.1;
Hellinger 0.1; W1 0.1) and, when reference chunks are given, a learned one: the
metric of each reference chunk against the rest of the reference, alert above
mean + 3 sigma (NannyML's rule; here leave-one-chunk-out so a chunk is not compared
with itself).  A verdict names the threshold that fired.
Too few observations on either side gives ``insufficient data``, not a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial.distance import jensenshannon

from analytics.histogram import decumulate, histogram_quantile

FloatArray = npt.NDArray[np.float64]
Verdict = Literal["ok", "warning", "critical", "insufficient data"]
#: How fixed and learned thresholds combine into a verdict (see :func:`judge`).
Rule = Literal["both", "either", "fixed", "learned"]

#: Evidently's replacement for an empty bucket's share in PSI (and KL).
PSI_EPSILON = 1e-4
#: Evidently's floor for the reference standard deviation in the normalised W1.
STD_FLOOR = 1e-3
#: Default minimum observations per side.  Under no drift PSI is about
#: ``(k - 1) (1/n + 1/m)`` (it is Jeffreys' divergence, ~ chi-square / N), so with the
#: 22 buckets of vLLM's latency histogram 1000 observations a side keep the noise
#: near 0.04, well under the 0.1 warning threshold.
MIN_COUNT = 1000
SEVERITY: dict[str, int] = {"insufficient data": -1, "ok": 0, "warning": 1, "critical": 2}


# --------------------------------------------------------------------------- buckets
@dataclass(frozen=True)
class Buckets:
    """One histogram as per-bucket counts.

    Attributes:
        le: upper bounds, shape ``(k,)``, strictly increasing, ``le[-1] == inf``,
            in the signal's unit (seconds for latency, tokens, score 0-1).
        counts: observations per bucket ``(le[i-1], le[i]]``, shape ``(k,)``, >= 0.
    """

    le: FloatArray
    counts: FloatArray

    def __post_init__(self) -> None:
        le = np.asarray(self.le, dtype=np.float64)
        counts = np.asarray(self.counts, dtype=np.float64)
        if le.ndim != 1 or le.shape != counts.shape:
            raise ValueError(
                f"le and counts must have one shape (k,), got {le.shape} and {counts.shape}"
            )
        if le.size < 2 or not np.isposinf(le[-1]):
            raise ValueError("a histogram needs at least 2 buckets and a +Inf bucket")
        if np.any(np.diff(le) <= 0):
            raise ValueError("bucket bounds must be strictly increasing")
        object.__setattr__(self, "le", le)
        object.__setattr__(self, "counts", np.clip(np.nan_to_num(counts, nan=0.0), 0.0, None))

    @classmethod
    def from_cumulative(cls, le: npt.ArrayLike, cumulative: npt.ArrayLike) -> Buckets:
        """From cumulative ``le`` bucket counts in any order (Prometheus's ``_bucket``).

        Bounds that appear twice (``"1"`` and ``"1.0"``) are added together; the
        counts are sorted by bound, made monotone (running maximum), de-cumulated and
        clamped at 0 (:func:`analytics.histogram.decumulate`).  A missing ``+Inf``
        bucket is added with the highest cumulative count (no observation above).
        """
        bounds = np.asarray(le, dtype=np.float64)
        cum = np.asarray(cumulative, dtype=np.float64)
        uniq, inverse = np.unique(bounds, return_inverse=True)
        summed = np.zeros(uniq.size)
        np.add.at(summed, inverse, np.nan_to_num(cum, nan=0.0))
        if uniq.size == 0 or not np.isposinf(uniq[-1]):
            top = float(np.max(summed)) if summed.size else 0.0
            uniq = np.append(uniq, np.inf)
            summed = np.append(summed, top)
        return cls(uniq, decumulate(summed))

    @property
    def total(self) -> float:
        """Number of observations."""
        return float(self.counts.sum())

    @property
    def shares(self) -> FloatArray:
        """Share of observations per bucket (sums to 1; all zero when empty)."""
        t = self.total
        return self.counts / t if t > 0 else np.zeros_like(self.counts)

    @property
    def lower(self) -> FloatArray:
        """Lower bound of each bucket: 0 (or ``le[0]`` when <= 0) for the first."""
        first = 0.0 if self.le[0] > 0 else float(self.le[0])
        return np.concatenate([[first], self.le[:-1]])

    def cumulative(self) -> FloatArray:
        """Cumulative counts per bucket, shape ``(k,)``."""
        return np.cumsum(self.counts)

    def cdf_at(self, x: npt.ArrayLike) -> FloatArray:
        """The piecewise-linear CDF (share of observations <= ``x``), shape of ``x``.

        Linear inside each finite bucket; the ``+Inf`` bucket's mass lies above the
        highest finite bound (the CDF stays at its value there up to ``+inf``).
        """
        xs = np.asarray(x, dtype=np.float64)
        t = self.total
        if t <= 0:
            return np.zeros_like(xs)
        knots_x = np.concatenate([[self.lower[0]], self.le[:-1]])
        knots_y = np.concatenate([[0.0], np.cumsum(self.counts[:-1])]) / t
        out = np.interp(xs, knots_x, knots_y, left=0.0, right=float(knots_y[-1]))
        return np.where(np.isposinf(xs), 1.0, out)

    def quantile(self, q: float) -> float:
        """The ``q``-quantile as Prometheus's ``histogram_quantile`` computes it."""
        return float(histogram_quantile(q, self.le, self.cumulative()))

    def moments(self) -> tuple[float, float]:
        """``(mean, standard deviation)`` assuming observations uniform inside buckets.

        Approximate: a histogram does not hold the variance (the exact mean is
        ``increase(_sum) / increase(_count)`` when the ``_sum`` series is stored).
        The ``+Inf`` bucket counts at the highest finite bound.
        """
        p = self.shares
        a = self.lower.copy()
        b = self.le.copy()
        a[-1] = b[-1] = self.le[-2]
        mean = float(np.sum(p * (a + b) / 2))
        second = float(np.sum(p * (a * a + a * b + b * b) / 3))
        return mean, math.sqrt(max(second - mean * mean, 0.0))


def rebin(h: Buckets, le: npt.ArrayLike) -> Buckets:
    """Re-bin ``h`` onto new upper bounds ``le`` via its interpolated (piecewise-linear) CDF.

    Exact when every new bound is one of ``h``'s bounds; otherwise the counts of a
    split bucket are shared in proportion to the width (uniform inside the bucket).
    Mass above ``h``'s highest finite bound stays in the new ``+Inf`` bucket.

    Args:
        h: the histogram.
        le: new upper bounds, increasing; ``+inf`` is appended when missing.
    """
    new = np.asarray(le, dtype=np.float64)
    if new.size == 0 or not np.isposinf(new[-1]):
        new = np.append(new, np.inf)
    cum = h.cdf_at(new) * h.total
    cum[-1] = h.total
    return Buckets(new, np.clip(np.diff(cum, prepend=0.0), 0.0, None))


def common_bounds(a: Buckets, b: Buckets, min_shared: int = 4) -> FloatArray:
    """Upper bounds to compare ``a`` and ``b`` on when their layouts differ.

    - The bounds both layouts share, when there are at least ``min_shared`` finite
      ones: re-binning onto them is exact (no interpolation), only resolution is lost.
    - Otherwise the bounds of the coarser layout (fewer bounds) inside the range both
      resolve (from the larger lowest bound to the smaller highest finite bound; beyond
      it one side only knows "more than", and splitting its ``+Inf`` mass would invent
      a shape).  Only the finer side is interpolated.  The union of both layouts is
      not used: it interpolates both sides and the invented shapes differ (on 20,000
      lognormal samples bucketed two ways, PSI 0.18 between identical data on the
      union against 0.01-0.02 on either layout).  Non-nested layouts therefore carry
      a binning error of that order; rows compared after re-binning say so.
    """
    shared = np.intersect1d(a.le, b.le)
    if np.sum(np.isfinite(shared)) >= min_shared:
        return shared
    lo = max(a.le[0], b.le[0])
    hi = min(a.le[-2], b.le[-2])

    def inside(le: FloatArray) -> FloatArray:
        return le[(le >= lo) & (le <= hi)]

    coarse = min(inside(a.le), inside(b.le), key=lambda le: le.size)
    return np.append(coarse, np.inf)


def align(ref: Buckets, cur: Buckets, min_shared: int = 4) -> tuple[Buckets, Buckets]:
    """``(ref, cur)`` on one bucket layout (unchanged when the layouts already match)."""
    if ref.le.shape == cur.le.shape and np.array_equal(ref.le, cur.le):
        return ref, cur
    bounds = common_bounds(ref, cur, min_shared)
    return rebin(ref, bounds), rebin(cur, bounds)


# --------------------------------------------------------------------------- metrics
def _shares(counts: npt.ArrayLike) -> FloatArray:
    c = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
    t = c.sum()
    if t <= 0:
        raise ValueError("a distribution with no observations has no shares")
    return np.asarray(c / t, dtype=np.float64)


def psi(ref: npt.ArrayLike, cur: npt.ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index, natural log.

    ``PSI = sum_k (q_k - p_k) ln(q_k / p_k)`` with ``p`` the reference shares and
    ``q`` the current shares; an empty bucket's share is replaced by ``epsilon``
    (1e-4, as Evidently's ``np.place(percents, percents == 0, 0.0001)``, shares not
    re-normalised).  Reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant.

    Args:
        ref, cur: counts (or shares) per bucket, shape ``(k,)``, one layout.
    """
    p = _shares(ref)
    q = _shares(cur)
    p = np.where(p == 0, epsilon, p)
    q = np.where(q == 0, epsilon, q)
    return float(np.sum((q - p) * np.log(q / p)))


def kl_divergence(ref: npt.ArrayLike, cur: npt.ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """``KL(q || p) = sum_k q_k ln(q_k / p_k)``, natural log (nats); empty shares -> epsilon."""
    p = _shares(ref)
    q = _shares(cur)
    p = np.where(p == 0, epsilon, p)
    mask = q > 0
    return float(np.sum(q[mask] * np.log(q[mask] / p[mask])))


def js_distance(ref: npt.ArrayLike, cur: npt.ArrayLike, base: float = 2.0) -> float:
    """Jensen-Shannon distance ``sqrt(JSD)``, log base 2 by default.

    ``JSD = (KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``
    (``scipy.spatial.distance.jensenshannon``).  Base 2 gives [0, 1] (NannyML);
    base e gives [0, sqrt(ln 2)] = [0, 0.8326] (Evidently, threshold 0.1).  The
    base-2 value is the base-e value times ``1 / sqrt(ln 2)`` = 1.2011.
    """
    return float(jensenshannon(_shares(ref), _shares(cur), base=base))


def hellinger(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Hellinger distance ``sqrt(1 - sum_k sqrt(p_k q_k))``, in [0, 1].

    Evidently flags >= 0.1; whylogs reads 0.15 as "possible drift", 0.4 as "drift".
    """
    bc = float(np.sum(np.sqrt(_shares(ref) * _shares(cur))))
    return math.sqrt(max(1.0 - bc, 0.0))


def _expected(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Observed current counts and expected counts from the reference shares.

    Buckets empty on both sides are dropped; a bucket empty in the reference only
    gets the share ``PSI_EPSILON`` (re-normalised), so its p-value tends to 0 rather
    than being undefined.
    """
    r = np.clip(np.asarray(ref, dtype=np.float64), 0.0, None)
    c = np.clip(np.asarray(cur, dtype=np.float64), 0.0, None)
    keep = (r > 0) | (c > 0)
    r, c = r[keep], c[keep]
    p = _shares(r)
    p = np.where(p == 0, PSI_EPSILON, p)
    p = p / p.sum()
    return c, p * c.sum()


def chi_square_p(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Pearson chi-square goodness of fit of the current counts to the reference shares.

    Expected counts are the reference shares times the current total (Evidently's
    ``chisquare(f_obs, f_exp * k_norm)``), so doubling the reference counts leaves the
    p-value unchanged.  ``scipy.stats.chisquare``, ``k - 1`` degrees of freedom.
    Context only: never an alarm at large counts.
    """
    obs, exp = _expected(ref, cur)
    if obs.size < 2 or obs.sum() <= 0:
        return float("nan")
    return float(stats.chisquare(obs, exp).pvalue)


def g_test_p(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """G-test (log-likelihood ratio, natural log) p-value, as :func:`chi_square_p`.

    ``G = 2 sum_k o_k ln(o_k / e_k)``; ``scipy.stats.power_divergence`` with
    ``lambda_="log-likelihood"``.  Context only.
    """
    obs, exp = _expected(ref, cur)
    if obs.size < 2 or obs.sum() <= 0:
        return float("nan")
    return float(stats.power_divergence(obs, exp, lambda_="log-likelihood").pvalue)


def ks_edges(ref: Buckets, cur: Buckets) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic on the bucket bounds, and its p-value.

    ``D = max_k |F_p(le_k) - F_q(le_k)|`` over the finite bounds of one layout.  The
    CDFs are only known at the bounds, so ``D`` is a **lower bound** of the statistic
    on the raw samples.  The p-value is the asymptotic one
    (``kstwobign.sf(D sqrt(n m / (n + m)))``), context only.

    Returns:
        ``(D, p)``; NaN when a side is empty.
    """
    ref, cur = align(ref, cur)
    n, m = ref.total, cur.total
    if n <= 0 or m <= 0:
        return float("nan"), float("nan")
    d = float(np.max(np.abs(np.cumsum(ref.counts) / n - np.cumsum(cur.counts) / m)[:-1]))
    en = n * m / (n + m)
    return d, float(stats.kstwobign.sf(d * math.sqrt(en)))


def _abs_area(x: FloatArray, d: FloatArray) -> float:
    """Integral of |d(x)| for d piecewise-linear through the points ``(x, d)``."""
    w = np.diff(x)
    d0, d1 = d[:-1], d[1:]
    same = d0 * d1 >= 0
    s = np.abs(d0) + np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(s > 0, (d0 * d0 + d1 * d1) / (2 * s), 0.0)
    return float(np.sum(w * np.where(same, s / 2, crossing)))


def wasserstein(ref: Buckets, cur: Buckets) -> float:
    """Wasserstein-1 distance ``integral |F_p(x) - F_q(x)| dx`` between piecewise-linear CDFs.

    In the signal's unit.  Exact for observations spread uniformly inside buckets;
    the ``+Inf`` buckets' mass sits at the highest finite bound (mass beyond it adds
    nothing, as ``histogram_quantile`` caps there).
    """
    ref, cur = align(ref, cur)
    if ref.total <= 0 or cur.total <= 0:
        return float("nan")
    x = np.concatenate([[ref.lower[0]], ref.le[:-1]])
    return _abs_area(x, ref.cdf_at(x) - cur.cdf_at(x))


def wasserstein_norm(ref: Buckets, cur: Buckets) -> float:
    """W1 divided by the reference standard deviation (floored at 1e-3), as Evidently.

    Evidently's ``wasserstein_distance_norm``: ``W1 / max(std(reference), 0.001)``,
    flagged at >= 0.1.  The standard deviation comes from :meth:`Buckets.moments`
    (uniform inside buckets; approximate).
    """
    _, sd = ref.moments()
    return wasserstein(ref, cur) / max(sd, STD_FLOOR)


def quantile_shifts(
    ref: Buckets, cur: Buckets, qs: Sequence[float] = (0.5, 0.9, 0.99)
) -> dict[str, tuple[float, float, float]]:
    """Quantiles by ``histogram_quantile`` on each side and the relative shift.

    Returns:
        ``{"p50": (reference, current, (current - reference) / |reference|), ...}``;
        the shift is NaN when the reference quantile is 0 or NaN.
    """
    out: dict[str, tuple[float, float, float]] = {}
    for q in qs:
        a, b = ref.quantile(q), cur.quantile(q)
        shift = (b - a) / abs(a) if (a and math.isfinite(a) and math.isfinite(b)) else math.nan
        out[f"p{round(q * 100):d}"] = (a, b, shift)
    return out


# --------------------------------------------------------------------------- thresholds
@dataclass(frozen=True)
class MetricRule:
    """How one metric is read.

    Attributes:
        name: short key (``psi``, ``js``, ...).
        label: what the report shows (states the log base where there is one).
        warning, critical: fixed thresholds (value >= threshold fires); None = none.
        alarm: whether the metric can raise an alarm (p-values and quantile shifts
            cannot; they are context).
        source: where the threshold comes from.
    """

    name: str
    label: str
    warning: float | None
    critical: float | None
    alarm: bool
    source: str


RULES: dict[str, MetricRule] = {
    r.name: r
    for r in [
        MetricRule(
            "psi", "PSI (ln, epsilon 1e-4)", 0.1, 0.25, True, "customary: 0.1 moderate, 0.25 major"
        ),
        MetricRule(
            "js",
            "Jensen-Shannon distance (log base 2)",
            0.1,
            None,
            True,
            "Evidently/NannyML 0.1",
        ),
        MetricRule("hellinger", "Hellinger distance", 0.1, None, True, "Evidently 0.1"),
        MetricRule(
            "wasserstein", "Wasserstein-1 / reference std", 0.1, None, True, "Evidently 0.1"
        ),
        MetricRule("ks", "KS statistic on bucket bounds (lower bound)", None, None, False, ""),
        MetricRule("ks_p", "KS p-value (context)", None, None, False, ""),
        MetricRule("chi2_p", "chi-square p-value (context)", None, None, False, ""),
        MetricRule("g_p", "G-test p-value (context)", None, None, False, ""),
        MetricRule("p50_shift", "p50 relative shift", None, None, False, ""),
        MetricRule("p90_shift", "p90 relative shift", None, None, False, ""),
        MetricRule("p99_shift", "p99 relative shift", None, None, False, ""),
        MetricRule(
            "accuracy_drop",
            "accuracy drop, reference - current (late labels; Newcombe 95% interval)",
            0.01,
            0.05,
            True,
            "the change's 95% interval below 0 and a drop of 1 point (warning) / 5 (critical)",
        ),
        MetricRule("accuracy_p", "two-proportion z-test p-value (context)", None, None, False, ""),
    ]
}
ALARM_METRICS = tuple(name for name, r in RULES.items() if r.alarm)


def learned_threshold(
    chunk_values: Sequence[float], sigmas: float = 3.0, robust: bool = False
) -> float:
    """A data-driven threshold from the metric's values on reference chunks.

    - ``robust=False``: NannyML's ``mean + sigmas * std`` (sample std, ``ddof=1``).
    - ``robust=True``: ``median + sigmas * 1.4826 * MAD``, the same number for normal
      values, but one or two drifted chunks (a reference that already holds the start
      of the drift) do not inflate it.  The default of the comparisons below.

    NaN with fewer than 3 finite values (too few to learn from).
    """
    v = np.asarray([x for x in chunk_values if x is not None and math.isfinite(x)])
    if v.size < 3:
        return math.nan
    if robust:
        med = float(np.median(v))
        return med + sigmas * 1.4826 * float(np.median(np.abs(v - med)))
    return float(v.mean() + sigmas * v.std(ddof=1))


def learned_how(robust: bool) -> str:
    """How the learned threshold was computed, for people."""
    return "median + 3 robust sigma" if robust else "mean + 3 sigma"


@dataclass(frozen=True)
class MetricResult:
    """One metric's value and how it was judged.

    Attributes:
        metric: key of :data:`RULES`.
        value: the metric (NaN when it could not be computed).
        verdict: ``ok``, ``warning``, ``critical`` or ``insufficient data``
            (always ``ok`` for context metrics).
        threshold: the threshold the verdict rests on: the one that fired, else the
            fixed warning threshold, else the learned one (NaN for context metrics).
        fired: which thresholds fired, e.g. ``"fixed >= 0.25 (critical)"`` or
            ``"learned >= 0.043 (mean + 3 sigma of 7 reference chunks)"``; ``""``.
        learned: the learned threshold (NaN when not learned).
        n_ref, n_cur: observations on each side.
        detail: extra context (reference and current quantiles for shifts).
        note: why a value above a threshold did not alarm, or why no verdict.
    """

    metric: str
    value: float
    verdict: Verdict
    threshold: float
    fired: str
    learned: float
    n_ref: float
    n_cur: float
    detail: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def label(self) -> str:
        """The metric's label for people."""
        return RULES[self.metric].label


def judge(
    metric: str,
    value: float,
    n_ref: float,
    n_cur: float,
    learned: float = math.nan,
    n_chunks: int = 0,
    min_count: float = MIN_COUNT,
    detail: dict[str, float] | None = None,
    rule: Rule = "both",
    how: str = "mean + 3 sigma",
) -> MetricResult:
    """Judge one metric value against its fixed and learned thresholds.

    ``insufficient data`` when either side has fewer than ``min_count`` observations.
    Context metrics (p-values, KS, quantile shifts) are always ``ok``.  For alarm
    metrics the fixed thresholds give a level (``critical`` at or above the critical
    one, ``warning`` at or above the warning one) and the learned threshold a yes/no;
    ``rule`` combines them:

    - ``both`` (default): the fixed level counts only when the value is also at or
      above the learned threshold, i.e. outside the reference's own variability
      (seasonality, sampling noise).  Without a learned threshold (too few reference
      chunks) the fixed level alone decides.  A fixed threshold exceeded inside the
      reference's variability is written to ``note``, not alarmed.
    - ``either``: the fixed level, or ``warning`` when only the learned one fires.
    - ``fixed`` / ``learned``: that threshold alone (``learned`` falls back to the
      fixed level when nothing was learned).
    """
    spec = RULES[metric]
    detail = detail or {}
    if min(n_ref, n_cur) < min_count:
        note = f"fewer than {min_count:g} observations on a side"
        return MetricResult(
            metric, value, "insufficient data", math.nan, "", learned, n_ref, n_cur, detail, note
        )
    if not spec.alarm or not math.isfinite(value):
        return MetricResult(metric, value, "ok", math.nan, "", learned, n_ref, n_cur, detail)
    level: Verdict = "ok"
    fixed_at: float | None = None
    if spec.critical is not None and value >= spec.critical:
        level, fixed_at = "critical", spec.critical
    elif spec.warning is not None and value >= spec.warning:
        level, fixed_at = "warning", spec.warning
    has_learned = math.isfinite(learned)
    learned_hit = has_learned and value >= learned
    fixed_text = f"fixed >= {fixed_at:g} ({level})" if fixed_at is not None else ""
    learned_text = f"learned >= {learned:.4g} ({how} of {n_chunks} reference chunks)"
    verdict: Verdict = "ok"
    fired: list[str] = []
    note = ""
    if rule == "fixed" or (rule in ("both", "learned") and not has_learned):
        verdict = level
        fired = [fixed_text] if fixed_at is not None else []
        if not has_learned and rule != "fixed" and fixed_at is not None:
            note = "no learned threshold (fewer than 3 reference chunks): fixed threshold alone"
    elif rule == "learned":
        verdict = "warning" if learned_hit else "ok"
        fired = [learned_text] if learned_hit else []
    elif rule == "either":
        verdict = level if level != "ok" else ("warning" if learned_hit else "ok")
        fired = [
            t for t, hit in ((fixed_text, fixed_at is not None), (learned_text, learned_hit)) if hit
        ]
    else:  # both
        no_fixed = spec.warning is None and spec.critical is None
        if no_fixed:
            verdict = "warning" if learned_hit else "ok"
            fired = [learned_text] if learned_hit else []
        elif fixed_at is not None and learned_hit:
            verdict = level
            fired = [fixed_text, learned_text]
        elif fixed_at is not None:
            note = (
                f"{fixed_text} but within the reference's own variability "
                f"(learned threshold {learned:.4g})"
            )
    if verdict != "ok" and fixed_at is not None and rule != "learned":
        threshold = fixed_at
    elif verdict != "ok":
        threshold = learned
    else:
        threshold = spec.warning if spec.warning is not None else learned
    return MetricResult(
        metric,
        value,
        verdict,
        float(threshold) if threshold is not None else math.nan,
        " and ".join(fired),
        learned,
        n_ref,
        n_cur,
        detail,
        note,
    )


def worst(verdicts: Sequence[str]) -> Verdict:
    """The most severe verdict (``insufficient data`` only when nothing else is known)."""
    if not verdicts:
        return "insufficient data"
    best = max(verdicts, key=lambda v: SEVERITY[v])
    return best  # type: ignore[return-value]


# --------------------------------------------------------------------------- comparisons
HistMetric = Callable[[Buckets, Buckets], float]
HIST_METRICS: dict[str, HistMetric] = {
    "psi": lambda r, c: psi(r.counts, c.counts),
    "js": lambda r, c: js_distance(r.counts, c.counts),
    "hellinger": lambda r, c: hellinger(r.counts, c.counts),
    "wasserstein": wasserstein_norm,
}


def _chunk_thresholds(
    chunks: Sequence[Buckets], fns: dict[str, HistMetric], min_count: float, robust: bool
) -> tuple[dict[str, float], int]:
    """Learned thresholds from reference chunks, each against the other chunks summed."""
    usable = [c for c in chunks if c.total >= min_count]
    if len(usable) < 3:
        return {name: math.nan for name in fns}, len(usable)
    layout = usable[0].le
    usable = [c if np.array_equal(c.le, layout) else rebin(c, layout) for c in usable]
    total = np.sum([c.counts for c in usable], axis=0)
    values: dict[str, list[float]] = {name: [] for name in fns}
    for c in usable:
        rest = Buckets(layout, total - c.counts)
        for name, fn in fns.items():
            values[name].append(fn(rest, c))
    return {name: learned_threshold(v, robust=robust) for name, v in values.items()}, len(usable)


def compare_histograms(
    ref: Buckets,
    cur: Buckets,
    ref_chunks: Sequence[Buckets] = (),
    min_count: float = MIN_COUNT,
    rule: Rule = "both",
    robust: bool = True,
) -> list[MetricResult]:
    """Every drift metric of ``cur`` against ``ref``, judged.

    Args:
        ref, cur: the reference and current histograms (layouts may differ: they
            are aligned with :func:`align`).
        ref_chunks: the reference cut into chunks as long as the current window, to
            learn thresholds from (fewer than 3 usable chunks: no learned threshold).
        min_count: minimum observations per side (and per chunk).
        rule: how fixed and learned thresholds combine (:func:`judge`).
        robust: learn ``median + 3 robust sigma`` (default) or NannyML's
            ``mean + 3 sigma`` (:func:`learned_threshold`).

    Returns:
        One :class:`MetricResult` per metric of :data:`RULES`, alarm metrics first.
    """
    ref, cur = align(ref, cur)
    n_ref, n_cur = ref.total, cur.total
    learned, n_chunks = _chunk_thresholds(
        [rebin(c, ref.le) if not np.array_equal(c.le, ref.le) else c for c in ref_chunks],
        HIST_METRICS,
        min_count,
        robust,
    )
    out: list[MetricResult] = []
    enough = n_ref > 0 and n_cur > 0
    for name, fn in HIST_METRICS.items():
        value = fn(ref, cur) if enough else math.nan
        out.append(
            judge(
                name,
                value,
                n_ref,
                n_cur,
                learned[name],
                n_chunks,
                min_count,
                rule=rule,
                how=learned_how(robust),
            )
        )
    d, ks_p = ks_edges(ref, cur) if enough else (math.nan, math.nan)
    out.append(judge("ks", d, n_ref, n_cur, min_count=min_count))
    out.append(judge("ks_p", ks_p, n_ref, n_cur, min_count=min_count))
    chi = chi_square_p(ref.counts, cur.counts) if enough else math.nan
    g = g_test_p(ref.counts, cur.counts) if enough else math.nan
    out.append(judge("chi2_p", chi, n_ref, n_cur, min_count=min_count))
    out.append(judge("g_p", g, n_ref, n_cur, min_count=min_count))
    for key, (a, b, shift) in quantile_shifts(ref, cur).items():
        out.append(
            judge(
                f"{key}_shift",
                shift,
                n_ref,
                n_cur,
                min_count=min_count,
                detail={"reference": a, "current": b},
            )
        )
    return out


def value_buckets(
    ref_values: npt.ArrayLike,
    cur_values: npt.ArrayLike,
    n_bins: int = 10,
    bounds: npt.ArrayLike | None = None,
) -> tuple[Buckets, Buckets]:
    """Bin per-step values (gauges, ratios) on the reference's quantiles.

    Bounds are the reference's ``1/n_bins ... (n_bins-1)/n_bins`` quantiles
    (duplicates merged) plus ``+inf`` -- equal-frequency bins, the usual layout
    for PSI on a continuous variable.  Values below the first bound fall in the first
    bucket.  ``bounds`` (finite, increasing) skips the quantiles when the same
    reference is binned many times.
    """
    r = np.asarray(ref_values, dtype=np.float64)
    c = np.asarray(cur_values, dtype=np.float64)
    r, c = r[np.isfinite(r)], c[np.isfinite(c)]
    if r.size == 0:
        raise ValueError("no reference values")
    edges = (
        np.unique(np.quantile(r, np.arange(1, n_bins) / n_bins))
        if bounds is None
        else np.asarray(bounds, dtype=np.float64)
    )
    le = np.append(edges, np.inf)

    def count(v: FloatArray) -> FloatArray:
        idx = np.searchsorted(edges, v, side="left")  # (le[i-1], le[i]]
        return np.bincount(idx, minlength=le.size).astype(np.float64)

    return Buckets(le, count(r)), Buckets(le, count(c))


def value_metrics(
    ref_values: npt.ArrayLike,
    cur_values: npt.ArrayLike,
    n_bins: int = 10,
    bounds: npt.ArrayLike | None = None,
) -> dict[str, float]:
    """The drift metrics of per-step values: PSI, JS (base 2), Hellinger, W1 / std, KS.

    PSI, JS and Hellinger on equal-frequency bins of the reference
    (:func:`value_buckets`, or the given ``bounds``); W1 divided by the reference's
    standard deviation (floor :data:`STD_FLOOR`, Evidently's) and the KS statistic on
    the raw values (:func:`w1_ks`).

    Args:
        ref_values, cur_values: shape ``(n,)`` and ``(m,)``, finite, non-empty.

    Returns:
        ``{"psi", "js", "hellinger", "wasserstein", "ks"}``.
    """
    a = np.asarray(ref_values, dtype=np.float64)
    b = np.asarray(cur_values, dtype=np.float64)
    ba, bb = value_buckets(a, b, n_bins, bounds)
    w1, ks = w1_ks(a, b)
    return {
        "psi": psi(ba.counts, bb.counts),
        "js": js_distance(ba.counts, bb.counts),
        "hellinger": hellinger(ba.counts, bb.counts),
        "wasserstein": w1 / max(float(np.std(a)), STD_FLOOR),
        "ks": ks,
    }


def value_metrics_windows(
    ref_values: npt.ArrayLike,
    windows: Sequence[npt.ArrayLike],
    bounds: npt.ArrayLike,
) -> list[dict[str, float]]:
    """:func:`value_metrics` of many current windows against one reference.

    ``[value_metrics(ref_values, w, bounds=bounds) for w in windows]``, the same floats
    (the same operations on the same arrays), with the reference's share of the work
    done once: its sorted values, bucket counts and standard deviation.  This is the
    drift-over-time curve of a gauge or ratio slice (dozens of trailing windows).

    Args:
        ref_values: shape ``(n,)``, finite, non-empty.
        windows: each shape ``(m_i,)``, non-empty.
        bounds: finite, increasing bucket bounds (``+inf`` is appended).

    Raises:
        ValueError: no finite reference value, or bounds that make no valid layout.
    """
    a = np.asarray(ref_values, dtype=np.float64)
    edges = np.asarray(bounds, dtype=np.float64)
    le = np.append(edges, np.inf)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        raise ValueError("no reference values")

    def count(v: FloatArray) -> FloatArray:  # as value_buckets
        idx = np.searchsorted(edges, v, side="left")
        return np.bincount(idx, minlength=le.size).astype(np.float64)

    ref_b = Buckets(le, count(finite))
    a_sorted = np.sort(a)
    std = max(float(np.std(a)), STD_FLOOR)
    out = []
    for window in windows:
        b = np.asarray(window, dtype=np.float64)
        cur_b = Buckets(le, count(b[np.isfinite(b)]))
        w1, ks = _w1_ks_sorted(a_sorted, np.sort(b))
        out.append(
            {
                "psi": psi(ref_b.counts, cur_b.counts),
                "js": js_distance(ref_b.counts, cur_b.counts),
                "hellinger": hellinger(ref_b.counts, cur_b.counts),
                "wasserstein": w1 / std,
                "ks": ks,
            }
        )
    return out


def w1_ks(ref_values: npt.ArrayLike, cur_values: npt.ArrayLike) -> tuple[float, float]:
    """Wasserstein-1 distance and two-sample KS statistic of raw values, from one pass.

    With the empirical CDFs ``F``, ``G`` on the merged sorted values ``x``:
    ``W1 = sum |F(x_i) - G(x_i)| (x_{i+1} - x_i)`` and ``D = max |F - G|``, the same
    numbers as ``scipy.stats.wasserstein_distance`` and ``ks_2samp(...).statistic``
    (without the p-value).  NaN for an empty side.

    Args:
        ref_values, cur_values: shape ``(n,)`` and ``(m,)``, in the values' unit.

    Returns:
        ``(W1 in the values' unit, D in [0, 1])``.
    """
    a = np.sort(np.asarray(ref_values, dtype=np.float64))
    b = np.sort(np.asarray(cur_values, dtype=np.float64))
    return _w1_ks_sorted(a, b)


def _w1_ks_sorted(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """:func:`w1_ks` of two already sorted samples."""
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan
    x = np.sort(np.concatenate([a, b]))
    gap = np.abs(
        np.searchsorted(a, x, side="right") / a.size - np.searchsorted(b, x, side="right") / b.size
    )
    return float(np.sum(gap[:-1] * np.diff(x))), float(gap.max())


def hist_metrics(ref: Buckets, cur: Buckets) -> dict[str, float]:
    """The alarm metrics of two histograms (aligned first) and the KS lower bound.

    Returns:
        ``{"psi", "js", "hellinger", "wasserstein", "ks"}`` (see :data:`HIST_METRICS`
        and :func:`ks_edges`).
    """
    r, c = align(ref, cur)
    out = {name: fn(r, c) for name, fn in HIST_METRICS.items()}
    out["ks"] = ks_edges(r, c)[0]
    return out


def compare_values(
    ref_values: npt.ArrayLike,
    cur_values: npt.ArrayLike,
    ref_chunks: Sequence[npt.ArrayLike] = (),
    min_count: float = 500,
    n_bins: int = 10,
    rule: Rule = "both",
    robust: bool = True,
) -> list[MetricResult]:
    """Drift of per-step values (gauge means, per-step ratios) against the reference's.

    PSI, JS (base 2) and Hellinger on equal-frequency bins of the reference
    (:func:`value_buckets`); W1 normalised by the reference std and KS on the raw
    values (exact, ``scipy.stats``); the p-value is context.  Per-step values are
    autocorrelated, so p-values overstate significance even more than usual.

    Args:
        ref_values, cur_values: shape ``(n,)`` and ``(m,)``, one value per step.
        ref_chunks: reference values cut into chunks as long as the current window.
        min_count: minimum number of steps per side (default 500: with 10 bins the
            base-2 JS distance between two samples of one distribution is about
            ``sqrt(9 / (8 ln 2) (1/n + 1/m))``, 0.08 at 288 steps a day against 7
            days, 0.04 at 1440; the 0.1 threshold needs the latter).
        n_bins: bins for PSI, JS and Hellinger.
        rule: how fixed and learned thresholds combine (:func:`judge`).
        robust: as in :func:`compare_histograms`.
    """
    r = np.asarray(ref_values, dtype=np.float64)
    c = np.asarray(cur_values, dtype=np.float64)
    r, c = r[np.isfinite(r)], c[np.isfinite(c)]
    n_ref, n_cur = float(r.size), float(c.size)
    if r.size == 0 or c.size == 0:
        return [
            judge(m, math.nan, n_ref, n_cur, min_count=min_count)
            for m in ("psi", "js", "hellinger", "wasserstein", "ks", "ks_p")
        ]

    def metrics(a: FloatArray, b: FloatArray) -> dict[str, float]:
        out = value_metrics(a, b, n_bins)
        del out["ks"]  # context, judged below with its p-value
        return out

    chunks = [np.asarray(x, dtype=np.float64) for x in ref_chunks]
    chunks = [x[np.isfinite(x)] for x in chunks]
    chunks = [x for x in chunks if x.size >= min_count]
    learned: dict[str, float] = {k: math.nan for k in ("psi", "js", "hellinger", "wasserstein")}
    if len(chunks) >= 3:
        per: dict[str, list[float]] = {k: [] for k in learned}
        for i, chunk in enumerate(chunks):
            rest = np.concatenate([x for j, x in enumerate(chunks) if j != i])
            for k, v in metrics(rest, chunk).items():
                per[k].append(v)
        learned = {k: learned_threshold(v, robust=robust) for k, v in per.items()}
    out = [
        judge(
            k,
            v,
            n_ref,
            n_cur,
            learned[k],
            len(chunks),
            min_count,
            rule=rule,
            how=learned_how(robust),
        )
        for k, v in metrics(r, c).items()
    ]
    ks = stats.ks_2samp(r, c)
    out.append(judge("ks", float(ks.statistic), n_ref, n_cur, min_count=min_count))
    out.append(judge("ks_p", float(ks.pvalue), n_ref, n_cur, min_count=min_count))
    return out


# --------------------------------------------------------------------------- late labels
#: The two-sided 95% normal quantile (1.95996...), as ``scipy.stats.norm.ppf(0.975)``.
Z95 = float(stats.norm.ppf(0.975))
#: Fewer labels than this on a side: "insufficient labels", no verdict.
MIN_LABELS = 200
#: Accuracy drops (proportions) for a warning and a critical verdict.
MIN_DROP = 0.01
CRITICAL_DROP = 0.05


def wilson_interval(
    correct: npt.ArrayLike, n: npt.ArrayLike, z: float = Z95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval of a proportion, elementwise; NaN where ``n`` is 0.

    ``(p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = k/n``
    (Wilson 1927; Newcombe 1998, Stat Med 17:857, method 3: 81/263 gives
    0.2553-0.3662).  The same as ``scipy.stats.binomtest(k, n).proportion_ci(
    method="wilson")``.

    Args:
        correct, n: successes and trials, broadcastable arrays.
        z: the normal quantile (default 95% two-sided).

    Returns:
        ``(low, high)`` arrays of the broadcast shape.
    """
    k = np.asarray(correct, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / m
        denom = 1 + z * z / m
        centre = (p + z * z / (2 * m)) / denom
        half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / denom
    lo = np.where(m > 0, centre - half, np.nan)
    hi = np.where(m > 0, centre + half, np.nan)
    return lo, hi


@dataclass(frozen=True)
class AccuracyChange:
    """Accuracy of the current label-arrival windows against the reference ones.

    Attributes:
        reference, current: pooled accuracy (correct / labelled) on each side.
        difference: ``current - reference``.
        ci_low, ci_high: 95% Newcombe (hybrid Wilson) interval of the difference.
        p_value: two-sided two-proportion z-test (pooled variance).
        n_ref, n_cur: labelled predictions on each side.
        verdict: ``insufficient data`` below ``min_labels`` on a side; when the
            interval lies below 0, ``critical`` for a drop of at least
            ``critical_drop``, ``warning`` for one of at least ``min_drop``; else ok.
        min_labels, min_drop, critical_drop: the settings the verdict used.
    """

    reference: float
    current: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_ref: float
    n_cur: float
    verdict: Verdict
    min_labels: float = MIN_LABELS
    min_drop: float = MIN_DROP
    critical_drop: float = CRITICAL_DROP


def accuracy_windows(
    correct: npt.ArrayLike, labelled: npt.ArrayLike, z: float = Z95
) -> dict[str, FloatArray]:
    """Accuracy per label-arrival window with its Wilson interval.

    Labels arrive late (hours or days after the prediction), so accuracy is computed
    per window of label *arrival*: ``correct[i]`` and ``labelled[i]`` count the
    labels that arrived in window ``i`` and how many of them matched the prediction.

    Args:
        correct, labelled: shape ``(w,)``, counts per arrival window.

    Returns:
        ``{"accuracy", "low", "high", "labelled"}`` arrays of shape ``(w,)``;
        accuracy NaN for a window without labels.
    """
    k = np.asarray(correct, dtype=np.float64)
    n = np.asarray(labelled, dtype=np.float64)
    lo, hi = wilson_interval(k, n, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(n > 0, k / n, np.nan)
    return {"accuracy": acc, "low": lo, "high": hi, "labelled": n}


def accuracy_change(
    ref_correct: float,
    ref_labelled: float,
    cur_correct: float,
    cur_labelled: float,
    min_labels: float = MIN_LABELS,
    min_drop: float = MIN_DROP,
    critical_drop: float = CRITICAL_DROP,
) -> AccuracyChange:
    """Change test for accuracy from late labels: current windows vs reference windows.

    The difference's interval is Newcombe's method 10 (hybrid Wilson score; Newcombe
    1998, Stat Med 17:873, example (a): 56/70 - 48/80 gives 0.0524 to 0.3339), the
    p-value the pooled two-proportion z-test.  A verdict other than ``ok`` needs the
    interval wholly below 0 **and** a drop of at least ``min_drop`` (``warning``) or
    ``critical_drop`` (``critical``): an effect-size gate, since at large label counts
    a 0.1-point drop is significant.

    Args:
        ref_correct, ref_labelled: correct and all labels of the reference windows.
        cur_correct, cur_labelled: the same for the current windows.
        min_labels: fewer labels on a side give ``insufficient data``.
        min_drop, critical_drop: accuracy drops (proportions, 0.01 = 1 point).
    """
    n1, n2 = float(ref_labelled), float(cur_labelled)
    gates = (float(min_labels), float(min_drop), float(critical_drop))
    if min(n1, n2) < min_labels:
        nan = math.nan
        p1 = ref_correct / n1 if n1 else nan
        p2 = cur_correct / n2 if n2 else nan
        return AccuracyChange(p1, p2, p2 - p1, nan, nan, nan, n1, n2, "insufficient data", *gates)
    p1, p2 = ref_correct / n1, cur_correct / n2
    (l1,), (u1,) = (np.atleast_1d(x) for x in wilson_interval(ref_correct, n1))
    (l2,), (u2,) = (np.atleast_1d(x) for x in wilson_interval(cur_correct, n2))
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    pooled = (ref_correct + cur_correct) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = float(2 * stats.norm.sf(abs(d) / se)) if se > 0 else (0.0 if d else 1.0)
    verdict: Verdict = "ok"
    if high < 0 and -d >= critical_drop:
        verdict = "critical"
    elif high < 0 and -d >= min_drop:
        verdict = "warning"
    return AccuracyChange(p1, p2, d, low, high, p_value, n1, n2, verdict, *gates)


def accuracy_results(change: AccuracyChange) -> list[MetricResult]:
    """An accuracy change test as drift results: ``accuracy_drop`` and ``accuracy_p``.

    ``accuracy_drop`` is ``reference - current`` (positive when accuracy fell; a
    proportion, 0.01 = 1 point), judged by :func:`accuracy_change`; its ``detail``
    holds both accuracies and the 95% interval of the change (``current -
    reference``).  Below the label minimum the note says "insufficient labels".
    """
    c = change
    detail = {
        "reference": c.reference,
        "current": c.current,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
    }
    drop = -c.difference
    if c.verdict == "insufficient data":
        note = f"insufficient labels: fewer than {c.min_labels:g} labels on a side"
        return [
            MetricResult(
                "accuracy_drop",
                drop,
                c.verdict,
                math.nan,
                "",
                math.nan,
                c.n_ref,
                c.n_cur,
                detail,
                note,
            ),
            MetricResult(
                "accuracy_p", c.p_value, c.verdict, math.nan, "", math.nan, c.n_ref, c.n_cur
            ),
        ]
    interval = f"95% interval of the change [{c.ci_low * 100:+.2f}, {c.ci_high * 100:+.2f}] points"
    fired = note = ""
    threshold = c.min_drop
    if c.verdict != "ok":
        threshold = c.critical_drop if c.verdict == "critical" else c.min_drop
        fired = (
            f"drop {drop * 100:.2f} points >= {threshold * 100:g} ({c.verdict}), {interval} below 0"
        )
    elif c.ci_high < 0:
        note = f"{interval} below 0, but the drop is under {c.min_drop * 100:g} point(s)"
    elif drop >= c.min_drop:
        note = f"drop of {drop * 100:.2f} points within noise ({interval} includes 0)"
    return [
        MetricResult(
            "accuracy_drop",
            drop,
            c.verdict,
            threshold,
            fired,
            math.nan,
            c.n_ref,
            c.n_cur,
            detail,
            note,
        ),
        MetricResult("accuracy_p", c.p_value, "ok", math.nan, "", math.nan, c.n_ref, c.n_cur),
    ]

"""Experiment metrics over per-minute replicates: the catalogue and the whole analysis.

Pure module (numpy/pandas/scipy; no DuckDB, no Streamlit, no network).  The store
side (:mod:`observatory.experiment_engine`) hands over two frames:

- **replicates**, one row per ``(ts_utc, region, arm)``: the arm's aggregates over
  one step of one region (``ts_utc`` = END of the step, UTC).  Columns:
  ``requests``, ``errors``, ``latency_sum`` (s), ``tokens`` (prompt + generated),
  ``energy_j`` (J), ``cost_usd`` (USD, the cost gauge in USD/h x step / 3600),
  ``accuracy`` (0-1, mean of the accuracy gauge), ``slow`` (requests slower than
  the latency SLO threshold, from the histogram) and ``gco2e`` (g, added here from
  ``energy_j`` and the region's carbon factors);
- **latency buckets**: per replicate, the per-step increases of the cumulative
  latency buckets (``le`` in seconds), shape ``(m, k)``.

The unit treated as independent is the **replicate**: one arm's aggregate over one
step (one minute) in one region.  Requests inside a minute are not independent:
they share a batch on the same GPUs, the same load, cache state and any incident,
so their latencies and errors are correlated, and treating them as independent
understates every variance.  Prometheus also only exposes step aggregates (counter
increases, gauge samples, bucket counts), never single requests: gauges such as
cost and accuracy exist only per step.  Per-minute replicates keep the correlation
inside a minute out of the variance (ratio metrics ``sum m / sum d`` over
replicates with the delta method).  What remains assumed: replicates in
consecutive minutes are exchangeable between the arms (both arms see the same
diurnal load and are compared minute by minute over the same span); an incident
that hits one arm for hours is a real difference, not noise.  The A/A simulation
(``bench/aa_simulation.py``) measures the false-positive rates that result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics import experiments as ab
from analytics.carbon import CarbonModel
from analytics.slo import good_below

FloatArray = npt.NDArray[np.float64]
Kind = Literal["mean", "ratio", "quantile"]
Engine = Literal["fixed", "sequential", "bayesian"]
REPLICATE_COLUMNS = (
    "requests",
    "errors",
    "latency_sum",
    "tokens",
    "energy_j",
    "cost_usd",
    "accuracy",
    "slow",
    "gco2e",
)
ALL_REGIONS = "all regions"


@dataclass(frozen=True)
class MetricDef:
    """One experiment metric.

    Attributes:
        name: key used in configuration and reports.
        label: words for tables and sentences.
        kind: ``mean`` (mean of a per-replicate value), ``ratio`` (sum of a
            numerator over sum of a denominator, delta method) or ``quantile``
            (from latency buckets, Deng-Knoblich-Lu interval).
        unit: the unit of the value after ``scale``.
        numerator, denominator: replicate columns (``denominator`` for ratios).
        scale: the value is multiplied by it (1000 for "per 1k requests").
        quantile: for quantile metrics, e.g. 0.99.
        higher_is_better: direction of "better".
        better_phrase, worse_phrase, ratio_phrase: for the verdict (see
            :class:`analytics.experiments.MetricOutcome`).
        independence: which unit the statistics treat as independent, and why.
    """

    name: str
    label: str
    kind: Kind
    unit: str
    numerator: str
    denominator: str | None = None
    scale: float = 1.0
    quantile: float | None = None
    higher_is_better: bool = False
    better_phrase: str = "is {size} better in {label}"
    worse_phrase: str = "is {size} worse in {label}"
    ratio_phrase: str | None = None
    independence: str = "per-minute replicates (one arm, one region, one minute)"


_RATIO_WHY = (
    "per-minute replicates; the ratio of sums over replicates, delta-method variance "
    "(requests inside a minute share batches and load, so they are not independent)"
)
METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in [
        MetricDef(
            "error_ratio", "error ratio", "ratio", "ratio", "errors", "requests",
            better_phrase="fails {size} less often", worse_phrase="fails {size} more often",
            independence=_RATIO_WHY,
        ),
        MetricDef(
            "accuracy", "accuracy", "mean", "ratio", "accuracy", higher_is_better=True,
            better_phrase="is {size} more accurate", worse_phrase="is {size} less accurate",
            independence="per-minute replicates: the accuracy gauge exists once per step",
        ),
        MetricDef(
            "latency_mean", "mean latency", "ratio", "s", "latency_sum", "requests",
            better_phrase="is {size} faster on average",
            worse_phrase="is {size} slower on average", independence=_RATIO_WHY,
        ),
        MetricDef(
            "latency_p50", "p50 latency", "quantile", "s", "latency", quantile=0.5,
            better_phrase="has {size} lower p50 latency",
            worse_phrase="has {size} higher p50 latency",
            independence="per-minute histograms as clustered replicates (Deng-Knoblich-Lu)",
        ),
        MetricDef(
            "latency_p95", "p95 latency", "quantile", "s", "latency", quantile=0.95,
            better_phrase="has {size} lower p95 latency",
            worse_phrase="has {size} higher p95 latency",
            independence="per-minute histograms as clustered replicates (Deng-Knoblich-Lu)",
        ),
        MetricDef(
            "latency_p99", "p99 latency", "quantile", "s", "latency", quantile=0.99,
            better_phrase="has {size} lower p99 latency",
            worse_phrase="has {size} higher p99 latency",
            independence="per-minute histograms as clustered replicates (Deng-Knoblich-Lu)",
        ),
        MetricDef(
            "slow_ratio", "share of requests over the latency SLO", "ratio", "ratio", "slow",
            "requests",
            better_phrase="burns the latency SLO {size} slower",
            worse_phrase="burns the latency SLO {size} faster",
            ratio_phrase="burns the latency SLO {x}x faster", independence=_RATIO_WHY,
        ),
        MetricDef(
            "cost_per_1k", "cost per 1k requests", "ratio", "USD", "cost_usd", "requests",
            scale=1000.0,
            better_phrase="costs {size} less per 1k requests",
            worse_phrase="costs {size} more per 1k requests", independence=_RATIO_WHY,
        ),
        MetricDef(
            "energy_per_request", "energy per request", "ratio", "J", "energy_j", "requests",
            better_phrase="uses {size} less energy per request",
            worse_phrase="uses {size} more energy per request", independence=_RATIO_WHY,
        ),
        MetricDef(
            "gco2e_per_1k", "gCO2e per 1k requests", "ratio", "g", "gco2e", "requests",
            scale=1000.0,
            better_phrase="emits {size} less CO2e per 1k requests",
            worse_phrase="emits {size} more CO2e per 1k requests", independence=_RATIO_WHY,
        ),
        MetricDef(
            "tokens_per_joule", "tokens per joule", "ratio", "tokens/J", "tokens", "energy_j",
            higher_is_better=True,
            better_phrase="produces {size} more tokens per joule",
            worse_phrase="produces {size} fewer tokens per joule", independence=_RATIO_WHY,
        ),
    ]
}  # fmt: skip


def metric(name: str) -> MetricDef:
    """The metric called ``name``.

    Raises:
        KeyError: unknown metric (the message lists the known ones).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


# ---------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Buckets:
    """Per-replicate latency buckets: ``keys`` (ts_utc, region, arm) row-aligned with
    ``cumulative`` (shape ``(m, k)``, per-step increases of cumulative buckets) and
    ``le`` (shape ``(k,)``, seconds, ``inf`` last)."""

    keys: pd.DataFrame
    le: FloatArray
    cumulative: FloatArray

    @classmethod
    def empty(cls) -> Buckets:
        """No histogram data."""
        keys = pd.DataFrame({"ts_utc": [], "region": [], "arm": []})
        return cls(keys, np.array([np.inf]), np.zeros((0, 1)))

    @classmethod
    def from_long(cls, frame: pd.DataFrame) -> Buckets:
        """From long rows ``ts_utc, region, arm, le, value`` (one row per bucket)."""
        if frame.empty:
            return cls.empty()
        regions = sorted(frame["region"].unique().tolist())
        arms = sorted(frame["arm"].unique().tolist())
        les = np.sort(frame["le"].astype(float).unique())
        start = pd.Timestamp(frame["ts_utc"].min()) - pd.Timedelta(seconds=1)
        t = (pd.to_datetime(frame["ts_utc"]) - start).dt.total_seconds().to_numpy()
        return cls.from_codes(
            t,
            np.searchsorted(regions, frame["region"].to_numpy()) + 1,
            np.searchsorted(arms, frame["arm"].to_numpy()) + 1,
            np.searchsorted(les, frame["le"].astype(float).to_numpy()) + 1,
            frame["value"].to_numpy(),
            start,
            regions,
            arms,
            les,
        )

    @classmethod
    def from_codes(
        cls,
        t: npt.ArrayLike,
        r: npt.ArrayLike,
        a: npt.ArrayLike,
        k: npt.ArrayLike,
        value: npt.ArrayLike,
        start: pd.Timestamp,
        regions: Sequence[str],
        arms: Sequence[str],
        les: npt.ArrayLike,
    ) -> Buckets:
        """From the compact rows of ``sql/queries/experiment_latency_buckets.sql``.

        Args:
            t: seconds from ``start`` to the step's end; r, a, k: 1-based positions
                in ``regions``, ``arms`` and ``les``; value: the bucket's increase.
            les: the bucket bounds, sorted, ``inf`` last.
        """
        le = np.asarray(les, dtype=np.float64)
        tt = np.asarray(t, dtype=np.int64)
        if tt.size == 0:
            return cls.empty()
        rr = np.asarray(r, dtype=np.int64)
        aa = np.asarray(a, dtype=np.int64)
        kk = np.asarray(k, dtype=np.int64) - 1
        n_r, n_a = len(regions) + 1, len(arms) + 1
        key = (tt * n_r + rr) * n_a + aa
        uniq, inv = np.unique(key, return_inverse=True)
        flat: FloatArray = np.bincount(
            inv * le.size + kk,
            weights=np.asarray(value, dtype=np.float64),
            minlength=uniq.size * le.size,
        ).astype(np.float64)
        # made monotone, as histogram_quantile does
        mat: FloatArray = np.maximum.accumulate(flat.reshape(uniq.size, le.size), axis=1)
        u_a = uniq % n_a
        u_r = (uniq // n_a) % n_r
        u_t = uniq // (n_a * n_r)
        origin = pd.Timestamp(start)
        if origin.tzinfo is not None:
            origin = origin.tz_convert("UTC").tz_localize(None)
        keys = pd.DataFrame(
            {
                "ts_utc": origin + pd.to_timedelta(u_t, unit="s"),
                "region": np.asarray(regions, dtype=object)[u_r - 1],
                "arm": np.asarray(arms, dtype=object)[u_a - 1],
            }
        )
        return cls(keys, le, mat)

    def select(self, mask: npt.ArrayLike) -> FloatArray:
        """The rows of ``cumulative`` where ``mask`` (aligned with ``keys``) holds."""
        return self.cumulative[np.asarray(mask, dtype=bool)]


def add_derived(
    replicates: pd.DataFrame,
    buckets: Buckets | None = None,
    carbon: CarbonModel | None = None,
    latency_slo_seconds: float = 10.0,
) -> pd.DataFrame:
    """Replicates with ``slow`` (from the buckets) and ``gco2e`` (from ``energy_j``) added.

    ``slow`` = observations above ``latency_slo_seconds`` (exact at a bucket bound,
    interpolated inside a bucket otherwise); ``gco2e`` = ``energy_j`` x PUE x grid
    factor / 3.6e6 for the row's region.  Missing counts of requests and errors
    are 0 where the row has requests; other missing values stay NaN.
    """
    out = replicates.copy()
    for col in REPLICATE_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    for col in ("requests", "errors"):
        out[col] = out[col].astype(float).fillna(0.0)
    model = carbon or CarbonModel()
    factors = {r: model.grams_per_joule(r) for r in out["region"].unique()}
    out["gco2e"] = out["energy_j"].astype(float) * out["region"].map(factors).astype(float)
    if buckets is not None and len(buckets.keys):
        total = buckets.cumulative[:, -1]
        fast = good_below(buckets.le, buckets.cumulative, latency_slo_seconds)
        slow = buckets.keys.assign(slow=np.atleast_1d(total - fast))
        out = out.drop(columns="slow").merge(slow, on=["ts_utc", "region", "arm"], how="left")
    return out


# ---------------------------------------------------------------- arm statistics
def arm_stats(frame: pd.DataFrame, m: MetricDef) -> ab.MeanStats | ab.RatioStats:
    """Sufficient statistics of metric ``m`` over the replicate rows of ``frame``.

    Mean metrics drop rows without a value; ratio metrics drop rows where the
    numerator or the denominator is missing, or the denominator is 0.
    """
    if m.kind == "mean":
        return ab.MeanStats.from_values(frame[m.numerator].astype(float) * m.scale)
    if m.kind == "ratio":
        assert m.denominator is not None
        num = frame[m.numerator].astype(float).to_numpy() * m.scale
        den = frame[m.denominator].astype(float).to_numpy()
        keep = np.isfinite(num) & np.isfinite(den) & (den > 0)
        return ab.RatioStats.from_values(num[keep], den[keep])
    raise ValueError(f"{m.name} is a quantile metric: use quantile statistics")


def _stats_ci(s: ab.MeanStats | ab.RatioStats, alpha: float) -> tuple[float, float]:
    if s.n < 2:
        return math.nan, math.nan
    half = ab.t_ppf(1 - alpha / 2, s.n - 1) * math.sqrt(s.variance / s.n)
    return s.mean - half, s.mean + half


@dataclass(frozen=True)
class ArmValue:
    """One arm's value of one metric with its interval (for tables and the frontier).

    ``units``: replicates behind the value; ``observations``: requests (or, for
    quantiles, histogram observations).
    """

    arm: str
    value: float
    ci_low: float
    ci_high: float
    units: float
    observations: float


def _quantile_estimate(
    buckets: Buckets, mask: npt.ArrayLike, q: float, alpha: float
) -> ab.QuantileEstimate:
    mat = buckets.select(mask)
    if mat.shape[0] == 0:
        nan = math.nan
        return ab.QuantileEstimate(q, nan, nan, nan, 0.0, 0, nan, nan)
    return ab.quantile_interval(buckets.le, mat, q, alpha)


# ---------------------------------------------------------------- settings and results
@dataclass(frozen=True)
class AnalysisSettings:
    """How one experiment is analysed.

    Attributes:
        control: the control arm; treatments: the others.
        weights: configured traffic weights per arm (SRM); equal when empty.
        primary, guardrails, secondary: metric names.
        engine: the engine whose result decides (``fixed``, ``sequential`` or
            ``bayesian``); all three are always computed and reported.
        alpha: two-sided error rate; correction: ``holm``, ``bh`` or ``none``
            across metrics x treatment arms.
        tuning: N* of the confidence sequences, in replicates (both arms).
        guards: minimum replicates and requests per arm.
        latency_slo_seconds: threshold of ``slow_ratio``.
    """

    control: str
    treatments: tuple[str, ...]
    primary: str
    guardrails: tuple[str, ...] = ()
    secondary: tuple[str, ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    engine: Engine = "fixed"
    alpha: float = 0.05
    correction: ab.Correction = "holm"
    tuning: float = ab.DEFAULT_TUNING
    guards: ab.Guards = field(default_factory=ab.Guards)
    latency_slo_seconds: float = 10.0

    @property
    def arms(self) -> tuple[str, ...]:
        """Control first, then the treatments."""
        return (self.control, *self.treatments)

    def roles(self) -> list[tuple[str, str]]:
        """``(metric, role)`` in report order, each metric once."""
        seen: set[str] = set()
        out: list[tuple[str, str]] = []
        for role, names in (
            ("primary", (self.primary,)),
            ("guardrail", self.guardrails),
            ("secondary", self.secondary),
        ):
            for n in names:
                if n not in seen:
                    seen.add(n)
                    out.append((n, role))
        return out


@dataclass
class MetricResult:
    """One metric, one treatment arm against control, in one region (or pooled).

    ``fixed`` and ``absolute`` are fixed-horizon Welch results (relative and
    absolute); ``sequential`` the always-valid one; ``bayesian`` the flat-prior
    posterior; ``adjusted_p`` the corrected p-value of the deciding engine
    (NaN for Bayesian).  ``guard`` is set instead when there is too little data.
    """

    metric: MetricDef
    role: str
    treatment: str
    region: str
    control_value: ArmValue
    treatment_value: ArmValue
    fixed: ab.Comparison | None = None
    absolute: ab.Comparison | None = None
    sequential: ab.Comparison | None = None
    bayesian: ab.Comparison | None = None
    adjusted_p: float = math.nan
    guard: str | None = None

    def deciding(self, engine: Engine) -> ab.Comparison | None:
        """The result of the deciding engine."""
        return {"fixed": self.fixed, "sequential": self.sequential, "bayesian": self.bayesian}[
            engine
        ]

    def outcome(self, engine: Engine) -> ab.MetricOutcome:
        """This result as the verdict sees it."""
        m = self.metric
        return ab.MetricOutcome(
            name=m.name,
            label=m.label,
            role=self.role,
            higher_is_better=m.higher_is_better,
            result=self.deciding(engine),
            adjusted_p=self.adjusted_p,
            better_phrase=m.better_phrase,
            worse_phrase=m.worse_phrase,
            ratio_phrase=m.ratio_phrase,
            guard=self.guard,
        )


@dataclass
class Analysis:
    """The whole analysis of one experiment.

    Attributes:
        settings: what was asked.
        srm: pooled sample-ratio check on requests; srm_by_region per region.
        results: pooled metric results (metrics x treatments, report order).
        by_region: region -> that region's results.
        warnings: region-disagreement (Simpson) and data warnings.
        verdicts: treatment -> (decision, text).
        regions: regions with data.
        span: (first, last) replicate end times.
    """

    settings: AnalysisSettings
    srm: ab.SrmResult | None
    srm_by_region: dict[str, ab.SrmResult]
    results: list[MetricResult]
    by_region: dict[str, list[MetricResult]]
    warnings: list[str]
    verdicts: dict[str, tuple[str, str]]
    regions: list[str]
    span: tuple[pd.Timestamp | None, pd.Timestamp | None]


# ---------------------------------------------------------------- the sources
class ReplicateSource(Protocol):
    """What the analysis reads about the replicates of an experiment's arms.

    Two implementations give the same numbers (to float rounding): :class:`FrameSource`
    over the replicate rows themselves, and
    :class:`analytics.experiment_moments.MomentSource` over their sufficient
    statistics summed per hour, region and arm (docs/experiments.md, "Performance").
    ``region`` None means every region (pooled).
    """

    def regions(self) -> list[str]:
        """Regions with replicates, sorted."""
        ...

    def requests(self, arm: str, region: str | None = None) -> float:
        """Requests of ``arm`` (all its replicates)."""
        ...

    def stats(
        self, m: MetricDef, arm: str, region: str | None = None
    ) -> ab.MeanStats | ab.RatioStats:
        """Sufficient statistics of mean or ratio metric ``m`` (see :func:`arm_stats`)."""
        ...

    def quantile(
        self, m: MetricDef, arm: str, region: str | None, alpha: float
    ) -> ab.QuantileEstimate:
        """Quantile metric ``m`` of ``arm`` with its Deng-Knoblich-Lu interval."""
        ...

    def overlap(self, arms: Sequence[str]) -> float:
        """:func:`time_overlap` of the replicates."""
        ...

    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """First and last replicate end time (None without replicates)."""
        ...

    def cumulative(
        self, m: MetricDef, arm: str, checkpoints: pd.DatetimeIndex
    ) -> list[ab.MeanStats | ab.RatioStats]:
        """Per checkpoint, statistics of ``m`` over ``arm``'s replicates ending at or before it."""
        ...


_NO_QUANTILE = (math.nan, math.nan, math.nan, 0.0, 0, math.nan, math.nan)


@dataclass(frozen=True)
class FrameSource:
    """The replicate rows themselves (and their latency buckets): the reference path."""

    replicates: pd.DataFrame
    buckets: Buckets | None = None

    def _frame(self, arm: str, region: str | None) -> pd.DataFrame:
        rows = self.replicates["arm"] == arm
        if region is not None:
            rows &= self.replicates["region"] == region
        return self.replicates[rows]

    def regions(self) -> list[str]:
        """Regions with replicates, sorted."""
        return sorted(self.replicates["region"].dropna().unique().tolist())

    def requests(self, arm: str, region: str | None = None) -> float:
        """Requests of ``arm`` (all its replicates)."""
        return float(self._frame(arm, region)["requests"].sum())

    def stats(
        self, m: MetricDef, arm: str, region: str | None = None
    ) -> ab.MeanStats | ab.RatioStats:
        """Sufficient statistics of ``m`` over the rows (:func:`arm_stats`)."""
        return arm_stats(self._frame(arm, region), m)

    def quantile(
        self, m: MetricDef, arm: str, region: str | None, alpha: float
    ) -> ab.QuantileEstimate:
        """The quantile of the replicates' summed buckets and its interval."""
        q = m.quantile or 0.5
        if self.buckets is None or not len(self.buckets.keys):
            return ab.QuantileEstimate(q, *_NO_QUANTILE)
        mask = self.buckets.keys["arm"] == arm
        if region is not None:
            mask &= self.buckets.keys["region"] == region
        return _quantile_estimate(self.buckets, mask, q, alpha)

    def overlap(self, arms: Sequence[str]) -> float:
        """:func:`time_overlap` of the rows."""
        return time_overlap(self.replicates, arms)

    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """First and last ``ts_utc``."""
        ts = self.replicates["ts_utc"]
        return (ts.min(), ts.max()) if len(ts) else (None, None)

    def cumulative(
        self, m: MetricDef, arm: str, checkpoints: pd.DatetimeIndex
    ) -> list[ab.MeanStats | ab.RatioStats]:
        """Cumulative sums of the sorted rows cut at each checkpoint."""
        f = self.replicates[self.replicates["arm"] == arm].sort_values("ts_utc", kind="stable")
        times = pd.DatetimeIndex(f["ts_utc"]).as_unit("us").asi8
        cut = np.searchsorted(times, checkpoints.as_unit("us").asi8, side="right")
        return _cum_stats(f, m, cut.astype(np.int64))


# ---------------------------------------------------------------- the analysis
def arm_value(
    replicates: pd.DataFrame,
    buckets: Buckets | None,
    m: MetricDef,
    arm: str,
    region: str | None = None,
    alpha: float = 0.05,
) -> tuple[ArmValue, ab.MeanStats | ab.RatioStats | ab.QuantileEstimate]:
    """One arm's value of ``m`` (in ``region``, or all) and the statistics behind it."""
    return source_value(FrameSource(replicates, buckets), m, arm, region, alpha)


def source_value(
    source: ReplicateSource,
    m: MetricDef,
    arm: str,
    region: str | None = None,
    alpha: float = 0.05,
) -> tuple[ArmValue, ab.MeanStats | ab.RatioStats | ab.QuantileEstimate]:
    """:func:`arm_value` read from any :class:`ReplicateSource`."""
    requests = source.requests(arm, region)
    if m.kind == "quantile":
        est = source.quantile(m, arm, region, alpha)
        value = ArmValue(arm, est.value, est.ci_low, est.ci_high, float(est.replicates), est.n)
        return value, est
    s = source.stats(m, arm, region)
    lo, hi = _stats_ci(s, alpha)
    return ArmValue(arm, s.mean, lo, hi, s.n, requests), s


def compare(
    control: ab.MeanStats | ab.RatioStats | ab.QuantileEstimate,
    treatment: ab.MeanStats | ab.RatioStats | ab.QuantileEstimate,
    m: MetricDef,
    settings: AnalysisSettings,
) -> dict[str, ab.Comparison]:
    """Every engine's comparison of two arms' statistics for metric ``m``."""
    a = settings.alpha
    if isinstance(control, ab.QuantileEstimate) and isinstance(treatment, ab.QuantileEstimate):
        rel = ab.quantile_test(control, treatment, relative=True, alpha=a)
        absolute = ab.quantile_test(control, treatment, relative=False, alpha=a)
        # Quantiles: no sufficient statistics, so the sequential and Bayesian engines
        # use the same normal approximation (a CS of the rank-interval SE).
        eff = ab.Effect(rel.estimate, rel.se**2, True)
        n_total = control.replicates + treatment.replicates
        seq = ab.sequential_from_effect(eff, n_total, a, settings.tuning)
        bayes = ab.bayesian_from_effect(eff, a, m.higher_is_better)
        return {"fixed": rel, "absolute": absolute, "sequential": seq, "bayesian": bayes}
    assert not isinstance(control, ab.QuantileEstimate)
    assert not isinstance(treatment, ab.QuantileEstimate)
    return {
        "fixed": ab.welch_test(control, treatment, relative=True, alpha=a),
        "absolute": ab.welch_test(control, treatment, relative=False, alpha=a),
        "sequential": ab.sequential_test(control, treatment, True, a, settings.tuning),
        "bayesian": ab.bayesian_test(
            control, treatment, True, a, higher_is_better=m.higher_is_better
        ),
    }


def _results_for(
    source: ReplicateSource,
    settings: AnalysisSettings,
    region: str | None,
) -> list[MetricResult]:
    label = region or ALL_REGIONS
    out: list[MetricResult] = []
    cache: dict[tuple[str, str], tuple[ArmValue, object]] = {}

    def value(m: MetricDef, arm: str) -> tuple[ArmValue, object]:
        key = (m.name, arm)
        if key not in cache:
            cache[key] = source_value(source, m, arm, region, settings.alpha)
        return cache[key]

    for name, role in settings.roles():
        m = metric(name)
        c_val, c_stats = value(m, settings.control)
        for t in settings.treatments:
            t_val, t_stats = value(m, t)
            res = MetricResult(m, role, t, label, c_val, t_val)
            res.guard = settings.guards.check(
                {settings.control: c_val.units, t: t_val.units},
                {settings.control: c_val.observations, t: t_val.observations},
            )
            if res.guard is None:
                got = compare(c_stats, t_stats, m, settings)  # type: ignore[arg-type]
                res.fixed, res.absolute = got["fixed"], got["absolute"]
                res.sequential, res.bayesian = got["sequential"], got["bayesian"]
            out.append(res)
    if settings.engine != "bayesian":
        ps = [
            (r.deciding(settings.engine).p_value if r.deciding(settings.engine) else math.nan)  # type: ignore[union-attr]
            for r in out
        ]
        adj = ab.adjust_p_values(ps, settings.correction)
        for r, p in zip(out, adj, strict=True):
            r.adjusted_p = float(p)
    return out


def analyze(
    replicates: pd.DataFrame,
    settings: AnalysisSettings,
    buckets: Buckets | None = None,
) -> Analysis:
    """Analyse one experiment: SRM, every metric pooled and per region, warnings, verdicts.

    Args:
        replicates: one row per (ts_utc, region, arm) with the columns of
            :data:`REPLICATE_COLUMNS` (run :func:`add_derived` first for ``slow``
            and ``gco2e``); rows of arms not in ``settings.arms`` are ignored.
        settings: arms, metrics, engine, alpha, correction, guards.
        buckets: per-replicate latency buckets for the quantile metrics.
    """
    reps = replicates[replicates["arm"].isin(settings.arms)]
    return analyze_source(FrameSource(reps, buckets), settings)


def analyze_source(source: ReplicateSource, settings: AnalysisSettings) -> Analysis:
    """:func:`analyze` over any :class:`ReplicateSource` holding only ``settings.arms``."""
    regions = source.regions()
    warnings: list[str] = []
    counts = {a: source.requests(a) for a in settings.arms}
    weights = dict(settings.weights) or None
    srm = ab.srm_test(counts, weights) if sum(counts.values()) > 0 else None
    srm_by_region: dict[str, ab.SrmResult] = {}
    for region in regions:
        rc = {a: source.requests(a, region) for a in settings.arms}
        if sum(rc.values()) > 0:
            srm_by_region[region] = ab.srm_test(rc, weights)
    pooled = _results_for(source, settings, None)
    by_region = {r: _results_for(source, settings, r) for r in regions}
    if len(regions) >= 2:
        for res in pooled:
            per = {
                r: d
                for r, rows in by_region.items()
                for x in rows
                if x.metric.name == res.metric.name and x.treatment == res.treatment
                for d in [x.deciding("fixed")]
                if d is not None and x.guard is None
            }
            msg = ab.direction_disagreement(per, res.fixed)
            if msg:
                warnings.append(f"{res.metric.label} ({res.treatment}): {msg}")
    overlap = source.overlap(settings.arms)
    if overlap < 0.9:
        warnings.append(
            f"The arms were observed in different minutes (only {100 * overlap:.0f}% of "
            "region-minutes with requests have every arm): per-minute replicates are only "
            "comparable when the arms run side by side, otherwise time-of-day and load "
            "differences masquerade as effects."
        )
    if srm is not None and srm.flagged:
        warnings.insert(0, "Sample ratio mismatch: results are untrustworthy.")
    verdicts = {
        t: ab.verdict(
            t,
            settings.control,
            [r.outcome(settings.engine) for r in pooled if r.treatment == t],
            srm,
        )
        for t in settings.treatments
    }
    return Analysis(
        settings, srm, srm_by_region, pooled, by_region, warnings, verdicts, regions,
        source.span(),
    )  # fmt: skip


def time_overlap(replicates: pd.DataFrame, arms: Sequence[str]) -> float:
    """Share of region-minutes with requests in any arm that have requests in every arm.

    1.0 when the arms run side by side (a concurrent traffic split); low when arms
    were deployed one after the other, which per-minute replicates cannot correct.
    """
    live = replicates[(replicates["requests"] > 0) & replicates["arm"].isin(arms)]
    if live.empty:
        return 1.0
    per = live.groupby(["region", "ts_utc"])["arm"].nunique()
    return float((per == len(arms)).mean())


# ---------------------------------------------------------------- over time
def _cum_stats(
    frame: pd.DataFrame, m: MetricDef, cut: npt.NDArray[np.int64]
) -> list[ab.MeanStats | ab.RatioStats]:
    if m.kind == "mean":
        y = frame[m.numerator].astype(float).to_numpy() * m.scale
        ok = np.isfinite(y)
        y = np.where(ok, y, 0.0)
        n = ab.cumulative_sums(ok.astype(float), cut)
        s = ab.cumulative_sums(y, cut)
        s2 = ab.cumulative_sums(y * y, cut)
        return [ab.MeanStats(*v) for v in zip(n, s, s2, strict=True)]
    assert m.denominator is not None
    num = frame[m.numerator].astype(float).to_numpy() * m.scale
    den = frame[m.denominator].astype(float).to_numpy()
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    num, den = np.where(ok, num, 0.0), np.where(ok, den, 0.0)
    parts = [
        ab.cumulative_sums(x, cut)
        for x in (ok.astype(float), num, num * num, den, den * den, num * den)
    ]
    return [ab.RatioStats(*v) for v in zip(*parts, strict=True)]


def cumulative_effect(
    replicates: pd.DataFrame,
    metric_name: str,
    control: str,
    treatment: str,
    checkpoints: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    alpha: float = 0.05,
    tuning: float = ab.DEFAULT_TUNING,
) -> pd.DataFrame:
    """The relative effect as data accumulates: one row per checkpoint time.

    Uses replicates with ``ts_utc <= checkpoint``.  Columns: ``ts_utc``,
    ``n_control``, ``n_treatment`` (replicates), ``estimate``, ``fixed_low``,
    ``fixed_high``, ``p_fixed`` (fixed-horizon Welch, valid only at a horizon fixed
    in advance), ``seq_low``, ``seq_high``, ``p_seq`` (the confidence sequence,
    valid at every checkpoint).  Mean and ratio metrics only.
    """
    return cumulative_from(
        FrameSource(replicates), metric_name, control, treatment, checkpoints, alpha, tuning
    )


def cumulative_from(
    source: ReplicateSource,
    metric_name: str,
    control: str,
    treatment: str,
    checkpoints: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    alpha: float = 0.05,
    tuning: float = ab.DEFAULT_TUNING,
) -> pd.DataFrame:
    """:func:`cumulative_effect` read from any :class:`ReplicateSource`.

    Raises:
        ValueError: a quantile metric.
    """
    m = metric(metric_name)
    if m.kind == "quantile":
        raise ValueError("the cumulative effect is computed for mean and ratio metrics")
    cps = pd.DatetimeIndex(pd.to_datetime(list(checkpoints)))
    arms = {arm: source.cumulative(m, arm, cps) for arm in (control, treatment)}
    rows = []
    for i, t in enumerate(cps):
        c, tr = arms[control][i], arms[treatment][i]
        fx = ab.welch_test(c, tr, True, "two-sided", alpha)
        sq = ab.sequential_test(c, tr, True, alpha, tuning)
        rows.append(
            {
                "ts_utc": t,
                "n_control": c.n,
                "n_treatment": tr.n,
                "estimate": fx.estimate,
                "fixed_low": fx.ci_low,
                "fixed_high": fx.ci_high,
                "p_fixed": fx.p_value,
                "seq_low": sq.ci_low,
                "seq_high": sq.ci_high,
                "p_seq": sq.p_value,
            }
        )
    return pd.DataFrame(rows)


def daily_checkpoints(
    first: pd.Timestamp, last: pd.Timestamp, every: pd.Timedelta | None = None
) -> pd.DatetimeIndex:
    """Checkpoint times from ``first`` to ``last``: every day (every hour under 3 days),
    always ending at ``last``."""
    span = last - first
    step = every or (
        pd.Timedelta(days=1) if span >= pd.Timedelta(days=3) else pd.Timedelta(hours=1)
    )
    points = pd.date_range(first + step, last, freq=step)
    if len(points) == 0 or points[-1] != last:
        points = points.append(pd.DatetimeIndex([last]))
    return points


def arm_table(analysis: Analysis, metric_names: Sequence[str]) -> pd.DataFrame:
    """Per arm and metric: value and interval (pooled), for tables and the frontier.

    Columns: ``arm``, ``metric``, ``value``, ``ci_low``, ``ci_high``, ``units``,
    ``observations``.
    """
    rows = []
    seen: set[tuple[str, str]] = set()
    for r in analysis.results:
        if r.metric.name not in metric_names:
            continue
        for v in (r.control_value, r.treatment_value):
            if (v.arm, r.metric.name) in seen:
                continue
            seen.add((v.arm, r.metric.name))
            rows.append(
                {
                    "arm": v.arm,
                    "metric": r.metric.name,
                    "value": v.value,
                    "ci_low": v.ci_low,
                    "ci_high": v.ci_high,
                    "units": v.units,
                    "observations": v.observations,
                }
            )
    return pd.DataFrame(
        rows, columns=["arm", "metric", "value", "ci_low", "ci_high", "units", "observations"]
    )

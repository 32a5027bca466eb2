"""Experiments over the store: find them, load their replicates, analyse them.

The store is read only through named queries (``sql/queries/experiment_*.sql``) and
a query function ``query(name, **params) -> DataFrame``: :meth:`Store.named` for the
CLI, :func:`app.data.query` (cached) for the dashboard.  The statistics are in
:mod:`analytics.experiments` and :mod:`analytics.experiment_metrics`.

List parameters are passed sorted (the dashboard's cache sorts them too), and the
compact bucket rows are decoded against the same sorted lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd

from analytics.carbon import CarbonModel
from analytics.experiment_metrics import (
    Analysis,
    AnalysisSettings,
    Buckets,
    FrameSource,
    ReplicateSource,
    add_derived,
    analyze_source,
    cumulative_from,
    daily_checkpoints,
    metric,
    source_value,
)
from observatory.experiments_config import Experiments, ExperimentSpec, discovered

QueryFn = Callable[..., pd.DataFrame]
Source = Literal["config", "discovered"]


class ExperimentNotFound(LookupError):
    """No experiment of that name in the file or among the discovered ones."""


@dataclass(frozen=True)
class Listed:
    """An experiment known to Observatory and what the store holds for it."""

    spec: ExperimentSpec
    source: Source
    first_ts: datetime | None
    last_ts: datetime | None
    requests: dict[str, float]
    regions: list[str]

    @property
    def has_data(self) -> bool:
        """True when every arm has requests in the store."""
        return all(self.requests.get(a, 0) > 0 for a in self.spec.arms)


def _naive_utc(t: Any) -> datetime | None:
    if t is None or (isinstance(t, float) and math.isnan(t)) or pd.isna(t):
        return None
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    return ts.to_pydatetime()


def list_experiments(
    query: QueryFn, experiments: Experiments | None = None, arms: pd.DataFrame | None = None
) -> list[Listed]:
    """Configured experiments first, then those discovered from the arm label.

    A discovered experiment whose model already has a configured one is left out.
    ``arms`` is the answer of ``experiment_arms`` over all data when the caller has
    it (:func:`observatory.experiment_state.arms_frame` keeps it per file); else the
    query runs.
    """
    if arms is None:
        arms = query("experiment_arms", start=None, end=None)
    configured = list(experiments.file.experiments) if experiments else []
    has_acc = {str(m) for m, h in zip(arms["model"], arms["has_accuracy"], strict=True) if h}
    found = [e for e in discovered(arms, has_acc) if e.model not in {c.model for c in configured}]
    taken = {c.name for c in configured}
    found = [e for e in found if e.name not in taken]
    out = []
    for spec, source in [*((c, "config") for c in configured), *((d, "discovered") for d in found)]:
        rows = arms[(arms["model"] == spec.model) & (arms["arm"].isin(spec.arms))]
        regions = sorted({r for rs in rows["regions"] for r in rs})
        if spec.regions:
            regions = [r for r in regions if r in spec.regions]
        out.append(
            Listed(
                spec,
                source,  # type: ignore[arg-type]
                _naive_utc(rows["first_ts"].min()) if len(rows) else None,
                _naive_utc(rows["last_ts"].max()) if len(rows) else None,
                dict(zip(rows["arm"], rows["requests"].astype(float), strict=True)),
                regions,
            )
        )
    return out


def find(query: QueryFn, name: str, experiments: Experiments | None = None) -> Listed:
    """The experiment called ``name`` (configured or discovered).

    Raises:
        ExperimentNotFound: no such experiment (the message lists the known ones).
    """
    known = list_experiments(query, experiments)
    for item in known:
        if item.spec.name == name:
            return item
    names = ", ".join(i.spec.name for i in known) or "none"
    raise ExperimentNotFound(f"no experiment {name!r}; known: {names}")


@dataclass
class ExperimentData:
    """What one experiment's analysis reads: the window, replicates and latency buckets.

    ``les``: the latency bucket bounds of the window (empty when no metric needs
    buckets).  From :mod:`observatory.experiment_state` (summed moments), the
    replicates and buckets are empty: :attr:`Report.source` answers instead.
    """

    listed: Listed
    start: datetime
    end: datetime
    regions: list[str]
    replicates: pd.DataFrame
    buckets: Buckets
    carbon: CarbonModel = field(default_factory=CarbonModel)
    les: list[float] = field(default_factory=list)


def window(item: Listed) -> tuple[datetime, datetime] | None:
    """The experiment's window ``(start, end]`` (naive UTC), or None without data.

    ``start``/``end`` from the definition, else the arms' first and last data.
    """
    spec = item.spec
    start = _naive_utc(spec.start) if spec.start else None
    end = _naive_utc(spec.end) if spec.end else None
    if start is None:
        if item.first_ts is None:
            return None
        start = item.first_ts - timedelta(minutes=1)
    if end is None:
        if item.last_ts is None:
            return None
        end = item.last_ts
    return (start, end) if end > start else None


def load(
    query: QueryFn,
    item: Listed,
    carbon: CarbonModel | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    les: list[float] | None = None,
) -> ExperimentData | None:
    """Read the replicates and latency buckets of an experiment (None without data).

    ``start``/``end`` narrow the experiment's own window (e.g. to an earlier day);
    ``les`` gives the bucket bounds instead of reading the window's (a superset of
    them codes the same rows).
    """
    win = window(item)
    if win is None or not item.regions:
        return None
    w_start = max(win[0], start) if start else win[0]
    w_end = min(win[1], end) if end else win[1]
    if w_end <= w_start:
        return None
    spec = item.spec
    arms = sorted(spec.arms)
    regions = sorted(item.regions)
    params = {"model": spec.model, "arms": arms, "start": w_start, "end": w_end}
    reps = query("experiment_replicates", **params, regions=regions)
    reps["ts_utc"] = pd.to_datetime(reps["ts_utc"])
    settings = spec.settings()
    needs_buckets = any(
        metric(n).kind == "quantile" or n == "slow_ratio" for n, _ in settings.roles()
    )
    buckets = Buckets.empty()
    if not needs_buckets:
        les = []
    elif les is None:
        les = query("experiment_latency_bounds", **params, regions=regions)["le"].tolist()
    if les:
        rows = query("experiment_latency_buckets", **params, regions=regions, les=les)
        buckets = Buckets.from_codes(
            rows["t"], rows["r"], rows["a"], rows["k"], rows["value"],
            pd.Timestamp(w_start), regions, arms, les,
        )  # fmt: skip
    model = carbon or CarbonModel()
    reps = add_derived(reps, buckets, model, settings.latency_slo_seconds)
    return ExperimentData(item, w_start, w_end, regions, reps, buckets, model, list(les))


@dataclass
class Report:
    """An experiment's analysis with what the report and the page show besides it.

    ``source`` answers further questions (another metric's cumulative effect) the
    same way the analysis was computed: from the replicate rows or from summed moments.
    """

    data: ExperimentData
    analysis: Analysis
    cumulative: pd.DataFrame
    cumulative_metric: str | None
    frontier: pd.DataFrame
    source: ReplicateSource

    def cumulative_for(self, name: str) -> pd.DataFrame:
        """The cumulative effect of mean or ratio metric ``name`` at the daily checkpoints.

        Raises:
            ValueError: a quantile metric.
            analytics.experiment_moments.OffGrid: from moments, when the checkpoints
                fall inside hours of their grid (read the replicates instead).
        """
        if name == self.cumulative_metric:
            return self.cumulative
        return effect_over_time(self.source, self.data.listed.spec.settings(), name)


FRONTIER_METRICS = ("accuracy", "cost_per_1k", "energy_per_request")


def frontier(data: ExperimentData, alpha: float = 0.05) -> pd.DataFrame:
    """Per arm: accuracy, cost per 1k requests and energy per request with intervals.

    Columns: ``arm``, ``metric``, ``value``, ``ci_low``, ``ci_high``, ``units``,
    ``observations``.
    """
    source = FrameSource(data.replicates, data.buckets)
    return frontier_from(source, data.listed.spec.arms, alpha)


def frontier_from(source: ReplicateSource, arms: Sequence[str], alpha: float) -> pd.DataFrame:
    """:func:`frontier` read from any :class:`ReplicateSource`."""
    rows = []
    for name in FRONTIER_METRICS:
        m = metric(name)
        for arm in arms:
            v, _ = source_value(source, m, arm, None, alpha)
            rows.append(
                {
                    "arm": arm,
                    "metric": name,
                    "value": v.value,
                    "ci_low": v.ci_low,
                    "ci_high": v.ci_high,
                    "units": v.units,
                    "observations": v.observations,
                }
            )
    return pd.DataFrame(rows)


def effect_over_time(
    source: ReplicateSource, settings: AnalysisSettings, name: str
) -> pd.DataFrame:
    """The cumulative effect of ``name`` for the first treatment at daily checkpoints
    (hourly under 3 days) from the first replicate's step start to the last replicate."""
    first, last = source.span()
    if first is None or last is None or not settings.treatments:
        return pd.DataFrame()
    return cumulative_from(
        source,
        name,
        settings.control,
        settings.treatments[0],
        daily_checkpoints(pd.Timestamp(first) - pd.Timedelta(minutes=1), pd.Timestamp(last)),
        settings.alpha,
        settings.tuning,
    )


def report_from(data: ExperimentData, source: ReplicateSource, name: str | None) -> Report:
    """Analyse an experiment from ``source`` (its replicates, or their moments).

    ``name`` (default: the primary metric, when it is a mean or ratio metric) is the
    metric whose cumulative effect over time is computed.
    """
    settings = data.listed.spec.settings()
    analysis = analyze_source(source, settings)
    chosen: str | None = name or settings.primary
    cum = pd.DataFrame()
    if chosen is not None and metric(chosen).kind != "quantile" and settings.treatments:
        cum = effect_over_time(source, settings, chosen)
    else:
        chosen = None
    return Report(
        data, analysis, cum, chosen, frontier_from(source, data.listed.spec.arms, settings.alpha),
        source,
    )  # fmt: skip


def run(
    query: QueryFn,
    item: Listed,
    carbon: CarbonModel | None = None,
    cumulative_metric: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Report | None:
    """Load and analyse one experiment from its replicate rows (None without data).

    The reference path: it reads every replicate of the window (for the dashboard at
    scale, :func:`observatory.experiment_state.run_fast` reads their moments).
    ``cumulative_metric`` (default: the primary metric, when it is a mean or ratio
    metric) is the metric whose cumulative effect over time is computed, for the
    first treatment arm, at daily checkpoints (hourly under 3 days).
    """
    data = load(query, item, carbon, start, end)
    if data is None or data.replicates.empty:
        return None
    settings = item.spec.settings()
    reps = data.replicates[data.replicates["arm"].isin(settings.arms)]
    return report_from(data, FrameSource(reps, data.buckets), cumulative_metric)

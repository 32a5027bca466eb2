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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd

from analytics.carbon import CarbonModel
from analytics.experiment_metrics import (
    Analysis,
    Buckets,
    add_derived,
    analyze,
    cumulative_effect,
    daily_checkpoints,
    metric,
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


def list_experiments(query: QueryFn, experiments: Experiments | None = None) -> list[Listed]:
    """Configured experiments first, then those discovered from the arm label.

    A discovered experiment whose model already has a configured one is left out.
    """
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
    """What one experiment's analysis reads: the window, replicates and latency buckets."""

    listed: Listed
    start: datetime
    end: datetime
    regions: list[str]
    replicates: pd.DataFrame
    buckets: Buckets
    carbon: CarbonModel = field(default_factory=CarbonModel)


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
) -> ExperimentData | None:
    """Read the replicates and latency buckets of an experiment (None without data).

    ``start``/``end`` narrow the experiment's own window (e.g. to an earlier day).
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
    if needs_buckets:
        les = query("experiment_latency_bounds", **params, regions=regions)["le"].tolist()
        if les:
            rows = query("experiment_latency_buckets", **params, regions=regions, les=les)
            buckets = Buckets.from_codes(
                rows["t"], rows["r"], rows["a"], rows["k"], rows["value"],
                pd.Timestamp(w_start), regions, arms, les,
            )  # fmt: skip
    model = carbon or CarbonModel()
    reps = add_derived(reps, buckets, model, settings.latency_slo_seconds)
    return ExperimentData(item, w_start, w_end, regions, reps, buckets, model)


@dataclass
class Report:
    """An experiment's analysis with what the report and the page show besides it."""

    data: ExperimentData
    analysis: Analysis
    cumulative: pd.DataFrame
    cumulative_metric: str | None
    frontier: pd.DataFrame


FRONTIER_METRICS = ("accuracy", "cost_per_1k", "energy_per_request")


def frontier(data: ExperimentData, alpha: float = 0.05) -> pd.DataFrame:
    """Per arm: accuracy, cost per 1k requests and energy per request with intervals.

    Columns: ``arm``, ``metric``, ``value``, ``ci_low``, ``ci_high``, ``units``,
    ``observations``.
    """
    from analytics.experiment_metrics import arm_value

    rows = []
    for name in FRONTIER_METRICS:
        m = metric(name)
        for arm in data.listed.spec.arms:
            v, _ = arm_value(data.replicates, data.buckets, m, arm, None, alpha)
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


def run(
    query: QueryFn,
    item: Listed,
    carbon: CarbonModel | None = None,
    cumulative_metric: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Report | None:
    """Load and analyse one experiment (None when the store holds no data for it).

    ``cumulative_metric`` (default: the primary metric, when it is a mean or ratio
    metric) is the metric whose cumulative effect over time is computed, for the
    first treatment arm, at daily checkpoints (hourly under 3 days).
    """
    data = load(query, item, carbon, start, end)
    if data is None or data.replicates.empty:
        return None
    settings = item.spec.settings()
    analysis = analyze(data.replicates, settings, data.buckets)
    name = cumulative_metric or settings.primary
    cum = pd.DataFrame()
    if metric(name).kind != "quantile" and settings.treatments:
        first = pd.Timestamp(data.replicates["ts_utc"].min()) - pd.Timedelta(minutes=1)
        last = pd.Timestamp(data.replicates["ts_utc"].max())
        cum = cumulative_effect(
            data.replicates,
            name,
            settings.control,
            settings.treatments[0],
            daily_checkpoints(first, last),
            settings.alpha,
            settings.tuning,
        )
    else:
        name = None  # type: ignore[assignment]
    return Report(data, analysis, cum, name, frontier(data, settings.alpha))

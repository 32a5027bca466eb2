"""Regression analysis over a store: loads the signals, finds regressions, judges deployments.

The edge between the store (named queries ``sql/queries/regression_*.sql``,
annotations) and the pure analytics (:mod:`analytics.regressions`,
:mod:`analytics.verdict`).  Used by ``observatory regressions`` and the dashboard's
Regressions page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from analytics import regressions as rg
from analytics.verdict import SignalSpec, Verdict, judge
from observatory import annotations as notes
from observatory.store import Store, StoreMissing

DEFAULT_LOOKBACK = timedelta(days=14)
DEFAULT_BIN_S = 300


@dataclass
class DeploymentVerdict:
    """The Kayenta-style verdict of one deployment event."""

    event: rg.Event
    verdict: Verdict
    region: str
    model: str
    arm: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.event.time.isoformat(),
            "description": self.event.description,
            "kind": self.event.kind,
            "region": self.region,
            "model": self.model,
            "arm": self.arm,
            "verdict": self.verdict.verdict,
            "score": self.verdict.score,
            "reason": self.verdict.reason,
            "signals": [
                {"signal": s.name, "classification": s.classification, "ratio": s.ratio}
                for s in self.verdict.signals
            ],
        }


@dataclass
class Report:
    """Everything the CLI and the dashboard show."""

    start: datetime
    end: datetime
    bin_s: int
    regressions: list[rg.Regression]
    events: list[rg.Event]
    verdicts: list[DeploymentVerdict]
    signals: pd.DataFrame = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def time_bounds(store: Store) -> tuple[datetime, datetime]:
    """First and last stored step (UTC, aware).

    Raises:
        StoreMissing: the store holds no request counter.
    """
    b = store.named("regression_time_bounds")
    if b.empty or pd.isna(b["last_utc"].iloc[0]):
        raise StoreMissing(f"{store.root}: no data")
    return (
        _aware(pd.Timestamp(b["first_utc"].iloc[0]).to_pydatetime()),
        _aware(pd.Timestamp(b["last_utc"].iloc[0]).to_pydatetime()),
    )


def load_signals(
    store: Store,
    start: datetime,
    end: datetime,
    bin_s: int = DEFAULT_BIN_S,
    regions: list[str] | None = None,
) -> pd.DataFrame:
    """Derived signals per bin, region, model, arm over ``(start, end]`` (naive UTC bin ends)."""
    params = {
        "start": _naive(start),
        "end": _naive(end),
        "bin_s": int(bin_s),
        "regions": list(regions or []),
    }
    counters = store.named("regression_counters", **params)
    gauges = store.named("regression_gauges", **params)
    latency = store.named("regression_latency", **params)
    return rg.build_signals(counters, gauges, latency, bin_s)


def events(
    store: Store,
    signals: pd.DataFrame,
    start: datetime,
    end: datetime,
    regions: list[str] | None = None,
) -> list[rg.Event]:
    """Candidate causes: annotations, label changes (series appearing/disappearing) and
    traffic shifts."""
    out: list[rg.Event] = []
    for a in notes.read(store.root):
        t = _naive(a.time)
        if _naive(start) < t <= _naive(end) and (not regions or a.region in (None, *regions)):
            out.append(rg.Event(t, "annotation", a.description, a.region, a.model, a.arm))
    spans = store.named(
        "regression_series_span", start=_naive(start), end=_naive(end), regions=list(regions or [])
    )
    first, last = time_bounds(store)
    out += rg.label_changes(spans, max(_naive(first), _naive(start)), _naive(last))
    out += rg.traffic_shifts(signals)
    return sorted(out, key=lambda e: e.time)


def _spec(sig: rg.RegressionSignal) -> SignalSpec:
    m = sig.min_relative if sig.min_relative else 0.25
    direction = {"up": "increase", "down": "decrease", "either": "either"}[sig.worse]
    return SignalSpec(
        sig.name,
        direction=direction,  # type: ignore[arg-type]
        critical=sig.critical,
        effect_gate=(1 / (1 + m), 1 + m),
        confidence=0.98,
    )


def deployment_verdicts(
    signals: pd.DataFrame,
    evts: list[rg.Event],
    window: timedelta = timedelta(hours=1),
    pass_score: float = 95.0,
    marginal_score: float = 75.0,
) -> list[DeploymentVerdict]:
    """A verdict for each deployment (annotation or label change) with data after it.

    Experiment: the bins in ``window`` after the event; control: the same hours one
    day earlier (like with like: the same time of day), per region/model/arm the
    event concerns.
    """
    out = []
    specs = [_spec(s) for s in rg.SIGNALS.values()]
    for e in evts:
        if e.kind not in ("annotation", "label_change"):
            continue
        sel = signals
        for key in ("region", "model", "arm"):
            val = getattr(e, key)
            if val:
                sel = sel[sel[key] == val]
        for (region, model, arm), f in sel.groupby(rg.KEYS, sort=True):
            t = pd.DatetimeIndex(f["bin_end"])
            after = f[(t > e.time) & (t <= e.time + window)]
            day = timedelta(days=1)
            before = f[(t > e.time - day) & (t <= e.time - day + window)]
            if after.empty or before.empty:
                continue
            exp = {n: g["value"].to_numpy() for n, g in after.groupby("signal")}
            ctl = {n: g["value"].to_numpy() for n, g in before.groupby("signal")}
            present = [s for s in specs if s.name in exp or s.name in ctl]
            if not present:
                continue
            v = judge(exp, ctl, present, pass_score, marginal_score)
            out.append(DeploymentVerdict(e, v, str(region), str(model), str(arm)))
    return out


def analyse(
    store: Store,
    end: datetime | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
    bin_s: int = DEFAULT_BIN_S,
    regions: list[str] | None = None,
    signals_wanted: list[str] | None = None,
) -> Report:
    """Regressions over ``(end - lookback, end]`` (default end: the last stored step).

    Raises:
        StoreMissing: the store holds no data.
    """
    first, last = time_bounds(store)
    end = _aware(end) if end else last
    start = max(end - lookback, first - timedelta(minutes=1))
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    sig = load_signals(store, start, end, bin_s, regions)
    secs["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    regs = rg.detect_regressions(sig, only=signals_wanted)
    secs["detect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    evts = events(store, sig, start, end, regions)
    regs = rg.with_causes(regs, evts)
    verdicts = deployment_verdicts(sig, evts)
    secs["causes"] = time.perf_counter() - t0
    return Report(_aware(start), end, bin_s, regs, evts, verdicts, sig, secs)


def select(report: Report, since: timedelta | None) -> list[rg.Regression]:
    """Regressions that started within ``since`` of the report's end, or are still open
    and worse (what an operator must know about now)."""
    if since is None:
        return list(report.regressions)
    cut = _naive(report.end - since)
    return [r for r in report.regressions if r.start > cut or (r.open and r.worse)]


def open_critical(regs: list[rg.Regression]) -> list[rg.Regression]:
    """The open regressions of critical signals that are worse (a CI/CD gate fails on them)."""
    return [r for r in regs if r.open and r.critical and r.worse]


def table(regs: list[rg.Regression]) -> pd.DataFrame:
    """One row per regression, for printing and the dashboard."""
    rows = []
    for r in regs:
        rows.append(
            {
                "start_utc": r.start,
                "severity": r.severity,
                "open": r.open,
                "region": r.region,
                "model": r.model,
                "arm": r.arm,
                "signal": r.signal,
                "before": r.before,
                "after": r.after,
                "change": r.relative,
                "cause": r.cause.description if r.cause else "",
                "cause_kind": r.cause.kind if r.cause else "",
            }
        )
    return pd.DataFrame(rows)


def series(report: Report, region: str, model: str, arm: str, signal: str) -> pd.DataFrame:
    """One signal's bins (``bin_end``, ``value``, ``load``) for a chart."""
    s = report.signals
    f = s[(s.region == region) & (s.model == model) & (s.arm == arm) & (s.signal == signal)]
    return f[["bin_end", "value", "load"]].reset_index(drop=True)


def fmt_value(v: float, unit: str) -> str:
    """A level in its unit, compactly."""
    if not np.isfinite(v):
        return "-"
    if unit == "ratio":
        return f"{v:.2%}"
    if unit == "seconds":
        return f"{v:.2f}s"
    return f"{v:.4g}"

"""Regression analysis over a store: loads the signals, finds regressions, judges deployments.

The edge between the store (named queries ``sql/queries/regression_*.sql``,
annotations) and the pure analytics (:mod:`analytics.regressions`,
:mod:`analytics.verdict`).  Used by ``observatory regressions`` and the dashboard's
Regressions page.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from analytics import regression_signals as rs
from analytics import regressions as rg
from analytics.verdict import SignalSpec, Verdict, judge
from observatory import annotations as notes
from observatory import regressions_state as state
from observatory.store import Store, StoreMissing

DEFAULT_LOOKBACK = timedelta(days=14)
#: 1-minute bins: at 5-minute bins p99 shows false +25-35 % steps in quiet regions over
#: 30 days (docs/regressions.md); at 1 minute the demo fleet's quiet regions are clean.
DEFAULT_BIN_S = 60


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
    incremental: bool = False  # True: an earlier run's state was reused


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
    """Derived signals per bin, region, model, arm over ``(start, end]`` (naive UTC bin ends).

    The store hands over numeric rows only (``regression_*_rows.sql``); binning and
    the derived signals are numpy work (:mod:`analytics.regression_signals`).
    """
    params: dict[str, Any] = {
        "start": _naive(start),
        "end": _naive(end),
        "regions": list(regions or []),
    }
    names = store.named("regression_series_names", **params)
    bins = rs.bin_rows(
        names,
        store.named("regression_counter_rows", **params),
        store.named("regression_gauge_rows", **params),
        store.named("regression_bucket_rows", **params),
        start,
        end,
        bin_s,
    )
    return rs.derive_signals(bins, bin_s)


def events(
    store: Store,
    signals: pd.DataFrame,
    start: datetime,
    end: datetime,
    regions: list[str] | None = None,
    bin_s: int = DEFAULT_BIN_S,
) -> list[rg.Event]:
    """Candidate causes: annotations, label changes (series appearing/disappearing) and
    traffic shifts."""
    out = deployment_events(store, start, end, regions)
    out += rg.traffic_shifts(signals, bin_s=bin_s)
    return sorted(out, key=lambda e: e.time)


def deployment_events(
    store: Store,
    start: datetime,
    end: datetime,
    regions: list[str] | None = None,
) -> list[rg.Event]:
    """The events that do not depend on the signals: annotations in ``(start, end]``
    (of the regions, or fleet-wide), then label changes (series appearing or
    disappearing, ``regression_series_span.sql``), in that order, unsorted.

    Raises:
        StoreMissing: the store holds no request counter.
    """
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
    return out


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


def _judge_series(
    exp_rows: pd.DataFrame,
    ctl_rows: pd.DataFrame,
    pass_score: float,
    marginal_score: float,
) -> Verdict | None:
    """Kayenta's judge of every signal with data on either side (None: no data at all)."""
    exp = {str(n): g["value"].to_numpy() for n, g in exp_rows.groupby("signal", observed=True)}
    ctl = {str(n): g["value"].to_numpy() for n, g in ctl_rows.groupby("signal", observed=True)}
    specs = [_spec(s) for s in rg.SIGNALS.values() if s.name in exp or s.name in ctl]
    if not specs or not exp or not ctl:
        return None
    return judge(exp, ctl, specs, pass_score, marginal_score)


def _select(signals: pd.DataFrame, **wanted: str | None) -> pd.DataFrame:
    sel = signals
    for key, val in wanted.items():
        if val:
            sel = sel[sel[key] == val]
    return sel


def _within(frame: pd.DataFrame, span: tuple[datetime, datetime]) -> pd.DataFrame:
    t = frame["bin_end"]
    return frame[(t > _naive(span[0])) & (t <= _naive(span[1]))]


def deployment_verdicts(
    signals: pd.DataFrame,
    evts: list[rg.Event],
    window: timedelta = timedelta(hours=1),
    pass_score: float = 95.0,
    marginal_score: float = 75.0,
    baseline_offset: timedelta = timedelta(days=1),
) -> list[DeploymentVerdict]:
    """A verdict for each deployment (annotation or label change) with data after it.

    Experiment: the bins in ``window`` after the event; control: the same span
    ``baseline_offset`` earlier (default one day: like with like, the same time of
    day; ``window`` gives the span just before the event), per region/model/arm the
    event concerns.
    """
    out = []
    for e in evts:
        if e.kind not in ("annotation", "label_change"):
            continue
        sel = _select(signals, region=e.region, model=e.model, arm=e.arm)
        for (region, model, arm), f in sel.groupby(rg.KEYS, sort=True, observed=True):
            after = _within(f, (e.time, e.time + window))
            before = _within(f, (e.time - baseline_offset, e.time - baseline_offset + window))
            v = _judge_series(after, before, pass_score, marginal_score)
            if v is not None:
                out.append(DeploymentVerdict(e, v, str(region), str(model), str(arm)))
    return out


def range_verdicts(
    signals: pd.DataFrame,
    baseline: tuple[datetime, datetime],
    canary: tuple[datetime, datetime],
    region: str | None = None,
    model: str | None = None,
    arm: str | None = None,
    pass_score: float = 95.0,
    marginal_score: float = 75.0,
) -> list[DeploymentVerdict]:
    """A verdict per region/model/arm: the bins in ``canary`` against those in ``baseline``.

    Ranges are ``(start, end]`` in UTC.  ``region``/``model``/``arm`` narrow the
    series judged.

    Raises:
        ValueError: a range ends before it starts.
    """
    for name, (a, b) in (("baseline", baseline), ("canary", canary)):
        if _naive(b) <= _naive(a):
            raise ValueError(f"{name} range ends ({b}) before it starts ({a})")
    event = rg.Event(
        _naive(canary[0]),
        "ranges",
        f"{_naive(canary[0]):%Y-%m-%d %H:%M}..{_naive(canary[1]):%H:%M} vs "
        f"{_naive(baseline[0]):%Y-%m-%d %H:%M}..{_naive(baseline[1]):%H:%M}",
        region,
        model,
        arm,
    )
    out = []
    sel = _select(signals, region=region, model=model, arm=arm)
    for (reg_, mod, arm_), f in sel.groupby(rg.KEYS, sort=True, observed=True):
        v = _judge_series(_within(f, canary), _within(f, baseline), pass_score, marginal_score)
        if v is not None:
            out.append(DeploymentVerdict(event, v, str(reg_), str(mod), str(arm_)))
    return out


def arm_verdicts(
    signals: pd.DataFrame,
    control_arm: str,
    experiment_arm: str,
    during: tuple[datetime, datetime],
    region: str | None = None,
    model: str | None = None,
    pass_score: float = 95.0,
    marginal_score: float = 75.0,
) -> list[DeploymentVerdict]:
    """A verdict per region/model serving both arms: ``experiment_arm`` against
    ``control_arm`` over the same bins ``during`` (``(start, end]``, UTC).

    Raises:
        ValueError: the two arms are the same.
    """
    if control_arm == experiment_arm:
        raise ValueError(f"compare two different arms, got {control_arm!r} twice")
    event = rg.Event(
        _naive(during[0]), "arms", f"{experiment_arm} vs {control_arm}", region, model, None
    )
    out = []
    sel = _within(_select(signals, region=region, model=model), during)
    for (reg_, mod), f in sel.groupby(["region", "model"], sort=True, observed=True):
        v = _judge_series(
            f[f["arm"] == experiment_arm], f[f["arm"] == control_arm], pass_score, marginal_score
        )
        if v is not None:
            out.append(
                DeploymentVerdict(event, v, str(reg_), str(mod), f"{experiment_arm}/{control_arm}")
            )
    return out


def _floor(t: datetime, bin_s: int) -> datetime:
    """``t`` down to a multiple of ``bin_s`` since the epoch (a bin boundary), aware UTC."""
    ts = pd.Timestamp(_aware(t))
    return (ts - pd.Timedelta(seconds=int(ts.timestamp()) % bin_s)).floor("s").to_pydatetime()


def _concat(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Signals frames one after the other, categorical columns kept categorical."""
    out = pd.concat([old, new], ignore_index=True)
    for col in (*rg.KEYS, "signal"):
        if out[col].dtype != "category":
            out[col] = out[col].astype("category")
    return out


def window(
    store: Store, end: datetime | None, lookback: timedelta, bin_s: int
) -> tuple[datetime, datetime]:
    """The analysed window ``(start, end]`` (aware UTC): ``end`` defaults to the last
    stored step; ``start`` is ``end - lookback`` (not before the first step) floored
    to a bin boundary.

    Raises:
        StoreMissing: the store holds no request counter.
    """
    first, last = time_bounds(store)
    end = _aware(end) if end else last
    return _floor(max(end - lookback, first - timedelta(minutes=1)), bin_s), end


def analyse(
    store: Store,
    end: datetime | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
    bin_s: int = DEFAULT_BIN_S,
    regions: list[str] | None = None,
    signals_wanted: list[str] | None = None,
    pass_score: float = 95.0,
    marginal_score: float = 75.0,
    incremental: bool = True,
) -> Report:
    """Regressions over ``(end - lookback, end]`` (default end: the last stored step).

    The window starts at a bin boundary.  With ``incremental`` the state of the last
    run over the same bins and regions (:mod:`observatory.regressions_state`) is
    reused: only bins after its last complete bin are loaded from the store, and
    only the tail of each series is analysed again
    (:func:`analytics.regressions.detect_regressions_incremental`); the new state is
    saved for the next run.  ``pass_score``/``marginal_score`` are the deployment
    verdicts' thresholds.

    Raises:
        StoreMissing: the store holds no data.
    """
    start, end = window(store, end, lookback, bin_s)
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    saved = state.load(store.root, bin_s, regions) if incremental and not signals_wanted else None
    reuse = saved is not None and saved.start <= start < saved.complete <= end
    if saved is not None and reuse:
        old = saved.signals
        old = old[(old["bin_end"] > _naive(start)) & (old["bin_end"] <= _naive(saved.complete))]
        if end > saved.complete:
            old = _concat(old, load_signals(store, saved.complete, end, bin_s, regions))
        sig = old
    else:
        sig = load_signals(store, start, end, bin_s, regions)
    secs["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if saved is not None and reuse:
        regs = rg.detect_regressions_incremental(sig, saved.regressions, saved.end, bin_s)
    else:
        regs = rg.detect_regressions(sig, only=signals_wanted, bin_s=bin_s)
    secs["detect"] = time.perf_counter() - t0
    if incremental and not signals_wanted:
        # A read-only store: no state is kept, the next run recomputes; nothing is lost.
        with contextlib.suppress(OSError):
            state.save(
                store.root,
                bin_s,
                regions,
                state.Saved(sig, start, end, _floor(end, bin_s), regs),
            )
    t0 = time.perf_counter()
    evts = events(store, sig, start, end, regions, bin_s)
    regs = rg.with_causes(regs, evts)
    verdicts = deployment_verdicts(sig, evts, pass_score=pass_score, marginal_score=marginal_score)
    secs["causes"] = time.perf_counter() - t0
    return Report(_aware(start), end, bin_s, regs, evts, verdicts, sig, secs, reuse)


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

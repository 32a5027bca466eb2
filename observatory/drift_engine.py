"""Drift over the store: histogram, gauge and counter-ratio signals per region, model, arm.

SQL (``sql/queries/drift_*.sql``) sums histogram buckets per time slice and reads
per-step gauge values and counter ratios; the pure functions of
:mod:`analytics.drift` compute and judge the metrics.  The result,
:class:`DriftReport`, holds one :class:`SliceResult` per signal x region x model x arm
with every metric, the distributions to overlay and the metric over time; the report
writers (:mod:`observatory.drift_report`) and the dashboard read it.

Windows follow the store's convention: a window ``(start, end]`` holds the steps whose
end ``ts_utc`` lies in it.  The current window is ``(end - window, end]``; the
reference (:class:`Reference`) is the previous N days ``(start - N, start]``, the
same window a week earlier, or a fixed baseline period.

Learned thresholds: the reference is cut into chunks as long as the window (7 chunks
for a 24 h window and a 7 d reference) and each chunk is compared with the rest
(:func:`analytics.drift.compare_histograms`).  The "same window a week earlier"
reference is one chunk, so only the fixed thresholds apply to it.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analytics import drift as dm
from observatory import drift_fresh
from observatory.config import format_duration
from observatory.store import Store

Kind = Literal["histogram", "gauge", "ratio", "labels"]
ReferenceMode = Literal["previous", "week_ago", "baseline"]
WEEK = timedelta(days=7)
#: The metric drawn over time by default and summarised per slice.
PRIMARY = "psi"
#: The metrics computed over time for histogram, gauge and ratio slices (columns of
#: :attr:`SliceResult.over_time`); ``ks`` is the KS statistic (on bucket bounds a lower
#: bound of the raw-sample one).
OVER_TIME_METRICS = ("psi", "js", "hellinger", "wasserstein", "ks")
#: Points of the metric-over-time curve per window length.
OVER_TIME_PER_WINDOW = 6


# --------------------------------------------------------------------------- reference
def _utc_naive(t: datetime) -> datetime:
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


@dataclass(frozen=True)
class Reference:
    """Which period the current window is compared with.

    Attributes:
        mode: ``previous`` (the ``span`` just before the window), ``week_ago`` (the
            same window 7 days earlier) or ``baseline`` (fixed ``start`` .. ``end``).
        span: length of the ``previous`` reference.
        start, end: the fixed baseline ``(start, end]`` (UTC).
    """

    mode: ReferenceMode = "previous"
    span: timedelta = timedelta(days=7)
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """``7d`` (previous 7 days), ``week-ago``, or ``2026-11-01T00:00Z/2026-11-08T00:00Z``.

        Raises:
            ValueError: none of these forms.
        """
        from observatory.config import parse_duration

        value = text.strip()
        if value.lower() in ("week-ago", "week_ago", "weekago"):
            return cls(mode="week_ago")
        if "/" in value:
            a, b = value.split("/", 1)
            try:
                start = datetime.fromisoformat(a.strip())
                end = datetime.fromisoformat(b.strip())
            except ValueError:
                raise ValueError(
                    f"expected a baseline START/END in ISO 8601, got {text!r}"
                ) from None
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
            end = end if end.tzinfo else end.replace(tzinfo=UTC)
            if end <= start:
                raise ValueError(f"the baseline must end after it starts, got {text!r}")
            return cls(mode="baseline", start=start, end=end)
        return cls(mode="previous", span=parse_duration(value))

    def period(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """The reference ``(start, end]`` for the window ``(start, end]``."""
        if self.mode == "previous":
            return start - self.span, start
        if self.mode == "week_ago":
            return start - WEEK, end - WEEK
        assert self.start is not None and self.end is not None
        return _utc_naive(self.start), _utc_naive(self.end)

    def describe(self) -> str:
        """For people: ``previous 7d``, ``same window a week earlier``, ``baseline ...``."""
        if self.mode == "previous":
            return f"previous {format_duration(self.span)}"
        if self.mode == "week_ago":
            return "same window a week earlier"
        assert self.start is not None and self.end is not None
        return f"baseline {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC"


WEEK_AGO = Reference(mode="week_ago")


# --------------------------------------------------------------------------- signals
@dataclass(frozen=True)
class DriftSignal:
    """A signal whose drift is measured.

    Attributes:
        name: shown in reports (``latency``, ``error_ratio``).
        kind: ``histogram`` (bucket counts), ``gauge`` (per-step means), ``ratio``
            (per-step ratio of two counters) or ``labels`` (accuracy from late labels:
            correct / all labels that arrived in the window, a change test against the
            reference; :func:`analytics.drift.accuracy_change`).
        sources: the stored canonical signal(s): one for histograms and gauges,
            ``(numerator, denominator)`` for ratios and labels.
        unit: unit of the values (of ``le`` for histograms).
        reference: overrides the report's reference for this signal.
        min_count: minimum observations (histograms) or steps (others) per side.
        rule: how fixed and learned thresholds combine (:func:`analytics.drift.judge`).
        metric: the alarm metric whose verdict is the slice's (Evidently likewise
            picks one test per column); the other metrics are computed, judged and
            shown, but do not decide.
    """

    name: str
    kind: Kind
    sources: tuple[str, ...]
    unit: str
    reference: Reference | None = None
    min_count: float | None = None
    rule: dm.Rule = "both"
    metric: str = "psi"

    def minimum(self) -> float:
        """The minimum-count guard in force."""
        if self.min_count is not None:
            return self.min_count
        if self.kind == "labels":
            return dm.MIN_LABELS
        return dm.MIN_COUNT if self.kind == "histogram" else 500


DEFAULT_SIGNALS: tuple[DriftSignal, ...] = (
    DriftSignal("latency", "histogram", ("latency",), "seconds"),
    DriftSignal("ttft", "histogram", ("ttft",), "seconds"),
    DriftSignal("prompt_length", "histogram", ("prompt_length",), "tokens"),
    DriftSignal("prediction_score", "histogram", ("prediction_score",), "score"),
    DriftSignal("accuracy", "gauge", ("accuracy",), "ratio"),
    # Load-driven signals follow the weekly cycle: compare with the same window a
    # week earlier, or a Sunday is "drift" against the previous seven days.
    DriftSignal("gpu_utilization", "gauge", ("gpu_utilization",), "ratio", WEEK_AGO),
    DriftSignal("error_ratio", "ratio", ("errors", "requests"), "ratio"),
    DriftSignal("energy_per_request", "ratio", ("energy", "requests"), "joules/request", WEEK_AGO),
    # Labels arrive hours after the prediction: accuracy per label-arrival window.
    DriftSignal(
        "accuracy_late_labels",
        "labels",
        ("labels_correct", "labels"),
        "ratio",
        metric="accuracy_drop",
    ),
)
#: How reports and the page name a signal where its name is not plain enough.
TITLES = {"accuracy_late_labels": "accuracy (late labels)"}


def signal_title(name: str) -> str:
    """The signal's name for people (``accuracy (late labels)``)."""
    return TITLES.get(name, name)


def signal_by_name(name: str) -> DriftSignal:
    """One of :data:`DEFAULT_SIGNALS`.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    for s in DEFAULT_SIGNALS:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in DEFAULT_SIGNALS)
    raise KeyError(f"unknown drift signal {name!r}; known: {known}")


# --------------------------------------------------------------------------- results
@dataclass
class SliceResult:
    """Drift of one signal in one region, model and arm.

    Attributes:
        verdict: the worst verdict of the alarm metrics (``insufficient data`` when
            none could be judged).
        fired: the thresholds that fired, ``metric: rule`` joined by ``; ``.
        results: every metric (:class:`analytics.drift.MetricResult`).
        rebinned: the two sides had different bucket layouts and were re-binned.
        distribution: ``{"x": labels, "reference": shares, "current": shares,
            "xtitle": ...}`` to overlay.
        over_time: one row per trailing window as long as the current one:
            ``ts_utc`` (its end), ``n`` (its observations, steps or labels), ``value``
            (the alarm metric against the reference) and, for histograms, gauges and
            ratios, a column per :data:`OVER_TIME_METRICS`; for late labels
            ``accuracy``, ``low``, ``high`` (95% Wilson interval) and ``value`` =
            the accuracy drop against the reference.
        alarm: the alarm metric whose verdict is the slice's.
    """

    signal: str
    kind: Kind
    unit: str
    region: str
    model: str
    arm: str
    reference: str
    reference_start: datetime
    reference_end: datetime
    verdict: dm.Verdict
    fired: str
    results: list[dm.MetricResult]
    rebinned: bool = False
    distribution: dict[str, Any] = field(default_factory=dict)
    over_time: pd.DataFrame = field(default_factory=pd.DataFrame)
    alarm: str = PRIMARY

    @property
    def title(self) -> str:
        """The signal's name for people."""
        return signal_title(self.signal)

    @property
    def fired_metrics(self) -> list[str]:
        """Alarm metrics judged warning or critical, the slice's own alarm metric first."""
        hit = [
            r.metric
            for r in self.results
            if dm.RULES[r.metric].alarm and r.verdict in ("warning", "critical")
        ]
        return sorted(hit, key=lambda m: m != self.alarm)

    @property
    def key(self) -> str:
        """``signal/region/model/arm``: unique within a report."""
        return f"{self.signal}/{self.region}/{self.model}/{self.arm}"

    def metric(self, name: str) -> dm.MetricResult | None:
        """The result of metric ``name``, if computed."""
        return next((r for r in self.results if r.metric == name), None)

    @property
    def drifted(self) -> bool:
        """Warning or critical."""
        return self.verdict in ("warning", "critical")


@dataclass
class DriftReport:
    """Drift of every signal slice in one window against its reference."""

    window_start: datetime
    window_end: datetime
    window: timedelta
    reference: Reference
    generated_utc: datetime
    slices: list[SliceResult]
    without_data: list[str] = field(default_factory=list)
    #: How it was computed (:func:`settings_of`): the store, step, filters, each
    #: signal's reference, rule, alarm metric and minimum count, and when reading began.
    #: A saved report is reused for the page only when these match
    #: (:mod:`observatory.drift_archive`).
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> dm.Verdict:
        """The worst slice verdict (``insufficient data`` when nothing was judged)."""
        judged = [s.verdict for s in self.slices if s.verdict != "insufficient data"]
        return dm.worst(judged) if judged else "insufficient data"

    @property
    def drifted(self) -> list[SliceResult]:
        """Slices with a warning or a critical verdict, worst first."""
        out = [s for s in self.slices if s.drifted]
        return sorted(out, key=lambda s: (-dm.SEVERITY[s.verdict], s.key))

    def summary_line(self) -> str:
        """``drift detected in 3 of 40 signals (signal x region x model x arm), 2 regions``."""
        n = len(self.slices)
        d = self.drifted
        regions = sorted({s.region for s in d})
        crit = sum(s.verdict == "critical" for s in d)
        insufficient = sum(s.verdict == "insufficient data" for s in self.slices)
        if not n:
            return "no data in the window"
        if d:
            head = (
                f"drift detected in {len(d)} of {n} signals (signal x region x model x arm), "
                f"{len(regions)} region{'s' if len(regions) != 1 else ''} "
                f"({', '.join(regions)}); {crit} critical"
            )
        else:
            head = f"no drift in {n} signals (signal x region x model x arm)"
        if insufficient:
            head += f"; {insufficient} with insufficient data"
        return head

    def table(self) -> pd.DataFrame:
        """One row per slice and metric: signal, region, model, arm, metric, value,
        threshold, learned, verdict, fired, n_ref, n_cur, rebinned."""
        rows = []
        for s in self.slices:
            for r in s.results:
                rows.append(
                    {
                        "signal": s.signal,
                        "kind": s.kind,
                        "region": s.region,
                        "model": s.model,
                        "arm": s.arm,
                        "metric": r.metric,
                        "label": r.label,
                        "alarm": dm.RULES[r.metric].alarm,
                        "value": r.value,
                        "threshold": r.threshold,
                        "learned": r.learned,
                        "verdict": r.verdict,
                        "fired": r.fired,
                        "n_ref": r.n_ref,
                        "n_cur": r.n_cur,
                        "rebinned": s.rebinned,
                    }
                )
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """One row per slice: its verdict, what fired, PSI, JS, W1 and accuracy drop."""
        rows = []
        for s in self.slices:
            psi = s.metric("psi")
            js = s.metric("js")
            w1 = s.metric("wasserstein")
            drop = s.metric("accuracy_drop")
            alarm = s.metric(s.alarm)
            rows.append(
                {
                    "signal": s.title,
                    "region": s.region,
                    "model": s.model,
                    "arm": s.arm,
                    "verdict": s.verdict,
                    "psi": psi.value if psi else math.nan,
                    "js": js.value if js else math.nan,
                    "wasserstein": w1.value if w1 else math.nan,
                    "accuracy_drop": drop.value if drop else math.nan,
                    "fired": s.fired,
                    "n_ref": alarm.n_ref if alarm else math.nan,
                    "n_cur": alarm.n_cur if alarm else math.nan,
                    "reference": s.reference,
                }
            )
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- engine
def _seconds(t: timedelta) -> int:
    return round(t.total_seconds())


def _slice_seconds(*spans: timedelta) -> int:
    """The longest slice (<= 1 h) that divides every span (>= 60 s)."""
    g = 3600
    for s in spans:
        g = math.gcd(g, _seconds(s))
    return max(g, 60)


def last_step(store: Store) -> datetime | None:
    """The latest stored step end over all tables (UTC, naive), or None when empty."""
    df = store.named("drift_time_bounds")
    ts = pd.to_datetime(df["last_ts"]).dropna()
    return None if ts.empty else ts.max().to_pydatetime()


def aligned_end(store: Store, align: timedelta, end: datetime | None = None) -> datetime:
    """``end`` (default: the latest stored step) floored to a whole multiple of ``align``
    since 1970-01-01 00:00 UTC (``1h``: the hour; ``24h``: UTC midnight), UTC naive.

    A scheduled report's window ends there, so it holds whole clock hours or days
    and a report run a few minutes after the hour (when every region's collector has
    written that hour) covers the same rows as one run later (docs/drift.md).

    Raises:
        ValueError: ``align`` is not a whole number of minutes dividing a day, or the store
            is empty and no ``end`` was given.
    """
    step = _seconds(align)
    if step < 60 or step % 60 or 86_400 % step:
        raise ValueError(
            "the alignment must be a whole number of minutes that divides a day "
            f"(1h, 6h, 24h), got {align}"
        )
    if end is None:
        end = last_step(store)
        if end is None:
            raise ValueError(f"the store {store.root} holds no data")
    t = _utc_naive(end)
    since = t - datetime(1970, 1, 1)
    return t - timedelta(seconds=int(since.total_seconds()) % step, microseconds=t.microsecond)


def _verdict(results: Sequence[dm.MetricResult], metric: str) -> tuple[dm.Verdict, str]:
    """The slice's verdict and what fired: those of its alarm ``metric``."""
    primary = next((r for r in results if r.metric == metric), None)
    if primary is None:
        return "insufficient data", ""
    return primary.verdict, (f"{metric}: {primary.fired}" if primary.fired else "")


def _buckets_of(matrix: np.ndarray, le: np.ndarray) -> dm.Buckets:
    """Sum slices (rows) of cumulative bucket increases into one histogram.

    Rows with a bucket missing (NaN: a different layout in that slice) are re-binned
    onto the layout of the slices without gaps before adding.
    """
    if matrix.size == 0:
        return dm.Buckets.from_cumulative(le, np.zeros(le.size))
    full = ~np.isnan(matrix).any(axis=1)
    if full.all():
        return dm.Buckets.from_cumulative(le, matrix.sum(axis=0))
    present = ~np.isnan(matrix)
    layout = le[present[full].all(axis=0)] if full.any() else le[present.all(axis=0)]
    if layout.size == 0 or not np.isposinf(layout[-1]):
        layout = np.append(layout[np.isfinite(layout)], np.inf)
    total = np.zeros(layout.size)
    for row, ok in zip(matrix, present, strict=True):
        if not ok.any():
            continue
        h = dm.Buckets.from_cumulative(le[ok], row[ok])
        total += dm.rebin(h, layout).counts
    return dm.Buckets(layout, total)


class _HistGroup:
    """One group's bucket sums: ``matrix[slice, le]`` (NaN where a bucket is absent)."""

    def __init__(self, frame: pd.DataFrame):
        self.le = np.sort(frame["le"].unique().astype(np.float64))
        slices = frame["slice"].to_numpy(np.int64)
        self.n = int(slices.max()) + 1 if len(frame) else 0
        self.matrix = np.full((self.n, self.le.size), np.nan)
        col = np.searchsorted(self.le, frame["le"].to_numpy(np.float64))
        self.matrix[slices, col] = frame["value"].to_numpy(np.float64)

    def period(self, first: int, last: int) -> dm.Buckets:
        """Slices ``first`` .. ``last - 1`` summed (missing slices count as empty)."""
        rows = self.matrix[first : min(last, self.n)]
        rows = rows[~np.isnan(rows).all(axis=1)] if rows.size else rows
        return _buckets_of(rows, self.le)


@dataclass(frozen=True)
class _Plan:
    """Slices of one signal's read: window, reference, chunks (slice indices)."""

    origin: datetime
    read_start: datetime
    slice_s: int
    window: tuple[int, int]
    reference: tuple[int, int]
    chunks: list[tuple[int, int]]
    ref_origin: datetime | None = None  # a baseline read on its own


def _plan(ref: Reference, start: datetime, end: datetime, window: timedelta) -> _Plan:
    ref_start, ref_end = ref.period(start, end)
    if ref.mode == "baseline":
        s = _slice_seconds(window)
        nw = _seconds(window) // s
        n_ref = _seconds(ref_end - ref_start) // s
        chunks = [(j * nw, (j + 1) * nw) for j in range(n_ref // nw)]
        return _Plan(end, start, s, (0, nw), (0, n_ref), chunks, ref_origin=ref_end)
    span = ref.span if ref.mode == "previous" else WEEK
    s = _slice_seconds(window, span)
    nw = _seconds(window) // s
    if ref.mode == "previous":
        n_ref = _seconds(span) // s
        chunks = [(nw + j * nw, nw + (j + 1) * nw) for j in range(n_ref // nw)]
        return _Plan(end, ref_start, s, (0, nw), (nw, nw + n_ref), chunks)
    off = _seconds(WEEK) // s
    return _Plan(end, ref_start, s, (0, nw), (off, off + nw), [])


def _hist_labels(le: np.ndarray, unit: str) -> list[str]:
    out = []
    lower = 0.0 if le[0] > 0 else le[0]
    for b in le:
        out.append(f"> {lower:g}" if math.isinf(b) else f"<= {b:g}")
        if not math.isinf(b):
            lower = b
    return out


def _over_time_hist(
    group: _HistGroup, ref: dm.Buckets, plan: _Plan, total: int, alarm: str
) -> pd.DataFrame:
    nw = plan.window[1] - plan.window[0]
    step = max(nw // OVER_TIME_PER_WINDOW, 1)
    rows = []
    for end_slice in range(0, total - nw + 1, step):
        cur = group.period(end_slice, end_slice + nw)
        if cur.total <= 0 or ref.total <= 0:
            continue
        ts = plan.origin - timedelta(seconds=end_slice * plan.slice_s)
        values = dm.hist_metrics(ref, cur)
        rows.append({"ts_utc": ts, "value": values[alarm], "n": cur.total, **values})
    return pd.DataFrame(rows).sort_values("ts_utc") if rows else pd.DataFrame()


@dataclass(frozen=True)
class _Ask:
    """What one drift computation reads: the store, the window ``(start, end]``, filters."""

    store: Store
    start: datetime
    end: datetime
    regions: Sequence[str] | None
    models: Sequence[str] | None

    @property
    def window(self) -> timedelta:
        """The window's length."""
        return self.end - self.start

    def filters(self) -> dict[str, list[str] | None]:
        """The named queries' ``$regions`` and ``$models`` (None: all)."""
        return {
            "regions": list(self.regions) if self.regions else None,
            "models": list(self.models) if self.models else None,
        }


def _histogram_slices(ask: _Ask, sig: DriftSignal, ref: Reference) -> list[SliceResult]:
    store, start, end = ask.store, ask.start, ask.end
    plan = _plan(ref, start, end, ask.window)
    params: dict[str, Any] = {"signal": sig.sources[0], "slice_s": plan.slice_s, **ask.filters()}
    cur_df = store.named(
        "drift_histogram_slices", start=plan.read_start, end=end, origin=plan.origin, **params
    )
    ref_df = cur_df
    if plan.ref_origin is not None:
        r0, r1 = ref.period(start, end)
        ref_df = store.named(
            "drift_histogram_slices", start=r0, end=r1, origin=plan.ref_origin, **params
        )
    r0, r1 = ref.period(start, end)
    out = []
    keys = sorted(set(map(tuple, cur_df[["region", "model", "arm"]].drop_duplicates().to_numpy())))
    cur_groups = dict(tuple(cur_df.groupby(["region", "model", "arm"])))
    ref_groups = dict(tuple(ref_df.groupby(["region", "model", "arm"])))
    for key in keys:
        g_cur = _HistGroup(cur_groups[key])
        g_ref = _HistGroup(ref_groups[key]) if key in ref_groups else None
        cur = g_cur.period(*plan.window)
        if g_ref is None:
            refb = dm.Buckets(cur.le, np.zeros(cur.le.size))
            chunks: list[dm.Buckets] = []
        else:
            refb = g_ref.period(*plan.reference)
            chunks = [g_ref.period(a, b) for a, b in plan.chunks]
        if cur.total <= 0 and refb.total <= 0:
            continue
        rebinned = not np.array_equal(cur.le, refb.le)
        results = dm.compare_histograms(refb, cur, chunks, min_count=sig.minimum(), rule=sig.rule)
        a, b = dm.align(refb, cur)
        dist = {
            "x": _hist_labels(a.le, sig.unit),
            "le": ["+Inf" if math.isinf(x) else float(x) for x in a.le],
            "reference": a.shares.tolist(),
            "current": b.shares.tolist(),
            "xtitle": f"bucket ({sig.unit})",
        }
        over = _over_time_hist(
            g_cur, refb, plan, plan.reference[1] if plan.ref_origin is None else g_cur.n, sig.metric
        )
        k = (str(key[0]), str(key[1]), str(key[2]))
        out.append(_slice(sig, k, ref, (r0, r1), results, dist, over, rebinned))
    return out


def _step_values(
    ask: _Ask,
    sig: DriftSignal,
    read_start: datetime,
    read_end: datetime,
    origin: datetime,
    step_s: int,
) -> pd.DataFrame:
    """``region, model, arm, k, value`` per step bucket (k counted back from origin).

    Ratios and labels also carry ``num`` and ``den`` (the counters' sums); a ratio's
    bucket without denominator is dropped, a label window without labels is kept.
    """
    common: dict[str, Any] = {
        "start": read_start,
        "end": read_end,
        "origin": origin,
        "step_s": step_s,
        **ask.filters(),
    }
    store = ask.store
    if sig.kind == "gauge":
        df = store.named("drift_gauge_steps", signal=sig.sources[0], **common)
        return df[["region", "model", "arm", "k", "value"]]
    df = store.named("drift_ratio_steps", num=sig.sources[0], den=sig.sources[1], **common)
    if sig.kind == "ratio":
        df = df[df["den"] > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = df["num"] / df["den"]
    return df.assign(value=value)[["region", "model", "arm", "k", "value", "num", "den"]]


@dataclass(frozen=True)
class _Steps:
    """Per-step rows of one signal: current window, reference, and the over-time range.

    ``k`` counts step buckets back from the window's end (``k < nw``: the window); the
    reference's rows have ``ref_k[0] <= k < ref_k[1]`` in ``ref`` (its own ``k`` for a
    baseline).  ``history`` holds every row read before the window's end (empty
    for a baseline, whose reference is read on its own).
    """

    cur: pd.DataFrame
    ref: pd.DataFrame
    history: pd.DataFrame
    ref_k: tuple[int, int]
    nw: int
    step_s: int


def _read_steps(ask: _Ask, sig: DriftSignal, ref: Reference, step_s: int) -> _Steps:
    start, end = ask.start, ask.end
    r0, r1 = ref.period(start, end)
    step_s = math.gcd(step_s, _seconds(end - start)) or 60
    nw = _seconds(end - start) // step_s
    if ref.mode == "baseline":
        cur_df = _step_values(ask, sig, start, end, end, step_s)
        ref_df = _step_values(ask, sig, r0, r1, r1, step_s)
        return _Steps(
            cur_df, ref_df, cur_df.iloc[0:0], (0, _seconds(r1 - r0) // step_s), nw, step_s
        )
    read = _step_values(ask, sig, min(r0, start), end, end, step_s)
    off = _seconds(end - r1) // step_s
    ref_k = (off, off + _seconds(r1 - r0) // step_s)
    ref_df = read[(read["k"] >= ref_k[0]) & (read["k"] < ref_k[1])]
    return _Steps(read[read["k"] < nw], ref_df, read, ref_k, nw, step_s)


def _groups(
    steps: _Steps,
) -> list[tuple[tuple[str, str, str], pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """``(key, current rows, reference rows, history rows)`` per region x model x arm seen
    in the window or the reference: one that stopped reporting shows as "insufficient
    data" rather than vanishing."""
    cols = ["region", "model", "arm"]
    keys = sorted(
        set(map(tuple, steps.cur[cols].drop_duplicates().to_numpy()))
        | set(map(tuple, steps.ref[cols].drop_duplicates().to_numpy()))
    )
    by = [dict(tuple(df.groupby(cols))) for df in (steps.cur, steps.ref, steps.history)]
    empty = steps.cur.iloc[0:0]
    return [((str(k[0]), str(k[1]), str(k[2])), *(g.get(k, empty) for g in by)) for k in keys]


def _display_hist(ref: np.ndarray, cur: np.ndarray, unit: str) -> dict[str, Any]:
    both = np.concatenate([ref, cur])
    lo, hi = float(np.min(both)), float(np.max(both))
    if hi <= lo:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, 31)
    r = np.histogram(ref, edges)[0].astype(float)
    c = np.histogram(cur, edges)[0].astype(float)
    mids = (edges[:-1] + edges[1:]) / 2
    return {
        "x": [float(f"{m:.6g}") for m in mids],
        "reference": (r / max(r.sum(), 1)).tolist(),
        "current": (c / max(c.sum(), 1)).tolist(),
        "xtitle": f"value per step ({unit})",
    }


def _trailing_ends(total: int, nw: int) -> range:
    """Ends (in steps back from the window's end) of the over-time curve's windows."""
    return range(0, max(total - nw + 1, 0), max(nw // OVER_TIME_PER_WINDOW, 1))


def _over_time_values(
    history: pd.DataFrame, rv: np.ndarray, steps: _Steps, end: datetime, sig: DriftSignal
) -> pd.DataFrame:
    """Every :data:`OVER_TIME_METRICS` of trailing windows against the reference values."""
    if not len(history):
        return pd.DataFrame()
    kv = history["k"].to_numpy()
    vv = history["value"].to_numpy(np.float64)
    bounds = dm.value_buckets(rv, rv[:1])[0].le[:-1]
    ends, windows = [], []
    for e in _trailing_ends(int(kv.max()) + 1, steps.nw):
        sel = vv[(kv >= e) & (kv < e + steps.nw)]
        if sel.size >= sig.minimum():
            ends.append(e)
            windows.append(sel)
    if not windows:
        return pd.DataFrame()
    rows = [
        {
            "ts_utc": end - timedelta(seconds=e * steps.step_s),
            "value": values[sig.metric],
            "n": float(sel.size),
            **values,
        }
        for e, sel, values in zip(
            ends, windows, dm.value_metrics_windows(rv, windows, bounds), strict=True
        )
    ]
    return pd.DataFrame(rows).sort_values("ts_utc")


def _slice(
    sig: DriftSignal,
    key: tuple[str, str, str],
    ref: Reference,
    period: tuple[datetime, datetime],
    results: list[dm.MetricResult],
    distribution: dict[str, Any],
    over: pd.DataFrame,
    rebinned: bool = False,
) -> SliceResult:
    verdict, fired = _verdict(results, sig.metric)
    return SliceResult(
        sig.name,
        sig.kind,
        sig.unit,
        *key,
        ref.describe(),
        *period,
        verdict,
        fired,
        results,
        rebinned,
        distribution,
        over,
        alarm=sig.metric,
    )


def _value_slices(ask: _Ask, sig: DriftSignal, ref: Reference, step_s: int) -> list[SliceResult]:
    start, end = ask.start, ask.end
    steps = _read_steps(ask, sig, ref, step_s)
    nw = steps.nw
    out = []
    for key, c, rsel, hist in _groups(steps):
        rv = rsel["value"].to_numpy(np.float64)
        cv = c["value"].to_numpy(np.float64)
        if rv.size == 0 and cv.size == 0:
            continue
        chunks = []
        if ref.mode != "week_ago":
            lo_k, hi_k = steps.ref_k
            for lo in range(lo_k, lo_k + (hi_k - lo_k) // nw * nw, nw):
                sel = rsel[(rsel["k"] >= lo) & (rsel["k"] < lo + nw)]
                chunks.append(sel["value"].to_numpy(np.float64))
        results = dm.compare_values(rv, cv, chunks, min_count=sig.minimum(), rule=sig.rule)
        dist = _display_hist(rv, cv, sig.unit) if rv.size and cv.size else {}
        over = (
            _over_time_values(hist, rv, steps, end, sig)
            if rv.size and ref.mode == "previous"
            else pd.DataFrame()
        )
        out.append(_slice(sig, key, ref, ref.period(start, end), results, dist, over))
    return out


def _over_time_labels(
    history: pd.DataFrame, steps: _Steps, end: datetime, ref_accuracy: float
) -> pd.DataFrame:
    """Accuracy of trailing label-arrival windows with its 95% Wilson interval."""
    if not len(history):
        return pd.DataFrame()
    k = history["k"].to_numpy(np.int64)
    total = int(k.max()) + 1
    num = np.bincount(k, history["num"].to_numpy(np.float64), minlength=total)
    den = np.bincount(k, history["den"].to_numpy(np.float64), minlength=total)
    ends = np.asarray(_trailing_ends(total, steps.nw), dtype=np.int64)
    if ends.size == 0:
        return pd.DataFrame()
    cn = np.concatenate([[0.0], np.cumsum(num)])
    cd = np.concatenate([[0.0], np.cumsum(den)])
    correct = cn[ends + steps.nw] - cn[ends]
    labelled = cd[ends + steps.nw] - cd[ends]
    acc = dm.accuracy_windows(correct, labelled)
    frame = pd.DataFrame(
        {
            "ts_utc": [end - timedelta(seconds=int(e) * steps.step_s) for e in ends],
            "value": ref_accuracy - acc["accuracy"],
            "n": labelled,
            "accuracy": acc["accuracy"],
            "low": acc["low"],
            "high": acc["high"],
        }
    )
    return frame[frame["n"] > 0].sort_values("ts_utc")


def _label_slices(ask: _Ask, sig: DriftSignal, ref: Reference) -> list[SliceResult]:
    """Accuracy from late labels: labels counted in the window they arrived in."""
    start, end = ask.start, ask.end
    steps = _read_steps(ask, sig, ref, _slice_seconds(ask.window))
    out = []
    for key, c, rsel, hist in _groups(steps):
        ref_ok, ref_n = float(rsel["num"].sum()), float(rsel["den"].sum())
        cur_ok, cur_n = float(c["num"].sum()), float(c["den"].sum())
        if ref_n <= 0 and cur_n <= 0:
            continue
        change = dm.accuracy_change(ref_ok, ref_n, cur_ok, cur_n, min_labels=sig.minimum())
        results = dm.accuracy_results(change)
        dist: dict[str, Any] = {}
        if ref_n > 0 and cur_n > 0:
            dist = {
                "x": ["correct", "incorrect"],
                "reference": [change.reference, 1 - change.reference],
                "current": [change.current, 1 - change.current],
                "xtitle": "label outcome (share of the labels that arrived)",
            }
        over = (
            _over_time_labels(hist, steps, end, change.reference) if ref_n > 0 else pd.DataFrame()
        )
        out.append(_slice(sig, key, ref, ref.period(start, end), results, dist, over))
    return out


def reference_spec(ref: Reference) -> str:
    """``ref`` as :meth:`Reference.parse` reads it back (``7d``, ``week-ago``, ``A/B``)."""
    if ref.mode == "previous":
        return format_duration(ref.span)
    if ref.mode == "week_ago":
        return "week-ago"
    assert ref.start is not None and ref.end is not None
    return f"{ref.start.isoformat()}/{ref.end.isoformat()}"


def settings_of(
    store_root: str | os.PathLike[str],
    reference: Reference,
    signals: Sequence[DriftSignal] = DEFAULT_SIGNALS,
    regions: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    step_s: int = 60,
) -> dict[str, Any]:
    """What decides a report's numbers besides the window (JSON-ready; compared as is).

    Returns:
        ``{"store": resolved store folder, "reference": spec, "step_s", "regions",
        "models" (sorted, or None for all), "signals": {name: {"kind", "sources",
        "unit", "reference" (spec), "min_count", "rule", "metric"}}}``.
    """
    return {
        "store": str(Path(store_root).resolve()),
        "reference": reference_spec(reference),
        "step_s": int(step_s),
        "regions": sorted(regions) if regions else None,
        "models": sorted(models) if models else None,
        "signals": {
            s.name: {
                "kind": s.kind,
                "sources": list(s.sources),
                "unit": s.unit,
                "reference": reference_spec(s.reference or reference),
                "min_count": float(s.minimum()),
                "rule": s.rule,
                "metric": s.metric,
            }
            for s in signals
        },
    }


def compute_drift(
    store: Store,
    window: timedelta = timedelta(hours=24),
    reference: Reference | None = None,
    end: datetime | None = None,
    signals: Sequence[DriftSignal] = DEFAULT_SIGNALS,
    regions: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    step_s: int = 60,
) -> DriftReport:
    """Drift of every signal slice in ``(end - window, end]`` against its reference.

    Args:
        store: the store to read.
        window: length of the current window (a whole number of minutes).
        reference: the default reference (a signal's own ``reference`` wins);
            default: the previous 7 days.
        end: the window's end, UTC (default: the latest stored step).
        signals: what to measure (default :data:`DEFAULT_SIGNALS`); signals without
            any rows are listed in :attr:`DriftReport.without_data`.
        regions, models: only these (default all).
        step_s: bucket length of per-step values for gauges and ratios (seconds).

    The report's ``settings`` hold :func:`settings_of`'s, ``read_started_utc``, the
    freshness ``fingerprint`` (:func:`observatory.drift_fresh.fingerprint`, taken
    before any row is read) and ``compute_s`` (wall seconds of the computation).

    Raises:
        ValueError: the window is not a whole number of minutes, or the store is empty
            and no ``end`` was given.
        observatory.store.StoreError: a query failed.
    """
    reference = reference or Reference()
    began = datetime.now(UTC).replace(tzinfo=None)  # before any file is read
    t0 = time.monotonic()
    if _seconds(window) < 60 or _seconds(window) % 60:
        raise ValueError(f"the window must be a whole number of minutes, got {window}")
    if end is None:
        last = last_step(store)
        if last is None:
            raise ValueError(f"the store {store.root} holds no data")
        end = last
    end = _utc_naive(end).replace(second=0, microsecond=0)
    start = end - window
    ask = _Ask(store, start, end, regions, models)
    settings = settings_of(store.root, reference, signals, regions, models, step_s)
    lo, hi = drift_fresh.read_span(
        start, end, [(sig.reference or reference).period(start, end) for sig in signals]
    )
    fingerprint = drift_fresh.fingerprint(store, settings["signals"], lo, hi)  # before reading
    slices: list[SliceResult] = []
    missing: list[str] = []
    for sig in signals:
        ref = sig.reference or reference
        if sig.kind == "histogram":
            got = _histogram_slices(ask, sig, ref)
        elif sig.kind == "labels":
            got = _label_slices(ask, sig, ref)
        else:
            got = _value_slices(ask, sig, ref, step_s)
        if not got:
            missing.append(sig.name)
        slices.extend(got)
    return DriftReport(
        window_start=start,
        window_end=end,
        window=window,
        reference=reference,
        generated_utc=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
        slices=slices,
        without_data=missing,
        settings={
            **settings,
            "read_started_utc": began.isoformat(),
            drift_fresh.FINGERPRINT_KEY: fingerprint,
            "compute_s": round(time.monotonic() - t0, 1),
        },
    )


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(text: str) -> str:
    """A file-name-safe form of ``text``."""
    return _SAFE.sub("-", text).strip("-") or "x"

"""SLO mathematics: error budgets, burn rates, multiwindow multi-burn-rate alerts.

Pure functions over numbers and numpy arrays (no DuckDB, no Streamlit, no network).
Sources: the Google SRE Workbook, chapter "Alerting on SLOs"; the OpenSLO v1
specification; Sloth's and Pyrra's rule generators; summarised with reference
values in the project's SLO reference (``shared/reference/slo.md``).

Vocabulary and units used throughout:

- ``target`` T: the objective as a fraction, 0 <= T <= 1 (0.999 for "99.9%").
- budget fraction B = 1 - T: the share of events (or time slices) allowed to be bad.
  T = 1 leaves no budget: every figure divided by B is reported as "no budget"
  (NaN plus the state :data:`NO_BUDGET`), never a division by zero.
- ``good``, ``bad``, ``total``: event counts (or slice counts) summed over a window;
  bad = total - good.  The SLI of a window is good / total and its error ratio is
  bad / total; both are undefined (NaN) when total = 0 -- a window without traffic
  has no SLI, it is not 0 % and not 100 %.
- Windows are right-closed ``(t - w, t]`` on step ends (``ts_utc`` is the END of the
  step ``(ts - step, ts]``): a window evaluated at ``t`` holds the steps whose end
  lies in ``(t - w, t]``, i.e. exactly the samples Prometheus 3 would select with a
  range selector ``[w]`` at ``t``.  In SQL: ``ts_utc > t - w AND ts_utc <= t``.
- ``burn rate`` = error ratio / B: 1 spends exactly the budget by the end of the
  period; b spends it in period / b.
- ``period``: the SLO window (30 days rolling, a calendar month, ...), a timedelta.

Every roll-up (region -> global, arm -> experiment, slices -> window) adds events
first and divides once: sum(bad) / sum(total), never an average of ratios.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Op = Literal["lt", "lte", "gt", "gte"]
Method = Literal["Occurrences", "Timeslices", "RatioTimeslices"]

#: States of an SLO or of one window, from best to worst for colouring.
OK, TICKET, PAGE, EXHAUSTED = "ok", "ticket", "page", "exhausted"
NO_DATA, INSUFFICIENT, NO_BUDGET = "no_data", "insufficient", "no_budget"

#: The burn-rate windows Sloth records (and the SRE Workbook's four tiers use).
BURN_WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
}


def window_name(w: timedelta) -> str:
    """Prometheus-style short name of a duration: ``5m``, ``1h``, ``1d``, ``90s``."""
    s = int(w.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            if unit == "w":  # Prometheus and Sloth speak of 7d/28d/30d, not weeks
                return f"{s // 86400}d"
            return f"{s // size}{unit}"
    return f"{s}s"


# ---------------------------------------------------------------- error budget
def error_budget_fraction(target: float) -> float:
    """The budget fraction B = 1 - T (0 for a 100 % target).

    Rounded to 12 decimals so that 1 - 0.999 is 0.001 and not 0.0010000000000000009.

    Raises:
        ValueError: ``target`` outside [0, 1] or NaN.
    """
    if not (0.0 <= target <= 1.0):
        raise ValueError(f"target must be a fraction in [0, 1], got {target!r}")
    return round(1.0 - target, 12)


def budget_minutes(target: float, period: timedelta) -> float:
    """The error budget as time: B x period, in minutes (99.9 % over 30 days: 43.2 min).

    This is the time the service may be fully down within the period (for an
    availability SLO with uniform traffic).
    """
    return error_budget_fraction(target) * period.total_seconds() / 60.0


@dataclass(frozen=True)
class Budget:
    """The error budget of one window.

    Attributes:
        target: T, a fraction.
        total: valid events (or slices with data) in the window.
        bad: bad events in the window.
        error_ratio: bad / total; NaN when total is 0 (no data).
        budget_fraction: B = 1 - T.
        allowed_bad: the event budget, B x total.
        consumed: error_ratio / B, a fraction of the budget (0.6 = 60 %); may exceed 1.
            NaN with no data or no budget.
        remaining: 1 - consumed; negative when overspent.  NaN as ``consumed``.
        state: :data:`OK`, :data:`EXHAUSTED` (remaining <= 0), :data:`NO_DATA`,
            :data:`INSUFFICIENT` (fewer than ``min_events``) or :data:`NO_BUDGET`
            (T = 1; ``violated`` then says whether any event was bad).
    """

    target: float
    total: float
    bad: float
    error_ratio: float
    budget_fraction: float
    allowed_bad: float
    consumed: float
    remaining: float
    state: str

    @property
    def violated(self) -> bool:
        """True when the window misses its target (any bad event for T = 1)."""
        if self.state == NO_BUDGET:
            return self.bad > 0
        return bool(self.remaining < 0)


def error_budget(bad: float, total: float, target: float, min_events: float = 0) -> Budget:
    """The budget of a window from its summed bad and total events.

    Example (reference): T = 99.9 %, 1,500,000 events, 900 bad: error ratio 0.0006,
    consumed 0.6, remaining 0.4.

    Args:
        bad: bad events in the window (>= 0).
        total: valid events in the window (>= 0).
        target: T, a fraction in [0, 1].
        min_events: below this many events the state is :data:`INSUFFICIENT` (the
            figures are still computed, for display).
    """
    b = error_budget_fraction(target)
    ratio = bad / total if total > 0 else math.nan
    if b == 0.0:
        return Budget(target, total, bad, ratio, 0.0, 0.0, math.nan, math.nan, NO_BUDGET)
    consumed = ratio / b
    remaining = 1.0 - consumed
    if total <= 0:
        state = NO_DATA
    elif total < min_events:
        state = INSUFFICIENT
    else:
        state = EXHAUSTED if remaining <= 0 else OK
    return Budget(target, total, bad, ratio, b, b * total, consumed, remaining, state)


def error_ratio(bad: npt.ArrayLike, total: npt.ArrayLike, min_events: float = 0) -> FloatArray:
    """bad / total element-wise; NaN where total is 0 or below ``min_events``.

    Shapes: any broadcastable shapes; result has the broadcast shape.
    """
    b = np.asarray(bad, dtype=np.float64)
    t = np.asarray(total, dtype=np.float64)
    ok = (t > 0) & (t >= min_events)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, b / np.where(ok, t, 1.0), np.nan)


def burn_rate(error_ratio_: npt.ArrayLike, target: float) -> FloatArray:
    """Burn rate = error ratio / (1 - T); NaN where the ratio is NaN or T = 1."""
    b = error_budget_fraction(target)
    e = np.asarray(error_ratio_, dtype=np.float64)
    if b == 0.0:
        return np.full(e.shape, np.nan)
    return e / b


def consumed_remaining(
    bad: npt.ArrayLike, total: npt.ArrayLike, target: float
) -> tuple[FloatArray, FloatArray]:
    """Budget consumed and remaining (fractions) for arrays of window sums.

    Returns ``(consumed, remaining)``, each with the broadcast shape of the inputs;
    NaN where total is 0 or T = 1.  Remaining may be negative.
    """
    consumed = burn_rate(error_ratio(bad, total), target)
    return consumed, 1.0 - consumed


def time_to_exhaustion(burn: float, period: timedelta, remaining: float = 1.0) -> timedelta | None:
    """How long the remaining budget lasts at a constant burn rate.

    ``remaining x period / burn``; a full budget at burn b lasts period / b (30 days
    at burn 14.4: 50 hours).  ``timedelta(0)`` when the budget is already spent,
    None when it is never exhausted (burn <= 0) or unknown (NaN).
    """
    if math.isnan(burn) or math.isnan(remaining):
        return None
    if remaining <= 0:
        return timedelta(0)
    if burn <= 0:
        return None
    return period * (remaining / burn)


# ---------------------------------------------------------------- alert tiers
def alert_factor(budget_share: float, period: timedelta, long_window: timedelta) -> float:
    """Burn-rate threshold to alert when ``budget_share`` of the budget is spent in ``long_window``.

    b = p x period / w (SRE Workbook).  2 % of a 30-day budget in 1 hour: 14.4.
    """
    return budget_share * (period / long_window)


@dataclass(frozen=True)
class AlertTier:
    """One tier of a multiwindow multi-burn-rate alert.

    Fires when the burn rate over BOTH ``long`` and ``short`` exceeds ``factor``
    (strictly greater, as Sloth's ``>`` rules).

    Attributes:
        name: e.g. ``page-1h``.
        severity: ``page`` or ``ticket`` (any string for custom catalogues).
        long, short: the two windows.
        factor: the burn-rate threshold.
        budget_share: the share of the period's budget spent in ``long`` at ``factor``.
    """

    name: str
    severity: str
    long: timedelta
    short: timedelta
    factor: float
    budget_share: float


#: The SRE Workbook / Sloth tiers: (severity, long, short, budget share).
SRE_TIER_SHAPE: tuple[tuple[str, timedelta, timedelta, float], ...] = (
    ("page", timedelta(hours=1), timedelta(minutes=5), 0.02),
    ("page", timedelta(hours=6), timedelta(minutes=30), 0.05),
    ("ticket", timedelta(days=1), timedelta(hours=2), 0.10),
    ("ticket", timedelta(days=3), timedelta(hours=6), 0.10),
)


def alert_tiers(
    period: timedelta,
    shape: Sequence[tuple[str, timedelta, timedelta, float]] = SRE_TIER_SHAPE,
) -> list[AlertTier]:
    """Tiers for an SLO period, factors derived as b = p x period / long window.

    30 days: 14.4, 6, 3, 1.  28 days: 13.44, 5.6, 2.8, 0.9333.  A 7-day period with
    shares 8 %, 12.5 %, 20 %, 42 %: 13.44, 3.5, 1.4, 0.98.

    Args:
        period: the SLO period.
        shape: ``(severity, long, short, budget_share)`` per tier.
    """
    return [
        AlertTier(
            f"{sev}-{window_name(long)}",
            sev,
            long,
            short,
            alert_factor(share, period, long),
            share,
        )
        for sev, long, short, share in shape
    ]


#: Pyrra's tiers for a 28-day window: (severity, long, short, factor); scaled with the period.
PYRRA_28D: tuple[tuple[str, timedelta, timedelta, float], ...] = (
    ("critical", timedelta(hours=1), timedelta(minutes=5), 14.0),
    ("critical", timedelta(hours=6), timedelta(minutes=30), 7.0),
    ("warning", timedelta(days=1), timedelta(hours=2), 2.0),
    ("warning", timedelta(days=4), timedelta(hours=6), 1.0),
)


def pyrra_tiers(period: timedelta) -> list[AlertTier]:
    """Pyrra's catalogue: the 28-day windows scaled by period / 28 d, fixed factors.

    Windows are rounded up to whole minutes: 2 weeks gives 3m/30m, 15m/3h, 1h/12h,
    3h/2d (factors 14, 7, 2, 1).  An example of a non-default tier catalogue.
    """
    scale = period / timedelta(days=28)

    def minutes_up(w: timedelta) -> timedelta:
        return timedelta(minutes=math.ceil(round(w.total_seconds() * scale / 60, 9)))

    out = []
    for sev, long, short, factor in PYRRA_28D:
        lw, sw = minutes_up(long), minutes_up(short)
        share = factor * (lw / period)
        out.append(AlertTier(f"{sev}-{window_name(lw)}", sev, lw, sw, factor, share))
    return out


def pyrra_absent_after(target: float) -> timedelta:
    """How long Pyrra's "metric absent" alert waits: B x 14 h plus 2 minutes.

    T = 99 %: 504 s + 120 s.
    """
    return timedelta(hours=14) * error_budget_fraction(target) + timedelta(minutes=2)


def detection_time(
    long_window: timedelta, factor: float, target: float, error_ratio_: float
) -> timedelta | None:
    """When a window of length ``long_window`` crosses ``factor`` after errors start.

    For a constant error ratio e starting at time 0 (none before), the window's
    ratio is e x t / w until t = w, so it crosses factor x B at
    t = w x factor x B / e.  Example: T = 99.9 %, factor 14.4, e = 1.5 %: the 1h
    window crosses after 57.6 min, the 5m window after 4.8 min.

    Returns None when it never crosses (e <= factor x B, or no budget).
    """
    b = error_budget_fraction(target)
    if b == 0.0 or error_ratio_ <= 0:
        return None
    t = long_window * (factor * b / error_ratio_)
    return t if t <= long_window else None


def budget_spent(
    error_ratio_: float, duration: timedelta, target: float, period: timedelta
) -> float:
    """Share of the period's budget spent by ``duration`` at a constant error ratio.

    e x duration / (B x period), assuming uniform traffic.  1.5 % errors for 57.6 min
    of a 30-day 99.9 % SLO: 0.02 (2 %).  NaN for T = 1.
    """
    b = error_budget_fraction(target)
    if b == 0.0:
        return math.nan
    return error_ratio_ * (duration / period) / b


def tier_states(
    burn: Mapping[timedelta, npt.ArrayLike], tiers: Iterable[AlertTier]
) -> dict[str, BoolArray]:
    """Whether each tier fires at each evaluation time.

    Args:
        burn: burn rates per window length, each of shape ``(n,)`` (one value per
            evaluation time); NaN (no data, too few events, no budget) never fires.
        tiers: the tiers to evaluate; each needs its long and short window in ``burn``.

    Returns:
        ``{tier.name: bool array (n,)}``: long > factor AND short > factor.

    Raises:
        KeyError: a tier's window is missing from ``burn``.
    """
    out: dict[str, BoolArray] = {}
    for tier in tiers:
        long = np.asarray(burn[tier.long], dtype=np.float64)
        short = np.asarray(burn[tier.short], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            out[tier.name] = np.nan_to_num(long, nan=-np.inf) > tier.factor
            out[tier.name] &= np.nan_to_num(short, nan=-np.inf) > tier.factor
    return out


def alert_episodes(
    times: Sequence[datetime] | pd.DatetimeIndex, firing: npt.ArrayLike
) -> pd.DataFrame:
    """Firing episodes from a boolean series evaluated at ``times``.

    Args:
        times: evaluation times, shape ``(n,)``, increasing.
        firing: bool, shape ``(n,)``.

    Returns:
        One row per episode: ``fired`` (first evaluation that fired), ``recovered``
        (first evaluation after it that did not fire; NaT while still firing),
        ``evaluations`` (how many evaluations fired).
    """
    f = np.asarray(firing, dtype=bool)
    t = pd.DatetimeIndex(times)
    if f.size == 0:
        return pd.DataFrame({"fired": t[:0], "recovered": t[:0], "evaluations": []})
    edges = np.diff(np.concatenate([[0], f.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # index of the first non-firing evaluation
    recovered = pd.DatetimeIndex([t[i] if i < len(t) else pd.NaT for i in ends])
    return pd.DataFrame({"fired": t[starts], "recovered": recovered, "evaluations": ends - starts})


# ---------------------------------------------------------------- budgeting methods
def compare(values: npt.ArrayLike, op: Op, threshold: float) -> BoolArray:
    """``values op threshold`` for OpenSLO's operators (lt, lte, gt, gte); NaN is False."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if op == "lt":
            return v < threshold
        if op == "lte":
            return v <= threshold
        if op == "gt":
            return v > threshold
        if op == "gte":
            return v >= threshold
    raise ValueError(f"unknown operator {op!r}; expected lt, lte, gt or gte")


def slice_ratios(good: npt.ArrayLike, total: npt.ArrayLike) -> FloatArray:
    """Per-slice SLI good / total; NaN for a slice without events (zero traffic)."""
    return error_ratio(good, total)


def sli_occurrences(good: npt.ArrayLike, total: npt.ArrayLike) -> float:
    """OpenSLO Occurrences: sum(good) / sum(total) over the window; NaN without events.

    Zero-traffic slices add nothing to either sum, so they cannot poison the window.
    """
    g = float(np.nansum(np.asarray(good, dtype=np.float64)))
    t = float(np.nansum(np.asarray(total, dtype=np.float64)))
    return g / t if t > 0 else math.nan


def sli_ratio_timeslices(good: npt.ArrayLike, total: npt.ArrayLike) -> float:
    """OpenSLO RatioTimeslices: the mean of per-slice ratios over slices that have events.

    Slices without events are skipped (not counted as 0 or 1).  This is what Sloth
    reports over 30 days (mean of 5-minute ratios); it over-weights quiet slices.
    """
    r = slice_ratios(good, total)
    return float(np.nanmean(r)) if np.isfinite(r).any() else math.nan


def sli_timeslices(slice_good: npt.ArrayLike, has_data: npt.ArrayLike | None = None) -> float:
    """OpenSLO Timeslices: good slices / slices with data.

    Args:
        slice_good: per slice, whether it met its slice objective, shape ``(n,)``.
        has_data: per slice, whether it had data; slices without data are neither
            good nor bad (default: all have data).
    """
    g = np.asarray(slice_good, dtype=bool)
    d = np.ones_like(g) if has_data is None else np.asarray(has_data, dtype=bool)
    n = int(d.sum())
    return float((g & d).sum()) / n if n else math.nan


def timeslice_good(
    good: npt.ArrayLike, total: npt.ArrayLike, slice_target: float
) -> tuple[BoolArray, BoolArray]:
    """Judge ratio slices for Timeslices: ``(good_slice, has_data)``, shapes ``(n,)``.

    A slice is good when its ratio good / total >= ``slice_target``
    (OpenSLO ``timeSliceTarget``); a slice without events has no data.
    """
    r = slice_ratios(good, total)
    return np.nan_to_num(r, nan=-1.0) >= slice_target, np.isfinite(r)


# ---------------------------------------------------------------- windows over a grid
def rolling_sums(values: npt.ArrayLike, window_steps: int) -> FloatArray:
    """Sums over the last ``window_steps`` rows of a dense, regular series, shape ``(n,)``.

    Row i holds the step ending at t_i; the result at i is the sum over steps in
    ``(t_i - w, t_i]`` = rows ``i - window_steps + 1 .. i`` (fewer at the start).
    NaN values count as 0 (a step without data adds no events).  The reference
    implementation of the SQL window convention ``ts_utc > t - w AND ts_utc <= t``.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(1, v.size + 1)
    return c[i] - c[np.maximum(i - window_steps, 0)]


def dense_steps(
    frame: pd.DataFrame, start: datetime, end: datetime, step: timedelta, ts: str = "ts_utc"
) -> pd.DataFrame:
    """Re-index one group's per-step rows onto every step end in ``(start, end]``.

    Missing steps get NaN (no data).  ``frame`` has a ``ts`` column of step ends.
    """
    grid = pd.date_range(start + step, end, freq=step)
    return frame.set_index(ts).reindex(grid).rename_axis(ts)


def maintenance_mask(
    times: Sequence[datetime] | pd.DatetimeIndex, windows: Iterable[tuple[datetime, datetime]]
) -> BoolArray:
    """True for step ends inside a maintenance window ``(start, end]``.

    Steps flagged here are removed from both numerator and denominator and from the
    coverage's denominator.  Shape ``(n,)`` for ``n`` times.
    """
    t = pd.DatetimeIndex(times)
    mask = np.zeros(len(t), dtype=bool)
    for a, b in windows:
        mask |= np.asarray((t > pd.Timestamp(a)) & (t <= pd.Timestamp(b)))
    return mask


def coverage(steps_with_data: npt.ArrayLike, steps_in_window: npt.ArrayLike) -> FloatArray:
    """Share of a window's steps that had data (0-1); NaN for an empty window."""
    d = np.asarray(steps_with_data, dtype=np.float64)
    n = np.asarray(steps_in_window, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, d / np.where(n > 0, n, 1.0), np.nan)


def window_state(
    total: npt.ArrayLike, min_events: float = 0, target: float = 0.0
) -> npt.NDArray[np.str_]:
    """Per-window data state: ``no_data``, ``insufficient``, ``no_budget`` or ``ok``."""
    t = np.asarray(total, dtype=np.float64)
    out = np.where(np.nan_to_num(t) <= 0, NO_DATA, np.where(t < min_events, INSUFFICIENT, OK))
    if error_budget_fraction(target) == 0.0:
        out = np.where(out == OK, NO_BUDGET, out)
    return out.astype(str)


def slo_state(
    remaining: float, firing: Mapping[str, bool], tiers: Iterable[AlertTier], data_state: str = OK
) -> str:
    """The headline state of an SLO: the worst of budget and firing tiers.

    Order: ``no_budget``, ``no_data`` and ``insufficient`` (the period has no
    usable budget figure: T = 1, no events, fewer than the minimum), then
    ``exhausted`` (remaining <= 0), ``page``, ``ticket``, ``ok``.
    """
    if data_state in (NO_DATA, NO_BUDGET, INSUFFICIENT):
        return data_state
    if not math.isnan(remaining) and remaining <= 0:
        return EXHAUSTED
    sev = {t.name: t.severity for t in tiers}
    fired = {sev.get(name, name) for name, on in firing.items() if on}
    if PAGE in fired:
        return PAGE
    if fired:
        return TICKET
    return OK


# ---------------------------------------------------------------- histogram thresholds
@dataclass(frozen=True)
class ThresholdBuckets:
    """How "observations <= threshold" is read from cumulative ``le`` buckets.

    good = C(lower) + fraction x (C(upper) - C(lower)).  Exact (fraction 1, lower =
    upper) when the threshold is a bucket bound; otherwise linear interpolation
    inside the bucket ``(lower, upper]`` as Prometheus's histogram_fraction does,
    and ``exact`` is False.  Above the highest finite bound nothing can be
    interpolated (the +Inf bucket): good = C(highest finite bound), inexact.
    """

    threshold: float
    lower: float
    upper: float
    fraction: float
    exact: bool


def threshold_buckets(le: Iterable[float], threshold: float) -> ThresholdBuckets:
    """Choose the bucket(s) answering "observations <= threshold".

    Args:
        le: the histogram's bucket upper bounds (any order, +Inf allowed).
        threshold: in the unit of ``le`` (seconds for latency).

    Raises:
        ValueError: no finite bucket bound.
    """
    finite = sorted({float(x) for x in le if math.isfinite(float(x))})
    if not finite:
        raise ValueError("the histogram has no finite bucket bound")
    for b in finite:
        if math.isclose(b, threshold, rel_tol=1e-9, abs_tol=1e-12):
            return ThresholdBuckets(threshold, b, b, 1.0, True)
    if threshold > finite[-1]:
        return ThresholdBuckets(threshold, finite[-1], finite[-1], 1.0, False)
    upper = next(b for b in finite if b > threshold)
    below = [b for b in finite if b < threshold]
    if not below:
        # The first bucket starts at 0 when its bound is positive (as histogram_quantile);
        # lower = NaN stands for "no bucket below": C(lower) = 0.
        frac = threshold / upper if upper > 0 and threshold > 0 else 0.0
        return ThresholdBuckets(threshold, math.nan, upper, frac, False)
    lower = below[-1]
    return ThresholdBuckets(threshold, lower, upper, (threshold - lower) / (upper - lower), False)


def good_below(le: npt.ArrayLike, cumulative: npt.ArrayLike, threshold: float) -> FloatArray:
    """Observations <= ``threshold`` from cumulative buckets, shape ``(m,)`` or ``()``.

    Args:
        le: bucket bounds, shape ``(k,)``.
        cumulative: cumulative counts, shape ``(k,)`` or ``(m, k)``.
    """
    bounds = np.asarray(le, dtype=np.float64)
    counts = np.atleast_2d(np.asarray(cumulative, dtype=np.float64))
    tb = threshold_buckets(bounds.tolist(), threshold)

    def col(b: float) -> FloatArray:
        if math.isnan(b):
            return np.zeros(counts.shape[0])
        return counts[:, int(np.flatnonzero(bounds == b)[0])]

    lo = col(tb.lower)
    out = lo + tb.fraction * (col(tb.upper) - lo)
    return out[0] if np.ndim(cumulative) == 1 else out


# ---------------------------------------------------------------- Prometheus increase()
def prometheus_increase(
    ts_s: npt.ArrayLike,
    values: npt.ArrayLike,
    range_start: float,
    range_end: float,
    left_open: bool = True,
) -> float:
    """Prometheus's ``increase()`` of one counter over a range (extrapolatedRate).

    Selects the samples in ``(range_start, range_end]`` (Prometheus 3, ``left_open``)
    or ``[range_start, range_end]`` (Prometheus 2), adds reset-aware differences and
    extrapolates to the range edges: all the way when the gap is under 1.1 x the
    average sample interval, else half an interval; never below the counter's zero
    point.  This is why Prometheus's increase is not an integer and adjacent ranges
    do not add up, unlike the store's exact per-step increases.

    Example (reference): 1/s sampled every 15 s, a reset losing 7 increments, the
    5-minute range (450 s, 750 s]: exact reset-aware deltas 293, this function 292.63.

    Args:
        ts_s: sample times in seconds, shape ``(n,)``, increasing.
        values: counter samples, shape ``(n,)``.

    Returns:
        The increase; NaN with fewer than two samples in the range.
    """
    t = np.asarray(ts_s, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    sel = (t > range_start) if left_open else (t >= range_start)
    sel &= t <= range_end
    t, v = t[sel], v[sel]
    if t.size < 2:
        return math.nan
    diff = np.diff(v)
    result = float(v[-1] - v[0] + np.where(diff < 0, v[:-1], 0.0).sum())
    sampled = t[-1] - t[0]
    avg = sampled / (t.size - 1)
    to_start = t[0] - range_start
    to_end = range_end - t[-1]
    threshold = avg * 1.1
    if to_start >= threshold:
        to_start = avg / 2
    if result > 0 and v[0] >= 0:
        to_zero = sampled * (v[0] / result)
        to_start = min(to_start, to_zero)
    if to_end >= threshold:
        to_end = avg / 2
    return result * (sampled + to_start + to_end) / sampled


# ---------------------------------------------------------------- calendar windows
def calendar_period(
    t: datetime, duration: str, start: datetime, tz: str = "UTC"
) -> tuple[datetime, datetime]:
    """The calendar-aligned period containing ``t``: ``(period_start, period_end)`` in UTC.

    Periods start at ``start`` (local wall time in ``tz``, OpenSLO
    ``calendar.startTime``) and repeat every ``duration``: ``<n>d``, ``<n>w``,
    ``<n>M`` (months), ``<n>Q`` (quarters) or ``<n>Y`` (years), in local calendar
    arithmetic (a day across a DST change is 23 or 25 hours).  The period is
    right-closed ``(period_start, period_end]`` like every window.

    Args:
        t: a UTC time (naive = UTC).
        duration: e.g. ``1M``.
        start: the anchor, naive local time in ``tz``.

    Returns:
        Naive UTC datetimes.

    Raises:
        ValueError: an unsupported duration.
    """
    n_text, unit = duration[:-1], duration[-1:]
    if not n_text.isdigit() or int(n_text) <= 0 or unit not in "dwMQY":
        raise ValueError(f"calendar duration must be <n>d, w, M, Q or Y, got {duration!r}")
    n = int(n_text)
    zone = ZoneInfo(tz)
    now = pd.Timestamp(t).tz_localize("UTC") if pd.Timestamp(t).tzinfo is None else pd.Timestamp(t)
    now = now.tz_convert(zone)
    anchor = pd.Timestamp(start).tz_localize(None)
    local_now = now.tz_localize(None)
    if unit in "MQY":
        months = {"M": 1, "Q": 3, "Y": 12}[unit] * n
        elapsed = (local_now.year - anchor.year) * 12 + (local_now.month - anchor.month)
        k = elapsed // months

        def at(i: int) -> pd.Timestamp:
            return anchor + pd.DateOffset(months=i * months)
    else:
        days = n * (7 if unit == "w" else 1)
        k = (local_now.normalize() - anchor.normalize()).days // days

        def at(i: int) -> pd.Timestamp:
            return anchor + pd.DateOffset(days=i * days)

    while at(k) >= local_now:
        k -= 1
    while at(k + 1) < local_now:
        k += 1
    begin = at(k).tz_localize(zone, ambiguous=False, nonexistent="shift_forward")
    end = at(k + 1).tz_localize(zone, ambiguous=False, nonexistent="shift_forward")
    return (
        begin.tz_convert("UTC").tz_localize(None).to_pydatetime(),
        end.tz_convert("UTC").tz_localize(None).to_pydatetime(),
    )

"""Regressions over the fleet's signals: change points per region, model and arm (pure).

Pipeline (``docs/regressions.md`` explains the choices):

1. :func:`build_signals` turns per-bin sums from the store (counters, gauges, latency
   histogram buckets) into derived signals per region/model/arm: p99 latency (from
   the summed buckets, as ``histogram_quantile``), error ratio, accuracy, GPU
   utilisation, energy per request, cost per 1k requests, tokens per joule, and the
   request rate (the load) of each bin.
2. **Seasonality**: traffic is diurnal and weekly, and several signals follow the
   traffic (utilisation, cost and energy per request, latency under load).  Signals
   marked ``adjust_load`` are compared like with like *at the same traffic level*:
   the detector sees ``log(signal) - g(log load)``, where ``g`` is the median of the
   signal in each of 20 load quantile bins (interpolated).  The daily and weekly
   patterns, which are load patterns, vanish; a change of the signal at the same load
   remains, with its size intact.
3. :func:`analyse_series` runs :func:`analytics.changepoints.detect` on the adjusted
   series with per-signal minimum shifts, groups consecutive changes in the same
   direction (a drift is a staircase of steps) into one regression whose start is
   refined to the onset of the ramp, and describes it: start, before/after levels with
   95% confidence intervals (in the signal's unit), relative change like for like,
   direction and whether that is worse for this signal, and whether it is still open.
4. :func:`likely_cause` ranks the events near the start: deployment annotations,
   label changes (an arm or model appearing or disappearing) and traffic shifts
   (a change point of the load itself).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from analytics.changepoints import ChangePoint, DetectorConfig, detect

Worse = Literal["up", "down", "either"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RegressionSignal:
    """How one derived signal is analysed.

    Attributes:
        name: derived signal name.
        unit: unit of its values.
        log: analyse ``log(value)`` (multiplicative changes; values must be > 0).
        adjust_load: compare at the same traffic level (see the module docstring).
        worse: which direction is a regression.
        min_relative: smallest relative change reported (log signals).
        min_absolute: smallest absolute change reported (other signals).
        critical: an open regression of this signal fails a CI/CD gate.
        robust: test with Mann-Whitney instead of the t-test (heavy-tailed signals).
    """

    name: str
    unit: str
    log: bool
    adjust_load: bool
    worse: Worse
    min_relative: float = 0.0
    min_absolute: float = 0.0
    critical: bool = False
    robust: bool = False
    description: str = ""


SIGNALS: dict[str, RegressionSignal] = {
    s.name: s
    for s in [
        RegressionSignal(
            "latency_p99", "seconds", True, True, "up", min_relative=0.15, critical=True,
            robust=True,
            description="p99 request latency from the summed histogram buckets",
        ),
        RegressionSignal(
            "latency_mean", "seconds", True, True, "up", min_relative=0.15, critical=True,
            robust=True,
            description="mean request latency (latency sum / requests)",
        ),
        RegressionSignal(
            "error_ratio", "ratio", False, False, "up", min_absolute=0.01, critical=True,
            description="errors / requests",
        ),
        RegressionSignal(
            "accuracy", "ratio", False, False, "down", min_absolute=0.02, critical=True,
            description="model accuracy on labelled traffic",
        ),
        RegressionSignal(
            "gpu_utilization", "ratio", True, True, "either", min_relative=0.15,
            description="mean GPU utilisation (at the same traffic)",
        ),
        RegressionSignal(
            "gpu_power", "watts", True, True, "up", min_relative=0.15,
            description="mean GPU board power (at the same traffic)",
        ),
        RegressionSignal(
            "energy_per_request", "joules", True, True, "up", min_relative=0.15,
            description="GPU energy / requests",
        ),
        RegressionSignal(
            "cost_per_1k_requests", "usd", True, True, "up", min_relative=0.15,
            description="node cost / requests x 1000",
        ),
        RegressionSignal(
            "tokens_per_joule", "tokens/joule", True, True, "down", min_relative=0.15,
            description="(prompt + generated tokens) / GPU energy",
        ),
    ]
}

#: Detector settings for fleet signals at 5-minute bins; per-signal shifts are added.
FLEET_DETECTOR = DetectorConfig(window=48, max_pvalue=0.001, min_effect=1.0, min_size=12)
#: The shortest segment (seconds) at fine bins; 5-minute bins keep 12 bins (1 hour).
MIN_SEGMENT_S = 1800


def fleet_detector(bin_s: int) -> DetectorConfig:
    """:data:`FLEET_DETECTOR` with its segment and window lengths kept in *time*.

    ``min_size`` covers :data:`MIN_SEGMENT_S` (at least 12 bins) and the window 4
    of them: at 1-minute bins, 30 and 120 points.  With 12 one-minute points, chance
    12-minute blips of a p99 passed the test on a 14-day fleet (see
    ``docs/regressions.md``).
    """
    size = max(FLEET_DETECTOR.min_size, -(-MIN_SEGMENT_S // max(int(bin_s), 1)))
    return replace(FLEET_DETECTOR, min_size=size, window=4 * size)

KEYS = ["region", "model", "arm"]


# --------------------------------------------------------------------------- seasonality


def load_profile(
    values: FloatArray, load: FloatArray, bins: int = 20
) -> tuple[FloatArray, FloatArray] | None:
    """``g``: medians of ``values`` in ``bins`` quantile bins of ``log(load)`` (x, y knots).

    None when there are too few points or too little spread of the load.
    """
    y = np.asarray(values, dtype=np.float64)
    lx = np.log(np.clip(np.asarray(load, dtype=np.float64), 1e-9, None))
    good = np.isfinite(lx) & np.isfinite(y)
    if good.sum() < 4 * bins:
        return None
    edges = np.unique(np.quantile(lx[good], np.linspace(0, 1, bins + 1)))
    if edges.size < 3:
        return None
    which = np.clip(np.searchsorted(edges, lx[good], side="right") - 1, 0, edges.size - 2)
    yg, xg = y[good], lx[good]
    centres, medians = [], []
    for b in range(edges.size - 1):
        sel = which == b
        if sel.any():
            centres.append(float(np.median(xg[sel])))
            medians.append(float(np.median(yg[sel])))
    return np.asarray(centres), np.asarray(medians)


def load_adjusted(
    values: FloatArray, load: FloatArray, reference_load: float | None = None, bins: int = 20
) -> FloatArray:
    """``values - g(log load) + g(log reference_load)``: the series at one traffic level.

    ``g`` is :func:`load_profile`; ``reference_load`` defaults to the median load.
    Without a profile (too few points) the values are returned as they are.
    """
    y = np.asarray(values, dtype=np.float64)
    ld = np.asarray(load, dtype=np.float64)
    prof = load_profile(y, ld, bins)
    if prof is None:
        return y.copy()
    lx = np.log(np.clip(ld, 1e-9, None))
    ref = math.log(reference_load) if reference_load else float(np.nanmedian(lx))
    fitted = np.interp(lx, *prof)
    return np.where(np.isfinite(lx), y - fitted + float(np.interp(ref, *prof)), y)


def _regime_adjusted(
    y: FloatArray, ld: FloatArray, cps: Sequence[ChangePoint], big: float
) -> FloatArray:
    """Load adjustment with one load profile per regime.

    Regimes are cut at the largest change point and at those whose shift is at least
    ``big``: after a large change the signal's dependence on traffic may have another
    shape (a p99 moving into other histogram buckets), so each regime gets its own
    profile, and every regime is expressed at the same (overall median) load.
    """
    ref = float(np.nanmedian(ld[ld > 0])) if (ld > 0).any() else None
    largest = max(cps, key=lambda c: abs(c.after - c.before)).index if cps else None
    cuts = sorted({c.index for c in cps if abs(c.after - c.before) >= big or c.index == largest})
    bounds = [0, *cuts, y.size]
    out = y.copy()
    for a, b in itertools.pairwise(bounds):
        out[a:b] = load_adjusted(y[a:b], ld[a:b], ref)
    return out


# --------------------------------------------------------------------------- regressions


@dataclass(frozen=True)
class Event:
    """Something that may have caused a change: a deployment, a label change, a traffic shift."""

    time: datetime
    kind: str  # "annotation", "label_change", "traffic_shift"
    description: str
    region: str | None = None
    model: str | None = None
    arm: str | None = None


@dataclass(frozen=True)
class Regression:
    """A change of one signal of one region/model/arm.

    ``before``/``after`` are means of the signal (its unit) over the segments on
    either side, with 95% t intervals; ``relative`` is the like-for-like change
    (at the same traffic for load-adjusted signals).
    """

    signal: str
    region: str
    model: str
    arm: str
    start: datetime
    before: float
    after: float
    before_ci: tuple[float, float]
    after_ci: tuple[float, float]
    relative: float
    absolute: float
    direction: Literal["up", "down"]
    worse: bool
    critical: bool
    open: bool
    pvalue: float
    end: datetime | None
    steps: int
    unit: str
    cause: Event | None = None
    causes: list[Event] = field(default_factory=list)

    @property
    def severity(self) -> str:
        if not self.worse:
            return "improvement"
        return "critical" if self.critical else "warning"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity
        for k in ("start", "end"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        for k in ("cause",):
            if d[k] is not None:
                d[k]["time"] = d[k]["time"].isoformat()
        d["causes"] = [{**c, "time": c["time"].isoformat()} for c in d["causes"]]
        return d


def _ci(seg: FloatArray) -> tuple[float, tuple[float, float]]:
    mean = float(seg.mean())
    if seg.size < 2:
        return mean, (mean, mean)
    half = float(special.stdtrit(seg.size - 1, 0.975)) * float(seg.std(ddof=1)) / math.sqrt(
        seg.size
    )
    return mean, (mean - half, mean + half)


def _onset(
    y: FloatArray, left: int, first: int, last: int, min_size: int, reach: int
) -> int:
    """Onset of a ramp: the best ``t`` before ``first`` for "flat, then a line up to ``last``".

    Searched in ``[max(left + min_size, first - reach), first]``; the line starts
    at the flat level (a continuous hinge).
    """
    best_t, best_sse = first, math.inf
    lo = max(left + min_size, first - reach)
    for t in range(lo, first + 1):
        flat = y[left:t]
        ramp = y[t:last]
        if ramp.size < 3 or flat.size < 2:
            continue
        sse = float(((flat - flat.mean()) ** 2).sum())
        xs = np.arange(ramp.size, dtype=np.float64)
        level = float(flat.mean())
        slope = float(((ramp - level) * xs).sum() / max((xs**2).sum(), 1e-12))
        sse += float(((ramp - level - slope * xs) ** 2).sum())
        if sse < best_sse:
            best_sse, best_t = sse, t
    return best_t


def _groups(cps: Sequence[ChangePoint], gap: int) -> list[list[ChangePoint]]:
    """Consecutive change points in the same direction, at most ``gap`` points apart."""
    out: list[list[ChangePoint]] = []
    for cp in cps:
        up = cp.after > cp.before
        if out:
            prev = out[-1][-1]
            if (prev.after > prev.before) == up and cp.index - prev.index <= gap:
                out[-1].append(cp)
                continue
        out.append([cp])
    return out


def analyse_series(
    times: Sequence[datetime] | pd.DatetimeIndex,
    values: npt.ArrayLike,
    load: npt.ArrayLike | None,
    spec: RegressionSignal,
    keys: tuple[str, str, str],
    cfg: DetectorConfig = FLEET_DETECTOR,
    group_gap: int | None = None,
    onset_s: float = 4 * 3600,
) -> list[Regression]:
    """Regressions of one signal of one region/model/arm (bins in time order, no NaN).

    Args:
        times: bin end times.
        values: the signal per bin.
        load: requests per minute per bin (for load-adjusted signals).
        spec: the signal's settings.
        keys: ``(region, model, arm)``.
        cfg: detector settings (the per-signal minimum shift is added).
        group_gap: change points in one direction at most this many bins apart form one
            regression (default: 12 hours' worth at the bins' spacing).
        onset_s: how far before a drift's first step its onset is searched (seconds).
    """
    t = pd.DatetimeIndex(times)
    raw = np.asarray(values, dtype=np.float64)
    if raw.size < 2 * cfg.min_size:
        return []
    if spec.log:
        raw = np.where(raw > 0, raw, np.nan)
        keep = np.isfinite(raw)
        raw, t = raw[keep], t[keep]
        ld = None if load is None else np.asarray(load, dtype=np.float64)[keep]
        y = np.log(raw)
        shift = math.log1p(spec.min_relative) if spec.min_relative else 0.0
        y_raw = y.copy()
    else:
        ld = None if load is None else np.asarray(load, dtype=np.float64)
        y = raw.copy()
        shift = spec.min_absolute
        y_raw = y.copy()
    det = replace(cfg, min_shift=max(cfg.min_shift, shift), robust=cfg.robust or spec.robust)
    if spec.adjust_load and ld is not None:
        # One load profile for the whole history first; then, if large changes were
        # found, one profile per regime between them (see _regime_adjusted).
        y = load_adjusted(y, ld)
        cps = detect(y, det)
        if cps:
            y = _regime_adjusted(y_raw, ld, cps, big=2 * max(det.min_shift, 1e-12))
            cps = detect(y, det)
    else:
        cps = detect(y, det)
    if not cps:
        return []
    ns = t.as_unit("ns").asi8
    spacing = float(np.median(np.diff(ns))) / 1e9 if t.size > 1 else 60.0
    bin_td = pd.Timedelta(seconds=spacing)
    gap = group_gap if group_gap is not None else max(int(12 * 3600 / spacing), 1)
    out = []
    groups = _groups(cps, gap)
    for gi, group in enumerate(groups):
        first, last = group[0], group[-1]
        start_i = first.index
        if len(group) > 1:
            start_i = _onset(
                y, first.left, first.index, last.index, cfg.min_size,
                max(int(onset_s / spacing), cfg.min_size),
            )
        right = last.right
        before, before_ci = _ci(raw[first.left : start_i])
        after, after_ci = _ci(raw[last.index : right])
        level_shift = sum(c.after - c.before for c in group)
        if spec.log:
            relative = math.expm1(level_shift)
        else:
            relative = after / before - 1.0 if before != 0 else math.nan
        up = level_shift > 0
        worse = spec.worse == "either" or (spec.worse == "up") == up
        # Open: the last segment's level is still beyond this change (no recovery yet).
        final = cps[-1]
        still = final.after - first.before
        threshold = 0.5 * abs(level_shift)
        is_open = (gi == len(groups) - 1) or (
            (still > threshold) if up else (still < -threshold)
        )
        end = None
        if not is_open and gi + 1 < len(groups):
            end = (t[groups[gi + 1][0].index] - bin_td).to_pydatetime()
        out.append(
            Regression(
                signal=spec.name,
                region=keys[0],
                model=keys[1],
                arm=keys[2],
                start=(t[start_i] - bin_td).to_pydatetime(),
                before=before,
                after=after,
                before_ci=before_ci,
                after_ci=after_ci,
                relative=relative,
                absolute=after - before,
                direction="up" if up else "down",
                worse=worse,
                critical=spec.critical and worse,
                open=is_open,
                pvalue=min(c.pvalue for c in group),
                end=end,
                steps=len(group),
                unit=spec.unit,
            )
        )
    return out


def detect_regressions(
    signals: pd.DataFrame,
    specs: dict[str, RegressionSignal] | None = None,
    cfg: DetectorConfig | None = None,
    only: Iterable[str] | None = None,
    bin_s: int = 300,
) -> list[Regression]:
    """Regressions of every region/model/arm and signal of a signals frame.

    Args:
        signals: ``bin_end, region, model, arm, signal, value, load``
            (:func:`analytics.regression_signals.derive_signals`).
        specs: the signals' settings (default :data:`SIGNALS`).
        cfg: detector settings (default :func:`fleet_detector` of ``bin_s``).
        only: analyse only these signals.
        bin_s: the bins' length in seconds.
    """
    specs = specs or SIGNALS
    cfg = cfg or fleet_detector(bin_s)
    wanted = set(only) if only else set(specs)
    out: list[Regression] = []
    for (region, model, arm, name), f in signals.groupby(
        [*KEYS, "signal"], sort=True, observed=True
    ):
        if name not in wanted or name not in specs:
            continue
        out += analyse_series(
            pd.DatetimeIndex(f["bin_end"]),
            f["value"].to_numpy(),
            f["load"].to_numpy(),
            specs[str(name)],
            (str(region), str(model), str(arm)),
            cfg,
        )
    return sorted(out, key=lambda r: (r.start, r.region, r.signal))


# --------------------------------------------------------------------------- causes


def traffic_shifts(
    signals: pd.DataFrame,
    cfg: DetectorConfig | None = None,
    min_relative: float = 0.3,
    bin_s: int = 300,
) -> list[Event]:
    """Change points of the load (requests per minute) after removing the daily profile.

    The load is compared with the median load at the same time of day, so the daily
    cycle is not a shift; a step of at least ``min_relative`` is.
    """
    cfg = cfg or fleet_detector(bin_s)
    out = []
    base = signals[signals["signal"] == "error_ratio"]  # one row per bin with requests
    for (region, model, arm), f in base.groupby(KEYS, sort=True, observed=True):
        t = pd.DatetimeIndex(f["bin_end"])
        ld = f["load"].to_numpy(dtype=np.float64)
        good = ld > 0
        if good.sum() < 2 * cfg.min_size:
            continue
        t, y = t[good], np.log(ld[good])
        minute = t.hour * 60 + t.minute
        prof = pd.Series(y).groupby(np.asarray(minute)).transform("median").to_numpy()
        resid = y - prof
        cps = detect(resid, replace(cfg, min_shift=math.log1p(min_relative)))
        for cp in cps:
            change = math.expm1(cp.after - cp.before)
            out.append(
                Event(
                    t[cp.index].to_pydatetime(),
                    "traffic_shift",
                    f"traffic {change:+.0%} at the same time of day",
                    str(region),
                    str(model),
                    str(arm),
                )
            )
    return out


def likely_cause(
    reg: Regression,
    events: Sequence[Event],
    before: timedelta = timedelta(hours=2),
    after: timedelta = timedelta(minutes=30),
) -> list[Event]:
    """Events that may explain ``reg``, most likely first.

    An event is a candidate when it lies from ``before`` before the regression's start
    to ``after`` after it, and matches its region (and model and arm where the event
    names them).  Ranked by kind (annotation, label change, traffic shift), then by
    how specific it is (same arm, same model), then by distance in time.
    """
    kind_rank = {"annotation": 0, "label_change": 1, "traffic_shift": 2}
    cands = []
    for e in events:
        if not (reg.start - before <= e.time <= reg.start + after):
            continue
        if e.region not in (None, "", reg.region):
            continue
        if e.model not in (None, "", reg.model):
            continue
        if e.arm not in (None, "", reg.arm):
            continue
        specific = -int(bool(e.model)) - int(bool(e.arm))
        dist = abs((e.time - reg.start).total_seconds())
        cands.append(((kind_rank.get(e.kind, 9), specific, dist), e))
    return [e for _, e in sorted(cands, key=lambda c: c[0])]


def with_causes(regs: Sequence[Regression], events: Sequence[Event]) -> list[Regression]:
    """Each regression with its candidate causes and the most likely one."""
    out = []
    for r in regs:
        causes = likely_cause(r, events)
        out.append(replace(r, causes=causes, cause=causes[0] if causes else None))
    return out


def label_changes(spans: pd.DataFrame, first_utc: datetime, last_utc: datetime) -> list[Event]:
    """Deployments inferred from label changes: a series appearing after the data's start
    or disappearing before its end (``spans``: region, model, arm, first_seen, last_seen).

    A series is "new" when first seen more than a bin after the first stored step.
    """
    out = []
    slack = timedelta(minutes=5)
    for row in spans.itertuples(index=False):
        first = pd.Timestamp(row.first_seen).to_pydatetime()
        last = pd.Timestamp(row.last_seen).to_pydatetime()
        if first > first_utc + slack:
            out.append(
                Event(first, "label_change", f"{row.model} {row.arm} appeared", row.region,
                      row.model, None)
            )
        if last < last_utc - slack:
            out.append(
                Event(last, "label_change", f"{row.model} {row.arm} disappeared", row.region,
                      row.model, None)
            )
    return out


# --------------------------------------------------------------------------- incremental


def regression_from_dict(d: dict[str, Any]) -> Regression:
    """The inverse of :meth:`Regression.as_dict` (causes are not kept: they are recomputed)."""
    fields = {k: d[k] for k in Regression.__dataclass_fields__ if k not in ("cause", "causes")}
    fields["start"] = datetime.fromisoformat(d["start"])
    fields["end"] = datetime.fromisoformat(d["end"]) if d["end"] else None
    fields["before_ci"] = tuple(d["before_ci"])
    fields["after_ci"] = tuple(d["after_ci"])
    return Regression(**fields)


def detect_regressions_incremental(
    signals: pd.DataFrame,
    previous: Sequence[Regression],
    previous_end: datetime,
    bin_s: int = 300,
    context: timedelta = timedelta(days=3),
    only: Iterable[str] | None = None,
) -> list[Regression]:
    """:func:`detect_regressions` of ``signals`` reusing the result of an earlier run.

    ``previous`` are the regressions found on the same series up to ``previous_end``.
    Per series only the tail is analysed again: from ``context`` before the earlier
    end, or ``context`` before the start of that series' last earlier regression
    (which may still grow, close or merge with a new step), whichever is earlier.
    Earlier regressions that start before the tail (plus half a day: a drift's steps
    are grouped within 12 hours) are kept as they were; the tail's own load profile
    and noise scale are fitted on its ``context`` or more of history.

    Returns the same regressions as a full :func:`detect_regressions` in practice
    (``tests/test_regressions_incremental.py`` checks it on the demo fleet), at a
    fraction of the cost when the history is much longer than ``context``.
    """
    specs = SIGNALS
    cfg = fleet_detector(bin_s)
    wanted = set(only) if only else set(specs)
    last_of: dict[tuple[str, str, str, str], Regression] = {}
    for r in sorted(previous, key=lambda r: r.start):
        last_of[(r.region, r.model, r.arm, r.signal)] = r
    margin = timedelta(hours=12)
    prev_end = pd.Timestamp(previous_end).tz_localize(None).to_pydatetime() if (
        previous_end.tzinfo is not None
    ) else previous_end
    out: list[Regression] = []
    for (region, model, arm, name), f in signals.groupby(
        [*KEYS, "signal"], sort=True, observed=True
    ):
        if name not in wanted or name not in specs:
            continue
        key = (str(region), str(model), str(arm), str(name))
        tail_from = prev_end - context
        if key in last_of:
            tail_from = min(tail_from, last_of[key].start - context)
        t = pd.DatetimeIndex(f["bin_end"])
        if len(t) == 0:
            continue
        first = t[0].to_pydatetime()
        keep = [
            r
            for r in previous
            if (r.region, r.model, r.arm, r.signal) == key
            and first <= r.start <= tail_from + margin
        ]
        sel = np.asarray(t > tail_from)
        tail = analyse_series(
            t[sel], f["value"].to_numpy()[sel], f["load"].to_numpy()[sel], specs[key[3]],
            (key[0], key[1], key[2]), cfg,
        )
        out += keep + [r for r in tail if r.start > tail_from + margin]
    return sorted(out, key=lambda r: (r.start, r.region, r.signal))

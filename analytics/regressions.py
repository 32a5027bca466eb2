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
from analytics.histogram import histogram_quantile

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

#: Detector settings for fleet signals (per bin); per-signal shifts are added.
FLEET_DETECTOR = DetectorConfig(window=48, max_pvalue=0.001, min_effect=1.0, min_size=12)

KEYS = ["region", "model", "arm"]


# --------------------------------------------------------------------------- signals


def build_signals(
    counters: pd.DataFrame,
    gauges: pd.DataFrame,
    latency: pd.DataFrame,
    bin_s: int,
    min_requests: float = 1.0,
    min_quantile_requests: float = 50.0,
) -> pd.DataFrame:
    """Derived signals per bin, region, model and arm.

    Args:
        counters: ``bin_end, region, model, arm, signal, value`` sums of ``requests``,
            ``errors``, ``energy`` (J), ``prompt_tokens``, ``generation_tokens``.
        gauges: ``bin_end, region, model, arm, signal, value``: bin means of
            ``accuracy``, ``gpu_utilization``, ``gpu_power`` and ``cost`` (USD per
            hour, summed over instances).
        latency: ``bin_end, region, model, arm, le, value`` bucket sums.
        bin_s: bin length in seconds.
        min_requests: bins with fewer requests have no per-request signals.
        min_quantile_requests: bins with fewer requests have no p99.

    Returns:
        Long frame ``bin_end, region, model, arm, signal, value, load`` (load: requests
        per minute in the bin), sorted, without NaN values.
    """
    keys = ["bin_end", *KEYS]
    frames = []
    c = _wide(counters, keys, "signal") if len(counters) else pd.DataFrame()
    g = _wide(gauges, keys, "signal", mean=True) if len(gauges) else pd.DataFrame()
    wide = c.join(g, how="outer") if len(c) and len(g) else (c if len(c) else g)
    if len(wide) == 0:
        return pd.DataFrame(columns=[*keys, "signal", "value", "load"])

    def col(name: str) -> pd.Series:
        return wide[name] if name in wide else pd.Series(np.nan, index=wide.index)

    requests = col("requests")
    ok = requests >= min_requests
    req = requests.where(ok)
    energy = col("energy").where(lambda e: e > 0)
    tokens = col("prompt_tokens").fillna(0) + col("generation_tokens").fillna(0)
    derived = {
        "error_ratio": col("errors") / req,
        "accuracy": col("accuracy"),
        "gpu_utilization": col("gpu_utilization").where(lambda u: u > 0),
        "gpu_power": col("gpu_power").where(lambda w: w > 0),
        "energy_per_request": energy / req,
        "cost_per_1k_requests": col("cost") * (bin_s / 3600.0) / req * 1000.0,
        "tokens_per_joule": (tokens / energy).where(tokens > 0),
    }
    load = requests / (bin_s / 60.0)
    for name, series in derived.items():
        f = pd.DataFrame({"value": series, "load": load}).reset_index()
        f["signal"] = name
        frames.append(f)
    if len(latency):
        p99 = _p99(latency, load)
        # A p99 needs enough requests in the bin to mean anything (with 50 requests it
        # is the largest or second largest one).
        frames.append(p99[p99["load"] * (bin_s / 60.0) >= min_quantile_requests])
    out = pd.concat(frames, ignore_index=True)
    out = out.dropna(subset=["value"])
    out = out[np.isfinite(out["value"])]
    return out.sort_values([*KEYS, "signal", "bin_end"], ignore_index=True)[
        [*keys, "signal", "value", "load"]
    ]


def _wide(frame: pd.DataFrame, keys: list[str], column: str, mean: bool = False) -> pd.DataFrame:
    """``frame`` pivoted to one column per value of ``column`` (sum, or mean), fast.

    Same as ``pivot_table(index=keys, columns=column, values="value")`` but with
    integer codes and ``bincount``: millions of rows (1-minute bins) in seconds.
    """
    # One int64 key per row from the factorised key columns (much faster than a
    # groupby over several string columns), then the distinct keys in sorted order.
    combined = np.zeros(len(frame), dtype=np.int64)
    uniques = []
    for key in keys:
        codes, uniq = pd.factorize(frame[key], sort=True)
        combined = combined * (len(uniq) + 1) + codes
        uniques.append(uniq)
    distinct, gid = np.unique(combined, return_inverse=True)
    parts = []
    rest = distinct.copy()
    for uniq in reversed(uniques):
        parts.append(np.asarray(uniq)[rest % (len(uniq) + 1)])
        rest //= len(uniq) + 1
    index = pd.MultiIndex.from_arrays(list(reversed(parts)), names=keys)
    names, code = np.unique(frame[column].to_numpy(), return_inverse=True)
    m, k = len(index), len(names)
    flat = gid.astype(np.int64) * k + code
    vals = frame["value"].to_numpy(dtype=np.float64)
    present = np.bincount(flat, minlength=m * k).reshape(m, k)
    sums = np.bincount(flat, weights=np.nan_to_num(vals), minlength=m * k).reshape(m, k)
    out = sums / np.where(present > 0, present, 1) if mean else sums
    out = np.where(present > 0, out, np.nan)
    return pd.DataFrame(out, index=index, columns=list(names))


def _p99(latency: pd.DataFrame, load: pd.Series) -> pd.DataFrame:
    wide = _wide(latency, ["bin_end", *KEYS], "le")
    le = np.asarray(wide.columns, dtype=np.float64)
    counts = wide.to_numpy(dtype=np.float64)
    q = histogram_quantile(0.99, le, np.nan_to_num(counts))
    f = pd.DataFrame({"value": np.atleast_1d(q)}, index=wide.index)
    f["load"] = load.reindex(wide.index)
    f = f.reset_index()
    f["signal"] = "latency_p99"
    return f


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


def _onset(y: FloatArray, left: int, first: int, last: int, min_size: int) -> int:
    """Onset of a ramp: the best ``t`` before ``first`` for "flat, then a line up to ``last``".

    Searched in ``[max(left + min_size, first - 4 min_size), first]``; the line starts
    at the flat level (a continuous hinge).
    """
    best_t, best_sse = first, math.inf
    lo = max(left + min_size, first - 4 * min_size)
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
            start_i = _onset(y, first.left, first.index, last.index, cfg.min_size)
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
    cfg: DetectorConfig = FLEET_DETECTOR,
    only: Iterable[str] | None = None,
) -> list[Regression]:
    """Regressions of every region/model/arm and signal of a :func:`build_signals` frame."""
    specs = specs or SIGNALS
    wanted = set(only) if only else set(specs)
    out: list[Regression] = []
    for (region, model, arm, name), f in signals.groupby([*KEYS, "signal"], sort=True):
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
    signals: pd.DataFrame, cfg: DetectorConfig | None = None, min_relative: float = 0.3
) -> list[Event]:
    """Change points of the load (requests per minute) after removing the daily profile.

    The load is compared with the median load at the same time of day, so the daily
    cycle is not a shift; a step of at least ``min_relative`` is.
    """
    cfg = cfg or FLEET_DETECTOR
    out = []
    base = signals[signals["signal"] == "error_ratio"]  # one row per bin with requests
    for (region, model, arm), f in base.groupby(KEYS, sort=True):
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

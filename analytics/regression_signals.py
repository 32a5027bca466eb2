"""The fleet signals regressions are detected on, derived per time bin (pure numpy).

The store hands over plain numeric rows (``sql/queries/regression_*_rows.sql``: step
end, series hash, signal code or bucket bound, value); :func:`bin_rows` sums them into
dense ``series x bin`` arrays with ``bincount`` and :func:`derive_signals` turns those
into the derived signals of :data:`analytics.regressions.SIGNALS`:

- ``latency_p99``: ``histogram_quantile(0.99)`` of the bin's summed latency buckets,
  for bins with at least ``quantile_requests`` requests (a p99 of one minute's 20
  requests is its largest request: noise);
- ``latency_mean``: latency sum / requests, for every bin with requests: the latency
  signal of low-traffic series at 1-minute bins (``docs/regressions.md``, "Latency at
  1-minute bins").
- ``error_ratio`` (errors / requests), ``accuracy``, ``gpu_utilization``,
  ``gpu_power`` (bin means), ``energy_per_request`` (J), ``cost_per_1k_requests``
  (node USD/h x bin / requests x 1000), ``tokens_per_joule``.
- ``load``: requests per minute in the bin (for the load adjustment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.histogram import histogram_quantile

FloatArray = npt.NDArray[np.float64]

#: Counter codes of ``regression_counter_rows.sql`` (position = code).
COUNTERS = ("requests", "errors", "energy", "prompt_tokens", "generation_tokens", "latency_sum")
#: Gauge codes of ``regression_gauge_rows.sql``.
GAUGES = ("accuracy", "gpu_utilization", "gpu_power", "cost")
KEYS = ["region", "model", "arm"]


@dataclass(frozen=True)
class FleetBins:
    """Per-bin sums of one window, dense over ``series x bin``.

    Attributes:
        names: one row per series (``series`` hash, ``region``, ``model``, ``arm``).
        bin_end: the bins' end times, shape ``(T,)`` (naive UTC; a bin is
            ``(bin_end - bin_s, bin_end]``, aligned to multiples of ``bin_s``).
        counters: sums of the counter increases, ``(S, T, len(COUNTERS))``, NaN
            where the bin has no row.
        gauges: ``(S, T, len(GAUGES))`` bin means (cost: per-step sum over
            instances, averaged over the bin's steps), NaN where none.
        le: latency bucket bounds in seconds, ascending, ``inf`` last, ``(L,)``.
        buckets: sums of the (cumulative) bucket increases, requests <= le per bin,
            ``(S, T, L)``.
    """

    names: pd.DataFrame
    bin_end: pd.DatetimeIndex
    counters: FloatArray
    gauges: FloatArray
    le: FloatArray
    buckets: FloatArray


def _epoch(t: datetime) -> int:
    return int(pd.Timestamp(t).tz_localize(None).as_unit("s").value // 10**9)


def bin_rows(
    names: pd.DataFrame,
    counter_rows: pd.DataFrame,
    gauge_rows: pd.DataFrame,
    bucket_rows: pd.DataFrame,
    start: datetime,
    end: datetime,
    bin_s: int,
) -> FleetBins:
    """Sum the store's numeric rows into bins ``(k bin_s - bin_s, k bin_s]`` over ``(start, end]``.

    Args:
        names: ``series, region, model, arm`` (``regression_series_names.sql``).
        counter_rows: ``t, series, code, value`` (``regression_counter_rows.sql``).
        gauge_rows: ``t, series, code, value`` (``regression_gauge_rows.sql``).
        bucket_rows: ``t, series, le, value`` (``regression_bucket_rows.sql``).
        start, end: the window (naive UTC or aware).
        bin_s: bin length in seconds (> 0).

    Raises:
        ValueError: ``bin_s`` is not positive or the window is empty.
    """
    if bin_s <= 0:
        raise ValueError(f"bin length must be positive, got {bin_s} s")
    t0, t1 = _epoch(start), _epoch(end)
    if t1 <= t0:
        raise ValueError(f"empty window ({start}, {end}]")
    k0 = (t0 + 1 + bin_s - 1) // bin_s  # first bin holding t0 + 1 s
    k1 = (t1 + bin_s - 1) // bin_s
    n_bins = int(k1 - k0 + 1)
    names = names.reset_index(drop=True)
    lookup = pd.Index(names["series"].to_numpy())
    s_count = len(names)
    bin_end = pd.to_datetime((np.arange(k0, k1 + 1) * bin_s), unit="s")

    def locate(rows: pd.DataFrame) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        s = lookup.get_indexer(rows["series"].to_numpy())
        b = (rows["t"].to_numpy(dtype=np.int64) + bin_s - 1) // bin_s - k0
        ok = (s >= 0) & (b >= 0) & (b < n_bins)
        return s.astype(np.int64) * n_bins + b, ok

    def dense(rows: pd.DataFrame, width: int, code: npt.NDArray[np.int64]) -> tuple[
        FloatArray, FloatArray
    ]:
        cell, ok = locate(rows)
        ok &= (code >= 0) & (code < width)
        flat = cell[ok] * width + code[ok]
        size = s_count * n_bins * width
        vals = np.nan_to_num(rows["value"].to_numpy(dtype=np.float64)[ok])
        sums = np.bincount(flat, weights=vals, minlength=size)
        present = np.bincount(flat, minlength=size).astype(np.float64)
        shape = (s_count, n_bins, width)
        return sums.astype(np.float64).reshape(shape), present.reshape(shape)

    c_sum, c_n = dense(counter_rows, len(COUNTERS), counter_rows["code"].to_numpy(np.int64))
    counters = np.where(c_n > 0, c_sum, np.nan)

    g_code = gauge_rows["code"].to_numpy(np.int64)
    g_sum, g_n = dense(gauge_rows, len(GAUGES), g_code)
    with np.errstate(invalid="ignore", divide="ignore"):
        gauges = np.where(g_n > 0, g_sum / g_n, np.nan)
    # cost: the sum over instances per step, averaged over the bin's steps.
    cost = GAUGES.index("cost")
    is_cost = g_code == cost
    if is_cost.any():
        cell, ok = locate(gauge_rows)
        steps = np.unique(
            np.stack([cell[is_cost & ok], gauge_rows["t"].to_numpy(np.int64)[is_cost & ok]]),
            axis=1,
        )[0]
        n_steps = np.bincount(steps, minlength=s_count * n_bins).reshape(s_count, n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            gauges[:, :, cost] = np.where(n_steps > 0, g_sum[:, :, cost] / n_steps, np.nan)

    le_all = bucket_rows["le"].to_numpy(dtype=np.float64)
    le, le_code = np.unique(le_all, return_inverse=True)
    if le.size:
        buckets, _ = dense(bucket_rows, le.size, le_code.astype(np.int64).ravel())
    else:
        buckets = np.zeros((s_count, n_bins, 0))
    return FleetBins(names, pd.DatetimeIndex(bin_end), counters, gauges, le, buckets)


def bin_p99(buckets: FloatArray, le: FloatArray, requests: FloatArray, quantile_requests: float
            ) -> FloatArray:
    """p99 per bin from the bin's summed buckets, NaN for bins with fewer requests.

    Args:
        buckets: ``(S, T, L)`` per-bin sums of the cumulative buckets.
        le: ``(L,)`` ascending bounds (seconds), ``inf`` last.
        requests: ``(S, T)`` requests per bin.
        quantile_requests: fewest requests a p99 is computed from.

    Returns:
        ``(S, T)`` p99 in seconds (``histogram_quantile`` as Prometheus computes it).
    """
    s_count, n_bins, width = buckets.shape
    out = np.full((s_count, n_bins), np.nan)
    if width < 2 or not np.isposinf(le[-1]):
        return out
    ok = np.nan_to_num(requests) >= quantile_requests
    if ok.any():
        out[ok] = histogram_quantile(0.99, le, buckets[ok])
    return out


def derive_signals(
    bins: FleetBins,
    bin_s: int,
    min_requests: float = 1.0,
    quantile_requests: float = 50.0,
) -> pd.DataFrame:
    """Derived signals per bin, region, model and arm (see the module docstring).

    Args:
        bins: :func:`bin_rows`' sums.
        bin_s: bin length in seconds.
        min_requests: bins with fewer requests have no per-request signals.
        quantile_requests: bins with fewer requests have no p99 (with 50 it is the
            largest or second largest request already).

    Returns:
        Long frame ``bin_end, region, model, arm, signal, value, load`` (load: requests
        per minute in the bin; region, model, arm and signal categorical), sorted by
        series, signal and time, without NaN values.
    """
    c = {name: bins.counters[:, :, i] for i, name in enumerate(COUNTERS)}
    g = {name: bins.gauges[:, :, i] for i, name in enumerate(GAUGES)}
    requests = c["requests"]
    with np.errstate(invalid="ignore", divide="ignore"):
        req = np.where(requests >= min_requests, requests, np.nan)
        energy = np.where(c["energy"] > 0, c["energy"], np.nan)
        tokens = np.nan_to_num(c["prompt_tokens"]) + np.nan_to_num(c["generation_tokens"])
        derived = {
            "latency_p99": bin_p99(bins.buckets, bins.le, requests, quantile_requests),
            "latency_mean": c["latency_sum"] / req,
            "error_ratio": c["errors"] / req,
            "accuracy": g["accuracy"],
            "gpu_utilization": np.where(g["gpu_utilization"] > 0, g["gpu_utilization"], np.nan),
            "gpu_power": np.where(g["gpu_power"] > 0, g["gpu_power"], np.nan),
            "energy_per_request": energy / req,
            "cost_per_1k_requests": g["cost"] * (bin_s / 3600.0) / req * 1000.0,
            "tokens_per_joule": np.where(tokens > 0, tokens / energy, np.nan),
        }
    load = requests / (bin_s / 60.0)
    names = bins.names
    order = np.lexsort((names["arm"], names["model"], names["region"]))
    signal_names = sorted(derived)
    parts: dict[str, list[npt.NDArray]] = {k: [] for k in ("s", "t", "sig", "value", "load")}
    for s in order:
        for k, name in enumerate(signal_names):
            v = derived[name][s]
            ok = np.flatnonzero(np.isfinite(v))
            parts["s"].append(np.full(ok.size, s))
            parts["t"].append(ok)
            parts["sig"].append(np.full(ok.size, k))
            parts["value"].append(v[ok])
            parts["load"].append(load[s, ok])
    cols = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
    s_idx = cols["s"].astype(np.int64)
    frame = pd.DataFrame(
        {
            "bin_end": bins.bin_end[cols["t"].astype(np.int64)],
            **{
                key: pd.Categorical.from_codes(
                    *pd.factorize(names[key].to_numpy()[s_idx], sort=True)
                )
                if len(s_idx)
                else pd.Categorical([])
                for key in KEYS
            },
            "signal": pd.Categorical.from_codes(cols["sig"].astype(np.int64), signal_names),
            "value": cols["value"],
            "load": cols["load"],
        }
    )
    return frame

#!/usr/bin/env python3
"""Benchmark: regression detection over 30 days x 6 regions x all signals at 1-minute bins.

The demo fleet is simulated (30 days, 6 regions, 4 model/arm series each) and turned
into the store's per-step rows by the same presets and transform as a real
collection; the rows are aggregated per minute exactly as the named queries
``regression_*.sql`` do (sums of counters, means of gauges, summed histogram
buckets), without writing the Parquet lake (building it is the demo's cost, not the
detector's).  Then, timed separately:

- ``signals``: derived signals per minute (p99 from the buckets, ratios, load);
- ``detect``: :func:`analytics.regressions.detect_regressions` over every signal of
  every region/model/arm (load adjustment included), on one core;
- ``pelt``: ruptures PELT (l2 cost, jump 5, penalty ``sigma^2 ln n``) on the same
  prepared series, for a ratio; PELT is slow at this length, so it runs on
  ``--pelt-series`` of them (spread over regions and signals) and its total is
  extrapolated from the mean per series (said so in the output).

Usage::

    .venv/bin/python bench/regressions_perf.py [--days 30] [--regions 6] [--pelt-series 4]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analytics import regressions as rg  # noqa: E402
from analytics.changepoints import noise_scale  # noqa: E402
from collectors import demo_fleet  # noqa: E402

BIN_S = 60


def _frames(days: float, regions: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    end = datetime(2026, 11, 28, tzinfo=UTC)
    sims, truth = demo_fleet.simulate(seed=7, end=end, days=days, regions=regions)
    start = datetime.fromisoformat(truth["start_utc"])
    stop = datetime.fromisoformat(truth["end_utc"])
    cs, gs, hs = [], [], []
    for sim in sims:
        for table, _signals, frame in demo_fleet.region_frames(sim, start, stop):
            if frame.empty:
                continue
            f = frame.assign(region=sim.region.name)
            f["model"] = f["model"].fillna("")
            f["arm"] = f["arm"].fillna("")
            keys = ["ts_utc", "region", "model", "arm"]
            if table == "counters":
                f = f[f["signal"].isin(
                    ["requests", "errors", "energy", "prompt_tokens", "generation_tokens"]
                )]
                cs.append(f.groupby([*keys, "signal"], as_index=False)["value"].sum())
            elif table == "gauges":
                f = f[f["signal"].isin(["accuracy", "gpu_utilization", "gpu_power", "cost"])]
                agg = f.groupby([*keys, "signal"], as_index=False)["mean"].agg(["sum", "mean"])
                agg["value"] = np.where(agg["signal"] == "cost", agg["sum"], agg["mean"])
                gs.append(agg[[*keys, "signal", "value"]])
            else:
                f = f[f["signal"] == "latency"]
                hs.append(f.groupby([*keys, "le"], as_index=False)["value"].sum())
        sim.series.clear()  # free the raw samples
    def cat(parts: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(parts, ignore_index=True).rename(columns={"ts_utc": "bin_end"})

    return cat(cs), cat(gs), cat(hs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--regions", type=int, default=6)
    p.add_argument("--pelt-series", type=int, default=4)
    p.add_argument("--cache", type=Path, help="keep the simulated per-minute rows here (pickle)")
    args = p.parse_args(argv)
    regions = [r.name for r in demo_fleet.REGIONS][: args.regions]

    t0 = time.perf_counter()
    if args.cache and args.cache.exists():
        counters, gauges, latency = pd.read_pickle(args.cache)
    else:
        counters, gauges, latency = _frames(args.days, regions)
        if args.cache:
            pd.to_pickle((counters, gauges, latency), args.cache)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    sig = rg.build_signals(counters, gauges, latency, BIN_S)
    t_sig = time.perf_counter() - t0
    groups = sig.groupby([*rg.KEYS, "signal"]).size()
    t0 = time.perf_counter()
    regs = rg.detect_regressions(sig)
    t_detect = time.perf_counter() - t0

    # ruptures PELT on a spread sample of the same (load-adjusted, log) series
    import ruptures as rpt

    keys = list(groups.index)
    rng = np.random.default_rng(0)
    sample = [keys[i] for i in rng.choice(len(keys), size=min(args.pelt_series, len(keys)),
                                          replace=False)]
    pelt_times = []
    for region, model, arm, name in sample:
        f = sig[(sig.region == region) & (sig.model == model) & (sig.arm == arm)
                & (sig.signal == name)]
        spec = rg.SIGNALS[name]
        y = f["value"].to_numpy(dtype=np.float64)
        if spec.log:
            y = np.log(np.clip(y, 1e-12, None))
        if spec.adjust_load:
            y = rg.load_adjusted(y, f["load"].to_numpy())
        s = noise_scale(y)
        t1 = time.perf_counter()
        rpt.Pelt(model="l2", jump=5).fit(y).predict(pen=s * s * math.log(y.size))
        pelt_times.append(time.perf_counter() - t1)
    per_series = float(np.mean(pelt_times))
    pelt_total = per_series * len(keys)

    n_points = int(groups.sum())
    print(f"fleet: {args.days:g} days x {len(regions)} regions, 1-minute bins")
    print(f"series: {len(keys)} (region x model/arm x signal), {n_points:,} points, "
          f"{n_points / len(keys):,.0f} per series")
    print(f"simulate + aggregate per minute (not timed as detection): {t_sim:6.1f} s")
    print(f"derived signals (p99, ratios, load):                     {t_sig:6.1f} s")
    print(f"detection, all series, one core:                         {t_detect:6.1f} s")
    print(f"  -> {len(regs)} changes, {sum(r.worse for r in regs)} worse")
    print(f"signals + detection:                                      {t_sig + t_detect:6.1f} s"
          f"  (budget: the 60 s collection step)")
    print(f"ruptures PELT on {len(sample)} of the series: {per_series:.1f} s per series "
          f"(ours: {t_detect / len(keys):.3f} s per series)")
    print(f"PELT over all {len(keys)} series (extrapolated): {pelt_total:,.0f} s "
          f"-> ratio PELT / ours = {pelt_total / t_detect:,.0f}x")
    for r in regs:
        if r.worse:
            print(f"  {r.start:%Y-%m-%d %H:%M} {r.region:<15} {r.model}/{r.arm} {r.signal:<21} "
                  f"{r.relative:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

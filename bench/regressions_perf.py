#!/usr/bin/env python3
"""Benchmark: regression detection over 30 days x 6 regions x all signals at 1-minute bins.

Runs the real path over a real store (the demo fleet written into the Parquet lake
by the same presets and transform as a real collection; built once into ``--store``
and reused): the named queries ``regression_*_rows.sql`` hand numeric rows to
:func:`analytics.regression_signals.bin_rows` / ``derive_signals``, then
:func:`analytics.regressions.detect_regressions` runs over every signal of every
region/model/arm, on one core.  Timed:

- ``first run``: :func:`observatory.regressions.analyse` without earlier state, up to
  one hour before the last step (signals from the store + detection + causes);
- ``repeat run``: the same one hour later, reusing the first run's state
  (``<store>/.regressions``): only the new hour is loaded, only each series' tail
  is analysed again;
- baseline: ruptures PELT (l2 cost, jump 5, penalty ``sigma^2 ln n``) on the same
  prepared series, on ``--pelt-series`` of them, extrapolated from the mean per series
  to all series (said so in the output).

Usage::

    .venv/bin/python bench/regressions_perf.py [--days 30] [--regions 6] [--pelt-series 2]
        [--store /tmp/regressions-bench-store]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analytics import regressions as rg  # noqa: E402
from analytics.changepoints import noise_scale  # noqa: E402
from collectors import demo_fleet  # noqa: E402
from observatory import regressions as reg  # noqa: E402
from observatory.demo import build_store  # noqa: E402
from observatory.store import Store  # noqa: E402

BIN_S = 60
BUDGET_S = 60.0  # the collection step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--regions", type=int, default=6)
    p.add_argument("--pelt-series", type=int, default=2)
    p.add_argument("--store", type=Path, default=Path("/tmp/regressions-bench-store"))
    args = p.parse_args(argv)
    regions = [r.name for r in demo_fleet.REGIONS][: args.regions]

    t0 = time.perf_counter()
    print(
        build_store(
            args.store, days=args.days, end=datetime(2026, 11, 28, tzinfo=UTC), regions=regions
        )
    )
    t_build = time.perf_counter() - t0
    store = Store(args.store)
    shutil.rmtree(store.root / ".regressions", ignore_errors=True)
    _, last = reg.time_bounds(store)
    lookback = timedelta(days=args.days)

    # CPU seconds of this process (DuckDB's threads included) beside the wall clock:
    # on a shared machine the wall clock grows with the load average, CPU time less so.
    c0 = time.process_time()
    first = reg.analyse(store, end=last - timedelta(hours=1), lookback=lookback, bin_s=BIN_S)
    c1 = time.process_time()
    repeat = reg.analyse(store, end=last, lookback=lookback, bin_s=BIN_S)
    c2 = time.process_time()
    assert not first.incremental and repeat.incremental
    sig = first.signals
    groups = sig.groupby([*rg.KEYS, "signal"], observed=True).size()
    keys = list(groups.index)

    # ruptures PELT on a spread sample of the same (load-adjusted, log) series
    import ruptures as rpt

    rng = np.random.default_rng(0)
    sample = [
        keys[i] for i in rng.choice(len(keys), size=min(args.pelt_series, len(keys)), replace=False)
    ]
    pelt_times = []
    for region, model, arm, name in sample:
        f = sig[
            (sig.region == region) & (sig.model == model) & (sig.arm == arm) & (sig.signal == name)
        ]
        spec = rg.SIGNALS[str(name)]
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

    def total(r: reg.Report) -> float:
        return sum(r.seconds.values())

    n_points = int(groups.sum())
    load = os.getloadavg()
    print(
        f"fleet: {args.days:g} days x {len(regions)} regions, 1-minute bins "
        f"(store built or reused in {t_build:.0f} s, not timed below)"
    )
    print(
        f"series: {len(keys)} (region x model/arm x signal), {n_points:,} points, "
        f"{n_points / len(keys):,.0f} per series; load average {load[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    print()
    print(f"{'step':<58} {'first run':>10} {'repeat run':>11}")
    rows = [
        ("signals from the store (SQL rows + numpy bins)", "load"),
        ("detection, all series, one core (load adjustment incl.)", "detect"),
        ("causes (annotations, label changes, traffic shifts)", "causes"),
    ]
    for label, key in rows:
        print(f"{label:<58} {first.seconds[key]:>9.1f}s {repeat.seconds[key]:>10.1f}s")
    print(
        f"{'total (budget: the 60 s collection step)':<58} {total(first):>9.1f}s "
        f"{total(repeat):>10.1f}s"
    )
    print(
        f"{'  -> share of the budget':<58} {total(first) / BUDGET_S:>9.0%} "
        f"{total(repeat) / BUDGET_S:>10.0%}"
    )
    print(f"{'CPU seconds of the run (all threads)':<58} {c1 - c0:>9.1f}s {c2 - c1:>10.1f}s")
    print()
    print(
        f"ruptures PELT on {len(sample)} of the series: {per_series:.1f} s per series "
        f"(ours: {first.seconds['detect'] / len(keys):.3f} s per series)"
    )
    print(
        f"PELT over all {len(keys)} series (extrapolated): {pelt_total:,.0f} s "
        f"-> ratio PELT / ours (detection) = {pelt_total / first.seconds['detect']:,.0f}x"
    )
    print(
        f"changes found: {len(repeat.regressions)}, "
        f"{sum(r.worse for r in repeat.regressions)} worse"
    )
    for r in repeat.regressions:
        print(
            f"  {r.start:%Y-%m-%d %H:%M} {r.severity:<11} {r.region:<15} {r.model}/{r.arm} "
            f"{r.signal:<21} {r.relative:+.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

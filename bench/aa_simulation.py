#!/usr/bin/env python3
"""A/A simulation: false-positive rates of the experiment engines on the demo fleet.

The control arm (v1 of llama-3.1-70b) is the same arm on both sides: its per-minute
replicates (one region, one minute) are split at random in two halves, once per
seed, and the halves are compared exactly as ``observatory experiment report``
compares two arms (Welch with delta-method relative lift; the asymptotic confidence
sequence).  Three rates per metric, over the seeds:

- fixed horizon: the fixed-horizon test, looked at once at the end, flags;
- sequential, peeked daily: the always-valid interval excludes 0 at any daily look;
- naive daily peeking: the fixed-horizon test excludes 0 at any daily look.

With alpha 0.05 and 200 seeds, a correct test flags at most 9% of seeds (the
binomial 99% upper bound of 0.05 over 200 seeds); naive peeking is expected to
exceed it.  Each rate is printed with its Clopper-Pearson 95% interval.

Usage::

    .venv/bin/python bench/aa_simulation.py [--store DIR] [--seeds 200] [--days 14]
        [--region R ...] [--metric accuracy ...] [--json OUT]

Without ``--store`` the demo fleet is built into a temporary folder first (about
5 s per region and 14 days).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analytics import experiments as ab  # noqa: E402
from analytics.experiment_metrics import add_derived, metric  # noqa: E402
from observatory.demo import build_store  # noqa: E402
from observatory.store import Store  # noqa: E402

MODEL, ARM = "llama-3.1-70b", "v1"
BOUND = 0.09  # binomial 99% upper bound of 0.05 over 200 seeds


def load_replicates(store: Store, regions: list[str] | None) -> pd.DataFrame:
    """The control arm's per-minute replicates over the whole store."""
    span = store.query(
        "SELECT min(ts_utc) AS a, max(ts_utc) AS b, list(DISTINCT region) AS r FROM counters "
        "WHERE signal = 'requests' AND model = $model AND arm = $arm",
        {"model": MODEL, "arm": ARM},
    )
    start = pd.Timestamp(span["a"].iloc[0]).to_pydatetime() - timedelta(seconds=1)
    end = pd.Timestamp(span["b"].iloc[0]).to_pydatetime()
    all_regions = sorted(span["r"].iloc[0])
    reps = store.named(
        "experiment_replicates",
        model=MODEL,
        arms=[ARM],
        start=start,
        end=end,
        regions=sorted(regions) if regions else all_regions,
    )
    reps["ts_utc"] = pd.to_datetime(reps["ts_utc"])
    return add_derived(reps).sort_values(["ts_utc", "region"], kind="stable")


def components(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, str]:
    """Per replicate, the summands of the metric's sufficient statistics, shape (m, c)."""
    m = metric(name)
    if m.kind == "mean":
        y = frame[m.numerator].astype(float).to_numpy() * m.scale
        ok = np.isfinite(y)
        y = np.where(ok, y, 0.0)
        return np.column_stack([ok.astype(float), y, y * y]), "mean"
    assert m.denominator is not None
    num = frame[m.numerator].astype(float).to_numpy() * m.scale
    den = frame[m.denominator].astype(float).to_numpy()
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    num, den = np.where(ok, num, 0.0), np.where(ok, den, 0.0)
    return np.column_stack([ok.astype(float), num, num * num, den, den * den, num * den]), "ratio"


def _arm(sums: np.ndarray, kind: str) -> ab.MeanStats | ab.RatioStats:
    return ab.MeanStats(*sums) if kind == "mean" else ab.RatioStats(*sums)


def simulate(
    frame: pd.DataFrame,
    names: list[str],
    seeds: int,
    alpha: float,
    tuning: float,
    block_minutes: int = 1,
) -> pd.DataFrame:
    """Per metric and seed: which of the three procedures flagged.

    ``block_minutes`` > 1 assigns whole blocks of consecutive minutes of a region to
    one side (a harsher A/A: correlation between neighbouring minutes then counts).
    """
    times = pd.DatetimeIndex(frame["ts_utc"])
    first = times.min() - pd.Timedelta(minutes=1)
    looks = pd.date_range(first + pd.Timedelta(days=1), times.max(), freq="1D")
    if len(looks) == 0 or looks[-1] != times.max():
        looks = looks.append(pd.DatetimeIndex([times.max()]))
    cut = np.searchsorted(times.as_unit("us").asi8, looks.as_unit("us").asi8, side="right")
    minute = times.as_unit("s").asi8 // 60
    block = pd.MultiIndex.from_arrays([frame["region"].to_numpy(), minute // block_minutes])
    block_code, block_keys = block.factorize()
    rows = []
    for name in names:
        comp, kind = components(frame, name)
        for seed in range(seeds):
            side = (np.random.default_rng(seed).random(len(block_keys)) < 0.5)[block_code]
            cum_a = np.vstack([np.zeros(comp.shape[1]), np.cumsum(comp * side[:, None], axis=0)])
            cum_b = np.vstack([np.zeros(comp.shape[1]), np.cumsum(comp * ~side[:, None], axis=0)])
            fixed_any = seq_any = False
            fixed_end = False
            for i, c in enumerate(cut):
                a, b = _arm(cum_a[c], kind), _arm(cum_b[c], kind)
                fx = ab.welch_test(a, b, True, "two-sided", alpha)
                sq = ab.sequential_test(a, b, True, alpha, tuning)
                fixed_any |= fx.significant
                seq_any |= sq.significant
                if i == len(cut) - 1:
                    fixed_end = fx.significant
            rows.append(
                {
                    "metric": name,
                    "seed": seed,
                    "fixed_horizon": fixed_end,
                    "sequential_daily": seq_any,
                    "naive_daily": fixed_any,
                    "looks": len(cut),
                }
            )
    return pd.DataFrame(rows)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k successes in n trials."""
    a = 1 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="Demo store to use (default: build one in a temp dir).")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--region", action="append", dest="regions")
    parser.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        help="Metric (repeatable; default: accuracy, the primary, then latency_mean, "
        "error_ratio, cost_per_1k).",
    )
    parser.add_argument(
        "--block-minutes",
        type=int,
        default=1,
        help="Split whole blocks of this many consecutive minutes per region (default 1).",
    )
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tuning", type=float, default=ab.DEFAULT_TUNING)
    parser.add_argument("--json", dest="json_out", help="Also write the rates as JSON here.")
    args = parser.parse_args(argv)
    names = args.metrics or ["accuracy", "latency_mean", "error_ratio", "cost_per_1k"]
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.store) if args.store else Path(tmp) / "demo"
        if not args.store:
            end = datetime(2026, 11, 30, tzinfo=UTC)
            print(build_store(root, days=args.days, regions=args.regions, end=end), flush=True)
        frame = load_replicates(Store(root), args.regions)
    built = time.monotonic() - began
    result = simulate(frame, names, args.seeds, args.alpha, args.tuning, args.block_minutes)
    regions = sorted(frame["region"].unique())
    print(
        f"\nA/A on {MODEL} {ARM}: {len(frame):,} per-minute replicates in {len(regions)} "
        f"regions, split at random in two halves (blocks of {args.block_minutes} min); "
        f"{args.seeds} seeds; alpha {args.alpha}; "
        f"N* {args.tuning:g}; {int(result['looks'].iloc[0])} daily looks "
        f"(data {built:.0f}s, simulation {time.monotonic() - began - built:.0f}s)\n"
    )
    header = f"{'metric':<16} {'procedure':<28} {'flagged':>8} {'rate':>7}  95% CI          <= 9%?"
    print(header)
    print("-" * len(header))
    out = []
    for name in names:
        sub = result[result["metric"] == name]
        for col, label in (
            ("fixed_horizon", "fixed horizon (one look)"),
            ("sequential_daily", "sequential, peeked daily"),
            ("naive_daily", "naive daily peeking (fixed)"),
        ):
            k, n = int(sub[col].sum()), len(sub)
            lo, hi = clopper_pearson(k, n)
            rate = k / n
            ok = "yes" if rate <= BOUND else "NO"
            print(f"{name:<16} {label:<28} {k:>4}/{n:<3} {100 * rate:6.1f}%  [{100 * lo:4.1f}%, "
                  f"{100 * hi:4.1f}%]   {ok}")  # fmt: skip
            out.append({"metric": name, "procedure": col, "flagged": k, "seeds": n, "rate": rate,
                        "ci95": [lo, hi], "within_bound": rate <= BOUND})  # fmt: skip
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    primary = {r["procedure"]: r["rate"] for r in out if r["metric"] == names[0]}
    good = primary["fixed_horizon"] <= BOUND and primary["sequential_daily"] <= BOUND
    print(
        f"\nprimary metric {names[0]}: fixed {100 * primary['fixed_horizon']:.1f}%, sequential "
        f"{100 * primary['sequential_daily']:.1f}%, naive peeking "
        f"{100 * primary['naive_daily']:.1f}% -> {'as expected' if good else 'NOT within bound'}"
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())

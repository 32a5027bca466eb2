#!/usr/bin/env python3
"""Benchmark: what the hourly roll-up costs writers (demo store build, with and without).

Builds the same demo fleet store twice in one run -- with the store's hourly roll-up
(the product) and with it switched off (the baseline: ``ROLLUP_OF`` emptied, so
``replace_window`` writes the data partitions only) -- and prints build time, files
and bytes of each, and the roll-up's share.  Alternates the two ``--repeat`` times and
reports medians.

Usage::

    .venv/bin/python bench/rollup_write_bench.py [--days 7] [--regions 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collectors.demo_fleet import REGIONS  # noqa: E402
from observatory.demo import build_store  # noqa: E402
from observatory.store import core as store_module  # noqa: E402  (the names Store uses)


def _size(root: Path, pattern: str) -> tuple[int, int]:
    files = list(root.glob(pattern))
    return len(files), sum(f.stat().st_size for f in files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--regions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    regions = [r.name for r in REGIONS][: args.regions]
    end = datetime(2026, 11, 1, tzinfo=UTC)
    rollup_of = dict(store_module.ROLLUP_OF)
    times: dict[str, list[float]] = {"without roll-up (baseline)": [], "with hourly roll-up": []}
    sizes = {}
    loads = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="rollup-bench-"))
    try:
        for _ in range(args.repeat):
            for label in times:
                store_module.ROLLUP_OF.clear()
                if label.startswith("with "):
                    store_module.ROLLUP_OF.update(rollup_of)
                root = work / "store"
                shutil.rmtree(root, ignore_errors=True)
                t0 = time.perf_counter()
                build_store(root, days=args.days, regions=regions, end=end)
                times[label].append(time.perf_counter() - t0)
                sizes[label] = (
                    _size(root, "lake/*/signal=*/date=*/region=*/*.parquet"),
                    _size(root, "lake/*_hourly/signal=*/date=*/region=*/*.parquet"),
                )
                loads.append(os.getloadavg()[0])
    finally:
        store_module.ROLLUP_OF.clear()
        store_module.ROLLUP_OF.update(rollup_of)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"demo store: {args.days:g} days x {len(regions)} regions; {args.repeat} runs each; "
        f"{os.cpu_count()} CPUs; 1-minute load " + " -> ".join(f"{x:.1f}" for x in loads)
    )
    print(f"{'':28} {'median s':>9} {'runs (s)':>22} {'files':>7} {'MB':>7} {'roll-up MB':>11}")
    for label, runs in times.items():
        (files, size), (_, rsize) = sizes[label]
        each = " ".join(f"{x:.1f}" for x in runs)
        print(
            f"{label:28} {statistics.median(runs):9.1f} {each:>22} {files:7d} "
            f"{size / 1e6:7.1f} {rsize / 1e6:11.1f}"
        )
    base, new = (statistics.median(v) for v in times.values())
    print(f"roll-up write cost: {100 * (new / base - 1):+.0f} % build time")
    return 0


if __name__ == "__main__":
    sys.exit(main())

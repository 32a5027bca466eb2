#!/usr/bin/env python3
"""Benchmark: reading and aggregating the collector's run log for the Collection health page.

In one run, for run logs of N lines (7 regions, 25 signals each, a run a minute per
region, as ``Collector._region`` writes them):

- baseline: the ``collection_runs`` view (DuckDB's ``read_json`` of ``runs.jsonl``,
  what the page read before), ``SELECT *`` through :meth:`Store.query` (columns only:
  no coverage, no per-signal figures);
- ours, parse: :func:`analytics.collection_health.parse_run_log` of the file's lines;
- ours, aggregate: :func:`analytics.collection_health.signal_health` (175 region x
  signal rows);

each the median of ``--repeat`` runs (the development machine is shared).

Usage::

    .venv/bin/python bench/collection_health.py [--lines 5000 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analytics.collection_health import parse_run_log, signal_health  # noqa: E402
from observatory.store import Store  # noqa: E402

REGIONS = [f"region-{i}" for i in range(7)]
SIGNALS = [f"signal_{i}" for i in range(25)]
T0 = datetime(2026, 10, 1)


def write_log(path: Path, n: int) -> None:
    """``n`` run records, a run a minute per region, every 50th a partial run."""
    with open(path, "w", encoding="utf-8") as fh:
        for k in range(n):
            t = T0 + timedelta(minutes=k // len(REGIONS))
            partial = k % 50 == 0
            cov = {s: 1.0 - (k % 7) / 100 for s in SIGNALS[: 20 if partial else 25]}
            record = {
                "started_utc": t.isoformat(),
                "finished_utc": (t + timedelta(seconds=3)).isoformat(),
                "region": REGIONS[k % len(REGIONS)],
                "status": "partial" if partial else "ok",
                "window_start_utc": (t - timedelta(minutes=1)).isoformat(),
                "window_end_utc": t.isoformat(),
                "rows": 500,
                "error": "HTTP 503" if partial else None,
                "samples": 5000,
                "queries": 25,
                "retries": 0,
                "seconds": 3.0,
                "coverage": cov,
                "warnings": None,
            }
            fh.write(json.dumps(record, sort_keys=True) + "\n")


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| lines | baseline: collection_runs view (s) | parse_run_log (s) | signal_health (s) |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.lines:
            root = Path(tmp) / f"store-{n}"
            root.mkdir()
            write_log(root / "runs.jsonl", n)
            store = Store(root)
            lines = (root / "runs.jsonl").read_bytes().splitlines(keepends=True)
            now = T0 + timedelta(minutes=n // len(REGIONS) + 2)

            def view(store: Store = store) -> None:
                store.refresh()
                store.query("SELECT * FROM collection_runs")

            log = parse_run_log(lines)
            assert not log.skipped and len(log.runs) == n
            health = signal_health(log.runs, now)
            assert len(health) == len(REGIONS) * len(SIGNALS)
            base = timed(view, args.repeat)
            parse = timed(lambda lines=lines: parse_run_log(lines), args.repeat)
            agg = timed(lambda log=log, now=now: signal_health(log.runs, now), args.repeat)
            print(f"| {n:,} | {base:.3f} | {parse:.3f} | {agg:.3f} |")


if __name__ == "__main__":
    main()

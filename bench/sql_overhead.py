#!/usr/bin/env python3
"""Benchmark: what the SQL sandbox costs over a bare DuckDB connection.

Runs every example query of ``sql/examples/`` on a store of at least 50 million rows
(the demo fleet, 7 regions x 28 days at 1-minute steps, about 52 M rows), N times
each, alternating between

- **bare**: the store's ordinary reader connection (``Store.connect()``: an in-memory
  DuckDB with the views of ``sql/views.sql`` over the same Parquet files, no limits),
  ``cursor.sql(query).to_arrow_table()``;
- **sandbox**: ``Store.sandbox().run(query)`` (statement check with DuckDB's parser,
  locked-down instance, watchdog timer, streamed rows with the row cap),

checks that both return the same rows, and prints a table of median milliseconds, the
ratio per query and overall (sum of sandbox medians / sum of bare medians).

Usage::

    .venv/bin/python bench/sql_overhead.py [--store DIR] [--days 28] [--runs 7]

Without ``--store`` it builds (once, about 2-3 minutes on 2 cores) or reuses
``data/bench-sql``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from observatory.demo import build_store  # noqa: E402
from observatory.sql_catalog import examples  # noqa: E402
from observatory.store import SandboxLimits, Store  # noqa: E402

MIN_ROWS = 50_000_000


def _rows(store: Store) -> int:
    df = store.query(
        "SELECT (SELECT count(*) FROM counters) + (SELECT count(*) FROM gauges) "
        "+ (SELECT count(*) FROM histograms) AS n"
    )
    return int(df["n"].iloc[0])


def _setting(store: Store, name: str, sandbox: bool) -> str:
    query = f"SELECT current_setting('{name}') AS v"
    if sandbox:
        return str(store.sandbox().run(query).table.column(0)[0].as_py())
    return str(store.query(query)["v"].iloc[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=REPO / "data" / "bench-sql")
    parser.add_argument("--days", type=float, default=28, help="days of demo history to build")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query and side")
    args = parser.parse_args()

    store = Store(args.store)
    if not store.has_data():
        began = time.monotonic()
        print(f"building the demo fleet ({args.days:g} days) into {args.store} ...", flush=True)
        print(build_store(args.store, days=args.days), flush=True)
        print(f"built in {time.monotonic() - began:.0f} s", flush=True)
    rows = _rows(store)
    files = sum(1 for _ in store.lake.glob("*/signal=*/date=*/region=*/*.parquet"))
    print(f"store {args.store}: {rows:,} rows in {files:,} Parquet files")
    if rows < MIN_ROWS:
        print(f"warning: fewer than {MIN_ROWS:,} rows; use --days 28 for the reference size")
    limits = SandboxLimits(timeout_s=600)  # time limit out of the way; the rest as served
    box = store.sandbox(limits)
    print(
        f"threads: bare {_setting(store, 'threads', False)}, sandbox {limits.threads}; "
        f"memory_limit: bare {_setting(store, 'memory_limit', False)}, "
        f"sandbox {limits.memory_limit}; runs per query and side: {args.runs} (+1 warm-up)"
    )
    root = store.connect()

    def bare(sql: str) -> pa.Table:
        cur = root.cursor()
        try:
            return cur.sql(sql).to_arrow_table()
        finally:
            cur.close()

    results = []
    cpu: dict[str, float] = {"bare": 0.0, "sandbox": 0.0}
    for example in examples():
        times: dict[str, list[float]] = {"bare": [], "sandbox": []}
        cpus: dict[str, list[float]] = {"bare": [], "sandbox": []}
        for i in range(args.runs + 1):
            order = ("bare", "sandbox") if i % 2 == 0 else ("sandbox", "bare")
            for side in order:
                began, began_cpu = time.perf_counter(), time.process_time()
                if side == "bare":
                    table = bare(example.sql)
                    bare_table = table
                else:
                    result = box.run(example.sql)
                    table = result.table
                    assert not result.truncated, example.name
                elapsed = time.perf_counter() - began
                if i:  # the first round warms caches
                    times[side].append(elapsed)
                    cpus[side].append(time.process_time() - began_cpu)
        if bare_table.to_pylist() != table.to_pylist():
            print(f"error: {example.name}: the sandbox and bare DuckDB returned different rows")
            return 1
        b, s = statistics.median(times["bare"]), statistics.median(times["sandbox"])
        results.append((example.title, table.num_rows, b, s))
        for side in cpu:
            cpu[side] += statistics.median(cpus[side])

    check = []
    for example in examples():
        began = time.perf_counter()
        box.check(example.sql)
        check.append(time.perf_counter() - began)

    width = max(len(t) for t, *_ in results)
    print()
    print(f"{'query':<{width}}  {'rows':>6}  {'bare ms':>9}  {'sandbox ms':>10}  {'ratio':>6}")
    for title, n, b, s in results:
        print(f"{title:<{width}}  {n:>6,}  {b * 1000:>9.1f}  {s * 1000:>10.1f}  {s / b:>6.3f}")
    total_b = sum(b for *_, b, _ in results)
    total_s = sum(s for *_, s in results)
    geo = statistics.geometric_mean([s / b for *_, b, s in results])
    print(
        f"{'all (sum of medians)':<{width}}  {'':>6}  {total_b * 1000:>9.1f}  "
        f"{total_s * 1000:>10.1f}  {total_s / total_b:>6.3f}"
    )
    print(f"geometric mean of ratios: {geo:.3f}")
    print(
        f"CPU time (all threads, sum of medians): bare {cpu['bare'] * 1000:.0f} ms, "
        f"sandbox {cpu['sandbox'] * 1000:.0f} ms, ratio {cpu['sandbox'] / cpu['bare']:.3f} "
        "(less sensitive than wall time to other load on the machine)"
    )
    print(f"statement check alone: median {statistics.median(check) * 1000:.2f} ms per query")
    box.close()
    return 0 if total_s / total_b <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())

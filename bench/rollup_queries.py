"""What the pages' heavy aggregates cost over minute rows vs the store's hourly roll-ups.

    python bench/rollup_queries.py /work/scale-data/small /work/scale-data/large

For each store and window (the last 24 h and the last 30 days of its data, both
ending on a whole hour so the roll-up answers them exactly), the same aggregate is
run three ways, each twice (the second run, warm, is reported):

- baseline: the ``histograms``/``counters`` views over the minute rows, filtered on
  ``ts_utc`` (what the pages' named queries do);
- the same with the Hive ``date`` partition column filtered too (partition pruning
  by folder; the views do not expose ``date``);
- the hourly roll-up files (``lake/<table>_hourly``, written by the store with each
  partition), filtered on ``hour_utc``.

The sums must agree exactly (checked: "same" column).  Also printed: rows scanned
and row groups read of the baseline, from DuckDB's ``EXPLAIN ANALYZE``.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from observatory.store import Store

HIVE = "hive_partitioning=true, hive_types={'signal': VARCHAR, 'date': DATE, 'region': VARCHAR}"
QUERIES = {
    "latency buckets per region, model, arm, le": (
        "histograms",
        "SELECT region, model, arm, le, sum(value) AS v FROM {src} "
        "WHERE signal = 'latency' AND {ts} > $start AND {ts} <= $end {extra} GROUP BY ALL",
    ),
    "requests and errors per region, model": (
        "counters",
        "SELECT region, model, sum(value) FILTER (WHERE signal = 'errors') AS e, "
        "sum(value) FILTER (WHERE signal = 'requests') AS v FROM {src} "
        "WHERE signal IN ('requests', 'errors') AND {ts} > $start AND {ts} <= $end {extra} "
        "GROUP BY ALL",
    ),
    "distinct models (the filters' model list)": (
        "counters",
        "SELECT DISTINCT model, 1.0 AS v FROM {src} "
        "WHERE signal IN ('requests', 'errors') AND {ts} > $start AND {ts} <= $end {extra}",
    ),
}


def _timed(store: Store, sql: str, params: dict[str, Any]) -> tuple[float, float, int]:
    store.query(sql, params)
    t0 = time.perf_counter()
    frame = store.query(sql, params)
    return time.perf_counter() - t0, float(frame["v"].sum()), len(frame)


def _scanned(store: Store, sql: str, params: dict[str, Any]) -> str:
    plan = "\n".join(store.query("EXPLAIN ANALYZE " + sql, params).iloc[:, 1])
    groups = re.findall(r"Row Groups Scanned: ([\d,]+ / [\d,]+)", plan)
    files = re.findall(r"Total Files Read: ([\d,]+)", plan)
    rows = re.findall(r"TABLE_SCAN.*?\n.*?([\d,]+) [Rr]ows", plan, re.S)
    return f"files {files[0] if files else '?'}, row groups {groups[0] if groups else '?'}" + (
        f", {rows[0]} rows" if rows else ""
    )


def main() -> None:
    """Run every query three ways on every store given; print the table."""
    print(f"{'store':8} {'window':6} {'query':44} {'minute s':>9} {'+date s':>8} "
          f"{'hourly s':>9} {'x faster':>8} {'same':>5}  baseline scan")  # fmt: skip
    for root in sys.argv[1:]:
        store = Store(root)
        last = store.query("SELECT max(ts_utc) AS t FROM counters")["t"].iloc[0]
        end = last.floor("h")
        lake = store.lake.as_posix()
        for label, span in (("24 h", timedelta(hours=24)), ("30 d", timedelta(days=30))):
            params = {"start": end - span, "end": end}
            for name, (table, sql) in QUERIES.items():
                base = sql.format(src=table, ts="ts_utc", extra="")
                dated = sql.format(
                    src=f"read_parquet('{lake}/{table}/*/*/*/*.parquet', {HIVE})",
                    ts="ts_utc",
                    extra="AND date >= CAST($start AS DATE) AND date <= CAST($end AS DATE)",
                )
                hourly = sql.format(
                    src=f"read_parquet('{lake}/{table}_hourly/*/*/*/*.parquet', {HIVE})",
                    ts="hour_utc",
                    extra="",
                )
                b, bv, _ = _timed(store, base, params)
                d, dv, _ = _timed(store, dated, params)
                h, hv, _ = _timed(store, hourly, params)
                same = "yes" if bv == dv == hv else f"NO {bv} {hv}"
                print(
                    f"{Path(root).name:8} {label:6} {name:44} {b:>9.2f} {d:>8.2f} {h:>9.2f} "
                    f"{b / h:>8.0f} {same:>5}  {_scanned(store, base, params)}"
                )


if __name__ == "__main__":
    main()

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

``--named`` times the dashboard's converted named queries instead (Latency, GPUs &
Energy, Cost & Carbon, Overview), each through :meth:`Store.named` with
``OBSERVATORY_ROLLUP=0`` (minute rows only: the baseline), ``hourly`` (the hourly
tier only, as before the 5-minute tier) and ``1`` (every tier: whole hours, whole
5-minute periods, cut periods and stale partitions from minute rows), alternating, first
and second run, over the pages' default window (the last 24 h up to the latest step,
whose edges cut hours; series in 5-minute buckets) and the last 7 days (hourly
buckets), with every region, model and arm; "max rel diff" compares the two results::

    python bench/rollup_queries.py --named /work/scale-data/small-h5 /work/scale-data/large-h5
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
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


#: The converted named queries and their extra parameters (series: bucket set per window).
NAMED: dict[str, dict[str, Any]] = {
    "latency_by_group": {},
    "latency_series": {"signal": "latency", "split": "region"},
    "gpu_by_group": {"floor_pct": 10},
    "work_by_day": {},
    "gpu_series": {"split": "region"},
    "overview_counters_by_region": {},
    "overview_latency_by_region": {},
    "overview_gauges_by_region": {},
    "overview_series_counters": {},
    "overview_series_latency": {},
}
SERIES = {"latency_series", "gpu_series", "overview_series_counters", "overview_series_latency"}


def _max_rel_diff(a: Any, b: Any) -> float:
    """The largest relative difference between two query results' numeric cells."""
    import numpy as np

    if a.shape != b.shape:
        return float("inf")
    worst = 0.0
    for col in a.columns:
        if a[col].dtype.kind in "fiu" and b[col].dtype.kind in "fiu":
            x, y = a[col].to_numpy(float), b[col].to_numpy(float)
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return float("inf")
            ok = ~np.isnan(x) & (x != y)  # equal cells (infinite bounds too) differ by 0
            d = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-300)
            worst = max(worst, float(d.max()) if d.size else 0.0)
        elif a[col].tolist() != b[col].tolist():
            return float("inf")
    return worst


def page_filters(store: Store) -> dict[str, Any]:
    """Every region, model and arm of ``store``: the pages' filters with all selected."""
    return {
        "regions": sorted({p.name[7:] for p in store.lake.glob("counters/*/*/region=*")}),
        "models": [*sorted(store.query("SELECT DISTINCT coalesce(model, '') AS m FROM "
                    f"read_parquet('{store.lake}/counters_hourly/*/*/*/*.parquet')")["m"]), ""],
        "arms": ["v1", "v2", ""],
        "all_arms": ["v1", "v2"],
    }  # fmt: skip


def page_calls(root: str) -> Iterator[tuple[Store, str, str, dict[str, Any]]]:
    """(store, window, named query, its parameters) of each converted named query
    (:data:`NAMED`) over the last 24 h (5-minute buckets) and 7 days (hourly buckets)
    up to the latest step of the store at ``root``, every region, model and arm."""
    store = Store(root)
    last = store.latest_step("counters", ["requests"])
    assert last is not None, f"{root}: no request rows"
    every = page_filters(store)
    windows = (("24 h", timedelta(hours=24), 300), ("7 d", timedelta(days=7), 3600))
    for label, span, bucket in windows:
        params = {"start": last - span, "end": last, **every}
        for name, extra in NAMED.items():
            series = {"bucket_s": bucket} if name in SERIES else {}
            yield store, label, name, {**params, **extra, **series}


def named_main(roots: list[str]) -> None:
    """Time every converted named query over minute rows, the hourly tier only and
    every tier (``OBSERVATORY_ROLLUP`` = 0, hourly, 1), alternating."""
    import os

    modes = {"minute": "0", "hourly": "hourly", "tiers": "1"}
    print(f"{'store':10} {'window':5} {'query':28} {'minute s':>9} {'2nd':>6} "
          f"{'hourly s':>9} {'2nd':>6} {'tiers s':>9} {'2nd':>6} {'x':>5} "
          f"{'max rel diff':>12}")  # fmt: skip
    before = os.environ.get("OBSERVATORY_ROLLUP")
    for root in roots:
        for store, label, name, params in page_calls(root):
            times: dict[str, list[float]] = {m: [] for m in modes}
            frames = {}
            try:
                for _ in range(2):
                    for mode, env in modes.items():
                        os.environ["OBSERVATORY_ROLLUP"] = env
                        t0 = time.perf_counter()
                        frames[mode] = store.named(name, **params)
                        times[mode].append(time.perf_counter() - t0)
            finally:
                if before is None:
                    os.environ.pop("OBSERVATORY_ROLLUP", None)
                else:
                    os.environ["OBSERVATORY_ROLLUP"] = before
            m, h, r = times["minute"], times["hourly"], times["tiers"]
            diff = _max_rel_diff(frames["tiers"], frames["minute"])
            print(
                f"{Path(root).name:10} {label:5} {name:28} {m[0]:>9.3f} {m[1]:>6.3f} "
                f"{h[0]:>9.3f} {h[1]:>6.3f} {r[0]:>9.3f} {r[1]:>6.3f} "
                f"{m[0] / r[0]:>5.1f} {diff:>12.1e}"
            )


def main() -> None:
    """Run every query three ways on every store given; print the table."""
    if sys.argv[1:2] == ["--named"]:
        named_main(sys.argv[2:])
        return
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

"""What building the store's DuckDB views costs, before and after binding them in two
passes, and what queries on the views cost with either.

DuckDB binds a view when it is created, and binding a view over the lake's glob lists
every data file of its table.  The baseline ("one pass") is ``sql/views.sql`` run as
one script over the lake, as the store did before: each view derived from
``counters``, ``gauges`` or ``histograms`` binds its base view again, eight listings
of a table in all.  The store now (``Store.connect``, :func:`observatory.store._create_views`)
creates every view over the empty typed tables first and then only the three base
views over the lake ("two passes").  Per store given (the first is the size baseline,
e.g. the small fleet), ``--repeat`` times alternating, best run: the build, and ad hoc
queries on the views over the store's last day (each query binds its views again, so
it lists the files either way); the results of both connections must be equal.

    python bench/view_build.py /work/scale-data/small-h5 /work/scale-data/large-h5
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from observatory.store import SQL_DIR, Store

#: Ad hoc SQL over the views, each bounded to the hours before ``{end}``.
QUERIES = {
    "requests_by_region_minute 24 h": "SELECT count(*), sum(requests), sum(errors) "
    "FROM requests_by_region_minute WHERE ts_utc > TIMESTAMP '{end}' - INTERVAL 24 HOUR",
    "latency_buckets 1 h": "SELECT count(*), sum(cumulative_requests) FROM latency_buckets "
    "WHERE ts_utc > TIMESTAMP '{end}' - INTERVAL 1 HOUR",
    "gpu_by_region_minute 1 h": "SELECT count(*), sum(gpu_power_w) FROM gpu_by_region_minute "
    "WHERE ts_utc > TIMESTAMP '{end}' - INTERVAL 1 HOUR",
    "energy_cost_by_region_hour 6 h": "SELECT count(*), sum(energy_kwh), sum(cost_usd) "
    "FROM energy_cost_by_region_hour WHERE ts_utc > TIMESTAMP '{end}' - INTERVAL 6 HOUR",
    "counters requests 1 h": "SELECT count(*), sum(value) FROM counters "
    "WHERE signal = 'requests' AND ts_utc > TIMESTAMP '{end}' - INTERVAL 1 HOUR",
}


def _one_pass(store: Store) -> duckdb.DuckDBPyConnection:
    """The baseline: the views of ``sql/views.sql`` created in one script over the lake."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone='UTC'")
    con.execute((SQL_DIR / "schema.sql").read_text(encoding="utf-8"))
    sources = store._view_sources()  # the store's own sources
    con.execute((SQL_DIR / "views.sql").read_text(encoding="utf-8").format(**sources))
    return con


def _two_passes(store: Store) -> duckdb.DuckDBPyConnection:
    """The store's views now (:meth:`Store.connect`)."""
    return store.connect()


def _run(
    build: Callable[[Store], duckdb.DuckDBPyConnection], root: Path, end: datetime
) -> tuple[float, dict[str, float], dict[str, list[Any]]]:
    """Build the views with ``build`` on a fresh Store and run :data:`QUERIES`:
    (build seconds, seconds per query, rows per query)."""
    store = Store(root)
    t0 = time.perf_counter()
    con = build(store)
    built = time.perf_counter() - t0
    times: dict[str, float] = {}
    rows: dict[str, list[Any]] = {}
    for name, sql in QUERIES.items():
        t = time.perf_counter()
        rows[name] = con.execute(sql.format(end=end.isoformat(sep=" "))).fetchall()
        times[name] = time.perf_counter() - t
    con.close()
    store.refresh()
    return built, times, rows


def _same(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> bool:
    """Equal rows, floats to a relative 1e-12 (DuckDB's threads add in any order)."""
    for name in QUERIES:
        for row_a, row_b in zip(a[name], b[name], strict=True):
            for x, y in zip(row_a, row_b, strict=True):
                if isinstance(x, float) and isinstance(y, float):
                    if not math.isclose(x, y, rel_tol=1e-12):
                        return False
                elif x != y:
                    return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", type=Path, nargs="+", help="store folders; the first is the baseline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sides = {"one pass (before)": _one_pass, "two passes (now)": _two_passes}
    print(
        "best of",
        args.repeat,
        "alternating runs, seconds; queries over the last day (each binds its views again)",
    )
    first_build: dict[str, float] = {}
    for root in args.stores:
        end = Store(root).latest_step("counters", ["requests"]) or datetime(2000, 1, 1)
        best: dict[str, tuple[float, dict[str, float]]] = {}
        answers: dict[str, dict[str, list[Any]]] = {}
        for _ in range(args.repeat):
            for side, build in sides.items():
                built, times, rows = _run(build, root, end)
                answers.setdefault(side, rows)
                old = best.get(side)
                best[side] = (
                    min(built, old[0]) if old else built,
                    {q: min(t, old[1][q]) if old else t for q, t in times.items()},
                )
        same = _same(*answers.values())
        print(
            f"\n{root}  (last step {end}; same rows (floats to 1e-12): {'yes' if same else 'NO'})"
        )
        print(f"{'':34} " + " ".join(f"{side:>18}" for side in sides) + f" {'ratio':>7}")
        builds = [best[side][0] for side in sides]
        for side, b in zip(sides, builds, strict=True):
            first_build.setdefault(side, b)
        print(
            f"{'build views':34} "
            + " ".join(f"{b:>18.3f}" for b in builds)
            + f" {builds[0] / builds[1]:>7.1f}"
        )
        for q in QUERIES:
            qt = [best[side][1][q] for side in sides]
            print(f"{q:34} " + " ".join(f"{t:>18.3f}" for t in qt) + f" {qt[0] / qt[1]:>7.2f}")
        print(
            f"{'build, x the first store':34} "
            + " ".join(f"{b / first_build[s]:>18.1f}" for s, b in zip(sides, builds, strict=True))
        )


if __name__ == "__main__":
    main()

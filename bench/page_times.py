"""Server-side time of every dashboard page at two fleet sizes (small = baseline, large).

    python bench/page_times.py --small /work/scale-data/small --large /work/scale-data/large

For each page file in ``app/views/`` and each store, a fresh Python process runs the
page headless with Streamlit's ``AppTest`` (the page script as the server runs it:
its queries, analytics, and the Plotly figures and tables it builds), with
``OBSERVATORY_STORE`` pointing at the store and the page's default filters:

- cold: the first run in a fresh process whose modules (``app``, ``analytics``,
  ``observatory``, Plotly) are already imported, as in a running server: empty
  ``st.cache_data``/``cache_resource``, DuckDB views built, Parquet footers read (the
  OS page cache is whatever it is; run twice to see it warm);
- warm: a second run in the same process (Streamlit's caches hit).

What precedes the cold run (``--modes``, one fresh process each): ``start`` nothing
(the first page right after the server started, before its filter-catalogue warm-up
finished: the worst case); ``warmed`` the catalogue warm-up that ``observatory serve``
starts in the background, run to its end first (timed as ``warmup_s``: a server that
has been up a few seconds); ``in-server`` another page run first in the same process
(Latency, or GPUs & Energy for Latency: the first visit of this page in a server in
use; not Overview, whose SLO engine takes several seconds at the large size).
``--rollup 1 hourly 0`` repeats each measurement with ``OBSERVATORY_ROLLUP`` set to
each value, interleaved (every roll-up tier; the hourly tier only; minute rows only).

Every query the run executes is timed too (``Store.query`` and ``Store.named``
wrapped): "SQL s" is the cold run's total time in DuckDB, and the table names the
slowest named query of each page (the rest of a page's time is pandas, analytics and
building the Plotly figures).  Goals (issue #9): cold under 2 s at the
large size on this 2-core machine, and large/small under 2x.  The baseline is the
small fleet (2 regions) measured in the same run.  ``--json`` writes the raw figures.

``--catalogue`` times only the shared filters' catalogue (time bounds, regions,
models, arms), which every analysis page reads: baseline ("before") the named queries
that take DISTINCT over the minute rows, against ``app/filter_catalogue.py``
("after": hourly roll-ups and partition edges), each in a fresh process with the
store's views built, ``--repeat`` times alternating (median), and checks that both
list the same values::

    nice -n 19 python bench/page_times.py --catalogue \
        --small /work/scale-data/small --large /work/scale-data/large
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ROOT / "app" / "views"

CHILD = r"""
import json, sys, time
from collections import defaultdict
from observatory.store import Store
calls = defaultdict(float)
counts = defaultdict(int)
_named = Store.named
def named(self, name, **params):
    t = time.perf_counter()
    try:
        return _named(self, name, **params)
    finally:
        calls[name] += time.perf_counter() - t
        counts[name] += 1
Store.named = named
sql_time = [0.0, 0]
_query = Store.query
def query(self, sql, params=None):
    t = time.perf_counter()
    try:
        return _query(self, sql, params)
    finally:
        sql_time[0] += time.perf_counter() - t
        sql_time[1] += 1
Store.query = query
from streamlit.testing.v1 import AppTest
import importlib, pkgutil
for pkg in ("app", "analytics", "observatory"):  # a running server has these imported
    for mod in pkgutil.iter_modules([pkg]):
        if pkg != "app" or mod.name not in ("main",):
            try:
                importlib.import_module(f"{pkg}.{mod.name}")
            except Exception:
                pass
import plotly.express, plotly.graph_objects
out = {}
mode = sys.argv[3]
if mode == "warmed":  # the server started a while ago: its catalogue warm-up is done
    import os
    from app.filter_catalogue import warm_in_background
    t = time.perf_counter()
    warm_in_background(os.environ["OBSERVATORY_STORE"]).join()
    out["warmup_s"] = time.perf_counter() - t
elif mode.startswith("after:"):  # first run of this page in a server that ran another
    t = time.perf_counter()
    AppTest.from_file(mode[len("after:"):], default_timeout=float(sys.argv[2])).run()
    out["previous_page_s"] = time.perf_counter() - t
at = AppTest.from_file(sys.argv[1], default_timeout=float(sys.argv[2]))
for run in ("cold", "warm"):
    calls.clear(); counts.clear(); sql_time[:] = [0.0, 0]
    t = time.perf_counter()
    at.run()
    out[run] = time.perf_counter() - t
    out[run + "_sql_s"], out[run + "_sql_n"] = sql_time
    out[run + "_queries"] = dict(calls)
    out[run + "_query_calls"] = dict(counts)
out["exceptions"] = [str(e.value)[:300] for e in at.exception]
out["errors"] = [str(e.value)[:200] for e in at.error]
out["warnings"] = [str(e.value)[:200] for e in at.warning][:3]
out["charts"] = len(at.get("plotly_chart"))
out["tables"] = len(at.dataframe) + len(at.table)
import resource
out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


CATALOGUE_CHILD = r"""
import json, sys, time
from observatory.store import Store
import app.filter_catalogue as fc
store = Store(sys.argv[1]); store.connect()
parts, values = {}, {}
def timed(part, fn):
    t = time.perf_counter()
    out = fn()
    parts[part] = parts.get(part, 0.0) + time.perf_counter() - t
    return out
if sys.argv[2] == "before":
    b = timed("time bounds", lambda: store.named("overview_time_bounds"))
    r = timed("regions + arms", lambda: store.named("overview_regions"))
    a = timed("regions + arms", lambda: store.named("filters_arms"))
    m = timed("models", lambda: store.named("overview_models"))
    values = {"bounds": [str(b["first_ts"][0]), str(b["last_ts"][0])], "arms": a["arm"].tolist(),
              "regions": r["region"].tolist(), "models": m["model"].tolist()}
else:
    req = fc._partitions(store, "counters", fc.REQUESTS)
    bounds = timed(
        "time bounds",
        lambda: [fc._first_step(store, req), store.latest_step("counters", [fc.REQUESTS])],
    )
    labels = timed("regions + arms", lambda: fc._request_labels(store))
    with_data = sorted({r for r, _, _ in labels})
    regions = timed("regions + arms", lambda: fc._regions(store, with_data))
    other = timed("models", lambda: fc._other_models(store))
    values = {"bounds": [str(x) for x in bounds], "arms": sorted({a for _, _, a in labels}),
              "regions": regions["region"].tolist(),
              "models": sorted({m for _, m, _ in labels} | other)}
parts["total"] = sum(parts.values())
if sys.argv[2] == "after":  # again in this process: no file changed, none read again
    t = time.perf_counter()
    again = fc.read_catalogue(store)
    parts["total, files seen"] = time.perf_counter() - t
    assert again.models == values["models"] and again.arms == values["arms"]
else:  # the named queries again (DuckDB keeps no results between queries)
    t = time.perf_counter()
    for name in ("overview_time_bounds", "overview_regions", "filters_arms", "overview_models"):
        store.named(name)
    parts["total, files seen"] = time.perf_counter() - t
print("RESULT " + json.dumps({"parts": parts, "values": values}))
"""


def measure_catalogue(store: Path, side: str) -> dict[str, Any]:
    """One fresh-process run of the catalogue, ``before`` (named queries) or ``after``."""
    proc = subprocess.run(
        [sys.executable, "-c", CATALOGUE_CHILD, str(store), side],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"catalogue {side} on {store} failed: {(proc.stderr or proc.stdout)[-400:]}")


def catalogue_table(stores: dict[str, Path], repeat: int) -> None:
    """Time the filter catalogue before/after on each store and print the table."""
    import statistics

    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    same: dict[str, bool] = {}
    for label, store in stores.items():
        for _ in range(repeat):
            results = {side: measure_catalogue(store, side) for side in ("before", "after")}
            for side, res in results.items():
                runs.setdefault((label, side), []).append(res["parts"])
            same[label] = results["before"]["values"] == results["after"]["values"]
    parts = list(runs[(next(iter(stores)), "before")][0])
    cols = [(label, side) for label in stores for side in ("before", "after")]
    print(
        f"\nfilter catalogue, seconds (median of {repeat} fresh processes each); "
        "baseline: before = DISTINCT over the minute rows (named queries)"
    )
    head = f"{'query':16}" + "".join(f" {label + ' ' + side:>13}" for label, side in cols)
    print(head + f" {'speed-up':>10}")
    print("-" * (len(head) + 11))
    for part in parts:
        med = [statistics.median(r[part] for r in runs[c]) for c in cols]
        gain = " ".join(f"{med[i] / med[i + 1]:.1f}x" for i in range(0, len(med), 2))
        print(f"{part:16}" + "".join(f" {m:>13.3f}" for m in med) + f" {gain:>10}")
    print(
        "same values as the named queries: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items())
    )


#: What "cold" means per ``--modes`` entry (each a fresh process).
MODES = {
    "start": "first page right after server start (catalogue warm-up not done)",
    "warmed": "first page after the server's catalogue warm-up finished",
    "in-server": "first run of this page after another page (Latency; for Latency: GPUs & "
    "Energy) ran in the process",
}


def _child_mode(mode: str, page: Path) -> str:
    """The child's mode argument: ``in-server`` runs another page first."""
    if mode != "in-server":
        return mode
    other = "gpus_energy.py" if page.name == "latency.py" else "latency.py"
    return "after:" + str(VIEWS / other)


def measure(
    page: Path, store: Path, timeout: float, mode: str = "start", rollup: str | None = None
) -> dict[str, Any]:
    """Run ``page`` cold then warm on ``store`` in a fresh process (after what ``mode``
    of :data:`MODES` says; ``rollup``: ``OBSERVATORY_ROLLUP`` for it); the child's figures."""
    env = {
        **os.environ,
        **({"OBSERVATORY_ROLLUP": rollup} if rollup is not None else {}),
        "OBSERVATORY_STORE": str(store),
        "PYTHONPATH": str(ROOT),
        "OBSERVATORY_EXPERIMENTS": os.environ.get(
            "OBSERVATORY_EXPERIMENTS", str(ROOT / "examples" / "experiments.yaml")
        ),
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(page), str(timeout), _child_mode(mode, page)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=timeout * 2 + 60,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"over {timeout * 2 + 60:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    return {"failed": (proc.stderr or proc.stdout)[-400:]}


def _slowest(figures: dict[str, Any]) -> str:
    queries = figures.get("cold_queries") or {}
    if not queries:
        return "-"
    name, secs = max(queries.items(), key=lambda kv: kv[1])
    return f"{name} {secs:.2f}s"


def main() -> None:
    """Measure every page at both sizes and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=Path, required=True, help="store of the small fleet")
    ap.add_argument("--large", type=Path, required=True, help="store of the large fleet")
    ap.add_argument("--pages", nargs="*", help="page files (default: every app/views/*.py)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per page run")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    ap.add_argument(
        "--catalogue", action="store_true", help="time only the filter catalogue, before/after"
    )
    ap.add_argument("--repeat", type=int, default=3, help="--catalogue: runs per store and side")
    ap.add_argument(
        "--modes",
        nargs="*",
        default=["start"],
        choices=list(MODES),
        help="what precedes the cold run, one fresh process each (default: start)",
    )
    ap.add_argument(
        "--rollup",
        nargs="*",
        default=["1"],
        choices=["1", "hourly", "0"],
        help="OBSERVATORY_ROLLUP settings to compare, interleaved (1: every tier; hourly: "
        "the hourly tier only; 0: minute rows)",
    )
    args = ap.parse_args()
    if args.catalogue:
        catalogue_table({"small": args.small, "large": args.large}, args.repeat)
        return
    pages = (
        [VIEWS / p for p in args.pages]
        if args.pages
        else sorted(p for p in VIEWS.glob("*.py") if p.name != "__init__.py")
    )
    runs = [(m, r) for m in args.modes for r in args.rollup]
    every: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for page in pages:
        for mode, rollup in runs:  # interleaved: every setting sees the same load
            key = f"{mode}, OBSERVATORY_ROLLUP={rollup}"
            by = every.setdefault(key, {}).setdefault(page.name, {})
            for label, store in (("small", args.small), ("large", args.large)):
                by[label] = measure(page, store, args.timeout, mode, rollup)
                print(f"{page.name} {label} {key}: {by[label]}", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(every, indent=2), encoding="utf-8")
    for key, results in every.items():
        mode, rollup = key.split(", ")
        print(f"\ncold = {MODES[mode]}; {rollup}")
        print_table(results)


def print_table(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The table of one mode: per page, small and large cold/warm seconds."""
    head = (
        f"{'page':22} {'small cold':>10} {'large cold':>10} {'ratio':>6} {'<2s':>4} {'<2x':>4} "
        f"{'small warm':>10} {'large warm':>10} {'SQL s':>6} {'RSS MiB':>8}  "
        "slowest named query (large)"
    )
    print("\nbaseline: the small fleet (2 regions), same run; seconds of server-side page run")
    print(head)
    print("-" * len(head))
    for name, by in results.items():
        s, g = by["small"], by["large"]
        if "failed" in s or "failed" in g:
            print(f"{name:22} failed: {s.get('failed') or g.get('failed')}")
            continue
        sc, lc = float(s["cold"]), float(g["cold"])
        ratio = lc / sc if sc else float("inf")
        bad = "" if not (s["exceptions"] or g["exceptions"]) else "  EXCEPTION"
        print(
            f"{name:22} {sc:>10.2f} {lc:>10.2f} {ratio:>6.1f} {'yes' if lc < 2 else 'NO':>4} "
            f"{'yes' if ratio < 2 else 'NO':>4} {float(s['warm']):>10.2f} "
            f"{float(g['warm']):>10.2f} {float(g['cold_sql_s']):>6.2f} "
            f"{float(g['rss_mib']):>8.0f}  "
            f"{_slowest(g)}{bad}"
        )


if __name__ == "__main__":
    main()

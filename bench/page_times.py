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
(the first page right after the server started, before its warm-up finished: the
page builds the DuckDB views and reads the catalogue itself, the worst case);
``warmed`` the warm-up that ``observatory serve`` starts in the background
(``app.data.warm_up``: the pages' shared Store with its views, then the filter
catalogue through it; a ``--baseline-tree`` without it: its catalogue warm-up), run to
its end first (timed as ``warmup_s``: a server that has been up a few seconds);
``in-server`` another page run first in the same process (Latency, or GPUs & Energy
for Latency: the first visit of this page in a server in use; not Overview, whose SLO
engine takes several seconds at the large size).
``--rollup 1 hourly 0`` repeats each measurement with ``OBSERVATORY_ROLLUP`` set to
each value, interleaved (every roll-up tier; the hourly tier only; minute rows only).

Every query the run executes is timed too (``Store.query`` and ``Store.named``
wrapped): "SQL s" is the cold run's total time in DuckDB, and the table names the
slowest named query of each page (the rest of a page's time is pandas, analytics and
building the Plotly figures).  Goals (issue #9): cold under 2 s at the
large size on this 2-core machine, and large/small under 2x.  The baseline is the
small fleet (2 regions) measured in the same run.  ``--json`` writes the raw figures.

Each table also splits the cold run: the shared sidebar filters (``shared_filters``:
the filter catalogue, and the Store's DuckDB views, which the first reader builds
unless the warm-up did), and the page's own part (the rest).  ``--repeat N`` runs every page,
size (and tree) N times interleaved and shows the run with the median cold time.
``--baseline-tree DIR`` runs the same pages from another checkout (``git worktree add
/tmp/before HEAD`` before a change) interleaved with this one's, as the named baseline
of a before/after table.  ``--profile DIR`` writes each cold run's cProfile (the script
thread) and prints where the time grows from small to large, by library and function::

    flock /tmp/large.lock python bench/page_times.py --small S --large L --modes warmed \
        --pages latency.py gpus_energy.py --repeat 3 --baseline-tree /tmp/before

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
parts = defaultdict(float)  # cold-run seconds of shared steps every page takes
def _timed(owner, attr, part):
    fn = getattr(owner, attr)
    def wrapped(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            parts[part] += time.perf_counter() - t
    setattr(owner, attr, wrapped)
_timed(Store, "_build_connection", "views")  # DuckDB views over the lake, once per Store
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
import app.filters
_timed(app.filters, "shared_filters", "filters")  # the sidebar: catalogue + widgets
out = {}
mode = sys.argv[3]
if mode == "warmed":  # the server started a while ago: its warm-up is done
    import os
    try:  # what `observatory serve` starts: the pages' Store (views) and the catalogue
        from app.data import warm_up
    except ImportError:  # a tree from before it (--baseline-tree): the catalogue only
        from app.filter_catalogue import warm_in_background as warm_up
    t = time.perf_counter()
    warm_up(os.environ["OBSERVATORY_STORE"]).join()
    out["warmup_s"] = time.perf_counter() - t
    if os.environ.get("PAGE_TIMES_GC_FREEZE") == "1":  # --gc-freeze
        import gc
        gc.freeze()
    out["warmup_parts"] = dict(parts)
elif mode.startswith("after:"):  # first run of this page in a server that ran another
    t = time.perf_counter()
    AppTest.from_file(mode[len("after:"):], default_timeout=float(sys.argv[2])).run()
    out["previous_page_s"] = time.perf_counter() - t
at = AppTest.from_file(sys.argv[1], default_timeout=float(sys.argv[2]))
profile_to = sys.argv[4] if len(sys.argv) > 4 else ""
profiling = [False]
if profile_to:  # the page script runs in the script runner's own thread: profile there
    import cProfile
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner
    _thread = LocalScriptRunner._run_script_thread
    def _profiled(self):
        if not profiling[0]:
            return _thread(self)
        prof = cProfile.Profile()
        try:
            return prof.runcall(_thread, self)
        finally:
            prof.dump_stats(profile_to)
    LocalScriptRunner._run_script_thread = _profiled
for run in ("cold", "warm"):
    calls.clear(); counts.clear(); sql_time[:] = [0.0, 0]; parts.clear()
    profiling[0] = run == "cold"
    t, cpu = time.perf_counter(), time.process_time()
    at.run()
    out[run] = time.perf_counter() - t
    out[run + "_cpu_s"] = time.process_time() - cpu  # every thread: script and DuckDB
    out[run + "_sql_s"], out[run + "_sql_n"] = sql_time
    out[run + "_queries"] = dict(calls)
    out[run + "_query_calls"] = dict(counts)
    out[run + "_parts"] = dict(parts)
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
    return "after:" + str(page.parent / other)


def measure(
    page: Path,
    store: Path,
    timeout: float,
    mode: str = "start",
    rollup: str | None = None,
    profile: Path | None = None,
    root: Path = ROOT,
) -> dict[str, Any]:
    """Run ``page`` cold then warm on ``store`` in a fresh process (after what ``mode``
    of :data:`MODES` says; ``rollup``: ``OBSERVATORY_ROLLUP`` for it); the child's figures.

    ``profile``: write the cold run's cProfile statistics (the script thread) there.
    ``root``: the checkout whose page of that name and modules run (``--baseline-tree``)."""
    page = root / "app" / "views" / page.name
    env = {
        **os.environ,
        **({"OBSERVATORY_ROLLUP": rollup} if rollup is not None else {}),
        "OBSERVATORY_STORE": str(store),
        "PYTHONPATH": str(root),
        "OBSERVATORY_EXPERIMENTS": os.environ.get(
            "OBSERVATORY_EXPERIMENTS", str(root / "examples" / "experiments.yaml")
        ),
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(page), str(timeout), _child_mode(mode, page)]
            + ([str(profile)] if profile else []),
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=timeout * 2 + 60,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"over {timeout * 2 + 60:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    return {"failed": (proc.stderr or proc.stdout)[-400:]}


#: Where a profiled function's own time is counted, by the path of its file.
AREAS = (
    ("observatory/store/", "DuckDB (Store)"),
    ("duckdb", "DuckDB (Store)"),
    ("/plotly/", "Plotly"),
    ("/_plotly_utils/", "Plotly"),
    ("/streamlit/", "Streamlit"),
    ("/pyarrow/", "pyarrow"),
    ("/pandas/", "pandas"),
    ("/numpy/", "numpy"),
    ("/analytics/", "analytics/"),
    ("/app/", "app/"),
)


def _area(path: str) -> str:
    return next((area for key, area in AREAS if key in path), "other")


def profile_areas(path: Path) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """A cProfile dump's own time per area (:data:`AREAS`), and per function
    ``(own s, cumulative s)``.  A C function's own time (file ``~``) goes to its callers'
    areas in proportion to their share of its time (a DuckDB ``execute`` to the Store)."""
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    areas: dict[str, float] = {}
    funcs: dict[str, tuple[float, float]] = {}
    for (file, line, name), (_cc, _nc, tt, ct, callers) in stats.items():
        funcs[f"{Path(file).name}:{line}({name})" if file != "~" else name] = (tt, ct)
        if file != "~" or not callers:
            areas[_area(file)] = areas.get(_area(file), 0.0) + tt
            continue
        shares = {c: v[2] for c, v in callers.items()}
        whole = sum(shares.values()) or 1.0
        for (cfile, _l, _n), part in shares.items():
            area = _area(cfile) if "duckdb" not in name else "DuckDB (Store)"
            areas[area] = areas.get(area, 0.0) + tt * part / whole
    return areas, funcs


def print_growth(page: str, small: Path, large: Path, top: int = 15) -> None:
    """Print where one page's profiled cold run grows from ``small`` to ``large``: own
    seconds per area, then the functions whose cumulative seconds grow most."""
    if not (small.exists() and large.exists()):
        print(f"{page}: no profile (a run failed)")
        return
    (sa, sf), (la, lf) = profile_areas(small), profile_areas(large)
    print(f"\n{page}: profiled cold run (own seconds; profiling slows Python code ~1.5-2x)")
    print(f"{'area':18} {'small':>7} {'large':>7} {'growth':>7}")
    for area in sorted(set(sa) | set(la), key=lambda a: -(la.get(a, 0) - sa.get(a, 0))):
        s, g = sa.get(area, 0.0), la.get(area, 0.0)
        print(f"{area:18} {s:>7.3f} {g:>7.3f} {g - s:>+7.3f}")
    print(f"{'total':18} {sum(sa.values()):>7.3f} {sum(la.values()):>7.3f}")
    grow = sorted(lf, key=lambda k: -(lf[k][1] - sf.get(k, (0.0, 0.0))[1]))[:top]
    print(f"{'function (cumulative s)':60} {'small':>7} {'large':>7}")
    for k in grow:
        print(f"{k[:60]:60} {sf.get(k, (0.0, 0.0))[1]:>7.3f} {lf[k][1]:>7.3f}")


def _part(figures: dict[str, Any], part: str) -> str:
    """A shared step's cold seconds (``filters``: the sidebar; ``views``: the Store's
    DuckDB views), ``-`` when the run did not report it."""
    value = (figures.get("cold_parts") or {}).get(part)
    return "-" if value is None else f"{float(value):.2f}"


def _own(figures: dict[str, Any]) -> float | None:
    """The page's own cold seconds: the run less the shared steps, the sidebar filters
    (which build the Store's views when they come first) or, on a page without the
    sidebar (SQL, Collection health), the Store's views when the page built them
    (``start`` mode, or a tree whose warm-up does not build them); None when the run
    did not report its parts."""
    if "cold" not in figures or "cold_parts" not in figures:
        return None
    parts = figures["cold_parts"] or {}
    shared = parts["filters"] if "filters" in parts else parts.get("views", 0.0)
    return float(figures["cold"]) - float(shared)


def _ratio(small: float, large: float) -> str:
    """``large / small`` to one decimal; ``-`` when the small figure is 0 (a part the
    page does not have, e.g. the sidebar filters of the SQL page)."""
    return f"{large / small:.1f}" if small else "-"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


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
    ap.add_argument(
        "--repeat",
        type=int,
        help="runs per store and side (--catalogue, default 3) or per page, size and tree "
        "(default 1), interleaved; the tables show the run with the median cold time",
    )
    ap.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout of the project (e.g. `git worktree add /tmp/before HEAD`) "
        "whose pages run interleaved with this one's as the baseline: a before/after table",
    )
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
    ap.add_argument(
        "--profile",
        type=Path,
        help="folder: profile each cold run (cProfile, <page>-<size>-<mode>.prof) and print "
        "where the time grows from small to large (by library and by function)",
    )
    ap.add_argument(
        "--gc-freeze",
        action="store_true",
        help="warmed mode: gc.freeze() after the warm-up (its objects leave the cyclic "
        "garbage collector's generations), to measure what the collector costs a page",
    )
    args = ap.parse_args()
    if args.gc_freeze:
        os.environ["PAGE_TIMES_GC_FREEZE"] = "1"  # read by each child (CHILD)
    if args.catalogue:
        catalogue_table({"small": args.small, "large": args.large}, args.repeat or 3)
        return
    pages = (
        [VIEWS / p for p in args.pages]
        if args.pages
        else sorted(p for p in VIEWS.glob("*.py") if p.name != "__init__.py")
    )
    runs = [(m, r) for m in args.modes for r in args.rollup]
    trees = {"this": ROOT, **({"baseline": args.baseline_tree} if args.baseline_tree else {})}
    every: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for page in pages:
        for mode, rollup in runs:  # interleaved: every setting sees the same load
            key = f"{mode}, OBSERVATORY_ROLLUP={rollup}"
            by = every.setdefault(key, {}).setdefault(page.name, {})
            tries: dict[str, list[dict[str, Any]]] = {}
            for _ in range(args.repeat or 1):
                for tree, root in trees.items():
                    for label, store in (("small", args.small), ("large", args.large)):
                        prof = None
                        if args.profile and tree == "this":
                            args.profile.mkdir(parents=True, exist_ok=True)
                            prof = args.profile / f"{page.stem}-{label}-{mode}-{rollup}.prof"
                        name = label if tree == "this" else f"{label} ({tree})"
                        got = measure(page, store, args.timeout, mode, rollup, prof, root)
                        tries.setdefault(name, []).append(got)
                        print(f"{page.name} {name} {key}: {got}", file=sys.stderr, flush=True)
            by.update({name: _median_run(results) for name, results in tries.items()})
            if args.profile:
                print_growth(
                    page.name,
                    args.profile / f"{page.stem}-small-{mode}-{rollup}.prof",
                    args.profile / f"{page.stem}-large-{mode}-{rollup}.prof",
                )
    if args.json:
        args.json.write_text(json.dumps(every, indent=2), encoding="utf-8")
    for key, results in every.items():
        mode, rollup = key.split(", ")
        print(f"\ncold = {MODES[mode]}; {rollup}; median of {args.repeat or 1} run(s)")
        print_table(results)
        if args.baseline_tree:
            print_compare(results, args.baseline_tree)


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median cold time (a failed run counts as the slowest), with
    every run's cold seconds in ``cold_runs``."""
    ok = sorted((r for r in results if "failed" not in r), key=lambda r: float(r["cold"]))
    if len(ok) < len(results) and len(ok) <= len(results) // 2:
        return next(r for r in results if "failed" in r)
    chosen = dict(ok[(len(results) - 1) // 2])
    chosen["cold_runs"] = [r.get("cold") for r in results]
    return chosen


def print_compare(results: dict[str, dict[str, dict[str, Any]]], baseline: Path) -> None:
    """Before (``baseline`` tree) and after (this tree), same run: cold seconds at each
    size, the large/small ratio, the page's own part (cold less the sidebar), and the
    cold run's CPU seconds (every thread of the process; less sensitive than wall time
    to other jobs on the machine), and the sidebar filters' part of the cold run."""
    print(f"\nbefore = {baseline}, after = this tree ({ROOT}), interleaved in this run")
    head = (
        f"{'page':22} {'small':>11} {'large':>11} {'ratio':>9} {'own small':>11} "
        f"{'own large':>11} {'own ratio':>9} {'CPU small':>11} {'CPU large':>11} {'CPU ratio':>9} "
        f"{'filt small':>11} {'filt large':>11} {'filt ratio':>9}"
    )
    print(head + "   (before -> after)")
    print("-" * len(head))
    for name, by in results.items():
        runs = {
            k: by.get(k, {}) for k in ("small", "large", "small (baseline)", "large (baseline)")
        }
        if any("failed" in r or "cold" not in r for r in runs.values()):
            print(f"{name:22} failed")
            continue
        cold = {k: float(r["cold"]) for k, r in runs.items()}
        own = {k: _own(r) or 0.0 for k, r in runs.items()}
        cpu = {k: float(r.get("cold_cpu_s", "nan")) for k, r in runs.items()}
        filters = {
            k: float((r.get("cold_parts") or {}).get("filters", 0.0)) for k, r in runs.items()
        }
        cells = []
        for fig in (cold, own, cpu, filters):
            before = (fig["small (baseline)"], fig["large (baseline)"])
            after = (fig["small"], fig["large"])
            cells += [
                f"{before[0]:.2f}->{after[0]:.2f}",
                f"{before[1]:.2f}->{after[1]:.2f}",
                f"{_ratio(*before)}->{_ratio(*after)}",
            ]
        print(
            f"{name:22} "
            + " ".join(f"{c:>{w}}" for c, w in zip(cells, (11, 11, 9) * 4, strict=True))
        )


def print_table(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The table of one mode: per page, small and large cold/warm seconds; then where
    the cold run's time went at each size (small / large): the shared sidebar filters
    (of which the Store's DuckDB views, built by the first reader unless the warm-up
    did), the page's own part, its SQL, and the warm-up that preceded it."""
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
    print("\ncold seconds, small / large: sidebar filters (of which DuckDB views), the page's")
    print("own part (cold less filters; its own ratio), the SQL of the whole run, and the")
    print("server's warm-up run before it (warmed mode: views and catalogue; '-' none)")
    cols = (
        f"{'filters':>11} {'views':>11} {'page own':>11} {'own ratio':>9} {'SQL':>11} "
        f"{'warm-up':>11}"
    )
    print(f"{'page':22} {cols}")
    for name, by in results.items():
        s, g = by["small"], by["large"]
        if "failed" in s or "failed" in g:
            continue
        own = [_own(f) for f in (s, g)]
        own_ratio = f"{own[1] / own[0]:.1f}" if own[0] and own[1] else "-"
        print(
            f"{name:22} {_part(s, 'filters'):>5}/{_part(g, 'filters'):<5} "
            f"{_part(s, 'views'):>5}/{_part(g, 'views'):<5} "
            f"{_fmt(own[0]):>5}/{_fmt(own[1]):<5} {own_ratio:>9} "
            f"{float(s['cold_sql_s']):>5.2f}/{float(g['cold_sql_s']):<5.2f} "
            f"{_fmt(s.get('warmup_s')):>5}/{_fmt(g.get('warmup_s')):<5}"
        )


if __name__ == "__main__":
    main()

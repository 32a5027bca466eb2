"""The Drift page's server-side time on one store, with a given report archive.

    python bench/drift_page_times.py --store /work/scale-data/large --archive reports/large

``bench/page_times.py`` runs the small and the large store with one environment, so
with one report archive; the Drift page reads the saved report of its window from
the archive (docs/drift.md, "The page at the large fleet"), and the two stores'
reports have the same name.  This runs the page on one store with its own archive
(an empty folder measures the on-demand path): first ``page_times``'s own child
(cold and warm run in a fresh process, SQL time, RSS), then, in another fresh
process, the cold run again with the time spent in the page's main parts
(the sidebar's filters, reading and checking the saved report, computing drift,
figures, the archive preview).  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.page_times import measure  # noqa: E402

PAGE = ROOT / "app" / "views" / "drift.py"

PARTS_CHILD = r"""
import functools, importlib, json, pkgutil, sys, time
for pkg in ("app", "analytics", "observatory"):  # a running server has these imported
    for mod in pkgutil.iter_modules([pkg]):
        if pkg != "app" or mod.name != "main":
            try:
                importlib.import_module(f"{pkg}.{mod.name}")
            except Exception:
                pass
import plotly.graph_objects
import app.drift_data, app.filters, app.ui
import observatory.drift_archive as da, observatory.drift_report as dr
times = {}
def timed(mod, name):
    fn = getattr(mod, name)
    @functools.wraps(fn)
    def run(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            key = f"{mod.__name__}.{name}"
            times[key] = times.get(key, 0.0) + time.perf_counter() - t
    setattr(mod, name, run)
for mod, name in [(app.filters, "shared_filters"), (da, "load_report"), (da, "covers"),
                  (app.drift_data, "report"), (dr, "dist_figure"), (dr, "over_time_figure"),
                  (app.ui, "show_report_file")]:
    timed(mod, name)
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=float(sys.argv[2]))
t = time.perf_counter()
at.run()
out = {"cold": time.perf_counter() - t, "exceptions": [str(e.value)[:300] for e in at.exception]}
out["parts"] = {k: round(v, 3) for k, v in sorted(times.items(), key=lambda kv: -kv[1])}
print("RESULT " + json.dumps(out))
"""


def parts(store: Path, timeout: float) -> dict[str, object]:
    """One cold run in a fresh process, timing the page's main parts."""
    env = {**os.environ, "OBSERVATORY_STORE": str(store), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PARTS_CHILD, str(PAGE), str(timeout)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout * 2 + 60,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    return {"failed": (proc.stderr or proc.stdout)[-400:]}


def main() -> None:
    """Measure the page on ``--store`` with ``--archive`` and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True, help="the store")
    ap.add_argument("--archive", type=Path, required=True, help="its drift report folder")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per page run")
    args = ap.parse_args()
    os.environ["OBSERVATORY_DRIFT_REPORTS"] = str(args.archive.resolve())
    page = measure(PAGE, args.store, args.timeout)
    keep = ("cold", "cold_sql_s", "cold_queries", "warm", "exceptions", "errors", "rss_mib")
    out: dict[str, object] = {"store": str(args.store), "archive": str(args.archive)}
    out.update({k: page[k] for k in (*keep, "failed") if k in page})
    out["parts_run"] = parts(args.store, args.timeout)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

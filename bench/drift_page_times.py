"""The Drift page's server-side time on one store, with a given report archive.

    python bench/drift_page_times.py --store /work/scale-data/large --archive reports/large

``bench/page_times.py`` runs the small and the large store with one environment, so
with one report archive; the Drift page reads the saved report of its window from
the archive (docs/drift.md, "The page at the large fleet"), and the two stores'
reports have the same name.  This runs the page on one store with its own archive
(an empty folder measures the on-demand path): first ``page_times``'s own child
(cold and warm run in a fresh process, SQL time, RSS), then, in another fresh
process, the cold run again with the time spent in the page's main parts
(the sidebar's filters, reading and checking the saved report, figures, the archive
preview); on the on-demand path the cold run only starts the background computation
(:mod:`observatory.drift_ondemand`), so this run then waits for it (``on_demand_s``)
and runs the page again, which picks the result up (``picked_up_s``).  Prints one
JSON object.

``--modes`` (as ``bench/page_times.py``'s; default both, each in its own fresh
processes): ``warmed``, the page's first run in a server whose warm-up (the one
``observatory serve`` starts: :func:`app.filter_catalogue.warm_in_background`) has
finished, timed as ``warmup_s``; ``start``, the first page right after the server
started, warm-up not done (the worst case)::

    flock /tmp/large.lock python bench/drift_page_times.py --store /work/scale-data/large-h5 \
        --archive /tmp/final/arch-large --modes warmed start

A live store (the page's default view while the collector writes)::

    python bench/drift_page_times.py --store /work/scale-data/small --archive /tmp/live-a \
        --live /tmp/live-small --cut 2026-11-28T00:00

builds ``--live`` as the store collected up to ``--cut`` (symbolic links to the
store's files of the days before the cut's, its data files of the cut's day copied
and cut there, nothing later: the store is never written), writes the scheduled
report of the 24 h ending at the cut into ``--archive`` (timed), appends the next
step to every file of the cut's day as the collector would (new files, renamed over),
then measures the page there: its default view ends at the new latest step, which no
report names, so it shows the newest fresh scheduled report after checking its
freshness (the digests of the rewritten files' rows inside the window).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.page_times import MODES, measure  # noqa: E402

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
                  (da, "latest_fresh"),
                  (app.drift_data, "fresh"), (dr, "dist_figure"), (dr, "over_time_figure"),
                  (app.ui, "show_report_file")]:
    timed(mod, name)
from streamlit.testing.v1 import AppTest
out = {}
if sys.argv[3] == "warmed":  # the server's warm-up (observatory serve's) has finished
    import os
    from app.filter_catalogue import warm_in_background
    t = time.perf_counter()
    warm_in_background(os.environ["OBSERVATORY_STORE"]).join()
    out["warmup_s"] = round(time.perf_counter() - t, 3)
at = AppTest.from_file(sys.argv[1], default_timeout=float(sys.argv[2]))
t = time.perf_counter()
at.run()
out["cold"] = time.perf_counter() - t
out["exceptions"] = [str(e.value)[:300] for e in at.exception]
job = app.drift_data.on_demand().running()
if job is not None:  # computing on demand in the background: wait, then pick it up
    job.done.wait()
    out["on_demand_s"] = round(job.seconds, 1)
    out["on_demand_error"] = job.error
    t = time.perf_counter()
    at.run()
    out["picked_up_s"] = round(time.perf_counter() - t, 3)
out["parts"] = {k: round(v, 3) for k, v in sorted(times.items(), key=lambda kv: -kv[1])}
print("RESULT " + json.dumps(out))
"""


def parts(store: Path, timeout: float, mode: str = "start") -> dict[str, object]:
    """One cold run in a fresh process after what ``mode`` says (``start`` or
    ``warmed``, :data:`bench.page_times.MODES`), timing the page's main parts."""
    env = {**os.environ, "OBSERVATORY_STORE": str(store), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PARTS_CHILD, str(PAGE), str(timeout), mode],
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


def _write(path: Path, table: object) -> None:
    """``table`` into ``path`` as the store writes a partition (new file renamed over)."""
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=256_000, store_schema=False)
    os.replace(tmp, path)


def _upto(path: Path, end: datetime) -> object:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.filter(pc.less_equal(table["ts_utc"], pa.scalar(end, pa.timestamp("us"))))


def _write_partition(store: object, table: str, path: Path, rows: object) -> None:
    """A data partition and, where the store keeps one for its table, its hourly roll-up
    stamped with the partition's mtime, as the collector writes them (so the other
    queries of the page read the roll-up, as on a live store)."""
    import pyarrow.parquet as pq

    from observatory.store import ROLLUP_OF, SCHEMAS, Store, hourly_rollup

    assert isinstance(store, Store)
    _write(path, rows)
    rollup = Path(store.rollup_path(table, path))
    if table in ROLLUP_OF and (store.lake / ROLLUP_OF[table]).is_dir():
        rollup.parent.mkdir(parents=True, exist_ok=True)
        _write(rollup, hourly_rollup(table, pq.read_table(path, schema=SCHEMAS[table])))
        stamp = path.stat().st_mtime_ns
        os.utime(rollup, ns=(stamp, stamp))


def prepare_live(store: Path, live: Path, cut: datetime, archive: Path) -> dict[str, object]:
    """``live``: ``store`` collected up to ``cut``; the scheduled report of the 24 h
    ending at ``cut`` in ``archive``; then the next step appended (module docstring).

    Returns the report's seconds and the number of files rewritten by the append.
    """
    import time

    from observatory.drift_engine import compute_drift
    from observatory.drift_report import write_report
    from observatory.store import Store

    day = f"date={cut.date().isoformat()}"
    data = ("counters", "gauges", "histograms")
    cut_day: list[tuple[Path, Path]] = []
    for src in store.rglob("*"):
        dst = live / src.relative_to(store)
        if src.is_dir():
            continue
        parts = src.relative_to(store).parts
        date_part = next((p for p in parts if p.startswith("date=")), None)
        if date_part is not None and date_part >= day and (date_part > day or parts[1] not in data):
            continue  # not yet collected, or a roll-up of a day the cut splits
        dst.parent.mkdir(parents=True, exist_ok=True)
        if date_part == day:
            cut_day.append((src, dst))
        else:
            dst.symlink_to(src)
    target = Store(live)
    for src, dst in cut_day:  # collected up to the cut
        _write_partition(target, dst.relative_to(live).parts[1], dst, _upto(src, cut))
    began = time.perf_counter()
    report = compute_drift(target, window=timedelta(hours=24), end=cut)
    write_report(report, archive, "json")
    seconds = time.perf_counter() - began
    for src, dst in cut_day:  # the collector's next run
        step = _upto(src, cut + timedelta(minutes=1))
        _write_partition(target, dst.relative_to(live).parts[1], dst, step)
    return {"report_s": round(seconds, 1), "appended_files": len(cut_day)}


def main() -> None:
    """Measure the page on ``--store`` with ``--archive`` and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True, help="the store")
    ap.add_argument("--archive", type=Path, required=True, help="its drift report folder")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per page run")
    ap.add_argument("--live", type=Path, help="build a live copy here (must not exist)")
    ap.add_argument("--cut", help="the live copy's last step before the append (ISO 8601 UTC)")
    ap.add_argument(
        "--modes",
        nargs="*",
        default=["warmed", "start"],
        choices=["warmed", "start"],
        help="what precedes the cold run (bench/page_times.py's MODES), one fresh process each",
    )
    args = ap.parse_args()
    out: dict[str, object] = {"store": str(args.store), "archive": str(args.archive)}
    if args.live is not None:
        if args.cut is None or args.live.exists():
            ap.error("--live needs --cut and a folder that does not exist yet")
        args.archive.mkdir(parents=True, exist_ok=True)
        out["live"] = prepare_live(
            args.store.resolve(), args.live, datetime.fromisoformat(args.cut), args.archive
        )
        args.store = args.live
    os.environ["OBSERVATORY_DRIFT_REPORTS"] = str(args.archive.resolve())
    keep = ["warmup_s", "cold", "cold_parts", "cold_sql_s", "cold_queries", "warm"]
    keep += ["exceptions", "errors", "rss_mib", "failed"]
    for mode in args.modes:
        page = measure(PAGE, args.store, args.timeout, mode)
        got: dict[str, object] = {"means": MODES[mode]}
        got.update({k: page[k] for k in keep if k in page})
        got["parts_run"] = parts(args.store, args.timeout, mode)
        out[mode] = got
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

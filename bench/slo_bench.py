#!/usr/bin/env python3
"""Benchmark: SLO status from the store vs the same figures from Prometheus (PromQL).

The demo fleet (default 30 days x 6 regions) is written into an Observatory store and,
as OpenMetrics backfilled by promtool, into one real ``prometheus`` per region (as a
fleet runs them).  ``--slos`` SLOs (default 100: availability and latency-threshold
SLOs of the three models at several targets and thresholds, each per region) are
then computed both ways, side by side in one run:

- Observatory: :func:`observatory.slo_engine.status_table` -- for every SLO and
  region the 30-day remaining budget and the burn rates of 5m, 30m, 1h, 2h, 6h, 1d
  and 3d (one SQL query per table over all SLOs and regions, then numpy per SLO and
  one frame for the table);
- Prometheus: for every SLO and region, the 8 error ratios
  ``sum(increase(bad[w])) / sum(increase(total[w]))`` (w = the 7 windows and 30d)
  as instant queries over range vectors to that region's server, one after another
  and with the regions in parallel.

Both answer the same question at the same time ``t`` (the end of the history, or
``--offset-min`` minutes before it, off the hour); the script checks that the figures
agree (and that the roll-up path equals the step-row path), then prints a table of
medians over ``--repeat`` runs against the Prometheus baseline, with the load average.

Usage::

    .venv/bin/python bench/slo_bench.py [--days 30] [--regions 6] [--slos 100]
        [--repeat 3] [--offset-min 0] [--workdir DIR]

``--store PATH`` times something else, on an existing (read-only) store such as the
scale stores of docs/scaling.md: :func:`status_table` of the example SLOs
(``--specs``, default ``examples/slo``) without the SLO slice cache, with a cold cache
(a new, empty cache folder: everything computed and written) and warm (read back),
``--repeat`` times, checks the three tables are equal, and prints medians, the
non-batched SLOs' share and the cache's size on disk.  The cache goes to a temporary
folder, never into the store::

    flock /tmp/large.lock .venv/bin/python bench/slo_bench.py \
        --store /work/scale-data/large --repeat 2

Needs the Debian package ``prometheus`` (``/usr/bin/prometheus``, ``/usr/bin/promtool``).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from prom_harness import PromServer, build_fleet, missing_binaries  # noqa: E402

from analytics import slo as slomath  # noqa: E402
from collectors.demo_fleet import MODELS, REGIONS, VLLM_E2E_BUCKETS  # noqa: E402
from observatory.demo import build_store  # noqa: E402
from observatory.slo_engine import SloEngine, status_table  # noqa: E402
from observatory.slo_rules import error_ratio_query  # noqa: E402
from observatory.slo_specs import Indicator, SignalRef, SloDefinition  # noqa: E402
from observatory.store import Store  # noqa: E402

PERIOD = timedelta(days=30)
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
ROWS = {
    "prom_seq": "Prometheus, sequential (baseline)",
    "prom_par": "Prometheus, regions in parallel",
    "obs_steps": "Observatory, step rows only (no roll-up)",
    "obs": "Observatory, hourly roll-up + edge steps",
}


def make_slos(n: int) -> list[SloDefinition]:
    """``n`` SLOs: availability and latency thresholds x models x targets, per region."""
    tiers = tuple(slomath.alert_tiers(PERIOD))
    kinds: list[tuple[str, Indicator]] = []
    for model in MODELS:
        where = (("model", (model.name,)),)
        kinds.append(
            (
                f"avail-{model.name}",
                Indicator(
                    "ratio",
                    numerator=SignalRef("errors", where),
                    total=SignalRef("requests", where),
                ),
            )
        )
        for bound in VLLM_E2E_BUCKETS[:12]:
            kinds.append(
                (
                    f"lat{bound:g}s-{model.name}",
                    Indicator(
                        "latency",
                        numerator=SignalRef("latency", where, threshold=bound),
                        numerator_is_bad=False,
                        total=SignalRef("latency", where),
                    ),
                )
            )
    targets = [0.99, 0.995, 0.999, 0.9]
    out = []
    i = 0
    while len(out) < n:
        name, ind = kinds[i % len(kinds)]
        target = targets[(i // len(kinds)) % len(targets)]
        out.append(
            SloDefinition(
                name=f"{name}-{target * 100:g}",
                display_name=name,
                service="bench",
                description="",
                source="bench",
                indicator=ind,
                target=target,
                period=PERIOD,
                group_by=("region",),
                tiers=tiers,
            )
        )
        i += 1
    return out


def prom_ratios(
    servers: dict[str, PromServer], slos: list[SloDefinition], at: datetime, parallel: bool
) -> tuple[float, dict[tuple[str, str, str], float]]:
    """Seconds taken and ``{(slo, region, window): error ratio}`` from Prometheus."""
    session = requests.Session()

    def region_job(region: str) -> dict[tuple[str, str, str], float]:
        out = {}
        url = f"{servers[region].url}/api/v1/query"
        s = requests.Session() if parallel else session
        for slo in slos:
            for w in WINDOWS:
                expr = error_ratio_query(slo, w).replace("\n", " ")
                ans = s.get(
                    url, params={"query": expr, "time": f"{at.timestamp():.0f}"}, timeout=300
                )
                res = ans.json()["data"]["result"]
                out[(slo.name, region, w)] = float(res[0]["value"][1]) if res else math.nan
        return out

    began = time.perf_counter()
    results: dict[tuple[str, str, str], float] = {}
    if parallel:
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            for part in pool.map(region_job, list(servers)):
                results.update(part)
    else:
        for region in servers:
            results.update(region_job(region))
    return time.perf_counter() - began, results


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.parquet"))


def cache_bench(store_dir: Path, specs: Path, repeat: int) -> int:
    """Example SLOs' status table on ``store_dir``: no cache, cold cache, warm cache.

    Prints the median seconds of each over ``repeat`` runs (the same run alternates
    them), the time of the non-batched SLOs alone (the ones the cache serves), and
    checks that every table equals the uncached one (floats to 1e-12, the rest exactly).

    Raises:
        AssertionError: a cached table differs from the uncached one.
    """
    import pandas as pd

    from observatory.slo_cache import SliceCache
    from observatory.slo_specs import load_specs

    store = Store(store_dir)
    store.connect()
    slos = load_specs([specs])
    alone = [s for s in slos if not SloEngine.batchable(s)]
    key = ["slo", "region", "model", "arm"]
    runs: dict[str, list[float]] = {}
    size = 0

    def timed(name: str, engine: SloEngine, which: list[SloDefinition]) -> pd.DataFrame:
        t0 = time.perf_counter()
        table = status_table(engine, which)
        runs.setdefault(name, []).append(time.perf_counter() - t0)
        return table.sort_values(key).reset_index(drop=True)

    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="slo-cache-") as tmp:
            cache = SliceCache(store, tmp)
            plain = timed("no cache (all SLOs)", SloEngine(store, cache=False), slos)
            cold = timed("cold cache (all SLOs)", SloEngine(store, cache=cache), slos)
            warm = timed("warm cache (all SLOs)", SloEngine(store, cache=cache), slos)
            timed("no cache (non-batched SLOs)", SloEngine(store, cache=False), alone)
            timed("warm cache (non-batched SLOs)", SloEngine(store, cache=cache), alone)
            for other in (cold, warm):
                pd.testing.assert_frame_equal(plain, other, check_exact=False, rtol=1e-12)
            size = _folder_bytes(Path(tmp))
    print(
        f"store {store_dir}: {len(slos)} SLOs ({len(alone)} not batched), load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    for name, secs in runs.items():
        shown = " ".join(f"{x:.2f}" for x in secs)
        print(f"{name:32s} median {statistics.median(secs):7.2f} s   runs {shown}")
    print(f"cache on disk: {size / 1e6:.2f} MB; cached tables equal the uncached one")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, help="Time the SLO slice cache on this store.")
    ap.add_argument("--specs", type=Path, default=REPO / "examples" / "slo")
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--regions", type=int, default=6)
    ap.add_argument("--slos", type=int, default=100)
    ap.add_argument("--workdir", type=Path, help="Keep the fleet and store here (reused).")
    ap.add_argument("--repeat", type=int, default=3, help="Timed runs of each side (median).")
    ap.add_argument(
        "--offset-min",
        type=int,
        default=0,
        help="Evaluate this many minutes before the end of the history (off the hour: "
        "window edges cut hours, read step by step).",
    )
    args = ap.parse_args()
    if args.store is not None:
        return cache_bench(args.store, args.specs, args.repeat)
    why = missing_binaries()
    if why:
        print(f"skipped: {why}")
        return 0
    regions = [r.name for r in REGIONS][: args.regions]
    end = datetime(2026, 11, 1, tzinfo=UTC)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    store_dir = work / "store"
    if not Store(store_dir).has_data():
        t0 = time.perf_counter()
        build_store(store_dir, days=args.days, regions=regions, end=end)
        timings["build store"] = time.perf_counter() - t0
    blocks = work / "fleet" / "blocks"
    if not all((blocks / r).exists() for r in regions):
        t0 = time.perf_counter()
        build_fleet(work / "fleet", regions, days=args.days, end=end)
        timings["openmetrics + promtool"] = time.perf_counter() - t0
    servers: dict[str, PromServer] = {}
    try:
        for r in regions:
            tsdb = work / "tsdb" / r
            if tsdb.exists():
                shutil.rmtree(tsdb)
            shutil.copytree(blocks / r, tsdb)
            servers[r] = PromServer(tsdb, work / "servers", name=r).start()
        slos = make_slos(args.slos)
        when = end - timedelta(minutes=args.offset_min)
        at = when.replace(tzinfo=None)
        store = Store(store_dir)
        with store.writer():  # builds missing hourly roll-ups (a store from an older version)
            pass
        engine = SloEngine(store)
        steps_engine = SloEngine(store, use_rollup=False)
        # Warm both sides once (file caches, Prometheus's block index) on one SLO.
        status_table(engine, slos[:1], at)
        prom_ratios(servers, slos[:1], when, parallel=False)

        runs: dict[str, list[float]] = {k: [] for k in ROWS}
        loads = [os.getloadavg()[0]]
        table = theirs = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            table = status_table(engine, slos, at)
            runs["obs"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            steps_table = status_table(steps_engine, slos, at)
            runs["obs_steps"].append(time.perf_counter() - t0)
            seq_s, theirs = prom_ratios(servers, slos, when, parallel=False)
            runs["prom_seq"].append(seq_s)
            par_s, _ = prom_ratios(servers, slos, when, parallel=True)
            runs["prom_par"].append(par_s)
            loads.append(os.getloadavg()[0])
        assert table is not None and theirs is not None

        # The same figures both ways (Observatory's burn rate x budget = error ratio).
        worst = 0.0
        compared = 0
        for _, row in table[table["region"] != "*"].iterrows():
            budget = slomath.error_budget_fraction(row["target"])
            for w in WINDOWS:
                ours = row["error_ratio"] if w == "30d" else row[f"burn_{w}"] * budget
                other = theirs[(row["slo"], row["region"], w)]
                if math.isnan(ours) and math.isnan(other):
                    continue
                worst = max(worst, abs(ours - other) / max(abs(other), 1e-12))
                compared += 1
        numeric = [c for c in table.columns if table[c].dtype.kind == "f"]
        key = ["slo", "region", "model", "arm"]
        a = table.sort_values(key).reset_index(drop=True)[numeric].to_numpy()
        b = steps_table.sort_values(key).reset_index(drop=True)[numeric].to_numpy()
        same = bool(((a == b) | (np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=1e-12)).all())
        n_pairs = len(slos) * len(regions)
        print(
            f"history: {args.days:g} days x {len(regions)} regions; {len(slos)} SLOs "
            f"x {len(regions)} regions = {n_pairs} SLO-regions, {len(WINDOWS)} windows each "
            f"({n_pairs * len(WINDOWS)} PromQL queries per Prometheus run)"
        )
        for k, v in timings.items():
            print(f"  setup {k}: {v:.1f} s")
        print(
            f"{args.repeat} runs; {os.cpu_count()} CPUs; 1-minute load average "
            + " -> ".join(f"{x:.1f}" for x in loads)
        )
        med = {k: statistics.median(v) for k, v in runs.items()}
        base = med["prom_seq"]
        width = 6 * args.repeat + 2
        print(f"evaluated at {at:%Y-%m-%d %H:%M} UTC")
        print(f"{'':44} {'median s':>9} {'runs (s)':>{width}} {'vs Prometheus seq.':>19}")
        for k, label in ROWS.items():
            each = " ".join(f"{x:5.2f}" for x in runs[k])
            print(f"{label:44} {med[k]:9.2f} {each:>{width}} {base / med[k]:18.1f}x")
        print(
            f"speed-up of Observatory (hourly roll-up): {med['prom_seq'] / med['obs']:.1f}x "
            f"Prometheus sequential, {med['prom_par'] / med['obs']:.1f}x regions in parallel"
        )
        print(f"agreement with Prometheus: {compared} figures, largest relative gap {worst:.2e}")
        print(f"roll-up path equals the step-row path (rtol 1e-12): {same}")
    finally:
        for s in servers.values():
            s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

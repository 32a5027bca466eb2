#!/usr/bin/env python3
"""Benchmark: ``observatory collect`` of a long backfilled history from real Prometheus.

Builds the demo fleet (default 14 days x 3 regions) as OpenMetrics, backfills it with
``promtool tsdb create-blocks-from openmetrics``, starts one ``prometheus`` per region
on 127.0.0.1, and times ``observatory collect --from START --to END`` of the whole
history.  For comparison, in the same run, the floor: the very same raw-sample
queries (``selector[Ns]`` at each chunk end, as the collector sends them) fetched with
plain ``requests`` and only parsed as JSON, one after another, and once more with the
regions in parallel (the collector's own concurrency).

Usage::

    .venv/bin/python bench/collect_backfill.py [--days 14] [--region R ...] [--workdir DIR]

Needs the Debian package ``prometheus`` (``/usr/bin/prometheus``, ``/usr/bin/promtool``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from prom_harness import (  # noqa: E402
    PromServer,
    build_fleet,
    default_fleet_end,
    iso,
    missing_binaries,
    run_cli,
    store_totals,
    truth_totals,
    write_config,
)

from observatory.config import load_config  # noqa: E402
from observatory.store import Store  # noqa: E402


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


Plan = dict[str, list[tuple[str, dict[str, str]]]]


def planned_queries(config_path: Path, start: datetime, end: datetime) -> Plan:
    """Per region, the (query, params) the collector sends for ``(start, end]``.

    Mirrors ``Collector._collect_region``: one fetch per metric name (shared by the
    signals it feeds), chunks of ``collection.chunk`` inside write batches of
    ``collection.write_batch``; counters and histograms reach ``counter_lookback``
    further back; ``selector[range]`` at the chunk end.
    """
    from collectors.collect import plan_fetches, plan_units
    from collectors.presets import region_mappings

    config = load_config(config_path)
    coll = config.settings.collection
    step_ms = int(coll.step.total_seconds() * 1000)
    chunk_ms = int(coll.chunk.total_seconds() * 1000)
    batch_ms = int(coll.write_batch.total_seconds() * 1000)
    lookback_ms = int(coll.counter_lookback.total_seconds() * 1000)
    start_ms = _ms(start) // step_ms * step_ms
    end_ms = _ms(end) // step_ms * step_ms
    plan: Plan = {}
    for region in config.settings.regions:
        fetches = [f for u in plan_units(plan_fetches(region_mappings(region))) for f in u.fetches]
        queries = []
        t = start_ms
        while t < end_ms:
            batch_end = min(((t + step_ms) // batch_ms + 1) * batch_ms - step_ms, end_ms)
            chunk_start = t
            while chunk_start < batch_end:
                chunk_end = min(chunk_start + chunk_ms, batch_end)
                for f in fetches:
                    width = chunk_end - chunk_start + (lookback_ms if f.lookback else 0)
                    rng = f"{width // 1000}s" if width % 1000 == 0 else f"{width}ms"
                    queries.append((f"{f.text}[{rng}]", {"time": f"{chunk_end / 1000:.3f}"}))
                chunk_start = chunk_end
            t = batch_end
        plan[region.url.rstrip("/") + "|" + region.name] = queries
    return plan


def fetch_region(key: str, queries: list[tuple[str, dict[str, str]]]) -> int:
    """Send one region's queries one after another; parse JSON; return samples seen."""
    url = key.split("|", 1)[0]
    samples = 0
    with requests.Session() as session:
        for query, params in queries:
            answer = session.get(
                f"{url}/api/v1/query", params={"query": query, **params}, timeout=300
            )
            answer.raise_for_status()
            body = answer.json()
            if body.get("status") != "success":
                raise RuntimeError(f"{url}: {query}: {body}")
            samples += sum(len(s.get("values") or ()) for s in body["data"]["result"])
    return samples


def baseline(plan: Plan, parallel: bool) -> tuple[int, float]:
    """All regions' queries, sequentially or one thread per region: (samples, seconds)."""
    began = time.perf_counter()
    if parallel:
        with ThreadPoolExecutor(max_workers=len(plan)) as pool:
            samples = sum(pool.map(lambda kv: fetch_region(*kv), plan.items()))
    else:
        samples = sum(fetch_region(k, q) for k, q in plan.items())
    return samples, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=14, help="days of history (default 14)")
    parser.add_argument(
        "--region",
        dest="regions",
        action="append",
        help="demo region (repeatable; default us-east-1, eu-west-1, ap-south-1)",
    )
    parser.add_argument("--chunk", default="6h", help="collection.chunk (default 6h)")
    parser.add_argument(
        "--workdir", type=Path, help="keep everything here (default: a temp dir, removed)"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    why = missing_binaries()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    regions = args.regions or ["us-east-1", "eu-west-1", "ap-south-1"]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="observatory-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    servers: list[PromServer] = []
    try:
        end = default_fleet_end()
        print(
            f"fleet: {len(regions)} regions x {args.days:g} days, ending {iso(end)}, in {work}",
            flush=True,
        )
        fleet = build_fleet(work / "fleet", regions, days=args.days, end=end, seed=args.seed)
        om_samples = sum(fleet.samples.values())
        print(
            f"  openmetrics: {om_samples:,} samples in {fleet.timings['openmetrics_s']:.1f}s; "
            f"promtool backfill: {fleet.timings['promtool_s']:.1f}s",
            flush=True,
        )
        began = time.perf_counter()
        for region in regions:
            # The bench runs each server on promtool's folder itself (no copy).
            servers.append(PromServer(fleet.blocks[region], work / "servers", name=region).start())
        print(
            f"  {len(servers)} Prometheus servers ready in {time.perf_counter() - began:.1f}s",
            flush=True,
        )
        urls = {region: server.url for region, server in zip(regions, servers, strict=True)}
        store = work / "store"
        config = write_config(work / "observatory.yaml", store, urls, chunk=args.chunk)
        plan = planned_queries(config, fleet.start, fleet.end)
        n_queries = sum(len(q) for q in plan.values())

        seq_samples, seq_s = baseline(plan, parallel=False)
        par_samples, par_s = baseline(plan, parallel=True)

        began = time.perf_counter()
        res = run_cli(
            [
                "collect",
                "--config",
                str(config),
                "--from",
                iso(fleet.start),
                "--to",
                iso(fleet.end),
            ],
            timeout=7200,
        )
        collect_s = time.perf_counter() - began
        if res.returncode != 0:
            print(res.stdout, res.stderr, file=sys.stderr)
            return 1
        rows = int(
            Store(store)
            .query(
                "SELECT (SELECT count(*) FROM counters) + (SELECT count(*) FROM gauges) "
                "+ (SELECT count(*) FROM histograms) AS n"
            )["n"]
            .iloc[0]
        )
        totals = store_totals(store)
        exact = all(totals.get(r) == truth_totals(fleet.truth, r) for r in regions)

        print()
        per_region = n_queries // len(regions)
        print(f"{n_queries} raw-sample queries: {per_region} per region (chunks of {args.chunk})")
        header = (
            f"{'method':<44} {'regions':>7} {'samples':>12} {'rows':>11} "
            f"{'seconds':>8} {'samples/s':>11} {'rows/s':>10}"
        )
        print(header)
        print("-" * len(header))
        table = [
            ("observatory collect (regions in parallel)", seq_samples, rows, collect_s),
            ("floor: requests + JSON only, sequential", seq_samples, None, seq_s),
            ("floor: requests + JSON only, regions parallel", par_samples, None, par_s),
        ]
        for name, samples, nrows, secs in table:
            print(
                f"{name:<44} {len(regions):>7} {samples:>12,} "
                f"{(f'{nrows:,}' if nrows is not None else '-'):>11} {secs:>8.1f} "
                f"{samples / secs:>11,.0f} "
                f"{(f'{nrows / secs:,.0f}' if nrows is not None else '-'):>10}"
            )
        print()
        print(
            f"collector overhead over the parallel floor: {collect_s / par_s:.2f}x; "
            f"totals equal to the ground truth: {'yes' if exact else 'NO'}"
        )
        return 0 if exact else 1
    finally:
        for server in servers:
            server.stop()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

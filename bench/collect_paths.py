#!/usr/bin/env python3
"""Benchmark: three ways to get a backfilled fleet out of real Prometheus servers.

In one run, against one ``prometheus`` per region serving the demo fleet (backfilled
with promtool):

- (a) the naive path a user would write with prometheus-api-client:
  ``get_metric_range_data`` per metric (6-hour chunks) -> ``MetricRangeDataFrame`` ->
  insert into DuckDB; regions one after another;
- (b) the floor: the very queries the collector sends (``selector[range]`` at each
  chunk end), fetched one after another with plain ``requests`` and parsed with
  ``json`` only: once with requests' default ``Accept-Encoding: gzip`` (Prometheus then
  gzips every answer) and once asking for identity encoding, as the collector does;
- (c) ``observatory collect`` end to end (a subprocess: start-up, fetch, transform,
  Parquet writes, state), regions in parallel;

for one region and for all regions, plus the peak memory (max RSS) of (c) and (a)
for one region over half the range and the whole range.  Each timing is the median
of ``--repeat`` runs, interleaved, because the development machine is shared.

Beside the wall times it prints where the CPU went, per path: the client's own
CPU-seconds (this process for (b), the ``observatory collect`` process for (c), from
``getrusage``) and the Prometheus servers' (``/proc/<pid>/stat``, Linux).  On a
shared 2-core machine wall time follows CPU time, so the CPU table says what a
path costs when the timings are noisy.

Usage::

    .venv/bin/python bench/collect_paths.py [--days 7] [--repeat 3] [--workdir DIR]

Needs the Debian package ``prometheus`` (``/usr/bin/prometheus``, ``/usr/bin/promtool``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
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
    observatory_cmd,
    store_totals,
    truth_totals,
    write_config,
)

from observatory.config import load_config  # noqa: E402
from observatory.store import SCHEMAS  # noqa: E402

PRESETS = ["vllm", "dcgm", "opencost", "quality"]


def _server_cpu(servers: list[PromServer]) -> float:
    """CPU-seconds (user + system) the Prometheus processes have used so far (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for server in servers:
        if server.proc is None:
            continue
        fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick


def _children_cpu() -> float:
    """CPU-seconds of this process's finished (and waited-for) descendants so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def codec_costs(
    lake: Path, region: str, work: Path, repeat: int = 3
) -> list[tuple[str, float, float, float, int]]:
    """The data partitions of ``region`` under ``lake`` rewritten with each Parquet codec:
    (codec, write CPU-s, pyarrow read CPU-s, DuckDB scan seconds, bytes); best of
    ``repeat``.  Writes use the store's settings (256k-row groups, no Arrow schema) on
    plain string columns (the collector hands dictionary-encoded ones: cheaper)."""
    import duckdb
    import pyarrow.parquet as pq

    files = sorted(p for t in SCHEMAS for p in lake.glob(f"{t}/*/*/region={region}/*.parquet"))
    tables = [(p.relative_to(lake), pq.read_table(p)) for p in files]
    out = []
    for codec in ("zstd", "snappy", "lz4"):
        root = work / f"codec-{codec}"
        shutil.rmtree(root, ignore_errors=True)
        write = read = scan = float("inf")
        for _ in range(repeat):
            began = time.process_time()
            for rel, table in tables:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(
                    table, root / rel, compression=codec, row_group_size=256_000, store_schema=False
                )
            write = min(write, time.process_time() - began)
            began = time.process_time()
            for rel, _table in tables:
                pq.read_table(root / rel)
            read = min(read, time.process_time() - began)
            began = time.perf_counter()
            for t in ("counters", "histograms"):
                duckdb.connect().sql(
                    "SELECT signal, model, arm, sum(value) FROM "
                    f"read_parquet('{root}/{t}/**/*.parquet', hive_partitioning=true) GROUP BY ALL"
                ).fetchall()
            scan = min(scan, time.perf_counter() - began)
        size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        out.append((codec, write, read, scan, size))
        shutil.rmtree(root, ignore_errors=True)
    return out


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def planned(config_path: Path, start: datetime, end: datetime) -> dict[str, list[dict[str, str]]]:
    """Per region URL, the (query, time) pairs the collector sends for ``(start, end]``:
    the same chunks, write batches and lookbacks (from :meth:`Collector.plan`'s fetches)."""
    from collectors.collect import plan_fetches, plan_units
    from collectors.presets import region_mappings

    config = load_config(config_path)
    coll = config.settings.collection
    step = int(coll.step.total_seconds() * 1000)
    chunk = int(coll.chunk.total_seconds() * 1000)
    batch = int(coll.write_batch.total_seconds() * 1000)
    look = int(coll.counter_lookback.total_seconds() * 1000)
    s, e = _ms(start) // step * step, _ms(end) // step * step
    out: dict[str, list[dict[str, str]]] = {}
    for region in config.settings.regions:
        fetches = [f for u in plan_units(plan_fetches(region_mappings(region))) for f in u.fetches]
        queries = []
        t = s
        while t < e:
            be = min(((t + step) // batch + 1) * batch - step, e)
            cs = t
            while cs < be:
                ce = min(cs + chunk, be)
                for f in fetches:
                    width = ce - cs + (look if f.lookback else 0)
                    rng = f"{width // 1000}s" if width % 1000 == 0 else f"{width}ms"
                    queries.append({"query": f"{f.text}[{rng}]", "time": f"{ce / 1000:.3f}"})
                cs = ce
            t = be
        out[region.url] = queries
    return out


def floor(plan: dict[str, list[dict[str, str]]], encoding: str | None) -> tuple[int, float]:
    """(b): every planned query, one after another; ``json`` parse only."""
    samples = 0
    began = time.perf_counter()
    for url, queries in plan.items():
        with requests.Session() as session:
            if encoding:
                session.headers["Accept-Encoding"] = encoding
            for params in queries:
                answer = session.get(f"{url}/api/v1/query", params=params, timeout=600)
                body = json.loads(answer.content)
                if body.get("status") != "success":
                    raise RuntimeError(f"{url}: {params}: {body}")
                samples += sum(len(s.get("values") or ()) for s in body["data"]["result"])
    return samples, time.perf_counter() - began


#: Runs ARGV in a fresh, small interpreter and prints the child's peak RSS (KiB).  A
#: child forked straight from this process would report this process's RSS at fork
#: time as its own peak (the in-process runs make it large), not what it used.
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'\\nPEAK_RSS_KIB {peak}', flush=True)\n"
    "sys.exit(code)\n"
)


def _timed(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; (seconds, its own max RSS in MiB, stdout+stderr tail)."""
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        check=False,
    )
    secs = time.perf_counter() - began
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {out[-3000:]}")
    peak = int(out.rsplit("PEAK_RSS_KIB ", 1)[1].split()[0])
    return secs, peak // 1024, out[-2000:]


def collector(
    config: Path, start: datetime, end: datetime, regions: list[str]
) -> tuple[float, int]:
    """(c): ``observatory collect`` as a subprocess into a fresh store."""
    store = load_config(config).store_path
    shutil.rmtree(store, ignore_errors=True)
    cmd = [*observatory_cmd(), "collect", "--config", str(config)]
    cmd += ["--from", iso(start), "--to", iso(end)]
    for r in regions:
        cmd += ["--region", r]
    secs, rss, _ = _timed(cmd)
    return secs, rss


def collector_in_process(
    config: Path, start: datetime, end: datetime, regions: list[str]
) -> tuple[float, int]:
    """(c'): :meth:`Collector.run` in this process (no interpreter start-up or CLI
    imports); (seconds, rows)."""
    from collectors.collect import Collector
    from observatory.store import Store

    cfg = load_config(config)
    shutil.rmtree(cfg.store_path, ignore_errors=True)
    began = time.perf_counter()
    reports = Collector(cfg, Store(cfg.store_path)).run(
        start=start, end=end, regions=regions or None
    )
    secs = time.perf_counter() - began
    bad = [r for r in reports if r.status != "ok"]
    if bad:
        raise RuntimeError(f"collector: {[(r.region, r.status, r.errors) for r in bad]}")
    return secs, sum(r.rows for r in reports)


def naive(urls: list[str], start: datetime, end: datetime, metrics: list[str]) -> tuple[float, int]:
    """(a) in a subprocess (for its own max RSS)."""
    cmd = [
        sys.executable,
        __file__,
        "--naive-worker",
        json.dumps([urls, iso(start), iso(end), metrics]),
    ]
    secs, rss, _ = _timed(cmd)
    return secs, rss


def naive_worker(arg: str) -> None:
    """(a): prometheus-api-client -> MetricRangeDataFrame -> DuckDB (in memory)."""
    import duckdb
    from prometheus_api_client import MetricRangeDataFrame, PrometheusConnect

    urls, start_s, end_s, metrics = json.loads(arg)
    start, end = datetime.fromisoformat(start_s), datetime.fromisoformat(end_s)
    con = duckdb.connect(":memory:")
    rows = 0
    for u, url in enumerate(urls):
        prom = PrometheusConnect(url=url, disable_ssl=True)
        for m, metric in enumerate(metrics):
            data = prom.get_metric_range_data(
                metric, start_time=start, end_time=end, chunk_size=timedelta(hours=6)
            )
            if not data:
                continue
            frame = MetricRangeDataFrame(data).reset_index()
            con.register("frame", frame)
            con.execute(f"CREATE TABLE m_{u}_{m} AS SELECT * FROM frame")
            con.unregister("frame")
            rows += len(frame)
    print(json.dumps({"rows": rows}))


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7, help="days of history (default 7)")
    parser.add_argument(
        "--region",
        dest="regions",
        action="append",
        help="demo region (repeatable; default us-east-1, eu-west-1, ap-south-1)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--skip-naive", action="store_true", help="leave (a) out")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: temp)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--naive-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.naive_worker:
        naive_worker(args.naive_worker)
        return 0
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
        print(f"fleet: {len(regions)} regions x {args.days:g} days, in {work}", flush=True)
        fleet = build_fleet(work / "fleet", regions, days=args.days, end=end, seed=args.seed)
        print(
            f"  {sum(fleet.samples.values()):,} samples; openmetrics "
            f"{fleet.timings['openmetrics_s']:.0f}s, promtool {fleet.timings['promtool_s']:.0f}s",
            flush=True,
        )
        for region in regions:
            servers.append(PromServer(fleet.blocks[region], work / "servers", name=region).start())
        urls = {r: s.url for r, s in zip(regions, servers, strict=True)}
        start, stop = fleet.start, fleet.end
        half = start + (stop - start) / 2
        cfg_all = write_config(work / "all.yaml", work / "store-all", urls, PRESETS)
        cfg_one = write_config(
            work / "one.yaml", work / "store-one", {regions[0]: urls[regions[0]]}, PRESETS
        )
        plan_all = planned(cfg_all, start, stop)
        plan_one = planned(cfg_one, start, stop)
        metric_names = sorted({q["query"].split("[", 1)[0] for q in plan_one[urls[regions[0]]]})
        load_before = os.getloadavg()
        times: dict[str, list[float]] = {}
        rss: dict[str, int] = {}
        samples: dict[str, int] = {}
        #: per path: (own CPU-s, Prometheus CPU-s) of each run
        cpu: dict[str, list[tuple[float, float]]] = {}
        for rep in range(args.repeat):
            print(f"round {rep + 1}/{args.repeat}", flush=True)
            for label, plan in (("1", plan_one), ("N", plan_all)):
                for enc_label, enc in (("gzip", None), ("identity", "identity")):
                    own, prom = time.process_time(), _server_cpu(servers)
                    n, secs = floor(plan, enc)
                    cpu.setdefault(f"b-{enc_label}-{label}", []).append(
                        (time.process_time() - own, _server_cpu(servers) - prom)
                    )
                    samples[label] = n
                    times.setdefault(f"b-{enc_label}-{label}", []).append(secs)
                cfg, names = (cfg_one, [regions[0]]) if label == "1" else (cfg_all, [])
                own, prom = _children_cpu(), _server_cpu(servers)
                secs, peak = collector(cfg, start, stop, names)
                cpu.setdefault(f"c-{label}", []).append(
                    (_children_cpu() - own, _server_cpu(servers) - prom)
                )
                times.setdefault(f"c-{label}", []).append(secs)
                rss[f"c-{label}"] = max(rss.get(f"c-{label}", 0), peak)
                secs, _rows = collector_in_process(cfg, start, stop, names)
                times.setdefault(f"ci-{label}", []).append(secs)
            if rep == 0:
                secs, peak = collector(cfg_one, start, half, [regions[0]])
                rss["c-half"] = peak
                times["c-half"] = [secs]
                if not args.skip_naive:
                    for label, us in (("1", [urls[regions[0]]]), ("N", list(urls.values()))):
                        secs, peak = naive(us, start, stop, metric_names)
                        times[f"a-{label}"] = [secs]
                        rss[f"a-{label}"] = peak
        load_after = os.getloadavg()
        totals = store_totals(work / "store-all")
        exact = all(totals.get(r) == truth_totals(fleet.truth, r) for r in regions)

        n_one = sum(len(q) for q in plan_one.values())
        print()
        print(
            f"{len(regions)} regions x {args.days:g} days; one region: {samples['1']:,} samples "
            f"in {n_one} queries; all regions: {samples['N']:,} samples. "
            f"Median of {args.repeat} (a: one run)."
        )
        nreg = f"{len(regions)} regions"
        header = f"{'path':<58} {'1 region':>10} {nreg:>11} {'max RSS (1 region)':>19}"
        print(header)
        print("-" * len(header))

        def row(name: str, key: str, mem: str = "") -> None:
            one = times.get(f"{key}-1")
            alln = times.get(f"{key}-N")
            f1 = f"{_median(one):.1f}s" if one else "-"
            fn = f"{_median(alln):.1f}s" if alln else "-"
            print(f"{name:<58} {f1:>10} {fn:>11} {mem:>19}")

        row(
            "(a) naive: get_metric_range_data+MetricRangeDataFrame+DuckDB",
            "a",
            f"{rss['a-1']} MiB" if "a-1" in rss else "-",
        )
        row("(b) floor: requests+json, sequential (gzip, requests default)", "b-gzip")
        row("(b') floor: requests+json, sequential (identity encoding)", "b-identity")
        row("(c) observatory collect (subprocess, end to end)", "c", f"{rss['c-1']} MiB")
        row("(c') Collector.run in process (no start-up)", "ci")
        print(
            f"(c) peak memory, one region: {rss['c-half']} MiB for {args.days / 2:g} days, "
            f"{rss['c-1']} MiB for {args.days:g} days "
            f"({(rss['c-1'] / rss['c-half'] - 1) * 100:+.0f}%)"
        )
        c1, cn = _median(times["c-1"]), _median(times["c-N"])
        i1, i_n = _median(times["ci-1"]), _median(times["ci-N"])
        for enc in ("gzip", "identity"):
            b1, bn = _median(times[f"b-{enc}-1"]), _median(times[f"b-{enc}-N"])
            print(
                f"(c)/(b {enc}): 1 region {c1 / b1:.2f}x, {len(regions)} regions {cn / bn:.2f}x;"
                f"  (c')/(b {enc}): {i1 / b1:.2f}x, {i_n / bn:.2f}x"
            )
        if "a-1" in times:
            print(
                f"(a)/(c): 1 region {times['a-1'][0] / c1:.2f}x, "
                f"{len(regions)} regions {times['a-N'][0] / cn:.2f}x"
            )
        print(
            f"(c) peak memory, {len(regions)} regions in parallel: {rss['c-N']} MiB"
            + (f"; (a) {rss['a-N']} MiB" if "a-N" in rss else "")
        )
        print(
            "load average (1, 5, 15 min) at the start of the timings "
            f"{', '.join(f'{x:.1f}' for x in load_before)}, at the end "
            f"{', '.join(f'{x:.1f}' for x in load_after)} on {os.cpu_count()} CPUs"
        )
        print()
        print(
            "CPU-seconds per run (median): client = this process for (b), the "
            "`observatory collect` process for (c); server = the Prometheus processes"
        )
        cpu_header = f"{'path':<44} {'1 region: client':>16} {'server':>7} "
        cpu_header += f"{nreg + ': client':>19} {'server':>7}"
        print(cpu_header)
        print("-" * len(cpu_header))
        for name, key in (
            ("(b) floor, gzip", "b-gzip"),
            ("(b') floor, identity encoding", "b-identity"),
            ("(c) observatory collect (subprocess)", "c"),
        ):
            cells = []
            for label in ("1", "N"):
                runs = cpu.get(f"{key}-{label}", [])
                own = _median([r[0] for r in runs]) if runs else float("nan")
                prom = _median([r[1] for r in runs]) if runs else float("nan")
                cells += [f"{own:.2f}", f"{prom:.2f}"]
            print(f"{name:<44} {cells[0]:>16} {cells[1]:>7} {cells[2]:>19} {cells[3]:>7}")
        print()
        lake_all = work / "store-all" / "lake"
        n_files = sum(
            len(list(lake_all.glob(f"{t}/*/*/region={regions[0]}/*.parquet"))) for t in SCHEMAS
        )
        print(
            f"Parquet codec of {regions[0]}'s data files, {args.days:g} days "
            f"({n_files} files; best of 3):"
        )
        codec_header = (
            f"{'codec':<8} {'write CPU-s':>12} {'read CPU-s':>11} {'DuckDB scan s':>14} {'MB':>7}"
        )
        print(codec_header)
        print("-" * len(codec_header))
        for codec, write, read, scan, size in codec_costs(lake_all, regions[0], work):
            print(f"{codec:<8} {write:>12.3f} {read:>11.3f} {scan:>14.3f} {size / 1e6:>7.2f}")
        print(f"totals equal to the ground truth: {'yes' if exact else 'NO'}")
        return 0 if exact else 1
    finally:
        for server in servers:
            server.stop()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

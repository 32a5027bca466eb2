"""Does the collector keep up with the large fleet's 1-minute step?

    python bench/collector_step.py [--regions 20] [--workdir /work/scale-data/step]

One collection step of the large fleet (observatory/large_fleet.py: per region 10
models x 2 arms, 8 GPUs per model) is: one minute of raw exporter samples per region
(vLLM, dcgm-exporter, OpenCost and quality series, with their real metric names and
labels, two samples per counter series so increases are defined), turned into rows by
the collector's transform (``collectors.transform.matrix_block`` per preset mapping,
``blocks_table``) and written with ``Store.replace_window``, region after region, as
the collector's write path does.  Measured twice per region:

- start of day: the step opens new day partitions (cheapest);
- end of the first hour: the partitions hold the day's first 59 minutes (what every
  step would cost at worst if partitions were per hour instead of per day);
- end of day: the step is the last minute of a day whose partitions already hold
  the 1 439 earlier minutes (each touched partition is read, filtered and rewritten:
  the worst case, it grows through the day).

The baseline is the step length, 60 s: the ratio (seconds per step / 60) must stay
below 1, with head-room for fetching from Prometheus (not measured here).

``--compare-tiers N`` then repeats the end-of-day step N times with the store writing
the hourly roll-ups only and with both tiers (hourly + 5-minute, the product),
alternating (ABBA) on the same store (a step rewrites the same minute: idempotent), and
prints the medians: what the 5-minute tier costs the write path.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.demo_fleet import (
    DEMO_PRESETS,
    PROMPT_TOKEN_BUCKETS,
    SCORE_BUCKETS,
    VLLM_E2E_BUCKETS,
)
from collectors.presets import mappings_for
from collectors.selector import parse_selector
from collectors.transform import (
    TABLE_OF_KIND,
    Block,
    LabelRules,
    Series,
    blocks_table,
    matrix_block,
    series_to_matrix,
)
from observatory import store as store_module
from observatory.large_fleet import MODELS, REGIONS, SIGNALS_OF_TABLE, FleetSize, build, sized
from observatory.store import Store


def exporter_series(size: FleetSize, region: str, end: datetime, seed: int) -> list[Series]:
    """One minute of raw samples of one region, as the exporters expose them.

    Counters and buckets get a sample at ``end - 60 s`` and one at ``end``; gauges
    one at ``end``.
    """
    rng = np.random.default_rng([seed, sum(map(ord, region))])
    t1 = int(end.timestamp() * 1000)
    t0 = t1 - size.step_s * 1000
    two, one = np.array([t0, t1]), np.array([t1])

    def counter(labels: dict[str, str], inc: float) -> Series:
        base = float(rng.integers(10**6, 10**8))
        return Series(labels, two, np.array([base, base + inc]))

    out: list[Series] = []
    for mi, model in enumerate(MODELS[: size.models]):
        for a in range(size.arms):
            arm = f"v{a + 1}"
            base = {"model_name": model.name, "version": arm}
            requests = float(rng.poisson(model.peak_rpm))
            for reason, share in (("stop", 0.9), ("length", 0.098), ("error", 0.002)):
                out.append(
                    counter(
                        {"__name__": "vllm:request_success_total", **base,
                         "finished_reason": reason},
                        round(requests * share),
                    )
                )  # fmt: skip
            for k, le in enumerate([*map(str, VLLM_E2E_BUCKETS), "+Inf"]):
                frac = min(1.0, (k + 1) / (len(VLLM_E2E_BUCKETS) - 8))
                out.append(
                    counter(
                        {"__name__": "vllm:e2e_request_latency_seconds_bucket", **base, "le": le},
                        round(requests * frac),
                    )
                )
            for name, inc in (
                ("vllm:e2e_request_latency_seconds_sum", requests * 2.0),
                ("vllm:e2e_request_latency_seconds_count", requests),
                ("vllm:prompt_tokens_total", requests * model.prompt_tokens),
                ("vllm:generation_tokens_total", requests * model.generation_tokens),
            ):
                out.append(counter({"__name__": name, **base}, inc))
            if mi < size.quality_models:
                for k, le in enumerate([*map(str, PROMPT_TOKEN_BUCKETS), "+Inf"]):
                    out.append(
                        counter(
                            {"__name__": "vllm:request_prompt_tokens_bucket", **base, "le": le},
                            round(requests * min(1.0, (k + 1) / 10)),
                        )
                    )
                for k, le in enumerate([*map(str, SCORE_BUCKETS), "+Inf"]):
                    out.append(
                        counter(
                            {"__name__": "model_prediction_score_bucket", **base, "le": le},
                            round(requests * min(1.0, (k + 1) / 10)),
                        )
                    )
            out.append(Series({"__name__": "model_accuracy", **base}, one, np.array([0.8])))
            node = f"ip-10-{mi}-{a}.{region}.compute.internal"
            out.append(
                Series(
                    {"__name__": "node_total_hourly_cost", **base, "node": node},
                    one,
                    np.array([16.85]),
                )
            )
            for g in range(size.gpus_per_arm):
                gpu = {**base, "gpu": str(g), "Hostname": f"ip-10-{mi}-{a}-{g}.{region}"}
                util = float(rng.integers(20, 100))
                out.append(
                    Series({"__name__": "DCGM_FI_DEV_GPU_UTIL", **gpu}, one, np.array([util]))
                )
                out.append(
                    Series({"__name__": "DCGM_FI_DEV_POWER_USAGE", **gpu}, one, np.array([400.0]))
                )
                out.append(
                    counter({"__name__": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", **gpu}, 24e6)
                )
    return out


def step(store: Store, size: FleetSize, region: str, end: datetime, seed: int) -> dict[str, float]:
    """Transform one minute of ``region`` and write it; seconds of each phase and rows."""
    series = exporter_series(size, region, end, seed)
    t0 = time.perf_counter()
    matrix = series_to_matrix(series)
    start_ms, end_ms = int(end.timestamp() * 1000) - size.step_s * 1000, int(end.timestamp() * 1000)
    blocks: dict[str, list[Block]] = defaultdict(list)
    signals: dict[str, set[str]] = defaultdict(set)
    for mapping in mappings_for(DEMO_PRESETS):
        sel = parse_selector(mapping.selector)
        idx = np.array([i for i, lab in enumerate(matrix.labels) if sel.matches(lab)], np.int64)
        table = TABLE_OF_KIND[mapping.kind]
        signals[table].add(mapping.signal)
        if not idx.size:
            continue
        block, _ = matrix_block(
            matrix, mapping, LabelRules(), start_ms, end_ms, size.step_s * 1000, idx
        )
        if block is not None:
            blocks[table].append(block)
    tables = {t: blocks_table(b) for t, b in blocks.items()}
    t1 = time.perf_counter()
    rows = 0
    start = end - timedelta(seconds=size.step_s)
    for table, frame in tables.items():
        rows += store.replace_window(table, region, sorted(signals[table]), start, end, frame).rows
    t2 = time.perf_counter()
    return {"transform_s": t1 - t0, "write_s": t2 - t1, "rows": rows}


def main() -> None:
    """Measure one step per region at the start and at the end of a day."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=20, help="regions of the step (large: 20)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/observatory-collector-step"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--compare-tiers", type=int, default=0, help="end-of-day runs per tier set (0: none)"
    )
    args = ap.parse_args()
    size = sized("large", regions=args.regions, days=1)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    day_end = datetime(2026, 11, 2, tzinfo=UTC)
    full = args.workdir / "full"
    began = time.perf_counter()
    build(full, size, seed=args.seed, end=day_end)  # one full day, every region
    print(f"(built one full day of {args.regions} regions in {time.perf_counter() - began:.0f} s)")
    last_step = day_end - timedelta(seconds=size.step_s)
    day = day_end - timedelta(days=1)
    hour = args.workdir / "hour"
    build(hour, size, seed=args.seed, end=day_end)
    first_hour = Store(hour)
    with first_hour.writer():  # keep only 00:00-00:58 of the day
        for r in range(args.regions):
            for table, signals in SIGNALS_OF_TABLE.items():
                first_hour.replace_window(
                    table, REGIONS[r].name, signals, day + timedelta(minutes=58), last_step,
                    pa.table({"signal": pa.array([], pa.string())}),
                )  # fmt: skip
    cases = {
        "start of day (new partitions)": (Store(args.workdir / "empty"), day),
        "end of first hour (59 min held)": (first_hour, day + timedelta(minutes=59)),
        "end of day (full partitions)": (Store(full), last_step),
    }
    expected = sum(size.rows_per_region_day().values()) // size.steps_per_day
    print(f"\none 1-minute step, {args.regions} regions x {expected:,} rows; baseline: 60 s")
    print(f"{'case':32} {'transform s':>11} {'write s':>8} {'total s':>8} {'/60 s':>6} {'rows':>8}")
    for label, (store, end) in cases.items():
        total: dict[str, float] = defaultdict(float)
        with store.writer():
            for r in range(args.regions):
                got = step(store, size, REGIONS[r].name, end, args.seed)
                for k, v in got.items():
                    total[k] += v
        secs = total["transform_s"] + total["write_s"]
        print(
            f"{label:32} {total['transform_s']:>11.2f} {total['write_s']:>8.2f} {secs:>8.2f} "
            f"{secs / 60:>6.3f} {int(total['rows']):>8,}"
        )
        if int(total["rows"]) != expected * args.regions:
            print(f"  note: {int(total['rows']):,} rows, expected {expected * args.regions:,}")
    if args.compare_tiers:
        compare_tiers(Store(full), size, args.regions, last_step, args.seed, args.compare_tiers)


def compare_tiers(
    store: Store, size: FleetSize, regions: int, end: datetime, seed: int, repeat: int
) -> None:
    """The end-of-day step with the hourly tier only and with both tiers, alternating
    ``repeat`` times; prints median seconds of the write (what the 5-minute tier costs)."""
    import statistics

    tiers = dict(store_module.ROLLUP_TIERS)
    times: dict[str, list[float]] = defaultdict(list)
    try:
        settings = [("hourly only", [3600]), ("hourly + 5-min", list(tiers))]
        for i in range(repeat):  # ABBA order: neither setting always runs first
            for label, periods in settings if i % 2 == 0 else settings[::-1]:
                store_module.ROLLUP_TIERS.clear()
                store_module.ROLLUP_TIERS.update({p: tiers[p] for p in periods})
                with store.writer():
                    t, cpu = time.perf_counter(), time.process_time()
                    for r in range(regions):
                        step(store, size, REGIONS[r].name, end, seed)
                    times[label].append(time.perf_counter() - t)
                    times[label + ", CPU s"].append(time.process_time() - cpu)
    finally:
        store_module.ROLLUP_TIERS.clear()
        store_module.ROLLUP_TIERS.update(tiers)
    print(
        f"\nend-of-day step, median of {repeat} alternating runs (transform + write), "
        "wall-clock s and this process's CPU s (less sensitive to other jobs)"
    )
    for label, secs in times.items():
        print(f"{label:32} {statistics.median(secs):>8.2f}  runs {[round(x, 2) for x in secs]}")


if __name__ == "__main__":
    main()

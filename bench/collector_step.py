"""Does the collector keep up with the large fleet's 1-minute step?

    python bench/collector_step.py [--regions 20] [--workdir /work/scale-data/step]

One collection step of the large fleet (observatory/large_fleet.py: per region 10
models x 2 arms, 8 GPUs per model) is: one minute of raw exporter samples per region
(vLLM, dcgm-exporter, OpenCost and quality series, with their real metric names and
labels, two samples per counter series so increases are defined), turned into rows by
the collector's transform (``collectors.transform.matrix_block`` per preset mapping,
``blocks_table``) and written with ``Store.replace_window``, region after region, as
the collector's write path does.  Measured per case:

- start of day: the step opens new day partitions (cheapest);
- end of the first hour: the partitions hold the day's first 59 minutes;
- end of day: the step is the last minute of a day whose partitions already hold
  the 1 439 earlier minutes (the worst case before hour files: it grew through the day).

Each case with a partial day runs on two layouts of the same rows, in the same run:

- **hour files** (the store now: one file per hour of the day, observatory/hour_files.py):
  the step rewrites the current hour's file and patches the day's roll-ups;
- **day file (baseline)**: the same partitions converted to one ``part.parquet`` per
  day with their roll-ups stamped as an older store's (:func:`to_day_files`), what
  stores written before hour files hold: the step rewrites the whole day's file
  without the window's rows, then writes the hour file (the old cost, plus the hour
  file).

Wall-clock seconds and this process's CPU seconds (less sensitive to other jobs on
the machine) per step of all regions.  The baseline is the step length, 60 s: the
ratio (seconds per step / 60) must stay below 1, with head-room for fetching from
Prometheus (not measured here).

``--spread`` measures only the collector runs after the built day closes (issue #9,
"the once-a-day compaction spike"), on two copies of the day in hour files: each run
is one step of every region (on the next date) plus ``Store.compact_closed`` with the
collector's per-run budget (``collectors.collect.COMPACT_BUDGET_S``), run after run
until nothing is left; the baseline, same run: one step plus the whole date's
compaction at once (no budget, the collector before the fix).  Rows and the counter
sum are checked equal after both.

``--compare-tiers N`` then repeats the end-of-day step N times with the store writing
the hourly roll-ups only, hourly + 5-minute (before the daily tier) and every tier
(+ daily, the product), alternating (forward, then reversed) on the same store (a step
rewrites the same minute: idempotent), and prints the medians: what the 5-minute and
the daily tier cost the write path.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
from observatory.hour_files import LEGACY_FILE, hour_file_name
from observatory.large_fleet import MODELS, REGIONS, SIGNALS_OF_TABLE, FleetSize, build, sized
from observatory.store import (
    GPU_STEP_SIGNALS,
    ROLLUP_OF,
    ROLLUP_TIERS,
    SCHEMAS,
    DataPartition,
    Store,
)
from observatory.store import core as store_module  # the names Store uses


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


def _stamp_rollups(
    store: Store, part: DataPartition, stamp: int, gpu: dict[tuple[date, str], list[int]]
) -> None:
    """Give ``part``'s roll-ups the freshness ``stamp`` (ns) and note it for the
    GPU-step roll-up of its date and region (:func:`_stamp_gpu_rollups`)."""
    for period in ROLLUP_TIERS if part.table in ROLLUP_OF else ():
        os.utime(store.rollup_path(part.table, part.folder, period), ns=(stamp, stamp))
    if part.table == "gauges" and part.signal in GPU_STEP_SIGNALS:
        gpu[(part.day, part.region)].append(stamp)


def _stamp_gpu_rollups(store: Store, gpu: dict[tuple[date, str], list[int]]) -> None:
    """Stamp each GPU-step roll-up with the newer of its two partitions' stamps."""
    for (day, region), stamps in gpu.items():
        path = store.gpu_steps_path(day, region)
        os.utime(path, ns=(max(stamps), max(stamps)))


def to_day_files(root: Path) -> int:
    """Convert the store at ``root`` to the layout before hour files: each data
    partition's rows in one ``part.parquet`` (sorted by ``ts_utc``, written as the
    former writer wrote it), its roll-ups stamped with that file's modification time
    and each GPU-step roll-up with the newer of its two partitions' (the former
    freshness rules, which the store still accepts).  Returns the partitions
    converted."""
    store = Store(root)
    done = 0
    gpu: dict[tuple[date, str], list[int]] = defaultdict(list)
    for table, schema in SCHEMAS.items():
        for part in store.partitions(table):
            files = part.files()
            rows = pa.concat_tables([pq.read_table(f, schema=schema) for f in files])
            day_file = part.folder / LEGACY_FILE
            pq.write_table(
                rows.sort_by([("ts_utc", "ascending")]),
                day_file,
                compression="zstd",
                row_group_size=256_000,
                store_schema=False,
            )
            for f in files:
                f.unlink()
            stamp = day_file.stat().st_mtime_ns
            _stamp_rollups(store, part, stamp, gpu)
            done += 1
    _stamp_gpu_rollups(store, gpu)
    return done


def to_hour_files(root: Path) -> int:
    """Convert every ``part.parquet`` data partition of the store at ``root`` to hour
    files (what a collector writing step by step leaves: one file per hour of the
    day, :mod:`observatory.hour_files`), with the roll-ups kept fresh (stamped with
    the partition folder's new modification time; each GPU-step roll-up with the
    newer of its two partitions').  Returns the partitions converted.

    Since issue #9 a whole-day write (``large_fleet.build``, ``observatory demo``)
    stores one ``part.parquet`` per partition-day, so the benches that measure the
    hour-file layout convert what those builders wrote."""
    store = Store(root)
    done = 0
    gpu: dict[tuple[date, str], list[int]] = defaultdict(list)
    for table, schema in SCHEMAS.items():
        for part in store.partitions(table):
            day_file = part.folder / LEGACY_FILE
            if not day_file.exists():
                continue
            rows = pq.read_table(day_file, schema=schema)
            for k, hour in store_module._split_by_hour(rows, part.day).items():
                pq.write_table(
                    hour,
                    part.folder / hour_file_name(k),
                    compression="zstd",
                    row_group_size=256_000,
                    store_schema=False,
                )
            day_file.unlink()
            stamp = store_module._restamp(part.folder)
            _stamp_rollups(store, part, stamp, gpu)
            done += 1
    _stamp_gpu_rollups(store, gpu)
    return done


def compaction_cost(root: Path, day: date, region: str) -> tuple[int, float, float, int, int]:
    """Compact the hour files of one region-day of the store at ``root`` (every
    table and signal; :meth:`Store.compact_partition`): partitions compacted, wall
    and CPU seconds, and data files before and after."""
    store = Store(root)
    parts = [p for t in SCHEMAS for p in store.partitions(t, dates=[day], regions=[region])]
    before = sum(len(p.files()) for p in parts)
    t, cpu = time.perf_counter(), time.process_time()
    with store.writer():
        done = sum(store.compact_partition(p) for p in parts)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return done, wall, cpu, before, sum(len(p.files()) for p in parts)


def _all_rollups_fresh(store: Store, day: datetime) -> bool:
    """True when every partition of ``day`` is answered by its hourly roll-up (the
    converted layout must not make the step rebuild roll-ups from scratch)."""
    end = day + timedelta(days=1) - timedelta(microseconds=1)
    return (
        all(not store.hourly_plan(t, SIGNALS_OF_TABLE[t], day, end).minutes_all for t in ROLLUP_OF)
        and not store.gpu_steps_plan(day, end).minutes_all
    )


def _fingerprint(store: Store) -> tuple[int, float]:
    """Rows and the sum of counter increases of the store (both layouts must agree)."""
    fresh = Store(store.root)
    df = fresh.query("SELECT count(*) AS n, sum(value) AS v FROM counters")
    return int(df["n"].iloc[0]), round(float(df["v"].iloc[0]), 3)


def main() -> None:
    """Measure one step of every region per case and layout."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=20, help="regions of the step (large: 20)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/observatory-collector-step"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--compare-tiers", type=int, default=0, help="end-of-day runs per tier set (0: none)"
    )
    ap.add_argument(
        "--spread", action="store_true", help="only the runs after the day closes (compaction)"
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
    print(f"(converted the day files to hour files: {to_hour_files(full)} partitions)")
    if args.spread:
        spread_compaction(args.workdir, full, size, args.regions, day_end, args.seed)
        return
    last_step = day_end - timedelta(seconds=size.step_s)
    day = day_end - timedelta(days=1)
    hour = args.workdir / "hour"
    shutil.copytree(full, hour)
    first_hour = Store(hour)
    with first_hour.writer():  # keep only 00:00-00:58 of the day
        for r in range(args.regions):
            for table, signals in SIGNALS_OF_TABLE.items():
                first_hour.replace_window(
                    table, REGIONS[r].name, signals, day + timedelta(minutes=58), last_step,
                    pa.table({"signal": pa.array([], pa.string())}),
                )  # fmt: skip
    legacy: dict[str, Path] = {}
    converted = 0
    for name, src in (("hour", hour), ("full", full)):
        legacy[name] = args.workdir / f"{name}-day-file"
        shutil.copytree(src, legacy[name])  # copy2: modification times kept
        converted += to_day_files(legacy[name])
        naive_day = day.replace(tzinfo=None)
        if not _all_rollups_fresh(Store(legacy[name]), naive_day):
            raise SystemExit(f"{legacy[name]}: converted roll-ups are not fresh")
    print(f"(converted copies to one part.parquet per day partition: {converted} partitions)")
    cases = [
        ("start of day (new partitions)", "either", Store(args.workdir / "empty"), day),
        ("end of first hour (59 min held)", "day file", Store(legacy["hour"]), day + HOUR_59),
        ("end of first hour (59 min held)", "hour files", first_hour, day + HOUR_59),
        ("end of day (1,439 min held)", "day file", Store(legacy["full"]), last_step),
        ("end of day (1,439 min held)", "hour files", Store(full), last_step),
    ]
    expected = sum(size.rows_per_region_day().values()) // size.steps_per_day
    print(
        f"\none 1-minute step, {args.regions} regions x {expected:,} rows; baseline: the 60 s "
        "step, and per case the day-file layout"
    )
    print(
        f"{'case':32} {'layout':10} {'transform s':>11} {'write s':>8} {'total s':>8} "
        f"{'CPU s':>6} {'/60 s':>6} {'rows':>8}"
    )
    for label, layout, store, end in cases:
        total: dict[str, float] = defaultdict(float)
        cpu = time.process_time()
        with store.writer():
            for r in range(args.regions):
                got = step(store, size, REGIONS[r].name, end, args.seed)
                for k, v in got.items():
                    total[k] += v
        cpu = time.process_time() - cpu
        secs = total["transform_s"] + total["write_s"]
        print(
            f"{label:32} {layout:10} {total['transform_s']:>11.2f} {total['write_s']:>8.2f} "
            f"{secs:>8.2f} {cpu:>6.2f} {secs / 60:>6.3f} {int(total['rows']):>8,}"
        )
        if int(total["rows"]) != expected * args.regions:
            print(f"  note: {int(total['rows']):,} rows, expected {expected * args.regions:,}")
    for name, hours in (("hour", first_hour), ("full", Store(full))):
        a, b = _fingerprint(hours), _fingerprint(Store(legacy[name]))
        print(f"(rows and counter sum after the step, hour files {a}, day file {b})")
        if a[0] != b[0] or not math.isclose(a[1], b[1], rel_tol=1e-12):  # float sum order
            raise SystemExit(f"the two layouts of {name} disagree: {a} != {b}")
    naive_day = day.date()
    shutil.copytree(full, args.workdir / "compact")
    done, wall, cpu, before, after = compaction_cost(
        args.workdir / "compact", naive_day, REGIONS[0].name
    )
    print(
        f"\ncompaction of one closed region-day ({REGIONS[0].name}, {naive_day}): {done} "
        f"partitions, {before:,} -> {after:,} data files, {wall:.2f} s wall, {cpu:.2f} CPU-s"
    )
    if args.compare_tiers:
        compare_tiers(Store(full), size, args.regions, last_step, args.seed, args.compare_tiers)


HOUR_59 = timedelta(minutes=59)


def spread_compaction(
    workdir: Path, full: Path, size: FleetSize, regions: int, day_end: datetime, seed: int
) -> None:
    """Collector runs after the day of ``full`` closes: a step of every region plus
    the closed date's compaction, with the collector's budget per run (until done)
    and, as the baseline, all at once; prints a row per run and checks the sums."""
    from collectors.collect import COMPACT_BUDGET_S

    now = day_end + store_module.COMPACT_GRACE  # the built date has just closed
    results = {}
    print(
        f"\ncollector runs after a date closes, {regions} regions: a step of every region "
        f"+ compact_closed; budget {COMPACT_BUDGET_S:g} s per run vs none (all at once)"
    )
    print(
        f"{'compaction':12} {'run':>3} {'step s':>7} {'step CPU':>8} {'compact s':>9} "
        f"{'compact CPU':>11} {'partitions':>10} {'left':>5} {'run s':>6} {'/60 s':>6}"
    )
    for label, budget in (("all at once", None), ("spread", COMPACT_BUDGET_S)):
        root = workdir / f"close-{label.replace(' ', '-')}"
        shutil.copytree(full, root)
        store = Store(root)
        run = 0
        while True:
            run += 1
            minute = day_end + timedelta(minutes=run)
            with store.writer():
                t, cpu = time.perf_counter(), time.process_time()
                for r in range(regions):
                    step(store, size, REGIONS[r].name, minute, seed)
                t1, cpu1 = time.perf_counter(), time.process_time()
                done = store.compact_closed(now + timedelta(minutes=run), budget_s=budget)
                t2, cpu2 = time.perf_counter(), time.process_time()
            print(
                f"{label:12} {run:>3} {t1 - t:>7.2f} {cpu1 - cpu:>8.2f} {t2 - t1:>9.2f} "
                f"{cpu2 - cpu1:>11.2f} {done.compacted:>10} {done.remaining:>5} "
                f"{t2 - t:>6.2f} {(t2 - t) / 60:>6.3f}"
            )
            if not done.remaining:
                break
        files = sum(1 for _ in (root / "lake").rglob("*.parquet"))
        closed = Store(root).query(
            "SELECT count(*) AS n, sum(value) AS v FROM counters WHERE ts_utc <= $end",
            {"end": day_end.replace(tzinfo=None)},
        )
        results[label] = (int(closed["n"].iloc[0]), round(float(closed["v"].iloc[0]), 3), files)
    print(f"(closed date's counter rows and sum, Parquet files after: {results})")
    if len({r for r in results.values()}) != 1:
        raise SystemExit(f"spread and all-at-once compaction disagree: {results}")


def compare_tiers(
    store: Store, size: FleetSize, regions: int, end: datetime, seed: int, repeat: int
) -> None:
    """The end-of-day step with the hourly tier only, hourly + 5-minute and every tier
    (+ daily), alternating ``repeat`` times; prints median seconds of the write (what
    the 5-minute and the daily tier cost)."""
    import statistics

    tiers = dict(store_module.ROLLUP_TIERS)
    times: dict[str, list[float]] = defaultdict(list)
    try:
        settings = [
            ("hourly only", [3600]),
            ("hourly + 5-min", [3600, 300]),
            ("hourly + 5-min + daily", list(tiers)),
        ]
        for i in range(repeat):  # forward, then reversed: no setting always runs first
            for label, periods in settings if i % 2 == 0 else settings[::-1]:
                # Untimed, every tier: each timed step starts with every tier fresh (the
                # collector's steady state; a tier left stale by the previous setting
                # would be rebuilt from every row, not patched).
                store_module.ROLLUP_TIERS.clear()
                store_module.ROLLUP_TIERS.update(tiers)
                with store.writer():
                    for r in range(regions):
                        step(store, size, REGIONS[r].name, end, seed)
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

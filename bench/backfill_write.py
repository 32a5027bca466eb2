"""What hour files cost a backfill: whole-day windows of the large fleet written by the
store now (a whole-day window writes one ``part.parquet`` per partition-day, issue #9),
by the store now with that path switched off (one file per hour of the day, what every
write did before it) and by the store of an earlier revision (one ``part.parquet`` per
day partition), in the same run.

    python bench/backfill_write.py [--regions 2] [--days 2] [--baseline-rev b4b0aa9]

The baseline is ``observatory/store/`` of ``--baseline-rev`` (read with ``git show``;
b4b0aa9 is the last revision before hour files), loaded as a separate module.  Each
layout writes the same region-days (``observatory.large_fleet.region_day``: one day
per ``replace_window`` and table, as ``large_fleet.build`` and a backfill of whole
days write), alternating which goes first per repeat; printed: median wall-clock
and CPU seconds, files in the lake, and whether both hold the same rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from observatory.large_fleet import REGIONS, SIGNALS_OF_TABLE, region_day, sized
from observatory.store import core as current  # the module whose names Store uses

ROOT = Path(__file__).resolve().parent.parent


def baseline_module(rev: str, workdir: Path) -> ModuleType:
    """``observatory/store/`` of git revision ``rev``, imported as its own module."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:observatory/store/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = workdir / f"store_{rev}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"store_{rev}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def write_days(module: Any, root: Path, days: list[datetime], regions: int, seed: int) -> None:
    """Write ``days`` x ``regions`` of the large fleet with ``module.Store`` into ``root``."""
    size = sized("large", regions=regions, days=len(days))
    store = module.Store(root)
    with store.writer():
        for day in days:
            lo = day - timedelta(seconds=size.step_s)
            hi = day + timedelta(days=1) - timedelta(seconds=size.step_s)
            for r in range(regions):
                rd = region_day(size, seed, r, day)
                for table, frame in rd.tables.items():
                    store.replace_window(
                        table, REGIONS[r].name, SIGNALS_OF_TABLE[table], lo, hi, frame
                    )


def main() -> None:
    """Time both layouts; print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=2)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baseline-rev", default="b4b0aa9")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="backfill-write-"))
    layouts = {
        f"day files ({args.baseline_rev}, baseline)": baseline_module(args.baseline_rev, work),
        "hour files (day path off)": current,
        "now (whole days: day file)": current,
    }
    whole_day = current._covers_day
    days = [datetime(2026, 11, 1) + timedelta(days=i) for i in range(args.days)]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in layouts}
    sums: dict[str, tuple[int, float]] = {}
    files: dict[str, int] = {}
    try:
        for i in range(args.repeat):
            order = list(layouts) if i % 2 == 0 else list(layouts)[::-1]
            for label in order:
                root = work / f"store-{len(times[label])}-{list(layouts).index(label)}"
                off = label.startswith("hour files")
                current._covers_day = (lambda *a: False) if off else whole_day  # type: ignore[assignment]
                t, c = time.perf_counter(), time.process_time()
                write_days(layouts[label], root, days, args.regions, args.seed)
                current._covers_day = whole_day  # type: ignore[assignment]
                times[label].append((time.perf_counter() - t, time.process_time() - c))
                files[label] = sum(1 for _ in (root / "lake").rglob("*.parquet"))
                df = current.Store(root).query(
                    "SELECT count(*) AS n, sum(value) AS v FROM counters"
                )
                sums[label] = (int(df["n"].iloc[0]), round(float(df["v"].iloc[0]), 3))
                shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{args.days} day(s) x {args.regions} region(s) of the large fleet, one window per "
        f"day and table; medians of {args.repeat} alternating runs"
    )
    print(f"{'layout':34} {'wall s':>8} {'CPU s':>8} {'files':>7}  counters (rows, sum)")
    for label, runs in times.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{label:34} {wall:>8.2f} {cpu:>8.2f} {files[label]:>7,}  {sums[label]}")
    if len(set(sums.values())) != 1:
        raise SystemExit("the two layouts hold different rows")


if __name__ == "__main__":
    main()

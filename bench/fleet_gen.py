"""Generate the scale-test fleet into a store and report time, rows, bytes and peak memory.

    python bench/fleet_gen.py --size small --store /work/scale-data/small
    nice -n 19 python bench/fleet_gen.py --size large --store /work/scale-data/large

Sizes are :data:`observatory.large_fleet.SIZES` (large: 20 regions x 10 models x 2
arms x 8 GPUs per region-model, 30 days at 1-minute steps; small: 2 regions).  The
baseline, measured in the same run, is the demo fleet's path (exporter series through
the collector's transform, :func:`observatory.demo.build_store`) for one region-day:
the rate the generator replaces.  Peak RSS is ``ru_maxrss`` of this process (the
baseline runs in a child process so it does not count).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from observatory.large_fleet import build, sized

BASELINE = """
import sys, time
from datetime import datetime, UTC
from observatory.demo import build_store
t = time.perf_counter()
msg = build_store(__import__('pathlib').Path(sys.argv[1]), days=1, regions=['us-east-1'],
                  end=datetime(2026, 11, 1, tzinfo=UTC), force=True)
print(int(msg.split(' rows')[0].split()[-1].replace(',', '')), time.perf_counter() - t)
"""


def _bytes(root: Path) -> tuple[int, int]:
    files = list((root / "lake").rglob("*.parquet"))
    return sum(f.stat().st_size for f in files), len(files)


def _baseline() -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", BASELINE, tmp], capture_output=True, text=True, check=True
        ).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    """Parse arguments, build the fleet, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small", help="small or large")
    ap.add_argument("--store", type=Path, required=True, help="store folder (created)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--end", default="2026-11-29T00:00:00+00:00", help="history end, UTC")
    ap.add_argument("--days", type=int, default=None, help="override the size's days")
    ap.add_argument("--quiet", action="store_true", help="no per-day progress")
    args = ap.parse_args()
    size = sized(args.size, **({"days": args.days} if args.days else {}))
    if (args.store / "lake").exists():
        sys.exit(f"error: {args.store} already holds a lake; remove it or pick another folder")
    base_rows, base_s = _baseline()
    began = time.perf_counter()
    result = build(
        args.store,
        size,
        seed=args.seed,
        end=datetime.fromisoformat(args.end).astimezone(UTC),
        progress=None if args.quiet else lambda m: print(m, file=sys.stderr, flush=True),
    )
    wall = time.perf_counter() - began
    stored, files = _bytes(args.store)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gauges_values = 3  # mean, max, last per gauge row
    values = (
        result.rows["counters"] + result.rows["histograms"] + gauges_values * result.rows["gauges"]
    )
    print(f"\nfleet {args.size}: {size}")
    print(f"{'measure':34} {'value':>16}")
    print(f"{'rows (counters/gauges/histograms)':34} {result.total_rows:>16,}")
    for t, n in result.rows.items():
        print(f"{'  ' + t:34} {n:>16,}")
    print(f"{'rows expected (size.total_rows)':34} {size.total_rows():>16,}")
    print(f"{'stored values (gauges x3)':34} {values:>16,}")
    print(f"{'partition files':34} {files:>16,}")
    print(f"{'stored bytes (Parquet, zstd)':34} {stored:>16,}")
    print(f"{'bytes per row':34} {stored / result.total_rows:>16.2f}")
    print(f"{'wall seconds':34} {wall:>16.1f}")
    print(f"{'rows per second':34} {result.total_rows / wall:>16,.0f}")
    print(f"{'peak RSS MiB':34} {peak_mb:>16.0f}")
    print(
        f"\nbaseline (demo fleet through the collector transform, 1 region-day): "
        f"{base_rows:,} rows in {base_s:.1f} s = {base_rows / base_s:,.0f} rows/s; "
        f"generator {result.total_rows / wall / (base_rows / base_s):.1f}x faster"
    )


if __name__ == "__main__":
    main()

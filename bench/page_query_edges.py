"""What the window's edge minutes cost the pages' named queries, at two fleet sizes.

    flock /tmp/large.lock python bench/page_query_edges.py \
        --small /work/scale-data/small-h5 --large /work/scale-data/large-h5

The Latency, GPUs & Energy and Cost & Carbon pages read the last 24 h up to the latest
step, ``(end - 24 h, end]``, through :meth:`observatory.store.Store.named`: whole
hours and whole 5-minute periods from the roll-ups, and the minutes a window edge cuts
from the minute rows of every region's partitions.  Each query is timed over that
window and over the same 24 h ending on the last whole hour (the baseline, in the same
run: no minute rows are read), with every region, model and arm, the minimum of
``--repeat`` runs in one process (views built, files seen once).  The difference is
what the edge minutes cost; its growth from the small to the large fleet is the
number of minute files (one per region and signal) they open.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.filter_catalogue import read_catalogue
from observatory.store import Store

#: The pages' named queries and their extra parameters (5-minute series, the 24 h preset).
QUERIES: dict[str, dict[str, Any]] = {
    "latency_by_group": {},
    "latency_series": {"signal": "latency", "split": "region", "bucket_s": 300},
    "gpu_by_group": {"floor_pct": 10},
    "gpu_series": {"split": "region", "bucket_s": 300},
    "work_by_day": {},
}


def timings(root: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """Per query: seconds over the pages' window and over the whole-hour window."""
    store = Store(root)
    store.connect()
    cat = read_catalogue(store)
    if cat.last is None:
        raise SystemExit(f"{root}: no request data")
    every = {
        "regions": cat.regions["region"].tolist(),
        "models": cat.models,
        "arms": cat.arms,
        "all_arms": cat.arms,
    }

    def best(name: str, end: datetime) -> float:
        params = {**every, **QUERIES[name], "start": end - timedelta(hours=24), "end": end}
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            store.named(name, **params)
            runs.append(time.perf_counter() - t)
        return min(runs)

    hour = cat.last.replace(minute=0, second=0, microsecond=0)
    return {name: (best(name, cat.last), best(name, hour)) for name in QUERIES}


def main() -> None:
    """Time every query at both sizes and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=Path, required=True, help="store of the small fleet")
    ap.add_argument("--large", type=Path, required=True, help="store of the large fleet")
    ap.add_argument("--repeat", type=int, default=3, help="runs per query and window (min)")
    args = ap.parse_args()
    got = {
        label: timings(root, args.repeat)
        for label, root in (("small", args.small), ("large", args.large))
    }
    print("\nseconds (min of runs); baseline: the same 24 h ending on the last whole hour")
    head = f"{'query':18}" + "".join(
        f" {label + ' ' + w:>14}" for label in got for w in ("page window", "whole hours")
    )
    print(head + f" {'edge share large':>17}")
    print("-" * (len(head) + 18))
    for name in QUERIES:
        cells = [v for label in got for v in got[label][name]]
        page, whole = got["large"][name]
        share = (page - whole) / page if page else 0.0
        print(f"{name:18}" + "".join(f" {c:>14.3f}" for c in cells) + f" {share:>16.0%}")


if __name__ == "__main__":
    main()

"""What dropping the filter predicates of the default view saves the pages' queries.

    flock /tmp/large.lock python bench/default_view_filters.py \\
        /work/scale-data/small-h5 /work/scale-data/large-h5

For each converted named query of the pages (``bench/rollup_queries.py``
``page_calls``: every region, model and arm, the last 24 h in 5-minute buckets and
the last 7 days in hourly buckets, up to the latest step) the same call of
:meth:`Store.named` runs with the filters as explicit lists of every value (the
baseline: what the dashboard passed before the sixth session, each one a
``list_contains`` predicate that DuckDB plans as a hash semi-join) and as None
(``Filters.params`` now; the store replaces the predicates by ``TRUE``),
alternating, ``--repeat`` times each; medians.  "same" checks that both give the
same frame (floats to 1e-9 relative).  Read-only: the store is not written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollup_queries import page_calls

EVERY = {"regions": None, "models": None, "arms": None}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    except AssertionError:
        return False
    return True


def main() -> None:
    """Print one row per store, window and named query, then the sums."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'store':10} {'window':6} {'query':28} {'lists s':>8} {'None s':>8} "
          f"{'None/lists':>10} {'same':>5}")  # fmt: skip
    for root in args.roots:
        totals = {"lists": 0.0, "none": 0.0}
        for store, label, name, params in page_calls(root):
            calls = {"lists": params, "none": {**params, **EVERY}}
            times: dict[str, list[float]] = {k: [] for k in calls}
            frames = {k: store.named(name, **p) for k, p in calls.items()}  # warm the OS cache
            for _ in range(args.repeat):
                for key, p in calls.items():
                    t0 = time.perf_counter()
                    store.named(name, **p)
                    times[key].append(time.perf_counter() - t0)
            lists, none = statistics.median(times["lists"]), statistics.median(times["none"])
            totals["lists"] += lists
            totals["none"] += none
            same = _same(frames["lists"], frames["none"])
            print(f"{Path(root).name:10} {label:6} {name:28} {lists:>8.3f} {none:>8.3f} "
                  f"{none / lists:>10.2f} {same!s:>5}")  # fmt: skip
        print(
            f"{Path(root).name}: sum of medians, lists {totals['lists']:.3f} s, "
            f"None {totals['none']:.3f} s ({totals['none'] / totals['lists']:.2f}x)"
        )


if __name__ == "__main__":
    main()

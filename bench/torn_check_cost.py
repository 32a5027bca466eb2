"""What the store's torn-read file check costs the pages' named queries.

    flock /tmp/large.lock python bench/torn_check_cost.py /work/scale-data/large-h5

For each converted named query of the pages (``bench/rollup_queries.py`` ``NAMED``,
every region, model and arm; the last 24 h in 5-minute buckets and the last 7 days
in hourly buckets, both up to the latest step) the same call of :meth:`Store.named`
is run with the check off (``Store.verify_files = False``, the baseline: the store
before issue #9's fix) and on, alternating, ``--repeat`` times each (medians
reported).  "files" is how many Parquet files the expanded SQL names (what is
``stat``-ed twice); "check ms" times that part alone (finding the names in the SQL
and two ``stat`` passes) on the same SQL.  Read-only: the store is not written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollup_queries import page_calls

from observatory.store import file_identity, planned_files


def _check_ms(sql: str) -> tuple[int, float]:
    """(files named, ms for finding them and two identity passes) of ``sql``."""
    t0 = time.perf_counter()
    files = planned_files(sql)
    before = [file_identity(f) for f in files]
    after = [file_identity(f) for f in files]
    assert before == after
    return len(files), (time.perf_counter() - t0) * 1000


def main() -> None:
    """Print one row per store, window and named query."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'store':10} {'window':6} {'query':28} {'files':>6} {'off s':>7} {'on s':>7} "
          f"{'on/off':>6} {'check ms':>9}")  # fmt: skip
    totals = {False: 0.0, True: 0.0}
    for root in args.roots:
        for store, label, name, params in page_calls(root):
            times: dict[bool, list[float]] = {False: [], True: []}
            store.named(name, **params)  # warm the OS cache
            for _ in range(args.repeat):
                for verify in (False, True):
                    store.verify_files = verify
                    t0 = time.perf_counter()
                    store.named(name, **params)
                    times[verify].append(time.perf_counter() - t0)
            sql = store._expand_rows(name, (Path(__file__).resolve().parent.parent / "sql"
                                            / "queries" / f"{name}.sql").read_text(),
                                     params, True)  # fmt: skip
            files, check = _check_ms(sql)
            off, on = statistics.median(times[False]), statistics.median(times[True])
            totals[False] += off
            totals[True] += on
            print(f"{Path(root).name:10} {label:6} {name:28} {files:>6} {off:>7.3f} "
                  f"{on:>7.3f} {on / off:>6.2f} {check:>9.2f}")  # fmt: skip
    off, on = totals[False], totals[True]
    print(f"all queries, sum of medians: off {off:.3f} s, on {on:.3f} s ({on / off:.3f}x); "
          f"store reruns {store.torn_retries}")


if __name__ == "__main__":
    main()

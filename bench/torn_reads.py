"""Reads of a Parquet file that a writer replaces (temporary name + ``os.replace``, as
the store writes every partition) while DuckDB queries it.

    python bench/torn_reads.py [--reads 500] [--every 0.005 0.05 0.5]

A writer thread alternates two versions of one file (1,997 rows of 1 and 2,994 rows
of 2, row groups of 500) every ``--every`` seconds; the reader sums the column
``--reads`` times through ``Store.query``, once with the store's file check off
(``Store.verify_files = False``: only DuckDB's errors are retried, the store before
issue #9's fix) and once with it on (each named file's identity compared before and
after the query, a changed file runs the query again).  Each read is classified: a
whole version (sum 1,997 or 5,988), an error after the retries, or a *silent mix* (any
other sum: DuckDB bound the query on one version's footer and scanned the other's
pages).  Baseline, same run: the same reads with no writer (docs/architecture.md,
"Readers and writers").
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from observatory.store import Store, StoreError

VERSIONS = [pa.table({"v": pa.array([k] * (1000 + 997 * k), pa.int64())}) for k in (1, 2)]
WHOLE = {1997, 5988}


def run(reads: int, every: float | None, verify: bool) -> collections.Counter[str]:
    """Classify ``reads`` sums of the file while a writer replaces it every ``every``
    s (``verify``: the store's file check on)."""
    folder = Path(tempfile.mkdtemp(prefix="torn-"))
    path = folder / "part.parquet"
    pq.write_table(VERSIONS[0], path, row_group_size=500)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while every is not None and not stop.is_set():
            tmp = folder / f".tmp-{i}.parquet.tmp"
            pq.write_table(VERSIONS[i % 2], tmp, row_group_size=500)
            tmp.replace(path)
            i += 1
            stop.wait(every)

    thread = threading.Thread(target=writer)
    thread.start()
    store = Store(folder / "store")
    store.verify_files = verify
    seen: collections.Counter[str] = collections.Counter()
    try:
        for _ in range(reads):
            try:
                s = int(store.query(f"SELECT sum(v) AS s FROM read_parquet('{path}')")["s"][0])
                seen["whole version" if s in WHOLE else "silent mix"] += 1
            except StoreError:
                seen["error after retries"] += 1
    finally:
        stop.set()
        thread.join()
    seen["reruns"] = store.torn_retries
    return seen


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=500)
    ap.add_argument("--every", type=float, nargs="+", default=[0.005, 0.05, 0.5])
    args = ap.parse_args()
    cases: list[float | None] = [None, *args.every]
    head = f"{'writer replaces every':>22} {'file check':>10} {'reads':>6} {'whole':>6}"
    print(f"{head} {'silent mix':>11} {'errors':>7} {'reruns':>7}")
    for every in cases:
        for verify in (False, True):
            seen = run(args.reads, every, verify)
            label = "no writer (baseline)" if every is None else f"{every:g} s"
            print(
                f"{label:>22} {'on' if verify else 'off':>10} {args.reads:>6} "
                f"{seen['whole version']:>6} {seen['silent mix']:>11} "
                f"{seen['error after retries']:>7} {seen['reruns']:>7}"
            )

if __name__ == "__main__":
    main()

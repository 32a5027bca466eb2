"""What building the store's DuckDB views costs, against a query on views already built.

The dashboard keeps one :class:`~observatory.store.Store` per view shape
(``Store.view_key``, app/data.py) instead of one per data version, because building
the views lists every data file of the store.  This prints, per store given (the
first is the baseline, e.g. the small fleet), the best of ``--repeat`` runs of:
building the views (``Store.connect``), computing ``view_key``, and a query on the
built connection.

    python bench/view_build.py /work/scale-data/small-h5 /work/scale-data/large-h5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from observatory.store import Store


def _times(root: Path) -> tuple[float, float, float]:
    store = Store(root)
    t0 = time.perf_counter()
    store.connect()
    t1 = time.perf_counter()
    store.view_key()
    t2 = time.perf_counter()
    store.query("SELECT count(*) FROM regions")
    t3 = time.perf_counter()
    store.refresh()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", type=Path, nargs="+", help="store folders; the first is the baseline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for root in args.stores:
        runs = [_times(root) for _ in range(args.repeat)]
        rows.append((root, *(min(r[i] for r in runs) for i in range(3))))
    base = rows[0][1]
    head = ["build views s", "x baseline", "view_key s", "query s"]
    print(f"{'store':40} " + " ".join(f"{h:>13}" for h in head))
    for root, build, key, query in rows:
        print(f"{root!s:40} {build:13.3f} {build / base:13.1f} {key:13.4f} {query:13.4f}")


if __name__ == "__main__":
    main()

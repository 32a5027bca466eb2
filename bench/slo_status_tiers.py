#!/usr/bin/env python3
"""Benchmark: SLO status on demand with the daily roll-up tier vs the hourly tier only.

For each store (``--small``, ``--large``; the scale stores of docs/scaling.md) the
script works on a hard-link copy (``cp -al`` into ``--workdir``, made once) so the
original is never written: it runs :meth:`Store.housekeeping` on the copy (what a user
upgrading gets on the first write: the daily tier built from the fresh hourly
roll-ups) and reports its time and the files and bytes it added, and checks that
every file of the original kept its inode, size and modification time (writers
replace files, they never write into a linked one).

Then, in one process and interleaved, it times :func:`status_table` of the example
SLOs (``--specs``) on demand at the latest step, with the SLO slice cache filled
(``$OBSERVATORY_SLO_CACHE``, default ``/tmp/h5s/slocache-daily``; an untimed first
run fills it), and the batched SLOs' pass alone (``SloEngine._batch``):

- ``hourly``: ``OBSERVATORY_ROLLUP=hourly`` (the baseline: whole hours from the
  hourly tier, the rest step by step, as before the daily tier);
- ``daily``: the default (whole days from the daily tier, edge days' hours, edge
  hours' 5-minute periods, the rest step by step).

``--baseline-tree DIR`` (a checkout of an older tree, e.g. ``git archive HEAD | tar -x
-C DIR``) also times that tree's engine and store on the same copy, in a child process
(a warm-up run, then ``--repeat`` runs), before the interleaved runs: the code before
this change, where ``hourly`` is this tree with the daily tier turned off.

It checks the tables are equal (every column; floats to 1e-12) and prints medians
of ``--repeat`` runs with the load average.  Run it under the shared lock::

    flock /tmp/large.lock .venv/bin/python bench/slo_status_tiers.py \\
        --small /work/scale-data/small-h5 --large /work/scale-data/large-h5 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from observatory.slo_engine import SloEngine, status_table  # noqa: E402
from observatory.slo_specs import SloDefinition, load_specs  # noqa: E402
from observatory.store import ROLLUP_DAILY_OF, Store, tree_identities  # noqa: E402

MODES = {"hourly": "hourly", "daily": "1"}
KEY = ["slo", "region", "model", "arm"]


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def prepare(original: Path, copy: Path) -> dict[str, float]:
    """Hard-link copy of ``original`` (once) with the daily tier built by housekeeping."""
    before = tree_identities(original)
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(original), str(copy)], check=True)
    store = Store(copy)
    began = time.perf_counter()
    with store.writer():  # the writer lock; its first taking runs housekeeping
        pass
    took = time.perf_counter() - began
    if tree_identities(original) != before:
        raise SystemExit(f"{original}: a file of the original changed (written in place)")
    daily = [store.lake / t for t in ROLLUP_DAILY_OF.values()]
    return {
        "housekeeping_s": took,
        "daily_files": sum(len(list(d.rglob("*.parquet"))) for d in daily),
        "daily_mb": sum(_bytes(d) for d in daily) / 1e6,
        "hourly_mb": sum(_bytes(store.lake / (t + "_hourly")) for t in ROLLUP_DAILY_OF) / 1e6,
    }


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def measure(
    copy: Path, slos: list[SloDefinition], repeat: int
) -> tuple[dict[str, list[float]], pd.DataFrame]:
    """Interleaved timings of each mode: status table and batched pass (seconds), and
    the (equal) table."""
    store = Store(copy)
    batched = [s for s in slos if SloEngine.batchable(s)]
    times: dict[str, list[float]] = {f"{m} {w}": [] for m in MODES for w in ("table", "batch")}
    tables: dict[str, pd.DataFrame] = {}
    for i in range(repeat + 1):  # run 0 fills the slice cache and is not counted
        for mode, env in MODES.items():
            os.environ["OBSERVATORY_ROLLUP"] = env
            t_table, table = _timed(lambda: status_table(SloEngine(store), slos))
            t_batch, _ = _timed(lambda: SloEngine(store)._batch(batched, None))
            assert isinstance(table, pd.DataFrame)
            tables[mode] = table
            if i:
                times[f"{mode} table"].append(t_table)
                times[f"{mode} batch"].append(t_batch)
    os.environ.pop("OBSERVATORY_ROLLUP", None)
    a, b = (tables[m].sort_values(KEY).reset_index(drop=True) for m in MODES)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    return times, a


#: The child process of ``--baseline-tree``: argv store, specs, repeat, output file.
_BASELINE = """
import json, statistics, sys, time
from observatory.slo_engine import SloEngine, status_table
from observatory.slo_specs import load_specs
from observatory.store import Store
store, slos = Store(sys.argv[1]), load_specs([sys.argv[2]])
batched = [s for s in slos if SloEngine.batchable(s)]
times = {"table": [], "batch": []}
for i in range(int(sys.argv[3]) + 1):
    t = time.perf_counter(); table = status_table(SloEngine(store), slos)
    t1 = time.perf_counter(); SloEngine(store)._batch(batched, None)
    t2 = time.perf_counter()
    if i:
        times["table"].append(t1 - t); times["batch"].append(t2 - t1)
table.to_pickle(sys.argv[4])
print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
"""


def baseline(
    tree: Path, copy: Path, specs: Path, repeat: int
) -> tuple[dict[str, float], pd.DataFrame]:
    """Median seconds (table, batch) of ``tree``'s code on ``copy``, and its table."""
    out = copy.parent / f"{copy.name}-baseline-table.pkl"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("OBSERVATORY_ROLLUP", None)
    done = subprocess.run(
        [sys.executable, "-c", _BASELINE, str(copy), str(specs), str(repeat), str(out)],
        check=True, capture_output=True, text=True, env=env, cwd=tree,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1]), pd.read_pickle(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=Path, help="The small scale store (copied, not written).")
    ap.add_argument("--large", type=Path, help="The large scale store (copied, not written).")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/h5s/stores"))
    ap.add_argument("--specs", type=Path, default=REPO / "examples" / "slo")
    ap.add_argument("--cache", default="/tmp/h5s/slocache-daily", help="Slice cache root.")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-tree", type=Path, help="An older tree to time on the copies.")
    args = ap.parse_args()
    os.environ["OBSERVATORY_SLO_CACHE"] = args.cache
    slos = load_specs([args.specs])
    rows = []
    for name, original in (("small", args.small), ("large", args.large)):
        if original is None:
            continue
        copy = args.workdir / f"{original.name}-daily"
        prep = prepare(original, copy)
        print(
            f"{name}: housekeeping {prep['housekeeping_s']:.1f} s, daily tier "
            f"{prep['daily_files']:.0f} files {prep['daily_mb']:.1f} MB "
            f"(hourly tier {prep['hourly_mb']:.1f} MB); original unchanged",
            flush=True,
        )
        before: dict[str, float] = {}
        if args.baseline_tree is not None:
            before, old_table = baseline(args.baseline_tree, copy, args.specs, args.repeat)
        times, table = measure(copy, slos, args.repeat)
        if before:
            old_sorted = old_table.sort_values(KEY).reset_index(drop=True)
            pd.testing.assert_frame_equal(old_sorted, table, check_exact=False, rtol=1e-12)
        med = {k: statistics.median(v) for k, v in times.items()}
        med |= {f"before {k}": v for k, v in before.items()}
        rows.append((name, med))
    load = os.getloadavg()
    print(f"\nmedian of {args.repeat} interleaved runs, load average {load[0]:.1f} {load[1]:.1f}")
    print(
        "| store | status_table: before / hourly / daily | batched pass: before / hourly / daily |"
    )
    print("|---|---|---|")
    for name, med in rows:
        cells = []
        for what in ("table", "batch"):
            old = med.get(f"before {what}")
            first = f"{old:.2f} / " if old is not None else ""
            cells.append(f"{first}{med[f'hourly {what}']:.2f} / {med[f'daily {what}']:.2f} s")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

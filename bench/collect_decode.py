#!/usr/bin/env python3
"""Benchmark: decoding the collector's answers, three ways, on the same bytes.

Fetches every raw-sample answer the collector would ask one region's real Prometheus
for (the demo fleet, backfilled with promtool), keeps the bodies in memory, then
times, per pass over all of them (median of ``--repeat``):

- ``json``: ``json.loads`` only (the floor of bench/collect_paths.py, path (b));
- ``orjson + parse_matrix``: the collector's previous decoder (orjson into Python
  lists, then numpy arrays);
- ``matrix_json``: the collector's decoder now (collectors/matrix_json.py: samples
  parsed from the bytes by numpy, only labels through orjson);

and checks that both collector decoders give identical arrays.

Usage::

    .venv/bin/python bench/collect_decode.py [--days 2] [--repeat 5]

Needs the Debian package ``prometheus`` (``/usr/bin/prometheus``, ``/usr/bin/promtool``).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
from collect_paths import PRESETS, planned  # sets sys.path: the repo, tests/integration
from prom_harness import (
    PromServer,
    build_fleet,
    default_fleet_end,
    missing_binaries,
    write_config,
)

from collectors.matrix_json import samples_from_segments, split_values
from collectors.prometheus import Matrix, parse_matrix


def old_decoder(body: bytes) -> Matrix:
    """orjson for everything, then :func:`parse_matrix` (the previous path)."""
    return parse_matrix(orjson.loads(body)["data"]["result"])


def new_decoder(body: bytes) -> Matrix:
    """:mod:`collectors.matrix_json` (what :class:`RegionSource` does now)."""
    cut = split_values(body)
    if cut is None:
        return old_decoder(body)
    result = orjson.loads(cut[0])["data"]["result"]
    fast = samples_from_segments(result, cut[1])
    if fast is None:
        return old_decoder(body)
    return Matrix([dict(item.get("metric") or {}) for item in result], *fast)


def floor_decoder(body: bytes) -> Any:
    """``json.loads`` only."""
    return json.loads(body)


def _time(fn: Callable[[bytes], Any], bodies: list[bytes], repeat: int) -> float:
    """Median CPU seconds of one pass, the cyclic GC paused as the collector does."""
    runs = []
    for _ in range(repeat):
        gc.disable()
        began = time.process_time()
        for body in bodies:
            fn(body)
        runs.append(time.process_time() - began)
        gc.enable()
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=2, help="days of history (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="passes per decoder (median)")
    args = parser.parse_args(argv)
    why = missing_binaries()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="observatory-decode-"))
    region = "us-east-1"
    try:
        fleet = build_fleet(work / "fleet", [region], days=args.days, end=default_fleet_end())
        server = PromServer(fleet.blocks[region], work, name=region).start()
        try:
            cfg = write_config(work / "o.yaml", work / "store", {region: server.url}, PRESETS)
            plan = planned(cfg, fleet.start, fleet.end)[server.url]
            with requests.Session() as session:
                session.headers["Accept-Encoding"] = "identity"
                bodies = [
                    session.get(f"{server.url}/api/v1/query", params=p, timeout=600).content
                    for p in plan
                ]
        finally:
            server.stop()
        for body in bodies:
            a, b = old_decoder(body), new_decoder(body)
            assert a.labels == b.labels
            np.testing.assert_array_equal(a.offsets, b.offsets)
            np.testing.assert_array_equal(a.ts_ms, b.ts_ms)
            np.testing.assert_array_equal(a.values, b.values)
        samples = sum(old_decoder(b).samples for b in bodies)
        mb = sum(len(b) for b in bodies) / 1e6
        print(
            f"{len(bodies)} answers, {mb:.0f} MB, {samples:,} samples ({args.days:g} days, "
            f"one region); CPU seconds per pass, median of {args.repeat}"
        )
        rows = [
            ("json.loads only (floor (b))", floor_decoder),
            ("orjson + parse_matrix (previous collector)", old_decoder),
            ("matrix_json (collector now)", new_decoder),
        ]
        secs = {name: _time(fn, bodies, args.repeat) for name, fn in rows}
        base = secs[rows[0][0]]
        print(f"{'decoder':<46} {'CPU s':>7} {'vs json':>8} {'M samples/s':>12}")
        for name, s in secs.items():
            print(f"{name:<46} {s:7.2f} {s / base:7.2f}x {samples / s / 1e6:12.1f}")
        print("identical arrays from both collector decoders: yes")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

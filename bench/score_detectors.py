#!/usr/bin/env python3
"""Score change-point detectors on real labelled data: NAB and TCPD (copied in tests/data).

Runs, in one command and on the same series:

- ``never``: a detector that never fires (the floor: NAB 0 by construction);
- ``pelt``: ruptures PELT, least-squares cost, ``jump`` 5 (its default), the
  BIC-like penalty ``sigma^2 ln(n) d`` (``sigma``: robust noise scale of each
  dimension, by which the series is divided first; ``d``: dimensions);
- ``binseg``: ruptures binary segmentation with the same cost and penalty (binary
  segmentation ranked among the best methods on TCPD);
- ``edivisive``: Observatory's detector (:func:`analytics.changepoints.detect`,
  Otava's window 50 and p 0.001, Mann-Whitney test, effect >= 1 noise sd);
- ``pelt+merge``: the same test and filter applied to PELT's candidates (the
  detector's second method).

Scores (``analytics.scoring``): TCPD F1 (5-sample margin) and cover per series and
their mean; NAB standard-profile score per file (raw) and normalised over all files,
with the precision (detections inside a window / detections after probation) and
recall (windows detected / windows) of window hits.  Detections are change-point
locations found offline on the whole file (no detector here runs online).  Multi-
dimensional TCPD series (``run_log``) go to ruptures as one n x d array; Observatory's
detector runs per dimension and takes the union.

Usage::

    .venv/bin/python bench/score_detectors.py [--only NAME ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analytics.changepoints import DetectorConfig, detect, noise_scale  # noqa: E402
from analytics.scoring import (  # noqa: E402
    nab_file_score,
    nab_total,
    tcpd_cover,
    tcpd_f1,
    tcpd_precision_recall,
)
from bench.datasets import CONTROLS, nab_files, tcpd_series  # noqa: E402

Detector = Callable[[npt.NDArray[np.float64]], list[int]]

#: The detector's benchmark profile (the same on every series; not tuned per file).
BENCH_CONFIG = DetectorConfig(window=50, max_pvalue=0.001, min_effect=1.0, robust=True)


def _as_2d(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return x.reshape(x.shape[0], -1)


def never(x: npt.NDArray[np.float64]) -> list[int]:
    """The floor: no detection at all."""
    return []


def _ruptures(x: npt.NDArray[np.float64], algo_name: str) -> list[int]:
    import ruptures as rpt

    v = _as_2d(x)
    scaled = v / np.array([noise_scale(v[:, j]) for j in range(v.shape[1])])
    n, d = scaled.shape
    algo = {"pelt": rpt.Pelt, "binseg": rpt.Binseg}[algo_name](model="l2", jump=5)
    breaks = algo.fit(scaled).predict(pen=math.log(n) * d)
    return [int(b) for b in breaks if b < n]


def pelt(x: npt.NDArray[np.float64]) -> list[int]:
    """ruptures PELT, l2 cost, jump 5, penalty sigma^2 ln(n) d."""
    return _ruptures(x, "pelt")


def binseg(x: npt.NDArray[np.float64]) -> list[int]:
    """ruptures Binseg, l2 cost, jump 5, penalty sigma^2 ln(n) d."""
    return _ruptures(x, "binseg")


def _ours(x: npt.NDArray[np.float64], method: str) -> list[int]:
    v = _as_2d(x)
    found: set[int] = set()
    for j in range(v.shape[1]):
        found |= {c.index for c in detect(v[:, j], BENCH_CONFIG, method=method)}
    return sorted(found)


def edivisive(x: npt.NDArray[np.float64]) -> list[int]:
    """Observatory's detector: sliding E-Divisive, Mann-Whitney p <= 0.001, effect >= 1."""
    return _ours(x, "edivisive")


def pelt_merge(x: npt.NDArray[np.float64]) -> list[int]:
    """Observatory's second method: PELT candidates, then the same test and filter."""
    return _ours(x, "pelt")


METHODS: dict[str, Detector] = {
    "never": never,
    "pelt": pelt,
    "binseg": binseg,
    "edivisive": edivisive,
    "pelt+merge": pelt_merge,
}


def score(methods: dict[str, Detector]) -> dict:
    """Run every method on every series; per-series and total figures."""
    tcpd = tcpd_series()
    nab = nab_files()
    out: dict = {"tcpd": {}, "nab": {}, "total": {}, "seconds": {}, "controls": {}}
    for name, fn in methods.items():
        began = time.perf_counter()
        f1s, covers = [], []
        for s in tcpd:
            pred = fn(s.values)
            f1 = tcpd_f1(s.annotations, pred)
            p, r = tcpd_precision_recall(s.annotations, pred)
            cov = tcpd_cover(s.annotations, pred, s.n_obs)
            f1s.append(f1)
            covers.append(cov)
            out["tcpd"].setdefault(s.name, {})[name] = {
                "f1": f1,
                "cover": cov,
                "precision": p,
                "recall": r,
                "detections": len(pred),
            }
            if s.name in CONTROLS:
                out["controls"].setdefault(s.name, {})[name] = len(pred)
        files = []
        for f in nab:
            pred = fn(f.values)
            res = nab_file_score(len(f.values), f.windows, pred)
            files.append(res)
            out["nab"].setdefault(f.name, {})[name] = {
                "raw": res.raw,
                "windows": res.windows,
                "detected": res.detected,
                "detections": res.detections,
                "in_window": res.in_window,
            }
            if f.name in CONTROLS:
                out["controls"].setdefault(f.name, {})[name] = len(pred)
        detections = sum(r.detections for r in files)
        windows = sum(r.windows for r in files)
        out["total"][name] = {
            "tcpd_f1": float(np.mean(f1s)),
            "tcpd_cover": float(np.mean(covers)),
            "nab_score": nab_total(files),
            "nab_precision": (sum(r.in_window for r in files) / detections) if detections else None,
            "nab_recall": sum(r.detected for r in files) / windows if windows else None,
        }
        out["seconds"][name] = time.perf_counter() - began
    return out


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def print_tables(res: dict, names: list[str]) -> None:
    width = max(20, *(len(n) + 2 for n in names))
    head = "".join(f"{n:>{width}}" for n in names)
    print("TCPD F1 / cover (5-sample margin; detections)")
    print(f"{'series':<32}{head}")
    for series, by in res["tcpd"].items():
        cells = "".join(
            f"{by[n]['f1']:.3f}/{by[n]['cover']:.3f}({by[n]['detections']})".rjust(width)
            for n in names
        )
        print(f"{series:<32}{cells}")
    print()
    print("NAB per file: windows detected/windows, detections after probation, raw score")
    print(f"{'file':<45}{head}")
    for fname, by in res["nab"].items():
        cells = "".join(
            (
                f"{by[n]['detected']}/{by[n]['windows']} "
                f"d{by[n]['detections']} {by[n]['raw']:+.2f}"
            ).rjust(width)
            for n in names
        )
        print(f"{fname.split('/')[-1]:<45}{cells}")
    print()
    print("Totals")
    rows = [
        ("TCPD F1 (mean)", "tcpd_f1", ".3f"),
        ("TCPD cover (mean)", "tcpd_cover", ".3f"),
        ("NAB score (standard)", "nab_score", ".1f"),
        ("NAB window-hit precision", "nab_precision", ".3f"),
        ("NAB window-hit recall", "nab_recall", ".3f"),
    ]
    print(f"{'':<32}{head}")
    for label, key, spec in rows:
        print(
            f"{label:<32}" + "".join(_fmt(res["total"][n][key], spec).rjust(width) for n in names)
        )
    print(f"{'seconds':<32}" + "".join(f"{res['seconds'][n]:.2f}".rjust(width) for n in names))
    print()
    print("Detections on the no-change controls")
    for series, by in res["controls"].items():
        print(f"{series:<45}" + "".join(str(by[n]).rjust(width) for n in names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(METHODS), help="methods to run")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    names = args.only or list(METHODS)
    res = score({n: METHODS[n] for n in names})
    print_tables(res, names)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

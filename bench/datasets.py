"""Loaders for the labelled benchmark data copied into ``tests/data`` (NAB and TCPD).

See ``tests/data/README.md`` for the sources and licences.  Only files under the
project are read (never a folder outside the repository).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
NAB_DIR = DATA / "nab"
TCPD_DIR = DATA / "tcpd"

#: Series with no labelled change or anomaly: a detector must stay silent on them.
CONTROLS = ("realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv", "quality_control_5")


@dataclass(frozen=True)
class NabFile:
    """One NAB file: values, timestamps and anomaly windows as inclusive row ranges."""

    name: str
    timestamps: list[datetime]
    values: npt.NDArray[np.float64]
    windows: list[tuple[int, int]]


@dataclass(frozen=True)
class TcpdSeries:
    """One TCPD data set: values (n x d), annotations (annotator -> indices)."""

    name: str
    values: npt.NDArray[np.float64]
    annotations: dict[str, list[int]]

    @property
    def n_obs(self) -> int:
        return int(self.values.shape[0])


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.strip())


def nab_files(root: Path = NAB_DIR) -> list[NabFile]:
    """Every NAB file present under ``root/data`` with its windows from the labels."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text(encoding="utf-8"))
    out = []
    for name in sorted(windows):
        path = root / "data" / name
        if not path.exists():
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        stamps = [_parse(r["timestamp"]) for r in rows]
        index = {t: i for i, t in enumerate(stamps)}
        wins = []
        for first, last in windows[name]:
            a, b = _parse(first), _parse(last)
            if a not in index or b not in index:
                raise ValueError(f"{name}: window {first} .. {last} is not on a row timestamp")
            wins.append((index[a], index[b]))
        values = np.array([float(r["value"]) for r in rows], dtype=np.float64)
        out.append(NabFile(name, stamps, values, sorted(wins)))
    return out


def tcpd_series(root: Path = TCPD_DIR) -> list[TcpdSeries]:
    """Every TCPD data set present under ``root/datasets`` with its annotations."""
    annotations = json.loads((root / "annotations.json").read_text(encoding="utf-8"))
    out = []
    for name in sorted(annotations):
        path = root / "datasets" / name / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        cols = [
            np.array([np.nan if v is None else float(v) for v in s["raw"]]) for s in data["series"]
        ]
        values = np.column_stack(cols)
        if values.shape[0] != data["n_obs"]:
            raise ValueError(f"{name}: {values.shape[0]} rows, header says {data['n_obs']}")
        out.append(
            TcpdSeries(name, values, {k: [int(i) for i in v] for k, v in annotations[name].items()})
        )
    return out

"""Shared by the experiment tests: the demo fleet's store, built once per module."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

from pandas.errors import Pandas4Warning

from observatory.demo import build_store

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "experiments.yaml"
# eu-west-1 carries the v2 latency incident late in the span; us-east-1 and ap-south-1 do not.
REGIONS = ["us-east-1", "ap-south-1", "eu-west-1"]
END = datetime(2026, 11, 30, tzinfo=UTC)


def demo_store(root: Path, days: int) -> Path:
    """Build the demo fleet (:data:`REGIONS`, ending at :data:`END`) into ``root``."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"DatetimeIndex\.dayofweek", category=Pandas4Warning
        )
        build_store(root, days=days, regions=REGIONS, end=END)
    return root

"""Shared by the drift tests: one 14-day demo store per test session (built once)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pandas.errors import Pandas4Warning

from observatory.demo import build_store

#: us-west-2 holds the injected accuracy drift (qwen2.5-32b: accuracy, prediction
#: scores, prompt lengths); us-east-1 (with counter resets) and sa-east-1 are quiet.
DRIFT_REGIONS = ["us-west-2", "us-east-1", "sa-east-1"]
QUIET_REGIONS = ["us-east-1", "sa-east-1"]
END = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday, 00:00 UTC; data from 2026-11-16


def drift_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3-region, 14-day demo store, built on first use in this test session."""
    root = tmp_path_factory.getbasetemp() / "drift-demo-14d"
    if not (root / "ground_truth.json").exists():
        with warnings.catch_warnings():
            # collectors/demo_fleet.py uses DatetimeIndex.dayofweek (deprecated in pandas
            # 3.1); not these tests' subject.
            warnings.filterwarnings(
                "ignore", message=r"DatetimeIndex\.dayofweek", category=Pandas4Warning
            )
            build_store(root, days=14, regions=DRIFT_REGIONS, end=END, force=True)
    return root


def finish_on_demand(timeout: float = 300.0) -> None:
    """Wait until the dashboard's on-demand drift run (:func:`app.drift_data.on_demand`,
    shared by every AppTest session of this process) has finished, if one runs."""
    from app import drift_data

    job = drift_data.on_demand().running()
    if job is not None:
        assert job.done.wait(timeout), f"on-demand drift still running after {timeout} s"


def reset_on_demand() -> None:
    """Forget the on-demand runs of earlier tests (one worker per process, as a server)."""
    from app import drift_data

    finish_on_demand()
    drift_data.on_demand.clear()

"""Drift over the store (observatory/drift_engine.py): the demo fleet's injected drift is
found in the right region and model, quiet regions stay quiet; references and layouts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from drift_support import END, QUIET_REGIONS, drift_store

from observatory.drift_engine import DriftSignal, Reference, compute_drift
from observatory.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(drift_store(tmp_path_factory))


def test_injected_drift_found_in_us_west_2_qwen_and_quiet_regions_quiet(store: Store) -> None:
    report = compute_drift(store, window=timedelta(hours=24), reference=Reference.parse("7d"))
    assert report.window_end == END.replace(tzinfo=None)
    drifted = {(s.signal, s.region, s.model) for s in report.drifted}
    assert drifted == {
        ("accuracy", "us-west-2", "qwen2.5-32b"),
        ("prediction_score", "us-west-2", "qwen2.5-32b"),
        ("prompt_length", "us-west-2", "qwen2.5-32b"),  # the input-length shift
    }
    verdicts = {s.signal: s.verdict for s in report.drifted}
    assert verdicts["accuracy"] == "critical"
    assert verdicts["prediction_score"] == "critical"
    for s in report.drifted:
        assert s.fired.startswith("psi: fixed >= ")
        assert "learned >=" in s.fired
    quiet = [s for s in report.slices if s.region in QUIET_REGIONS]
    assert len(quiet) > 40
    assert {s.verdict for s in quiet} == {"ok"}
    # Input length: p50 of the prompt-length histogram moved up (prompts 50% longer).
    pl = next(s for s in report.drifted if s.signal == "prompt_length")
    shift = pl.metric("p50_shift")
    assert shift is not None and shift.value > 0.1
    # The table: one row per slice and metric with value, threshold and verdict.
    table = report.table()
    assert {"signal", "region", "model", "metric", "value", "threshold", "verdict"} <= set(
        table.columns
    )
    assert "drift detected in 3 of" in report.summary_line()
    assert "1 region (us-west-2)" in report.summary_line()


def test_input_length_histogram_in_ground_truth_and_store(store: Store) -> None:
    truth = json.loads((store.root / "ground_truth.json").read_text())
    inc = next(i for i in truth["incidents"] if i["id"] == "accuracy-us-west-2")
    assert "prompts grow 50% longer" in inc["description"]
    le = store.query(
        "SELECT DISTINCT le FROM histograms WHERE signal = 'prompt_length' ORDER BY le"
    )["le"].tolist()
    assert le[:3] == [1.0, 2.0, 5.0] and le[-1] == float("inf")


@pytest.mark.parametrize("day", [24, 26])
def test_no_drift_anywhere_before_the_incident(store: Store, day: int) -> None:
    # The incident starts 2026-11-26 06:00 UTC; windows ending before it are quiet in
    # every region, us-west-2 included.
    report = compute_drift(store, end=datetime(2026, 11, day))
    assert report.drifted == []
    assert report.verdict == "ok"


def test_week_ago_and_baseline_references(store: Store) -> None:
    sig = [DriftSignal("prediction_score", "histogram", ("prediction_score",), "score")]
    week = compute_drift(store, reference=Reference.parse("week-ago"), signals=sig)
    assert week.slices[0].reference == "same window a week earlier"
    assert week.slices[0].reference_end == datetime(2026, 11, 23)
    psi = next(s for s in week.slices if s.region == "us-west-2" and s.model == "qwen2.5-32b")
    assert psi.verdict == "critical"
    week_psi = psi.metric("psi")
    assert week_psi is not None and np.isnan(week_psi.learned)  # one chunk: nothing learned
    base = compute_drift(
        store,
        reference=Reference.parse("2026-11-17T00:00Z/2026-11-24T00:00Z"),
        signals=sig,
    )
    hit = {(s.region, s.model) for s in base.drifted}
    assert hit == {("us-west-2", "qwen2.5-32b")}
    assert all(s.reference.startswith("baseline 2026-11-17") for s in base.slices)


def test_reference_parse() -> None:
    assert Reference.parse("7d").span == timedelta(days=7)
    assert Reference.parse("week-ago").mode == "week_ago"
    with pytest.raises(ValueError):
        Reference.parse("2026-11-24/2026-11-17")
    with pytest.raises(ValueError):
        Reference.parse("soon")


def _hist_rows(le: list[float], counts: list[float], start: datetime, days: int) -> pd.DataFrame:
    """Rows of one histogram signal: the same per-bucket counts at every hourly step."""
    cum = np.cumsum(counts)
    rows = []
    for h in range(1, days * 24 + 1):
        ts = start + timedelta(hours=h)
        for b, c in zip(le, cum, strict=True):
            rows.append(
                {
                    "signal": "latency",
                    "ts_utc": ts,
                    "model": "m",
                    "arm": "a",
                    "le": b,
                    "value": float(c),
                    "unit": "seconds",
                }
            )
    return pd.DataFrame(rows)


def test_bucket_layout_change_is_rebinned(tmp_path: Path) -> None:
    # Seven reference days on one layout, the current day on a finer one (a new
    # exporter version): the same distribution re-binned on the shared bounds is quiet.
    store = Store(tmp_path / "s")
    start = datetime(2026, 1, 1)
    old = _hist_rows([0.5, 1.0, 2.5, 5.0, float("inf")], [400, 300, 200, 80, 20], start, 7)
    new = _hist_rows(
        [0.25, 0.5, 1.0, 2.0, 2.5, 5.0, float("inf")],
        [200, 200, 300, 150, 50, 80, 20],
        start + timedelta(days=7),
        1,
    )
    with store.writer():
        store.replace_window(
            "histograms",
            "r1",
            ["latency"],
            start,
            start + timedelta(days=8),
            pd.concat([old, new], ignore_index=True),
        )
    sig = [DriftSignal("latency", "histogram", ("latency",), "seconds")]
    report = compute_drift(store, end=start + timedelta(days=8), signals=sig)
    (s,) = report.slices
    assert s.rebinned
    assert s.verdict == "ok"
    psi = s.metric("psi")
    assert psi is not None and psi.value < 1e-9  # exact: every old bound is a new bound
    # A shifted current day on the new layout is found.
    shifted = _hist_rows(
        [0.25, 0.5, 1.0, 2.0, 2.5, 5.0, float("inf")],
        [50, 50, 200, 250, 150, 200, 100],
        start + timedelta(days=7),
        1,
    )
    with store.writer():
        store.replace_window(
            "histograms",
            "r1",
            ["latency"],
            start + timedelta(days=7),
            start + timedelta(days=8),
            shifted,
        )
    store.refresh()
    (s2,) = compute_drift(store, end=start + timedelta(days=8), signals=sig).slices
    assert s2.verdict == "critical"
    psi2 = s2.metric("psi")
    assert psi2 is not None and psi2.learned == 0.0  # identical reference chunks


def test_a_group_that_stopped_reporting_is_insufficient_data(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    start = datetime(2026, 1, 1)
    ts = pd.date_range(start + timedelta(minutes=1), periods=7 * 1440, freq="min")
    rows = pd.DataFrame(
        {
            "signal": "accuracy",
            "ts_utc": ts,
            "model": "m",
            "arm": "a",
            "instance": "",
            "mean": 0.8,
            "max": 0.8,
            "last": 0.8,
            "samples": 1,
            "step_s": 60,
            "unit": "ratio",
        }
    )
    with store.writer():
        store.replace_window("gauges", "r1", ["accuracy"], start, start + timedelta(days=8), rows)
    sig = [DriftSignal("accuracy", "gauge", ("accuracy",), "ratio")]
    report = compute_drift(store, end=start + timedelta(days=8), signals=sig)
    (s,) = report.slices
    assert s.verdict == "insufficient data"
    psi = s.metric("psi")
    assert psi is not None and psi.n_cur == 0 and psi.n_ref == 7 * 1440
    assert report.verdict == "insufficient data"
    assert "1 with insufficient data" in report.summary_line()

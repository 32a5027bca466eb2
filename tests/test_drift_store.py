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
from scipy import stats

from analytics.drift import MIN_COUNT
from collectors.demo_fleet import VLLM_TTFT_BUCKETS
from observatory.drift_engine import DriftSignal, Reference, compute_drift, signal_by_name
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
        ("accuracy_late_labels", "us-west-2", "qwen2.5-32b"),
    }
    verdicts = {s.signal: s.verdict for s in report.drifted}
    assert verdicts["accuracy"] == "critical"
    assert verdicts["prediction_score"] == "critical"
    for s in report.drifted:
        if s.kind == "labels":
            assert s.fired.startswith("accuracy_drop: drop ")
            continue
        assert s.fired.startswith("psi: fixed >= ")
        assert "learned >=" in s.fired
    assert report.without_data == []  # TTFT included
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
    assert "drift detected in 4 of" in report.summary_line()
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


LATE = [signal_by_name("accuracy_late_labels")]
QWEN = ("us-west-2", "qwen2.5-32b", "v1")


def _labels_sum(
    store: Store, key: tuple[str, str, str], start: datetime, end: datetime
) -> tuple[float, float]:
    q = store.query(
        "SELECT sum(value) FILTER (WHERE signal = 'labels_correct') AS ok, "
        "sum(value) FILTER (WHERE signal = 'labels') AS n FROM counters "
        "WHERE region = $r AND model = $m AND arm = $a AND ts_utc > $s AND ts_utc <= $e",
        {"r": key[0], "m": key[1], "a": key[2], "s": start, "e": end},
    )
    return float(q["ok"].iloc[0]), float(q["n"].iloc[0])


def test_late_label_accuracy_flags_the_incident_in_us_west_2_qwen_only(store: Store) -> None:
    # Daily windows against the previous 7 days, 11-24 .. 11-30: the incident (from
    # 11-26 06:00) shows in us-west-2 qwen2.5-32b from the window ending 11-27 on, nowhere
    # else, never before.
    flagged = {}
    for day in range(24, 31):
        report = compute_drift(store, end=datetime(2026, 11, day), signals=LATE)
        assert len(report.slices) == 12  # 3 regions x 4 model/arms
        assert all(s.title == "accuracy (late labels)" for s in report.slices)
        flagged[day] = {(s.region, s.model, s.arm): s.verdict for s in report.drifted}
        for s in report.slices:
            if s.region in QUIET_REGIONS:
                assert s.verdict == "ok", (day, s.key, s.fired)
    assert flagged[24] == flagged[25] == flagged[26] == {}
    for day in (27, 28, 29, 30):
        assert set(flagged[day]) == {QWEN}, day
    assert flagged[28][QWEN] == "critical"  # a drop of more than 5 points


def test_late_label_accuracy_and_its_interval_match_the_stored_counts(store: Store) -> None:
    end = datetime(2026, 11, 30)
    report = compute_drift(store, end=end, signals=LATE)
    s = next(x for x in report.slices if (x.region, x.model, x.arm) == QWEN)
    drop = s.metric("accuracy_drop")
    assert drop is not None
    ok, n = _labels_sum(store, QWEN, end - timedelta(days=1), end)
    ref_ok, ref_n = _labels_sum(store, QWEN, end - timedelta(days=8), end - timedelta(days=1))
    assert (drop.n_cur, drop.n_ref) == (n, ref_n)
    assert drop.detail["current"] == pytest.approx(ok / n)
    assert drop.value == pytest.approx(ref_ok / ref_n - ok / n)
    # The last point over time is the current window: accuracy with scipy's Wilson interval.
    last = s.over_time.iloc[-1]
    assert last["ts_utc"] == end and last["n"] == n
    ci = stats.binomtest(int(ok), int(n)).proportion_ci(method="wilson")
    assert (last["low"], last["high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert s.distribution["x"] == ["correct", "incorrect"]


def test_late_labels_lag_the_accuracy_gauge(store: Store) -> None:
    # Labels arrive hours after the prediction (median 6 h): in the 6 h after the
    # incident began the gauge has fallen, the labels that arrived have barely moved;
    # six hours later the labels show it.
    ref = Reference.parse("7d")
    start, end = datetime(2026, 11, 26, 6), datetime(2026, 11, 26, 12)
    gauge = store.query(
        "SELECT avg(mean) FILTER (WHERE ts_utc > $s) AS cur, avg(mean) FILTER (WHERE ts_utc <= $s)"
        " AS ref FROM gauges WHERE signal = 'accuracy' AND region = 'us-west-2' "
        "AND model = 'qwen2.5-32b' AND ts_utc > $r AND ts_utc <= $e",
        {"s": start, "e": end, "r": start - timedelta(days=7)},
    )
    assert float(gauge["ref"].iloc[0] - gauge["cur"].iloc[0]) > 0.015
    early = compute_drift(store, window=timedelta(hours=6), reference=ref, end=end, signals=LATE)
    s = next(x for x in early.slices if (x.region, x.model, x.arm) == QWEN)
    d = s.metric("accuracy_drop")
    assert d is not None and d.value < 0.01 and s.verdict == "ok"
    later = compute_drift(
        store,
        window=timedelta(hours=6),
        reference=ref,
        end=end + timedelta(hours=12),
        signals=LATE,
    )
    s2 = next(x for x in later.slices if (x.region, x.model, x.arm) == QWEN)
    d2 = s2.metric("accuracy_drop")
    assert d2 is not None and d2.value > 0.03 and s2.drifted


def test_ttft_histogram_has_vllm_buckets_and_is_quiet(store: Store) -> None:
    le = store.query("SELECT DISTINCT le FROM histograms WHERE signal = 'ttft' ORDER BY le")
    assert le["le"].tolist() == [*VLLM_TTFT_BUCKETS, float("inf")]
    report = compute_drift(store, signals=[signal_by_name("ttft")])
    assert len(report.slices) == 12
    for s in report.slices:
        psi = s.metric("psi")
        assert psi is not None and psi.n_cur >= MIN_COUNT
        assert s.verdict == "ok", s.key  # no TTFT incident in these regions


def test_gauges_and_counter_ratios_compare_per_step_values(store: Store) -> None:
    # Accuracy and GPU utilisation (gauges), error ratio and energy per request (counter
    # ratios): one value per 1-minute step on each side, 1440 in a 24 h window.
    report = compute_drift(
        store,
        signals=[
            signal_by_name(n)
            for n in ("accuracy", "gpu_utilization", "error_ratio", "energy_per_request")
        ],
    )
    for name in ("accuracy", "gpu_utilization", "error_ratio", "energy_per_request"):
        got = [s for s in report.slices if s.signal == name]
        assert len(got) == 12, name
        for s in got:
            psi = s.metric("psi")
            assert psi is not None, (name, s.key)
            days = 1 if s.reference.startswith("same window") else 7
            if s.kind == "gauge":
                assert (psi.n_cur, psi.n_ref) == (1440, days * 1440), (name, s.key)
            else:  # a step without requests has no ratio
                assert 1300 <= psi.n_cur <= 1440 and psi.n_ref > days * 1300, (name, s.key)
            if not s.reference.startswith("same window"):  # curves against the 7 days
                assert {"psi", "js", "hellinger", "wasserstein", "ks"} <= set(s.over_time)
    # The error ratio of one step is sum(errors) / sum(requests) of that step.
    s = next(x for x in report.slices if x.signal == "error_ratio" and x.region == "sa-east-1")
    totals = store.query(
        "SELECT sum(value) FILTER (WHERE signal = 'errors') AS e, "
        "sum(value) FILTER (WHERE signal = 'requests') AS r FROM counters "
        "WHERE region = 'sa-east-1' AND model = $m AND arm = $a AND ts_utc > $s",
        {"m": s.model, "a": s.arm, "s": datetime(2026, 11, 29)},
    )
    assert 0.001 < float(totals["e"].iloc[0] / totals["r"].iloc[0]) < 0.003
    steps = store.query(
        "SELECT count(*) AS n FROM (SELECT ts_utc FROM counters WHERE signal = 'requests' "
        "AND region = 'sa-east-1' AND model = $m AND arm = $a AND ts_utc > $s "
        "GROUP BY ts_utc HAVING sum(value) > 0)",
        {"m": s.model, "a": s.arm, "s": datetime(2026, 11, 29)},
    )
    psi = s.metric("psi")
    assert psi is not None and psi.n_cur == int(steps["n"].iloc[0])
    assert s.verdict == "ok"


def test_a_step_change_in_a_counter_ratio_is_found(tmp_path: Path) -> None:
    # Eight days of 1-minute errors / requests; the error ratio doubles on the last day.
    store = Store(tmp_path / "s")
    start = datetime(2026, 1, 1)
    ts = pd.date_range(start + timedelta(minutes=1), periods=8 * 1440, freq="min")
    rng = np.random.default_rng(3)
    requests = rng.poisson(2000, ts.size).astype(float)
    ratio = np.where(np.arange(ts.size) >= 7 * 1440, 0.02, 0.01)
    errors = rng.binomial(requests.astype(np.int64), ratio).astype(float)
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "signal": sig,
                    "ts_utc": ts,
                    "model": "m",
                    "arm": "a",
                    "instance": "",
                    "value": v,
                    "unit": "requests",
                }
            )
            for sig, v in (("requests", requests), ("errors", errors))
        ],
        ignore_index=True,
    )
    with store.writer():
        store.replace_window(
            "counters", "r1", ["requests", "errors"], start, start + timedelta(days=8), rows
        )
    report = compute_drift(
        store, end=start + timedelta(days=8), signals=[signal_by_name("error_ratio")]
    )
    (s,) = report.slices
    assert s.verdict == "critical"
    assert set(s.fired_metrics) == {"psi", "js", "hellinger", "wasserstein"}
    ks = s.metric("ks")
    assert ks is not None and ks.value > 0.9  # nearly every step of the day is higher

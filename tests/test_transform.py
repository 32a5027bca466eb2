"""to_rows: raw Prometheus matrix samples -> per-step rows of the store."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from collectors.presets import DCGM_BLANK, PRESETS, Mapping
from collectors.transform import LabelRules, from_api, to_rows

STEP = 60_000
T0 = 1_700_000_040  # Unix seconds, a multiple of 60
RULES = LabelRules()

REQUESTS = Mapping("requests", "vllm:request_success_total")
LATENCY = Mapping("latency", "vllm:e2e_request_latency_seconds_bucket")
ENERGY = next(m for m in PRESETS["dcgm"] if m.signal == "energy")
GPU_UTIL = next(m for m in PRESETS["dcgm"] if m.signal == "gpu_utilization")
GPU_POWER = next(m for m in PRESETS["dcgm"] if m.signal == "gpu_power")


def _series(labels: dict[str, str], points: list[tuple[float, Any]]) -> dict[str, Any]:
    """One matrix entry as the HTTP API sends it: float seconds, string values."""
    return {
        "metric": labels,
        "values": [[t, v if isinstance(v, str) else repr(float(v))] for t, v in points],
    }


def _rows(
    raw: list[dict[str, Any]], mapping: Mapping, start_s: float, end_s: float, step_ms: int = STEP
):
    return to_rows(from_api(raw), mapping, RULES, int(start_s * 1000), int(end_s * 1000), step_ms)


def _ts(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(int(seconds * 1000), unit="ms")


def _by_step(rows: pd.DataFrame, column: str = "value") -> dict[pd.Timestamp, float]:
    return {pd.Timestamp(t): float(v) for t, v in zip(rows["ts_utc"], rows[column], strict=True)}


VLLM = {
    "__name__": "vllm:request_success_total",
    "model_name": "llama-3-8b",
    "version": "v2",
    "pod": "p1",
}


# --------------------------------------------------------------------------- counters


def test_counter_deltas_are_summed_per_right_closed_step() -> None:
    # scrapes every 15 s from T0; the value grows by 2 per scrape
    points = [(T0 + 15 * i, 100 + 2 * i) for i in range(9)]  # T0 .. T0+120
    rows = _rows([_series(VLLM, points)], REQUESTS, T0, T0 + 120)
    # step (T0, T0+60]: scrapes at 15, 30, 45, 60 -> 4 deltas of 2; same for the next
    assert _by_step(rows) == {_ts(T0 + 60): 8.0, _ts(T0 + 120): 8.0}
    assert list(rows["model"]) == ["llama-3-8b"] * 2
    assert list(rows["arm"]) == ["v2"] * 2
    assert list(rows["instance"]) == ["", ""]  # requests have no instance labels
    assert set(rows["signal"]) == {"requests"}
    assert set(rows["unit"]) == {"requests"}
    assert {"ts_utc", "model", "arm", "instance", "value", "signal", "unit"} <= set(rows.columns)


def test_counter_reset_counts_the_new_value() -> None:
    points = [(T0, 500), (T0 + 15, 510), (T0 + 30, 4), (T0 + 45, 9), (T0 + 60, 20)]
    rows = _rows([_series(VLLM, points)], REQUESTS, T0, T0 + 60)
    # 10 + 4 (restart from 0) + 5 + 11
    assert _by_step(rows) == {_ts(T0 + 60): 30.0}


def test_counter_nan_string_samples_are_skipped_and_bridged() -> None:
    points = [(T0, 10), (T0 + 15, "NaN"), (T0 + 30, 16), (T0 + 75, "NaN"), (T0 + 90, 19)]
    rows = _rows([_series(VLLM, points)], REQUESTS, T0, T0 + 120)
    # 10 -> 16 at T0+30 (first step); 16 -> 19 at T0+90 (second step)
    assert _by_step(rows) == {_ts(T0 + 60): 6.0, _ts(T0 + 120): 3.0}
    assert not rows["value"].isna().any()


def test_counter_inf_samples_are_not_measurements() -> None:
    points = [
        (T0, 10),
        (T0 + 15, 20),
        (T0 + 30, "+Inf"),
        (T0 + 45, 25),
        (T0 + 75, "-Inf"),
        (T0 + 90, 28),
    ]
    rows = _rows([_series(VLLM, points)], REQUESTS, T0, T0 + 120)
    assert np.isfinite(rows["value"]).all()
    # without the infinite samples: 10 -> 20 -> 25 | -> 28
    assert _by_step(rows) == {_ts(T0 + 60): 15.0, _ts(T0 + 120): 3.0}


def test_first_sample_of_a_series_has_no_delta() -> None:
    # a series that appears inside the window: its first sample is only a baseline
    rows = _rows([_series(VLLM, [(T0 + 30, 1000), (T0 + 90, 1003)])], REQUESTS, T0, T0 + 120)
    assert _by_step(rows) == {_ts(T0 + 120): 3.0}
    # a single sample gives no row at all
    assert _rows([_series(VLLM, [(T0 + 30, 1000)])], REQUESTS, T0, T0 + 120).empty


def test_counter_series_with_the_same_key_are_summed() -> None:
    ok = {**VLLM, "finished_reason": "stop"}
    length = {**VLLM, "finished_reason": "length"}
    other_arm = {**VLLM, "version": "v3"}
    raw = [
        _series(ok, [(T0, 0), (T0 + 30, 7)]),
        _series(length, [(T0, 100), (T0 + 30, 102)]),
        _series(other_arm, [(T0, 0), (T0 + 30, 1)]),
    ]
    rows = _rows(raw, REQUESTS, T0, T0 + 60).sort_values("arm")
    assert list(rows["arm"]) == ["v2", "v3"]
    assert list(rows["value"]) == [9.0, 1.0]


def test_counter_scale_and_instance_labels() -> None:
    # dcgm energy: millijoules -> joules, one row per GPU ("Hostname/gpu")
    gpu0 = {"Hostname": "node-a", "gpu": "0", "modelName": "H100"}
    gpu1 = {"hostname": "node-b", "gpu": "1"}  # newer dcgm builds: lower-case hostname
    raw = [
        _series(gpu0, [(T0, 1_000_000), (T0 + 60, 1_250_000)]),
        _series(gpu1, [(T0, 5_000), (T0 + 60, 6_500)]),
    ]
    rows = _rows(raw, ENERGY, T0, T0 + 60).sort_values("instance")
    assert list(rows["instance"]) == ["node-a/0", "node-b/1"]
    assert list(rows["value"]) == pytest.approx([250.0, 1.5])
    assert set(rows["unit"]) == {"joules"}


def test_fixed_model_from_the_mapping_and_label_rules() -> None:
    prom_requests = next(m for m in PRESETS["prometheus"] if m.signal == "requests")
    raw = [_series({"handler": "/api/v1/query", "code": "200"}, [(T0, 1), (T0 + 60, 4)])]
    rows = _rows(raw, prom_requests, T0, T0 + 60)
    assert list(rows["model"]) == ["prometheus"]
    assert list(rows["arm"]) == [""]
    # custom rules: model from "app", arm from "track"
    raw = [
        _series({"app": "ranker", "track": "canary", "model": "ignored"}, [(T0, 1), (T0 + 60, 4)])
    ]
    rows = to_rows(
        from_api(raw), REQUESTS, LabelRules(("app",), ("track",)), T0 * 1000, (T0 + 60) * 1000, STEP
    )
    assert (rows["model"].tolist(), rows["arm"].tolist()) == (["ranker"], ["canary"])


def test_counter_drops_dcgm_blank_before_taking_deltas() -> None:
    gpu = {"Hostname": "n", "gpu": "0"}
    blank = "9223372036854775807"
    raw = [_series(gpu, [(T0, 1000), (T0 + 15, blank), (T0 + 30, 3000), (T0 + 60, 4000)])]
    rows = _rows(raw, ENERGY, T0, T0 + 60)
    assert float(blank) >= DCGM_BLANK
    assert _by_step(rows) == {_ts(T0 + 60): pytest.approx(3.0)}


# --------------------------------------------------------------------------- gauges


def test_gauge_mean_max_last_percent_scaled_and_blank_dropped() -> None:
    gpu = {"Hostname": "node-a", "gpu": "3", "UUID": "GPU-1"}
    points = [
        (T0 + 10, 40),
        (T0 + 20, "9223372036854775807"),  # dcgm blank: dropped
        (T0 + 30, 90),
        (T0 + 40, "NaN"),
        (T0 + 50, "+Inf"),
        (T0 + 60, 50),  # on the boundary: belongs to the step ending at T0+60
        (T0 + 75, 10),
        (T0 + 80, 9.3e18),  # also a blank
    ]
    rows = _rows([_series(gpu, points)], GPU_UTIL, T0, T0 + 120)
    assert list(rows["ts_utc"]) == [_ts(T0 + 60), _ts(T0 + 120)]
    first, second = rows.iloc[0], rows.iloc[1]
    assert first["mean"] == pytest.approx(0.6)  # (40 + 90 + 50) / 3 / 100
    assert first["max"] == pytest.approx(0.9)
    assert first["last"] == pytest.approx(0.5)
    assert first["samples"] == 3
    assert (second["mean"], second["max"], second["last"], second["samples"]) == pytest.approx(
        (0.1, 0.1, 0.1, 1)
    )
    assert set(rows["instance"]) == {"node-a/3"}
    assert set(rows["step_s"]) == {60}
    assert set(rows["unit"]) == {"ratio"}
    assert rows["samples"].dtype == np.int32


def test_gauge_last_is_the_latest_sample_across_series_with_one_key() -> None:
    # two series share model/arm/instance (a label that is not part of the key differs)
    a = {"Hostname": "h", "gpu": "0", "pod": "old"}
    b = {"Hostname": "h", "gpu": "0", "pod": "new"}
    raw = [
        _series(b, [(T0 + 20, 300), (T0 + 50, 310)]),
        _series(a, [(T0 + 10, 100), (T0 + 40, 120)]),
    ]
    rows = _rows(raw, GPU_POWER, T0, T0 + 60)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["last"] == 310.0
    assert row["max"] == 310.0
    assert row["mean"] == pytest.approx((100 + 120 + 300 + 310) / 4)
    assert row["samples"] == 4


def test_gauge_samples_outside_the_window_are_ignored() -> None:
    gpu = {"Hostname": "h", "gpu": "0"}
    raw = [_series(gpu, [(T0, 999), (T0 + 30, 100), (T0 + 60, 200), (T0 + 61, 777)])]
    rows = _rows(raw, GPU_POWER, T0, T0 + 60)
    # T0 is the start (excluded); T0 + 61 is after the end
    assert len(rows) == 1
    assert (rows.iloc[0]["mean"], rows.iloc[0]["max"], rows.iloc[0]["samples"]) == (150.0, 200.0, 2)


# --------------------------------------------------------------------------- histograms


def _bucket(le: str, pod: str = "p1") -> dict[str, str]:
    return {
        "__name__": "vllm:e2e_request_latency_seconds_bucket",
        "model_name": "m",
        "le": le,
        "pod": pod,
    }


def test_histogram_bucket_increases_per_le() -> None:
    raw = [
        _series(_bucket("0.5"), [(T0, 10), (T0 + 30, 14), (T0 + 60, 15)]),
        _series(_bucket("1.0"), [(T0, 20), (T0 + 30, 26), (T0 + 60, 28)]),
        _series(_bucket("+Inf"), [(T0, 25), (T0 + 30, 33), (T0 + 60, 36)]),
    ]
    rows = _rows(raw, LATENCY, T0, T0 + 60).sort_values("le")
    assert list(rows["le"]) == [0.5, 1.0, math.inf]
    assert list(rows["value"]) == [5.0, 8.0, 11.0]
    assert set(rows["ts_utc"]) == {_ts(T0 + 60)}
    assert set(rows["unit"]) == {"seconds"}
    assert rows["le"].dtype == np.float64


def test_histogram_le_1_and_1_0_merge_into_one_bucket() -> None:
    # pod p1 is scraped by Prometheus 2 (le="1"), pod p2 by Prometheus 3 (le="1.0")
    raw = [
        _series(_bucket("1", "p1"), [(T0, 0), (T0 + 60, 4)]),
        _series(_bucket("1.0", "p2"), [(T0, 50), (T0 + 60, 53)]),
        _series(_bucket("+Inf", "p1"), [(T0, 0), (T0 + 60, 5)]),
        _series(_bucket("+Inf", "p2"), [(T0, 60), (T0 + 60, 64)]),
    ]
    rows = _rows(raw, LATENCY, T0, T0 + 60).sort_values("le")
    assert list(rows["le"]) == [1.0, math.inf]
    assert list(rows["value"]) == [7.0, 9.0]


def test_histogram_bucket_without_numeric_le_is_an_error() -> None:
    no_le = {"__name__": "vllm:e2e_request_latency_seconds_bucket", "model_name": "m"}
    with pytest.raises(ValueError, match="no 'le' label"):
        _rows([_series(no_le, [(T0, 0), (T0 + 60, 1)])], LATENCY, T0, T0 + 60)
    with pytest.raises(ValueError, match="is not a number"):
        _rows([_series(_bucket("fast"), [(T0, 0), (T0 + 60, 1)])], LATENCY, T0, T0 + 60)


# --------------------------------------------------------------------------- windows


def _sawtooth_counter() -> list[dict[str, Any]]:
    """Two series scraped every 15 s for 30 minutes, with resets and a gap."""
    t = T0 + 15 * np.arange(121)
    a = np.cumsum(np.arange(121) % 7).astype(float)
    a[a.size // 3 :] -= a[a.size // 3]  # a restart: the value drops to 0
    b = 1000 + 3 * np.arange(121, dtype=float)
    b[70:] = 3 * np.arange(51)  # restart from 0
    pa = [(float(ti), float(ai)) for ti, ai in zip(t, a, strict=True)]
    pb = [
        (float(ti), float(bi))
        for ti, bi in zip(t, b, strict=True)
        if not 40 <= (ti - T0) // 15 < 44
    ]
    return [_series({**VLLM, "pod": "a"}, pa), _series({**VLLM, "pod": "b"}, pb)]


def test_window_is_right_closed_and_earlier_samples_only_baseline() -> None:
    raw = [_series(VLLM, [(T0 + 60, 100), (T0 + 120, 110), (T0 + 180, 130)])]
    rows = _rows(raw, REQUESTS, T0 + 60, T0 + 180)
    # the sample at start (T0+60) gives no row, it is the baseline of the next delta;
    # the sample at end (T0+180) is inside
    assert _by_step(rows) == {_ts(T0 + 120): 10.0, _ts(T0 + 180): 20.0}
    assert _rows(raw, REQUESTS, T0 + 180, T0 + 300).empty


def test_adjacent_windows_add_up_exactly_to_one_big_window() -> None:
    raw = _sawtooth_counter()
    start, end = T0, T0 + 1800
    big = _rows(raw, REQUESTS, start, end)
    cuts = [start, start + 420, start + 600, start + 1320, end]  # uneven, step-aligned
    parts = [_rows(raw, REQUESTS, a, b) for a, b in itertools.pairwise(cuts)]
    joined = pd.concat(parts, ignore_index=True)
    assert joined["value"].sum() == big["value"].sum()
    assert big["value"].sum() > 0
    key = ["ts_utc", "model", "arm", "instance"]
    pd.testing.assert_frame_equal(
        joined.sort_values(key).reset_index(drop=True)[[*key, "value"]],
        big.sort_values(key).reset_index(drop=True)[[*key, "value"]],
    )
    # each part only holds steps inside its own window
    for (a, b), part in zip(itertools.pairwise(cuts), parts, strict=True):
        assert part["ts_utc"].min() > _ts(a)
        assert part["ts_utc"].max() <= _ts(b)


def test_adjacent_windows_with_only_the_samples_each_query_returns() -> None:
    # the collector fetches (end - range, end] per window, range = window + lookback;
    # a window's rows depend only on its own samples plus the lookback baseline
    raw = _sawtooth_counter()
    lookback = 300

    def fetched(a: float, b: float) -> list[dict[str, Any]]:
        return [
            {"metric": s["metric"], "values": [v for v in s["values"] if a - lookback < v[0] <= b]}
            for s in raw
        ]

    start, end = T0, T0 + 1800
    total = _rows(raw, REQUESTS, start, end)["value"].sum()
    mid = start + 900
    split = _rows(fetched(start, mid), REQUESTS, start, mid)["value"].sum()
    split += _rows(fetched(mid, end), REQUESTS, mid, end)["value"].sum()
    assert split == total


def test_empty_result_gives_an_empty_frame_with_the_table_columns() -> None:
    rows = _rows([], REQUESTS, T0, T0 + 60)
    assert rows.empty
    assert {"ts_utc", "model", "arm", "instance", "value", "signal", "unit"} <= set(rows.columns)
    rows = _rows([_series(VLLM, [])], GPU_UTIL, T0, T0 + 60)
    assert rows.empty
    assert {"mean", "max", "last", "samples", "step_s"} <= set(rows.columns)
    assert "le" in _rows([], LATENCY, T0, T0 + 60).columns

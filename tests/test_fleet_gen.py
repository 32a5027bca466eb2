"""The scale-test fleet generator (observatory/large_fleet.py) on a tiny size, real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.demo_fleet import PROMPT_TOKEN_BUCKETS, SCORE_BUCKETS, VLLM_E2E_BUCKETS
from observatory.large_fleet import COUNTER_SIGNALS, SIZES, FleetSize, build, sized
from observatory.store import Store

TINY = FleetSize(
    regions=2, models=3, arms=2, gpus_per_model=4, days=2, step_s=600, quality_models=1
)
END = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict]:
    root = tmp_path_factory.mktemp("fleet")
    result = build(root, TINY, seed=11, end=END)
    truth = json.loads((root / "fleet_truth.json").read_text())
    assert truth["rows"] == result.rows
    return Store(root), truth


def test_row_counts_are_regions_models_arms_steps(tiny: tuple[Store, dict]) -> None:
    store, truth = tiny
    steps = TINY.days * 86400 // TINY.step_s  # 288
    series = TINY.regions * TINY.models * TINY.arms * steps
    gpus = TINY.regions * TINY.models * TINY.gpus_per_model * steps
    quality = TINY.regions * TINY.quality_models * TINY.arms * steps
    got = store.query("SELECT signal, count(*) AS n FROM counters GROUP BY 1")
    counts = dict(zip(got["signal"], got["n"], strict=True))
    assert counts == {**dict.fromkeys(COUNTER_SIGNALS, series), "energy": gpus}
    got = store.query("SELECT signal, count(*) AS n FROM gauges GROUP BY 1")
    assert dict(zip(got["signal"], got["n"], strict=True)) == {
        "accuracy": series,
        "cost": series,
        "gpu_utilization": gpus,
        "gpu_power": gpus,
    }
    got = store.query(
        "SELECT signal, count(*) AS n, count(DISTINCT le) AS k FROM histograms GROUP BY 1"
    )
    hist = {s: (n, k) for s, n, k in got.itertuples(index=False)}
    assert hist == {
        "latency": (series * (len(VLLM_E2E_BUCKETS) + 1), len(VLLM_E2E_BUCKETS) + 1),
        "prompt_length": (quality * (len(PROMPT_TOKEN_BUCKETS) + 1), len(PROMPT_TOKEN_BUCKETS) + 1),
        "prediction_score": (quality * (len(SCORE_BUCKETS) + 1), len(SCORE_BUCKETS) + 1),
    }
    assert sum(truth["rows"].values()) == TINY.total_rows()
    # the history: whole UTC days before END's midnight, one step apart, right-closed
    span = store.query("SELECT min(ts_utc) AS lo, max(ts_utc) AS hi FROM counters").iloc[0]
    assert span["lo"] == datetime(2026, 10, 30)
    assert span["hi"] == datetime(2026, 10, 31, 23, 50)
    assert truth["end_utc"] == "2026-10-31T23:50:00+00:00"


def test_counters_sum_to_ground_truth(tiny: tuple[Store, dict]) -> None:
    store, truth = tiny
    got = store.query("SELECT region, signal, sum(value) AS v FROM counters GROUP BY ALL")
    assert len(got) == TINY.regions * (len(COUNTER_SIGNALS) + 1)
    for region, signal, value in got.itertuples(index=False):
        assert value == pytest.approx(truth["totals"][region][signal], rel=1e-12), (region, signal)
    # requests are exactly the +Inf latency bucket, step by step
    diff = store.query(
        "SELECT count(*) AS steps, sum(abs(c.value - h.value)) AS off FROM counters c "
        "JOIN histograms h USING (ts_utc, region, model, arm) "
        "WHERE c.signal = 'requests' AND h.signal = 'latency' AND h.le = 'inf'::DOUBLE"
    ).iloc[0]
    assert diff["steps"] == TINY.regions * TINY.models * TINY.arms * 288
    assert diff["off"] == 0
    assert truth["totals"]["us-east-1"]["requests"] > truth["totals"]["us-east-1"]["errors"] > 0


def test_values_are_consistent(tiny: tuple[Store, dict]) -> None:
    store, _ = tiny
    # cumulative buckets never decrease with le
    bad = store.query(
        "SELECT count(*) AS n FROM (SELECT value - lag(value) OVER (PARTITION BY ts_utc, region, "
        "signal, model, arm ORDER BY le) AS d FROM histograms) WHERE d < 0"
    ).iloc[0, 0]
    assert bad == 0
    # energy per GPU step = mean board power x step length
    off = store.query(
        "SELECT max(abs(c.value - g.mean * g.step_s)) AS off, count(*) AS n FROM counters c "
        "JOIN gauges g USING (ts_utc, region, model, arm, instance) "
        "WHERE c.signal = 'energy' AND g.signal = 'gpu_power'"
    ).iloc[0]
    assert off["n"] == TINY.regions * TINY.models * TINY.gpus_per_model * 288
    assert off["off"] < 1e-6
    g = store.query(
        "SELECT min(mean) AS lo, max(mean) AS hi FROM gauges WHERE signal = 'gpu_utilization'"
    ).iloc[0]
    assert 0.0 <= g["lo"] < g["hi"] <= 1.0
    regions = store.query("SELECT region FROM regions ORDER BY region")["region"].tolist()
    assert regions == ["us-east-1", "us-west-2"]


def test_same_seed_same_fleet_other_seed_differs(tmp_path: Path) -> None:
    small = FleetSize(regions=1, models=1, arms=2, gpus_per_model=2, days=1, step_s=3600)
    a = build(tmp_path / "a", small, seed=3, end=END).totals
    b = build(tmp_path / "b", small, seed=3, end=END).totals
    c = build(tmp_path / "c", small, seed=4, end=END).totals
    assert a == b
    assert a != c


def test_sizes_and_bad_sizes() -> None:
    large, small = SIZES["large"], SIZES["small"]
    assert (large.regions, large.models, large.arms, large.gpus_per_model) == (20, 10, 2, 8)
    assert (large.days, large.step_s) == (30, 60)
    assert large.total_rows() == 10 * small.total_rows()
    assert sized("small", days=1).days == 1
    with pytest.raises(ValueError, match="unknown fleet size 'huge'"):
        sized("huge")
    with pytest.raises(ValueError, match=r"regions must be 1\.\.20"):
        FleetSize(regions=21, models=1)
    with pytest.raises(ValueError, match="not divisible by arms"):
        FleetSize(regions=1, models=1, arms=2, gpus_per_model=3)


def test_cli_size_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from observatory.cli import main

    runner = CliRunner()
    got = runner.invoke(
        main, ["demo", "--size", "small", "--days", "1.5", "--store", str(tmp_path)]
    )
    assert got.exit_code == 2
    assert "--days must be a whole number of days for --size small, got 1.5" in got.output
    got = runner.invoke(main, ["demo", "--size", "large", "--region", "us-east-1"])
    assert got.exit_code == 2
    assert "--size large writes a store only" in got.output
    assert not (tmp_path / "lake").exists()

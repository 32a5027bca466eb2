"""Regressions over the demo fleet: every injected incident found in the right region and
signal within 15 minutes of its true start, nothing in a quiet region, causes from
annotations, the CLI gate, and the seasonality adjustment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analytics import regressions as rg
from observatory import annotations as notes
from observatory import regressions as reg
from observatory.cli import main
from observatory.demo import build_store
from observatory.store import Store

END = datetime(2026, 11, 28, tzinfo=UTC)
DAYS = 8
REGIONS = ["eu-west-1", "ap-south-1", "us-west-2", "ap-northeast-1", "us-east-1"]
#: The incident's signal -> the derived signals that must show it.
SIGNAL_OF = {
    "latency": {"latency_p99"},
    "errors": {"error_ratio"},
    "accuracy": {"accuracy"},
    "gpu_power": {"gpu_power", "energy_per_request", "tokens_per_joule"},
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict, reg.Report]:
    root = tmp_path_factory.mktemp("regressions") / "store"
    build_store(root, days=DAYS, end=END, regions=REGIONS)
    truth = json.loads((root / "ground_truth.json").read_text())
    latency = next(i for i in truth["incidents"] if i["signal"] == "latency")
    notes.add(
        root,
        notes.Annotation(
            datetime.fromisoformat(latency["start"]) - timedelta(minutes=3),
            "llama-3.1-70b v2: new quantisation",
            region="eu-west-1",
            model="llama-3.1-70b",
            arm="v2",
        ),
    )
    store = Store(root)
    return store, truth, reg.analyse(store)


def test_every_injected_regression_found_where_and_when(fleet) -> None:
    _, truth, report = fleet
    assert truth["incidents"]
    for inc in truth["incidents"]:
        start = datetime.fromisoformat(inc["start"]).replace(tzinfo=None)
        hits = [
            r
            for r in report.regressions
            if r.region == inc["region"]
            and r.signal in SIGNAL_OF[inc["signal"]]
            and r.worse
            and (inc["model"] is None or r.model == inc["model"])
            and (inc["arm"] is None or r.arm == inc["arm"])
        ]
        assert hits, f"{inc['id']} not found"
        best = min(abs(r.start - start) for r in hits)
        assert best <= timedelta(minutes=15), f"{inc['id']}: {best} from the true start"


def test_quiet_region_with_counter_resets_reports_nothing(fleet) -> None:
    _, _, report = fleet
    assert [r for r in report.regressions if r.region == "us-east-1"] == []


def test_no_false_regression_outside_the_incidents(fleet) -> None:
    _, truth, report = fleet
    regions = {i["region"] for i in truth["incidents"]}
    worse = [r for r in report.regressions if r.worse]
    assert {r.region for r in worse} <= regions


def test_cause_from_annotation_and_verdict(fleet) -> None:
    _, _, report = fleet
    lat = [r for r in report.regressions if r.signal == "latency_p99" and r.worse]
    assert lat and lat[0].cause is not None
    assert lat[0].cause.kind == "annotation"
    assert lat[0].relative > 0.3
    assert lat[0].before_ci[0] <= lat[0].before <= lat[0].before_ci[1]
    v = [x for x in report.verdicts if x.event.kind == "annotation"]
    assert v and v[0].verdict.verdict == "Fail"


def test_error_burst_is_closed_and_levels_are_in_units(fleet) -> None:
    _, _, report = fleet
    burst = [r for r in report.regressions if r.signal == "error_ratio" and r.worse]
    assert len(burst) == 1
    assert not burst[0].open and burst[0].end is not None
    assert burst[0].before < 0.01 < 0.05 < burst[0].after


def test_cli_regressions_json_and_exit_code(fleet) -> None:
    store, _, _ = fleet
    runner = CliRunner()
    res = runner.invoke(
        main,
        ["regressions", "--store", str(store.root), "--since", "30d", "--format", "json",
         "--region", "eu-west-1", "--region", "us-west-2"],
    )
    assert res.exit_code == 1, res.output  # critical regressions are open
    out = json.loads(res.stdout)
    assert out["open_critical"] >= 1
    assert {r["signal"] for r in out["regressions"]} >= {"latency_p99", "accuracy"}
    table = runner.invoke(
        main, ["regressions", "--store", str(store.root), "--since", "30d", "--region", "eu-west-1"]
    )
    assert "latency_p99" in table.stdout and "cause: llama-3.1-70b v2" in table.stdout


def test_cli_regressions_quiet_store_exits_zero(fleet) -> None:
    store, _, _ = fleet
    res = CliRunner().invoke(
        main, ["regressions", "--store", str(store.root), "--region", "us-east-1"]
    )
    assert res.exit_code == 0, res.output


def test_annotate_cli_round_trip(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        ["annotate", "deploy v3", "--at", "2026-11-20T10:00Z", "--region", "eu-west-1",
         "--store", str(tmp_path)],
    )
    assert res.exit_code == 0, res.output
    got = notes.read(tmp_path)
    assert [(a.description, a.region, a.time) for a in got] == [
        ("deploy v3", "eu-west-1", datetime(2026, 11, 20, 10, tzinfo=UTC))
    ]
    bad = CliRunner().invoke(main, ["annotate", " ", "--store", str(tmp_path)])
    assert bad.exit_code == 2


# --------------------------------------------------------------------------- pure parts


def test_load_adjustment_removes_a_load_driven_daily_cycle() -> None:
    rng = np.random.default_rng(0)
    n = 288 * 10
    hour = (np.arange(n) % 288) / 12
    load = 20 + 60 * (0.5 - 0.5 * np.cos(2 * np.pi * (hour - 4) / 24))
    load *= np.where((np.arange(n) // 288) % 7 >= 5, 0.8, 1.0)  # weekends
    cost = 9.35 / (load * 5) * 1000 * rng.lognormal(0, 0.02, n)  # cost per 1k requests
    spec = rg.SIGNALS["cost_per_1k_requests"]
    times = pd.date_range("2026-11-01", periods=n, freq="5min")
    assert rg.analyse_series(times, cost, load, spec, ("r", "m", "a")) == []
    # the same cycle with the price up 40% from day 7: one regression, at the right time
    cost2 = cost * np.where(np.arange(n) >= 288 * 7, 1.4, 1.0)
    regs = rg.analyse_series(times, cost2, load, spec, ("r", "m", "a"))
    assert len(regs) == 1 and regs[0].worse and regs[0].open
    assert abs(regs[0].start - times[288 * 7 - 1].to_pydatetime()) <= timedelta(minutes=15)
    assert regs[0].relative == pytest.approx(0.4, abs=0.05)


def test_likely_cause_ranks_annotation_first() -> None:
    t = datetime(2026, 11, 20, 10)
    r = rg.Regression(
        "latency_p99", "eu", "m", "v2", t, 1, 2, (1, 1), (2, 2), 1.0, 1.0, "up", True, True,
        True, 0.0, None, 1, "seconds",
    )
    events = [
        rg.Event(t - timedelta(minutes=5), "traffic_shift", "traffic +50%", "eu", "m", "v2"),
        rg.Event(t - timedelta(minutes=30), "annotation", "deploy", "eu", None, None),
        rg.Event(t - timedelta(minutes=1), "annotation", "other region", "us", None, None),
        rg.Event(t - timedelta(hours=5), "annotation", "too early", "eu", None, None),
    ]
    got = rg.likely_cause(r, events)
    assert [e.description for e in got] == ["deploy", "traffic +50%"]

"""The demo fleet's injected incidents make the right tier fire in the right place.

Fourteen days of four demo regions (about 35 s to build): ap-south-1 (the
mistral-7b error burst), eu-west-1 (the llama-3.1-70b v2 latency regression),
us-west-2 (the qwen2.5-32b accuracy drift) and us-east-1, which has no incident
(only a counter reset, which must not look like errors).  Every example SLO is
evaluated over the whole history at one-minute steps, like a Prometheus rule
evaluation interval of 1m.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from observatory.demo import build_store
from observatory.slo_engine import SloEngine
from observatory.slo_specs import SloDefinition, load_specs
from observatory.store import Store

ROOT = Path(__file__).resolve().parent.parent
# sa-east-1: the quiet region with the highest prices (the cost budget must not fire there)
REGIONS = ["ap-south-1", "eu-west-1", "us-west-2", "us-east-1", "sa-east-1"]
END = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[SloEngine, dict[str, Any]]:
    root = tmp_path_factory.mktemp("slo-demo")
    build_store(root, days=14, regions=REGIONS, end=END)
    truth = json.loads((root / "ground_truth.json").read_text())
    return SloEngine(Store(root)), truth


@pytest.fixture(scope="module")
def slos() -> dict[str, SloDefinition]:
    return {d.name: d for d in load_specs([ROOT / "examples" / "slo"])}


def _incident(truth: dict[str, Any], kind: str) -> tuple[datetime, datetime | None]:
    (inc,) = [i for i in truth["incidents"] if i["kind"] == kind]
    start = datetime.fromisoformat(inc["start"]).replace(tzinfo=None)
    end = datetime.fromisoformat(inc["end"]).replace(tzinfo=None) if inc["end"] else None
    return start, end


def _timeline(engine: SloEngine, slo: SloDefinition, truth: dict[str, Any]) -> pd.DataFrame:
    start = datetime.fromisoformat(truth["start_utc"]).replace(tzinfo=None)
    end = datetime.fromisoformat(truth["end_utc"]).replace(tzinfo=None)
    history = engine.history(slo, start=start, end=end, every=timedelta(minutes=1))
    # Evaluated at every minute, or at every slice end for Timeslices.
    per_slice = slo.slice_window // timedelta(minutes=1) if slo.method != "Occurrences" else 1
    assert history["ts_utc"].nunique() == 14 * 1440 // per_slice
    return engine.alert_timeline(slo, history)


def test_error_burst_pages_in_its_region_and_nothing_else_fires(
    demo: tuple[SloEngine, dict[str, Any]], slos: dict[str, SloDefinition]
) -> None:
    engine, truth = demo
    start, end = _incident(truth, "error_burst")
    assert end is not None
    tl = _timeline(engine, slos["availability"], truth)
    groups = set(zip(tl["region"], tl["model"], strict=True))
    assert groups == {("ap-south-1", "mistral-7b")}, tl
    assert set(tl["severity"]) == {"page"}
    assert tl["fired"].min() >= start and tl["fired"].max() <= end + timedelta(hours=1)
    # 8 % errors against a 0.5 % budget: a burn of about 16 > 14.4 over the last hour.
    assert tl["peak_burn"].max() == pytest.approx(16, abs=1.5)
    # The first page after the 1h window passed 14.4: about 54 minutes at 16x (57.6 x 14.4/16).
    assert start + timedelta(minutes=45) <= tl["fired"].min() <= start + timedelta(minutes=65)


def test_latency_regression_opens_a_ticket_for_its_arm_only(
    demo: tuple[SloEngine, dict[str, Any]], slos: dict[str, SloDefinition]
) -> None:
    engine, truth = demo
    start, _ = _incident(truth, "latency_regression")
    tl = _timeline(engine, slos["latency-10s"], truth)
    assert set(zip(tl["region"], tl["model"], tl["arm"], strict=True)) == {
        ("eu-west-1", "llama-3.1-70b", "v2")
    }, tl
    assert set(tl["severity"]) == {"ticket"} and tl["fired"].min() > start


def test_accuracy_drift_pages_for_qwen_in_us_west_2(
    demo: tuple[SloEngine, dict[str, Any]], slos: dict[str, SloDefinition]
) -> None:
    engine, truth = demo
    start, _ = _incident(truth, "accuracy_drift")
    tl = _timeline(engine, slos["qwen-accuracy-floor"], truth)
    # The global roll-up judges each slice over every region's points, so it fails too.
    assert set(tl["region"]) == {"us-west-2", "*"}, tl
    assert "page" in set(tl["severity"]) and tl["fired"].min() > start


@pytest.mark.parametrize(
    "name", ["vllm-requests-availability", "p99-latency", "gpu-availability", "serving-cost"]
)
def test_quiet_slos_stay_quiet(
    demo: tuple[SloEngine, dict[str, Any]], slos: dict[str, SloDefinition], name: str
) -> None:
    engine, truth = demo
    tl = _timeline(engine, slos[name], truth)
    assert tl.empty, tl


def test_status_of_every_example(
    demo: tuple[SloEngine, dict[str, Any]], slos: dict[str, SloDefinition]
) -> None:
    engine, _ = demo
    states = {}
    for name, slo in slos.items():
        st = engine.status(slo)
        assert st.iloc[0][["region", "model", "arm"]].tolist() == ["*", "*", "*"]
        states[name] = st
    # The demo simulates TTFT; a histogram SLO on series nothing feeds (a model no
    # region serves) is an explicit no-data state, not an error.
    assert "no_data" not in states["ttft-750ms"]["state"].tolist()
    ttft = slos["ttft-750ms"].indicator
    assert ttft.numerator is not None and ttft.total is not None
    nowhere = (("model", ("no-such-model",)),)
    ghost = dataclasses.replace(
        slos["ttft-750ms"],
        name="ghost",
        indicator=dataclasses.replace(
            ttft,
            numerator=dataclasses.replace(ttft.numerator, where=nowhere),
            total=dataclasses.replace(ttft.total, where=nowhere),
        ),
    )
    assert engine.status(ghost)["state"].tolist() == ["no_data"]
    # 14 of 30 days hold data: coverage says so.
    av = states["availability"]
    assert av.iloc[0]["coverage"] == pytest.approx(14 / 30, abs=0.001)
    # us-east-1 has a counter reset on mistral-7b: exact increases, no phantom errors.
    east = av[(av["region"] == "us-east-1") & (av["model"] == "mistral-7b")].iloc[0]
    assert 0.0015 < east["error_ratio"] < 0.0025
    # The 90-minute burst spent about a sixth of ap-south-1 mistral-7b's 30-day budget.
    south = av[(av["region"] == "ap-south-1") & (av["model"] == "mistral-7b")].iloc[0]
    assert south["remaining"] < east["remaining"] - 0.1
    cost = states["serving-cost"]
    assert (cost["burn_1d"].dropna() > 0.5).all() and (cost["burn_1d"].dropna() < 1.2).all()

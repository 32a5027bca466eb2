"""The Regressions page, run headless with streamlit.testing.v1.AppTest on a small demo store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from app_support import chart_specs
from streamlit.testing.v1 import AppTest

from app.filters import Filters
from app.regressions_data import selected
from observatory import regressions as reg
from observatory.demo import build_store
from observatory.regressions import analyse
from observatory.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
END = datetime(2026, 11, 28, tzinfo=UTC)
REGIONS = ["eu-west-1", "sa-east-1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regressions_page") / "store"
    build_store(root, days=4, regions=REGIONS, end=END)
    return root


def _page(monkeypatch: pytest.MonkeyPatch, store: Path) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params["range"] = "Last 7 d"
    at.switch_page("views/regressions.py").run()
    assert not at.exception, at.exception
    return at


def test_regressions_page_shows_the_latency_regression_and_its_chart(
    monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    at = _page(monkeypatch, store)
    table = at.dataframe[0].value
    # at the default 1-minute bins the incident's model (15-35 requests a minute) has
    # no per-minute p99 (< 50 requests); the exact mean latency finds it, once
    row = table[table["signal"] == "latency_mean"]
    assert list(row["region"]) == ["eu-west-1"]
    assert set(table["region"]) == {"eu-west-1"}  # nothing in the quiet region
    # the chart opens on the first regression shown: the latency one of eu-west-1
    first = table.iloc[0]
    assert first["signal"] in {"latency_p99", "latency_mean"}
    assert any(f"{first['signal']} · eu-west-1" in s.value for s in at.subheader)
    # the open critical regressions are the incident's, in the two latency signals
    crit = table[(table["severity"] == "critical") & table["open"]]
    assert at.metric[0].value == str(len(crit))
    assert set(crit["signal"]) == {"latency_mean"}
    assert set(zip(crit["region"], crit["model"], crit["arm"], strict=True)) == {
        ("eu-west-1", "llama-3.1-70b", "v2")
    }


def test_regressions_page_judges_two_arms_and_two_ranges(
    monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    at = _page(monkeypatch, store)
    at.radio(key="verdict_mode").set_value("Two arms").run()
    assert not at.exception, at.exception
    verdicts = at.dataframe[-1].value
    assert set(verdicts["compared"]) == {"v2 vs v1"}
    # eu-west-1 llama-3.1-70b v2 is 60% slower than v1 over the last day: Fail
    row = verdicts[verdicts["region"] == "eu-west-1"]
    assert list(row["verdict"]) == ["Fail"]
    at.radio(key="verdict_mode").set_value("Two time ranges").run()
    assert not at.exception, at.exception
    ranges = at.dataframe[-1].value
    assert ranges["compared"].str.contains(" vs ").all()
    assert set(ranges["region"]) == {"eu-west-1", "sa-east-1"}


def _timeline(at: AppTest) -> dict[str, list[str]]:
    """The timeline's traces: name -> the regions (rows) of its points."""
    spec = next(
        s for s in chart_specs(at) if s["layout"].get("title", {}).get("text") == "Timeline"
    )
    return {t["name"]: list(t["y"]) for t in spec["data"]}


def test_regressions_page_link_restores_the_view_and_the_region_filter_narrows_it(
    monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    at = AppTest.from_file(MAIN, default_timeout=120)
    # A link: 7 days, one region, improvements shown, the two-arms verdicts.
    at.query_params["range"] = "Last 7 d"
    at.query_params["regions"] = ["eu-west-1"]
    at.query_params["reg_improvements"] = "true"
    at.query_params["verdict_mode"] = "Two arms"
    at.switch_page("views/regressions.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="regions").value == ["eu-west-1"]
    assert at.checkbox(key="reg_improvements").value is True
    assert at.radio(key="verdict_mode").value == "Two arms"
    # The table equals the analysis of the store over the same lookback, run here
    # without the page (and without its incremental state), for eu-west-1.
    expected = analyse(Store(store), lookback=timedelta(days=7), incremental=False)
    mine = [r for r in expected.regressions if r.region == "eu-west-1"]
    assert mine
    table = at.dataframe[0].value
    assert list(zip(table["signal"], table["start_utc"], table["severity"], strict=True)) == [
        (r.signal, pd.Timestamp(r.start), r.severity) for r in mine
    ]
    assert at.metric[0].value == str(len(reg.open_critical(mine)))
    rows = _timeline(at)
    assert [n for n in rows if n in REGIONS] == ["eu-west-1"]  # the analysed spans' rows
    assert rows["eu-west-1"] == ["eu-west-1", "eu-west-1"]
    marks = [y for sev in ("critical", "warning", "improvement") for y in rows.get(sev, [])]
    assert marks == ["eu-west-1"] * len(mine)
    assert set(at.dataframe[-1].value["region"]) == {"eu-west-1"}  # two arms, filtered
    # The other region: its own row only, and nothing to list (the demo injects no
    # change there; the independent analysis agrees).
    at.multiselect(key="regions").set_value(["sa-east-1"]).run()
    assert not at.exception, at.exception
    assert not [r for r in expected.regressions if r.region == "sa-east-1"]
    rows = _timeline(at)
    assert list(rows) == ["sa-east-1"]
    assert any("No regression in the selection" in s.value for s in at.success)
    assert at.metric[0].value == "0"


def test_selected_keeps_the_chosen_slices_and_labels_the_filter_does_not_know(
    store: Path,
) -> None:
    full = analyse(Store(store), lookback=timedelta(days=7), incremental=False)
    sig = full.signals
    models = sorted(str(m) for m in sig["model"].unique())
    f = Filters(
        "Last 7 d",
        full.start.replace(tzinfo=None),
        full.end.replace(tzinfo=None),
        regions=["eu-west-1"],
        models=models,
        all_regions=REGIONS,
        arms=["v2"],
        all_arms=["v1"],  # v2 unknown to the filter: kept
        all_models=models,
    )
    narrowed = selected(full, f)
    region = sig["region"].astype(str)
    arm = sig["arm"].astype(str)
    want = sig[(region == "eu-west-1") & (arm != "v1")]
    assert len(want) and len(want) < len(sig)
    assert narrowed.signals.index.tolist() == want.index.tolist()
    assert narrowed.regressions == [
        r for r in full.regressions if r.region == "eu-west-1" and r.arm != "v1"
    ]
    assert narrowed.regressions  # the eu-west-1 v2 latency regression
    # A known arm left out of the selection drops its rows.
    only_v1 = selected(full, dataclasses.replace(f, arms=["v1"], all_arms=["v1", "v2"]))
    assert set(only_v1.signals["arm"].astype(str)) == {"v1"}
    assert not [r for r in only_v1.regressions if r.arm == "v2"]


def test_open_regressions_that_began_before_the_range_still_count(
    monkeypatch: pytest.MonkeyPatch, store: Path, tmp_path: Path
) -> None:
    """A short range makes the incident the baseline of the page's own analysis; the
    whole-fleet analysis `observatory regressions` keeps still has it open, and the page
    must say so (the tiles agree with the CLI's "critical regression(s) open")."""
    import shutil

    from observatory import regressions_state

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    report = analyse(Store(copy))  # as `observatory regressions` runs it: state kept
    kept = regressions_state.load_regressions(copy, report.bin_s)
    assert kept is not None and kept[0] == report.end
    monkeypatch.setenv("OBSERVATORY_STORE", str(copy))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params["range"] = "Last 1 h"
    at.switch_page("views/regressions.py").run()
    assert not at.exception, at.exception
    start = report.end.replace(tzinfo=None) - timedelta(hours=1)
    older = [r for r in kept[1] if r.open and r.worse and r.start <= start]
    assert reg.open_critical(older), "the incident is open and began more than 1 h before the end"
    [warning] = [w.value for w in at.warning if "began before this range" in w.value]
    assert warning.startswith(f"**{len(older)} regression(s)")
    early = next(
        d.value for d in at.dataframe if "severity" in d.value and len(d.value) == len(older)
    )
    assert sorted(early["signal"]) == sorted(r.signal for r in older)
    # The same view without the kept analysis (the module's store: none kept) counts
    # only what began in the range: the difference is exactly the older open ones.
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    alone = AppTest.from_file(MAIN, default_timeout=120)
    alone.query_params["range"] = "Last 1 h"
    alone.switch_page("views/regressions.py").run()
    assert not alone.exception, alone.exception
    assert not [w for w in alone.warning if "began before this range" in w.value]
    assert int(at.metric[0].value) - int(alone.metric[0].value) == len(reg.open_critical(older))
    assert int(at.metric[1].value) - int(alone.metric[1].value) == len(older)

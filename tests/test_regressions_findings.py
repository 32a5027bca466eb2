"""Precomputed regression findings (observatory/regressions_findings.py) equal the direct
analysis of a real store, and the Regressions page shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from observatory import annotations as notes
from observatory import regressions as reg
from observatory import regressions_findings as rf
from observatory.cli import main
from observatory.demo import build_store
from observatory.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
END = datetime(2026, 11, 28, tzinfo=UTC)
REGIONS = ["eu-west-1", "sa-east-1", "us-west-2"]
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regressions_findings") / "store"
    build_store(root, days=4, regions=REGIONS, end=END)
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
    return root


@pytest.fixture(scope="module")
def direct(store: Path) -> reg.Report:
    """What the page computes without precomputed findings: the whole fleet at once."""
    return reg.analyse(Store(store), lookback=WEEK, incremental=False)


@pytest.fixture(scope="module")
def saved(store: Path) -> rf.Findings:
    """Precomputed one region at a time (the smallest batch), written and read back."""
    rf.save(Store(store), lookback=WEEK, batch=1)
    found = rf.load(store, reg.DEFAULT_BIN_S, WEEK)
    assert found is not None
    return found


def _key(r: reg.rg.Regression) -> tuple:
    return (r.region, r.model, r.arm, r.signal, r.start, r.before, r.after, r.severity)


def test_precomputed_findings_equal_the_direct_analysis(
    direct: reg.Report, saved: rf.Findings
) -> None:
    assert saved.stored
    assert (saved.start, saved.end, saved.bin_s) == (direct.start, direct.end, direct.bin_s)
    # series, change time, before/after levels and verdict (severity), in the same order
    assert [_key(r) for r in saved.regressions] == [_key(r) for r in direct.regressions]
    # every field, the intervals, p-values and causes included
    assert saved.regressions == direct.regressions
    assert saved.events == direct.events
    # the store's incident and its annotation are in there, so the test compares something
    latency = [r for r in direct.regressions if r.signal == "latency_mean" and r.worse]
    assert [(r.region, r.model, r.arm) for r in latency] == [("eu-west-1", "llama-3.1-70b", "v2")]
    assert latency[0].cause is not None and latency[0].cause.kind == "annotation"
    assert {e.kind for e in direct.events} >= {"annotation"}


def test_precomputed_signals_spans_and_verdicts_equal_the_direct_ones(
    direct: reg.Report, saved: rf.Findings
) -> None:
    pd.testing.assert_frame_equal(saved.signals(), direct.signals.reset_index(drop=True))
    one = saved.signals(["sa-east-1"], within=(END - timedelta(hours=2), END))
    want = direct.signals[
        (direct.signals["region"] == "sa-east-1")
        & (direct.signals["bin_end"] > pd.Timestamp(END - timedelta(hours=2)).tz_localize(None))
    ]
    assert len(one) == len(want) > 0
    assert list(one["value"]) == list(want["value"])
    hour = timedelta(hours=1)
    both = saved.signals_within(
        ["sa-east-1"],
        [(END - 3 * hour, END - hour), (END - 2 * hour, END), (END - 9 * hour, END - 8 * hour)],
    )
    assert len(both) == len(saved.signals(["sa-east-1"], within=(END - 3 * hour, END))) + len(
        saved.signals(["sa-east-1"], within=(END - 9 * hour, END - 8 * hour))
    )
    assert not both.duplicated().any()
    spans = direct.signals.groupby(reg.rg.KEYS, observed=True)["bin_end"].agg(["min", "max"])
    assert list(saved.spans["first"]) == list(spans["min"])
    assert list(saved.spans["last"]) == list(spans["max"])
    assert saved.arms == ["v1", "v2"]
    got = reg.deployment_verdicts(saved.verdict_rows, saved.events)
    want_v = reg.deployment_verdicts(direct.signals, direct.events)
    assert want_v  # the annotation is judged
    assert [v.as_dict() for v in got] == [v.as_dict() for v in want_v]
    assert len(saved.verdict_rows) < len(direct.signals) / 20


def test_on_demand_findings_of_selected_regions_equal_their_direct_analysis(
    store: Path,
) -> None:
    """The page's on-demand path (a region at a time) against analyse(regions=...)."""
    sub = ["eu-west-1", "sa-east-1"]
    want = reg.analyse(Store(store), lookback=WEEK, regions=sub, incremental=False)
    got = rf.compute(Store(store), lookback=WEEK, regions=sub, batch=1)
    assert not got.stored and got.regions == sub
    assert got.regressions == want.regressions and got.regressions
    assert got.events == want.events
    pd.testing.assert_frame_equal(got.signals(), want.signals.reset_index(drop=True))
    verdicts = reg.deployment_verdicts(got.verdict_rows, got.events)
    assert [v.as_dict() for v in verdicts] == [
        v.as_dict() for v in reg.deployment_verdicts(want.signals, want.events)
    ]


def test_on_demand_findings_wrap_the_report_unchanged(direct: reg.Report) -> None:
    found = rf.from_report(direct)
    assert not found.stored
    assert found.regressions == direct.regressions
    pd.testing.assert_frame_equal(found.signals(), direct.signals.reset_index(drop=True))
    series = found.series("eu-west-1", "llama-3.1-70b", "v2", "latency_mean")
    assert series.equals(reg.series(direct, "eu-west-1", "llama-3.1-70b", "v2", "latency_mean"))


def test_load_refuses_another_version_and_missing_files(store: Path, saved: rf.Findings) -> None:
    assert rf.load(store, 300, WEEK) is None  # never precomputed
    where = rf.findings_folder(store, reg.DEFAULT_BIN_S, WEEK)
    doc = json.loads((where / "findings.json").read_text())
    assert len(list(where.glob("*.parquet"))) == len(REGIONS) + 1  # one generation
    other = tmp = where.parent / "findings-60-1"
    tmp.mkdir(exist_ok=True)
    (other / "findings.json").write_text(json.dumps({**doc, "version": "old"}))
    assert rf.load(store, reg.DEFAULT_BIN_S, timedelta(seconds=1)) is None


def test_precompute_command_skips_an_unchanged_store(store: Path, saved: rf.Findings) -> None:
    runner = CliRunner()
    res = runner.invoke(
        main, ["regressions", "precompute", "--store", str(store), "--lookback", "7d"]
    )
    assert res.exit_code == 0, res.output
    assert "up to date" in res.output
    res = runner.invoke(
        main,
        ["regressions", "precompute", "--store", str(store), "--lookback", "1d", "--bin", "90"],
    )
    assert res.exit_code == 2 and "multiple of 60" in res.output
    # --config is checked even when --store overrides its store
    missing = store.parent / "missing.yaml"
    res = runner.invoke(
        main, ["regressions", "precompute", "--store", str(store), "--config", str(missing)]
    )
    assert res.exit_code == 2 and "missing.yaml" in res.output


def _page(
    monkeypatch: pytest.MonkeyPatch, store: Path, regions: list[str] | None = None
) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params["range"] = "Last 7 d"
    if regions:
        at.query_params["regions"] = regions
    at.switch_page("views/regressions.py").run()
    assert not at.exception, at.exception
    return at


def test_page_shows_the_precomputed_findings_filtered_by_the_sidebar(
    monkeypatch: pytest.MonkeyPatch, store: Path, direct: reg.Report, saved: rf.Findings
) -> None:
    at = _page(monkeypatch, store, ["eu-west-1"])
    assert any("precomputed" in c.value for c in at.caption)
    table = at.dataframe[0].value
    mine = [r for r in direct.regressions if r.region == "eu-west-1" and r.worse]
    assert list(zip(table["signal"], table["start_utc"], table["region"], strict=True)) == [
        (r.signal, pd.Timestamp(r.start), r.region) for r in mine
    ]
    assert at.metric[0].value == str(len(reg.open_critical(mine)))
    verdicts = reg.deployment_verdicts(direct.signals, direct.events)
    assert at.metric[2].value == str(sum(v.region == "eu-west-1" for v in verdicts))


def test_page_judges_two_arms_and_two_ranges_on_the_stored_signals(
    monkeypatch: pytest.MonkeyPatch, store: Path, direct: reg.Report, saved: rf.Findings
) -> None:
    at = _page(monkeypatch, store, ["eu-west-1", "sa-east-1"])
    last = pd.Timestamp(direct.end.replace(tzinfo=None)).floor("h").to_pydatetime()
    day, hour = timedelta(days=1), timedelta(hours=1)

    def shown() -> list[tuple]:
        v = at.dataframe[-1].value
        return list(zip(v["region"], v["model"], v["arm"], v["verdict"], v["score"], strict=True))

    at.radio(key="verdict_mode").set_value("Two arms").run()
    assert not at.exception, at.exception
    want = reg.arm_verdicts(direct.signals, "v1", "v2", (last - day, last))
    rows = [(v.region, v.model, v.arm, v.verdict.verdict, v.verdict.score) for v in want]
    assert shown() == [r for r in rows if r[0] != "us-west-2"]
    assert ("eu-west-1", "llama-3.1-70b", "v2/v1", "Fail") in [r[:4] for r in shown()]
    at.radio(key="verdict_mode").set_value("Two time ranges").run()
    assert not at.exception, at.exception
    want = reg.range_verdicts(direct.signals, (last - day - hour, last - day), (last - hour, last))
    rows = [(v.region, v.model, v.arm, v.verdict.verdict, v.verdict.score) for v in want]
    assert shown() == [r for r in rows if r[0] != "us-west-2"]
    assert len(shown()) == 8  # every series of the two selected regions (4 each)


def test_page_computes_on_demand_after_a_new_annotation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Path, saved: rf.Findings
) -> None:
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    notes.add(copy, notes.Annotation(END - timedelta(hours=1), "late deploy", region="sa-east-1"))
    at = _page(monkeypatch, copy, ["sa-east-1"])
    assert any("computed now" in c.value for c in at.caption)

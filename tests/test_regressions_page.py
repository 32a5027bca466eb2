"""The Regressions page, run headless with streamlit.testing.v1.AppTest on a small demo store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from observatory.demo import build_store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
END = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regressions_page") / "store"
    build_store(root, days=4, regions=["eu-west-1", "sa-east-1"], end=END)
    return root


def _page(monkeypatch: pytest.MonkeyPatch, store: Path) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("views/regressions.py").run()
    assert not at.exception, at.exception
    return at


def test_regressions_page_shows_the_latency_regression_and_its_chart(
    monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    at = _page(monkeypatch, store)
    table = at.dataframe[0].value
    row = table[table["signal"] == "latency_p99"]
    assert list(row["region"]) == ["eu-west-1"]
    assert set(table["region"]) == {"eu-west-1"}  # nothing in the quiet region
    # the chart opens on the first regression shown: the latency one of eu-west-1
    first = table.iloc[0]
    assert first["signal"] in {"latency_p99", "latency_mean"}
    assert any(f"{first['signal']} · eu-west-1" in s.value for s in at.subheader)
    # the open critical regressions are the incident's, in the two latency signals
    crit = table[(table["severity"] == "critical") & table["open"]]
    assert at.metric[0].value == str(len(crit))
    assert set(crit["signal"]) == {"latency_p99", "latency_mean"}
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

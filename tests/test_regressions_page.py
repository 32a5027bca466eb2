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


def test_regressions_page_shows_the_latency_regression_and_its_chart(
    monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("views/regressions.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    row = table[table["signal"] == "latency_p99"]
    assert list(row["region"]) == ["eu-west-1"]
    assert set(table["region"]) == {"eu-west-1"}  # nothing in the quiet region
    assert any("latency_p99 · eu-west-1" in s.value for s in at.subheader)
    assert at.metric[0].value == "1"  # one open critical regression

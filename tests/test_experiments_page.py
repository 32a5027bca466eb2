"""The Experiments page, run headless with streamlit.testing.v1.AppTest on a small demo store."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pandas.errors import Pandas4Warning
from streamlit.testing.v1 import AppTest

from observatory.demo import build_store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "experiments.yaml"
END = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exp-page") / "demo"
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"DatetimeIndex\.dayofweek", category=Pandas4Warning
        )
        build_store(root, days=1, regions=["us-east-1", "eu-west-1"], end=END)
    return root


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    monkeypatch.delenv("OBSERVATORY_EXPERIMENTS", raising=False)


def _page(monkeypatch: pytest.MonkeyPatch, store: Path, experiments: Path | None) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    if experiments is not None:
        monkeypatch.setenv("OBSERVATORY_EXPERIMENTS", str(experiments))
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("views/experiments.py").run()
    return at


def _first_alert(at: AppTest):  # type: ignore[no-untyped-def]
    return next(e for e in at.main if e.type in ("success", "error", "warning", "info"))


def test_page_shows_srm_first_then_verdict_table_regions_and_charts(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _page(monkeypatch, store_dir, EXAMPLE)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="experiment").value == "llama-v2-rollout"
    # the SRM banner is the first alert on the page
    first = _first_alert(at)
    assert first.type == "success" and "Sample ratio check passed" in str(first.value)
    verdict = " ".join(str(x.value) for x in at.info)
    assert "v2" in verdict and "more accurate" in verdict
    table = at.dataframe[0].value
    acc = table[table["Metric"] == "accuracy (v2)"].iloc[0]
    assert acc["Role"] == "primary" and acc["Lift"].startswith("+1.7")
    assert {"Corrected p", "Chance to win", "Always-valid CI"} <= set(table.columns)
    regions = at.dataframe[1].value
    assert set(regions["Region"]) == {"all regions", "us-east-1", "eu-west-1"}
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert len(charts) == 4  # regions, cumulative effect, two frontier charts
    titles = " ".join(str(s["layout"].get("title", {}).get("text", "")) for s in charts.values())
    assert "Cumulative effect on accuracy" in titles
    assert "accuracy vs cost per 1k requests" in titles
    assert "accuracy vs energy per request" in titles


def test_changing_the_metrics_reruns_without_errors(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _page(monkeypatch, store_dir, EXAMPLE)
    at.selectbox(key="region_metric").set_value("latency_p99").run()
    assert not at.exception
    at.selectbox(key="cumulative_metric").set_value("latency_mean").run()
    assert not at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any("mean latency" in str(s["layout"].get("title", {}).get("text")) for s in specs)


def test_srm_failure_is_shown_first_and_prominently(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    skewed = tmp_path / "experiments.yaml"
    skewed.write_text(
        "experiments:\n  - name: skewed\n    model: llama-3.1-70b\n    arms: [v1, v2]\n"
        "    weights: {v1: 0.7, v2: 0.3}\n    primary: accuracy\n",
        encoding="utf-8",
    )
    at = _page(monkeypatch, store_dir, skewed)
    assert not at.exception
    first = _first_alert(at)
    assert first.type == "error" and "SAMPLE RATIO MISMATCH" in str(first.value)
    assert any("untrustworthy" in str(e.value) for e in at.error)


def test_discovered_experiment_without_a_file_and_bad_file_message(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    at = _page(monkeypatch, store_dir, None)
    assert not at.exception and not at.error
    assert at.selectbox(key="experiment").value == "llama-3.1-70b"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "experiments:\n  - name: x\n    model: m\n    arms: [a]\n    primary: accuracy\n"
    )
    at = _page(monkeypatch, store_dir, bad)
    assert not at.exception
    assert any("bad.yaml:4" in str(e.value).replace("\\", "") for e in at.error)


def test_after_a_refresh_the_page_reads_no_replicate(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from observatory import experiment_files as ef
    from observatory.cli import main
    from observatory.store import Store

    monkeypatch.setenv(ef.ENV_STATE, str(tmp_path / "state"))
    ef.memory.clear()
    args = ["experiment", "refresh", "--store", str(store_dir), "--experiments", str(EXAMPLE)]
    assert CliRunner().invoke(main, args).exit_code == 0
    ef.memory.clear()  # as a fresh server process
    names: list[str] = []
    query = Store.query

    def counted(store: Store, sql: str, params: Any = None) -> Any:
        names.append(sql)
        return query(store, sql, params)

    monkeypatch.setattr(Store, "query", counted)
    at = _page(monkeypatch, store_dir, EXAMPLE)
    assert not at.exception and not at.error
    assert "more accurate" in " ".join(str(x.value) for x in at.info)
    assert len(at.get("plotly_chart")) == 4
    assert names == []  # neither the listing nor the replicates: all from the saved state

"""The SLOs page, run headless with streamlit.testing.v1.AppTest on a small demo store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from observatory.demo import build_store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
END = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slo-page") / "demo"
    build_store(root, days=1, regions=["eu-central-1", "ap-south-1"], end=END)
    return root


def _page(monkeypatch: pytest.MonkeyPatch, store: Path, specs: Path | None = None) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    if specs is None:
        monkeypatch.delenv("OBSERVATORY_SLO_SPECS", raising=False)
    else:
        monkeypatch.setenv("OBSERVATORY_SLO_SPECS", str(specs))
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("views/slos.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return str(values[0])


def test_slo_list_detail_and_filters(monkeypatch: pytest.MonkeyPatch, store_dir: Path) -> None:
    at = _page(monkeypatch, store_dir)
    assert at.title[0].value == "SLOs"
    assert _metric(at, "SLOs") == "9"
    assert _metric(at, "No data") == "1"  # ttft: no TTFT series in the demo
    listing = at.dataframe[0].value
    assert len(listing) == 9 and set(listing["group"]) == {"global"}
    remaining = listing["remaining"].dropna().tolist()
    assert remaining == sorted(remaining)  # least budget first
    # Detail of the availability SLO: burn-down, burn rates, timeline, breakdown.
    at.selectbox(key="slo_detail").set_value("availability").run()
    assert not at.exception
    assert _metric(at, "State") in {"ok", "ticket", "page", "budget exhausted"}
    assert len(at.get("plotly_chart")) >= 2
    breakdown = at.dataframe[-1].value
    assert "global" in set(breakdown["group"]) and "eu-central-1 / mistral-7b" in set(
        breakdown["group"]
    )
    # Picking a group and a shorter history.
    at.selectbox(key="slo_group").set_value("ap-south-1 / mistral-7b").run()
    at.radio(key="slo_span").set_value("Last 24 h").run()
    assert not at.exception
    # Region filter: per-group rows of that region only.
    at.multiselect(key="slo_regions").set_value(["ap-south-1"]).run()
    assert not at.exception
    listing = at.dataframe[0].value
    assert len(listing) > 0 and all(g.startswith("ap-south-1") for g in listing["group"])


def test_spec_errors_are_shown(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: prometheus/v1\nservice: x\nslos:\n  - name: a\n    objective: 0\n")
    at = _page(monkeypatch, store_dir, bad)
    assert at.error and "mistake" in at.error[0].value
    assert "slos[0].objective: expected a number in (0, 100]" in at.code[0].value

"""The GPUs & Energy page on a small demo store (AppTest): figures against the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_support import (
    app,
    assert_no_raw_html,
    chart_specs,
    demo_store,
    hostile_store,
    metric,
    window,
)

from observatory.store import Store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("gpu") / "demo")


def _one(store: Store, sql: str, params: dict[str, object]) -> float:
    return float(store.query(sql, params).iloc[0, 0])


W = "ts_utc > $start AND ts_utc <= $end"


def test_gpu_figures_match_the_store(monkeypatch: pytest.MonkeyPatch, store_dir: Path) -> None:
    at = app(monkeypatch, store_dir, "gpus_energy")
    assert not at.exception and not at.error
    store = Store(store_dir)
    w = window(store)
    util = _one(
        store,
        f"SELECT sum(mean * step_s) / sum(step_s) FROM gauges "
        f"WHERE signal = 'gpu_utilization' AND {W}",
        w,
    )
    assert metric(at, "GPU utilisation") == f"{100 * util:,.1f} %"
    joules = _one(store, f"SELECT sum(value) FROM counters WHERE signal = 'energy' AND {W}", w)
    assert metric(at, "GPU energy") == f"{joules / 3.6e6:,.1f} kWh"
    tokens = _one(
        store,
        "SELECT sum(value) FROM counters "
        f"WHERE signal IN ('prompt_tokens', 'generation_tokens') AND {W}",
        w,
    )
    assert metric(at, "Tokens per joule") == f"{tokens / joules:,.3f}"
    requests = _one(store, f"SELECT sum(value) FROM counters WHERE signal = 'requests' AND {W}", w)
    assert metric(at, "Energy per 1k requests") == f"{1000 * joules / 3.6e6 / requests:,.3f} kWh"
    for floor in (10, 30):
        at.number_input(key="idle_floor").set_value(floor).run()
        assert not at.exception
        idle_s = _one(
            store,
            f"SELECT sum(step_s) FROM gauges WHERE signal = 'gpu_utilization' AND {W} "
            "AND mean < $floor",
            {**w, "floor": floor / 100},
        )
        assert idle_s > 0
        assert metric(at, "Idle GPU-hours") == f"{idle_s / 3600:,.1f}"
    table = at.dataframe[0].value
    assert table["Energy (kWh)"].sum() == pytest.approx(joules / 3.6e6)
    assert len(chart_specs(at)) == 3  # utilisation, power, energy per region and model


def test_html_in_labels_is_text(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    root = hostile_store(store_dir, tmp_path / "hostile")
    at = app(monkeypatch, root, "gpus_energy")
    at.selectbox(key="gpu_split").set_value("model").run()
    assert not at.exception
    assert_no_raw_html(at)
    assert any("<script>" in m for m in at.dataframe[0].value["Model"])  # shown as text

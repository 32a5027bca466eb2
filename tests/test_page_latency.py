"""The Latency page on a small demo store (AppTest): percentiles against the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_support import (
    HOSTILE_MODEL,
    REGIONS,
    app,
    assert_no_raw_html,
    chart_specs,
    demo_store,
    hostile_store,
    metric,
    texts,
    window,
)

from analytics.histogram import histogram_quantile
from analytics.latency import LATENCY_SIGNALS
from observatory.store import Store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("latency") / "demo")


def _quantile(store: Store, q: float, where: str, params: dict[str, object]) -> float:
    """The quantile straight from the raw histogram rows (an independent path)."""
    rows = store.query(
        "SELECT le, sum(value) AS v FROM histograms WHERE ts_utc > $start AND ts_utc <= $end "
        f"AND {where} GROUP BY le ORDER BY le",
        params,
    )
    return float(histogram_quantile(q, rows["le"].to_numpy(), rows["v"].to_numpy()))


def _present(store: Store, w: dict[str, object]) -> set[str]:
    rows = store.query(
        "SELECT DISTINCT signal FROM histograms WHERE ts_utc > $start AND ts_utc <= $end "
        "AND signal IN ('latency', 'ttft', 'itl')",
        w,
    )
    return set(rows["signal"])


def _s(v: float) -> str:
    return f"{v:.3f} s" if v < 1 else f"{v:.2f} s"


def test_latency_percentiles_and_table_match_the_store(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = app(monkeypatch, store_dir, "latency")
    assert not at.exception and not at.error
    store = Store(store_dir)
    w = window(store)
    for name, q in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]:
        expected = _quantile(store, q, "signal = 'latency'", w)
        assert metric(at, f"{name} latency") == _s(expected)
    table = at.dataframe[0].value.set_index("Region")
    assert sorted(table.index) == sorted(REGIONS)
    for region in REGIONS:
        for model in ["llama-3.1-70b", "mistral-7b"]:
            expected = _quantile(
                store,
                0.99,
                "signal = 'latency' AND region = $region AND model = $model",
                {**w, "region": region, "model": model},
            )
            assert table.loc[region, model] == pytest.approx(expected, rel=1e-12)
    present = _present(store, w)
    for signal, title in LATENCY_SIGNALS.items():
        if signal in present:
            expected = _quantile(store, 0.99, f"signal = '{signal}'", w)
            assert metric(at, f"p99 {signal}") == _s(expected)
        else:  # the page says which ones the store lacks
            assert f"Not in the store for this selection: {title}" in texts(at) or (
                f", {title}" in texts(at)
            )
    specs = chart_specs(at)
    assert len(specs) == 3 * len(present)  # p99, p90, p50 of each signal present
    names = {t["name"] for t in specs[0]["data"]}
    assert names == set(REGIONS)
    for trace in specs[0]["data"]:
        assert 0 < len(trace["x"]) <= 400  # downsampled: 5-minute buckets for 24 h


def test_lines_per_model_and_a_region_filter(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = app(monkeypatch, store_dir, "latency")
    at.multiselect(key="regions").set_value(["eu-west-1"]).run()
    at.selectbox(key="latency_split").set_value("model").run()
    assert not at.exception
    store = Store(store_dir)
    w = window(store)
    expected = _quantile(store, 0.99, "signal = 'latency' AND region = 'eu-west-1'", w)
    assert metric(at, "p99 latency") == _s(expected)
    names = {t["name"] for t in chart_specs(at)[0]["data"]}
    assert names == {"llama-3.1-70b", "mistral-7b", "qwen2.5-32b"}
    assert at.dataframe[0].value["Region"].tolist() == ["eu-west-1"]


def test_ttft_shows_when_the_store_has_it(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "store"
    shutil.copytree(store_dir, root)
    store = Store(root)
    for region in REGIONS:
        lat = store.query(
            "SELECT ts_utc, model, arm, le, value, unit FROM histograms "
            "WHERE signal = 'latency' AND region = $r",
            {"r": region},
        )
        ttft = lat.assign(signal="ttft", le=lat["le"] / 10.0)  # every bound a tenth
        lo = pd.Timestamp(lat["ts_utc"].min()) - pd.Timedelta(minutes=1)
        store.replace_window("histograms", region, ["ttft"], lo, lat["ts_utc"].max(), ttft)
    store.touch_version()
    at = app(monkeypatch, root, "latency")
    assert not at.exception and not at.error
    w = window(store)
    expected = _quantile(store, 0.99, "signal = 'latency'", w) / 10.0
    assert metric(at, "p99 ttft") == _s(expected)
    assert np.isclose(expected, _quantile(store, 0.99, "signal = 'ttft'", w))
    assert len(chart_specs(at)) == 3 * len(_present(store, w))


def test_html_in_model_names_is_shown_as_text(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    root = hostile_store(store_dir, tmp_path / "hostile")
    at = app(monkeypatch, root, "latency")
    at.selectbox(key="latency_split").set_value("model").run()
    assert not at.exception
    assert HOSTILE_MODEL in at.dataframe[0].value.columns  # a column name, as text
    assert_no_raw_html(at)
    names = {t["name"] for t in chart_specs(at)[0]["data"]}
    assert (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"
        in names
    )

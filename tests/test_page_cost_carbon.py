"""The Cost & Carbon page on a small demo store (AppTest): figures against the store
and Cloud Carbon Footprint's published factors (analytics/carbon.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from app_support import (
    REGIONS,
    app,
    assert_no_raw_html,
    chart_specs,
    demo_store,
    hostile_store,
    plotly_numbers,
    window,
)

from analytics.carbon import GRID_G_PER_KWH, PUE
from observatory.store import Store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("cost") / "demo")


def test_cost_and_carbon_match_the_store(monkeypatch: pytest.MonkeyPatch, store_dir: Path) -> None:
    at = app(monkeypatch, store_dir, "cost_carbon")
    assert not at.exception and not at.error
    store = Store(store_dir)
    w = window(store)
    per_region = store.query(
        "SELECT region, "
        "sum(mean * step_s / 3600) FILTER (WHERE signal = 'cost') AS usd FROM gauges "
        "WHERE ts_utc > $start AND ts_utc <= $end GROUP BY region",
        w,
    ).set_index("region")
    work = store.query(
        "SELECT region, sum(value) FILTER (WHERE signal = 'requests') AS requests, "
        "sum(value) FILTER (WHERE signal = 'energy') AS joules FROM counters "
        "WHERE ts_utc > $start AND ts_utc <= $end GROUP BY region",
        w,
    ).set_index("region")
    costs = at.dataframe[0].value.set_index("Region")
    carbon = at.dataframe[1].value.set_index("Region")
    for region in REGIONS:
        usd = per_region.loc[region, "usd"]
        assert costs.loc[region, "Cost (USD)"] == pytest.approx(usd)
        assert costs.loc[region, "USD per 1k requests"] == pytest.approx(
            1000 * usd / work.loc[region, "requests"]
        )
        # Published factors: Cloud Carbon Footprint's AWS table and PUE.
        grid = GRID_G_PER_KWH["aws"][region]
        assert carbon.loc[region, "Grid intensity (gCO2e/kWh)"] == grid
        assert carbon.loc[region, "PUE"] == PUE["aws"] == 1.135
        assert "Cloud Carbon Footprint" in carbon.loc[region, "Intensity source"]
        kwh = work.loc[region, "joules"] / 3.6e6
        assert carbon.loc[region, "gCO2e"] == pytest.approx(kwh * 1.135 * grid)
    assert carbon.loc["ap-south-1", "Grid intensity (gCO2e/kWh)"] == 708.2
    total = per_region["usd"].sum()
    assert [m.value for m in at.metric if m.label == "Cost"] == [f"${total:,.0f}"]
    daily = chart_specs(at)[0]
    assert {t["name"] for t in daily["data"]} == set(REGIONS)


def test_moving_load_saves_what_the_formula_says(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = app(monkeypatch, store_dir, "cost_carbon")
    carbon = at.dataframe[1].value.set_index("Region")
    g = carbon["gCO2e per request"]
    source = g.idxmax()  # the default source: the dirtiest per request
    assert source == "ap-south-1"  # 708.2 g/kWh, the highest of the three
    at.slider(key="shift_pct").set_value(10).run()
    saved = [m for m in at.metric if m.label.startswith("Carbon saved")]
    assert len(saved) == 1
    dest = g.drop(source).idxmin()
    moved = 0.1 * carbon.loc[source, "gCO2e"] / g[source]  # 10 % of its requests
    expected_g = moved * (g[source] - g[dest])
    label = saved[0].label.replace("\\", "")
    assert f"to {dest}" in label
    shown = saved[0].value
    value = expected_g / 1e3 if "kg" in shown else expected_g
    assert shown.startswith(f"{value:,.1f}" if "kg" in shown else f"{value:,.0f}")


def test_html_in_labels_is_text(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    root = hostile_store(store_dir, tmp_path / "hostile")
    at = app(monkeypatch, root, "cost_carbon")
    assert not at.exception
    assert_no_raw_html(at)


def test_daily_cost_and_price_table_fallback_match_the_store(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    """The page reads work and cost once per region, model and day (``work_by_day``)
    and sums it two ways (app/work_sums.py): the daily bars must equal the cost per
    region and UTC day computed here from the minute rows, and a region whose cost
    comes only from a price table (``gpu_cost``) must fall back to it, per day and in
    the table."""
    root = tmp_path / "priced"
    shutil.copytree(store_dir, root)
    store = Store(root)
    priced = "ap-south-1"
    rows = store.query("SELECT * FROM gauges WHERE region = $r AND signal = 'cost'", {"r": priced})
    lo = pd.Timestamp(rows["ts_utc"].min()) - pd.Timedelta(minutes=1)
    hi = pd.Timestamp(rows["ts_utc"].max())
    moved = rows.assign(signal="gpu_cost").drop(columns=["region"])
    store.replace_window("gauges", priced, ["cost", "gpu_cost"], lo, hi, moved)
    store.touch_version()

    at = app(monkeypatch, root, "cost_carbon")
    assert not at.exception and not at.error
    w = window(store)
    direct = store.query(
        "SELECT region, strftime(CAST(ts_utc - INTERVAL 1 microsecond AS DATE), '%Y-%m-%d') "
        "AS day, coalesce(sum(mean * step_s) FILTER (WHERE signal = 'cost'), "
        "sum(mean * step_s) FILTER (WHERE signal = 'gpu_cost')) / 3600 AS usd FROM gauges "
        "WHERE ts_utc > $start AND ts_utc <= $end GROUP BY ALL",
        w,
    )
    assert len(direct) >= len(REGIONS)  # every region has cost, ap-south-1 via gpu_cost
    spec = chart_specs(at)[0]
    # Labels, not dates: a date axis would drop "YYYY-MM-DD (partial)" from the axis.
    assert spec["layout"]["xaxis"]["type"] == "category"
    bars = {
        (trace["name"], day): usd
        for trace in spec["data"]
        for day, usd in zip(trace["x"], plotly_numbers(trace["y"]), strict=True)
    }
    expected = {(r.region, r.day): r.usd for r in direct.itertuples()}
    # A day the window cuts is labelled "(partial)"; whole days are plain dates.
    start, end = pd.Timestamp(w["start"]), pd.Timestamp(w["end"])
    for _, day in bars:
        d = pd.Timestamp(day.removesuffix(" (partial)"))
        partial = d < start or d + pd.Timedelta(days=1) > end
        assert day.endswith(" (partial)") == partial, (day, start, end)
    bars = {(region, day.removesuffix(" (partial)")): usd for (region, day), usd in bars.items()}
    assert bars.keys() == expected.keys()
    for key, usd in expected.items():
        assert bars[key] == pytest.approx(usd, rel=1e-12), key
    costs = at.dataframe[0].value.set_index("Region")
    for region, usd in direct.groupby("region")["usd"].sum().items():
        assert costs.loc[region, "Cost (USD)"] == pytest.approx(usd, rel=1e-12)

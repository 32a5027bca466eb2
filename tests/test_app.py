"""The dashboard, run headless with streamlit.testing.v1.AppTest on a small demo store."""

from __future__ import annotations

import base64
import json
import math
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from observatory.demo import build_store
from observatory.slo_engine import SloEngine, region_states, status_table
from observatory.slo_specs import load_specs
from observatory.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
END = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store") / "demo"
    build_store(root, days=1, regions=REGIONS, end=END)
    return root


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    monkeypatch.delenv("OBSERVATORY_LOGIN", raising=False)


def _app(monkeypatch: pytest.MonkeyPatch, store: Path) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    return AppTest.from_file(MAIN, default_timeout=60).run()


def _metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return str(values[0])


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _requests(store: Path, start: datetime, end: datetime, regions: list[str]) -> int:
    df = Store(store).query(
        "SELECT sum(value) AS n FROM counters WHERE signal = 'requests' "
        "AND ts_utc > $start AND ts_utc <= $end AND list_contains($regions, region)",
        {"start": start, "end": end, "regions": regions},
    )
    return round(float(df["n"].iloc[0]))


def _window(store: Path, hours: int = 24) -> tuple[datetime, datetime]:
    latest = (
        Store(store)
        .query("SELECT max(ts_utc) AS t FROM counters WHERE signal = 'requests'")["t"]
        .iloc[0]
    )
    end = pd.Timestamp(latest).to_pydatetime()
    return end - timedelta(hours=hours), end


def _texts(at: AppTest) -> str:
    return "\n".join(
        str(e.value) for kind in ("error", "warning", "info") for e in getattr(at, kind)
    )


def _cost(store: Store, start: datetime, end: datetime, arm: str | None = None) -> float:
    """The serving cost (USD) in (start, end], of one arm or all: the USD/hour gauge
    integrated over time."""
    return float(
        store.query(
            "SELECT sum(mean * step_s / 3600) AS usd FROM gauges WHERE signal = 'cost' "
            "AND ($arm IS NULL OR arm = $arm) AND ts_utc > $start AND ts_utc <= $end",
            {"start": start, "end": end, "arm": arm},
        )["usd"].iloc[0]
    )


def _usd(v: float) -> str:
    return f"${v:,.0f}" if v >= 1000 else f"${v:,.2f}"


def test_overview_shows_the_real_request_total_and_the_map(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _app(monkeypatch, store_dir)
    assert not at.exception
    assert not at.error
    start, end = _window(store_dir)  # default range: last 24 h before the latest data
    expected = _requests(store_dir, start, end, REGIONS)
    assert expected > 0
    assert _count(_metric(at, "Requests")) == expected
    for label in (
        "Error ratio",
        "p50 latency",
        "p95 latency",
        "p99 latency",
        "GPU utilisation",
        "Energy (kWh)",
        "Cost",
    ):
        assert _metric(at, label) != "—", label
    charts = at.get("plotly_chart")
    specs = [json.loads(c.proto.spec) for c in charts]
    geo = [s for s in specs if any(t.get("type") == "scattergeo" for t in s["data"])]
    assert len(geo) == 1, "the world map is missing"
    mapped = {r for t in geo[0]["data"] for r in t.get("text", [])}
    assert mapped == set(REGIONS)
    assert len(specs) == 4  # map + requests/min, error ratio, p99
    table = at.dataframe[0].value
    assert sorted(table["Region"]) == sorted(REGIONS)
    assert table["Requests"].sum() == pytest.approx(expected)


def test_cost_and_error_ratio_match_the_store(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _app(monkeypatch, store_dir)
    start, end = _window(store_dir)
    store = Store(store_dir)
    params = {"start": start, "end": end}
    assert _metric(at, "Cost") == _usd(_cost(store, start, end))
    sums = store.query(
        "SELECT sum(value) FILTER (WHERE signal = 'errors') AS e, "
        "sum(value) FILTER (WHERE signal = 'requests') AS r FROM counters "
        "WHERE ts_utc > $start AND ts_utc <= $end",
        params,
    )
    ratio = float(sums["e"].iloc[0]) / float(sums["r"].iloc[0])
    assert _metric(at, "Error ratio") == f"{100 * ratio:.2f} %"


def test_filtering_to_one_region_shows_that_regions_total(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _app(monkeypatch, store_dir)
    everything = _count(_metric(at, "Requests"))
    at.multiselect(key="regions").set_value(["eu-west-1"]).run()
    assert not at.exception
    start, end = _window(store_dir)
    expected = _requests(store_dir, start, end, ["eu-west-1"])
    shown = _count(_metric(at, "Requests"))
    assert shown == expected
    assert 0 < shown < everything
    assert at.dataframe[0].value["Region"].tolist() == ["eu-west-1"]


@pytest.mark.parametrize(
    ("label", "hours"),
    [("Last 1 h", 1), ("Last 6 h", 6), ("Last 24 h", 24), ("Last 7 d", 168), ("Last 14 d", 336)],
)
def test_every_time_range_renders_with_its_total(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, label: str, hours: int
) -> None:
    # 7 d and 14 d use 1-hour buckets (on a 1-day store): every bucket width runs its SQL.
    at = _app(monkeypatch, store_dir)
    at.selectbox(key="range").set_value(label).run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    start, end = _window(store_dir, hours=hours)
    assert _count(_metric(at, "Requests")) == _requests(store_dir, start, end, REGIONS)
    assert len(at.get("plotly_chart")) == 4


def test_a_filter_that_selects_nothing_says_so(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _app(monkeypatch, store_dir)
    at.multiselect(key="models").set_value([]).run()
    assert not at.exception
    assert "select nothing" in _texts(at)
    assert not at.metric


def test_missing_store_gives_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    at = _app(monkeypatch, missing)
    assert not at.exception
    text = _texts(at)
    assert "No store at" in text and "nowhere" in text
    assert "observatory demo" in text and "observatory collect --config" in text
    assert not at.metric


def test_empty_store_folder_gives_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    at = _app(monkeypatch, empty)
    assert not at.exception
    assert "holds no data yet" in _texts(at)
    assert not at.metric


def test_catalogue_region_without_data_is_no_data_on_the_map(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    shutil.copytree(store_dir, root)
    store = Store(root)
    catalogue = store.query("SELECT * FROM regions")
    extra = pd.DataFrame(
        [
            {
                "region": "sa-east-1",
                "display_name": "<b>São Paulo</b>",
                "latitude": -23.55,
                "longitude": -46.63,
                "url": "http://example.invalid",
            }
        ]
    )
    store.write_regions(pd.concat([catalogue, extra], ignore_index=True))
    at = _app(monkeypatch, root)
    assert not at.exception
    table = at.dataframe[0].value.set_index("Region")
    assert table.loc["sa-east-1", "Health"] == "no data"
    assert table.loc["sa-east-1", "Requests"] == 0
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    by_level = {t["name"]: t for t in spec["data"]}
    assert "sa-east-1" in by_level["no data"]["text"]
    hover = json.dumps(by_level["no data"]["customdata"])
    assert "<b>" not in hover and "&lt;b&gt;" in hover  # label values are escaped, not HTML


def _health_config(tmp_path: Path, max_error_ratio: float, max_p99_seconds: float) -> Path:
    config = tmp_path / "observatory.yaml"
    config.write_text(
        f"health:\n  max_error_ratio: {max_error_ratio!r}\n  max_p99_seconds: {max_p99_seconds}\n"
        "regions:\n  - name: us-east-1\n    url: http://127.0.0.1:9090\n"
        "    latitude: 38.95\n    longitude: -77.45\n",
        encoding="utf-8",
    )
    return config


def _error_ratios(store: Path, start: datetime, end: datetime) -> dict[str, float]:
    frame = Store(store).query(
        "SELECT region, sum(value) FILTER (WHERE signal = 'errors') "
        "/ sum(value) FILTER (WHERE signal = 'requests') AS ratio FROM counters "
        "WHERE ts_utc > $start AND ts_utc <= $end GROUP BY region",
        {"start": start, "end": end},
    )
    return dict(zip(frame["region"], frame["ratio"].astype(float), strict=True))


def _limit_lines(at: AppTest) -> dict[str, list[float]]:
    """The dashed limit lines of each trend chart, by chart title."""
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {}).get("text")
        if title:
            out[title] = [s["y0"] for s in spec["layout"].get("shapes", [])]
    return out


def test_thresholds_come_from_the_configuration_file(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    """The configuration's ``health`` thresholds: they colour the map and the table when
    no SLO specs exist, and draw the limit lines of the trends either way; with SLO
    specs split by region (the examples) the Health column is each region's SLO state."""
    start, end = _window(store_dir)
    ratios = _error_ratios(store_dir, start, end)
    assert len(set(ratios.values())) > 1, ratios  # the regions differ, so a limit splits them
    # A limit between the best and the worst region: the worst is critical, the rest are
    # judged by the same rule (p99's limit is far above any latency of the demo).
    limit = (min(ratios.values()) + max(ratios.values())) / 2
    expected = {
        r: "critical" if v > limit else "warning" if v > 0.8 * limit else "ok"
        for r, v in ratios.items()
    }
    assert "critical" in expected.values() and set(expected.values()) != {"critical"}
    monkeypatch.setenv("OBSERVATORY_CONFIG", str(_health_config(tmp_path, limit, 1000)))
    no_specs = tmp_path / "no-specs"
    no_specs.mkdir()
    monkeypatch.setenv("OBSERVATORY_SLO_SPECS", str(no_specs))
    at = _app(monkeypatch, store_dir)
    assert not at.exception
    table = at.dataframe[0].value
    assert dict(zip(table["Region"], table["Health"], strict=True)) == expected
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    hover = {
        region: custom[2]
        for trace in spec["data"]
        for region, custom in zip(trace["text"], trace["customdata"], strict=True)
    }
    assert hover == {r: f"Health: {h}" for r, h in expected.items()}
    lines = _limit_lines(at)
    assert lines["Error ratio"] == [pytest.approx(limit)] and lines["p99 latency"] == [1000]
    # A stricter file turns every region critical: the thresholds are read, not defaults.
    monkeypatch.setenv("OBSERVATORY_CONFIG", str(_health_config(tmp_path, 0.00001, 1000)))
    at = _app(monkeypatch, store_dir)
    assert set(at.dataframe[0].value["Health"]) == {"critical"}

    # With the example SLO specs the Health column is the SLO state of each region, as
    # the SLO engine computes it; the configuration's limits still draw the limit lines.
    monkeypatch.delenv("OBSERVATORY_SLO_SPECS")
    at = _app(monkeypatch, store_dir)
    assert not at.exception
    slos = load_specs([Path(MAIN).parent.parent / "examples" / "slo"])
    states = region_states(status_table(SloEngine(Store(store_dir)), slos), slos)
    labels = {"page": "page", "exhausted": "budget exhausted", "ticket": "ticket", "ok": "ok"}
    table = at.dataframe[0].value
    assert dict(zip(table["Region"], table["Health"], strict=True)) == {
        r.region: labels.get(r.state, "no data") for r in states.itertuples()
    }
    lines = _limit_lines(at)
    assert lines["Error ratio"] == [pytest.approx(0.00001)] and lines["p99 latency"] == [1000]


def test_collection_health_page_empty_and_with_runs(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    at = _app(monkeypatch, store_dir)
    at.switch_page("views/collection_health.py").run()
    assert not at.exception
    assert "No collection runs recorded yet" in _texts(at)

    root = tmp_path / "store"
    shutil.copytree(store_dir, root)
    store = Store(root)
    for region, status, error in [
        ("us-east-1", "ok", None),
        ("eu-west-1", "failed", "connection refused"),
    ]:
        store.append_run_log(
            {
                "started_utc": "2026-11-30T00:01:00",
                "finished_utc": "2026-11-30T00:01:05",
                "region": region,
                "status": status,
                "window_start_utc": "2026-11-29T23:00:00",
                "window_end_utc": "2026-11-30T00:00:00",
                "rows": 10,
                "error": error,
            }
        )
    at = _app(monkeypatch, root)
    at.switch_page("views/collection_health.py").run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("Region")
    assert table.loc["eu-west-1", "Status"] == "failed"
    assert table.loc["eu-west-1", "Error"] == "connection refused"
    assert table.loc["ap-south-1", "Status"] == "never collected"
    assert "failed" in _texts(at)


# ---------------------------------------------------------------- one coherent app


def test_navigation_lists_every_page_in_the_issue_order() -> None:
    text = Path(MAIN).read_text(encoding="utf-8")
    titles = [t for _f, t, _i in _pages(text)]
    assert titles == [
        "Overview", "SLOs", "Latency", "GPUs & Energy", "Cost & Carbon", "Regressions",
        "Experiments", "Drift", "Reports", "SQL", "Collection health",
    ]  # fmt: skip
    views = Path(MAIN).parent / "views"
    for file, _t, _i in _pages(text):
        assert (views / file).exists(), file


def _pages(text: str) -> list[tuple[str, str, str]]:
    import ast

    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "PAGES":
            return ast.literal_eval(node.value)
    raise AssertionError("no PAGES in app/main.py")


def test_filters_live_in_the_url_and_a_link_restores_them(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    # A new session opened from a link with filters shows that view (AppTest does not
    # write the URL back; the browser tests check that the widgets update the URL).
    monkeypatch.setenv("OBSERVATORY_STORE", str(store_dir))
    linked = AppTest.from_file(MAIN, default_timeout=60)
    linked.query_params["regions"] = ["eu-west-1"]
    linked.query_params["range"] = "Last 6 h"
    linked.run()
    assert not linked.exception
    assert linked.multiselect(key="regions").value == ["eu-west-1"]
    start, end = _window(store_dir, hours=6)
    assert _count(_metric(linked, "Requests")) == _requests(store_dir, start, end, ["eu-west-1"])
    # A link to the Cost & Carbon page with an arm: the arm filter reaches its queries.
    linked = AppTest.from_file(MAIN, default_timeout=60)
    linked.query_params["regions"] = ["eu-west-1"]
    linked.query_params["range"] = "Last 6 h"
    linked.query_params["arms"] = ["v2"]
    linked.switch_page("views/cost_carbon.py").run()
    assert not linked.exception
    assert linked.multiselect(key="arms").value == ["v2"]
    v2 = (
        Store(store_dir)
        .query(
            "SELECT sum(value) AS n FROM counters WHERE signal = 'requests' AND arm = 'v2' "
            "AND region = 'eu-west-1' AND ts_utc > $s AND ts_utc <= $e",
            {"s": start, "e": end},
        )["n"]
        .iloc[0]
    )
    assert linked.dataframe[0].value["Requests"].sum() == pytest.approx(v2)


def test_a_link_with_values_the_store_lacks_says_what_it_left_out(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    # An old or mistyped link: the known region is kept, the unknown values are named
    # in a sidebar notice (as text: the markup in one of them is escaped, not rendered).
    monkeypatch.setenv("OBSERVATORY_STORE", str(store_dir))
    linked = AppTest.from_file(MAIN, default_timeout=60)
    linked.query_params["regions"] = ["eu-west-1", "<b>mars-1</b>"]
    linked.query_params["models"] = ["no-such-model"]
    linked.query_params["range"] = "Last 5 y"
    linked.run()
    assert not linked.exception
    assert linked.multiselect(key="regions").value == ["eu-west-1"]
    assert linked.selectbox(key="range").value == "Last 24 h"
    [notice] = [w.value for w in linked.sidebar.warning]
    from app.ui import md

    assert "time range “Last 5 y”" in notice
    assert f"region “{md('<b>mars-1</b>')}”" in notice and "\\<b\\>" in notice
    assert f"model “{md('no-such-model')}”" in notice
    assert "eu-west-1" not in notice
    # A link naming only what the store has gets no notice.
    clean = AppTest.from_file(MAIN, default_timeout=60)
    clean.query_params["regions"] = ["eu-west-1"]
    clean.run()
    assert not clean.sidebar.warning


def _numbers(values: object) -> np.ndarray:
    """A Plotly JSON array as floats: a list, or a typed array (``{"dtype", "bdata"}``)."""
    if isinstance(values, dict):
        raw = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return raw.astype(float)
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def test_the_arm_filter_reaches_every_overview_query(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _app(monkeypatch, store_dir)
    everything = _count(_metric(at, "Requests"))
    at.multiselect(key="arms").set_value(["v2"]).run()
    assert not at.exception
    start, end = _window(store_dir)
    store = Store(store_dir)
    params = {"start": start, "end": end}
    v2 = store.query(
        "SELECT region, sum(value) FILTER (WHERE signal = 'requests') AS requests, "
        "sum(value) FILTER (WHERE signal = 'errors') AS errors FROM counters "
        "WHERE arm = 'v2' AND ts_utc > $start AND ts_utc <= $end GROUP BY region",
        params,
    )
    requests = round(float(v2["requests"].sum()))
    assert 0 < requests < everything
    assert _count(_metric(at, "Requests")) == requests
    ratio = float(v2["errors"].sum()) / float(v2["requests"].sum())
    assert _metric(at, "Error ratio") == f"{100 * ratio:.2f} %"
    assert _metric(at, "Cost") == _usd(_cost(store, start, end, "v2"))
    table = at.dataframe[0].value.set_index("Region")
    for row in v2.itertuples():
        assert table.loc[row.region, "Requests"] == pytest.approx(row.requests)
    # The trends add up the same rows: requests per minute times the bucket's minutes.
    spec = next(
        json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
        if "Requests per minute" in c.proto.spec
    )
    per_min = sum(float(np.nansum(_numbers(trace["y"]))) for trace in spec["data"])
    assert per_min * 5 == pytest.approx(requests)  # 24 h: 5-minute buckets


def test_rows_without_an_arm_label_stay_under_the_arm_filter(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    """GPU and cost gauges that carry no arm label (as DCGM and node exporters send them)
    while every request has one: the arm filter cannot deselect them, so they count."""
    root = tmp_path / "store"
    shutil.copytree(store_dir, root)
    store = Store(root)
    signals = ["cost", "gpu_utilization"]
    frame = store.query(
        "SELECT * FROM gauges WHERE region = 'us-east-1' AND list_contains($s, signal)",
        {"s": signals},
    )
    frame["arm"] = None
    lo = pd.Timestamp(frame["ts_utc"].min()) - pd.Timedelta(minutes=1)
    hi = pd.Timestamp(frame["ts_utc"].max())
    store.replace_window("gauges", "us-east-1", signals, lo, hi, frame.drop(columns=["region"]))
    store.touch_version()
    at = _app(monkeypatch, root)
    at.multiselect(key="arms").set_value(["v2"]).run()
    assert not at.exception
    start, end = _window(root)
    cost = store.query(
        "SELECT sum(mean * step_s / 3600) AS usd FROM gauges WHERE signal = 'cost' "
        "AND (arm = 'v2' OR arm IS NULL) AND ts_utc > $start AND ts_utc <= $end",
        {"start": start, "end": end},
    )["usd"].iloc[0]
    assert float(cost) > _cost(store, start, end, "v2") > 0  # the unlabelled rows count
    assert _metric(at, "Cost") == _usd(float(cost))
    table = at.dataframe[0].value.set_index("Region")
    assert table.loc["us-east-1", "GPU util. (%)"] > 0


def test_custom_date_range(monkeypatch: pytest.MonkeyPatch, store_dir: Path) -> None:
    at = _app(monkeypatch, store_dir)
    at.selectbox(key="range").set_value("Custom dates").run()
    assert not at.exception
    day = datetime(2026, 11, 29)
    at.date_input(key="dates").set_value((day.date(), day.date())).run()
    assert not at.exception
    start, end = day, day + timedelta(days=1)
    assert _count(_metric(at, "Requests")) == _requests(store_dir, start, end, REGIONS)


def test_a_link_with_custom_dates_restores_them(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    # The date picker is bound to the URL as a repeated parameter (dates=D1&dates=D2).
    monkeypatch.setenv("OBSERVATORY_STORE", str(store_dir))
    linked = AppTest.from_file(MAIN, default_timeout=60)
    linked.query_params["range"] = "Custom dates"
    linked.query_params["dates"] = ["2026-11-29", "2026-11-29"]
    linked.run()
    assert not linked.exception
    # The picker's default is (2026-11-29, 2026-11-30); the link's one-day range shows.
    assert linked.date_input(key="dates").value == (date(2026, 11, 29),)
    start, end = datetime(2026, 11, 29), datetime(2026, 11, 30)
    assert _count(_metric(linked, "Requests")) == _requests(store_dir, start, end, REGIONS)


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        ({}, "has no [auth] section"),
        ({"auth": {"redirect_uri": "http://x/oauth2callback"}}, "lacks 'cookie_secret'"),
        (
            {"auth": {"redirect_uri": "http://x/oauth2callback", "cookie_secret": "s",
                      "client_id": "id", "client_secret": "cs"}},
            "lacks 'server_metadata_url'",
        ),
    ],
)  # fmt: skip
def test_login_switched_on_without_secrets_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, secrets: dict[str, object], expected: str
) -> None:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store_dir))
    monkeypatch.setenv("OBSERVATORY_LOGIN", "on")
    at = AppTest.from_file(MAIN, default_timeout=60)
    for key, value in secrets.items():
        at.secrets[key] = value
    at.run()
    assert not at.exception
    text = _texts(at)
    assert "Login is switched on but not configured" in text
    assert expected in text and ".streamlit/secrets.toml" in text
    assert not at.metric  # no page ran


def test_login_names_a_missing_provider_section(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store_dir))
    monkeypatch.setenv("OBSERVATORY_LOGIN", "google")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://x/oauth2callback", "cookie_secret": "s"}
    at.run()
    assert "has no [auth.google] section" in _texts(at)


def test_reports_page_lists_both_archives(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    drift = tmp_path / "drift"
    drift.mkdir()
    (drift / "drift-2026-11-30T0000Z-24h.json").write_text(
        json.dumps({"verdict": "warning", "summary": "<script>alert(1)</script>"}),
        encoding="utf-8",
    )
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "llama-v2.md").write_text("# Experiment <b>llama</b>\n", encoding="utf-8")
    (experiments / "notes.txt").write_text("not a report", encoding="utf-8")
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(drift))
    monkeypatch.setenv("OBSERVATORY_EXPERIMENT_REPORTS", str(experiments))
    at = _app(monkeypatch, store_dir)
    at.switch_page("views/reports.py").run()
    assert not at.exception and not at.error
    listed = at.dataframe[0].value
    assert listed["Verdict"].tolist() == ["warning"]
    assert listed["Summary"].tolist() == ["<script>alert(1)</script>"]  # a cell, as text
    assert at.dataframe[1].value["File"].tolist() == ["llama-v2.md"]
    assert [c.value.strip() for c in at.code] == ["# Experiment <b>llama</b>"]
    assert len(at.get("download_button")) == 2
    for element in at.markdown:
        assert not element.proto.allow_html


def test_reports_page_says_how_to_write_reports(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(tmp_path / "none"))
    monkeypatch.setenv("OBSERVATORY_EXPERIMENT_REPORTS", str(tmp_path / "none"))
    at = _app(monkeypatch, store_dir)
    at.switch_page("views/reports.py").run()
    text = _texts(at)
    assert "observatory report drift --out" in text
    assert "observatory experiment report NAME" in text

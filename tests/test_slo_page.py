"""The SLOs page, run headless with streamlit.testing.v1.AppTest on a small demo store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.ui import HEALTH_COLORS
from observatory.demo import build_store
from observatory.slo_engine import (
    SloEngine,
    alert_timeline,
    firing_severities,
    headline_counts,
    region_states,
    status_table,
)
from observatory.slo_specs import SloDefinition, load_specs
from observatory.store import Store

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "main.py")
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


def _specs() -> dict[str, SloDefinition]:
    return {d.name: d for d in load_specs([ROOT / "examples" / "slo"])}


def _listing(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def test_slo_list_detail_and_filters(monkeypatch: pytest.MonkeyPatch, store_dir: Path) -> None:
    at = _page(monkeypatch, store_dir)
    assert at.title[0].value == "SLOs"
    assert _metric(at, "SLOs") == "9"
    assert _metric(at, "No data") == "0"  # the demo simulates every example's series (TTFT too)
    listing = _listing(at)
    assert len(listing) == 9 and set(listing["group"]) == {"global"}
    remaining = listing["remaining"].dropna().tolist()
    assert remaining == sorted(remaining)  # least budget first
    captions = " ".join(c.value for c in at.caption)
    assert "evaluated at the end of the time range" in captions
    # Detail of the availability SLO (chosen in the sidebar, kept in the URL as ?slo=):
    # burn-down, burn rates, timeline, breakdown.
    at.selectbox(key="slo").set_value("availability").run()
    assert not at.exception
    assert _metric(at, "State") in {"ok", "ticket", "page", "budget exhausted"}
    assert len(at.get("plotly_chart")) >= 2
    breakdown = at.dataframe[-1].value
    assert "global" in set(breakdown["group"]) and "eu-central-1 / mistral-7b" in set(
        breakdown["group"]
    )
    # Picking a group and a shorter time range.
    at.selectbox(key="slo_group").set_value("ap-south-1 / mistral-7b").run()
    at.selectbox(key="range").set_value("Last 6 h").run()
    assert not at.exception
    assert at.selectbox(key="slo_group").value == "ap-south-1 / mistral-7b"

    # The shared region filter: SLOs split by region (every example) list the groups of
    # ap-south-1 only; their global roll-up adds eu-central-1's events, so it goes.
    at.multiselect(key="regions").set_value(["ap-south-1"]).run()
    assert not at.exception
    specs = _specs()
    listing = _listing(at)
    assert all("region" in d.group_by for d in specs.values())
    assert set(listing["name"]) == set(specs)
    assert all(g.startswith("ap-south-1") for g in listing["group"]), set(listing["group"])
    breakdown = at.dataframe[-1].value  # availability is split by region and model
    assert len(breakdown) > 0
    assert all(g.startswith("ap-south-1 / ") for g in breakdown["group"])


def test_a_link_opens_the_slo_with_the_filters(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    """``?slo=`` and the shared filters in a link: the same SLO, groups and counts."""
    monkeypatch.setenv("OBSERVATORY_STORE", str(store_dir))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    monkeypatch.delenv("OBSERVATORY_SLO_SPECS", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params["slo"] = "p99-latency"
    at.query_params["models"] = ["mistral-7b"]
    at.switch_page("views/slos.py").run()  # the link opens the SLOs page
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="slo").value == "p99-latency"
    assert at.multiselect(key="models").value == ["mistral-7b"]
    # Without specs of their own, the page says it judges the built-in examples.
    assert any(
        "built-in examples" in c.value and "--slo-specs" in c.value for c in at.caption
    ), [c.value for c in at.caption]
    # p99-latency is split by region and model: the breakdown holds its mistral-7b groups,
    # one per region, each the engine's own row.
    slos = load_specs([ROOT / "examples" / "slo"])
    table = status_table(SloEngine(Store(store_dir)), slos)
    expected = table[(table["slo"] == "p99-latency") & (table["model"] == "mistral-7b")]
    breakdown = at.dataframe[-1].value
    assert sorted(breakdown["group"]) == sorted(f"{r} / mistral-7b" for r in expected["region"])
    assert sorted(breakdown["total"]) == pytest.approx(sorted(expected["total"]))
    # Counts over the selection: an SLO counts when a selected group (or an SLO not split
    # by model) fires.
    selected = table[(table["model"] == "mistral-7b") | (table["model"] == "*")]
    split = set(table.loc[table["model"] != "*", "slo"])
    selected = selected[~(selected["slo"].isin(split) & (selected["region"] == "*")
                          & (selected["model"] == "*") & (selected["arm"] == "*"))]  # fmt: skip
    counts = headline_counts(selected, slos)
    assert _metric(at, "Paging") == str(counts["page"])
    assert _metric(at, "Ticket") == str(counts["ticket"])
    assert _metric(at, "SLOs") == str(selected["slo"].nunique())


def test_spec_errors_are_shown(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: prometheus/v1\nservice: x\nslos:\n  - name: a\n    objective: 0\n")
    at = _page(monkeypatch, store_dir, bad)
    assert at.error and "mistake" in at.error[0].value
    assert "slos[0].objective: expected a number in (0, 100]" in at.code[0].value


# --------------------------------------------------------------------------- during an incident
# Half a day of ap-south-1 and us-east-1 that ends 75 minutes into ap-south-1's mistral-7b
# error burst (8 % errors from 09:00 to 10:30; collectors/demo_fleet.py incidents_for):
# the 1h window lies inside the burst, so the page-1h tier (burn > 14.4 over 1h and 5m
# against the 99.5 % target) fires.
INCIDENT_END = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def incident_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slo-incident") / "demo"
    build_store(root, days=0.5, regions=["ap-south-1", "us-east-1"], end=INCIDENT_END)
    truth = json.loads((root / "ground_truth.json").read_text())
    (burst,) = [i for i in truth["incidents"] if i["kind"] == "error_burst"]
    assert burst["start"].startswith("2026-03-01T09:00")  # the store ends inside it
    return root


def _open_episodes(store: Path) -> tuple[pd.DataFrame, set[tuple[str, str, str, str, str]]]:
    """Status now, and the (slo, region, model, arm, severity) of every alert-timeline
    episode still open at the last evaluation (1-minute evaluations, like Prometheus)."""
    slos = load_specs([ROOT / "examples" / "slo"])
    engine = SloEngine(Store(store))
    table = status_table(engine, slos)
    open_ = set()
    for slo in slos:
        end = engine.latest(slo)
        if end is None:
            continue
        hist = engine.history(slo, start=end - timedelta(hours=6), end=end)
        tl = alert_timeline(slo, hist)
        for e in tl[tl["recovered"].isna()].itertuples():
            open_.add((slo.name, e.region, e.model, e.arm, e.severity))
    return table, open_


def test_counts_agree_with_the_alert_timeline(incident_store: Path) -> None:
    """Paging/Ticket count SLOs with a tier firing in any group, as the timeline's
    open episodes show them (the global roll-up alone hid ap-south-1's page)."""
    slos = load_specs([ROOT / "examples" / "slo"])
    table, open_ = _open_episodes(incident_store)
    firing = firing_severities(table, slos)
    now = {
        (r.slo, r.region, r.model, r.arm, sev)
        for r, sevs in zip(table.itertuples(), firing, strict=True)
        for sev in sevs
    }
    assert now == open_
    assert ("availability", "ap-south-1", "mistral-7b", "*", "page") in now
    counts = headline_counts(table, slos)
    paging = {s for s, *_, sev in open_ if sev == "page"}
    ticket = {s for s, *_, sev in open_ if sev == "ticket"} - paging
    assert counts["page"] == len(paging) >= 1 and counts["ticket"] == len(ticket)
    # The global roll-up of availability does not page: that was the inconsistency.
    glob = table[(table["slo"] == "availability") & (table["region"] == "*")]
    assert "page" not in firing[glob.index[0]]


def test_slo_page_counts_and_overview_map_use_slo_state(
    monkeypatch: pytest.MonkeyPatch, incident_store: Path
) -> None:
    slos = load_specs([ROOT / "examples" / "slo"])
    table, open_ = _open_episodes(incident_store)
    at = _page(monkeypatch, incident_store)
    assert _metric(at, "Paging") == str(len({s for s, *_, sev in open_ if sev == "page"}))
    states = region_states(table, slos).set_index("region")["state"]
    assert states["ap-south-1"] == "page" and states["us-east-1"] == "ok"
    # The overview's map: ap-south-1 red (page), us-east-1 green (ok), with the legend.
    at.switch_page("views/overview.py").run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    (fig,) = [f for f in specs if any(t.get("type") == "scattergeo" for t in f["data"])]
    colour = {
        region: trace["marker"]["color"]
        for trace in fig["data"]
        for region in trace.get("text", [])
    }
    assert colour == {"ap-south-1": HEALTH_COLORS["critical"], "us-east-1": HEALTH_COLORS["ok"]}
    # The hover says the SLO state of the legend (not a health level) and the counts.
    hover = {
        region: custom[2]
        for trace in fig["data"]
        for region, custom in zip(trace["text"], trace["customdata"], strict=True)
    }
    counted = region_states(table, slos).set_index("region")["slos"]
    assert hover["ap-south-1"] == (
        "SLO state: page (availability (mistral-7b))"
        f"<br>SLOs split by region here: {counted['ap-south-1']}"
    )
    assert hover["us-east-1"] == (
        f"SLO state: ok<br>SLOs split by region here: {counted['us-east-1']}"
    )
    assert counted["ap-south-1"] == len([s for s in slos if "region" in s.group_by])
    legend = " ".join(m.value for m in at.markdown)
    assert "page or budget exhausted" in legend and "ticket" in legend
    health = dict(
        zip(at.dataframe[0].value["Region"], at.dataframe[0].value["Health"], strict=True)
    )
    assert health == {"ap-south-1": "page", "us-east-1": "ok"}
    worst = dict(
        zip(
            at.dataframe[0].value["Region"],
            at.dataframe[0].value["SLOs in that state"],
            strict=True,
        )
    )
    assert worst["ap-south-1"] == "availability (mistral-7b)"


def test_overview_map_without_slo_specs_falls_back_to_health(
    monkeypatch: pytest.MonkeyPatch, incident_store: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-specs"
    empty.mkdir()
    at = _page(monkeypatch, incident_store, empty)
    at.switch_page("views/overview.py").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "No SLO specs are configured" in captions and "Health in the window" in captions
    spec = next(
        json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
        if "scattergeo" in {t.get("type") for t in json.loads(c.proto.spec)["data"]}
    )
    states = {c[2] for t in spec["data"] for c in t["customdata"]}
    assert states and all(s.startswith("Health: ") for s in states), states


def test_custom_dates_evaluate_the_slos_at_the_end_of_the_range(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A preset is evaluated now (the latest data); custom dates at the last day's end."""
    root = tmp_path / "demo"
    build_store(root, days=1.5, regions=["eu-central-1"], end=END)
    slos = load_specs([ROOT / "examples" / "slo"])
    engine = SloEngine(Store(root))
    day_end = datetime(2026, 2, 28)  # the store runs from 02-27 12:00 to 03-01 00:00
    at = _page(monkeypatch, root)
    now = status_table(engine, slos).set_index(["slo", "region", "model", "arm"])
    listing = _listing(at).set_index("name")
    glob = now.xs(("*", "*", "*"), level=["region", "model", "arm"])
    assert listing["remaining"].to_dict() == pytest.approx(glob["remaining"].to_dict())
    at.selectbox(key="range").set_value("Custom dates").run()
    at.date_input(key="dates").set_value((day_end.date() - timedelta(days=1),) * 2).run()
    assert not at.exception, [e.value for e in at.exception]
    then = status_table(engine, slos, at=day_end).set_index(["slo", "region", "model", "arm"])
    glob_then = then.xs(("*", "*", "*"), level=["region", "model", "arm"])
    listing = _listing(at).set_index("name")
    assert listing["remaining"].to_dict() == pytest.approx(glob_then["remaining"].to_dict())
    assert glob_then["remaining"].to_dict() != pytest.approx(glob["remaining"].to_dict())


def test_a_precomputed_status_behind_the_data_is_shown_with_its_time(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, tmp_path: Path
) -> None:
    """The status the precompute job kept 3 minutes of data ago (built with the engine:
    the status at ``latest - 3 min``, kept under an older data version) is listed, with
    a caption saying how far behind it is, while within ``OBSERVATORY_SLO_MAX_AGE``;
    with a tighter limit the page computes the status now."""
    import shutil

    from observatory import slo_precomputed as pre

    store = tmp_path / "store"
    shutil.copytree(store_dir, store, copy_function=shutil.copy2)
    slos = list(_specs().values())
    engine = SloEngine(Store(store))
    then = max(t for t in (engine.latest(s) for s in slos) if t is not None) - timedelta(minutes=3)
    older = status_table(engine, slos, then)
    kept = pre.Kept(
        older,
        Store(store).data_version() - 1,
        datetime(2026, 3, 1, 0, 2),
        {s.name: then for s in slos},
    )
    assert pre.save(pre.status_path(engine, slos), kept) is None
    monkeypatch.setenv("OBSERVATORY_SLO_MAX_AGE", "4")
    at = _page(monkeypatch, store)
    captions = " ".join(c.value for c in at.caption).replace("\\", "")  # markdown escapes
    assert "SLO status precomputed at 2026-03-01 00:02 UTC, up to 3 min behind" in captions
    listing = _listing(at).set_index("name")
    want = older[older["region"] == "*"].set_index("slo")
    assert listing.loc[want.index, "remaining"].tolist() == pytest.approx(
        want["remaining"].tolist(), nan_ok=True
    )
    monkeypatch.setenv("OBSERVATORY_SLO_MAX_AGE", "2")
    at = _page(monkeypatch, store)
    assert "precomputed at" not in " ".join(c.value for c in at.caption)
    now = status_table(SloEngine(Store(store), cache=False), slos)
    listing = _listing(at).set_index("name")
    want = now[now["region"] == "*"].set_index("slo")
    assert listing.loc[want.index, "remaining"].tolist() == pytest.approx(
        want["remaining"].tolist(), rel=1e-9, nan_ok=True
    )

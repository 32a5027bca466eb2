"""The Drift page, run headless with streamlit.testing.v1.AppTest on the 14-day demo store."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from drift_support import END, drift_store, finish_on_demand, reset_on_demand
from streamlit.testing.v1 import AppTest

from observatory.cli import main
from observatory.drift_engine import Reference, compute_drift
from observatory.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drift_store(tmp_path_factory)


@pytest.fixture
def archive(store: Path, tmp_path: Path) -> Path:
    out = tmp_path / "reports"
    args = ["report", "drift", "--store", str(store), "--out", str(out), "--region", "sa-east-1"]
    args += ["--signal", "accuracy", "--format", "md", "--format", "json"]
    assert CliRunner().invoke(main, args).exit_code == 0
    return out


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption]
    parts += (
        [e.value for e in at.error] + [e.value for e in at.warning] + [e.value for e in at.info]
    )
    return "\n".join(str(p) for p in parts)


def _after_on_demand(monkeypatch: pytest.MonkeyPatch, store: Path, reports: Path) -> AppTest:
    """The Drift page on ``store`` (archive ``reports``) once its on-demand run ended."""
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(reports))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    reset_on_demand()
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("views/drift.py").run()
    finish_on_demand()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_drift_page_heatmap_drilldown_and_archive(
    store: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The archive's report answers another question (one region, one signal): drift is
    # computed on demand in the background, then picked up.
    at = _after_on_demand(monkeypatch, store, archive)
    assert at.title[0].value == "Drift"
    text = _texts(at)
    assert "CRITICAL" in text and "drift detected in 4 of" in text
    assert "log base 2" in text
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # heatmap, overlaid distributions, drift over time
    heatmap = json.loads(charts[0].proto.spec)
    assert heatmap["data"][0]["type"] == "heatmap"
    assert set(heatmap["data"][0]["x"]) == {"sa-east-1", "us-east-1", "us-west-2"}
    assert "accuracy (late labels)" in heatmap["data"][0]["y"]
    assert "ttft" in heatmap["data"][0]["y"]
    # The drill-down opens on the worst drifted slice.
    drill = at.selectbox(key="drift_slice")
    assert drill.value == "accuracy/us-west-2/qwen2.5-32b/v1"
    dist = json.loads(charts[1].proto.spec)
    assert [t["name"] for t in dist["data"]] == ["reference", "current window"]
    # Over time: the metric that fired first (PSI), then the operator's choice.
    over = json.loads(charts[2].proto.spec)
    assert over["layout"]["yaxis"]["title"]["text"].startswith("PSI")
    pick = at.selectbox(key="drift-time-metric-accuracy/us-west-2/qwen2.5-32b/v1")
    pick.set_value("KS statistic (lower bound on buckets)").run()
    assert not at.exception
    over = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert over["layout"]["yaxis"]["title"]["text"] == "KS statistic"
    # Late labels: accuracy per label-arrival window with its Wilson interval.
    at.selectbox(key="drift_slice").set_value("accuracy_late_labels/us-west-2/qwen2.5-32b/v1").run()
    assert not at.exception
    over = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert [t["name"] for t in over["data"]] == ["95% Wilson interval", "accuracy"]
    drill = at.selectbox(key="drift_slice")
    drill.set_value("prompt_length/us-west-2/qwen2.5-32b/v1").run()
    assert not at.exception
    # Another heatmap metric.
    at.selectbox(key="drift_metric").set_value("Jensen-Shannon distance (log base 2)").run()
    assert not at.exception
    # The archive lists the reports and opens one.
    names = at.selectbox(key="drift_report").options
    assert names == ["drift-2026-11-30T0000Z-24h.md", "drift-2026-11-30T0000Z-24h.json"]
    at.selectbox(key="drift_report").set_value("drift-2026-11-30T0000Z-24h.md").run()
    assert not at.exception
    assert any("# Drift report: 2026-11-29 00:00" in c.value for c in at.code)


def _summary(at: AppTest) -> list[tuple[str, str, str, str, str]]:
    """The "All slices" table: (signal, region, model, arm, verdict) per slice."""
    table = next(d.value for d in at.dataframe if "reference" in d.value.columns)
    cols = ["signal", "region", "model", "arm", "verdict"]
    return [tuple(str(v) for v in row) for row in table[cols].to_numpy()]  # type: ignore[misc]


def test_drift_page_link_restores_the_view_and_the_filters_narrow_it(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(tmp_path / "no-reports"))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=300)
    # A link: one region, a 7-day window, the JS heatmap, one drilled-down slice.
    at.query_params["regions"] = ["us-west-2"]
    at.query_params["drift_window"] = "7 days"
    at.query_params["drift_metric"] = "Jensen-Shannon distance (log base 2)"
    at.query_params["drift_slice"] = "ttft/us-west-2/qwen2.5-32b/v1"
    reset_on_demand()
    at.switch_page("views/drift.py").run()
    finish_on_demand()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="regions").value == ["us-west-2"]
    assert at.selectbox(key="drift_window").value == "7 days"
    assert at.selectbox(key="drift_metric").value == "Jensen-Shannon distance (log base 2)"
    assert at.selectbox(key="drift_slice").value == "ttft/us-west-2/qwen2.5-32b/v1"
    # The page equals drift computed for that region alone, independently of the page
    # (the window ends at the end of the time range: the latest data, END).
    expected = compute_drift(
        Store(store),
        window=timedelta(days=7),
        reference=Reference.parse("7d"),
        end=END,
        regions=["us-west-2"],
    )
    assert expected.slices and {s.region for s in expected.slices} == {"us-west-2"}
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert heatmap["x"] == ["us-west-2"]
    assert heatmap["y"] == list(dict.fromkeys(s.title for s in expected.slices))
    assert heatmap["colorbar"]["title"]["text"] == "Jensen-Shannon distance (log base 2)"
    assert _summary(at) == [(s.title, s.region, s.model, s.arm, s.verdict) for s in expected.slices]
    assert expected.summary_line() in _texts(at).replace("\\", "")
    assert "7 days ending at the end of the sidebar's time range (2026-11-30 00:00 UTC)" in (
        _texts(at)
    )
    # The arm filter narrows the drill-down's choices to that arm's slices.
    at.multiselect(key="arms").set_value(["v2"]).run()
    assert not at.exception, [e.value for e in at.exception]
    kept = [s for s in expected.slices if s.arm == "v2"]
    assert kept and len(kept) < len(expected.slices)
    assert at.selectbox(key="drift_slice").options == [s.key for s in kept]
    assert _summary(at) == [(s.title, s.region, s.model, s.arm, s.verdict) for s in kept]
    # Another region: the drilled-down slice of us-west-2 is gone; a quiet region's shows.
    at.multiselect(key="arms").set_value(["v1", "v2"])
    at.multiselect(key="regions").set_value(["sa-east-1"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"] == ["sa-east-1"]
    assert str(at.selectbox(key="drift_slice").value).split("/")[1] == "sa-east-1"
    assert {row[1] for row in _summary(at)} == {"sa-east-1"}


def _on_demand_texts(at: AppTest) -> str:
    return _texts(at).replace("\\", "")  # Markdown escapes


def test_sessions_share_one_on_demand_run_and_one_runs_at_a_time(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sessions (two AppTests of one process, as two browser tabs of one server)
    asking the same question get one computation; another question waits for the
    worker.  ``compute_drift`` is the real one, wrapped to count its calls and held
    until released (so that the second session arrives while the first computes)."""
    from app import drift_data
    from observatory import drift_engine

    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(tmp_path / "no-reports"))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    reset_on_demand()
    calls: list[tuple[timedelta, object]] = []
    release = threading.Event()

    def counted(*args: object, **kwargs: Any) -> object:
        calls.append((kwargs["window"], kwargs["end"]))
        assert release.wait(120)
        return drift_engine.compute_drift(*args, **kwargs)

    monkeypatch.setattr("app.drift_data.compute_drift", counted)
    sessions = [AppTest.from_file(MAIN, default_timeout=300).run() for _ in range(2)]
    for at in sessions:
        at.switch_page("views/drift.py").run()
        assert not at.exception, [e.value for e in at.exception]
        text = _on_demand_texts(at)
        assert "Computing drift for the 24 h window ending 2026-11-30 00:00 UTC, started " in text
        assert "duration unknown (no earlier run to go by)" in text
        assert not at.get("plotly_chart")  # nothing to show yet, and the run did not block
    assert calls == [(timedelta(hours=24), END.replace(tzinfo=None))]
    running = drift_data.on_demand().running()
    assert running is not None and running.joined == 1
    release.set()
    finish_on_demand()
    tables = []
    for at in sessions:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert "Computed now (on demand in " in _on_demand_texts(at)
        assert len(at.get("plotly_chart")) == 3
        tables.append(next(d.value for d in at.dataframe if "reference" in d.value.columns))
    assert len(calls) == 1 and tables[0].equals(tables[1])
    # One run at a time: a second question while the first runs waits for the worker.
    release.clear()
    first, second = sessions
    first.selectbox(key="drift_window").set_value("6 hours").run()
    second.selectbox(key="drift_window").set_value("7 days").run()
    assert [c[0] for c in calls] == [timedelta(hours=24), timedelta(hours=6)]
    text = _on_demand_texts(second)
    assert "Another drift computation holds the server's worker (computing drift for the " in text
    assert "6 h window ending 2026-11-30 00:00 UTC" in text and "one runs at a time" in text
    # The expected time is now the last run's.
    assert "about " in _on_demand_texts(first) and " s expected" in _on_demand_texts(first)
    release.set()
    finish_on_demand()
    second.run()  # the worker is free: its question starts now
    assert [c[0] for c in calls][2:] == [timedelta(days=7)]
    finish_on_demand()
    second.run()
    first.run()
    for at, window in ((first, "6 hours"), (second, "7 days")):
        assert not at.exception, [e.value for e in at.exception]
        assert f"The drift window is the {window} ending" in _on_demand_texts(at)
    assert len(calls) == 3


def test_a_failed_on_demand_run_is_shown_and_can_be_tried_again(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real fault: one data file of the window is not Parquet; DuckDB's error reaches
    the page as a message naming the window, and "Try again" runs it again."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    bad = next(
        (copy / "lake" / "gauges" / "signal=accuracy" / "date=2026-11-29").rglob("*.parquet")
    )
    good = bad.read_bytes()
    bad.write_bytes(b"not a parquet file")
    at = _after_on_demand(monkeypatch, copy, tmp_path / "no-reports")
    errors = "\n".join(str(e.value) for e in at.error).replace("\\", "")
    assert "Could not compute drift for the 24 h window ending 2026-11-30 00:00 UTC: " in errors
    assert "StoreError: query failed: " in errors and "part.parquet" in errors  # DuckDB's
    assert drift_data_started() == 1
    bad.write_bytes(good)
    next(b for b in at.button if b.label == "Try again").click().run()
    finish_on_demand()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Could not compute" not in _on_demand_texts(at)
    assert "Computed now (on demand in " in _on_demand_texts(at)
    assert "CRITICAL" in _on_demand_texts(at)
    assert drift_data_started() == 2


def drift_data_started() -> int:
    """Computations the server's on-demand worker has started."""
    from app import drift_data

    return drift_data.on_demand().started


def test_the_warm_up_reads_the_newest_report_once_for_the_page(
    store: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `observatory serve`'s warm-up reads the archive's newest JSON report into the
    # cache the page reads it from: the page's first run does not read it again.
    from app import data, drift_data
    from observatory import drift_archive

    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(archive))
    drift_data._saved.clear()
    reads: list[str] = []
    real = drift_archive.load_report

    def counted(path: str) -> Any:
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(drift_archive, "load_report", counted)
    data.warm_up(store).join(timeout=300)
    assert reads == ["drift-2026-11-30T0000Z-24h.json"]
    preloaded = drift_data.saved_report(archive / reads[0])
    assert preloaded is not None and preloaded.settings == real(str(archive / reads[0])).settings
    reads.clear()
    assert drift_data.saved_report(archive / "drift-2026-11-30T0000Z-24h.json") is preloaded
    assert reads == []  # served from the cache


def test_the_warm_up_freezes_what_it_made_for_the_garbage_collector(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from app import data

    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    data.warm_up(store).join(timeout=300)
    frozen = gc.get_freeze_count()
    gc.unfreeze()  # the rest of the test session as before
    assert frozen > 0


def test_a_store_younger_than_the_reference_says_so_instead_of_an_empty_heatmap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One day of data: the 24 h window has data, the reference before it has none, so
    # every slice's metric is undefined and the heatmap would be a grid of blank cells.
    from observatory.demo import build_store

    root = tmp_path / "young"
    build_store(root, days=1, regions=["us-east-1", "us-west-2"], end=END, force=True)
    at = _after_on_demand(monkeypatch, root, tmp_path / "reports")
    text = _texts(at)
    assert "INSUFFICIENT DATA" in text
    assert "No slice has a PSI value yet" in text
    kinds = [json.loads(c.proto.spec)["data"][0]["type"] for c in at.get("plotly_chart")]
    assert "heatmap" not in kinds

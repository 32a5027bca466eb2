"""`observatory report drift`: formats, exit codes, atomic writes, and the HTML report
rendered in a real headless Chromium with its Plotly charts present."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from drift_support import drift_store

from observatory import drift_report
from observatory.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drift_store(tmp_path_factory)


@pytest.fixture(scope="module")
def reports(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("reports")
    args = ["report", "drift", "--window", "24h", "--reference", "7d", "--store", str(store)]
    args += ["--out", str(out), "--format", "html", "--format", "md", "--format", "json"]
    result = CliRunner().invoke(main, args)
    return out, result.exit_code, result.output


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_report_files_named_by_date_and_exit_code_critical(reports: tuple[Path, int, str]) -> None:
    out, code, output = reports
    assert code == 2, output  # critical drift
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "drift-2026-11-30T0000Z-24h.html",
        "drift-2026-11-30T0000Z-24h.json",
        "drift-2026-11-30T0000Z-24h.md",
    ]
    assert "drift detected in 4 of" in output


def test_json_report(reports: tuple[Path, int, str]) -> None:
    out, _, _ = reports
    data = json.loads((out / "drift-2026-11-30T0000Z-24h.json").read_text())
    assert data["schema"] == "observatory.drift/1"
    assert data["verdict"] == "critical" and data["exit_code"] == 2
    assert data["js_log_base"] == 2
    drifted = {
        (s["signal"], s["region"], s["model"])
        for s in data["slices"]
        if s["verdict"] in ("warning", "critical")
    }
    assert ("prompt_length", "us-west-2", "qwen2.5-32b") in drifted
    row = next(
        s for s in data["slices"] if s["signal"] == "accuracy" and s["verdict"] == "critical"
    )
    psi = next(m for m in row["metrics"] if m["metric"] == "psi")
    assert psi["fixed_warning"] == 0.1 and psi["fixed_critical"] == 0.25
    assert psi["threshold"] == 0.25 and "learned" in psi["fired"]
    assert row["over_time"] and row["distribution"]["reference"]
    # Over time: every drift metric per point, and the metrics that fired.
    assert {"ts_utc", "value", "psi", "js", "hellinger", "wasserstein", "ks"} <= set(
        row["over_time"][-1]
    )
    assert row["alarm_metric"] == "psi" and row["fired_metrics"][0] == "psi"
    # Late labels: its own row, the accuracy change with its interval, accuracy over time.
    late = next(
        s
        for s in data["slices"]
        if s["signal"] == "accuracy_late_labels"
        and s["region"] == "us-west-2"
        and s["model"] == "qwen2.5-32b"
    )
    assert late["title"] == "accuracy (late labels)" and late["verdict"] == "warning"
    drop = next(m for m in late["metrics"] if m["metric"] == "accuracy_drop")
    d = drop["detail"]
    assert drop["value"] == pytest.approx(d["reference"] - d["current"])
    assert d["ci_high"] < 0 < drop["value"]
    point = late["over_time"][-1]
    assert point["low"] < point["accuracy"] < point["high"]


def test_markdown_report(reports: tuple[Path, int, str]) -> None:
    out, _, _ = reports
    md = (out / "drift-2026-11-30T0000Z-24h.md").read_text()
    assert md.startswith("# Drift report: 2026-11-29 00:00 .. 2026-11-30 00:00 UTC")
    assert "**CRITICAL**: drift detected in 4 of" in md
    assert "## accuracy (late labels) (labels, ratio; reference: previous 7d)" in md
    assert "Metrics that fired: psi" in md
    assert "## prediction_score (histogram, score; reference: previous 7d)" in md
    assert "| us-west-2 | qwen2.5-32b | v1 | critical |" in md
    assert "JS distance is log base 2" in md


def _charts_expected(out: Path) -> int:
    """Per drifted slice: its distributions and one over-time chart per metric that fired
    (accuracy with its interval for late labels)."""
    data = json.loads((out / "drift-2026-11-30T0000Z-24h.json").read_text())
    drifted = [s for s in data["slices"] if s["verdict"] in ("warning", "critical")]
    assert len(drifted) == 4
    return sum(1 + (1 if s["kind"] == "labels" else len(s["fired_metrics"])) for s in drifted)


def test_html_embeds_plotly_once(reports: tuple[Path, int, str]) -> None:
    out, _, _ = reports
    text = (out / "drift-2026-11-30T0000Z-24h.html").read_text()
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # the library's banner, once
    assert text.count("Plotly.newPlot(") == _charts_expected(out) > 8
    assert "accuracy per label-arrival window" in text
    assert "<script src=" not in text  # nothing to fetch: readable offline


def test_exit_codes(store: Path, tmp_path: Path) -> None:
    common = ["report", "drift", "--store", str(store), "--out", str(tmp_path)]
    quiet = run(*common, "--region", "sa-east-1", "--signal", "accuracy", "--format", "json")
    assert quiet[0] == 0, quiet[1]
    assert "no drift in 4 signals" in quiet[1]
    warn = run(*common, "--region", "us-west-2", "--signal", "prompt_length", "--format", "md")
    assert warn[0] == 1, warn[1]
    assert run(*common, "--window", "7q")[0] == 3
    assert run(*common, "--reference", "sometime")[0] == 3
    assert run(*common, "--format", "pdf")[0] == 3
    assert run(*common, "--no-such-option")[0] == 3
    assert run(*common, "--signal", "nope")[0] == 3
    # no store folder: no data (5, as every command), the folder named
    none = run("report", "drift", "--store", str(tmp_path / "none"), "--out", str(tmp_path))
    assert none[0] == 5 and f"{tmp_path / 'none'} (no such folder)" in none[1], none[1]
    # a store whose data file is not Parquet: a runtime error (4) naming the file
    part = tmp_path / "bad/lake/histograms/signal=latency/date=2026-11-29/region=r1/h00.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not parquet")
    bad = run("report", "drift", "--store", str(tmp_path / "bad"), "--out", str(tmp_path))
    assert bad[0] == 4 and str(part) in bad[1], bad[1]
    nothing = run(*common, "--signal", "accuracy", "--end", "2020-01-01T00:00Z")
    assert nothing[0] == 5, nothing[1]


def test_failed_render_leaves_no_file(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ["report", "drift", "--store", str(store), "--out", str(tmp_path)]
    common += ["--region", "sa-east-1", "--signal", "accuracy", "--format", "md"]
    assert run(*common)[0] == 0
    (good,) = tmp_path.iterdir()
    before = good.read_bytes()

    def broken(report: object) -> str:
        raise ValueError("render failed")

    monkeypatch.setitem(drift_report.RENDERERS, "md", broken)
    assert run(*common)[0] == 4
    assert [p.name for p in tmp_path.iterdir()] == [good.name]
    monkeypatch.undo()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(drift_report.os, "replace", failing_replace)
    assert run(*common)[0] == 4
    assert [p.name for p in tmp_path.iterdir()] == [good.name]  # no temporary file left
    assert good.read_bytes() == before  # the archived report is untouched


def test_archive_listing(reports: tuple[Path, int, str]) -> None:
    out, _, _ = reports
    (out / ".tmp-abc.partial").write_text("half")
    rows = drift_report.list_reports(out)
    assert sorted(r["format"] for r in rows) == ["html", "json", "md"]  # not the .partial
    assert {r["verdict"] for r in rows} == {"critical"}
    assert all(r["window"] == "24h" for r in rows)


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_html_report_renders_in_headless_chromium(reports: tuple[Path, int, str]) -> None:
    out, _, _ = reports
    page = out / "drift-2026-11-30T0000Z-24h.html"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'id="summary"' in dom
    # Plotly drew every chart: each figure div got its SVG layers and its traces.
    charts = _charts_expected(out)
    assert dom.count('class="plot-container plotly"') == charts
    assert dom.count('class="main-svg"') >= 2 * charts
    assert dom.count('class="trace bars"') >= 3  # reference vs current, overlaid
    assert "scatterlayer" in dom  # metric over time

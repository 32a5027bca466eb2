"""`observatory slo` commands and the Sloth-compatible rule export (checked by promtool)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from observatory.cli import main
from observatory.demo import build_store
from observatory.slo_rules import error_ratio_query, export_rules
from observatory.slo_specs import load_specs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "slo"
PROMTOOL = shutil.which("promtool")
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def _promtool_check(path: Path) -> str:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slo-cli")
    build_store(root, days=1, regions=["eu-central-1"], end=datetime(2026, 3, 1, tzinfo=UTC))
    return root


def _rules(path: Path) -> dict[str, list[dict[str, object]]]:
    data = yaml.safe_load(path.read_text())
    return {g["name"]: g["rules"] for g in data["groups"]}


def test_export_rules_cli_writes_what_promtool_accepts(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "slo-rules.yaml"
    result = CliRunner().invoke(
        main, ["slo", "export-rules", "--store", str(store), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "skipped p99-latency" in result.output
    assert "SUCCESS" in _promtool_check(out)
    groups = _rules(out)
    sli = groups["sloth-slo-sli-recordings-availability-eu-central-1"]
    assert [r["record"] for r in sli] == [f"slo:sli_error:ratio_rate{w}" for w in WINDOWS] + [
        "slo:sli_error:ratio_rate30d"
    ]
    assert sli[0]["labels"] == {
        "team": "inference",
        "region": "eu-central-1",
        "sloth_id": "availability-eu-central-1",
        "sloth_service": "inference-api",
        "sloth_slo": "availability",
        "sloth_window": "5m",
    }
    expr = str(sli[0]["expr"])
    assert 'vllm:request_success_total{finished_reason="error"}[5m]' in expr
    assert "sum by (model_name)" in expr  # grouped per model; the region is the group
    meta = groups["sloth-slo-meta-recordings-availability-eu-central-1"]
    assert [r["record"] for r in meta] == [
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "sloth_slo_info",
    ]
    assert meta[0]["expr"] == "vector(0.995)" and meta[1]["expr"] == "vector(0.005)"
    alerts = groups["sloth-slo-alerts-availability-eu-central-1"]
    page, ticket = alerts
    assert page["labels"]["sloth_severity"] == "page"  # type: ignore[index]
    assert "ratio_rate5m" in str(page["expr"]) and "> (14.4 * 0.005)" in str(page["expr"])
    assert "ratio_rate6h" in str(page["expr"]) and "> (6.0 * 0.005)" in str(page["expr"])
    assert "ratio_rate3d" in str(ticket["expr"]) and "> (1.0 * 0.005)" in str(ticket["expr"])
    assert str(page["expr"]).count("without (sloth_window)") == 4


def test_sloth_spec_keeps_its_own_queries_and_alert_name(tmp_path: Path) -> None:
    slos = load_specs([EXAMPLES / "sloth-availability.yaml"])
    export = export_rules(slos, ["ap-south-1"])
    out = tmp_path / "r.yaml"
    out.write_text(export.to_yaml())
    _promtool_check(out)
    groups = _rules(out)
    alerts = groups["sloth-slo-alerts-vllm-requests-availability-ap-south-1"]
    assert {a["alert"] for a in alerts} == {"VllmHighErrorRate"}
    sli = groups["sloth-slo-sli-recordings-vllm-requests-availability-ap-south-1"]
    assert "sum by (region) (rate(vllm:request_success_total[1h]))" in str(sli[2]["expr"])


def test_global_prometheus_variant_matches_the_region_label(tmp_path: Path) -> None:
    slos = [d for d in load_specs([EXAMPLES]) if d.name in ("availability", "latency-10s")]
    export = export_rules(slos, ["us-east-1", "eu-west-1"], region_label="region")
    out = tmp_path / "r.yaml"
    out.write_text(export.to_yaml())
    _promtool_check(out)
    text = out.read_text()
    assert 'region="us-east-1"' in text and 'region="eu-west-1"' in text
    # Latency: the bucket at the threshold, matched as Prometheus 2 ("10") or 3 ("10.0").
    assert 'le=~"10|10\\\\.0"' in text
    assert "vllm:e2e_request_latency_seconds_count{region=" in text


def test_interpolated_threshold_has_no_rule_form() -> None:
    (ttft,) = [d for d in load_specs([EXAMPLES]) if d.name == "ttft-750ms"]
    with pytest.raises(ValueError, match="not a bucket bound"):
        error_ratio_query(ttft, "5m", bounds=[0.5, 1.0])
    export = export_rules([ttft], [None], bounds={"ttft": [0.5, 1.0]})
    assert export.groups == [] and export.skipped[0][0] == "ttft-750ms"


def test_hundred_percent_objective_exports_no_alerts(tmp_path: Path) -> None:
    spec = (EXAMPLES / "sloth-availability.yaml").read_text().replace("99.5", "100")
    path = tmp_path / "s.yaml"
    path.write_text(spec)
    export = export_rules(load_specs([path]), [None])
    assert [g["name"] for g in export.groups] == [
        "sloth-slo-sli-recordings-vllm-requests-availability",
        "sloth-slo-meta-recordings-vllm-requests-availability",
    ]


def test_status_cli(store: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["slo", "status", "--store", str(store), "--global-only"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["SLO", "REGION", "MODEL", "ARM", "STATE"]
    # The demo simulates TTFT histograms, so the TTFT SLO has data.
    (ttft,) = [line for line in lines if line.startswith("ttft-750ms")]
    assert "no_data" not in ttft
    result = runner.invoke(
        main, ["slo", "status", "--store", str(store), "--slo", "availability", "--format", "json"]
    )
    rows = json.loads(result.output)
    assert {r["region"] for r in rows} == {"*", "eu-central-1"}
    assert {r["model"] for r in rows} >= {"mistral-7b", "llama-3.1-70b", "qwen2.5-32b"}
    result = runner.invoke(main, ["slo", "status", "--store", str(store), "--slo", "nope"])
    assert result.exit_code == 2 and "unknown SLO" in result.output


def test_check_cli_reports_spec_errors_with_exit_2(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["slo", "check"])
    assert ok.exit_code == 0 and "ok: 9 SLOs" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: prometheus/v1\nservice: x\nslos:\n  - name: a\n    objective: 0\n")
    result = CliRunner().invoke(main, ["slo", "check", "--specs", str(bad)])
    assert result.exit_code == 2
    assert f"error: {bad}:5: document 1 (Sloth spec x): slos[0].objective" in result.output

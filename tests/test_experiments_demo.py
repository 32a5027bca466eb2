"""Experiments on the demo fleet and on synthetic replicates: the injected A/B effect is
found with the right sign and covered by its interval; config, discovery, SRM, Simpson."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from experiment_support import EXAMPLE, demo_store

from analytics.experiment_metrics import (
    AnalysisSettings,
    Buckets,
    add_derived,
    analyze,
    cumulative_effect,
    daily_checkpoints,
)
from collectors.demo_fleet import AB_EFFECT
from observatory import experiment_engine as ee
from observatory.cli import main
from observatory.config import ConfigError
from observatory.experiments_config import load_experiments, parse_experiments
from observatory.store import Store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("exp") / "demo", days=2)


@pytest.fixture(scope="module")
def report(store_dir: Path) -> ee.Report:
    exps = load_experiments(EXAMPLE)
    store = Store(store_dir)
    item = ee.find(store.named, "llama-v2-rollout", exps)
    rep = ee.run(store.named, item, exps.carbon)
    assert rep is not None
    return rep


def _result(rep: ee.Report, name: str, region: str | None = None):  # type: ignore[no-untyped-def]
    rows = rep.analysis.results if region is None else rep.analysis.by_region[region]
    return next(r for r in rows if r.metric.name == name)


def test_accuracy_effect_detected_with_right_sign_and_covered(report: ee.Report) -> None:
    acc = _result(report, "accuracy")
    assert acc.role == "primary" and acc.guard is None
    true_abs = AB_EFFECT["accuracy_delta"]
    assert acc.absolute is not None and acc.fixed is not None and acc.sequential is not None
    assert acc.absolute.ci_low > 0  # detected, right sign
    assert acc.absolute.ci_low <= true_abs <= acc.absolute.ci_high
    # relative: the true lift is 0.015 / control accuracy (0.86 in the demo)
    true_rel = true_abs / 0.86
    assert acc.fixed.ci_low <= true_rel <= acc.fixed.ci_high
    assert acc.sequential.ci_low <= true_rel <= acc.sequential.ci_high
    assert acc.adjusted_p < 0.001
    assert acc.bayesian is not None and acc.bayesian.chance_to_win > 0.99


@pytest.mark.parametrize("region", ["us-east-1", "ap-south-1"])
def test_latency_effect_covered_in_regions_without_the_incident(
    report: ee.Report, region: str
) -> None:
    lat = _result(report, "latency_mean", region)
    assert lat.fixed is not None
    true_rel = AB_EFFECT["latency_factor"] - 1.0
    assert lat.fixed.ci_low > 0
    assert lat.fixed.ci_low <= true_rel <= lat.fixed.ci_high


def test_incident_region_is_slower_than_the_injected_effect(report: ee.Report) -> None:
    lat = _result(report, "latency_mean", "eu-west-1")
    assert lat.fixed is not None and lat.fixed.ci_low > AB_EFFECT["latency_factor"] - 1.0


def test_srm_passes_and_verdict_is_a_trade_off(report: ee.Report) -> None:
    a = report.analysis
    assert a.srm is not None and not a.srm.flagged
    decision, text = a.verdicts["v2"]
    assert decision == "trade-off"
    assert text.startswith("v2 is 1.7% more accurate")
    assert "than v1" in text
    # no arm difference in cost or energy was injected: not significant after Holm
    for name in ("cost_per_1k", "energy_per_request"):
        r = _result(report, name)
        assert r.adjusted_p > 0.05, name


def test_replicates_add_up_to_the_store(report: ee.Report, store_dir: Path) -> None:
    d = report.data
    total = Store(store_dir).query(
        "SELECT arm, sum(value) AS n FROM counters WHERE signal = 'requests' "
        "AND model = 'llama-3.1-70b' GROUP BY arm ORDER BY arm"
    )
    got = d.replicates.groupby("arm")["requests"].sum()
    for arm, n in zip(total["arm"], total["n"], strict=True):
        assert got[arm] == pytest.approx(n)
    # latency buckets: the +Inf bucket counts every request of the replicate
    merged = d.replicates.merge(
        d.buckets.keys.assign(inf=d.buckets.cumulative[:, -1]), on=["ts_utc", "region", "arm"]
    )
    assert np.allclose(merged["inf"], merged["requests"])
    # gCO2e = J / 3.6e6 x PUE x grid factor (AWS PUE 1.135, us-east-1 379.1 g/kWh)
    row = d.replicates[d.replicates["region"] == "us-east-1"].iloc[0]
    assert row["gco2e"] == pytest.approx(row["energy_j"] / 3.6e6 * 1.135 * 379.1)


def test_cumulative_effect_and_frontier(report: ee.Report) -> None:
    cum = report.cumulative
    assert report.cumulative_metric == "accuracy"
    assert len(cum) >= 24  # hourly checkpoints on a 2-day experiment
    assert (cum["seq_low"] <= cum["fixed_low"] + 1e-12).all()
    assert (cum["seq_high"] >= cum["fixed_high"] - 1e-12).all()
    assert cum["n_control"].is_monotonic_increasing
    f = report.frontier.set_index(["arm", "metric"])
    assert f.loc[("v2", "accuracy"), "value"] > f.loc[("v1", "accuracy"), "value"]
    assert f.loc[("v1", "cost_per_1k"), "ci_low"] < f.loc[("v1", "cost_per_1k"), "value"]


def test_discovered_experiment_and_misconfigured_weights_flag_srm(store_dir: Path) -> None:
    store = Store(store_dir)
    listed = ee.list_experiments(store.named, None)
    assert [i.spec.name for i in listed] == ["llama-3.1-70b"]
    item = listed[0]
    assert item.source == "discovered" and item.spec.control_arm == "v1"
    assert item.spec.primary == "accuracy"
    bad = parse_experiments(
        "experiments:\n  - name: skewed\n    model: llama-3.1-70b\n    arms: [v1, v2]\n"
        "    weights: {v1: 0.6, v2: 0.4}\n    primary: error_ratio\n"
        "    guardrails: []\n    secondary: []\n"
    )
    rep = ee.run(store.named, ee.find(store.named, "skewed", bad))
    assert rep is not None and rep.analysis.srm is not None
    assert rep.analysis.srm.flagged
    assert rep.analysis.verdicts["v2"][0] == "untrustworthy"
    assert rep.data.buckets.cumulative.shape[0] == 0  # no quantile metric: buckets not read


# ------------------------------------------------------------ synthetic replicates
def _synthetic(effects: dict[str, float], n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    ts = pd.date_range("2026-11-01 00:01", periods=n, freq="60s")
    for region, eff in effects.items():
        for arm in ("v1", "v2"):
            req = rng.poisson(50, n).astype(float)
            lat = req * 2.0 * (1 + (eff if arm == "v2" else 0)) * rng.normal(1, 0.05, n)
            rows.append(
                pd.DataFrame(
                    {
                        "ts_utc": ts, "region": region, "arm": arm, "requests": req,
                        "errors": rng.binomial(req.astype(int), 0.01).astype(float),
                        "latency_sum": lat, "tokens": req * 500, "energy_j": req * 2000,
                        "cost_usd": 0.15, "accuracy": rng.normal(0.8, 0.01, n),
                    }
                )
            )  # fmt: skip
    return add_derived(pd.concat(rows, ignore_index=True))


def test_regions_that_disagree_raise_a_warning() -> None:
    reps = _synthetic({"us-east-1": 0.10, "eu-west-1": -0.10})
    settings = AnalysisSettings("v1", ("v2",), "latency_mean")
    a = analyze(reps, settings, Buckets.empty())
    assert any("disagree in direction" in w for w in a.warnings)


def test_guard_blocks_statistics_on_too_little_data() -> None:
    reps = _synthetic({"us-east-1": 0.1}, n=10)
    a = analyze(reps, AnalysisSettings("v1", ("v2",), "latency_mean"), Buckets.empty())
    r = a.results[0]
    assert r.guard and "too few units" in r.guard and r.fixed is None
    assert a.verdicts["v2"][0] == "insufficient data"


def test_cumulative_effect_on_synthetic_data() -> None:
    reps = _synthetic({"us-east-1": 0.05}, n=600)
    cps = daily_checkpoints(pd.Timestamp("2026-11-01"), pd.Timestamp("2026-11-01 10:00"))
    cum = cumulative_effect(reps, "latency_mean", "v1", "v2", cps)
    assert len(cum) == 10 and cum["n_control"].iloc[-1] == 600
    assert cum["seq_low"].iloc[-1] > 0 and math.isclose(
        cum["estimate"].iloc[-1], 0.05, abs_tol=0.01
    )


# ------------------------------------------------------------ configuration
def test_example_file_loads() -> None:
    exps = load_experiments(EXAMPLE)
    spec = exps.get("llama-v2-rollout")
    assert spec is not None and spec.settings().primary == "accuracy"
    assert exps.carbon.grid_factor("eu-west-1") == 278.6


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("experiments:\n  - name: x\n    model: m\n    arms: [a, b]\n    primary: acuracy\n",
         ":5: experiments[0].primary", "unknown metric 'acuracy'"),
        ("experiments:\n  - name: x\n    model: m\n    arms: [a, b]\n    control: c\n"
         "    primary: accuracy\n", ":5: experiments[0].control", "not one of the arms"),
        ("experiments:\n  - name: x\n    model: m\n    arms: [a, b]\n    primary: accuracy\n"
         "    guardrails: [cost_per_1k, energy]\n", ":6: experiments[0].guardrails[1]",
         "unknown metric 'energy'"),
        ("experiments:\n  - name: x\n    model: m\n    arms: [a, b]\n    primary: accuracy\n"
         "    weights: {a: 1, b: 0}\n", "experiments[0].weights.b", "positive"),
        ("experiments:\n  - name: x\n    model: m\n    arms: [a, b]\n    primary: accuracy\n"
         "    colour: red\n", ":6: experiments[0].colour", "unknown key"),
        ("experiments:\n  - name: x\n    model: m\n    arms: [a]\n    primary: accuracy\n",
         ":4: experiments[0].arms", "at least 2"),
        ("carbon:\n  pue: {eu-west-1: 0.9}\n", ":2: carbon.pue.eu-west-1", "at least 1"),
        ("experiments:\n  - name: x\n    model: m\n    arms: [a, b]\n    primary: accuracy\n"
         "    latency_slo: soon\n", ":6: experiments[0].latency_slo", "duration"),
    ],
)  # fmt: skip
def test_config_errors_name_file_line_and_key(text: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_experiments(text, source="exp.yaml")
    message = "\n".join(info.value.messages)
    assert where in message and what in message, message
    assert message.startswith("exp.yaml")


# ------------------------------------------------------------ CLI
def test_cli_list_and_report_json_md_html(store_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--store", str(store_dir), "--experiments", str(EXAMPLE)]
    out = runner.invoke(main, ["experiment", "list", *base])
    assert out.exit_code == 0, out.output
    assert "llama-v2-rollout" in out.output and "config" in out.output
    js = tmp_path / "r.json"
    out = runner.invoke(
        main,
        ["experiment", "report", "llama-v2-rollout", *base, "--format", "json", "--out", str(js)],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(js.read_text())
    assert doc["srm"]["flagged"] is False
    assert doc["verdicts"]["v2"]["decision"] == "trade-off"
    acc = next(
        m for m in doc["metrics"] if m["metric"] == "accuracy" and m["region"] == "all regions"
    )
    assert acc["absolute"]["ci_low"] <= 0.015 <= acc["absolute"]["ci_high"]
    for fmt in ("md", "html"):
        path = tmp_path / f"r.{fmt}"
        out = runner.invoke(
            main,
            [
                "experiment",
                "report",
                "llama-v2-rollout",
                *base,
                "--format",
                fmt,
                "--out",
                str(path),
            ],
        )
        assert out.exit_code == 0, out.output
        text = path.read_text()
        assert "Sample ratio" in text and "accuracy" in text and "eu-west-1" in text
    missing = runner.invoke(main, ["experiment", "report", "nope", *base])
    assert missing.exit_code == 2 and "no experiment 'nope'" in missing.output
    nowhere = tmp_path / "no-such-folder" / "r.md"
    unwritable = runner.invoke(
        main, ["experiment", "report", "llama-v2-rollout", *base, "--out", str(nowhere)]
    )
    assert unwritable.exit_code == 2, unwritable.output
    assert isinstance(unwritable.exception, SystemExit), unwritable.exception  # no traceback
    assert f"error: --out: cannot write {nowhere}" in unwritable.output


def test_arms_seen_in_different_minutes_raise_a_warning() -> None:
    reps = _synthetic({"us-east-1": 0.0}, n=400)
    late = reps["ts_utc"] >= reps["ts_utc"].min() + pd.Timedelta(minutes=200)
    reps = reps[(reps["arm"] == "v1") | late]
    a = analyze(reps, AnalysisSettings("v1", ("v2",), "latency_mean"), Buckets.empty())
    assert any("different minutes" in w for w in a.warnings)
    fine = analyze(_synthetic({"us-east-1": 0.0}), AnalysisSettings("v1", ("v2",), "latency_mean"))
    assert not any("different minutes" in w for w in fine.warnings)


def test_aa_simulation_runs_and_naive_peeking_flags_at_least_as_often(
    report: ee.Report,
) -> None:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "aa_simulation.py"
    spec = importlib.util.spec_from_file_location("aa_simulation", path)
    assert spec is not None and spec.loader is not None
    aa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(aa)
    v1 = report.data.replicates[report.data.replicates["arm"] == "v1"]
    v1 = v1.sort_values(["ts_utc", "region"], kind="stable")
    res = aa.simulate(v1, ["accuracy"], seeds=40, alpha=0.05, tuning=5000)
    assert len(res) == 40 and int(res["looks"].iloc[0]) == 2
    assert (res["naive_daily"] >= res["fixed_horizon"]).all()
    assert res["fixed_horizon"].mean() <= 0.2 and res["sequential_daily"].mean() <= 0.2


@pytest.mark.parametrize("engine", ["fixed", "sequential", "bayesian"])
def test_every_engine_decides(engine: str) -> None:
    reps = _synthetic({"us-east-1": 0.05, "eu-west-1": 0.05}, n=600)
    settings = AnalysisSettings(
        "v1",
        ("v2",),
        "latency_mean",
        guardrails=("error_ratio",),
        engine=engine,  # type: ignore[arg-type]
    )
    a = analyze(reps, settings, Buckets.empty())
    r = a.results[0]
    assert r.deciding(engine) is not None
    assert math.isnan(r.adjusted_p) == (engine == "bayesian")
    decision, text = a.verdicts["v2"]
    assert decision == "do not ship" and "slower on average" in text

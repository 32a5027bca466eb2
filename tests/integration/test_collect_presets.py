"""Presets, custom signals, HA dedup and coverage on exporter-shaped series in a real
Prometheus (backfilled with promtool).

One OpenMetrics file holds six hours of series shaped like each exporter's
(names, labels and units from shared/reference/sources.md): NVIDIA Triton, Hugging
Face TGI, an OpenTelemetry HTTP server, Kepler (current and 0.7 names), OpenCost's
per-GPU price and GPU count, dcgm-exporter with GPU model names, and a vLLM counter
scraped by an HA pair (two replicas, one with a gap).  Each "region" of the config
points at the same server with other presets, so the checks do not mix.

Counters grow by a fixed amount per 30-second scrape, so every expected total is
``increment x scrapes`` exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prom_harness import (
    PromServer,
    backfill_openmetrics,
    default_fleet_end,
    iso,
    missing_binaries,
    om_lines,
    run_cli,
    write_config,
)

from observatory.store import Store

pytestmark = pytest.mark.integration

HOURS = 6
SCRAPE = 30
N = HOURS * 3600 // SCRAPE  # increases inside the window (the first sample is the baseline)
GAP = range(200, 320)  # scrapes missing from one GPU's gauge and one HA replica


class OM:
    """OpenMetrics text: every series as an untyped metric (any name is allowed)."""

    def __init__(self, t0: int):
        self.t0 = t0
        self.lines: list[str] = []

    def series(self, name: str, labels: dict[str, str], value, skip=()) -> None:  # type: ignore[no-untyped-def]
        points = ((self.t0 + i * SCRAPE, value(i)) for i in range(N + 1) if i not in skip)
        self.lines.extend(om_lines(name, labels, points))

    def text(self) -> str:
        # samples of one metric family must be contiguous and in time order per series
        return "\n".join(self.lines) + "\n# EOF\n"


def _fleet_text(t0: int) -> str:
    om = OM(t0)
    tr = {"model": "resnet50", "version": "1"}
    om.series("nv_inference_request_success", tr, lambda i: 10 * i)
    om.series("nv_inference_request_failure", {**tr, "reason": "OTHER"}, lambda i: 1 * i)
    om.series("nv_inference_request_duration_us", tr, lambda i: 250_000 * i)
    om.series("nv_inference_queue_duration_us", tr, lambda i: 5_000 * i)
    for le, per in (("1", 2), ("10", 7), ("100", 10), ("+Inf", 10)):
        om.series(
            "nv_inference_first_response_histogram_ms_bucket",
            {**tr, "le": le},
            lambda i, p=per: p * i,
        )
    om.series("nv_gpu_utilization", {"gpu_uuid": "GPU-1"}, lambda i: 0.5)
    om.series("nv_energy_consumption", {"gpu_uuid": "GPU-1"}, lambda i: 9000 * i)
    tgi = {"job": "tgi-llama-8b"}
    om.series("tgi_request_count", tgi, lambda i: 4 * i)
    om.series("tgi_request_failure", {**tgi, "err": "validation"}, lambda i: i // 10)
    for le, per in (("0.00015", 0), ("0.000225", 1), ("1.0", 3), ("+Inf", 4)):
        om.series("tgi_request_duration_bucket", {**tgi, "le": le}, lambda i, p=per: p * i)
    otel = {"service_name": "chat-api"}
    om.series(
        "http_server_request_duration_seconds_count",
        {**otel, "http_response_status_code": "200"},
        lambda i: 20 * i,
    )
    om.series(
        "http_server_request_duration_seconds_count",
        {**otel, "http_response_status_code": "503"},
        lambda i: 1 * i,
    )
    for zone, per in (("package", 30), ("core", 20), ("uncore", 5), ("dram", 6), ("psys", 50)):
        om.series(
            "kepler_node_cpu_joules_total", {"instance": "n1", "zone": zone}, lambda i, p=per: p * i
        )
    om.series("kepler_node_gpu_joules_total", {"instance": "n1"}, lambda i: 90 * i)
    for mode, per in (("dynamic", 12), ("idle", 3)):
        for c in ("a", "b"):
            lab = {"instance": "n1", "container_name": c, "mode": mode}
            om.series("kepler_container_package_joules_total", lab, lambda i, p=per: p * i)
    om.series(
        "kepler_container_joules_total",
        {"instance": "n1", "container_name": "a", "mode": "dynamic"},
        lambda i: 999 * i,
    )
    ocl = {"node": "n1", "instance_type": "p4d.24xlarge"}
    om.series("node_gpu_hourly_cost", ocl, lambda i: 2.5)
    om.series("node_gpu_count", ocl, lambda i: 8)
    for gpu in ("0", "1"):
        lab = {"gpu": gpu, "Hostname": "h1", "modelName": "NVIDIA A100-SXM4-80GB"}
        om.series("DCGM_FI_DEV_GPU_UTIL", lab, lambda i: 50, skip=GAP if gpu == "1" else ())
    ha = {"model_name": "m", "finished_reason": "stop"}
    om.series(
        "vllm:request_success_total", {**ha, "prometheus_replica": "a"}, lambda i: 3 * i, skip=GAP
    )
    om.series("vllm:request_success_total", {**ha, "prometheus_replica": "b"}, lambda i: 3 * i)
    om.series("my_app_requests_total", {"path": "/v1/chat"}, lambda i: 2 * i)
    om.series("my_app_requests_total", {"path": "/health"}, lambda i: 100 * i)
    om.series("my_queue_length", {"pod": "x"}, lambda i: 7)
    om.series("my_queue_length", {"pod": "y"}, lambda i: 5)
    return om.text()


REGIONS = {
    "triton": {"presets": ["triton", "triton_gpu"]},
    "tgi": {"presets": ["tgi"]},
    "otel": {"presets": ["otel_http"]},
    "kepler": {"presets": ["kepler"]},
    "kepler07": {"presets": ["kepler_legacy"]},
    "opencost": {"presets": ["opencost_gpu"]},
    "priced": {"presets": ["dcgm"], "prices": [{"gpu": "A100", "usd_per_hour": 4.0}]},
    "ha": {"presets": ["vllm"], "dedup_label": "prometheus_replica"},
    "ha-nodedup": {"presets": ["vllm"]},
    "custom": {
        "presets": ["quality"],
        "signals": [
            {"name": "requests", "selector": 'my_app_requests_total{path!="/health"}'},
            {
                "name": "queue_depth",
                "kind": "gauge",
                "unit": "requests",
                "expr": "sum(my_queue_length)",
            },
        ],
    },
}


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    why = missing_binaries()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("presets")
    end = default_fleet_end()
    start = end - timedelta(hours=HOURS)
    tsdb = backfill_openmetrics(_fleet_text(int(start.timestamp())), root)
    server = PromServer(tsdb, root, name="exporters").start()
    try:
        store = root / "store"
        config = write_config(
            root / "o.yaml",
            store,
            {name: server.url for name in REGIONS},
            presets=["vllm"],
            region_extra={k: dict(v) for k, v in REGIONS.items()},
        )
        res = run_cli(["collect", "--config", str(config), "--from", iso(start), "--to", iso(end)])
        assert res.returncode == 0, res.stdout + res.stderr
        runs = {}
        for line in (store / "runs.jsonl").read_text().splitlines():
            rec = json.loads(line)
            runs[rec["region"]] = rec
        yield store, runs
    finally:
        server.stop()


def _sum(
    store: Path, region: str, signal: str, table: str = "counters", col: str = "value"
) -> float:
    frame = Store(store).query(
        f"SELECT SUM({col}) AS v FROM {table} WHERE region = $r AND signal = $s",
        {"r": region, "s": signal},
    )
    return float(frame["v"].iloc[0])


def test_every_region_ok(collected) -> None:  # type: ignore[no-untyped-def]
    _, runs = collected
    for region in REGIONS:
        assert runs[region]["status"] == "ok", runs[region]


def test_triton(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    assert _sum(store, "triton", "requests") == 11 * N  # success + failure
    assert _sum(store, "triton", "errors") == 1 * N
    assert _sum(store, "triton", "latency_count") == 10 * N
    assert _sum(store, "triton", "latency_sum") == pytest.approx(0.25 * N, rel=1e-12)
    assert _sum(store, "triton", "queue_time_sum") == pytest.approx(0.005 * N, rel=1e-12)
    assert _sum(store, "triton", "energy") == 9000 * N  # joules already
    les = Store(store).query(
        "SELECT le, SUM(value) AS n FROM histograms WHERE region='triton' AND signal='ttft' "
        "GROUP BY le ORDER BY le"
    )
    assert les["le"].tolist() == [0.001, 0.01, 0.1, float("inf")]  # ms -> s
    assert les["n"].tolist() == [2 * N, 7 * N, 10 * N, 10 * N]
    util = Store(store).query("SELECT AVG(mean) AS u FROM gauges WHERE region='triton'")
    assert float(util["u"].iloc[0]) == 0.5


def test_tgi_model_from_target_label_and_float_le(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    assert _sum(store, "tgi", "requests") == 4 * N
    models = Store(store).query("SELECT DISTINCT model FROM counters WHERE region='tgi'")
    assert models["model"].tolist() == ["tgi-llama-8b"]
    les = (
        Store(store)
        .query("SELECT DISTINCT le FROM histograms WHERE region='tgi' ORDER BY le")["le"]
        .tolist()
    )
    assert les == [0.00015, 0.000225, 1.0, float("inf")]


def test_otel_http_errors_are_5xx_only(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    assert _sum(store, "otel", "requests") == 21 * N
    assert _sum(store, "otel", "errors") == 1 * N


def test_kepler_zones_never_summed(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    assert _sum(store, "kepler", "cpu_energy") == 30 * N  # package only, not core/psys
    assert _sum(store, "kepler", "dram_energy") == 6 * N
    assert _sum(store, "kepler", "energy") == 90 * N
    # 0.7: per container and mode (dynamic + idle are disjoint), never the total metric
    assert _sum(store, "kepler07", "cpu_energy") == 2 * (12 + 3) * N


def test_opencost_gpu_cost_is_price_times_count(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    frame = Store(store).query(
        "SELECT MIN(last) AS lo, MAX(last) AS hi, COUNT(*) AS n FROM gauges "
        "WHERE region='opencost' AND signal='gpu_cost'"
    )
    assert float(frame["lo"].iloc[0]) == float(frame["hi"].iloc[0]) == 20.0
    assert int(frame["n"].iloc[0]) == HOURS * 60  # one evaluated value per step


def test_price_table_cost_per_gpu_present(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    per_step = Store(store).query(
        "SELECT ts_utc, SUM(last) AS usd FROM gauges WHERE region='priced' AND "
        "signal='gpu_cost' GROUP BY ts_utc"
    )["usd"]
    assert per_step.max() == 8.0 and per_step.min() == 4.0  # one GPU absent in the gap


def test_ha_dedup_by_replica_label(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    assert _sum(store, "ha", "requests") == 3 * N  # exact: one replica counted
    assert _sum(store, "ha-nodedup", "requests") > 3 * N  # both replicas: doubled


def test_custom_selector_and_expr_signals(collected) -> None:  # type: ignore[no-untyped-def]
    store, _ = collected
    assert _sum(store, "custom", "requests") == 2 * N  # /health excluded by the selector
    depth = Store(store).query(
        "SELECT MIN(last) AS lo, MAX(last) AS hi, ANY_VALUE(unit) AS unit FROM gauges "
        "WHERE region='custom' AND signal='queue_depth'"
    )
    assert float(depth["lo"].iloc[0]) == float(depth["hi"].iloc[0]) == 12.0
    assert depth["unit"].iloc[0] == "requests"


def test_coverage_in_the_run_log(collected) -> None:  # type: ignore[no-untyped-def]
    _store, runs = collected
    cov = runs["priced"]["coverage"]
    # GPU 1 missed scrapes 200-319: steps 101-159 (59 of 360) hold none: 661/720 pairs
    assert cov["gpu_utilization"] == pytest.approx(661 / 720, abs=1e-6)
    assert runs["triton"]["coverage"]["requests"] == 1.0
    assert runs["priced"]["samples"] > 0 and runs["priced"]["queries"] > 0

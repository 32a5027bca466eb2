"""Reliability of ``observatory collect`` against real Prometheus servers.

- SIGKILL at random instants during a backfill, restarted each time: the final totals
  equal the ground truth exactly and no row is stored twice.
- A slow Prometheus (a real one behind a delaying proxy on loopback) hits the
  per-query timeout instead of hanging.
- Daemon mode (``--every``) keeps collecting, serves its own metrics, and exits 0 on
  SIGTERM after finishing its write.
- ``--dry-run``, ``backfill`` (progress bar), ``check-config --connect``.
- Mimir: a real Prometheus behind a proxy that serves ``/prometheus`` and demands
  ``X-Scope-OrgID`` (the proxy is the fake part: Prometheus has no tenants).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prom_harness import (
    REPO,
    ServedFleet,
    free_port,
    iso,
    observatory_cmd,
    run_cli,
    serve_proxy,
    store_totals,
    truth_totals,
    write_config,
)

from observatory.store import Store

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def _span(fleet) -> str:  # type: ignore[no-untyped-def]
    return f"{int((fleet.end - fleet.start).total_seconds())}s"


def _no_duplicate_rows(store: Path) -> None:
    dup = Store(store).query(
        "SELECT count(*) AS n FROM (SELECT region, signal, ts_utc, model, arm, instance, "
        "count(*) AS c FROM counters GROUP BY ALL HAVING c > 1)"
    )
    assert int(dup["n"].iloc[0]) == 0


def test_sigkill_at_random_points_loses_and_doubles_nothing(
    served: ServedFleet, tmp_path: Path
) -> None:
    fleet = served.fleet
    store = tmp_path / "store"
    config = write_config(
        tmp_path / "observatory.yaml",
        store,
        served.urls,
        chunk="1h",
        write_batch="2h",  # 12 writes per region: many states to be killed between
        lookback=_span(fleet),  # a restart without --from starts at the fleet's start
        parallel_queries=2,
    )
    rng = random.Random(20261130)
    cmd = [*observatory_cmd(), "collect", "--config", str(config), "--to", iso(fleet.end)]
    kills = 0
    states = []
    marker = store / "lake" / "regions" / "regions.parquet"  # rewritten as a run starts
    for attempt in range(7):
        args = cmd + (["--from", iso(fleet.start)] if attempt == 0 else [])
        launched = time.time()
        proc = subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Start-up (imports) takes seconds and varies with the machine's load: wait
        # until the run has begun, then kill it at a random instant of the collection.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if marker.exists() and marker.stat().st_mtime >= launched:
                break
            time.sleep(0.05)
        # Later attempts may wait longer, so that the kills also land after the first
        # writes even when a write takes over a second on a loaded machine.
        time.sleep(rng.uniform(0.05, 1.0 + 0.5 * attempt))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        state = store / "state.json"
        states.append(state.read_text() if state.exists() else "")
    assert kills >= 3, f"only {kills} runs were killed mid-way: make the delays shorter"
    # distinct states: the kills landed at different points of the backfill
    assert len(set(states)) >= 2, states
    final = run_cli(["collect", "--config", str(config), "--to", iso(fleet.end)], timeout=600)
    assert final.returncode == 0, final.stderr
    totals = store_totals(store)
    for region in served.servers:
        assert totals[region] == truth_totals(fleet.truth, region), region
    _no_duplicate_rows(store)
    saved = json.loads((store / "state.json").read_text())["regions"]
    for region in served.servers:
        assert saved[region]["collected_until"] == fleet.end.isoformat()
    print(f"\n{kills} SIGKILLs; states seen: {len(set(states))}")


def test_slow_prometheus_hits_per_query_timeouts(served: ServedFleet, tmp_path: Path) -> None:
    fleet = served.fleet
    with serve_proxy(served.servers[REGION].url, delay_s=4.0) as slow:
        config = write_config(
            tmp_path / "observatory.yaml",
            tmp_path / "store",
            {"slow": slow},
            timeout="1s",
            retries=1,
            retry_backoff="100ms",
        )
        began = time.monotonic()
        res = run_cli(
            ["collect", "--config", str(config), "--from", iso(fleet.start), "--to", iso(fleet.end)]
        )
        took = time.monotonic() - began
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "timed out after 1s" in res.stderr and "2 attempts" in res.stderr, res.stderr
    # 2 attempts of 1 s per query plus start-up; never the proxy's 4 s per query in full
    assert took < 60, took


def test_daemon_every_serves_metrics_and_stops_cleanly_on_sigterm(
    served: ServedFleet, tmp_path: Path
) -> None:
    fleet = served.fleet
    store = tmp_path / "store"
    config = write_config(
        tmp_path / "observatory.yaml", store, {REGION: served.servers[REGION].url}
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            *observatory_cmd(),
            "collect",
            "--config",
            str(config),
            "--from",
            iso(fleet.start),
            "--every",
            "2s",
            "--metrics-port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        runs = 0.0
        text = ""
        while time.monotonic() < deadline and runs < 2:
            time.sleep(0.5)
            assert proc.poll() is None, proc.communicate()
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except requests.RequestException:
                continue
            runs = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("observatory_collector_runs_total{")
            )
        assert runs >= 2, text  # the first run (the backfill) and at least one more
        assert f'observatory_collector_samples_total{{region="{REGION}"}}' in text
        assert f'observatory_collector_lag_seconds{{region="{REGION}"}}' in text
        assert "observatory_collector_coverage_ratio" in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err, err
    assert store_totals(store)[REGION] == truth_totals(fleet.truth, REGION)
    assert out.count(REGION) >= 2, out


def test_dry_run_prints_promql_per_region(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "o.yaml",
        tmp_path / "store",
        {"a": "http://127.0.0.1:9", "b": "http://127.0.0.1:9"},
        presets=["vllm", "opencost_gpu"],
    )
    res = run_cli(["collect", "--config", str(config), "--dry-run"])
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "# region a" in out and "# region b" in out
    assert "vllm:request_success_total[" in out and "errors, requests" in out
    assert "finished_reason" not in out  # errors come from the shared fetch
    assert "node_gpu_hourly_cost" in out and "query_range" in out
    assert not (tmp_path / "store").exists()


def test_backfill_shows_progress_and_collects_exactly(served: ServedFleet, tmp_path: Path) -> None:
    fleet = served.fleet
    store = tmp_path / "store"
    config = write_config(tmp_path / "o.yaml", store, {REGION: served.servers[REGION].url})
    res = run_cli(
        ["backfill", "--config", str(config), "--from", iso(fleet.start), "--to", iso(fleet.end)]
    )
    assert res.returncode == 0, res.stderr
    assert f"{REGION}" in res.stderr and "100.0% written" in res.stderr, res.stderr
    assert store_totals(store)[REGION] == truth_totals(fleet.truth, REGION)


def test_check_config_connect_table(served: ServedFleet, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "o.yaml",
        tmp_path / "store",
        {REGION: served.servers[REGION].url, "closed": f"http://127.0.0.1:{free_port()}"},
    )
    res = run_cli(["check-config", str(config), "--connect"])
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.strip()}
    assert lines[REGION].split()[1] == "ok" and "2.42" in lines[REGION], res.stdout
    assert lines["closed"].split()[1] == "unreachable", res.stdout
    assert "1 of 2 regions reachable" in res.stdout
    # The fleet's samples end 2 h before now, beyond an instant query's 5 min: the
    # check looks back over the collection lookback, so what `collect` fetches counts.
    found, wanted = (int(x) for x in lines[REGION].split()[4].split("/"))
    assert 0 < found < wanted, res.stdout
    absent = lines[REGION].split(": ", 1)[1]
    assert "vllm:e2e_request_latency_seconds_bucket" not in absent, res.stdout


def test_mimir_prefix_and_tenant_header_through_a_proxy(
    served: ServedFleet, tmp_path: Path
) -> None:
    fleet = served.fleet
    with serve_proxy(
        served.servers[REGION].url, prefix="/prometheus", require_headers={"X-Scope-OrgID": "t1"}
    ) as mimir:
        store = tmp_path / "store"
        window = ["--from", iso(fleet.start), "--to", iso(fleet.end)]
        no_tenant = write_config(
            tmp_path / "a.yaml", store, {REGION: mimir}, region_extra={REGION: {"backend": "mimir"}}
        )
        res = run_cli(["collect", "--config", str(no_tenant), *window])
        assert res.returncode == 1 and "HTTP 401" in res.stderr and "no org id" in res.stderr
        config = write_config(
            tmp_path / "b.yaml",
            store,
            {REGION: mimir},
            region_extra={REGION: {"backend": "mimir", "tenant": "t1"}},
        )
        res = run_cli(["collect", "--config", str(config), *window])
    assert res.returncode == 0, res.stderr
    assert store_totals(store)[REGION] == truth_totals(fleet.truth, REGION)

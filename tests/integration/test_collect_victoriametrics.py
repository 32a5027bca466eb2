"""``backend: victoriametrics`` against a real VictoriaMetrics (Debian's package).

The same six hours of the demo fleet go into a real Prometheus (promtool blocks) and a
real single-node VictoriaMetrics (``/api/v1/import/prometheus``).  Collected through
each, the stored totals equal the ground truth exactly and every counter, histogram
and gauge row is the same.  The notes of docs/configuration.md are checked here:
VictoriaMetrics drops NaN samples at ingestion (the collector drops them too, so the
rows agree and NaN counts as missing coverage), and its ``query_range`` step
rounding changes nothing for the collector's step-aligned windows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from prom_harness import (
    VICTORIA_METRICS,
    Fleet,
    PromServer,
    VMServer,
    backfill_openmetrics,
    build_fleet,
    default_fleet_end,
    iso,
    missing_binaries,
    om_lines,
    run_cli,
    store_totals,
    truth_totals,
    write_config,
)

from observatory.store import Store

pytestmark = pytest.mark.integration

REGION = "us-east-1"
PROBE = "vm_nan_probe"  # a gauge with NaN samples, written to both servers
PROBE_VALUES = [1.0, math.nan, 2.0, math.nan, math.nan, 4.0]


@dataclass
class Both:
    fleet: Fleet
    store: Path
    stderr: str
    vm: VMServer


def _probe_text(t0: int) -> str:
    points = (
        (t0 + 60 * (i + 1), "NaN" if math.isnan(v) else v) for i, v in enumerate(PROBE_VALUES)
    )
    return "\n".join(om_lines(PROBE, {"model_name": "probe"}, points)) + "\n# EOF\n"


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    why = missing_binaries()
    if why:
        pytest.skip(why)
    if not VICTORIA_METRICS.exists():
        pytest.skip(
            f"{VICTORIA_METRICS} absent: install the Debian package 'victoria-metrics'"
            " (scripts/setup.sh --test does)"
        )
    root = tmp_path_factory.mktemp("vm")
    fleet = build_fleet(root, [REGION], days=0.25, end=default_fleet_end(), keep_openmetrics=True)
    om = root / "openmetrics" / f"{REGION}.om"
    probe = root / "probe.om"
    probe.write_text(_probe_text(int(fleet.start.timestamp())), encoding="utf-8")
    prom_tsdb = fleet.tsdb_copy(REGION, root / "tsdb")
    backfill_openmetrics(probe.read_text(encoding="utf-8"), root, "probe", into=prom_tsdb)
    prom = PromServer(prom_tsdb, root, name="prometheus")
    vm = VMServer(root / "vm-data", root)
    try:
        prom.start()
        vm.start()
        assert vm.import_openmetrics(om) == fleet.samples[REGION]
        vm.import_openmetrics(probe)
        store = root / "store"
        extra = {
            "signals": [
                {"name": "vm_probe", "kind": "gauge", "unit": "x", "selector": PROBE},
                {
                    "name": "power_sum",
                    "kind": "gauge",
                    "unit": "W",
                    "expr": "sum(DCGM_FI_DEV_POWER_USAGE)",
                },
            ]
        }
        config = write_config(
            root / "o.yaml",
            store,
            {"prom": prom.url, "vm": vm.url},
            region_extra={"prom": extra, "vm": {**extra, "backend": "victoriametrics"}},
        )
        res = run_cli(
            ["collect", "--config", str(config), "--from", iso(fleet.start), "--to", iso(fleet.end)]
        )
        assert res.returncode == 0, res.stdout + res.stderr
        yield Both(fleet, store, res.stderr, vm)
    finally:
        prom.stop()
        vm.stop()


def test_totals_through_victoriametrics_equal_ground_truth(both: Both) -> None:
    assert "error" not in both.stderr.lower(), both.stderr
    expected = truth_totals(both.fleet.truth, REGION)
    got = store_totals(both.store)
    assert got["vm"] == expected, (got, expected)
    assert got["prom"] == expected


def _rows(store: Path, table: str, region: str) -> pd.DataFrame:
    frame = Store(store).query(
        f"SELECT * FROM {table} WHERE region = $r ORDER BY ALL", {"r": region}
    )
    return frame.drop(columns=["region"]).reset_index(drop=True)


@pytest.mark.parametrize("table", ["counters", "histograms", "gauges"])
def test_every_row_equals_prometheus(both: Both, table: str) -> None:
    vm, prom = _rows(both.store, table, "vm"), _rows(both.store, table, "prom")
    assert len(prom) > 0
    pd.testing.assert_frame_equal(vm, prom)


def test_nan_samples_dropped_and_counted_missing(both: Both) -> None:
    """VictoriaMetrics drops NaN at ingestion; Prometheus stores it and the collector
    drops it: both give the finite samples only, and coverage below 1."""
    t_end = both.fleet.start + timedelta(minutes=len(PROBE_VALUES))
    raw = requests.get(
        f"{both.vm.url}/api/v1/query",
        params={"query": f"{PROBE}[1h]", "time": f"{t_end.timestamp():.3f}"},
        timeout=10,
    ).json()["data"]["result"][0]["values"]
    finite = [v for v in PROBE_VALUES if not math.isnan(v)]
    assert [float(v) for _, v in raw] == finite  # no NaN came back from VictoriaMetrics
    frame = Store(both.store).query(
        "SELECT region, SUM(samples) AS n, SUM(mean * samples) AS s FROM gauges "
        "WHERE signal = 'vm_probe' GROUP BY region ORDER BY region"
    )
    assert frame["n"].tolist() == [len(finite)] * 2
    assert frame["s"].tolist() == [sum(finite)] * 2
    runs = [json.loads(x) for x in (both.store / "runs.jsonl").read_text().splitlines()]
    cov = {r["region"]: r["coverage"]["vm_probe"] for r in runs}
    assert cov["vm"] == cov["prom"] < 1.0


def test_step_rounding_changes_nothing_for_aligned_windows(both: Both) -> None:
    """``expr`` signals use query_range, which VictoriaMetrics aligns to the step: the
    collector's windows are step-aligned, so each step has the value Prometheus gives."""
    sql = (
        "SELECT ts_utc, mean FROM gauges WHERE signal = 'power_sum' AND region = $r ORDER BY ts_utc"
    )
    vm = Store(both.store).query(sql, {"r": "vm"})
    prom = Store(both.store).query(sql, {"r": "prom"})
    assert len(vm) == len(prom) > 300
    assert vm["ts_utc"].tolist() == prom["ts_utc"].tolist()
    assert (vm["mean"] - prom["mean"]).abs().max() < 1e-9

"""The collector's own Prometheus metrics (prometheus_client).

Exposed by ``observatory collect --metrics-port PORT`` (daemon mode) at
``http://HOST:PORT/metrics``:

- ``observatory_collector_samples_total{region}``: raw samples fetched;
- ``observatory_collector_rows_total{region,table}``: rows written to the store;
- ``observatory_collector_errors_total{region,kind}``: failed queries (``unreachable``,
  ``server``: 5xx/429 after retries, ``query``: 4xx, ``other``);
- ``observatory_collector_runs_total{region,status}``: region runs by outcome;
- ``observatory_collector_lag_seconds{region}``: settled time minus collected-until;
- ``observatory_collector_last_success_timestamp_seconds{region}``;
- ``observatory_collector_coverage_ratio{region,signal}``: share of expected
  (series, step) pairs that held a sample in the last run;
- ``observatory_collector_region_duration_seconds{region}``: histogram of run time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from collectors.collect import RegionReport

REGISTRY = CollectorRegistry(auto_describe=True)
SAMPLES = Counter(
    "observatory_collector_samples", "Raw samples fetched", ["region"], registry=REGISTRY
)
ROWS = Counter(
    "observatory_collector_rows",
    "Rows written to the store",
    ["region", "table"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "observatory_collector_errors",
    "Queries that failed after retries",
    ["region", "kind"],
    registry=REGISTRY,
)
RUNS = Counter(
    "observatory_collector_runs", "Region runs by outcome", ["region", "status"], registry=REGISTRY
)
LAG = Gauge(
    "observatory_collector_lag_seconds",
    "Settled time minus the time the region is collected up to",
    ["region"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "observatory_collector_last_success_timestamp_seconds",
    "When the region last finished a run without errors",
    ["region"],
    registry=REGISTRY,
)
COVERAGE = Gauge(
    "observatory_collector_coverage_ratio",
    "Share of expected (series, step) pairs that held a sample in the last run",
    ["region", "signal"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "observatory_collector_region_duration_seconds",
    "Time one region's run took",
    ["region"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
    registry=REGISTRY,
)


def observe_region(region: str, report: RegionReport, settled_ms: int) -> None:
    """Record one region's run."""
    RUNS.labels(region, report.status).inc()
    DURATION.labels(region).observe(report.seconds)
    if report.status in ("ok", "current"):
        LAST_SUCCESS.labels(region).set(time.time())
    if report.collected_until is not None:
        LAG.labels(region).set(max(0.0, settled_ms / 1000 - report.collected_until.timestamp()))
    for signal, ratio in report.coverage_ratios().items():
        if ratio is not None:
            COVERAGE.labels(region, signal).set(ratio)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose :data:`REGISTRY` on ``http://addr:port/metrics`` (a daemon thread)."""
    start_http_server(port, addr=addr, registry=REGISTRY)

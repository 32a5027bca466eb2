"""Fixtures: the demo fleet served by real Prometheus servers (one per region).

Session scope: one day of the demo fleet for three regions is written as
OpenMetrics (``observatory demo --openmetrics``), backfilled with promtool, and
served by one ``prometheus`` per region on a free 127.0.0.1 port; the servers are
terminated at teardown.  The collected store (one ``observatory collect`` of the whole
day) is shared by the exactness and the quantile tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prom_harness import (
    Collected,
    Fleet,
    PromServer,
    ServedFleet,
    build_fleet,
    default_fleet_end,
    iso,
    missing_binaries,
    run_cli,
    write_config,
)

REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
DAYS = 1


def _require_prometheus() -> None:
    why = missing_binaries()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """One day of the demo fleet for three regions, as promtool blocks."""
    _require_prometheus()
    root = tmp_path_factory.mktemp("fleet")
    return build_fleet(root, REGIONS, days=DAYS, end=default_fleet_end())


@pytest.fixture(scope="session")
def served(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedFleet]:
    """One Prometheus per region serving the backfilled fleet."""
    work = tmp_path_factory.mktemp("servers")
    servers: dict[str, PromServer] = {}
    try:
        for region in REGIONS:
            tsdb = fleet.tsdb_copy(region, work / f"tsdb-{region}")
            servers[region] = PromServer(tsdb, work, name=region)
        for server in servers.values():
            server.start()
        yield ServedFleet(fleet, servers)
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def collected(served: ServedFleet, tmp_path_factory: pytest.TempPathFactory) -> Collected:
    """The whole day collected from the three servers into a fresh store."""
    root = tmp_path_factory.mktemp("collected")
    store = root / "store"
    config = write_config(root / "observatory.yaml", store, served.urls)
    fleet = served.fleet
    result = run_cli(
        ["collect", "--config", str(config), "--from", iso(fleet.start), "--to", iso(fleet.end)]
    )
    return Collected(store, config, result)

"""Failing regions: a stopped Prometheus, an HTTP 500, a closed port; recovery.

One failing region never stops the others; its errors name the region, the query
and what went wrong; after the failure is fixed the next run collects the missing
window exactly, and nothing already stored is collected twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_harness import (
    PromServer,
    ServedFleet,
    free_port,
    iso,
    run_cli,
    serve_http_error,
    store_totals,
    truth_totals,
    write_config,
)

pytestmark = pytest.mark.integration

HEALTHY, STOPPED = "us-east-1", "eu-west-1"
ERROR_500, WRONG_URL = "broken-500", "wrong-url"
ERROR_BODY = "injected failure: storage is on fire"


@pytest.fixture
def http_500() -> Iterator[str]:
    # A fake: a real Prometheus cannot be made to answer HTTP 500 on demand, so a
    # tiny local http.server answers every request with 500 and a JSON error body.
    with serve_http_error(500, ERROR_BODY) as url:
        yield url


@pytest.fixture
def stopped(served: ServedFleet, tmp_path: Path) -> Iterator[PromServer]:
    """A Prometheus of eu-west-1 on its own TSDB copy, started, then killed (SIGKILL)."""
    tsdb = served.fleet.tsdb_copy(STOPPED, tmp_path / f"tsdb-{STOPPED}")
    server = PromServer(tsdb, tmp_path, name=STOPPED).start()
    server.stop(kill=True)
    try:
        yield server
    finally:
        server.stop()


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def _errors_of(stderr: str, region: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(f"error: region {region}: query '")]


def _status(stdout: str, region: str) -> str:
    line = next((ln for ln in stdout.splitlines() if ln.split()[:1] == [region]), None)
    assert line is not None, stdout
    return line.split()[1]


def test_failing_regions_reported_then_recovered(
    served: ServedFleet, stopped: PromServer, http_500: str, tmp_path: Path
) -> None:
    fleet = served.fleet
    store = tmp_path / "store"
    config = write_config(
        tmp_path / "observatory.yaml",
        store,
        {
            HEALTHY: served.servers[HEALTHY].url,
            STOPPED: stopped.url,
            ERROR_500: http_500,
            WRONG_URL: _closed_port_url(),
        },
        lookback="1d",  # a region's first run without --from starts a day back
        timeout="10s",
    )
    window = ["--to", iso(fleet.end)]

    # Run 1: three of four regions fail.
    first = run_cli(["collect", "--config", str(config), "--from", iso(fleet.start), *window])
    assert first.returncode == 0, first.stderr
    assert _status(first.stdout, HEALTHY) == "ok"
    for region in (STOPPED, ERROR_500, WRONG_URL):
        assert _status(first.stdout, region) == "failed", first.stdout
    stopped_errors = _errors_of(first.stderr, STOPPED)
    assert stopped_errors and "unreachable" in stopped_errors[0], first.stderr
    assert re.search(r"refused|Max retries", stopped_errors[0]), stopped_errors[0]
    wrong_errors = _errors_of(first.stderr, WRONG_URL)
    assert wrong_errors and "unreachable" in wrong_errors[0], first.stderr
    errors_500 = _errors_of(first.stderr, ERROR_500)
    assert errors_500, first.stderr
    for line in errors_500:  # the query, the status and the server's own message
        assert "[" in line and "500" in line and ERROR_BODY in line, line
    expected = truth_totals(fleet.truth, HEALTHY)
    after_first = store_totals(store)
    assert set(after_first) == {HEALTHY}, after_first
    assert after_first[HEALTHY] == expected

    # Run 2: the stopped Prometheus is back (same TSDB folder, same port); same --to,
    # no --from: the healthy region is current, the recovered one collects its day.
    stopped.restart()
    second = run_cli(["collect", "--config", str(config), *window])
    assert second.returncode == 0, second.stderr
    assert _status(second.stdout, HEALTHY) == "current", second.stdout
    assert _status(second.stdout, STOPPED) == "ok", second.stdout + second.stderr
    assert not _errors_of(second.stderr, STOPPED), second.stderr
    after_second = store_totals(store)
    assert after_second[STOPPED] == truth_totals(fleet.truth, STOPPED)
    assert after_second[HEALTHY] == after_first[HEALTHY] == expected  # nothing doubled

    # Run 3: an explicit backfill of the same window again rewrites it; still exact.
    third = run_cli(["collect", "--config", str(config), "--from", iso(fleet.start), *window])
    assert third.returncode == 0, third.stderr
    after_third = store_totals(store)
    for region in (HEALTHY, STOPPED):
        assert after_third[region] == truth_totals(fleet.truth, region), region


def test_all_regions_failing_exits_1(http_500: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "observatory.yaml",
        tmp_path / "store",
        {ERROR_500: http_500, WRONG_URL: _closed_port_url()},
        timeout="5s",
    )
    res = run_cli(
        [
            "collect",
            "--config",
            str(config),
            "--from",
            "2026-01-01T00:00Z",
            "--to",
            "2026-01-01T01:00Z",
        ]
    )
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert _errors_of(res.stderr, ERROR_500) and _errors_of(res.stderr, WRONG_URL), res.stderr
    assert "no region could be collected" in res.stderr


def test_bad_config_exits_2_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "observatory.yaml"
    config.write_text(
        "store: store\n"
        "collection:\n"
        "  step: 60s\n"
        "regions:\n"
        "  - name: us-east-1\n"
        "    url: http://127.0.0.1:9\n"
        "    latitude: 123\n"  # line 7: out of range
        "    longitude: -77.45\n"
        "    presets: [vllm, dcgm]\n",
        encoding="utf-8",
    )
    res = run_cli(["collect", "--config", str(config)])
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert re.search(rf"{re.escape(str(config))}:7: regions\[0\]\.latitude", res.stderr), res.stderr
    assert not (tmp_path / "store").exists()  # nothing was collected or created

"""A live Prometheus scraping itself, collected with the ``prometheus`` preset.

Unlike the backfilled fleet, these are real scrapes of a real process: the request
counters and latency histogram of Prometheus's own HTTP API
(``prometheus_http_requests_total``, ``prometheus_http_request_duration_seconds``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import requests
from prom_harness import REPO, PromServer, iso, missing_binaries, run_cli, write_config

from observatory.store import Store

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.integration

SELF_SCRAPE = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
#: Prometheus's own request-duration buckets (seconds), plus +Inf.
PROMETHEUS_BUCKETS = [0.1, 0.2, 0.4, 1.0, 3.0, 8.0, 20.0, 60.0, 120.0, float("inf")]
API_REQUESTS = 50


@dataclass
class SelfScraped:
    store: Path
    stdout: str
    stderr: str
    returncode: int
    collect_started: datetime
    window_end: datetime


def _minute_floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def self_scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SelfScraped]:
    why = missing_binaries()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("self-scrape")
    began = datetime.now(UTC)
    server = PromServer(root / "tsdb", root, config_text=SELF_SCRAPE, name="self").start()
    try:
        # Prometheus applies its scrape targets about 5 s after start: wait for its
        # first scrape of itself, then one more second, so that the series of the
        # /api/v1/query handler (created by these polls) has a sample before our
        # requests; then every one of them is an increase the collector must see.
        deadline = time.monotonic() + 60
        while not server.query("up", time.time()):
            assert time.monotonic() < deadline, f"no self-scrape after 60 s: {server.log_tail()}"
            time.sleep(0.2)
        time.sleep(1.5)
        for i in range(API_REQUESTS):  # spread over ~2.5 s: several scrapes
            url = f"{server.url}/api/v1/query"
            answer = requests.get(url, params={"query": f"up + {i}"}, timeout=10)
            assert answer.status_code == 200, answer.text
            time.sleep(0.05)
        time.sleep(10)  # ten more scrapes at 1 s
        # step stays 60 s; the window is explicit.  Collection floors --to to the step,
        # so --to is the NEXT minute boundary (a Prometheus instant query may be in the
        # future): the window then holds every scrape so far.  --from is a minute before
        # the server started.  settle must be positive in the config (0s is refused);
        # with an explicit --to it plays no part.
        start = _minute_floor(began) - timedelta(minutes=1)
        end = _minute_floor(datetime.now(UTC)) + timedelta(minutes=1)
        config = write_config(
            root / "observatory.yaml",
            root / "store",
            {"lab-1": server.url},  # no "prometheus" here: the dashboard must show the model
            presets=["prometheus"],
            settle="1s",
        )
        began_collect = datetime.now(UTC)
        res = run_cli(["collect", "--config", str(config), "--from", iso(start), "--to", iso(end)])
        yield SelfScraped(
            root / "store", res.stdout, res.stderr, res.returncode, began_collect, end
        )
    finally:
        server.stop()


def test_self_scrape_requests_and_latency_buckets(self_scraped: SelfScraped) -> None:
    assert self_scraped.returncode == 0, self_scraped.stderr
    store = Store(self_scraped.store)
    counters = store.query(
        "SELECT signal, SUM(value) AS v FROM counters WHERE model = 'prometheus' GROUP BY signal"
    ).set_index("signal")["v"]
    assert counters["requests"] > 0, counters
    assert counters["latency_sum"] > 0, counters
    buckets = store.query(
        "SELECT le, SUM(value) AS n FROM histograms "
        "WHERE model = 'prometheus' AND signal = 'latency' GROUP BY le ORDER BY le"
    )
    assert buckets["le"].tolist() == PROMETHEUS_BUCKETS
    counts = buckets["n"].to_numpy()
    assert counts[-1] > 0 and np.all(np.diff(counts) >= 0), buckets  # cumulative buckets
    # Our API requests (plus the scrapes of /metrics) are in the +Inf bucket.
    assert counts[-1] >= API_REQUESTS, buckets
    assert counters["requests"] >= API_REQUESTS, counters


def test_state_never_moves_past_now(self_scraped: SelfScraped) -> None:
    """--to was in the future: what exists is collected, but the saved state stops at
    settled time, so the next run collects the rest of the last step (before the
    fix the state jumped to --to and those samples were never collected)."""
    assert self_scraped.returncode == 0, self_scraped.stderr
    state = json.loads((self_scraped.store / "state.json").read_text(encoding="utf-8"))
    until = datetime.fromisoformat(state["regions"]["lab-1"]["collected_until"])
    assert until <= self_scraped.collect_started < self_scraped.window_end, (until, self_scraped)


def test_dashboard_renders_self_scrape(
    self_scraped: SelfScraped, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = REPO / "app" / "main.py"
    if not app.exists():
        pytest.skip("app/main.py does not exist yet")
    from streamlit.testing.v1 import AppTest

    assert self_scraped.returncode == 0, self_scraped.stderr
    monkeypatch.setenv("OBSERVATORY_STORE", str(self_scraped.store))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    at = AppTest.from_file(str(app), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "prometheus" in _rendered_text(at), "model 'prometheus' not shown by the dashboard"


def _rendered_text(at: AppTest) -> str:
    """Everything the app rendered, as text: labels, values and options of elements,
    markdown, the cells of dataframes, and the protobuf of anything else (charts)."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        children = getattr(node, "children", None)
        if isinstance(children, dict):  # a block: main, sidebar, tabs, columns, expanders
            for child in children.values():
                walk(child)
            return
        for attr in ("label", "value", "options", "proto"):
            with contextlib.suppress(Exception):  # elements lack some of these
                v = getattr(node, attr)
                parts.append(v.to_string() if hasattr(v, "to_string") else str(v))

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(parts)

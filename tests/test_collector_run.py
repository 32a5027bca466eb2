"""The collection run against a small fake Prometheus API (fast, no promtool).

The fake answers instant queries of range selectors (``name[Ns]`` or ``name[Nms]``) with
one counter per metric name that grows by 1 a minute, so any window's exact total is
its number of minutes.  It is a fake because it must misbehave on demand: refuse one
metric (HTTP 400), refuse ranges as too large (Prometheus's 422), add warnings.
Real-Prometheus behaviour is tested in tests/integration.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from collectors.collect import Collector
from collectors.selector import parse_selector
from observatory.config import parse_config
from observatory.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_QUERY = re.compile(r"^(?P<sel>.+)\[(?P<n>\d+)(?P<unit>ms|s)\]$")


class FakeProm:
    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.max_range_ms: int | None = None
        self.warnings: list[str] = []
        self.queries: list[str] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                status, body = outer.answer(params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if "match[]" in params:  # /api/v1/series: the label sets of the selector
            at = params["end"]
            found = self.answer({"query": f"{params['match[]']}[1s]", "time": at})[1]
            labels = [r["metric"] for r in found["data"]["result"]]
            return 200, {"status": "success", "data": labels}
        query = params["query"]
        self.queries.append(query)
        m = _QUERY.match(query)
        assert m, query
        name = m["sel"].split("{")[0]
        if name in self.broken:
            return 400, {"status": "error", "errorType": "bad_data", "error": f"{name}: broken"}
        range_ms = int(m["n"]) * (1 if m["unit"] == "ms" else 1000)
        if self.max_range_ms is not None and range_ms > self.max_range_ms:
            return 422, {
                "status": "error",
                "errorType": "execution",
                "error": "query processing would load too many samples into memory",
            }
        at_ms = round(float(params["time"]) * 1000)
        lo = at_ms - range_ms
        first = -(-lo // 60_000) * 60_000
        values = [[t / 1000, str(t // 60_000)] for t in range(first, at_ms + 1, 60_000)]
        labels = {"__name__": name, "model_name": "m"}
        if name.endswith("_bucket"):
            labels["le"] = "+Inf"
        if not name:  # {__name__=~"..."}: renamed metrics, absent here
            result: list[dict[str, Any]] = []
        elif name == "vllm:request_success_total":
            # two reasons, one of them "error": 1 a minute each
            result = [
                {"metric": {**labels, "finished_reason": r}, "values": values}
                for r in ("stop", "error")
            ]
        else:
            result = [{"metric": labels, "values": values}]
        sel = parse_selector(m["sel"])
        result = [r for r in result if sel.matches(r["metric"])]
        body: dict[str, Any] = {
            "status": "success",
            "data": {"resultType": "matrix", "result": result},
        }
        if self.warnings:
            body["warnings"] = self.warnings
        return 200, body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prom() -> Iterator[FakeProm]:
    p = FakeProm()
    yield p
    p.close()


def _config(url: str, store: Path, **coll: str) -> Any:
    extra = "".join(f"  {k}: {v}\n" for k, v in coll.items())
    return parse_config(
        f"store: {store}\ncollection:\n  step: 60s\n  chunk: 2h\n  write_batch: 6h\n"
        f"  retries: 0\n{extra}"
        f"regions:\n  - {{name: r, url: '{url}', latitude: 0, longitude: 0, presets: [vllm]}}\n"
    )


def _totals(store: Path) -> dict[str, float]:
    frame = Store(store).query("SELECT signal, SUM(value) AS v FROM counters GROUP BY signal")
    return dict(zip(frame["signal"], frame["v"].astype(float), strict=True))


def test_one_failing_query_does_not_stop_the_others_and_is_filled_later(
    prom: FakeProm, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    config = _config(prom.url, store)
    end = T0 + timedelta(hours=12)
    prom.broken = {"vllm:prompt_tokens_total"}
    (report,) = Collector(config, Store(store)).run(start=T0, end=end, now=end + timedelta(hours=1))
    assert report.status == "partial"
    assert len(report.errors) == 1 and "broken" in report.errors[0]
    assert "vllm:prompt_tokens_total[" in report.errors[0] and "HTTP 400" in report.errors[0]
    totals = _totals(store)
    minutes = 12 * 60
    assert totals["requests"] == 2 * minutes and totals["errors"] == minutes
    assert "prompt_tokens" not in totals
    state = Store(store).read_state()["regions"]["r"]
    assert state["signals"]["requests"] == end.isoformat()
    assert state["signals"]["prompt_tokens"] == T0.isoformat()  # where it must resume
    assert state["collected_until"] == T0.isoformat()  # the slowest signal
    # fixed: the next run (no --from) fetches only what is missing and fills it exactly
    prom.broken = set()
    prom.queries.clear()
    (again,) = Collector(config, Store(store)).run(end=end, now=end + timedelta(hours=1))
    assert again.status == "ok", again.errors
    assert all(q.startswith("vllm:prompt_tokens_total[") for q in prom.queries), prom.queries
    totals = _totals(store)
    assert totals["prompt_tokens"] == minutes and totals["requests"] == 2 * minutes


def test_too_large_answers_are_split_in_time_and_stay_exact(prom: FakeProm, tmp_path: Path) -> None:
    store = tmp_path / "store"
    prom.max_range_ms = 40 * 60_000  # the server refuses ranges over 40 minutes
    end = T0 + timedelta(hours=6)
    (report,) = Collector(_config(prom.url, store), Store(store)).run(
        start=T0, end=end, now=end + timedelta(hours=1)
    )
    assert report.status == "ok", report.errors
    assert _totals(store)["requests"] == 2 * 6 * 60  # nothing lost or doubled at the seams
    assert any(q.endswith("ms]") for q in prom.queries)  # halves start 1 ms after the seam


def test_api_warnings_are_surfaced_in_the_report_and_run_log(
    prom: FakeProm, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    prom.warnings = ["partial response: store 10.0.0.7:10901 unavailable"]
    end = T0 + timedelta(hours=2)
    (report,) = Collector(_config(prom.url, store), Store(store)).run(
        start=T0, end=end, now=end + timedelta(hours=1)
    )
    assert report.status == "ok"
    assert report.warnings and "store 10.0.0.7:10901 unavailable" in report.warnings[0]
    record = json.loads((store / "runs.jsonl").read_text().splitlines()[-1])
    assert record["warnings"] and record["coverage"]["requests"] == 1.0


def test_state_never_passes_settled_time(prom: FakeProm, tmp_path: Path) -> None:
    store = tmp_path / "store"
    now = T0 + timedelta(hours=3, minutes=30)
    (report,) = Collector(_config(prom.url, store), Store(store)).run(
        start=T0, end=T0 + timedelta(hours=6), now=now
    )
    state = Store(store).read_state()["regions"]["r"]
    settled = now - timedelta(seconds=60)
    assert datetime.fromisoformat(state["collected_until"]) <= settled
    assert report.status == "ok"


def test_closed_days_are_compacted_a_budget_at_a_time_and_stay_exact(
    prom: FakeProm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction after a run is bounded (issue #9): with a budget of 0 s each run
    compacts one partition, the next run goes on, and the totals never change."""
    from collectors import collect
    from observatory.hour_files import LEGACY_FILE

    store = tmp_path / "store"
    config = _config(prom.url, store)
    end = T0 + timedelta(hours=6)  # a partial day: hour files
    Collector(config, Store(store)).run(start=T0, end=end, now=end + timedelta(hours=1))
    totals = _totals(store)
    parts = list(Store(store).partitions("counters", dates=[T0.date()]))
    assert len(parts) >= 3 and all(LEGACY_FILE not in {f.name for f in p.files()} for p in parts)
    monkeypatch.setattr(collect, "COMPACT_BUDGET_S", 0.0)
    every = [p for t in ("counters", "histograms", "gauges") for p in Store(store).partitions(t)]
    day_two = T0 + timedelta(days=2, minutes=5)  # T0's date has closed (grace: 1 day)
    runs, compacted = 0, []
    while len(compacted) < len([p for p in every if p.day == T0.date()]):
        runs += 1
        assert runs <= 50
        Collector(config, Store(store)).run(now=day_two + timedelta(minutes=runs))
        compacted = [
            p for p in every if p.day == T0.date() and [f.name for f in p.files()] == [LEGACY_FILE]
        ]
        assert len(compacted) == runs  # one partition a run, no more
    first_day = {
        k: v
        for k, v in Store(store)
        .query(
            "SELECT signal, SUM(value) AS v FROM counters WHERE ts_utc <= $e GROUP BY signal",
            {"e": end},
        )
        .itertuples(index=False)
    }
    assert first_day == totals  # every row of the compacted day once
    assert json.loads((store / "compaction.json").read_text())["through"] >= T0.date().isoformat()


def test_an_end_in_the_future_reads_only_up_to_the_step_in_progress(
    prom: FakeProm, tmp_path: Path
) -> None:
    # `collect --to 2027-06-01` at 12:00:30: the window ends with the step now in
    # progress (12:01), not months ahead; the state stays at settled time.
    store = tmp_path / "store"
    now = T0 + timedelta(hours=2, seconds=30)
    (report,) = Collector(_config(prom.url, store), Store(store)).run(
        start=T0, end=T0 + timedelta(days=180), now=now
    )
    assert report.status == "ok", report.errors
    assert report.window_end == T0 + timedelta(hours=2, minutes=1)
    state = Store(store).read_state()["regions"]["r"]
    assert datetime.fromisoformat(state["collected_until"]) <= now

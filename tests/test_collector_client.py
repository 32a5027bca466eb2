"""The collector's HTTP client and planning, against small local fake servers.

Fakes are used only for what a real Prometheus 2.42 cannot be made to do on demand:
answer 429/503 a set number of times, refuse a query as too large, be slow, send
Thanos's partial-response warnings, or demand Mimir's tenant header.  Everything a
real Prometheus does is tested in ``tests/integration``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from collectors.collect import dedup_replicas, plan_fetches, plan_units
from collectors.presets import PRESETS, Mapping, mappings_for, region_mappings
from collectors.prometheus import MAX_POINTS, QueryError, RegionSource, parse_matrix
from collectors.transform import LabelRules, matrix_rows, preferred_series
from observatory.config import ConfigError, Region, parse_config

Handler = Callable[[str, dict[str, str], dict[str, str]], tuple[int, Any]]


class Fake:
    """A local HTTP server; ``handler(path, params, headers) -> (status, body)``."""

    def __init__(self, handler: Handler):
        self.calls: list[tuple[str, dict[str, str], dict[str, str]]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    body = self.rfile.read(length).decode()
                    params.update({k: v[0] for k, v in parse_qs(body).items()})
                headers = {k: v for k, v in self.headers.items()}
                outer.calls.append((url.path, params, headers))
                status, payload = handler(url.path, params, headers)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Callable[[Handler], Fake]]:
    servers: list[Fake] = []

    def make(handler: Handler) -> Fake:
        servers.append(Fake(handler))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _region(url: str, **extra: Any) -> Region:
    return Region(name="r1", url=url, latitude=0, longitude=0, **extra)


def _matrix_answer(series: list[tuple[dict[str, str], list[tuple[float, str]]]], **extra: Any):
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": m, "values": [[t, v] for t, v in pts]} for m, pts in series],
        },
        **extra,
    }


OK = _matrix_answer([({"__name__": "up"}, [(100.0, "1"), (115.0, "2")])])


# --------------------------------------------------------------------------- retries
def test_retries_429_and_503_then_succeeds(fake) -> None:
    answers = iter([(429, "slow down"), (503, {"status": "error", "error": "overloaded"})])

    def handler(path, params, headers):
        return next(answers, (200, OK))

    server = fake(handler)
    source = RegionSource(_region(server.url), timeout_s=5, retries=3, backoff_s=0.01)
    m = source.raw_samples("up", 115_000, 60_000)
    assert m.samples == 2 and len(server.calls) == 3 and source.retried == 2


def test_4xx_is_not_retried_and_reports_query_and_error_text(fake) -> None:
    body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    server = fake(lambda p, q, h: (400, body))
    source = RegionSource(_region(server.url), timeout_s=5, retries=3, backoff_s=0.01)
    with pytest.raises(QueryError) as err:
        source.raw_samples("up{", 115_000, 60_000)
    assert len(server.calls) == 1  # no retry
    msg = str(err.value)
    assert "up{[60s]" in msg and "HTTP 400" in msg and "bad_data" in msg and "parse error" in msg


def test_5xx_retried_with_backoff_then_reported(fake) -> None:
    server = fake(lambda p, q, h: (500, {"status": "error", "error": "disk on fire"}))
    source = RegionSource(_region(server.url), timeout_s=5, retries=2, backoff_s=0.05)
    began = time.monotonic()
    with pytest.raises(QueryError) as err:
        source.raw_samples("up", 115_000, 60_000)
    assert len(server.calls) == 3
    assert time.monotonic() - began >= 0.05 + 0.1  # exponential: 0.05, then 0.1 (+ jitter)
    assert err.value.status == 500 and "disk on fire" in str(err.value)


def test_connection_refused_is_unreachable() -> None:
    source = RegionSource(_region("http://127.0.0.1:9"), timeout_s=2, retries=1, backoff_s=0.01)
    with pytest.raises(QueryError) as err:
        source.raw_samples("up", 115_000, 60_000)
    assert err.value.unreachable and "unreachable" in str(err.value)


def test_slow_server_hits_the_timeout_not_a_hang(fake) -> None:
    def slow(path, params, headers):
        time.sleep(3)
        return 200, OK

    server = fake(slow)
    source = RegionSource(_region(server.url), timeout_s=0.5, retries=1, backoff_s=0.01)
    began = time.monotonic()
    with pytest.raises(QueryError) as err:
        source.raw_samples("up", 115_000, 60_000)
    assert time.monotonic() - began < 2.5
    assert err.value.unreachable and "timed out" in str(err.value)


# --------------------------------------------------------------------------- backends
def test_thanos_sends_partial_response_false_and_warnings_surface(fake) -> None:
    # A fake: a real Thanos querier would need stores; its warning text is reproduced.
    warn = "No StoreAPIs matched for this query"
    server = fake(lambda p, q, h: (200, {**OK, "warnings": [warn]}))
    source = RegionSource(_region(server.url, backend="thanos"), timeout_s=5)
    m = source.raw_samples("up", 115_000, 60_000)
    assert server.calls[0][1]["partial_response"] == "false"
    assert m.warnings == [warn]


def test_mimir_prefix_and_tenant_header(fake) -> None:
    # A fake for the tenant header only (Prometheus has no tenants): 401 without it.
    def mimir(path, params, headers):
        if headers.get("X-Scope-OrgID") != "team-a":
            return 401, b"no org id"
        assert path == "/prometheus/api/v1/query"
        return 200, OK

    server = fake(mimir)
    bad = RegionSource(_region(server.url + "/prometheus", backend="mimir"), timeout_s=5)
    with pytest.raises(QueryError) as err:
        bad.raw_samples("up", 115_000, 60_000)
    assert "401" in str(err.value) and "no org id" in str(err.value)
    good = RegionSource(
        _region(server.url + "/prometheus", backend="mimir", tenant="team-a"), timeout_s=5
    )
    assert good.raw_samples("up", 115_000, 60_000).samples == 2


def test_victoriametrics_is_partial_flag_becomes_a_warning(fake) -> None:
    server = fake(lambda p, q, h: (200, {**OK, "isPartial": True}))
    source = RegionSource(_region(server.url, backend="victoriametrics"), timeout_s=5)
    assert "isPartial" in source.raw_samples("up", 115_000, 60_000).warnings[0]


def test_query_range_is_split_at_11000_points(fake) -> None:
    def handler(path, params, headers):
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        points = round((end - start) / step) + 1
        if points > MAX_POINTS + 1:
            return 400, {"status": "error", "errorType": "bad_data", "error": "exceeded maximum"}
        ts = [start + i * step for i in range(points)]
        return 200, _matrix_answer([({"__name__": "x"}, [(t, "1") for t in ts])])

    server = fake(handler)
    source = RegionSource(_region(server.url), timeout_s=5)
    m = source.query_range("x", 0, 30_000 * 60_000, 60_000)  # 30,001 points
    assert m.samples == 30_001 and len(server.calls) == 3
    assert np.all(np.diff(m.ts_ms) == 60_000)


# --------------------------------------------------------------------------- parsing
def test_parse_matrix_nan_inf_and_scientific() -> None:
    m = parse_matrix(
        [{"metric": {"a": "1"}, "values": [[1.5, "NaN"], [2, "+Inf"], [3, "-Inf"], [4, "1e3"]]}]
    )
    assert m.ts_ms.tolist() == [1500, 2000, 3000, 4000]
    assert np.isnan(m.values[0]) and m.values[1] == np.inf and m.values[2] == -np.inf
    assert m.values[3] == 1000.0


def test_nan_and_inf_gauge_samples_count_as_missing_coverage() -> None:
    gauge = PRESETS["dcgm"][1]  # gpu_power
    m = parse_matrix(
        [
            {
                "metric": {"Hostname": "h", "gpu": "0"},
                "values": [[60, "100"], [120, "NaN"], [180, "+Inf"], [240, "200"]],
            }
        ]
    )
    rows, cov = matrix_rows(m, gauge, LabelRules(), 0, 240_000, 60_000)
    assert rows["mean"].tolist() == [100.0, 200.0]
    assert (cov.present, cov.expected, cov.non_finite) == (2, 4, 2)


# --------------------------------------------------------------------------- planning
def test_requests_and_errors_share_one_fetch() -> None:
    fetches = plan_fetches(mappings_for(["vllm"]))
    shared = [f for f in fetches if f.text == "vllm:request_success_total"]
    assert len(shared) == 1 and shared[0].signals == {"requests", "errors"}
    assert not any("finished_reason" in f.text for f in fetches)
    units = plan_units(fetches)
    assert sum(len(u.fetches) for u in units) == len(fetches)


def test_triton_units_join_fetches_that_feed_one_signal() -> None:
    units = plan_units(plan_fetches(mappings_for(["triton"])))
    unit = next(u for u in units if "requests" in u.signals)
    texts = {f.text for f in unit.fetches}
    assert {"nv_inference_request_success", "nv_inference_request_failure"} <= texts


def test_shared_fetch_splits_series_locally() -> None:
    fetch = next(
        f for f in plan_fetches(mappings_for(["vllm"])) if f.text == "vllm:request_success_total"
    )
    lab = {"__name__": "vllm:request_success_total", "model_name": "m"}
    m = parse_matrix(
        [
            {"metric": {**lab, "finished_reason": "stop"}, "values": [[0, "0"], [60, "10"]]},
            {"metric": {**lab, "finished_reason": "error"}, "values": [[0, "0"], [60, "2"]]},
        ]
    )
    out = {}
    for mapping, sel in zip(fetch.mappings, fetch.filters, strict=True):
        idx = None
        if sel is not None:
            idx = np.flatnonzero([sel.matches(x) for x in m.labels])
        rows, _ = matrix_rows(m, mapping, LabelRules(), 0, 60_000, 60_000, idx)
        out[mapping.signal] = rows["value"].sum()
    assert out == {"requests": 12.0, "errors": 2.0}


def test_dedup_replicas_keeps_the_fuller_replica() -> None:
    base = {"__name__": "c", "job": "x"}
    m = parse_matrix(
        [
            {"metric": {**base, "replica": "a"}, "values": [[0, "1"], [60, "2"]]},
            {"metric": {**base, "replica": "b"}, "values": [[0, "1"], [60, "2"], [120, "3"]]},
            {"metric": {"__name__": "c", "job": "y", "replica": "a"}, "values": [[0, "5"]]},
        ]
    )
    kept = dedup_replicas(m, "replica")
    assert sorted((x["job"], x["replica"]) for x in kept.labels) == [("x", "b"), ("y", "a")]


def test_old_and_new_metric_names_are_not_both_counted() -> None:
    labels = [
        {"__name__": "vllm:time_per_output_token_seconds_bucket", "le": "1", "model_name": "m"},
        {"__name__": "vllm:inter_token_latency_seconds_bucket", "le": "1", "model_name": "m"},
        {"__name__": "vllm:time_per_output_token_seconds_bucket", "le": "1", "model_name": "o"},
    ]
    itl = next(m for m in PRESETS["vllm"] if m.signal == "itl")
    assert preferred_series(labels, itl.prefer_names).tolist() == [1, 2]


def test_price_table_gives_gpu_cost_per_gpu() -> None:
    region = _region("http://x", presets=["dcgm"], prices=[{"gpu": "A100", "usd_per_hour": 4.0}])
    cost = next(m for m in region_mappings(region) if m.signal == "gpu_cost")
    m = parse_matrix(
        [
            {
                "metric": {"modelName": "NVIDIA A100-SXM4-80GB", "Hostname": "h", "gpu": str(g)},
                "values": [[30, "50"], [60, "60"]],
            }
            for g in range(2)
        ]
        + [
            {
                "metric": {"modelName": "Tesla T4", "Hostname": "h", "gpu": "9"},
                "values": [[60, "1"]],
            }
        ]
    )
    rows, _ = matrix_rows(m, cost, LabelRules(), 0, 60_000, 60_000)
    assert rows["last"].sum() == 8.0  # two A100s at 4 USD/h; the T4 has no price


def test_custom_signals_from_config() -> None:
    text = """
regions:
  - name: r
    url: http://x
    latitude: 0
    longitude: 0
    presets: [vllm]
    signals:
      - {name: requests, selector: 'my_app_requests_total{path!="/health"}'}
      - {name: queue_depth, kind: gauge, unit: requests, expr: 'sum(my_queue_length)'}
"""
    region = parse_config(text).settings.regions[0]
    mappings = region_mappings(region)
    req = [m for m in mappings if m.signal == "requests"]
    assert any(m.selector.startswith("my_app_requests_total") for m in req)
    depth = next(m for m in mappings if m.signal == "queue_depth")
    assert depth.expr and depth.kind == "gauge" and depth.unit == "requests"
    units = plan_units(plan_fetches(mappings))
    assert any(f.mode == "range" for u in units for f in u.fetches)


@pytest.mark.parametrize(
    ("signal", "why"),
    [
        ("{name: requests, kind: gauge, selector: x}", "is a counter"),
        ("{name: newsig, selector: x}", "needs kind and unit"),
        ("{name: newsig, kind: counter, unit: x, expr: 'sum(x)'}", "stored as a gauge"),
        ("{name: newsig, kind: gauge, unit: x}", "exactly one of selector"),
        ("{name: newsig, kind: gauge, unit: x, selector: 'x{'}", "not a series selector"),
    ],
)
def test_custom_signal_mistakes(signal: str, why: str) -> None:
    text = (
        "regions:\n  - name: r\n    url: http://x\n    latitude: 0\n    longitude: 0\n"
        f"    signals:\n      - {signal}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert why in str(err.value) and "regions[0].signals[0]" in str(err.value)


def test_every_preset_maps_known_signals_and_parses() -> None:
    for name, mappings in PRESETS.items():
        fetches = plan_fetches(list(mappings))
        assert fetches, name
        for m in mappings:
            assert isinstance(m, Mapping) and m.kind in ("counter", "gauge", "histogram")


def test_collection_keys_and_tenant_header() -> None:
    from observatory.config import resolve_headers

    base = "regions:\n  - {name: r, url: 'http://x', latitude: 0, longitude: 0, tenant: t1}\n"
    config = parse_config("collection: {retries: 5, parallel_queries: 2, write_batch: 6h}\n" + base)
    coll = config.settings.collection
    assert (coll.retries, coll.parallel_queries, coll.write_batch.total_seconds()) == (5, 2, 21600)
    assert resolve_headers(config.settings.regions[0], {})["X-Scope-OrgID"] == "t1"
    with pytest.raises(ConfigError) as err:
        parse_config("collection: {step: 60s, write_batch: 90s}\n" + base)
    assert "collection.write_batch: write_batch must be a multiple of step" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config("collection: {retries: -1}\n" + base)
    assert "collection.retries" in str(err.value)


# --------------------------------------------------------------------------- operators
def test_add_matchers_keeps_the_selector_and_matches_exactly_the_group() -> None:
    from collectors.selector import add_matchers, parse_selector, quote_label_value, values_regex

    values = ["node-1:9100", "a.b", 'q"uote', ""]
    matcher = f"instance=~{quote_label_value(values_regex(values))}"
    for base in ("up", 'up{job="x"}', 'up{job="x",}', '{__name__="up"}'):
        sel = parse_selector(add_matchers(base, [matcher]))
        assert sel.matches({"__name__": "up", "job": "x", "instance": "a.b"})
        assert sel.matches({"__name__": "up", "job": "x", "instance": 'q"uote'})
        assert sel.matches({"__name__": "up", "job": "x"})  # no label: the empty value
        assert not sel.matches({"__name__": "up", "job": "x", "instance": "aXb"})  # dot escaped
        assert not sel.matches({"__name__": "up", "job": "x", "instance": "node-1:910"})


def test_html_answer_is_one_short_error_per_region(fake, tmp_path) -> None:
    """A URL that is not a Prometheus API (a login page) answers HTML to every query:
    the region stops after the first, with the status and ~200 characters of it."""
    from collectors.collect import Collector
    from observatory.store import Store

    page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>" + b"x" * 5000
    server = fake(lambda p, q, h: (200, page))
    source = RegionSource(_region(server.url), timeout_s=5, retries=3, backoff_s=0.01)
    with pytest.raises(QueryError) as err:
        source.raw_samples("up", 115_000, 60_000)
    assert err.value.not_api and len(server.calls) == 1
    assert "HTTP 200: not a Prometheus API answer" in err.value.message
    assert "<title>Sign in</title>" in err.value.message and len(err.value.message) < 320
    config = parse_config(
        f"store: {tmp_path / 'store'}\ncollection: {{retries: 0}}\nregions:\n"
        f"  - {{name: r1, url: '{server.url}', latitude: 0, longitude: 0, presets: [vllm, dcgm]}}\n"
    )
    from datetime import UTC, datetime, timedelta

    end = datetime(2026, 1, 2, tzinfo=UTC)
    (report,) = Collector(config, Store(tmp_path / "store")).run(
        start=end - timedelta(days=1), end=end, now=end
    )
    assert report.status == "failed" and len(report.errors) == 1, report.errors
    assert len(report.errors[0]) < 420


def test_check_config_warns_about_unset_secrets_and_double_counting() -> None:
    from collectors.commands import config_warnings

    config = parse_config(
        """
regions:
  - name: r1
    url: http://x
    latitude: 0
    longitude: 0
    presets: [vllm, quality]
    auth: {basic: {username: u, password_env: R1_PASSWORD}}
    headers_env: {X-Key: R1_KEY}
    signals:
      - {name: requests, selector: 'vllm:request_success_total'}
  - name: r2
    url: http://y
    latitude: 0
    longitude: 0
    auth: {bearer_token_env: R2_TOKEN}
"""
    )
    warnings = config_warnings(config, {"R2_TOKEN": "t"})
    assert any(
        "r1" in w and "auth.basic.password_env: $R1_PASSWORD is not set" in w for w in warnings
    )
    assert any("r1" in w and "headers_env.X-Key: $R1_KEY is not set" in w for w in warnings)
    assert not any("R2_TOKEN" in w for w in warnings)
    double = [w for w in warnings if "counted 2 times" in w]
    assert len(double) == 1 and "region r1" in double[0], warnings
    assert "preset vllm and signals[0]" in double[0] and "-> requests" in double[0]
    assert config_warnings(config, {"R1_PASSWORD": "p", "R1_KEY": "k", "R2_TOKEN": "t"}) == double


def test_a_preset_listed_twice_is_one_warning_naming_it() -> None:
    from collectors.commands import config_warnings
    from collectors.presets import mappings_for

    config = parse_config(
        "regions:\n  - {name: r1, url: 'http://x', latitude: 0, longitude: 0,"
        " presets: [vllm, vllm]}\n"
    )
    (warning,) = config_warnings(config, {})
    n = len(mappings_for(["vllm"]))
    assert warning.startswith("region r1: preset vllm and preset vllm both map ")
    assert f"and {n - 3} more: their values would be counted 2 times" in warning


def test_matrix_decoded_from_bytes_equals_the_json_decoder(fake) -> None:
    """The fast decoder (collectors/matrix_json.py) against orjson + parse_matrix on an
    answer with NaN/Inf/exponents, an empty series, a native-histogram-only series, and
    label values that contain the very bytes the decoder looks for."""
    import orjson

    from collectors.matrix_json import samples_from_segments, split_values

    rng = np.random.default_rng(3)
    result: list[dict[str, Any]] = []
    for s in range(40):
        n = int(rng.integers(0, 50))
        ts = 1_700_000_000 + np.cumsum(rng.integers(1, 30_000, n)) / 1000
        vals = [repr(float(v)) for v in rng.normal(0, 1e6, n)]
        for i, special in zip(rng.integers(0, max(n, 1), 3), ("NaN", "+Inf", "-Inf"), strict=True):
            if n:
                vals[int(i)] = special
        labels = {"__name__": "x", "s": str(s), "tricky": '"values":[[1,"2"]] \\ ]]'}
        points = [[float(t), v] for t, v in zip(ts, vals, strict=True)]
        result.append({"metric": labels, "values": points})
    result.append({"metric": {"__name__": "native"}, "histogram": [1.0, {"count": "3"}]})
    body = orjson.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
    skeleton, segments = split_values(body)  # type: ignore[misc]
    decoded = orjson.loads(skeleton)["data"]["result"]
    fast = samples_from_segments(decoded, segments)
    assert fast is not None
    slow = parse_matrix(orjson.loads(body)["data"]["result"])
    assert [d["metric"] for d in decoded] == slow.labels
    np.testing.assert_array_equal(fast[0], slow.offsets)
    np.testing.assert_array_equal(fast[1], slow.ts_ms)
    np.testing.assert_array_equal(fast[2], slow.values)  # NaN positions equal too
    # pretty-printed JSON is not cut; a count that does not add up falls back
    assert split_values(orjson.dumps(result[0], option=orjson.OPT_INDENT_2)) is None
    assert samples_from_segments(decoded[:-2], segments) is None
    # through the client: same matrix either way
    server = fake(lambda p, q, h: (200, body))
    m = RegionSource(_region(server.url), timeout_s=5).raw_samples("x", 1, 1)
    np.testing.assert_array_equal(m.values, slow.values)
    assert "native histogram samples ignored" in " ".join(m.warnings)


def test_check_config_prints_the_warnings_and_still_exits_0(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from observatory.cli import main

    monkeypatch.delenv("R1_TOKEN", raising=False)
    path = tmp_path / "o.yaml"
    path.write_text(
        "regions:\n  - {name: r1, url: 'http://x', latitude: 0, longitude: 0,"
        " presets: [vllm, vllm], auth: {bearer_token_env: R1_TOKEN}}\n"
    )
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: region r1: auth.bearer_token_env: $R1_TOKEN is not set" in result.stderr
    assert "preset vllm and preset vllm" in result.stderr  # a preset listed twice

"""Collection health per region and signal (analytics/collection_health.py) and its page.

Unit tests feed the pure aggregation hand-written run-log lines whose expected
figures are worked out beside them.  The page tests run the real collector against
a real Prometheus (Debian's package, backfilled with promtool) and read the run log
it wrote; one test also opens the demo store, which has no run log.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from app_support import app, assert_no_raw_html, demo_store, texts
from streamlit.testing.v1 import AppTest

from analytics.collection_health import (
    ERROR,
    EVERY_SIGNAL,
    NONE,
    OK,
    HealthThresholds,
    format_age,
    median_run_interval_s,
    parse_run_log,
    region_summary,
    run_history,
    run_outcomes,
    signal_health,
    status_grid,
    weighted_coverage,
)
from collectors.collect import Collector
from observatory.config import parse_config
from observatory.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
from prom_harness import (
    PromServer,
    backfill_openmetrics,
    free_port,
    hour_floor,
    missing_binaries,
    om_lines,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _line(**fields: Any) -> str:
    base = {
        "status": "ok",
        "rows": 100,
        "samples": 1000,
        "seconds": 2.5,
        "error": None,
        "coverage": {},
    }
    return json.dumps({**base, **fields}) + "\n"


def _run(region: str, start: str, window_h: float, **fields: Any) -> str:
    """A run that started at ``start`` (ISO, naive UTC), took 5 s and collected the
    ``window_h`` hours before it."""
    t = datetime.fromisoformat(start)
    return _line(
        region=region,
        started_utc=t.isoformat(),
        finished_utc=(t + timedelta(seconds=5)).isoformat(),
        window_start_utc=(t - timedelta(hours=window_h)).isoformat(),
        window_end_utc=t.isoformat(),
        **fields,
    )


# ------------------------------------------------------------------- parsing


def test_parse_skips_malformed_and_truncated_lines_and_names_them() -> None:
    lines = [
        _run("eu", "2026-11-30T10:00:00", 1, coverage={"requests": 1.0}),
        "this is not json\n",
        "\n",  # blank: ignored silently
        "[1, 2]\n",
        json.dumps({"started_utc": "2026-11-30T10:00:00"}) + "\n",
        json.dumps({"region": "eu", "started_utc": "yesterday"}) + "\n",
        b"\xff\xfe\n",
        _run("us", "2026-11-30T11:00:00", 1, status="failed", error="refused"),
        '{"region": "eu", "started_utc": "2026-11-30T11:0',  # killed while appending
    ]
    log = parse_run_log(lines, source="/s/runs.jsonl")
    assert [(s.line, s.reason.split(" (")[0]) for s in log.skipped] == [
        (2, "not JSON"),
        (4, "not a JSON object"),
        (5, "no `region`"),
        (6, "no readable `started_utc`"),
        (7, "not UTF-8"),
        (9, "truncated last line"),
    ]
    assert str(log.skipped[-1]).startswith("/s/runs.jsonl line 9: truncated last line")
    assert list(log.runs["line"]) == [1, 8]
    assert list(log.runs["region"]) == ["eu", "us"]
    assert log.runs["coverage"].iloc[0] == {"requests": 1.0}
    assert log.runs["seconds"].iloc[0] == 2.5


def test_old_records_without_new_fields_are_read() -> None:
    old = json.dumps(
        {
            "started_utc": "2026-11-30T00:01:00",
            "finished_utc": "2026-11-30T00:01:05",
            "region": "eu",
            "status": "ok",
            "window_start_utc": "2026-11-29T23:00:00",
            "window_end_utc": "2026-11-30T00:00:00",
            "rows": 10,
            "error": None,
        }
    )
    log = parse_run_log([old])
    assert not log.skipped
    assert log.runs["coverage"].iloc[0] == {}
    assert math.isnan(log.runs["samples"].iloc[0])
    history = run_history(log.runs)
    assert history["errors"].tolist() == [0]


# ---------------------------------------------------------------- aggregation


def _fleet_log() -> list[str]:
    """eu: two good runs, then a partial run whose error left `tokens` uncollected.
    us: an old good run (more than 24 h ago), then a failed one."""
    return [
        _run(
            "eu", "2026-11-30T08:00:00", 1, coverage={"requests": 1.0, "tokens": 0.5, "cost": None}
        ),
        _run(
            "eu", "2026-11-30T09:00:00", 3, coverage={"requests": 0.6, "tokens": 1.0, "cost": None}
        ),
        _run(
            "eu",
            "2026-11-30T11:50:00",
            1,
            status="partial",
            error="region eu: query 'vllm:prompt_tokens_total[3600s]': HTTP 400: <b>bad</b>",
            coverage={"requests": 1.0, "cost": None},
        ),
        _run("us", "2026-11-29T10:00:00", 1, coverage={"requests": 1.0}),
        _run("us", "2026-11-30T11:00:00", 1, status="failed", error="unreachable; refused"),
    ]


def test_health_per_region_and_signal_with_real_values() -> None:
    log = parse_run_log(_fleet_log())
    marks = {"eu": {"requests": "2026-11-30T11:50:00+00:00", "tokens": "2026-11-30T09:00:00+00:00"}}
    newest = {("eu", "requests"): datetime(2026, 11, 30, 11, 49)}
    th = HealthThresholds(step_s=60, settle_s=60, lag_steps=3, min_coverage=0.95)
    health = signal_health(log.runs, NOW, th, marks, newest, regions=["eu", "us", "ap"])
    rows = health.set_index(["region", "signal"])
    assert set(rows.index) == {
        ("eu", "cost"),
        ("eu", "requests"),
        ("eu", "tokens"),
        ("us", "requests"),
        ("ap", EVERY_SIGNAL),
    }

    # eu runs start at 08:00, 09:00, 11:50: gaps 3600 s and 10200 s, median 6900 s
    allowed = 60 + 60 + 6900 + 3 * 60
    req = rows.loc[("eu", "requests")]
    assert req["allowed_lag_s"] == allowed
    assert req["last_success_utc"] == pd.Timestamp("2026-11-30T11:50:05")
    assert req["last_success_age_s"] == 595  # 12:00:00 - 11:50:05
    assert req["newest_step_utc"] == pd.Timestamp("2026-11-30T11:49")
    assert req["lag_s"] == 11 * 60  # from the stored step, not the state's 11:50
    assert req["coverage_last_run"] == 1.0
    # window-weighted over the day: (1.0 x 1 h + 0.6 x 3 h + 1.0 x 1 h) / 5 h
    assert req["coverage_24h"] == pytest.approx((1.0 + 1.8 + 1.0) / 5)
    assert req["errors_24h"] == 0 and req["status"] == "ok"

    # the partial run recorded no coverage for tokens: its error is charged there
    tok = rows.loc[("eu", "tokens")]
    assert tok["status"] == "failing"
    assert tok["errors_24h"] == 1
    assert tok["last_error"].endswith("HTTP 400: <b>bad</b>")  # kept as text
    assert tok["last_error_utc"] == pd.Timestamp("2026-11-30T11:50:05")
    assert tok["last_success_utc"] == pd.Timestamp("2026-11-30T09:00:05")
    assert tok["lag_s"] == 3 * 3600  # the state's mark (no stored step known)
    assert tok["coverage_last_run"] == 1.0
    assert tok["coverage_24h"] == pytest.approx((0.5 * 1 + 1.0 * 3) / 4)

    # no series in any run: nothing was ever collected
    cost = rows.loc[("eu", "cost")]
    assert cost["status"] == "no data" and math.isnan(cost["coverage_24h"])

    us = rows.loc[("us", "requests")]
    assert us["status"] == "failing"
    assert us["errors_24h"] == 1  # the good run is older than 24 h
    assert us["coverage_24h"] != us["coverage_24h"]  # NaN: no share in the last day
    assert us["coverage_last_run"] == 1.0
    assert us["last_error"] == "unreachable; refused"

    ap = rows.loc[("ap", EVERY_SIGNAL)]
    assert ap["status"] == "no data" and ap["errors_24h"] == 0

    grid = status_grid(health)
    assert grid.loc["tokens", "eu"] == "failing" and grid.loc["tokens", "us"] is None
    assert grid.loc[EVERY_SIGNAL, "ap"] == "no data"


def test_lag_and_coverage_thresholds_make_a_signal_lagging() -> None:
    log = parse_run_log(_fleet_log()[:2])
    newest = {("eu", "requests"): datetime(2026, 11, 30, 9, 0)}
    # median gap 3600 s: allowed lag 60 + 60 + 3600 + 3 x 60 = 3900 s; lag 3 h
    strict = signal_health(log.runs, NOW, HealthThresholds(min_coverage=0.5), {}, newest)
    row = strict.set_index("signal").loc["requests"]
    assert row["lag_s"] == 3 * 3600 and row["status"] == "lagging"
    loose = HealthThresholds(lag_steps=3 * 60, min_coverage=0.5)  # 3 h of steps more
    assert (
        signal_health(log.runs, NOW, loose, {}, newest)
        .set_index("signal")
        .loc["requests", "status"]
        == "ok"
    )
    low = HealthThresholds(lag_steps=1e6, min_coverage=0.7)  # last share 0.6 < 0.7
    assert (
        signal_health(log.runs, NOW, low, {}, newest).set_index("signal").loc["requests", "status"]
        == "lagging"
    )


def test_run_outcomes_for_one_signal() -> None:
    status = pd.Series(["ok", "current", "failed", "partial", "partial", "stopped", "stopped"])
    error = pd.Series([None, None, "x", "x", "x", None, None])
    recorded = np.array([False, False, True, True, False, False, True])
    assert run_outcomes(status, error, recorded).tolist() == [OK, OK, ERROR, OK, ERROR, NONE, OK]


def test_small_helpers() -> None:
    assert weighted_coverage([1.0, None, 0.5], [3600, 7200, 1800]) == pytest.approx(
        (3600 + 0.5 * 1800) / 5400
    )
    assert math.isnan(weighted_coverage([None], [60]))
    assert math.isnan(median_run_interval_s(pd.Series(pd.to_datetime(["2026-01-01 00:00"]))))
    starts = pd.Series(pd.to_datetime(["2026-01-01 00:00", "2026-01-01 00:05", "2026-01-01 00:07"]))
    assert median_run_interval_s(starts) == (300 + 120) / 2
    assert [format_age(s) for s in (45, 720, 3 * 3600, 3 * 86400, math.nan)] == [
        "45 s",
        "12 min",
        "3.0 h",
        "3.0 d",
        "",
    ]
    log = parse_run_log(_fleet_log())
    history = run_history(log.runs)
    assert history.groupby("region")["errors"].sum().to_dict() == {"eu": 1, "us": 2}
    summary = region_summary(log.runs, ["ap"]).set_index("region")
    assert summary.loc["us", "status"] == "failed" and summary.loc["us", "failed_runs"] == 1
    assert summary.loc["ap", "status"] is None and summary.loc["ap", "runs"] == 0


# ---------------------------------------------------- the page, real collector

GAP = range(61, 91)  # minutes without an `error` sample (coverage below 1)
MINUTES = 180


@dataclass
class Collected:
    store: Path
    records: list[dict[str, Any]]
    end: datetime
    errors_coverage: float


def _openmetrics(t0: int) -> str:
    """Two vLLM request counters, a sample a minute; the error one with a gap."""
    stop = [(t0 + 60 * k, 2 * k) for k in range(MINUTES + 1)]
    error = [(t0 + 60 * k, k) for k in range(MINUTES + 1) if k not in GAP]
    lines = om_lines(
        "vllm:request_success_total", {"model_name": "m", "finished_reason": "stop"}, stop
    )
    lines += om_lines(
        "vllm:request_success_total", {"model_name": "m", "finished_reason": "error"}, error
    )
    return "\n".join(lines) + "\n# EOF\n"


def _config(store: Path, north: str, south: str) -> Any:
    return parse_config(
        f"store: {store}\ncollection:\n  step: 60s\n  chunk: 6h\n  retries: 0\n"
        "regions:\n"
        f"  - {{name: north, url: '{north}', latitude: 1, longitude: 1, presets: [vllm]}}\n"
        f"  - {{name: south, url: '{south}', latitude: 2, longitude: 2, presets: [vllm]}}\n"
    )


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collected]:
    """Two runs of the real collector: both regions read one real Prometheus, then
    south's server is gone (a closed port) and north finds no newer data."""
    why = missing_binaries()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("health")
    end = hour_floor(datetime.now(UTC)) - timedelta(hours=2)
    t0 = end - timedelta(minutes=MINUTES)
    tsdb = backfill_openmetrics(_openmetrics(int(t0.timestamp())), root, "vllm")
    server = PromServer(tsdb, root / "server").start()
    store = root / "store"
    try:
        first = Collector(_config(store, server.url, server.url), Store(store))
        reports = first.run(start=t0, end=end)
        assert [r.status for r in reports] == ["ok", "ok"], [r.errors for r in reports]
        closed = f"http://127.0.0.1:{free_port()}"
        reports = Collector(_config(store, server.url, closed), Store(store)).run()
        assert [r.status for r in reports] == ["ok", "failed"], [r.errors for r in reports]
    finally:
        server.stop()
    records = [json.loads(x) for x in (store / "runs.jsonl").read_text().splitlines()]
    # independent of the collector: steps holding an `error` sample / steps spanned
    # (the window is (t0, end]: minutes 1..180)
    present = [k for k in range(1, MINUTES + 1) if k not in GAP]
    yield Collected(store, records, end, len(present) / (max(present) - min(present) + 1))


def _table(at: AppTest, column: str) -> pd.DataFrame:
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a {column!r} column")


def _record(c: Collected, region: str, status: str) -> dict[str, Any]:
    (record,) = [r for r in c.records if r["region"] == region and r["status"] == status]
    return record


@pytest.mark.integration
def test_page_on_a_run_log_written_by_the_real_collector(
    collected: Collected, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _record(collected, "south", "ok")
    failed = _record(collected, "south", "failed")
    assert first["coverage"]["errors"] == pytest.approx(collected.errors_coverage)

    at = app(monkeypatch, collected.store, "collection_health")
    assert not at.exception, at.exception
    signals = _table(at, "Signal").set_index(["Region", "Signal"])
    south = signals.loc[("south", "errors")]
    assert south["Status"] == "failing"
    assert south["Last error"] == failed["error"] and "south" in failed["error"]
    assert south["Errors 24 h"] == 1
    assert pd.Timestamp(south["Last success (UTC)"]) == pd.Timestamp(first["finished_utc"])
    assert south["Coverage last run"] == pytest.approx(collected.errors_coverage)
    # north's second run found no newer samples: its share is None (left out)
    last_north = [r for r in collected.records if r["region"] == "north"][-1]
    assert last_north["status"] == "ok" and last_north["coverage"]["errors"] is None
    north = signals.loc[("north", "errors")]
    assert north["Coverage last run"] == pytest.approx(collected.errors_coverage)
    assert north["Coverage 24 h"] == pytest.approx(collected.errors_coverage)
    assert pd.Timestamp(north["Newest stored step (UTC)"]) == pd.Timestamp(
        collected.end.replace(tzinfo=None)
    )
    assert north["Status"] == "lagging"  # the data stops >= 2 h before now
    # a signal of the preset that the server does not have: never any data
    assert signals.loc[("north", "prompt_tokens"), "Status"] == "no data"
    regions = _table(at, "Failed runs").set_index("Region")
    assert regions.loc["south", "Status"] == "failed"
    assert regions.loc["north", "Runs"] == 2

    # requests: two series, the `stop` one without a gap
    requests_share = (MINUTES + collected.errors_coverage * MINUTES) / (2 * MINUTES)
    assert signals.loc[("north", "requests"), "Coverage last run"] == pytest.approx(
        requests_share, abs=1e-6
    )

    # looser thresholds (sidebar): 10,000 steps of lag, coverage from 0.9 (between
    # the two shares) make requests ok and leave errors lagging on coverage alone
    at.sidebar.number_input(key="health_lag_steps").set_value(10_000)
    at.sidebar.number_input(key="health_min_coverage").set_value(0.9).run()
    signals = _table(at, "Signal").set_index(["Region", "Signal"])
    assert signals.loc[("north", "requests"), "Status"] == "ok"
    assert signals.loc[("north", "errors"), "Status"] == "lagging"
    assert signals.loc[("south", "requests"), "Status"] == "failing"
    assert at.get("plotly_chart"), "no status grid / run history"


@pytest.mark.integration
def test_page_warns_about_a_truncated_line_and_keeps_the_rest(
    collected: Collected, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(collected.store, store)
    log = store / "runs.jsonl"
    # A fake fault: a collector killed in the middle of appending its record (the
    # real one writes a line in one call, so the timing cannot be reproduced).
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('{"region": "north", "started_utc": "2026-')
    at = app(monkeypatch, store, "collection_health")
    assert not at.exception
    warning = "\n".join(str(w.value) for w in at.warning).replace("\\", "")  # md escapes
    assert "runs.jsonl" in warning and f"line {len(collected.records) + 1}" in warning
    assert "truncated last line" in warning
    assert _table(at, "Failed runs").set_index("Region").loc["north", "Runs"] == 2
    assert_no_raw_html(at)


def test_page_on_the_demo_store_explains_it_has_no_run_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = demo_store(tmp_path / "demo")
    at = app(monkeypatch, root, "collection_health")
    assert not at.exception
    assert "demo store" in texts(at) and "No collection runs recorded yet" in texts(at)
    signals = _table(at, "Signal").set_index(["Region", "Signal"])
    latest = Store(root).query(
        "SELECT region, max(ts_utc) AS t FROM counters WHERE signal = 'requests' GROUP BY region"
    )
    for region, t in zip(latest["region"], latest["t"], strict=True):
        assert pd.Timestamp(signals.loc[(region, "requests"), "Newest stored step (UTC)"]) == t


def test_page_with_a_hostile_error_text_shows_it_as_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = demo_store(tmp_path / "demo")
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    # hand-written record: an exporter's error body echoed by a backend (the real
    # collector quotes such bodies; a real Prometheus does not send script tags)
    (root / "runs.jsonl").write_text(
        _run("us-east-1", "2026-11-30T11:00:00", 1, status="failed", error=hostile),
        encoding="utf-8",
    )
    at = app(monkeypatch, root, "collection_health")
    assert not at.exception
    signals = _table(at, "Signal").set_index(["Region", "Signal"])
    assert (signals.xs("us-east-1")["Last error"] == hostile).all()
    assert_no_raw_html(at)


def test_only_the_newest_lines_of_a_long_run_log_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app import collection_data

    lines = [_run("eu", f"2026-11-30T0{h}:00:00", 1) for h in range(5)]
    lines[3] = "{not json\n"
    (tmp_path / "runs.jsonl").write_text("".join(lines), encoding="utf-8")
    monkeypatch.setattr(collection_data, "MAX_RUN_LINES", 3)
    read = collection_data.read_run_log(tmp_path)
    assert read is not None
    assert (read.total_lines, read.first_line) == (5, 3)
    assert [s.line for s in read.log.skipped] == [4]  # numbered as in the file
    assert list(read.log.runs["line"]) == [3, 5]
    assert read.log.runs["started_utc"].dt.hour.tolist() == [2, 4]
    assert collection_data.read_run_log(tmp_path / "nowhere") is None


def test_newest_stored_step_per_region_and_signal_from_hour_files(tmp_path: Path) -> None:
    """The "newest stored" column reads the newest partition's footers: the highest
    hour file holding rows (an emptied later hour file is skipped), a day file written
    before hour files as well (it may hold any hour), and a region that stopped on an
    earlier date keeps that date's newest step."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from app import collection_data
    from observatory.store import SCHEMAS, Store

    store = Store(tmp_path)
    day = datetime(2026, 3, 10)

    def write(region: str, start: datetime, end: datetime) -> None:
        steps = pd.date_range(start + timedelta(minutes=1), end, freq="1min")
        frame = pd.DataFrame(
            {"ts_utc": steps, "signal": "requests", "model": "m", "arm": "v1",
             "instance": "", "value": 1.0, "unit": "requests"}
        )  # fmt: skip
        store.replace_window("counters", region, ["requests"], start, end, frame)

    write("eu", day + timedelta(hours=9), day + timedelta(hours=10, minutes=31))
    # a re-collected window emptied 10:00-10:31: h11 stays as an empty file
    store.replace_window(
        "counters", "eu", ["requests"], day + timedelta(hours=10),
        day + timedelta(hours=10, minutes=31), pd.DataFrame(),
    )  # fmt: skip
    write("us", day - timedelta(hours=3), day - timedelta(hours=1))  # stopped a day earlier
    write("ap", day, day + timedelta(hours=2))
    # ap's day file (an older store's) holds a later step than its hour files
    legacy = store.partition_dir("counters", "requests", day.date(), "ap") / "part.parquet"
    late = {"ts_utc": [day + timedelta(hours=5)], "model": ["m"], "arm": ["v1"],
            "instance": [""], "value": [1.0], "unit": ["requests"]}  # fmt: skip
    pq.write_table(pa.table(late, schema=SCHEMAS["counters"]), legacy)
    names = [p.name for p in store.partition_files("counters", "requests", day.date(), "eu")]
    assert names == ["h10.parquet", "h11.parquet"]
    got = collection_data.newest_steps(tmp_path)
    assert got[("eu", "requests")] == day + timedelta(hours=10)
    assert got[("us", "requests")] == day - timedelta(hours=1)
    assert got[("ap", "requests")] == day + timedelta(hours=5)

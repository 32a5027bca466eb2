"""Answers too large for the server: split by series, exactly as unsplit.

A real Prometheus started with a low ``--query.max-samples`` refuses a raw-sample
query whose range selector would load more samples than that ("query processing
would load too many samples into memory", HTTP 422).  The collector then lists the
series (``/api/v1/series``) and fetches them in groups told apart by one label's
values; a single series still too large is halved in time.  The same data collected
from a Prometheus without the limit must give identical rows, and the counter total
must equal the ground truth computed here from the samples written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
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
SCRAPE = 15
N = HOURS * 3600 // SCRAPE  # samples per series after the baseline one
SERIES = 12
RESET_SERIES, RESET_AT = 5, N // 3  # one series restarts from 0 there
MAX_SAMPLES = 1000  # a 6 h chunk (+15 m lookback) of one series is 1,501 samples; of all, 18,000


def _value(s: int, i: int) -> int:
    step = s + 1
    return step * (i - RESET_AT) if s == RESET_SERIES and i >= RESET_AT else step * i


def _text(t0: int) -> str:
    lines = []
    for s in range(SERIES):
        labels = {"instance": f"node-{s:02d}:9100", "model_name": f"m{s % 3}"}
        lines += om_lines(
            "split_requests_total", labels, ((t0 + i * SCRAPE, _value(s, i)) for i in range(N + 1))
        )
    return "\n".join(lines) + "\n# EOF\n"


def _truth() -> int:
    """Reset-aware increases of every sample after each series' first."""
    total = 0
    for s in range(SERIES):
        for i in range(1, N + 1):
            v, prev = _value(s, i), _value(s, i - 1)
            total += v - prev if v >= prev else v
    return total


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """The window collected from a limited and an unlimited Prometheus, same blocks."""
    why = missing_binaries()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("split")
    end = default_fleet_end()
    start = end - timedelta(hours=HOURS)
    tsdb = backfill_openmetrics(_text(int(start.timestamp())), root)
    limited_tsdb = root / "tsdb-limited"
    shutil.copytree(tsdb, limited_tsdb)  # the same blocks for both servers
    query_log = root / "queries.log"
    limited = PromServer(
        limited_tsdb,
        root,
        name="limited",
        config_text=f"global:\n  scrape_interval: 1m\n  query_log_file: {query_log}\n",
        extra_args=[f"--query.max-samples={MAX_SAMPLES}"],
    )
    plain = PromServer(tsdb, root, name="plain")
    try:
        limited.start()
        plain.start()
        out = []
        for name, server in (("limited", limited), ("plain", plain)):
            store = root / f"store-{name}"
            config = write_config(
                root / f"{name}.yaml",
                store,
                {"r1": server.url},
                presets=["quality"],
                region_extra={
                    "r1": {"signals": [{"name": "requests", "selector": "split_requests_total"}]}
                },
            )
            res = run_cli(
                ["collect", "--config", str(config), "--from", iso(start), "--to", iso(end)]
            )
            assert res.returncode == 0, res.stdout + res.stderr
            assert "error" not in res.stderr.lower(), res.stderr
            out.append(store)
        yield out[0], out[1], query_log
    finally:
        limited.stop()
        plain.stop()


def test_the_limit_refuses_the_unsplit_query(stores: tuple[Path, Path, Path]) -> None:
    """The server really refused (the run log counts more queries than chunks) and the
    series were fetched in groups by a label's values (Prometheus's own query log)."""
    limited, plain, query_log = stores
    logged = [json.loads(line)["params"]["query"] for line in query_log.read_text().splitlines()]
    grouped = [q for q in logged if q.startswith("split_requests_total{instance=~")]
    assert grouped, logged[:20]
    # a single series over 6 h is over the limit as well: it was fetched alone
    # (one value in the regex) and halved in time
    alone = [q for q in grouped if "|" not in q.rsplit("=~", 1)[1]]
    assert alone, grouped
    assert any(not q.endswith("[22500s]") for q in alone), alone
    runs = [json.loads(x) for x in (limited / "runs.jsonl").read_text().splitlines()]
    plain_runs = [json.loads(x) for x in (plain / "runs.jsonl").read_text().splitlines()]
    assert runs[-1]["queries"] == plain_runs[-1]["queries"]  # one answer per fetch
    assert runs[-1]["samples"] == plain_runs[-1]["samples"] > SERIES * N


def test_split_rows_equal_unsplit_rows(stores: tuple[Path, Path, Path]) -> None:
    limited, plain, _ = stores
    sql = "SELECT * FROM counters ORDER BY ALL"
    a, b = Store(limited).query(sql), Store(plain).query(sql)
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)


def test_split_total_equals_ground_truth(stores: tuple[Path, Path, Path]) -> None:
    limited, _, _ = stores
    frame = Store(limited).query(
        "SELECT SUM(value) AS v FROM counters WHERE signal = 'requests' AND region = 'r1'"
    )
    assert float(frame["v"].iloc[0]) == _truth()

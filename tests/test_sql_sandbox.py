"""Ad hoc SQL: the sandbox refuses escapes and abuses, the views are documented and
right, the example queries run, `observatory sql` and the SQL page work."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from analytics.histogram import histogram_quantile
from collectors.signals import SIGNALS
from observatory import sql_catalog
from observatory.cli import main as cli
from observatory.demo import build_store
from observatory.store import (
    WRITE_MARK,
    SafeSQL,
    SandboxLimits,
    SQLError,
    SQLResult,
    Store,
    write_mark,
)

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "app" / "views" / "sql.py")
REGIONS = ["us-east-1", "eu-west-1"]
END = datetime(2026, 11, 30, tzinfo=UTC)
TIMEOUT_S = 2.0
HEALTHY = "SELECT count(*) AS n, sum(value) AS s FROM counters WHERE signal = 'requests'"
SECRET = "s3cr3t-token-value-4711"


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment folder: a config file with a secret, the store, files around the lake."""
    root = tmp_path_factory.mktemp("deploy")
    build_store(root / "store", days=1, regions=REGIONS, end=END)
    store = Store(root / "store")
    store.append_run_log(
        {
            "started_utc": "2026-11-30T00:01:00",
            "finished_utc": "2026-11-30T00:01:05",
            "region": "us-east-1",
            "status": "ok",
            "window_start_utc": "2026-11-29T00:00:00",
            "window_end_utc": "2026-11-30T00:00:00",
            "rows": 1,
            "error": None,
        }
    )
    (root / "observatory.yaml").write_text(
        "store: store\nregions:\n  - name: us-east-1\n    url: http://prom:9090\n"
        f"    latitude: 1\n    longitude: 2\n    headers: {{X-Api-Key: {SECRET}}}\n",
        encoding="utf-8",
    )
    (root / "store" / "secret.txt").write_text(SECRET, encoding="utf-8")
    sibling = root / "store" / "lake_backup"  # shares the lake's name as a prefix
    sibling.mkdir()
    (sibling / "x.csv").write_text(f"a\n{SECRET}\n", encoding="utf-8")
    pq.write_table(pa.table({"secret": [SECRET]}), root / "outside.parquet")
    return root


@pytest.fixture(scope="module")
def store_dir(deploy: Path) -> Path:
    return deploy / "store"


@pytest.fixture(scope="module")
def sandbox(store_dir: Path) -> Iterator[SafeSQL]:
    box = Store(store_dir).sandbox(
        SandboxLimits(max_rows=1000, timeout_s=TIMEOUT_S, memory_limit="256MB", threads=2)
    )
    yield box
    box.close()


@pytest.fixture(scope="module")
def healthy(store_dir: Path) -> tuple[int, float]:
    row = Store(store_dir).query(HEALTHY).iloc[0]
    return int(row["n"]), float(row["s"])


def _still_serves(box: SafeSQL, expected: tuple[int, float]) -> None:
    result = box.run(HEALTHY)
    row = result.table.to_pylist()[0]
    assert (row["n"], row["s"]) == pytest.approx(expected)


# ------------------------------------------------------------------ abuses
# (id, query template, kinds accepted, fragments the message must hold)
# Templates: {lake} {store} {deploy} are absolute paths of the test deployment.
ABUSES = [
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd')", {"refused"}, ["/etc/passwd"]),
    ("read_csv_auto", "SELECT * FROM read_csv_auto('/etc/passwd')", {"refused"}, ["/etc/passwd"]),
    ("read_text", "SELECT * FROM read_text('/etc/passwd')", {"refused"}, ["/etc/passwd"]),
    ("read_blob", "SELECT * FROM read_blob('/etc/passwd')", {"refused"}, ["/etc/passwd"]),
    ("read_json", "SELECT * FROM read_json('/etc/passwd')", {"refused"}, ["/etc/passwd"]),
    ("read_ndjson", "SELECT * FROM read_ndjson_objects('/etc/passwd')", {"refused"}, []),
    ("file_url", "SELECT * FROM read_text('file:///etc/passwd')", {"refused"}, []),
    ("parquet_metadata", "SELECT * FROM parquet_metadata('/etc/passwd')", {"refused"}, []),
    ("sniff_csv", "SELECT * FROM sniff_csv('/etc/passwd')", {"refused"}, []),
    (
        "read_parquet_outside",
        "SELECT * FROM read_parquet('{deploy}/outside.parquet')",
        {"refused"},
        ["outside.parquet"],
    ),
    ("glob_etc", "SELECT * FROM glob('/etc/*')", {"refused"}, ["/etc/*"]),
    ("glob_traversal", "SELECT * FROM glob('{lake}/../*')", {"refused"}, []),
    (
        "read_parquet_traversal",
        "SELECT * FROM read_parquet('{lake}/../../outside.parquet')",
        {"refused"},
        [],
    ),
    ("config_file", "SELECT * FROM read_text('{deploy}/observatory.yaml')", {"refused"}, []),
    ("config_csv", "SELECT * FROM read_csv('{deploy}/observatory.yaml')", {"refused"}, []),
    ("store_root_file", "SELECT * FROM read_text('{store}/secret.txt')", {"refused"}, []),
    ("prefix_sibling", "SELECT * FROM read_csv('{store}/lake_backup/x.csv')", {"refused"}, []),
    ("replacement_scan", "SELECT * FROM '/etc/passwd'", {"refused", "failed"}, []),
    ("copy_to", "COPY (SELECT 1) TO '{deploy}/copied.csv'", {"refused"}, ["COPY"]),
    ("copy_into_lake", "COPY (SELECT 1 AS x) TO '{lake}/copied.csv'", {"refused"}, ["COPY"]),
    ("copy_from", "COPY counters FROM '/etc/passwd'", {"refused"}, ["COPY"]),
    ("export", "EXPORT DATABASE '{deploy}/exported'", {"refused"}, ["EXPORT"]),
    ("attach_file", "ATTACH '{deploy}/other.duckdb' AS other", {"refused"}, ["ATTACH"]),
    ("attach_memory", "ATTACH ':memory:' AS scratch", {"refused"}, ["ATTACH"]),
    ("install", "INSTALL httpfs", {"refused"}, ["INSTALL"]),
    ("load", "LOAD httpfs", {"refused"}, ["LOAD"]),
    ("force_install", "FORCE INSTALL httpfs FROM community", {"refused"}, []),
    ("update_extensions", "UPDATE EXTENSIONS", {"refused"}, []),
    ("set_threads", "SET threads = 64", {"refused"}, ["SET"]),
    ("set_external", "SET enable_external_access = true", {"refused"}, ["SET"]),
    ("set_global_lock", "SET GLOBAL lock_configuration = false", {"refused"}, ["SET"]),
    ("reset", "RESET memory_limit", {"refused"}, ["RESET"]),
    ("pragma_set", "PRAGMA memory_limit = '100GB'", {"refused"}, []),
    ("pragma", "PRAGMA enable_profiling", {"refused"}, ["PRAGMA"]),
    ("set_variable", "SET VARIABLE x = 1", {"refused"}, []),
    (
        "logging_to_file",
        "SELECT * FROM enable_logging(storage = 'file', storage_path = '{lake}/log')",
        {"refused"},
        ["locked"],
    ),
    ("getenv", "SELECT getenv('HOME')", {"failed"}, ["getenv"]),
    ("call", "CALL pragma_version()", {"refused"}, ["CALL"]),
    ("checkpoint", "CHECKPOINT", {"refused"}, []),
    ("create_table", "CREATE TABLE t AS SELECT 1 AS x", {"refused"}, ["CREATE"]),
    ("create_temp", "CREATE TEMP TABLE t AS SELECT 1 AS x", {"refused"}, ["CREATE"]),
    ("shadow_view", "CREATE OR REPLACE VIEW counters AS SELECT 1 AS x", {"refused"}, ["CREATE"]),
    ("create_macro", "CREATE MACRO m() AS 1", {"refused"}, ["CREATE"]),
    ("insert", "INSERT INTO _empty_regions VALUES ('x', 'x', 0, 0, 'x')", {"refused"}, []),
    ("delete", "DELETE FROM _empty_regions", {"refused"}, ["DELETE"]),
    ("drop", "DROP VIEW counters", {"refused"}, ["DROP"]),
    ("two_statements", "SELECT 1; SELECT 2", {"refused"}, ["2 statements"]),
    ("hidden_second", "SELECT 1; COPY (SELECT 1) TO '{lake}/x.csv'", {"refused"}, []),
    ("explain_analyze_copy", "EXPLAIN ANALYZE COPY (SELECT 1) TO '{lake}/x.csv'", {"refused"}, []),
    (
        "query_function",
        "SELECT * FROM query('COPY (SELECT 1) TO ''{lake}/x.csv''')",
        {"refused"},
        [],
    ),
    ("transaction", "BEGIN TRANSACTION", {"refused"}, []),
    ("empty", "  -- nothing but a comment\n", {"refused"}, ["empty"]),
    (
        "cross_join_time",
        "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b",
        {"timeout"},
        ["limit"],
    ),
    (
        "top_n_time",  # DuckDB's max_execution_time alone does not stop this one
        "SELECT * FROM range(2000000000) t(i) ORDER BY i DESC LIMIT 5",
        {"timeout"},
        ["limit"],
    ),
    (
        "recursive_cte",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        {"timeout", "memory"},
        [],
    ),
    (
        "string_agg_memory",
        "SELECT length(string_agg(repeat('x', 1000), ',')) FROM range(10000000)",
        {"memory"},
        ["memory"],
    ),
    ("list_memory", "SELECT list(i) FROM range(300000000) t(i)", {"memory", "timeout"}, []),
    (
        "sort_spill",
        "SELECT * FROM range(200000000) t(i) ORDER BY random()",
        {"memory", "timeout"},
        [],
    ),
]


@pytest.mark.parametrize(
    ("template", "kinds", "fragments"),
    [pytest.param(t, k, f, id=i) for i, t, k, f in ABUSES],
)
def test_abuse_is_refused_and_the_service_keeps_working(
    sandbox: SafeSQL,
    deploy: Path,
    healthy: tuple[int, float],
    template: str,
    kinds: set[str],
    fragments: list[str],
) -> None:
    store = deploy / "store"
    sql = template.format(lake=store / "lake", store=store, deploy=deploy)
    began = time.monotonic()
    with pytest.raises(SQLError) as caught:
        sandbox.run(sql)
    elapsed = time.monotonic() - began
    message = str(caught.value)
    assert caught.value.kind in kinds, message
    assert message.split(":")[0] in {"refused", "stopped", "query failed"}, message
    for fragment in fragments:
        assert fragment in message
    assert SECRET not in message
    assert elapsed < TIMEOUT_S + 5
    # nothing was written anywhere
    assert not list(deploy.rglob("copied.csv"))
    assert not list((store / "lake").glob("*.csv"))
    assert not (deploy / "exported").exists()
    assert not (deploy / "other.duckdb").exists()
    _still_serves(sandbox, healthy)


def test_at_least_twenty_abuses_are_tried() -> None:
    assert len(ABUSES) >= 20


def test_very_long_query_is_refused_before_parsing(
    sandbox: SafeSQL, healthy: tuple[int, float]
) -> None:
    query = "SELECT " + "1 + " * 250_000 + "1"  # 1 MB
    assert len(query) > 1_000_000
    began = time.monotonic()
    with pytest.raises(SQLError, match="characters long") as caught:
        sandbox.run(query)
    assert caught.value.kind == "refused"
    assert time.monotonic() - began < 0.5
    _still_serves(sandbox, healthy)


def test_python_variables_are_not_reachable(sandbox: SafeSQL) -> None:
    secret_frame = pd.DataFrame({"secret": [SECRET]})
    assert len(secret_frame) == 1
    with pytest.raises(SQLError) as caught:
        sandbox.run("SELECT * FROM secret_frame")
    assert SECRET not in str(caught.value)


def test_environment_and_settings_do_not_leak(
    sandbox: SafeSQL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVATORY_TEST_SECRET", SECRET)
    rows = sandbox.run(
        f"SELECT count(*) AS n FROM duckdb_settings() WHERE value LIKE '%{SECRET}%'"
    ).table.to_pylist()
    assert rows == [{"n": 0}]
    assert sandbox.run("SELECT count(*) AS n FROM duckdb_secrets()").table.to_pylist() == [{"n": 0}]
    locked = sandbox.run(
        "SELECT value FROM duckdb_settings() WHERE name = 'lock_configuration'"
    ).table.to_pylist()
    assert locked == [{"value": "true"}]


def test_a_long_query_does_not_block_other_users(
    sandbox: SafeSQL, healthy: tuple[int, float]
) -> None:
    errors: list[SQLError] = []

    def hog() -> None:
        try:
            sandbox.run("SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b")
        except SQLError as exc:
            errors.append(exc)

    thread = threading.Thread(target=hog)
    thread.start()
    time.sleep(0.3)
    began = time.monotonic()
    _still_serves(sandbox, healthy)
    assert time.monotonic() - began < TIMEOUT_S
    thread.join()
    assert [e.kind for e in errors] == ["timeout"]


# ------------------------------------------------------------------ what is allowed
@pytest.mark.parametrize(
    "query",
    [
        "SELECT 42 AS x",
        "  -- a comment first\nSELECT 42 AS x;  -- and after",
        "WITH a AS (SELECT 42 AS x) SELECT * FROM a",
        "VALUES (42)",
        "FROM regions SELECT count(*)",
        "TABLE regions",
        "DESCRIBE counters",
        "SHOW TABLES",
        "SUMMARIZE regions",
        "EXPLAIN SELECT count(*) FROM counters",
        "PIVOT (SELECT region, model, value FROM counters WHERE signal = 'requests') "
        "ON region IN ('us-east-1', 'eu-west-1') USING sum(value)",
        "SELECT * FROM collection_runs",
        "SELECT count(*) FROM read_parquet('{lake}/counters/*/*/*/*.parquet')",
    ],
)
def test_read_only_queries_run(sandbox: SafeSQL, store_dir: Path, query: str) -> None:
    result = sandbox.run(query.format(lake=store_dir.resolve() / "lake"))
    assert result.num_rows >= 1
    assert not result.truncated


def test_rows_are_capped_and_flagged(sandbox: SafeSQL) -> None:
    result = sandbox.run("SELECT * FROM counters")
    assert result.truncated and result.num_rows == 1000 == result.max_rows
    assert result.columns[:2] == ["ts_utc", "region"]
    assert result.types[0] == "TIMESTAMP"
    small = sandbox.run("SELECT * FROM counters", max_rows=7)
    assert small.truncated and small.num_rows == 7
    exact = sandbox.run("SELECT * FROM range(1000)")
    assert not exact.truncated and exact.num_rows == 1000


def test_huge_results_are_streamed_not_computed(sandbox: SafeSQL) -> None:
    began = time.monotonic()
    result = sandbox.run("SELECT * FROM range(100000000000)")
    assert result.truncated and result.num_rows == 1000
    assert time.monotonic() - began < 10  # computing all the rows would take hours


def test_errors_carry_duckdbs_message_and_position(sandbox: SafeSQL) -> None:
    with pytest.raises(SQLError) as caught:
        sandbox.run("SELECT region,\n       1 +\nFROM counters")
    message = str(caught.value)
    assert caught.value.kind == "failed"
    assert "Parser Error" in message and "LINE 3" in message and "^" in message
    with pytest.raises(SQLError, match=r"Binder Error.*no_such_column"):
        sandbox.run("SELECT no_such_column FROM counters")
    with pytest.raises(SQLError, match=r"Catalog Error.*no_such_view"):
        sandbox.run("SELECT * FROM no_such_view")


def test_an_unknown_table_lists_the_views_not_duckdbs_system_tables(sandbox: SafeSQL) -> None:
    # DuckDB guesses the nearest catalogue name, often one of its own system tables
    # ("seqs" -> "pg_sequences"), which no sandbox user meant; the views are listed.
    with pytest.raises(SQLError) as caught:
        sandbox.run("SELECT * FROM seqs")
    message = str(caught.value)
    assert "Table with name seqs does not exist" in message
    assert "pg_" not in message and "sqlite_" not in message
    views = message.split("The store's views: ")[1].rstrip(".").split(", ")
    assert {"counters", "gauges", "histograms", "regions"} <= set(views)
    with pytest.raises(SQLError, match=r'Did you mean "counters"'):  # a useful guess stays
        sandbox.run("SELECT * FROM countrs")


def test_closed_sandbox_says_so(store_dir: Path) -> None:
    box = Store(store_dir).sandbox(SandboxLimits())
    box.close()
    with pytest.raises(SQLError, match="closed"):
        box.run("SELECT 1")


def test_queries_run_while_a_writer_rewrites_partitions(store_dir: Path) -> None:
    store = Store(store_dir)
    # The writer holds the lock throughout: each query waits 0.05 s for it, runs
    # three times, and says that the store changed while it ran.
    box = store.sandbox(SandboxLimits(timeout_s=10, write_wait_s=0.05))
    day = END.replace(tzinfo=None) - timedelta(days=1)
    frame = store.query(
        "SELECT ts_utc, model, arm, instance, value, unit, signal FROM counters "
        "WHERE region = 'eu-west-1' AND signal = 'errors'"
    )
    expected = float(frame["value"].sum())
    stop = threading.Event()

    def writer() -> None:
        with store.writer():
            while not stop.is_set():
                store.replace_window("counters", "eu-west-1", ["errors"], day, END, frame)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(30):
            result = box.run(
                "SELECT sum(value) AS s FROM counters "
                "WHERE region = 'eu-west-1' AND signal = 'errors'"
            )
            assert result.table.to_pylist()[0]["s"] == pytest.approx(expected)
            assert result.store_changed
    finally:
        stop.set()
        thread.join()
        box.close()


def test_a_query_waits_for_a_writer_holding_the_lock(store_dir: Path) -> None:
    store = Store(store_dir)
    box = store.sandbox(SandboxLimits(write_wait_s=5.0))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.writer():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        holding.wait(5)
        assert write_mark(store.root)[1]  # odd: a writer holds the lock
        threading.Timer(0.6, release.set).start()
        result = box.run("SELECT count(*) AS n FROM counters")
        assert not result.store_changed
        assert result.elapsed_s >= 0.5  # it waited for the writer
        assert not write_mark(store.root)[1]
    finally:
        release.set()
        thread.join()
        box.close()


def test_a_write_that_overlaps_the_query_runs_it_again(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: a writer that takes and releases the lock while a query runs
    cannot be timed into that window, so the first run moves the write mark on as
    such a writer does (odd, then even); the query must run again."""
    store = Store(store_dir)
    box = store.sandbox(SandboxLimits())
    runs: list[int] = []
    original = SafeSQL._run

    def overlapped(self: SafeSQL, sql: str, cap: int, began: float) -> SQLResult:
        runs.append(1)
        result = original(self, sql, cap, began)
        if len(runs) == 1:
            store._bump_mark(True, WRITE_MARK)
            store._bump_mark(False, WRITE_MARK)
        return result

    monkeypatch.setattr(SafeSQL, "_run", overlapped)
    try:
        before = write_mark(store.root)
        result = box.run("SELECT count(*) AS n FROM counters")
        assert len(runs) == 2 and not result.store_changed
        assert write_mark(store.root)[0] == before[0] + 2
    finally:
        box.close()


# ------------------------------------------------------------------ views and docs
def test_every_view_is_documented_with_its_real_columns(sandbox: SafeSQL) -> None:
    names = sql_catalog.view_names()
    docs = sql_catalog.view_docs()
    assert {"counters", "requests_by_region_minute", "energy_cost_by_region_hour"} <= set(names)
    missing = [n for n in names if n not in docs]
    assert not missing, f"views not documented in docs/sql.md: {missing}"
    doc_text = sql_catalog.DOCS_PATH.read_text(encoding="utf-8")
    for name in names:
        assert f"`{name}`" in doc_text
    actual = sandbox.columns()
    for name in names:
        real = actual[actual["view"] == name]
        documented = [(c.name, c.type) for c in docs[name].columns]
        assert documented == list(zip(real["column"], real["type"], strict=True)), name
        assert docs[name].description, f"{name} has no one-line description"
        for column in docs[name].columns:
            assert column.description, f"{name}.{column.name} has no description"


def test_signals_table_matches_the_canonical_signals() -> None:
    text = sql_catalog.DOCS_PATH.read_text(encoding="utf-8")
    for sig in SIGNALS.values():
        assert f"| `{sig.name}` | {sig.kind}s | {sig.unit} |" in text, sig.name


def test_time_columns_say_utc() -> None:
    for view in sql_catalog.view_docs().values():
        for column in view.columns:
            if column.type.startswith("TIMESTAMP"):
                assert column.name.endswith("_utc") and column.unit == "UTC", column


def test_convenience_views_add_up_to_the_base_views(store_dir: Path) -> None:
    store = Store(store_dir)
    base = store.query("SELECT signal, sum(value) AS v FROM counters GROUP BY signal").set_index(
        "signal"
    )["v"]
    minute = store.query(
        "SELECT sum(requests) AS r, sum(errors) AS e, sum(latency_sum_s) AS l, "
        "sum(prompt_tokens) AS p, sum(generation_tokens) AS g FROM requests_by_region_minute"
    ).iloc[0]
    assert minute["r"] == pytest.approx(base["requests"])
    assert minute["e"] == pytest.approx(base["errors"])
    assert minute["l"] == pytest.approx(base["latency_sum"])
    assert minute["p"] == pytest.approx(base["prompt_tokens"])
    assert minute["g"] == pytest.approx(base["generation_tokens"])
    hourly = store.query(
        "SELECT sum(energy_kwh) AS kwh, sum(cost_usd) AS usd, sum(requests) AS r "
        "FROM energy_cost_by_region_hour"
    ).iloc[0]
    assert hourly["kwh"] == pytest.approx(base["energy"] / 3.6e6)
    assert hourly["r"] == pytest.approx(base["requests"])
    usd = store.query(
        "SELECT sum(mean * step_s) / 3600 AS usd FROM gauges WHERE signal = 'cost'"
    ).iloc[0]["usd"]
    assert hourly["usd"] == pytest.approx(usd)
    buckets = store.query(
        "SELECT sum(cumulative_requests) AS n FROM latency_buckets WHERE isinf(le_s)"
    ).iloc[0]["n"]
    assert buckets == pytest.approx(base["requests"])


def test_hour_buckets_are_right_closed(store_dir: Path) -> None:
    """A step ending exactly on the hour belongs to the hour that ends there."""
    store = Store(store_dir)
    hour_end = datetime(2026, 11, 29, 12, 0)
    expected = store.query(
        "SELECT sum(value) AS r FROM counters WHERE signal = 'requests' "
        "AND ts_utc > $start AND ts_utc <= $end",
        {"start": hour_end - timedelta(hours=1), "end": hour_end},
    ).iloc[0]["r"]
    got = store.query(
        "SELECT sum(requests) AS r FROM energy_cost_by_region_hour WHERE ts_utc = $end",
        {"end": hour_end},
    ).iloc[0]["r"]
    assert got == pytest.approx(expected)
    on_boundary = store.query(
        "SELECT count(*) AS n FROM counters WHERE ts_utc = $end", {"end": hour_end}
    ).iloc[0]["n"]
    assert on_boundary > 0  # the case the convention is about exists in the data


def test_example_queries_have_titles_and_run(sandbox: SafeSQL) -> None:
    found = sql_catalog.examples()
    assert len(found) >= 5
    for example in found:
        assert example.sql.startswith(f"-- title: {example.title}\n"), example.name
        assert example.description
        result = sandbox.run(example.sql)
        assert result.num_rows > 0, example.name
        assert not result.truncated, example.name


def test_p99_example_equals_histogram_quantile(sandbox: SafeSQL, store_dir: Path) -> None:
    sql = (sql_catalog.EXAMPLES_DIR / "p99_latency_by_model_and_hour.sql").read_text()
    got = sandbox.run(sql).to_pandas()
    buckets = Store(store_dir).query(
        "SELECT date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour AS h, "
        "model, le_s, sum(cumulative_requests) AS c FROM latency_buckets GROUP BY ALL"
    )
    checked = 0
    for (hour, model), group in buckets.groupby(["h", "model"]):
        row = got[(got["hour_end_utc"] == hour) & (got["model"] == model)].iloc[0]
        for q, column in [(0.5, "p50_s"), (0.99, "p99_s")]:
            expected = float(histogram_quantile(q, group["le_s"].to_numpy(), group["c"].to_numpy()))
            assert row[column] == pytest.approx(expected, rel=1e-12), (hour, model, q)
            checked += 1
    assert checked == 2 * len(got) > 0
    assert np.isfinite(got["p99_s"]).all()


# ------------------------------------------------------------------ command line
def _cli(args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["sql", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_cli_table_csv_json_parquet(store_dir: Path, tmp_path: Path) -> None:
    query = "SELECT region, count(*) AS n FROM regions GROUP BY region ORDER BY region"
    code, out, err = _cli(["--store", str(store_dir), query])
    assert code == 0, err
    assert "region" in out and "us-east-1" in out and "eu-west-1" in out
    assert "2 rows" in err

    code, out, _ = _cli(["--store", str(store_dir), "--format", "csv", query])
    assert code == 0
    assert out.splitlines() == ["region,n", "eu-west-1,1", "us-east-1,1"]

    code, out, _ = _cli(
        [
            "--store",
            str(store_dir),
            "--format",
            "json",
            "SELECT TIMESTAMP '2026-11-30 01:02:03' AS t, 'nan'::DOUBLE AS x, 1.5 AS y",
        ]
    )
    assert code == 0
    assert json.loads(out) == [{"t": "2026-11-30T01:02:03", "x": None, "y": 1.5}]

    target = tmp_path / "out.parquet"
    code, _, err = _cli(
        ["--store", str(store_dir), "--format", "parquet", "--out", str(target), query]
    )
    assert code == 0, err
    assert pq.read_table(target).to_pylist() == [
        {"region": "eu-west-1", "n": 1},
        {"region": "us-east-1", "n": 1},
    ]


def test_cli_reads_stdin_and_files(store_dir: Path, tmp_path: Path) -> None:
    code, out, _ = _cli(["--store", str(store_dir), "--format", "csv"], stdin="SELECT 7 AS x\n")
    assert code == 0 and out.splitlines() == ["x", "7"]
    code, out, _ = _cli(["--store", str(store_dir), "--format", "csv", "-"], stdin="SELECT 8 AS x")
    assert code == 0 and out.splitlines() == ["x", "8"]
    example = sql_catalog.EXAMPLES_DIR / "energy_per_request_by_arm.sql"
    code, out, err = _cli(["--store", str(store_dir), "--format", "csv", "--file", str(example)])
    assert code == 0, err
    assert out.splitlines()[0].startswith("model,arm,requests,energy_kwh")


def test_cli_config_and_max_rows(deploy: Path) -> None:
    code, out, err = _cli(
        [
            "--config",
            str(deploy / "observatory.yaml"),
            "--format",
            "csv",
            "--max-rows",
            "5",
            "SELECT * FROM counters",
        ]
    )
    assert code == 0, err
    assert len(out.splitlines()) == 6
    assert "cut at 5 rows" in err


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["SELECT * FROM read_csv('/etc/passwd')"], None, 1, "refused"),
        (["COPY (SELECT 1) TO 'x.csv'"], None, 1, "refused"),
        (["SELECT 1 +"], None, 1, "LINE 1"),
        (["SELECT 1; SELECT 2"], None, 1, "2 statements"),
        ([], "", 2, "no query"),
        (["SELECT 1", "--file", "x.sql"], None, 2, "not both"),
        (["--format", "parquet", "SELECT 1"], None, 2, "--out"),
        (["--format", "xml", "SELECT 1"], None, 2, "xml"),
        (["--max-rows", "-1", "SELECT 1"], None, 2, "max-rows"),
        (["--file", "/no/such/file.sql"], None, 2, "cannot read"),
    ],
)
def test_cli_exit_codes(
    store_dir: Path, args: list[str], stdin: str | None, code: int, message: str
) -> None:
    got, _, err = _cli(["--store", str(store_dir), *args], stdin=stdin)
    assert got == code, err
    assert message in err


def test_cli_usage_errors_about_the_store(store_dir: Path, deploy: Path, tmp_path: Path) -> None:
    # A missing store folder is "no data yet" (exit 5, observatory/exit_codes.py).
    code, _, err = _cli(["--store", str(tmp_path / "nope"), "SELECT 1"])
    assert code == 5 and "no such folder" in err and str(tmp_path / "nope") in err
    code, _, err = _cli(
        ["--store", str(store_dir), "--config", str(deploy / "observatory.yaml"), "SELECT 1"]
    )
    assert code == 2 and "not both" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: 3\n", encoding="utf-8")
    code, _, err = _cli(["--config", str(bad), "SELECT 1"])
    assert code == 2 and "bad.yaml" in err


def test_cli_runs_in_another_process_while_the_writer_lock_is_held(store_dir: Path) -> None:
    exe = Path(sys.executable).parent / "observatory"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "observatory.cli"]
    with Store(store_dir).writer():
        done = subprocess.run(
            [
                *command,
                "sql",
                "--store",
                str(store_dir),
                "--format",
                "json",
                "SELECT count(*) AS n FROM regions",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 2}]


# ------------------------------------------------------------------ the SQL page
def _page(monkeypatch: pytest.MonkeyPatch, store: Path) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    return AppTest.from_file(PAGE, default_timeout=60).run()


def _submit(at: AppTest, query: str) -> AppTest:
    at.text_area(key="sql_text").input(query)
    return next(b for b in at.button if b.label == "Run").click().run()


def test_sql_page_runs_a_query_and_shows_table_chart_downloads_history(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _page(monkeypatch, store_dir)
    assert not at.exception
    views = {e.label for e in at.expander}
    assert set(sql_catalog.view_names()) <= views
    at = _submit(
        at,
        "SELECT region, sum(requests) AS requests FROM requests_by_region_minute "
        "GROUP BY region ORDER BY region",
    )
    assert not at.exception and not at.error
    expected = Store(store_dir).query(
        "SELECT region, sum(value) AS requests FROM counters WHERE signal = 'requests' "
        "GROUP BY region ORDER BY region"
    )
    shown = next(d.value for d in at.dataframe if list(d.value.columns) == ["region", "requests"])
    assert shown["region"].tolist() == expected["region"].tolist()
    assert shown["requests"].tolist() == pytest.approx(expected["requests"].tolist())
    assert at.get("plotly_chart")
    assert {b.proto.label for b in at.get("download_button")} == {
        "Download CSV",
        "Download Parquet",
    }
    history = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert history["status"].tolist() == ["ok"]


def test_sql_page_example_picker_and_errors_and_truncation(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    at = _page(monkeypatch, store_dir)
    at.selectbox(key="sql_example").select("Cost per region per day").run()
    assert "cost_usd" in str(at.text_area(key="sql_text").value)
    at = next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception and not at.error

    hostile = "SELECT * FROM read_text('/etc/passwd') -- <img src=x onerror=alert(1)> [x](http://e)"
    at = _submit(at, hostile)
    assert [e.value for e in at.error] == ["Query refused"]
    assert any("/etc/passwd" in c.value for c in at.code)
    assert not any("<img" in m.value for m in at.markdown)

    at = _submit(at, "SELECT * FROM counters")
    assert any("first 10,000 rows" in w.value for w in at.warning)

    at = _submit(at, "SELECT '<b>x</b>' AS \"<i>name</i>\", 1 AS a, 2 AS a, INTERVAL 1 DAY AS i")
    assert not at.exception and not at.error
    history = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert history["status"].tolist() == ["ok", "ok (truncated)", "refused", "ok"]


def test_sql_page_opens_without_building_a_sandbox_and_keeps_it_across_writes(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path, sandbox: SafeSQL
) -> None:
    # Opening the page lists the views from the shared Store (built by the server's
    # warm-up); the sandbox is built by the first query and kept after a write (a new
    # data version, the same views' sources), instead of once per data version.
    import streamlit as st

    from app import sql_access

    st.cache_resource.clear()  # a shared Store (and its sandbox) of earlier page tests
    st.cache_data.clear()
    default = Store(store_dir).sandbox().limits  # what the page's sandbox runs with
    built: list[Path] = []
    init = SafeSQL.__init__

    def counting(self: SafeSQL, store: Store, limits: SandboxLimits | None = None) -> None:
        built.append(store.root)
        init(self, store, limits)

    monkeypatch.setattr(SafeSQL, "__init__", counting)
    at = _page(monkeypatch, store_dir)
    assert not at.exception and not at.error
    assert built == []
    columns, views = sql_access.schema()
    key = ["view", "position"]
    shown = columns[["view", "column", "type", "position"]].sort_values(key)
    real = sandbox.columns().sort_values(key)  # a sandbox made apart from the page's
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), real.reset_index(drop=True))
    assert list(views) == [v for v in sql_catalog.view_names() if v in views]
    assert sql_access.limits() == default
    at = _submit(at, "SELECT 1 AS one")
    assert not at.error and len(built) == 1
    Store(store_dir).touch_version()
    at = _submit(at, "SELECT count(*) AS n FROM regions")
    assert not at.error and len(built) == 1
    history = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert history["status"].tolist() == ["ok", "ok"]


def test_sql_page_is_in_the_navigation() -> None:
    text = (ROOT / "app" / "main.py").read_text(encoding="utf-8")
    assert '("sql.py", "SQL"' in text


# Found by a security review after the first version: each of these got through.
@pytest.mark.parametrize(
    "query",
    [
        # tokenize() offsets are UTF-8 bytes: non-ASCII characters in a comment shifted
        # the cut of the EXPLAIN text so that the check saw only "SELECT 1 --".
        "EXPLAIN ANALYZE /*éééééééééééééé*/ COPY (SELECT 'SELECT 1 --') TO '{lake}/pwn.csv'",
        "EXPLAIN /*éééééééééééééé*/ COPY (SELECT 'SELECT 1 --') TO '{lake}/pwn.csv'",
        "EXPLAIN ANALYZE SELECT 1",
        # functions that run SQL text or escape the time and memory limits
        "SELECT * FROM destroy_external_resource('range', 10000000000)",
        "SELECT count(*) FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
        "SELECT * FROM query('SELECT ' || repeat('1,', 5000000) || '1')",
        "SELECT * FROM query_table('counters')",
        "SELECT length(repeat('x', 4000000000))",
        "SELECT max(length(lpad('', CAST(3e9 AS BIGINT), 'x'))) FROM range(4)",
        "SELECT length(repeat('x', (SELECT 4000000000)))",
        "SELECT length(format('{{:>2000000000}}', 'x'))",
        "SELECT length(printf('%2000000000d', 1))",
    ],
)
def test_review_findings_are_refused(
    sandbox: SafeSQL, store_dir: Path, healthy: tuple[int, float], query: str
) -> None:
    lake = (store_dir / "lake").as_posix()
    with pytest.raises(SQLError) as caught:
        sandbox.run(query.format(lake=lake))
    assert caught.value.kind == "refused"
    assert not (store_dir / "lake" / "pwn.csv").exists()
    _still_serves(sandbox, healthy)


def test_every_cursor_runs_in_utc_with_the_time_limit(sandbox: SafeSQL) -> None:
    got = sandbox.run(
        "SELECT current_setting('TimeZone') AS tz, current_setting('max_execution_time') AS ms"
    ).to_pandas()
    assert got["tz"].tolist() == ["UTC"]
    assert int(got["ms"].iloc[0]) == int(sandbox.limits.timeout_s * 1000)

"""A query that reads a Parquet file while a writer replaces it is run again.

Readers take no lock: a writer's ``os.replace`` can land between DuckDB's opening of a
file for its footer and for its pages, and DuckDB then reports
``TProtocolException: Invalid data`` (seen once in 79 page loads of the 10-session
load test, docs/scaling.md).  That race cannot be produced on demand with a real
writer, so these tests FAKE the DuckDB connection's error (what they check is the
store's reaction: run again, or give up with the message).  The real race, and the
worse case where DuckDB returns a mix of the two versions without any error, is
measured by ``bench/torn_reads.py`` (docs/architecture.md, "Readers and writers").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from observatory.store import TORN_READ_ATTEMPTS, Store, StoreError

TORN = "Invalid Input Error: TProtocolException: Invalid data"


class _FlakyCursor:
    def __init__(self, fails: list[str], calls: list[str]):
        self.fails, self.calls = fails, calls

    def execute(self, sql: str, params: Any = None) -> Any:
        self.calls.append(sql)
        if self.fails:
            raise duckdb.Error(self.fails.pop(0))
        return duckdb.connect().execute("SELECT 42 AS answer")

    def close(self) -> None:
        pass


class _FlakyConnection:
    def __init__(self, fails: list[str]):
        self.fails, self.calls = fails, []  # type: list[str], list[str]

    def cursor(self) -> _FlakyCursor:
        return _FlakyCursor(self.fails, self.calls)


def _store_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fails: list[str]) -> Any:
    con = _FlakyConnection(fails)
    store = Store(tmp_path)
    monkeypatch.setattr(store, "connect", lambda: con)
    return store, con


def test_a_torn_read_is_run_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store, con = _store_with(monkeypatch, tmp_path, [TORN])
    assert store.query("SELECT 1")["answer"].tolist() == [42]
    assert len(con.calls) == 2


def test_a_read_torn_every_time_gives_up_with_the_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store, con = _store_with(monkeypatch, tmp_path, [TORN] * 10)
    with pytest.raises(StoreError, match=r"query failed: .*TProtocolException"):
        store.query("SELECT 1")
    assert len(con.calls) == TORN_READ_ATTEMPTS == 3


def test_other_errors_are_not_run_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store, con = _store_with(monkeypatch, tmp_path, ["Binder Error: column x not found"])
    with pytest.raises(StoreError, match="column x not found"):
        store.query("SELECT x")
    assert len(con.calls) == 1

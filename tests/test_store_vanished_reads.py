"""Readers that list partition files and read them later survive a compaction in
between (issue #9): the experiment listing, the drift fingerprint and the SLO slice
cache list again once (:func:`observatory.store.retry_on_vanished`).

Real store, real hour files, real compaction (renameat2) and real DuckDB.  The gap
between a reader's listing and its read cannot be hit on demand, so each test forces
it: it wraps the reader's read step so that the closed day is compacted right after
the listing and before the first read, and says so.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from observatory import drift_fresh, experiment_listing
from observatory.hour_files import LEGACY_FILE
from observatory.slo_cache import SliceCache, Source, partition_files
from observatory.store import Store, StoreError, retry_on_vanished
from tests.test_store_hour_files import DAY, H, _write

CLOSED_NOW = DAY + 72 * H  # DAY is closed by then (grace: one day)


def _hour_file_store(root: Path) -> Store:
    store = Store(root)
    with store.writer():
        _write(store, DAY + 2 * H, DAY + 9 * H, seed=61)  # a partial day: hour files
    assert LEGACY_FILE not in {p.name for p in store.data_files("counters")}
    return store


def _compact(store: Store) -> None:
    writer = Store(store.root)
    with writer.writer():
        assert writer.compact_closed(now=CLOSED_NOW).compacted > 0


def _compacted(store: Store) -> bool:
    return {p.name for p in store.data_files("counters")} == {LEGACY_FILE}


def test_the_experiment_listing_lists_again_after_a_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = experiment_listing.arms_frame(_hour_file_store(tmp_path / "a"))
    store = _hour_file_store(tmp_path / "b")
    real = experiment_listing._read_contributions
    calls: list[list[str]] = []

    def listed_then_compacted(store: Store, files: list[str]) -> pd.DataFrame:
        calls.append(files)
        if len(calls) == 1:  # forced: the day is compacted between listing and reading
            _compact(store)
        return real(store, files)

    monkeypatch.setattr(experiment_listing, "_read_contributions", listed_then_compacted)
    got = experiment_listing.arms_frame(store)
    assert _compacted(store) and len(calls) == 2
    assert any(f.endswith("h03.parquet") for f in calls[0])
    assert all(f.endswith(LEGACY_FILE) for f in calls[1])
    assert got["requests"].sum() > 0
    pd.testing.assert_frame_equal(got, want)


def test_the_drift_fingerprint_lists_again_after_a_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _hour_file_store(tmp_path)
    signals = {"requests": {"kind": "ratio", "sources": ["requests", "errors"]}}
    lo, hi = DAY + 3 * H, DAY + 8 * H + H / 2
    real = drift_fresh.edge_digests
    calls: list[dict[str, list[Path]]] = []

    def listed_then_compacted(store: Store, files: Any, lo: datetime, hi: datetime) -> Any:
        calls.append(files)
        if len(calls) == 1:  # forced: the day is compacted between listing and reading
            _compact(store)
        return real(store, files, lo, hi)

    monkeypatch.setattr(drift_fresh, "edge_digests", listed_then_compacted)
    got = drift_fresh.fingerprint(store, signals, lo, hi)
    assert _compacted(store) and len(calls) == 2
    monkeypatch.setattr(drift_fresh, "edge_digests", real)
    assert got == drift_fresh.fingerprint(store, signals, lo, hi)  # of the compacted files
    keys = list(got["edge"])
    assert keys and all(k.endswith(LEGACY_FILE) for k in keys)
    assert sum(n for n, _, _ in got["edge"].values()) > 0


def test_the_slo_slice_cache_lists_again_after_a_compaction(tmp_path: Path) -> None:
    """``compute`` does what the SLO engine's does (list the partition files, then
    read them); here the day is compacted between the two (forced)."""
    store = _hour_file_store(tmp_path)
    source = Source("counters", ("requests",))
    listed: list[list[Path]] = []

    def compute(start: datetime, end: datetime) -> pd.DataFrame:
        files = partition_files(store, source, [DAY.date()])
        listed.append(files)
        if len(listed) == 1:  # forced: the day is compacted between listing and reading
            _compact(store)
        return store.query(
            "SELECT date_trunc('hour', ts_utc - INTERVAL 1 MICROSECOND) + INTERVAL 1 HOUR "
            "AS hour_utc, region, model, arm, 0.0 AS bad, sum(value) AS total, "
            "count(*)::BIGINT AS slices FROM "
            f"{store.parquet_source('counters', files)} WHERE ts_utc > $start "
            "AND ts_utc <= $end GROUP BY ALL",
            {"start": start, "end": end},
        )

    cache = SliceCache(store, tmp_path / "cache")
    got = cache.hours("k", source, [DAY.date()], compute)
    assert _compacted(store) and len(listed) == 2
    assert listed[0][0].name.startswith("h") and listed[1][0].name == LEGACY_FILE
    requests = store.query("SELECT sum(value) AS v FROM counters WHERE signal = 'requests'")
    assert got["total"].sum() == requests["v"].iloc[0] > 0
    # The cached stamps name the compacted files: the next call reuses every part.
    again = SliceCache(store, tmp_path / "cache")
    assert again.hours("k", source, [DAY.date()], compute)["total"].sum() == got["total"].sum()
    assert again.computed == 0 and len(listed) == 2


def test_a_vanished_file_is_retried_once_and_other_errors_not_at_all(tmp_path: Path) -> None:
    calls: list[int] = []

    def vanishing() -> int:
        calls.append(1)
        raise StoreError("query failed: IO Error: No files found that match the pattern 'x'")

    with pytest.raises(StoreError, match="No files found"):
        retry_on_vanished(vanishing, "test")
    assert len(calls) == 2

    def broken() -> int:
        calls.append(1)
        raise StoreError("query failed: Binder Error: column x not found")

    calls.clear()
    with pytest.raises(StoreError, match="column x"):
        retry_on_vanished(broken, "test")
    assert len(calls) == 1


def test_a_query_over_a_listed_file_that_is_gone_fails_at_once(tmp_path: Path) -> None:
    """Running the same SQL again cannot find a file that is gone: no retries, so the
    reader can list again at once."""
    store = _hour_file_store(tmp_path)
    files = list(store.data_files("counters", ["requests"]))
    sql = f"SELECT count(*) AS n FROM {store.parquet_source('counters', files)}"
    _compact(store)
    with pytest.raises(StoreError, match=r"No such file|No files found"):
        store.query(sql)
    assert store.torn_retries == 0

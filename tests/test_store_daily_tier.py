"""The daily roll-up tier (``<table>_daily``, :data:`observatory.store.ROLLUP_DAILY_OF`).

- Its period-end convention: a day is ``(D 00:00, D+1 00:00]`` as an hour is
  ``(h - 1h, h]``; the step at midnight closes the day before.  Checked against sums
  of the written frames computed here with pandas, not by the store.
- :meth:`Store.window_rows` with the daily tier equals the minute rows over windows of
  whole days, cut days, one day, and with one partition's daily roll-up stale.
- Housekeeping gives an older store (no daily tier) the tier from its hourly roll-ups,
  in a hard-link copy, without changing any file of the original; a later write in the
  copy leaves the original alone too (writers replace files, never write into them).

(Writes patching the daily tier after steps, rewrites and deletions are compared with
a rebuild from every row in tests/test_store_hour_files.py, which checks every tier of
``ROLLUP_TIERS``.)  Real Parquet files and DuckDB throughout; no fakes.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from observatory.store import (
    DAY_S,
    ROLLUP_DAILY_OF,
    ROLLUP_SCHEMAS,
    ROLLUP_TIERS,
    WINDOW_TIERS,
    Store,
    coarser_rollup,
    tree_identities,
)
from tests.test_store_hour_files import DAY, REGION, SIGNALS, _all_rows, _frame, _write

D = timedelta(days=1)
START, END = DAY - 2 * timedelta(hours=1), DAY + 2 * D + timedelta(hours=1)  # 3 partial days


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, pd.DataFrame]]:
    """A store with every table written over ``(START, END]`` (3 days and 2 hours: the
    whole day is stored as a day file, the partial ones as hour files), and the frames."""
    store = Store(tmp_path_factory.mktemp("daily"))
    frames = {t: _frame(t, START, END, seed=3) for t in SIGNALS}
    with store.writer():
        for table, frame in frames.items():
            store.replace_window(table, REGION, SIGNALS[table], START, END, frame)
    return store, frames


def _day_end(ts: pd.Series) -> pd.Series:
    return ts.dt.ceil("1D")


def test_daily_rows_end_at_midnight_and_the_midnight_step_closes_the_day_before(
    written: tuple[Store, dict[str, pd.DataFrame]],
) -> None:
    store, frames = written
    frame = frames["counters"]
    for day in (DAY.date(), (DAY + D).date()):
        folder = store.partition_dir("counters", "requests", day, REGION)
        daily = pq.read_table(
            store.rollup_path("counters", folder, DAY_S),
            schema=ROLLUP_SCHEMAS[ROLLUP_DAILY_OF["counters"]],
        ).to_pandas()
        midnight = datetime.combine(day, datetime.min.time())
        # Two period ends per partition: its midnight step, and the rest of its steps.
        assert sorted(set(daily["hour_utc"])) == [midnight, midnight + D]
        mine = frame[(frame["signal"] == "requests") & (frame["ts_utc"].dt.date == day)]
        want = (
            mine.assign(hour_utc=_day_end(mine["ts_utc"]))
            .groupby(["hour_utc", "model", "arm"], as_index=False)
            .agg(value=("value", "sum"), rows=("value", "size"))
        )
        got = daily.sort_values(["hour_utc", "model"]).reset_index(drop=True)
        assert got["value"].tolist() == want["value"].tolist()
        assert got["rows"].tolist() == want["rows"].tolist()
        assert set(got.loc[got["hour_utc"] == midnight, "rows"]) == {2}  # 2 GPUs, 1 step
        # The same sums as the partition's hourly rows of (D, D + 1d] (the hour ending
        # at midnight included, the one ending at D 00:00 not).
        hourly = pq.read_table(store.rollup_path("counters", folder, 3600)).to_pandas()
        inside = hourly[(hourly["hour_utc"] > midnight) & (hourly["hour_utc"] <= midnight + D)]
        day_row = got[got["hour_utc"] == midnight + D].set_index("model")["value"]
        assert (inside.groupby("model")["value"].sum() == day_row).all()


def _sums(store: Store, kind: str, lo: datetime, hi: datetime, **kw: object) -> pd.DataFrame:
    """Per signal, model and arm over ``(lo, hi]``: summed values (gauges: weighted,
    seconds and max), rows summed ``n``."""
    if kind == "gauges":
        values = "sum(weighted) AS v, sum(seconds) AS s, max(max) AS mx"
    else:
        values = "sum(value) AS v"
    rows = store.window_rows(kind, None, lo, hi, **kw)  # type: ignore[arg-type]
    return store.query(
        f"SELECT signal, model, arm, {values}, sum(n) AS n FROM {rows} GROUP BY ALL ORDER BY ALL"
    )


WINDOWS = {
    "whole days": (DAY, DAY + 2 * D),
    "cut days": (DAY - timedelta(minutes=43), DAY + D + timedelta(hours=7, minutes=17)),
    "two days from a partial one": (DAY - D, DAY + D),
    "within a day": (DAY + timedelta(hours=3), DAY + timedelta(hours=9, minutes=30)),
}


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("kind", ["counters", "histograms", "gauges"])
def test_window_rows_with_the_daily_tier_equal_minute_rows(
    written: tuple[Store, dict[str, pd.DataFrame]], window: str, kind: str
) -> None:
    store, _ = written
    lo, hi = WINDOWS[window]
    want = _sums(store, kind, lo, hi, use_rollup=False)
    got = _sums(store, kind, lo, hi, tiers=list(ROLLUP_TIERS))
    assert len(want) > 0
    assert (got["n"] == want["n"]).all()
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    sql = store.window_rows(kind, None, lo, hi, tiers=list(ROLLUP_TIERS))
    assert (f"lake/{kind}_daily/" in sql) == (window != "within a day")
    # Not used unless asked for (a gauge's minute mask is per hour).
    assert DAY_S not in WINDOW_TIERS
    assert "_daily/" not in store.window_rows(kind, None, lo, hi)


def test_a_stale_daily_rollup_is_skipped_for_its_partition_only(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.writer():
        _write(store, START, END, seed=5)
    folder = store.partition_dir("counters", "errors", DAY.date(), REGION)
    daily = store.rollup_path("counters", folder, DAY_S)
    os.utime(daily, ns=(1, 1))  # another stamp than its partition's: stale
    lo, hi = DAY - D, DAY + 2 * D
    sql = store.window_rows("counters", None, lo, hi, tiers=list(ROLLUP_TIERS))
    assert str(daily) not in sql and "counters_daily/signal=requests" in sql
    pd.testing.assert_frame_equal(
        _sums(store, "counters", lo, hi, tiers=list(ROLLUP_TIERS)),
        _sums(store, "counters", lo, hi, use_rollup=False),
    )


def test_housekeeping_adds_the_tier_to_a_linked_copy_of_an_older_store(tmp_path: Path) -> None:
    original = Store(tmp_path / "orig")
    with original.writer():
        _write(original, START, END, seed=9)
    for table in ROLLUP_DAILY_OF.values():  # a store written before the daily tier
        subprocess.run(["rm", "-r", str(original.lake / table)], check=True)
    before = tree_identities(original.root)
    subprocess.run(["cp", "-al", str(original.root), str(tmp_path / "copy")], check=True)
    copy = Store(tmp_path / "copy")
    hourly_before = {k: v for k, v in tree_identities(copy.root).items() if "_hourly/" in k}
    lo, hi = DAY - D, DAY + 2 * D
    assert "_daily/" not in copy.window_rows("counters", None, lo, hi, tiers=list(ROLLUP_TIERS))
    with copy.writer():  # housekeeping
        pass
    assert tree_identities(original.root) == before
    after = tree_identities(copy.root)
    assert {k: v for k, v in after.items() if "_hourly/" in k} == hourly_before  # read only
    for table, signals in SIGNALS.items():
        for sig in signals:
            for day in (DAY - D, DAY, DAY + D, DAY + 2 * D):
                folder = copy.partition_dir(table, sig, day.date(), REGION)
                path = copy.rollup_path(table, folder, DAY_S)
                assert path.stat().st_mtime_ns == copy.partition_stamp(
                    table, sig, day.date(), REGION
                )
                got = pq.read_table(path, schema=ROLLUP_SCHEMAS[ROLLUP_DAILY_OF[table]])
                hourly = pq.read_table(copy.rollup_path(table, folder, 3600))
                assert got.equals(coarser_rollup(table, hourly, DAY_S))
                rows = _all_rows(copy, table, sig, day.date())
                assert rows.num_rows == got.to_pandas()["rows"].sum()
    assert "_daily/" in copy.window_rows("counters", None, lo, hi, tiers=list(ROLLUP_TIERS))
    # A step written into the copy replaces files: the original stays as it was.
    step = DAY + timedelta(hours=5, minutes=1)
    with copy.writer():
        frame = _frame("counters", step - timedelta(minutes=1), step, seed=11)
        copy.replace_window(
            "counters", REGION, SIGNALS["counters"], step - timedelta(minutes=1), step, frame
        )
    assert tree_identities(original.root) == before
    pd.testing.assert_frame_equal(
        _sums(copy, "counters", lo, hi, tiers=list(ROLLUP_TIERS)),
        _sums(copy, "counters", lo, hi, use_rollup=False),
    )


def test_housekeeping_with_a_budget_goes_on_at_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store from an older version gains the daily tier over several takes of the
    writer lock, at least one partition per take, never in one long hold; readers
    meanwhile read the hourly tier (exact)."""
    import observatory.store.core as core

    old = Store(tmp_path / "old")
    with old.writer():
        _write(old, START, END, seed=9)
    for table in ROLLUP_DAILY_OF.values():
        subprocess.run(["rm", "-r", str(old.lake / table)], check=True)
    missing = sum(1 for t in ROLLUP_DAILY_OF for _ in old.partitions(t))
    assert missing > 2
    lo, hi = DAY - D, DAY + 2 * D
    want = _sums(old, "counters", lo, hi, use_rollup=False)

    first = Store(old.root).housekeeping(budget_s=0.0)  # over budget after the first
    assert (first.rollups_rebuilt, first.complete) == (1, False)
    monkeypatch.setattr(core, "HOUSEKEEPING_BUDGET_S", 0.0)
    store = Store(old.root)
    takes = 0
    while not store._housekept:
        with store.writer():
            takes += 1
        pd.testing.assert_frame_equal(  # exact at every stage of the upgrade
            _sums(store, "counters", lo, hi, tiers=list(ROLLUP_TIERS)), want
        )
        assert takes <= missing
    assert takes == missing - 1  # one partition per take after the first call's one
    assert Store(old.root).housekeeping().rollups_rebuilt == 0
    assert "_daily/" in store.window_rows("counters", None, lo, hi, tiers=list(ROLLUP_TIERS))

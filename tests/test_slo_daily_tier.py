"""SLO status through the store's daily roll-up tier equals the step computation.

A 3-day demo store of two regions (written as the collector's backfill writes whole
days, so every partition has its daily, hourly and 5-minute roll-ups).  The status of
every example SLO (``examples/slo``) from the default engine (the batched SLOs' pass
reads whole days from the daily tier, the edge days' hours from the hourly one, the
edge hours' 5-minute periods, the rest from steps) is compared, every column, with the
engine reading steps only and with the former hourly-only plan, at times mid-hour, on
the hour and at midnight, with maintenance windows whose edges cut days, and with
one partition's daily roll-up stale.  The batched pass is checked to have read the
daily tier (a spy on ``Store.window_rows`` that calls through, so the real files
are read).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from observatory.slo_engine import Maintenance, SloEngine, status_table
from observatory.slo_specs import SloDefinition, load_specs
from observatory.store import DAY_S, Store
from tests import test_slo_cache
from tests.test_slo_cache import END

ROOT = Path(__file__).resolve().parent.parent
KEY = ["slo", "region", "model", "arm"]
D = timedelta(days=1)
demo = test_slo_cache.demo  # the same 3-day, 2-region demo store fixture
ATS = {
    "mid-hour": END - D + timedelta(hours=7, minutes=37),
    "on the hour": END - D + timedelta(hours=8),
    "midnight": END - D,
    "latest step": END,
}


@pytest.fixture(scope="module")
def slos() -> list[SloDefinition]:
    return load_specs([ROOT / "examples" / "slo"])


@pytest.fixture
def rollup_env() -> Iterator[None]:
    before = os.environ.get("OBSERVATORY_ROLLUP")
    yield
    if before is None:
        os.environ.pop("OBSERVATORY_ROLLUP", None)
    else:
        os.environ["OBSERVATORY_ROLLUP"] = before


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    x = a.sort_values(KEY).reset_index(drop=True)
    y = b.sort_values(KEY).reset_index(drop=True)
    assert len(x) > 0
    pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-12, atol=0)


def _tables_read(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """SQL texts of every ``Store.window_rows`` call (the real method runs)."""
    seen: list[str] = []
    real = store.window_rows

    def spy(*args: object, **kw: object) -> str:
        sql = real(*args, **kw)  # type: ignore[arg-type]
        seen.append(sql)
        return sql

    monkeypatch.setattr(store, "window_rows", spy)
    return seen


@pytest.mark.parametrize("when", list(ATS))
def test_status_of_every_example_slo_equals_the_steps(
    demo: Path,
    slos: list[SloDefinition],
    when: str,
    monkeypatch: pytest.MonkeyPatch,
    rollup_env: None,
) -> None:
    store = Store(demo)
    at = ATS[when]
    steps = status_table(SloEngine(store, cache=False, use_rollup=False), slos, at)
    seen = _tables_read(store, monkeypatch)
    daily = status_table(SloEngine(store, cache=False), slos, at)
    _same(daily, steps)
    batched = [s for s in slos if SloEngine.batchable(s)]
    assert len(batched) == 3
    # The 30-day period holds whole days here: they came from the daily tier.
    assert any("lake/counters_daily/" in sql for sql in seen)
    assert any("lake/histograms_daily/" in sql for sql in seen)
    os.environ["OBSERVATORY_ROLLUP"] = "hourly"
    seen.clear()
    hourly = status_table(SloEngine(store, cache=False), slos, at)
    assert seen and not any("_daily/" in sql or "_5m/" in sql for sql in seen)
    _same(hourly, steps)


def test_maintenance_edges_inside_days_and_a_stale_daily_rollup(
    demo: Path, slos: list[SloDefinition], tmp_path: Path
) -> None:
    """Maintenance windows cutting days (one of every region, one of one region) and
    a partition whose daily roll-up is stale: the batched status still equals the
    steps (each engine computes the batched SLOs together, the others one by one)."""
    copy = tmp_path / "store"
    shutil.copytree(demo, copy, copy_function=shutil.copy2)  # keeps the stamps
    store = Store(copy)
    day = (END - 2 * D).date()
    folder = store.partition_dir("counters", "requests", day, "eu-west-1")
    os.utime(store.rollup_path("counters", folder, DAY_S), ns=(1, 1))
    maint = [
        Maintenance(END - 2 * D + timedelta(hours=5, seconds=30), END - 2 * D + timedelta(hours=9)),
        Maintenance(
            END - 3 * D + timedelta(hours=20),
            END - D + timedelta(hours=2, minutes=7),
            regions=("us-east-1",),
            reason="upgrade",
        ),
    ]
    batched = [s for s in slos if SloEngine.batchable(s)]
    at = END - timedelta(minutes=23)
    want = status_table(
        SloEngine(store, cache=False, use_rollup=False, maintenance=maint), batched, at
    )
    got = status_table(SloEngine(store, cache=False, maintenance=maint), batched, at)
    _same(got, want)
    plain = status_table(SloEngine(store, cache=False), batched, at)
    a, b = (t.sort_values(KEY).reset_index(drop=True) for t in (plain, got))
    assert not (a["total"].equals(b["total"]) and a["bad"].equals(b["bad"]))  # it excluded

"""The precomputed SLO status and burn-down (observatory/slo_precomputed.py) on a
real demo store.

A kept table equals the one computed directly (no cache) while nothing was written;
after a write it is shown only while every SLO's evaluation is at most ``max_age``
behind its latest step, else it is computed again.  "A status kept 3 minutes of data
ago" is built with the engine itself (the status at ``latest - 3 min``, saved with an
older data version): the store cannot be made to have held less data in the past.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from observatory import slo_precomputed as pre
from observatory.demo import build_store
from observatory.precompute import precompute
from observatory.slo_cache import SliceCache
from observatory.slo_engine import Maintenance, SloEngine, status_table
from observatory.slo_specs import SloDefinition, load_specs
from observatory.store import Store

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "examples" / "slo"
END = datetime(2026, 3, 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slo-snapshot") / "demo"
    build_store(root, days=1, regions=["us-east-1", "eu-west-1"], end=END)
    return root


@pytest.fixture(scope="module")
def slos() -> list[SloDefinition]:
    return load_specs([SPECS])


def _engine(store: Store, root: Path, **kw: object) -> SloEngine:
    return SloEngine(store, cache=SliceCache(store, root), **kw)  # type: ignore[arg-type]


def test_the_kept_status_is_exact_until_data_is_written(
    demo: Path, slos: list[SloDefinition], tmp_path: Path
) -> None:
    store = Store(demo)
    engine = _engine(store, tmp_path / "cache")
    direct = status_table(SloEngine(store, cache=False), slos, None)
    first, how = pre.current_status(engine, slos)
    assert how.source == "computed"
    path = pre.status_path(engine, slos)
    assert path is not None and path.exists() and path.is_relative_to(tmp_path / "cache")
    again, how = pre.current_status(engine, slos)
    assert how.source == "exact" and how.behind == timedelta(0)
    for table in (first, again):  # every column, every row, in the same order
        pd.testing.assert_frame_equal(table, direct, check_exact=False, rtol=1e-12)
    assert (again["state"] == direct["state"]).all() and len(direct) > len(slos)
    # Other SLOs (a subset, another order) or other maintenance: another key, computed.
    _, how = pre.current_status(engine, slos[::-1])
    assert how.source == "computed"
    window = Maintenance(END - timedelta(hours=3), END - timedelta(hours=2))
    other = _engine(store, tmp_path / "cache", maintenance=[window])
    table, how = pre.current_status(other, slos)
    assert how.source == "computed"
    pd.testing.assert_frame_equal(
        table,
        status_table(SloEngine(store, cache=False, maintenance=[window]), slos, None),
        check_exact=False,
        rtol=1e-12,
    )
    # A spec loaded from another path (its source differs) shares the key.
    moved = load_specs([SPECS / ".." / "slo"])
    assert pre.status_path(engine, moved) == pre.status_path(engine, slos)


def test_after_a_write_a_recent_status_is_shown_an_old_one_recomputed(
    demo: Path, slos: list[SloDefinition], tmp_path: Path
) -> None:
    store = Store(demo)
    engine = _engine(store, tmp_path / "cache")
    latest = {s.name: engine.latest(s) for s in slos}
    newest = max(t for t in latest.values() if t is not None)
    then = newest - timedelta(minutes=3)
    older = status_table(engine, slos, then)
    ends = {s.name: then for s in slos}
    kept = pre.Kept(older, store.data_version() - 1.0, datetime(2026, 3, 1, 0, 1), ends)
    assert pre.save(pre.status_path(engine, slos), kept) is None
    table, how = pre.current_status(engine, slos, max_age=timedelta(minutes=5))
    assert how.source == "recent" and how.computed_at == kept.computed_at
    # The largest lag: the SLO whose data ends last is 3 minutes behind.
    assert how.behind == timedelta(minutes=3)
    assert (pd.to_datetime(table["at"]) == then).all()
    pd.testing.assert_frame_equal(table, older)
    # Not within 2 minutes: computed now (each SLO at its latest step), and kept.
    table, how = pre.current_status(engine, slos, max_age=timedelta(minutes=2))
    assert how.source == "computed"
    direct = status_table(SloEngine(store, cache=False), slos, None)
    pd.testing.assert_frame_equal(table, direct, check_exact=False, rtol=1e-12)
    assert pre.current_status(engine, slos, max_age=timedelta(0))[1].source == "exact"


def test_a_cache_folder_that_cannot_be_written_still_gives_the_status(
    demo: Path, slos: list[SloDefinition], tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way\n")
    store = Store(demo)
    engine = _engine(store, blocked / "cache")
    table, how = pre.current_status(engine, slos)
    assert how.source == "computed" and len(table) > 0
    assert engine.cache is not None and "cannot write" in (engine.cache.write_error or "")
    assert pre.current_status(engine, slos)[1].source == "computed"  # nothing kept
    table, how = pre.current_status(SloEngine(store, cache=False), slos)
    assert how.source == "uncached" and len(table) > 0


def test_the_precompute_job_keeps_the_status_and_every_burn_down(
    demo: Path, slos: list[SloDefinition], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVATORY_SLO_CACHE", str(tmp_path / "cache"))
    store = Store(demo)
    first = precompute(store, slo_specs=[SPECS])[0]
    assert first.ok and first.part == "slo", first.message
    assert "9 SLOs evaluated" in first.message and ", kept;" in first.message
    engine = SloEngine(store)
    kept = pre.load(pre.status_path(engine, slos))
    assert kept is not None and kept.data_version == store.data_version()
    assert kept.ends == {s.name: engine.latest(s) for s in slos}
    again = precompute(store, slo_specs=[SPECS])[0]
    assert "up to date" in again.message
    # The default burn-down of every SLO (1 day before its latest step, every minute)
    # is kept and equals the history computed from the steps without any cache.
    plain = SloEngine(store, cache=False)
    for slo in slos:
        got, how = pre.current_history(engine, slo, max_age=timedelta(0))
        assert how.source == "exact", slo.name
        end = plain.latest(slo)
        assert end is not None
        want = plain.history(slo, start=end - pre.DEFAULT_SPAN, end=end)
        assert len(got) == len(want) > 0
        scale = float(want[["cum_bad", "cum_total"]].abs().max().max())
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=1e-12 * scale)
    # Another view (6 hours every 5 minutes) is computed on demand, then kept.
    slo = slos[0]
    six = (slo, timedelta(hours=6), timedelta(minutes=5))
    assert pre.current_history(engine, *six)[1].source == "computed"
    assert pre.current_history(engine, *six)[1].source == "exact"

"""A filter that selects every value is no filter: the dashboard passes None and the
store drops the query's ``list_contains`` predicate (observatory/store/core.py,
``_unfiltered``), which DuckDB otherwise runs as a hash semi-join over every row.
The answers must be those of the explicit lists on a store where every row's labels
are known, and keep rows whose label the filter does not know (Filters.keeps)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from app_support import END, REGIONS, demo_store

from app.filters import NO_ARM, Filters
from observatory.store import FILTER_PARAMS, Store
from observatory.store.core import _unfiltered

QUERIES = {  # page queries and their extra parameters
    "work_by_day": {},
    "gpu_by_group": {"floor_pct": 10},
    "latency_by_group": {},
    "latency_series": {"signal": "latency", "split": "region", "bucket_s": 300},
    "gpu_series": {"split": "model", "bucket_s": 3600},
    "overview_counters_by_bucket": {"bucket_s": 300},
    "overview_series_latency": {"bucket_s": 300},
    "overview_gauges_by_region": {},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(demo_store(tmp_path_factory.mktemp("unfiltered") / "demo"))


def _labels(store: Store, column: str) -> list[str]:
    rows = store.query(f"SELECT DISTINCT coalesce({column}, '') AS v FROM counters ORDER BY 1")
    return rows["v"].tolist()


def _window() -> tuple[datetime, datetime]:
    end = END.replace(tzinfo=None)
    return end - timedelta(hours=24), end


def test_the_predicates_become_true_only_for_filters_given_as_none() -> None:
    sql = (
        "WHERE list_contains($regions, region) AND list_contains($models, coalesce(model, ''))"
        " AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, arm))"
    )
    assert _unfiltered(sql, {"regions": ["a"], "models": ["m"], "arms": ["v1"]}) == sql
    assert _unfiltered(sql, {"models": None, "arms": None, "regions": ["a"]}) == (
        "WHERE list_contains($regions, region) AND TRUE"
        " AND (TRUE OR NOT list_contains($all_arms, arm))"
    )
    assert set(FILTER_PARAMS) == {"regions", "models", "arms"}


@pytest.mark.parametrize("name", list(QUERIES))
def test_every_value_as_none_answers_as_the_full_lists(store: Store, name: str) -> None:
    start, end = _window()
    arms = _labels(store, "arm")
    listed = {
        "start": start,
        "end": end,
        "regions": sorted(REGIONS),
        "models": _labels(store, "model"),
        "arms": arms,
        "all_arms": arms,
        **QUERIES[name],
    }
    every = {**listed, "regions": None, "models": None, "arms": None}
    want = store.named(name, **listed)
    got = store.named(name, **every)
    assert len(want) > 0, name
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_none_keeps_rows_whose_label_the_filter_does_not_know(store: Store) -> None:
    # A model the filter's lists do not name: the explicit list drops its rows, "every
    # model" keeps them (as Filters.keeps keeps values it does not know).
    start, end = _window()
    models = _labels(store, "model")
    base = {"start": start, "end": end, "regions": sorted(REGIONS), "arms": None}
    some = store.named("latency_by_group", **base, models=models[:-1])
    every = store.named("latency_by_group", **base, models=None)
    assert set(every["model"]) == set(models) and models[-1] not in set(some["model"])
    assert every["value"].sum() > some["value"].sum()


def test_the_filters_pass_none_only_when_every_known_value_is_selected() -> None:
    t = datetime(2026, 11, 30)
    f = Filters("Last 24 h", t - timedelta(days=1), t, ["a", "b"], ["m"], ["a", "b"],
                arms=["v1", "v2"], all_arms=["v1", "v2"], all_models=["m", "n"])  # fmt: skip
    p = f.arm_params()
    assert p["regions"] is None and p["arms"] is None and p["models"] == ["m"]
    assert p["all_arms"] == ["v1", "v2"]
    narrowed = Filters("Last 24 h", t - timedelta(days=1), t, ["b"], ["m", "n"], ["a", "b"],
                       arms=[], all_arms=["v1"], all_models=["m", "n"])  # fmt: skip
    q = narrowed.params()
    assert q["regions"] == ["b"] and q["models"] is None and q["arms"] == [NO_ARM]
    empty_store = Filters("Last 24 h", t - timedelta(days=1), t, [], [], [])
    assert empty_store.params()["regions"] == [] and empty_store.params()["arms"] == [NO_ARM]


def test_a_page_on_the_default_view_passes_none(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app_support import app

    seen: list[dict[str, object]] = []
    original = Store.named

    def spy(self: Store, name: str, **params: object) -> pd.DataFrame:
        seen.append({"name": name, **params})
        return original(self, name, **params)

    monkeypatch.setattr(Store, "named", spy)
    at = app(monkeypatch, store.root, "latency")
    assert not at.exception
    calls = [c for c in seen if c["name"] in ("latency_series", "latency_by_group")]
    assert calls and all(c["regions"] is None and c["models"] is None for c in calls)
    assert all(c["arms"] is None for c in calls)

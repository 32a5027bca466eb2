"""The Overview reads its counters and latency buckets once per time bucket and sums
them per region (``overview_counters_by_bucket``, ``overview_series_latency``,
:func:`app.work_sums.overview_by_region`); on a real store that must give the rows of
the per-region queries it replaced (``overview_counters_by_region``,
``overview_latency_by_region``) and the trend rows of ``overview_series_counters``.

The store: the demo fleet (1 day, 3 regions, built by ``observatory.demo`` with every
roll-up tier).  Windows: the whole day, edges mid-hour and mid-5-minute, a 6 h window
(1-minute buckets: minute rows) and one on whole hours; all and some regions, models
and arms.  Integer counts (requests, errors, tokens, latency buckets) must be equal;
energy (a float counter) to a relative 1e-12 (the order of additions differs, as
between two DuckDB scans of the same rows).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from app_support import END, demo_store

from analytics.overview import choose_bucket_seconds
from app.work_sums import OVERVIEW_COUNTERS, overview_by_region, overview_series_rows
from observatory.store import Store

DAY = END.replace(tzinfo=None)
WINDOWS = {
    "day": (DAY - timedelta(hours=24), DAY),
    "mid-5-minute edges": (DAY - timedelta(hours=23, minutes=57), DAY - timedelta(minutes=7)),
    "6 h, 1-minute buckets": (DAY - timedelta(hours=6, minutes=3), DAY - timedelta(minutes=3)),
    "whole hours": (DAY - timedelta(hours=20), DAY - timedelta(hours=2)),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(demo_store(tmp_path_factory.mktemp("overview") / "store"))
    store.connect()
    return store


def _labels(store: Store, column: str) -> list[str]:
    frame = store.query(f"SELECT DISTINCT coalesce({column}, '') AS v FROM counters ORDER BY v")
    return frame["v"].tolist()


def _params(store: Store, start: datetime, end: datetime, some: bool) -> dict[str, object]:
    regions, models, arms = (_labels(store, c) for c in ("region", "model", "arm"))
    return {
        "start": start,
        "end": end,
        "regions": regions[:2] if some else regions,
        "models": models[1:] if some else models,
        "arms": arms[:1] if some else arms,
        "all_arms": arms,
    }


@pytest.mark.parametrize("some", [False, True], ids=["all", "some"])
@pytest.mark.parametrize("window", list(WINDOWS))
def test_per_bucket_reads_give_the_per_region_rows(store: Store, window: str, some: bool) -> None:
    start, end = WINDOWS[window]
    params = _params(store, start, end, some)
    bucket_s = choose_bucket_seconds(end - start)
    by_bucket = store.named("overview_counters_by_bucket", bucket_s=bucket_s, **params)
    latency_by_bucket = store.named("overview_series_latency", bucket_s=bucket_s, **params)
    counters, latency = overview_by_region(by_bucket, latency_by_bucket)

    want = store.named("overview_counters_by_region", **params)
    assert len(want) and counters["region"].tolist() == want["region"].tolist()
    exact = [c for c in OVERVIEW_COUNTERS if c != "energy_j"]
    for column in exact:
        assert counters[column].tolist() == want[column].astype(float).tolist(), column
    assert want["energy_j"].notna().all()
    np.testing.assert_allclose(counters["energy_j"], want["energy_j"], rtol=1e-12)

    want_latency = store.named("overview_latency_by_region", **params)
    assert len(want_latency) > len(want)  # several le per region: the case is real
    pd.testing.assert_frame_equal(
        latency.reset_index(drop=True), want_latency.reset_index(drop=True), check_dtype=False
    )

    want_series = store.named("overview_series_counters", bucket_s=bucket_s, **params)
    pd.testing.assert_frame_equal(
        overview_series_rows(by_bucket), want_series.reset_index(drop=True), check_dtype=False
    )


def test_a_column_without_rows_stays_missing_and_other_signals_draw_no_line() -> None:
    # A region with only energy rows: no request line, NaN tokens, 0 requests (as the
    # per-region query's coalesce), energy summed; crafted because the demo has none.
    rows = pd.DataFrame(
        {
            "region": ["a", "a", "b"],
            "bucket_end": pd.to_datetime(
                ["2026-11-29 00:05", "2026-11-29 00:10"] * 1 + ["2026-11-29 00:05"]
            ),
            "requests": [3.0, 4.0, 0.0],
            "errors": [0.0, 1.0, 0.0],
            "energy_j": [1.5, np.nan, 2.25],
            "prompt_tokens": [10.0, 20.0, np.nan],
            "generation_tokens": [5.0, 6.0, np.nan],
            "series_rows": [2, 2, 0],
        }
    )
    counters, _ = overview_by_region(
        rows, pd.DataFrame(columns=["region", "bucket_end", "le", "value"])
    )
    b = counters.set_index("region").loc["b"]
    assert b["requests"] == 0 and b["energy_j"] == 2.25 and np.isnan(b["prompt_tokens"])
    a = counters.set_index("region").loc["a"]
    assert (a["requests"], a["errors"], a["energy_j"], a["prompt_tokens"]) == (7, 1, 1.5, 30)
    assert overview_series_rows(rows)["region"].tolist() == ["a", "a"]

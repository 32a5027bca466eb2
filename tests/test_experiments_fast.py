"""The experiments' fast path (summed moments, observatory/experiment_state.py) against the
reference path (every per-minute replicate, experiment_engine.run) on a real store: the
same analysis, cumulative effect, frontier and listing, to float rounding; blocks are
read again only when their source partitions change."""

from __future__ import annotations

import json
import math
import os
from dataclasses import fields, is_dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from experiment_support import END, EXAMPLE, REGIONS, demo_store

from analytics import experiments as ab
from analytics.experiment_metrics import METRICS, FrameSource
from analytics.experiment_moments import Moments, MomentSource, OffGrid
from observatory import experiment_engine as ee
from observatory import experiment_files as ef
from observatory import experiment_state as es
from observatory.cli import main
from observatory.experiment_listing import arms_frame
from observatory.experiments_config import load_experiments
from observatory.store import Store

RTOL = 1e-9


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("fast") / "demo", days=3)


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ef.ENV_STATE, str(tmp_path / "state"))
    ef.memory.clear()
    return tmp_path / "state"


def assert_same(fast: Any, ref: Any, path: str = "") -> None:
    """Every float equal to RTOL (NaN equal to NaN), everything else exactly equal."""
    if isinstance(ref, float) or isinstance(fast, float):
        if math.isnan(ref) and math.isnan(fast):
            return
        assert math.isclose(fast, ref, rel_tol=RTOL, abs_tol=1e-15), (path, fast, ref)
    elif is_dataclass(ref):
        for f in fields(ref):
            assert_same(getattr(fast, f.name), getattr(ref, f.name), f"{path}.{f.name}")
    elif isinstance(ref, dict):
        assert list(fast) == list(ref), path
        for k in ref:
            assert_same(fast[k], ref[k], f"{path}[{k}]")
    elif isinstance(ref, list | tuple):
        assert len(fast) == len(ref), path
        for i, (a, b) in enumerate(zip(fast, ref, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    else:
        assert fast == ref, (path, fast, ref)


class Spy:
    """Counts the store's queries and records the blocks the fast path computes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.queries = 0
        self.blocks: list[list[int]] = []
        query, compute = Store.query, es._compute

        def counted(store: Store, sql: str, params: Any = None) -> pd.DataFrame:
            self.queries += 1
            return query(store, sql, params)

        def recorded(*args: Any) -> Any:
            self.blocks.append([b.index for b in args[3]])
            return compute(*args)

        monkeypatch.setattr(Store, "query", counted)
        monkeypatch.setattr(es, "_compute", recorded)


def _item(store: Store, experiments: Any = None, name: str = "llama-v2-rollout") -> ee.Listed:
    return ee.find(store.named, name, experiments or load_experiments(EXAMPLE))


def _setup(store_dir: Path) -> tuple[Any, Store, ee.Listed]:
    """The example experiments file, the store and its llama-v2-rollout experiment."""
    exps = load_experiments(EXAMPLE)
    store = Store(store_dir)
    return exps, store, _item(store, exps)


def test_fast_path_equals_the_replicates_on_a_real_store(store_dir: Path, state: Path) -> None:
    exps, store, item = _setup(store_dir)
    ref = ee.run(store.named, item, exps.carbon)
    fast = es.run_fast(store, item, exps.carbon)
    assert ref is not None and fast is not None
    assert fast.data.replicates.empty  # read from the moments, not the replicates
    assert isinstance(fast.source, MomentSource) and isinstance(ref.source, FrameSource)
    assert_same(fast.analysis, ref.analysis)
    assert fast.analysis.verdicts == ref.analysis.verdicts  # the same words
    assert fast.analysis.verdicts["v2"][0] == "trade-off"
    assert fast.cumulative_metric == ref.cumulative_metric == "accuracy"
    assert len(ref.cumulative) == 3  # daily checkpoints over 3 days
    pd.testing.assert_frame_equal(fast.cumulative, ref.cumulative, rtol=RTOL)
    pd.testing.assert_frame_equal(fast.frontier, ref.frontier, rtol=RTOL)
    for name in ("latency_mean", "slow_ratio", "gco2e_per_1k", "tokens_per_joule"):
        pd.testing.assert_frame_equal(
            fast.cumulative_for(name), ref.cumulative_for(name), rtol=RTOL
        )
    # real values, not just equal ones: 3 regions x 2 arms x 3 days of minutes
    assert fast.analysis.regions == sorted(REGIONS)
    units = {r.control_value.units for r in fast.analysis.results if r.metric.name == "accuracy"}
    assert units == {3 * 3 * 1440}
    assert ef.state_dir(store).parent == state and ef.state_dir(store).name.startswith("demo-")
    assert (ef.state_dir(store) / "moments").is_dir()


def test_blocks_are_read_again_only_when_their_partitions_change(
    store_dir: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exps, store, item = _setup(store_dir)
    spy = Spy(monkeypatch)
    first = es.run_fast(store, item, exps.carbon)
    assert spy.blocks == [[0, 1, 2]]  # one read for the three stale days (a run)
    spy.queries, spy.blocks = 0, []
    again = es.run_fast(store, item, exps.carbon)
    assert spy.queries == 0 and spy.blocks == []  # nothing changed: no replicate read
    assert first is not None and again is not None
    assert_same(again.analysis, first.analysis)
    # a rewritten partition (new mtime) makes the blocks reading it stale, and only those
    day = (END - timedelta(hours=12)).date()
    path = store.partition_dir("counters", "requests", day, "eu-west-1")  # its stamp
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    try:
        third = es.run_fast(store, item, exps.carbon)
        # blocks 1 and 2 read that date: block 1's last step (00:00) is stored under it
        assert spy.blocks == [[1, 2]]
        assert third is not None
        assert_same(third.analysis, first.analysis)
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_listing_per_file_equals_the_query(store_dir: Path, state: Path) -> None:
    store = Store(store_dir)
    ref = store.named("experiment_arms", start=None, end=None)
    fast = arms_frame(store)
    pd.testing.assert_frame_equal(fast.reset_index(drop=True), ref, check_dtype=False)
    assert ref["regions"].map(len).eq(3).all() and len(ref) == 4  # two models x v1, v2
    assert ref["has_accuracy"].all() and (ref["requests"] > 0).all()
    assert (state.glob("*/listing.parquet")).__next__().is_file()
    again = arms_frame(store)  # from the saved rows: no file changed
    pd.testing.assert_frame_equal(again, fast)


def test_unwritable_state_still_answers(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(ef.ENV_STATE, str(blocker))
    ef.memory.clear()
    store = Store(store_dir)
    item = _item(store)
    fast = es.run_fast(store, item)
    ref = ee.run(store.named, item)
    assert fast is not None and ref is not None
    assert_same(fast.analysis, ref.analysis)


def test_start_off_the_hour_grid_uses_the_replicates(store_dir: Path, state: Path) -> None:
    exps, store, item = _setup(store_dir)
    assert item.first_ts is not None
    # a configured start 90 minutes before the data: the first step is not on its grid
    spec = item.spec.model_copy(update={"start": item.first_ts - timedelta(minutes=90)})
    shifted = ee.Listed(spec, "config", item.first_ts, item.last_ts, item.requests, item.regions)
    fast = es.run_fast(store, shifted, exps.carbon)
    ref = ee.run(store.named, shifted, exps.carbon)
    assert fast is not None and ref is not None
    assert not fast.data.replicates.empty  # the reference path answered
    assert_same(fast.analysis, ref.analysis)
    source = MomentSource(es.update(store, shifted, exps.carbon))  # type: ignore[arg-type]
    with pytest.raises(OffGrid, match="inside an hour"):
        source.cumulative(METRICS["accuracy"], "v1", pd.DatetimeIndex([item.first_ts]))


def test_moments_of_parts_add_up_to_the_whole(store_dir: Path) -> None:
    store = Store(store_dir)
    item = _item(store)
    data = ee.load(store.named, item)
    assert data is not None
    arms, origin = ("v1", "v2"), pd.Timestamp(data.start)
    whole = Moments.from_replicates(data.replicates, data.buckets, arms, origin)
    cut = origin + pd.Timedelta(hours=30)
    reps = data.replicates
    parts = []
    for before in (True, False):
        rows = (reps["ts_utc"] <= cut) == before
        keys = (data.buckets.keys["ts_utc"] <= cut) == before
        b = replace(
            data.buckets,
            keys=data.buckets.keys[keys].reset_index(drop=True),
            cumulative=data.buckets.cumulative[keys.to_numpy()],
        )
        parts.append(Moments.from_replicates(reps[rows], b, arms, origin))
    combined = Moments.combine(parts)
    pd.testing.assert_frame_equal(combined.regional, whole.regional, rtol=RTOL)
    pd.testing.assert_frame_equal(combined.hourly, whole.hourly, rtol=RTOL)
    pd.testing.assert_frame_equal(combined.live, whole.live)
    assert int(whole.regional["rows"].sum()) == len(reps)
    assert len(whole.hourly) == 2 * 72  # hours x arms
    with pytest.raises(ValueError, match="other origins or arms"):
        Moments.combine([whole, replace(whole, arms=("v2", "v1"))])
    with pytest.raises(ValueError, match="overlap counted for arms"):
        MomentSource(whole).overlap(["v1"])


@pytest.mark.parametrize("q", [0.001, 0.5, 0.95, 0.99, 0.9999])
def test_quantile_interval_from_moments_equals_the_replicates(q: float) -> None:
    rng = np.random.default_rng(7)
    le = np.array([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, np.inf])
    per_bucket = rng.poisson([3, 20, 60, 40, 15, 4, 1, 0.2], size=(500, le.size))
    cum = np.cumsum(per_bucket, axis=1).astype(float)
    ref = ab.quantile_interval(le, cum, q)
    c = cum
    mom = ab.BucketMoments(
        float(len(c)), c.sum(0), (c * c).sum(0), (c[:, :-1] * c[:, 1:]).sum(0),
        (c * c[:, -1:]).sum(0),
    )  # fmt: skip
    assert_same(ab.quantile_interval_from_moments(le, mom, q), ref)
    assert ref.replicates == 500 and ref.ci_low <= ref.value <= ref.ci_high
    if q > 0.999:  # in the +Inf bucket: the highest finite bound, below = its bucket
        assert ref.value == 10.0


def test_quantile_from_moments_rejects_unsorted_bounds() -> None:
    mom = ab.BucketMoments(1.0, np.ones(2), np.ones(2), np.ones(1), np.ones(2))
    with pytest.raises(ValueError, match="sorted ascending"):
        ab.quantile_interval_from_moments([1.0, 0.5], mom, 0.5)


def test_cli_refresh(store_dir: Path, state: Path) -> None:
    runner = CliRunner()
    args = ["experiment", "refresh", "--store", str(store_dir), "--experiments", str(EXAMPLE)]
    res = runner.invoke(main, [*args, "llama-v2-rollout"])
    assert res.exit_code == 0, res.output
    assert "llama-v2-rollout: 25,920 replicates summed" in res.output  # 3 x 2 x 4320
    bad = runner.invoke(main, [*args, "nope"])
    assert bad.exit_code == 2 and "no experiment 'nope'" in bad.output


def test_stale_blocks_are_read_in_runs_of_at_most_a_week() -> None:
    origin = datetime(2026, 11, 1)
    every = es.blocks(origin, origin + timedelta(days=13, hours=5))
    assert len(every) == 14 and every[-1].end == origin + timedelta(days=13, hours=5)
    assert every[1].dates() == [date(2026, 11, 2), date(2026, 11, 3)]  # 00:00 is the next date
    runs = es._runs([*every[:10], every[12]])
    assert [[b.index for b in r] for r in runs] == [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9], [12]]


def test_saved_blocks_with_other_bucket_bounds_are_recoded(
    store_dir: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exps, store, item = _setup(store_dir)
    ref = ee.run(store.named, item, exps.carbon)
    es.update(store, item, exps.carbon)
    manifest = next(state.glob("*/moments/*/manifest.json"))
    saved = json.loads(manifest.read_text())
    saved["le"] = [1.0, float("inf")]  # as if saved before a bucket bound appeared
    manifest.write_text(json.dumps(saved))
    spy = Spy(monkeypatch)
    fast = es.run_fast(store, item, exps.carbon)
    assert spy.blocks == [[0, 1, 2]]  # every saved block read again with all the bounds
    assert fast is not None and ref is not None
    assert_same(fast.analysis, ref.analysis)


def test_the_page_may_take_a_recent_last_block_although_it_changed(
    store_dir: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exps, store, item = _setup(store_dir)
    first = es.run_fast(store, item, exps.carbon)
    spy = Spy(monkeypatch)
    path = store.partition_dir("histograms", "latency", END.date(), "us-east-1")  # its stamp
    st = path.stat()  # the last block's last step (00:00) lives in END's date
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    try:
        served = es.run_fast(store, item, exps.carbon, max_stale_s=600.0)
        assert spy.blocks == []  # computed moments ago: taken as saved
        assert first is not None and served is not None
        assert served.data.end == first.data.end
        assert_same(served.analysis, first.analysis)
        es.run_fast(store, item, exps.carbon)  # no tolerance: read again
        assert spy.blocks == [[2]]
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

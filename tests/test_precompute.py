"""The scheduler's precompute job (observatory/precompute.py) on a real demo store:
after one run the heavy pages' derived state is there and current, a second run
recomputes nothing, and one failing part does not stop the others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from observatory import experiment_state, regressions_findings
from observatory.precompute import precompute, summary
from observatory.slo_cache import default_root
from observatory.store import Store
from tests.experiment_support import demo_store

SLO_SPECS = Path(__file__).resolve().parent.parent / "examples" / "slo"
DAY = timedelta(hours=24)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(demo_store(tmp_path_factory.mktemp("precompute") / "store", days=2))


def test_one_run_leaves_current_state_and_a_second_run_has_nothing_to_do(store: Store) -> None:
    first = precompute(store, slo_specs=[SLO_SPECS], regressions=[DAY])
    assert [r.part for r in first] == ["slo", "experiments", "regressions 24h"]
    assert all(r.ok for r in first), summary(first)
    assert first[0].message.startswith("9 SLOs evaluated")
    # the SLO slice cache now holds files for this store
    assert any(default_root(store).rglob("*.parquet"))
    # the regressions findings are the store's current ones
    found = regressions_findings.load(store.root, 60, DAY)
    assert found is not None and found.data_version == store.data_version()
    # every experiment with data has its moments; refreshing again sums nothing new
    assert int(first[1].message.split()[0]) >= 1
    again = precompute(store, regressions=[DAY])
    assert [r.part for r in again] == ["experiments", "regressions 24h"]
    assert again[1].message == "up to date"
    assert again[0].message == first[1].message  # the same experiments and replicates
    total = int(first[1].message.split(", ")[1].split()[0].replace(",", ""))
    assert sum(r.replicates for r in experiment_state.refresh(store)) == total > 0


def test_a_failing_part_is_reported_and_the_others_still_run(store: Store, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-specs"
    results = precompute(store, slo_specs=[missing], regressions=[DAY])
    by_part = {r.part: r for r in results}
    assert not by_part["slo"].ok and str(missing) in by_part["slo"].message
    assert by_part["experiments"].ok and by_part["regressions 24h"].ok
    assert "slo" in summary(results) and "FAILED" in summary(results)

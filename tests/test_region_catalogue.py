"""The pages' region list without a lake scan (app/region_catalogue.py) equals the
``overview_regions`` named query on a real store: the demo store with a region
catalogue that lacks one region with data, lists one region without data and one
without a display name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from app_support import REGIONS, demo_store

from app import collection_data
from app.filter_catalogue import read_catalogue as read_filter_catalogue
from app.region_catalogue import COLUMNS, read_catalogue, region_rows
from observatory.store import Store, StoreError


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = demo_store(tmp_path_factory.mktemp("regions") / "store")
    store = Store(root)
    store.write_regions(
        [
            # REGIONS[0] has data but no catalogue row
            {
                "region": REGIONS[1],
                "display_name": "Ireland",
                "latitude": 53.3,
                "longitude": -6.3,
                "url": None,
            },
            {
                "region": REGIONS[2],
                "display_name": None,
                "latitude": 19.1,
                "longitude": 72.9,
                "url": None,
            },
            {
                "region": "zz-empty-1",
                "display_name": "No data yet",
                "latitude": None,
                "longitude": 10.0,
                "url": None,
            },
        ]
    )
    return root


def _reference(root: Path) -> pd.DataFrame:
    return Store(root).named("overview_regions")[COLUMNS]


def test_overview_path_equals_overview_regions(store_dir: Path) -> None:
    # The Overview passes the shared filters' regions (catalogue and regions with data).
    every = read_filter_catalogue(Store(store_dir)).regions["region"].tolist()
    got = region_rows(read_catalogue(store_dir), every)
    expected = _reference(store_dir)
    assert expected["region"].tolist() == sorted([*REGIONS, "zz-empty-1"])  # the case is real
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_collection_health_path_equals_overview_regions(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Collection health passes the regions whose request partitions hold rows.
    monkeypatch.setenv("OBSERVATORY_STORE", str(store_dir))
    newest = collection_data.newest_steps(store_dir)
    assert {r for r, s in newest if s == "requests"} == set(REGIONS)
    expected = _reference(store_dir)
    assert collection_data.catalogue(newest) == dict(
        zip(expected["region"], expected["display_name"], strict=True)
    )


def test_without_a_catalogue_only_regions_with_data(tmp_path: Path) -> None:
    got = region_rows(read_catalogue(tmp_path), ["b", "a"])
    assert got["region"].tolist() == ["a", "b"]
    assert got["display_name"].tolist() == ["a", "b"]
    assert got["latitude"].isna().all()
    assert region_rows(read_catalogue(tmp_path), []).empty


def test_an_unreadable_catalogue_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lake" / "regions" / "regions.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    with pytest.raises(StoreError, match=r"regions\.parquet"):
        read_catalogue(tmp_path)

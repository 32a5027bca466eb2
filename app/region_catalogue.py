"""The regions the Overview map and the Collection health page list, without a lake scan.

``sql/queries/overview_regions.sql`` lists the region catalogue
(``lake/regions/regions.parquet``, written by :meth:`observatory.store.Store.write_regions`)
plus every region with request rows, which it finds with ``DISTINCT region`` over every
request row of 30 days: 0.11 s at the 20-region fleet against 0.02 s at 2 regions
(docs/scaling.md, "Pages' own parts").  The pages already know the regions with
request rows (the Overview from the shared filters' catalogue, the Collection health
page from the newest stored step of each region's ``requests`` partitions), so they
need only the catalogue file, read here with pyarrow (one small file, no DuckDB views).
:func:`region_rows` then gives the rows ``overview_regions`` gives, in its order
(tests/test_region_catalogue.py compares both on a real store).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import streamlit as st

from observatory.store import StoreError

#: The catalogue file under the store folder (observatory/store/ ``write_regions``).
CATALOGUE_FILE = Path("lake") / "regions" / "regions.parquet"
COLUMNS = ["region", "display_name", "latitude", "longitude"]


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st_ = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (st_.st_mtime_ns, st_.st_size, st_.st_ino)


@st.cache_data(max_entries=8, show_spinner=False)
def _read(path: str, stamp: tuple[int, int, int]) -> pd.DataFrame:
    del stamp  # cache key only: the file's mtime, size and inode
    if not Path(path).exists():
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if c in COLUMNS[2:] else object) for c in COLUMNS}
        )
    try:
        frame = pq.read_table(path, columns=COLUMNS).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read the region catalogue {path}: {exc}") from exc
    # as the ``regions`` view (sql/views.sql): coalesce(display_name, region)
    frame["display_name"] = frame["display_name"].where(
        frame["display_name"].notna(), frame["region"]
    )
    return frame


def read_catalogue(root: Path) -> pd.DataFrame:
    """The region catalogue of the store at ``root``: ``region``, ``display_name``
    (the region when unset, as the ``regions`` view), ``latitude``, ``longitude``
    (degrees, NaN when unknown); empty when the store has no catalogue yet.

    Cached per the file's modification time, size and inode.

    Raises:
        StoreError: the file exists but cannot be read (the message names it).
    """
    path = root / CATALOGUE_FILE
    return _read(str(path), _stamp(path))


def region_rows(catalogue: pd.DataFrame, with_data: Iterable[str]) -> pd.DataFrame:
    """``overview_regions``' rows from the catalogue and the regions with request rows.

    Args:
        catalogue: :func:`read_catalogue`'s frame.
        with_data: every region that has request rows (more is harmless: a region of
            the catalogue is listed anyway; one outside it gets its name as its
            display name and no coordinates, as the query's FULL OUTER JOIN).

    Returns:
        ``region``, ``display_name``, ``latitude``, ``longitude``, one row per region,
        sorted by region.
    """
    known = set(catalogue["region"])
    extra = sorted({str(r) for r in with_data} - known)
    added = pd.DataFrame(
        {
            "region": extra,
            "display_name": extra,
            "latitude": [float("nan")] * len(extra),
            "longitude": [float("nan")] * len(extra),
        }
    )
    parts = [p for p in (catalogue[COLUMNS], added) if len(p)]
    if not parts:
        return catalogue[COLUMNS].iloc[:0].reset_index(drop=True)
    rows = pd.concat(parts, ignore_index=True)
    return rows.sort_values("region", kind="stable").reset_index(drop=True)

"""The store the browser tests serve: a small demo fleet plus hostile label values.

3 regions x 3 days of the demo fleet (seconds to build), then two changes that only
a real store can carry: one region's display name is HTML and script, and the
collector's run log holds two runs per region, the last one of a region failed with
markup in its error text.  If any
page ever renders those as HTML, the markup sets ``window.<INJECTED_FLAG>``.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from pandas.errors import Pandas4Warning
from streamlit_page import INJECTED_FLAG

from observatory.demo import build_store
from observatory.store import Store

REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
END = datetime(2026, 11, 30, tzinfo=UTC)
DAYS = 3
#: The region whose display name is markup that would set the flag if it ever ran.
HOSTILE_REGION = "ap-south-1"
HOSTILE_NAME = (
    f"<b>Mumbai</b><script>window.{INJECTED_FLAG} = 'script'</script>"
    f"<img src=x onerror=\"window.{INJECTED_FLAG} = 'img'\">"
)
#: The failed region's collector error, with markup (Collection health shows it).
FAILED_REGION = "eu-west-1"
HOSTILE_ERROR = f"<i>refused</i><img src=x onerror=\"window.{INJECTED_FLAG} = 'error'\">"


def reports_of(root: Path) -> Path:
    """The drift report archive built beside the test store at ``root``."""
    return root.parent / "drift-reports"


def build(root: Path) -> Path:
    """Build the test store at ``root`` and return ``root``."""
    with warnings.catch_warnings():  # a pandas deprecation notice from the simulator
        warnings.filterwarnings("ignore", category=Pandas4Warning)
        # with the scheduled drift report the Drift page opens on (docs/drift.md)
        build_store(root, days=DAYS, regions=REGIONS, end=END, drift_reports=reports_of(root))
    store = Store(root)
    catalogue = store.query("SELECT * FROM regions")
    catalogue.loc[catalogue["region"] == HOSTILE_REGION, "display_name"] = HOSTILE_NAME
    store.write_regions(pd.DataFrame(catalogue))
    hour = timedelta(hours=1)
    for last, window_end in ((False, END - hour), (True, END)):  # two hourly runs per region
        started = window_end + timedelta(minutes=1)
        for i, region in enumerate(REGIONS):
            failed = last and region == FAILED_REGION
            store.append_run_log(  # the fields collectors/collect.py records
                {
                    "started_utc": _naive(started),
                    "finished_utc": _naive(started + timedelta(seconds=5 + i)),
                    "region": region,
                    "status": "failed" if failed else "ok",
                    "window_start_utc": _naive(window_end - hour),
                    "window_end_utc": _naive(window_end),
                    "rows": 0 if failed else 1200 + 100 * i,
                    "error": HOSTILE_ERROR if failed else None,
                    "samples": 0 if failed else 24_000 + 1000 * i,
                    "queries": 12,
                    "retries": 3 if failed else 0,
                    "seconds": 5.0 + i,
                    "coverage": {} if failed else {"requests": 1.0},
                    "warnings": None,
                }
            )
    store.touch_version()
    return root


def _naive(t: datetime) -> str:
    return t.replace(tzinfo=None).isoformat()


def requests_total(root: Path, hours: float, regions: list[str]) -> int:
    """Requests in the ``hours`` before the latest requests sample, summed over ``regions``.

    Read straight from the ``counters`` view, independently of the dashboard's queries.
    """
    store = Store(root)
    df = store.query(
        "WITH last AS (SELECT max(ts_utc) AS t FROM counters WHERE signal = 'requests') "
        "SELECT sum(value) AS n FROM counters, last WHERE signal = 'requests' "
        "AND ts_utc > last.t - to_microseconds(CAST($us AS BIGINT)) AND ts_utc <= last.t "
        "AND list_contains($regions, region)",
        {"us": round(hours * 3600e6), "regions": regions},
    )
    return round(float(df["n"].iloc[0]))

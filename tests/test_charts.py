"""app/charts.py: the shared line and bar figures carry exactly the rows they are given,
one trace per series in sorted order, with the palette's colours and escaped labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest
from app_support import plotly_numbers

from app.charts import bar_chart, palette, series_chart


def _spec(fig: object) -> dict:
    """The figure as Streamlit sends it to the browser (JSON)."""
    return json.loads(pio.to_json(fig, validate=False))


@pytest.fixture()
def lines() -> pd.DataFrame:
    """4 series x 30 five-minute buckets in shuffled order; one series without a name
    (left out, as a group-by leaves it out) and one gap."""
    rng = np.random.default_rng(7)
    ends = pd.date_range("2026-11-29 00:05", periods=30, freq="5min")
    names = ["us-east-1", "<b>eu</b>", None, "ap-south-1"]
    frame = pd.DataFrame(
        {
            "series": np.repeat(np.array(names, dtype=object), len(ends)),
            "bucket_end": np.tile(ends, len(names)),
            "p99": rng.random(len(names) * len(ends)),
        }
    )
    frame.loc[3, "p99"] = np.nan
    return frame.sample(frac=1.0, random_state=11).reset_index(drop=True)


def test_one_line_per_series_with_its_rows_in_order(lines: pd.DataFrame) -> None:
    colors = palette(["us-east-1", "<b>eu</b>", "ap-south-1"])
    spec = _spec(series_chart(lines, "p99", "p99", "seconds", colors, by="series", limit=0.5))
    named = sorted(lines["series"].dropna().unique())
    assert [t["name"] for t in spec["data"]] == [
        n.replace("<", "&lt;").replace(">", "&gt;") for n in named
    ]
    for trace, name in zip(spec["data"], named, strict=True):
        rows = lines[lines["series"] == name]  # frame order, as the figure must keep it
        assert trace["x"] == [f"{t:%Y-%m-%dT%H:%M:%S}" for t in rows["bucket_end"]]
        got = plotly_numbers(trace["y"])
        np.testing.assert_array_equal(np.array(got), rows["p99"].to_numpy())
        assert trace["line"]["color"] == colors[name]
        assert "<b>" not in trace["hovertemplate"]
    assert sum(np.isnan(plotly_numbers(t["y"])).sum() for t in spec["data"]) == 1  # the gap
    assert spec["layout"]["shapes"][0]["y0"] == 0.5  # the limit line
    assert spec["layout"]["yaxis"]["rangemode"] == "tozero"


def test_time_zone_aware_times_are_drawn_as_wall_times(lines: pd.DataFrame) -> None:
    colors = palette(["us-east-1"])
    aware = lines.assign(bucket_end=lines["bucket_end"].dt.tz_localize("UTC"))
    naive = _spec(series_chart(lines, "p99", "t", "s", colors, by="series", percent=True))
    spec = _spec(series_chart(aware, "p99", "t", "s", colors, by="series", percent=True))
    assert spec["data"] == naive["data"]
    assert spec["layout"]["yaxis"]["tickformat"] == ".1%"


def test_bars_per_colour_group_with_escaped_categories() -> None:
    frame = pd.DataFrame(
        {
            "day": ["2026-11-29", "2026-11-28", "<i>x</i>", "2026-11-28"],
            "usd": [1.5, 2.25, 4.0, np.nan],
            "region": ["us-east-1", "eu-west-1", "us-east-1", "us-east-1"],
        }
    )
    colors = palette(frame["region"])
    spec = _spec(bar_chart(frame, "day", "usd", "region", colors, "USD <b>", "USD"))
    assert [t["name"] for t in spec["data"]] == ["eu-west-1", "us-east-1"]
    east = spec["data"][1]
    assert east["x"] == ["2026-11-29", "&lt;i&gt;x&lt;/i&gt;", "2026-11-28"]
    np.testing.assert_array_equal(plotly_numbers(east["y"]), [1.5, 4.0, np.nan])
    assert east["marker"]["color"] == colors["us-east-1"]
    assert spec["layout"]["title"]["text"] == "USD &lt;b&gt;"
    assert spec["layout"]["barmode"] == "group"

"""Shared helpers of the dashboard page tests (tests/test_page_*.py): a small demo
store, the app under streamlit.testing's AppTest, and a store whose label values
contain HTML and script (as an exporter could send them)."""

from __future__ import annotations

import base64
import json
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from observatory.demo import build_store
from observatory.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
END = datetime(2026, 11, 30, tzinfo=UTC)
HOSTILE_MODEL = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
HOSTILE_NAME = "<b>Virginia</b><script>alert(3)</script>"


def demo_store(root: Path) -> Path:
    """A 1-day, 3-region demo store at ``root`` (built once per test module)."""
    build_store(root, days=1, regions=REGIONS, end=END)
    return root


def app(monkeypatch: pytest.MonkeyPatch, store: Path, page: str | None = None) -> AppTest:
    """The dashboard on ``store``, switched to ``app/views/<page>.py`` when given."""
    monkeypatch.setenv("OBSERVATORY_STORE", str(store))
    monkeypatch.delenv("OBSERVATORY_CONFIG", raising=False)
    monkeypatch.delenv("OBSERVATORY_LOGIN", raising=False)
    monkeypatch.delenv("OBSERVATORY_EXPERIMENTS", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    return at


def texts(at: AppTest) -> str:
    """Every error, warning, info and caption of the page, one per line."""
    kinds = ("error", "warning", "info", "caption")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def metric(at: AppTest, label: str) -> str:
    """The value of the metric called ``label``."""
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return str(values[0])


def chart_specs(at: AppTest) -> list[dict[str, Any]]:
    """The Plotly figures of the page, as JSON."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def plotly_numbers(values: Any) -> list[float]:
    """A Plotly JSON array as floats: a list, or a typed array (``{"dtype", "bdata"}``,
    how Plotly writes numpy arrays)."""
    if isinstance(values, dict):
        raw = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return [float(v) for v in raw]
    return [math.nan if v is None else float(v) for v in values]


def rename_model(store: Store, region: str, old: str, new: str) -> None:
    """Rename model ``old`` to ``new`` in every table of ``region`` (rows rewritten)."""
    for table in ("counters", "gauges", "histograms"):
        frame = store.query(f"SELECT * FROM {table} WHERE region = $r", {"r": region})
        if frame.empty:
            continue
        frame.loc[frame["model"] == old, "model"] = new
        lo = pd.Timestamp(frame["ts_utc"].min()) - pd.Timedelta(minutes=1)
        hi = pd.Timestamp(frame["ts_utc"].max())
        signals = sorted(frame["signal"].unique())
        store.replace_window(table, region, signals, lo, hi, frame.drop(columns=["region"]))
    store.touch_version()


def hostile_store(source: Path, root: Path) -> Path:
    """A copy of ``source`` whose us-east-1 ``mistral-7b`` is renamed to
    :data:`HOSTILE_MODEL` and whose us-east-1 display name is :data:`HOSTILE_NAME`."""
    shutil.copytree(source, root)
    store = Store(root)
    rename_model(store, "us-east-1", "mistral-7b", HOSTILE_MODEL)
    catalogue = store.query("SELECT * FROM regions")
    catalogue.loc[catalogue["region"] == "us-east-1", "display_name"] = HOSTILE_NAME
    store.write_regions(catalogue)
    return root


def assert_no_raw_html(at: AppTest) -> None:
    """Label values never reach the page as HTML: no element allows HTML with them in
    it, and Plotly figures hold them escaped (``&lt;``), never as tags."""
    for element in at.markdown:
        if element.proto.allow_html:
            assert "<script" not in element.value and "<img" not in element.value
    for spec in chart_specs(at):
        raw = json.dumps(spec["data"]) + json.dumps(spec.get("layout", {}))
        assert "<script" not in raw and "<img" not in raw, raw[:300]


def window(store: Store, hours: int = 24) -> dict[str, object]:
    """``start`` / ``end`` of the preset "Last <hours> h": anchored at the latest request step."""
    latest = store.query("SELECT max(ts_utc) AS t FROM counters WHERE signal = 'requests'")
    end = pd.Timestamp(latest["t"].iloc[0]).to_pydatetime()
    return {"start": end - pd.Timedelta(hours=hours).to_pytimedelta(), "end": end}

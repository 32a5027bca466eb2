"""Saved drift reports read back: the Drift page's fast path (issue #9).

``observatory report drift`` and ``observatory run`` write a JSON report
(:func:`observatory.drift_report.render_json`) that holds every number the Drift page
shows: each slice's metrics, verdicts, distributions and metrics over time.  When the
archive holds the report of the page's exact question, the page reads it
(:func:`covering_report`) instead of computing drift over the whole fleet again.
It covers the question when all of these hold (else the page computes on demand):

- its file is the one of the window: ``drift-<end>-<length>.json``;
- its ``settings`` (:func:`observatory.drift_engine.settings_of`) equal the page's:
  the same store folder, reference, step, no region or model filter, and every
  default signal with the same kind, sources, reference, rule, alarm metric and
  minimum count;
- it is fresh: no data file of its signals on the dates it read (reference start to
  window end) was modified, or created, after its computation began
  (``settings["read_started_utc"]``).  A late backfill of those days makes it stale.

Values come back exactly: JSON numbers are written with ``repr`` and read back to the
same float; ``null`` (NaN, or an infinity: the JSON format has none) reads as NaN.
The over-time frames are views of one frame per column layout (their index is not
0-based; the engine's is not either, after sorting by time).

The freshness test is by file: on a store still being written, the partition that
holds a window's last step keeps changing after the report (the collector's later
steps of that day), so such a report is refused (docs/drift.md, "What remains").
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from analytics import drift as dm
from observatory.drift_engine import (
    DEFAULT_SIGNALS,
    DriftReport,
    DriftSignal,
    Reference,
    SliceResult,
    _utc_naive,
    settings_of,
)
from observatory.drift_report import SCHEMA, report_name
from observatory.store import Store

__all__ = [
    "ArchiveHit",
    "candidate_path",
    "covering_report",
    "covers",
    "from_dict",
    "load_report",
    "stale_files",
]

#: The store table holding each kind of drift signal's sources.
TABLE_OF_KIND = {
    "histogram": "histograms",
    "gauge": "gauges",
    "ratio": "counters",
    "labels": "counters",
}


@dataclass(frozen=True)
class ArchiveHit:
    """A saved report that answers the page's question.

    Attributes:
        path: the JSON file.
        report: its contents as a :class:`DriftReport`.
    """

    path: Path
    report: DriftReport


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _metric(d: dict[str, Any]) -> dm.MetricResult:
    return dm.MetricResult(
        metric=d["metric"],
        value=_float(d["value"]),
        verdict=d["verdict"],
        threshold=_float(d["threshold"]),
        fired=d["fired"],
        learned=_float(d["learned"]),
        n_ref=_float(d["n_ref"]),
        n_cur=_float(d["n_cur"]),
        detail={k: _float(v) for k, v in d["detail"].items()},
        note=d["note"],
    )


def _frame(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> pd.DataFrame:
    """Over-time rows as the engine's frame: ``ts_utc`` datetimes, float columns
    (``null`` -> NaN)."""
    columns: dict[str, Any] = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        if key == "ts_utc":
            columns[key] = np.array(values, "datetime64[us]")  # naive ISO 8601, as written
        else:
            columns[key] = np.array(values, dtype=np.float64)  # None -> NaN
    return pd.DataFrame(columns)


def _over_times(slices: list[dict[str, Any]]) -> list[pd.DataFrame]:
    """Every slice's over-time frame.  A report holds thousands; one frame per column
    layout is built and each slice gets its rows (``iloc``, a view), which is 10x
    cheaper than a frame each."""
    out = [pd.DataFrame()] * len(slices)
    layouts: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(slices):
        if s["over_time"]:
            layouts.setdefault(tuple(s["over_time"][0]), []).append(i)
    for keys, members in layouts.items():
        rows = [row for i in members for row in slices[i]["over_time"]]
        big = _frame(rows, keys)
        at = 0
        for i in members:
            n = len(slices[i]["over_time"])
            out[i] = big.iloc[at : at + n]
            at += n
    return out


def _slice(d: dict[str, Any], over_time: pd.DataFrame) -> SliceResult:
    return SliceResult(
        signal=d["signal"],
        kind=d["kind"],
        unit=d["unit"],
        region=d["region"],
        model=d["model"],
        arm=d["arm"],
        reference=d["reference"],
        reference_start=datetime.fromisoformat(d["reference_start_utc"]),
        reference_end=datetime.fromisoformat(d["reference_end_utc"]),
        verdict=d["verdict"],
        fired=d["fired"],
        results=[_metric(m) for m in d["metrics"]],
        rebinned=bool(d["rebinned"]),
        distribution=d["distribution"],
        over_time=over_time,
        alarm=d["alarm_metric"],
    )


def from_dict(data: dict[str, Any]) -> DriftReport:
    """The :class:`DriftReport` a JSON report (:func:`observatory.drift_report.to_dict`)
    was written from.

    Raises:
        ValueError: not an ``observatory.drift/1`` report, or one written before reports
            carried their ``settings`` (the reference cannot be rebuilt).
        KeyError: a field is missing (a damaged file).
    """
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a drift report: schema {data.get('schema')!r}, expected {SCHEMA}")
    settings = data.get("settings") or {}
    if "reference" not in settings:
        raise ValueError("the report carries no settings (written by an older version)")
    start = datetime.fromisoformat(data["window_start_utc"])
    end = datetime.fromisoformat(data["window_end_utc"])
    return DriftReport(
        window_start=start,
        window_end=end,
        window=end - start,
        reference=Reference.parse(settings["reference"]),
        generated_utc=datetime.fromisoformat(data["generated_utc"]),
        slices=[
            _slice(s, o) for s, o in zip(data["slices"], _over_times(data["slices"]), strict=True)
        ],
        without_data=list(data["signals_without_data"]),
        settings=settings,
    )


def load_report(path: str | os.PathLike[str]) -> DriftReport:
    """Read a JSON report file back (:func:`from_dict`).

    Raises:
        OSError: the file cannot be read.
        ValueError: not JSON, or not a drift report with settings (the message names
            the file).
    """
    try:
        return from_dict(orjson.loads(Path(path).read_bytes()))
    except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: cannot read the drift report: {exc}") from exc


def _dates(lo: datetime, hi: datetime) -> list[date]:
    days = (hi.date() - lo.date()).days
    return [lo.date() + timedelta(days=i) for i in range(days + 1)]


def stale_files(store_root: str | os.PathLike[str], report: DriftReport) -> list[Path]:
    """Data files ``report`` may have read that changed since it began reading.

    The files of its signals' sources (tables by kind, :data:`TABLE_OF_KIND`) on every
    date from its earliest reference start to its window's end, in every region,
    modified (or created) at or after ``settings["read_started_utc"]``.  A report
    without that time is stale as a whole (the store folder is returned).
    """
    root = Path(store_root)
    began = report.settings.get("read_started_utc")
    if not began:
        return [root]
    cutoff_ns = _epoch_ns(datetime.fromisoformat(began))
    lo = min([report.window_start, *(s.reference_start for s in report.slices)])
    hi = max([report.window_end, *(s.reference_end for s in report.slices)])
    out = []
    for sig in report.settings.get("signals", {}).values():
        table = TABLE_OF_KIND[sig["kind"]]
        for source in sig["sources"]:
            for day in _dates(lo, hi):
                folder = root / "lake" / table / f"signal={source}" / f"date={day.isoformat()}"
                if not folder.is_dir():
                    continue
                for region in os.scandir(folder):
                    path = Path(region.path) / "part.parquet"
                    try:
                        if path.stat().st_mtime_ns >= cutoff_ns:
                            out.append(path)
                    except FileNotFoundError:
                        continue
    return out


def _epoch_ns(utc_naive: datetime) -> int:
    """Nanoseconds since the epoch of a naive UTC time (file mtimes' scale)."""
    delta = utc_naive - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def candidate_path(
    archive: str | os.PathLike[str], window: timedelta, end: datetime | None
) -> Path | None:
    """The archive's JSON file for the window ending at ``end`` (UTC), if it exists.

    ``end`` None (the latest data, which only a query can tell) gives None.
    """
    if end is None:
        return None
    path = Path(archive) / report_name(_minute(end), window, "json")
    return path if path.is_file() else None


def _minute(end: datetime) -> datetime:
    """``end`` as ``compute_drift`` uses it: UTC naive, on a whole minute."""
    return _utc_naive(end).replace(second=0, microsecond=0)


def covers(
    report: DriftReport,
    store_root: str | os.PathLike[str],
    window: timedelta,
    reference: Reference,
    end: datetime,
    signals: Sequence[DriftSignal] = DEFAULT_SIGNALS,
    step_s: int = 60,
) -> bool:
    """True when ``report`` equals what ``compute_drift(Store(store_root), window,
    reference, end, signals, step_s=step_s)`` gives now for the whole fleet (see the
    module docstring: settings, window and freshness)."""
    wanted = settings_of(store_root, reference, signals, None, None, step_s)
    got = {k: v for k, v in report.settings.items() if k != "read_started_utc"}
    if got != wanted or report.window_end != _minute(end) or report.window != window:
        return False
    return not stale_files(store_root, report)


def covering_report(
    archive: str | os.PathLike[str],
    store: Store,
    window: timedelta,
    reference: Reference,
    end: datetime | None,
    signals: Sequence[DriftSignal] = DEFAULT_SIGNALS,
    step_s: int = 60,
) -> ArchiveHit | None:
    """The archived report that answers ``compute_drift(store, window, reference, end)``
    for the whole fleet exactly, or None.

    Args:
        archive: the report folder.
        store: the store the page reads.
        window, reference, end: the question (``end`` UTC; None: the latest data,
            which only a computation can tell, so None).
        signals, step_s: as :func:`observatory.drift_engine.compute_drift`'s.

    A missing, unreadable, foreign or stale file gives None, never an error.
    """
    path = candidate_path(archive, window, end)
    if path is None or end is None:
        return None
    try:
        report = load_report(path)
    except (OSError, ValueError):
        return None
    return (
        ArchiveHit(path, report)
        if covers(report, store.root, window, reference, end, signals, step_s)
        else None
    )

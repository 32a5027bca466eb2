"""Saved drift reports read back: the Drift page's fast path (issue #9).

``observatory report drift`` and ``observatory run`` write a JSON report
(:func:`observatory.drift_report.render_json`) that holds every number the Drift page
shows: each slice's metrics, verdicts, distributions and metrics over time.  When the
archive holds the report of the page's exact question, the page reads it
(:func:`covering_report`) instead of computing drift over the whole fleet again.
It covers the question when all of these hold (else the page computes on demand):

- its file is the one of the window: ``drift-<end>-<length>.json``;
- its ``settings`` (:func:`observatory.drift_engine.settings_of`) equal the page's:
  the same reference, step, no region or model filter, and every default signal with
  the same kind, sources, reference, rule, alarm metric and minimum count (not the
  store folder: a copy of the store answers, see below);
- it is fresh (:mod:`observatory.drift_fresh`): no data file of its signals on the
  dates it read (reference start to window end) was modified, or created, after its
  computation began (``settings["read_started_utc"]``), except files of the window
  end's date whose rows inside the report's range still have the digest recorded
  before it read them (the collector appending later steps).  A late backfill of
  any row it read makes it stale.  On a copy of the store (another folder than the
  report's ``settings["store"]``) the earlier dates' files must be listed with the
  names and sizes the report recorded, and every file of the window end's date must
  have its recorded digest (:mod:`observatory.drift_fresh`).

:func:`latest_fresh` finds the page's default view: the newest fresh report of the
question ending at or before the latest data.

Values come back exactly: JSON numbers are written with ``repr`` and read back to the
same float; ``null`` (NaN, or an infinity: the JSON format has none) reads as NaN.
The over-time frames are views of one frame per column layout (their index is not
0-based; the engine's is not either, after sorting by time).

"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from analytics import drift as dm
from observatory import drift_fresh
from observatory.drift_engine import (
    DEFAULT_SIGNALS,
    DriftReport,
    DriftSignal,
    Reference,
    SliceResult,
    _utc_naive,
    settings_of,
)
from observatory.drift_report import NAME_RE, SCHEMA, report_head, report_name
from observatory.store import Store

__all__ = [
    "ArchiveHit",
    "archive_folder",
    "candidate_path",
    "covering_report",
    "covers",
    "from_dict",
    "latest_fresh",
    "load_report",
    "same_question",
    "stale_files",
]


@dataclass(frozen=True)
class ArchiveHit:
    """A saved report that answers the page's question.

    Attributes:
        path: the JSON file.
        report: its contents as a :class:`DriftReport`.
    """

    path: Path
    report: DriftReport


#: The archive the dashboard reads when ``OBSERVATORY_DRIFT_REPORTS`` is not set.
DEFAULT_ARCHIVE = Path("reports/drift")


def archive_folder() -> Path:
    """The report archive the Drift page reads: ``OBSERVATORY_DRIFT_REPORTS``, default
    ``reports/drift`` (relative to the working directory)."""
    value = os.environ.get("OBSERVATORY_DRIFT_REPORTS", "").strip()
    return Path(value) if value else DEFAULT_ARCHIVE


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


def stale_files(
    store_root: str | os.PathLike[str], report: DriftReport, store: Store | None = None
) -> list[Path]:
    """Data files that make ``report`` stale (empty: it is fresh).

    :func:`observatory.drift_fresh.stale_files` on its settings: files of the window
    end's date by the digest of their rows inside the report's range (when the report
    carries a fingerprint), every other file read by its modification time.  A report
    without ``read_started_utc`` is stale as a whole (the store folder is returned).
    """
    lo = min([report.window_start, *(s.reference_start for s in report.slices)])
    hi = max([report.window_end, *(s.reference_end for s in report.slices)])
    return drift_fresh.stale_files(store_root, report.settings, (lo, hi), store)


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
    store: Store | None = None,
) -> bool:
    """True when ``report`` equals what ``compute_drift(Store(store_root), window,
    reference, end, signals, step_s=step_s)`` gives now for the whole fleet (see the
    module docstring: settings, window and freshness).  ``store``: a reader of
    ``store_root`` for the freshness digests (default: a new one)."""
    if not same_question(report.settings, store_root, reference, signals, step_s):
        return False
    if report.window_end != _minute(end) or report.window != window:
        return False
    return not stale_files(store_root, report, store)


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
        if covers(report, store.root, window, reference, end, signals, step_s, store)
        else None
    )


def same_question(
    settings: dict[str, Any],
    store_root: str | os.PathLike[str],
    reference: Reference,
    signals: Sequence[DriftSignal] = DEFAULT_SIGNALS,
    step_s: int = 60,
) -> bool:
    """True when a report's ``settings`` are those of ``compute_drift`` with this
    reference, signals and step for the whole fleet
    (:func:`observatory.drift_engine.settings_of`; other keys, such as when it began
    reading or its fingerprint, are not compared).

    The store folder is not compared: a report of another folder answers when that
    folder holds the same data (a copy), which :func:`stale_files` checks
    (:mod:`observatory.drift_fresh`, "A copy of the store").  ``store_root`` is kept
    for callers' symmetry with :func:`covers`."""
    wanted = settings_of(store_root, reference, signals, None, None, step_s)
    del wanted["store"]  # a copy answers too: the freshness rules check its data
    return all(settings.get(k) == v for k, v in wanted.items())


def _json_reports(archive: Path, window: timedelta) -> list[tuple[datetime, Path]]:
    """``(window end, path)`` of the archive's JSON reports of this window length,
    newest first (names only: :func:`observatory.drift_report.report_name`)."""
    if not archive.is_dir():
        return []
    out = []
    for entry in os.scandir(archive):
        m = NAME_RE.match(entry.name)
        if not m or m.group(4) != "json":
            continue
        end = datetime.strptime(f"{m.group(1)}T{m.group(2)}", "%Y-%m-%dT%H%M")
        if entry.name == report_name(end, window, "json"):
            out.append((end, Path(entry.path)))
    return sorted(out, reverse=True)


def latest_fresh(
    archive: str | os.PathLike[str],
    store_root: str | os.PathLike[str],
    window: timedelta,
    reference: Reference,
    until: datetime,
    signals: Sequence[DriftSignal] = DEFAULT_SIGNALS,
    step_s: int = 60,
    store: Store | None = None,
    tries: int = 3,
) -> Path | None:
    """The newest archived JSON report of this question that is fresh now: the page's
    default view ("drift as of <its window end>").

    Args:
        archive: the report folder.
        store_root: the store the page reads.
        window, reference, signals, step_s: the question (:func:`same_question`).
        until: the latest window end wanted (UTC naive; the page's: the latest data).
        store: a reader of ``store_root`` for the freshness digests (default: new).
        tries: how many reports of the same question to check, newest first, before
            giving up (a backfill that made the newest stale usually made the older
            ones stale too).

    Only reports with a freshness ``fingerprint`` (written by this version) are
    considered; only their heads are read (:func:`observatory.drift_report.report_head`).
    Unreadable files are skipped, never an error.
    """
    left = tries
    for end, path in _json_reports(Path(archive), window):
        if end > _minute(until) or left <= 0:
            continue
        try:
            settings = report_head(path).get("settings") or {}
        except (OSError, ValueError):
            continue
        if not same_question(settings, store_root, reference, signals, step_s):
            continue
        if not settings.get(drift_fresh.FINGERPRINT_KEY):
            continue
        left -= 1
        if not drift_fresh.stale_files(store_root, settings, None, store):
            return path
    return None

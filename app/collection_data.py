"""The Collection health page's reads: the run log, the state, the newest stored steps.

The collector writes beside the lake (docs/architecture.md, observatory/store/):

- ``runs.jsonl``: one JSON object a line per region per run.  Read here line by line
  (not through the ``collection_runs`` view, whose JSON reader rejects the whole file
  for one bad line) and parsed by :func:`analytics.collection_health.parse_run_log`,
  which skips and reports truncated or malformed lines.
- ``state.json``: per region, per signal, where the next run resumes.
- the data partitions ``lake/<table>/signal=<s>/date=<d>/region=<r>/`` (hour files,
  :meth:`observatory.store.Store.partitions`): the newest stored step of each (region,
  signal) is the ``ts_utc`` maximum in the Parquet footer statistics of the files of
  its newest date partition holding rows (no data pages read): the folders of 30 days
  are listed, but only the newest partition's newest hour file is opened.
- the region catalogue (:mod:`app.region_catalogue`), with the regions whose
  ``requests`` partitions hold rows: no DuckDB view is built for this page.

Results are cached per file modification time (run log, state) or data version.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import streamlit as st

from analytics.collection_health import RunLog, parse_run_log
from app.data import store_path
from app.region_catalogue import read_catalogue, region_rows
from observatory.config import ConfigError, load_config
from observatory.hour_files import LEGACY_FILE
from observatory.store import Store, StoreError

RUN_LOG = "runs.jsonl"
STATE = "state.json"
#: Written by ``observatory demo`` beside the lake (the demo has no run log).
DEMO_MARKER = "ground_truth.json"
#: The request signal (its regions with rows are the regions with data).
REQUESTS = "requests"
_TABLES = ("counters", "gauges", "histograms")
#: Run-log lines parsed at most (the newest): about two days of seven regions collected
#: every minute.  bench/collection_health.py: 20,000 lines parse in 1.3 s and
#: aggregate in 0.9 s on the shared 2-core development machine.
MAX_RUN_LINES = 20_000


@dataclass(frozen=True)
class CollectionSettings:
    """The collection step and settle (seconds), and where they came from.

    Attributes:
        step_s, settle_s: ``collection.step`` / ``collection.settle`` in seconds.
        source: ``the configuration <path>`` or ``the defaults``.
        problem: why the configuration could not be read (None when it could, or
            when none is set).
    """

    step_s: float
    settle_s: float
    source: str
    problem: str | None = None


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st_ = path.stat()
    except OSError:
        return (-1, -1)
    return (st_.st_mtime_ns, st_.st_size)


@dataclass(frozen=True)
class RunLogRead:
    """The parsed end of the run log.

    Attributes:
        log: the records and skipped lines of the lines read.
        total_lines: lines in the file.
        first_line: the first line read (1 unless the file is longer than
            :data:`MAX_RUN_LINES`: then only its last lines are read).
    """

    log: RunLog
    total_lines: int
    first_line: int


@st.cache_data(max_entries=8, show_spinner=False)
def _run_log(path: str, stamp: tuple[int, int]) -> RunLogRead | None:
    del stamp  # cache key only: the file's mtime and size
    try:
        with open(path, "rb") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return None
    first = max(1, len(lines) - MAX_RUN_LINES + 1)
    return RunLogRead(
        parse_run_log(lines[first - 1 :], source=path, first_line=first), len(lines), first
    )


def read_run_log(root: Path | None = None) -> RunLogRead | None:
    """The store's run log (``<store>/runs.jsonl``), its last :data:`MAX_RUN_LINES`
    lines parsed; None when there is none.

    Raises:
        OSError: the file exists but cannot be read (permissions, I/O).
    """
    path = (root or store_path()) / RUN_LOG
    return _run_log(str(path), _stamp(path))


@st.cache_data(max_entries=8, show_spinner=False)
def _marks(root: str, stamp: tuple[int, int]) -> dict[str, dict[str, str]]:
    del stamp
    state = Store(root).read_state()
    out: dict[str, dict[str, str]] = {}
    for region, entry in (state.get("regions") or {}).items():
        if not isinstance(entry, dict):
            continue
        signals = entry.get("signals")
        if isinstance(signals, dict):
            out[str(region)] = {str(s): str(t) for s, t in signals.items() if t}
    return out


def read_marks(root: Path | None = None) -> tuple[dict[str, dict[str, str]], str | None]:
    """The state's per-signal resume points (region -> signal -> ISO time), and a
    message naming the file when ``state.json`` cannot be read (then no marks)."""
    root = root or store_path()
    try:
        return _marks(str(root), _stamp(root / STATE)), None
    except StoreError as exc:
        return {}, str(exc)


def _footer_max(path: Path) -> datetime | None:
    """The largest ``ts_utc`` in the file's footer statistics (None: no statistics)."""
    try:
        meta = pq.read_metadata(path)
        col = meta.schema.to_arrow_schema().get_field_index("ts_utc")
        if col < 0:
            return None
        best: datetime | None = None
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            if stats is None or not stats.has_min_max:
                return None
            hi = pd.Timestamp(stats.max).to_pydatetime()
            best = hi if best is None or hi > best else best
        return best
    except (OSError, pa.ArrowException, ValueError, TypeError):
        return None


def _partition_max(files: list[Path]) -> datetime | None:
    """The newest step in the footers of one partition's data files (None: no rows):
    the highest hour file with rows holds the newest hour, and a ``part.parquet``
    written before hour files may hold any hour, so both are read."""
    best: datetime | None = None
    for path in sorted(files, key=lambda f: f.name, reverse=True):  # part, h24 .. h00
        found = _footer_max(path)
        if found is not None:
            best = found if best is None else max(best, found)
            if path.name != LEGACY_FILE:
                break
    return best


@st.cache_data(max_entries=8, show_spinner=False)
def _newest_steps(root: str, version: float) -> dict[tuple[str, str], datetime]:
    del version
    store = Store(root)
    out: dict[tuple[str, str], datetime] = {}
    for table in _TABLES:
        for signal in store.stored_signals(table):
            days: dict[str, list[date]] = defaultdict(list)  # folder listings only
            for part in store.partitions(table, [signal]):
                days[part.region].append(part.day)
            for region, stored in days.items():
                for day in sorted(stored, reverse=True):  # newest date partition first
                    found = _partition_max(store.partition_files(table, signal, day, region))
                    if found is not None:
                        out[(region, signal)] = found
                        break
    return out


def newest_steps(root: Path | None = None) -> dict[tuple[str, str], datetime]:
    """(region, signal) -> the newest stored step (``ts_utc``, UTC naive), over the
    counters, gauges and histograms tables (cached per data version)."""
    root = root or store_path()
    return _newest_steps(str(root.resolve()), Store(root).data_version())


def collection_settings() -> CollectionSettings:
    """``collection.step`` and ``settle`` of ``OBSERVATORY_CONFIG`` when set and
    readable, else the collector's defaults (60 s, 60 s)."""
    config_path = os.environ.get("OBSERVATORY_CONFIG", "").strip()
    if not config_path:
        return CollectionSettings(60.0, 60.0, "the defaults")
    try:
        coll = load_config(config_path).settings.collection
    except ConfigError as exc:
        return CollectionSettings(60.0, 60.0, "the defaults", exc.messages[0])
    return CollectionSettings(
        coll.step.total_seconds(), coll.settle.total_seconds(), f"the configuration {config_path}"
    )


def is_demo_store(root: Path | None = None) -> bool:
    """True for a store built by ``observatory demo`` (it keeps ``ground_truth.json``)."""
    return ((root or store_path()) / DEMO_MARKER).exists()


def catalogue(newest: dict[tuple[str, str], datetime]) -> dict[str, str]:
    """Region -> display name: the region catalogue and every region with request rows,
    the regions ``overview_regions`` lists, without its scan of every request row.

    Args:
        newest: :func:`newest_steps` of the store: a region has request rows exactly
            when one of its ``requests`` partitions has a file with rows (footer
            statistics), which is when it has an entry ``(region, "requests")``.

    Returns:
        empty when the catalogue file cannot be read (the page then lists the regions
        of the run log and the data).
    """
    root = store_path()
    try:
        rows = region_rows(read_catalogue(root), [r for r, signal in newest if signal == REQUESTS])
    except StoreError:
        return {}
    return dict(zip(rows["region"], rows["display_name"], strict=True))

"""Regression findings computed off the request path, for the dashboard's Regressions page.

``observatory regressions precompute`` (run it from cron or the scheduler after each
collection) analyses a window ``(end - lookback, end]`` of the whole fleet, a few
regions at a time (memory bounded by one batch of regions), with exactly the code of
:func:`observatory.regressions.analyse` without incremental state, and keeps what the
page shows in ``<store>/.regressions/findings-<bin_s>-<lookback_s>/``:

- ``findings.json``: the window, the store's data version, the regressions (their
  causes are recomputed from the events on load), the events, each series' first and
  last bin (the timeline), the arms, and the names of the files below;
- ``<generation>-signals-<i>.parquet``: one region's derived signals per bin (the
  detail chart, the "two time ranges" and "two arms" verdicts read only the selected
  regions' files);
- ``<generation>-verdict-rows.parquet``: the bins the deployment verdicts compare
  (the hour after each annotation or label change and the same hour a day before).

The Parquet files are written first, ``findings.json`` last and atomically (a reader
sees the old generation or the new one); files of generations other than the new and
the previous one are removed afterwards.  Another code version (:data:`VERSION`) or a
missing file makes :func:`load` return None and the page computes on demand.

:func:`from_report` wraps an on-demand :class:`observatory.regressions.Report` in the
same :class:`Findings` interface, so the page has one path.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from analytics import regressions as rg
from observatory import regressions as reg
from observatory.regressions_state import VERSION as STATE_VERSION
from observatory.regressions_state import folder as state_folder
from observatory.store import Store, StoreMissing, atomic_write_bytes

#: Changes whenever the files' layout or what they mean changes.
VERSION = f"findings-1/{STATE_VERSION}"
#: Regions analysed together by :func:`precompute` (bounds its memory).
DEFAULT_BATCH = 4
SPAN_COLUMNS = [*rg.KEYS, "first", "last"]
_DEPLOYMENTS = ("annotation", "label_change")


def findings_folder(root: Path, bin_s: int, lookback: timedelta) -> Path:
    """``<store>/.regressions/findings-<bin_s>-<lookback seconds>``."""
    return state_folder(root) / f"findings-{int(bin_s)}-{int(lookback.total_seconds())}"


@dataclass
class Findings:
    """What the Regressions page shows for one window: regressions, events, spans and
    (lazily, per region) the derived signals.

    Attributes:
        start, end: the analysed window ``(start, end]``, aware UTC.
        bin_s: bin length, seconds.
        regressions: every regression of the analysed regions, causes attached,
            ordered as :func:`observatory.regressions.analyse` orders them.
        events: candidate causes (annotations, label changes, traffic shifts), by time.
        spans: ``region, model, arm, first, last``: each series' first and last bin end.
        arms: every arm with signals in the window.
        verdict_rows: the signal rows the deployment verdicts compare.
        stored: True when read from the precomputed files, False when computed now.
        data_version: the store's data version the findings were computed from.
    """

    start: datetime
    end: datetime
    bin_s: int
    regressions: list[rg.Regression]
    events: list[rg.Event]
    spans: pd.DataFrame
    arms: list[str]
    verdict_rows: pd.DataFrame
    stored: bool
    data_version: float = 0.0
    _region_signals: RegionReader | None = field(default=None, repr=False)

    @property
    def regions(self) -> list[str]:
        """The analysed regions (those with a series in the window), sorted."""
        return sorted({str(r) for r in self.spans["region"]})

    def signals(
        self,
        regions: Sequence[str] | None = None,
        within: tuple[datetime, datetime] | None = None,
        where: Filters | None = None,
    ) -> pd.DataFrame:
        """The derived signals of ``regions`` (default all), rows ``bin_end`` in
        ``within`` = ``(a, b]`` (naive or aware UTC) if given and matching ``where``
        (``(column, "=", value)`` tuples); the frame of
        :func:`analytics.regression_signals.derive_signals` (categorical labels)."""
        filters = list(where or [])
        if within is not None:
            a, b = (pd.Timestamp(reg._naive(t)) for t in within)
            filters += [("bin_end", ">", a), ("bin_end", "<=", b)]
        wanted = [r for r in self.regions if regions is None or r in set(regions)]
        read = self._region_signals
        parts = [read(r, filters) for r in wanted] if read else []
        if not parts:
            return _empty_signals()
        return _concat(parts)

    def signals_within(
        self, regions: Sequence[str] | None, spans: Sequence[tuple[datetime, datetime]]
    ) -> pd.DataFrame:
        """:meth:`signals` of the rows in any of ``spans`` (``(a, b]`` each; overlapping
        spans are merged, so no row comes twice), in time order of the spans."""
        merged: list[tuple[datetime, datetime]] = []
        for a, b in sorted((reg._naive(a), reg._naive(b)) for a, b in spans):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        parts = [self.signals(regions, within=span) for span in merged]
        return _concat(parts) if parts else _empty_signals()

    def series(self, region: str, model: str, arm: str, name: str) -> pd.DataFrame:
        """One signal's bins (``bin_end``, ``value``, ``load``) for a chart."""
        where = [("model", "=", model), ("arm", "=", arm), ("signal", "=", name)]
        s = self.signals([region], where=where)
        return s[["bin_end", "value", "load"]].reset_index(drop=True)


#: Row filters as pyarrow takes them: ``(column, "=" | ">" | "<=", value)``.
Filters = list[tuple[str, str, Any]]
#: Reads one region's signals with row filters.
RegionReader = Callable[[str, Filters], pd.DataFrame]


def _filtered(frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """``frame``'s rows matching ``filters`` (what pyarrow's ``filters`` does on a file)."""
    if not filters:
        return frame.reset_index(drop=True)
    keep = pd.Series(True, index=frame.index)
    for col, op, value in filters:
        values = frame[col].astype(str) if col != "bin_end" else frame[col]
        if op == "=":
            keep &= values == value
        elif op == ">":
            keep &= values > value
        elif op == "<=":
            keep &= values <= value
        else:
            raise ValueError(f"unsupported row filter {op!r} on {col!r} (use =, > or <=)")
    return frame[keep.to_numpy()].reset_index(drop=True)


def _empty_signals() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "bin_end": pd.Series([], dtype="datetime64[ns]"),
            **{k: pd.Categorical([]) for k in (*rg.KEYS, "signal")},
            "value": pd.Series([], dtype="float64"),
            "load": pd.Series([], dtype="float64"),
        }
    )
    return frame


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Signals frames one after the other, labels kept categorical (sorted categories)."""
    if len(parts) == 1:
        return parts[0]
    for col in (*rg.KEYS, "signal"):
        cats = sorted(set().union(*(p[col].cat.categories for p in parts)))
        for p in parts:
            p[col] = p[col].cat.set_categories(cats)
    return pd.concat(parts, ignore_index=True)


def _categorical(frame: pd.DataFrame) -> pd.DataFrame:
    """Labels as categoricals with sorted categories (as ``derive_signals`` makes them)."""
    for col in (*rg.KEYS, "signal"):
        c = frame[col]
        if isinstance(c.dtype, pd.CategoricalDtype):
            cats = c.cat.categories
            if not cats.is_monotonic_increasing:
                frame[col] = c.cat.reorder_categories(sorted(cats))
        else:
            frame[col] = c.astype(str).astype("category")
    return frame


def spans_of(signals: pd.DataFrame) -> pd.DataFrame:
    """Each series' first and last ``bin_end``: ``region, model, arm, first, last``."""
    if signals.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in SPAN_COLUMNS})
    g = signals.groupby(rg.KEYS, observed=True, sort=True)["bin_end"].agg(["min", "max"])
    out = g.reset_index().rename(columns={"min": "first", "max": "last"})
    for col in rg.KEYS:
        out[col] = out[col].astype(str)
    return out[SPAN_COLUMNS]


def verdict_rows(signals: pd.DataFrame, events: Sequence[rg.Event]) -> pd.DataFrame:
    """The rows of ``signals`` that :func:`observatory.regressions.deployment_verdicts`
    compares (default one-hour window, baseline one day earlier), for every
    annotation or label change; the verdicts of these rows equal those of the whole
    frame (each compares only rows inside its two spans)."""
    keep = pd.Series(False, index=signals.index)
    t = signals["bin_end"]
    hour, day = timedelta(hours=1), timedelta(days=1)
    for e in events:
        if e.kind not in _DEPLOYMENTS:
            continue
        series = pd.Series(True, index=signals.index)
        for col, val in (("region", e.region), ("model", e.model), ("arm", e.arm)):
            if val:
                series &= signals[col] == val
        for a in (e.time, e.time - day):
            keep |= series & (t > pd.Timestamp(a)) & (t <= pd.Timestamp(a + hour))
    return signals[keep.to_numpy()].reset_index(drop=True)


def from_report(report: reg.Report, data_version: float = 0.0) -> Findings:
    """An on-demand :class:`observatory.regressions.Report` as :class:`Findings`."""
    sig = report.signals
    by_region = {str(r): f for r, f in sig.groupby("region", observed=True, sort=True)}
    return Findings(
        report.start,
        report.end,
        report.bin_s,
        list(report.regressions),
        list(report.events),
        spans_of(sig),
        sorted(str(a) for a in sig["arm"].unique()),
        verdict_rows(sig, report.events),
        stored=False,
        data_version=data_version,
        _region_signals=lambda r, filters: _filtered(by_region[r], filters),
    )


def _region_batches(regions: list[str], batch: int) -> list[list[str]]:
    if batch < 1:
        raise ValueError(f"regions per batch must be at least 1, got {batch}")
    return [regions[i : i + batch] for i in range(0, len(regions), batch)]


def compute(
    store: Store,
    end: datetime | None = None,
    lookback: timedelta = reg.DEFAULT_LOOKBACK,
    bin_s: int = reg.DEFAULT_BIN_S,
    batch: int = DEFAULT_BATCH,
    sink: Callable[[str, pd.DataFrame], None] | None = None,
    regions: Sequence[str] | None = None,
) -> Findings:
    """The findings of :func:`observatory.regressions.analyse` (``incremental=False``,
    ``regions``: default every region) over ``(end - lookback, end]``, computed
    ``batch`` regions at a time (peak memory: one batch's store rows).

    Exactly the same regressions, events and verdict rows as the fleet-wide analysis:
    signals, detection and traffic shifts are per series, and the pieces are put
    together in the fleet-wide order (regions sorted; events sorted by time, stably;
    regressions by start, region and signal).  ``sink(region, signals)`` receives
    each region's signals (:func:`save` writes them to a file) and the returned
    findings keep them in memory only when ``sink`` is None.

    Raises:
        StoreMissing: the store holds no data.
        ValueError: ``batch`` < 1.
    """
    start, end = reg.window(store, end, lookback, bin_s)
    version = store.data_version()
    chosen = sorted(regions) if regions else None
    names = store.named(
        "regression_series_names",
        start=reg._naive(start),
        end=reg._naive(end),
        regions=list(chosen or []),
    )
    deployments = reg.deployment_events(store, start, end, chosen)
    regs: list[rg.Regression] = []
    shifts: list[rg.Event] = []
    spans, rows, kept = [], [], {}
    for group in _region_batches(sorted({str(r) for r in names["region"]}), batch):
        sig = reg.load_signals(store, start, end, bin_s, group)
        regs += rg.detect_regressions(sig, bin_s=bin_s)
        shifts += rg.traffic_shifts(sig, bin_s=bin_s)
        spans.append(spans_of(sig))
        rows.append(verdict_rows(sig, deployments))
        for region, part in sig.groupby("region", observed=True, sort=True):
            part = part.reset_index(drop=True)
            if sink is None:
                kept[str(region)] = part
            else:
                sink(str(region), part)
        del sig
    events = sorted([*deployments, *shifts], key=lambda e: e.time)
    regs = rg.with_causes(sorted(regs, key=lambda r: (r.start, r.region, r.signal)), events)
    all_spans = pd.concat(spans, ignore_index=True) if spans else spans_of(_empty_signals())
    return Findings(
        start,
        end,
        bin_s,
        regs,
        events,
        all_spans,
        sorted({str(a) for a in all_spans["arm"]}),
        _concat([_categorical(r) for r in rows]) if rows else _empty_signals(),
        stored=False,
        data_version=version,
        _region_signals=lambda r, filters: _filtered(kept[r], filters),
    )


def _event_dict(e: rg.Event) -> dict[str, Any]:
    return {
        "time": e.time.isoformat(),
        "kind": e.kind,
        "description": e.description,
        "region": e.region,
        "model": e.model,
        "arm": e.arm,
    }


def _event(d: dict[str, Any]) -> rg.Event:
    return rg.Event(
        datetime.fromisoformat(d["time"]),
        d["kind"],
        d["description"],
        d["region"],
        d["model"],
        d["arm"],
    )


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    out = frame.copy()
    for col in (*rg.KEYS, "signal"):
        out[col] = out[col].astype(str)
    out.to_parquet(buf, index=False)
    return buf.getvalue()


def _read(path: Path, filters: Filters | None = None) -> pd.DataFrame:
    """A signals file (labels read as dictionaries: categoricals), rows matching ``filters``."""
    table = pq.read_table(path, filters=filters or None, read_dictionary=[*rg.KEYS, "signal"])
    return _categorical(table.to_pandas())


def save(
    store: Store,
    end: datetime | None = None,
    lookback: timedelta = reg.DEFAULT_LOOKBACK,
    bin_s: int = reg.DEFAULT_BIN_S,
    batch: int = DEFAULT_BATCH,
) -> tuple[Findings, Path]:
    """:func:`compute` the findings and write them (module docstring); returns them
    and their folder.

    Raises:
        StoreMissing: the store holds no data.
        OSError: the store's folder is not writable.
    """
    where = findings_folder(store.root, bin_s, lookback)
    if not store.has_data():  # nothing to analyse: create no folder in a wrong path
        raise StoreMissing(f"no data in store {store.root}")
    where.mkdir(parents=True, exist_ok=True)
    gen = uuid.uuid4().hex[:12]
    files: dict[str, str] = {}

    def sink(region: str, part: pd.DataFrame) -> None:
        name = f"{gen}-signals-{len(files)}.parquet"
        atomic_write_bytes(where / name, _parquet(part))
        files[region] = name

    found = compute(store, end, lookback, bin_s, batch, sink)
    rows_file = f"{gen}-verdict-rows.parquet"
    atomic_write_bytes(where / rows_file, _parquet(found.verdict_rows))
    previous = _generation(where)
    doc = {
        "version": VERSION,
        "generation": gen,
        "bin_s": int(bin_s),
        "lookback_s": int(lookback.total_seconds()),
        "start": found.start.isoformat(),
        "end": found.end.isoformat(),
        "data_version": found.data_version,
        "arms": found.arms,
        "regressions": [
            {k: v for k, v in r.as_dict().items() if k not in ("cause", "causes", "severity")}
            for r in found.regressions
        ],
        "events": [_event_dict(e) for e in found.events],
        "spans": [
            [r.region, r.model, r.arm, r.first.isoformat(), r.last.isoformat()]
            for r in found.spans.itertuples(index=False)
        ],
        "signals": files,
        "verdict_rows": rows_file,
    }
    atomic_write_bytes(where / "findings.json", json.dumps(doc).encode("utf-8"))
    for old in where.glob("*.parquet"):
        if not old.name.startswith((gen, previous or gen)):
            with contextlib.suppress(OSError):
                old.unlink()
    found.stored = True
    found._region_signals = lambda r, filters: _read(where / files[r], filters)
    return found, where


def _generation(where: Path) -> str | None:
    try:
        return str(json.loads((where / "findings.json").read_text(encoding="utf-8"))["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(root: Path, bin_s: int, lookback: timedelta) -> Findings | None:
    """The precomputed findings for this bin length and lookback, or None (missing,
    unreadable, another code version: the caller computes on demand).  The regions'
    signals are read when asked for (:meth:`Findings.signals`)."""
    where = findings_folder(root, bin_s, lookback)
    try:
        doc = json.loads((where / "findings.json").read_text(encoding="utf-8"))
        if doc.get("version") != VERSION or doc.get("bin_s") != bin_s:
            return None
        events = [_event(d) for d in doc["events"]]
        regs = rg.with_causes([rg.regression_from_dict(d) for d in doc["regressions"]], events)
        spans = pd.DataFrame(doc["spans"], columns=SPAN_COLUMNS)
        for col in ("first", "last"):
            spans[col] = pd.to_datetime(spans[col])
        files = {str(k): str(v) for k, v in doc["signals"].items()}
        rows = _read(where / doc["verdict_rows"])
        return Findings(
            datetime.fromisoformat(doc["start"]),
            datetime.fromisoformat(doc["end"]),
            int(doc["bin_s"]),
            regs,
            events,
            spans,
            [str(a) for a in doc["arms"]],
            rows,
            stored=True,
            data_version=float(doc["data_version"]),
            _region_signals=lambda r, filters: _read(where / files[r], filters),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None

"""Precomputed SLO status and burn-down: what Sloth and Pyrra dashboards read from
recording rules, kept exact.

Two kinds of table are kept beside the SLO slice cache (outside the store,
``<cache root>/status/<key>.parquet`` and ``<cache root>/history/<key>.parquet``;
docs/slo.md, "Precomputed status and burn-down"), each with the store's data version,
the evaluation end and the wall time it was computed at:

- the **status** of a set of SLOs now (each SLO at its own latest step:
  :func:`observatory.slo_engine.status_table` with ``at=None``);
- the **history** of one SLO over a span before its latest step
  (:meth:`observatory.slo_engine.SloEngine.history` with ``end=None``): the SLOs
  page's burn-down and alert timeline.

``observatory run``'s ``precompute`` job (and ``observatory slo status`` of every SLO)
writes the status and the default 1-day history of every SLO (:func:`refresh`); the
dashboard's SLOs and Overview pages read them.  :func:`current_status` and
:func:`current_history` return a kept table when it is

- **exact**: the store's data version is the one it was computed at (nothing was
  written since), so it equals what the engine computes now; or
- **recent**: it is at most ``max_age`` behind the data (each SLO's evaluation behind
  that SLO's latest step; the collector wrote since).  It is then the exact result as
  of its evaluation time, shown with that time, the way recording-rule dashboards lag
  by one evaluation;

and otherwise compute on demand (exact) and keep the result.  A key hashes the SLO
definitions (without the file and line they came from), the engine's maintenance
windows and coverage guard, what was asked (span, interval) and :data:`VERSION`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from observatory.slo_cache import parquet_bytes
from observatory.slo_engine import SloEngine, status_table
from observatory.slo_specs import SloDefinition
from observatory.store import atomic_write_bytes

#: Changes whenever a kept table's columns or meaning change (part of every key).
VERSION = "slo-precomputed-1"
#: How far a kept table may lag the data and still be shown by default (one run of a
#: ``*/5`` precompute job).
MAX_AGE = timedelta(minutes=5)
#: The burn-down the precompute job keeps for every SLO: the SLOs page's default view
#: (a preset range of 24 h, evaluated every minute).
DEFAULT_SPAN = timedelta(days=1)
DEFAULT_EVERY = timedelta(minutes=1)
_META = b"observatory.precomputed"


@dataclass(frozen=True)
class Kept:
    """A kept table.

    Attributes:
        table: the status rows or the history rows.
        data_version: the store's :meth:`~observatory.store.Store.data_version` it
            was computed at.
        computed_at: when it was computed (UTC, naive).
        ends: the evaluation end of each SLO (its latest step then), by name.
    """

    table: pd.DataFrame
    data_version: float
    computed_at: datetime
    ends: dict[str, datetime | None]


@dataclass(frozen=True)
class Freshness:
    """How a table was obtained.

    Attributes:
        source: ``exact`` (kept, nothing written since), ``recent`` (kept, data
            written since, at most ``max_age`` behind), ``computed`` (on demand now,
            and kept), or ``uncached`` (no cache folder: computed, not kept).
        computed_at: when the table was computed (UTC, naive).
        behind: how far the kept evaluation lags the data now: the largest lag of an
            SLO's evaluation end behind its latest step (zero unless ``recent``).
    """

    source: str
    computed_at: datetime
    behind: timedelta = timedelta(0)


def _key(engine: SloEngine, slos: Sequence[SloDefinition], **asked: Any) -> str:
    """A hex key (32 characters) of the SLOs (in order, without ``source``: the same
    SLOs loaded from another path share it), the engine's maintenance windows and
    coverage guard, what was ``asked`` and :data:`VERSION`."""
    text = json.dumps(
        {
            "version": VERSION,
            "slos": [repr(dataclasses.replace(s, source="")) for s in slos],
            "maintenance": repr(engine.maintenance),
            "min_coverage": engine.min_coverage,
            "asked": {k: repr(v) for k, v in asked.items()},
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def status_path(engine: SloEngine, slos: Sequence[SloDefinition]) -> Path | None:
    """The file of these SLOs' kept status (None: the engine has no slice cache)."""
    if engine.cache is None:
        return None
    return engine.cache.root / "status" / f"{_key(engine, slos)}.parquet"


def history_path(
    engine: SloEngine, slo: SloDefinition, span: timedelta, every: timedelta
) -> Path | None:
    """The file of the SLO's kept history over ``span`` every ``every`` (None: no cache)."""
    if engine.cache is None:
        return None
    key = _key(engine, [slo], span=span, every=every)
    return engine.cache.root / "history" / f"{key}.parquet"


def load(path: Path | None) -> Kept | None:
    """A kept table (None when missing or unreadable)."""
    if path is None:
        return None
    try:
        with pq.ParquetFile(path) as pf:
            meta = json.loads((pf.schema_arrow.metadata or {})[_META])
            table = pf.read().replace_schema_metadata(None).to_pandas()
        ends = {name: datetime.fromisoformat(t) if t else None for name, t in meta["ends"].items()}
        return Kept(
            table, float(meta["data_version"]), datetime.fromisoformat(meta["computed_at"]), ends
        )
    except (OSError, KeyError, ValueError, TypeError, pa.ArrowException):
        return None


def save(path: Path | None, kept: Kept) -> str | None:
    """Keep ``kept`` at ``path`` (temporary file + ``os.replace``: readers see the old
    or the new file).  Returns why it could not be written (a read-only folder ...)."""
    if path is None:
        return "no SLO cache folder"
    meta = {
        "data_version": kept.data_version,
        "computed_at": kept.computed_at.isoformat(),
        "ends": {name: t.isoformat() if t else None for name, t in kept.ends.items()},
    }
    table = pa.Table.from_pandas(kept.table, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META: json.dumps(meta).encode()}
    )
    try:
        atomic_write_bytes(path, parquet_bytes(table))
    except OSError as exc:
        return f"cannot write the precomputed SLO table {path}: {exc.strerror or exc}"
    return None


def _behind(engine: SloEngine, slos: Sequence[SloDefinition], kept: Kept) -> timedelta:
    """The largest lag of a kept evaluation end behind the SLO's latest step now (an
    SLO that had no data then and has now lags without bound)."""
    worst = timedelta(0)
    for slo in slos:
        latest = engine.latest(slo)
        if latest is None:
            continue
        end = kept.ends.get(slo.name)
        if end is None:
            return timedelta.max
        worst = max(worst, latest - end)
    return worst


def _current(
    engine: SloEngine,
    slos: Sequence[SloDefinition],
    path: Path | None,
    max_age: timedelta,
    compute: Callable[[], pd.DataFrame],
) -> tuple[pd.DataFrame, Freshness]:
    """The kept table at ``path`` when exact or recent, else ``compute()`` kept there."""
    version = engine.store.data_version()
    kept = load(path)
    if kept is not None:
        if kept.data_version == version:
            return kept.table, Freshness("exact", kept.computed_at)
        if max_age > timedelta(0):
            behind = _behind(engine, slos, kept)
            if behind <= max_age:
                return kept.table, Freshness("recent", kept.computed_at, behind)
    now = datetime.now(UTC).replace(tzinfo=None)
    ends = {slo.name: engine.latest(slo) for slo in slos}
    table = compute()
    if path is None:
        return table, Freshness("uncached", now)
    # A write during the computation may or may not be in it: keep the older version
    # (the next reader then sees a changed version and checks how far behind it is).
    error = save(path, Kept(table, version, now, ends))
    if error and engine.cache is not None and engine.cache.write_error is None:
        engine.cache.write_error = error
    return table, Freshness("computed", now)


def current_status(
    engine: SloEngine,
    slos: Sequence[SloDefinition],
    max_age: timedelta = MAX_AGE,
) -> tuple[pd.DataFrame, Freshness]:
    """The status of ``slos`` now: kept when exact or recent, else computed and kept.

    Args:
        engine: the engine (its store, maintenance, coverage guard and cache folder).
        slos: the SLOs, in the order :func:`~observatory.slo_engine.status_table`
            takes them.
        max_age: how far each SLO's kept evaluation may lag its latest step when data
            was written since; ``timedelta(0)``: only an exact table is used.

    Returns:
        :func:`~observatory.slo_engine.status_table`'s rows and how they were obtained.

    Raises:
        whatever :func:`~observatory.slo_engine.status_table` raises (store errors).
    """
    return _current(
        engine, slos, status_path(engine, slos), max_age, lambda: status_table(engine, slos)
    )


def current_history(
    engine: SloEngine,
    slo: SloDefinition,
    span: timedelta = DEFAULT_SPAN,
    every: timedelta = DEFAULT_EVERY,
    max_age: timedelta = MAX_AGE,
) -> tuple[pd.DataFrame, Freshness]:
    """:meth:`~observatory.slo_engine.SloEngine.history` over the ``span`` before the
    SLO's latest step, evaluated every ``every``: kept when exact or recent, else
    computed and kept (arguments and errors as :func:`current_status`)."""

    def compute() -> pd.DataFrame:
        end = engine.latest(slo)
        if end is None:
            return pd.DataFrame()
        return engine.history(slo, start=end - span, end=end, every=every)

    return _current(engine, [slo], history_path(engine, slo, span, every), max_age, compute)


def refresh(
    engine: SloEngine, slos: Sequence[SloDefinition]
) -> tuple[pd.DataFrame, Freshness, int]:
    """What the ``precompute`` job (and ``observatory slo status`` of every SLO now)
    keeps for the dashboard: each SLO's slice cache for its status and burn-down
    (:meth:`~observatory.slo_engine.SloEngine.fill_cache`), its default burn-down
    (:data:`DEFAULT_SPAN` every :data:`DEFAULT_EVERY`), and the status table; a kept
    table is recomputed unless exact.

    Returns:
        the status rows, how they were obtained, and the cached slice hours checked.
    """
    hours = sum(engine.fill_cache(slo, DEFAULT_SPAN) for slo in slos)
    for slo in slos:
        current_history(engine, slo, max_age=timedelta(0))
    table, how = current_status(engine, slos, max_age=timedelta(0))
    return table, how, hours

"""The SLO pages' data: specs, status and history, cached per data version.

SLO specs come from the files named by ``OBSERVATORY_SLO_SPECS`` (``os.pathsep``
separated files or folders; default ``examples/slo``).  The store is the one
:mod:`app.data` keeps (the dashboard's only door to the store); results are cached
with ``st.cache_data`` keyed by the store folder, the specs' modification times and
the store's data version, so a new collection run or an edited spec shows on the
next run.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from app import data
from app.filters import Filters
from observatory import slo_precomputed as precomputed
from observatory import slo_specs
from observatory.config import ConfigError, load_config
from observatory.slo_engine import (
    GLOBAL,
    Maintenance,
    SloEngine,
    alert_timeline,
    headline_counts,
    maintenance_from_config,
    region_states,
    status_table,
)
from observatory.slo_specs import SloDefinition, SpecError, load_specs
from observatory.store import Store

__all__ = [
    "SpecError",
    "definitions",
    "evaluation_time",
    "headline_counts",
    "history",
    "maintenance",
    "max_age",
    "narrowed_labels",
    "region_states",
    "selected_rows",
    "status",
    "status_source",
    "timeline",
]


def specs_caption() -> str:
    """Where the SLO specs come from, for the pages (Markdown-safe)."""
    from app.ui import md

    paths = slo_specs.spec_paths()
    if paths == [slo_specs.DEFAULT_SPECS]:
        return (
            "SLO specs: the built-in examples (`examples/slo`). For your own, start the "
            "dashboard with `observatory serve --slo-specs FILE_OR_FOLDER` "
            "(or set `OBSERVATORY_SLO_SPECS`)."
        )
    return "SLO specs: " + ", ".join(md(p) for p in paths) + "."


def _stamp(paths: list[Path]) -> tuple[tuple[str, float], ...]:
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.y*ml")) if p.is_dir() else [p])
    return tuple((str(f), f.stat().st_mtime if f.exists() else 0.0) for f in files)


@st.cache_data(show_spinner=False, max_entries=8)
def _definitions(
    paths: tuple[str, ...], stamp: tuple[tuple[str, float], ...]
) -> list[SloDefinition]:
    del stamp  # cache key only
    return load_specs([Path(p) for p in paths])


def definitions() -> list[SloDefinition]:
    """The SLO definitions (re-read when a spec file changes).

    Raises:
        SpecError: a spec is invalid (every message names file, line and field).
    """
    paths = slo_specs.spec_paths()
    return _definitions(tuple(str(p) for p in paths), _stamp(paths))


@st.cache_data(show_spinner=False, max_entries=4)
def _config_maintenance(path: str, mtime: float) -> tuple[tuple[Maintenance, ...], str | None]:
    del mtime  # cache key only
    try:
        return maintenance_from_config(load_config(path).settings.maintenance), None
    except ConfigError as exc:
        return (), f"Maintenance windows not applied: {exc}"


def maintenance() -> tuple[tuple[Maintenance, ...], str | None]:
    """The maintenance windows of the configuration named by ``OBSERVATORY_CONFIG``.

    Returns:
        the windows (none without a configuration) and a problem to show, or None.
    """
    path = os.environ.get("OBSERVATORY_CONFIG", "").strip()
    if not path:
        return (), None
    file = Path(path)
    return _config_maintenance(str(file), file.stat().st_mtime if file.exists() else 0.0)


def _engine() -> tuple[SloEngine, float]:
    path = data.store_path()
    version = Store(path).data_version()
    store = data.shared_store(str(path.resolve()))  # the dashboard's shared Store
    return SloEngine(store, maintenance=maintenance()[0]), version


def max_age() -> timedelta:
    """How far a precomputed status may lag the data (``OBSERVATORY_SLO_MAX_AGE``,
    minutes; default :data:`observatory.slo_precomputed.MAX_AGE`; 0: only exact)."""
    raw = os.environ.get("OBSERVATORY_SLO_MAX_AGE", "").strip()
    if not raw:
        return precomputed.MAX_AGE
    try:
        minutes = float(raw)
        if not minutes >= 0:
            raise ValueError(raw)
    except ValueError:
        st.warning(
            f"OBSERVATORY_SLO_MAX_AGE={raw!r} is not a number of minutes >= 0; "
            f"using {precomputed.MAX_AGE.total_seconds() / 60:g}."
        )
        return precomputed.MAX_AGE
    return timedelta(minutes=minutes)


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def _status(
    _slos: list[SloDefinition],
    key: tuple[str, ...],
    at: datetime | None,
    path: str,
    version: float,
    maint: str,
    age: timedelta,
) -> tuple[pd.DataFrame, precomputed.Freshness | None]:
    del key, path, version, maint  # cache key only
    engine, _ = _engine()
    if at is None:  # now: the precomputed status when exact or recent enough
        return precomputed.current_status(engine, _slos, max_age=age)
    return status_table(engine, _slos, at), None


def _status_of(
    slos: list[SloDefinition], at: datetime | None
) -> tuple[pd.DataFrame, precomputed.Freshness | None]:
    engine_path = str(data.store_path().resolve())
    version = Store(data.store_path()).data_version()
    key = tuple(sorted(repr(d) for d in slos))
    return _status(slos, key, at, engine_path, version, repr(maintenance()[0]), max_age())


def status(slos: list[SloDefinition], at: datetime | None = None) -> pd.DataFrame:
    """Status rows of every SLO and group (see :func:`observatory.slo_engine.status_table`).

    ``at``: the evaluation time (UTC naive); None: now, i.e. each SLO's latest data
    (the status kept by the ``precompute`` job when exact or at most :func:`max_age`
    behind, :func:`observatory.slo_precomputed.current_status`).
    """
    return _status_of(slos, at)[0]


def status_source(slos: list[SloDefinition], at: datetime | None = None) -> str | None:
    """A line saying the status shown is precomputed and behind the data, or None
    (exact now, or evaluated at a chosen time)."""
    how = _status_of(slos, at)[1]
    if how is None or how.source != "recent":
        return None
    behind = int(how.behind.total_seconds() // 60)
    return (
        f"SLO status precomputed at {how.computed_at:%Y-%m-%d %H:%M} UTC, up to {behind} min "
        f"behind the latest data (shown while at most {max_age().total_seconds() / 60:g} min "
        "behind, as recording-rule dashboards lag; older, it is computed now)."
    )


@st.cache_data(ttl=60, show_spinner=False, max_entries=32)
def _history(
    _slo: SloDefinition,
    key: str,
    days: float,
    end: datetime | None,
    every_s: int,
    path: str,
    version: float,
    maint: str,
    age: timedelta,
) -> pd.DataFrame:
    del key, path, version, maint  # cache key only
    engine, _ = _engine()
    span, every = timedelta(days=days), timedelta(seconds=every_s)
    if end is None:  # before the latest data: precomputed when exact or recent enough
        return precomputed.current_history(engine, _slo, span, every, max_age=age)[0]
    return engine.history(_slo, start=end - span, end=end, every=every)


def history(
    slo: SloDefinition, days: float, every: timedelta, end: datetime | None = None
) -> pd.DataFrame:
    """Window sums, burn rates, remaining budget and tier states over ``days`` before ``end``.

    ``end``: the last evaluation (UTC naive); None: the SLO's latest data (the
    burn-down kept by the ``precompute`` job when exact or at most :func:`max_age`
    behind, :func:`observatory.slo_precomputed.current_history`).
    """
    path = str(data.store_path().resolve())
    version = Store(data.store_path()).data_version()
    maint = repr(maintenance()[0])
    every_s = int(every.total_seconds())
    return _history(slo, repr(slo), days, end, every_s, path, version, maint, max_age())


def timeline(slo: SloDefinition, hist: pd.DataFrame) -> pd.DataFrame:
    """When each tier fired and recovered, per group."""
    return alert_timeline(slo, hist)


def latest(slo: SloDefinition) -> datetime | None:
    """The latest step of the SLO's signal."""
    engine, _ = _engine()
    return engine.latest(slo)


def evaluation_time(range_label: str, end: datetime) -> datetime | None:
    """When the dashboard evaluates SLO status for the sidebar's time range.

    A preset range (``Last 24 h`` ...) ends at the latest data, so SLOs are evaluated
    now (None: each SLO at its own latest step, as ``observatory slo status`` does);
    custom dates are evaluated at the range's end (UTC naive), to see the SLOs as
    they stood then.  Each SLO keeps its own windows (period, burn-rate windows):
    the range's start does not shorten them.
    """
    from analytics.overview import TIME_RANGES

    return None if range_label in TIME_RANGES else end


def narrowed_labels(f: Filters) -> dict[str, list[str]]:
    """The labels the sidebar narrows (some known value left out): label -> chosen values."""
    out = {}
    for column, chosen, known in (
        ("region", f.regions, f.all_regions),
        ("model", f.models, f.all_models),
        ("arm", f.arms, f.all_arms),
    ):
        if not set(known) <= set(chosen):
            out[column] = list(chosen)
    return out


def selected_rows(table: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """The status rows the sidebar's regions, models and arms select.

    Only labels the sidebar narrows (:func:`narrowed_labels`) filter: a row is kept
    when it is not split by such a label (``*``) or its value is chosen.  The global
    roll-up of an SLO that is split by a narrowed label is dropped too: it adds the
    events of groups left out.  An untouched filter hides nothing (not even a value
    that only an SLO's signal carries).

    Args:
        table: :func:`status` rows (columns slo, region, model, arm).
        f: the shared sidebar's selection.
    """
    narrowed = narrowed_labels(f)
    if table.empty or not narrowed:
        return table
    keep = pd.Series(True, index=table.index)
    split = pd.Series(False, index=table.index)
    for column, chosen in narrowed.items():
        keep &= (table[column] == GLOBAL) | table[column].isin(chosen)
        split |= table["slo"].isin(table.loc[table[column] != GLOBAL, "slo"])
    is_global = (table[["region", "model", "arm"]] == GLOBAL).all(axis=1)
    return table[keep & ~(is_global & split)]

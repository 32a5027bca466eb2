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
from observatory.config import ConfigError, load_config
from observatory.slo_engine import (
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

DEFAULT_SPECS = Path(__file__).resolve().parent.parent / "examples" / "slo"

__all__ = [
    "SpecError",
    "definitions",
    "headline_counts",
    "history",
    "maintenance",
    "region_states",
    "spec_paths",
    "status",
    "timeline",
]


def spec_paths() -> list[Path]:
    """The spec files or folders (``OBSERVATORY_SLO_SPECS``, default ``examples/slo``)."""
    value = os.environ.get("OBSERVATORY_SLO_SPECS", "").strip()
    if not value:
        return [DEFAULT_SPECS]
    return [Path(p) for p in value.split(os.pathsep) if p.strip()]


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
    paths = spec_paths()
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
    store = data._store(str(path.resolve()), version)  # the dashboard's shared Store
    return SloEngine(store, maintenance=maintenance()[0]), version


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def _status(
    _slos: list[SloDefinition], key: tuple[str, ...], path: str, version: float, maint: str
) -> pd.DataFrame:
    del key, path, version, maint  # cache key only
    engine, _ = _engine()
    return status_table(engine, _slos)


def status(slos: list[SloDefinition]) -> pd.DataFrame:
    """Status rows of every SLO and group (see :func:`observatory.slo_engine.status_table`)."""
    engine_path = str(data.store_path().resolve())
    version = Store(data.store_path()).data_version()
    key = tuple(sorted(repr(d) for d in slos))
    return _status(slos, key, engine_path, version, repr(maintenance()[0]))


@st.cache_data(ttl=60, show_spinner=False, max_entries=32)
def _history(
    _slo: SloDefinition, key: str, days: float, every_s: int, path: str, version: float, maint: str
) -> pd.DataFrame:
    del key, path, version, maint
    engine, _ = _engine()
    end = engine.latest(_slo)
    if end is None:
        return pd.DataFrame()
    return engine.history(
        _slo, start=end - timedelta(days=days), end=end, every=timedelta(seconds=every_s)
    )


def history(slo: SloDefinition, days: float, every: timedelta) -> pd.DataFrame:
    """Window sums, burn rates, remaining budget and tier states over the last ``days``."""
    path = str(data.store_path().resolve())
    version = Store(data.store_path()).data_version()
    maint = repr(maintenance()[0])
    return _history(slo, repr(slo), days, int(every.total_seconds()), path, version, maint)


def timeline(slo: SloDefinition, hist: pd.DataFrame) -> pd.DataFrame:
    """When each tier fired and recovered, per group."""
    return alert_timeline(slo, hist)


def latest(slo: SloDefinition) -> datetime | None:
    """The latest step of the SLO's signal."""
    engine, _ = _engine()
    return engine.latest(slo)

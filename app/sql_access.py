"""The SQL page's door to the store: the sandbox, the schema browser's catalogue, examples.

Like :mod:`app.data` for the other pages, this is the only place the SQL page
reaches the store from.  Untrusted SQL runs only through
:class:`observatory.store.SafeSQL` (docs/sql.md, "Safety"); one sandbox is kept
per ``(store folder, data version)`` with ``st.cache_resource`` and closed when it
is dropped.  Results are not cached: a query runs when the user asks for it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.data import store_path
from observatory.sql_catalog import Example, examples, view_docs, view_names
from observatory.store import SafeSQL, SandboxLimits, SQLError, SQLResult, Store

__all__ = ["Example", "SQLError", "SQLResult", "examples", "limits", "run", "schema"]


def _release(sandbox: SafeSQL) -> None:
    sandbox.close()


@st.cache_resource(max_entries=2, show_spinner=False, on_release=_release)
def _sandbox(path: str, version: float) -> SafeSQL:
    """The sandbox of ``path`` as of data ``version`` (views built once)."""
    del version  # part of the cache key only
    return SafeSQL(Store(path))


def sandbox() -> SafeSQL:
    """The sandbox over the dashboard's store, current data version."""
    path = store_path()
    return _sandbox(str(path.resolve()), Store(path).data_version())


def limits() -> SandboxLimits:
    """The sandbox's limits (rows, time, memory) to tell the user."""
    return sandbox().limits


def run(sql: str) -> SQLResult:
    """Run one untrusted query in the sandbox.

    Raises:
        SQLError: refused, stopped or failed; the message says why.
    """
    return sandbox().run(sql)


@st.cache_data(ttl=300, show_spinner=False)
def _schema(path: str, version: float) -> tuple[pd.DataFrame, dict[str, str]]:
    del version
    columns = _sandbox(path, Store(path).data_version()).columns()
    docs = view_docs()
    units, described = [], []
    for view, column in zip(columns["view"], columns["column"], strict=True):
        doc = {c.name: c for c in docs[view].columns} if view in docs else {}
        units.append(doc[column].unit if column in doc else "")
        described.append(doc[column].description if column in doc else "")
    columns = columns.assign(unit=units, description=described)
    order = {name: i for i, name in enumerate(view_names())}
    columns = columns.sort_values(
        ["view", "position"], key=lambda s: s.map(order) if s.name == "view" else s
    )
    views = {v: (docs[v].description if v in docs else "") for v in columns["view"].unique()}
    return columns.reset_index(drop=True), views


def schema() -> tuple[pd.DataFrame, dict[str, str]]:
    """Every view's columns (``view``, ``column``, ``type``, ``unit``, ``description``)
    with DuckDB's types and docs/sql.md's units and descriptions, and each view's
    one-line description, in the order of ``sql/views.sql``."""
    path = store_path()
    return _schema(str(path.resolve()), Store(path).data_version())

"""The SQL page's door to the store: the sandbox, the schema browser's catalogue, examples.

Like :mod:`app.data` for the other pages, this is the only place the SQL page
reaches the store from.  Untrusted SQL runs only through
:class:`observatory.store.SafeSQL` (docs/sql.md, "Safety"): the sandbox of the
dashboard's shared Store (:func:`app.data.shared_store`, :meth:`Store.sandbox`),
built when the first query runs and kept while the shared Store is, that is while
its views' sources (:meth:`Store.view_key`) are unchanged: a view over a file pattern
lists the files again in every query, so writes are seen without rebuilding it.
Opening the page builds no sandbox: the schema browser lists the shared Store's
views, made from the same ``sql/views.sql`` over the same sources (the server's
warm-up builds them), and the limits it tells are the sandbox's defaults.  Building
a sandbox binds every view's file pattern (0.25 s at the 20-region fleet against
0.06 s at 2, docs/scaling.md "Pages' own parts"), which the page paid on every open
after a write when the sandbox was kept per data version.  Results are not cached: a
query runs when the user asks for it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data
from app.data import store_path
from observatory.sql_catalog import Example, examples, view_docs, view_names
from observatory.store import SafeSQL, SandboxLimits, SQLError, SQLResult, Store

__all__ = ["Example", "SQLError", "SQLResult", "examples", "limits", "run", "schema"]


def _shared() -> Store:
    return data.shared_store(str(store_path().resolve()))


def sandbox() -> SafeSQL:
    """The sandbox over the dashboard's store (the shared Store's, built on first use).

    Raises:
        SQLError: the sandbox cannot be opened.
    """
    return _shared().sandbox()


def limits() -> SandboxLimits:
    """The sandbox's limits (rows, time, memory) to tell the user: those of
    :meth:`Store.sandbox` without arguments, the defaults (no sandbox is built)."""
    return SandboxLimits()


def run(sql: str) -> SQLResult:
    """Run one untrusted query in the sandbox.

    Raises:
        SQLError: refused, stopped or failed; the message says why.
    """
    return sandbox().run(sql)


@st.cache_data(max_entries=4, show_spinner=False)
def _schema(
    path: str, views_key: tuple[tuple[str, str], ...]
) -> tuple[pd.DataFrame, dict[str, str]]:
    del views_key  # cache key only: the views' column types are fixed when they are made
    columns = data.shared_store(path).named("view_columns")
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
    one-line description, in the order of ``sql/views.sql``.

    The views are the shared Store's (the sandbox's are made from the same
    ``sql/views.sql`` over the same sources: the same columns and types,
    tests/test_sql_sandbox.py).

    Raises:
        SQLError: the store could not list them.
    """
    path = str(store_path().resolve())
    try:
        return _schema(path, Store(path).view_key())
    except SQLError:
        raise
    except data.StoreError as exc:
        raise SQLError("failed", str(exc)) from exc

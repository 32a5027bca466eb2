"""Small pieces every page shares: safe text, the store guard, queries with a clear error.

Label values (region names, display names, model names, error texts) come from
exporters and configuration files, so they are treated as untrusted text: never
passed to ``unsafe_allow_html``; escaped before Markdown (:func:`md`) and before
Plotly, whose labels understand a subset of HTML (:func:`plotly_text`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd
import streamlit as st

from app import data
from app.data import StoreInfo, store_info

HEALTH_COLORS: dict[str, str] = {
    "ok": "#2E9E5B",
    "warning": "#F0A202",
    "critical": "#D62728",
    "no data": "#9E9E9E",
}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object) -> str:
    """``text`` with every Markdown control character backslash-escaped (shown as typed)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def plotly_text(text: object) -> str:
    """``text`` escaped for Plotly labels, legends and hover text (no tags, no links)."""
    return html.escape(str(text), quote=True)


def region_colors(regions: Iterable[str]) -> dict[str, str]:
    """A fixed colour per region: :func:`app.charts.palette` (kept here for older pages)."""
    from app.charts import palette  # app.charts imports this module

    return palette(regions, "region")


def metric_tiles(figures: list[tuple[str, str, str]], per_row: int = 4) -> None:
    """Headline figures as bordered ``st.metric`` tiles, ``per_row`` to a row.

    Args:
        figures: ``(label, formatted value, help text)`` per tile, in reading order.
        per_row: tiles per row (the last row may be shorter).
    """
    for start in range(0, len(figures), per_row):
        row = figures[start : start + per_row]
        for col, (label, value, help_text) in zip(st.columns(per_row), row, strict=False):
            col.metric(label, value, border=True, help=help_text)


def run_query(name: str, spinner: str | None = None, **params: Any) -> pd.DataFrame:
    """The named query's rows, or an error naming the query and the end of this run.

    Args:
        name: ``sql/queries/<name>.sql``.
        spinner: a loading message shown while the query runs (for slow queries).
        params: the query's parameters.
    """
    try:
        if spinner:
            with st.spinner(spinner, show_time=True):
                return data.query(name, **params)
        return data.query(name, **params)
    except data.StoreError as exc:
        st.error(
            f"Could not read the store (query `{name}`): {md(exc)}. Check the store "
            "folder (`observatory sql` runs the same views from a shell), then reload."
        )
        st.stop()
        raise  # unreachable: st.stop() ends the run


def map_config() -> dict[str, object]:
    """Plotly config for a ``scatter_geo`` map: the world topojson from ``app/static/``.

    Plotly fetches the map's outlines from its CDN by default, which an offline
    dashboard cannot reach; with static serving on (``.streamlit/config.toml``) the
    copy in ``app/static/`` is used, else the CDN (the markers show either way).
    """
    config: dict[str, object] = {"displayModeBar": False}
    if st.get_option("server.enableStaticServing"):
        config["topojsonURL"] = "app/static/"
    return config


def require_store() -> StoreInfo:
    """The store, or a clear message and the end of this run when it cannot be shown."""
    info = store_info()
    if info.status == "missing":
        st.error(
            f"No store at {md(info.path)}. Run `observatory demo` or "
            "`observatory collect --config ...` to create one, or point "
            "`OBSERVATORY_STORE` (`observatory serve --store ...`) at an existing store."
        )
        st.stop()
    if info.status == "empty":
        st.info(
            f"The store at {md(info.path)} holds no data yet. Run "
            "`observatory collect --config ...` (or `observatory demo` for the demo fleet), "
            "then reload this page."
        )
        st.stop()
    return info


REPORT_MIME = {"html": "text/html", "md": "text/markdown", "json": "application/json"}


def show_report_file(path: Any, fmt: str, key: str) -> None:
    """A download button for a report file and a safe preview.

    HTML reports are shown only on request, in a sandboxed iframe
    (``components.html``: the report's own page, isolated from the dashboard);
    Markdown as code (not rendered), JSON as a JSON tree.
    """
    import streamlit.components.v1 as components

    raw = path.read_bytes()
    st.download_button(
        f"Download {path.name}",
        raw,
        file_name=path.name,
        mime=REPORT_MIME.get(fmt, "application/octet-stream"),
        key=f"{key}_download",
    )
    text = raw.decode("utf-8", errors="replace")
    if fmt == "html":
        if st.toggle("Show the HTML report here", value=False, key=f"{key}_show"):
            components.html(text, height=900, scrolling=True)
    elif fmt == "json":
        st.json(text, expanded=1)
    else:
        st.code(text, language="markdown")

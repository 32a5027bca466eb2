"""Small pieces every page shares: safe text, the store guard, colours.

Label values (region names, display names, model names, error texts) come from
exporters and configuration files, so they are treated as untrusted text: never
passed to ``unsafe_allow_html``; escaped before Markdown (:func:`md`) and before
Plotly, whose labels understand a subset of HTML (:func:`plotly_text`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import plotly.colors
import streamlit as st

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
    """A fixed colour per region (by sorted name), the same on every chart and page.

    Pass every region the store knows, not only the selected ones, so that a
    region keeps its colour when the filter changes.
    """
    palette = plotly.colors.qualitative.D3 + plotly.colors.qualitative.Dark2
    return {r: palette[i % len(palette)] for i, r in enumerate(sorted(set(regions)))}


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

"""The sidebar filters (time range, regions, models), shared by the analysis pages.

Widget values are bound to the URL's query parameters (``?range=...&regions=...``),
so a view can be shared, and kept for the session when switching pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from analytics.overview import TIME_RANGES, window

DEFAULT_RANGE = "Last 24 h"
NO_MODEL = ""  # rows without a model label


@dataclass(frozen=True)
class Filters:
    """What the sidebar selects.

    Attributes:
        range_label: the preset chosen (e.g. ``Last 24 h``).
        start, end: the window ``(start, end]``, UTC naive; ``end`` is the latest
            data time of the store.
        regions, models: the selected values (``""`` = no model label); empty when
            the user cleared the widget.
        all_regions: every region the store knows (for stable colours).
    """

    range_label: str
    start: datetime
    end: datetime
    regions: list[str]
    models: list[str]
    all_regions: list[str]

    @property
    def span(self) -> timedelta:
        """The window's length."""
        return self.end - self.start

    @property
    def selects_nothing(self) -> bool:
        """True when no region or no model is selected."""
        return not self.regions or not self.models


def model_label(model: str) -> str:
    """How a model value is shown (the empty label gets a name)."""
    return "(no model label)" if model == NO_MODEL else model


def sidebar_filters(
    catalogue: pd.DataFrame, models: list[str], latest: datetime, first: datetime | None
) -> Filters:
    """Draw the filters in the sidebar and return the selection.

    Args:
        catalogue: ``region`` and ``display_name`` of every region (catalogue and data).
        models: every model value in the store.
        latest: the latest step of data (UTC naive): presets end there.
        first: the first step of data, for the caption (None: unknown).
    """
    names = dict(zip(catalogue["region"], catalogue["display_name"], strict=True))
    regions = sorted(names)
    sb = st.sidebar
    sb.header("Filters")
    label = sb.selectbox(
        "Time range",
        list(TIME_RANGES),
        index=list(TIME_RANGES).index(DEFAULT_RANGE),
        key="range",
        bind="query-params",
        persist_state="session",
        help="Anchored at the latest data in the store (UTC).",
    )
    start, end = window(latest, TIME_RANGES[label])
    sb.caption(f"UTC {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}")
    if first is not None and start < first - timedelta(minutes=1):
        sb.caption(f"Data starts at {first:%Y-%m-%d %H:%M} UTC.")
    chosen_regions = sb.multiselect(
        "Regions",
        regions,
        default=regions,
        key="regions",
        bind="query-params",
        persist_state="session",
    )
    chosen_models = sb.multiselect(
        "Models",
        models,
        default=models,
        key="models",
        bind="query-params",
        persist_state="session",
        format_func=model_label,
    )
    return Filters(label, start, end, list(chosen_regions), list(chosen_models), regions)

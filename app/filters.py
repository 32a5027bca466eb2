"""The shared sidebar: time range, regions, models, arms, live refresh; all in the URL.

Every widget here is bound to the URL's query parameters (``?range=Last+7+d&
regions=eu-west-1&arms=v2&refresh=1+min``) and kept for the session when switching
pages, so a link reproduces the view.  Pages use a small API:

- :func:`shared_filters` draws the filters (reading the store's regions, models,
  arms and time bounds itself, from :func:`catalogue`: hourly roll-ups and partition
  edges, not a scan of the whole lake) and returns a :class:`Filters`; it stops the run with
  a message saying what to do when the store holds no request data.
- :meth:`Filters.params` / :meth:`Filters.window_params` are the named queries'
  ``$start, $end, $regions, $models[, $arms]`` parameters.
- :func:`url_choice` is a selectbox bound to the URL, for the selected SLO or
  experiment (``?slo=...``, ``?experiment=...``).
- :func:`live` runs a page's body as a fragment that reruns every N seconds when
  the sidebar's "Live refresh" control says so (off by default on heavy pages),
  re-anchoring a preset time range at the latest data on every refresh.

Times are UTC everywhere; the sidebar says so and shows the browser's time zone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from analytics.overview import TIME_RANGES, window
from app.filter_catalogue import FilterCatalogue, read_catalogue

DEFAULT_RANGE = "Last 24 h"
CUSTOM_RANGE = "Custom dates"
NO_MODEL = ""  # rows without a model label
NO_ARM = ""  # rows without an arm label
#: Live-refresh choices: label -> seconds (None: off).
REFRESH_CHOICES: dict[str, int | None] = {
    "Off": None,
    "30 s": 30,
    "1 min": 60,
    "5 min": 300,
}
#: The refresh a light page starts with; heavy pages start with "Off".
DEFAULT_REFRESH = "1 min"
#: Keyword arguments that bind a widget to the URL and keep it across pages.
URL_STATE: dict[str, Any] = {"bind": "query-params", "persist_state": "session"}


def _or_every(chosen: list[str], known: list[str]) -> list[str] | None:
    """``chosen``, or None when it holds every value of ``known`` (a non-empty list):
    the query then keeps every row, as :meth:`Filters.keeps` keeps values the filter
    does not know."""
    return None if known and set(known) <= set(chosen) else chosen


@dataclass(frozen=True)
class Filters:
    """What the sidebar selects.

    Attributes:
        range_label: the preset chosen (e.g. ``Last 24 h``) or ``Custom dates``.
        start, end: the window ``(start, end]``, UTC naive; a preset's ``end`` is
            the latest data time of the store.
        regions, models, arms: the selected values (``""`` = no such label); empty
            when the user cleared the widget.
        all_regions, all_models, all_arms: every value the store knows (for stable
            colours and "n of m" captions).
    """

    range_label: str
    start: datetime
    end: datetime
    regions: list[str]
    models: list[str]
    all_regions: list[str]
    arms: list[str] = field(default_factory=list)
    all_arms: list[str] = field(default_factory=list)
    all_models: list[str] = field(default_factory=list)

    @property
    def span(self) -> timedelta:
        """The window's length."""
        return self.end - self.start

    @property
    def selects_nothing(self) -> bool:
        """True when no region, model or arm (when the store has arms) is selected."""
        return not self.regions or not self.models or (bool(self.all_arms) and not self.arms)

    def window_params(self) -> dict[str, Any]:
        """``start``, ``end``, ``regions``, ``models`` for a named query; a filter that
        selects every value the store knows is None (no filter: the store drops its
        predicates, :meth:`observatory.store.Store.named`)."""
        return {
            "start": self.start,
            "end": self.end,
            "regions": _or_every(self.regions, self.all_regions),
            "models": _or_every(self.models, self.all_models),
        }

    def params(self) -> dict[str, Any]:
        """:meth:`window_params` plus ``arms`` (queries with ``$arms``; None when every
        arm is selected)."""
        arms = _or_every(self.arms, self.all_arms) if self.arms else [NO_ARM]
        return {**self.window_params(), "arms": arms}

    def arm_params(self) -> dict[str, Any]:
        """:meth:`params` plus ``all_arms``, every arm the filter knows (queries that
        keep rows whose arm the filter cannot deselect, e.g. GPU gauges without one)."""
        return {**self.params(), "all_arms": self.all_arms or [NO_ARM]}

    def _axes(self) -> tuple[tuple[str, list[str], list[str]], ...]:
        """``(column, selected, known)`` for region, model and arm."""
        return (
            ("region", self.regions, self.all_regions),
            ("model", self.models, self.all_models),
            ("arm", self.arms, self.all_arms),
        )

    def keeps(self, region: str, model: str = NO_MODEL, arm: str = NO_ARM) -> bool:
        """True when a ``region/model/arm`` slice is in the selection.

        A value the filter does not know (e.g. the ``""`` arm of GPU gauges when every
        request carries an arm) is kept: the filter cannot deselect it.
        """
        values = {"region": region, "model": model, "arm": arm}
        return all(
            values[col] not in known or values[col] in chosen for col, chosen, known in self._axes()
        )

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """:meth:`keeps` for every row of ``frame`` (its ``region``, ``model``, ``arm``
        columns, those present; missing labels as ``""``): a boolean Series."""
        keep = pd.Series(True, index=frame.index)
        for col, chosen, known in self._axes():
            if col in frame.columns:
                values = frame[col].astype(object).fillna("").astype(str)
                keep &= ~values.isin(known) | values.isin(chosen)
        return keep

    def caption(self) -> str:
        """One line: the window (UTC) and how much of the fleet is selected."""
        text = (
            f"{self.range_label}: {self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M} UTC · "
            f"{len(self.regions)} of {len(self.all_regions)} regions · "
            f"{len(self.models)} of {len(self.all_models) or len(self.models)} models"
        )
        if self.all_arms:
            text += f" · {len(self.arms)} of {len(self.all_arms)} arms"
        return text


def model_label(model: str) -> str:
    """How a model value is shown (the empty label gets a name)."""
    return "(no model label)" if model == NO_MODEL else model


def arm_label(arm: str) -> str:
    """How an arm value is shown (the empty label gets a name)."""
    return "(no arm label)" if arm == NO_ARM else arm


def _custom_window(sb: Any, latest: datetime, first: datetime | None) -> tuple[datetime, datetime]:
    """The custom range's date picker: whole UTC days ``(from 00:00, to + 1 day 00:00]``."""
    lo = (first or latest - timedelta(days=14)).date()
    hi = latest.date()
    picked = sb.date_input(
        "From / to (UTC days)",
        value=(max(lo, hi - timedelta(days=1)), hi),
        min_value=lo,
        max_value=hi,
        key="dates",
        **URL_STATE,
        help="Whole days in UTC; the last day ends at the latest data.",
    )
    days: Sequence[date] = picked if isinstance(picked, tuple | list) else (picked,)
    begin = days[0] if days else hi
    finish = days[-1] if days else hi
    start = datetime.combine(begin, time())
    end = min(datetime.combine(finish, time()) + timedelta(days=1), latest)
    if end <= start:
        start = end - timedelta(days=1)
    return start, end


def unknown_in_link(key: str, options: Sequence[str]) -> list[str]:
    """The values of URL parameter ``key`` that are not among ``options``.

    A link may name a region, model, arm or time range the store no longer has (or
    never had: a typo).  The widgets bound to the URL drop such values silently;
    :func:`sidebar_filters` calls this first and says what it dropped.
    """
    known = set(options)
    return [v for v in st.query_params.get_all(key) if v not in known]


def _say_dropped(sb: Any, dropped: dict[str, list[str]]) -> None:
    """One sidebar notice naming the link's values the store does not hold."""
    from app.ui import md

    parts = [
        f"{what} {', '.join(f'“{md(v)}”' for v in values)}"
        for what, values in dropped.items()
        if values
    ]
    if parts:
        sb.warning(
            "This link asks for "
            + "; ".join(parts)
            + ", which this dashboard does not offer (not in the store, or not a preset): "
            "left out. The filters show what the store has; choose again or check the link."
        )


def sidebar_filters(
    catalogue: pd.DataFrame,
    models: list[str],
    latest: datetime,
    first: datetime | None,
    arms: list[str] | None = None,
) -> Filters:
    """Draw the filters in the sidebar and return the selection.

    Args:
        catalogue: ``region`` and ``display_name`` of every region (catalogue and data).
        models: every model value in the store.
        latest: the latest step of data (UTC naive): presets end there.
        first: the first step of data, for the caption (None: unknown).
        arms: every arm value in the store (None or empty: no arm filter).
    """
    names = dict(zip(catalogue["region"], catalogue["display_name"], strict=True))
    regions = sorted(names)
    dropped = {
        "time range": unknown_in_link("range", [*TIME_RANGES, CUSTOM_RANGE]),
        "region": unknown_in_link("regions", regions),
        "model": unknown_in_link("models", models),
        "arm": unknown_in_link("arms", list(arms or [])),
    }
    sb = st.sidebar
    sb.header("Filters")
    _say_dropped(sb, dropped)
    label = sb.selectbox(
        "Time range",
        [*TIME_RANGES, CUSTOM_RANGE],
        index=list(TIME_RANGES).index(DEFAULT_RANGE),
        key="range",
        **URL_STATE,
        help="Presets end at the latest data in the store; custom dates are whole UTC days.",
    )
    if label == CUSTOM_RANGE:
        start, end = _custom_window(sb, latest, first)
    else:
        start, end = window(latest, TIME_RANGES[label])
    sb.caption(f"UTC {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}")
    browser_tz = st.context.timezone
    sb.caption(
        "All times are UTC"
        + (f" (your browser: {browser_tz})." if browser_tz and browser_tz != "UTC" else ".")
    )
    if first is not None and start < first - timedelta(minutes=1):
        sb.caption(f"Data starts at {first:%Y-%m-%d %H:%M} UTC.")
    chosen_regions = sb.multiselect(
        "Regions",
        regions,
        default=regions,
        key="regions",
        **URL_STATE,
    )
    chosen_models = sb.multiselect(
        "Models",
        models,
        default=models,
        key="models",
        **URL_STATE,
        format_func=model_label,
    )
    all_arms = list(arms or [])
    chosen_arms = (
        sb.multiselect(
            "Arms",
            all_arms,
            default=all_arms,
            key="arms",
            **URL_STATE,
            format_func=arm_label,
            help="The arm label (e.g. a model version under test).",
        )
        if all_arms
        else []
    )
    return Filters(
        label,
        start,
        end,
        list(chosen_regions),
        list(chosen_models),
        regions,
        arms=list(chosen_arms),
        all_arms=all_arms,
        all_models=list(models),
    )


@st.cache_data(ttl=60, max_entries=8, show_spinner=False)
def _catalogue(path: str, version: float) -> FilterCatalogue:
    """The catalogue of the store at ``path`` as of data ``version`` (cached)."""
    from app import data

    return read_catalogue(data.shared_store(path))  # the dashboard's shared Store


def catalogue() -> FilterCatalogue:
    """The store's time bounds, regions, models and arms (:mod:`app.filter_catalogue`).

    Cached per data version for 60 s; a store that cannot be read stops the run with
    an error saying so.
    """
    from app import data
    from app.ui import md
    from observatory.store import Store

    path = data.store_path()
    try:
        return _catalogue(str(path.resolve()), Store(path).data_version())
    except data.StoreError as exc:
        st.error(
            f"Could not read the store's filter catalogue (regions, models, arms): {md(exc)}. "
            "Check the store folder (`observatory sql` runs the same views from a shell), "
            "then reload."
        )
        st.stop()
        raise  # unreachable: st.stop() ends the run


def shared_filters() -> Filters:
    """Draw the shared sidebar filters from the store and return the selection.

    Stops the run with a message saying what to do when the store is missing, empty
    or holds no request data, and with a warning when the filters select nothing.
    Call it once at the top of a page (after ``st.title``).
    """
    from app.ui import md, require_store

    info = require_store()
    known = catalogue()
    if known.last is None:
        st.info(
            f"The store at {md(info.path)} holds no request data yet (no `requests` signal). "
            "Check the region presets, run `observatory collect --config ...`, then reload."
        )
        st.stop()
        raise AssertionError  # unreachable: st.stop() ends the run
    filters = sidebar_filters(known.regions, known.models, known.last, known.first, arms=known.arms)
    return filters


def require_selection(filters: Filters) -> None:
    """Stop the run with a warning when the filters select nothing."""
    if filters.selects_nothing:
        st.warning(
            "The filters select nothing: choose at least one region, one model"
            + (" and one arm" if filters.all_arms else "")
            + " in the sidebar."
        )
        st.stop()


def url_choice(
    label: str,
    options: Sequence[str],
    key: str,
    *,
    sidebar: bool = True,
    help: str | None = None,
    format_func: Callable[[str], str] = str,
) -> str:
    """A selectbox whose choice lives in the URL (``?<key>=<value>``).

    For the selected SLO (``key="slo"``) or experiment (``key="experiment"``): a
    link with the parameter opens that item; an unknown value falls back to the
    first option.

    Raises:
        ValueError: ``options`` is empty.
    """
    if not options:
        raise ValueError(f"{label}: no options to choose from")
    where = st.sidebar if sidebar else st
    choice = where.selectbox(
        label,
        list(options),
        key=key,
        **URL_STATE,
        help=help,
        format_func=format_func,
    )
    return str(choice if choice is not None else options[0])


def refresh_seconds(heavy: bool = False) -> int | None:
    """The sidebar's "Live refresh" control; seconds between refreshes, None when off.

    The choice is kept in the URL (``?refresh=1+min``).  Heavy pages (many queries
    or statistics) start with "Off"; light ones with :data:`DEFAULT_REFRESH`.  The
    environment variable ``OBSERVATORY_REFRESH`` (a label such as ``5 min`` or
    ``Off``) overrides the light pages' default.
    """
    import os

    default = os.environ.get("OBSERVATORY_REFRESH", DEFAULT_REFRESH).strip()
    if default not in REFRESH_CHOICES:
        st.sidebar.warning(
            f"OBSERVATORY_REFRESH={default!r} is not one of {', '.join(REFRESH_CHOICES)}; "
            f"using {DEFAULT_REFRESH}."
        )
        default = DEFAULT_REFRESH
    labels = list(REFRESH_CHOICES)
    key = "refresh_heavy" if heavy else "refresh"
    label = st.sidebar.selectbox(
        "Live refresh",
        labels,
        index=labels.index("Off" if heavy else default),
        key=key,
        **URL_STATE,
        help="Rerun this page's figures at this interval (the sidebar stays as it is). "
        + ("Off by default here: this page runs heavy queries." if heavy else ""),
    )
    return REFRESH_CHOICES[str(label)]


def reanchored(filters: Filters) -> Filters:
    """``filters`` with a preset window moved to end at the store's latest data now.

    A custom window is returned unchanged.
    """
    if filters.range_label not in TIME_RANGES:
        return filters
    latest = catalogue().last
    if latest is None or latest == filters.end:
        return filters
    start, end = window(latest, TIME_RANGES[filters.range_label])
    return dataclasses.replace(filters, start=start, end=end)


def live(render: Callable[[Filters], None], filters: Filters, *, heavy: bool = False) -> None:
    """Run ``render(filters)`` as a fragment, refreshed at the sidebar's interval.

    On each automatic refresh the preset window is re-anchored at the latest data
    (:func:`reanchored`), so new collector runs show without a page reload.  Widgets
    inside ``render`` rerun only the fragment; ``render`` must not write to the
    sidebar (Streamlit refuses that inside a fragment).
    """
    seconds = refresh_seconds(heavy)

    def body() -> None:
        render(reanchored(filters))

    st.fragment(body, run_every=seconds)()

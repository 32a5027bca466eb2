"""The Overview's sidebar filters in a real Chromium: choosing regions changes the
figures, table and charts to the store's values for those regions, and the URL the
filters leave behind reproduces the same view in a new browser session."""

from __future__ import annotations

import pytest
from browser_store import REGIONS, requests_total
from playwright.sync_api import Browser, Locator, Page, expect
from streamlit_page import (
    RUN_TIMEOUT_MS,
    WIDE,
    Dashboard,
    Tab,
    charts,
    metric,
    open_page,
    problems,
    table_rows,
    wait_for_run,
)

pytestmark = pytest.mark.browser

KEEP = "eu-west-1"
DEFAULT_HOURS = 24  # the Overview's default time range: the last 24 h of data

View = tuple[int, list[tuple[str, str]], list[list[str]], list[str]]


def _requests(page: Page) -> int:
    return int(metric(page, "Requests").replace(",", ""))


def _region_traces(page: Page) -> list[list[str]]:
    """The trace names of every chart whose traces are regions (the trends per region)."""
    found = [[str(t["name"]) for t in traces] for traces in charts(page)]
    return [names for names in found if names and set(names) <= set(REGIONS)]


def _regions_widget(page: Page) -> Locator:
    label = page.get_by_test_id("stWidgetLabel").get_by_text("Regions", exact=True)
    return page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").filter(has=label)


def _view(page: Page) -> View:
    """What the Overview shows: requests, table rows, region traces, selected regions."""
    tags = _regions_widget(page).locator("[data-tag] span[title]")
    tags.first.wait_for()  # the tags are drawn a moment after the widget
    chosen = tags.all_inner_texts()
    rows = table_rows(page, need=("Region", "Requests"))
    table = [(r["Region"], r["Requests"]) for r in rows]
    return _requests(page), table, _region_traces(page), sorted(chosen)


def test_region_filter_changes_what_is_shown_and_the_url_restores_it(
    dashboard: Dashboard, tab: Tab, browser: Browser
) -> None:
    page = tab.page
    page.set_viewport_size(WIDE)  # every column of the region table in view
    open_page(page, dashboard.url)
    everything = requests_total(dashboard.store, DEFAULT_HOURS, REGIONS)
    before = _view(page)
    assert before[0] == everything
    assert sorted(r[0] for r in before[1]) == sorted(REGIONS)
    assert sum(int(r[1]) for r in before[1]) == everything
    assert before[2] and all(sorted(names) == sorted(REGIONS) for names in before[2])
    assert before[3] == sorted(REGIONS)

    widget = _regions_widget(page)
    for region in REGIONS:
        if region != KEEP:
            widget.get_by_role("button", name=f"Remove {region}").click()
    rows = page.get_by_test_id("stDataFrame").first.locator("table tbody tr")
    expect(rows).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    after = _view(page)
    assert after[0] == requests_total(dashboard.store, DEFAULT_HOURS, [KEEP])
    assert 0 < after[0] < everything
    assert after[1] == [(KEEP, str(after[0]))]
    assert after[2] and all(names == [KEEP] for names in after[2])
    assert after[3] == [KEEP]
    assert problems(page, tab.errors) == []

    # The filters live in the URL's query parameters: a new session (no cookies, no
    # session state) that opens the URL sees the same view.
    link = page.url
    assert "?" in link and KEEP in link
    assert not any(r in link for r in REGIONS if r != KEEP)
    context = browser.new_context(viewport=page.viewport_size)
    try:
        fresh = context.new_page()
        fresh.goto(link)
        wait_for_run(fresh)
        assert _view(fresh) == after
    finally:
        context.close()

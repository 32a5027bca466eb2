"""Every dashboard page in a real Chromium: it loads on the demo store without an
exception box or error alert, its Plotly charts are drawn with data, and a
screenshot of it is saved.  The pages come from ``PAGES`` in ``app/main.py``, so a
page added there is tested here without a change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_store import FAILED_REGION, HOSTILE_ERROR, HOSTILE_NAME, HOSTILE_REGION
from playwright.sync_api import expect
from streamlit_page import (
    WIDE,
    Dashboard,
    PageEntry,
    Tab,
    charts,
    dashboard_pages,
    open_page,
    problems,
    screenshot,
    table_rows,
)

pytestmark = pytest.mark.browser

PAGES = dashboard_pages()
#: Pages that draw no chart on the demo store, and why (every other page must draw one).
WITHOUT_CHARTS = {
    "sql.py": "a chart appears after a query (test_browser_sql.py)",
    "reports.py": "lists the archived reports",
}
#: Error alerts that are a page's verdict on the demo data, not a failure: the demo
#: fleet carries injected drift, so the Drift page rightly says it is critical.
VERDICTS = {"drift.py": re.compile(r"CRITICAL: drift detected in \d+ of \d+ signals")}


def test_the_pages_are_read_from_main() -> None:
    files = [p.file for p in PAGES]
    assert files[0] == "overview.py" and PAGES[0].url_path == ""
    assert {"overview.py", "sql.py", "collection_health.py"} <= set(files)
    assert len(set(files)) == len(files)
    folder = Path(__file__).resolve().parents[2] / "app" / "views"
    assert all((folder / f).is_file() for f in files)
    assert set(WITHOUT_CHARTS) <= set(files)


@pytest.mark.parametrize("entry", PAGES, ids=[p.slug for p in PAGES])
def test_page_loads_and_draws_its_charts(
    dashboard: Dashboard, tab: Tab, screenshots: Path, entry: PageEntry
) -> None:
    page = tab.page
    open_page(page, dashboard.url, entry.url_path)
    shot = screenshot(page, screenshots, f"{PAGES.index(entry) + 1:02d}-{entry.slug}")
    found = problems(page, tab.errors, VERDICTS.get(entry.file))
    assert not found, f"{entry.title} ({shot}):\n" + "\n".join(found)
    current = page.locator('[data-testid="stSidebarNavLink"][aria-current="page"]')
    expect(current).to_have_count(1)
    expect(current).to_contain_text(entry.title)
    drawn = charts(page)
    if entry.file not in WITHOUT_CHARTS:
        assert drawn, f"{entry.title}: no Plotly chart on the demo store ({shot})"
    for i, traces in enumerate(drawn):
        assert traces, f"{entry.title}: chart {i + 1} has no traces"
        points = sum(t["points"] for t in traces)
        assert points > 0, f"{entry.title}: chart {i + 1} has no data points: {traces}"


def test_markup_in_labels_is_shown_as_text(dashboard: Dashboard, tab: Tab) -> None:
    page = tab.page
    page.set_viewport_size(WIDE)  # every table column in view
    open_page(page, dashboard.url)
    rows = {r["Region"]: r for r in table_rows(page, need=("Region", "Name"))}
    assert rows[HOSTILE_REGION]["Name"] == HOSTILE_NAME  # the markup, character for character
    collection = next(p for p in PAGES if p.file == "collection_health.py")
    open_page(page, dashboard.url, collection.url_path)
    runs = {r["Region"]: r for r in table_rows(page, need=("Region", "Error"))}
    assert runs[FAILED_REGION]["Error"] == HOSTILE_ERROR
    assert page.locator('img[src="x"]').count() == 0
    assert problems(page, tab.errors) == []  # the flag the markup would set is unset

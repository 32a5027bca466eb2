"""The SQL page in a real Chromium: a query runs, its chart is drawn, the CSV download
holds the store's values, and markup in a query's error message is shown as text."""

from __future__ import annotations

import csv
import io

import pytest
from browser_store import REGIONS
from playwright.sync_api import Page, expect
from streamlit_page import (
    RUN_TIMEOUT_MS,
    Dashboard,
    Tab,
    charts,
    dashboard_pages,
    open_page,
    problems,
    wait_for_run,
)

from observatory.store import Store

pytestmark = pytest.mark.browser

SQL_PAGE = next(p for p in dashboard_pages() if p.file == "sql.py")
QUERY = (
    "SELECT region, sum(requests) AS requests\n"
    "FROM requests_by_region_minute GROUP BY region ORDER BY region"
)


def _submit(page: Page, query: str) -> None:
    page.get_by_test_id("stTextArea").locator("textarea").fill(query)
    page.get_by_test_id("stFormSubmitButton").get_by_role("button", name="Run").click()


def test_query_runs_and_downloads_csv(dashboard: Dashboard, tab: Tab) -> None:
    page = tab.page
    open_page(page, dashboard.url, SQL_PAGE.url_path)
    _submit(page, QUERY)
    download_button = page.get_by_test_id("stDownloadButton").filter(has_text="Download CSV")
    expect(download_button).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    expect(page.get_by_text("3 rows in", exact=False)).to_be_visible()
    assert problems(page, tab.errors) == []

    with page.expect_download() as info:
        download_button.get_by_role("button").click()
    download = info.value
    assert download.suggested_filename == "observatory-query.csv"
    text = download.path().read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = Store(dashboard.store).query(
        "SELECT region, sum(value) AS n FROM counters WHERE signal = 'requests' "
        "GROUP BY region ORDER BY region"
    )
    assert [r["region"] for r in rows] == sorted(REGIONS) == expected["region"].tolist()
    got = [float(r["requests"]) for r in rows]
    assert got == pytest.approx(expected["n"].tolist(), rel=1e-12)
    assert all(v > 0 for v in got)

    (chart,) = charts(page)  # the result's default chart: requests per region
    assert sum(t["points"] for t in chart) == len(REGIONS)


def test_markup_in_an_error_message_is_text(dashboard: Dashboard, tab: Tab) -> None:
    page = tab.page
    open_page(page, dashboard.url, SQL_PAGE.url_path)
    _submit(page, 'SELECT * FROM "<b>nowhere</b><img src=x onerror=alert(1)>"')
    code = page.get_by_test_id("stCode").filter(has_text="<b>nowhere</b>")
    expect(code).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    assert code.locator("b, img").count() == 0  # shown, not rendered
    assert page.locator('img[src="x"]').count() == 0

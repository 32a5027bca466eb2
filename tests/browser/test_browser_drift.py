"""The Drift page's on-demand path in a real Chromium against the real server: a window
no saved report answers is computed in the server's background worker, the page says
so at once, checks every few seconds by itself (a fragment with ``run_every``, which
AppTest does not run) and shows the result without a reload, in two tabs asking the
same question (docs/drift.md, "On demand")."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect
from streamlit_page import Dashboard, dashboard_pages, open_page, problems, wait_for_run

pytestmark = pytest.mark.browser

#: The demo fleet carries injected drift: the page's verdict, not a failure.
VERDICT = re.compile(r"(CRITICAL|WARNING): drift detected in \d+ of \d+ signals")


def test_on_demand_drift_runs_in_the_background_and_both_tabs_pick_it_up(
    dashboard: Dashboard, browser: Browser
) -> None:
    drift = next(p for p in dashboard_pages() if p.file == "drift.py")
    tabs = []
    for _ in range(2):  # two sessions of one server, asking the same question
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        open_page(page, dashboard.url, drift.url_path, "drift_window=6+hours")
        tabs.append((context, page, errors))
    try:
        for _, page, _ in tabs:
            shown = page.get_by_text(
                re.compile(r"(Computing drift for the 6 h window ending|Computed now \(on demand)")
            )
            expect(shown.first).to_be_visible()
        for _, page, errors in tabs:  # no reload: the page's own check picks it up
            done = page.get_by_text(re.compile(r"Computed now \(on demand in \d+ s"))
            expect(done.first).to_be_visible(timeout=180_000)
            wait_for_run(page)
            assert page.get_by_test_id("stPlotlyChart").count() >= 1
            found = problems(page, errors, VERDICT)
            assert not found, "\n".join(found)
    finally:
        for context, _, _ in tabs:
            context.close()

"""Reading a running Streamlit dashboard through Playwright: the pages, waits, charts, tables.

Helpers for the browser tests in this folder (not a test module).  Everything here
reads what the browser shows: Streamlit's own ``data-testid`` attributes, the
accessibility table that its data grid keeps beside the canvas, and the figures that
Plotly attached to each chart element (``el._fullData``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "app" / "main.py"
#: Long enough for a cold first run of a page on a busy 2-core machine.
RUN_TIMEOUT_MS = 90_000
#: Set by the hostile labels of the test store if any of their markup ever runs.
INJECTED_FLAG = "__observatoryInjected"
#: Browser notices that arrive as page errors but are no failure: Chromium reports a
#: resize that took more than one frame to settle as "ResizeObserver loop ...".
BENIGN_JS = re.compile(r"ResizeObserver loop")
#: A window wide enough for every column of the dashboard's tables to be in view.
WIDE = {"width": 3000, "height": 1000}
#: Every screenshot saved in this run (the summary prints their folder).
SAVED: list[Path] = []


@dataclass(frozen=True)
class PageEntry:
    """One page of the dashboard as ``app/main.py`` lists it.

    Attributes:
        file: the file in ``app/views/`` (e.g. ``sql.py``).
        title: the navigation title (e.g. ``SQL``).
        url_path: the path after the server root (``""`` for the default page).
    """

    file: str
    title: str
    url_path: str

    @property
    def slug(self) -> str:
        """A file-name-safe name of the page (its file's stem)."""
        return Path(self.file).stem


@dataclass(frozen=True)
class Dashboard:
    """A running dashboard.

    Attributes:
        url: its address, ``http://127.0.0.1:<port>`` (no trailing slash).
        store: the store folder it serves.
        log: the file that holds the server's output.
    """

    url: str
    store: Path
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's output (for failure messages)."""
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


@dataclass
class Tab:
    """A fresh browser page and the JavaScript errors it raised."""

    page: Page
    errors: list[str]


def dashboard_pages(main: Path = MAIN) -> list[PageEntry]:
    """The pages of the dashboard, read from the ``PAGES`` list of ``app/main.py``.

    The file is parsed, not imported (importing it would start the navigation).
    The first page is the default one, served at ``/``; the others at ``/<file stem>``
    (Streamlit's default URL path of a page file).

    Raises:
        AssertionError: ``app/main.py`` has no literal ``PAGES`` list.
    """
    tree = ast.parse(main.read_text(encoding="utf-8"), filename=str(main))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "PAGES" and node.value is not None:
            rows = ast.literal_eval(node.value)
            return [
                PageEntry(file, title, "" if i == 0 else Path(file).stem)
                for i, (file, title, _icon) in enumerate(rows)
            ]
    raise AssertionError(f"{main}: no literal PAGES list found")


def wait_for_run(page: Page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the app is connected, its script run finished and its charts are drawn.

    Streamlit marks the app root with ``data-test-script-state`` (``initial`` until
    the first run, then ``running``/``notRunning``); Plotly charts are loaded lazily
    after the run (a skeleton stands in meanwhile), so the skeletons are awaited gone
    and each chart element until Plotly drew it.

    Raises:
        AssertionError: not done within ``timeout_ms``; says which step and where.
    """
    try:
        page.wait_for_selector(
            '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
            '[data-test-script-state="notRunning"]',
            timeout=timeout_ms,
        )
        # Lazily loaded elements (charts, some widgets) show a skeleton until their code
        # arrived: a fast run can finish before they exist, so wait for none left too.
        page.wait_for_function(
            """() => document.querySelectorAll('[data-testid="stSkeleton"]').length === 0
                  && Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'))
                    .every(c => { const p = c.querySelector('.js-plotly-plot');
                                  return p && Array.isArray(p._fullData); })""",
            timeout=timeout_ms,
        )
    except PlaywrightTimeoutError as exc:
        state = page.evaluate(
            """() => { const app = document.querySelector('[data-testid="stApp"]');
                       const all = document.querySelectorAll('[data-testid="stPlotlyChart"]');
                       const drawn = Array.from(all).filter(c => {
                           const p = c.querySelector('.js-plotly-plot');
                           return p && Array.isArray(p._fullData); }).length;
                       return {connection: app && app.dataset.testConnectionState,
                               script: app && app.dataset.testScriptState,
                               charts: all.length, drawn: drawn}; }"""
        )
        raise AssertionError(
            f"{page.url}: the page did not finish within {timeout_ms / 1000:g} s: {state}"
        ) from exc


def open_page(page: Page, base_url: str, url_path: str = "", query: str = "") -> None:
    """Load ``base_url/url_path?query`` and wait until the page has run."""
    page.goto(f"{base_url}/{url_path}" + (f"?{query}" if query else ""))
    wait_for_run(page)


def charts(page: Page) -> list[list[dict[str, Any]]]:
    """The traces of every Plotly chart on the page, in page order.

    Each trace is ``{"name", "type", "points"}``: ``points`` is Plotly's own count of
    the trace's data points (``_length``; the length of its calculated data where a
    trace type has none).
    """
    result: list[list[dict[str, Any]]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el =>
               (el._fullData || []).map((t, i) => ({
                   name: t.name === undefined ? null : String(t.name),
                   type: t.type,
                   points: typeof t._length === 'number' ? t._length
                         : ((el.calcdata || [])[i] || []).length,
               })))"""
    )
    return result


def table_rows(
    page: Page, index: int = 0, need: tuple[str, ...] = (), timeout_ms: int = 30_000
) -> list[dict[str, str]]:
    """The rows of the ``index``-th data table (``st.dataframe``): column title -> cell text.

    Streamlit draws tables on a canvas; the texts come from the accessibility table
    the grid keeps in the DOM, which lists only the rows and columns in view (a
    narrow window leaves right-hand columns out) and fills in a moment after the
    grid appears: the columns titled in ``need`` are awaited.

    Raises:
        AssertionError: a column of ``need`` is not in view within ``timeout_ms``.
    """
    table = page.get_by_test_id("stDataFrame").nth(index).locator("table")
    table.locator("tbody tr").first.wait_for(state="attached")
    if need:
        try:
            page.wait_for_function(
                """([t, need]) => need.every(n => Array.from(t.querySelectorAll('thead th'))
                    .some(th => th.textContent === n)) && t.querySelector('tbody td') !== null""",
                arg=[table.element_handle(), list(need)],
                timeout=timeout_ms,
            )
        except PlaywrightTimeoutError as exc:
            shown = table.locator("thead th").all_inner_texts()
            raise AssertionError(
                f"table {index} of {page.url}: columns {list(need)} not in view after "
                f"{timeout_ms / 1000:g} s (in view: {shown}; a wider window shows more)"
            ) from exc
    rows: list[dict[str, str]] = table.evaluate(
        """t => {
            const titles = {};
            t.querySelectorAll('thead th').forEach(th =>
                titles[th.getAttribute('aria-colindex')] = th.textContent);
            return Array.from(t.querySelectorAll('tbody tr')).map(r => Object.fromEntries(
                Array.from(r.querySelectorAll('td')).map(td =>
                    [titles[td.getAttribute('aria-colindex')], td.textContent])));
        }"""
    )
    return rows


def metric(page: Page, label: str) -> str:
    """The value shown by the ``st.metric`` labelled ``label``."""
    box = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    )
    expect(box).to_have_count(1)
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def problems(
    page: Page, page_errors: list[str], allowed_errors: re.Pattern[str] | None = None
) -> list[str]:
    """What is wrong with the page as shown: exception boxes, error alerts, script errors.

    ``page_errors`` holds the uncaught JavaScript errors the page raised so far;
    ``allowed_errors`` matches the error alerts that are the page's verdict on the
    data (e.g. critical drift), not a failure.
    """
    found = [
        f"exception box: {t[:2000]}" for t in page.get_by_test_id("stException").all_inner_texts()
    ]
    found += [
        f"error alert: {t[:500]}"
        for t in page.get_by_test_id("stAlertContentError").all_inner_texts()
        if allowed_errors is None or not allowed_errors.match(t.strip())
    ]
    found += [f"JavaScript error: {e}" for e in page_errors if not BENIGN_JS.match(e)]
    injected = page.evaluate(f"() => window.{INJECTED_FLAG}")
    if injected is not None:
        found.append(f"markup from a label ran in the page (flag = {injected!r})")
    return found


def screenshot(page: Page, folder: Path, name: str) -> Path:
    """Save a picture of the whole page (not only the window) as ``folder/name.png``.

    Streamlit scrolls inside its main section, so the window is made as tall as the
    content first (capped at 12,000 px) and the run awaited again after the resize.
    """
    height = page.evaluate(
        """() => Math.max(...Array.from(document.querySelectorAll(
               '[data-testid="stMain"], [data-testid="stAppViewContainer"], section'))
               .map(e => e.scrollHeight), document.body.scrollHeight)"""
    )
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": size["width"], "height": min(max(height, 800), 12_000)})
    wait_for_run(page)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    SAVED.append(path)
    return path

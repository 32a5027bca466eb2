"""Fixtures of the real-browser tests: a small demo store, the dashboard served from it by
``observatory serve`` on a free local port, and Debian's Chromium driven by Playwright.

Nothing is faked: the store is built by the demo builder, the server is the real
Streamlit process, the browser is ``/usr/bin/chromium`` (never a Playwright download).
Screenshots of every page go to ``test-artifacts/screenshots/`` (or the folder named
by ``OBSERVATORY_SCREENSHOTS``); the folder is printed at the end of the run.

Without Chromium the tests fail when ``CI`` is set (``scripts/setup.sh --test``
installs it) and are skipped otherwise, with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_store import build, reports_of
from playwright.sync_api import Browser, Playwright, sync_playwright
from streamlit_page import ROOT, SAVED, Dashboard, Tab

CHROMIUM = os.environ.get("OBSERVATORY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(
    os.environ.get("OBSERVATORY_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots"
)
HEALTH_TIMEOUT_S = 90.0
VIEWPORT = {"width": 1400, "height": 1000}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's Chromium; fails in CI and skips elsewhere when it is missing."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    message = (
        f"Debian's chromium is not installed (looked for {CHROMIUM}): run "
        "`scripts/setup.sh --test` or `sudo apt-get install chromium`, "
        "or set OBSERVATORY_CHROMIUM to a Chromium binary"
    )
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test store (:func:`browser_store.build`), built once."""
    return build(tmp_path_factory.mktemp("browser") / "demo")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def dashboard(
    chromium: str, demo_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """``observatory serve --store <demo store>`` on a free port of 127.0.0.1, until the end."""
    del chromium  # no server without a browser to look at it
    work = tmp_path_factory.mktemp("dashboard")
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OBSERVATORY_CONFIG", "OBSERVATORY_EXPERIMENTS", "OBSERVATORY_SLO_SPECS")
    }
    env["OBSERVATORY_DRIFT_REPORTS"] = str(reports_of(demo_store))  # not the repository's
    # Live refresh off: a page rerunning on a timer in the middle of a check would make
    # the waits racy (these tests are about what a page shows, not the timer).
    env["OBSERVATORY_REFRESH"] = "Off"
    log = work / "streamlit.log"
    cmd = [sys.executable, "-c", "from observatory.cli import main; main()", "serve"]
    cmd += ["--store", str(demo_store), "--host", "127.0.0.1", "--port", str(port)]
    board = Dashboard(f"http://127.0.0.1:{port}", demo_store, log)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _healthy(board.url):
            if proc.poll() is not None:
                pytest.fail(
                    f"the dashboard exited with code {proc.returncode} before it was healthy:\n"
                    + board.log_tail(),
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{board.url}/_stcore/health not ok after {HEALTH_TIMEOUT_S:g} s:\n"
                    + board.log_tail(),
                    pytrace=False,
                )
            time.sleep(0.2)
        yield board
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver for the session."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(chromium: str, playwright_driver: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the whole session."""
    instance = playwright_driver.chromium.launch(
        executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
    )
    yield instance
    instance.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    """A page in a fresh browser context (no cookies, no session state) for one test."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield Tab(page, errors)
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder screenshots are written to (created; files are overwritten)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print where the screenshots went (shown with ``-q`` too)."""
    if SAVED:
        folder = SAVED[0].parent.resolve()
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(SAVED)} screenshots of the dashboard in {folder}")

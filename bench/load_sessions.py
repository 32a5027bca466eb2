"""Load: concurrent browser sessions clicking through the dashboard while the collector writes.

    python bench/load_sessions.py --store /work/scale-data/large --sessions 10 --minutes 5

Starts ``observatory serve`` on the store (a real Streamlit process on 127.0.0.1),
then, for ``--minutes``:

- ``--sessions`` browser sessions (Debian's Chromium at /usr/bin/chromium driven by
  Playwright, one browser context each, so one Streamlit session each) open the pages
  of ``app/main.py`` one after the other, each waiting until the page has run and its
  charts are drawn, and record exception boxes, error alerts and JavaScript errors;
- a writer process takes the writer lock once (the store's housekeeping runs then),
  then appends one 1-minute step of the fleet every 60 s (the collector's
  transform and ``Store.replace_window`` for every region, see
  ``bench/collector_step.py``), under the store's writer lock, then marks the data
  version, so the sessions' next runs read new data; it records how long it waited
  for the lock;
- the Streamlit process's resident memory (VmRSS of the server and its children) is
  sampled every second.

``--screenshots DIR`` saves a full-page screenshot of every page as the baseline
session saw it.

The table compares against the named baseline of the same run: page loads of one
session alone before the load starts (``--baseline-pages`` of them).  Writes go into
the store given: use a copy if it must stay unchanged (each step adds one minute after
its last data).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from streamlit_page import dashboard_pages  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WAIT_RUN = (
    '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
    '[data-test-script-state="notRunning"]'
)
CHARTS_DRAWN = """() => document.querySelectorAll('[data-testid="stSkeleton"]').length === 0
    && Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'))
    .every(c => { const p = c.querySelector('.js-plotly-plot');
                  return p && Array.isArray(p._fullData); })"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its descendants, KiB (0 when gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total


def writer_loop(store_root: str, minutes: int, out: str) -> None:
    """Every 60 s, write the next 1-minute step of every region; record lock waits."""
    sys.path.insert(0, str(ROOT / "bench"))
    from collector_step import step

    from observatory.large_fleet import REGIONS, sized
    from observatory.store import Store

    store = Store(store_root)
    last = store.query("SELECT max(ts_utc) AS t FROM counters")["t"].iloc[0].to_pydatetime()
    regions = store.query("SELECT DISTINCT region FROM counters")["region"].tolist()
    size = sized("large", regions=len(regions))
    names = [r.name for r in REGIONS[: len(regions)]]
    t0 = time.monotonic()
    with store.writer(timeout=120):  # the first take also runs the store's housekeeping
        pass
    log: list[dict[str, object]] = [{"housekeeping_s": time.monotonic() - t0}]
    began = time.monotonic()
    for k in range(1, minutes + 1):
        end = last + timedelta(minutes=k)
        t0 = time.monotonic()
        with store.writer(timeout=120):
            waited = time.monotonic() - t0
            for name in names:
                step(store, size, name, end.replace(tzinfo=None), 7)
            store.touch_version()
        log.append({"end": end.isoformat(), "lock_wait_s": waited, "step_s": time.monotonic() - t0})
        Path(out).write_text(json.dumps(log))
        pause = began + 60 * k - time.monotonic()
        if pause > 0:
            time.sleep(pause)


async def session(
    browser: Any,
    base: str,
    paths: list[str],
    deadline: float,
    n: int,
    out: list[dict[str, Any]],
    count: int | None = None,
    shots: Path | None = None,
) -> None:
    """Open the pages in turn (starting at page ``n``) until ``deadline`` or ``count`` loads;
    with ``shots``, save a full-page screenshot of each loaded page there."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    js_errors: list[str] = []
    page.on("pageerror", lambda e: js_errors.append(str(e)))
    i = n
    while time.monotonic() < deadline and (count is None or i - n < count):
        path = paths[i % len(paths)]
        i += 1
        t0 = time.monotonic()
        problems: list[str] = []
        try:
            await page.goto(f"{base}/{path}")
            await page.wait_for_selector(WAIT_RUN, timeout=180_000)
            await page.wait_for_function(CHARTS_DRAWN, timeout=180_000)
            problems += [
                "exception: " + t[:300]
                for t in await page.get_by_test_id("stException").all_inner_texts()
            ]
            problems += [
                "error alert: " + t[:200]
                for t in await page.get_by_test_id("stAlertContentError").all_inner_texts()
            ]
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(shots / f"{path or 'overview'}.png"), full_page=True)
        except Exception as exc:  # a timeout or a crash is a result to report
            problems.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        problems += [f"JavaScript: {e[:200]}" for e in js_errors]
        js_errors.clear()
        out.append({"session": n, "page": path or "overview", "s": time.monotonic() - t0,
                    "problems": problems})  # fmt: skip
    await context.close()


async def drive(
    base: str, sessions: int, seconds: float, start_writer: Any, shots: Path | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The baseline (one session, every page once), then the load; their page loads."""
    from playwright.async_api import async_playwright

    paths = [p.url_path for p in dashboard_pages()]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        alone: list[dict[str, Any]] = []
        await session(browser, base, paths, float("inf"), 0, alone, len(paths), shots)
        start_writer()
        loaded: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(session(browser, base, paths, deadline, n, loaded) for n in range(sessions))
        )
        await browser.close()
    return alone, loaded


def main() -> None:
    """Run the load and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--no-writer", action="store_true", help="no collector writes")
    ap.add_argument("--json", type=Path, help="write every page load here")
    ap.add_argument("--screenshots", type=Path, help="save the baseline's page screenshots here")
    args = ap.parse_args()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OBSERVATORY_REFRESH": "Off"}
    log = open(args.store.parent / f"load-streamlit-{port}.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-c", "from observatory.cli import main; main()", "serve",
         "--store", str(args.store), "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    samples: list[int] = []
    stop = threading.Event()
    writer: Any = None
    writes = args.store.parent / f"load-writes-{port}.json"
    try:
        for _ in range(900):
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)

        def sample() -> None:
            while not stop.is_set():
                samples.append(_rss_kib(server.pid))
                stop.wait(1.0)

        threading.Thread(target=sample, daemon=True).start()
        rss_idle = _rss_kib(server.pid)
        writer = mp.get_context("spawn").Process(
            target=writer_loop, args=(str(args.store), int(args.minutes) + 1, str(writes))
        )

        def start_writer() -> None:
            if not args.no_writer:
                writer.start()

        alone, loaded = asyncio.run(
            drive(base, args.sessions, args.minutes * 60, start_writer, args.screenshots)
        )
    finally:
        stop.set()
        if writer is not None and writer.is_alive():
            writer.terminate()
            writer.join(30)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()
    if args.json:
        args.json.write_text(json.dumps({"alone": alone, "loaded": loaded}, indent=1))
    logged = json.loads(writes.read_text()) if writes.exists() else [{}]
    steps = logged[1:]
    bad = [r for r in loaded if r["problems"]]
    print(f"\n{args.sessions} sessions x {args.minutes:g} min on {args.store}")
    print("baseline: the same pages opened by one session alone, before the load, same run")
    print(
        f"{'page':22} {'alone s':>8} {'loads':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'bad':>4}"
    )
    for path in dict.fromkeys(r["page"] for r in loaded):
        times = sorted(r["s"] for r in loaded if r["page"] == path)
        one = [r["s"] for r in alone if r["page"] == path]
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        nbad = sum(1 for r in loaded if r["page"] == path and r["problems"])
        first = one[0] if one else float("nan")
        print(
            f"{path:22} {first:>8.2f} {len(times):>6} {statistics.median(times):>7.2f} "
            f"{p95:>7.2f} {times[-1]:>7.2f} {nbad:>4}"
        )
    print(f"page loads {len(loaded)}, with problems {len(bad)}")
    for r in bad[:10]:
        print(f"  session {r['session']} {r['page']}: {r['problems'][:2]}")
    if steps:
        print(
            f"collector steps {len(steps)}: lock wait max "
            f"{max(s['lock_wait_s'] for s in steps):.3f} s, step max "
            f"{max(s['step_s'] for s in steps):.1f} s (first take of the lock, with the "
            f"store's housekeeping: {logged[0]['housekeeping_s']:.1f} s)"
        )
    print(
        f"Streamlit RSS: idle {rss_idle / 1024:.0f} MiB, peak {max(samples) / 1024:.0f} MiB, "
        f"last {samples[-1] / 1024:.0f} MiB ({len(samples)} samples)"
    )


if __name__ == "__main__":
    main()

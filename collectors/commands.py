"""The collector's command-line work: ``collect`` (once, ``--every`` as a daemon,
``--dry-run``), ``backfill`` (with a progress bar) and ``check-config --connect``.

:mod:`observatory.cli` holds the click commands and calls these.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from collectors.collect import Collector, RegionReport
from observatory.config import Config, ConfigError
from observatory.store import Store, StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@contextmanager
def _graceful(collector: Collector, stop: threading.Event) -> Iterator[None]:
    """SIGTERM / SIGINT: finish the current write, then stop (the state stays exact)."""

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        click.echo(f"{name}: finishing the current write, then exiting", err=True)
        stop.set()
        collector.stop()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def print_reports(reports: list[RegionReport]) -> None:
    """One line per region; errors and API warnings on stderr."""
    for r in reports:
        window = f"{r.window_start:%Y-%m-%d %H:%M} .. {r.window_end:%Y-%m-%d %H:%M} UTC"
        cov = [c.ratio for c in r.coverage.values() if c.ratio is not None]
        coverage = f"  coverage {min(cov) * 100:5.1f}%" if cov else ""
        click.echo(
            f"{r.region:<20} {r.status:<8} {r.rows:>10} rows  {window}  {r.seconds:6.1f}s{coverage}"
        )
        for err in r.errors:
            click.echo(f"error: {err}", err=True)
        for warning in r.warnings:
            click.echo(f"warning: {warning}", err=True)


def _exit_code(reports: list[RegionReport]) -> int:
    if reports and all(r.status == "failed" for r in reports):
        click.echo("error: no region could be collected", err=True)
        return EXIT_FAILED
    return EXIT_OK


def dry_run(
    config: Config, start: datetime | None, end: datetime | None, regions: list[str] | None
) -> int:
    """Print the PromQL a run would send, per region."""
    collector = Collector(config, Store(config.store_path))
    try:
        plan = collector.plan(start=start, end=end, regions=regions)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    chunk = config.settings.collection.chunk
    for region in config.settings.regions:
        if region.name not in plan:
            continue
        click.echo(f"# region {region.name}  {region.url}  (backend {region.backend})")
        for e in plan[region.name]:
            click.echo(
                f"{e['promql']}\n    -> {', '.join(e['signals'])}; {e['how']}; "
                f"{e['queries']} chunk(s) of {chunk} from {e['from']} to {e['to']}"
            )
    return EXIT_OK


def collect(
    config: Config,
    start: datetime | None,
    end: datetime | None,
    regions: list[str] | None,
    every: float | None = None,
    metrics_port: int | None = None,
) -> int:
    """One run, or (``every``) a run every ``every`` seconds until SIGTERM / SIGINT."""
    from collectors import metrics

    if metrics_port is not None:
        try:
            metrics.serve(metrics_port)
        except OSError as exc:  # in use, or not allowed
            click.echo(
                f"error: --metrics-port {metrics_port}: cannot listen on "
                f"127.0.0.1:{metrics_port}: {exc.strerror or exc}",
                err=True,
            )
            return EXIT_USAGE
        click.echo(f"collector metrics on http://127.0.0.1:{metrics_port}/metrics", err=True)
    collector = Collector(config, Store(config.store_path))
    stop = threading.Event()
    code = EXIT_OK
    with _graceful(collector, stop):
        while True:
            began = time.monotonic()
            try:
                reports = collector.run(start=start, end=end, regions=regions)
            except (ConfigError, StoreError) as exc:
                click.echo(f"error: {exc}", err=True)
                return EXIT_USAGE
            print_reports(reports)
            click.echo(
                f"collected into {config.store_path} in {time.monotonic() - began:.1f}s",
            )
            code = _exit_code(reports)
            if every is None or stop.is_set():
                break
            start = None  # later runs resume from the saved state
            sys.stdout.flush()
            stop.wait(max(0.0, every - (time.monotonic() - began)))
            if stop.is_set():
                break
    if stop.is_set():
        click.echo("stopped cleanly", err=True)
        return EXIT_OK if every is not None else code
    return code


def backfill(
    config: Config, start: datetime, end: datetime | None, regions: list[str] | None
) -> int:
    """Collect ``[start, end]`` with one progress bar per region."""
    from tqdm import tqdm

    names = regions or [r.name for r in config.settings.regions]
    tty = sys.stderr.isatty()
    bars = {
        name: tqdm(
            total=1000,
            desc=f"{name:<16}",
            position=i,
            file=sys.stderr,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
            disable=not tty,
        )
        for i, name in enumerate(names)
    }
    lock = threading.Lock()

    def progress(region: str, done: int, total: int) -> None:
        bar = bars.get(region)
        if bar is None or total <= 0:
            return
        with lock:
            if tty:
                bar.n = min(1000, round(1000 * done / total))
                bar.refresh()
            else:  # a log, not a terminal: one line per write
                click.echo(f"{region:<16} {100 * done / total:5.1f}% written", err=True)

    collector = Collector(config, Store(config.store_path), progress=progress)
    stop = threading.Event()
    with _graceful(collector, stop):
        try:
            reports = collector.run(start=start, end=end, regions=regions)
        except (ConfigError, StoreError) as exc:
            click.echo(f"error: {exc}", err=True)
            return EXIT_USAGE
        finally:
            for bar in bars.values():
                bar.close()
    print_reports(reports)
    return _exit_code(reports)


def config_warnings(config: Config, environ: dict[str, str] | None = None) -> list[str]:
    """What ``check-config`` warns about in a valid configuration.

    - an environment variable a region names for a secret (``auth.basic.password_env``,
      ``auth.bearer_token_env``, ``headers_env``) that is not set in ``environ``
      (default: this process's environment): collecting that region would fail;
    - one exporter metric mapped to one signal twice in a region (a preset listed
      twice, two presets, or a preset and a config-defined signal): its values would
      be counted twice.

    Returns:
        One message per problem, naming the region and the key.
    """
    from collectors.presets import custom_mappings, mappings_for
    from observatory.config import resolve_basic_auth, resolve_headers

    out: list[str] = []
    for region in config.settings.regions:
        for resolve in (resolve_headers, resolve_basic_auth):
            try:
                resolve(region, environ)
            except ConfigError as exc:
                out += [f"{m} (collecting this region would fail)" for m in exc.messages]
        sources: dict[tuple[str, str], list[str]] = {}
        for preset in region.presets:
            for m in mappings_for([preset]):
                sources.setdefault((m.signal, m.selector), []).append(f"preset {preset}")
        for i, m in enumerate(custom_mappings(region.signals)):
            sources.setdefault((m.signal, m.selector), []).append(f"signals[{i}]")
        # one line per combination of sources (a preset listed twice maps every one
        # of its metrics twice: one line for the preset, not one per metric)
        by_where: dict[tuple[str, ...], list[str]] = {}
        for (signal_name, selector), where in sources.items():
            if len(where) > 1:
                by_where.setdefault(tuple(where), []).append(f"{selector} -> {signal_name}")
        for sources_of, maps in by_where.items():
            shown = ", ".join(maps[:3]) + (f" and {len(maps) - 3} more" if len(maps) > 3 else "")
            out.append(
                f"region {region.name}: {' and '.join(sources_of)} both map {shown}: "
                f"{'its' if len(maps) == 1 else 'their'} values would be counted "
                f"{len(sources_of)} times"
            )
    return out


def check_connectivity(config: Config, timeout_s: float = 10.0) -> int:
    """Reach every region: version, latency, and how many of its presets' metrics exist."""
    from collectors.collect import plan_fetches
    from collectors.presets import region_mappings
    from collectors.prometheus import QueryError, RegionSource, promql_duration
    from collectors.selector import parse_selector

    header = f"{'region':<18} {'status':<12} {'latency':>8} {'version':<10} {'metrics':>8}  detail"
    click.echo(header)
    click.echo("-" * len(header))
    failed = 0
    for region in config.settings.regions:
        status, latency, version, found, detail = "ok", "-", "-", "-", region.url
        try:
            source = RegionSource(region, timeout_s, retries=0, pool=1)
        except ConfigError as exc:
            failed += 1
            click.echo(f"{region.name:<18} {'config':<12} {'-':>8} {'-':<10} {'-':>8}  {exc}")
            continue
        try:
            began = time.monotonic()
            source.instant("vector(1)")
            latency = f"{(time.monotonic() - began) * 1000:.0f}ms"
            version = str(source.build_info().get("version", "?"))
            names = set()
            for f in plan_fetches(region_mappings(region)):
                if f.mode == "raw":
                    sel = parse_selector(f.text)
                    if sel.name:
                        names.add(sel.name)
                    else:
                        names.update(v for k, _op, v in sel.matchers if k == "__name__")
            # Over the collection lookback, not the instant query's 5 min: a source
            # whose newest samples are older (a paused exporter, a backfill) still
            # has what `collect` would fetch.
            lookback_ms = int(config.settings.collection.lookback.total_seconds() * 1000)
            lookback = promql_duration(lookback_ms)
            expr = (
                'count by (__name__) (last_over_time({__name__=~"'
                + "|".join(sorted(names))
                + f'"}}[{lookback}]))'
            )
            data = source.instant(expr)
            present = {r["metric"].get("__name__") for r in data.get("result", [])}
            wanted = set()
            for n in names:
                wanted.update(n.split("|"))
            found = f"{len(present & wanted)}/{len(wanted)}"
            missing = sorted(wanted - present)
            if missing:
                detail = f"absent in the last {lookback}: " + ", ".join(missing[:6])
                detail += " ..." if len(missing) > 6 else ""
            for w in data.get("warnings", []):
                detail += f"; warning: {w}"
        except QueryError as exc:
            failed += 1
            status = "unreachable" if exc.unreachable else f"HTTP {exc.status or '?'}"
            detail = exc.message
        finally:
            source.close()
        click.echo(
            f"{region.name:<18} {status:<12} {latency:>8} {version:<10} {found:>8}  {detail}"
        )
    total = len(config.settings.regions)
    click.echo(f"{total - failed} of {total} regions reachable")
    return EXIT_FAILED if failed else EXIT_OK

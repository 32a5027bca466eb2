"""``observatory report drift`` and ``observatory run`` (registered in :mod:`observatory.cli`).

Exit codes of ``report drift`` (docs/drift.md; distinct from the other commands'
``2 = usage``, because 2 means "critical drift" here):

- 0 no drift; 1 drift at the warning level; 2 drift at the critical level;
- 3 bad usage or configuration (unknown option, bad window, invalid file);
- 4 runtime error (store unreadable, query or render failed; no file is left);
- 5 no data in the store (no folder, no data files), or nothing could be judged (too
  little data in the window): the "no data" code of every command
  (:mod:`observatory.exit_codes`).

``run`` exits 0 when stopped by SIGINT/SIGTERM (or after ``--once``), 3 for a bad
schedule or configuration file.  With ``--once`` it runs every job once and exits
4 when a job failed, else with the worst report code: 2 (critical) before 1
(warning) before 5 (nothing judged) before 0.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from observatory.config import DEFAULT_DEMO_STORE as DEFAULT_STORE
from observatory.config import ConfigError, load_config, parse_duration
from observatory.drift_codes import EXIT_NO_DATA, EXIT_RUNTIME, EXIT_USAGE, FORMATS
from observatory.exit_codes import exit_no_data


class _Usage(click.UsageError):
    """A usage error of the drift commands: exit code 3, not click's 2."""

    exit_code = EXIT_USAGE


class _UsageCode(click.Command):
    """A command whose usage errors (bad options) exit with :data:`EXIT_USAGE` (3)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _Usage(exc.message, exc.ctx) from None


def _usage(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _parse_end(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        _usage(f"--end: expected an ISO 8601 time such as 2026-11-30T00:00Z, got {value!r}")
        raise  # unreachable
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@click.group()
def report() -> None:
    """Write reports (drift)."""


@report.command("drift", cls=_UsageCode)
@click.option("--window", default="24h", show_default=True, help="Current window length.")
@click.option(
    "--reference",
    default="7d",
    show_default=True,
    help="Reference: previous N (7d), week-ago, or a baseline START/END (ISO 8601).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(sorted(FORMATS)),
    multiple=True,
    help="Report format (repeatable; default html).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of the report archive.",
)
@click.option("--store", "store_path", type=click.Path(file_okay=False), help="Store folder.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Configuration file (its store is read).",
)
@click.option(
    "--schedule",
    "schedule_path",
    type=click.Path(dir_okay=False),
    help="Schedule file whose per-signal settings apply (see `observatory run`).",
)
@click.option("--end", help="Window end, UTC ISO 8601 (default: the latest stored step).")
@click.option(
    "--align",
    help="Floor the window end to a multiple of this (1h, 24h: the hour, UTC midnight), "
    "as a scheduled report does.",
)
@click.option("--region", "regions", multiple=True, help="Only this region (repeatable).")
@click.option("--model", "models", multiple=True, help="Only this model (repeatable).")
@click.option("--signal", "signals", multiple=True, help="Only this drift signal (repeatable).")
def drift(
    window: str,
    reference: str,
    formats: tuple[str, ...],
    out_dir: str,
    store_path: str | None,
    config_path: str | None,
    schedule_path: str | None,
    end: str | None,
    align: str | None,
    regions: tuple[str, ...],
    models: tuple[str, ...],
    signals: tuple[str, ...],
) -> None:
    """Drift of every signal per region, model and arm, as a report file.

    Exit codes: 0 no drift, 1 warning, 2 critical, 3 usage or configuration error,
    4 runtime error, 5 nothing could be judged (docs/drift.md).
    """
    from observatory import drift_engine as de
    from observatory.drift_schedule import load_schedule
    from observatory.store import Store, StoreError

    if store_path and config_path:
        _usage("give one of --store and --config, not both")
    try:
        win = parse_duration(window)
    except ValueError as exc:
        _usage(f"--window: {exc}")
    if win.total_seconds() % 60:
        _usage("--window must be a whole number of minutes")
    try:
        ref = de.Reference.parse(reference)
    except ValueError as exc:
        _usage(f"--reference: {exc}")
    stop = _parse_end(end)
    try:
        step = parse_duration(align) if align else None
    except ValueError as exc:
        _usage(f"--align: {exc}")
    if step is not None and (step.total_seconds() % 60 or step.total_seconds() <= 0):
        _usage("--align must be a positive whole number of minutes")
    if step is not None and 86_400 % int(step.total_seconds()):
        _usage("--align must divide a day (1h, 6h, 24h): windows end on clock times")
    try:
        if config_path:
            root = load_config(config_path).store_path
        else:
            root = Path(store_path) if store_path else DEFAULT_STORE
        chosen = (
            load_schedule(schedule_path).signals() if schedule_path else list(de.DEFAULT_SIGNALS)
        )
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)
    if signals:
        known = {s.name: s for s in chosen}
        unknown = [s for s in signals if s not in known]
        if unknown:
            _usage(f"--signal: unknown {unknown}; known: {', '.join(known)}")
        chosen = [known[s] for s in signals]
    store = Store(root)
    if not store.has_data():  # no folder or no data files: 5, as every command
        exit_no_data(root)
    try:
        if step is not None:
            stop = de.aligned_end(store, step, stop)
        result = de.compute_drift(
            store,
            window=win,
            reference=ref,
            end=stop,
            signals=chosen,
            regions=list(regions) or None,
            models=list(models) or None,
        )
        from observatory.drift_report import write_report  # heavy: scipy, Plotly

        # JSON last: the archive lists a run by its JSON, so it appears when complete.
        paths = [
            write_report(result, out_dir, fmt)
            for fmt in sorted(formats or ("html",), key=lambda f: f == "json")
        ]
    except (StoreError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_RUNTIME)
    click.echo(result.summary_line())
    for p in paths:
        click.echo(str(p))
    from observatory.drift_report import exit_code

    code = exit_code(result)
    if code == EXIT_NO_DATA:
        click.echo("error: nothing could be judged (no data or too little in the window)", err=True)
    sys.exit(code)


@click.command("run", cls=_UsageCode)
@click.option(
    "--config",
    "schedule_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Schedule file (YAML): cron expressions for collect and drift reports.",
)
@click.option("--once", is_flag=True, help="Run every job once now, then exit.")
def run(schedule_path: str, once: bool) -> None:
    """Collect, precompute and write drift reports on cron expressions, until stopped (SIGTERM)."""
    from observatory.drift_schedule import Scheduler, load_schedule, once_exit_code, run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        schedule = load_schedule(schedule_path)
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)
    scheduler = Scheduler(schedule)

    def show(r: Any) -> None:
        state = "ok" if r.ok else "FAILED"
        click.echo(
            f"{r.started_utc:%Y-%m-%d %H:%M:%S} {r.job:<16} {state:<6} {r.seconds:6.1f}s "
            f"{r.message}"
        )
        for p in r.paths:
            click.echo(f"    {p}")

    if once:
        results = [scheduler.run_job(name) for name in scheduler.crons]
        for r in results:
            show(r)
        sys.exit(once_exit_code(results))
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        click.echo(f"received signal {signum}; stopping after the running job", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for name, t in sorted(scheduler.next.items(), key=lambda kv: kv[1]):
        click.echo(f"{name:<16} next {t:%Y-%m-%d %H:%M} UTC ({scheduler.crons[name]})")
    run_forever(scheduler, stop, show)

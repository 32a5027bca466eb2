"""``observatory regressions`` and ``observatory annotate``.

``regressions`` exits 1 when a critical regression (error ratio, accuracy, p99
latency getting worse) is still open, so a CI/CD pipeline can gate on it; 2 for bad
usage or an empty store.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

EXIT_OK, EXIT_OPEN_CRITICAL, EXIT_USAGE = 0, 1, 2

_store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False),
    help="Store folder (default: the config's store, or data/demo).",
)
_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Configuration file."
)


def _store(store_path: str | None, config_path: str | None) -> Any:
    from observatory.config import ConfigError, resolve_store_path
    from observatory.store import Store

    try:
        return Store(resolve_store_path(store_path, config_path))
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` (or a sum like ``1d12h``)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text.lower()):
        raise click.BadParameter(f"expected a duration such as 24h, 30m or 7d, got {text!r}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO 8601 time such as 2026-11-30T12:00Z, got {value!r}", param_hint=option
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@click.command("annotate")
@click.argument("description")
@click.option("--at", "at", help="When (UTC ISO 8601; default: now).")
@click.option("--region", help="Region it concerns (default: all).")
@click.option("--model", help="Model it concerns (default: all).")
@click.option("--arm", help="Arm / version it concerns (default: all).")
@click.option("--kind", default="deployment", show_default=True, help="Kind of event.")
@click.option("--author", help="Who records it.")
@_store_option
@_config_option
def annotate(
    description: str,
    at: str | None,
    region: str | None,
    model: str | None,
    arm: str | None,
    kind: str,
    author: str | None,
    store_path: str | None,
    config_path: str | None,
) -> None:
    """Record a deployment (or another event) in the store, for regression causes and verdicts."""
    from observatory import annotations as notes

    store = _store(store_path, config_path)
    when = _time(at, "--at") or datetime.now(UTC)
    try:
        target = notes.add(
            store.root,
            notes.Annotation(when, description, kind, region, model, arm, author),
        )
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"annotated {when.isoformat()} {description!r} in {target}")


@click.command("regressions")
@click.option("--since", default="24h", show_default=True, help="Show regressions since (24h).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--end", help="Analyse up to this UTC time (default: the last stored step).")
@click.option(
    "--lookback",
    default="14d",
    show_default=True,
    help="History analysed before the end (baselines need days).",
)
@click.option("--bin", "bin_s", default=300, show_default=True, help="Bin length in seconds.")
@click.option("--region", "regions", multiple=True, help="Only this region (repeatable).")
@_store_option
@_config_option
def regressions(
    since: str,
    fmt: str,
    end: str | None,
    lookback: str,
    bin_s: int,
    regions: tuple[str, ...],
    store_path: str | None,
    config_path: str | None,
) -> None:
    """Detected regressions and deployment verdicts; exit 1 while a critical one is open."""
    from observatory import regressions as reg
    from observatory.store import StoreMissing

    store = _store(store_path, config_path)
    if regions:
        # A typo must not turn this CI/CD gate into "no regression": refuse unknown names.
        known = set(store.query("SELECT DISTINCT region FROM regions")["region"])
        known |= set(store.query("SELECT DISTINCT region FROM counters")["region"])
        unknown = sorted(set(regions) - known)
        if unknown:
            click.echo(
                f"error: unknown region(s) {unknown}; the store has {sorted(known)}", err=True
            )
            sys.exit(EXIT_USAGE)
    if bin_s < 60 or bin_s % 60:
        click.echo("error: --bin must be a multiple of 60 seconds", err=True)
        sys.exit(EXIT_USAGE)
    try:
        report = reg.analyse(
            store,
            end=_time(end, "--end"),
            lookback=parse_duration(lookback),
            bin_s=bin_s,
            regions=list(regions) or None,
        )
    except StoreMissing:
        click.echo(f"error: no data in store {store.root} (run `observatory demo`?)", err=True)
        sys.exit(EXIT_USAGE)
    window = parse_duration(since)
    shown = reg.select(report, window)
    cut = report.end - window
    verdicts = [v for v in report.verdicts if v.event.time.replace(tzinfo=UTC) > cut]
    critical = reg.open_critical(shown)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "start_utc": report.start.isoformat(),
                    "end_utc": report.end.isoformat(),
                    "since": since,
                    "open_critical": len(critical),
                    "regressions": [r.as_dict() for r in shown],
                    "verdicts": [v.as_dict() for v in verdicts],
                },
                indent=2,
                default=str,
            )
        )
    else:
        click.echo(
            f"regressions since {cut:%Y-%m-%d %H:%M} UTC (or still open), "
            f"analysed {report.start:%Y-%m-%d %H:%M} .. {report.end:%Y-%m-%d %H:%M} UTC"
        )
        if not shown:
            click.echo("none")
        for r in shown:
            state = "OPEN  " if r.open else "closed"
            cause = f"  cause: {r.cause.description} ({r.cause.kind})" if r.cause else ""
            click.echo(
                f"{r.start:%Y-%m-%d %H:%M}  {r.severity:<11} {state} {r.region:<15} "
                f"{r.model}/{r.arm:<4} {r.signal:<21} "
                f"{reg.fmt_value(r.before, r.unit)} -> {reg.fmt_value(r.after, r.unit)} "
                f"({r.relative:+.1%}){cause}"
            )
        for v in verdicts:
            click.echo(
                f"verdict {v.event.time:%Y-%m-%d %H:%M}  {v.verdict.verdict:<8} "
                f"score {v.verdict.score:5.1f}  {v.region} {v.model}/{v.arm}  "
                f"{v.event.description}: {v.verdict.reason}"
            )
        if critical:
            click.echo(f"{len(critical)} critical regression(s) open", err=True)
    sys.exit(EXIT_OPEN_CRITICAL if critical else EXIT_OK)

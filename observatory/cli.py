"""The ``observatory`` command line.

Exit codes (stable, for scripts):

- 0: success (``collect``: at least one region collected or already current; the
  regions that failed are listed on stderr);
- 1: the work failed (``collect``: no region could be collected);
- 2: bad usage or a bad configuration file (the message says what and where).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from observatory.config import ConfigError, load_config

DEFAULT_DEMO_STORE = Path("data/demo")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO 8601 time such as 2026-11-30T12:00Z, got {value!r}", param_hint=option
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _config_or_exit(path: str):  # type: ignore[no-untyped-def]
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="observatory")
def main() -> None:
    """Observatory: SLOs, regressions, A/B tests and drift for AI inference fleets."""


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Configuration file (YAML): regions, presets, schedule.",
)
@click.option(
    "--from", "start", help="Backfill from this UTC time (ISO 8601) instead of the saved state."
)
@click.option(
    "--to", "end", help="Collect up to this UTC time (default: now minus collection.settle)."
)
@click.option("--region", "regions", multiple=True, help="Only this region (repeatable).")
def collect(config_path: str, start: str | None, end: str | None, regions: tuple[str, ...]) -> None:
    """Collect every region once into the store, resuming where the last run ended."""
    from collectors.collect import Collector
    from observatory.store import Store

    config = _config_or_exit(config_path)
    began = time.monotonic()
    collector = Collector(config, Store(config.store_path))
    try:
        reports = collector.run(
            start=_parse_time(start, "--from"),
            end=_parse_time(end, "--to"),
            regions=list(regions) or None,
        )
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    for r in reports:
        window = f"{r.window_start:%Y-%m-%d %H:%M} .. {r.window_end:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{r.region:<20} {r.status:<8} {r.rows:>10} rows  {window}  {r.seconds:6.1f}s")
        for err in r.errors:
            click.echo(f"error: {err}", err=True)
    click.echo(f"collected into {config.store_path} in {time.monotonic() - began:.1f}s")
    if reports and all(r.status == "failed" for r in reports):
        click.echo("error: no region could be collected", err=True)
        sys.exit(EXIT_FAILED)


@main.command()
@click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False),
    default=str(DEFAULT_DEMO_STORE),
    show_default=True,
    help="Store folder to build the demo fleet into.",
)
@click.option(
    "--openmetrics",
    "om_dir",
    type=click.Path(file_okay=False),
    help="Instead of the store, write OpenMetrics text per region here (for promtool).",
)
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same fleet).")
@click.option("--days", default=14.0, show_default=True, help="Days of history at 1-minute steps.")
@click.option("--end", help="End of the history, UTC ISO 8601 (default: the last full hour).")
@click.option("--region", "regions", multiple=True, help="Only this demo region (repeatable).")
@click.option("--force", is_flag=True, help="Rebuild even if the store already holds data.")
def demo(
    store_path: str,
    om_dir: str | None,
    seed: int,
    days: float,
    end: str | None,
    regions: tuple[str, ...],
    force: bool,
) -> None:
    """Build the demo fleet (7 regions, 3 models, an A/B test, injected incidents)."""
    from observatory import demo as demo_build

    try:
        if om_dir:
            paths = demo_build.build_openmetrics(
                Path(om_dir),
                seed=seed,
                days=days,
                end=_parse_time(end, "--end"),
                regions=list(regions) or None,
            )
            for p in paths:
                click.echo(str(p))
            return
        store = Path(store_path)
        summary = demo_build.build_store(
            store,
            seed=seed,
            days=days,
            end=_parse_time(end, "--end"),
            regions=list(regions) or None,
            force=force,
        )
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(summary)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Configuration file; without it the demo fleet is served (built on first use).",
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False),
    help="Store folder to read (default: the config's store, or data/demo).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8501, show_default=True, help="Port to listen on.")
def serve(config_path: str | None, store_path: str | None, host: str, port: int) -> None:
    """Start the dashboard (Streamlit) and print its URL."""
    from observatory import demo as demo_build

    env = dict(os.environ)
    if config_path:
        config = _config_or_exit(config_path)
        store = Path(store_path) if store_path else config.store_path
        env["OBSERVATORY_CONFIG"] = str(Path(config_path).resolve())
    else:
        store = Path(store_path) if store_path else DEFAULT_DEMO_STORE
        if store_path is None:
            click.echo(demo_build.build_store(store))
    env["OBSERVATORY_STORE"] = str(store.resolve())
    root = Path(__file__).resolve().parent.parent  # holds .streamlit/config.toml
    app = root / "app" / "main.py"
    click.echo(f"Observatory dashboard: http://{host}:{port}  (store: {store})", err=False)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    sys.exit(subprocess.call(cmd, env=env, cwd=root))


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False))
def check_config(config_path: str) -> None:
    """Validate a configuration file and list its regions."""
    config = _config_or_exit(config_path)
    for r in config.settings.regions:
        click.echo(f"{r.name:<20} {r.url:<40} presets={','.join(r.presets)}")
    click.echo(f"ok: {len(config.settings.regions)} regions, store {config.store_path}")


if __name__ == "__main__":
    main()

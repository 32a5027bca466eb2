"""The ``observatory`` command line.

Exit codes (stable, for scripts; :mod:`observatory.exit_codes`, docs/cli.md):

- 0: success (``collect``: at least one region collected or already current; the
  regions that failed are listed on stderr);
- 1: the work failed (``collect``: no region could be collected; ``sql``: the query
  was refused or failed, the message is on stderr), or a finding a pipeline gates on;
- 2: bad usage or a bad configuration file (the message says what and where);
- 5: no data yet (the store folder is missing or holds no data files).

``report drift`` and ``run`` have codes of their own, because 2 means critical drift
there: 0 no drift, 1 warning, 2 critical, 3 usage or configuration error, 4 runtime
error, 5 no data or nothing could be judged (``observatory/drift_cli.py``,
``docs/drift.md``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from observatory.cli_args import parse_time, specs_option
from observatory.config import (
    DEFAULT_DEMO_STORE,
    ConfigError,
    load_config,
)
from observatory.exit_codes import EXIT_FAILED, EXIT_USAGE, exit_no_data


def _config_or_exit(path: str):  # type: ignore[no-untyped-def]
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)


class _Main(click.Group):
    """The command group: a store that cannot be read (a file that is not Parquet, a
    query DuckDB refuses) ends any command with ``error: <what and which file>`` and
    exit 1, not a traceback.  Commands with codes of their own catch it first."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            store = sys.modules.get("observatory.store")  # not imported: not its error
            if store is None or not isinstance(exc, store.StoreError):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option(
    "--every",
    help="Daemon mode: collect again every DURATION (60s, 5m) until SIGTERM or Ctrl-C.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the PromQL each region would get; fetch nothing."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Expose the collector's own metrics on 127.0.0.1:PORT/metrics.",
)
def collect(
    config_path: str,
    start: str | None,
    end: str | None,
    regions: tuple[str, ...],
    every: str | None,
    dry_run: bool,
    metrics_port: int | None,
) -> None:
    """Collect every region once into the store, resuming where the last run ended.

    SIGTERM or Ctrl-C finishes the write in progress and exits cleanly (code 0 in
    daemon mode); the next run resumes exactly where the state says.
    """
    from collectors import commands
    from observatory.config import parse_duration

    config = _config_or_exit(config_path)
    t0, t1 = parse_time(start, "--from"), parse_time(end, "--to")
    if dry_run:
        sys.exit(commands.dry_run(config, t0, t1, list(regions) or None))
    interval = None
    if every is not None:
        try:
            interval = parse_duration(every).total_seconds()
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--every") from None
        if t1 is not None:
            raise click.UsageError("--every collects up to now each time: leave out --to")
    sys.exit(commands.collect(config, t0, t1, list(regions) or None, interval, metrics_port))


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Configuration file (YAML): regions, presets, schedule.",
)
@click.option("--from", "start", required=True, help="Backfill from this UTC time (ISO 8601).")
@click.option("--to", "end", help="Up to this UTC time (default: now minus collection.settle).")
@click.option("--region", "regions", multiple=True, help="Only this region (repeatable).")
def backfill(config_path: str, start: str, end: str | None, regions: tuple[str, ...]) -> None:
    """Collect a past time range, with a progress bar per region (rewrites it exactly)."""
    from collectors import commands

    config = _config_or_exit(config_path)
    t0 = parse_time(start, "--from")
    assert t0 is not None
    sys.exit(commands.backfill(config, t0, parse_time(end, "--to"), list(regions) or None))


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
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True, max=3660),
    default=None,
    help="Days of history at 1-minute steps (default: 14; 30 with --size small/large).",
)
@click.option("--end", help="End of the history, UTC ISO 8601 (default: the last full hour).")
@click.option("--region", "regions", multiple=True, help="Only this demo region (repeatable).")
@click.option("--force", is_flag=True, help="Rebuild even if the store already holds data.")
@click.option(
    "--size",
    type=click.Choice(["demo", "small", "large"]),
    default="demo",
    show_default=True,
    help="demo: the simulated fleet; small/large: the scale-test fleet (2 or 20 regions "
    "x 10 models x 2 arms x 8 GPUs per region-model, docs/scaling.md).",
)
def demo(
    store_path: str,
    om_dir: str | None,
    seed: int,
    days: float | None,
    end: str | None,
    regions: tuple[str, ...],
    force: bool,
    size: str,
) -> None:
    """Build the demo fleet (7 regions, 3 models, an A/B test, injected incidents)."""
    from observatory import demo as demo_build

    if days is not None and days != days:  # NaN passes FloatRange's comparisons
        raise click.BadParameter("expected a number of days, got nan", param_hint="'--days'")
    try:
        if size != "demo":
            if om_dir or regions:
                raise ValueError(f"--size {size} writes a store only; drop --openmetrics/--region")
            click.echo(
                demo_build.build_scale_store(
                    Path(store_path), size, seed, days, parse_time(end, "--end"), force
                )
            )
            return
        days = 14.0 if days is None else days
        if om_dir:
            paths = demo_build.build_openmetrics(
                Path(om_dir),
                seed=seed,
                days=days,
                end=parse_time(end, "--end"),
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
            end=parse_time(end, "--end"),
            regions=list(regions) or None,
            force=force,
            drift_reports=demo_build.drift_archive(store),  # the Drift page opens on it
            regressions=True,  # the Regressions page lists what is still open
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
@specs_option("--slo-specs", "slo_specs")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8501, show_default=True, help="Port to listen on.")
def serve(
    config_path: str | None,
    store_path: str | None,
    slo_specs: tuple[str, ...],
    host: str,
    port: int,
) -> None:
    """Start the dashboard (Streamlit) and print its URL."""
    from observatory import demo as demo_build
    from observatory.store import Store

    env = dict(os.environ)
    root = Path(__file__).resolve().parent.parent  # holds .streamlit/config.toml
    if config_path:
        config = _config_or_exit(config_path)
        store = Path(store_path) if store_path else config.store_path
        env["OBSERVATORY_CONFIG"] = str(Path(config_path).resolve())
    else:
        store = Path(store_path) if store_path else DEFAULT_DEMO_STORE
        if store_path is None:
            if not Store(store).has_data():
                click.echo(f"Building the demo fleet into {store} (about a minute, once)...")
            click.echo(
                demo_build.build_store(
                    store, drift_reports=demo_build.drift_archive(store), regressions=True
                )
            )
    # The Drift page's archive: $OBSERVATORY_DRIFT_REPORTS, else the one `observatory
    # demo` wrote inside this store; resolved here, before the app runs in `root`.
    reports = demo_build.drift_archive(store)
    if reports.is_dir() or "OBSERVATORY_DRIFT_REPORTS" in env:
        env["OBSERVATORY_DRIFT_REPORTS"] = str(reports.resolve())
    env["OBSERVATORY_STORE"] = str(store.resolve())
    # Absolute: the app runs in `root`, where a relative path would not resolve.
    from observatory.slo_specs import SPECS_ENV, spec_paths

    env[SPECS_ENV] = os.pathsep.join(str(p.resolve()) for p in spec_paths(slo_specs))
    app = root / "app" / "main.py"
    click.echo(f"Observatory dashboard: http://{host}:{port}  (store: {store})", err=False)
    args = [
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
    sys.stdout.flush()
    os.chdir(root)
    os.environ.update(env)
    # The pages' shared Store (its DuckDB views) and the filters' catalogue are built
    # once in the background now, so the first page a viewer opens does not pay for
    # them (app/data.py warm_up, app/filter_catalogue.py, docs/scaling.md).
    from streamlit.web import cli as streamlit_cli

    from app.data import warm_up

    warm_up(store.resolve())
    # Streamlit runs in this process (not a child): a supervisor's SIGTERM reaches it.
    streamlit_cli.main(args, prog_name="streamlit")


def _json_value(value: Any) -> Any:
    """A value of an Arrow row as JSON: ISO 8601 times, null for NaN and infinities."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | dt_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if all(hasattr(value, a) for a in ("months", "days", "nanoseconds")):  # an INTERVAL
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _render(result: Any, fmt: str) -> str:
    if fmt == "json":
        rows = [json.dumps(_json_value(r), ensure_ascii=False) for r in result.table.to_pylist()]
        return "[\n" + ",\n".join(rows) + ("\n]\n" if rows else "]\n")
    frame = result.to_pandas()
    if fmt == "csv":
        return str(frame.to_csv(index=False))
    if frame.empty:
        return "  ".join(result.columns) + "\n"
    return str(frame.to_string(index=False, float_format=_plain_float)) + "\n"


def _plain_float(value: float) -> str:
    """A float as the shortest positional decimal that reads back the same (no
    scientific notation: ``2.6541238e+10`` prints as ``26541238000``)."""
    if not math.isfinite(value):
        return str(value)
    import numpy as np  # pandas, imported above for the frame, brings it

    return str(np.format_float_positional(value, trim="-"))


@main.command("sql")
@click.argument("query", required=False)
@click.option(
    "--file",
    "query_file",
    type=click.Path(dir_okay=False),
    help="Read the query from this file (instead of QUERY or standard input).",
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False),
    help=f"Store folder to query (default: {DEFAULT_DEMO_STORE}).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Query the store of this configuration file.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
    help="Output format; parquet needs --out.",
)
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False), help="Write the result to this file."
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="Cut the result after this many rows (a notice on stderr says so).",
)
def sql(
    query: str | None,
    query_file: str | None,
    store_path: str | None,
    config_path: str | None,
    fmt: str,
    out_path: str | None,
    max_rows: int,
) -> None:
    """Run one read-only SQL query on the store, in the sandbox (docs/sql.md).

    QUERY is the query text; without it (or with -) the query is read from
    standard input.  The views, their columns and units: docs/sql.md (or run
    "SHOW TABLES" and "DESCRIBE view").  Example queries: sql/examples/.
    Exit codes: 0 ok, 1 refused or failed, 2 bad usage, 5 no store folder.
    """
    from observatory.store import SandboxLimits, SQLError, Store, StoreError

    if query_file and query not in (None, "-"):
        raise click.UsageError("give the query as an argument or with --file, not both")
    if query_file:
        try:
            text = Path(query_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read {query_file}: {exc}", param_hint="--file"
            ) from None
    elif query not in (None, "-"):
        text = str(query)
    else:
        if query is None and sys.stdin.isatty():
            raise click.UsageError("no query: give QUERY, --file F or the query on standard input")
        text = sys.stdin.read()
        if not text.strip():
            raise click.UsageError("no query: standard input was empty")
    if store_path and config_path:
        raise click.UsageError("give --store or --config, not both")
    if config_path:
        store_dir = _config_or_exit(config_path).store_path
    else:
        store_dir = Path(store_path) if store_path else DEFAULT_DEMO_STORE
    if not store_dir.is_dir():
        exit_no_data(store_dir)
    if fmt == "parquet" and not out_path:
        raise click.UsageError("--format parquet needs --out FILE")
    try:
        sandbox = Store(store_dir).sandbox(SandboxLimits())
        try:
            result = sandbox.run(text, max_rows=max_rows)
        finally:
            sandbox.close()
    except (SQLError, StoreError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    try:
        if fmt == "parquet":
            result.to_parquet(str(out_path))
        elif out_path:
            Path(out_path).write_text(_render(result, fmt), encoding="utf-8")
        else:
            click.echo(_render(result, fmt), nl=False)
    except OSError as exc:
        click.echo(f"error: cannot write {out_path}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if result.truncated:
        click.echo(
            f"warning: the result was cut at {result.max_rows:,} rows (--max-rows); "
            "the query returned more",
            err=True,
        )
    if result.store_changed:
        click.echo(
            "warning: a writer (the collector) wrote to the store while this query ran, "
            "on every attempt: rows of the partitions it rewrote may mix two versions; "
            "run it again when the collector is idle",
            err=True,
        )
    rows = "1 row" if result.num_rows == 1 else f"{result.num_rows:,} rows"
    click.echo(f"{rows} in {result.elapsed_s:.2f} s", err=True)


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False))
@click.option(
    "--connect", is_flag=True, help="Also query every region: reachability, version, metrics."
)
def check_config(config_path: str, connect: bool) -> None:
    """Validate a configuration file and list its regions (exit 1: a region unreachable)."""
    config = _config_or_exit(config_path)
    for r in config.settings.regions:
        click.echo(f"{r.name:<20} {r.url:<40} presets={','.join(r.presets)}")
    click.echo(f"ok: {len(config.settings.regions)} regions, store {config.store_path}")
    from collectors.commands import config_warnings

    for warning in config_warnings(config):
        click.echo(f"warning: {warning}", err=True)
    if connect:
        from collectors.commands import check_connectivity

        click.echo()
        sys.exit(check_connectivity(config))


from observatory.slo_cli import slo_group  # noqa: E402  (the `observatory slo` commands)

main.add_command(slo_group)

from observatory.experiment_cli import experiment_group  # noqa: E402  (`observatory experiment`)

main.add_command(experiment_group)


# Drift reports and the scheduler (observatory/drift_cli.py).
from observatory.drift_cli import report as _report_group  # noqa: E402
from observatory.drift_cli import run as _run_command  # noqa: E402

main.add_command(_report_group)
main.add_command(_run_command)

# Regressions and deployment annotations (observatory/regressions_cli.py).
from observatory.regressions_cli import annotate as _annotate  # noqa: E402
from observatory.regressions_cli import regressions as _regressions  # noqa: E402

main.add_command(_annotate)
main.add_command(_regressions)


if __name__ == "__main__":
    main()

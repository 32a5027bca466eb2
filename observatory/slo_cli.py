"""``observatory slo``: SLO status, spec checks and Prometheus rule export.

Registered on the main command in :mod:`observatory.cli`.  Exit codes as there: 0
success, 1 the work failed (``status --fail-on``), 2 bad usage or a bad spec file
(every message names file, line, document and field), 5 no data in the store
(:mod:`observatory.exit_codes`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from observatory.cli_args import open_store, specs_option
from observatory.exit_codes import EXIT_FAILED, EXIT_USAGE, exit_no_data

_specs_option = specs_option("--specs", "spec_paths")
_store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False),
    help="Store folder (default: the config's store, or data/demo).",
)
_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Configuration file."
)


def _load(spec_paths: tuple[str, ...]) -> list[Any]:
    from observatory.slo_specs import SpecError, load_specs
    from observatory.slo_specs import spec_paths as chosen_spec_paths

    try:
        return load_specs(chosen_spec_paths(spec_paths))
    except SpecError as exc:
        for line in exc.messages:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)


def _maintenance(config_path: str | None) -> tuple[Any, ...]:
    """The configuration's maintenance windows (none without ``--config``)."""
    if not config_path:
        return ()
    from observatory.config import ConfigError, load_config
    from observatory.slo_engine import maintenance_from_config

    try:
        return maintenance_from_config(load_config(config_path).settings.maintenance)
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)


def _pct(x: float, digits: int = 3) -> str:
    return (
        "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"
    )


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2f}"


@click.group("slo")
def slo_group() -> None:
    """SLOs: status from the store, spec validation, Prometheus rule export."""


@slo_group.command("check")
@_specs_option
def check(spec_paths: tuple[str, ...]) -> None:
    """Validate SLO specs and list the SLOs they define."""
    slos = _load(spec_paths)
    for d in slos:
        where = ",".join(d.group_by) or "global"
        click.echo(
            f"{d.name:<32} {d.indicator.kind:<10} {d.method:<15} target {d.target * 100:g}% "
            f"over {d.period.days}d, per {where}"
        )
    click.echo(f"ok: {len(slos)} SLOs")


@slo_group.command("status")
@_specs_option
@_store_option
@_config_option
@click.option("--at", "at_text", help="Evaluate at this UTC time (default: the latest step).")
@click.option("--slo", "names", multiple=True, help="Only this SLO (repeatable).")
@click.option("--global-only", is_flag=True, help="Only the global roll-up of each SLO.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--fail-on",
    type=click.Choice(["never", "page", "ticket", "exhausted"]),
    default="never",
    show_default=True,
    help="Exit 1 when any SLO is in this state or worse.",
)
def status(
    spec_paths: tuple[str, ...],
    store_path: str | None,
    config_path: str | None,
    at_text: str | None,
    names: tuple[str, ...],
    global_only: bool,
    fmt: str,
    fail_on: str,
) -> None:
    """SLO status: SLI, remaining budget, burn rates and firing tiers, worst first."""
    from observatory.slo_engine import SloEngine, status_table

    slos = _load(spec_paths)
    if names:
        unknown = sorted(set(names) - {d.name for d in slos})
        if unknown:
            click.echo(f"error: unknown SLO(s) {unknown}", err=True)
            sys.exit(EXIT_USAGE)
        slos = [d for d in slos if d.name in names]
    store = open_store(store_path, config_path)
    if not store.has_data():
        exit_no_data(store.root)
    at = None
    if at_text:
        try:
            t = datetime.fromisoformat(at_text)
        except ValueError:
            raise click.BadParameter(
                f"expected ISO 8601, got {at_text!r}", param_hint="--at"
            ) from None
        at = t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t
    windows = _maintenance(config_path)
    for w in windows:  # on stderr: the table (csv, json) stays machine-readable
        where = ", ".join(w.regions) if w.regions is not None else "every region"
        why = f" ({w.reason})" if w.reason else ""
        click.echo(
            f"maintenance excluded: steps in ({w.start:%Y-%m-%dT%H:%M:%S}Z, "
            f"{w.end:%Y-%m-%dT%H:%M:%S}Z], {where}{why}",
            err=True,
        )
    engine = SloEngine(store, maintenance=windows)
    if at is None and not names:  # every SLO now: kept for the dashboard, as `precompute`
        from observatory.slo_precomputed import refresh

        table = refresh(engine, slos)[0]
    else:
        table = status_table(engine, slos, at)
    if global_only:
        table = table[(table["region"] == "*") & (table["model"] == "*") & (table["arm"] == "*")]
    if fmt == "csv":
        click.echo(table.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(table.to_json(orient="records", date_format="iso"))
    else:
        _print_table(table)
    order = {
        "never": set(),
        "exhausted": {"exhausted"},
        "page": {"exhausted", "page"},
        "ticket": {"exhausted", "page", "ticket"},
    }[fail_on]
    if order & set(table["state"]):
        sys.exit(EXIT_FAILED)


def _print_table(table: Any) -> None:
    cols = [
        ("SLO", 26),
        ("REGION", 14),
        ("MODEL", 14),
        ("ARM", 4),
        ("STATE", 12),
        ("SLI", 9),
        ("TARGET", 8),
        ("REMAINING", 10),
        ("5m", 7),
        ("1h", 7),
        ("6h", 7),
        ("1d", 7),
        ("3d", 7),
        ("COVER", 7),
        ("FIRING", 10),
    ]
    click.echo(" ".join(f"{n:<{w}}" for n, w in cols))
    for _, r in table.iterrows():
        cells = [
            r["slo"],
            r["region"],
            r["model"],
            r["arm"],
            r["state"],
            _pct(r["sli"]),
            f"{r['target'] * 100:g}%",
            _pct(r["remaining"], 1),
            *(_num(r.get(f"burn_{w}", math.nan)) for w in ("5m", "1h", "6h", "1d", "3d")),
            _pct(r["coverage"], 0),
            r["firing"] or "-",
        ]
        click.echo(" ".join(f"{str(c)[:w]:<{w}}" for c, (_, w) in zip(cells, cols, strict=True)))
    if any(table["approximate"]):
        click.echo("note: approximate SLIs interpolate a threshold between histogram buckets")


@slo_group.command("export-rules")
@_specs_option
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Rule file to write (Prometheus rule_files format).",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="One set of groups per region (repeatable; default: the store's regions, else none).",
)
@click.option(
    "--region-label",
    help="Also match this label to select a region (one global Prometheus, Thanos, Mimir).",
)
@click.option(
    "--preset",
    "presets",
    multiple=True,
    help="Use this collector preset's metric names (repeatable; default vllm, dcgm, ...).",
)
@_store_option
@_config_option
def export_rules_cmd(
    spec_paths: tuple[str, ...],
    out_path: str,
    regions: tuple[str, ...],
    region_label: str | None,
    presets: tuple[str, ...],
    store_path: str | None,
    config_path: str | None,
) -> None:
    """Write Sloth-compatible Prometheus recording and alerting rules per region."""
    from observatory.slo_rules import DEFAULT_PRESETS, export_rules
    from observatory.store import atomic_write_bytes

    slos = _load(spec_paths)
    store = open_store(store_path, config_path)
    bounds: dict[str, Sequence[float]] | None = None
    region_list: list[str | None] = list(regions) or [None]
    if store.has_data():
        les = store.query("SELECT DISTINCT signal, le FROM histograms")
        bounds = {s: g["le"].tolist() for s, g in les.groupby("signal")}
        if not regions:
            known = store.query("SELECT region FROM regions ORDER BY region")["region"].tolist()
            region_list = known or [None]
    export = export_rules(slos, region_list, list(presets) or DEFAULT_PRESETS, region_label, bounds)
    atomic_write_bytes(Path(out_path), export.to_yaml().encode())
    rules = sum(len(g["rules"]) for g in export.groups if isinstance(g["rules"], list))
    click.echo(f"wrote {rules} rules in {len(export.groups)} groups to {out_path}")
    for name, why in export.skipped:
        click.echo(f"skipped {name}: {why}", err=True)

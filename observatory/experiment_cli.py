"""``observatory experiment``: list A/B experiments and write their reports.

Registered on the main command in :mod:`observatory.cli`.  Exit codes as there
(:mod:`observatory.exit_codes`): 0 success, 1 the work failed (``refresh``: the state
could not be written), 2 bad usage, a bad experiments file (every message names file,
line and key) or an unknown experiment, 5 no data (no store, an empty store, or no
data for the experiment in its window).

Experiments come from the experiments file (``--experiments``, default the file
named by ``$OBSERVATORY_EXPERIMENTS``; ``examples/experiments.yaml`` is an example)
and from the store: every model with two or more arms is an experiment named after
the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from observatory.cli_args import fail, open_store
from observatory.exit_codes import EXIT_FAILED, EXIT_NO_DATA, EXIT_USAGE

_store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False),
    help="Store folder (default: the config's store, or data/demo).",
)
_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Configuration file."
)
_experiments_option = click.option(
    "--experiments",
    "experiments_path",
    type=click.Path(dir_okay=False),
    help="Experiments file (YAML; default: $OBSERVATORY_EXPERIMENTS, else discovered only).",
)


def _experiments(path: str | None) -> Any:
    from observatory.config import ConfigError
    from observatory.experiments_config import ENV_FILE, load_experiments

    chosen = path or os.environ.get(ENV_FILE, "").strip() or None
    if chosen is None:
        return None
    try:
        return load_experiments(chosen)
    except ConfigError as exc:
        fail(exc.messages, EXIT_USAGE)


@click.group("experiment")
def experiment_group() -> None:
    """A/B experiments: arms compared on quality, latency, cost, energy and carbon."""


@experiment_group.command("list")
@_store_option
@_config_option
@_experiments_option
def list_command(
    store_path: str | None, config_path: str | None, experiments_path: str | None
) -> None:
    """List the configured and discovered experiments and the data the store holds."""
    from observatory.experiment_engine import list_experiments

    store = open_store(store_path, config_path, require_data=True)
    items = list_experiments(store.named, _experiments(experiments_path))
    if not items:
        click.echo("no experiments: no model has two or more arms, and no file defines one")
        return
    click.echo(
        f"{'NAME':<28} {'SOURCE':<11} {'MODEL':<22} {'ARMS':<16} {'REQUESTS':>24}  DATA (UTC)"
    )
    for i in items:
        arms = ",".join(f"{a}*" if a == i.spec.control_arm else a for a in i.spec.arms)
        reqs = "/".join(f"{i.requests.get(a, 0):,.0f}" for a in i.spec.arms)
        span = (
            f"{i.first_ts:%Y-%m-%d %H:%M} .. {i.last_ts:%Y-%m-%d %H:%M}"
            if i.first_ts and i.last_ts
            else "no data"
        )
        click.echo(
            f"{i.spec.name:<28} {i.source:<11} {i.spec.model:<22} {arms:<16} {reqs:>24}  {span}"
        )
    click.echo("(* control arm)")


@experiment_group.command("report")
@click.argument("name")
@_store_option
@_config_option
@_experiments_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False), help="Write here (default: stdout)."
)
def report_command(
    name: str,
    store_path: str | None,
    config_path: str | None,
    experiments_path: str | None,
    fmt: str,
    out_path: str | None,
) -> None:
    """Analyse experiment NAME and write its report (SRM, verdict, metrics, regions)."""
    from observatory.experiment_engine import ExperimentNotFound, find, run
    from observatory.experiment_report import render

    store = open_store(store_path, config_path, require_data=True)
    experiments = _experiments(experiments_path)
    try:
        item = find(store.named, name, experiments)
    except ExperimentNotFound as exc:
        fail([str(exc.args[0])], EXIT_USAGE)
    rep = run(store.named, item, experiments.carbon if experiments else None)
    if rep is None:
        fail([f"the store holds no data for experiment {name!r} in its window"], EXIT_NO_DATA)
    text = render(rep, fmt)
    if out_path:
        try:
            Path(out_path).write_text(text, encoding="utf-8")
        except OSError as exc:
            fail([f"--out: cannot write {out_path}: {exc.strerror or exc}"], EXIT_USAGE)
        decision = "; ".join(f"{t}: {d}" for t, (d, _) in rep.analysis.verdicts.items())
        click.echo(f"wrote {out_path} ({decision})")
    else:
        click.echo(text, nl=False)


@experiment_group.command("refresh")
@click.argument("names", nargs=-1)
@_store_option
@_config_option
@_experiments_option
def refresh_command(
    names: tuple[str, ...],
    store_path: str | None,
    config_path: str | None,
    experiments_path: str | None,
) -> None:
    """Bring the summed moments of experiments NAMES (default: all) up to date.

    The scheduler's job, off the request path.  Reads only the blocks (days of each
    experiment's window) whose source partitions changed since the last refresh, and
    the data files the listing has not seen.  The state lives in
    <store>/.experiments, or under $OBSERVATORY_EXPERIMENT_STATE; exit 1 when it
    cannot be written.
    """
    from observatory import experiment_state as es
    from observatory.experiment_engine import ExperimentNotFound
    from observatory.experiment_files import ENV_STATE, state_dir

    store = open_store(store_path, config_path, require_data=True)
    try:
        done = es.refresh(store, _experiments(experiments_path), names)
    except ExperimentNotFound as exc:
        fail([str(exc.args[0])], EXIT_USAGE)
    except OSError as exc:  # the state folder cannot be written: nothing was refreshed
        where = exc.filename or state_dir(store)
        fail(
            [
                f"cannot write the experiment state of the store at {store.root} "
                f"into {state_dir(store)}: {exc.strerror or exc} ({where}); the saved "
                "state and the store's data are unchanged. Make that folder writable, or "
                f"set ${ENV_STATE} to a folder you can write",
            ],
            EXIT_FAILED,
        )
    if not done:
        click.echo(f"nothing to refresh: no experiment has data in the store at {store.root}")
    for r in done:
        click.echo(
            f"{r.name}: {r.replicates:,} replicates summed ({r.seconds:.1f} s) "
            f"-> {state_dir(store)}"
        )

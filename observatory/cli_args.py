"""What the ``observatory`` commands share in reading their arguments.

The store a command reads (``--store`` / ``--config``), ISO 8601 times and durations
given as options.  Each turns bad input into a usage error that names the option or
the configuration file's line (exit code 2, :mod:`observatory.exit_codes`), printed
without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import click

from observatory.exit_codes import EXIT_USAGE, exit_no_data

if TYPE_CHECKING:
    from observatory.store import Store


def specs_option(flag: str, dest: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The option naming SLO spec files or folders (repeatable), as ``observatory slo``
    (``--specs``) and ``observatory serve`` (``--slo-specs``) take it; without it,
    :func:`observatory.slo_specs.spec_paths` decides."""
    return click.option(
        flag,
        dest,
        multiple=True,
        type=click.Path(exists=True),
        help="OpenSLO or Sloth file or folder (repeatable; default: $OBSERVATORY_SLO_SPECS, "
        "else the built-in examples in examples/slo).",
    )


def fail(messages: list[str], code: int = EXIT_USAGE) -> NoReturn:
    """Print each message as ``error: <message>`` on standard error and exit ``code``."""
    for line in messages:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def open_store(
    store_path: str | None, config_path: str | None, *, require_data: bool = False
) -> Store:
    """The store of ``--store`` (else the store of ``--config``'s file, else the demo's).

    A configuration file given with ``--store`` is still checked, so a broken file is
    reported even when its store is overridden.

    Exits:
        2 (usage) when the configuration file is invalid, with every message of its
        :class:`observatory.config.ConfigError` (file, line, field);
        5 (no data) when ``require_data`` and the store holds no data
        (:func:`observatory.exit_codes.exit_no_data`).
    """
    from observatory.config import ConfigError, load_config, resolve_store_path
    from observatory.store import Store

    try:
        if store_path and config_path:
            load_config(config_path)
        path = resolve_store_path(store_path, config_path)
    except ConfigError as exc:
        fail(exc.messages)
    store = Store(path)
    if require_data and not store.has_data():
        exit_no_data(path)
    return store


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time option as an aware UTC-based datetime; None when not given.

    A time without an offset is taken as UTC.

    Raises:
        click.BadParameter: ``value`` is not ISO 8601 (names ``option``).
    """
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO 8601 time such as 2026-11-30T12:00Z, got {value!r}", param_hint=option
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_duration_option(text: str, option: str) -> timedelta:
    """:func:`observatory.config.parse_duration` (``24h``, ``7d``, sums like ``1d12h``).

    Raises:
        click.BadParameter: not a duration (names ``option``).
    """
    from observatory.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None

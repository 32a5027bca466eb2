"""The exit codes every ``observatory`` command shares, and its one "no data" message.

The convention (docs/cli.md, "Exit codes"):

- 0 (:data:`EXIT_OK`): the work was done;
- 1 (:data:`EXIT_FAILED`): the work failed, or a finding a pipeline gates on (an
  open critical regression, a Fail verdict, an SLO state at ``--fail-on``, a region
  unreachable);
- 2 (:data:`EXIT_USAGE`): bad usage or a bad file (the message names file, line and
  key); ``report drift`` and ``run`` use 3, because 2 means critical drift there;
- 5 (:data:`EXIT_NO_DATA`): no data yet: the store folder does not exist or holds no
  data files, or nothing could be judged in the window.  The same code in every
  command, the drift commands included (:mod:`observatory.drift_codes`), so a script
  run before the first collection can tell "nothing yet" from "failed".

Light on purpose (click only): the command registers without the analytics imports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_DATA = 0, 1, 2, 5


#: What a person at the command line can do about an empty store.
CLI_HINT = (
    "build the demo with `observatory demo`, collect with `observatory collect --config "
    "FILE`, or pass --store/--config"
)


def no_data_message(root: Path, hint: str = CLI_HINT) -> str:
    """``no data yet in the store at ROOT (why): hint``: why the store at ``root`` has
    nothing to work on (no such folder, or no data files) and what to do about it."""
    why = "no such folder" if not root.is_dir() else "no data files"
    return f"no data yet in the store at {root} ({why}): {hint}"


def exit_no_data(root: Path) -> NoReturn:
    """Print :func:`no_data_message` on stderr and exit with :data:`EXIT_NO_DATA` (5)."""
    click.echo(f"error: {no_data_message(root)}", err=True)
    sys.exit(EXIT_NO_DATA)

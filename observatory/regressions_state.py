"""What an earlier regression analysis left behind, so that a repeat run only processes new points.

Kept in ``<store>/.regressions/`` per bin length and region selection:

- ``signals-<key>.parquet``: the derived signals per bin (``analytics.regression_signals``)
  over the analysed window;
- ``state-<key>.json``: the window (start, end of the data, the last bin whose data was
  complete), the regressions found (per series), and a ``version`` naming the code's
  settings; a file of another version, bin length or region selection is ignored.

Both files are written atomically (a reader sees the old file or the new one); the
state file is written last and names the signals file's row count, so a run that died
between the two leaves a state that does not match and is ignored.  Deleting the
folder is always safe: the next run recomputes everything.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import regressions as rg
from observatory.store import atomic_write_bytes

#: Changes whenever derived signals or the detector change meaning.
VERSION = "regressions-3"


@dataclass
class Saved:
    """An earlier run: its signals, window and regressions."""

    signals: pd.DataFrame
    start: datetime
    end: datetime
    complete: datetime
    regressions: list[rg.Regression]


def folder(root: Path) -> Path:
    """``<store>/.regressions``: where the state of earlier runs is kept."""
    return Path(root) / ".regressions"


def _key(bin_s: int, regions: list[str] | None) -> str:
    which = ",".join(sorted(regions)) if regions else "*"
    return f"{int(bin_s)}-" + hashlib.sha1(which.encode()).hexdigest()[:10]


def load_regressions(
    root: Path, bin_s: int, regions: list[str] | None = None
) -> tuple[datetime, list[rg.Regression]] | None:
    """The end of the earlier run's window and the regressions it found, without its
    signals (the state file only: a few kB, where the signals of 14 days of a large
    fleet are hundreds of MB); None when there is no usable state (as :func:`load`).
    """
    state_path = folder(root) / f"state-{_key(bin_s, regions)}.json"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("version") != VERSION or state.get("bin_s") != bin_s:
            return None
        regs = [rg.regression_from_dict(d) for d in state["regressions"]]
        return datetime.fromisoformat(state["end"]), regs
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(root: Path, bin_s: int, regions: list[str] | None) -> Saved | None:
    """The earlier run's state for this bin length and region selection, or None.

    None also when the files are missing, unreadable or of another version: the caller
    then recomputes from the store.
    """
    key = _key(bin_s, regions)
    state_path = folder(root) / f"state-{key}.json"
    signals_path = folder(root) / f"signals-{key}.parquet"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("version") != VERSION or state.get("bin_s") != bin_s:
            return None
        signals = pd.read_parquet(signals_path)
        if len(signals) != state["rows"]:
            return None
        for col in (*rg.KEYS, "signal"):
            signals[col] = signals[col].astype("category")
        return Saved(
            signals,
            datetime.fromisoformat(state["start"]),
            datetime.fromisoformat(state["end"]),
            datetime.fromisoformat(state["complete"]),
            [rg.regression_from_dict(d) for d in state["regressions"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(
    root: Path,
    bin_s: int,
    regions: list[str] | None,
    saved: Saved,
) -> None:
    """Write the state of this run (atomically; see the module docstring)."""
    key = _key(bin_s, regions)
    buf = io.BytesIO()
    saved.signals.to_parquet(buf, index=False)
    atomic_write_bytes(folder(root) / f"signals-{key}.parquet", buf.getvalue())
    state: dict[str, Any] = {
        "version": VERSION,
        "bin_s": bin_s,
        "regions": sorted(regions) if regions else None,
        "start": saved.start.isoformat(),
        "end": saved.end.isoformat(),
        "complete": saved.complete.isoformat(),
        "rows": len(saved.signals),
        "regressions": [
            {k: v for k, v in r.as_dict().items() if k not in ("cause", "causes")}
            for r in saved.regressions
        ],
    }
    atomic_write_bytes(
        folder(root) / f"state-{key}.json", json.dumps(state, default=str).encode("utf-8")
    )

"""Where the experiments' saved state lives, and the small helpers that write it.

Shared by :mod:`observatory.experiment_listing` (the experiment list, per data file)
and :mod:`observatory.experiment_state` (the summed moments, per block): the state
folder (``<store>/.experiments/``, or ``$OBSERVATORY_EXPERIMENT_STATE/<store
name>-<hash>`` for a store you may not write into), atomic best-effort writes, and
what one process keeps between page runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from observatory.store import Store, atomic_write_bytes

ENV_STATE = "OBSERVATORY_EXPERIMENT_STATE"
#: What this process keeps between calls (Stores, listing rows), by key.
memory: dict[str, Any] = {}
memory_lock = threading.Lock()


def open_store(path: str | os.PathLike[str]) -> Store:
    """The :class:`Store` of ``path``, one per folder and data version in this process
    (its DuckDB views are built once, when a block has to be read)."""
    root = Path(path).resolve()
    version = Store(root).data_version()
    with memory_lock:
        store = memory.get(f"store:{root}")
        if store is None or store[0] != version:
            store = (version, Store(root))
            memory[f"store:{root}"] = store
    return store[1]


def state_dir(store: Store) -> Path:
    """Where the experiment state of ``store`` lives (see the module docstring)."""
    root = os.environ.get(ENV_STATE, "").strip()
    if not root:
        return store.root / ".experiments"
    digest = hashlib.sha1(str(store.root.resolve()).encode()).hexdigest()[:12]
    return Path(root) / f"{store.root.name}-{digest}"


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` as Parquet, atomically."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def best_effort(action: Any, *args: Any) -> bool:
    """Run a best-effort write; False when the state folder is not writable."""
    try:
        action(*args)
    except OSError:
        return False
    return True


def stat(path: Path) -> tuple[int, int]:
    """``(mtime_ns, size)`` of ``path``, ``(-1, -1)`` when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)

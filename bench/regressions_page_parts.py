"""Where one cold run of the Regressions page spends its time, part by part.

    python bench/regressions_page_parts.py STORE

Runs ``app/views/regressions.py`` headless once (Streamlit's ``AppTest``, modules
imported first as in a running server, like ``bench/page_times.py``) with
``OBSERVATORY_STORE=STORE`` and the default filters, and times the calls it makes:
the shared sidebar filters (the filter catalogue), the page's findings (precomputed or
computed now), deployment verdicts, the table and the Streamlit elements.  Prints JSON
with seconds per part and the whole run (``cold``).  The page's share is ``cold`` minus
the shared filters.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _import_all() -> None:
    """Import the app's modules first, as a running server has them."""
    sys.path.insert(0, str(ROOT))
    for pkg in ("app", "analytics", "observatory"):
        for mod in pkgutil.iter_modules([str(ROOT / pkg)]):
            if pkg != "app" or mod.name != "main":
                with contextlib.suppress(Exception):  # not importable: not timed
                    importlib.import_module(f"{pkg}.{mod.name}")


def _timed(parts: dict[str, float], owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper adding its seconds to ``parts[label]``."""
    fn: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            parts[label] += time.perf_counter() - t

    setattr(owner, name, wrapper)


def main() -> None:
    """Time one cold run of the page on ``sys.argv[1]`` and print the parts."""
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.environ["OBSERVATORY_STORE"] = sys.argv[1]
    _import_all()
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import app.filters
    import app.regressions_view_data as rvd
    from observatory import regressions as reg

    parts: dict[str, float] = defaultdict(float)
    _timed(parts, app.filters, "shared_filters", "shared filters (catalogue + sidebar)")
    _timed(parts, rvd, "findings", "findings")
    _timed(parts, reg, "deployment_verdicts", "deployment verdicts")
    _timed(parts, reg, "table", "table")
    _timed(parts, st, "plotly_chart", "st.plotly_chart")
    _timed(parts, st, "dataframe", "st.dataframe")
    at = AppTest.from_file(str(ROOT / "app" / "views" / "regressions.py"), default_timeout=300)
    t = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t
    errors = [str(e.value)[:200] for e in at.exception]
    print(json.dumps({"cold": cold, **parts, "exceptions": errors}, indent=1))


if __name__ == "__main__":
    main()

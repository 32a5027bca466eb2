"""Session-wide test settings.

The SLO engine keeps its slice cache outside the store (``OBSERVATORY_SLO_CACHE``,
else ``~/.cache/observatory/slo``; docs/slo.md, "Slice cache").  Every test that
builds a store and evaluates SLOs would leave a cache folder in the user's home, so
the whole session caches under one temporary folder instead (tests that test the
cache's location set the variable themselves).  Servers the browser tests start
inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _slo_cache_in_a_temporary_folder() -> Iterator[None]:
    if os.environ.get("OBSERVATORY_SLO_CACHE"):
        yield  # the caller chose where
        return
    folder = tempfile.mkdtemp(prefix="observatory-slo-cache-")
    os.environ["OBSERVATORY_SLO_CACHE"] = folder
    try:
        yield
    finally:
        os.environ.pop("OBSERVATORY_SLO_CACHE", None)
        shutil.rmtree(folder, ignore_errors=True)

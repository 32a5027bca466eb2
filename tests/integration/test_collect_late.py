"""Late data: quality signals re-read with ``collection.refetch``, exactly, no doubling.

Model-quality figures (accuracy gauges, correct-prediction counters) are often
written after the fact, with old timestamps, by an evaluation job.  A real Prometheus
first serves six hours in which one model's last three hours are missing; the
collector runs; then those three hours are backfilled (``promtool tsdb
create-blocks-from openmetrics`` into the server's folder, server restarted) and the
collector runs twice more.  With ``refetch`` the stored totals equal the ground
truth computed here from every sample written, and stay equal on the next run (the
re-read window is replaced, not added to); without it the late hours stay missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prom_harness import (
    PromServer,
    backfill_openmetrics,
    default_fleet_end,
    missing_binaries,
    om_lines,
)

from collectors.collect import Collector
from observatory.config import parse_config
from observatory.store import Store

pytestmark = pytest.mark.integration

HOURS, LATE_HOURS, SCRAPE = 6, 3, 30
N = HOURS * 3600 // SCRAPE
LATE_FROM = (HOURS - LATE_HOURS) * 3600 // SCRAPE  # first late sample index of m2


def _accuracy(model: int, i: int) -> float:
    return 0.5 + ((i * (model + 3)) % 64) / 256  # exact in binary: sums are exact


def _correct(model: int, i: int) -> int:
    return (model + 2) * i


def _text(t0: int, late: bool) -> str:
    """m1 on time, m2's first hours on time and its last LATE_HOURS late."""
    lines: list[str] = []
    for name, value in (("model_accuracy", _accuracy), ("model_correct_total", _correct)):
        for model in (1, 2):
            if model == 1:
                idx = [] if late else list(range(N + 1))
            else:
                idx = list(range(LATE_FROM, N + 1)) if late else list(range(LATE_FROM))
            labels = {"model_name": f"m{model}"}
            lines += om_lines(name, labels, ((t0 + i * SCRAPE, value(model, i)) for i in idx))
    return "\n".join(lines) + "\n# EOF\n"


def _truth() -> tuple[int, float, int]:
    """(accuracy samples, their sum, correct-prediction increases) in (t0, t0 + HOURS]."""
    samples = 2 * N
    total = sum(_accuracy(m, i) for m in (1, 2) for i in range(1, N + 1))
    correct = sum(_correct(m, N) - _correct(m, 0) for m in (1, 2))
    return samples, total, correct


def _config(store: Path, url: str, refetch: bool) -> str:
    late = "  refetch: {accuracy: 4h, quality_correct: 4h}\n" if refetch else ""
    return (
        f"store: {store}\ncollection:\n  step: 60s\n  chunk: 6h\n  lookback: {HOURS}h\n{late}"
        f"regions:\n  - name: r1\n    url: '{url}'\n    latitude: 0\n    longitude: 0\n"
        "    presets: [quality]\n    signals:\n"
        "      - {name: quality_correct, kind: counter, unit: predictions,"
        " selector: model_correct_total}\n"
    )


def _stored(store: Path) -> tuple[int, float, float]:
    s = Store(store)
    g = s.query(
        "SELECT SUM(samples) AS n, SUM(mean * samples) AS v FROM gauges WHERE signal = 'accuracy'"
    )
    c = s.query("SELECT SUM(value) AS v FROM counters WHERE signal = 'quality_correct'")
    return int(g["n"].iloc[0]), float(g["v"].iloc[0]), float(c["v"].iloc[0])


@dataclass
class Runs:
    first: tuple[int, float, float]  # stored after the first run (late hours absent)
    late: tuple[int, float, float]  # after the late data arrived, refetch on
    again: tuple[int, float, float]  # one more run, refetch on
    without: tuple[int, float, float]  # the same runs with refetch off


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    why = missing_binaries()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("late")
    end = default_fleet_end()
    t0 = end - timedelta(hours=HOURS)
    tsdb = backfill_openmetrics(_text(int(t0.timestamp()), late=False), root, "on-time")
    server = PromServer(tsdb, root, name="quality").start()
    try:
        stores = {flag: root / f"store-{flag}" for flag in (True, False)}
        configs = {flag: parse_config(_config(stores[flag], server.url, flag)) for flag in stores}

        def run(flag: bool, now: datetime) -> None:
            (report,) = Collector(configs[flag], Store(stores[flag])).run(now=now)
            assert report.status in ("ok", "current"), report.errors

        first_now = end + timedelta(seconds=60)  # settle 60 s: the window ends at `end`
        for flag in stores:
            run(flag, first_now)
        first = _stored(stores[True])
        server.stop()
        backfill_openmetrics(_text(int(t0.timestamp()), late=True), root, "late", into=tsdb)
        server.start()
        later = first_now + timedelta(minutes=30)
        for flag in stores:
            run(flag, later)
        late = _stored(stores[True])
        for flag in stores:
            run(flag, later + timedelta(minutes=1))
        yield Runs(first, late, _stored(stores[True]), _stored(stores[False]))
    finally:
        server.stop()


def test_first_run_lacks_the_late_hours(runs: Runs) -> None:
    samples, _, correct = _truth()
    assert runs.first[0] == samples - (N - LATE_FROM + 1)  # m2's samples LATE_FROM..N
    assert runs.first[2] < correct


def test_refetch_makes_totals_exact(runs: Runs) -> None:
    samples, total, correct = _truth()
    assert runs.late == (samples, total, correct)


def test_refetch_again_doubles_nothing(runs: Runs) -> None:
    assert runs.again == runs.late


def test_without_refetch_late_data_stays_missing(runs: Runs) -> None:
    """The control: the same runs without ``refetch`` never see the late hours."""
    samples, _, correct = _truth()
    assert runs.without[0] == runs.first[0] < samples
    assert runs.without[2] == runs.first[2] < correct

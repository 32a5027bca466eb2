"""The dashboard's derived state, computed off the request path.

What Prometheus recording rules are to Grafana, this is to the dashboard: after new
data arrives, ``observatory run``'s ``precompute`` job (docs/drift.md, "The schedule
file") brings up to date what the heavy pages read instead of computing on a request:

- **SLOs** (SLOs and Overview pages): the per-SLO hourly slice cache
  (:mod:`observatory.slo_cache`), and the status table and every SLO's default
  1-day burn-down themselves (:mod:`observatory.slo_precomputed`);
- **Experiments**: the summed moments per day block
  (:func:`observatory.experiment_state.refresh`);
- **Regressions**: the page's findings per lookback
  (:func:`observatory.regressions_findings.save`), skipped when the store's data
  version did not change since they were computed.

Every part is exact: what is kept equals what the page would compute (each module's
tests compare the two).  One part failing does not stop the others; the scheduler's
job is then failed (:func:`observatory.drift_schedule.run_precompute`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from observatory.config import format_duration
from observatory.store import Store

#: The message of every part on a store that holds no data yet.
NO_DATA = "no data yet"


@dataclass(frozen=True)
class PartResult:
    """One part of a precompute run: its name, seconds taken, and what it did or why it failed."""

    part: str
    seconds: float
    ok: bool
    message: str


def _timed(part: str, work: Callable[[], str]) -> PartResult:
    began = time.perf_counter()
    try:
        message = work()
        ok = True
    except Exception as exc:  # one part failing must not stop the others
        message, ok = f"{type(exc).__name__}: {exc}", False
    return PartResult(part, time.perf_counter() - began, ok, message)


def precompute(
    store: Store,
    *,
    slo_specs: Sequence[Path] = (),
    maintenance: Sequence[Any] = (),
    experiments: Any = None,
    regressions: Sequence[timedelta] = (),
    regressions_bin_s: int = 60,
) -> list[PartResult]:
    """Bring the dashboard's derived state of ``store`` up to date.

    Args:
        store: the store the dashboard reads.
        slo_specs: SLO spec files or folders; none: no SLO part.
        maintenance: :class:`observatory.slo_engine.Maintenance` windows of the
            configuration (they are part of each SLO's cache key).
        experiments: the loaded experiments file
            (:func:`observatory.experiments_config.load_experiments`), or None for
            the experiments discovered from the data.
        regressions: lookbacks (e.g. 24 h) whose findings the Regressions page reads.
        regressions_bin_s: their bin length, seconds (the page's default is 60).

    Returns:
        One :class:`PartResult` per part, in the order SLOs, experiments, regressions;
        on a store without data (before the first collection) every part is ok with
        the message :data:`NO_DATA` and nothing is written.
    """
    from observatory import experiment_state, regressions_findings
    from observatory.slo_engine import SloEngine
    from observatory.slo_precomputed import refresh
    from observatory.slo_specs import load_specs

    out: list[PartResult] = []
    if not store.has_data():  # nothing to bring up to date, the same for every part
        names = ["slo"] * bool(slo_specs) + ["experiments"]
        names += [f"regressions {format_duration(lookback)}" for lookback in regressions]
        return [PartResult(name, 0.0, True, NO_DATA) for name in names]
    if slo_specs:

        def slos() -> str:
            defs = load_specs(list(slo_specs))
            engine = SloEngine(store, maintenance=tuple(maintenance))
            table, how, hours = refresh(engine, defs)
            kept = "up to date" if how.source == "exact" else "kept"
            return (
                f"{len(defs)} SLOs evaluated ({len(table)} status rows, {kept}; "
                f"{hours:,} cached slice hours)"
            )

        out.append(_timed("slo", slos))

    def moments() -> str:
        done = experiment_state.refresh(store, experiments)
        return f"{len(done)} experiments, {sum(r.replicates for r in done):,} replicates"

    out.append(_timed("experiments", moments))
    for lookback in regressions:

        def findings(lookback: timedelta = lookback) -> str:
            old = regressions_findings.load(store.root, regressions_bin_s, lookback)
            if old is not None and old.data_version == store.data_version():
                return "up to date"
            found, _ = regressions_findings.save(store, lookback=lookback, bin_s=regressions_bin_s)
            return f"{len(found.regressions)} changes in {len(found.regions)} regions"

        out.append(_timed(f"regressions {format_duration(lookback)}", findings))
    return out


def summary(results: Sequence[PartResult]) -> str:
    """One line: each part, its seconds and outcome (``slo 2.1 s: 9 SLOs ...; ...``)."""
    return "; ".join(
        f"{r.part} {r.seconds:.1f} s: {r.message if r.ok else 'FAILED ' + r.message}"
        for r in results
    )

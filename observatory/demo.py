"""Building the demo fleet into a store, or as OpenMetrics files for promtool."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from collectors import demo_fleet
from observatory.store import Store

#: The drift report archive of a demo store, inside its folder (:func:`drift_archive`).
DEMO_ARCHIVE = "drift-reports"


def drift_archive(root: Path) -> Path:
    """Where ``observatory demo`` writes the drift report of the demo store at ``root``,
    and where ``observatory serve`` points the Drift page for that store: the folder
    named by ``OBSERVATORY_DRIFT_REPORTS`` when it is set, else ``<root>/drift-reports``
    (so the report lives with its store, wherever the command ran)."""
    from observatory.drift_archive import archive_folder

    if os.environ.get("OBSERVATORY_DRIFT_REPORTS", "").strip():
        return archive_folder()
    return root / DEMO_ARCHIVE


def build_store(
    root: Path,
    seed: int = 7,
    days: float = 14,
    end: datetime | None = None,
    regions: list[str] | None = None,
    force: bool = False,
    drift_reports: Path | None = None,
    regressions: bool = False,
) -> str:
    """Simulate the demo fleet and write it into the store at ``root``.

    Skips the work when the store already holds data, unless ``force``.  Writes
    ``ground_truth.json`` beside the lake and, with ``drift_reports`` (the Drift page's
    archive, :func:`observatory.drift_archive.archive_folder`), the JSON drift report
    of the last 24 hours against the 7 days before, as a scheduled job would write it,
    so the page opens on it instead of computing (docs/drift.md).  With ``regressions``
    it runs the whole-fleet analysis of ``observatory regressions`` once (its state in
    ``.regressions/``: the Regressions page then lists the changes that began before
    its range and are still open, docs/regressions.md).  Returns a one-line summary.

    Raises:
        ValueError: unknown region or bad span.
    """
    store = Store(root)
    if store.has_data() and not force:
        return f"demo store {root} already built (use --force to rebuild)"
    began = time.monotonic()
    sims, truth = demo_fleet.simulate(seed=seed, end=end, days=days, regions=regions)
    start, stop = (
        datetime.fromisoformat(truth["start_utc"]),
        datetime.fromisoformat(truth["end_utc"]),
    )
    rows = 0
    with store.writer():
        for sim in sims:
            for table, signals, frame in demo_fleet.region_frames(sim, start, stop):
                rows += store.replace_window(
                    table, sim.region.name, signals, start, stop, frame
                ).rows
        store.write_regions(demo_fleet.region_catalogue(regions))
        demo_fleet.write_truth(truth, root / "ground_truth.json")
        store.touch_version()
    report = (
        f"; drift report {_drift_report(store, drift_reports).resolve()}" if drift_reports else ""
    )
    if regressions:
        from observatory.regressions import analyse, open_critical

        found = analyse(store)
        report += f"; regressions analysed ({len(open_critical(found.regressions))} critical open)"
    return (
        f"demo fleet: {len(sims)} regions, {days:g} days, {rows:,} rows into {root} "
        f"in {time.monotonic() - began:.1f}s{report}"
    )


def _drift_report(store: Store, out: Path) -> Path:
    """The page's default question (24 h against the previous 7 days, every default
    signal, ending at the latest data) as a JSON report in ``out``."""
    from observatory.drift_engine import compute_drift
    from observatory.drift_report import write_report

    return write_report(compute_drift(store), out, "json")


def build_openmetrics(
    out_dir: Path,
    seed: int = 7,
    days: float = 14,
    end: datetime | None = None,
    regions: list[str] | None = None,
) -> list[Path]:
    """Write ``<region>.om`` (OpenMetrics with timestamps) per region and ``ground_truth.json``.

    Raises:
        ValueError: unknown region or bad span.
    """
    sims, truth = demo_fleet.simulate(seed=seed, end=end, days=days, regions=regions)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for sim in sims:
        path = out_dir / f"{sim.region.name}.om"
        with open(path, "w", encoding="utf-8") as fh:
            demo_fleet.write_openmetrics(sim, fh)
        paths.append(path)
    truth_path = out_dir / "ground_truth.json"
    demo_fleet.write_truth(truth, truth_path)
    return [*paths, truth_path]


def build_scale_store(
    root: Path,
    size: str,
    seed: int = 7,
    days: float | None = None,
    end: datetime | None = None,
    force: bool = False,
) -> str:
    """Generate the scale-test fleet ``size`` (``small``/``large``) into the store at ``root``.

    See :mod:`observatory.large_fleet`.  Skips the work when the store already holds
    data, unless ``force`` (then the store folder's lake is removed first).  Returns a
    one-line summary.

    Raises:
        ValueError: unknown size, or ``days`` not a whole number of days.
    """
    import shutil

    from observatory import large_fleet

    store = Store(root)
    if store.has_data() and not force:
        return f"store {root} already holds data (use --force to rebuild)"
    overrides = {}
    if days is not None:
        if days != int(days) or days < 1:
            raise ValueError(f"--days must be a whole number of days for --size {size}, got {days}")
        overrides["days"] = int(days)
    fleet = large_fleet.sized(size, **overrides)
    if force and store.lake.exists():
        shutil.rmtree(store.lake)
    result = large_fleet.build(root, fleet, seed=seed, end=end)
    return (
        f"{size} fleet: {fleet.regions} regions x {fleet.models} models x {fleet.arms} arms, "
        f"{fleet.days} days, {result.total_rows:,} rows into {root} in {result.seconds:.1f}s"
    )

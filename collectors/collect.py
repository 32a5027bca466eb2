"""The collection run: every configured region, in parallel, into the store.

For each region the run collects the window from where its last successful run
ended (or ``collection.lookback`` ago on the first run) up to now minus
``collection.settle``, floored to the step, in chunks of ``collection.chunk``.  After a
chunk's every query succeeded, its rows are written (each partition replaced
atomically) and the region's state advances to the chunk's end; a failed chunk is
rewritten by the next run, so no window is ever skipped and nothing is doubled.

A region that is unreachable or answers errors is reported (region, query, error)
and never stops the other regions.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from collectors.presets import mappings_for
from collectors.prometheus import QueryError, RegionSource
from collectors.transform import TABLE_OF_KIND, LabelRules, from_api, to_rows
from observatory.config import Config, ConfigError, Region
from observatory.store import Store


def _ms(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return round(t.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass
class RegionReport:
    """What happened to one region in one run.

    ``status``: ``ok`` (window collected), ``current`` (nothing new to collect),
    ``partial`` (some chunks collected, then an error), ``failed`` (nothing collected).
    """

    region: str
    status: str = "ok"
    window_start: datetime | None = None
    window_end: datetime | None = None
    collected_until: datetime | None = None
    rows: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _floor(ms: int, step_ms: int) -> int:
    return ms // step_ms * step_ms


class Collector:
    """Collects the configured regions into a store.

    Args:
        config: the loaded configuration.
        store: where rows go.
        source_factory: builds the client of a region (tests and benchmarks may pass
            their own; default :class:`RegionSource`).
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        source_factory: Callable[[Region, float], RegionSource] | None = None,
    ):
        self.config = config
        self.settings = config.settings
        self.store = store
        self._state_lock = threading.Lock()
        self._source_factory = source_factory or (
            lambda region, timeout: RegionSource(region, timeout)
        )

    def run(
        self,
        now: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        regions: list[str] | None = None,
    ) -> list[RegionReport]:
        """Collect every (or the named) region once; returns a report per region.

        Args:
            now: the current time (default: the clock); the window ends at
                ``now - settle`` floored to the step.
            start, end: an explicit window (a backfill); ``start`` overrides the saved
                state, and the state only ever moves forward.
            regions: names to collect (default all).

        Raises:
            ConfigError: an unknown region name.
        """
        coll = self.settings.collection
        step_ms = int(coll.step.total_seconds() * 1000)
        now_ms = _ms(now or datetime.now(UTC))
        # The state never moves past settled time: an explicit ``end`` in the future
        # collects what exists so far, and the next run collects the rest of its steps.
        settled_ms = _floor(now_ms - int(coll.settle.total_seconds() * 1000), step_ms)
        end_ms = _floor(_ms(end), step_ms) if end else settled_ms
        chosen = self.settings.regions
        if regions:
            known = {r.name for r in chosen}
            unknown = [r for r in regions if r not in known]
            if unknown:
                raise ConfigError([f"unknown region(s) {unknown}; configured: {sorted(known)}"])
            chosen = [r for r in chosen if r.name in regions]
        self.store.write_regions(
            pd.DataFrame(
                [
                    {
                        "region": r.name,
                        "display_name": r.title,
                        "latitude": r.latitude,
                        "longitude": r.longitude,
                        "url": r.url,
                    }
                    for r in self.settings.regions
                ]
            )
        )
        state = self.store.read_state()
        starts = {}
        for region in chosen:
            saved = state.get("regions", {}).get(region.name, {}).get("collected_until")
            if start is not None:
                s = _floor(_ms(start), step_ms)
            elif saved:
                s = _ms(datetime.fromisoformat(saved))
            else:
                s = _floor(end_ms - int(coll.lookback.total_seconds() * 1000), step_ms)
            starts[region.name] = s
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(chosen)))) as pool:
            futures = [
                pool.submit(self._region, r, starts[r.name], end_ms, step_ms, settled_ms)
                for r in chosen
            ]
            reports = [f.result() for f in futures]
        self.store.touch_version()
        return reports

    def _region(
        self, region: Region, start_ms: int, end_ms: int, step_ms: int, settled_ms: int
    ) -> RegionReport:
        began = time.monotonic()
        started_at = datetime.now(UTC)
        report = RegionReport(region.name, window_start=_dt(start_ms), window_end=_dt(end_ms))
        if start_ms >= end_ms:
            report.status = "current"
        else:
            try:
                source = self._source_factory(
                    region, self.settings.collection.timeout.total_seconds()
                )
            except ConfigError as exc:
                report.status = "failed"
                report.errors.append(str(exc))
            else:
                try:
                    self._collect_region(
                        region, source, start_ms, end_ms, step_ms, report, settled_ms
                    )
                finally:
                    source.close()
        report.seconds = time.monotonic() - began
        self.store.append_run_log(
            {
                "started_utc": started_at.replace(tzinfo=None).isoformat(),
                "finished_utc": datetime.now(UTC).replace(tzinfo=None).isoformat(),
                "region": region.name,
                "status": report.status,
                "window_start_utc": _dt(start_ms).replace(tzinfo=None).isoformat(),
                "window_end_utc": _dt(end_ms).replace(tzinfo=None).isoformat(),
                "rows": report.rows,
                "error": "; ".join(report.errors) or None,
            }
        )
        return report

    def _collect_region(
        self,
        region: Region,
        source: RegionSource,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        report: RegionReport,
        settled_ms: int,
    ) -> None:
        coll = self.settings.collection
        chunk_ms = int(coll.chunk.total_seconds() * 1000)
        lookback_ms = int(coll.counter_lookback.total_seconds() * 1000)
        rules = LabelRules(model=region.labels.model, arm=region.labels.arm)
        mappings = mappings_for(region.presets)
        chunk_start = start_ms
        while chunk_start < end_ms:
            chunk_end = min(chunk_start + chunk_ms, end_ms)
            frames: dict[str, list[pd.DataFrame]] = defaultdict(list)
            signals: dict[str, set[str]] = defaultdict(set)
            failed = False
            for mapping in mappings:
                extra = lookback_ms if mapping.kind != "gauge" else 0
                range_s = -(-(chunk_end - chunk_start + extra) // 1000)
                try:
                    answer = source.raw_samples(mapping.selector, chunk_end, range_s)
                    rows = to_rows(
                        from_api(answer), mapping, rules, chunk_start, chunk_end, step_ms
                    )
                except QueryError as exc:
                    report.errors.append(str(exc))
                    failed = True
                    if exc.unreachable:
                        break
                    continue
                except ValueError as exc:
                    report.errors.append(f"region {region.name}: {mapping.selector}: {exc}")
                    failed = True
                    continue
                table = TABLE_OF_KIND[mapping.kind]
                signals[table].add(mapping.signal)
                if len(rows):
                    frames[table].append(rows)
            for table, sigs in signals.items():
                frame = (
                    pd.concat(frames[table], ignore_index=True) if frames[table] else pd.DataFrame()
                )
                result = self.store.replace_window(
                    table, region.name, sorted(sigs), _dt(chunk_start), _dt(chunk_end), frame
                )
                report.rows += result.rows
            if failed:
                break
            self._advance(region.name, min(chunk_end, settled_ms))
            report.collected_until = _dt(chunk_end)
            chunk_start = chunk_end
        if report.errors:
            report.status = "partial" if report.collected_until else "failed"

    def _advance(self, region: str, until_ms: int) -> None:
        with self._state_lock:
            state = self.store.read_state()
            regions = state.setdefault("regions", {})
            current = regions.get(region, {}).get("collected_until")
            if current and _ms(datetime.fromisoformat(current)) >= until_ms:
                return
            regions[region] = {"collected_until": _dt(until_ms).isoformat()}
            self.store.write_state(state)

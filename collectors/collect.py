"""The collection run: every configured region, in parallel, into the store.

For each region the run collects the window from where its last successful run
ended (or ``collection.lookback`` ago on the first run) up to now minus
``collection.settle``, floored to the step.

Plan.  A region's mappings (presets, price table, config-defined signals) become
*fetches*: one query per chunk for all mappings of one metric name (``requests`` and
``errors`` both come from ``vllm:request_success_total``: it is fetched once and split
by ``finished_reason`` locally).  Fetches that feed a common signal form a *unit*:
the unit is what succeeds or fails together, and what the state tracks (per signal).

Pipeline.  Queries are sent ``collection.parallel_queries`` at a time per region,
ahead of the transform, so Prometheus encodes the next answers while the previous
ones are parsed, turned into rows and written.  Rows are accumulated for one write
batch (``collection.write_batch``, a UTC day by default), then each touched partition
is replaced once (atomically) and the state of the batch's signals advances.

Failures.  A failed query (after retries) fails its unit for the rest of the run:
its signals' state stays where it was and the next run fetches that window again;
the other units go on.  An unreachable server, or a server that answers only errors,
stops its region; the other regions go on.  Killed at any instant, a run leaves
every partition either old or new and the state at the end of the last written
batch: the next run rewrites from there (idempotent), so nothing is lost or doubled.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from collectors import metrics
from collectors.presets import Mapping, region_mappings
from collectors.prometheus import Matrix, QueryError, RegionSource, merge_matrices
from collectors.selector import (
    Selector,
    add_matchers,
    parse_selector,
    quote_label_value,
    values_regex,
)
from collectors.transform import (
    TABLE_OF_KIND,
    Block,
    Coverage,
    LabelRules,
    blocks_table,
    matrix_block,
)
from observatory.config import Config, ConfigError, Region
from observatory.store import COMPACT_GRACE, Store, StoreError

log = logging.getLogger(__name__)

#: Wall-clock seconds of closed-day compaction per collector run (:meth:`Collector.run`;
#: :meth:`Store.compact_closed` ``budget_s``): a newly closed date of the 20-region
#: large fleet (260 partitions, about 17 CPU-s) is spread over a few runs instead of
#: one step (docs/scaling.md, "Does the collector keep up?").
COMPACT_BUDGET_S = 10.0


def _ms(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return round(t.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _floor(ms: int, step_ms: int) -> int:
    return ms // step_ms * step_ms


def _naive_iso(ms: int) -> str:
    return _dt(ms).replace(tzinfo=None).isoformat()


@dataclass
class RegionReport:
    """What happened to one region in one run.

    ``status``: ``ok`` (window collected), ``current`` (nothing new to collect),
    ``partial`` (some signals or chunks collected, then an error), ``failed`` (nothing
    collected), ``stopped`` (a shutdown was requested before the window was done).
    """

    region: str
    status: str = "ok"
    window_start: datetime | None = None
    window_end: datetime | None = None
    collected_until: datetime | None = None
    rows: int = 0
    samples: int = 0
    queries: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    coverage: dict[str, Coverage] = field(default_factory=dict)
    seconds: float = 0.0

    def coverage_ratios(self) -> dict[str, float | None]:
        """Per signal: share of expected (series, step) pairs that held a sample."""
        return {
            s: (round(c.ratio, 6) if c.ratio is not None else None)
            for s, c in sorted(self.coverage.items())
        }


# ------------------------------------------------------------------------- plan
@dataclass
class Fetch:
    """One query per chunk and the mappings whose rows come from its answer.

    ``mode``: ``raw`` (instant query of ``text[range]``, raw samples) or ``range``
    (``query_range`` of the PromQL expression ``text``).  ``filters[i]``: the local
    selector that picks ``mappings[i]``'s series out of the answer (None: all).
    """

    text: str
    mode: str
    lookback: bool
    mappings: list[Mapping]
    filters: list[Selector | None]
    split: int = 1  # time pieces per chunk (grows when answers are too big)
    #: selectors (this fetch's, or a series group of it) the server refused as too
    #: large: later chunks list their series and fetch them in groups at once
    by_series: set[str] = field(default_factory=set)

    @property
    def signals(self) -> set[str]:
        """Signals fed by this fetch."""
        return {m.signal for m in self.mappings}


@dataclass
class Unit:
    """Fetches that feed common signals: collected, written and advanced together."""

    fetches: list[Fetch]
    start_ms: int = 0
    failed: bool = False

    @property
    def signals(self) -> set[str]:
        """Signals of the unit."""
        return set().union(*(f.signals for f in self.fetches))

    @property
    def tables(self) -> dict[str, set[str]]:
        """Table -> signals written there."""
        out: dict[str, set[str]] = defaultdict(set)
        for f in self.fetches:
            for m in f.mappings:
                out[TABLE_OF_KIND[m.kind]].add(m.signal)
        return out


def plan_fetches(mappings: list[Mapping]) -> list[Fetch]:
    """Group mappings into queries: one fetch per metric name where one mapping of that
    name has no label matchers (the others are filtered locally); expressions and
    selectors with only different matchers are fetched on their own.

    Raises:
        ValueError: a selector that cannot be parsed.
    """
    fetches: list[Fetch] = []
    by_name: dict[str, list[tuple[Mapping, Selector]]] = defaultdict(list)
    for m in mappings:
        if m.expr:
            fetches.append(Fetch(m.selector, "range", False, [m], [None]))
            continue
        sel = parse_selector(m.selector)
        by_name[sel.name or m.selector].append((m, sel))
    for name, group in by_name.items():
        bare = next((m.selector for m, sel in group if sel.name and not sel.matchers), None)
        if bare is not None:
            fetches.append(
                Fetch(
                    bare,
                    "raw",
                    any(m.kind != "gauge" for m, _ in group),
                    [m for m, _ in group],
                    [None if m.selector == bare else sel for m, sel in group],
                )
            )
            continue
        by_text: dict[str, list[Mapping]] = defaultdict(list)
        for m, _sel in group:
            by_text[m.selector].append(m)
        for text, ms in by_text.items():
            fetches.append(
                Fetch(text, "raw", any(m.kind != "gauge" for m in ms), ms, [None] * len(ms))
            )
        del name
    return fetches


def plan_units(fetches: list[Fetch]) -> list[Unit]:
    """Connected groups of fetches that share a signal."""
    parent = list(range(len(fetches)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, f in enumerate(fetches):
        for s in f.signals:
            if s in owner:
                parent[find(i)] = find(owner[s])
            else:
                owner[s] = i
    groups: dict[int, list[Fetch]] = defaultdict(list)
    for i, f in enumerate(fetches):
        groups[find(i)].append(f)
    return [Unit(g) for g in groups.values()]


def dedup_replicas(matrix: Matrix, label: str) -> Matrix:
    """Keep one HA replica per series: the one with the most samples (ties: the
    smallest replica name), series compared without the replica ``label``."""
    best: dict[tuple[tuple[str, str], ...], tuple[int, str, int]] = {}
    lens = matrix.lengths
    for i, lab in enumerate(matrix.labels):
        key = tuple(sorted((k, v) for k, v in lab.items() if k != label))
        cand = (-int(lens[i]), lab.get(label, ""), i)
        if key not in best or cand < best[key]:
            best[key] = cand
    keep = np.sort(np.fromiter((c[2] for c in best.values()), dtype=np.int64))
    if keep.size == len(matrix.labels):
        return matrix
    return matrix.take(keep)


# ------------------------------------------------------------------------- run
@dataclass
class _Task:
    batch: int
    start_ms: int  # the unit's window in this chunk: (start, end]
    end_ms: int
    unit: Unit
    fetch: Fetch


class Collector:
    """Collects the configured regions into a store.

    Args:
        config: the loaded configuration.
        store: where rows go.
        source_factory: builds the client of a region (tests and benchmarks may pass
            their own; default :class:`RegionSource`).
        progress: called as ``progress(region, done_ms, total_ms)`` after each write.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        source_factory: Callable[[Region, float], RegionSource] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ):
        self.config = config
        self.settings = config.settings
        self.store = store
        self.stop_event = threading.Event()
        self.progress = progress
        self._state_lock = threading.Lock()
        coll = self.settings.collection
        self._source_factory = source_factory or (
            lambda region, timeout: RegionSource(
                region,
                timeout,
                retries=coll.retries,
                backoff_s=coll.retry_backoff.total_seconds(),
                max_backoff_s=coll.retry_max_backoff.total_seconds(),
                pool=coll.parallel_queries,
                compression=coll.compression,
            )
        )

    def stop(self) -> None:
        """Ask a running :meth:`run` to finish its current write and return."""
        self.stop_event.set()

    # --------------------------------------------------------------- windows
    def _chosen(self, regions: list[str] | None) -> list[Region]:
        chosen = list(self.settings.regions)
        if regions:
            known = {r.name for r in chosen}
            unknown = [r for r in regions if r not in known]
            if unknown:
                raise ConfigError([f"unknown region(s) {unknown}; configured: {sorted(known)}"])
            chosen = [r for r in chosen if r.name in regions]
        return chosen

    def _bounds(self, now: datetime | None, end: datetime | None) -> tuple[int, int, int]:
        coll = self.settings.collection
        step_ms = int(coll.step.total_seconds() * 1000)
        now_ms = _ms(now or datetime.now(UTC))
        # The state never moves past settled time.  An explicit ``end`` in the future
        # collects what exists so far: the window ends at most at the end of the step
        # now in progress (its samples so far; the next run collects the rest of it),
        # not at the far-off time asked for (no queries into the future, and the run
        # log records the window actually read).
        settled_ms = _floor(now_ms - int(coll.settle.total_seconds() * 1000), step_ms)
        current_ms = _floor(now_ms, step_ms) + step_ms
        end_ms = min(_floor(_ms(end), step_ms), current_ms) if end else settled_ms
        return step_ms, end_ms, settled_ms

    def _unit_starts(
        self, region: Region, units: list[Unit], start: datetime | None, end_ms: int, step_ms: int
    ) -> None:
        coll = self.settings.collection
        saved = self.store.read_state().get("regions", {}).get(region.name, {})
        default = _floor(end_ms - int(coll.lookback.total_seconds() * 1000), step_ms)
        for unit in units:
            if start is not None:
                unit.start_ms = _floor(_ms(start), step_ms)
                continue
            marks = []
            for sig in unit.signals:
                iso = (saved.get("signals") or {}).get(sig) or saved.get("collected_until")
                marks.append(_ms(datetime.fromisoformat(iso)) if iso else default)
                late = coll.refetch.get(sig)
                if late is not None:  # late data: re-read (and replace) this much again
                    marks.append(_floor(end_ms - int(late.total_seconds() * 1000), step_ms))
            unit.start_ms = min(marks) if marks else default

    def plan(
        self,
        now: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        regions: list[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """What a run would send (``--dry-run``): per region, one entry per query."""
        step_ms, end_ms, _ = self._bounds(now, end)
        coll = self.settings.collection
        chunk_ms = int(coll.chunk.total_seconds() * 1000)
        lookback_ms = int(coll.counter_lookback.total_seconds() * 1000)
        out: dict[str, list[dict[str, Any]]] = {}
        for region in self._chosen(regions):
            units = plan_units(plan_fetches(region_mappings(region)))
            self._unit_starts(region, units, start, end_ms, step_ms)
            entries = []
            for unit in units:
                for f in unit.fetches:
                    s = unit.start_ms
                    chunks = max(0, -(-(end_ms - s) // chunk_ms))
                    width = min(chunk_ms, max(0, end_ms - s)) + (lookback_ms if f.lookback else 0)
                    if f.mode == "raw":
                        promql = f"{f.text}[{max(1, width // 1000)}s]"
                        how = "instant query at each chunk end"
                    else:
                        promql = f.text
                        how = f"query_range, step {step_ms // 1000}s"
                    entries.append(
                        {
                            "promql": promql,
                            "how": how,
                            "signals": sorted(f.signals),
                            "from": _dt(s).isoformat(),
                            "to": _dt(end_ms).isoformat(),
                            "queries": chunks,
                        }
                    )
            out[region.name] = entries
        return out

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
            ConfigError: an unknown region name; ``start`` not before ``end``; a
                ``start`` in the future (nothing there to collect, and a resume point
                there would skip the steps up to it).
        """
        step_ms, end_ms, settled_ms = self._bounds(now, end)
        if start is not None:
            start_ms = _ms(start)
            if start_ms >= end_ms:
                raise ConfigError(
                    [
                        f"--from {_dt(start_ms).isoformat()} must be before "
                        f"--to {_dt(end_ms).isoformat()}"
                    ]
                )
            if start_ms >= settled_ms:
                raise ConfigError(
                    [
                        f"--from {_dt(start_ms).isoformat()} is not in the past yet "
                        f"(collected time ends at {_dt(settled_ms).isoformat()}, now minus settle)"
                    ]
                )
        chosen = self._chosen(regions)
        with self.store.writer():
            self.store.write_regions(
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
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(chosen)))) as pool:
                futures = [
                    pool.submit(self._region, r, start, end_ms, step_ms, settled_ms) for r in chosen
                ]
                reports = [f.result() for f in futures]
            self._compact(now)
            self.store.touch_version()
        return reports

    def _compact(self, now: datetime | None) -> None:
        """Merge closed days' hour files (:meth:`Store.compact_closed`): dates the
        collector no longer rewrites, at least a day after they ended and after its
        longest re-read (``settle`` plus the longest ``refetch``), at most
        :data:`COMPACT_BUDGET_S` seconds of it per run (the rest in the next runs).
        A failure is logged and collection goes on (the hour files stay exact)."""
        coll = self.settings.collection
        reread = max(coll.refetch.values(), default=timedelta(0)) + coll.settle
        try:
            done = self.store.compact_closed(
                now, grace=max(COMPACT_GRACE, reread), budget_s=COMPACT_BUDGET_S
            )
        except (StoreError, OSError) as exc:
            log.warning("compaction of closed days failed: %s", exc)
            return
        if done.remaining:
            log.info(
                "compacted %d closed partition(s); %d left for the next run(s)",
                done.compacted,
                done.remaining,
            )

    def _region(
        self, region: Region, start: datetime | None, end_ms: int, step_ms: int, settled_ms: int
    ) -> RegionReport:
        began = time.monotonic()
        started_at = datetime.now(UTC)
        report = RegionReport(region.name, window_end=_dt(end_ms))
        units: list[Unit] = []
        try:
            units = plan_units(plan_fetches(region_mappings(region)))
            self._unit_starts(region, units, start, end_ms, step_ms)
        except (ValueError, KeyError) as exc:
            report.status = "failed"
            report.errors.append(f"region {region.name}: {exc}")
        start_ms = min((u.start_ms for u in units), default=end_ms)
        report.window_start = _dt(min(start_ms, end_ms))
        if report.errors:
            pass  # the plan failed: reported above
        elif start_ms >= end_ms:
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
                    self._collect_region(region, source, units, end_ms, step_ms, report, settled_ms)
                except Exception as exc:  # a bug or the store: report it, keep other regions
                    report.errors.append(f"region {region.name}: {type(exc).__name__}: {exc}")
                    report.status = "partial" if report.collected_until else "failed"
                finally:
                    report.retries = source.retried
                    source.close()
        report.seconds = time.monotonic() - began
        metrics.observe_region(region.name, report, settled_ms)
        self.store.append_run_log(
            {
                "started_utc": started_at.replace(tzinfo=None).isoformat(),
                "finished_utc": datetime.now(UTC).replace(tzinfo=None).isoformat(),
                "region": region.name,
                "status": report.status,
                "window_start_utc": _naive_iso(min(start_ms, end_ms)),
                "window_end_utc": _naive_iso(end_ms),
                "rows": report.rows,
                "error": "; ".join(report.errors) or None,
                "samples": report.samples,
                "queries": report.queries,
                "retries": report.retries,
                "seconds": round(report.seconds, 3),
                "coverage": report.coverage_ratios(),
                "warnings": report.warnings or None,
            }
        )
        return report

    # --------------------------------------------------------------- pipeline
    def _batches(self, start_ms: int, end_ms: int, step_ms: int) -> list[tuple[int, int]]:
        coll = self.settings.collection
        batch_ms = int(coll.write_batch.total_seconds() * 1000)
        # Boundaries one step before the grid (23:59 for days): a step is stored under
        # the date of its END, so a batch (23:59, 23:59] fills exactly one date
        # partition per signal, written once and never read back.
        out = []
        t = start_ms
        while t < end_ms:
            nxt = min(((t + step_ms) // batch_ms + 1) * batch_ms - step_ms, end_ms)
            out.append((t, nxt))
            t = nxt
        return out

    def _tasks(
        self, units: list[Unit], batches: list[tuple[int, int]], chunk_ms: int
    ) -> Iterator[_Task]:
        for b, (bs, be) in enumerate(batches):
            cs = bs
            while cs < be:
                ce = min(cs + chunk_ms, be)
                for unit in units:
                    if unit.failed or unit.start_ms >= ce:
                        continue
                    for f in unit.fetches:
                        yield _Task(b, max(cs, unit.start_ms), ce, unit, f)
                cs = ce

    def _fetch(self, source: RegionSource, region: Region, task: _Task, step_ms: int) -> Matrix:
        coll = self.settings.collection
        f = task.fetch
        if f.mode == "range":
            return source.query_range(f.text, task.start_ms + step_ms, task.end_ms, step_ms)
        lookback_ms = int(coll.counter_lookback.total_seconds() * 1000) if f.lookback else 0
        lo = task.start_ms - lookback_ms
        matrix = self._fetch_raw(source, f, lo, task.end_ms, step_ms, f.split)
        if matrix.samples > coll.max_samples:
            f.split = min(64, f.split * -(-matrix.samples // coll.max_samples))
        if region.dedup_label:
            matrix = dedup_replicas(matrix, region.dedup_label)
        return matrix

    def _fetch_raw(
        self,
        source: RegionSource,
        f: Fetch,
        lo: int,
        hi: int,
        step_ms: int,
        pieces: int,
        text: str | None = None,
    ) -> Matrix:
        """Raw samples in ``[lo, hi]`` of ``text`` (default the fetch's selector), in
        ``pieces`` consecutive time ranges.

        A query the server refuses as too large (Prometheus's ``--query.max-samples``,
        VictoriaMetrics' ``maxSamplesPerQuery``) is split by series first: the series
        are listed (``/api/v1/series``) and fetched in two groups told apart by the
        values of their most varied label, recursively; a group of one series is
        halved in time (down to one step).  The groups' series are disjoint and cover
        every series of the window, so the merged answer is the unsplit one.
        """
        text = text or f.text
        if pieces > 1 and hi - lo > step_ms:
            bounds = [lo + (hi - lo) * i // pieces for i in range(pieces + 1)]
            parts = [
                self._fetch_raw(source, f, a + (1 if i else 0), b, step_ms, 1, text)
                for i, (a, b) in enumerate(itertools.pairwise(bounds))
            ]
            return merge_matrices(parts)
        groups = self._series_groups(source, text, lo, hi) if text in f.by_series else None
        if groups is None:
            try:
                return source.raw_samples(text, hi, hi - lo)
            except QueryError as exc:
                if not exc.too_big:
                    raise
                f.by_series.add(text)  # later chunks of this selector: split at once
                groups = self._series_groups(source, text, lo, hi)
                if groups is None:
                    if hi - lo > step_ms:
                        return self._fetch_raw(source, f, lo, hi, step_ms, 2, text)
                    raise
        if not groups:
            return Matrix.empty()
        return merge_matrices([self._fetch_raw(source, f, lo, hi, step_ms, 1, g) for g in groups])

    @staticmethod
    def _series_groups(source: RegionSource, text: str, lo: int, hi: int) -> list[str] | None:
        """Two selectors that together match exactly the series of ``text`` in
        ``[lo, hi]``, split on the label with the most distinct values; ``[]`` when no
        series exist, None when there is one series (nothing to split)."""
        series = source.series(text, lo, hi)
        if not series:
            return []
        keys = {k for labels in series for k in labels}
        distinct = {k: sorted({labels.get(k, "") for labels in series}) for k in keys}
        label = max(sorted(distinct), key=lambda k: len(distinct[k]))
        values = distinct[label]
        if len(values) < 2:
            return None
        half = len(values) // 2
        return [
            add_matchers(text, [f"{label}=~{quote_label_value(values_regex(part))}"])
            for part in (values[:half], values[half:])
        ]

    def _collect_region(
        self,
        region: Region,
        source: RegionSource,
        units: list[Unit],
        end_ms: int,
        step_ms: int,
        report: RegionReport,
        settled_ms: int,
    ) -> None:
        coll = self.settings.collection
        chunk_ms = int(coll.chunk.total_seconds() * 1000)
        rules = LabelRules(model=region.labels.model, arm=region.labels.arm)
        start_ms = min(u.start_ms for u in units)
        batches = self._batches(start_ms, end_ms, step_ms)
        tasks = self._tasks(units, batches, chunk_ms)
        inflight: deque[tuple[_Task, Future[Matrix]]] = deque()
        depth = max(2, coll.parallel_queries * 2)
        # rows of the current batch: unit index -> table -> frames
        pending: dict[int, dict[str, list[Block]]] = defaultdict(lambda: defaultdict(list))
        unit_ids = {id(u): i for i, u in enumerate(units)}
        current_batch = 0
        server_errors = 0
        succeeded = False
        advanced = False
        stopped = False
        seen_warnings: set[str] = set()

        def refill(pool: ThreadPoolExecutor) -> None:
            while len(inflight) < depth and not self.stop_event.is_set():
                task = next(tasks, None)
                if task is None:
                    return
                inflight.append((task, pool.submit(self._fetch, source, region, task, step_ms)))

        def write_batch(b: int) -> None:
            nonlocal advanced
            bs, be = batches[b]
            done_units = [u for u in units if not u.failed and u.start_ms < be]
            groups: dict[int, list[Unit]] = defaultdict(list)
            for u in done_units:
                groups[max(bs, u.start_ms)].append(u)
            for ws, members in groups.items():
                tables: dict[str, set[str]] = defaultdict(set)
                frames: dict[str, list[Block]] = defaultdict(list)
                for u in members:
                    for table, sigs in u.tables.items():
                        tables[table] |= sigs
                        frames[table].extend(pending[unit_ids[id(u)]].get(table, []))
                for table, sigs in tables.items():
                    frame = blocks_table(frames[table])
                    result = self.store.replace_window(
                        table, region.name, sorted(sigs), _dt(ws), _dt(be), frame
                    )
                    report.rows += result.rows
                    metrics.ROWS.labels(region.name, table).inc(result.rows)
                self._advance(
                    region.name,
                    set().union(*(u.signals for u in members)),
                    ws,
                    min(be, settled_ms),
                    {s: u.start_ms for u in units for s in u.signals},
                )
                advanced = True
            pending.clear()
            if done_units:
                report.collected_until = _dt(be)
                for u in done_units:
                    u.start_ms = max(u.start_ms, be)
            if self.progress:
                self.progress(region.name, be - start_ms, end_ms - start_ms)

        with ThreadPoolExecutor(
            max_workers=coll.parallel_queries, thread_name_prefix=f"fetch-{region.name}"
        ) as pool:
            try:
                refill(pool)
                while inflight:
                    task, fut = inflight.popleft()
                    if task.batch != current_batch:
                        write_batch(current_batch)
                        current_batch = task.batch
                        if self.stop_event.is_set():
                            stopped = True
                            break
                    try:
                        matrix = fut.result()
                    except QueryError as exc:
                        report.queries += 1
                        metrics.ERRORS.labels(region.name, _error_kind(exc)).inc()
                        if not task.unit.failed:
                            report.errors.append(str(exc))
                            task.unit.failed = True
                        if exc.unreachable or exc.status >= 500:
                            server_errors += 1
                        if exc.unreachable or exc.not_api or (server_errors >= 3 and not succeeded):
                            for u in units:
                                u.failed = True
                            break
                        refill(pool)
                        continue
                    report.queries += 1
                    succeeded = True
                    if not task.unit.failed:
                        try:
                            self._rows(task, matrix, rules, step_ms, report, pending, unit_ids)
                        except ValueError as exc:
                            report.errors.append(
                                f"region {region.name}: query {task.fetch.text!r}: {exc}"
                            )
                            task.unit.failed = True
                        for w in matrix.warnings:
                            text = f"region {region.name}: query {task.fetch.text!r}: {w}"
                            if text not in seen_warnings:
                                seen_warnings.add(text)
                                report.warnings.append(text)
                    del matrix
                    if self.stop_event.is_set():
                        stopped = True
                        # finish nothing half: the unwritten batch is dropped, state intact
                        break
                    refill(pool)
                else:
                    if not stopped and any(not u.failed for u in units):
                        write_batch(current_batch)
            finally:
                for _task, fut in inflight:
                    fut.cancel()
        if stopped:
            report.status = "stopped"
        elif report.errors:
            report.status = "partial" if advanced else "failed"

    def _rows(
        self,
        task: _Task,
        matrix: Matrix,
        rules: LabelRules,
        step_ms: int,
        report: RegionReport,
        pending: dict[int, dict[str, list[Block]]],
        unit_ids: dict[int, int],
    ) -> None:
        f = task.fetch
        report.samples += matrix.samples
        metrics.SAMPLES.labels(report.region).inc(matrix.samples)
        masks: dict[str, np.ndarray] = {}
        for mapping, sel in zip(f.mappings, f.filters, strict=True):
            series = None
            if sel is not None:
                if mapping.selector not in masks:
                    masks[mapping.selector] = np.flatnonzero(
                        np.fromiter(
                            (sel.matches(lab) for lab in matrix.labels),
                            dtype=bool,
                            count=len(matrix.labels),
                        )
                    )
                series = masks[mapping.selector]
            block, cov = matrix_block(
                matrix, mapping, rules, task.start_ms, task.end_ms, step_ms, series
            )
            report.coverage.setdefault(mapping.signal, Coverage()).add(cov)
            if block is not None:
                pending[unit_ids[id(task.unit)]][TABLE_OF_KIND[mapping.kind]].append(block)

    def _advance(
        self,
        region: str,
        signals: set[str],
        from_ms: int,
        until_ms: int,
        starts: dict[str, int],
    ) -> None:
        """Move ``signals`` of ``region`` to ``until_ms`` (never backwards, never over a gap).

        ``from_ms`` is where the written window began: a signal whose mark lies before
        it keeps its mark (the steps between were not collected, e.g. a backfill of a
        later or future window), and nothing moves when ``until_ms <= from_ms``.

        ``starts``: every signal of the region and where its unit started this run; a
        signal without a mark yet (its unit failed before writing) is recorded there,
        so that the region's ``collected_until`` (the minimum over its signals) and
        the next run's window are right for it too.
        """
        with self._state_lock:
            state = self.store.read_state()
            regions = state.setdefault("regions", {})
            entry = regions.setdefault(region, {})
            legacy = entry.get("collected_until") if "signals" not in entry else None
            marks = entry.setdefault("signals", {})
            for sig, start_ms in starts.items():
                if sig not in marks:
                    marks[sig] = legacy or _dt(start_ms).isoformat()
            for sig in signals:
                current = marks.get(sig)
                if until_ms <= from_ms:
                    continue
                if current:
                    current_ms = _ms(datetime.fromisoformat(current))
                    if current_ms >= until_ms or current_ms < from_ms:
                        continue
                marks[sig] = _dt(until_ms).isoformat()
            known = [marks[s] for s in starts if s in marks]
            if known:
                entry["collected_until"] = min(
                    known, key=lambda iso: _ms(datetime.fromisoformat(iso))
                )
            self.store.write_state(state)


def _error_kind(exc: QueryError) -> str:
    if exc.unreachable:
        return "unreachable"
    if exc.status >= 500 or exc.status == 429:
        return "server"
    if exc.status:
        return "query"
    return "other"

"""Experiments kept as summed moments beside the store, refreshed incrementally.

The reference analysis (:func:`observatory.experiment_engine.run`) reads every
per-minute replicate of an experiment's window: at 20 regions x 2 arms x 30 days that
is 1.7 M replicates and 38 M bucket rows per page view.  Every statistic is a function
of sums over replicates (:mod:`analytics.experiment_moments`), so this module keeps
those sums instead, per **block** of one day of the experiment's hour grid
(``(origin + b days, origin + (b + 1) days]``, ``origin`` = the window's start):

- a block's moments are computed from its replicates (the same named queries and
  :func:`~observatory.experiment_engine.load` as the reference path, narrowed to the
  block, read in runs of at most a week of consecutive blocks to bound memory) and
  saved with a **fingerprint** of its source partitions: path, modification time (ns)
  and size of every data file of the experiment's signals, dates and regions the
  block reads.  A partition is replaced atomically by the writer, so new data
  changes its fingerprint; only those blocks are computed again (today's, in a live
  store), and the last block also when the window's end moved;
- the experiment listing is kept per data file the same way
  (:mod:`observatory.experiment_listing`).

Where: :func:`observatory.experiment_files.state_dir`.  Writes are atomic (temporary
file + ``os.replace``); a generation id ties the manifest to its frames, so a reader
never mixes two writers' files.  Without write access everything still works, computed in memory.
``observatory experiment refresh`` (run by the scheduler, off the request path) keeps
the state fresh; the dashboard then only stats files and reads a few small frames.
docs/experiments.md ("Performance") has the measurements.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.carbon import CarbonModel
from analytics.experiment_metrics import REPLICATE_COLUMNS, Buckets
from analytics.experiment_moments import HOUR_NS, Moments, MomentSource
from observatory import experiment_engine as ee
from observatory.experiment_files import best_effort, state_dir, write_frame
from observatory.experiment_listing import arms_frame
from observatory.experiments_config import Experiments
from observatory.store import SQL_DIR, Store, atomic_write_bytes

#: The partitions an experiment's replicates read (sql/queries/experiment_*.sql).
SOURCES: dict[str, tuple[str, ...]] = {
    "counters": (
        "requests", "errors", "latency_sum", "prompt_tokens", "generation_tokens", "energy",
    ),
    "gauges": ("cost", "accuracy"),
    "histograms": ("latency",),
}  # fmt: skip
BLOCK = timedelta(days=1)
#: Blocks read at once (one load of their replicates): bounds the memory of a first
#: refresh to a week of replicates (0.4 M at 20 regions x 2 arms).
BLOCKS_PER_READ = 7
#: Files of an older generation are removed once they are this old (readers done).
OLD_GENERATION_S = 600.0
_FRAMES = ("regional", "hourly", "live")


# ====================================================================== moments
@dataclass(frozen=True)
class Block:
    """One day of an experiment's hour grid: replicates ending in ``(start, end]``."""

    index: int
    start: datetime
    end: datetime

    def dates(self) -> list[date]:
        """The partition dates holding its steps."""
        first = (self.start + timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((self.end.date() - first).days + 1)]


def blocks(origin: datetime, end: datetime) -> list[Block]:
    """The blocks of the window ``(origin, end]``; the last ends at ``end``."""
    out, b = [], 0
    while origin + b * BLOCK < end:
        out.append(Block(b, origin + b * BLOCK, min(origin + (b + 1) * BLOCK, end)))
        b += 1
    return out


def fingerprint(
    store: Store, block: Block, regions: list[str], seen: dict[str, str] | None = None
) -> str:
    """A digest of every source partition the block reads: its path and
    :meth:`Store.partition_stamp` (changes with any write into it).

    ``seen`` keeps each file's entry across the blocks of one call (neighbouring
    blocks share a date).
    """
    seen = {} if seen is None else seen
    h = hashlib.sha1(f"{block.start.isoformat()}|{block.end.isoformat()}".encode())
    for table, signals in SOURCES.items():
        for signal in signals:
            for day in block.dates():
                for region in regions:
                    rel = f"{table}/signal={signal}/date={day.isoformat()}/region={region}"
                    entry = seen.get(rel)
                    if entry is None:
                        stamp = store.partition_stamp(table, signal, day, region)
                        entry = f"{rel}:{'-' if stamp is None else stamp}\n"
                        seen[rel] = entry
                    h.update(entry.encode())
    return h.hexdigest()


def experiment_key(item: ee.Listed, carbon: CarbonModel, origin: datetime) -> str:
    """What the moments depend on besides the data: the definition, carbon factors, origin."""
    text = f"{item.spec!r}|{carbon!r}|{origin.isoformat()}|{sorted(item.regions)}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _folder(store: Store, item: ee.Listed, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.spec.name)[:60]
    return state_dir(store) / "moments" / f"{safe}-{key}"


@dataclass
class _Saved:
    """The saved state: the bounds of its bucket columns, block entries, and frames
    (``regional``, ``hourly``, ``live``, each with a ``block`` column)."""

    le: list[float]
    entries: dict[int, dict[str, Any]]
    frames: dict[str, pd.DataFrame]

    def part(self, keep: set[int], origin: pd.Timestamp, arms: tuple[str, ...]) -> Moments:
        """The saved blocks ``keep`` as one :class:`Moments` (rows of several blocks)."""
        rows = {n: f[f["block"].isin(keep)].drop(columns="block") for n, f in self.frames.items()}
        return Moments(
            origin, arms, np.asarray(self.le, dtype=np.float64),
            rows["regional"], rows["hourly"], rows["live"],
        )  # fmt: skip


def _read_saved(folder: Path, key: str) -> _Saved:
    empty = _Saved([], {}, {})
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("key") != key:
            return empty
        gen = manifest["generation"]
        frames = {n: pd.read_parquet(folder / f"{gen}-{n}.parquet") for n in _FRAMES}
    except (OSError, ValueError, KeyError):
        return empty
    entries = {int(b): e for b, e in manifest["blocks"].items()}
    return _Saved([float(x) for x in manifest["le"]], entries, frames)


def _save(
    folder: Path,
    key: str,
    le: list[float],
    entries: dict[int, dict[str, Any]],
    kept: dict[str, pd.DataFrame],
    fresh: dict[int, Moments],
) -> None:
    """Write the frames (saved rows ``kept`` and the ``fresh`` blocks), then the manifest."""
    gen = uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    for name in _FRAMES:
        frames = [kept[name]] if name in kept else []
        frames += [getattr(m, name).assign(block=b) for b, m in sorted(fresh.items())]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"block": []})
        write_frame(folder / f"{gen}-{name}.parquet", frame)
    manifest = {"key": key, "generation": gen, "le": le,
                "blocks": {str(b): e for b, e in sorted(entries.items())}}  # fmt: skip
    atomic_write_bytes(folder / "manifest.json", json.dumps(manifest).encode())
    cutoff = time.time() - OLD_GENERATION_S
    for old in folder.glob("*-*.parquet"):
        if not old.name.startswith(gen) and old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)


_VIEW = re.compile(r"\bFROM (counters|gauges|histograms)\b")


def block_query(store: Store, dates: Sequence[date], regions: Sequence[str]) -> ee.QueryFn:
    """A query function like :meth:`Store.named` whose ``counters``, ``gauges`` and
    ``histograms`` are only the partitions of ``dates`` and ``regions`` (of the
    signals in :data:`SOURCES`): the same rows for a window inside those dates,
    without planning over every file of the lake (a day of a 20-region store: 360
    files instead of 13,000).
    """

    def source(table: str) -> str:
        files = list(store.data_files(table, SOURCES[table], dates, regions))
        return store.parquet_source(table, files)

    def query(name: str, **params: Any) -> pd.DataFrame:
        sql = (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")
        code = "\n".join(x for x in sql.split("\n") if not x.lstrip().startswith("--"))
        used = {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", code)}
        # The files are listed again on each attempt (a day compacted meanwhile).
        return store.query_planned(
            lambda: _VIEW.sub(lambda m: f"FROM {source(m.group(1))}", code), used
        )

    return query


def _compute(
    store: Store,
    item: ee.Listed,
    carbon: CarbonModel,
    todo: list[Block],
    origin: pd.Timestamp,
    les: list[float] | None,
) -> tuple[dict[int, Moments | None], list[float]]:
    """The moments of blocks ``todo`` from their replicates (one read from the first
    block's start to the last one's end), and the bucket bounds those rows hold."""
    days = sorted({d for b in todo for d in b.dates()})
    query = block_query(store, days, sorted(item.regions))
    data = ee.load(query, item, carbon, todo[0].start, todo[-1].end, les=les)
    if data is None or data.replicates.empty:
        return {b.index: None for b in todo}, [] if data is None else data.les
    arms = tuple(item.spec.settings().arms)
    reps, buckets = data.replicates, data.buckets
    out: dict[int, Moments | None] = {}
    for block in todo:
        rows = (reps["ts_utc"] > block.start) & (reps["ts_utc"] <= block.end)
        if not rows.any():
            out[block.index] = None
            continue
        keys = (buckets.keys["ts_utc"] > block.start) & (buckets.keys["ts_utc"] <= block.end)
        mask = keys.to_numpy()
        part = Buckets(buckets.keys[mask].reset_index(drop=True), buckets.le,
                       buckets.cumulative[mask])  # fmt: skip
        out[block.index] = Moments.from_replicates(reps[rows], part, arms, origin, data.les)
    return out, data.les


def _runs(todo: list[Block]) -> list[list[Block]]:
    """Consecutive blocks, at most :data:`BLOCKS_PER_READ` each: one read per run."""
    out: list[list[Block]] = []
    for block in todo:
        last = out[-1] if out else None
        if last and last[-1].index == block.index - 1 and len(last) < BLOCKS_PER_READ:
            last.append(block)
        else:
            out.append([block])
    return out


def update(store: Store, item: ee.Listed, carbon: CarbonModel | None = None) -> Moments | None:
    """The moments of an experiment's whole window, computing only stale blocks.

    Saved to the state folder when it is writable.  None when the store holds no
    replicates for the experiment.
    """
    return _update(store, item, carbon, 0.0)[0]


def _update(
    store: Store,
    item: ee.Listed,
    carbon: CarbonModel | None,
    max_stale_s: float,
    strict: bool = False,
) -> tuple[Moments | None, datetime | None]:
    """:func:`update`, and the end of the data the moments cover.

    With ``max_stale_s`` > 0 the **last** block is taken as saved, although its
    partitions changed, when it was computed at most that many seconds ago: the
    moments then cover the window up to that computation's end (returned).  With
    ``strict`` a failed save raises :class:`OSError` instead of being skipped.
    """
    win = ee.window(item)
    if win is None or not item.regions:
        return None, None
    carbon = carbon or CarbonModel()
    origin = pd.Timestamp(win[0])
    arms = tuple(item.spec.settings().arms)
    key = experiment_key(item, carbon, win[0])
    folder = _folder(store, item, key)
    saved = _read_saved(folder, key)
    regions = sorted(item.regions)
    every = blocks(win[0], win[1])
    entries: dict[int, dict[str, Any]] = {}
    valid: set[int] = set()
    stale: list[Block] = []
    seen: dict[str, str] = {}
    end = win[1]
    for block in every:
        fp = fingerprint(store, block, regions, seen)
        old = saved.entries.get(block.index)
        recent = (
            old is not None
            and block is every[-1]
            and time.time() - float(old.get("computed_s", 0.0)) <= max_stale_s
        )
        if old and (old["fingerprint"] == fp or recent):
            entries[block.index] = old
            valid.add(block.index)
            if old["fingerprint"] != fp:
                end = datetime.fromisoformat(old["end"])
        else:
            entries[block.index] = {"fingerprint": fp, "end": block.end.isoformat()}
            entries[block.index]["computed_s"] = time.time()
            stale.append(block)
    fresh: dict[int, Moments | None] = {}
    for run in _runs(stale):
        got, own = _compute(store, item, carbon, run, origin, None)
        fresh.update(got)
        for b, m in got.items():
            entries[b].update(le=own, empty=m is None)
    union = sorted({x for e in entries.values() for x in e["le"]})
    if valid and saved.le != union:  # bounds changed: recode the saved blocks too
        valid, end = set(), win[1]

    def recode(b: int) -> bool:
        m = fresh.get(b)
        return b not in fresh if m is None else m.le.tolist() != union

    redo = [every[b] for b in sorted(entries) if b not in valid and recode(b)]
    for run in _runs(redo):
        fresh.update(_compute(store, item, carbon, run, origin, union)[0])
    kept = {n: f[f["block"].isin(valid)] for n, f in saved.frames.items()} if valid else {}
    new = {b: m for b, m in fresh.items() if m is not None}
    if stale or redo:
        if strict:  # refresh: saving is the whole point, a failure must be seen
            _save(folder, key, union, entries, kept, new)
        else:
            best_effort(_save, folder, key, union, entries, kept, new)
    parts = [saved.part(valid, origin, arms)] if valid else []
    parts += [new[b] for b in sorted(new)]
    return (Moments.combine(parts) if parts else None), end


def run_fast(
    store: Store, item: ee.Listed, carbon: CarbonModel | None = None, max_stale_s: float = 0.0
) -> ee.Report | None:
    """:func:`observatory.experiment_engine.run` from the experiment's moments.

    The same analysis, cumulative effect and frontier as the reference path (to float
    rounding).  When the replicates' first step does not start on the hour grid of
    the window (a configured ``start`` before the data, at a minute that is not on
    the hour), the cumulative checkpoints cannot be cut from hours and the reference
    path runs instead.  ``max_stale_s``: see :func:`_update` (the window's end in the
    report is then the end of the data read).
    """
    moments, end = _update(store, item, carbon, max_stale_s)
    if moments is None or end is None:
        return None
    source = MomentSource(moments)
    first, _ = source.span()
    if first is None:
        return None
    start_ns = (first - pd.Timedelta(minutes=1)).as_unit("ns").value
    if (start_ns - moments.origin.as_unit("ns").value) % HOUR_NS:
        return ee.run(store.named, item, carbon)
    win = ee.window(item)
    assert win is not None
    empty = pd.DataFrame({c: [] for c in ("ts_utc", "region", "arm", *REPLICATE_COLUMNS)})
    data = ee.ExperimentData(
        item, win[0], end, sorted(item.regions), empty, Buckets.empty(),
        carbon or CarbonModel(), [float(x) for x in moments.le],
    )  # fmt: skip
    return ee.report_from(data, source, None)


@dataclass(frozen=True)
class Refreshed:
    """What :func:`refresh` did for one experiment: replicates summed and seconds taken."""

    name: str
    replicates: int
    seconds: float


def refresh(
    store: Store, experiments: Experiments | None = None, names: Sequence[str] = ()
) -> list[Refreshed]:
    """Bring the moments of experiments ``names`` (default: all with data) up to date.

    The scheduler's entry point (``observatory experiment refresh`` calls it).

    Raises:
        observatory.experiment_engine.ExperimentNotFound: a name that is neither
            configured nor discovered (the message lists the known ones).
        OSError: the state folder (:func:`~observatory.experiment_files.state_dir`)
            cannot be written; the store's data is not touched.
    """
    items = ee.list_experiments(store.named, experiments, arms_frame(store))
    known = {i.spec.name for i in items}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ee.ExperimentNotFound(
            f"no experiment {unknown[0]!r}; known: {', '.join(sorted(known)) or 'none'}"
        )
    out = []
    carbon = experiments.carbon if experiments else None
    for item in items:
        if (names and item.spec.name not in names) or not item.has_data:
            continue
        began = time.perf_counter()
        moments, _ = _update(store, item, carbon, 0.0, strict=True)
        rows = 0 if moments is None else int(moments.regional["rows"].sum())
        out.append(Refreshed(item.spec.name, rows, time.perf_counter() - began))
    return out

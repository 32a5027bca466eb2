"""The SLO engine: SLO definitions computed over the store.

SQL (``sql/queries/slo_*.sql``) turns stored rows into events per step and group
(``slo_events_counter``/``_histogram``/``_gauge``), judges time slices by the
budgeting method and adds the global roll-up (``slo_slices``), and sums windows
(``slo_window_status`` at one time, ``slo_window_history`` at every evaluation
time).  The pure functions of :mod:`analytics.slo` turn window sums into error
ratios, budgets, burn rates and alert-tier states.  Nothing here loops over rows.

Window convention (tested): a window ``w`` evaluated at ``t`` holds the steps whose
end lies in ``(t - w, t]``, SQL ``ts_utc > t - w AND ts_utc <= t``.  For counters
sampled on step boundaries that is exactly what Prometheus 2.x's closed range
``[t - w, t]`` sees (the sample at ``t - w`` is the baseline of the first step),
and what Prometheus 3's left-open range sees minus its extrapolation.

Groups: every SLO is computed per group (its ``group_by`` dimensions; a collapsed
dimension reads ``*``) plus the global roll-up ``('*', '*', '*')``, whose events are
the sums of the groups' events.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics import slo as slomath
from analytics.slo_thresholds import threshold_readings
from observatory.slo_cache import (
    SliceCache,
    Source,
    cache_key,
    days_in,
    partition_files,
    slice_cache_disabled,
)
from observatory.slo_specs import SloDefinition
from observatory.store import ROLLUP_TIERS, SQL_DIR, Store, env_rollup

GLOBAL = "*"
#: Windows one status query can sum (the CASE in slo_window_status.sql, slo_batch_*.sql).
MAX_WINDOWS = 16
_STATE_ORDER = {
    slomath.EXHAUSTED: 0,
    slomath.PAGE: 1,
    slomath.TICKET: 2,
    slomath.INSUFFICIENT: 3,
    slomath.NO_DATA: 4,
    slomath.NO_BUDGET: 5,
    slomath.OK: 6,
}


def _sql(name: str) -> str:
    return (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def _compose(outer: str, placeholder: str, inner: str) -> str:
    """Put ``inner`` (comments dropped) on the line of ``outer`` that is only ``{placeholder}``."""
    lines = outer.splitlines()
    marker = "{" + placeholder + "}"
    if sum(line.strip() == marker for line in lines) != 1:
        raise ValueError(f"expected one line {marker} in the query")
    return "\n".join(_strip_comments(inner) if line.strip() == marker else line for line in lines)


@dataclass(frozen=True)
class Maintenance:
    """A maintenance window: steps ending in ``(start, end]`` (UTC, naive) are excluded.

    Excluded from numerator, denominator and the coverage's expected slices of
    every SLO, in ``regions`` (None: every region).  ``reason`` is for people.
    """

    start: datetime
    end: datetime
    regions: tuple[str, ...] | None = None
    reason: str = ""

    def applies_to(self, region: str) -> bool:
        """True when the window covers ``region`` (the global roll-up ``*``: only windows
        of every region)."""
        return self.regions is None or region in self.regions


MaintenanceLike = Maintenance | tuple[datetime, datetime]


def maintenance_from_config(windows: Iterable[Any]) -> tuple[Maintenance, ...]:
    """The configuration's ``maintenance:`` windows (:class:`observatory.config.MaintenanceWindow`:
    start, end UTC naive, regions or None, reason) as :class:`Maintenance`."""
    return tuple(
        Maintenance(w.start, w.end, tuple(w.regions) if w.regions is not None else None, w.reason)
        for w in windows
    )


def _as_maintenance(items: Iterable[MaintenanceLike]) -> tuple[Maintenance, ...]:
    return tuple(m if isinstance(m, Maintenance) else Maintenance(m[0], m[1]) for m in items)


def _maintenance_params(windows: Iterable[Maintenance]) -> dict[str, list[Any]]:
    """``$m_start``, ``$m_end``, ``$m_region`` of the SQL queries (one entry per region;
    a NULL region is every region)."""
    out: dict[str, list[Any]] = {"m_start": [], "m_end": [], "m_region": []}
    for m in windows:
        for region in m.regions if m.regions is not None else (None,):
            out["m_start"].append(m.start)
            out["m_end"].append(m.end)
            out["m_region"].append(region)
    return out


@dataclass(frozen=True)
class Wide:
    """Window sums of every group of one SLO, as arrays (what status is computed from).

    ``labels``: region, model and arm arrays, shape ``(g,)``; ``data[(field, window)]``
    arrays of shape ``(g,)`` for fields bad, total, slices and expected.
    """

    labels: tuple[np.ndarray, np.ndarray, np.ndarray]
    data: dict[tuple[str, str], np.ndarray]

    def __len__(self) -> int:
        return len(self.labels[0])

    @classmethod
    def from_sums(cls, sums: pd.DataFrame) -> Wide:
        """From :meth:`SloEngine.window_sums` rows."""
        wide = sums.set_index(["region", "model", "arm", "window"])[
            ["bad", "total", "slices", "expected"]
        ].unstack("window")
        idx = wide.index
        labels = tuple(
            np.asarray(idx.get_level_values(k), dtype=object) for k in ("region", "model", "arm")
        )
        data = {(str(f), str(w)): wide[(f, w)].to_numpy(dtype=np.float64) for f, w in wide.columns}
        return cls((labels[0], labels[1], labels[2]), data)


@dataclass(frozen=True)
class Prepared:
    """An SLO's SQL, parameters and what the engine learned about its data.

    Attributes:
        sql: ``slo_slices.sql`` with the events query inlined.
        params: its parameters (without start/end).
        slice: the slice length.
        approximate: the latency threshold is not a bucket bound (interpolated).
        threshold_note: how the threshold was read from buckets, for display.
        source: the table and signals the events read (the slice cache's stamps).
    """

    sql: str
    params: dict[str, Any]
    slice: timedelta
    approximate: bool
    threshold_note: str
    source: Source

    def over(self, source: str | None = None, suffix: str = "") -> str:
        """The slices SQL reading ``source`` (SQL of a relation; default: the table's
        view), with its ``$start``/``$end`` renamed ``$start<suffix>``/``$end<suffix>``
        (to put several ranges in one query)."""
        sql = self.sql.replace("{source}", source or self.source.table)
        return re.sub(r"\$(start|end)\b", rf"$\1{suffix}", sql) if suffix else sql


@dataclass(frozen=True)
class _Grid:
    """A history's evaluations: slices ending in ``(start, end]`` are read; evaluations
    at slice ends in ``(eval_start, end]`` whose epoch second divides by ``every_s``."""

    start: datetime
    eval_start: datetime
    end: datetime
    every_s: int


@dataclass(frozen=True)
class _BatchRows:
    """A batch query's rows as numpy arrays, with region/model/arm factorized once
    (every batched SLO filters and groups the same rows).  Codes follow the sorted
    labels, so an SLO's groups come in label order whatever order DuckDB returned the
    rows in (groups with equal remaining budget keep that order in the status)."""

    codes: dict[str, np.ndarray]
    uniques: dict[str, np.ndarray]
    signal: np.ndarray
    le: np.ndarray
    k: np.ndarray
    value: np.ndarray
    steps: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame) -> _BatchRows:
        codes, uniques = {}, {}
        for dim in ("region", "model", "arm"):
            c, u = pd.factorize(rows[dim].to_numpy(dtype=object), sort=True, use_na_sentinel=False)
            codes[dim] = c.astype(np.int64)
            uniques[dim] = np.asarray(u, dtype=object)
        return cls(
            codes,
            uniques,
            rows["signal"].to_numpy(dtype=object),
            rows["le"].to_numpy(dtype=np.float64),
            rows["k"].to_numpy(dtype=np.int64),
            rows["value"].to_numpy(dtype=np.float64),
            rows["steps"].to_numpy(dtype=np.float64),
        )


class SloEngine:
    """Computes SLO status and history over a store.

    Args:
        store: the store to read.
        step: the store's step (default: read from the gauges, else 60 s).
        maintenance: maintenance windows (:class:`Maintenance`, or ``(start, end]``
            UTC pairs for every region) that apply to every SLO, in addition to each
            SLO's own (the configuration's ``maintenance:`` section).
        min_coverage: a tier fires only when both its windows are covered by data
            (share of slices the store holds rows for, maintenance excluded) at
            least this much; 0 evaluates like Prometheus, which has no such guard.
            The default 0.5 keeps a window that reaches back before the data began
            (a new region, a new store) from paging on a few minutes of events.
        use_rollup: read whole days, hours and 5-minute periods from the store's
            roll-up tiers in :meth:`status_many` (False: every step row; same
            figures, slower).
        cache: the SLO slice cache (:class:`observatory.slo_cache.SliceCache`) that
            :meth:`window_sums` reads whole hours from; None (default): one at the
            store's default cache root, unless ``$OBSERVATORY_SLO_CACHE`` is ``off``;
            False: no cache (every slice from the steps; same figures, slower).
    """

    def __init__(
        self,
        store: Store,
        step: timedelta | None = None,
        maintenance: Sequence[MaintenanceLike] = (),
        min_coverage: float = 0.5,
        use_rollup: bool = True,
        cache: SliceCache | bool | None = None,
    ):
        self.store = store
        if cache is None:
            cache = not slice_cache_disabled()
        self.cache: SliceCache | None = SliceCache(store) if cache is True else cache or None
        self.use_rollup = use_rollup
        self._step = step
        self.maintenance = _as_maintenance(maintenance)
        self.min_coverage = min_coverage
        self._layouts: dict[str, pd.DataFrame] = {}

    # ------------------------------------------------------------- basics
    @property
    def step(self) -> timedelta:
        """The store's step: the shortest ``step_s`` of the gauge files of the newest
        date that has any (60 s without gauges); read once per engine."""
        if self._step is None:

            def newest_files() -> list[Path]:  # listing the newest dates only
                for day in reversed(self.store.stored_dates("gauges")):
                    files = list(self.store.data_files("gauges", dates=[day]))
                    if files:
                        return files
                return []

            s = None
            if newest_files():  # listed again on each attempt (a day may be compacted)
                s = self.store.query_planned(
                    lambda: (
                        "SELECT min(step_s) AS s FROM "
                        + self.store.parquet_source("gauges", newest_files())
                    )
                )["s"].iloc[0]
            self._step = timedelta(seconds=60)
            if s is not None and pd.notna(s):
                self._step = timedelta(seconds=int(s))
        return self._step

    def latest(self, slo: SloDefinition) -> datetime | None:
        """The end of the last stored step of the SLO's signal (None without data)."""
        ref = slo.indicator.numerator if slo.indicator.kind == "budget" else slo.indicator.signal
        assert ref is not None
        table = {"counter": "counters", "gauge": "gauges", "histogram": "histograms"}[ref.kind]
        # The newest date partitions only (Store.latest_step), not a scan of the table.
        return self.store.latest_step(table, [ref.signal])

    def bucket_layouts(self, signal: str) -> pd.DataFrame:
        """Each series' ``le`` bounds of a histogram signal (region, model, arm, le;
        :meth:`observatory.store.Store.bucket_layouts`; cached per engine)."""
        if signal not in self._layouts:
            self._layouts[signal] = self.store.bucket_layouts(signal)
        return self._layouts[signal]

    def prepare(self, slo: SloDefinition) -> Prepared:
        """The SLO's slices query and parameters.

        Raises:
            ValueError: the histogram has no buckets in the store to read a threshold from.
        """
        ind = slo.indicator
        step_s = int(self.step.total_seconds())
        slice_s = max(int(slo.slice_window.total_seconds()), step_s)
        ref = ind.signal
        filters = ref.filters()
        params: dict[str, Any] = {
            "regions": filters["region"],
            "models": filters["model"],
            "arms": filters["arm"],
            "by_region": "region" in slo.group_by,
            "by_model": "model" in slo.group_by,
            "by_arm": "arm" in slo.group_by,
            **_maintenance_params(self._maintenance(slo)),
        }
        approximate, note = False, ""
        allow_step = None
        if ind.kind == "budget":
            assert ind.allowance is not None and ind.allowance_per is not None
            allow_step = ind.allowance * step_s / ind.allowance_per.total_seconds()
        if ind.kind in ("ratio", "budget") and (ind.numerator and ind.numerator.kind == "counter"):
            assert ind.numerator is not None
            events = _sql("slo_events_counter")
            source = Source(
                "counters",
                tuple(
                    r.signal
                    for r in (ind.numerator, ind.total if ind.kind == "ratio" else None)
                    if r
                ),
            )
            params.update(
                num_signal=ind.numerator.signal,
                total_signal=ind.total.signal if ind.total and ind.kind == "ratio" else None,
                num_is_bad=ind.numerator_is_bad,
                allow_step=allow_step,
            )
            if ind.kind == "budget":
                filters = ind.numerator.filters()
                params.update(
                    regions=filters["region"], models=filters["model"], arms=filters["arm"]
                )
        elif ind.kind in ("latency", "percentile"):
            events = _sql("slo_events_histogram")
            source = Source("histograms", (ref.signal,))
            threshold = (
                ind.numerator.threshold if ind.kind == "latency" and ind.numerator else ind.value
            )
            assert threshold is not None
            readings = threshold_readings(
                self.bucket_layouts(ref.signal), threshold, ind.kind == "percentile"
            )
            approximate = readings.approximate
            note = readings.note
            params.update(
                signal=ref.signal,
                **readings.params(),
                num_is_bad=ind.kind == "latency" and ind.numerator_is_bad,
            )
        else:
            events = _sql("slo_events_gauge")
            gref = ind.numerator if ind.kind in ("raw", "budget") else ind.total
            assert gref is not None
            source = Source("gauges", (gref.signal,))
            mode = {"gauge": "threshold", "budget": "spend"}.get(
                ind.kind, f"raw_{ind.raw_type or 'success'}"
            )
            gfilters = gref.filters()
            params.update(
                signal=gref.signal,
                stat=gref.stat,
                mode=mode,
                op=ind.op or "gte",
                value=ind.value if ind.value is not None else 0.0,
                allow_step=allow_step,
                regions=gfilters["region"],
                models=gfilters["model"],
                arms=gfilters["arm"],
            )
        method = slo.method
        params.update(
            slice_s=slice_s if method != "Occurrences" else step_s,
            method=method,
            slice_target=slo.slice_target if slo.slice_target is not None else 1.0,
            rollup=bool(slo.group_by),
        )
        sql = _compose(_sql("slo_slices"), "events", events)
        return Prepared(
            sql, params, timedelta(seconds=params["slice_s"]), approximate, note, source
        )

    # ------------------------------------------------------------- windows
    _SUM_COLUMNS = (
        "window",
        "region",
        "model",
        "arm",
        "bad",
        "total",
        "slices",
        "window_s",
        "expected",
    )

    def _windows(self, slo: SloDefinition, at: datetime) -> dict[str, timedelta]:
        wins = dict(slo.windows)
        wins["period"] = self.period_window(slo, at)
        return wins

    @staticmethod
    def period_window(slo: SloDefinition, at: datetime) -> timedelta:
        """The budget window at ``at``: the rolling period, or since the calendar period began."""
        if slo.calendar is None:
            return slo.period
        start, _ = slomath.calendar_period(
            at, slo.calendar.duration, slo.calendar.start, slo.calendar.tz
        )
        return at - start

    def window_sums(
        self, slo: SloDefinition, at: datetime | None = None, prep: Prepared | None = None
    ) -> pd.DataFrame:
        """Window sums at ``at`` (default: the latest step): one row per group and window.

        Columns: window, window_s, region, model, arm, bad, total, slices (with data),
        expected (slices in the window outside maintenance).
        """
        at = at or self.latest(slo)
        prep = prep or self.prepare(slo)
        if at is None:
            return pd.DataFrame(columns=[*self._SUM_COLUMNS])
        wins = sorted(self._windows(slo, at).items(), key=lambda kv: (kv[1], kv[0]))
        if len(wins) > MAX_WINDOWS:
            raise ValueError(f"{slo.name}: at most {MAX_WINDOWS} windows, got {len(wins)}")
        names = [n for n, _ in wins]
        secs = [int(w.total_seconds()) for _, w in wins]
        buckets = self._window_buckets(prep, at, secs)
        keys = ["region", "model", "arm"]
        frames = []
        for i, (name, s) in enumerate(zip(names, secs, strict=True)):
            part = buckets[buckets["k"] <= i]
            if part.empty:
                continue
            sums = part.groupby(keys, as_index=False)[["bad", "total", "slices"]].sum()
            sums.insert(0, "window", name)
            sums["window_s"] = s
            sums["expected"] = [
                self._expected_slices(slo, at, timedelta(seconds=s), prep.slice, r)
                for r in sums["region"]
            ]
            frames.append(sums)
        if not frames:
            return pd.DataFrame(columns=[*self._SUM_COLUMNS])
        return pd.concat(frames, ignore_index=True)

    def _window_buckets(self, prep: Prepared, at: datetime, secs: list[int]) -> pd.DataFrame:
        """``slo_window_status.sql``'s rows (region, model, arm, k, bad, total, slices)
        for windows ``secs`` (ascending) ending at ``at``.

        With the slice cache (and a slice length dividing an hour), every hour inside
        the longest window that no window edge cuts comes from the cache's hourly sums
        (its ring ``k`` is that of its last slice); the rest (the hours edges cut, the
        part of the first hour before it) from the slices query, all ranges in one
        query.  Sums of the same slices: the result equals the plain query's (integer
        counts exactly; float sums up to rounding of the addition order).
        """
        slice_s = int(prep.slice.total_seconds())
        lo = at - timedelta(seconds=secs[-1])
        ranges = [(lo - prep.slice, at)]
        cached = pd.DataFrame()
        if self.cache is not None and 3600 % slice_s == 0 and prep.source.signals:
            hours, ranges = _cacheable_hours(lo, at, secs, prep.slice)
            if hours:
                cached = self._cached_rings(prep, at, secs, hours)
        parts = [cached] if len(cached) else []
        if ranges:
            parts.append(self._ranges_query(prep, at, secs, ranges))
        if len(parts) == 1:
            return parts[0]
        if not parts:  # whole hours only, none with slices
            return pd.DataFrame(columns=["region", "model", "arm", "k", "bad", "total", "slices"])
        both = pd.concat(parts, ignore_index=True)
        return both.groupby(["region", "model", "arm", "k"], as_index=False)[
            ["bad", "total", "slices"]
        ].sum()

    def _ranges_query(
        self,
        prep: Prepared,
        at: datetime,
        secs: list[int],
        ranges: list[tuple[datetime, datetime]],
    ) -> pd.DataFrame:
        """``slo_window_status.sql`` over the slices of the steps in ``ranges`` (each
        ``(start, end]``, hour-aligned except the first start and the last end), each
        range reading only its dates' partitions (the table's view without a cache)."""
        params: dict[str, Any] = {**prep.params, "at": at, "w_secs": secs}
        for i, (a, b) in enumerate(ranges):
            params[f"start_{i}"], params[f"end_{i}"] = a, b

        def build() -> str:  # lists the files again on each attempt
            branches = []
            for i, (a, b) in enumerate(ranges):
                source = None
                if self.cache is not None:
                    files = partition_files(self.store, prep.source, days_in(a, b))
                    source = self.store.parquet_source(prep.source.table, files)
                branches.append(f"SELECT * FROM (\n{prep.over(source, f'_{i}')}\n)")
            return _compose(_sql("slo_window_status"), "slices", "\nUNION ALL\n".join(branches))

        return self.store.query_planned(build, params)

    def _cached_rings(
        self, prep: Prepared, at: datetime, secs: list[int], hours: list[datetime]
    ) -> pd.DataFrame:
        """The cached hours' sums per group and window ring ``k`` (as
        ``slo_window_status.sql``'s rows)."""
        rows = self._cache_rows(prep, hours)
        age = (np.datetime64(at, "us") - rows["hour_utc"].to_numpy(dtype="datetime64[us]")) / (
            np.timedelta64(1, "s")
        )
        rows = rows.assign(k=np.searchsorted(np.asarray(secs, dtype=np.float64), age, side="right"))
        return rows.groupby(["region", "model", "arm", "k"], as_index=False)[
            ["bad", "total", "slices"]
        ].sum()

    def _cache_rows(self, prep: Prepared, hours: list[datetime]) -> pd.DataFrame:
        """The slice cache's rows (hour_utc, region, model, arm, bad, total, slices) of
        the hours ending at ``hours``; missing or stale days computed and written."""
        assert self.cache is not None
        key = cache_key(prep.sql, prep.params)

        def compute(start: datetime, end: datetime) -> pd.DataFrame:
            def build() -> str:  # lists the files again on each attempt
                files = partition_files(self.store, prep.source, days_in(start, end))
                source = self.store.parquet_source(prep.source.table, files)
                return _compose(_sql("slo_hourly"), "slices", prep.over(source))

            return self.store.query_planned(build, {**prep.params, "start": start, "end": end})

        days = sorted({(h - timedelta(hours=1)).date() for h in hours})
        rows = self.cache.hours(key, prep.source, days, compute)
        want = pd.DatetimeIndex(hours).as_unit("us")
        hour = pd.DatetimeIndex(rows["hour_utc"]).as_unit("us")
        return rows[hour.isin(want)]

    def fill_cache(self, slo: SloDefinition, span: timedelta = timedelta(days=1)) -> int:
        """Bring the slice cache of ``slo`` up to date for :meth:`history` over the
        ``span`` before its latest step (and so for its status): every whole hour of
        ``(latest - span - longest window, latest]`` (from the start of the calendar
        period holding ``latest - span`` for calendar windows).  The ``precompute`` job runs it so
        that the SLOs page's burn-down reads whole hours from the cache; days already
        cached and unchanged are only checked.

        Returns:
            the number of cached hour rows in that range (0: no cache, no data, or a
            slice that does not divide an hour).
        """
        if self.cache is None:
            return 0
        prep = self.prepare(slo)
        end = self.latest(slo)
        if end is None or 3600 % int(prep.slice.total_seconds()) or not prep.source.signals:
            return 0
        lo = end - span - max(self._windows(slo, end).values())
        if slo.calendar is not None:  # history reads from the first period's start
            cal = slo.calendar
            lo = min(lo, slomath.calendar_period(end - span, cal.duration, cal.start, cal.tz)[0])
        first = _ceil_hour(lo) + timedelta(hours=1)
        hours = list(pd.date_range(first, end, freq="1h").to_pydatetime())
        return len(self._cache_rows(prep, hours)) if hours else 0

    def _maintenance(self, slo: SloDefinition, region: str | None = None) -> list[Maintenance]:
        """The engine's and the SLO's maintenance windows (those of ``region`` if given)."""
        every = [*self.maintenance, *_as_maintenance(slo.maintenance)]
        return every if region is None else [m for m in every if m.applies_to(region)]

    def _expected_at(
        self,
        slo: SloDefinition,
        times: pd.Series,
        w: timedelta,
        slice_: timedelta,
        regions: pd.Series | None = None,
    ) -> np.ndarray:
        """Slices in ``(t - w, t]`` outside maintenance, for each time ``t`` (and region)."""
        n = int(w / slice_)
        if not self._maintenance(slo) or times.empty:
            return np.full(len(times), float(n))
        grid = pd.date_range(times.min() - w + slice_, times.max(), freq=slice_)
        labels = regions if regions is not None else pd.Series(GLOBAL, index=times.index)
        out = np.full(len(times), float(n))
        for region in labels.unique():
            sel = (labels == region).to_numpy()
            spans = [(m.start, m.end) for m in self._maintenance(slo, region)]
            inside = slomath.maintenance_mask(grid, spans).astype(np.float64)
            counts = pd.Series(slomath.rolling_sums(inside, n), index=grid)
            out[sel] = n - counts.reindex(pd.DatetimeIndex(times[sel])).to_numpy()
        return out

    def _expected_slices(
        self,
        slo: SloDefinition,
        at: datetime,
        w: timedelta,
        slice_: timedelta,
        region: str = GLOBAL,
    ) -> float:
        """Slices in ``(at - w, at]`` outside the maintenance of ``region``."""
        n = int(w / slice_)
        spans = [(m.start, m.end) for m in self._maintenance(slo, region)]
        if not spans or n == 0:
            return float(n)
        ends = pd.date_range(end=at, periods=n, freq=slice_)
        return float(n - slomath.maintenance_mask(ends, spans).sum())

    # ------------------------------------------------------------- status
    def status(
        self,
        slo: SloDefinition,
        at: datetime | None = None,
        sums: pd.DataFrame | Wide | None = None,
        prep: Prepared | None = None,
    ) -> pd.DataFrame:
        """The SLO now (or at ``at``): one row per group, the global roll-up first.

        Columns: slo, region, model, arm, target, total, bad, sli, error_ratio,
        consumed, remaining (may be negative), coverage, state, data_state,
        tte_hours (time to exhaustion at the 1h burn rate), burn_<w> per window,
        firing (comma list of tiers), approximate, at.

        ``sums`` and ``prep``: precomputed :meth:`window_sums` and :meth:`prepare`
        (see :meth:`status_many`).
        """
        at = at or self.latest(slo)
        prep = prep or self.prepare(slo)
        if sums is None:
            sums = self.window_sums(slo, at, prep)
        if len(sums) == 0 or at is None:
            return pd.DataFrame(
                [
                    {
                        "slo": slo.name,
                        "region": GLOBAL,
                        "model": GLOBAL,
                        "arm": GLOBAL,
                        "target": slo.target,
                        "total": 0.0,
                        "bad": 0.0,
                        "sli": math.nan,
                        "error_ratio": math.nan,
                        "consumed": math.nan,
                        "remaining": math.nan,
                        "coverage": 0.0,
                        "state": slomath.NO_DATA,
                        "data_state": slomath.NO_DATA,
                        "tte_hours": math.nan,
                        "firing": "",
                        "approximate": prep.approximate,
                        "at": at,
                    }
                ]
            )
        return pd.DataFrame(
            self._status_columns(
                slo, prep, at, sums if isinstance(sums, Wide) else Wide.from_sums(sums)
            )
        )

    # ------------------------------------------------------------- many at once
    @staticmethod
    def batchable(slo: SloDefinition) -> bool:
        """True for SLOs :meth:`status_many` computes from shared window sums.

        Occurrences SLOs over counters (ratio) or histogram buckets (latency) on a
        rolling window without maintenance of their own: their events are sums, so
        they can be read off one scan of each table.
        """
        return (
            slo.method == "Occurrences"
            and slo.indicator.kind in ("ratio", "latency")
            and slo.calendar is None
            and not slo.maintenance
        )

    def status_many(
        self, slos: Sequence[SloDefinition], at: datetime | None = None
    ) -> list[pd.DataFrame]:
        """:meth:`status` of many SLOs; the batchable ones share two scans.

        Counter and histogram window sums of every batchable SLO are computed by one
        query per table (``slo_batch_sums.sql``: whole days from the store's exact
        daily roll-up, the days a window edge cuts from its hourly and 5-minute ones,
        what no tier covers step by step), at ``at`` or at the
        table's latest step; each SLO's groups are then sums of those
        rows (exactly what its own query would add up).  A roll-up's coverage is the
        best-covered member's (the union of the members' steps is not kept).  Other
        SLOs run their own query.
        """
        return [
            part if isinstance(part, pd.DataFrame) else pd.DataFrame(part)
            for part in self._status_parts(slos, at)
        ]

    def _status_parts(
        self, slos: Sequence[SloDefinition], at: datetime | None
    ) -> list[pd.DataFrame | dict[str, np.ndarray]]:
        """:meth:`status_many`'s results, batched SLOs with data as column arrays (one
        frame for many SLOs is built once, in :func:`status_table`)."""
        out: dict[int, pd.DataFrame | dict[str, np.ndarray]] = {}
        batch = [i for i, s in enumerate(slos) if self.batchable(s)]
        union = {w for i in batch for w in self._windows(slos[i], at or datetime.min).values()}
        if len(union) > MAX_WINDOWS:
            batch = []
        for i, slo in enumerate(slos):
            if i not in batch:
                out[i] = self.status(slo, at)
        if batch:
            for i, part in self._batch([slos[i] for i in batch], at).items():
                out[batch[i]] = part
        return [out[i] for i in range(len(slos))]

    def _batch(
        self, slos: list[SloDefinition], at: datetime | None
    ) -> dict[int, pd.DataFrame | dict[str, np.ndarray]]:
        windows = sorted(
            {
                int(w.total_seconds())
                for s in slos
                for w in self._windows(s, at or datetime.min).values()
            }
        )
        preps = [self.prepare(s) for s in slos]
        counters = sorted(
            {
                r.signal
                for s in slos
                if s.indicator.kind == "ratio"
                for r in (s.indicator.numerator, s.indicator.total)
                if r
            }
        )
        hists = sorted({s.indicator.signal.signal for s in slos if s.indicator.kind == "latency"})
        frames: dict[str, pd.DataFrame] = {}
        ats: dict[str, datetime | None] = {}
        for table, signals in (("counters", counters), ("histograms", hists)):
            if not signals:
                continue
            t = at if at is not None else self.store.latest_step(table, signals)
            ats[table] = t
            if t is None:
                continue
            les = None
            if table == "histograms":
                found = {math.inf}
                for s, p in zip(slos, preps, strict=True):
                    if s.indicator.kind == "latency":
                        found |= {x for x in p.params["les"]}
                les = sorted(found)
            frames[table] = self._batch_sums(table, signals, les, windows, t)
        batches = {table: _BatchRows.of(rows) for table, rows in frames.items()}
        result: dict[int, pd.DataFrame | dict[str, np.ndarray]] = {}
        for i, (slo, prep) in enumerate(zip(slos, preps, strict=True)):
            table = "counters" if slo.indicator.kind == "ratio" else "histograms"
            t = ats.get(table)
            if t is None or table not in frames:
                result[i] = self.status(
                    slo, t, sums=pd.DataFrame(columns=[*self._SUM_COLUMNS]), prep=prep
                )
                continue
            sums = self._sums_from_batch(slo, prep, batches[table], windows, t)
            if len(sums) == 0:
                result[i] = self.status(slo, t, sums=sums, prep=prep)
            else:
                result[i] = self._status_columns(slo, prep, t, sums)
        return result

    def _batch_sums(
        self,
        table: str,
        signals: list[str],
        les: list[float] | None,
        windows: list[int],
        at: datetime,
    ) -> pd.DataFrame:
        """Rows of ``slo_batch_sums.sql`` for ``table``, read from the coarsest exact
        roll-up tier per piece of each segment.

        ``(at - longest window, at]`` is cut at every window edge ``at - w`` and every
        maintenance edge into segments; inside one segment every step lies in the same
        windows and the same maintenance state, so a roll-up row (dated by its period's
        end, which lies in the segment) stands for its steps.  One
        :meth:`Store.window_rows` with those ``cuts`` and the daily tier allowed reads
        each segment from the coarsest tiers: whole UTC days from the
        daily roll-up, whole hours of the edge days from the hourly one, whole 5-minute
        periods of the edge hours from the 5-minute one, the rest (and every partition
        without a fresh roll-up) from the steps.  Same sums as adding the steps
        (integer counts exactly; float sums to the order of additions).
        ``$OBSERVATORY_ROLLUP`` (:func:`observatory.store.env_rollup`) gives the
        benchmarks' baselines: ``hourly`` (the former plan) or ``0`` (steps only).

        Args:
            table: ``counters`` or ``histograms``.
            signals: the signals summed.
            les: the ``le`` bounds needed (histograms), else None.
            windows: window lengths in seconds, ascending.
            at: the evaluation time (naive UTC).

        Returns:
            region, model, arm, signal, le, k (windows too short to hold the rows),
            value (sum of increases) and steps (rows summed).
        """
        start = at - timedelta(seconds=windows[-1])
        edges = {at - timedelta(seconds=w) for w in windows}
        for m in self.maintenance:
            edges |= {m.start, m.end}
        allowed, tiers = env_rollup(ROLLUP_TIERS)
        use_rollup = self.use_rollup and allowed

        def build() -> str:  # plans the files again on each attempt
            rows = self.store.window_rows(
                table, signals, start, at, use_rollup, tiers=tiers, cuts=edges
            )
            return _sql("slo_batch_sums").format(
                rows=rows, le="le" if table == "histograms" else "NULL::DOUBLE AS le"
            )

        params = {
            "signals": signals,
            "les": les,
            "at": at,
            "w_secs": windows,
            **_maintenance_params(self.maintenance),
        }
        return self.store.query_planned(build, params)

    def _sums_from_batch(
        self,
        slo: SloDefinition,
        prep: Prepared,
        rows: _BatchRows,
        windows: list[int],
        at: datetime,
    ) -> Wide:
        """One SLO's window sums (as :meth:`window_sums`) from a batch table's rows.

        The batch rows are few (groups x signals x window buckets); numpy adds them
        up per SLO group: events are linear, so numerator, total and bucket columns
        are summed separately and combined after.
        """
        ind = slo.indicator
        keys = ("region", "model", "arm")
        n = len(rows.k)
        mask = np.ones(n, dtype=bool)
        for dim, values in ind.signal.filters().items():
            if values is not None:
                mask &= np.isin(rows.uniques[dim], values)[rows.codes[dim]]
        codes = [
            rows.codes[dim] if dim in slo.group_by else np.zeros(n, dtype=np.int64) - 1
            for dim in keys
        ]
        uniques = [rows.uniques[dim] for dim in keys]
        sizes = [len(u) + 1 for u in uniques]
        gid = ((codes[0] + 1) * sizes[1] + (codes[1] + 1)) * sizes[2] + (codes[2] + 1)
        k = rows.k
        nk = len(windows)
        value = rows.value
        steps = rows.steps
        ngroups = sizes[0] * sizes[1] * sizes[2]

        def acc(
            sel: np.ndarray, global_: bool = False, weight: np.ndarray | None = None
        ) -> np.ndarray:
            idx = (np.zeros(int(sel.sum()), dtype=np.int64) if global_ else gid[sel]) * nk + k[sel]
            w = value[sel] if weight is None else value[sel] * weight[sel]
            return np.bincount(idx, weights=w, minlength=ngroups * nk).reshape(ngroups, nk)

        def max_steps(sel: np.ndarray, global_: bool = False) -> np.ndarray:
            out = np.zeros(ngroups * nk)
            idx = (np.zeros(int(sel.sum()), dtype=np.int64) if global_ else gid[sel]) * nk + k[sel]
            np.maximum.at(out, idx, steps[sel])
            return out.reshape(ngroups, nk)

        def events(global_: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if ind.kind == "ratio":
                assert ind.numerator is not None and ind.total is not None
                sig = rows.signal
                num_sel = mask & (sig == ind.numerator.signal)
                tot_sel = mask & (sig == ind.total.signal)
                num, tot = acc(num_sel, global_), acc(tot_sel, global_)
                bad = num if ind.numerator_is_bad else tot - num
                return bad, tot, max_steps(tot_sel, global_)
            le = rows.le
            lo, up, fr = _row_readings(prep.params, rows)
            weight = np.where(le == lo, 1.0 - fr, 0.0) + np.where(le == up, fr, 0.0)
            good = acc(mask & (weight != 0), global_, weight)
            inf_sel = mask & np.isinf(le)
            tot = acc(inf_sel, global_)
            bad = good if prep.params["num_is_bad"] else tot - good
            return bad, tot, max_steps(inf_sel, global_)

        blocks = [events(False)]
        if slo.group_by:
            blocks.append(events(True))
        wins = self._windows(slo, at)
        cols = [windows.index(int(w.total_seconds())) for w in wins.values()]
        names = list(wins)
        expected_of: dict[str, np.ndarray] = {}

        def expected(regions: np.ndarray) -> np.ndarray:
            """Expected slices per group (rows) and window (columns)."""
            for r in set(regions.tolist()) - set(expected_of):
                expected_of[r] = np.array(
                    [self._expected_slices(slo, at, w, prep.slice, r) for w in wins.values()]
                )
            return np.array([expected_of[r] for r in regions]).reshape(len(regions), len(wins))

        labels: list[list[np.ndarray]] = [[], [], []]
        data: dict[tuple[str, str], list[np.ndarray]] = {}
        for b, (bad, tot, st) in enumerate(blocks):
            present = np.flatnonzero((st > 0).any(axis=1))
            if b == 1:
                present = np.array([0])  # the global row sits at index 0
            cb, ct, cs = (np.cumsum(x, axis=1)[present][:, cols] for x in (bad, tot, st))
            g = present
            dims = (
                g // (sizes[1] * sizes[2]) - 1,
                (g // sizes[2]) % sizes[1] - 1,
                g % sizes[2] - 1,
            )
            for j, (x, u) in enumerate(zip(dims, uniques, strict=True)):
                labels[j].append(
                    np.where(x < 0, GLOBAL, u[np.maximum(x, 0)] if len(u) else GLOBAL).astype(
                        object
                    )
                )
            exp = expected(labels[0][-1])
            # Rows count steps for series without instances; never more than the window.
            cs = np.minimum(cs, exp)
            for field, arr in (("bad", cb), ("total", ct), ("slices", cs)):
                for wi, name in enumerate(names):
                    data.setdefault((field, name), []).append(arr[:, wi])
            for wi, name in enumerate(names):
                data.setdefault(("expected", name), []).append(exp[:, wi])
        return Wide(
            (np.concatenate(labels[0]), np.concatenate(labels[1]), np.concatenate(labels[2])),
            {k: np.concatenate(v) for k, v in data.items()},
        )

    def _status_columns(
        self, slo: SloDefinition, prep: Prepared, at: datetime, wide: Wide
    ) -> dict[str, np.ndarray]:
        """:meth:`status` columns (numpy arrays, one row per group) from the groups'
        window sums: the global roll-up first, then by remaining budget (NaN last)."""
        n = len(wide)

        def col(field: str, window: str) -> np.ndarray:
            got = wide.data.get((field, window))
            if got is None:
                return np.full(n, np.nan if field == "expected" else 0.0)
            if field == "expected" or np.isfinite(got).all():
                return got
            return np.nan_to_num(got)

        bad, total = col("bad", "period"), col("total", "period")
        ratio = slomath.error_ratio(bad, total)
        consumed, remaining = slomath.consumed_remaining(bad, total, slo.target)
        data_state = slomath.window_state(total, slo.min_events, slo.target)
        burns: dict[timedelta, np.ndarray] = {}
        guarded: dict[timedelta, np.ndarray] = {}
        columns: dict[str, Any] = {
            "slo": np.full(n, slo.name, dtype=object),
            "region": wide.labels[0],
            "model": wide.labels[1],
            "arm": wide.labels[2],
            "target": np.full(n, slo.target),
            "total": total,
            "bad": bad,
            "sli": 1 - ratio,
            "error_ratio": ratio,
            "consumed": consumed,
            "remaining": remaining,
            "coverage": slomath.coverage(col("slices", "period"), col("expected", "period")),
        }
        for name, w in slo.windows.items():
            e = slomath.error_ratio(col("bad", name), col("total", name), slo.min_events)
            b = slomath.burn_rate(e, slo.target)
            cov = slomath.coverage(col("slices", name), col("expected", name))
            burns[w] = b
            guarded[w] = np.where(np.nan_to_num(cov) >= self.min_coverage, b, np.nan)
            columns[f"burn_{name}"] = b
        states = slomath.tier_states(guarded, slo.tiers)
        b1h = burns.get(timedelta(hours=1), np.full(n, np.nan))
        with np.errstate(divide="ignore", invalid="ignore"):
            tte = np.where(
                np.isnan(b1h) | np.isnan(remaining),
                np.nan,
                np.where(
                    remaining <= 0,
                    0.0,
                    np.where(b1h > 0, remaining * slo.period.total_seconds() / 3600 / b1h, np.inf),
                ),
            )
        columns["state"] = np.array(
            [
                slomath.slo_state(
                    float(remaining[i]),
                    {t.name: bool(states[t.name][i]) for t in slo.tiers},
                    slo.tiers,
                    str(data_state[i]),
                )
                for i in range(n)
            ],
            dtype=object,
        )
        columns["data_state"] = np.asarray(data_state, dtype=object)
        columns["tte_hours"] = tte
        columns["firing"] = np.array(
            [",".join(t.name for t in slo.tiers if states[t.name][i]) for i in range(n)],
            dtype=object,
        )
        columns["approximate"] = np.full(n, prep.approximate)
        columns["at"] = np.full(n, np.datetime64(at, "us"))
        # The global roll-up first, then by remaining budget (NaN last); stable.
        group = (wide.labels[0] != GLOBAL) | (wide.labels[1] != GLOBAL) | (wide.labels[2] != GLOBAL)
        missing = np.isnan(remaining)
        order = np.lexsort((np.where(missing, 0.0, remaining), missing, group))
        return {k: np.asarray(v)[order] for k, v in columns.items()}

    # ------------------------------------------------------------- history
    def history(
        self,
        slo: SloDefinition,
        start: datetime | None = None,
        end: datetime | None = None,
        every: timedelta = timedelta(minutes=1),
    ) -> pd.DataFrame:
        """Window sums, burn rates and tier states at every evaluation time in ``(start, end]``.

        Args:
            start: first evaluation after this (default: ``end`` minus 7 days).
            end: last evaluation (default: the latest step).
            every: evaluation interval (a multiple of the slice; 1 minute matches a
                Prometheus rule evaluation interval of 1m).

        Returns:
            One row per evaluation time and group: ts_utc, region, model, arm,
            ``bad_<w>``, ``total_<w>``, ``slices_<w>``, ``burn_<w>`` per window
            (windows of the SLO plus ``period`` for rolling SLOs), ``consumed``,
            ``remaining`` (the period budget at that time; for calendar windows
            since the period began), and one bool column per tier.
        """
        end = end or self.latest(slo)
        prep = self.prepare(slo)
        if end is None:
            return pd.DataFrame()
        start = start or end - timedelta(days=7)
        wins = dict(slo.windows)
        if slo.calendar is None:
            wins["period"] = slo.period
        names = list(wins)
        secs = [int(w.total_seconds()) for w in wins.values()]
        slice_s = int(prep.slice.total_seconds())
        every_s = max(int(every.total_seconds()) // slice_s, 1) * slice_s
        longest = max(secs)
        grid_start = _floor(start - timedelta(seconds=longest), slice_s)
        if slo.calendar is not None:
            first_period, _ = slomath.calendar_period(
                start, slo.calendar.duration, slo.calendar.start, slo.calendar.tz
            )
            grid_start = min(grid_start, _floor(first_period, slice_s))
        order = sorted(range(len(names)), key=lambda i: (secs[i], names[i]))
        names, secs = [names[i] for i in order], [secs[i] for i in order]
        got, grid = None, _Grid(grid_start, start, end, every_s)
        if self.cache is not None and history_cacheable(prep.slice, secs, every_s):
            got = self._history_from_cache(prep, grid, secs)
        if got is None:
            got = self._history_query(prep, grid, names, secs)
        if got is None:
            return pd.DataFrame()
        wide, blocks = got
        for col in ("bad", "total", "slices"):
            for j, name in enumerate(names):
                wide[f"{col}_{name}"] = blocks[col][:, j]
        for name in names:
            e = slomath.error_ratio(wide[f"bad_{name}"], wide[f"total_{name}"], slo.min_events)
            wide[f"burn_{name}"] = slomath.burn_rate(e, slo.target)
        if slo.calendar is None:
            consumed, remaining = slomath.consumed_remaining(
                wide["bad_period"], wide["total_period"], slo.target
            )
        else:
            cal = slo.calendar
            starts = pd.Series(
                [
                    slomath.calendar_period(t, cal.duration, cal.start, cal.tz)[0]
                    for t in wide["ts_utc"].drop_duplicates()
                ],
                index=wide["ts_utc"].drop_duplicates().to_numpy(),
            )
            wide["period_start"] = wide["ts_utc"].map(starts)
            base = wide[["ts_utc", "region", "model", "arm", "cum_bad", "cum_total"]].rename(
                columns={"ts_utc": "period_start", "cum_bad": "b0", "cum_total": "t0"}
            )
            wide = wide.merge(base, on=["period_start", "region", "model", "arm"], how="left")
            wide[["b0", "t0"]] = wide[["b0", "t0"]].fillna(0.0)
            wide["bad_period"] = wide["cum_bad"] - wide["b0"]
            wide["total_period"] = wide["cum_total"] - wide["t0"]
            consumed, remaining = slomath.consumed_remaining(
                wide["bad_period"], wide["total_period"], slo.target
            )
            wide = wide.drop(columns=["b0", "t0"])
        wide["consumed"] = consumed
        wide["remaining"] = remaining
        burn = {}
        for n, w in slo.windows.items():
            expected = self._expected_at(slo, wide["ts_utc"], w, prep.slice, wide["region"])
            wide[f"coverage_{n}"] = slomath.coverage(wide[f"slices_{n}"], expected)
            ok = wide[f"coverage_{n}"].to_numpy() >= self.min_coverage
            burn[w] = np.where(ok, wide[f"burn_{n}"].to_numpy(), np.nan)
        for tier, firing in slomath.tier_states(burn, slo.tiers).items():
            wide[tier] = firing
        return wide.sort_values(["region", "model", "arm", "ts_utc"]).reset_index(drop=True)

    def _history_query(
        self, prep: Prepared, grid: _Grid, names: list[str], secs: list[int]
    ) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
        """:meth:`history`'s window sums by ``slo_window_history.sql`` over every slice of
        ``(grid.start, grid.end]`` (the direct computation).

        Returns:
            None without slices; else the key columns (ts_utc, region, model, arm,
            cum_bad, cum_total: one row per group and evaluation time) and, per field
            ``bad``/``total``/``slices``, an array of shape (rows, windows), windows in
            the order of ``secs`` (ascending).
        """
        sql = _compose(_sql("slo_window_history"), "slices", prep.over())
        params = {
            **prep.params,
            "start": grid.start,
            "end": grid.end,
            "grid_start": grid.start,
            "eval_start": grid.eval_start,
            "every_s": grid.every_s,
            "w_names": names,
            "w_secs": secs,
        }
        long = self.store.query(sql, params)
        if long.empty:
            return None
        # Every (group, time) has one row per window, ordered by window length: reshape.
        nw = len(names)
        keys = long.iloc[::nw][["ts_utc", "region", "model", "arm", "cum_bad", "cum_total"]]
        blocks = {
            col: long[col].to_numpy(dtype=np.float64).reshape(-1, nw)
            for col in ("bad", "total", "slices")
        }
        return keys.reset_index(drop=True), blocks

    def _history_from_cache(
        self, prep: Prepared, grid: _Grid, secs: list[int]
    ) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
        """:meth:`_history_query`'s result from the slice cache's hourly sums, reading
        slice by slice only the hours an evaluation time falls inside.

        A window sum at ``t`` is ``C(t) - C(t - w)``, ``C(t)`` the sum of the slices
        ending in ``(grid_start, t]`` (as the SQL's running sums).  An hour
        ``(h - 1h, h]`` that holds none of the times ``t`` and ``t - w`` strictly inside
        lies wholly before or after each of them, so its cached row adds to ``C``
        exactly where its slices would; the other hours (for a 1-day view at 1-minute
        evaluations about 1 day around the evaluations and 1 day around each copy
        shifted back by a window: 1 d, 3 d, the period) are read as slices, in one
        query that reads only their dates' partitions.  Counts are added exactly;
        float sums differ from the SQL's running sums by the order of additions only.

        Returns:
            as :meth:`_history_query` (None without slices).
        """
        slice_s, every_s = int(prep.slice.total_seconds()), grid.every_s
        base = _epoch_s(grid.start)
        last = _epoch_s(grid.end)
        first_eval = max(
            _epoch_s(grid.eval_start) // every_s * every_s + every_s,
            -(-(base + slice_s) // every_s) * every_s,
        )
        evals = np.arange(first_eval, last + 1, every_s, dtype=np.int64)
        needed = np.concatenate([evals, *(evals - w for w in secs)])
        inside = needed[needed % 3600 != 0]
        split = set((-(-inside // 3600) * 3600).tolist())
        hours = [h for h in range(-(-base // 3600) * 3600 + 3600, last + 1, 3600) if h not in split]
        ranges, cursor = [], base
        for h in hours:
            if h - 3600 > cursor:
                ranges.append((cursor, h - 3600))
            cursor = h
        if last > cursor:
            ranges.append((cursor, last))
        parts = []
        if hours:
            rows = self._cache_rows(prep, [_from_epoch_s(h) for h in hours])
            parts.append(
                rows.assign(t=_epoch_s_of(rows["hour_utc"]), has=rows["slices"]).drop(
                    columns=["hour_utc", "slices"]
                )
            )
        if ranges:
            rows = self._slices_query(
                prep, [(_from_epoch_s(a), _from_epoch_s(b)) for a, b in ranges]
            )
            parts.append(rows.assign(t=_epoch_s_of(rows["ts_utc"])).drop(columns="ts_utc"))
        parts = [p for p in parts if len(p)]
        if not parts:
            return None
        items = pd.concat(parts, ignore_index=True)
        # The grid starts at the first slice (an eval inside a cached hour is impossible).
        evals = evals[evals >= int(items["t"].min())]
        if not len(evals):
            return None
        grouped = items.groupby(["region", "model", "arm"], sort=True)
        gid = grouped.ngroup().to_numpy(dtype=np.int64)
        labels = grouped.size().index
        span = last - base + 2 * slice_s + 1
        key = gid * span + (items["t"].to_numpy(dtype=np.int64) - base)
        order = np.argsort(key, kind="stable")
        key = key[order]
        cums = {
            col: np.concatenate([[0.0], np.cumsum(items[col].to_numpy(dtype=np.float64)[order])])
            for col in ("bad", "total", "has")
        }
        ng, ne = len(labels), len(evals)
        g = np.repeat(np.arange(ng, dtype=np.int64), ne)
        group_start = np.searchsorted(key, g * span, side="left")

        def running(col: str, times: np.ndarray) -> np.ndarray:
            rel = np.clip(np.tile(times, ng) - base, 0, span - 1)
            upto = np.searchsorted(key, g * span + rel, side="right")
            return cums[col][upto] - cums[col][group_start]

        keys = pd.DataFrame(
            {
                "ts_utc": np.tile(evals * 1_000_000, ng).astype("datetime64[us]"),
                "region": np.repeat(labels.get_level_values(0).to_numpy(dtype=object), ne),
                "model": np.repeat(labels.get_level_values(1).to_numpy(dtype=object), ne),
                "arm": np.repeat(labels.get_level_values(2).to_numpy(dtype=object), ne),
            }
        )
        now = {col: running(col, evals) for col in ("bad", "total", "has")}
        keys["cum_bad"], keys["cum_total"] = now["bad"], now["total"]
        blocks = {
            field: np.column_stack([now[col] - running(col, evals - w) for w in secs])
            for field, col in (("bad", "bad"), ("total", "total"), ("slices", "has"))
        }
        return keys, blocks

    def _slices_query(
        self, prep: Prepared, ranges: list[tuple[datetime, datetime]]
    ) -> pd.DataFrame:
        """The SLO's slices (ts_utc, region, model, arm, bad, total, has) of the steps in
        each ``(start, end]`` of ``ranges``, each range reading only its dates' files."""
        params: dict[str, Any] = dict(prep.params)
        for i, (a, b) in enumerate(ranges):
            params[f"start_{i}"], params[f"end_{i}"] = a, b

        def build() -> str:  # lists the files again on each attempt
            branches = []
            for i, (a, b) in enumerate(ranges):
                files = partition_files(self.store, prep.source, days_in(a, b))
                source = self.store.parquet_source(prep.source.table, files)
                branches.append(
                    "SELECT ts_utc, region, model, arm, bad, total, has_data::INTEGER AS has "
                    f"FROM (\n{prep.over(source, f'_{i}')}\n)"
                )
            return "\nUNION ALL\n".join(branches)

        return self.store.query_planned(build, params)

    def alert_timeline(self, slo: SloDefinition, history: pd.DataFrame) -> pd.DataFrame:
        """When each tier fired and recovered (see :func:`alert_timeline`)."""
        return alert_timeline(slo, history)


def alert_timeline(slo: SloDefinition, history: pd.DataFrame) -> pd.DataFrame:
    """When each tier fired and recovered, per group, from :meth:`history`.

    Columns: region, model, arm, tier, severity, fired, recovered (NaT while
    firing), evaluations, peak_burn (the tier's long-window burn at its highest).
    """
    out = []
    if history.empty:
        return pd.DataFrame(
            columns=[
                "region",
                "model",
                "arm",
                "tier",
                "severity",
                "fired",
                "recovered",
                "evaluations",
                "peak_burn",
            ]
        )
    for (region, model, arm), g in history.groupby(["region", "model", "arm"], sort=False):
        for tier in slo.tiers:
            ep = slomath.alert_episodes(g["ts_utc"], g[tier.name].to_numpy())
            long = g[f"burn_{slomath.window_name(tier.long)}"].to_numpy()
            for _, e in ep.iterrows():
                sel = (g["ts_utc"] >= e["fired"]) & (
                    (g["ts_utc"] < e["recovered"]) if pd.notna(e["recovered"]) else True
                )
                out.append(
                    {
                        "region": region,
                        "model": model,
                        "arm": arm,
                        "tier": tier.name,
                        "severity": tier.severity,
                        "fired": e["fired"],
                        "recovered": e["recovered"],
                        "evaluations": e["evaluations"],
                        "peak_burn": float(np.nanmax(long[sel.to_numpy()])),
                    }
                )
    return pd.DataFrame(
        out,
        columns=[
            "region",
            "model",
            "arm",
            "tier",
            "severity",
            "fired",
            "recovered",
            "evaluations",
            "peak_burn",
        ],
    )


def _cacheable_hours(
    lo: datetime, at: datetime, secs: list[int], slice_: timedelta
) -> tuple[list[datetime], list[tuple[datetime, datetime]]]:
    """Which hours of the window ``(lo, at]`` the slice cache answers, and the rest.

    An hour ``(h - 1h, h]`` qualifies when it lies inside the window and no window
    edge ``at - w`` falls strictly inside it (its slices are then all in one ring).

    Returns:
        the qualifying hour ends, ascending; and the step ranges ``(start, end]`` left
        for the slices query, adjacent ones joined: the first starts one slice before
        ``lo`` (so the slices ending just after ``lo`` are whole), the last ends at
        ``at``; ranges holding no slice of the window are left out.
    """
    hour = timedelta(hours=1)
    edges = [at - timedelta(seconds=w) for w in secs]
    split = {_ceil_hour(e) for e in edges if e != _ceil_hour(e)}
    hours = []
    h = _ceil_hour(lo) + hour
    while h <= at:
        if h not in split:
            hours.append(h)
        h += hour
    ranges = []
    cursor = lo - slice_
    for h in hours:
        if h - hour > cursor:
            ranges.append((cursor, h - hour))
        cursor = h
    if at > cursor:
        ranges.append((cursor, at))
    return hours, [(a, b) for a, b in ranges if b > lo]


def history_cacheable(slice_: timedelta, secs: Sequence[int], every_s: int) -> bool:
    """True when :meth:`SloEngine.history` can use the slice cache: the slice divides an
    hour, and every window and the evaluation interval are whole slices (the running
    sums are then taken at slice ends only)."""
    s = int(slice_.total_seconds())
    return 3600 % s == 0 and every_s % s == 0 and all(w % s == 0 for w in secs)


def _epoch_s(t: datetime) -> int:
    """Whole seconds since the epoch of a UTC-naive time (floored)."""
    return int(pd.Timestamp(t).as_unit("s").value // 1_000_000_000)


def _from_epoch_s(s: int) -> datetime:
    return pd.Timestamp(s, unit="s").to_pydatetime()


def _epoch_s_of(times: pd.Series) -> np.ndarray:
    """Seconds since the epoch of a column of UTC-naive times."""
    return times.to_numpy(dtype="datetime64[us]").astype(np.int64) // 1_000_000


def _ceil_hour(t: datetime) -> datetime:
    """The end of the right-closed hour ``(h - 1h, h]`` holding ``t``."""
    return pd.Timestamp(t).ceil("1h").to_pydatetime()


def _floor(t: datetime, seconds: int) -> datetime:
    ts = pd.Timestamp(t)
    return (ts.floor(f"{seconds}s")).to_pydatetime()


def status_table(
    engine: SloEngine, slos: Iterable[SloDefinition], at: datetime | None = None
) -> pd.DataFrame:
    """Status rows of many SLOs (see :meth:`SloEngine.status`), worst first.

    Adds ``service``, ``display_name`` and ``method`` columns.
    """
    slos = list(slos)
    if not slos:
        return pd.DataFrame()
    parts = engine._status_parts(slos, at)
    if all(isinstance(p, dict) for p in parts):
        # Batched SLOs: concatenate column arrays, build one frame (what pd.concat of
        # per-SLO frames gives: columns in order of first appearance, NaN where missing).
        out = pd.DataFrame(_concat_columns(slos, [p for p in parts if isinstance(p, dict)]))
    else:
        frames = []
        for slo, part in zip(slos, parts, strict=True):
            st = part if isinstance(part, pd.DataFrame) else pd.DataFrame(part)
            st.insert(1, "service", slo.service)
            st.insert(2, "display_name", slo.display_name)
            st["method"] = slo.method
            frames.append(st)
        out = pd.concat(frames, ignore_index=True)
    out["_order"] = out["state"].map(_STATE_ORDER).fillna(9)
    return (
        out.sort_values(["_order", "remaining"], na_position="last")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def _concat_columns(
    slos: Sequence[SloDefinition], parts: Sequence[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """:func:`status_table`'s columns from each SLO's status columns (same length as
    ``slos``): service and display_name after slo, method last; a column some SLOs
    lack (another set of windows) is NaN in their rows."""
    sizes = [len(part["slo"]) for part in parts]
    labels = {
        extra: np.repeat(np.array([getattr(s, extra) for s in slos], dtype=object), sizes)
        for extra in ("service", "display_name", "method")
    }
    names: dict[str, None] = {}
    for part in parts:
        keys = list(part)
        names.update(dict.fromkeys([keys[0], "service", "display_name", *keys[1:], "method"]))
    out: dict[str, np.ndarray] = {}
    for name in names:
        out[name] = (
            labels[name]
            if name in labels
            else np.concatenate(
                [part.get(name, np.full(n, np.nan)) for part, n in zip(parts, sizes, strict=True)]
            )
        )
    return out


def firing_severities(table: pd.DataFrame, slos: Iterable[SloDefinition]) -> pd.Series:
    """The severities firing in each status row (a set of ``page``/``ticket``), by row.

    ``table`` is :func:`status_table`'s; its ``firing`` column names tiers, which
    each SLO's tiers map to severities.
    """
    sev = {s.name: {t.name: t.severity for t in s.tiers} for s in slos}
    return pd.Series(
        [
            frozenset(sev.get(name, {}).get(t, t) for t in str(f).split(",") if t)
            for name, f in zip(table["slo"], table["firing"], strict=True)
        ],
        index=table.index,
        dtype=object,
    )


def headline_counts(table: pd.DataFrame, slos: Sequence[SloDefinition]) -> dict[str, int]:
    """How many SLOs page, open a ticket, have spent their budget, or have no data now.

    Counted over every row of an SLO (the global roll-up and each group), so the
    counts agree with the alert timeline's open episodes: an SLO whose
    ap-south-1 group pages counts as paging even when its global roll-up is quiet,
    and a firing tier counts even where the row's headline state is ``exhausted``.
    Paging and ticket are exclusive (an SLO paging anywhere is not also counted as
    a ticket); ``exhausted`` counts SLOs with any row out of budget; ``no_data``
    SLOs whose global row has no data.

    Returns:
        ``{"page": n, "ticket": n, "exhausted": n, "no_data": n}``.
    """
    out = {slomath.PAGE: 0, slomath.TICKET: 0, slomath.EXHAUSTED: 0, slomath.NO_DATA: 0}
    if table.empty:
        return out
    fired = firing_severities(table, slos)
    is_global = (table["region"] == GLOBAL) & (table["model"] == GLOBAL) & (table["arm"] == GLOBAL)
    for _name, rows in table.groupby("slo", sort=False):
        sev = frozenset().union(*fired[rows.index])
        if slomath.PAGE in sev:
            out[slomath.PAGE] += 1
        elif sev:
            out[slomath.TICKET] += 1
        out[slomath.EXHAUSTED] += int((rows["state"] == slomath.EXHAUSTED).any())
        out[slomath.NO_DATA] += int((rows[is_global[rows.index]]["state"] == slomath.NO_DATA).any())
    return out


#: Region states on the map, worst first.
REGION_STATES = (slomath.PAGE, slomath.EXHAUSTED, slomath.TICKET, slomath.OK, slomath.NO_DATA)


def region_states(table: pd.DataFrame, slos: Sequence[SloDefinition]) -> pd.DataFrame:
    """The worst SLO state of each region, from the rows of SLOs grouped by region.

    A row's state is ``page`` or ``ticket`` when a tier of that severity fires (as
    :func:`headline_counts` counts them), else ``exhausted`` when its budget is
    spent, ``ok`` when it has data, ``no_data`` otherwise; a region takes the worst
    of its rows in the order of :data:`REGION_STATES`.  SLOs not split by region
    (rows with region ``*``) colour no region.

    Returns:
        One row per region with SLO rows: region, state, slos (SLOs counted), worst
        (``slo (group)`` of the rows in the worst state, comma separated).
    """
    columns = ["region", "state", "slos", "worst"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    fired = firing_severities(table, slos)
    state = np.where(
        [slomath.PAGE in f for f in fired],
        slomath.PAGE,
        np.where(
            [bool(f) for f in fired],
            slomath.TICKET,
            np.where(
                table["state"] == slomath.EXHAUSTED,
                slomath.EXHAUSTED,
                np.where(
                    table["state"].isin([slomath.NO_DATA, slomath.INSUFFICIENT]),
                    slomath.NO_DATA,
                    slomath.OK,
                ),
            ),
        ),
    )
    rows = table.assign(_state=state, _rank=[REGION_STATES.index(s) for s in state])
    rows = rows[rows["region"] != GLOBAL]
    out = []
    for region, g in rows.groupby("region", sort=True):
        worst = g[g["_rank"] == g["_rank"].min()]
        labels = [
            f"{r.slo} ({'/'.join(str(x) for x in (r.model, r.arm) if x != GLOBAL) or r.region})"
            for r in worst.itertuples()
        ]
        out.append(
            {
                "region": region,
                "state": worst["_state"].iloc[0],
                "slos": g["slo"].nunique(),
                "worst": ", ".join(labels),
            }
        )
    return pd.DataFrame(out, columns=columns)


def _row_readings(
    params: dict[str, Any], rows: _BatchRows
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each batch row's (lower, upper, fraction) of its series' threshold reading
    (:mod:`analytics.slo_thresholds`): the series' own where ``params`` lists it, the
    default otherwise.  A lower bound of None (below the first bucket) is NaN, which
    no ``le`` equals."""
    n = len(rows.k)
    lower = np.full(n, np.nan if params["lower"] is None else params["lower"])
    upper = np.full(n, params["upper"], dtype=np.float64)
    frac = np.full(n, params["frac"], dtype=np.float64)
    if not params["lay_region"]:
        return lower, upper, frac
    own = {
        (r, m, a): (np.nan if lo is None else lo, up, f)
        for r, m, a, lo, up, f in zip(
            params["lay_region"],
            params["lay_model"],
            params["lay_arm"],
            params["lay_lower"],
            params["lay_upper"],
            params["lay_frac"],
            strict=True,
        )
    }
    dims = ("region", "model", "arm")
    sizes = [len(rows.uniques[d]) for d in dims]
    combo = (rows.codes["region"] * sizes[1] + rows.codes["model"]) * sizes[2] + rows.codes["arm"]
    for c in np.unique(combo):
        ri, rest = divmod(int(c), sizes[1] * sizes[2])
        mi, ai = divmod(rest, sizes[2])
        labels = (rows.uniques["region"][ri], rows.uniques["model"][mi], rows.uniques["arm"][ai])
        key = tuple("" if v is None or v != v else str(v) for v in labels)  # v != v: NaN
        if key in own:
            sel = combo == c
            lower[sel], upper[sel], frac[sel] = own[key]  # type: ignore[index]
    return lower, upper, frac

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from analytics import slo as slomath
from observatory.slo_specs import SloDefinition
from observatory.store import SQL_DIR, Store

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
    """

    sql: str
    params: dict[str, Any]
    slice: timedelta
    approximate: bool
    threshold_note: str


class SloEngine:
    """Computes SLO status and history over a store.

    Args:
        store: the store to read.
        step: the store's step (default: read from the gauges, else 60 s).
        maintenance: maintenance windows ``(start, end]`` (UTC) that apply to every
            SLO, in addition to each SLO's own.
        min_coverage: a tier fires only when both its windows are covered by data
            (share of slices the store holds rows for, maintenance excluded) at
            least this much; 0 evaluates like Prometheus, which has no such guard.
            The default 0.5 keeps a window that reaches back before the data began
            (a new region, a new store) from paging on a few minutes of events.
    """

    def __init__(
        self,
        store: Store,
        step: timedelta | None = None,
        maintenance: Sequence[tuple[datetime, datetime]] = (),
        min_coverage: float = 0.5,
    ):
        self.store = store
        self._step = step
        self.maintenance = tuple(maintenance)
        self.min_coverage = min_coverage
        self._les: dict[str, list[float]] = {}

    # ------------------------------------------------------------- basics
    @property
    def step(self) -> timedelta:
        """The store's step."""
        if self._step is None:
            df = self.store.query("SELECT min(step_s) AS s FROM gauges")
            s = df["s"].iloc[0]
            self._step = timedelta(seconds=int(s)) if pd.notna(s) else timedelta(seconds=60)
        return self._step

    def latest(self, slo: SloDefinition) -> datetime | None:
        """The end of the last stored step of the SLO's signal (None without data)."""
        ref = slo.indicator.numerator if slo.indicator.kind == "budget" else slo.indicator.signal
        assert ref is not None
        table = {"counter": "counters", "gauge": "gauges", "histogram": "histograms"}[ref.kind]
        df = self.store.query(
            f"SELECT max(ts_utc) AS t FROM {table} WHERE signal = $s", {"s": ref.signal}
        )
        t = df["t"].iloc[0]
        return None if pd.isna(t) else pd.Timestamp(t).to_pydatetime()

    def bucket_bounds(self, signal: str) -> list[float]:
        """The ``le`` bounds stored for a histogram signal (cached per engine)."""
        if signal not in self._les:
            self._les[signal] = self.store.query(
                "SELECT DISTINCT le FROM histograms WHERE signal = $s ORDER BY le", {"s": signal}
            )["le"].tolist()
        return self._les[signal]

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
        maint = [*self.maintenance, *slo.maintenance]
        params: dict[str, Any] = {
            "regions": filters["region"],
            "models": filters["model"],
            "arms": filters["arm"],
            "by_region": "region" in slo.group_by,
            "by_model": "model" in slo.group_by,
            "by_arm": "arm" in slo.group_by,
            "m_start": [a for a, _ in maint],
            "m_end": [b for _, b in maint],
        }
        approximate, note = False, ""
        allow_step = None
        if ind.kind == "budget":
            assert ind.allowance is not None and ind.allowance_per is not None
            allow_step = ind.allowance * step_s / ind.allowance_per.total_seconds()
        if ind.kind in ("ratio", "budget") and (ind.numerator and ind.numerator.kind == "counter"):
            assert ind.numerator is not None
            events = _sql("slo_events_counter")
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
            threshold = (
                ind.numerator.threshold if ind.kind == "latency" and ind.numerator else ind.value
            )
            assert threshold is not None
            les = self.bucket_bounds(ref.signal)
            all_good = False
            if not any(math.isfinite(x) for x in les):
                # No buckets stored (yet): the SLO has no data; any bound will do.
                tb = slomath.ThresholdBuckets(threshold, threshold, threshold, 1.0, True)
            else:
                tb = slomath.threshold_buckets(les, threshold)
                finite = [x for x in les if math.isfinite(x)]
                if ind.kind == "percentile" and threshold >= max(finite):
                    all_good = True
            approximate = not tb.exact and not all_good
            note = (
                f"le={tb.upper:g} (exact)"
                if tb.exact
                else f"interpolated in ({0 if math.isnan(tb.lower) else tb.lower:g}, {tb.upper:g}]"
            )
            params.update(
                signal=ref.signal,
                lower=None if math.isnan(tb.lower) else tb.lower,
                upper=tb.upper,
                frac=tb.fraction,
                all_good=all_good,
                num_is_bad=ind.kind == "latency" and ind.numerator_is_bad,
            )
        else:
            events = _sql("slo_events_gauge")
            gref = ind.numerator if ind.kind in ("raw", "budget") else ind.total
            assert gref is not None
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
        return Prepared(sql, params, timedelta(seconds=params["slice_s"]), approximate, note)

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
        sql = _compose(_sql("slo_window_status"), "slices", prep.sql)
        params = {
            **prep.params,
            "start": at - timedelta(seconds=secs[-1]) - prep.slice,
            "end": at,
            "at": at,
            "w_secs": secs,
        }
        buckets = self.store.query(sql, params)
        keys = ["region", "model", "arm"]
        frames = []
        for i, (name, s) in enumerate(zip(names, secs, strict=True)):
            part = buckets[buckets["k"] <= i]
            if part.empty:
                continue
            sums = part.groupby(keys, as_index=False)[["bad", "total", "slices"]].sum()
            sums.insert(0, "window", name)
            sums["window_s"] = s
            sums["expected"] = self._expected_slices(slo, at, timedelta(seconds=s), prep.slice)
            frames.append(sums)
        if not frames:
            return pd.DataFrame(columns=[*self._SUM_COLUMNS])
        return pd.concat(frames, ignore_index=True)

    def _expected_at(
        self, slo: SloDefinition, times: pd.Series, w: timedelta, slice_: timedelta
    ) -> np.ndarray:
        """Slices in ``(t - w, t]`` outside maintenance, for each time ``t``."""
        n = int(w / slice_)
        maint = [*self.maintenance, *slo.maintenance]
        if not maint or times.empty:
            return np.full(len(times), float(n))
        grid = pd.date_range(times.min() - w + slice_, times.max(), freq=slice_)
        inside = slomath.maintenance_mask(grid, maint).astype(np.float64)
        counts = pd.Series(slomath.rolling_sums(inside, n), index=grid)
        return n - counts.reindex(pd.DatetimeIndex(times)).to_numpy()

    def _expected_slices(
        self, slo: SloDefinition, at: datetime, w: timedelta, slice_: timedelta
    ) -> float:
        n = int(w / slice_)
        maint = [*self.maintenance, *slo.maintenance]
        if not maint or n == 0:
            return float(n)
        ends = pd.date_range(end=at, periods=n, freq=slice_)
        return float(n - slomath.maintenance_mask(ends, maint).sum())

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
        out = self._status_rows(
            slo, prep, at, sums if isinstance(sums, Wide) else Wide.from_sums(sums)
        )
        out["_g"] = (out["region"] != GLOBAL) | (out["model"] != GLOBAL) | (out["arm"] != GLOBAL)
        out = out.sort_values(["_g", "remaining"], na_position="last").drop(columns="_g")
        return out.reset_index(drop=True)

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
        query per table (``slo_batch_counters.sql``, ``slo_batch_histograms.sql``), at
        ``at`` or at the table's latest step; each SLO's groups are then sums of those
        rows (exactly what its own query would add up).  A roll-up's coverage is the
        best-covered member's (the union of the members' steps is not kept).  Other
        SLOs run their own query.
        """
        out: dict[int, pd.DataFrame] = {}
        batch = [i for i, s in enumerate(slos) if self.batchable(s)]
        union = {w for i in batch for w in self._windows(slos[i], at or datetime.min).values()}
        if len(union) > MAX_WINDOWS:
            batch = []
        for i, slo in enumerate(slos):
            if i not in batch:
                out[i] = self.status(slo, at)
        if batch:
            for i, frame in self._batch([slos[i] for i in batch], at).items():
                out[batch[i]] = frame
        return [out[i] for i in range(len(slos))]

    def _batch(self, slos: list[SloDefinition], at: datetime | None) -> dict[int, pd.DataFrame]:
        windows = sorted(
            {
                int(w.total_seconds())
                for s in slos
                for w in self._windows(s, at or datetime.min).values()
            }
        )
        maint = list(self.maintenance)
        base = {"w_secs": windows, "m_start": [a for a, _ in maint], "m_end": [b for _, b in maint]}
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
            t = at
            if t is None:
                df = self.store.query(
                    f"SELECT max(ts_utc) AS t FROM {table} WHERE list_contains($s, signal)",
                    {"s": signals},
                )
                t = (
                    None
                    if pd.isna(df["t"].iloc[0])
                    else pd.Timestamp(df["t"].iloc[0]).to_pydatetime()
                )
            ats[table] = t
            if t is None:
                continue
            params: dict[str, Any] = {**base, "signals": signals, "at": t}
            if table == "histograms":
                les = {math.inf}
                for s, p in zip(slos, preps, strict=True):
                    if s.indicator.kind == "latency":
                        les |= {x for x in (p.params["lower"], p.params["upper"]) if x is not None}
                params["les"] = sorted(les)
                frames[table] = self.store.named("slo_batch_histograms", **params)
            else:
                frames[table] = self.store.named("slo_batch_counters", **params)
        result: dict[int, pd.DataFrame] = {}
        for i, (slo, prep) in enumerate(zip(slos, preps, strict=True)):
            table = "counters" if slo.indicator.kind == "ratio" else "histograms"
            t = ats.get(table)
            if t is None or table not in frames:
                result[i] = self.status(
                    slo, t, sums=pd.DataFrame(columns=[*self._SUM_COLUMNS]), prep=prep
                )
                continue
            sums = self._sums_from_batch(slo, prep, frames[table], windows, t)
            result[i] = self.status(slo, t, sums=sums, prep=prep)
        return result

    def _sums_from_batch(
        self,
        slo: SloDefinition,
        prep: Prepared,
        rows: pd.DataFrame,
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
        n = len(rows)
        mask = np.ones(n, dtype=bool)
        for dim, values in ind.signal.filters().items():
            if values is not None:
                mask &= rows[dim].isin(values).to_numpy()
        codes, uniques = [], []
        for dim in keys:
            c, u = pd.factorize(rows[dim])
            codes.append(c if dim in slo.group_by else np.zeros(n, dtype=np.int64) - 1)
            uniques.append(np.asarray(u, dtype=object))
        sizes = [len(u) + 1 for u in uniques]
        gid = ((codes[0] + 1) * sizes[1] + (codes[1] + 1)) * sizes[2] + (codes[2] + 1)
        k = rows["k"].to_numpy(dtype=np.int64)
        nk = len(windows)
        value = rows["value"].to_numpy(dtype=np.float64)
        steps = rows["steps"].to_numpy(dtype=np.float64)
        ngroups = sizes[0] * sizes[1] * sizes[2]

        def acc(sel: np.ndarray, global_: bool = False) -> np.ndarray:
            idx = (np.zeros(int(sel.sum()), dtype=np.int64) if global_ else gid[sel]) * nk + k[sel]
            return np.bincount(idx, weights=value[sel], minlength=ngroups * nk).reshape(ngroups, nk)

        def max_steps(sel: np.ndarray, global_: bool = False) -> np.ndarray:
            out = np.zeros(ngroups * nk)
            idx = (np.zeros(int(sel.sum()), dtype=np.int64) if global_ else gid[sel]) * nk + k[sel]
            np.maximum.at(out, idx, steps[sel])
            return out.reshape(ngroups, nk)

        def events(global_: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if ind.kind == "ratio":
                assert ind.numerator is not None and ind.total is not None
                sig = rows["signal"].to_numpy()
                num_sel = mask & (sig == ind.numerator.signal)
                tot_sel = mask & (sig == ind.total.signal)
                num, tot = acc(num_sel, global_), acc(tot_sel, global_)
                bad = num if ind.numerator_is_bad else tot - num
                return bad, tot, max_steps(tot_sel, global_)
            p = prep.params
            le = rows["le"].to_numpy(dtype=np.float64)
            lo = acc(mask & (le == p["lower"]), global_) if p["lower"] is not None else 0.0
            up = acc(mask & (le == p["upper"]), global_)
            inf_sel = mask & np.isinf(le)
            tot = acc(inf_sel, global_)
            good = lo + p["frac"] * (up - lo)
            return (good if p["num_is_bad"] else tot - good), tot, max_steps(inf_sel, global_)

        blocks = [events(False)]
        if slo.group_by:
            blocks.append(events(True))
        wins = self._windows(slo, at)
        cols = [windows.index(int(w.total_seconds())) for w in wins.values()]
        names = list(wins)
        expected = np.array([self._expected_slices(slo, at, w, prep.slice) for w in wins.values()])
        labels: list[list[np.ndarray]] = [[], [], []]
        data: dict[tuple[str, str], list[np.ndarray]] = {}
        for b, (bad, tot, st) in enumerate(blocks):
            present = np.flatnonzero((st > 0).any(axis=1))
            if b == 1:
                present = np.array([0])  # the global row sits at index 0
            cb, ct, cs = (np.cumsum(x, axis=1)[present][:, cols] for x in (bad, tot, st))
            # Rows count steps for series without instances; never more than the window.
            cs = np.minimum(cs, expected)
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
            for field, arr in (("bad", cb), ("total", ct), ("slices", cs)):
                for wi, name in enumerate(names):
                    data.setdefault((field, name), []).append(arr[:, wi])
            for wi, name in enumerate(names):
                data.setdefault(("expected", name), []).append(np.full(len(g), expected[wi]))
        return Wide(
            (np.concatenate(labels[0]), np.concatenate(labels[1]), np.concatenate(labels[2])),
            {k: np.concatenate(v) for k, v in data.items()},
        )

    def _status_rows(
        self, slo: SloDefinition, prep: Prepared, at: datetime, wide: Wide
    ) -> pd.DataFrame:
        """Status columns for every group at once, from the groups' window sums."""
        n = len(wide)

        def col(field: str, window: str) -> np.ndarray:
            got = wide.data.get((field, window))
            if got is None:
                return np.full(n, np.nan if field == "expected" else 0.0)
            return got if field == "expected" else np.nan_to_num(got)

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
        columns["state"] = [
            slomath.slo_state(
                float(remaining[i]),
                {t.name: bool(states[t.name][i]) for t in slo.tiers},
                slo.tiers,
                str(data_state[i]),
            )
            for i in range(n)
        ]
        columns["data_state"] = data_state
        columns["tte_hours"] = tte
        columns["firing"] = [
            ",".join(t.name for t in slo.tiers if states[t.name][i]) for i in range(n)
        ]
        columns["approximate"] = np.full(n, prep.approximate)
        columns["at"] = [at] * n
        return pd.DataFrame(columns)

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
        sql = _compose(_sql("slo_window_history"), "slices", prep.sql)
        params = {
            **prep.params,
            "start": grid_start,
            "end": end,
            "grid_start": grid_start,
            "eval_start": start,
            "every_s": every_s,
            "w_names": names,
            "w_secs": secs,
        }
        long = self.store.query(sql, params)
        if long.empty:
            return pd.DataFrame()
        # Every (group, time) has one row per window, ordered by window length: reshape.
        order = sorted(range(len(names)), key=lambda i: (secs[i], names[i]))
        names = [names[i] for i in order]
        nw = len(names)
        keys = long.iloc[::nw][["ts_utc", "region", "model", "arm", "cum_bad", "cum_total"]]
        wide = keys.reset_index(drop=True)
        for col in ("bad", "total", "slices"):
            block = long[col].to_numpy(dtype=np.float64).reshape(-1, nw)
            for j, name in enumerate(names):
                wide[f"{col}_{name}"] = block[:, j]
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
            expected = self._expected_at(slo, wide["ts_utc"], w, prep.slice)
            wide[f"coverage_{n}"] = slomath.coverage(wide[f"slices_{n}"], expected)
            ok = wide[f"coverage_{n}"].to_numpy() >= self.min_coverage
            burn[w] = np.where(ok, wide[f"burn_{n}"].to_numpy(), np.nan)
        for tier, firing in slomath.tier_states(burn, slo.tiers).items():
            wide[tier] = firing
        return wide.sort_values(["region", "model", "arm", "ts_utc"]).reset_index(drop=True)

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


def _floor(t: datetime, seconds: int) -> datetime:
    ts = pd.Timestamp(t)
    return (ts.floor(f"{seconds}s")).to_pydatetime()


def status_table(
    engine: SloEngine, slos: Iterable[SloDefinition], at: datetime | None = None
) -> pd.DataFrame:
    """Status rows of many SLOs (see :meth:`SloEngine.status`), worst first.

    Adds ``service``, ``display_name`` and ``method`` columns.
    """
    frames = []
    slos = list(slos)
    for slo, st in zip(slos, engine.status_many(slos, at), strict=True):
        st.insert(1, "service", slo.service)
        st.insert(2, "display_name", slo.display_name)
        st["method"] = slo.method
        frames.append(st)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["_order"] = out["state"].map(_STATE_ORDER).fillna(9)
    return (
        out.sort_values(["_order", "remaining"], na_position="last")
        .drop(columns="_order")
        .reset_index(drop=True)
    )

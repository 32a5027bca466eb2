"""Experiment replicates summarised by their sufficient statistics, summed per hour.

Pure module (numpy/pandas; no DuckDB, no Streamlit, no network).  Every statistic of
:mod:`analytics.experiment_metrics` is a function of sums over replicates (one arm,
one region, one minute): for a mean metric ``n``, ``sum y``, ``sum y^2``; for a ratio
metric ``sum m / sum d`` the delta method's ``n``, ``sum m``, ``sum m^2``, ``sum d``,
``sum d^2``, ``sum m d`` (GrowthBook's ``RatioStatistic``); for a quantile metric the
sums, squares, adjacent products and products with the total of the replicates'
cumulative latency buckets (:class:`analytics.experiments.BucketMoments`).  Sums add
up, so an experiment's replicates can be summarised once per span of time and the
spans added: :class:`Moments` holds them

- per region and arm (``regional``): everything, for the pooled and per-region
  tables, the quantile intervals, sample-ratio checks and the frontier;
- per hour and arm, pooled over regions (``hourly``): the mean and ratio metrics,
  for the cumulative effect at checkpoints on the hour grid from ``origin``;
- per region (``live``): minutes with requests in any arm and in every arm, for
  :func:`analytics.experiment_metrics.time_overlap`.

:class:`MomentSource` answers the analysis from them
(:class:`analytics.experiment_metrics.ReplicateSource`) with the same numbers as the
replicate rows, to float rounding (sums in another order); tests/test_experiments_fast.py
compares both on a real store.  Its size grows with regions x arms and hours, not with
minutes: 60x fewer rows than the replicates for the hourly part, and a few hundred
rows for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics import experiments as ab
from analytics.experiment_metrics import METRICS, Buckets, MetricDef

FloatArray = npt.NDArray[np.float64]
HOUR_NS = 3_600_000_000_000
#: The metrics summarised by sums of replicate values (quantiles have bucket sums).
SUMMED = tuple(m for m in METRICS.values() if m.kind != "quantile")
_MEAN_PARTS = ("n", "s", "ss")
_RATIO_PARTS = ("n", "m", "mm", "d", "dd", "md")
KEYS = ["region", "arm"]
#: ``ts_min``/``ts_max`` of a region and arm with bucket rows only.
NO_TIME = (np.iinfo(np.int64).max, np.iinfo(np.int64).min)


class OffGrid(ValueError):
    """A checkpoint that is neither on the hour grid from ``origin`` nor after the data."""


def _parts(m: MetricDef) -> tuple[str, ...]:
    return _MEAN_PARTS if m.kind == "mean" else _RATIO_PARTS


def summed_columns() -> list[str]:
    """Names of the mean and ratio metrics' sum columns, ``<metric>.<part>``."""
    return [f"{m.name}.{p}" for m in SUMMED for p in _parts(m)]


def bucket_columns(k: int) -> list[str]:
    """Names of the bucket sum columns for ``k`` bounds: ``q.s<j>``, ``q.ss<j>``,
    ``q.adj<j>`` (``j < k - 1``) and ``q.st<j>``."""
    return (
        [f"q.s{j}" for j in range(k)]
        + [f"q.ss{j}" for j in range(k)]
        + [f"q.adj{j}" for j in range(k - 1)]
        + [f"q.st{j}" for j in range(k)]
    )


def _replicate_parts(reps: pd.DataFrame) -> dict[str, FloatArray]:
    """Per replicate, the terms whose sums are the mean and ratio statistics.

    The same masks as :func:`analytics.experiment_metrics.arm_stats`: mean metrics
    keep finite values; ratio metrics keep rows with a finite numerator and a finite,
    positive denominator.  Dropped rows contribute zeros.
    """
    out: dict[str, FloatArray] = {}
    for m in SUMMED:
        num = reps[m.numerator].astype(float).to_numpy() * m.scale
        if m.kind == "mean":
            ok = np.isfinite(num)
            y = np.where(ok, num, 0.0)
            terms: tuple[FloatArray, ...] = (ok.astype(float), y, np.square(y))
        else:
            assert m.denominator is not None
            den = reps[m.denominator].astype(float).to_numpy()
            ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
            a, b = np.where(ok, num, 0.0), np.where(ok, den, 0.0)
            terms = (ok.astype(float), a, np.square(a), b, np.square(b), a * b)
        for part, values in zip(_parts(m), terms, strict=True):
            out[f"{m.name}.{part}"] = values
    return out


def _bucket_parts(buckets: Buckets) -> pd.DataFrame:
    """Per bucket replicate (region, arm), the terms of :class:`ab.BucketMoments`."""
    c = np.maximum.accumulate(np.nan_to_num(buckets.cumulative), axis=1)
    k = c.shape[1]
    total = c[:, -1:]
    mat = np.hstack([c, np.square(c), c[:, :-1] * c[:, 1:], c * total])
    keys = pd.DataFrame(
        {"region": buckets.keys["region"].to_numpy(), "arm": buckets.keys["arm"].to_numpy(),
         "q.rows": 1.0}
    )  # fmt: skip
    return pd.concat([keys, pd.DataFrame(mat, columns=bucket_columns(k))], axis=1)


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of an experiment's replicates over one span of time.

    Attributes:
        origin: start of the hour grid (naive UTC): hour ``j`` covers the replicates
            ending in ``(origin + j h, origin + (j + 1) h]``.
        arms: the experiment's arms (control first), those of ``live``.
        le: the latency bucket bounds (seconds, sorted, ``inf`` last) of the
            ``q.*`` columns; empty without buckets.
        regional: one row per region and arm: ``rows`` (replicates), ``requests``,
            ``ts_min``/``ts_max`` (first/last replicate end, ns since the epoch),
            :func:`summed_columns`, ``q.rows`` and :func:`bucket_columns`.
        hourly: one row per hour ``chunk`` and arm, pooled over regions:
            :func:`summed_columns`.
        live: one row per region: ``any`` (minutes with requests in some arm) and
            ``all`` (in every arm).
    """

    origin: pd.Timestamp
    arms: tuple[str, ...]
    le: FloatArray
    regional: pd.DataFrame
    hourly: pd.DataFrame
    live: pd.DataFrame

    @classmethod
    def from_replicates(
        cls,
        replicates: pd.DataFrame,
        buckets: Buckets,
        arms: Sequence[str],
        origin: pd.Timestamp,
        le: npt.ArrayLike | None = None,
    ) -> Moments:
        """Summarise replicate rows (:func:`analytics.experiment_metrics.add_derived`
        applied) and their buckets.

        Args:
            replicates: one row per (ts_utc, region, arm); rows of other arms are
                ignored.
            buckets: their latency buckets (``Buckets.empty()`` for none).
            arms: the experiment's arms, control first.
            origin: start of the hour grid (naive UTC).
            le: the bucket bounds the ``q.*`` columns are for (default: ``buckets.le``);
                ``buckets.le`` must equal them when buckets are given.

        Raises:
            ValueError: buckets with other bounds than ``le``.
        """
        reps = replicates[replicates["arm"].isin(arms)]
        bounds = np.asarray(buckets.le if le is None else le, dtype=np.float64)
        if len(buckets.keys) and not np.array_equal(buckets.le, bounds):
            raise ValueError(
                f"bucket bounds {buckets.le.tolist()} differ from the moments' {bounds.tolist()}"
            )
        ts = pd.DatetimeIndex(reps["ts_utc"]).as_unit("ns").asi8
        parts = pd.DataFrame(_replicate_parts(reps), index=reps.index)
        parts.insert(0, "requests", reps["requests"].astype(float).fillna(0.0).to_numpy())
        parts.insert(0, "rows", 1.0)
        keyed = parts.assign(region=reps["region"].to_numpy(), arm=reps["arm"].to_numpy())
        regional = keyed.groupby(KEYS, sort=True).sum()
        qcols = ["q.rows", *bucket_columns(bounds.size)]
        if len(buckets.keys):
            q = _bucket_parts(buckets)
            q = q[q["arm"].isin(arms)].groupby(KEYS, sort=True).sum()
            regional = regional.join(q, how="outer").fillna(0.0)
        else:
            regional = regional.reindex(columns=[*regional.columns, *qcols], fill_value=0.0)
        times = pd.DataFrame({"region": keyed["region"], "arm": keyed["arm"], "ts": ts})
        span = times.groupby(KEYS, sort=True)["ts"].agg(["min", "max"])
        regional["ts_min"] = span["min"].reindex(regional.index, fill_value=NO_TIME[0])
        regional["ts_max"] = span["max"].reindex(regional.index, fill_value=NO_TIME[1])
        chunk = (ts - pd.Timestamp(origin).as_unit("ns").value - 1) // HOUR_NS
        hourly = (
            keyed[["arm", *summed_columns()]]
            .assign(chunk=chunk)
            .groupby(["chunk", "arm"], sort=True)
            .sum()
            .reset_index()
        )
        return cls(
            pd.Timestamp(origin),
            tuple(arms),
            bounds,
            regional.reset_index().copy(),
            hourly,
            _live(reps, arms),
        )

    @classmethod
    def combine(cls, parts: Sequence[Moments]) -> Moments:
        """The moments of several disjoint spans (same origin, arms and bounds).

        Raises:
            ValueError: no parts, or parts with another origin, arms or bounds.
        """
        if not parts:
            raise ValueError("no moments to combine")
        first = parts[0]
        for p in parts[1:]:
            if p.origin != first.origin or p.arms != first.arms:
                raise ValueError("moments of other origins or arms cannot be combined")
            if not np.array_equal(p.le, first.le):
                raise ValueError(f"moments with bounds {p.le.tolist()} and {first.le.tolist()}")
        regional = pd.concat([p.regional for p in parts], ignore_index=True)
        return cls(
            first.origin,
            first.arms,
            first.le,
            _totals(regional, KEYS).reset_index(),
            pd.concat([p.hourly for p in parts], ignore_index=True)
            .groupby(["chunk", "arm"], sort=True)
            .sum()
            .reset_index(),
            pd.concat([p.live for p in parts], ignore_index=True)
            .groupby("region", sort=True)
            .sum()
            .reset_index(),
        )


def _totals(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sums per ``keys`` of every column, except ``ts_min`` (min) and ``ts_max`` (max)."""
    grouped = frame.groupby(keys, sort=True)
    summed = grouped[[c for c in frame.columns if c not in (*keys, "ts_min", "ts_max")]].sum()
    return summed.assign(ts_min=grouped["ts_min"].min(), ts_max=grouped["ts_max"].max())


def _live(reps: pd.DataFrame, arms: Sequence[str]) -> pd.DataFrame:
    """Per region: minutes with requests in any of ``arms``, and in all of them."""
    live = reps[(reps["requests"] > 0) & reps["arm"].isin(arms)]
    if live.empty:
        return pd.DataFrame({"region": pd.Series([], dtype=object), "any": [], "all": []})
    per = live.groupby(["region", "ts_utc"])["arm"].nunique()
    full = (per == len(arms)).astype(float).to_numpy()
    regions = per.index.get_level_values("region").to_numpy()
    out = pd.DataFrame({"region": regions, "any": 1.0, "all": full})
    return out.groupby("region", sort=True).sum().reset_index()


class MomentSource:
    """The analysis's :class:`~analytics.experiment_metrics.ReplicateSource` over
    :class:`Moments`: the same statistics as the replicate rows, to float rounding.

    The sums are held as one float matrix (a row per region and arm, and per arm over
    all regions) so that each look-up is an index, not a pandas selection.
    """

    def __init__(self, moments: Moments):
        self.moments = moments
        reg = moments.regional
        totals = _totals(reg.drop(columns="region"), ["arm"])
        cols = [c for c in reg.columns if c not in (*KEYS, "ts_min", "ts_max")]
        self._col = {c: j for j, c in enumerate(cols)}
        self._sums = np.vstack(
            [reg[cols].to_numpy(dtype=np.float64), totals[cols].to_numpy(dtype=np.float64)]
        )
        keys = [*zip(reg["region"], reg["arm"], strict=True), *((None, a) for a in totals.index)]
        self._row_of = {k: i for i, k in enumerate(keys)}
        self._last = dict(zip(totals.index, totals["ts_max"].astype(np.int64), strict=True))
        self._first_ns = int(totals["ts_min"].min()) if len(totals) else NO_TIME[0]
        self._last_ns = int(totals["ts_max"].max()) if len(totals) else NO_TIME[1]
        self._regions = sorted(reg.loc[reg["rows"] > 0, "region"].unique().tolist())
        self._hourly = {
            arm: frame.sort_values("chunk") for arm, frame in moments.hourly.groupby("arm")
        }

    def _row(self, arm: str, region: str | None) -> FloatArray | None:
        i = self._row_of.get((region, arm))
        return None if i is None else self._sums[i]

    def _take(self, row: FloatArray, names: Sequence[str]) -> list[float]:
        return [float(row[self._col[n]]) for n in names]

    def regions(self) -> list[str]:
        """Regions with replicates, sorted."""
        return list(self._regions)

    def requests(self, arm: str, region: str | None = None) -> float:
        """Requests of ``arm`` (all its replicates)."""
        row = self._row(arm, region)
        return 0.0 if row is None else float(row[self._col["requests"]])

    def stats(
        self, m: MetricDef, arm: str, region: str | None = None
    ) -> ab.MeanStats | ab.RatioStats:
        """The summed statistics of mean or ratio metric ``m``.

        Raises:
            ValueError: a quantile metric.
        """
        if m.kind == "quantile":
            raise ValueError(f"{m.name} is a quantile metric: use quantile statistics")
        row = self._row(arm, region)
        names = [f"{m.name}.{p}" for p in _parts(m)]
        values = [0.0] * len(names) if row is None else self._take(row, names)
        return ab.MeanStats(*values) if m.kind == "mean" else ab.RatioStats(*values)

    def quantile(
        self, m: MetricDef, arm: str, region: str | None, alpha: float
    ) -> ab.QuantileEstimate:
        """The quantile and its interval from the bucket sums."""
        q = m.quantile or 0.5
        row = self._row(arm, region)
        k = self.moments.le.size
        if row is None or not row[self._col["q.rows"]] > 0 or k == 0:
            nan = float("nan")
            return ab.QuantileEstimate(q, nan, nan, nan, 0.0, 0, nan, nan)

        def col(prefix: str, size: int) -> FloatArray:
            return row[[self._col[f"q.{prefix}{j}"] for j in range(size)]]

        mom = ab.BucketMoments(
            float(row[self._col["q.rows"]]), col("s", k), col("ss", k), col("adj", k - 1),
            col("st", k),
        )  # fmt: skip
        return ab.quantile_interval_from_moments(self.moments.le, mom, q, alpha)

    def overlap(self, arms: Sequence[str]) -> float:
        """Share of region-minutes with requests in any arm that have every arm.

        Raises:
            ValueError: ``arms`` are not the arms the moments were counted for.
        """
        if set(arms) != set(self.moments.arms):
            raise ValueError(f"overlap counted for arms {self.moments.arms}, asked for {arms}")
        live = self.moments.live
        n_any = float(live["any"].sum())
        return 1.0 if n_any == 0 else float(live["all"].sum()) / n_any

    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """First and last replicate end."""
        if self._first_ns == NO_TIME[0]:
            return None, None
        first, last = pd.Timestamp(self._first_ns), pd.Timestamp(self._last_ns)
        return first.as_unit("us"), last.as_unit("us")

    def cumulative(
        self, m: MetricDef, arm: str, checkpoints: pd.DatetimeIndex
    ) -> list[ab.MeanStats | ab.RatioStats]:
        """Statistics of ``m`` over the hours ending at or before each checkpoint.

        Raises:
            OffGrid: a checkpoint inside an hour of the grid before the arm's last
                replicate (the hours cannot be split; use the replicate rows).
        """
        frame = self._hourly.get(arm)
        cols = [f"{m.name}.{p}" for p in _parts(m)]
        if frame is None:
            sums = np.zeros((1, len(cols)))
            ends = np.array([np.iinfo(np.int64).max])
        else:
            sums = np.vstack([np.zeros(len(cols)), np.cumsum(frame[cols].to_numpy(), axis=0)])
            origin = self.moments.origin.as_unit("ns").value
            ends = origin + (frame["chunk"].to_numpy(dtype=np.int64) + 1) * HOUR_NS
        last_ns = self._last.get(arm)
        origin_ns = self.moments.origin.as_unit("ns").value
        out: list[ab.MeanStats | ab.RatioStats] = []
        for cp in checkpoints.as_unit("ns").asi8:
            if last_ns is not None and cp >= last_ns:
                cut = len(sums) - 1
            elif (cp - origin_ns) % HOUR_NS == 0:
                cut = int(np.searchsorted(ends, cp, side="right"))
            else:
                raise OffGrid(f"checkpoint {pd.Timestamp(cp)} is inside an hour of the grid")
            values = [float(v) for v in sums[cut]]
            out.append(ab.MeanStats(*values) if m.kind == "mean" else ab.RatioStats(*values))
        return out

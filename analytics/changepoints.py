"""Change points in a metric series: E-Divisive splitting with a t-test, as Apache Otava.

The production family of performance-regression detectors (MongoDB, Apache Otava,
Netflix) works in three steps, and so does :func:`detect`:

1. **Split** (E-Divisive, Matteson & James 2014): in a window of the series, find
   the split that maximises the energy statistic ``q-hat`` between the two sides;
   keep it when a Welch t-test between the sides is significant, and split the
   sides again.  The window slides over the series (half a window at a time, and
   from the last change point found), so the cost is linear in the series length
   and a change between two windows is not missed.  Splitting uses a looser p-value
   (10 x) than the final one, as Otava does.
2. **Merge**: bottom-up, the weakest change point (largest p-value of the t-test
   between the whole segments on either side, or a magnitude below the filter) is
   removed and its neighbours re-tested, until every change point passes.
3. **Filter** on magnitude: a relative change ``|after / before - 1|`` below
   ``min_magnitude`` (Otava's filter), and/or a standardised change
   ``|after - before| / noise`` below ``min_effect``, where ``noise`` is a robust
   estimate of the point-to-point noise (median absolute first difference), is not
   reported.  At large sample sizes every tiny shift is "significant"; the filter is
   what keeps operators from being paged for noise.

:class:`IncrementalDetector` adds points without recomputing history: only the
tail from the last-but-one change point on is re-analysed.

Seasonality (diurnal traffic) is handled by the caller passing a deseasonalised
series: see :mod:`analytics.regressions` and ``docs/regressions.md``.

Everything here is pure numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from scipy import special, stats

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of :func:`detect`.

    Attributes:
        window: points per E-Divisive window (Otava: 50).
        max_pvalue: a change point's t-test p-value must be at most this (Otava: 0.001).
        min_magnitude: smallest relative change ``|after / before - 1|`` reported
            (0 disables; needs a series of one sign, e.g. latency).
        min_effect: smallest ``|after - before| / noise`` reported (0 disables).
        min_shift: smallest ``|after - before|`` reported, in the series' unit (0
            disables; e.g. ``log(1.15)`` on a log series for a 15% change).
        min_size: fewest points on either side of a change point.
        robust: test and estimate levels on ranks/medians (Mann-Whitney U instead of
            the t-test), for heavy-tailed series.
    """

    window: int = 50
    max_pvalue: float = 0.001
    min_magnitude: float = 0.0
    min_effect: float = 0.0
    min_shift: float = 0.0
    min_size: int = 15
    robust: bool = False

    def __post_init__(self) -> None:
        if self.window < 2 * self.min_size:
            raise ValueError(f"window {self.window} must be >= 2 x min_size {self.min_size}")
        if not 0 < self.max_pvalue < 1:
            raise ValueError(f"max_pvalue must be in (0, 1), got {self.max_pvalue}")
        if self.min_size < 2:
            raise ValueError(f"min_size must be >= 2, got {self.min_size}")


@dataclass(frozen=True)
class ChangePoint:
    """A change point: the series changes level at ``index`` (first point of the new level).

    Attributes:
        index: position in the series.
        before, after: mean (median when robust) of the segments on either side.
        before_ci, after_ci: 95% confidence intervals of those levels.
        pvalue: the test between the two neighbouring segments.
        relative: ``after / before - 1`` (NaN when ``before`` is 0).
        effect: ``(after - before) / noise``.
        left, right: the neighbouring segments are ``[left, index)`` and ``[index, right)``.
    """

    index: int
    before: float
    after: float
    before_ci: tuple[float, float]
    after_ci: tuple[float, float]
    pvalue: float
    relative: float
    effect: float
    left: int
    right: int


# --------------------------------------------------------------------------- E-Divisive


def qhat(x: npt.ArrayLike, min_size: int = 2) -> FloatArray:
    """E-Divisive's energy statistic for every split of ``x`` (alpha = 1).

    ``q[t]`` compares ``x[:t]`` with ``x[t:]``:
    ``m n / (m + n) * (2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` with the sample means
    of the pairwise distances.  Splits leaving fewer than ``min_size`` points on a
    side get ``-inf``.  Cost O(n^2) time and memory: use it on windows.
    """
    v = np.asarray(x, dtype=np.float64)
    n = v.size
    out = np.full(n + 1, -np.inf)
    if n < 2 * max(min_size, 2):
        return out
    d = np.abs(v[:, None] - v[None, :])
    upper = np.triu(d, 1)
    col = upper.sum(axis=0)  # col[k] = sum_{i<k} d[i, k]
    row = upper.sum(axis=1)  # row[j] = sum_{l>j} d[j, l]
    within_left = np.concatenate([[0.0], np.cumsum(col)])  # [t] = sum_{i<k<t}
    within_right = np.concatenate([np.cumsum(row[::-1])[::-1], [0.0]])  # [t] = sum_{t<=j<l}
    total = within_left[-1]
    t = np.arange(n + 1, dtype=np.float64)
    m, k = t, n - t
    cross = total - within_left - within_right
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (m * k / n) * (
            2.0 * cross / (m * k)
            - 2.0 * within_left / (m * (m - 1))
            - 2.0 * within_right / (k * (k - 1))
        )
    lo, hi = max(min_size, 2), n - max(min_size, 2)
    out[lo : hi + 1] = q[lo : hi + 1]
    return out


def _welch_p(a: FloatArray, b: FloatArray) -> float:
    """Two-sided Welch t-test p-value (the t-test of Otava), without scipy's overhead."""
    na, nb = a.size, b.size
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    diff = float(a.mean()) - float(b.mean())
    if va == 0 and vb == 0:
        return 0.0 if diff != 0 else 1.0
    sa, sb = va / na, vb / nb
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa**2 / (na - 1) + sb**2 / (nb - 1))
    return float(2.0 * special.stdtr(df, -abs(diff) / se))


def _mannwhitney_p(a: FloatArray, b: FloatArray) -> float:
    """Two-sided Mann-Whitney U p-value (normal approximation, tie and continuity corrected)."""
    na, nb = a.size, b.size
    both = np.concatenate([a, b])
    ranks = stats.rankdata(both)
    u = float(ranks[:na].sum()) - na * (na + 1) / 2
    _, t = np.unique(both, return_counts=True)
    n = na + nb
    tie = float((t.astype(np.float64) ** 3 - t).sum()) / (n * (n - 1))
    sigma = math.sqrt(na * nb / 12 * ((n + 1) - tie))
    if sigma == 0:
        return 1.0
    z = (abs(u - na * nb / 2) - 0.5) / sigma
    return float(math.erfc(max(z, 0.0) / math.sqrt(2)))


def _pvalue(a: FloatArray, b: FloatArray, robust: bool) -> float:
    if a.size < 2 or b.size < 2:
        return 1.0
    return _mannwhitney_p(a, b) if robust else _welch_p(a, b)


def _edivisive(x: FloatArray, cfg: DetectorConfig, max_pvalue: float) -> list[int]:
    """Significant E-Divisive splits of ``x`` (positions in ``x``), best first."""
    segments = [(0, x.size)]
    found: list[int] = []
    cache: dict[tuple[int, int], tuple[float, int]] = {}
    while True:
        best: tuple[float, int, int, int] | None = None
        for a, b in segments:
            if (a, b) not in cache:
                q = qhat(x[a:b], cfg.min_size)
                i = int(np.argmax(q))
                cache[(a, b)] = (float(q[i]), a + i)
            val, pos = cache[(a, b)]
            if np.isfinite(val) and (best is None or val > best[0]):
                best = (val, pos, a, b)
        if best is None:
            return found
        _, pos, a, b = best
        if _pvalue(x[a:pos], x[pos:b], cfg.robust) > max_pvalue:
            return found
        found.append(pos)
        segments.remove((a, b))
        segments += [(a, pos), (pos, b)]


def _qhat_batch(windows: FloatArray, min_size: int) -> FloatArray:
    """:func:`qhat` of many equal-length windows at once, shape ``(k, w + 1)``."""
    k, n = windows.shape
    # float32 for the k x n x n distances (only the argmax is used); centred first.
    w32 = (windows - windows.mean(axis=1, keepdims=True)).astype(np.float32)
    d = np.abs(w32[:, :, None] - w32[:, None, :])
    d *= np.triu(np.ones((n, n), dtype=np.float32), 1)[None, :, :]
    col = d.sum(axis=1, dtype=np.float64)  # [k, j] = sum_{i<j} d[i, j]
    row = d.sum(axis=2, dtype=np.float64)  # [k, i] = sum_{j>i} d[i, j]
    zeros = np.zeros((k, 1))
    within_left = np.concatenate([zeros, np.cumsum(col, axis=1)], axis=1)
    within_right = np.concatenate([np.cumsum(row[:, ::-1], axis=1)[:, ::-1], zeros], axis=1)
    total = within_left[:, -1:]
    t = np.arange(n + 1, dtype=np.float64)[None, :]
    m, r = t, n - t
    cross = total - within_left - within_right
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (m * r / n) * (
            2.0 * cross / (m * r)
            - 2.0 * within_left / (m * (m - 1))
            - 2.0 * within_right / (r * (r - 1))
        )
    out = np.full((k, n + 1), -np.inf)
    lo, hi = max(min_size, 2), n - max(min_size, 2)
    out[:, lo : hi + 1] = q[:, lo : hi + 1]
    return out


def _welch_p_at(vals: FloatArray, tau: npt.NDArray[np.intp]) -> FloatArray:
    """Welch t-test p-values of ``vals[r, :tau[r]]`` against ``vals[r, tau[r]:]`` per row.

    ``tau`` is ``(k,)`` (one split per row) or ``(k, m)`` (``m`` splits per row, the
    result then ``(k, m)``).  Rows with zero variance on both sides get 0 when the
    means differ, else 1.
    """
    k, w = vals.shape
    c1 = np.concatenate([np.zeros((k, 1)), np.cumsum(vals, axis=1)], axis=1)
    c2 = np.concatenate([np.zeros((k, 1)), np.cumsum(vals**2, axis=1)], axis=1)
    rows = np.arange(k) if tau.ndim == 1 else np.arange(k)[:, None]
    na = tau.astype(np.float64)
    nb = w - na
    sa = c1[rows, tau]
    sb = c1[:, -1:].reshape(-1, *([1] * (tau.ndim - 1))) - sa
    qa = c2[rows, tau]
    qb = c2[:, -1:].reshape(-1, *([1] * (tau.ndim - 1))) - qa
    if tau.ndim == 1:
        sb, qb = sb.ravel(), qb.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        ma, mb = sa / na, sb / nb
        va = np.maximum(qa - na * ma**2, 0.0) / (na - 1)
        vb = np.maximum(qb - nb * mb**2, 0.0) / (nb - 1)
        se2a, se2b = va / na, vb / nb
        se = np.sqrt(se2a + se2b)
        df = (se2a + se2b) ** 2 / (se2a**2 / (na - 1) + se2b**2 / (nb - 1))
        tstat = np.abs(ma - mb) / se
        p = 2.0 * special.stdtr(df, -tstat)
    # Zero variance on both sides: significant when the means differ.
    flat = (se == 0) | ~np.isfinite(p)
    return np.asarray(np.where(flat, np.where(np.abs(ma - mb) > 0, 0.0, 1.0), p))


def _screen(windows: FloatArray, cfg: DetectorConfig, max_pvalue: float) -> npt.NDArray[np.bool_]:
    """Which windows' best E-Divisive split passes a (vectorised) Welch t-test.

    In robust mode the test runs on the ranks within each window (a t-test on ranks
    approximates Mann-Whitney); the windows that pass are then split exactly.

    The energy statistic costs O(w^2) per window, so windows are first screened by
    the smallest p-value over *all* admissible splits (O(w) each, by cumulative sums):
    the best E-Divisive split is one of them, so a window whose every split fails
    cannot pass either, and the result is the same as testing every window.
    """
    k, w = windows.shape
    vals = windows
    if cfg.robust:
        vals = np.argsort(np.argsort(windows, axis=1), axis=1).astype(np.float64)
    lo, hi = max(cfg.min_size, 2), w - max(cfg.min_size, 2)
    out = np.zeros(k, dtype=bool)
    if hi < lo:
        return out
    splits = np.broadcast_to(np.arange(lo, hi + 1), (k, hi - lo + 1))
    maybe = np.flatnonzero(_welch_p_at(vals, splits).min(axis=1) <= max_pvalue)
    if maybe.size == 0:
        return out
    q = _qhat_batch(windows[maybe], cfg.min_size)
    tau = np.argmax(q, axis=1)
    ok = np.isfinite(q[np.arange(len(q)), tau])
    out[maybe] = ok & (_welch_p_at(vals[maybe], tau) <= max_pvalue)
    return out


def split(x: npt.ArrayLike, cfg: DetectorConfig, start: int = 0) -> list[int]:
    """Candidate change points of ``x[start:]`` from E-Divisive on sliding windows (sorted).

    Windows of ``cfg.window`` points start every half window (the last one ends at
    the series' end).  All windows are screened at once (vectorised energy statistic
    and t-test of their best split); only windows that pass are split recursively.
    """
    v = np.asarray(x, dtype=np.float64)[start:]
    n = v.size
    w = cfg.window
    loose = cfg.max_pvalue * 10
    if n < 2 * cfg.min_size:
        return []
    if n <= w:
        return sorted(start + i for i in _edivisive(v, cfg, loose))
    step = max(w // 2, 1)
    starts = list(range(0, n - w + 1, step))
    if starts[-1] != n - w:
        starts.append(n - w)
    views = np.lib.stride_tricks.sliding_window_view(v, w)
    found: set[int] = set()
    chunk = 256
    for c in range(0, len(starts), chunk):
        block = np.asarray(starts[c : c + chunk])
        hits = _screen(views[block], cfg, loose)
        for s0 in block[hits]:
            found.update(start + int(s0) + i for i in _edivisive(v[s0 : s0 + w], cfg, loose))
    return sorted(found)


# --------------------------------------------------------------------------- merge & stats


def noise_scale(x: npt.ArrayLike) -> float:
    """Robust point-to-point noise: median |first difference| / (sqrt(2) * 0.6745).

    Level shifts barely move it (few differences straddle a change).  Falls back to
    the mean absolute difference, then 1, for series that are mostly constant.
    """
    v = np.asarray(x, dtype=np.float64)
    if v.size < 3:
        return 1.0
    d = np.abs(np.diff(v))
    s = float(np.median(d)) / (math.sqrt(2) * 0.6745)
    if s > 0:
        return s
    m = float(d.mean())
    return m / math.sqrt(2) if m > 0 else 1.0


def _level(seg: FloatArray, robust: bool) -> tuple[float, tuple[float, float]]:
    """Level of a segment and its 95% CI (mean and t interval, or median and order stats)."""
    n = seg.size
    if robust:
        srt = np.sort(seg)
        med = float(np.median(srt))
        if n < 6:
            return med, (float(srt[0]), float(srt[-1]))
        half = 1.96 * math.sqrt(n) / 2
        lo = int(max(math.floor(n / 2 - half), 0))
        hi = int(min(math.ceil(n / 2 + half), n - 1))
        return med, (float(srt[lo]), float(srt[hi]))
    mean = float(seg.mean())
    if n < 2:
        return mean, (mean, mean)
    half = float(special.stdtrit(n - 1, 0.975)) * float(seg.std(ddof=1)) / math.sqrt(n)
    return mean, (mean - half, mean + half)


def _describe(x: FloatArray, left: int, idx: int, right: int, cfg: DetectorConfig, noise: float):
    a, b = x[left:idx], x[idx:right]
    before, before_ci = _level(a, cfg.robust)
    after, after_ci = _level(b, cfg.robust)
    rel = after / before - 1.0 if before != 0 else math.nan
    return ChangePoint(
        index=idx,
        before=before,
        after=after,
        before_ci=before_ci,
        after_ci=after_ci,
        pvalue=_pvalue(a, b, cfg.robust),
        relative=rel,
        effect=(after - before) / noise if noise > 0 else math.inf,
        left=left,
        right=right,
    )


def _passes(cp: ChangePoint, cfg: DetectorConfig) -> bool:
    if cp.pvalue > cfg.max_pvalue:
        return False
    if cfg.min_magnitude > 0 and not (abs(cp.relative) >= cfg.min_magnitude):
        return False
    if cfg.min_shift > 0 and abs(cp.after - cp.before) < cfg.min_shift:
        return False
    return not (cfg.min_effect > 0 and abs(cp.effect) < cfg.min_effect)


def _weakness(cp: ChangePoint, cfg: DetectorConfig) -> tuple[int, float]:
    """Order for removal: failing points first, then the least significant."""
    return (0 if _passes(cp, cfg) else 1, cp.pvalue)


def merge(
    x: npt.ArrayLike,
    candidates: Sequence[int],
    cfg: DetectorConfig,
    noise: float | None = None,
    lo: int = 0,
) -> list[ChangePoint]:
    """Remove weak change points bottom-up until each passes the test and the filters.

    Each point is tested between its neighbouring points (segments ``[prev, idx)`` and
    ``[idx, next)``, with ``lo`` and ``len(x)`` at the ends).
    """
    v = np.asarray(x, dtype=np.float64)
    sigma = noise_scale(v) if noise is None else noise
    idx = sorted(i for i in set(candidates) if lo + cfg.min_size <= i <= v.size - cfg.min_size)

    def describe_all(points: list[int]) -> list[ChangePoint]:
        bounds = [lo, *points, v.size]
        return [
            _describe(v, bounds[k], bounds[k + 1], bounds[k + 2], cfg, sigma)
            for k in range(len(points))
        ]

    cps = describe_all(idx)
    while cps:
        worst = max(range(len(cps)), key=lambda k: _weakness(cps[k], cfg))
        if _passes(cps[worst], cfg):
            break
        del idx[worst]
        # Only the neighbours of the removed point change.
        bounds = [lo, *idx, v.size]
        for k in (worst - 1, worst):
            if 0 <= k < len(idx):
                cps[k if k < worst else k + 1] = _describe(
                    v, bounds[k], bounds[k + 1], bounds[k + 2], cfg, sigma
                )
        del cps[worst]
    return cps


def pelt_candidates(x: npt.ArrayLike, cfg: DetectorConfig, jump: int = 5) -> list[int]:
    """Candidate change points from ruptures' PELT (least-squares cost).

    The penalty is the BIC-like ``noise^2 ln(n)``, deliberately permissive: the
    candidates then go through the same :func:`merge` (test and filters) as
    E-Divisive's.
    """
    import ruptures as rpt  # imported here: only this method needs it

    v = np.asarray(x, dtype=np.float64)
    sigma = noise_scale(v)
    algo = rpt.Pelt(model="l2", min_size=cfg.min_size, jump=jump).fit(v)
    breaks = algo.predict(pen=sigma**2 * math.log(v.size))
    return [int(b) for b in breaks if b < v.size]


METHODS = ("edivisive", "pelt")


def refine(
    x: npt.ArrayLike,
    cps: Sequence[ChangePoint],
    cfg: DetectorConfig,
    noise: float | None = None,
    lo: int = 0,
) -> list[ChangePoint]:
    """Move each change point to the best least-squares split near it (within half a window).

    E-Divisive places a split where its window saw it best; between the final
    neighbours the split that best separates two levels (largest
    ``n_a n_b / (n_a + n_b) (mean_a - mean_b)^2``, on values winsorised at their 0.5%
    and 99.5% quantiles) can lie a few points away.  Points are refined left to right against
    their (already refined) neighbours, then re-described.
    """
    v = np.asarray(x, dtype=np.float64)
    sigma = noise_scale(v) if noise is None else noise
    if not cps:
        return []
    # Winsorise at the 0.5% / 99.5% quantiles: single outliers do not pull the split,
    # a level held for more than 0.5% of the points is kept.
    qlo, qhi = np.quantile(v[lo:], [0.005, 0.995])
    w = np.clip(v, qlo, qhi)
    csum = np.concatenate([[0.0], np.cumsum(w)])
    idx = [c.index for c in cps]
    half = max(cfg.window // 2, 1)
    for k in range(len(idx)):
        left = idx[k - 1] if k else lo
        right = idx[k + 1] if k + 1 < len(idx) else v.size
        a = max(left + cfg.min_size, idx[k] - half)
        b = min(right - cfg.min_size, idx[k] + half)
        if b <= a:
            continue
        t = np.arange(a, b + 1)
        na, nb = t - left, right - t
        ma = (csum[t] - csum[left]) / na
        mb = (csum[right] - csum[t]) / nb
        gain = na * nb / (na + nb) * (ma - mb) ** 2
        idx[k] = int(t[int(np.argmax(gain))])
    bounds = [lo, *idx, v.size]
    return [
        _describe(v, bounds[k], bounds[k + 1], bounds[k + 2], cfg, sigma) for k in range(len(idx))
    ]


def detect(
    x: npt.ArrayLike,
    cfg: DetectorConfig | None = None,
    noise: float | None = None,
    method: str = "edivisive",
) -> list[ChangePoint]:
    """Change points of a series (NaNs are not allowed: fill or drop them first).

    Args:
        x: the series, equally spaced.
        cfg: parameters (defaults: Otava's window 50 and p 0.001, no magnitude filter).
        noise: the noise scale for ``min_effect`` (default: :func:`noise_scale` of x).
        method: ``edivisive`` (sliding-window E-Divisive split, Otava) or ``pelt``
            (candidates from ruptures' PELT); both then :func:`merge`.
    """
    cfg = cfg or DetectorConfig()
    v = np.asarray(x, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if np.isnan(v).any():
        raise ValueError("the series holds NaN values; fill or drop them first")
    if v.size < 2 * cfg.min_size:
        return []
    candidates = split(v, cfg) if method == "edivisive" else pelt_candidates(v, cfg)
    sigma = noise_scale(v) if noise is None else noise
    merged = merge(v, candidates, cfg, sigma)
    return merge(v, [c.index for c in refine(v, merged, cfg, sigma)], cfg, sigma)


# --------------------------------------------------------------------------- incremental


@dataclass
class IncrementalDetector:
    """Change points of a growing series; :meth:`update` re-analyses only the tail.

    The points before the last-but-one change point are settled: their change points
    are kept as they were, and new data is analysed from there on (E-Divisive split
    and merge of the tail only).  The noise scale is fixed from the first
    :meth:`update` that sees at least ``3 * window`` points, so that old change
    points keep their effect sizes.

    Attributes:
        cfg: detector parameters.
        values: every point seen so far.
        change_points: the current change points.
        reanalysed: how many points the last update analysed (for tests and logs).
    """

    cfg: DetectorConfig = field(default_factory=DetectorConfig)
    values: FloatArray = field(default_factory=lambda: np.empty(0))
    change_points: list[ChangePoint] = field(default_factory=list)
    noise: float | None = None
    reanalysed: int = 0

    def update(self, new: npt.ArrayLike) -> list[ChangePoint]:
        """Append ``new`` points and return the change points of the whole series."""
        add = np.asarray(new, dtype=np.float64).ravel()
        if np.isnan(add).any():
            raise ValueError("the new points hold NaN values; fill or drop them first")
        self.values = np.concatenate([self.values, add])
        v = self.values
        if self.noise is None and v.size >= 3 * self.cfg.window:
            self.noise = noise_scale(v)
        noise = self.noise if self.noise is not None else noise_scale(v)
        settled = self.change_points[:-2] if len(self.change_points) >= 2 else []
        lo = settled[-1].index if settled else 0
        candidates = split(v, self.cfg, start=lo)
        tail = merge(v, [c for c in candidates if c > lo], self.cfg, noise, lo=lo)
        tail = refine(v, tail, self.cfg, noise, lo=lo)
        tail = merge(v, [c.index for c in tail], self.cfg, noise, lo=lo)
        if settled and tail:
            # The last settled point's right neighbour may have moved: re-describe it.
            last = settled[-1]
            settled[-1] = _describe(v, last.left, last.index, tail[0].index, self.cfg, noise)
        elif settled:
            last = settled[-1]
            settled[-1] = _describe(v, last.left, last.index, v.size, self.cfg, noise)
        self.reanalysed = v.size - lo
        self.change_points = [*settled, *tail]
        return list(self.change_points)


def with_config(cfg: DetectorConfig, **changes: float | int | bool) -> DetectorConfig:
    """A copy of ``cfg`` with some fields changed (validated)."""
    return replace(cfg, **changes)  # type: ignore[arg-type]

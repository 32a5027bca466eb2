"""Quantiles from cumulative histogram buckets, exactly as Prometheus computes them.

Follows ``histogram_quantile`` in Prometheus (promql/quantile.go), as summarised in
the project's statistics reference:

- buckets are sorted by upper bound ``le``; the last one must be ``+Inf``;
- cumulative counts are made monotone by a running maximum;
- the quantile's rank ``q * total`` is located in the first bucket whose cumulative
  count reaches it, and interpolated linearly inside that bucket;
- the lowest bucket starts at 0 when its upper bound is positive;
- a rank in the ``+Inf`` bucket returns the highest finite bound;
- NaN with fewer than 2 buckets, no ``+Inf`` bucket or zero observations;
  ``q < 0`` gives ``-Inf`` and ``q > 1`` gives ``+Inf``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def histogram_quantile(q: float, le: npt.ArrayLike, cumulative: npt.ArrayLike) -> FloatArray:
    """The ``q``-quantile of one or many histograms sharing one bucket layout.

    Args:
        q: the quantile, 0-1 (0.99 for p99).
        le: upper bounds, shape ``(k,)``, in the observation unit (e.g. seconds);
            any order, ``inf`` for the ``+Inf`` bucket.
        cumulative: cumulative counts per bucket, shape ``(k,)`` or ``(m, k)`` for
            ``m`` histograms.

    Returns:
        Shape ``()`` for one histogram or ``(m,)``: the quantile in the unit of ``le``.
    """
    bounds = np.asarray(le, dtype=np.float64)
    counts = np.asarray(cumulative, dtype=np.float64)
    single = counts.ndim == 1
    counts = np.atleast_2d(counts)
    order = np.argsort(bounds, kind="stable")
    bounds = bounds[order]
    counts = counts[:, order]
    m = counts.shape[0]
    if np.isnan(q):
        out = np.full(m, np.nan)
        return out[0] if single else out
    if q < 0:
        out = np.full(m, -np.inf)
        return out[0] if single else out
    if q > 1:
        out = np.full(m, np.inf)
        return out[0] if single else out
    if bounds.size < 2 or not np.isposinf(bounds[-1]):
        out = np.full(m, np.nan)
        return out[0] if single else out
    counts = np.maximum.accumulate(np.nan_to_num(counts, nan=0.0), axis=1)
    total = counts[:, -1]
    rank = q * total
    # First bucket whose cumulative count reaches the rank (Prometheus: sort.Search >=).
    idx = np.argmax(counts >= rank[:, None], axis=1)
    k = bounds.size
    result = np.full(m, np.nan)
    in_inf = idx == k - 1
    result[in_inf] = bounds[k - 2]
    finite = ~in_inf
    i = idx[finite]
    upper = bounds[i]
    lower = np.where(i > 0, bounds[np.maximum(i - 1, 0)], np.where(upper > 0, 0.0, upper))
    below = np.where(i > 0, counts[finite, np.maximum(i - 1, 0)], 0.0)
    in_bucket = counts[finite, i] - below
    r = rank[finite] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = r / in_bucket  # 0/0 (q = 0, empty first bucket) is NaN, as in Prometheus
    result[finite] = lower + (upper - lower) * frac
    # Prometheus special case: rank in the first bucket whose upper bound <= 0.
    first_nonpos = finite.copy()
    first_nonpos[finite] = (i == 0) & (upper <= 0)
    result[first_nonpos] = bounds[0]
    result[total <= 0] = np.nan
    return result[0] if single else result


def decumulate(cumulative: npt.ArrayLike) -> FloatArray:
    """Per-bucket counts from cumulative ones, made monotone first, clamped at 0.

    Args:
        cumulative: shape ``(..., k)``, buckets sorted by ``le``.
    """
    c = np.maximum.accumulate(np.asarray(cumulative, dtype=np.float64), axis=-1)
    return np.clip(np.diff(c, axis=-1, prepend=0.0), 0.0, None)

"""Exact counter arithmetic: reset-aware deltas and their attribution to time steps.

Prometheus's ``increase()`` extrapolates to the edges of its window, so it returns
non-integers and adjacent windows do not add up.  Observatory stores the exact
increase instead, from raw samples (SLO math reference, "Counter resets"):

    delta_i = v_i - v_(i-1)   when v_i >= v_(i-1)
    delta_i = v_i             otherwise (the counter restarted from 0)

The first sample of a series has no delta.  A delta belongs to the time step that
contains its later sample; steps are right-closed ``(end - step, end]`` and labelled
by their end, like a Prometheus range selector evaluated at ``end``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def reset_aware_deltas(values: npt.ArrayLike) -> FloatArray:
    """Per-sample increases of one counter series, shape ``(n - 1,)``.

    Args:
        values: counter samples in time order, shape ``(n,)``; NaN samples must be
            removed first.

    Returns:
        ``delta[i]`` is the increase from sample ``i`` to sample ``i + 1``.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return np.empty(0, dtype=np.float64)
    diff = v[1:] - v[:-1]
    return np.where(diff >= 0, diff, v[1:])


def step_ends(timestamps_ms: npt.ArrayLike, step_ms: int) -> IntArray:
    """The end of the right-closed step that contains each timestamp, in ms.

    A sample at exactly ``k * step`` belongs to the step ending at ``k * step``.

    Raises:
        ValueError: ``step_ms`` is not positive.
    """
    if step_ms <= 0:
        raise ValueError(f"step must be positive, got {step_ms} ms")
    t = np.asarray(timestamps_ms, dtype=np.int64)
    return -(-t // step_ms) * step_ms

"""Raw Prometheus samples -> per-step rows of the store (pure functions, no I/O).

Input is what the Prometheus HTTP API returns for an instant query of a range
selector (``metric[Ns]``): a list of ``{"metric": {labels}, "values": [[t, "v"], ...]}``
with float Unix-second timestamps and string values ("NaN", "+Inf" included).

Output rows are keyed by ``(ts_utc, model, arm, instance[, le])`` where ``ts_utc`` is
the end of the right-closed step containing the sample (see
:mod:`analytics.counters`).  Only steps inside the window ``(start, end]`` are
emitted; samples at or before ``start`` serve only as the previous value of a
counter, so consecutive windows add up exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analytics.counters import reset_aware_deltas, step_ends
from collectors.presets import Mapping


@dataclass(frozen=True)
class LabelRules:
    """Which labels give the model and the arm (first present label wins)."""

    model: Sequence[str] = ("model_name", "model")
    arm: Sequence[str] = ("version", "model_version", "arm")


def _first(labels: dict[str, str], names: Sequence[str], default: str = "") -> str:
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return default


def parse_le(text: str) -> float:
    """A bucket bound as a float: ``"1"`` and ``"1.0"`` are one bucket, ``"+Inf"`` is inf.

    Raises:
        ValueError: not a number.
    """
    return float(text)


@dataclass(frozen=True)
class Series:
    """One time series: labels, timestamps (Unix ms, ascending) and float values."""

    labels: dict[str, str]
    ts_ms: np.ndarray
    values: np.ndarray


def from_api(result: list[dict[str, Any]]) -> list[Series]:
    """Series from the API's matrix ``data.result`` (string values such as "NaN", "+Inf").

    Raises:
        ValueError: a value or timestamp that is not a number.
    """
    out = []
    for item in result:
        values = item.get("values") or []
        if values:
            arr = np.asarray(values, dtype=object)
            ts_ms = np.round(arr[:, 0].astype(np.float64) * 1000).astype(np.int64)
            vals = arr[:, 1].astype(np.float64)  # float("NaN"), float("+Inf") parse
        else:
            ts_ms, vals = np.empty(0, dtype=np.int64), np.empty(0)
        out.append(Series(dict(item.get("metric", {})), ts_ms, vals))
    return out


def to_rows(
    result: list[Series],
    mapping: Mapping,
    rules: LabelRules,
    start_ms: int,
    end_ms: int,
    step_ms: int,
) -> pd.DataFrame:
    """Turn one selector's raw samples into rows for the mapping's table.

    Counters and histogram buckets: exact reset-aware increases summed per step and
    key.  Gauges: per-step mean, max and last of the samples (over all series that
    share a key), scaled to the signal's unit.  NaN and +/-Inf samples are skipped
    for every kind (they are not measurements; an infinite counter sample would
    make its step's increase, and every window over it, inf or NaN); values at or above
    ``mapping.drop_at_or_above`` are dropped as exporter blanks.

    Args:
        result: the series (see :func:`from_api`).
        mapping: which signal, scale and instance labels.
        rules: which labels hold model and arm.
        start_ms, end_ms: the window ``(start, end]`` in Unix milliseconds.
        step_ms: step length in milliseconds.

    Returns:
        A DataFrame with ``signal``, ``ts_utc`` (datetime64, UTC naive) and the table's
        columns; empty when no sample fell in the window.

    Raises:
        ValueError: a histogram series without a numeric ``le`` label.
    """
    kind = mapping.kind
    ts_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    keys: list[tuple[str, str, str, float]] = []
    lengths: list[int] = []
    for series in result:
        labels = series.labels
        ts_ms, vals = series.ts_ms, series.values
        keep = np.isfinite(vals)  # NaN and +/-Inf are not measurements, of any kind
        if mapping.drop_at_or_above is not None:
            keep &= vals < mapping.drop_at_or_above
        ts_ms, vals = ts_ms[keep], vals[keep]
        if kind in ("counter", "histogram"):
            deltas = reset_aware_deltas(vals)
            ts_ms = ts_ms[1:]
            vals = deltas
        inside = (ts_ms > start_ms) & (ts_ms <= end_ms)
        ts_ms, vals = ts_ms[inside], vals[inside] * mapping.scale
        if not ts_ms.size:
            continue
        model = mapping.model or _first(labels, rules.model)
        arm = _first(labels, rules.arm)
        instance = "/".join(labels[n] for n in mapping.instance_labels if labels.get(n))
        le = np.nan
        if kind == "histogram":
            if "le" not in labels:
                raise ValueError(f"{mapping.selector}: a bucket series has no 'le' label: {labels}")
            try:
                le = parse_le(labels["le"])
            except ValueError:
                raise ValueError(
                    f"{mapping.selector}: le={labels['le']!r} is not a number"
                ) from None
        ts_parts.append(ts_ms)
        val_parts.append(vals)
        keys.append((model, arm, instance, le))
        lengths.append(ts_ms.size)
    if not ts_parts:
        return _empty(mapping)
    n = np.asarray(lengths)
    key_idx = np.repeat(np.arange(len(keys)), n)
    key_arr = np.asarray(keys, dtype=object)
    all_ts = np.concatenate(ts_parts)
    frame = pd.DataFrame(
        {
            "t": all_ts,
            "step": step_ends(all_ts, step_ms),
            "model": key_arr[key_idx, 0],
            "arm": key_arr[key_idx, 1],
            "instance": key_arr[key_idx, 2],
            "le": key_arr[key_idx, 3].astype(np.float64),
            "v": np.concatenate(val_parts),
        }
    )
    if kind == "gauge":
        by = ["step", "model", "arm", "instance"]
        frame = frame.sort_values("t", kind="stable")  # "last" is the latest sample
        out = frame.groupby(by, sort=True).agg(
            mean=("v", "mean"), max=("v", "max"), last=("v", "last"), samples=("v", "size")
        )
        out = out.reset_index()
        out["samples"] = out["samples"].astype(np.int32)
        out["step_s"] = np.int32(step_ms // 1000)
    else:
        by = (
            ["step", "model", "arm", "le"]
            if kind == "histogram"
            else ["step", "model", "arm", "instance"]
        )
        out = frame.groupby(by, sort=True)["v"].sum().rename("value").reset_index()
    out["ts_utc"] = pd.to_datetime(out.pop("step"), unit="ms")
    out["signal"] = mapping.signal
    out["unit"] = mapping.unit
    return out


def _empty(mapping: Mapping) -> pd.DataFrame:
    cols = {
        "counter": ["instance", "value"],
        "gauge": ["instance", "mean", "max", "last", "samples", "step_s"],
        "histogram": ["le", "value"],
    }[mapping.kind]
    return pd.DataFrame(columns=["ts_utc", "model", "arm", *cols, "signal", "unit"])


TABLE_OF_KIND = {"counter": "counters", "gauge": "gauges", "histogram": "histograms"}

"""Raw Prometheus samples -> per-step rows of the store (pure functions, no I/O).

Input is what the Prometheus HTTP API returns for an instant query of a range
selector (``metric[Ns]``): a list of ``{"metric": {labels}, "values": [[t, "v"], ...]}``
with float Unix-second timestamps and string values ("NaN", "+Inf" included), parsed
into a :class:`~collectors.prometheus.Matrix` (all samples of all series in flat
arrays).

Output rows are keyed by ``(ts_utc, model, arm, instance[, le])`` where ``ts_utc`` is
the end of the right-closed step containing the sample (see
:mod:`analytics.counters`).  Only steps inside the window ``(start, end]`` are
emitted; samples at or before ``start`` serve only as the previous value of a
counter, so consecutive windows add up exactly.

The work is vectorised over all series of an answer at once (no per-series pandas
work): deltas are taken on the concatenated arrays and cut at series boundaries, and
rows are aggregated with ``np.bincount`` / ``ufunc.reduceat`` on integer group codes.

Values that are not measurements: NaN, +Inf and -Inf samples are dropped for every
kind (a NaN gauge sample is a failed measurement, an infinite counter sample would
make every window over it infinite); a counter's delta bridges over them from the
previous finite sample.  They count as missing in the coverage figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from collectors.presets import Mapping
from collectors.prometheus import Matrix, parse_matrix

if TYPE_CHECKING:  # pandas is imported by the functions that return DataFrames: the
    import pandas as pd  # collector's path (blocks_table) never needs it


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


@dataclass
class Coverage:
    """How complete one signal's samples were in a window.

    ``present``: (series, step) pairs that held at least one finite sample;
    ``expected``: the steps each series spans inside the window (from its first to
    its last step there), summed over series; ``non_finite``: NaN/Inf samples dropped.
    """

    series: int = 0
    present: int = 0
    expected: int = 0
    non_finite: int = 0
    samples: int = 0

    def add(self, other: Coverage) -> None:
        """Accumulate another window's (or query's) figures."""
        self.series = max(self.series, other.series)
        self.present += other.present
        self.expected += other.expected
        self.non_finite += other.non_finite
        self.samples += other.samples

    @property
    def ratio(self) -> float | None:
        """present / expected, or None when nothing was expected."""
        return self.present / self.expected if self.expected else None


def from_api(result: list[dict[str, Any]]) -> list[Series]:
    """Series from the API's matrix ``data.result`` (string values such as "NaN", "+Inf").

    Raises:
        ValueError: a value or timestamp that is not a number.
    """
    m = parse_matrix(result)
    return [
        Series(
            m.labels[i],
            m.ts_ms[m.offsets[i] : m.offsets[i + 1]],
            m.values[m.offsets[i] : m.offsets[i + 1]],
        )
        for i in range(len(m.labels))
    ]


def series_to_matrix(result: Sequence[Series]) -> Matrix:
    """Concatenate :class:`Series` into a :class:`Matrix`."""
    lens = np.fromiter((s.ts_ms.size for s in result), dtype=np.int64, count=len(result))
    offsets = np.zeros(len(result) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    if not len(result):
        return Matrix.empty()
    return Matrix(
        [s.labels for s in result],
        offsets,
        np.concatenate([np.asarray(s.ts_ms, dtype=np.int64) for s in result]),
        np.concatenate([np.asarray(s.values, dtype=np.float64) for s in result]),
    )


def to_rows(
    result: Sequence[Series] | Matrix,
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
    for every kind; values at or above ``mapping.drop_at_or_above`` are dropped as
    exporter blanks.

    Args:
        result: the series (see :func:`from_api`) or a parsed :class:`Matrix`.
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
    matrix = result if isinstance(result, Matrix) else series_to_matrix(result)
    return matrix_rows(matrix, mapping, rules, start_ms, end_ms, step_ms)[0]


def _keys(
    labels: list[dict[str, str]], mapping: Mapping, rules: LabelRules
) -> list[tuple[Any, ...]]:
    kind = mapping.kind
    out: list[tuple[Any, ...]] = []
    for lab in labels:
        model = mapping.model or _first(lab, rules.model) or _first(lab, mapping.model_labels)
        arm = _first(lab, rules.arm)
        if kind == "histogram":
            if "le" not in lab:
                raise ValueError(f"{mapping.selector}: a bucket series has no 'le' label: {lab}")
            try:
                le = parse_le(lab["le"]) * mapping.le_scale
            except ValueError:
                raise ValueError(f"{mapping.selector}: le={lab['le']!r} is not a number") from None
            out.append((model, arm, le))
        else:
            instance = "/".join(lab[n] for n in mapping.instance_labels if lab.get(n))
            out.append((model, arm, instance))
    return out


def matrix_rows(
    matrix: Matrix,
    mapping: Mapping,
    rules: LabelRules,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    series: np.ndarray | None = None,
) -> tuple[pd.DataFrame, Coverage]:
    """:func:`to_rows` on a :class:`Matrix` (optionally only the series at ``series``),
    plus the window's :class:`Coverage`."""
    block, cov = matrix_block(matrix, mapping, rules, start_ms, end_ms, step_ms, series)
    return (block_frame(block) if block is not None else _empty(mapping)), cov


def matrix_block(
    matrix: Matrix,
    mapping: Mapping,
    rules: LabelRules,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    series: np.ndarray | None = None,
) -> tuple[Block | None, Coverage]:
    """The rows of :func:`matrix_rows` as a :class:`Block` (None: no rows)."""
    if step_ms <= 0:
        raise ValueError(f"step must be positive, got {step_ms} ms")
    if mapping.prefer_names:
        chosen = preferred_series(matrix.labels, mapping.prefer_names)
        series = chosen if series is None else np.intersect1d(series, chosen)
    if series is not None:
        matrix = matrix.take(series)
    if mapping.prices:
        matrix = _priced(matrix, mapping)
    kind = mapping.kind
    cov = Coverage(series=len(matrix.labels))
    if not matrix.labels:
        return None, cov
    keys = _keys(matrix.labels, mapping, rules)
    lens = matrix.lengths
    sid = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    ts, v = matrix.ts_ms, matrix.values
    finite = np.isfinite(v)
    keep = finite
    if mapping.drop_at_or_above is not None:
        keep = keep & (v < mapping.drop_at_or_above)
    inside_raw = (ts > start_ms) & (ts <= end_ms)
    cov.non_finite = int(np.count_nonzero(~finite & inside_raw))
    if not keep.all():
        ts, v, sid = ts[keep], v[keep], sid[keep]
    # Coverage: distinct (series, step) pairs with a sample inside the window, against
    # the steps each series spans there.
    win = (ts > start_ms) & (ts <= end_ms)
    cov.samples = int(np.count_nonzero(win))
    if cov.samples:
        wsid, wstep = sid[win], -(-ts[win] // step_ms)
        change = np.ones(wsid.size, bool)
        change[1:] = (wsid[1:] != wsid[:-1]) | (wstep[1:] != wstep[:-1])
        cov.present = int(np.count_nonzero(change))
        first = np.ones(wsid.size, bool)
        first[1:] = wsid[1:] != wsid[:-1]
        last = np.ones(wsid.size, bool)
        last[:-1] = wsid[1:] != wsid[:-1]
        cov.expected = int((wstep[last] - wstep[first] + 1).sum())
    if kind in ("counter", "histogram"):
        if ts.size < 2:
            return None, cov
        same = sid[1:] == sid[:-1]
        diff = v[1:] - v[:-1]
        delta = np.where(diff >= 0, diff, v[1:])
        ts, v, sid = ts[1:][same], delta[same], sid[1:][same]
    inside = (ts > start_ms) & (ts <= end_ms)
    if not inside.all():
        ts, v, sid = ts[inside], v[inside], sid[inside]
    if not ts.size:
        return None, cov
    v = v * mapping.scale

    # Group codes: keys sorted (the row order of a sort by step, model, arm, instance/le).
    uniq = sorted(set(keys))
    key_index = {k: i for i, k in enumerate(uniq)}
    key_of_series = np.fromiter((key_index[k] for k in keys), dtype=np.int64, count=len(keys))
    kid = key_of_series[sid]
    nkeys = len(uniq)
    step_no = -(-ts // step_ms)  # step end / step
    base = int(step_no.min())
    code = (step_no - base) * nkeys + kid
    ncodes = int(code.max()) + 1

    if kind == "gauge":
        order = np.lexsort((ts, code))  # by group, then time (stable: ties keep series order)
        code_s, v_s = code[order], v[order]
        bounds = np.flatnonzero(np.r_[True, code_s[1:] != code_s[:-1]])
        ends = np.r_[bounds[1:], code_s.size]
        counts = ends - bounds
        sums = np.add.reduceat(v_s, bounds)
        maxs = np.maximum.reduceat(v_s, bounds)
        lasts = v_s[ends - 1]
        group = code_s[bounds]
        data: dict[str, Any] = {
            "mean": sums / counts,
            "max": maxs,
            "last": lasts,
            "samples": counts.astype(np.int32),
            "step_s": np.full(group.size, step_ms // 1000, dtype=np.int32),
        }
    else:
        if ncodes <= 4 * code.size + 1_000_000:
            counts = np.bincount(code, minlength=ncodes)
            sums = np.bincount(code, weights=v, minlength=ncodes)
            group = np.flatnonzero(counts)
            sums = sums[group]
        else:
            group, inv = np.unique(code, return_inverse=True)
            sums = np.bincount(inv, weights=v)
        data = {"value": sums}
    gstep = (group // nkeys + base) * step_ms
    block = Block(mapping, gstep, uniq, group % nkeys, data)
    return block, cov


@dataclass
class Block:
    """Rows of one mapping in one window, column arrays plus a key table (cheap to make;
    :func:`blocks_frame` turns many into one DataFrame)."""

    mapping: Mapping
    step_end_ms: np.ndarray
    keys: list[tuple[Any, ...]]
    key_id: np.ndarray
    data: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.step_end_ms.size)


def _categorical(codes_by_block: list[np.ndarray], values: list[str]) -> pd.Categorical:
    import pandas as pd

    codes = np.concatenate(codes_by_block) if codes_by_block else np.empty(0, np.int64)
    return pd.Categorical.from_codes(
        codes.astype(np.int32), categories=pd.Index(values, dtype=object)
    )


def blocks_frame(blocks: Sequence[Block]) -> pd.DataFrame:
    """One DataFrame (the store's columns, ``signal`` and ``unit``) from blocks of one
    kind; string columns are categorical (dictionary-encoded on the way to Parquet)."""
    import pandas as pd

    blocks = [b for b in blocks if len(b)]
    if not blocks:
        return pd.DataFrame()
    kind = blocks[0].mapping.kind
    cols = ["model", "arm"] if kind == "histogram" else ["model", "arm", "instance"]
    extra = ["signal", "unit"]
    dicts: dict[str, dict[str, int]] = {c: {} for c in cols + extra}
    codes: dict[str, list[np.ndarray]] = {c: [] for c in cols + extra}
    for b in blocks:
        n = len(b)
        for j, c in enumerate(cols):
            d = dicts[c]
            per_key = np.fromiter(
                (d.setdefault(k[j], len(d)) for k in b.keys), dtype=np.int64, count=len(b.keys)
            )
            codes[c].append(per_key[b.key_id])
        for c, value in (("signal", b.mapping.signal), ("unit", b.mapping.unit)):
            code = dicts[c].setdefault(value, len(dicts[c]))
            codes[c].append(np.full(n, code, dtype=np.int64))
    frame = pd.DataFrame(
        {c: _categorical(codes[c], list(dicts[c])) for c in cols},
    )
    if kind == "histogram":
        frame["le"] = np.concatenate(
            [np.asarray([k[2] for k in b.keys], dtype=np.float64)[b.key_id] for b in blocks]
        )
    for name in blocks[0].data:
        frame[name] = np.concatenate([b.data[name] for b in blocks])
    frame["ts_utc"] = np.concatenate([b.step_end_ms for b in blocks]).astype("datetime64[ms]")
    for c in extra:
        frame[c] = _categorical(codes[c], list(dicts[c]))
    return frame


def blocks_table(blocks: Sequence[Block]) -> pa.Table:
    """Like :func:`blocks_frame`, as a pyarrow Table with dictionary-encoded strings
    (what :meth:`observatory.store.Store.replace_window` writes without pandas)."""
    blocks = [b for b in blocks if len(b)]
    if not blocks:
        return pa.table({})
    kind = blocks[0].mapping.kind
    cols = ["model", "arm"] if kind == "histogram" else ["model", "arm", "instance"]
    extra = ["signal", "unit"]
    dicts: dict[str, dict[str, int]] = {c: {} for c in cols + extra}
    codes: dict[str, list[np.ndarray]] = {c: [] for c in cols + extra}
    for b in blocks:
        for j, c in enumerate(cols):
            d = dicts[c]
            per_key = np.fromiter(
                (d.setdefault(k[j], len(d)) for k in b.keys), dtype=np.int32, count=len(b.keys)
            )
            codes[c].append(per_key[b.key_id])
        for c, value in (("signal", b.mapping.signal), ("unit", b.mapping.unit)):
            code = dicts[c].setdefault(value, len(dicts[c]))
            codes[c].append(np.full(len(b), code, dtype=np.int32))

    def dictionary(c: str) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(
            pa.array(np.concatenate(codes[c])), pa.array(list(dicts[c]), pa.string())
        )

    arrays: dict[str, pa.Array] = {
        "ts_utc": pa.array(
            np.concatenate([b.step_end_ms for b in blocks]).astype("datetime64[ms]")
        ).cast(pa.timestamp("us")),
    }
    for c in cols:
        arrays[c] = dictionary(c)
    if kind == "histogram":
        arrays["le"] = pa.array(
            np.concatenate(
                [np.asarray([k[2] for k in b.keys], dtype=np.float64)[b.key_id] for b in blocks]
            )
        )
    for name in blocks[0].data:
        arrays[name] = pa.array(np.concatenate([b.data[name] for b in blocks]))
    for c in extra:
        arrays[c] = dictionary(c)
    return pa.table(arrays)


def block_frame(block: Block) -> pd.DataFrame:
    """A single block's rows, with plain string columns (the :func:`to_rows` result)."""
    import pandas as pd

    kind = block.mapping.kind
    key_cols = list(zip(*block.keys, strict=True))
    model = np.asarray(key_cols[0], dtype=object)[block.key_id]
    arm = np.asarray(key_cols[1], dtype=object)[block.key_id]
    third = np.asarray(key_cols[2])[block.key_id]
    frame = pd.DataFrame(
        {
            "model": model,
            "arm": arm,
            ("le" if kind == "histogram" else "instance"): (
                third.astype(np.float64) if kind == "histogram" else third.astype(object)
            ),
            **block.data,
        }
    )
    frame["ts_utc"] = pd.to_datetime(block.step_end_ms, unit="ms")
    frame["signal"] = block.mapping.signal
    frame["unit"] = block.mapping.unit
    return frame


def preferred_series(labels: list[dict[str, str]], names: Sequence[str]) -> np.ndarray:
    """Positions of the series to keep where one series exists under several metric
    names (a renamed metric exported under both): the first of ``names`` wins."""
    rank = {n: i for i, n in enumerate(names)}
    best: dict[tuple[tuple[str, str], ...], tuple[int, int]] = {}
    for i, lab in enumerate(labels):
        key = tuple(sorted((k, v) for k, v in lab.items() if k != "__name__"))
        r = rank.get(lab.get("__name__", ""), len(names))
        if key not in best or r < best[key][0]:
            best[key] = (r, i)
    return np.sort(np.fromiter((i for _, i in best.values()), dtype=np.int64))


def _priced(matrix: Matrix, mapping: Mapping) -> Matrix:
    """Each sample's value replaced by its device's hourly price (NaN: no price known)."""
    prices = np.full(len(matrix.labels), np.nan)
    for i, lab in enumerate(matrix.labels):
        device = lab.get(mapping.price_label, "")
        for pattern, usd in mapping.prices:
            if pattern.lower() in device.lower():
                prices[i] = usd
                break
    values = np.repeat(prices, matrix.lengths)
    values[~np.isfinite(matrix.values)] = np.nan
    return Matrix(
        matrix.labels, matrix.offsets, matrix.ts_ms, values, matrix.warnings, matrix.nbytes
    )


def _empty(mapping: Mapping) -> pd.DataFrame:
    import pandas as pd

    cols = {
        "counter": ["instance", "value"],
        "gauge": ["instance", "mean", "max", "last", "samples", "step_s"],
        "histogram": ["le", "value"],
    }[mapping.kind]
    return pd.DataFrame(columns=["ts_utc", "model", "arm", *cols, "signal", "unit"])


TABLE_OF_KIND = {"counter": "counters", "gauge": "gauges", "histogram": "histograms"}

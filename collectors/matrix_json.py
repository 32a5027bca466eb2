"""Decoding a matrix answer's samples straight from the JSON bytes into numpy arrays.

A Prometheus matrix answer is ``{"metric": {...}, "values": [[t, "v"], ...]}`` per
series.  A general JSON decoder makes a Python list, a float and a string per sample
(millions per answer) before numpy sees them; here the ``values`` arrays are cut out
of the body, the rest (labels, warnings) is decoded with orjson, and the samples are
parsed by numpy's C number parser in one pass: a fraction of the CPU
(bench/collect_paths.py).

The cut is safe: inside a JSON string a ``"`` is always escaped, so the bytes
``"values":[`` only occur as the key itself, and a values array holds only numbers
and number strings, so its end is the first ``]]`` after it.  Whenever the body does
not look exactly like that (another spelling, whitespace, a count that does not
add up), :func:`split_values` or :func:`samples_from_segments` returns None and the
caller decodes the whole body with orjson instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

_KEY = b'"values":['
#: brackets, quotes and commas become spaces: what is left is "t v t v ..."
_SEPARATORS = bytes.maketrans(b'[]",', b"    ")

# A malformed number makes numpy stop early with a DeprecationWarning; the count check
# below catches it, so the warning is noise.
warnings.filterwarnings(
    "ignore",
    message="string or file could not be read to its end",
    category=DeprecationWarning,
)


def split_values(body: bytes) -> tuple[bytes, list[bytes]] | None:
    """``(skeleton, segments)``: ``body`` with every ``"values"`` array emptied, and the
    arrays' insides in order of appearance; None when there is none to cut or the
    body does not have the expected shape.
    """
    segments: list[bytes] = []
    parts: list[bytes] = []
    pos = 0
    find = body.find
    while True:
        key = find(_KEY, pos)
        if key < 0:
            break
        start = key + len(_KEY)
        if body[start : start + 1] == b"]":
            end = start
        else:
            close = find(b"]]", start)
            if close < 0:
                return None
            end = close + 1  # keep the outer "]" in the skeleton
        parts.append(body[pos:start])
        segments.append(body[start:end])
        pos = end
    if not segments:
        return None
    parts.append(body[pos:])
    return b"".join(parts), segments


def samples_from_segments(
    result: list[dict[str, Any]], segments: list[bytes]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(offsets, ts_ms, values)`` of the series in ``result`` (the skeleton's decoded
    ``data.result``) from their cut-out ``segments``; None when they do not match.

    ``ts_ms`` are Unix milliseconds (int64), ``values`` float64 ("NaN", "+Inf",
    "-Inf" parsed as such); a series without ``values`` has no samples.
    """
    with_values = [i for i, item in enumerate(result) if "values" in item]
    if len(with_values) != len(segments):
        return None
    lens = np.zeros(len(result), np.int64)
    lens[with_values] = [seg.count(b"[") for seg in segments]
    offsets = np.zeros(len(result) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    n = int(offsets[-1])
    flat = np.fromstring(b" ".join(segments).translate(_SEPARATORS), dtype=np.float64, sep=" ")
    if flat.size != 2 * n:
        return None
    pairs = flat.reshape(n, 2)
    ts_ms = np.round(pairs[:, 0] * 1000).astype(np.int64)
    return offsets, ts_ms, np.ascontiguousarray(pairs[:, 1])

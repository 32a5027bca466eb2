"""Scoring change-point and anomaly detectors against labelled data (pure).

Two benchmark scorers, written from their published definitions:

- **TCPD** (Turing Change Point Detection benchmark, van den Burg & Williams 2020):
  :func:`tcpd_f1` and :func:`tcpd_cover`.  Index 0 counts as a change point in the
  truth and in the prediction; a prediction matches an annotated point within a
  margin of 5 samples, one to one; precision is taken against the union of the
  annotators' points, recall is averaged over annotators.  Cover is the
  length-weighted best Jaccard overlap of each true segment with the predicted
  segments, averaged over annotators.
- **NAB** (Numenta Anomaly Benchmark, standard profile): :func:`nab_file_score`
  scores one file's detections against its anomaly windows; :func:`nab_normalised`
  turns raw totals into the published 0-100 scale (a detector that never fires
  scores 0, a perfect one 100).  The first 15% of a file (at most 750 rows) is a
  probation period and is not scored; inside a window only the best (earliest)
  detection counts, weighted by a scaled sigmoid of its position; a detection outside
  every window costs the false-positive weight, less when it lies just after a window;
  a window without a detection costs the false-negative weight.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# --------------------------------------------------------------------------- TCPD


def _true_positives(truth: Iterable[int], predictions: Iterable[int], margin: int) -> set[int]:
    """True points matched by a prediction within ``margin``, each prediction used once.

    Each true point (in increasing order) takes the closest unused prediction.
    """
    remaining = set(predictions)
    matched: set[int] = set()
    for tau in sorted(set(truth)):
        close = sorted((abs(tau - x), x) for x in remaining if abs(tau - x) <= margin)
        if not close:
            continue
        matched.add(tau)
        remaining.remove(close[0][1])
    return matched


def tcpd_precision_recall(
    annotations: Mapping[str, Sequence[int]], predictions: Iterable[int], margin: int = 5
) -> tuple[float, float]:
    """TCPD precision (against the union of annotations) and recall (mean over annotators).

    Args:
        annotations: annotator id -> 0-based change-point indices (may be empty).
        predictions: predicted 0-based change-point indices.
        margin: a prediction within this many samples of a true point matches it.
    """
    if not annotations:
        raise ValueError("at least one annotator is needed")
    per_annotator = [set(a) | {0} for a in annotations.values()]
    predicted = set(predictions) | {0}
    union = set().union(*per_annotator)
    precision = len(_true_positives(union, predicted, margin)) / len(predicted)
    recall = sum(len(_true_positives(t, predicted, margin)) / len(t) for t in per_annotator) / len(
        per_annotator
    )
    return precision, recall


def tcpd_f1(
    annotations: Mapping[str, Sequence[int]], predictions: Iterable[int], margin: int = 5
) -> float:
    """TCPD F1: harmonic mean of :func:`tcpd_precision_recall` (0 when both are 0)."""
    p, r = tcpd_precision_recall(annotations, predictions, margin)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _segments(points: Iterable[int], n: int) -> list[tuple[int, int]]:
    """Half-open segments ``[a, b)`` of ``range(n)`` cut at ``points`` (0 and n implied)."""
    cuts = sorted({p for p in points if 0 < p < n} | {0, n})
    return list(itertools.pairwise(cuts))


def _jaccard(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union else 0.0


def _cover_single(predicted: list[tuple[int, int]], truth: list[tuple[int, int]], n: int) -> float:
    total = 0.0
    for seg in truth:
        total += (seg[1] - seg[0]) * max(_jaccard(seg, p) for p in predicted)
    return total / n


def tcpd_cover(
    annotations: Mapping[str, Sequence[int]], predictions: Iterable[int], n_obs: int
) -> float:
    """TCPD cover: mean over annotators of the length-weighted best Jaccard overlap.

    Args:
        annotations: annotator id -> 0-based change-point indices.
        predictions: predicted 0-based change-point indices.
        n_obs: length of the series.
    """
    if not annotations:
        raise ValueError("at least one annotator is needed")
    if n_obs <= 0:
        raise ValueError(f"n_obs must be positive, got {n_obs}")
    predicted = _segments(predictions, n_obs)
    covers = [_cover_single(predicted, _segments(a, n_obs), n_obs) for a in annotations.values()]
    return sum(covers) / len(covers)


# --------------------------------------------------------------------------- NAB


@dataclass(frozen=True)
class NabProfile:
    """NAB cost weights (the standard profile by default) and probation share."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0
    probation: float = 0.15


STANDARD = NabProfile()


@dataclass(frozen=True)
class NabFileScore:
    """One file's NAB result.

    Attributes:
        raw: the weighted score (sum of window and false-positive parts).
        windows: windows that count (at least one row after the probation period).
        detected: counted windows with a detection.
        detections: detections after the probation period.
        in_window: of those, the ones inside a window.
        null: the score of a detector that never fires (``-fn * windows``).
        perfect: the score of a detector firing at every window's first row.
    """

    raw: float
    windows: int
    detected: int
    detections: int
    in_window: int
    null: float
    perfect: float


def _scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: 0.987 at a window's left edge, 0 at its right, -1 far after it."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_probation_rows(n_rows: int, share: float = 0.15) -> int:
    """Rows of the probation period: ``min(floor(share * n), share * 5000)``."""
    return int(min(math.floor(share * n_rows), share * 5000))


def nab_file_score(
    n_rows: int,
    windows: Sequence[tuple[int, int]],
    detections: Iterable[int],
    profile: NabProfile = STANDARD,
) -> NabFileScore:
    """Score detections (row indices) against windows (inclusive row ranges) of one file.

    Args:
        n_rows: rows in the file.
        windows: ``(first_row, last_row)`` of each anomaly window, inclusive, sorted,
            not overlapping.
        detections: row indices where the detector fired.
        profile: cost weights.
    """
    probation = nab_probation_rows(n_rows, profile.probation)
    ordered = sorted(windows)
    max_tp = _scaled_sigmoid(-1.0)
    # A window counts when at least one of its rows lies after the probation period.
    counted = [w for w in ordered if w[1] >= probation]
    best: dict[int, float] = {}
    fp_total = 0.0
    fired = sorted({int(d) for d in detections if probation <= int(d) < n_rows})
    in_window = 0
    for i in fired:
        inside = next((k for k, w in enumerate(ordered) if w[0] <= i <= w[1]), None)
        if inside is not None:
            first, last = ordered[inside]
            width = last - first + 1
            position = -(last - i + 1) / width
            score = _scaled_sigmoid(position) * profile.tp / max_tp
            best[inside] = max(best.get(inside, -math.inf), score)
            in_window += 1
            continue
        before = [w for w in ordered if w[1] < i]
        if not before:
            position = 3.0
        else:
            first, last = before[-1]
            width = last - first + 1
            position = abs(last - i) / float(width - 1) if width > 1 else 3.0
        fp_total += _scaled_sigmoid(position) * profile.fp
    window_part = 0.0
    for k, w in enumerate(ordered):
        if w not in counted:
            continue
        window_part += best.get(k, -profile.fn)
    return NabFileScore(
        raw=window_part + fp_total,
        windows=len(counted),
        detected=sum(1 for k, w in enumerate(ordered) if w in counted and k in best),
        detections=len(fired),
        in_window=in_window,
        null=-profile.fn * len(counted),
        perfect=profile.tp * len(counted),
    )


def nab_normalised(raw: float, null: float, perfect: float) -> float:
    """NAB's final score: ``100 * (raw - null) / (perfect - null)``."""
    if perfect == null:
        raise ValueError("perfect and null scores are equal: no window is scored")
    return 100.0 * (raw - null) / (perfect - null)


def nab_total(scores: Iterable[NabFileScore]) -> float:
    """The normalised NAB score of a detector over several files."""
    items = list(scores)
    return nab_normalised(
        sum(s.raw for s in items), sum(s.null for s in items), sum(s.perfect for s in items)
    )

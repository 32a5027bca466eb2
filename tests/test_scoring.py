"""The benchmark scorers against the published reference values (TCPD) and NAB's rules."""

from __future__ import annotations

import math

import pytest

from analytics.scoring import (
    nab_file_score,
    nab_normalised,
    nab_probation_rows,
    nab_total,
    tcpd_cover,
    tcpd_f1,
    tcpd_precision_recall,
)

# --------------------------------------------------------------------------- TCPD
# Reference values: TCPD's own examples (tests/data/README.md cites them).


def test_tcpd_f1_published_values() -> None:
    ann = {"1": [10, 20], "2": [11, 20], "3": [10], "4": [0, 5]}
    assert tcpd_f1(ann, [10, 20]) == pytest.approx(1.0)
    ann2 = {"1": [], "2": [10], "3": [50]}
    assert tcpd_f1(ann2, [10]) == pytest.approx(0.909091, abs=1e-6)
    assert tcpd_f1(ann2, []) == pytest.approx(0.8, abs=1e-9)


def test_tcpd_cover_published_values() -> None:
    ann = {"1": [10, 20], "2": [10], "3": [0, 5]}
    assert tcpd_cover(ann, [10, 20], 45) == pytest.approx(0.796296, abs=1e-6)
    ann2 = {"1": [], "2": [10], "3": [40]}
    assert tcpd_cover(ann2, [10], 45) == pytest.approx(0.795414, abs=1e-6)
    assert tcpd_cover(ann2, [], 45) == pytest.approx(0.818930, abs=1e-6)


def test_tcpd_margin_and_one_to_one_matching() -> None:
    ann = {"a": [100]}
    # 5 samples away matches, 6 does not
    assert tcpd_precision_recall(ann, [105]) == (1.0, 1.0)
    assert tcpd_precision_recall(ann, [106]) == (0.5, 0.5)
    # two predictions near one true point: only one matches
    p, r = tcpd_precision_recall(ann, [99, 101])
    assert (p, r) == (pytest.approx(2 / 3), 1.0)


def test_tcpd_all_annotators_empty_and_no_prediction_is_perfect() -> None:
    ann = {"a": [], "b": []}
    assert tcpd_f1(ann, []) == 1.0
    assert tcpd_cover(ann, [], 50) == 1.0
    assert tcpd_f1(ann, [25]) == pytest.approx(2 * 0.5 * 1 / 1.5)


# --------------------------------------------------------------------------- NAB


def test_nab_probation_length() -> None:
    assert nab_probation_rows(4032) == 604
    assert nab_probation_rows(10_000) == 750
    assert nab_probation_rows(1000) == 150


def test_nab_null_perfect_and_normalisation() -> None:
    windows = [(400, 499)]
    null = nab_file_score(1000, windows, [])
    assert (null.raw, null.null, null.perfect, null.windows) == (-1.0, -1.0, 1.0, 1)
    perfect = nab_file_score(1000, windows, [400])
    assert perfect.raw == pytest.approx(1.0)
    assert nab_normalised(perfect.raw, perfect.null, perfect.perfect) == pytest.approx(100.0)
    assert nab_total([null]) == pytest.approx(0.0)


def test_nab_earliest_detection_counts_once_and_later_scores_less() -> None:
    w = [(400, 499)]
    early = nab_file_score(1000, w, [400, 450, 499]).raw
    assert early == pytest.approx(1.0)
    late = nab_file_score(1000, w, [499]).raw
    # right edge: position -1/100 -> (2 sigmoid(0.05) - 1) / (2 sigmoid(5) - 1)
    expected = (2 / (1 + math.exp(-0.05)) - 1) / (2 / (1 + math.exp(-5)) - 1)
    assert late == pytest.approx(expected)
    assert 0 < late < 0.03


def test_nab_false_positives_and_probation() -> None:
    w = [(400, 499)]
    # before any window: full false-positive weight
    assert nab_file_score(1000, w, [300]).raw == pytest.approx(-1.0 - 0.11)
    # just after the window: almost free
    just_after = nab_file_score(1000, w, [500]).raw
    assert just_after == pytest.approx(-1.0 + 0.11 * (2 / (1 + math.exp(5 / 99)) - 1))
    # far after the window: full weight
    assert nab_file_score(1000, w, [900]).raw == pytest.approx(-1.11)
    # inside the probation period: ignored
    assert nab_file_score(1000, w, [10, 149]).raw == pytest.approx(-1.0)
    # a window entirely inside the probation period is not scored
    s = nab_file_score(1000, [(10, 50), (400, 499)], [])
    assert (s.windows, s.null) == (1, -1.0)


def test_nab_normalised_standard_profile_example() -> None:
    # one FP before the window and a perfect hit: (1 - 0.11 + 1) / 2 = 94.5
    s = nab_file_score(1000, [(400, 499)], [300, 400])
    assert nab_total([s]) == pytest.approx(94.5)
    assert (s.detections, s.in_window, s.detected) == (2, 1, 1)

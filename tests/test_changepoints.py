"""The change-point detector: energy statistic, splitting, filters, incremental updates,
and its behaviour on the real labelled series copied into tests/data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analytics.changepoints import (
    DetectorConfig,
    IncrementalDetector,
    detect,
    noise_scale,
    qhat,
)
from analytics.scoring import tcpd_f1
from bench import score_detectors as bench
from bench.datasets import CONTROLS, nab_files, tcpd_series


def _qhat_brute(x: np.ndarray, t: int) -> float:
    a, b = x[:t], x[t:]
    m, n = a.size, b.size
    cross = np.abs(a[:, None] - b[None, :]).mean()
    within_a = sum(abs(p - q) for p, q in itertools.combinations(a, 2)) / (m * (m - 1) / 2)
    within_b = sum(abs(p - q) for p, q in itertools.combinations(b, 2)) / (n * (n - 1) / 2)
    return m * n / (m + n) * (2 * cross - within_a - within_b)


def test_qhat_equals_the_definition() -> None:
    x = np.random.default_rng(0).normal(size=23)
    q = qhat(x, min_size=3)
    for t in range(3, 21):
        assert q[t] == pytest.approx(_qhat_brute(x, t))
    assert np.isneginf(q[:3]).all() and np.isneginf(q[21:]).all()


def test_detects_a_step_where_it_is() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(10, 1, 300), rng.normal(13, 1, 200)])
    cps = detect(x)
    assert [c.index for c in cps] == [300]  # exact here; within a few points in general
    cp = cps[0]
    assert cp.before == pytest.approx(10, abs=0.2)
    assert cp.after == pytest.approx(13, abs=0.2)
    assert cp.before_ci[0] < cp.before < cp.before_ci[1]
    assert cp.relative == pytest.approx(0.3, abs=0.03)
    assert cp.pvalue < 1e-10


@pytest.mark.parametrize("seed", range(5))
def test_noise_alone_gives_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert detect(rng.normal(100, 5, 3000), DetectorConfig(min_effect=1.0)) == []


def test_magnitude_and_effect_filters() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(100, 1, 400), rng.normal(102, 1, 400)])  # +2%, 2 sd
    assert [abs(c.index - 400) <= 3 for c in detect(x)] == [True]
    assert detect(x, DetectorConfig(min_magnitude=0.05)) == []
    assert detect(x, DetectorConfig(min_effect=3.0)) == []
    assert len(detect(x, DetectorConfig(min_magnitude=0.01))) == 1


def test_pelt_method_agrees_on_a_clean_step() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 250), rng.normal(4, 1, 250), rng.normal(0, 1, 250)])
    assert [c.index for c in detect(x, method="pelt")] == [250, 500]
    with pytest.raises(ValueError):
        detect(x, method="nope")


def test_noise_scale_ignores_level_shifts() -> None:
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(0, 2, 1000), rng.normal(50, 2, 1000)])
    assert noise_scale(x) == pytest.approx(2, rel=0.1)


def test_incremental_reanalyses_only_the_tail_and_matches_batch() -> None:
    rng = np.random.default_rng(5)
    levels = [10, 14, 9, 9, 15, 11, 16]
    x = np.concatenate([rng.normal(lv, 1, 300) for lv in levels])
    batch = [c.index for c in detect(x)]
    inc = IncrementalDetector()
    for chunk in np.array_split(x, 14):
        inc.update(chunk)
    assert [c.index for c in inc.change_points] == batch == [300, 600, 1200, 1500, 1800]
    # the last update re-analysed from the last-but-one change point before it on
    assert inc.reanalysed <= x.size - 1200
    with pytest.raises(ValueError):
        inc.update([np.nan])


def test_nan_rejected() -> None:
    with pytest.raises(ValueError):
        detect(np.array([1.0, np.nan] * 20))


# --------------------------------------------------------------------------- real data


def test_controls_produce_no_detection() -> None:
    by_name = {s.name: s.values for s in tcpd_series()}
    by_name.update({f.name: f.values for f in nab_files()})
    for name in CONTROLS:
        assert bench.edivisive(by_name[name]) == [], name


def test_beats_baselines_on_tcpd_f1() -> None:
    series = tcpd_series()

    def mean_f1(fn) -> float:
        return float(np.mean([tcpd_f1(s.annotations, fn(s.values)) for s in series]))

    ours = mean_f1(bench.edivisive)
    for baseline in (bench.never, bench.pelt, bench.binseg):
        assert ours > mean_f1(baseline), baseline.__name__

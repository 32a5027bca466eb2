"""How a latency (or percentile) threshold is read from each series' histogram buckets.

A fleet mixes exporters whose histograms have different bucket bounds: vLLM's
``e2e_request_latency_seconds`` has a 10 s bound, Prometheus's own
``http_request_duration_seconds`` 8 s and 20 s, TGI 35 geometric bounds
(docs/slo.md, "Thresholds between bucket bounds").  "Observations <= threshold" is
read from each series' own bounds with :func:`analytics.slo.threshold_buckets` (exact
at a bound, else linear inside the bucket, as Prometheus's ``histogram_fraction``).
Choosing one pair of bounds for the whole fleet from the union of everyone's bounds
would read, for a series without those bounds, zero good observations.

Pure: takes the bounds per series as a frame, returns the SQL parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analytics.slo import threshold_buckets

#: A reading of one series: (lower bound or None = below the first bucket, upper
#: bound, fraction of the bucket (lower, upper], exact).  good = C(lower) + fraction
#: x (C(upper) - C(lower)).  (inf, inf, 1, True): every observation is good.
Reading = tuple[float | None, float, float, bool]

#: The series' key: (region, model, arm), a missing label as "".
SeriesKey = tuple[str, str, str]


def reading(les: Sequence[float], threshold: float, percentile: bool = False) -> Reading:
    """How one series with bucket bounds ``les`` (seconds, any order, +Inf allowed)
    answers "observations <= ``threshold``".

    Without a finite bound (no buckets stored yet) the reading names the threshold
    itself, which no row holds: no good observation, and no data to judge either.
    A ``percentile`` objective whose threshold is at or above the highest finite bound
    counts every observation as good (``histogram_quantile`` caps there).
    """
    finite = [x for x in les if math.isfinite(x)]
    if not finite:
        return threshold, threshold, 1.0, True
    if percentile and threshold >= max(finite):
        return math.inf, math.inf, 1.0, True
    tb = threshold_buckets(les, threshold)
    return (None if math.isnan(tb.lower) else tb.lower, tb.upper, tb.fraction, tb.exact)


@dataclass(frozen=True)
class ThresholdReadings:
    """The readings of every series of a histogram signal for one threshold.

    Attributes:
        default: the reading of the union of every series' bounds, for series the
            layouts do not list (no rows when they were read).
        series: the series whose own reading differs from ``default``.
        approximate: some series interpolates inside a bucket (not exact).
        note: a short description for the SLO's status ("le=10 (exact)", ...).
    """

    default: Reading
    series: dict[SeriesKey, Reading] = field(default_factory=dict)
    approximate: bool = False
    note: str = ""

    def bounds(self) -> list[float]:
        """Every bound a reading names, and +Inf (the total): the ``le`` rows to read."""
        named = {b for r in (self.default, *self.series.values()) for b in r[:2] if b is not None}
        return sorted(named | {math.inf})

    def params(self) -> dict[str, Any]:
        """The parameters of ``sql/queries/slo_events_histogram.sql``."""
        keys = sorted(self.series)
        lower, upper, frac, _ = self.default
        return {
            "lower": lower,
            "upper": upper,
            "frac": frac,
            "les": self.bounds(),
            "lay_region": [k[0] for k in keys],
            "lay_model": [k[1] for k in keys],
            "lay_arm": [k[2] for k in keys],
            "lay_lower": [self.series[k][0] for k in keys],
            "lay_upper": [self.series[k][1] for k in keys],
            "lay_frac": [self.series[k][2] for k in keys],
        }


def _describe(r: Reading) -> str:
    lower, upper, _, exact = r
    if math.isinf(upper):
        return "every observation (above the highest bound)"
    if exact:
        return f"le={upper:g} (exact)"
    return f"interpolated in ({0 if lower is None else lower:g}, {upper:g}]"


def threshold_readings(
    layouts: pd.DataFrame, threshold: float, percentile: bool = False
) -> ThresholdReadings:
    """The reading of each series of ``layouts`` for ``threshold`` (seconds).

    Args:
        layouts: one row per series and bound: ``region``, ``model``, ``arm`` (strings,
            "" for a missing label) and ``le`` (float), as
            :meth:`observatory.store.Store.bucket_layouts` returns.
        threshold: the SLO's threshold, in the unit of ``le``.
        percentile: a percentile objective (see :func:`reading`).
    """
    union = sorted({float(x) for x in layouts["le"]})
    default = reading(union, threshold, percentile)
    own: dict[SeriesKey, Reading] = {}
    for key, group in layouts.groupby(["region", "model", "arm"], sort=True):
        region, model, arm = (str(x) for x in key)
        own[(region, model, arm)] = reading(
            sorted(float(x) for x in group["le"]), threshold, percentile
        )
    differ = {k: r for k, r in own.items() if r[:3] != default[:3]}
    readings = list(own.values()) or [default]
    approximate = not all(r[3] for r in readings)
    kinds = sorted({_describe(r) for r in readings})
    note = kinds[0] if len(kinds) == 1 else "per series' buckets: " + "; ".join(kinds)
    return ThresholdReadings(default, differ, approximate, note)

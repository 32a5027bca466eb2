"""Canonical signals: the semantic layer between exporters and analytics.

Every exporter metric that Observatory stores is mapped (by a preset, see
:mod:`collectors.presets`) onto one of these signals, converted to the signal's unit.
Analytics, SQL views and the dashboard only ever speak of canonical signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Signal:
    """A canonical signal.

    Attributes:
        name: the canonical name stored in the ``signal`` column.
        kind: ``counter`` rows hold exact per-step increases; ``gauge`` rows per-step
            mean/max/last; ``histogram`` rows per-step increases of each cumulative
            ``le`` bucket.
        unit: the unit of stored values (for histograms: the unit of ``le``).
        description: one line for the schema browser and docs.
    """

    name: str
    kind: Kind
    unit: str
    description: str


SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in [
        Signal("requests", "counter", "requests", "Finished inference requests, all outcomes"),
        Signal("errors", "counter", "requests", "Requests that finished with an error"),
        Signal("latency", "histogram", "seconds", "End-to-end request latency"),
        Signal(
            "latency_sum", "counter", "seconds", "Sum of end-to-end latencies (mean = sum/count)"
        ),
        Signal("ttft", "histogram", "seconds", "Time to first token"),
        Signal("prompt_tokens", "counter", "tokens", "Prompt (input) tokens processed"),
        Signal("prompt_length", "histogram", "tokens", "Prompt (input) length per request"),
        Signal("generation_tokens", "counter", "tokens", "Generated (output) tokens"),
        Signal("gpu_utilization", "gauge", "ratio", "GPU utilisation, 0-1"),
        Signal("gpu_power", "gauge", "watts", "GPU board power draw"),
        Signal("energy", "counter", "joules", "Energy consumed by GPUs"),
        Signal("cost", "gauge", "usd_per_hour", "Hourly cost of the serving nodes"),
        Signal("accuracy", "gauge", "ratio", "Model accuracy on labelled traffic, 0-1"),
        Signal("prediction_score", "histogram", "score", "Distribution of prediction scores, 0-1"),
        Signal(
            "labels",
            "counter",
            "labels",
            "Ground-truth labels received for past predictions, counted when they arrive",
        ),
        Signal(
            "labels_correct",
            "counter",
            "labels",
            "Labels received that matched the prediction (accuracy = labels_correct / labels)",
        ),
        Signal("itl", "histogram", "seconds", "Inter-token latency (time per output token)"),
        Signal("queue_time", "histogram", "seconds", "Time requests waited in the queue"),
        Signal(
            "queue_time_sum", "counter", "seconds", "Sum of queue waits (mean = sum/latency_count)"
        ),
        Signal(
            "latency_count", "counter", "requests", "Requests counted in latency_sum (its divisor)"
        ),
        Signal("requests_running", "gauge", "requests", "Requests being processed"),
        Signal("requests_waiting", "gauge", "requests", "Requests waiting in the queue"),
        Signal("kv_cache_usage", "gauge", "ratio", "KV-cache blocks in use, 0-1"),
        Signal("cpu_energy", "counter", "joules", "CPU package energy (RAPL package zone)"),
        Signal("dram_energy", "counter", "joules", "DRAM energy (RAPL dram zone)"),
        Signal("gpu_cost", "gauge", "usd_per_hour", "Hourly cost of the GPUs (per GPU x count)"),
    ]
}


def signal(name: str) -> Signal:
    """The canonical signal called ``name``.

    Raises:
        KeyError: no such canonical signal (the message lists the known ones).
    """
    try:
        return SIGNALS[name]
    except KeyError:
        raise KeyError(f"unknown signal {name!r}; known: {', '.join(sorted(SIGNALS))}") from None

"""Presets: how each exporter's metrics map onto canonical signals, units converted.

Metric names, units and labels follow ``docs/sources.md`` (vLLM, dcgm-exporter,
OpenCost, Prometheus's own HTTP metrics).  A preset is a list of :class:`Mapping`; a
region's config names the presets it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collectors.signals import SIGNALS, Kind

#: dcgm-exporter (older builds) reports unsupported fields as an int64 "blank"
#: sentinel of about 9.22e18; values at or above this are dropped (sources.md).
DCGM_BLANK = 9.2e18


@dataclass(frozen=True)
class Mapping:
    """One exporter metric mapped onto one canonical signal.

    Attributes:
        signal: canonical signal name (a key of :data:`collectors.signals.SIGNALS`).
        selector: PromQL series selector fetched as raw samples (for histograms, the
            ``_bucket`` series).
        scale: factor from the exporter's unit to the signal's unit (percent -> ratio
            is 0.01, millijoules -> joules is 0.001).
        instance_labels: labels that identify one device (a GPU, a node); joined by
            ``/`` into the stored ``instance`` column, in the order given, skipping
            absent ones.  Empty: series are summed over everything but model and arm.
        drop_at_or_above: raw values at or above this are dropped as blanks.
        model: fixed model name for exporters whose series carry none.
    """

    signal: str
    selector: str
    scale: float = 1.0
    instance_labels: tuple[str, ...] = ()
    drop_at_or_above: float | None = None
    model: str | None = None

    @property
    def kind(self) -> Kind:
        """The signal's kind: counter, gauge or histogram."""
        return SIGNALS[self.signal].kind

    @property
    def unit(self) -> str:
        """The stored unit."""
        return SIGNALS[self.signal].unit


_GPU = ("Hostname", "hostname", "gpu")

PRESETS: dict[str, tuple[Mapping, ...]] = {
    "vllm": (
        Mapping("requests", "vllm:request_success_total"),
        Mapping("errors", 'vllm:request_success_total{finished_reason="error"}'),
        Mapping("latency", "vllm:e2e_request_latency_seconds_bucket"),
        Mapping("latency_sum", "vllm:e2e_request_latency_seconds_sum"),
        Mapping("ttft", "vllm:time_to_first_token_seconds_bucket"),
        Mapping("prompt_tokens", "vllm:prompt_tokens_total"),
        Mapping("generation_tokens", "vllm:generation_tokens_total"),
    ),
    "dcgm": (
        Mapping("gpu_utilization", "DCGM_FI_DEV_GPU_UTIL", 0.01, _GPU, DCGM_BLANK),
        Mapping("gpu_power", "DCGM_FI_DEV_POWER_USAGE", 1.0, _GPU, DCGM_BLANK),
        Mapping("energy", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 0.001, _GPU, DCGM_BLANK),
    ),
    "opencost": (Mapping("cost", "node_total_hourly_cost", 1.0, ("node",)),),
    "quality": (
        Mapping("accuracy", "model_accuracy"),
        Mapping("prediction_score", "model_prediction_score_bucket"),
    ),
    "prometheus": (
        Mapping("requests", "prometheus_http_requests_total", model="prometheus"),
        Mapping("errors", 'prometheus_http_requests_total{code=~"5.."}', model="prometheus"),
        Mapping("latency", "prometheus_http_request_duration_seconds_bucket", model="prometheus"),
        Mapping("latency_sum", "prometheus_http_request_duration_seconds_sum", model="prometheus"),
    ),
}


def mappings_for(presets: Sequence[str]) -> list[Mapping]:
    """All mappings of the named presets, in order.

    Raises:
        KeyError: an unknown preset name.
    """
    out: list[Mapping] = []
    for name in presets:
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
        out.extend(PRESETS[name])
    return out

"""Presets: how each exporter's metrics map onto canonical signals, units converted.

Metric names, units and labels follow ``shared/reference/sources.md`` (vLLM, NVIDIA
Triton, Hugging Face TGI, OpenTelemetry HTTP servers, dcgm-exporter, Kepler,
OpenCost, Prometheus's own HTTP metrics).  A preset is a list of :class:`Mapping`;
a region's config names the presets it runs, and may add its own signals
(``regions[].signals``, see :func:`custom_mappings`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from collectors.signals import SIGNALS, Kind

#: dcgm-exporter (older builds) reports unsupported fields as an int64 "blank"
#: sentinel of about 9.22e18; values at or above this are dropped (sources.md).
DCGM_BLANK = 9.2e18


@dataclass(frozen=True)
class Mapping:
    """One exporter metric mapped onto one canonical signal.

    Attributes:
        signal: canonical signal name (a key of :data:`collectors.signals.SIGNALS`,
            or a config-defined signal with ``custom_kind``/``custom_unit``).
        selector: PromQL series selector fetched as raw samples (for histograms, the
            ``_bucket`` series); with ``expr`` True, any PromQL expression evaluated
            per step (``query_range``) and stored as a gauge.
        scale: factor from the exporter's unit to the signal's unit (percent -> ratio
            is 0.01, millijoules -> joules is 0.001).
        instance_labels: labels that identify one device (a GPU, a node); joined by
            ``/`` into the stored ``instance`` column, in the order given, skipping
            absent ones.  Empty: series are summed over everything but model and arm.
        drop_at_or_above: raw values at or above this are dropped as blanks.
        model: fixed model name for exporters whose series carry none.
        model_labels: labels tried for the model after the region's ``labels.model``
            (TGI and OTel series carry the model only as a target label).
        le_scale: factor applied to histogram bounds (Triton's milliseconds -> s).
        prefer_names: for a selector matching several metric names (a renamed
            metric): where one series exists under several names, keep the first.
        expr: ``selector`` is a PromQL expression, not a series selector.
        prices: ``(substring of price_label, USD per hour)``: each series' value is
            replaced by the price of its device (a price table for GPUs).
        price_label: the label matched against ``prices``.
        custom_kind, custom_unit: kind and unit of a config-defined signal.
    """

    signal: str
    selector: str
    scale: float = 1.0
    instance_labels: tuple[str, ...] = ()
    drop_at_or_above: float | None = None
    model: str | None = None
    model_labels: tuple[str, ...] = ()
    le_scale: float = 1.0
    prefer_names: tuple[str, ...] = ()
    expr: bool = False
    prices: tuple[tuple[str, float], ...] = ()
    price_label: str = "modelName"
    custom_kind: Kind | None = None
    custom_unit: str | None = None

    @property
    def kind(self) -> Kind:
        """The signal's kind: counter, gauge or histogram."""
        if self.custom_kind is not None:
            return self.custom_kind
        return SIGNALS[self.signal].kind

    @property
    def unit(self) -> str:
        """The stored unit."""
        if self.custom_unit is not None:
            return self.custom_unit
        return SIGNALS[self.signal].unit


_GPU = ("Hostname", "hostname", "gpu")
_TGI_MODEL = ("model_id", "service", "job")
_OTEL_MODEL = ("service_name", "job")
_ITL_NAMES = (
    "vllm:inter_token_latency_seconds_bucket",
    "vllm:time_per_output_token_seconds_bucket",
)
_KV_NAMES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_OTEL = "http_server_request_duration_seconds"


def _any_of(names: Sequence[str]) -> str:
    return '{__name__=~"' + "|".join(names) + '"}'


PRESETS: dict[str, tuple[Mapping, ...]] = {
    "vllm": (
        Mapping("requests", "vllm:request_success_total"),
        Mapping("errors", 'vllm:request_success_total{finished_reason="error"}'),
        Mapping("latency", "vllm:e2e_request_latency_seconds_bucket"),
        Mapping("latency_sum", "vllm:e2e_request_latency_seconds_sum"),
        Mapping("ttft", "vllm:time_to_first_token_seconds_bucket"),
        Mapping("prompt_tokens", "vllm:prompt_tokens_total"),
        Mapping("prompt_length", "vllm:request_prompt_tokens_bucket"),
        Mapping("generation_tokens", "vllm:generation_tokens_total"),
        # inter-token latency under its current and its old name (never both counted)
        Mapping("itl", _any_of(_ITL_NAMES), prefer_names=_ITL_NAMES),
        Mapping("queue_time", "vllm:request_queue_time_seconds_bucket"),
        Mapping("requests_running", "vllm:num_requests_running"),
        Mapping("requests_waiting", "vllm:num_requests_waiting"),
        Mapping("kv_cache_usage", _any_of(_KV_NAMES), prefer_names=_KV_NAMES),
    ),
    "dcgm": (
        Mapping("gpu_utilization", "DCGM_FI_DEV_GPU_UTIL", 0.01, _GPU, DCGM_BLANK),
        Mapping("gpu_power", "DCGM_FI_DEV_POWER_USAGE", 1.0, _GPU, DCGM_BLANK),
        Mapping("energy", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 0.001, _GPU, DCGM_BLANK),
    ),
    "opencost": (Mapping("cost", "node_total_hourly_cost", 1.0, ("node",)),),
    # Per-GPU hourly price x GPU count per node, evaluated by PromQL per step.
    "opencost_gpu": (
        Mapping(
            "gpu_cost",
            "sum by (node, instance_type) (node_gpu_hourly_cost * on (node) group_left () "
            "max by (node) (node_gpu_count))",
            instance_labels=("node",),
            expr=True,
        ),
    ),
    "quality": (
        Mapping("accuracy", "model_accuracy"),
        Mapping("prediction_score", "model_prediction_score_bucket"),
    ),
    # Late ground-truth labels (a labelling pipeline's exporter): two counters that grow
    # when a label arrives, hours or days after its prediction, by model_name/version.
    "labels": (
        Mapping("labels", "model_labels_total"),
        Mapping("labels_correct", "model_labels_correct_total"),
    ),
    "prometheus": (
        Mapping("requests", "prometheus_http_requests_total", model="prometheus"),
        Mapping("errors", 'prometheus_http_requests_total{code=~"5.."}', model="prometheus"),
        Mapping("latency", "prometheus_http_request_duration_seconds_bucket", model="prometheus"),
        Mapping("latency_sum", "prometheus_http_request_duration_seconds_sum", model="prometheus"),
    ),
    # NVIDIA Triton: success/failure counters, cumulative microsecond durations.
    "triton": (
        Mapping("requests", "nv_inference_request_success"),
        Mapping("requests", "nv_inference_request_failure"),
        Mapping("errors", "nv_inference_request_failure"),
        Mapping("latency_count", "nv_inference_request_success"),
        Mapping("latency_sum", "nv_inference_request_duration_us", 1e-6),
        Mapping("queue_time_sum", "nv_inference_queue_duration_us", 1e-6),
        Mapping("ttft", "nv_inference_first_response_histogram_ms_bucket", le_scale=0.001),
    ),
    "triton_gpu": (
        Mapping("gpu_utilization", "nv_gpu_utilization", 1.0, ("gpu_uuid",)),
        Mapping("gpu_power", "nv_gpu_power_usage", 1.0, ("gpu_uuid",)),
        Mapping("energy", "nv_energy_consumption", 1.0, ("gpu_uuid",)),
    ),
    # Hugging Face TGI: no _total suffix, no model label (the model is a target label).
    "tgi": (
        Mapping("requests", "tgi_request_count", model_labels=_TGI_MODEL),
        Mapping("errors", "tgi_request_failure", model_labels=_TGI_MODEL),
        Mapping("latency", "tgi_request_duration_bucket", model_labels=_TGI_MODEL),
        Mapping("latency_sum", "tgi_request_duration_sum", model_labels=_TGI_MODEL),
        Mapping("latency_count", "tgi_request_duration_count", model_labels=_TGI_MODEL),
        Mapping("queue_time", "tgi_request_queue_duration_bucket", model_labels=_TGI_MODEL),
        Mapping("itl", "tgi_request_mean_time_per_token_duration_bucket", model_labels=_TGI_MODEL),
        Mapping("prompt_length", "tgi_request_input_length_bucket", model_labels=_TGI_MODEL),
        Mapping("prompt_tokens", "tgi_request_input_length_sum", model_labels=_TGI_MODEL),
        Mapping("generation_tokens", "tgi_request_generated_tokens_sum", model_labels=_TGI_MODEL),
        Mapping("requests_waiting", "tgi_queue_size", model_labels=_TGI_MODEL),
    ),
    # OpenTelemetry semantic conventions (http.server.request.duration) as Prometheus sees it.
    "otel_http": (
        Mapping("requests", f"{_OTEL}_count", model_labels=_OTEL_MODEL),
        Mapping(
            "errors",
            f'{_OTEL}_count{{http_response_status_code=~"5.."}}',
            model_labels=_OTEL_MODEL,
        ),
        Mapping("latency", f"{_OTEL}_bucket", model_labels=_OTEL_MODEL),
        Mapping("latency_sum", f"{_OTEL}_sum", model_labels=_OTEL_MODEL),
        Mapping("latency_count", f"{_OTEL}_count", model_labels=_OTEL_MODEL),
    ),
    # Kepler (current names): RAPL zones overlap (psys > package > core), so each zone
    # is its own signal and none is summed with another.
    "kepler": (
        Mapping("cpu_energy", 'kepler_node_cpu_joules_total{zone="package"}', 1.0, ("instance",)),
        Mapping("dram_energy", 'kepler_node_cpu_joules_total{zone="dram"}', 1.0, ("instance",)),
        Mapping("energy", "kepler_node_gpu_joules_total", 1.0, ("instance",)),
    ),
    # Kepler 0.7: per-container counters by component, modes dynamic + idle (disjoint).
    "kepler_legacy": (
        Mapping("cpu_energy", "kepler_container_package_joules_total", 1.0, ("instance",)),
        Mapping("dram_energy", "kepler_container_dram_joules_total", 1.0, ("instance",)),
        Mapping("energy", "kepler_container_gpu_joules_total", 1.0, ("instance",)),
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


def custom_mappings(signals: Iterable[Any]) -> list[Mapping]:
    """Mappings of a region's config-defined signals (``regions[].signals``)."""
    out = []
    for s in signals:
        known = s.name in SIGNALS
        out.append(
            Mapping(
                s.name,
                s.selector if s.selector is not None else s.expr,
                scale=s.scale,
                instance_labels=tuple(s.instance_labels),
                model=s.model,
                le_scale=s.le_scale,
                expr=s.expr is not None,
                custom_kind=None if known else s.kind,
                custom_unit=None if known else s.unit,
            )
        )
    return out


def price_mappings(prices: Iterable[Any]) -> list[Mapping]:
    """The ``gpu_cost`` of every GPU dcgm-exporter reports, from a region's price table."""
    table = tuple((p.gpu, float(p.usd_per_hour)) for p in prices)
    if not table:
        return []
    return [Mapping("gpu_cost", "DCGM_FI_DEV_GPU_UTIL", 1.0, _GPU, DCGM_BLANK, prices=table)]


def region_mappings(region: Any) -> list[Mapping]:
    """Everything a region collects: its presets, its price table, its own signals."""
    return [
        *mappings_for(region.presets),
        *price_mappings(getattr(region, "prices", ())),
        *custom_mappings(getattr(region, "signals", ())),
    ]

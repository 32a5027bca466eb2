"""The demo fleet: a deterministic simulator of a global AI inference fleet.

Seven AWS regions on four continents (real coordinates and time zones), three
models, an A/B test with two arms on one of them, eight GPUs per region, one sample
per series per minute.  Traffic follows each region's local time of day; latency and
time to first token (vLLM's buckets), errors, tokens, GPU utilisation, power and
energy, cost, accuracy and late ground-truth labels (counted when they arrive, hours
after the prediction) are consistent with each other.  Known incidents are injected and listed in
a ground-truth file.

The simulator produces exporter-shaped series (vLLM, dcgm-exporter, OpenCost, a
model-quality exporter and a labelling pipeline's counters, with their real metric
names, units and labels).  Two
outputs share them:

- :func:`write_store`: the series go through the same presets and transform as
  collected data (:mod:`collectors.transform`), straight into the store;
- :func:`write_openmetrics`: OpenMetrics text with timestamps for
  ``promtool tsdb create-blocks-from openmetrics``, so a real Prometheus serves
  the same history.

Everything is a pure function of ``(seed, end, days, regions)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve
from scipy.stats import beta as beta_dist
from scipy.stats import lognorm

from collectors.presets import mappings_for
from collectors.selector import parse_selector
from collectors.transform import TABLE_OF_KIND, LabelRules, Series, to_rows

#: vLLM's default buckets for vllm:e2e_request_latency_seconds (seconds).
VLLM_E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: vLLM's 1-2-5 buckets for vllm:request_prompt_tokens (tokens, up to a 32k context).
PROMPT_TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
PROMPT_LENGTH_SIGMA = 0.7
#: vLLM's default buckets for vllm:time_to_first_token_seconds (seconds, sources.md).
VLLM_TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
#: Median time to first token per model at low load (seconds; prefill of an average
#: prompt) and its lognormal sigma.  TTFT grows with load and follows the same arm and
#: incident factors as the end-to-end latency (the eu-west-1 quantisation makes both
#: slower); it does not follow the prompt-length shift.
TTFT_MEDIAN_S = {"llama-3.1-70b": 0.18, "mistral-7b": 0.045, "qwen2.5-32b": 0.12}
TTFT_SIGMA = 0.6
#: Late labels: the share of predictions that ever get a ground-truth label (the rest
#: never do), and the label delay after the prediction (lognormal: median 6 h, sigma
#: 0.7, so 95% arrive within 19 h), cut at 48 h.
LABEL_SHARE = 0.6
LABEL_DELAY_MEDIAN_H = 6.0
LABEL_DELAY_SIGMA = 0.7
LABEL_DELAY_MAX_H = 48
DEMO_PRESETS = ("vllm", "dcgm", "opencost", "quality", "labels")
STEP_S = 60


@dataclass(frozen=True)
class DemoRegion:
    """A region of the demo fleet: AWS name, where it is, its time zone and prices."""

    name: str
    display_name: str
    latitude: float
    longitude: float
    timezone: str
    traffic: float  # relative traffic volume
    usd_per_gpu_hour: float


@dataclass(frozen=True)
class DemoModel:
    """A served model: arms (versions), GPUs per arm, traffic and quality."""

    name: str
    arms: tuple[str, ...]
    gpus_per_arm: int
    peak_rpm: float  # requests per minute at the daily peak, whole model, traffic 1.0
    median_latency_s: float
    latency_sigma: float
    accuracy: float
    score_beta: tuple[float, float]
    prompt_tokens: float
    generation_tokens: float


REGIONS: tuple[DemoRegion, ...] = (
    DemoRegion("us-east-1", "US East (N. Virginia)", 38.95, -77.45, "America/New_York", 1.0, 4.10),
    DemoRegion("us-west-2", "US West (Oregon)", 45.84, -119.70, "America/Los_Angeles", 0.7, 4.10),
    DemoRegion("eu-west-1", "Europe (Ireland)", 53.35, -6.26, "Europe/Dublin", 0.8, 4.45),
    DemoRegion("eu-central-1", "Europe (Frankfurt)", 50.11, 8.68, "Europe/Berlin", 0.6, 4.60),
    DemoRegion("ap-northeast-1", "Asia Pacific (Tokyo)", 35.68, 139.69, "Asia/Tokyo", 0.6, 4.90),
    DemoRegion("ap-south-1", "Asia Pacific (Mumbai)", 19.08, 72.88, "Asia/Kolkata", 0.5, 3.80),
    DemoRegion(
        "sa-east-1", "South America (São Paulo)", -23.55, -46.63, "America/Sao_Paulo", 0.4, 5.20
    ),
)
MODELS: tuple[DemoModel, ...] = (
    DemoModel("llama-3.1-70b", ("v1", "v2"), 2, 90.0, 2.2, 0.55, 0.860, (6.0, 2.0), 420.0, 260.0),
    DemoModel("mistral-7b", ("v1",), 2, 160.0, 0.7, 0.45, 0.780, (4.0, 2.0), 300.0, 180.0),
    DemoModel("qwen2.5-32b", ("v1",), 2, 70.0, 1.5, 0.50, 0.830, (5.0, 2.0), 380.0, 220.0),
)
#: The A/B test: arm v2 of llama-3.1-70b is 1.5 points more accurate and 5% slower.
AB_EFFECT = {"accuracy_delta": 0.015, "latency_factor": 1.05}
GPU_IDLE_W, GPU_MAX_W = 75.0, 700.0  # H100 SXM board power range


@dataclass(frozen=True)
class Incident:
    """A known injected incident (the ground truth detection is scored against).

    ``magnitude`` is relative for latency (median factor) and power (factor), and
    absolute for error ratio (the ratio during the burst) and accuracy (the drop).
    ``end`` None means it lasts to the end of the data.
    """

    id: str
    kind: str
    region: str
    model: str | None
    arm: str | None
    signal: str
    start: datetime
    end: datetime | None
    magnitude: float
    description: str


@dataclass
class RegionSeries:
    """All simulated series of one region plus its exact totals."""

    region: DemoRegion
    series: list[Series] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)


def default_end(now: datetime | None = None) -> datetime:
    """The demo's end: the last full hour before ``now`` (UTC)."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def incidents_for(start: datetime, end: datetime) -> list[Incident]:
    """The incidents injected into a fleet over ``[start, end]``, placed by fraction of the span."""
    span = end - start

    def at(fraction: float, hour: int) -> datetime:
        t = start + span * fraction
        return t.replace(hour=hour, minute=0, second=0, microsecond=0)

    burst = at(0.42, 9)
    return [
        Incident(
            "latency-eu-west-1",
            "latency_regression",
            "eu-west-1",
            "llama-3.1-70b",
            "v2",
            "latency",
            at(0.64, 10),
            None,
            1.6,
            "Deployment of llama-3.1-70b v2 (new quantisation) makes median latency 60% slower",
        ),
        Incident(
            "errors-ap-south-1",
            "error_burst",
            "ap-south-1",
            "mistral-7b",
            None,
            "errors",
            burst,
            burst + timedelta(minutes=90),
            0.08,
            "Upstream tokenizer service outage: 8% of mistral-7b requests fail for 90 minutes",
        ),
        Incident(
            "accuracy-us-west-2",
            "accuracy_drift",
            "us-west-2",
            "qwen2.5-32b",
            None,
            "accuracy",
            at(0.78, 6),
            None,
            0.07,
            "Input distribution shift: qwen2.5-32b accuracy falls by 7 points over 12 hours "
            "(prompts grow 50% longer, prediction scores shift)",
        ),
        Incident(
            "gpu-ap-northeast-1",
            "gpu_efficiency_drop",
            "ap-northeast-1",
            None,
            None,
            "gpu_power",
            at(0.28, 3),
            None,
            1.35,
            "Driver update: GPUs draw 35% more power for the same work (tokens per joule drop)",
        ),
    ]


def _diurnal(times: pd.DatetimeIndex, tz: str) -> np.ndarray:
    local = times.tz_convert(tz)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    shape = 0.5 - 0.5 * np.cos(2 * np.pi * (hour - 4.0) / 24.0)  # low at 04:00, peak at 16:00
    weekend = np.where(local.day_of_week.to_numpy() >= 5, 0.8, 1.0)
    return (0.25 + 0.75 * shape**1.5) * weekend


def _active(times: pd.DatetimeIndex, inc: Incident) -> np.ndarray:
    t = times.tz_convert(UTC)
    on = t >= pd.Timestamp(inc.start)
    if inc.end is not None:
        on &= t < pd.Timestamp(inc.end)
    return np.asarray(on)


def _counter(
    increments: np.ndarray, reset_at: int | None = None, start_value: float = 0.0
) -> np.ndarray:
    """Cumulative counter samples: a sample at the start, then one per step.

    With ``reset_at`` = i the process restarts just before step i ends: the sample
    of step i holds only that step's increment (a counter reset).
    """
    values = np.concatenate([[start_value], start_value + np.cumsum(increments)])
    if reset_at is not None:
        values[reset_at + 1 :] = np.cumsum(increments[reset_at:])
    return values


def label_delay_pmf() -> np.ndarray:
    """Share of the labels that arrive ``d`` minutes after the prediction, ``d = 0 .. 48 h``.

    Shape ``(LABEL_DELAY_MAX_H * 60 + 1,)``, sums to 1: the lognormal delay
    (:data:`LABEL_DELAY_MEDIAN_H`, :data:`LABEL_DELAY_SIGMA`) per one-minute step,
    renormalised after the cut at :data:`LABEL_DELAY_MAX_H`.
    """
    edges = np.arange(LABEL_DELAY_MAX_H * 60 + 2, dtype=np.float64)  # minutes
    cdf = lognorm.cdf(edges, s=LABEL_DELAY_SIGMA, scale=LABEL_DELAY_MEDIAN_H * 60.0)
    pmf = np.diff(cdf)
    return pmf / pmf.sum()


def _late_labels(
    predictions: np.ndarray,
    accuracy: np.ndarray,
    before: np.ndarray,
    before_accuracy: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and correct labels arriving per step (counted at arrival, not prediction).

    Each prediction gets a label with probability :data:`LABEL_SHARE`, after a delay
    drawn from :func:`label_delay_pmf`; a label is correct with the model's accuracy
    at prediction time.  ``before`` holds the expected predictions per step of the
    48 hours before the window (their labels arrive inside it).  Arrivals per step are
    Poisson around the expected count, correct ones binomial among them.
    """
    pmf = label_delay_pmf()
    pad = pmf.size - 1
    preds = np.concatenate([before[-pad:], predictions]) * LABEL_SHARE
    acc = np.concatenate([np.full(pad, before_accuracy), accuracy])
    expected = np.clip(fftconvolve(preds, pmf)[pad : pad + predictions.size], 0, None)
    expected_ok = np.clip(fftconvolve(preds * acc, pmf)[pad : pad + predictions.size], 0, None)
    labels = rng.poisson(expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_ok = np.where(expected > 0, np.clip(expected_ok / expected, 0, 1), 0.0)
    correct = rng.binomial(labels, share_ok)
    return labels.astype(np.float64), correct.astype(np.float64)


def simulate_region(
    region: DemoRegion, start: datetime, end: datetime, seed: int, incidents: list[Incident]
) -> RegionSeries:
    """Simulate one region over ``(start, end]`` at one-minute steps.

    Counters have a sample at ``start`` (their baseline) and one at the end of every
    minute; gauges one at the end of every minute.  ``totals`` holds the exact
    number of requests, errors and joules in the window.
    """
    rng = np.random.default_rng([seed, sum(map(ord, region.name))])
    n = int((end - start).total_seconds() // STEP_S)
    times = pd.date_range(start + timedelta(seconds=STEP_S), periods=n, freq=f"{STEP_S}s", tz=UTC)
    ts_ms = times.as_unit("ms").asi8.astype(np.int64)
    ts_counter = np.concatenate([[ts_ms[0] - STEP_S * 1000], ts_ms])
    load = _diurnal(times, region.timezone)
    # The 48 hours before the window: predictions whose late labels arrive inside it.
    pad_n = LABEL_DELAY_MAX_H * 3600 // STEP_S
    pad_times = pd.date_range(
        start - timedelta(seconds=STEP_S * (pad_n - 1)), periods=pad_n, freq=f"{STEP_S}s", tz=UTC
    )
    pad_load = _diurnal(pad_times, region.timezone)
    le_ttft = [*(f"{b}" for b in VLLM_TTFT_BUCKETS), "+Inf"]
    out = RegionSeries(region)
    totals = {"requests": 0.0, "errors": 0.0, "energy_joules": 0.0}
    mine = [i for i in incidents if i.region == region.name]
    le_text = [*(f"{b}" for b in VLLM_E2E_BUCKETS), "+Inf"]
    score_text = [*(f"{b}" for b in SCORE_BUCKETS), "+Inf"]
    power_factor = np.ones(n)
    for inc in mine:
        if inc.kind == "gpu_efficiency_drop":
            power_factor = np.where(_active(times, inc), inc.magnitude, power_factor)
    gpu_index = 0
    for model in MODELS:
        for arm in model.arms:
            base = {"model_name": model.name, "version": arm}
            share = 1.0 / len(model.arms)
            rate = model.peak_rpm * region.traffic * share * load * rng.lognormal(0, 0.05, n)
            requests = rng.poisson(rate).astype(np.float64)
            capacity = model.peak_rpm * share * 1.15 / model.gpus_per_arm  # rpm per GPU at 100%
            util = np.clip(requests / model.gpus_per_arm / capacity, 0.02, 1.0)
            # Latency: lognormal, slower under load, slower in the B arm, incidents.
            median = model.median_latency_s * (1.0 + 0.25 * util**2)
            error_ratio = np.full(n, 0.002)
            accuracy = np.full(n, model.accuracy)
            score_a, score_b = model.score_beta
            score_b_t = np.full(n, score_b)
            length_factor = np.ones(n)  # input-length shift (accuracy_drift incidents)
            if arm == "v2":
                median = median * AB_EFFECT["latency_factor"]
                accuracy = accuracy + AB_EFFECT["accuracy_delta"]
            for inc in mine:
                if inc.model not in (None, model.name) or inc.arm not in (None, arm):
                    continue
                on = _active(times, inc)
                if inc.kind == "latency_regression":
                    median = np.where(on, median * inc.magnitude, median)
                elif inc.kind == "error_burst":
                    error_ratio = np.where(on, inc.magnitude, error_ratio)
                elif inc.kind == "accuracy_drift":
                    hours = (
                        times.tz_convert(UTC) - pd.Timestamp(inc.start)
                    ).total_seconds().to_numpy() / 3600
                    ramp = np.clip(hours / 12.0, 0.0, 1.0) * on
                    accuracy = accuracy - inc.magnitude * ramp
                    score_b_t = score_b_t * (1.0 + 0.8 * ramp)
                    length_factor = 1.0 + 0.5 * ramp  # prompts 50% longer
            errors = rng.binomial(requests.astype(np.int64), error_ratio).astype(np.float64)
            ok = requests - errors
            length = rng.binomial(ok.astype(np.int64), 0.08).astype(np.float64)
            stop = ok - length
            reset_at = (
                n // 3 if (region.name == "us-east-1" and model.name == "mistral-7b") else None
            )
            for reason, counts in (("stop", stop), ("length", length), ("error", errors)):
                out.series.append(
                    Series(
                        {
                            "__name__": "vllm:request_success_total",
                            **base,
                            "finished_reason": reason,
                        },
                        ts_counter,
                        _counter(counts, reset_at),
                    )
                )
            totals["requests"] += float(requests.sum())
            totals["errors"] += float(errors.sum())
            # Latency histogram (cumulative buckets) and sum.
            sigma = model.latency_sigma
            cdf = lognorm.cdf(np.asarray(VLLM_E2E_BUCKETS)[None, :], s=sigma, scale=median[:, None])
            probs = np.diff(
                np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], axis=1), axis=1
            )
            probs = np.clip(probs, 0, None)
            probs /= probs.sum(axis=1, keepdims=True)
            counts = rng.multinomial(requests.astype(np.int64), probs).astype(np.float64)
            cumulative = np.cumsum(counts, axis=1)
            for k, le in enumerate(le_text):
                out.series.append(
                    Series(
                        {"__name__": "vllm:e2e_request_latency_seconds_bucket", **base, "le": le},
                        ts_counter,
                        _counter(cumulative[:, k], reset_at),
                    )
                )
            mean_latency = median * np.exp(sigma**2 / 2)
            lat_sum = requests * mean_latency * rng.normal(1.0, 0.01, n).clip(0.9, 1.1)
            out.series.append(
                Series(
                    {"__name__": "vllm:e2e_request_latency_seconds_sum", **base},
                    ts_counter,
                    _counter(lat_sum, reset_at),
                )
            )
            out.series.append(
                Series(
                    {"__name__": "vllm:e2e_request_latency_seconds_count", **base},
                    ts_counter,
                    _counter(requests, reset_at),
                )
            )
            prompt = np.round(
                requests
                * model.prompt_tokens
                * rng.normal(1, 0.05, n).clip(0.5, 1.5)
                * length_factor
            )
            gen = np.round(
                requests * model.generation_tokens * rng.normal(1, 0.05, n).clip(0.5, 1.5)
            )
            out.series.append(
                Series(
                    {"__name__": "vllm:prompt_tokens_total", **base},
                    ts_counter,
                    _counter(prompt, reset_at),
                )
            )
            out.series.append(
                Series(
                    {"__name__": "vllm:generation_tokens_total", **base},
                    ts_counter,
                    _counter(gen, reset_at),
                )
            )
            # Input length: vLLM's request_prompt_tokens histogram, lognormal with mean
            # prompt_tokens x length_factor.  Drawn from its own random stream so that
            # adding it left every other series unchanged.
            lrng = np.random.default_rng(
                [seed, sum(map(ord, region.name)), sum(map(ord, model.name + arm)), 1]
            )
            lscale = model.prompt_tokens * length_factor * np.exp(-(PROMPT_LENGTH_SIGMA**2) / 2)
            lcdf = lognorm.cdf(
                np.asarray(PROMPT_TOKEN_BUCKETS, dtype=np.float64)[None, :],
                s=PROMPT_LENGTH_SIGMA,
                scale=lscale[:, None],
            )
            lprobs = np.clip(
                np.diff(np.concatenate([np.zeros((n, 1)), lcdf, np.ones((n, 1))], axis=1), axis=1),
                0,
                None,
            )
            lprobs /= lprobs.sum(axis=1, keepdims=True)
            lcum = np.cumsum(lrng.multinomial(requests.astype(np.int64), lprobs), axis=1)
            for k, le in enumerate([*(f"{b}" for b in PROMPT_TOKEN_BUCKETS), "+Inf"]):
                out.series.append(
                    Series(
                        {"__name__": "vllm:request_prompt_tokens_bucket", **base, "le": le},
                        ts_counter,
                        _counter(lcum[:, k].astype(np.float64), reset_at),
                    )
                )
            # Time to first token: vLLM's histogram, lognormal; slower under load and with
            # the arm's and incidents' latency factors.  Its own random stream, like the
            # input length, so that adding it left every other series unchanged.
            slow = median / (model.median_latency_s * (1.0 + 0.25 * util**2))
            tscale = TTFT_MEDIAN_S[model.name] * (1.0 + 0.6 * util**2) * slow
            trng = np.random.default_rng(
                [seed, sum(map(ord, region.name)), sum(map(ord, model.name + arm)), 3]
            )
            tcdf = lognorm.cdf(
                np.asarray(VLLM_TTFT_BUCKETS)[None, :], s=TTFT_SIGMA, scale=tscale[:, None]
            )
            tprobs = np.clip(
                np.diff(np.concatenate([np.zeros((n, 1)), tcdf, np.ones((n, 1))], axis=1), axis=1),
                0,
                None,
            )
            tprobs /= tprobs.sum(axis=1, keepdims=True)
            tcum = np.cumsum(trng.multinomial(ok.astype(np.int64), tprobs), axis=1)
            for k, le in enumerate(le_ttft):
                out.series.append(
                    Series(
                        {"__name__": "vllm:time_to_first_token_seconds_bucket", **base, "le": le},
                        ts_counter,
                        _counter(tcum[:, k].astype(np.float64), reset_at),
                    )
                )
            # Quality: accuracy gauge and prediction-score histogram.
            acc = np.clip(accuracy + rng.normal(0, 0.004, n), 0, 1)
            out.series.append(
                Series({"__name__": "model_accuracy", **base}, ts_ms, np.round(acc, 5))
            )
            score_cdf = beta_dist.cdf(
                np.asarray(SCORE_BUCKETS)[None, :], score_a, score_b_t[:, None]
            )
            sprobs = np.diff(
                np.concatenate([np.zeros((n, 1)), score_cdf, np.ones((n, 1))], axis=1), axis=1
            )
            sprobs = np.clip(sprobs, 0, None)
            sprobs /= sprobs.sum(axis=1, keepdims=True)
            scounts = np.cumsum(rng.multinomial(ok.astype(np.int64), sprobs), axis=1).astype(
                np.float64
            )
            for k, le in enumerate(score_text):
                out.series.append(
                    Series(
                        {"__name__": "model_prediction_score_bucket", **base, "le": le},
                        ts_counter,
                        _counter(scounts[:, k]),
                    )
                )
            # Late labels: ground truth for a share of the predictions arrives hours
            # later; counted when it arrives (a label exporter's two counters).
            lab_rng = np.random.default_rng(
                [seed, sum(map(ord, region.name)), sum(map(ord, model.name + arm)), 2]
            )
            before = model.peak_rpm * region.traffic * share * pad_load * (1 - error_ratio[0])
            labels, correct = _late_labels(ok, accuracy, before, float(accuracy[0]), lab_rng)
            for name, counts in (
                ("model_labels_total", labels),
                ("model_labels_correct_total", correct),
            ):
                out.series.append(Series({"__name__": name, **base}, ts_counter, _counter(counts)))
            # GPUs: utilisation (percent, integer like DCGM), power, energy counter (mJ).
            node = f"ip-10-0-{gpu_index // 2}-{gpu_index % 2 + 10}.{region.name}.compute.internal"
            for g in range(model.gpus_per_arm):
                gpu_util = np.clip(util * rng.normal(1.0, 0.04, n), 0.0, 1.0)
                pct = np.round(gpu_util * 100.0)
                power = (GPU_IDLE_W + pct / 100.0 * (GPU_MAX_W - GPU_IDLE_W)) * power_factor
                power = np.round(power * rng.normal(1.0, 0.01, n), 1)
                energy_mj = np.round(power * STEP_S * 1000.0)
                gpu_labels = {
                    **base,
                    "gpu": str(g),
                    "UUID": f"GPU-{region.name}-{gpu_index:02d}",
                    "Hostname": node,
                    "modelName": "NVIDIA H100 80GB HBM3",
                    "namespace": "inference",
                    "pod": f"{model.name.replace('.', '-')}-{arm}-{g}",
                }
                gpu_reset = n // 2 if (region.name == "us-east-1" and gpu_index == 3) else None
                boot_mj = float(rng.integers(10**9, 10**11))
                out.series.append(
                    Series({"__name__": "DCGM_FI_DEV_GPU_UTIL", **gpu_labels}, ts_ms, pct)
                )
                out.series.append(
                    Series({"__name__": "DCGM_FI_DEV_POWER_USAGE", **gpu_labels}, ts_ms, power)
                )
                out.series.append(
                    Series(
                        {"__name__": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", **gpu_labels},
                        ts_counter,
                        _counter(energy_mj, gpu_reset, boot_mj),
                    )
                )
                totals["energy_joules"] += float(energy_mj.sum()) / 1000.0
                gpu_index += 1
            hourly = model.gpus_per_arm * region.usd_per_gpu_hour + 0.45
            out.series.append(
                Series(
                    {
                        "__name__": "node_total_hourly_cost",
                        **base,
                        "node": node,
                        "instance_type": "p5.48xlarge",
                        "region": region.name,
                    },
                    ts_ms,
                    np.full(n, hourly),
                )
            )
    out.totals = totals
    return out


def simulate(
    seed: int = 7,
    end: datetime | None = None,
    days: float = 14,
    regions: Iterable[str] | None = None,
) -> tuple[list[RegionSeries], dict[str, Any]]:
    """Simulate the fleet; returns the regions' series and the ground truth.

    Args:
        seed: random seed; the same seed and arguments give the same fleet.
        end: the last step's end, UTC (default: the last full hour).
        days: span of the history.
        regions: names of the regions to simulate (default all seven).

    Raises:
        ValueError: an unknown region name or a non-positive span.
    """
    end = (end or default_end()).astimezone(UTC).replace(second=0, microsecond=0)
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    start = end - timedelta(days=days)
    wanted = list(regions) if regions else [r.name for r in REGIONS]
    unknown = sorted(set(wanted) - {r.name for r in REGIONS})
    if unknown:
        raise ValueError(f"unknown demo region(s) {unknown}; known: {[r.name for r in REGIONS]}")
    incidents = incidents_for(start, end)
    sims = [simulate_region(r, start, end, seed, incidents) for r in REGIONS if r.name in wanted]
    truth = {
        "seed": seed,
        "start_utc": start.isoformat(),
        "end_utc": end.isoformat(),
        "step_s": STEP_S,
        "regions": [asdict(s.region) for s in sims],
        "models": [{"name": m.name, "arms": list(m.arms)} for m in MODELS],
        "ab_test": {"model": "llama-3.1-70b", "control": "v1", "treatment": "v2", **AB_EFFECT},
        "incidents": [
            {**asdict(i), "start": i.start.isoformat(), "end": i.end.isoformat() if i.end else None}
            for i in incidents
            if i.region in wanted
        ],
        "totals": {s.region.name: s.totals for s in sims},
    }
    return sims, truth


def region_frames(
    sim: RegionSeries, start: datetime, end: datetime
) -> Iterator[tuple[str, list[str], pd.DataFrame]]:
    """``(table, signals, rows)`` for the store, through the demo presets' mappings."""
    start_ms = int(start.timestamp() * 1000)
    end_ms = int(end.timestamp() * 1000)
    by_table: dict[str, list[pd.DataFrame]] = {}
    signals: dict[str, list[str]] = {}
    for mapping in mappings_for(DEMO_PRESETS):
        sel = parse_selector(mapping.selector)
        chosen = [s for s in sim.series if sel.matches(s.labels)]
        rows = to_rows(chosen, mapping, LabelRules(), start_ms, end_ms, STEP_S * 1000)
        table = TABLE_OF_KIND[mapping.kind]
        signals.setdefault(table, []).append(mapping.signal)
        if len(rows):
            by_table.setdefault(table, []).append(rows)
    for table, sigs in signals.items():
        frames = by_table.get(table, [])
        yield table, sigs, (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


def region_catalogue(names: Iterable[str] | None = None) -> pd.DataFrame:
    """The demo regions as the store's region catalogue."""
    wanted = set(names) if names else {r.name for r in REGIONS}
    return pd.DataFrame(
        [
            {
                "region": r.name,
                "display_name": r.display_name,
                "latitude": r.latitude,
                "longitude": r.longitude,
                "url": "demo://" + r.name,
            }
            for r in REGIONS
            if r.name in wanted
        ]
    )


def _fmt(values: np.ndarray) -> list[str]:
    return [repr(v) for v in values.tolist()]  # shortest text that round-trips


def write_openmetrics(sim: RegionSeries, out: IO[str]) -> int:
    """Write one region's series as OpenMetrics text with timestamps (seconds).

    The result is accepted by ``promtool tsdb create-blocks-from openmetrics``: one
    ``# TYPE`` per metric family, each series' samples contiguous and in time order,
    ``# EOF`` at the end.  Returns the number of samples written.
    """
    families: dict[str, list[Series]] = {}
    for s in sim.series:
        name = s.labels["__name__"]
        if name.endswith("_total"):
            family, kind = name[: -len("_total")], "counter"
        elif name.endswith(("_bucket", "_sum", "_count")) and name not in (
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        ):
            family, kind = name.rsplit("_", 1)[0], "histogram"
        elif name == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION":
            family, kind = name, "unknown"  # dcgm-exporter exposes it as a counter without _total
        else:
            family, kind = name, "gauge"
        families.setdefault(f"{family}\t{kind}", []).append(s)
    total = 0
    for key, members in families.items():
        family, kind = key.split("\t")
        out.write(f"# TYPE {family} {kind}\n")
        for s in members:
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items() if k != "__name__")
            head = f"{s.labels['__name__']}{{{labels}}} "
            ts = [f"{t // 1000}.{t % 1000:03d}" for t in s.ts_ms.tolist()]
            out.write("".join(f"{head}{v} {t}\n" for v, t in zip(_fmt(s.values), ts, strict=True)))
            total += s.values.size
    out.write("# EOF\n")
    return total


def write_truth(truth: dict[str, Any], path: Path) -> None:
    """Write the ground-truth JSON (incidents, A/B effect, exact totals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=2), encoding="utf-8")

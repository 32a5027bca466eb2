"""A large synthetic fleet for scale tests, written straight into a store.

The demo fleet (:mod:`collectors.demo_fleet`) simulates exporter series and runs them
through the collector's transform: realistic, but about 150 000 stored rows a second,
too slow for half a billion values.  This generator draws the stored rows themselves
(the canonical signals of :mod:`collectors.signals`, in the store's schema), vectorised
with NumPy over a whole region-day at a time, and writes them through the store's
public write path (:meth:`observatory.store.Store.replace_window`, one
``(table, region, day)`` call writing one partition per signal), streaming day by day
so memory stays bounded by one region-day.

Sizes (:data:`SIZES`): ``large`` is 20 regions x 10 models x 2 arms x 8 GPUs per
region and model (4 per arm), 30 days at 1-minute steps; ``small`` the same with 2
regions (10x fewer rows).  The first regions and models are the demo fleet's names,
so the example SLO specs and experiments apply.

Per step and ``(region, model, arm)``: counters ``requests``, ``errors``,
``latency_sum`` (s), ``prompt_tokens``, ``generation_tokens``; the ``latency``
histogram (vLLM's 21 bounds + ``+Inf``); gauges ``accuracy`` and ``cost`` (USD/h);
per GPU the gauges ``gpu_utilization`` (0-1) and ``gpu_power`` (W) and the counter
``energy`` (J).  The ``prompt_length`` and ``prediction_score`` histograms are
written for the first ``quality_models`` models only (a quality exporter is not on
every model; they would add 37 % more rows).

Traffic per arm is Poisson; latency buckets are Poisson splits of it (bucket ``k``
gets ``Poisson(rate x P(bound_k-1 < latency <= bound_k))``, lognormal latency), so
``requests`` equals the ``+Inf`` bucket exactly.  Everything is a pure function of
``(seed, size, end)``: region-day ``(r, d)`` draws from ``default_rng([seed, r, d])``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import ndtr

from collectors.demo_fleet import PROMPT_TOKEN_BUCKETS, SCORE_BUCKETS, VLLM_E2E_BUCKETS
from observatory.store import Store

GPU_IDLE_W, GPU_MAX_W = 75.0, 700.0  # H100 SXM board power range (as the demo fleet)
ERROR_RATIO = 0.002


@dataclass(frozen=True)
class FleetSize:
    """The shape of a generated fleet.

    Attributes:
        regions: number of regions (the first ``regions`` of :data:`REGIONS`).
        models: number of models (the first ``models`` of :data:`MODELS`).
        arms: arms per model (``v1``, ``v2``, ...).
        gpus_per_model: GPUs per region and model, split evenly over the arms.
        days: whole days of history.
        step_s: step length in seconds (60 = 1-minute resolution).
        quality_models: models (the first ones) that also get the ``prompt_length``
            and ``prediction_score`` histograms.
    """

    regions: int
    models: int
    arms: int = 2
    gpus_per_model: int = 8
    days: int = 30
    step_s: int = 60
    quality_models: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.regions <= len(REGIONS):
            raise ValueError(f"regions must be 1..{len(REGIONS)}, got {self.regions}")
        if not 1 <= self.models <= len(MODELS):
            raise ValueError(f"models must be 1..{len(MODELS)}, got {self.models}")
        if self.arms < 1 or self.days < 1 or self.gpus_per_model < self.arms:
            raise ValueError(f"arms, days >= 1 and gpus_per_model >= arms; got {self}")
        if self.gpus_per_model % self.arms:
            raise ValueError(f"gpus_per_model {self.gpus_per_model} not divisible by arms")
        if 86400 % self.step_s:
            raise ValueError(f"step_s must divide a day (86400 s), got {self.step_s}")

    @property
    def steps_per_day(self) -> int:
        """Steps in one day."""
        return 86400 // self.step_s

    @property
    def gpus_per_arm(self) -> int:
        """GPUs serving one arm of one model in one region."""
        return self.gpus_per_model // self.arms

    def rows_per_region_day(self) -> dict[str, int]:
        """Stored rows per region and day, per table (exact)."""
        t, series = self.steps_per_day, self.models * self.arms
        gpus = self.models * self.gpus_per_model
        quality = min(self.quality_models, self.models) * self.arms
        q_buckets = len(PROMPT_TOKEN_BUCKETS) + 1 + len(SCORE_BUCKETS) + 1
        return {
            "counters": t * (len(COUNTER_SIGNALS) * series + gpus),
            "gauges": t * (2 * series + 2 * gpus),
            "histograms": t * ((len(VLLM_E2E_BUCKETS) + 1) * series + q_buckets * quality),
        }

    def total_rows(self) -> int:
        """Stored rows of the whole fleet."""
        return sum(self.rows_per_region_day().values()) * self.regions * self.days


@dataclass(frozen=True)
class Region:
    """A region: AWS name, display name, coordinates, UTC offset (h), traffic, GPU price."""

    name: str
    display_name: str
    latitude: float
    longitude: float
    utc_offset_h: float
    traffic: float
    usd_per_gpu_hour: float


@dataclass(frozen=True)
class Model:
    """A served model: peak requests per minute per arm, latency, accuracy, tokens."""

    name: str
    peak_rpm: float
    median_latency_s: float
    latency_sigma: float
    accuracy: float
    prompt_tokens: float
    generation_tokens: float


REGIONS: tuple[Region, ...] = (
    Region("us-east-1", "US East (N. Virginia)", 38.95, -77.45, -5, 1.0, 4.10),
    Region("us-west-2", "US West (Oregon)", 45.84, -119.70, -8, 0.7, 4.10),
    Region("eu-west-1", "Europe (Ireland)", 53.35, -6.26, 0, 0.8, 4.45),
    Region("eu-central-1", "Europe (Frankfurt)", 50.11, 8.68, 1, 0.6, 4.60),
    Region("ap-northeast-1", "Asia Pacific (Tokyo)", 35.68, 139.69, 9, 0.6, 4.90),
    Region("ap-south-1", "Asia Pacific (Mumbai)", 19.08, 72.88, 5.5, 0.5, 3.80),
    Region("sa-east-1", "South America (São Paulo)", -23.55, -46.63, -3, 0.4, 5.20),
    Region("us-east-2", "US East (Ohio)", 39.96, -83.00, -5, 0.6, 4.10),
    Region("us-west-1", "US West (N. California)", 37.35, -121.96, -8, 0.4, 4.30),
    Region("ca-central-1", "Canada (Central)", 45.50, -73.57, -5, 0.3, 4.30),
    Region("eu-west-2", "Europe (London)", 51.51, -0.13, 0, 0.6, 4.50),
    Region("eu-west-3", "Europe (Paris)", 48.86, 2.35, 1, 0.4, 4.50),
    Region("eu-north-1", "Europe (Stockholm)", 59.33, 18.07, 1, 0.3, 4.20),
    Region("eu-south-1", "Europe (Milan)", 45.46, 9.19, 1, 0.3, 4.70),
    Region("ap-southeast-1", "Asia Pacific (Singapore)", 1.35, 103.82, 8, 0.5, 4.80),
    Region("ap-southeast-2", "Asia Pacific (Sydney)", -33.87, 151.21, 10, 0.4, 5.00),
    Region("ap-northeast-2", "Asia Pacific (Seoul)", 37.57, 126.98, 9, 0.4, 4.80),
    Region("ap-east-1", "Asia Pacific (Hong Kong)", 22.32, 114.17, 8, 0.3, 5.10),
    Region("me-south-1", "Middle East (Bahrain)", 26.07, 50.56, 3, 0.2, 5.30),
    Region("af-south-1", "Africa (Cape Town)", -33.92, 18.42, 2, 0.2, 5.40),
)
MODELS: tuple[Model, ...] = (
    Model("llama-3.1-70b", 45.0, 2.2, 0.55, 0.860, 420.0, 260.0),
    Model("mistral-7b", 80.0, 0.7, 0.45, 0.780, 300.0, 180.0),
    Model("qwen2.5-32b", 35.0, 1.5, 0.50, 0.830, 380.0, 220.0),
    Model("llama-3.1-8b", 90.0, 0.6, 0.45, 0.760, 280.0, 170.0),
    Model("gemma-2-27b", 40.0, 1.4, 0.50, 0.820, 350.0, 210.0),
    Model("mixtral-8x7b", 50.0, 1.1, 0.50, 0.810, 330.0, 200.0),
    Model("phi-3-medium", 60.0, 0.9, 0.45, 0.790, 300.0, 160.0),
    Model("qwen2.5-7b", 85.0, 0.6, 0.45, 0.770, 290.0, 170.0),
    Model("command-r", 30.0, 1.8, 0.55, 0.840, 500.0, 300.0),
    Model("deepseek-v2-lite", 55.0, 1.0, 0.50, 0.800, 340.0, 190.0),
)
SIZES: dict[str, FleetSize] = {
    "large": FleetSize(regions=20, models=10),
    "small": FleetSize(regions=2, models=10),
}
COUNTER_SIGNALS = ("requests", "errors", "latency_sum", "prompt_tokens", "generation_tokens")
UNITS = {
    "requests": "requests",
    "errors": "requests",
    "latency_sum": "seconds",
    "prompt_tokens": "tokens",
    "generation_tokens": "tokens",
    "energy": "joules",
    "accuracy": "ratio",
    "cost": "usd_per_hour",
    "gpu_utilization": "ratio",
    "gpu_power": "watts",
    "latency": "seconds",
    "prompt_length": "tokens",
    "prediction_score": "score",
}
SIGNALS_OF_TABLE = {
    "counters": [*COUNTER_SIGNALS, "energy"],
    "gauges": ["accuracy", "cost", "gpu_utilization", "gpu_power"],
    "histograms": ["latency", "prompt_length", "prediction_score"],
}


def _strings(values: list[str], index: np.ndarray) -> pa.DictionaryArray:
    """A dictionary-encoded string column: ``values[index[i]]`` for each row."""
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(values))


def _bucket_probs(log_median: np.ndarray, sigma: float, bounds: np.ndarray) -> np.ndarray:
    """P(bound_{k-1} < X <= bound_k) for lognormal X, last bucket to +Inf; shape ``(..., K+1)``.

    ``log_median`` has any shape; the result adds a trailing axis of ``len(bounds) + 1``.
    """
    z = (np.log(bounds) - log_median[..., None]) / sigma
    cdf = ndtr(z)
    ones = np.ones((*cdf.shape[:-1], 1))
    zeros = np.zeros_like(ones)
    return np.clip(np.diff(np.concatenate([zeros, cdf, ones], axis=-1), axis=-1), 0.0, None)


@dataclass
class _Frame:
    """Rows of one table being built: equal-length column arrays, one block per signal."""

    blocks: list[dict[str, Any]]

    def table(self) -> pa.Table:
        parts = [pa.table(b) for b in self.blocks]
        return pa.concat_tables(parts)


class RegionDay:
    """All stored rows of one region and one day (built by :func:`region_day`)."""

    def __init__(self, tables: dict[str, pa.Table], totals: dict[str, float]):
        self.tables = tables
        self.totals = totals


def region_day(size: FleetSize, seed: int, r: int, day: datetime) -> RegionDay:
    """Draw the rows of region ``r`` (index into :data:`REGIONS`) for the UTC ``day``.

    Steps end at ``day + k * step_s`` for ``k = 0 .. steps_per_day - 1`` (all inside
    the date of ``day``, so each partition file is written once).

    Returns:
        the three tables (columns ``signal`` + the store schema's) and ``totals``:
        the exact sum of every counter signal's ``value`` in this region-day.
    """
    region = REGIONS[r]
    models = MODELS[: size.models]
    m_n, a_n, g_n, t_n = size.models, size.arms, size.gpus_per_arm, size.steps_per_day
    rng = np.random.default_rng([seed, r, day.toordinal()])
    step = np.timedelta64(size.step_s, "s")
    ts = np.datetime64(day.replace(tzinfo=None), "us") + np.arange(t_n) * step
    hours = ((ts - ts.astype("datetime64[D]")) / np.timedelta64(1, "h")).astype(np.float64)
    local = (hours + region.utc_offset_h) % 24.0
    weekend = 0.8 if (day + timedelta(hours=region.utc_offset_h)).weekday() >= 5 else 1.0
    load = (0.25 + 0.75 * (0.5 - 0.5 * np.cos(2 * np.pi * (local - 4.0) / 24.0)) ** 1.5) * weekend

    peak = np.array([m.peak_rpm for m in models]) * region.traffic * size.step_s / 60.0
    # rate[t, m, a]: expected requests per step
    rate = load[:, None, None] * peak[None, :, None] * np.ones((1, 1, a_n))
    rate = rate * rng.lognormal(0.0, 0.05, rate.shape)
    capacity = peak[None, :, None] * 1.15
    util = np.clip(rate / capacity, 0.02, 1.0)
    arm_factor = 1.0 + 0.05 * np.arange(a_n)  # later arms 5 % slower (an A/B effect)
    med = np.array([m.median_latency_s for m in models])[None, :, None]
    log_median = np.log(med * (1.0 + 0.25 * util**2) * arm_factor[None, None, :])
    sigma = np.array([m.latency_sigma for m in models])
    bounds = np.asarray(VLLM_E2E_BUCKETS)
    probs = np.stack(
        [_bucket_probs(log_median[:, i, :], float(sigma[i]), bounds) for i in range(m_n)], axis=1
    )  # (t, m, a, K+1)
    counts = rng.poisson(rate[..., None] * probs).astype(np.float64)
    cumulative = np.cumsum(counts, axis=-1)
    requests = cumulative[..., -1]
    errors = rng.binomial(requests.astype(np.int64), ERROR_RATIO).astype(np.float64)
    mean_latency = np.exp(log_median + sigma[None, :, None] ** 2 / 2)
    latency_sum = np.round(requests * mean_latency, 3)
    prompt = np.round(requests * np.array([m.prompt_tokens for m in models])[None, :, None])
    gen = np.round(requests * np.array([m.generation_tokens for m in models])[None, :, None])
    accuracy = np.round(
        np.clip(
            np.array([m.accuracy for m in models])[None, :, None]
            + 0.015 * np.arange(a_n)[None, None, :]
            + rng.normal(0.0, 0.004, rate.shape),
            0.0,
            1.0,
        ),
        5,
    )
    cost = np.broadcast_to(
        (g_n * region.usd_per_gpu_hour + 0.45) * np.ones((1, m_n, a_n)), rate.shape
    )
    gpu_util = np.round(
        np.clip(util[..., None] * rng.normal(1.0, 0.04, (*util.shape, g_n)), 0, 1), 2
    )
    power = np.round(
        (GPU_IDLE_W + gpu_util * (GPU_MAX_W - GPU_IDLE_W)) * rng.normal(1.0, 0.01, gpu_util.shape),
        1,
    )
    energy = np.round(power * size.step_s, 3)

    model_names = [m.name for m in models]
    arm_names = [f"v{i + 1}" for i in range(a_n)]
    grid = np.indices((t_n, m_n, a_n)).reshape(3, -1)  # rows ordered by time, model, arm
    base = {
        "ts_utc": pa.array(ts[grid[0]], pa.timestamp("us")),
        "model": _strings(model_names, grid[1]),
        "arm": _strings(arm_names, grid[2]),
    }
    hosts = [
        f"ip-10-{mi}-{ai}-{g}.{region.name}.compute.internal/{g}"
        for mi in range(m_n)
        for ai in range(a_n)
        for g in range(g_n)
    ]
    nodes = [
        f"ip-10-{mi}-{ai}.{region.name}.compute.internal" for mi in range(m_n) for ai in range(a_n)
    ]
    ggrid = np.indices((t_n, m_n * a_n * g_n)).reshape(2, -1)
    g_model = ggrid[1] // (a_n * g_n)
    g_arm = (ggrid[1] // g_n) % a_n
    gbase = {
        "ts_utc": pa.array(ts[ggrid[0]], pa.timestamp("us")),
        "model": _strings(model_names, g_model),
        "arm": _strings(arm_names, g_arm),
        "instance": _strings(hosts, ggrid[1]),
    }
    n_series, n_gpu_rows = grid.shape[1], ggrid.shape[1]

    def sig(name: str, n: int) -> pa.DictionaryArray:
        return _strings([name], np.zeros(n, dtype=np.int32))

    def unit(name: str, n: int) -> pa.DictionaryArray:
        return _strings([UNITS[name]], np.zeros(n, dtype=np.int32))

    counters: list[dict[str, Any]] = []
    totals: dict[str, float] = {}
    for name, values in zip(
        COUNTER_SIGNALS, (requests, errors, latency_sum, prompt, gen), strict=True
    ):
        flat = values.reshape(-1)
        totals[name] = float(flat.sum())
        counters.append(
            {
                "signal": sig(name, n_series),
                **base,
                "instance": _strings([""], np.zeros(n_series, dtype=np.int32)),
                "value": flat,
                "unit": unit(name, n_series),
            }
        )
    flat_energy = energy.reshape(-1)
    totals["energy"] = float(flat_energy.sum())
    counters.append(
        {"signal": sig("energy", n_gpu_rows), **gbase, "value": flat_energy,
         "unit": unit("energy", n_gpu_rows)}
    )  # fmt: skip

    def gauge(name: str, values: np.ndarray, cols: dict[str, Any], n: int) -> dict[str, Any]:
        flat = values.reshape(-1)
        return {
            "signal": sig(name, n),
            **cols,
            "mean": flat,
            "max": flat,
            "last": flat,
            "samples": np.ones(n, dtype=np.int32),
            "step_s": np.full(n, size.step_s, dtype=np.int32),
            "unit": unit(name, n),
        }

    no_instance = {**base, "instance": _strings([""], np.zeros(n_series, dtype=np.int32))}
    node_idx = grid[1] * a_n + grid[2]
    gauges = [
        gauge("accuracy", accuracy, no_instance, n_series),
        gauge("cost", np.ascontiguousarray(cost), {**base, "instance": _strings(nodes, node_idx)},
              n_series),
        gauge("gpu_utilization", gpu_util, gbase, n_gpu_rows),
        gauge("gpu_power", power, gbase, n_gpu_rows),
    ]  # fmt: skip

    hist = [_histogram("latency", cumulative, base, ts, bounds)]
    q = min(size.quality_models, m_n)
    if q:
        ok = (requests - errors)[:, :q, :]
        qbase = _cut(base, t_n, m_n, a_n, q)
        lscale = np.array([m.prompt_tokens for m in models[:q]])[None, :, None] * np.exp(-0.245)
        lprobs = np.stack(
            [
                _bucket_probs(np.log(lscale[:, i, :]) * np.ones((t_n, a_n)), 0.7,
                              np.asarray(PROMPT_TOKEN_BUCKETS, dtype=np.float64))
                for i in range(q)
            ],
            axis=1,
        )  # fmt: skip
        lcum = np.cumsum(rng.poisson(rate[:, :q, :, None] * lprobs), axis=-1).astype(np.float64)
        hist.append(_histogram("prompt_length", lcum, qbase, ts, np.asarray(PROMPT_TOKEN_BUCKETS)))
        # prediction scores: logit-normal around the model's accuracy (11 buckets)
        sbounds = np.asarray(SCORE_BUCKETS[:-1])  # last bound 1.0 is the +Inf bucket's
        acc_q = accuracy[:, :q, :]
        logit_b = np.log(sbounds / (1 - sbounds))
        z = (logit_b[None, None, None, :] - np.log(acc_q / (1 - acc_q))[..., None]) / 1.2
        cdf = ndtr(z)
        sprobs = np.diff(
            np.concatenate([np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 2))],
                           axis=-1), axis=-1
        )  # fmt: skip  # (t, q, a, 11): buckets up to 0.9, then 1.0 (all), then +Inf (empty)
        scum = np.cumsum(rng.poisson(ok[..., None] * sprobs), axis=-1).astype(np.float64)
        hist.append(_histogram("prediction_score", scum, qbase, ts, np.asarray(SCORE_BUCKETS)))
    tables = {
        "counters": _Frame(counters).table(),
        "gauges": _Frame(gauges).table(),
        "histograms": _Frame(hist).table(),
    }
    return RegionDay(tables, totals)


def _cut(base: dict[str, Any], t_n: int, m_n: int, a_n: int, q: int) -> dict[str, Any]:
    """The ``ts_utc``/``model``/``arm`` columns of ``base`` for the first ``q`` models only."""
    keep = (np.indices((t_n, m_n, a_n))[1] < q).reshape(-1)
    mask = pa.array(keep)
    return {k: v.filter(mask) for k, v in base.items()}


def _histogram(
    name: str, cumulative: np.ndarray, base: dict[str, Any], ts: np.ndarray, bounds: np.ndarray
) -> dict[str, Any]:
    """Rows of one histogram signal: each ``base`` row repeated once per ``le`` bucket.

    ``cumulative`` has shape ``(t, m, a, K+1)`` (requests with value <= bound_k, last
    bucket +Inf), rows of ``base`` are in ``(t, m, a)`` order.
    """
    k = cumulative.shape[-1]
    n = cumulative.size // k
    rep = np.repeat(np.arange(n), k)
    les = np.concatenate([bounds.astype(np.float64), [np.inf]])
    take = pa.array(rep)
    return {
        "signal": _strings([name], np.zeros(n * k, dtype=np.int32)),
        "ts_utc": base["ts_utc"].take(take),
        "model": base["model"].take(take),
        "arm": base["arm"].take(take),
        "le": np.tile(les, n),
        "value": cumulative.reshape(-1),
        "unit": _strings([UNITS[name]], np.zeros(n * k, dtype=np.int32)),
    }


def region_catalogue(size: FleetSize) -> pd.DataFrame:
    """The fleet's regions as the store's region catalogue."""
    chosen = pd.DataFrame(REGIONS[: size.regions])
    return chosen.rename(columns={"name": "region"}).assign(url="synthetic://" + chosen["name"])


@dataclass
class BuildResult:
    """What :func:`build` wrote: rows per table, files, seconds, and the exact totals."""

    rows: dict[str, int]
    files: int
    seconds: float
    totals: dict[str, dict[str, float]]

    @property
    def total_rows(self) -> int:
        """Rows written, all tables."""
        return sum(self.rows.values())


def days_of(size: FleetSize, end: datetime) -> Iterator[datetime]:
    """The UTC days of the history, oldest first; ``end`` is truncated to midnight."""
    last = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for i in range(size.days, 0, -1):
        yield last - timedelta(days=i)


def build(
    root: Path,
    size: FleetSize,
    seed: int = 7,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Generate the fleet into the store at ``root``, day by day, region by region.

    Writes ``fleet_truth.json`` (size, seed, span and the exact per-region totals of
    every counter signal) beside the lake.  The history ends at midnight UTC before
    ``end`` (default: now).

    Raises:
        observatory.store.StoreError: the store cannot be written.
    """
    store = Store(root)
    end = end or datetime.now(UTC)
    began = time.monotonic()
    rows = dict.fromkeys(SIGNALS_OF_TABLE, 0)
    files = 0
    totals: dict[str, dict[str, float]] = {r.name: {} for r in REGIONS[: size.regions]}
    q = min(size.quality_models, size.models)
    days = list(days_of(size, end))
    with store.writer():
        for day in days:
            for r in range(size.regions):
                rd = region_day(size, seed, r, day)
                name = REGIONS[r].name
                for k, v in rd.totals.items():
                    totals[name][k] = totals[name].get(k, 0.0) + v
                lo = day - timedelta(seconds=size.step_s)
                hi = day + timedelta(days=1) - timedelta(seconds=size.step_s)
                for table, frame in rd.tables.items():
                    signals = SIGNALS_OF_TABLE[table]
                    if table == "histograms" and not q:
                        signals = ["latency"]
                    res = store.replace_window(table, name, signals, lo, hi, frame)
                    rows[table] += res.rows
                    files += res.files
            if progress:
                progress(f"{day.date()} done, {sum(rows.values()):,} rows")
        store.write_regions(region_catalogue(size))
        truth = {
            "size": asdict(size),
            "seed": seed,
            "start_utc": (days[0] - timedelta(seconds=size.step_s)).isoformat(),
            "end_utc": (days[-1] + timedelta(days=1) - timedelta(seconds=size.step_s)).isoformat(),
            "rows": rows,
            "totals": totals,
        }
        (root / "fleet_truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
        store.touch_version()
    return BuildResult(rows, files, time.monotonic() - began, totals)


def sized(name: str, **overrides: Any) -> FleetSize:
    """The named size (:data:`SIZES`) with fields overridden (e.g. ``days=1``).

    Raises:
        ValueError: unknown size name or invalid fields.
    """
    if name not in SIZES:
        raise ValueError(f"unknown fleet size {name!r}; known: {', '.join(SIZES)}")
    return replace(SIZES[name], **overrides)

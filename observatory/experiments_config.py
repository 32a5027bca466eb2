"""Experiment definitions: a YAML file, validated strictly, errors that say where.

An experiment compares the arms (the ``arm`` label: a model version or serving
configuration) of one model.  ``examples/experiments.yaml`` is a complete example::

    experiments:
      - name: llama-v2-quantisation
        model: llama-3.1-70b
        arms: [v1, v2]              # at least two
        control: v1                 # default: the first arm
        weights: {v1: 0.5, v2: 0.5} # configured traffic split (SRM); default equal
        start: 2026-11-16T00:00:00Z # default: the first data of the arms
        end: null                   # default: the latest data
        regions: []                 # default: every region with data
        unit: request               # the unit of randomisation: request, session,
                                    # user, tenant or unknown
        primary: accuracy
        guardrails: [error_ratio, latency_p99, slow_ratio, cost_per_1k]
        secondary: [latency_mean, energy_per_request, gco2e_per_1k, tokens_per_joule]
        engine: fixed               # fixed, sequential or bayesian: which one decides
        alpha: 0.05
        correction: holm            # holm, bh or none (across metrics x arms)
        sequential_tuning: 5000     # N* of the confidence sequences, in replicates
        min_replicates: 30          # per arm, before any statistics are shown
        min_requests: 100           # per arm
        latency_slo: 10s            # threshold of slow_ratio
    carbon:                         # optional overrides of analytics/carbon.py
      grid_g_per_kwh: {eu-west-1: 250}
      pue: {eu-west-1: 1.1}
      default_grid_g_per_kwh: 400   # regions found in no table

Experiments can also be discovered from the store: every model with two or more
arms is an experiment named after the model (:func:`discovered`).

Every mistake raises :class:`~observatory.config.ConfigError` with the file, the
line and the key path (``experiments[0].control``), using the same helpers as
:mod:`observatory.config`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analytics.carbon import CarbonModel
from analytics.experiment_metrics import METRICS, AnalysisSettings
from analytics.experiments import Guards
from observatory.config import (
    _NAME_RE,
    ConfigError,
    Duration,
    _LocatedError,
    validate_yaml,
)

Unit = Literal["request", "session", "user", "tenant", "unknown"]
DEFAULT_GUARDRAILS = ("error_ratio", "latency_p99", "slow_ratio", "cost_per_1k")
DEFAULT_SECONDARY = (
    "accuracy",
    "latency_mean",
    "latency_p50",
    "latency_p95",
    "energy_per_request",
    "gco2e_per_1k",
    "tokens_per_joule",
)
#: Environment variable naming the experiments file (the dashboard reads it).
ENV_FILE = "OBSERVATORY_EXPERIMENTS"


def _check_metric(value: str) -> str:
    if value not in METRICS:
        raise ValueError(f"unknown metric {value!r}; known: {', '.join(METRICS)}")
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExperimentSpec(_Strict):
    """One experiment (see the module docstring for every key)."""

    name: str = Field(pattern=_NAME_RE)
    description: str = ""
    model: str = Field(min_length=1)
    arms: list[str] = Field(min_length=2)
    control: str | None = None
    weights: dict[str, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    regions: list[str] = Field(default_factory=list)
    unit: Unit = "request"
    primary: str
    guardrails: list[str] = Field(default_factory=lambda: list(DEFAULT_GUARDRAILS))
    secondary: list[str] = Field(default_factory=lambda: list(DEFAULT_SECONDARY))
    engine: Literal["fixed", "sequential", "bayesian"] = "fixed"
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    correction: Literal["holm", "bh", "none"] = "holm"
    sequential_tuning: int = Field(default=5000, ge=1)
    min_replicates: int = Field(default=30, ge=2)
    min_requests: float = Field(default=100, ge=0)
    latency_slo: Duration = timedelta(seconds=10)

    @field_validator("primary")
    @classmethod
    def _primary(cls, value: str) -> str:
        return _check_metric(value)

    @field_validator("guardrails", "secondary")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        for i, v in enumerate(value):
            try:
                _check_metric(v)
            except ValueError as exc:
                raise _LocatedError(str(exc), i) from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _times(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if len(set(self.arms)) != len(self.arms):
            raise _LocatedError("an arm appears twice", "arms")
        if self.control is not None and self.control not in self.arms:
            raise _LocatedError(f"{self.control!r} is not one of the arms {self.arms}", "control")
        if self.weights is not None:
            if set(self.weights) != set(self.arms):
                raise _LocatedError(
                    f"weights must name exactly the arms {self.arms}, got {sorted(self.weights)}",
                    "weights",
                )
            for arm, w in self.weights.items():
                if not w > 0:
                    raise _LocatedError(f"a weight must be positive, got {w!r}", "weights", arm)
        if self.start and self.end and self.end <= self.start:
            raise _LocatedError("end must be after start", "end")
        return self

    @property
    def control_arm(self) -> str:
        """The control arm (the first arm unless ``control`` is set)."""
        return self.control or self.arms[0]

    @property
    def treatments(self) -> tuple[str, ...]:
        """Every arm but the control, in the order given."""
        return tuple(a for a in self.arms if a != self.control_arm)

    def settings(self) -> AnalysisSettings:
        """The analysis settings of this experiment."""
        guard = [g for g in self.guardrails if g != self.primary]
        secondary = [s for s in self.secondary if s != self.primary and s not in guard]
        return AnalysisSettings(
            control=self.control_arm,
            treatments=self.treatments,
            primary=self.primary,
            guardrails=tuple(guard),
            secondary=tuple(secondary),
            weights=dict(self.weights or {}),
            engine=self.engine,
            alpha=self.alpha,
            correction=self.correction,
            tuning=float(self.sequential_tuning),
            guards=Guards(min_units=self.min_replicates, min_observations=self.min_requests),
            latency_slo_seconds=self.latency_slo.total_seconds(),
        )


class CarbonSpec(_Strict):
    """Overrides of the published grid factors (g CO2e/kWh) and PUEs, per region."""

    grid_g_per_kwh: dict[str, float] = Field(default_factory=dict)
    pue: dict[str, float] = Field(default_factory=dict)
    default_grid_g_per_kwh: float | None = Field(default=None, ge=0)

    @field_validator("grid_g_per_kwh")
    @classmethod
    def _grid(cls, value: dict[str, float]) -> dict[str, float]:
        for region, g in value.items():
            if g < 0:
                raise _LocatedError(f"a grid factor cannot be negative, got {g!r}", region)
        return value

    @field_validator("pue")
    @classmethod
    def _pue(cls, value: dict[str, float]) -> dict[str, float]:
        for region, p in value.items():
            if p < 1:
                raise _LocatedError(f"a PUE is at least 1, got {p!r}", region)
        return value

    def model(self) -> CarbonModel:
        """The carbon model with these overrides."""
        return CarbonModel(
            grid_overrides=dict(self.grid_g_per_kwh),
            pue_overrides=dict(self.pue),
            default_grid=self.default_grid_g_per_kwh,
        )


class ExperimentsFile(_Strict):
    """The whole experiments file."""

    experiments: list[ExperimentSpec] = Field(default_factory=list)
    carbon: CarbonSpec = Field(default_factory=CarbonSpec)

    @model_validator(mode="after")
    def _unique(self) -> ExperimentsFile:
        seen: set[str] = set()
        for i, e in enumerate(self.experiments):
            if e.name in seen:
                raise _LocatedError(
                    f"experiment name {e.name!r} appears twice", "experiments", i, "name"
                )
            seen.add(e.name)
        return self


@dataclass(frozen=True)
class Experiments:
    """Loaded experiment definitions and where they came from (None: discovered only)."""

    file: ExperimentsFile
    path: Path | None

    def get(self, name: str) -> ExperimentSpec | None:
        """The experiment called ``name``, or None."""
        return next((e for e in self.file.experiments if e.name == name), None)

    @property
    def carbon(self) -> CarbonModel:
        """The carbon model (published tables plus this file's overrides)."""
        return self.file.carbon.model()


def parse_experiments(
    text: str, source: str = "<experiments>", path: Path | None = None
) -> Experiments:
    """Validate experiments YAML text.

    Raises:
        ConfigError: YAML syntax errors, unknown keys, wrong types, unknown metrics,
            inconsistent arms; each message names ``source``, the line and the key path.
    """
    parsed = validate_yaml(text, ExperimentsFile, source, "examples/experiments.yaml")
    if parsed is None:
        return Experiments(ExperimentsFile(), path)
    return Experiments(parsed, path)


def load_experiments(path: str | os.PathLike[str]) -> Experiments:
    """Read and validate the experiments file at ``path``.

    Raises:
        ConfigError: the file is missing, unreadable or invalid.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the experiments file: {exc.strerror}"]) from None
    return parse_experiments(text, source=str(file), path=file.resolve())


def discovered(arms: Any, has_accuracy: set[str] | None = None) -> list[ExperimentSpec]:
    """Experiments discovered from the arm label: one per model with two or more arms.

    Args:
        arms: rows with ``model`` and ``arm`` (``sql/queries/experiment_arms.sql``).
        has_accuracy: models with an accuracy signal (their primary metric is
            accuracy; the others' is the error ratio).

    The experiment is named after the model; arms sorted, the first is the control,
    equal weights, the unit of randomisation unknown.
    """
    by_model: dict[str, list[str]] = {}
    for model, arm in zip(arms["model"], arms["arm"], strict=True):
        by_model.setdefault(str(model), []).append(str(arm))
    out = []
    for model, names in sorted(by_model.items()):
        names = sorted(set(names))
        if len(names) < 2:
            continue
        primary = "accuracy" if has_accuracy is None or model in has_accuracy else "error_ratio"
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", model).lstrip("_.-")[:63] or "experiment"
        out.append(
            ExperimentSpec(
                name=name,
                description=f"discovered from the arm label of {model}",
                model=model,
                arms=names,
                unit="unknown",
                primary=primary,
            )
        )
    return out

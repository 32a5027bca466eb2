"""SLO specifications: OpenSLO v1 and Sloth ``prometheus/v1`` files, validated strictly.

Both formats are read into one normalised form, :class:`SloDefinition`, which the
SLO engine (:mod:`observatory.slo_engine`) computes over the store.

OpenSLO v1 (https://github.com/OpenSLO/OpenSLO): kinds ``SLO``, ``SLI``,
``Service``, ``DataSource``, ``AlertPolicy``, ``AlertCondition`` and
``AlertNotificationTarget``, one per YAML document (or a list of them in one
document).  ``ratioMetric`` good/total, bad/total or raw; ``thresholdMetric``;
exactly one rolling or calendar ``timeWindow``; ``budgetingMethod`` Occurrences,
Timeslices or RatioTimeslices; ``target`` in [0, 1) or ``targetPercent`` in [0, 100).

Sloth (https://sloth.dev, ``version: prometheus/v1``): ``service``, ``labels``,
``slos[]`` with ``objective`` in (0, 100] percent, ``sli.events`` (error/total
queries with ``{{.window}}``) or ``sli.raw.error_ratio_query``, and ``alerting``.
Sloth has no period: 30 days, Sloth's default.  A 100 % objective is accepted and
reported as "no error budget".

Metric sources.  An SLI names canonical signals (``collectors/signals.py``):

- ``type: Observatory`` with ``spec: {signal: errors, where: {model: mistral-7b}}``;
  histogram signals take ``threshold`` (count of observations <= threshold, in the
  signal's unit; exact at a bucket bound, interpolated and flagged approximate
  otherwise) and, in a ``thresholdMetric``, ``quantile`` (a percentile objective);
  gauges take ``stat`` (mean, max or last of each step); a budget's total is
  ``{allowance: 9000, per: 30d}`` in the bad signal's unit (USD for ``cost``,
  which is integrated from USD per hour; joules for ``energy``).
- ``type: Prometheus`` with ``spec: {query: <PromQL>}``, or a Sloth query: a
  ``sum(rate(<selector>[w]))`` (or ``increase``, optionally ``by (...)``) whose
  selector is one that a collector preset fetches (``vllm:request_success_total
  {finished_reason="error"}`` is ``errors``), or a canonical signal name.  Label
  matchers on model, arm and region filter; a bucket's ``le`` is a threshold.

Observatory settings ride in OpenSLO ``metadata.annotations`` (reserved for
implementation metadata):

- ``observatory/group-by``: comma list of region, model, arm (default ``region``;
  ``""`` for the global SLO only).  Every SLO also has a global roll-up, computed
  by adding events, never by averaging ratios.
- ``observatory/min-events``: the minimum-events guard of each window (default 0).
- ``observatory/maintenance``: ``start/end`` ISO 8601 UTC intervals, comma
  separated; steps inside are excluded from numerator and denominator.

Every error names the file, the line, the document, the field path and what was
expected, e.g. ``slo.yaml:14: document 2 (SLO api-availability):
spec.objectives[0].target: expected a number in [0, 1), got 1.2``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from analytics import slo as slomath
from collectors.presets import PRESETS
from collectors.selector import parse_selector
from collectors.signals import SIGNALS
from observatory.yaml_lines import (
    TextTimestampLoader,
    format_loc,
    line_index,
    nearest_line,
    yaml_error,
)

DEFAULT_PERIOD = timedelta(days=30)
GROUP_DIMS = ("region", "model", "arm")
ANNOTATION_PREFIX = "observatory/"


# ---------------------------------------------------------------- errors
class SpecError(ValueError):
    """One or more mistakes in SLO spec files; each message says where and what."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("\n".join(messages))


class _Located(ValueError):
    """A check's error that belongs to a field below the model (``loc``)."""

    def __init__(self, message: str, *loc: str | int):
        super().__init__(message)
        self.loc = loc


# ---------------------------------------------------------------- durations
_SHORTHAND = re.compile(r"^([1-9][0-9]*)([mhdwMQY])$")
_FIXED = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_shorthand(value: Any, calendar_ok: bool = False) -> str:
    """Validate an OpenSLO duration-shorthand (``5m``, ``6h``, ``28d``, ``1M``) and return it.

    Months, quarters and years (M, Q, Y) only where ``calendar_ok``.

    Raises:
        ValueError: not a positive integer followed by m, h, d, w (or M, Q, Y).
    """
    units = "m, h, d, w, M, Q or Y" if calendar_ok else "m, h, d or w"
    if not isinstance(value, str) or not _SHORTHAND.match(value):
        raise ValueError(
            f"expected a duration such as 5m, 6h or 28d (units {units}), got {value!r}"
        )
    if value[-1] in "MQY" and not calendar_ok:
        raise ValueError(f"{value!r}: months, quarters and years need a calendar window")
    return value


def shorthand_seconds(value: str) -> float:
    """Seconds of a fixed-length shorthand (``m``, ``h``, ``d``, ``w``)."""
    m = _SHORTHAND.match(value)
    if not m or m.group(2) not in _FIXED:
        raise ValueError(f"{value!r} has no fixed length")
    return int(m.group(1)) * _FIXED[m.group(2)]


def _td(value: str) -> timedelta:
    return timedelta(seconds=shorthand_seconds(value))


def _minutes_or_shorthand(value: Any) -> str:
    """``timeSliceWindow``: a number (minutes) or a duration-shorthand."""
    if isinstance(value, bool):
        raise ValueError("expected a number of minutes or a duration such as 1m or 5m")
    if isinstance(value, int | float):
        if value <= 0 or value != int(value):
            raise ValueError(f"expected a positive whole number of minutes, got {value!r}")
        return f"{int(value)}m"
    return parse_shorthand(value)


def _interval(lo: float, hi: float, lo_closed: bool, hi_closed: bool) -> AfterValidator:
    """A validator for a number in an interval, whose error shows the interval."""
    text = f"{'[' if lo_closed else '('}{lo:g}, {hi:g}{']' if hi_closed else ')'}"

    def check(v: float) -> float:
        ok_lo = v >= lo if lo_closed else v > lo
        ok_hi = v <= hi if hi_closed else v < hi
        if not (ok_lo and ok_hi) or math.isnan(v):
            raise ValueError(f"expected a number in {text}, got {v!r}")
        return v

    return AfterValidator(check)


Shorthand = Annotated[str, BeforeValidator(parse_shorthand)]
SliceWindow = Annotated[str, BeforeValidator(_minutes_or_shorthand)]


# ---------------------------------------------------------------- OpenSLO models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
Description = Annotated[str, Field(max_length=1050)]


class Metadata(_Strict):
    """``metadata``: a DNS-label-like name, display name, labels and annotations."""

    name: str = Field(pattern=_NAME)
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class MetricSource(_Strict):
    """``metricSource``: a type (or a DataSource reference) and a free-form spec."""

    metricSourceRef: str | None = None
    type: str | None = None
    spec: dict[str, Any]

    @model_validator(mode="after")
    def _typed(self) -> MetricSource:
        if self.type is None and self.metricSourceRef is None:
            raise ValueError("give type (Observatory or Prometheus) or metricSourceRef")
        return self


class Metric(_Strict):
    """A metric: ``{metricSource: ...}``."""

    metricSource: MetricSource


class RatioMetric(_Strict):
    """``ratioMetric``: good/total, bad/total, or raw with rawType."""

    counter: bool | None = None
    good: Metric | None = None
    bad: Metric | None = None
    total: Metric | None = None
    rawType: Literal["success", "failure"] | None = None
    raw: Metric | None = None

    @model_validator(mode="after")
    def _shape(self) -> RatioMetric:
        if self.raw is not None:
            if self.good or self.bad or self.total:
                raise ValueError("raw cannot be used together with good, bad or total")
            if self.rawType is None:
                raise _Located("required with raw (success or failure)", "rawType")
            return self
        if self.rawType is not None:
            raise _Located("only allowed with raw", "rawType")
        if self.good is not None and self.bad is not None:
            raise ValueError("give good or bad, not both")
        if self.good is None and self.bad is None:
            raise ValueError("expected good and total, bad and total, or raw")
        if self.total is None:
            raise _Located("required with good or bad", "total")
        return self


class SLISpec(_Strict):
    """An SLI: exactly one of ``thresholdMetric`` and ``ratioMetric``."""

    description: Description | None = None
    thresholdMetric: Metric | None = None
    ratioMetric: RatioMetric | None = None

    @model_validator(mode="after")
    def _one(self) -> SLISpec:
        if (self.thresholdMetric is None) == (self.ratioMetric is None):
            raise ValueError("expected exactly one of thresholdMetric and ratioMetric")
        return self


class InlineSLI(_Strict):
    """An SLI written inside an SLO (``indicator``)."""

    metadata: Metadata
    spec: SLISpec


class Calendar(_Strict):
    """``calendar``: where periods start (local wall time) and in which time zone."""

    startTime: str
    timeZone: str

    @field_validator("startTime", mode="before")
    @classmethod
    def _start(cls, value: Any) -> str:
        if isinstance(value, datetime):
            value = value.strftime("%Y-%m-%d %H:%M:%S")
        if not isinstance(value, str) or not re.match(
            r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", value
        ):
            raise ValueError(f"expected a time such as 2024-01-01 00:00:00, got {value!r}")
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        return value

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA time zone such as Europe/Berlin, got {value!r}"
            ) from None
        return value


class TimeWindow(_Strict):
    """One time window: rolling (``isRolling: true``) or calendar-aligned."""

    duration: str
    isRolling: bool | None = None
    calendar: Calendar | None = None

    @model_validator(mode="after")
    def _kind(self) -> TimeWindow:
        rolling = self.isRolling if self.isRolling is not None else self.calendar is None
        if rolling and self.calendar is not None:
            raise _Located("a rolling window has no calendar", "calendar")
        if not rolling and self.calendar is None:
            raise _Located(
                "a calendar-aligned window (isRolling: false) needs calendar", "calendar"
            )
        try:
            parse_shorthand(self.duration, calendar_ok=not rolling)
        except ValueError as exc:
            raise _Located(str(exc), "duration") from None
        return self

    @property
    def rolling(self) -> bool:
        """True for a rolling window."""
        return self.calendar is None


class Objective(_Strict):
    """One objective (threshold) of an SLO."""

    displayName: str | None = None
    op: Literal["lte", "gte", "lt", "gt"] | None = None
    value: float | None = None
    target: Annotated[float, _interval(0, 1, True, False)] | None = None
    targetPercent: Annotated[float, _interval(0, 100, True, False)] | None = None
    timeSliceTarget: Annotated[float, _interval(0, 1, False, True)] | None = None
    timeSliceWindow: SliceWindow | None = None

    @model_validator(mode="after")
    def _target(self) -> Objective:
        if (self.target is None) == (self.targetPercent is None):
            raise ValueError("expected exactly one of target and targetPercent")
        return self

    @property
    def fraction(self) -> float:
        """The target as a fraction."""
        return self.target if self.target is not None else float(self.targetPercent or 0) / 100


class ConditionRef(_Strict):
    """``conditionRef``: the name of an AlertCondition."""

    conditionRef: str


class BurnRateCondition(_Strict):
    """``condition`` of kind burnrate: burn rate over ``lookbackWindow`` above ``threshold``."""

    kind: Literal["burnrate"] = "burnrate"
    op: Literal["gt", "gte"] | None = None
    threshold: float = Field(gt=0)
    lookbackWindow: Shorthand
    alertAfter: Annotated[str, BeforeValidator(lambda v: "0m" if v in ("0m", 0, "0") else v)] = "0m"

    @field_validator("alertAfter")
    @classmethod
    def _after(cls, value: str) -> str:
        return value if value == "0m" else parse_shorthand(value)


class AlertConditionSpec(_Strict):
    """An AlertCondition's spec."""

    description: Description | None = None
    severity: str
    condition: BurnRateCondition


class InlineCondition(_Strict):
    """An AlertCondition written inside an AlertPolicy."""

    kind: Literal["AlertCondition"]
    metadata: Metadata
    spec: AlertConditionSpec


class TargetRef(_Strict):
    """``targetRef``: the name of an AlertNotificationTarget."""

    targetRef: str


class NotificationTargetSpec(_Strict):
    """An AlertNotificationTarget's spec."""

    target: str
    description: Description | None = None


class InlineTarget(_Strict):
    """An AlertNotificationTarget written inside an AlertPolicy."""

    kind: Literal["AlertNotificationTarget"]
    metadata: Metadata
    spec: NotificationTargetSpec


class AlertPolicySpec(_Strict):
    """An AlertPolicy's spec: exactly one condition (as the specification requires)."""

    description: Description | None = None
    alertWhenNoData: bool = False
    alertWhenResolved: bool = False
    alertWhenBreaching: bool = True
    conditions: list[ConditionRef | InlineCondition] = Field(min_length=1, max_length=1)
    notificationTargets: list[TargetRef | InlineTarget] = Field(default_factory=list)


class AlertPolicyRef(_Strict):
    """``alertPolicyRef``: the name of an AlertPolicy."""

    alertPolicyRef: str


class InlineAlertPolicy(_Strict):
    """An AlertPolicy written inside an SLO."""

    kind: Literal["AlertPolicy"]
    metadata: Metadata
    spec: AlertPolicySpec


class SLOSpec(_Strict):
    """An SLO's spec."""

    description: Description | None = None
    service: str
    indicator: InlineSLI | None = None
    indicatorRef: str | None = None
    timeWindow: list[TimeWindow] = Field(min_length=1, max_length=1)
    budgetingMethod: Literal["Occurrences", "Timeslices", "RatioTimeslices"]
    objectives: list[Objective] = Field(min_length=1)
    alertPolicies: list[AlertPolicyRef | InlineAlertPolicy] = Field(default_factory=list)

    @model_validator(mode="after")
    def _checks(self) -> SLOSpec:
        if (self.indicator is None) == (self.indicatorRef is None):
            raise ValueError("expected exactly one of indicator and indicatorRef")
        for i, obj in enumerate(self.objectives):
            if self.budgetingMethod == "Timeslices":
                if obj.timeSliceTarget is None:
                    raise _Located(
                        "required with budgetingMethod Timeslices",
                        "objectives",
                        i,
                        "timeSliceTarget",
                    )
                if obj.timeSliceWindow is None:
                    raise _Located(
                        "required with budgetingMethod Timeslices",
                        "objectives",
                        i,
                        "timeSliceWindow",
                    )
            elif self.budgetingMethod == "RatioTimeslices":
                if obj.timeSliceWindow is None:
                    raise _Located(
                        "required with budgetingMethod RatioTimeslices",
                        "objectives",
                        i,
                        "timeSliceWindow",
                    )
                if obj.timeSliceTarget is not None:
                    raise _Located(
                        "only used with budgetingMethod Timeslices",
                        "objectives",
                        i,
                        "timeSliceTarget",
                    )
            else:
                for key in ("timeSliceTarget", "timeSliceWindow"):
                    if getattr(obj, key) is not None:
                        raise _Located(
                            "not used with budgetingMethod Occurrences", "objectives", i, key
                        )
        return self


class ServiceSpec(_Strict):
    """A Service's spec."""

    description: Description | None = None


class DataSourceSpec(_Strict):
    """A DataSource's spec."""

    description: Description | None = None
    type: str
    connectionDetails: dict[str, Any] = Field(default_factory=dict)


_KIND_SPECS: dict[str, type[_Strict]] = {
    "SLO": SLOSpec,
    "SLI": SLISpec,
    "Service": ServiceSpec,
    "DataSource": DataSourceSpec,
    "AlertPolicy": AlertPolicySpec,
    "AlertCondition": AlertConditionSpec,
    "AlertNotificationTarget": NotificationTargetSpec,
}


class Document(_Strict):
    """The envelope every OpenSLO document shares."""

    apiVersion: Literal["openslo/v1"]
    kind: Literal[
        "SLO",
        "SLI",
        "Service",
        "DataSource",
        "AlertPolicy",
        "AlertCondition",
        "AlertNotificationTarget",
    ]
    metadata: Metadata
    spec: dict[str, Any]


# ---------------------------------------------------------------- Observatory metric source
class ObservatorySource(_Strict):
    """``metricSource.spec`` of ``type: Observatory``: a canonical signal."""

    signal: str | None = None
    where: dict[Literal["region", "model", "arm"], str | list[str]] = Field(default_factory=dict)
    threshold: float | None = Field(default=None, gt=0)
    quantile: Annotated[float, _interval(0, 1, False, False)] | None = None
    stat: Literal["mean", "max", "last"] | None = None
    allowance: float | None = Field(default=None, gt=0)
    per: Shorthand | None = None

    @model_validator(mode="after")
    def _shape(self) -> ObservatorySource:
        if self.allowance is not None or self.per is not None:
            if self.allowance is None or self.per is None:
                raise ValueError("an allowance needs both allowance and per (e.g. per: 30d)")
            if self.signal is not None:
                raise _Located("an allowance has no signal", "signal")
            return self
        if self.signal is None:
            raise _Located("required: a canonical signal such as errors or requests", "signal")
        if self.signal not in SIGNALS:
            raise _Located(
                f"unknown signal {self.signal!r}; known: {', '.join(sorted(SIGNALS))}", "signal"
            )
        kind = SIGNALS[self.signal].kind
        if kind != "histogram":
            for key in ("threshold", "quantile"):
                if getattr(self, key) is not None:
                    raise _Located(f"only for histogram signals; {self.signal} is a {kind}", key)
        if kind != "gauge" and self.stat is not None:
            raise _Located(f"only for gauge signals; {self.signal} is a {kind}", "stat")
        return self


# ---------------------------------------------------------------- normalised form
@dataclass(frozen=True)
class SignalRef:
    """A canonical signal with filters.

    Attributes:
        signal: canonical signal name.
        where: ``((dim, (values...)), ...)`` filters on region, model, arm.
        threshold: histograms: count observations <= threshold (signal unit).
        quantile: histograms in a threshold metric: the percentile (0.99).
        stat: gauges: which per-step aggregate (mean, max, last).
    """

    signal: str
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    threshold: float | None = None
    quantile: float | None = None
    stat: str = "mean"

    @property
    def kind(self) -> str:
        """counter, gauge or histogram."""
        return SIGNALS[self.signal].kind

    def filters(self) -> dict[str, list[str] | None]:
        """``{"region": [...] or None, "model": ..., "arm": ...}``."""
        d = dict(self.where)
        return {dim: list(d[dim]) if dim in d else None for dim in GROUP_DIMS}


@dataclass(frozen=True)
class Indicator:
    """What an SLO measures, normalised.

    ``kind``:
      - ``ratio``: counter events; ``numerator`` good or bad (``numerator_is_bad``)
        over ``total``.
      - ``latency``: histogram events; good (or bad) = observations <= threshold,
        total = all observations of the same histogram.
      - ``percentile``: histogram; a slice is good when its ``quantile`` is
        ``op value`` (Timeslices).
      - ``gauge``: gauge data points (one per instance and step), good when
        ``stat op value``.
      - ``raw``: a gauge holding a precomputed ratio (``raw_type`` success or failure).
      - ``budget``: spend of ``numerator`` (a counter, or a rate gauge integrated
        over time) against ``allowance`` per ``allowance_per``.
    """

    kind: Literal["ratio", "latency", "percentile", "gauge", "raw", "budget"]
    numerator: SignalRef | None = None
    numerator_is_bad: bool = True
    total: SignalRef | None = None
    op: str | None = None
    value: float | None = None
    raw_type: str | None = None
    allowance: float | None = None
    allowance_per: timedelta | None = None
    promql: tuple[str, str] | None = None  # (error or good query, total query) as written

    @property
    def signal(self) -> SignalRef:
        """The signal that decides the data's presence (total, else numerator)."""
        ref = self.total or self.numerator
        assert ref is not None
        return ref


@dataclass(frozen=True)
class CalendarWindow:
    """A calendar-aligned period: ``duration`` (``1M``) from ``start`` (local) in ``tz``."""

    duration: str
    start: datetime
    tz: str


@dataclass(frozen=True)
class SloDefinition:
    """One SLO (one objective of a spec), ready for the engine.

    Attributes:
        name: unique name (``<slo>`` or ``<slo>.<objective>`` for several objectives).
        display_name, service, description: for people.
        source: ``file:line (document n)`` it came from.
        indicator: what is measured.
        target: T as a fraction; 1.0 means no error budget.
        method: Occurrences, Timeslices or RatioTimeslices.
        slice_window: the time slice (1 minute for Occurrences).
        slice_target: Timeslices: a slice is good when its SLI >= this.
        period: the SLO period (rolling window length, or the calendar period's
            nominal length: 30 d for 1M).
        calendar: set for calendar-aligned windows.
        group_by: dimensions of the per-group SLOs (plus the global roll-up).
        tiers: multiwindow multi-burn-rate alert tiers.
        min_events: minimum events (slices for Timeslices) per window.
        maintenance: excluded ``(start, end]`` intervals, UTC naive.
        labels: labels for exported rules.
        alert_name: Sloth alerting name (exported alerts), or None.
        page_alert, ticket_alert: whether to export those alerts.
        format: ``openslo`` or ``sloth``.
    """

    name: str
    display_name: str
    service: str
    description: str
    source: str
    indicator: Indicator
    target: float
    method: str = "Occurrences"
    slice_window: timedelta = timedelta(minutes=1)
    slice_target: float | None = None
    period: timedelta = DEFAULT_PERIOD
    calendar: CalendarWindow | None = None
    group_by: tuple[str, ...] = ("region",)
    tiers: tuple[slomath.AlertTier, ...] = ()
    min_events: float = 0.0
    maintenance: tuple[tuple[datetime, datetime], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    alert_name: str | None = None
    page_alert: bool = True
    ticket_alert: bool = True
    format: str = "openslo"

    @property
    def has_budget(self) -> bool:
        """False for a 100 % target."""
        return slomath.error_budget_fraction(self.target) > 0

    @property
    def windows(self) -> dict[str, timedelta]:
        """Burn-rate windows: Sloth's seven plus those the tiers need."""
        out = dict(slomath.BURN_WINDOWS)
        for t in self.tiers:
            out.setdefault(slomath.window_name(t.short), t.short)
            out.setdefault(slomath.window_name(t.long), t.long)
        return dict(sorted(out.items(), key=lambda kv: kv[1]))


# ---------------------------------------------------------------- YAML with lines
def _fmt_loc(loc: Sequence[Any]) -> str:
    return format_loc(loc, empty="(document)")


@dataclass
class _Doc:
    """One YAML document (or list item) with where it came from."""

    data: Any
    file: str
    index: str
    lines: dict[tuple[Any, ...], int]
    base: tuple[Any, ...] = ()

    def where(self, loc: Sequence[Any] = ()) -> str:
        line = nearest_line(self.lines, (*self.base, *loc))
        head = f"{self.file}:{line}" if line else self.file
        what = ""
        if isinstance(self.data, dict):
            kind = self.data.get("kind") or ("Sloth spec" if "slos" in self.data else None)
            name = (
                (self.data.get("metadata") or {}).get("name")
                if isinstance(self.data.get("metadata"), dict)
                else self.data.get("service")
            )
            what = f" ({kind} {name})" if kind and name else (f" ({kind})" if kind else "")
        return f"{head}: document {self.index}{what}"


def _pydantic_messages(doc: _Doc, exc: ValidationError, prefix: tuple[Any, ...]) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS))
        )
        ctx_err = (err.get("ctx") or {}).get("error")
        loc += getattr(ctx_err, "loc", ())
        full = (*prefix, *loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling against the specification)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}"
        elif err["type"] in ("less_than", "greater_than_equal", "greater_than", "less_than_equal"):
            msg = f"expected a number {_bounds(err)}, got {err.get('input')!r}"
        elif err["type"] not in ("value_error", "assertion_error") and not isinstance(
            err.get("input"), dict | list
        ):
            msg = f"{msg}, got {err.get('input')!r}"
        out.append(f"{doc.where(full)}: {_fmt_loc(full)}: {msg}")
    return out


_UNION_TAGS = {
    "ConditionRef",
    "InlineCondition",
    "TargetRef",
    "InlineTarget",
    "AlertPolicyRef",
    "InlineAlertPolicy",
    "str",
    "list[str]",
}


def _bounds(err: Any) -> str:
    ctx = err.get("ctx") or {}
    if "ge" in ctx and "lt" in ctx:
        return f"in [{ctx['ge']}, {ctx['lt']})"
    names = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return " and ".join(f"{names[k]} {v}" for k, v in ctx.items() if k in names)


def _fail(doc: _Doc, loc: tuple[Any, ...], message: str) -> SpecError:
    """A :class:`SpecError` for the field at ``loc`` of ``doc``."""
    return SpecError([f"{doc.where(loc)}: {_fmt_loc(loc)}: {message}"])


def _validate(model: type[_Strict], data: Any, doc: _Doc, prefix: tuple[Any, ...]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_pydantic_messages(doc, exc, prefix)) from None


def _read_docs(path: Path) -> list[_Doc]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    try:
        nodes = list(yaml.compose_all(text, Loader=TextTimestampLoader))
        datas = list(yaml.load_all(text, Loader=TextTimestampLoader))
    except yaml.YAMLError as exc:
        raise SpecError([yaml_error(exc, str(path))]) from None
    docs: list[_Doc] = []
    for i, (node, data) in enumerate(zip(nodes, datas, strict=True), start=1):
        if data is None:
            continue
        lines = line_index(node)
        if isinstance(data, list):
            for j, item in enumerate(data):
                docs.append(_Doc(item, str(path), f"{i}[{j}]", lines, (j,)))
        else:
            docs.append(_Doc(data, str(path), str(i), lines))
    return docs


# ---------------------------------------------------------------- PromQL -> signal
_PROMQL_SEL = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^{}]*\})?\s*\[[^\]]*\]")
_PROMQL_SHAPE = re.compile(
    r"^\s*(?:sum\s*(?:(?:by|without)\s*\([\w\s,]*\)\s*)?\(\s*)?(?:rate|increase)\s*\(\s*@\s*\)"
    r"\s*\)?\s*(?:(?:by|without)\s*\([\w\s,]*\))?\s*$"
)
_BY = re.compile(r"\bby\s*\(([\w\s,]*)\)")
_MODEL_LABELS = ("model_name", "model")
_ARM_LABELS = ("version", "model_version", "arm")


def _selectors_of(signal: str) -> list[tuple[str, tuple[tuple[str, str, str], ...]]]:
    out = []
    for preset in PRESETS.values():
        for m in preset:
            if m.signal == signal:
                try:
                    sel = parse_selector(m.selector)
                except ValueError:
                    continue  # a preset that fetches a PromQL expression, not a selector
                out.append((sel.name, sel.matchers))
    return out


def promql_to_signal(query: str) -> tuple[SignalRef, tuple[str, ...] | None]:
    """Map a ``sum(rate(<selector>[w]))``-shaped PromQL query onto a canonical signal.

    Returns ``(signal reference, by-labels or None)``.  The selector's metric must be
    one a collector preset fetches (or a canonical signal name); the preset's own
    matchers must all be present; left-over ``=``/``=~`` matchers on model, arm and
    region labels become filters; ``le`` on a histogram's ``_bucket`` becomes the
    threshold; a histogram's ``_count`` is its total.

    Raises:
        ValueError: any other shape or label (the message says what is supported).
    """
    sels = list(_PROMQL_SEL.finditer(query))
    if len(sels) != 1:
        raise ValueError(
            "expected one range selector in a query shaped sum(rate(<metric>{...}[{{.window}}])), "
            f"found {len(sels)}"
        )
    shape = query[: sels[0].start()] + "@" + query[sels[0].end() :]
    if not _PROMQL_SHAPE.match(shape):
        raise ValueError(
            "expected sum(rate(<metric>{...}[{{.window}}])) or sum(increase(...)), optionally with "
            "by (...); other PromQL cannot be mapped onto stored signals"
        )
    by = _BY.search(query)
    by_labels = tuple(x.strip() for x in by.group(1).split(",") if x.strip()) if by else None
    sel = parse_selector(sels[0].group(1) + (sels[0].group(2) or ""))
    name, matchers = sel.name, list(sel.matchers)
    threshold: float | None = None
    signal: str | None = None
    if name in SIGNALS:
        signal = name
    else:
        base = name
        if name.endswith("_count"):
            base = name[: -len("_count")] + "_bucket"
        best = -1
        used: tuple[tuple[str, str, str], ...] = ()
        for sig in SIGNALS:
            for mname, mmatchers in _selectors_of(sig):
                if (
                    mname == base
                    and all(m in matchers for m in mmatchers)
                    and len(mmatchers) > best
                ):
                    signal, best = sig, len(mmatchers)
                    used = mmatchers
        if signal is None:
            raise ValueError(
                f"metric {name!r} is not fetched by any collector preset; use a canonical signal "
                f"({', '.join(sorted(SIGNALS))}) or a preset's metric"
            )
        matchers = [m for m in matchers if m not in used]
    where: dict[str, tuple[str, ...]] = {}
    for label, op, value in matchers:
        if label == "le" and op == "=" and SIGNALS[signal].kind == "histogram":
            threshold = math.inf if value in ("+Inf", "Inf", "inf") else float(value)
            continue
        dim = (
            "model"
            if label in _MODEL_LABELS
            else "arm"
            if label in _ARM_LABELS
            else "region"
            if label == "region"
            else None
        )
        if dim is None:
            raise ValueError(
                f"label {label!r} cannot be filtered: the store keeps region, model and arm only"
            )
        if op == "=":
            where[dim] = (value,)
        elif op == "=~" and re.fullmatch(r"[\w.\-]+(\|[\w.\-]+)*", value):
            where[dim] = tuple(value.split("|"))
        else:
            raise ValueError(f"matcher {label}{op}{value!r}: only = and =~ with a|b alternatives")
    if threshold is not None and math.isinf(threshold):
        threshold = None
    return SignalRef(signal, tuple(sorted(where.items())), threshold), by_labels


# ---------------------------------------------------------------- resolution
@dataclass
class _Catalogue:
    docs: dict[str, dict[str, tuple[_Doc, Any]]] = field(default_factory=dict)

    def add(self, kind: str, name: str, doc: _Doc, spec: Any, errors: list[str]) -> None:
        bucket = self.docs.setdefault(kind, {})
        if name in bucket:
            first = bucket[name][0].where()
            errors.append(
                _fail(
                    doc,
                    ("metadata", "name"),
                    f"{kind} {name!r} is defined twice (first in {first})",
                ).messages[0]
            )
            return
        bucket[name] = (doc, spec)

    def get(self, kind: str, name: str) -> tuple[_Doc, Any] | None:
        return self.docs.get(kind, {}).get(name)


def _source_ref(
    metric: Metric, doc: _Doc, loc: tuple[Any, ...], cat: _Catalogue
) -> tuple[SignalRef | None, tuple[float, timedelta] | None, str | None]:
    """(signal, allowance, promql text) of one metric source."""
    src = metric.metricSource
    mtype = src.type
    if src.metricSourceRef is not None:
        found = cat.get("DataSource", src.metricSourceRef)
        if found is None:
            raise _fail(
                doc, (*loc, "metricSourceRef"), f"no DataSource named {src.metricSourceRef!r}"
            )
        mtype = mtype or found[1].type
    if mtype in ("Observatory", "observatory"):
        spec = _validate(ObservatorySource, src.spec, doc, (*loc, "spec"))
        if spec.allowance is not None:
            return None, (spec.allowance, _td(spec.per)), None
        where = tuple(
            sorted((k, (v,) if isinstance(v, str) else tuple(v)) for k, v in spec.where.items())
        )
        return (
            SignalRef(spec.signal, where, spec.threshold, spec.quantile, spec.stat or "mean"),
            None,
            None,
        )
    if mtype in ("Prometheus", "prometheus"):
        query = src.spec.get("query")
        extra = sorted(set(src.spec) - {"query"})
        if extra or not isinstance(query, str):
            more = f"; unknown fields {extra}" if extra else ""
            raise _fail(doc, (*loc, "spec"), "expected {query: <PromQL>}" + more)
        try:
            ref, _ = promql_to_signal(query)
        except ValueError as exc:
            raise _fail(doc, (*loc, "spec", "query"), str(exc)) from None
        return ref, None, query
    raise _fail(doc, (*loc, "type"), f"expected type Observatory or Prometheus, got {mtype!r}")


def _indicator(
    sli: SLISpec,
    objective: Objective,
    method: str,
    doc: _Doc,
    loc: tuple[Any, ...],
    oloc: tuple[Any, ...],
    cat: _Catalogue,
) -> Indicator:
    def err(path: tuple[Any, ...], msg: str) -> SpecError:
        return SpecError([f"{doc.where(path)}: {_fmt_loc(path)}: {msg}"])

    if sli.ratioMetric is not None:
        rm = sli.ratioMetric
        if objective.op is not None or objective.value is not None:
            key = "op" if objective.op is not None else "value"
            raise err((*oloc, key), "not allowed with a ratioMetric (only with a thresholdMetric)")
        rloc = (*loc, "ratioMetric")
        if rm.raw is not None:
            ref, allow, _ = _source_ref(rm.raw, doc, (*rloc, "raw", "metricSource"), cat)
            if ref is None or allow is not None or ref.kind != "gauge":
                raise err((*rloc, "raw"), "a raw ratio must be a gauge signal holding a ratio 0-1")
            return Indicator("raw", numerator=ref, raw_type=rm.rawType)
        is_bad = rm.bad is not None
        num_metric = rm.bad if is_bad else rm.good
        assert num_metric is not None and rm.total is not None
        nloc = (*rloc, "bad" if is_bad else "good", "metricSource")
        tloc = (*rloc, "total", "metricSource")
        num, _, num_q = _source_ref(num_metric, doc, nloc, cat)
        total, allowance, tot_q = _source_ref(rm.total, doc, tloc, cat)
        promql = (num_q, tot_q) if num_q and tot_q else None
        if num is None:
            raise err(nloc, "an allowance can only be a total")
        if allowance is not None:
            if not is_bad:
                raise err((*rloc, "good"), "a budget spends bad against an allowance: use bad")
            if num.kind == "histogram" or (
                num.kind == "gauge" and SIGNALS[num.signal].unit != "usd_per_hour"
            ):
                raise err(
                    nloc, "a budget's spend must be a counter or a per-hour rate gauge (cost)"
                )
            return Indicator(
                "budget",
                numerator=num,
                numerator_is_bad=True,
                allowance=allowance[0],
                allowance_per=allowance[1],
            )
        assert total is not None
        if num.where != total.where:
            raise err(nloc, "good/bad and total must filter the same regions, models and arms")
        if num.kind == "counter" and total.kind == "counter":
            if num.signal == total.signal:
                raise err(nloc, "good/bad and total are the same signal")
            return Indicator(
                "ratio", numerator=num, numerator_is_bad=is_bad, total=total, promql=promql
            )
        if num.kind == "histogram" and total.kind == "histogram":
            if num.signal != total.signal or num.threshold is None or total.threshold is not None:
                raise err(
                    nloc,
                    "a latency SLI counts observations of one histogram: good (or bad) with "
                    "threshold, total without",
                )
            return Indicator(
                "latency", numerator=num, numerator_is_bad=is_bad, total=total, promql=promql
            )
        raise err(
            nloc,
            f"unsupported pair {num.signal} ({num.kind}) / {total.signal} ({total.kind}): expected "
            "two counters, or one histogram with a threshold",
        )
    assert sli.thresholdMetric is not None
    mloc = (*loc, "thresholdMetric", "metricSource")
    ref, allow, _ = _source_ref(sli.thresholdMetric, doc, mloc, cat)
    if ref is None or allow is not None:
        raise err(mloc, "a thresholdMetric needs a signal")
    if objective.op is None or objective.value is None:
        key = "op" if objective.op is None else "value"
        raise err((*oloc, key), "required with a thresholdMetric")
    if ref.kind == "histogram":
        if ref.quantile is None:
            raise err((*mloc, "spec"), "a histogram thresholdMetric needs quantile (e.g. 0.99)")
        if objective.op not in ("lt", "lte"):
            raise err((*oloc, "op"), "a percentile objective is lt or lte (p99 below a bound)")
        if method != "Timeslices":
            raise err(
                oloc,
                "a percentile objective is judged per time slice: use budgetingMethod Timeslices",
            )
        return Indicator("percentile", total=ref, op=objective.op, value=objective.value)
    if ref.kind == "counter":
        raise err(mloc, "a counter cannot be a thresholdMetric; use a ratioMetric")
    return Indicator("gauge", total=ref, op=objective.op, value=objective.value)


def _annotations(meta: Metadata, doc: _Doc, format_default: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"group_by": format_default, "min_events": 0.0, "maintenance": ()}
    for key, value in meta.annotations.items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        loc = ("metadata", "annotations", key)
        name = key[len(ANNOTATION_PREFIX) :]
        try:
            if name == "group-by":
                dims = tuple(x.strip() for x in value.split(",") if x.strip())
                bad = [d for d in dims if d not in GROUP_DIMS]
                if bad:
                    raise ValueError(f"expected a comma list of region, model, arm; got {bad}")
                out["group_by"] = dims
            elif name == "min-events":
                out["min_events"] = float(value)
                if out["min_events"] < 0:
                    raise ValueError("expected a number >= 0")
            elif name == "maintenance":
                out["maintenance"] = parse_maintenance(value)
            else:
                raise ValueError("unknown annotation; known: group-by, min-events, maintenance")
        except ValueError as exc:
            raise SpecError([f"{doc.where(loc)}: metadata.annotations.{key}: {exc}"]) from None
    return out


def parse_maintenance(text: str) -> tuple[tuple[datetime, datetime], ...]:
    """``2024-05-01T02:00Z/2024-05-01T04:00Z, ...`` -> ((start, end), ...) UTC naive.

    Raises:
        ValueError: not comma-separated ``start/end`` ISO 8601 pairs with start < end.
    """
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            a, b = part.split("/")
            start, end = (_utc_naive(datetime.fromisoformat(x.strip())) for x in (a, b))
        except ValueError:
            raise ValueError(f"expected start/end ISO 8601 times, got {part!r}") from None
        if end <= start:
            raise ValueError(f"maintenance {part!r} ends before it starts")
        out.append((start, end))
    return tuple(out)


def _utc_naive(t: datetime) -> datetime:
    if t.tzinfo is not None:
        t = t.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    return t


def _tiers_from_policies(
    spec: SLOSpec, period: timedelta, doc: _Doc, cat: _Catalogue
) -> tuple[slomath.AlertTier, ...]:
    """AlertPolicies -> tiers; none given: the SRE Workbook / Sloth four tiers."""
    if not spec.alertPolicies:
        return tuple(slomath.alert_tiers(period))
    tiers = []
    for i, item in enumerate(spec.alertPolicies):
        loc = ("spec", "alertPolicies", i)
        if isinstance(item, AlertPolicyRef):
            found = cat.get("AlertPolicy", item.alertPolicyRef)
            if found is None:
                raise _fail(
                    doc, (*loc, "alertPolicyRef"), f"no AlertPolicy named {item.alertPolicyRef!r}"
                )
            pdoc, pspec = found
            pname = item.alertPolicyRef
            ploc: tuple[Any, ...] = ("spec",)
        else:
            pdoc, pspec, pname, ploc = doc, item.spec, item.metadata.name, (*loc, "spec")
        cond_item = pspec.conditions[0]
        if isinstance(cond_item, ConditionRef):
            found_c = cat.get("AlertCondition", cond_item.conditionRef)
            if found_c is None:
                raise _fail(
                    pdoc,
                    (*ploc, "conditions", 0, "conditionRef"),
                    f"no AlertCondition named {cond_item.conditionRef!r}",
                )
            cspec = found_c[1]
        else:
            cspec = cond_item.spec
        long = _td(cspec.condition.lookbackWindow)
        # OpenSLO gives one lookback window; the short window is 1/12 of it, as in the
        # SRE Workbook (1h/5m, 6h/30m, 1d/2h, 3d/6h).
        short = long / 12
        tiers.append(
            slomath.AlertTier(
                pname,
                cspec.severity,
                long,
                short,
                cspec.condition.threshold,
                cspec.condition.threshold * (long / period),
            )
        )
    return tuple(tiers)


def _openslo(docs: list[_Doc]) -> list[SloDefinition]:
    errors: list[str] = []
    cat = _Catalogue()
    slos: list[tuple[_Doc, Document, SLOSpec]] = []
    for doc in docs:
        if not isinstance(doc.data, dict):
            errors.append(
                f"{doc.where()}: expected a mapping with apiVersion, kind, metadata, spec"
            )
            continue
        try:
            env = _validate(Document, doc.data, doc, ())
            spec = _validate(_KIND_SPECS[env.kind], env.spec, doc, ("spec",))
        except SpecError as exc:
            errors.extend(exc.messages)
            continue
        cat.add(env.kind, env.metadata.name, doc, spec, errors)
        if env.kind == "SLO":
            slos.append((doc, env, spec))
    services = cat.docs.get("Service", {})
    out: list[SloDefinition] = []
    for doc, env, spec in slos:
        try:
            out.extend(_openslo_slo(doc, env, spec, cat, services))
        except SpecError as exc:
            errors.extend(exc.messages)
    if errors:
        raise SpecError(errors)
    return out


def _openslo_slo(
    doc: _Doc, env: Document, spec: SLOSpec, cat: _Catalogue, services: dict[str, Any]
) -> list[SloDefinition]:
    if services and spec.service not in services:
        known = ", ".join(sorted(services))
        raise _fail(
            doc, ("spec", "service"), f"no Service named {spec.service!r} (defined: {known})"
        )
    if spec.indicator is not None:
        sli, sli_doc = spec.indicator.spec, doc
        sli_loc: tuple[Any, ...] = ("spec", "indicator", "spec")
    else:
        assert spec.indicatorRef is not None
        found = cat.get("SLI", spec.indicatorRef)
        if found is None:
            raise SpecError(
                [
                    f"{doc.where(('spec', 'indicatorRef'))}: spec.indicatorRef: no SLI named "
                    f"{spec.indicatorRef!r}"
                ]
            )
        sli_doc, sli = found
        sli_loc = ("spec",)
    if sli.thresholdMetric is not None and len(spec.objectives) != 1:
        raise SpecError(
            [
                f"{doc.where(('spec', 'objectives'))}: spec.objectives: a thresholdMetric allows "
                "exactly one objective"
            ]
        )
    window = spec.timeWindow[0]
    calendar = None
    if window.rolling:
        period = _td(window.duration)
    else:
        assert window.calendar is not None
        calendar = CalendarWindow(
            window.duration,
            datetime.strptime(window.calendar.startTime, "%Y-%m-%d %H:%M:%S"),
            window.calendar.timeZone,
        )
        n, unit = int(window.duration[:-1]), window.duration[-1]
        days = {"d": 1, "w": 7, "M": 30, "Q": 91, "Y": 365}.get(unit)
        period = timedelta(days=n * days) if days else _td(window.duration)
    ann = _annotations(env.metadata, doc, ("region",))
    tiers = _tiers_from_policies(spec, period, doc, cat)
    out = []
    for i, obj in enumerate(spec.objectives):
        oloc = ("spec", "objectives", i)
        try:
            ind = _indicator(sli, obj, spec.budgetingMethod, sli_doc, sli_loc, oloc, cat)
        except SpecError as exc:
            raise SpecError(exc.messages) from None
        if ind.kind == "budget" and "group-by" not in {
            k[len(ANNOTATION_PREFIX) :] for k in env.metadata.annotations
        }:
            ann = {**ann, "group_by": ()}
        method = spec.budgetingMethod
        slice_window = _td(obj.timeSliceWindow) if obj.timeSliceWindow else timedelta(minutes=1)
        slice_target = obj.timeSliceTarget
        if ind.kind == "percentile":
            slice_target = ind.signal.quantile
        name = env.metadata.name
        if len(spec.objectives) > 1:
            suffix = re.sub(r"[^a-z0-9-]+", "-", (obj.displayName or str(i)).lower()).strip("-")
            name = f"{name}.{suffix or i}"
        labels = {
            k: v if isinstance(v, str) else ",".join(v) for k, v in env.metadata.labels.items()
        }
        out.append(
            SloDefinition(
                name=name,
                display_name=obj.displayName or env.metadata.displayName or env.metadata.name,
                service=spec.service,
                description=spec.description or "",
                source=doc.where(oloc),
                indicator=ind,
                target=obj.fraction,
                method=method,
                slice_window=slice_window,
                slice_target=slice_target,
                period=period,
                calendar=calendar,
                group_by=ann["group_by"],
                tiers=tiers,
                min_events=ann["min_events"],
                maintenance=ann["maintenance"],
                labels=labels,
                format="openslo",
            )
        )
    return out


# ---------------------------------------------------------------- Sloth
class SlothAlert(_Strict):
    """``page_alert`` / ``ticket_alert``."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    disable: bool = False


class SlothAlerting(_Strict):
    """``alerting`` of a Sloth SLO."""

    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    page_alert: SlothAlert = Field(default_factory=SlothAlert)
    ticket_alert: SlothAlert = Field(default_factory=SlothAlert)


class SlothEvents(_Strict):
    """``sli.events``: error and total queries with ``{{.window}}``."""

    error_query: str
    total_query: str


class SlothRaw(_Strict):
    """``sli.raw``: a precomputed error ratio query."""

    error_ratio_query: str


class SlothSLI(_Strict):
    """``sli``: events or raw (plugins are not supported)."""

    events: SlothEvents | None = None
    raw: SlothRaw | None = None

    @model_validator(mode="after")
    def _one(self) -> SlothSLI:
        if (self.events is None) == (self.raw is None):
            raise ValueError("expected exactly one of events and raw (plugins are not supported)")
        return self


class SlothSLO(_Strict):
    """One SLO of a Sloth spec."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    objective: Annotated[float, _interval(0, 100, False, True)]
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    sli: SlothSLI
    alerting: SlothAlerting = Field(default_factory=SlothAlerting)


class SlothSpec(_Strict):
    """A Sloth ``prometheus/v1`` file."""

    version: Literal["prometheus/v1"]
    service: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    labels: dict[str, str] = Field(default_factory=dict)
    slos: list[SlothSLO] = Field(min_length=1)


def _sloth(doc: _Doc) -> list[SloDefinition]:
    spec: SlothSpec = _validate(SlothSpec, doc.data, doc, ())
    out = []
    errors: list[str] = []
    for i, s in enumerate(spec.slos):
        loc: tuple[Any, ...] = ("slos", i, "sli")
        try:
            if s.sli.raw is not None:
                q = s.sli.raw.error_ratio_query
                errors.append(
                    f"{doc.where((*loc, 'raw'))}: {_fmt_loc((*loc, 'raw', 'error_ratio_query'))}: "
                    "a precomputed error ratio cannot be summed across regions; use events "
                    f"(error_query/total_query) instead of {q!r}"
                )
                continue
            assert s.sli.events is not None
            refs = []
            by: tuple[str, ...] | None = None
            for key in ("error_query", "total_query"):
                q = getattr(s.sli.events, key)
                if "{{.window}}" not in q:
                    raise _fail(
                        doc,
                        (*loc, "events", key),
                        "expected a {{.window}} placeholder in the range selector",
                    )
                try:
                    ref, by_labels = promql_to_signal(q)
                except ValueError as exc:
                    raise _fail(doc, (*loc, "events", key), str(exc)) from None
                refs.append(ref)
                by = by or by_labels
            num, total = refs
            if num.where != total.where:
                raise _fail(
                    doc,
                    (*loc, "events"),
                    "error and total queries must filter the same regions, models and arms",
                )
            if num.kind == total.kind == "counter":
                ind = Indicator(
                    "ratio",
                    numerator=num,
                    total=total,
                    promql=(s.sli.events.error_query, s.sli.events.total_query),
                )
            elif num.kind == total.kind == "histogram" and num.signal == total.signal:
                # error_query counts slow requests as total - fast: not expressible; a
                # bucket query is the good side.
                raise _fail(
                    doc,
                    (*loc, "events"),
                    "latency SLIs need good events (observations <= le); write them as OpenSLO "
                    "good/total",
                )
            else:
                raise _fail(
                    doc,
                    (*loc, "events"),
                    f"expected two counters, got {num.signal} and {total.signal}",
                )
            group_by = tuple(GROUP_DIMS_LABEL.get(b, b) for b in (by or ("region",)))
            bad = [g for g in group_by if g not in GROUP_DIMS]
            if bad:
                raise _fail(
                    doc,
                    (*loc, "events", "error_query"),
                    f"cannot group by {bad}: the store keeps region, model and arm",
                )
            target = s.objective / 100.0
            out.append(
                SloDefinition(
                    name=f"{spec.service}-{s.name}",
                    display_name=s.name,
                    service=spec.service,
                    description=s.description or "",
                    source=doc.where(("slos", i)),
                    indicator=ind,
                    target=target,
                    period=DEFAULT_PERIOD,
                    group_by=group_by,
                    tiers=tuple(slomath.alert_tiers(DEFAULT_PERIOD)),
                    labels={**spec.labels, **s.labels},
                    alert_name=s.alerting.name,
                    page_alert=not s.alerting.page_alert.disable,
                    ticket_alert=not s.alerting.ticket_alert.disable,
                    format="sloth",
                )
            )
        except SpecError as exc:
            errors.extend(exc.messages)
    if errors:
        raise SpecError(errors)
    return out


GROUP_DIMS_LABEL = {"model_name": "model", "version": "arm", "model_version": "arm"}


# ---------------------------------------------------------------- entry points
#: The SLO specs every reader uses without ``--specs``: the built-in examples.
DEFAULT_SPECS = Path(__file__).resolve().parent.parent / "examples" / "slo"
#: The environment variable naming spec files or folders (``os.pathsep`` separated).
SPECS_ENV = "OBSERVATORY_SLO_SPECS"


def spec_paths(given: Iterable[str | Path] = ()) -> list[Path]:
    """The SLO spec files or folders to read: ``given`` (a ``--specs`` option), else
    those named by ``$OBSERVATORY_SLO_SPECS``, else :data:`DEFAULT_SPECS`.  The
    dashboard, ``observatory serve`` and ``observatory slo`` all read them so."""
    chosen = [Path(p) for p in given]
    if not chosen:
        chosen = [Path(p) for p in os.environ.get(SPECS_ENV, "").split(os.pathsep) if p.strip()]
    return chosen or [DEFAULT_SPECS]


def load_specs(paths: Iterable[str | Path]) -> list[SloDefinition]:
    """Read OpenSLO and Sloth files (or folders of ``*.yaml``/``*.yml``) into SLOs.

    OpenSLO references (indicatorRef, alertPolicyRef, conditionRef, Service,
    DataSource) resolve across all the files given.

    Raises:
        SpecError: every mistake found, each with file, line, document, field path
            and expectation; duplicate SLO names.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            files.append(p)
    errors: list[str] = []
    openslo: list[_Doc] = []
    out: list[SloDefinition] = []
    for f in files:
        try:
            docs = _read_docs(f)
        except SpecError as exc:
            errors.extend(exc.messages)
            continue
        if not docs:
            errors.append(f"{f}: the file holds no document")
        for doc in docs:
            data = doc.data
            if isinstance(data, dict) and "version" in data and "apiVersion" not in data:
                try:
                    out.extend(_sloth(doc))
                except SpecError as exc:
                    errors.extend(exc.messages)
            elif isinstance(data, dict) and str(data.get("apiVersion", "")).startswith("openslo/"):
                openslo.append(doc)
            elif isinstance(data, dict) and "apiVersion" in data:
                errors.append(
                    f"{doc.where(('apiVersion',))}: apiVersion: expected openslo/v1, got "
                    f"{data['apiVersion']!r}"
                )
            else:
                errors.append(
                    f"{doc.where()}: expected an OpenSLO document (apiVersion: openslo/v1) or a "
                    "Sloth spec (version: prometheus/v1)"
                )
    if openslo:
        try:
            out.extend(_openslo(openslo))
        except SpecError as exc:
            errors.extend(exc.messages)
    seen: dict[str, str] = {}
    for d in out:
        if d.name in seen:
            errors.append(f"{d.source}: SLO name {d.name!r} is used twice (also {seen[d.name]})")
        seen[d.name] = d.source
    if errors:
        raise SpecError(errors)
    return out

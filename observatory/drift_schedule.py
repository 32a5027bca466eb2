"""The schedule file of ``observatory run``: collection and drift reports on cron expressions.

A small YAML file of its own (the main configuration file stays as it is and is
named from here), validated strictly: unknown keys are refused and every mistake
names the file, the line and the key path, with the helpers of
:mod:`observatory.config`.  Example (``examples/drift/schedule.yaml``)::

    config: ../observatory.yaml     # regions and store (collect needs it), or
    # store: ../data/demo           # a store folder only (no collection)
    out: reports/drift              # report archive (relative to this file)
    timezone: UTC                   # cron expressions are read in this zone
    collect: "*/5 * * * *"          # collect every region every 5 minutes
    reports:
      - name: daily
        cron: "15 0 * * *"          # 00:15 every day
        window: 24h
        reference: 7d               # 7d | week-ago | START/END (ISO 8601)
        formats: [html, json]
    signals:                        # optional, per-signal overrides
      - name: gpu_utilization
        reference: week-ago
      - name: ttft
        enabled: false

Cron expressions have five fields (minute hour day-of-month month day-of-week) and
are parsed by croniter.  :class:`Scheduler` computes each job's next time and runs
due jobs one after the other; :func:`run_forever` sleeps until the next one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from observatory import drift_engine as de
from observatory.config import (
    ConfigError,
    _LocatedError,
    load_config,
    parse_duration,
    validate_yaml,
)

log = logging.getLogger("observatory.run")

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Format = Literal["html", "md", "json"]
_SIGNAL_NAMES = [s.name for s in de.DEFAULT_SIGNALS]
#: Job names of their own: a report may not take them.
_RESERVED = ("collect", "precompute")


def _cron(value: Any) -> str:
    if not isinstance(value, str) or not croniter.is_valid(value) or len(value.split()) != 5:
        raise ValueError(
            "expected a cron expression of 5 fields (minute hour day month weekday), "
            f"e.g. '15 0 * * *', got {value!r}"
        )
    return value


def _reference(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected 7d, week-ago or START/END, got {value!r}")
    de.Reference.parse(value)
    return value


Cron = Annotated[str, BeforeValidator(_cron)]
ReferenceText = Annotated[str, BeforeValidator(_reference)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _default_formats() -> list[Format]:
    return ["html", "json"]


class ReportJob(_Strict):
    """One scheduled drift report."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    cron: Cron
    window: Duration = timedelta(hours=24)
    reference: ReferenceText = "7d"
    formats: list[Format] = Field(default_factory=_default_formats, min_length=1)
    #: The window ends at the latest data floored to this (``1h``, ``24h``); None: at
    #: the latest step (:func:`observatory.drift_engine.aligned_end`).
    align: Duration | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in _RESERVED:
            raise ValueError(
                f"{value!r} is the name of the {value} job ('collect' and 'precompute' are "
                "job names of their own): give this report another name, e.g. 'daily'"
            )
        return value

    @field_validator("window", "align")
    @classmethod
    def _minutes(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and (value.total_seconds() % 60 or value.total_seconds() <= 0):
            raise ValueError("must be a positive whole number of minutes")
        return value

    @field_validator("align")
    @classmethod
    def _divides_a_day(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and 86_400 % int(value.total_seconds()):
            raise ValueError("must divide a day (1h, 6h, 24h): windows end on clock times")
        return value


class SignalOverride(_Strict):
    """Per-signal settings; a signal not listed keeps its defaults."""

    name: str
    enabled: bool = True
    reference: ReferenceText | None = None
    min_count: float | None = Field(default=None, gt=0)
    rule: Literal["both", "either", "fixed", "learned"] | None = None
    metric: Literal["psi", "js", "hellinger", "wasserstein"] | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in _SIGNAL_NAMES:
            raise ValueError(f"unknown drift signal {value!r}; known: {', '.join(_SIGNAL_NAMES)}")
        return value

    @model_validator(mode="after")
    def _applies(self) -> SignalOverride:
        if de.signal_by_name(self.name).kind == "labels" and (self.metric or self.rule):
            raise ValueError(
                f"{self.name}: metric and rule do not apply (its verdict is the accuracy "
                "change test of late labels; min_count sets the minimum labels a side)"
            )
        return self


class PrecomputeJob(_Strict):
    """The dashboard's derived state on a cron expression (:mod:`observatory.precompute`):
    the SLO slice cache, experiment moments and regressions findings the heavy pages
    read instead of computing on a request.  Paths are relative to the schedule file."""

    cron: Cron
    #: SLO spec files or folders whose slice cache to keep warm (none: no SLO part).
    slo_specs: list[str] = Field(default_factory=list)
    #: The experiments file (none: the experiments discovered from the data).
    experiments: str | None = None
    #: Lookbacks of the Regressions page's findings (the page's default is 24h).
    regressions: list[Duration] = Field(default_factory=lambda: [timedelta(hours=24)])

    @field_validator("regressions")
    @classmethod
    def _lookbacks(cls, value: list[timedelta]) -> list[timedelta]:
        if any(v.total_seconds() <= 0 for v in value):
            raise ValueError("lookbacks must be positive")
        return list(dict.fromkeys(value))  # each once


class ScheduleSettings(_Strict):
    """The whole schedule file."""

    config: str | None = None
    store: str | None = None
    out: str = "reports/drift"
    timezone: str = "UTC"
    collect: Cron | None = None
    reports: list[ReportJob] = Field(default_factory=list)
    precompute: PrecomputeJob | None = None
    signals: list[SignalOverride] = Field(default_factory=list)
    regions: list[str] | None = None
    models: list[str] | None = None

    @field_validator("collect", "precompute", "reports", "signals", mode="before")
    @classmethod
    def _not_empty(cls, value: Any, info: ValidationInfo) -> Any:
        # A key written without a value is YAML null: refuse it rather than read it as
        # "no such job", which would silently schedule nothing for it.
        if value is None:
            hint = {
                "collect": 'a cron expression, e.g. collect: "*/5 * * * *"',
                "precompute": 'at least its cron, e.g. precompute: {cron: "*/5 * * * *"}',
                "reports": "a list of report jobs (name, cron, ...)",
                "signals": "a list of per-signal overrides (name, ...)",
            }[str(info.field_name)]
            raise ValueError(f"is empty: give {hint}, or remove the key (docs/drift.md)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleSettings:
        if (self.config is None) == (self.store is None):
            raise ValueError("give exactly one of 'config' (a configuration file) and 'store'")
        if self.collect is not None and self.config is None:
            raise ValueError("'collect' needs 'config' (the regions to collect from)")
        if self.collect is None and not self.reports and self.precompute is None:
            raise ValueError("nothing to schedule: add 'collect', 'reports' or 'precompute'")
        for key, names in (
            ("reports", [r.name for r in self.reports]),
            ("signals", [s.name for s in self.signals]),
        ):
            for i, name in enumerate(names):
                if name in names[:i]:
                    first = names.index(name)
                    raise _LocatedError(
                        f"{name!r} is given twice (also {key}[{first}].name): each name once",
                        key,
                        i,
                        "name",
                    )
        return self


@dataclass(frozen=True)
class Schedule:
    """A loaded schedule: settings and the file they came from (relative paths)."""

    settings: ScheduleSettings
    path: Path | None = None

    def _resolve(self, value: str) -> Path:
        p = Path(value)
        if p.is_absolute() or self.path is None:
            return p
        return self.path.parent / p

    @property
    def config_path(self) -> Path | None:
        """The main configuration file, if named."""
        return self._resolve(self.settings.config) if self.settings.config else None

    @property
    def store_path(self) -> Path:
        """The store folder (from ``store``, or the main configuration's store).

        Raises:
            ConfigError: the main configuration file is invalid.
        """
        if self.settings.store:
            return self._resolve(self.settings.store)
        assert self.config_path is not None
        return load_config(self.config_path).store_path

    @property
    def out_path(self) -> Path:
        """The report archive folder."""
        return self._resolve(self.settings.out)

    def signals(self) -> list[de.DriftSignal]:
        """The default drift signals with this file's overrides applied."""
        return apply_overrides(self.settings.signals)


def apply_overrides(overrides: list[SignalOverride]) -> list[de.DriftSignal]:
    """:data:`observatory.drift_engine.DEFAULT_SIGNALS` with overrides applied."""
    by_name = {o.name: o for o in overrides}
    out = []
    for sig in de.DEFAULT_SIGNALS:
        o = by_name.get(sig.name)
        if o is None:
            out.append(sig)
            continue
        if not o.enabled:
            continue
        out.append(
            replace(
                sig,
                reference=de.Reference.parse(o.reference) if o.reference else sig.reference,
                min_count=o.min_count if o.min_count is not None else sig.min_count,
                rule=o.rule or sig.rule,
                metric=o.metric or sig.metric,
            )
        )
    return out


def _looks_like_collector_config(text: str) -> bool:
    """True when ``text`` is a YAML mapping whose ``regions`` are the collector
    configuration's (mappings with a ``url``, observatory/config.py); a schedule's
    ``regions`` are names."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    regions = data.get("regions") if isinstance(data, dict) else None
    return isinstance(regions, list) and any(isinstance(r, dict) and "url" in r for r in regions)


def parse_schedule(text: str, source: str = "<schedule>", path: Path | None = None) -> Schedule:
    """Validate schedule text.

    Raises:
        ConfigError: YAML errors, unknown keys, bad cron expressions, durations or
            references; each message names ``source``, the line and the key path.
    """
    try:
        settings = validate_yaml(text, ScheduleSettings, source, "docs/drift.md")
    except ConfigError as exc:
        if _looks_like_collector_config(text):
            raise ConfigError(
                [
                    f"{source}: this is a collector configuration (its `regions` have URLs), not a "
                    "schedule file: `observatory run --config` takes a schedule that names "
                    f"it (`config: {source}`, then `collect:`, `drift:`, ...; docs/drift.md)",
                    *exc.messages,
                ]
            ) from None
        raise
    if settings is None:
        raise ConfigError([f"{source}:1: expected a mapping (config or store, reports, ...)"])
    return Schedule(settings, path)


def load_schedule(path: str | os.PathLike[str]) -> Schedule:
    """Read and validate the schedule file at ``path``.

    Raises:
        ConfigError: missing, unreadable or invalid; or the main configuration file
            it names is invalid.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the schedule file: {exc.strerror}"]) from None
    schedule = parse_schedule(text, source=str(file), path=file.resolve())
    if schedule.config_path is not None:
        load_config(schedule.config_path)  # fail now, not at the first collection
    _check_precompute_paths(schedule, file)
    return schedule


def _check_precompute_paths(schedule: Schedule, file: Path) -> None:
    """The precompute job's files exist and its experiments file is valid: fail when
    the schedule loads, not at every run of the job."""
    job = schedule.settings.precompute
    if job is None:
        return
    errors = [
        f"{file}: precompute.slo_specs[{i}]: no such file or folder: {schedule._resolve(p)}"
        for i, p in enumerate(job.slo_specs)
        if not schedule._resolve(p).exists()
    ]
    if errors:
        raise ConfigError(errors)
    if job.experiments:
        from observatory.experiments_config import load_experiments

        path = schedule._resolve(job.experiments)
        if not path.is_file():
            raise ConfigError([f"{file}: precompute.experiments: no such file: {path}"])
        load_experiments(path)  # its own errors name its file, line and key


# --------------------------------------------------------------------------- jobs
@dataclass
class JobResult:
    """What one run of a job did."""

    job: str
    started_utc: datetime
    seconds: float
    ok: bool
    message: str
    paths: list[Path] = field(default_factory=list)
    exit_code: int = 0


def run_report(
    schedule: Schedule, job: ReportJob, end: datetime | None = None
) -> tuple[de.DriftReport, list[Path]]:
    """Compute one report job's drift and write its formats into the archive.

    Raises:
        ConfigError, observatory.store.StoreError, ValueError, OSError.
    """
    from observatory.drift_report import write_report
    from observatory.store import Store

    store = Store(schedule.store_path)
    if job.align is not None:
        end = de.aligned_end(store, job.align, end)
    report = de.compute_drift(
        store,
        window=job.window,
        reference=de.Reference.parse(job.reference),
        end=end,
        signals=schedule.signals(),
        regions=schedule.settings.regions,
        models=schedule.settings.models,
    )
    # JSON last: the archive lists a run by its JSON, so it appears when complete.
    order = sorted(job.formats, key=lambda f: f == "json")
    paths = [write_report(report, schedule.out_path, fmt) for fmt in order]
    return report, paths


def run_collect(schedule: Schedule) -> str:
    """Collect every region once (the ``collect`` job); returns a one-line summary."""
    from collectors.collect import Collector
    from observatory.store import Store

    assert schedule.config_path is not None
    config = load_config(schedule.config_path)
    reports = Collector(config, Store(config.store_path)).run()
    rows = sum(r.rows for r in reports)
    failed = [r.region for r in reports if r.status == "failed"]
    text = f"collected {rows} rows from {len(reports)} regions"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    if reports and len(failed) == len(reports):
        raise RuntimeError(text)
    return text


def run_precompute(schedule: Schedule) -> tuple[str, int]:
    """The ``precompute`` job: :func:`observatory.precompute.precompute` on the schedule's
    store; returns its one-line summary and the job's exit code: 0, or 5
    (:data:`~observatory.drift_codes.EXIT_NO_DATA`) when the store holds no data yet
    (every part then says so), as a report job on such a store.

    Raises:
        RuntimeError: a part failed (the summary says which and why; the other parts
            still ran).
        ConfigError: the main configuration or the experiments file is invalid.
    """
    from observatory.drift_codes import EXIT_NO_DATA
    from observatory.experiments_config import load_experiments
    from observatory.precompute import NO_DATA, precompute, summary
    from observatory.slo_engine import maintenance_from_config
    from observatory.store import Store

    job = schedule.settings.precompute
    assert job is not None
    maintenance = (
        maintenance_from_config(load_config(schedule.config_path).settings.maintenance)
        if schedule.config_path is not None
        else ()
    )
    results = precompute(
        Store(schedule.store_path),
        slo_specs=[schedule._resolve(p) for p in job.slo_specs],
        maintenance=maintenance,
        experiments=load_experiments(schedule._resolve(job.experiments))
        if job.experiments
        else None,
        regressions=job.regressions,
    )
    text = summary(results)
    if not all(r.ok for r in results):
        raise RuntimeError(text)
    if all(r.message == NO_DATA for r in results):
        return f"{text} (store {schedule.store_path})", EXIT_NO_DATA
    return text, 0


class Scheduler:
    """Cron-driven jobs: ``collect`` (if configured), ``precompute`` (if configured) and
    each report.

    Args:
        schedule: the loaded schedule.
        clock: the current time, aware (default the system clock; tests pass a fake).
        actions: job name -> callable, to replace the real work (tests).
    """

    COLLECT = "collect"
    PRECOMPUTE = "precompute"

    def __init__(
        self,
        schedule: Schedule,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        actions: dict[str, Callable[[], JobResult]] | None = None,
    ):
        self.schedule = schedule
        self.clock = clock
        self.zone = ZoneInfo(schedule.settings.timezone)
        start = clock().astimezone(self.zone)
        self.crons: dict[str, str] = {}
        if schedule.settings.collect:
            self.crons[self.COLLECT] = schedule.settings.collect
        if schedule.settings.precompute:
            self.crons[self.PRECOMPUTE] = schedule.settings.precompute.cron
        for job in schedule.settings.reports:
            self.crons[job.name] = job.cron
        self.next: dict[str, datetime] = {
            name: self._after(expr, start) for name, expr in self.crons.items()
        }
        self.actions = actions or {}

    def _after(self, expr: str, t: datetime) -> datetime:
        nxt = croniter(expr, t.astimezone(self.zone)).get_next(datetime)
        return nxt.astimezone(UTC) if isinstance(nxt, datetime) else datetime.now(UTC)

    def next_time(self) -> datetime:
        """When the next job is due (UTC)."""
        return min(self.next.values())

    def due(self, now: datetime) -> list[str]:
        """Jobs due at ``now``: collection first, then precompute, then reports in file order."""
        return [name for name, t in self.next.items() if t <= now]

    def run_job(self, name: str) -> JobResult:
        """Run one job now; errors are caught and returned (the loop goes on)."""
        began = time.monotonic()
        started = self.clock()
        if name in self.actions:
            return self.actions[name]()
        try:
            if name == self.COLLECT:
                msg = run_collect(self.schedule)
                return JobResult(name, started, time.monotonic() - began, True, msg)
            if name == self.PRECOMPUTE:
                msg, code = run_precompute(self.schedule)
                return JobResult(name, started, time.monotonic() - began, True, msg, [], code)
            job = next(j for j in self.schedule.settings.reports if j.name == name)
            from observatory.drift_codes import EXIT_NO_DATA
            from observatory.drift_report import exit_code
            from observatory.exit_codes import no_data_message
            from observatory.store import Store

            root = self.schedule.store_path
            if not Store(root).has_data():  # before the first collection: not a failure
                msg = no_data_message(root, "nothing to report until the first collection")
                return JobResult(
                    name, started, time.monotonic() - began, True, msg, [], EXIT_NO_DATA
                )
            report, paths = run_report(self.schedule, job)
            return JobResult(
                name,
                started,
                time.monotonic() - began,
                True,
                report.summary_line(),
                paths,
                exit_code(report),
            )
        except Exception as exc:  # a failed job must not stop the scheduler
            log.exception("job %s failed", name)
            return JobResult(name, started, time.monotonic() - began, False, f"{exc}")

    def tick(self, now: datetime) -> list[JobResult]:
        """Run the jobs due at ``now``, then schedule each one's next run after the
        clock's time once it finished.

        Runs missed while a job ran (or while the process was suspended) are
        coalesced into none: a job never runs twice in a row to catch up.
        """
        results = []
        for name in self.due(now):
            results.append(self.run_job(name))
            self.next[name] = self._after(self.crons[name], max(now, self.clock()))
        return results


def once_exit_code(results: list[JobResult]) -> int:
    """The exit code of ``observatory run --once``: 4 when a job failed, else the worst
    report code, ranked 2 (critical) > 1 (warning) > 5 (nothing judged) > 0: a report
    with too little data must not hide another's critical drift."""
    from observatory.drift_codes import EXIT_CRITICAL, EXIT_NO_DATA, EXIT_RUNTIME, EXIT_WARNING

    if any(not r.ok for r in results):
        return EXIT_RUNTIME
    codes = {r.exit_code for r in results}
    return next((c for c in (EXIT_CRITICAL, EXIT_WARNING, EXIT_NO_DATA) if c in codes), 0)


def run_forever(
    scheduler: Scheduler,
    stop: threading.Event,
    on_result: Callable[[JobResult], None] = lambda r: None,
) -> None:
    """Sleep until the next job is due, run it, repeat, until ``stop`` is set."""
    while not stop.is_set():
        wait = (scheduler.next_time() - scheduler.clock()).total_seconds()
        if wait > 0:
            # Wake at least every minute: a suspended machine or a clock step is noticed.
            if stop.wait(min(wait, 60.0)):
                break
            continue
        for result in scheduler.tick(scheduler.clock()):
            on_result(result)

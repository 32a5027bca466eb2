"""Observatory's configuration file: YAML, validated strictly, errors that say where.

The file lists the regions to collect from, how to reach and authenticate with each
region's Prometheus-compatible API, which exporter presets each region runs, and the
collection schedule.  The full format is documented in ``docs/configuration.md``;
``examples/observatory.yaml`` is a complete example.

Secrets never live in the file: a bearer token, a basic-auth password or a secret
header value is named by the environment variable that holds it (``*_env`` keys).

Every mistake raises :class:`ConfigError` with the file, the line and the key path
(``regions[1].url``) and what was expected.  Unknown keys are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from observatory.yaml_lines import (
    TextTimestampLoader,
    format_loc,
    line_index,
    nearest_line,
    yaml_error,
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_RE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """Parse a Prometheus-style duration (``90s``, ``5m``, ``6h``, ``14d``, ``2w``).

    A sum of parts (``1d12h``, ``1h30m``, as Prometheus allows) is their total; a
    bare number is taken as seconds.

    Raises:
        ValueError: the text is not a positive duration.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("expected a duration such as 60s, 5m, 6h or 14d")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        if not _DURATION_RE.match(value):
            raise ValueError(f"expected a duration such as 60s, 5m, 6h or 14d, got {value!r}")
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    else:
        raise ValueError(f"expected a duration such as 60s, 5m, 6h or 14d, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(span: timedelta) -> str:
    """``span`` as :func:`parse_duration` reads it: ``24h``, ``7d``, ``90m``, ``45s``;
    days from two days up, hours below (a day is written ``24h``, as the dashboard's
    time ranges are)."""
    s = int(span.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0 and (unit != "d" or s >= 2 * 86400):
            return f"{s // n}{unit}"
    return f"{s}s"


PresetName = Literal[
    "vllm",
    "dcgm",
    "opencost",
    "opencost_gpu",
    "quality",
    "prometheus",
    "triton",
    "triton_gpu",
    "tgi",
    "otel_http",
    "kepler",
    "kepler_legacy",
    "labels",
]
Backend = Literal["prometheus", "thanos", "mimir", "cortex", "victoriametrics"]
SignalKind = Literal["counter", "gauge", "histogram"]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_ENV_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _LocatedError(ValueError):
    """A model-level check's error that belongs to a key below the model (``loc``)."""

    def __init__(self, message: str, *loc: str | int):
        super().__init__(message)
        self.loc = loc


def _default_presets() -> list[PresetName]:
    return ["vllm", "dcgm"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuth(_Strict):
    """HTTP basic auth: the password comes from the environment variable ``password_env``."""

    username: str
    password_env: str = Field(pattern=_ENV_RE)


class Auth(_Strict):
    """How to authenticate with one region's API: ``basic`` or ``bearer_token_env``, not both."""

    basic: BasicAuth | None = None
    bearer_token_env: str | None = Field(default=None, pattern=_ENV_RE)

    @model_validator(mode="after")
    def _one_scheme(self) -> Auth:
        if self.basic is not None and self.bearer_token_env is not None:
            raise ValueError("choose one of basic and bearer_token_env, not both")
        return self


class LabelMap(_Strict):
    """Which exporter labels hold the model and the arm (e.g. the model version)."""

    model: list[str] = Field(default_factory=lambda: ["model_name", "model"])
    arm: list[str] = Field(default_factory=lambda: ["version", "model_version", "arm"])

    @field_validator("model", "arm", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class CustomSignal(_Strict):
    """A signal defined in the config: a series selector (raw samples, exact) or any
    PromQL expression (evaluated per step with ``query_range``, stored as a gauge).

    ``name`` may be a canonical signal (then ``kind`` and ``unit`` must match it) or a
    new one (then ``kind`` and ``unit`` are required).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    kind: SignalKind | None = None
    unit: str | None = None
    selector: str | None = None
    expr: str | None = None
    scale: float = 1.0
    le_scale: float = 1.0
    instance_labels: list[str] = Field(default_factory=list)
    model: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> CustomSignal:
        if (self.selector is None) == (self.expr is None):
            raise ValueError("give exactly one of selector (raw samples) and expr (PromQL)")
        if self.selector is not None:
            from collectors.selector import parse_selector

            try:
                parse_selector(self.selector)
            except ValueError as exc:
                raise _LocatedError(str(exc), "selector") from None
        from collectors.signals import SIGNALS

        known = SIGNALS.get(self.name)
        if known is not None:
            if self.kind not in (None, known.kind):
                raise _LocatedError(
                    f"signal {self.name!r} is a {known.kind}, not a {self.kind}", "kind"
                )
            if self.unit not in (None, known.unit):
                raise _LocatedError(
                    f"signal {self.name!r} is stored in {known.unit}, not {self.unit}", "unit"
                )
        elif self.kind is None or self.unit is None:
            raise ValueError(f"a new signal {self.name!r} needs kind and unit")
        kind = self.kind or (known.kind if known else None)
        if self.expr is not None and kind != "gauge":
            raise _LocatedError(
                "an expr signal is evaluated per step and stored as a gauge; for exact "
                "counters or histograms give a selector",
                "kind",
            )
        return self


class Price(_Strict):
    """A price-table entry: USD per hour of one GPU (matched on dcgm-exporter's
    ``modelName``, a substring such as ``A100``), for regions without OpenCost."""

    gpu: str
    usd_per_hour: float = Field(ge=0)


class Region(_Strict):
    """One region: a Prometheus-compatible base URL and where it is on the map."""

    name: str = Field(pattern=_NAME_RE)
    url: str
    display_name: str | None = None
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    presets: list[PresetName] = Field(default_factory=_default_presets, min_length=1)
    labels: LabelMap = Field(default_factory=LabelMap)
    auth: Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    backend: Backend = "prometheus"
    tenant: str | None = None
    dedup_label: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    signals: list[CustomSignal] = Field(default_factory=list)
    prices: list[Price] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http:// or https:// base URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_signals(self) -> Region:
        seen: set[tuple[str, str]] = set()
        for i, sig in enumerate(self.signals):
            key = (sig.name, sig.selector or sig.expr or "")
            if key in seen:
                raise _LocatedError(f"signal {sig.name!r} is defined twice", "signals", i, "name")
            seen.add(key)
        if self.key_file and not self.cert_file:
            raise _LocatedError("key_file needs cert_file", "key_file")
        return self

    @property
    def title(self) -> str:
        """The name shown to operators."""
        return self.display_name or self.name

    @field_validator("headers_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for header, env in value.items():
            if not re.match(_ENV_RE, env):
                raise ValueError(f"header {header!r}: {env!r} is not an environment variable name")
        return value


class Collection(_Strict):
    """When and how much to collect.

    ``step``: resolution of stored rows (default 60 s).  ``lookback``: how far back the
    first run of a region starts.  ``chunk``: the longest time range one query asks
    for.  ``counter_lookback``: how far before a window the collector looks for the
    previous counter sample, so that the first delta of the window is exact.
    ``settle``: how far behind now a window ends, so that scrapes still in flight are
    not missed.  ``timeout``: per HTTP request (the whole answer, not one read).
    ``retries``: further attempts after a timeout, connection error, 429 or 5xx, with
    exponential backoff from ``retry_backoff`` up to ``retry_max_backoff`` plus jitter.
    ``parallel_queries``: queries in flight per region (fetching overlaps writing).
    ``write_batch``: rows are accumulated over this much time (batches end one step
    before the grid, 23:59 UTC for days, so that a day batch fills one date partition)
    before the store's partitions are rewritten and the state advances.
    ``max_samples``: a raw-sample query that returned more is split in time.
    ``compression``: ask for gzip answers (for slow links: Prometheus spends several
    times its JSON encoding on gzip).
    """

    step: Duration = timedelta(seconds=60)
    lookback: Duration = timedelta(days=1)
    chunk: Duration = timedelta(hours=6)
    counter_lookback: Duration = timedelta(minutes=15)
    settle: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=30)
    retries: int = Field(default=3, ge=0, le=20)
    retry_backoff: Duration = timedelta(seconds=0.5)
    retry_max_backoff: Duration = timedelta(seconds=20)
    parallel_queries: int = Field(default=4, ge=1, le=32)
    write_batch: Duration = timedelta(days=1)
    max_samples: int = Field(default=20_000_000, ge=1000)
    compression: bool = False
    #: signal -> how far back each run re-reads it (late data; see docs/configuration.md)
    refetch: dict[str, Duration] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _whole_steps(self) -> Collection:
        step = self.step.total_seconds()
        if step < 1 or step != int(step):
            raise _LocatedError("step must be a whole number of seconds, at least 1s", "step")
        if self.chunk.total_seconds() % step:
            raise _LocatedError("chunk must be a multiple of step", "chunk")
        if self.write_batch.total_seconds() % step:
            raise _LocatedError("write_batch must be a multiple of step", "write_batch")
        for signal, late in self.refetch.items():
            if late.total_seconds() % step:
                raise _LocatedError("must be a multiple of step", "refetch", signal)
        return self


class Health(_Strict):
    """Thresholds that colour a region on the map until SLOs are defined."""

    max_error_ratio: float = Field(default=0.01, gt=0, lt=1)
    max_p99_seconds: float = Field(default=20.0, gt=0)


class MaintenanceWindow(_Strict):
    """A planned maintenance window, excluded from every SLO's numerator and denominator.

    Steps ending in ``(start, end]`` are left out of every SLO's events and expected
    slices (docs/slo.md, "Maintenance windows").  Times are ISO 8601; one without a
    time zone is UTC.  ``regions`` limits it to some regions (default: every region).
    """

    start: datetime
    end: datetime
    regions: list[str] | None = Field(default=None, min_length=1)
    reason: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        # pydantic would read a bare number as Unix seconds (12345 -> 1970-01-01T03:25:45)
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f"{value!r} is a number, not a time; give an ISO 8601 time such as "
                "2026-03-01T02:00:00Z"
            )
        return value

    @field_validator("start", "end", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise _LocatedError(
                f"end {self.end.isoformat()}Z is not after start {self.start.isoformat()}Z", "end"
            )
        return self


class Settings(_Strict):
    """The whole configuration file."""

    store: str = "data/store"
    collection: Collection = Field(default_factory=Collection)
    health: Health = Field(default_factory=Health)
    regions: list[Region] = Field(min_length=1)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_regions(self) -> Settings:
        seen: set[str] = set()
        for i, region in enumerate(self.regions):
            if region.name in seen:
                raise _LocatedError(
                    f"region name {region.name!r} appears twice", "regions", i, "name"
                )
            seen.add(region.name)
        for i, window in enumerate(self.maintenance):
            for j, name in enumerate(window.regions or []):
                if name not in seen:
                    raise _LocatedError(
                        f"unknown region {name!r}; the configured regions are "
                        + ", ".join(sorted(seen)),
                        "maintenance",
                        i,
                        "regions",
                        j,
                    )
        from collectors.signals import SIGNALS

        known = set(SIGNALS) | {c.name for r in self.regions for c in r.signals}
        for name in self.collection.refetch:
            if name not in known:
                raise _LocatedError(
                    f"unknown signal {name!r}; refetch takes a canonical signal "
                    f"({', '.join(sorted(SIGNALS))}) or one of the regions' own signals",
                    "collection",
                    "refetch",
                    name,
                )
        return self


@dataclass(frozen=True)
class Config:
    """A loaded configuration: the validated settings and where they came from."""

    settings: Settings
    path: Path | None

    @property
    def store_path(self) -> Path:
        """The store folder; a relative path is relative to the config file's folder."""
        store = Path(self.settings.store)
        if store.is_absolute() or self.path is None:
            return store
        return self.path.parent / store


class ConfigError(ValueError):
    """A configuration mistake, with the file, line and key path where it is."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("\n".join(messages))


def _duplicate_keys(
    node: yaml.Node, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], int]]:
    """``(key path, line)`` of every key that a mapping repeats (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                yield (*path, key), key_node.start_mark.line + 1
            seen.add(key)
            yield from _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, i))


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_yaml(text: str, model: type[ModelT], source: str, docs: str) -> ModelT | None:
    """Parse YAML ``text`` and validate it as ``model``, with errors that say where.

    Shared by every YAML file Observatory reads (configuration, experiments, drift
    schedule).  Returns None for an empty document (the caller decides whether that
    is allowed).

    Args:
        text: the YAML document.
        model: the pydantic model of the whole file (``extra="forbid"`` throughout).
        source: the file name used in messages.
        docs: where the keys are documented, named in "unknown key" messages.

    Raises:
        ConfigError: YAML syntax errors, a top level that is not a mapping, unknown
            keys, wrong types, missing keys; each message names ``source``, the line
            and the key path (``regions[1].url``) and what was expected.
    """
    try:
        node = yaml.compose(text, Loader=TextTimestampLoader)
        data = yaml.load(text, Loader=TextTimestampLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_error(exc, source)]) from None
    if node is None or data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1: expected a mapping at the top level"])
    duplicates = list(_duplicate_keys(node))
    if duplicates:
        raise ConfigError(
            [f"{source}:{line}: {format_loc(loc)}: key given twice" for loc, line in duplicates]
        )
    lines = line_index(node)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            loc += getattr((err.get("ctx") or {}).get("error"), "loc", ())
            line = nearest_line(lines, loc)
            where = f"{source}:{line}" if line else source
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key (check the spelling; see {docs})"
            elif err["type"] == "missing":
                msg = "required key is missing"
            elif err["type"] != "value_error" and not isinstance(err.get("input"), dict | list):
                msg = f"{msg}, got {err.get('input')!r}"
            messages.append(f"{where}: {format_loc(loc)}: {msg}")
        raise ConfigError(messages) from None


def parse_config(text: str, source: str = "<config>", path: Path | None = None) -> Config:
    """Validate configuration text.

    Raises:
        ConfigError: YAML syntax errors, unknown keys, wrong types, missing fields;
            each message names ``source``, the line and the key path.
    """
    settings = validate_yaml(text, Settings, source, "docs/configuration.md")
    if settings is None:
        raise ConfigError([f"{source}: the file is empty; expected a mapping with 'regions'"])
    return Config(settings=settings, path=path)


#: The store every command reads when given neither ``--store`` nor ``--config``.
DEFAULT_DEMO_STORE = Path("data/demo")


def resolve_store_path(store_path: str | None, config_path: str | None) -> Path:
    """The store folder a command should read: ``--store``, else the config's, else the demo's.

    Raises:
        ConfigError: the configuration file is missing or invalid.
    """
    if store_path:
        return Path(store_path)
    if config_path:
        return load_config(config_path).store_path
    return DEFAULT_DEMO_STORE


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the configuration file at ``path``.

    Raises:
        ConfigError: the file is missing, unreadable or invalid.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the configuration file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{file}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"]
        ) from None
    return parse_config(text, source=str(file), path=file.resolve())


def resolve_headers(region: Region, environ: dict[str, str] | None = None) -> dict[str, str]:
    """HTTP headers for a region, with secrets read from the environment.

    Raises:
        ConfigError: an environment variable that the region names is not set.
    """
    env = os.environ if environ is None else environ
    headers = dict(region.headers)
    if region.tenant:
        headers.setdefault("X-Scope-OrgID", region.tenant)
    missing = []
    for header, var in region.headers_env.items():
        if var in env:
            headers[header] = env[var]
        else:
            missing.append(f"region {region.name}: headers_env.{header}: ${var} is not set")
    if region.auth and region.auth.bearer_token_env:
        var = region.auth.bearer_token_env
        if var in env:
            headers["Authorization"] = f"Bearer {env[var]}"
        else:
            missing.append(f"region {region.name}: auth.bearer_token_env: ${var} is not set")
    if missing:
        raise ConfigError(missing)
    return headers


def resolve_basic_auth(
    region: Region, environ: dict[str, str] | None = None
) -> tuple[str, str] | None:
    """``(username, password)`` for basic auth, or None.

    Raises:
        ConfigError: the password's environment variable is not set.
    """
    if region.auth is None or region.auth.basic is None:
        return None
    env = os.environ if environ is None else environ
    var = region.auth.basic.password_env
    if var not in env:
        raise ConfigError([f"region {region.name}: auth.basic.password_env: ${var} is not set"])
    return region.auth.basic.username, env[var]

"""Collection health per region and signal, from the collector's run log and state.

Pure functions (no Streamlit, DuckDB, file or network access): the dashboard's
Collection health page reads ``runs.jsonl``, ``state.json`` and the newest stored
step per signal (app/collection_data.py) and hands the contents to these.

Inputs, as the collector writes them (collectors/collect.py, docs/configuration.md):

- the run log: one JSON object a line per region per run, with ``started_utc``,
  ``finished_utc``, ``region``, ``status`` (``ok``, ``current``, ``partial``,
  ``failed``, ``stopped``), ``window_start_utc``, ``window_end_utc``, ``rows``,
  ``samples``, ``seconds``, ``error`` (all the run's errors, joined by ``; ``) and
  ``coverage`` (signal -> share 0-1 of expected (series, step) pairs that held a
  sample, ``null`` when the signal had no series).  Records written before a field
  existed lack it;
- the state: per region, per signal, the time up to which the signal is collected
  (the next run resumes there).

The run log records errors per region, not per signal.  A run's error is charged to
a signal when the run failed, or when it recorded errors and no coverage for that
signal (the signal was not collected); a partial run that collected the signal does
not charge it.  A region whose runs never named a signal gets one row under
:data:`EVERY_SIGNAL`.

Units: durations and ages in seconds, coverage as shares 0-1, times UTC (naive).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

Status = Literal["ok", "lagging", "failing", "no data"]
STATUSES: tuple[Status, ...] = ("ok", "lagging", "failing", "no data")
#: The signal name of a region's row when no run or state names any signal of it.
EVERY_SIGNAL = "(every signal)"
#: Run statuses in which every signal of the region was collected or already current.
_CLEAN = frozenset({"ok", "current"})
_TIME_FIELDS = ("started_utc", "finished_utc", "window_start_utc", "window_end_utc")
RUN_COLUMNS = (
    "line",
    "region",
    "status",
    *_TIME_FIELDS,
    "rows",
    "samples",
    "seconds",
    "error",
    "coverage",
)
HEALTH_COLUMNS = (
    "region",
    "signal",
    "status",
    "last_success_utc",
    "last_success_age_s",
    "collected_until_utc",
    "newest_step_utc",
    "lag_s",
    "allowed_lag_s",
    "coverage_last_run",
    "coverage_24h",
    "errors_24h",
    "last_error",
    "last_error_utc",
)


@dataclass(frozen=True)
class SkippedLine:
    """A run-log line that could not be used.

    Attributes:
        source: the file (as given to :func:`parse_run_log`).
        line: 1-based line number.
        reason: why it was skipped.
    """

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source} line {self.line}: {self.reason}"


@dataclass(frozen=True)
class RunLog:
    """The usable records of a run log and the lines skipped.

    Attributes:
        runs: one row per record, columns :data:`RUN_COLUMNS`; times UTC naive
            (``NaT`` when absent), ``rows``/``samples`` float (``NaN`` when absent),
            ``seconds`` the run's duration in seconds, ``coverage`` a dict
            signal -> share 0-1 or None; sorted by ``started_utc``.
        skipped: lines that were not JSON objects or lacked ``region`` / ``started_utc``.
    """

    runs: pd.DataFrame
    skipped: list[SkippedLine] = field(default_factory=list)


@dataclass(frozen=True)
class HealthThresholds:
    """When a signal is ``lagging``.

    Attributes:
        step_s: the collection step (``collection.step``), seconds.
        settle_s: how far behind now a window ends (``collection.settle``), seconds.
        lag_steps: steps of lag tolerated beyond the expected delay.
        min_coverage: a last run's coverage below this share (0-1) is lagging.

    A signal's allowed lag (seconds) is ``settle_s + step_s`` (the newest step a run
    can have collected) plus the region's median time between runs (the collector's
    ``--every``; 0 with fewer than two runs) plus ``lag_steps * step_s``.
    """

    step_s: float = 60.0
    settle_s: float = 60.0
    lag_steps: float = 3.0
    min_coverage: float = 0.95

    def allowed_lag_s(self, run_interval_s: float) -> float:
        """The lag (seconds) above which a signal is lagging, for a region whose runs
        start every ``run_interval_s`` seconds (median)."""
        interval = run_interval_s if math.isfinite(run_interval_s) else 0.0
        return self.settle_s + self.step_s + interval + self.lag_steps * self.step_s


def _timestamp(value: Any) -> pd.Timestamp | None:
    """An ISO 8601 text as a UTC-naive timestamp; None when absent or unreadable."""
    if value is None or value == "":
        return None
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if pd.isna(t):
        return None
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def _text(value: Any) -> str | None:
    """A non-empty text, or None (absent, null, NaN)."""
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _coverage(value: Any) -> dict[str, float | None]:
    if not isinstance(value, dict):
        return {}
    return {
        str(sig): float(r)
        if type(r) in (int, float) and math.isfinite(r)  # not bool, not NaN/inf
        else None
        for sig, r in value.items()
    }


def _times(values: pd.Series) -> pd.Series:
    """ISO 8601 texts as UTC-naive times (``NaT`` for anything else); texts without
    an offset are taken as UTC, like the collector writes them."""
    texts = values.map(lambda v: v if isinstance(v, str) and v else None)
    parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_localize(None).astype("datetime64[us]")


def parse_run_log(
    lines: Iterable[str | bytes], source: str = "runs.jsonl", first_line: int = 1
) -> RunLog:
    """Parse the collector's run log, skipping (and reporting) lines it cannot use.

    A line is skipped when it is not UTF-8, not JSON (a truncated last line: the
    collector was killed while appending), not a JSON object, or lacks ``region`` or
    a readable ``started_utc``.  Blank lines are ignored silently.  Other fields that
    are absent or of the wrong type become missing values.

    Args:
        lines: the file's lines (text or bytes, with or without line ends).
        source: the file's name or path, for the messages.
        first_line: the line number of ``lines[0]`` in the file (a reader that
            parses only the end of a long file passes where it starts).

    Returns:
        :class:`RunLog`.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[SkippedLine] = []
    items = list(lines)
    last_number = first_line + len(items) - 1
    for number, raw in enumerate(items, start=first_line):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            skipped.append(SkippedLine(source, number, f"not UTF-8 ({exc.reason})"))
            continue
        if not text.strip():
            continue
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            last = number == last_number and not text.endswith("\n")
            why = "truncated last line" if last else "not JSON"
            skipped.append(SkippedLine(source, number, f"{why} ({exc})"))
            continue
        if not isinstance(record, dict):
            skipped.append(SkippedLine(source, number, "not a JSON object"))
            continue
        region = record.get("region")
        if not isinstance(region, str) or not region:
            skipped.append(SkippedLine(source, number, "no `region`"))
            continue
        rows.append(
            {
                "line": number,
                "region": region,
                "status": str(record.get("status") or "unknown"),
                **{f: record.get(f) for f in _TIME_FIELDS},
                "rows": _number(record.get("rows")),
                "samples": _number(record.get("samples")),
                "seconds": _number(record.get("seconds")),
                "error": _text(record.get("error")),
                "coverage": _coverage(record.get("coverage")),
            }
        )
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    for col in _TIME_FIELDS:
        runs[col] = _times(runs[col])
    for col in ("rows", "samples", "seconds"):
        runs[col] = runs[col].astype(float)
    bad = runs["started_utc"].isna()
    skipped += [SkippedLine(source, int(n), "no readable `started_utc`") for n in runs["line"][bad]]
    skipped.sort(key=lambda s: s.line)
    runs = runs[~bad].sort_values(["started_utc", "line"], kind="stable").reset_index(drop=True)
    return RunLog(runs, skipped)


OK, ERROR, NONE = 1, 2, 0  # run outcomes for a signal (see run_outcomes)


def run_outcomes(status: pd.Series, error: pd.Series, recorded: np.ndarray) -> np.ndarray:
    """What each run did for one signal: :data:`OK`, :data:`ERROR` or :data:`NONE`.

    ``OK``: the run collected the signal or found it current (status ``ok`` or
    ``current``, or it recorded coverage for the signal).  ``ERROR``: the run failed,
    or recorded an error and no coverage for the signal.  ``NONE``: neither (a
    stopped run that had not reached the signal).

    Args:
        status, error: the runs' ``status`` and ``error`` columns.
        recorded: bool per run, True when its ``coverage`` names the signal (for
            :data:`EVERY_SIGNAL`: names any signal).
    """
    return _outcomes(_RunKinds.of(status, error), recorded)


@dataclass(frozen=True)
class _RunKinds:
    clean: np.ndarray  # status ok or current
    failed: np.ndarray  # status failed
    has_error: np.ndarray  # an error text was recorded

    @staticmethod
    def of(status: pd.Series, error: pd.Series) -> _RunKinds:
        return _RunKinds(
            status.isin(_CLEAN).to_numpy(dtype=bool),
            (status == "failed").to_numpy(dtype=bool),
            error.map(lambda e: _text(e) is not None).to_numpy(dtype=bool),
        )


def _outcomes(kinds: _RunKinds, recorded: np.ndarray) -> np.ndarray:
    return np.select(
        [kinds.clean, kinds.failed, recorded, kinds.has_error], [OK, ERROR, OK, ERROR], NONE
    ).astype(np.int8)


def _finished(runs: pd.DataFrame) -> pd.Series:
    """When each run ended (``finished_utc``, else ``started_utc`` + ``seconds``)."""
    approx = runs["started_utc"] + pd.to_timedelta(runs["seconds"].fillna(0.0), unit="s")
    return runs["finished_utc"].fillna(approx)


def median_run_interval_s(started: pd.Series) -> float:
    """Median seconds between consecutive run starts (NaN with fewer than two runs)."""
    times = pd.Series(pd.to_datetime(started)).dropna().sort_values()
    if len(times) < 2:
        return math.nan
    return float(times.diff().dropna().dt.total_seconds().median())


def weighted_coverage(
    ratios: Iterable[float | None] | np.ndarray, weights_s: Iterable[float] | np.ndarray
) -> float:
    """Coverage over several runs: their shares weighted by window length (seconds).

    Each run's expected (series, step) pairs are ``series x window / step``; with a
    constant number of series, weighting the runs' shares by window length gives the
    share of every expected pair over the runs.  Runs with a None share (no series)
    or a window of 0 s are left out; NaN when none is left.

    Raises:
        ValueError: not as many weights as ratios.
    """
    r = np.asarray(list(ratios), dtype=float)  # None -> NaN
    w = np.asarray(list(weights_s), dtype=float)
    if r.shape != w.shape:
        raise ValueError(f"{r.size} ratios but {w.size} weights")
    keep = np.isfinite(r) & (w > 0)
    den = float(w[keep].sum())
    return float((r[keep] * w[keep]).sum()) / den if den else math.nan


def signal_health(
    runs: pd.DataFrame,
    now: datetime,
    thresholds: HealthThresholds | None = None,
    marks: Mapping[str, Mapping[str, str | datetime]] | None = None,
    newest_steps: Mapping[tuple[str, str], datetime] | None = None,
    regions: Iterable[str] = (),
    day: timedelta = timedelta(hours=24),
) -> pd.DataFrame:
    """Health of every (region, signal): last success, lag, coverage, errors, status.

    Args:
        runs: :attr:`RunLog.runs` (columns :data:`RUN_COLUMNS`; may be empty).
        now: the current time (UTC; aware or naive).
        thresholds: see :class:`HealthThresholds` (default its defaults).
        marks: the state's per-signal resume points, region -> signal -> time
            (ISO text or datetime): the signal is collected up to there.
        newest_steps: (region, signal) -> the newest stored step (``ts_utc``).
        regions: regions to list even without runs (the catalogue): they get an
            :data:`EVERY_SIGNAL` row with status ``no data``.
        day: the recent window for ``coverage_24h`` and ``errors_24h``.

    Returns:
        One row per (region, signal), columns :data:`HEALTH_COLUMNS`, sorted by region
        and signal:

        - ``last_success_utc`` / ``last_success_age_s``: end of the latest run whose
          outcome for the signal was ``ok`` (:func:`run_outcome`) and seconds since;
        - ``collected_until_utc`` (state), ``newest_step_utc`` (store); ``lag_s`` is
          ``now`` minus the newest stored step, else minus the state's mark;
        - ``allowed_lag_s``: :meth:`HealthThresholds.allowed_lag_s` for the region;
        - ``coverage_last_run``: the share (0-1) of the latest run that found series
          of the signal (a run over a window without samples records None: the lag
          shows such a stall); ``coverage_24h``: :func:`weighted_coverage` over the runs that
          ended in the last ``day``;
        - ``errors_24h``: runs of the last ``day`` whose outcome was ``error``;
          ``last_error`` / ``last_error_utc``: the latest such run's error text;
        - ``status``: ``failing`` when the latest run with an outcome for the signal
          was an error; else ``no data`` when nothing was ever collected (no
          success with a share, no stored step); else ``lagging`` when ``lag_s >
          allowed_lag_s`` or ``coverage_last_run < min_coverage``; else ``ok``.
          A region never run has ``no data``.
    """
    th = thresholds or HealthThresholds()
    now_ts = _timestamp(now)
    if now_ts is None:
        raise ValueError(f"now: not a time: {now!r}")
    marks = marks or {}
    newest = {(r, s): _timestamp(t) for (r, s), t in (newest_steps or {}).items()}
    recent_cut = now_ts - pd.Timedelta(day)
    by_region = {str(r): g for r, g in runs.groupby("region", sort=True)}
    names = set(by_region) | set(marks) | {r for r, _ in newest} | set(regions)
    out: list[dict[str, Any]] = []
    for region in sorted(names):
        group = by_region.get(region, runs.iloc[0:0])
        covs = list(group["coverage"])
        signals = set().union(*covs, marks.get(region, {}))
        signals |= {s for r, s in newest if r == region}
        ends = _finished(group)
        by_signal: dict[str, tuple[list[int], list[float]]] = {}
        for i, cov in enumerate(covs):
            for sig, share in cov.items():
                idx, shares = by_signal.setdefault(sig, ([], []))
                idx.append(i)
                shares.append(math.nan if share is None else share)
        runs_of = _RegionRuns(
            group=group,
            kinds=_RunKinds.of(group["status"], group["error"]),
            any_recorded=np.array([bool(c) for c in covs], dtype=bool),
            by_signal=by_signal,
            ends=ends,
            recent=((ends > recent_cut) & (ends <= now_ts)).to_numpy(),
            windows=(group["window_end_utc"] - group["window_start_utc"])
            .dt.total_seconds()
            .to_numpy(dtype=float, na_value=np.nan),
            allowed_lag_s=th.allowed_lag_s(median_run_interval_s(group["started_utc"])),
        )
        for signal in sorted(signals) or [EVERY_SIGNAL]:
            out.append(
                _one_signal(
                    region,
                    signal,
                    runs_of,
                    now_ts,
                    th,
                    marks.get(region, {}).get(signal),
                    newest.get((region, signal)),
                )
            )
    frame = pd.DataFrame(out, columns=list(HEALTH_COLUMNS))
    for col in ("last_success_utc", "collected_until_utc", "newest_step_utc", "last_error_utc"):
        frame[col] = pd.to_datetime(frame[col])
    for col in ("last_success_age_s", "lag_s", "allowed_lag_s", "coverage_last_run"):
        frame[col] = frame[col].astype(float)
    frame["coverage_24h"] = frame["coverage_24h"].astype(float)
    frame["errors_24h"] = frame["errors_24h"].astype(int)
    return frame


@dataclass(frozen=True)
class _RegionRuns:
    """One region's runs, with what every signal's figures need (computed once)."""

    group: pd.DataFrame
    kinds: _RunKinds
    any_recorded: np.ndarray  # bool: the run recorded coverage for some signal
    by_signal: dict[str, tuple[list[int], list[float]]]  # signal -> (runs, shares)
    ends: pd.Series  # when each run ended
    recent: np.ndarray  # bool: ended in (now - day, now]
    windows: np.ndarray  # window length, seconds
    allowed_lag_s: float


def _one_signal(
    region: str,
    signal: str,
    rr: _RegionRuns,
    now: pd.Timestamp,
    th: HealthThresholds,
    mark: str | datetime | None,
    newest: pd.Timestamp | None,
) -> dict[str, Any]:
    n = len(rr.group)
    share = np.full(n, np.nan)
    if signal == EVERY_SIGNAL:
        recorded = rr.any_recorded
    else:
        recorded = np.zeros(n, dtype=bool)
        idx, shares = rr.by_signal.get(signal, ([], []))
        recorded[idx] = True
        share[idx] = shares
    outcome = _outcomes(rr.kinds, recorded)
    ends = rr.ends.to_numpy()
    ok_ends = ends[(outcome == OK) & ~pd.isna(ends)]
    last_success = pd.Timestamp(ok_ends.max()) if len(ok_ends) else None
    errors = np.flatnonzero(outcome == ERROR)
    last_err = int(errors[-1]) if len(errors) else None
    decided = outcome[outcome != NONE]
    with_share = np.flatnonzero(~np.isnan(share))
    coverage_last = float(share[with_share[-1]]) if len(with_share) else None
    pick = rr.recent & ~np.isnan(share)
    coverage_24h = weighted_coverage(share[pick], rr.windows[pick])

    until = _timestamp(mark)
    reference = newest if newest is not None else until
    lag_s = (now - reference).total_seconds() if reference is not None else math.nan
    has_data = newest is not None or coverage_last is not None
    if signal == EVERY_SIGNAL:
        has_data = has_data or bool(len(ok_ends) and (rr.group["rows"].fillna(0) > 0).any())

    status: Status
    if len(decided) and decided[-1] == ERROR:
        status = "failing"
    elif not has_data:
        status = "no data"
    elif (math.isfinite(lag_s) and lag_s > rr.allowed_lag_s) or (
        coverage_last is not None and coverage_last < th.min_coverage
    ):
        status = "lagging"
    else:
        status = "ok"
    return {
        "region": region,
        "signal": signal,
        "status": status,
        "last_success_utc": last_success,
        "last_success_age_s": (now - last_success).total_seconds()
        if last_success is not None
        else math.nan,
        "collected_until_utc": until,
        "newest_step_utc": newest,
        "lag_s": lag_s,
        "allowed_lag_s": rr.allowed_lag_s,
        "coverage_last_run": coverage_last if coverage_last is not None else math.nan,
        "coverage_24h": coverage_24h,
        "errors_24h": int(np.count_nonzero(rr.recent & (outcome == ERROR))),
        "last_error": _text(rr.group["error"].iloc[last_err]) if last_err is not None else None,
        "last_error_utc": rr.ends.iloc[last_err] if last_err is not None else None,
    }


def format_age(seconds: float) -> str:
    """A duration in seconds as short text: ``45 s``, ``12 min``, ``3.2 h``, ``2.1 d``
    (empty for NaN; negative durations, e.g. a clock behind the data, keep their sign)."""
    if not math.isfinite(seconds):
        return ""
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 120:
        return f"{sign}{s:.0f} s"
    if s < 2 * 3600:
        return f"{sign}{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} d"


def status_grid(health: pd.DataFrame) -> pd.DataFrame:
    """The statuses as a signal x region table (rows signals, columns regions).

    Cells without a (region, signal) row are ``None``.  Values: :data:`STATUSES`.
    """
    if health.empty:
        return pd.DataFrame()
    grid = health.pivot(index="signal", columns="region", values="status")
    return grid.astype(object).where(grid.notna(), None)


def run_history(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: ``region``, ``started_utc``, ``status``, ``seconds`` (duration),
    ``samples``, ``rows`` and ``errors`` (the number of ``; ``-joined errors the run
    recorded, 0 without), sorted by start."""
    errors = runs["error"].map(lambda e: len(e.split("; ")) if _text(e) else 0).astype(int)
    return (
        runs[["region", "started_utc", "status", "seconds", "samples", "rows"]]
        .assign(errors=errors.to_numpy(dtype=np.int64))
        .reset_index(drop=True)
    )


def region_summary(runs: pd.DataFrame, regions: Iterable[str] = ()) -> pd.DataFrame:
    """The last run of every region, plus catalogue ``regions`` never collected.

    Columns: ``region``, ``status`` (None: never collected), ``started_utc``,
    ``finished_utc``, ``window_start_utc``, ``window_end_utc``, ``rows``, ``error``,
    ``runs`` (count) and ``failed_runs`` (status ``failed``); sorted by region.
    """
    cols = ["status", "started_utc", "finished_utc", "window_start_utc", "window_end_utc"]
    last = runs.groupby("region", sort=True).tail(1).set_index("region")
    counts = runs.groupby("region")["status"].agg(
        runs="size", failed_runs=lambda s: int((s == "failed").sum())
    )
    names = sorted(set(last.index) | set(regions))
    frame = pd.DataFrame({"region": names}).set_index("region")
    frame = frame.join(last[[*cols, "rows", "error"]]).join(counts)
    frame["runs"] = frame["runs"].fillna(0).astype(int)
    frame["failed_runs"] = frame["failed_runs"].fillna(0).astype(int)
    frame["status"] = frame["status"].astype(object).where(frame["status"].notna(), None)
    return frame.reset_index()

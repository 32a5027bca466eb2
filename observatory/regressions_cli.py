"""``observatory regressions``, ``observatory regressions verdict`` and ``observatory annotate``.

``regressions`` exits 1 when a critical regression (error ratio, accuracy, p99 or
mean latency getting worse) is still open, so a CI/CD pipeline can gate on it;
``regressions verdict`` exits 1 when a verdict is Fail; both 2 for bad usage, 5 for
no data in the store or nothing to compare (:mod:`observatory.exit_codes`).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from observatory.cli_args import open_store, parse_duration_option, parse_time
from observatory.exit_codes import EXIT_FAILED as EXIT_OPEN_CRITICAL
from observatory.exit_codes import EXIT_NO_DATA, EXIT_OK, EXIT_USAGE, exit_no_data

_store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False),
    help="Store folder (default: the config's store, or data/demo).",
)
_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Configuration file."
)


@click.command("annotate")
@click.argument("description")
@click.option("--at", "at", help="When (UTC ISO 8601; default: now).")
@click.option("--region", help="Region it concerns (default: all).")
@click.option("--model", help="Model it concerns (default: all).")
@click.option("--arm", help="Arm / version it concerns (default: all).")
@click.option("--kind", default="deployment", show_default=True, help="Kind of event.")
@click.option("--author", help="Who records it.")
@_store_option
@_config_option
def annotate(
    description: str,
    at: str | None,
    region: str | None,
    model: str | None,
    arm: str | None,
    kind: str,
    author: str | None,
    store_path: str | None,
    config_path: str | None,
) -> None:
    """Record a deployment (or another event) in the store, for regression causes and verdicts."""
    from observatory import annotations as notes

    store = open_store(store_path, config_path)
    when = parse_time(at, "--at") or datetime.now(UTC)
    if region is not None:
        known = _regions_with_data(store, ("counters", "gauges"))
        if known and region not in known:
            # Recorded all the same: a deployment may go to a region before its data does.
            click.echo(
                f"warning: --region {region!r} has no data in the store at {store.root} "
                f"(regions with data: {', '.join(sorted(known))}); recorded anyway",
                err=True,
            )
    try:
        target = notes.add(
            store.root,
            notes.Annotation(when, description, kind, region, model, arm, author),
        )
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"annotated {when.isoformat()} {description!r} in {target}")


_score_options = [
    click.option(
        "--pass-score", default=95.0, show_default=True, help="Verdict score needed to Pass."
    ),
    click.option(
        "--marginal-score",
        default=75.0,
        show_default=True,
        help="Verdict score needed for Marginal (below: Fail).",
    ),
]


def _scores(f: Any) -> Any:
    for option in reversed(_score_options):
        f = option(f)
    return f


def _check_scores(pass_score: float, marginal_score: float) -> None:
    if not 0 <= marginal_score <= pass_score <= 100:
        click.echo(
            f"error: expected 0 <= --marginal-score ({marginal_score:g}) <= --pass-score "
            f"({pass_score:g}) <= 100",
            err=True,
        )
        sys.exit(EXIT_USAGE)


def _regions_with_data(store: Any, tables: tuple[str, ...]) -> set[str]:
    """Regions with a data partition in ``tables`` (folder listings, no data read)."""
    return {p.region for table in tables for p in store.partitions(table)}


def _known_regions(store: Any, regions: tuple[str, ...]) -> None:
    """Refuse unknown region names: a typo must not turn a CI/CD gate into "no regression"."""
    if not regions:
        return
    known = set(store.query("SELECT DISTINCT region FROM regions")["region"])
    known |= _regions_with_data(store, ("counters",))
    unknown = sorted(set(regions) - known)
    if unknown:
        click.echo(f"error: unknown region(s) {unknown}; the store has {sorted(known)}", err=True)
        sys.exit(EXIT_USAGE)


def _check_bin(bin_s: int) -> None:
    if bin_s < 60 or bin_s % 60:
        click.echo("error: --bin must be a multiple of 60 seconds", err=True)
        sys.exit(EXIT_USAGE)


@click.group("regressions", invoke_without_command=True)
@click.option("--since", default="24h", show_default=True, help="Show regressions since (24h).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--end", help="Analyse up to this UTC time (default: the last stored step).")
@click.option(
    "--lookback",
    default="14d",
    show_default=True,
    help="History analysed before the end (baselines need days).",
)
@click.option("--bin", "bin_s", default=60, show_default=True, help="Bin length in seconds.")
@click.option("--region", "regions", multiple=True, help="Only this region (repeatable).")
@_scores
@_store_option
@_config_option
@click.pass_context
def regressions(
    ctx: click.Context,
    since: str,
    fmt: str,
    end: str | None,
    lookback: str,
    bin_s: int,
    regions: tuple[str, ...],
    pass_score: float,
    marginal_score: float,
    store_path: str | None,
    config_path: str | None,
) -> None:
    """Detected regressions and deployment verdicts; exit 1 while a critical one is open.

    The analysis state is kept in the store (``.regressions/``): a repeat run only
    loads and analyses what is new.  ``observatory regressions verdict`` compares two
    time ranges or two arms.
    """
    if ctx.invoked_subcommand is not None:
        return
    from observatory import regressions as reg
    from observatory.store import StoreMissing

    store = open_store(store_path, config_path)
    _known_regions(store, regions)
    _check_bin(bin_s)
    _check_scores(pass_score, marginal_score)
    window = parse_duration_option(since, "--since")  # a usage error before the analysis, not after
    try:
        report = reg.analyse(
            store,
            end=parse_time(end, "--end"),
            lookback=parse_duration_option(lookback, "--lookback"),
            bin_s=bin_s,
            regions=list(regions) or None,
            pass_score=pass_score,
            marginal_score=marginal_score,
        )
    except StoreMissing:
        exit_no_data(store.root)
    shown = reg.select(report, window)
    cut = report.end - window
    verdicts = [v for v in report.verdicts if v.event.time.replace(tzinfo=UTC) > cut]
    critical = reg.open_critical(shown)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "start_utc": report.start.isoformat(),
                    "end_utc": report.end.isoformat(),
                    "since": since,
                    "open_critical": len(critical),
                    "regressions": [r.as_dict() for r in shown],
                    "verdicts": [v.as_dict() for v in verdicts],
                },
                indent=2,
                default=str,
            )
        )
    else:
        click.echo(
            f"regressions since {cut:%Y-%m-%d %H:%M} UTC (or still open), "
            f"analysed {report.start:%Y-%m-%d %H:%M} .. {report.end:%Y-%m-%d %H:%M} UTC"
        )
        if not shown:
            click.echo("none")
        for r in shown:
            state = "OPEN  " if r.open else "closed"
            cause = f"  cause: {r.cause.description} ({r.cause.kind})" if r.cause else ""
            click.echo(
                f"{r.start:%Y-%m-%d %H:%M}  {r.severity:<11} {state} {r.region:<15} "
                f"{r.model}/{r.arm:<4} {r.signal:<21} "
                f"{reg.fmt_value(r.before, r.unit)} -> {reg.fmt_value(r.after, r.unit)} "
                f"({r.relative:+.1%}){cause}"
            )
        for v in verdicts:
            click.echo(
                f"verdict {v.event.time:%Y-%m-%d %H:%M}  {v.verdict.verdict:<8} "
                f"score {v.verdict.score:5.1f}  {v.region} {v.model}/{v.arm}  "
                f"{v.event.description}: {v.verdict.reason}"
            )
        if critical:
            click.echo(f"{len(critical)} critical regression(s) open", err=True)
    sys.exit(EXIT_OPEN_CRITICAL if critical else EXIT_OK)


def _span(text: str | None, option: str) -> tuple[datetime, datetime] | None:
    """``START..END`` (UTC ISO 8601 times) as a pair of aware times."""
    if text is None:
        return None
    parts = text.split("..")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise click.BadParameter(
            f"expected START..END such as 2026-11-27T10:00Z..2026-11-27T11:00Z, got {text!r}",
            param_hint=option,
        )
    a, b = (parse_time(p.strip(), option) for p in parts)
    assert a is not None and b is not None
    if b <= a:
        raise click.BadParameter(f"{text!r} ends before it starts", param_hint=option)
    return a, b


@regressions.command("verdict")
@click.option("--baseline", help="Baseline range START..END (UTC ISO 8601), with --canary.")
@click.option("--canary", help="Canary range START..END (UTC ISO 8601), with --baseline.")
@click.option("--arms", help="CONTROL,EXPERIMENT: two arms compared over the same bins.")
@click.option(
    "--during",
    help="With --arms: the range START..END compared (default: the last 24 hours of data).",
)
@click.option("--region", help="Only this region.")
@click.option("--model", help="Only this model.")
@click.option("--arm", help="Only this arm (with --baseline/--canary).")
@click.option("--bin", "bin_s", default=300, show_default=True, help="Bin length in seconds.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@_scores
@_store_option
@_config_option
def verdict(
    baseline: str | None,
    canary: str | None,
    arms: str | None,
    during: str | None,
    region: str | None,
    model: str | None,
    arm: str | None,
    bin_s: int,
    fmt: str,
    pass_score: float,
    marginal_score: float,
    store_path: str | None,
    config_path: str | None,
) -> None:
    """Kayenta-style verdict (Pass / Marginal / Fail) of a canary range against a baseline
    range, or of one arm against another; exit 1 when any verdict is Fail, 2 on bad
    usage, 5 when nothing could be compared (no series with data in both) or the store
    holds no data."""
    from observatory import regressions as reg
    from observatory.store import StoreMissing

    base, can = _span(baseline, "--baseline"), _span(canary, "--canary")
    if arms is None and (base is None or can is None):
        raise click.UsageError("give --baseline and --canary, or --arms CONTROL,EXPERIMENT")
    if arms is not None and (base is not None or can is not None):
        raise click.UsageError("--arms compares arms over --during; drop --baseline/--canary")
    if arms is not None and arm is not None:
        raise click.UsageError("--arm narrows --baseline/--canary; with --arms both arms are named")
    if arms is None and during is not None:
        raise click.UsageError("--during goes with --arms; ranges are --baseline and --canary")
    store = open_store(store_path, config_path)
    _known_regions(store, (region,) if region else ())
    _check_bin(bin_s)
    _check_scores(pass_score, marginal_score)
    try:
        _first, last = reg.time_bounds(store)
    except StoreMissing:
        exit_no_data(store.root)
    scores = {"pass_score": pass_score, "marginal_score": marginal_score}
    regions = [region] if region else None
    if arms is not None:
        pair = [a.strip() for a in arms.split(",")]
        if len(pair) != 2 or not all(pair) or pair[0] == pair[1]:
            raise click.BadParameter(
                f"expected two different arms CONTROL,EXPERIMENT, got {arms!r}",
                param_hint="--arms",
            )
        span = _span(during, "--during") or (last - timedelta(hours=24), last)
        signals = reg.load_signals(store, span[0], span[1], bin_s, regions)
        out = reg.arm_verdicts(signals, pair[0], pair[1], span, region, model, **scores)
    else:
        assert base is not None and can is not None
        lo, hi = min(base[0], can[0]), max(base[1], can[1])
        signals = reg.load_signals(store, lo, hi, bin_s, regions)
        out = reg.range_verdicts(signals, base, can, region, model, arm, **scores)
    if not out:
        # a CI/CD gate must not pass on a comparison of nothing (an unknown arm or model,
        # ranges outside the stored data)
        click.echo(
            "error: nothing compared: no series has data in both ranges / arms; check "
            "--arms, --model, --region and the ranges against the store "
            '(observatory sql "SELECT DISTINCT region, model, arm FROM counters")',
            err=True,
        )
        sys.exit(EXIT_NO_DATA)
    if fmt == "json":
        click.echo(json.dumps({"verdicts": [v.as_dict() for v in out]}, indent=2, default=str))
    for v in out if fmt == "table" else []:
        click.echo(
            f"{v.verdict.verdict:<8} score {v.verdict.score:5.1f}  {v.region} {v.model}/{v.arm}  "
            f"{v.event.description}: {v.verdict.reason}"
        )
        for sres in v.verdict.signals:
            click.echo(f"    {sres.name:<21} {sres.classification:<7} ratio {sres.ratio:.3f}")
    sys.exit(EXIT_OPEN_CRITICAL if any(v.verdict.verdict == "Fail" for v in out) else EXIT_OK)


@regressions.command("precompute")
@click.option(
    "--lookback",
    "lookbacks",
    multiple=True,
    default=("24h",),
    show_default=True,
    help="Window(s) to precompute, as the dashboard's time ranges (repeatable: 24h, 7d).",
)
@click.option("--bin", "bin_s", default=60, show_default=True, help="Bin length in seconds.")
@click.option(
    "--batch", default=4, show_default=True, help="Regions analysed at a time (bounds memory)."
)
@click.option("--force", is_flag=True, help="Recompute even when the store's data did not change.")
@_store_option
@_config_option
def precompute(
    lookbacks: tuple[str, ...],
    bin_s: int,
    batch: int,
    force: bool,
    store_path: str | None,
    config_path: str | None,
) -> None:
    """Analyse the whole fleet off the request path for the dashboard's Regressions page.

    Writes ``<store>/.regressions/findings-<bin>-<lookback>/`` (see
    observatory/regressions_findings.py); run it after each collection (cron or the
    scheduler).  A window whose findings were computed from the store's current data
    version is skipped unless ``--force``.
    """
    import time

    from observatory import regressions_findings as rf
    from observatory.store import StoreMissing

    store = open_store(store_path, config_path)
    _check_bin(bin_s)
    if batch < 1:
        raise click.BadParameter(f"expected at least 1, got {batch}", param_hint="--batch")
    windows = [parse_duration_option(text, "--lookback") for text in lookbacks]
    for text, lookback in zip(lookbacks, windows, strict=True):
        old = rf.load(store.root, bin_s, lookback)
        if old is not None and not force and old.data_version == store.data_version():
            click.echo(f"{text}: up to date (data version {old.data_version})")
            continue
        t0 = time.perf_counter()
        try:
            found, where = rf.save(store, lookback=lookback, bin_s=bin_s, batch=batch)
        except StoreMissing:
            exit_no_data(store.root)
        click.echo(
            f"{text}: {len(found.regressions)} changes in {len(found.regions)} regions, "
            f"{found.start:%Y-%m-%d %H:%M} .. {found.end:%Y-%m-%d %H:%M} UTC, "
            f"{time.perf_counter() - t0:.1f} s -> {where}"
        )

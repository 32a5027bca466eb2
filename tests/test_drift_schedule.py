"""The schedule file (strict, errors with file:line) and the cron scheduler of `observatory run`."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from drift_support import drift_store

from observatory.cli import main
from observatory.config import ConfigError
from observatory.drift_engine import aligned_end
from observatory.drift_schedule import (
    JobResult,
    Scheduler,
    load_schedule,
    once_exit_code,
    parse_schedule,
    run_forever,
)
from observatory.store import Store

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "drift" / "schedule.yaml"


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_schedule(text, source="s.yaml")
    return info.value.messages


def test_example_schedule_is_valid() -> None:
    schedule = load_schedule(EXAMPLE)
    assert [j.name for j in schedule.settings.reports] == ["daily", "weekly"]
    # no overrides: the Drift page only opens on reports with the default signals
    assert schedule.settings.signals == [] and schedule.settings.reports[0].align == timedelta(
        hours=24
    )
    repo = EXAMPLE.parent.parent.parent
    pre = schedule.settings.precompute
    assert pre is not None and pre.cron == "*/5 * * * *"
    assert pre.regressions == [timedelta(hours=24)]
    assert schedule._resolve(pre.slo_specs[0]).resolve() == (repo / "examples" / "slo").resolve()
    # the demo store's own archive, where `observatory demo` writes and `serve` reads
    assert schedule.out_path.resolve() == (repo / "data" / "demo" / "drift-reports").resolve()
    assert schedule.store_path.resolve() == (repo / "data" / "demo").resolve()


def test_a_collector_configuration_given_as_the_schedule_says_so() -> None:
    text = (
        "store: data\ncollection: {step: 60s}\nregions:\n"
        "  - {name: r1, url: 'http://127.0.0.1:9090', latitude: 1, longitude: 2}\n"
    )
    first, *rest = errors(text)
    assert first.startswith("s.yaml: this is a collector configuration (its `regions` have URLs)")
    assert "`config: s.yaml`" in first
    assert "s.yaml:2: collection: unknown key (check the spelling; see docs/drift.md)" in rest
    # a schedule with a mistake of its own gets no such line
    assert not any("collector configuration" in m for m in errors("store: data\nreprts: []\n"))


def test_errors_name_file_line_and_key() -> None:
    text = "store: data\nreports:\n  - name: daily\n    cron: '61 * * * *'\n"
    assert errors(text) == [
        "s.yaml:4: reports[0].cron: expected a cron expression of 5 fields (minute hour "
        "day month weekday), e.g. '15 0 * * *', got '61 * * * *'"
    ]
    (msg,) = errors("store: data\nreports:\n  - name: d\n    cron: '0 * * * *'\n    windw: 24h\n")
    assert msg.startswith("s.yaml:5: reports[0].windw: unknown key")
    (msg,) = errors("store: data\nreports:\n  - name: d\n    cron: '0 * * * *'\n    window: 5x\n")
    assert msg.startswith("s.yaml:5: reports[0].window: expected a duration")
    (msg,) = errors(
        "store: data\nreports:\n  - {name: d, cron: '0 * * * *'}\n"
        "signals:\n  - name: latency\n  - name: lateny\n"
    )
    assert msg.startswith("s.yaml:6: signals[1].name: unknown drift signal 'lateny'")
    (msg,) = errors("store: data\nreports:\n  - {name: d, cron: '0 * * * *', reference: x}\n")
    assert msg.startswith("s.yaml:3: reports[0].reference:")
    (msg,) = errors("store: data\ncollect: '*/5 * * * *'\n")
    assert "'collect' needs 'config'" in msg
    (msg,) = errors("reports:\n  - {name: d, cron: '0 * * * *'}\n")
    assert "exactly one of 'config'" in msg
    zone, empty = errors("store: data\ntimezone: Mars/Olympus\nreports: []\ncollect: null\n")
    assert zone.startswith("s.yaml:2: timezone: unknown time zone")
    assert empty.startswith("s.yaml:4: collect: is empty")  # null is no cron: said, not ignored
    assert errors("store: [unclosed\n")[0].startswith("s.yaml:")


def test_named_config_file_is_validated(tmp_path: Path) -> None:
    (tmp_path / "observatory.yaml").write_text("regions: []\n")
    (tmp_path / "s.yaml").write_text("config: observatory.yaml\ncollect: '*/5 * * * *'\n")
    with pytest.raises(ConfigError) as info:
        load_schedule(tmp_path / "s.yaml")
    assert "observatory.yaml" in info.value.messages[0]


class FakeClock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def test_scheduler_runs_due_jobs_and_coalesces_missed_runs() -> None:
    schedule = parse_schedule(
        "store: data\ntimezone: Europe/Berlin\n"
        "reports:\n  - {name: hourly, cron: '0 * * * *'}\n"
        "  - {name: daily, cron: '15 6 * * *'}\n"
    )
    clock = FakeClock(datetime(2026, 11, 30, 4, 30, tzinfo=UTC))
    ran: list[str] = []

    def job(name: str):  # type: ignore[no-untyped-def]
        def action() -> JobResult:
            ran.append(name)
            clock.t += timedelta(minutes=1)  # a job takes a minute
            return JobResult(name, clock(), 60.0, True, "done")

        return action

    sched = Scheduler(schedule, clock, {"hourly": job("hourly"), "daily": job("daily")})
    assert sched.next["hourly"] == datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
    # 06:15 Berlin is 05:15 UTC in winter.
    assert sched.next["daily"] == datetime(2026, 11, 30, 5, 15, tzinfo=UTC)
    assert sched.due(clock()) == []
    clock.t = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
    assert [r.job for r in sched.tick(clock())] == ["hourly"]
    assert sched.next["hourly"] == datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    # The process sleeps through three hours: each job runs once, not once per miss.
    clock.t = datetime(2026, 11, 30, 8, 20, tzinfo=UTC)
    assert sorted(r.job for r in sched.tick(clock())) == ["daily", "hourly"]
    assert ran == ["hourly", "hourly", "daily"]
    assert sched.next["hourly"] == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert sched.next["daily"] == datetime(2026, 12, 1, 5, 15, tzinfo=UTC)


def test_failed_job_does_not_stop_the_loop(tmp_path: Path) -> None:
    # a store whose only data file is not Parquet (a torn copy): the job fails for real
    part = tmp_path / "store/lake/histograms/signal=latency/date=2026-11-29/region=r1/h00.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not parquet")
    schedule = parse_schedule(
        f"store: {tmp_path / 'store'}\nout: {tmp_path / 'out'}\n"
        "reports:\n  - {name: r, cron: '* * * * *'}\n"
    )
    sched = Scheduler(schedule)
    result = sched.run_job("r")
    assert not result.ok and str(part) in result.message  # reported, not raised
    stop = threading.Event()
    stop.set()
    run_forever(sched, stop)  # returns at once when stopped


def test_precompute_job_runs_on_its_cron_and_reports_each_part(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    store = drift_store(tmp_path_factory)
    folder = tmp_path_factory.mktemp("precompute-schedule")
    cfg = folder / "schedule.yaml"
    specs = Path(__file__).resolve().parent.parent / "examples" / "slo"
    cfg.write_text(f"store: {store}\nprecompute:\n  cron: '*/5 * * * *'\n  slo_specs: [{specs}]\n")
    schedule = load_schedule(cfg)
    clock = FakeClock(datetime(2026, 11, 30, 4, 31, tzinfo=UTC))
    sched = Scheduler(schedule, clock)
    assert sched.next == {"precompute": datetime(2026, 11, 30, 4, 35, tzinfo=UTC)}
    result = sched.run_job("precompute")
    assert result.ok, result.message
    # each part as "<part> <seconds> s: <what it did>" (a message may hold "; " itself)
    parts = re.findall(r"(?:^|; )(slo|experiments|regressions \S+) [\d.]+ s: ", result.message)
    assert parts == ["slo", "experiments", "regressions 24h"], result.message
    assert "9 SLOs evaluated" in result.message and "FAILED" not in result.message
    # a second run finds the regressions findings current
    assert "regressions 24h " in sched.run_job("precompute").message
    assert "up to date" in sched.run_job("precompute").message
    # nothing at all is refused
    with pytest.raises(ConfigError, match="add 'collect', 'reports' or 'precompute'"):
        parse_schedule("store: s\n")


def test_a_report_named_like_a_job_or_twice_names_its_field() -> None:
    jobs = (
        "store: s\nreports:\n  - {name: a, cron: '0 0 * * *'}\n  - {name: b, cron: '0 0 * * *'}\n"
    )
    for reserved in ("precompute", "collect"):
        (msg,) = errors(f"{jobs}  - name: {reserved}\n    cron: '0 0 * * *'\n")
        assert msg == (
            f"s.yaml:5: reports[2].name: {reserved!r} is the name of the {reserved} job "
            "('collect' and 'precompute' are job names of their own): give this report "
            "another name, e.g. 'daily'"
        )
    (msg,) = errors(f"{jobs}  - {{name: a, cron: '0 1 * * *'}}\n")
    assert (
        msg
        == "s.yaml:5: reports[2].name: 'a' is given twice (also reports[0].name): each name once"
    )
    (msg,) = errors(f"{jobs}signals:\n  - name: latency\n  - name: latency\n")
    assert msg.startswith("s.yaml:7: signals[1].name: 'latency' is given twice")


@pytest.mark.parametrize(
    ("key", "line"), [("precompute", 4), ("collect", 4), ("reports", 2), ("signals", 4)]
)
def test_an_empty_section_is_refused_not_ignored(key: str, line: int) -> None:
    text = "config: c.yaml\nreports:\n  - {name: d, cron: '0 0 * * *'}\n"
    text = f"config: c.yaml\n{key}:\n" if key == "reports" else f"{text}{key}:\n"
    (msg,) = errors(text)
    assert msg.startswith(f"s.yaml:{line}: {key}: is empty: give "), msg
    assert msg.endswith("or remove the key (docs/drift.md)")


def test_an_empty_precompute_section_names_the_file_when_loaded(tmp_path: Path) -> None:
    cfg = tmp_path / "schedule.yaml"
    cfg.write_text("store: s\nreports:\n  - {name: d, cron: '0 0 * * *'}\nprecompute:\n")
    with pytest.raises(ConfigError) as info:
        load_schedule(cfg)
    assert info.value.messages == [
        f"{cfg}:4: precompute: is empty: give at least its cron, e.g. precompute: "
        '{cron: "*/5 * * * *"}, or remove the key (docs/drift.md)'
    ]
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--once"])
    assert res.exit_code == 3 and f"{cfg}:4: precompute: is empty" in res.output


def test_on_a_store_without_data_every_job_says_no_data_yet(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    cfg = tmp_path / "schedule.yaml"
    specs = Path(__file__).resolve().parent.parent / "examples" / "slo"
    cfg.write_text(
        f"store: store\nout: out\nreports:\n  - {{name: daily, cron: '0 0 * * *'}}\n"
        f"precompute:\n  cron: '*/5 * * * *'\n  slo_specs: [{specs}]\n  regressions: [24h, 7d]\n"
    )
    sched = Scheduler(load_schedule(cfg))
    pre = sched.run_job("precompute")
    # every part alike, none failed: no KeyError from the experiments part
    assert pre.ok and pre.exit_code == 5, pre.message
    assert pre.message == (
        "slo 0.0 s: no data yet; experiments 0.0 s: no data yet; regressions 24h 0.0 s: "
        f"no data yet; regressions 7d 0.0 s: no data yet (store {store})"
    )
    daily = sched.run_job("daily")
    assert daily.ok and daily.exit_code == 5 and daily.paths == []
    assert daily.message.startswith(f"no data yet in the store at {store} (no data files)")
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--once"])
    assert res.exit_code == 5, res.output  # "nothing judged", not a failure (4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schedule.yaml", "store"]
    assert list(store.iterdir()) == []  # nothing written into the empty store


def test_late_labels_refuse_metric_and_rule() -> None:
    text = (
        "store: data/demo\nreports:\n  - {name: d, cron: '0 0 * * *'}\n"
        "signals:\n  - {name: accuracy_late_labels, metric: psi}\n"
    )
    with pytest.raises(ConfigError, match=r"s\.yaml:5: signals\[0\]: accuracy_late_labels: metric"):
        parse_schedule(text, "s.yaml")
    ok = parse_schedule(text.replace("metric: psi", "min_count: 50"), "s.yaml")
    (late,) = [x for x in ok.signals() if x.name == "accuracy_late_labels"]
    assert late.minimum() == 50 and late.kind == "labels"


def test_run_once_writes_the_archive(tmp_path_factory: pytest.TempPathFactory) -> None:
    store = drift_store(tmp_path_factory)
    out = tmp_path_factory.mktemp("archive")
    cfg = out / "schedule.yaml"
    cfg.write_text(
        f"store: {store}\nout: {out / 'reports'}\n"
        "regions: [sa-east-1]\n"
        "reports:\n  - {name: daily, cron: '15 0 * * *', window: 24h, reference: 7d,"
        " formats: [md, json]}\n"
        "signals:\n"
        + "".join(
            f"  - {{name: {n}, enabled: false}}\n"
            for n in (
                "latency",
                "ttft",
                "prompt_length",
                "prediction_score",
                "gpu_utilization",
                "error_ratio",
                "energy_per_request",
            )
        )
    )
    result = CliRunner().invoke(main, ["run", "--config", str(cfg), "--once"])
    assert result.exit_code == 0, result.output
    # accuracy (gauge) and accuracy (late labels) of sa-east-1's 4 model/arms
    assert "daily" in result.output and "no drift in 8 signals" in result.output
    names = sorted(p.name for p in (out / "reports").iterdir())
    assert names == ["drift-2026-11-30T0000Z-24h.json", "drift-2026-11-30T0000Z-24h.md"]
    bad = CliRunner().invoke(main, ["run", "--config", str(out / "nope.yaml")])
    assert bad.exit_code == 3


def test_aligned_end_floors_the_latest_data(tmp_path_factory: pytest.TempPathFactory) -> None:
    store = Store(drift_store(tmp_path_factory))
    at = datetime(2026, 11, 29, 12, 37, 30)
    assert aligned_end(store, timedelta(hours=1), at) == datetime(2026, 11, 29, 12, 0)
    assert aligned_end(store, timedelta(hours=24), at) == datetime(2026, 11, 29)
    assert aligned_end(store, timedelta(minutes=15), at) == datetime(2026, 11, 29, 12, 30)
    aware = datetime(2026, 11, 29, 13, 37, tzinfo=timezone(timedelta(hours=1)))
    assert aligned_end(store, timedelta(hours=1), aware) == datetime(2026, 11, 29, 12, 0)
    # The demo store's latest step is 2026-11-30 00:00: already on the hour.
    assert aligned_end(store, timedelta(hours=1)) == datetime(2026, 11, 30)
    with pytest.raises(ValueError, match="whole number of minutes"):
        aligned_end(store, timedelta(seconds=90), at)


def test_a_job_and_the_command_align_the_window_end(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    store = drift_store(tmp_path_factory)
    out = tmp_path_factory.mktemp("aligned")
    text = (
        f"store: {store}\nout: {out}\nregions: [sa-east-1]\n"
        "reports:\n  - {name: d, cron: '5 * * * *', window: 6h, align: 1h, formats: [json]}\n"
    )
    job = parse_schedule(text, source="s.yaml").settings.reports[0]
    assert job.align == timedelta(hours=1)
    (msg,) = errors(text.replace("align: 1h", "align: 90s"))
    assert msg.startswith("s.yaml:5: reports[0].align: ") and "whole number of minutes" in msg
    args = ["report", "drift", "--store", str(store), "--out", str(out), "--format", "json"]
    args += ["--region", "sa-east-1", "--signal", "accuracy"]
    done = CliRunner().invoke(main, [*args, "--end", "2026-11-29T12:37Z", "--align", "1h"])
    assert done.exit_code == 0, done.output
    assert (out / "drift-2026-11-29T1200Z-24h.json").is_file()
    bad = CliRunner().invoke(main, [*args, "--align", "90s"])
    assert bad.exit_code == 3 and "--align must be a positive whole number" in bad.output


def test_align_must_divide_a_day(tmp_path_factory: pytest.TempPathFactory) -> None:
    store = drift_store(tmp_path_factory)
    text = "store: s\nreports:\n  - {name: d, cron: '5 * * * *', align: 7m}\n"
    (msg,) = errors(text)
    assert msg.startswith("s.yaml:3: reports[0].align: ") and "must divide a day" in msg
    assert parse_schedule(text.replace("7m", "6h")).settings.reports[0].align == timedelta(hours=6)
    args = ["report", "drift", "--store", str(store), "--out", str(store.parent / "x")]
    bad = CliRunner().invoke(main, [*args, "--align", "7d"])
    assert bad.exit_code == 3 and "--align must divide a day" in bad.output, bad.output


def test_precompute_paths_are_checked_when_the_schedule_loads(tmp_path: Path) -> None:
    cfg = tmp_path / "schedule.yaml"
    cfg.write_text("store: s\nprecompute:\n  cron: '*/5 * * * *'\n  slo_specs: [no-such]\n")
    with pytest.raises(ConfigError, match=r"precompute\.slo_specs\[0\]: no such file or folder"):
        load_schedule(cfg)
    cfg.write_text("store: s\nprecompute:\n  cron: '*/5 * * * *'\n  experiments: bad.yaml\n")
    (tmp_path / "bad.yaml").write_text("experiments: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_schedule(cfg)


def test_a_precompute_part_failing_fails_the_job(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    store = drift_store(tmp_path_factory)
    folder = tmp_path_factory.mktemp("precompute-fails")
    specs = folder / "specs"
    specs.mkdir()
    (specs / "broken.yaml").write_text("version: prometheus/v1\nservice: x\nslos: 3\n")
    cfg = folder / "schedule.yaml"
    cfg.write_text(f"store: {store}\nprecompute:\n  cron: '*/5 * * * *'\n  slo_specs: [{specs}]\n")
    result = Scheduler(load_schedule(cfg)).run_job("precompute")
    assert not result.ok and "slo" in result.message and "FAILED" in result.message
    assert "experiments" in result.message and "regressions 24h" in result.message  # still ran


def test_once_exit_code_ranks_critical_before_nothing_judged() -> None:
    at = datetime(2026, 11, 30, tzinfo=UTC)

    def job(code: int, ok: bool = True) -> JobResult:
        return JobResult("j", at, 1.0, ok, "", [], code)

    assert once_exit_code([job(2), job(5)]) == 2  # too little data must not hide critical
    assert once_exit_code([job(5), job(1)]) == 1
    assert once_exit_code([job(0), job(5)]) == 5
    assert once_exit_code([job(0), job(0)]) == 0 and once_exit_code([]) == 0
    assert once_exit_code([job(2), job(0, ok=False)]) == 4

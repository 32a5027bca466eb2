"""One exit-code convention for every ``observatory`` command (observatory/exit_codes.py,
README "Commands"): 0 ok, 1 failed or a finding, 2 usage (3 for the drift commands),
5 no data.  Every subcommand that reads a store is run for real on a store folder
that does not exist and on one without data files: each must exit 5 and name the
folder, and none may create it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from observatory import drift_codes, exit_codes
from observatory.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: Every subcommand that reads a store, with the arguments it needs besides --store.
READERS: dict[str, list[str]] = {
    "sql": ["sql", "SELECT 1"],
    "slo status": ["slo", "status", "--specs", str(EXAMPLES / "slo")],
    "experiment list": ["experiment", "list"],
    "experiment report": ["experiment", "report", "llama-3.1-70b"],
    "experiment refresh": ["experiment", "refresh"],
    "report drift": ["report", "drift", "--out", "{tmp}/reports"],
    "regressions": ["regressions"],
    "regressions verdict": ["regressions", "verdict", "--arms", "v1,v2"],
    "regressions precompute": ["regressions", "precompute"],
}


def test_the_commands_that_read_a_store_are_all_listed() -> None:
    # a new subcommand that reads a store must join READERS (or the list below)
    commands = set()
    for group, cmd in main.commands.items():
        subs = getattr(cmd, "commands", None)
        commands |= {f"{group} {sub}" for sub in subs or ()}
        if not subs or getattr(cmd, "invoke_without_command", False):
            commands.add(group)
    not_readers = {
        "collect", "backfill", "demo", "serve", "check-config", "run", "annotate",
        "slo check", "slo export-rules",
    }  # fmt: skip
    assert commands - not_readers == set(READERS)


CASES = [
    (n, k) for n in sorted(READERS) for k in ("missing", "empty") if (n, k) != ("sql", "empty")
]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_no_data_exits_5_and_names_the_store(name: str, kind: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    if kind == "empty":
        store.mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in READERS[name]]
    res = CliRunner().invoke(main, [*args, "--store", str(store)])
    assert res.exit_code == exit_codes.EXIT_NO_DATA == 5, (name, res.output)
    why = "no such folder" if kind == "missing" else "no data files"
    assert f"no data yet in the store at {store} ({why})" in res.output, res.output
    assert store.exists() == (kind == "empty")  # no folder created in a wrong path
    assert not (tmp_path / "reports").exists()  # no report written


def test_sql_on_an_empty_store_answers_from_empty_views(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["sql", "SELECT count(*) AS n FROM counters", "--store", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert res.output.split()[:2] == ["n", "0"]


def test_sql_table_prints_large_and_small_floats_without_exponents(tmp_path: Path) -> None:
    query = "SELECT 26541238000.0::DOUBLE AS big, 0.0000307::DOUBLE AS small, 1.5::DOUBLE AS x"
    res = CliRunner().invoke(main, ["sql", query, "--store", str(tmp_path)])
    assert res.exit_code == 0, res.output
    header, row = res.output.splitlines()[:2]
    assert header.split() == ["big", "small", "x"]
    assert row.split() == ["26541238000", "0.0000307", "1.5"]  # pandas printed 2.654124e+10


def test_usage_errors_keep_their_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_since = runner.invoke(main, ["regressions", "--since", "5x", "--store", str(tmp_path)])
    assert bad_since.exit_code == exit_codes.EXIT_USAGE, bad_since.output
    bad_window = runner.invoke(
        main, ["report", "drift", "--window", "5x", "--out", str(tmp_path), "--store", "x"]
    )
    assert bad_window.exit_code == drift_codes.EXIT_USAGE == 3, bad_window.output
    # no data is the same code in the drift commands as in every other
    assert drift_codes.EXIT_NO_DATA == exit_codes.EXIT_NO_DATA


def test_a_metrics_port_that_cannot_be_used_is_a_usage_error(tmp_path: Path) -> None:
    import socket

    config = tmp_path / "o.yaml"
    config.write_text(
        f"store: {tmp_path / 'store'}\nregions:\n  - name: r1\n    url: http://127.0.0.1:9\n"
        "    latitude: 1.0\n    longitude: 2.0\n"
    )
    runner = CliRunner()
    out_of_range = runner.invoke(
        main, ["collect", "--config", str(config), "--metrics-port", "99999"]
    )
    assert out_of_range.exit_code == exit_codes.EXIT_USAGE, out_of_range.output
    assert "--metrics-port" in out_of_range.output and "99999" in out_of_range.output
    with socket.socket() as taken:  # a real listener holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["collect", "--config", str(config), "--metrics-port", str(port)]
        in_use = runner.invoke(main, args)
    assert in_use.exit_code == exit_codes.EXIT_USAGE, in_use.output
    assert isinstance(in_use.exception, SystemExit), in_use.exception  # said, not raised
    assert f"error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}" in in_use.output
    assert not (tmp_path / "store").exists()  # stopped before collecting anything


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("slo status", 1),
        ("experiment list", 1),
        ("regressions", 1),
        ("regressions precompute", 1),
        ("sql", 1),
        ("report drift", 4),  # the drift commands' runtime error
    ],
)
def test_an_unreadable_data_file_is_an_error_naming_it(
    name: str, code: int, tmp_path: Path
) -> None:
    # a data file that is not Parquet (a torn copy): real, no fake needed
    part = tmp_path / "store/lake/counters/signal=requests/date=2026-11-29/region=r1/h00.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not parquet")
    args = [a.replace("{tmp}", str(tmp_path)) for a in READERS[name]]
    if name == "sql":
        args = ["sql", "SELECT count(*) FROM counters"]
    res = CliRunner().invoke(main, [*args, "--store", str(tmp_path / "store")])
    assert res.exit_code == code, (name, res.output, res.exception)
    assert isinstance(res.exception, SystemExit), res.exception  # said, not raised
    assert "error: " in res.output and "h00.parquet" in res.output, res.output
    assert part.read_bytes() == b"not parquet"  # left as it was

"""``observatory demo`` writes the demo store's drift report inside the store folder
(``<store>/drift-reports``, or ``$OBSERVATORY_DRIFT_REPORTS``) and prints the full
path, wherever the command runs: nothing lands in the working directory."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from observatory import drift_archive as da
from observatory.cli import main
from observatory.demo import drift_archive

ARGS = ["--days", "2", "--region", "sa-east-1", "--end", "2026-11-30T00:00Z"]
REPORT = "drift-2026-11-30T0000Z-24h.json"


def test_demo_writes_its_drift_report_into_the_store_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OBSERVATORY_DRIFT_REPORTS", raising=False)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = tmp_path / "store"
    res = CliRunner().invoke(main, ["demo", "--store", str(store), *ARGS])
    assert res.exit_code == 0, res.output
    path = store / "drift-reports" / REPORT
    assert drift_archive(store) == store / "drift-reports"
    assert f"; drift report {path}" in res.output  # the full path, not reports/drift/...
    report = da.load_report(path)  # the page's question: the last 24 h before the end
    assert (report.window_end, report.window) == (datetime(2026, 11, 30), timedelta(hours=24))
    assert list(elsewhere.iterdir()) == []  # nothing in the working directory


def test_the_drift_reports_variable_still_chooses_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    monkeypatch.setenv("OBSERVATORY_DRIFT_REPORTS", str(archive))
    assert drift_archive(tmp_path / "store") == archive
    res = CliRunner().invoke(main, ["demo", "--store", str(tmp_path / "store"), *ARGS])
    assert res.exit_code == 0, res.output
    assert f"; drift report {archive / REPORT}" in res.output
    assert not (tmp_path / "store" / "drift-reports").exists()

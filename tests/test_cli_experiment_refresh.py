"""``observatory experiment refresh`` on a store whose experiment state cannot be written
must fail (exit 1) and say where and why, not report replicates it did not save.

Tests run as root here, and root ignores file permissions, so a read-only folder does
not make the state unwritable.  What a real user hits instead, and what this test
builds for real (no fake): the state folder's path is blocked by a file
(``<store>/.experiments/moments`` is a regular file, e.g. left by a copy or a tool),
so creating the folder fails with ENOTDIR, as it does on a read-only or full disk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from observatory import experiment_files as ef
from observatory.cli import main
from tests.experiment_support import demo_store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("refresh") / "store", days=2)


def _lake_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted((root / "lake").rglob("*"))
        if p.is_file()
    }


def test_refresh_into_a_blocked_state_folder_fails_and_loses_nothing(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ef.ENV_STATE, raising=False)  # the default: <store>/.experiments
    ef.memory.clear()
    state = store_dir / ".experiments"
    state.mkdir(exist_ok=True)
    blocker = state / "moments"
    blocker.write_text("not a folder\n")
    before = _lake_digest(store_dir)
    runner = CliRunner()
    res = runner.invoke(main, ["experiment", "refresh", "--store", str(store_dir)])
    assert res.exit_code == 1, res.output
    assert "replicates summed" not in res.output  # no success is claimed
    assert f"cannot write the experiment state of the store at {store_dir}" in res.output
    assert str(blocker) in res.output and "Not a directory" in res.output
    assert "OBSERVATORY_EXPERIMENT_STATE" in res.output  # what to do
    # nothing stored is lost: the data files and the blocking file are as they were
    assert _lake_digest(store_dir) == before
    assert blocker.read_text() == "not a folder\n"

    # once the path is free the same command saves the moments and says how many
    blocker.unlink()
    ef.memory.clear()
    ok = runner.invoke(main, ["experiment", "refresh", "--store", str(store_dir)])
    assert ok.exit_code == 0, ok.output
    # 2 days x 3 regions x 2 arms x 1,440 minutes of replicates of the discovered experiment
    assert "llama-3.1-70b: 17,280 replicates summed" in ok.output, ok.output
    manifests = list((state / "moments").glob("*/manifest.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["blocks"]  # saved for real
    # up to date now: a blocked path no longer matters, nothing needs writing
    assert _lake_digest(store_dir) == before

"""The dashboard's on-demand drift worker (observatory/drift_ondemand.py) on the real
14-day demo store: threads asking one question share one computation; the newest run
answers a later end of the same question; a stale result is dropped."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from drift_support import END, drift_store

from observatory.drift_engine import DriftReport, Reference, compute_drift
from observatory.drift_ondemand import Busy, Job, OnDemandDrift, Question
from observatory.drift_report import to_dict
from observatory.store import Store

DAY = timedelta(hours=24)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drift_store(tmp_path_factory)


def _without_timing(report: DriftReport) -> dict[str, object]:
    """A report's JSON less what differs between two runs of one question."""
    out = to_dict(report)
    out.pop("generated_utc")
    out["settings"] = {
        k: v for k, v in out["settings"].items() if k not in ("read_started_utc", "compute_s")
    }
    return out


def test_threads_asking_one_question_share_one_computation(store: Path) -> None:
    calls: list[Question] = []

    def compute(q: Question) -> DriftReport:
        calls.append(q)
        return compute_drift(
            Store(q.store), window=q.window, reference=Reference.parse(q.reference), end=q.end
        )

    worker = OnDemandDrift(compute)
    question = Question(str(store.resolve()), DAY, "7d", END.replace(tzinfo=None))
    start = threading.Barrier(4)
    got: list[Job | Busy] = []

    def ask() -> None:
        start.wait()
        got.append(worker.ask(question, expected_s=12.0))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(isinstance(j, Job) for j in got)
    job = got[0]
    assert isinstance(job, Job) and all(j is job for j in got)
    assert job.joined == 3 and worker.started == 1
    assert "computing drift for the 24 h window ending 2026-11-30 00:00 UTC, started " in (
        job.status()
    )
    assert "about 12 s expected" in job.status()
    assert job.done.wait(300) and job.error is None and job.report is not None
    assert calls == [question]
    # The same numbers as computing it directly.
    direct = compute_drift(Store(store), window=DAY, reference=Reference.parse("7d"), end=END)
    assert _without_timing(job.report) == _without_timing(direct)
    assert worker.last_seconds(question.store) == pytest.approx(job.seconds, abs=1.0)
    # A later end of the same question: the newest run answers with latest=True only.
    later = Question(question.store, DAY, "7d", question.end + timedelta(minutes=1))
    assert worker.find(later, latest=True) is job
    assert worker.find(later) is None
    assert worker.find(Question(question.store, DAY, "14d", later.end), latest=True) is None
    # Asked again: the finished run, no new computation.
    assert worker.ask(question) is job and worker.started == 1
    # A result that is no longer fresh is dropped: the next ask computes again.
    assert worker.find(question, fresh=lambda report: False) is None
    again = worker.ask(question)
    assert isinstance(again, Job) and again is not job and worker.started == 2
    assert again.done.wait(300) and len(calls) == 2

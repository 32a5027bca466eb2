"""Drift computed on demand for the dashboard: one background run at a time per server
process, shared by every session (issue #9).

At the large fleet (20 regions) drift over the whole fleet takes 110-160 s
(docs/drift.md, "The page at the large fleet").  Run in the page's script it blocks
the session, and ten sessions asking at once run ten computations side by side (the
load test: 9 of 10 page loads timed out at 180 s, the server peaked at 4.7 GiB).
:class:`OnDemandDrift` runs each :class:`Question` once in a daemon thread:

- **single flight**: a session asking a question that is being computed, or was
  computed and is still fresh, gets that run's :class:`Job` (``joined`` counts them);
- **one run at a time**: while one question runs, asking another returns
  :class:`Busy` naming the running one (the page says so and asks again later), so
  memory holds at most one computation, plus the ``keep`` newest finished reports;
- **the newest answer**: :meth:`OnDemandDrift.find` with ``latest=True`` gives the
  newest run of the question ending at or before the asked end (a preset time range
  ends at the latest data, which moves every minute while the collector writes:
  sessions arriving a minute apart join the same run instead of starting another);
- **errors** are kept on the job as a message (``"<type>: <message>"``) for the page
  to show; :meth:`OnDemandDrift.forget` drops a failed run so it can be asked again.

A finished report stays valid while the caller's ``fresh`` test says so (the page uses
:func:`observatory.drift_fresh.stale_files` on the report's settings, as for a saved
report).  Nothing here imports Streamlit: the page keeps one instance per server
process (``st.cache_resource``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from observatory.drift_engine import DriftReport

__all__ = ["Busy", "Job", "OnDemandDrift", "Question"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    """What one on-demand computation answers: ``compute_drift`` of the whole fleet.

    Attributes:
        store: the store folder (resolved path).
        window: the window's length.
        reference: the reference spec (``7d``, ``week-ago``, ``START/END``).
        end: the window's end, UTC naive, on a whole minute.
    """

    store: str
    window: timedelta
    reference: str
    end: datetime

    def same_kind(self, other: Question) -> bool:
        """The same store, window length and reference (any end)."""
        return (self.store, self.window, self.reference) == (
            other.store,
            other.window,
            other.reference,
        )

    def describe(self) -> str:
        """``"the 24 h window ending 2026-11-28 12:01 UTC"``."""
        hours = self.window.total_seconds() / 3600
        length = f"{hours:g} h" if hours < 48 else f"{hours / 24:g} d"
        return f"the {length} window ending {self.end:%Y-%m-%d %H:%M} UTC"


@dataclass
class Job:
    """One on-demand computation, running or finished.

    Attributes:
        question: what it computes.
        started_utc: when it started (UTC, aware).
        expected_s: the seconds it is expected to take (None: unknown).
        report: the result once finished without error.
        error: ``"<exception type>: <message>"`` when it failed.
        finished_utc: when it finished (None while running).
        joined: how many more times this run answered (:meth:`OnDemandDrift.find` or
            :meth:`OnDemandDrift.ask`) after the ask that started it.
    """

    question: Question
    started_utc: datetime
    expected_s: float | None
    report: DriftReport | None = None
    error: str | None = None
    finished_utc: datetime | None = None
    joined: int = 0
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        """True until the computation returned or raised."""
        return not self.done.is_set()

    @property
    def seconds(self) -> float:
        """Seconds it ran (until now while running)."""
        end = self.finished_utc or datetime.now(UTC)
        return (end - self.started_utc).total_seconds()

    def status(self) -> str:
        """``"computing drift for <window>, started 12:03:10 UTC, about 150 s expected
        (40 s so far)"``."""
        expected = (
            f"about {self.expected_s:.0f} s expected"
            if self.expected_s
            else "duration unknown (no earlier run to go by)"
        )
        return (
            f"computing drift for {self.question.describe()}, started "
            f"{self.started_utc:%H:%M:%S} UTC, {expected} ({self.seconds:.0f} s so far)"
        )


@dataclass(frozen=True)
class Busy:
    """:meth:`OnDemandDrift.ask` refused: another question holds the worker.

    Attributes:
        running: the computation running now.
    """

    running: Job


class OnDemandDrift:
    """The server's on-demand drift runs (module docstring).

    Args:
        compute: computes one question (``compute_drift`` over the question's store);
            called in the worker thread, so it must not use Streamlit.
        keep: finished runs kept (their reports are held in memory), newest first.
    """

    def __init__(self, compute: Callable[[Question], DriftReport], keep: int = 2) -> None:
        self._compute = compute
        self._keep = keep
        self._lock = threading.Lock()
        self._jobs: list[Job] = []  # newest first
        self._last_s: dict[str, float] = {}
        self.started = 0  # computations started (for tests and the bench)

    def last_seconds(self, store: str) -> float | None:
        """Seconds of the last successful run on ``store`` (any window: the reference
        period, read for every window, dominates the cost)."""
        return self._last_s.get(store)

    def running(self) -> Job | None:
        """The computation running now, if any."""
        with self._lock:
            return next((j for j in self._jobs if j.running), None)

    def find(
        self,
        question: Question,
        latest: bool = False,
        fresh: Callable[[DriftReport], bool] | None = None,
    ) -> Job | None:
        """The run answering ``question``: its exact end, or with ``latest`` the newest
        run of the same store, window and reference ending at or before it.

        A finished report for which ``fresh`` says False is dropped (not returned).
        A failed run is returned (its ``error`` set) only for the exact question.
        """
        with self._lock:
            candidates = [
                j
                for j in self._jobs
                if j.question.same_kind(question)
                and (
                    j.question.end == question.end
                    or (latest and j.question.end < question.end and j.error is None)
                )
            ]
        for job in sorted(candidates, key=lambda j: j.question.end, reverse=True):
            if job.report is not None and fresh is not None and not fresh(job.report):
                self._drop(job)
                continue
            with self._lock:
                job.joined += 1
            return job
        return None

    def ask(self, question: Question, expected_s: float | None = None) -> Job | Busy:
        """Start computing ``question`` in the background, or join its run.

        Returns:
            the :class:`Job` of the question (started now, running, or finished: a
            finished one is returned as is, so call :meth:`find` with a ``fresh`` test
            first), or :class:`Busy` when another question is being computed.
        """
        with self._lock:
            same = next((j for j in self._jobs if j.question == question), None)
            if same is not None:
                same.joined += 1
                return same
            busy = next((j for j in self._jobs if j.running), None)
            if busy is not None:
                return Busy(busy)
            job = Job(question, datetime.now(UTC), expected_s)
            self._jobs.insert(0, job)
            finished = [j for j in self._jobs if not j.running]
            for old in finished[self._keep :]:
                self._jobs.remove(old)
            self.started += 1
        threading.Thread(
            target=self._run, args=(job,), name="observatory-drift-on-demand", daemon=True
        ).start()
        return job

    def forget(self, question: Question) -> None:
        """Drop the finished run of ``question`` (e.g. a failed one, to ask again)."""
        with self._lock:
            self._jobs = [j for j in self._jobs if j.running or j.question != question]

    def _drop(self, job: Job) -> None:
        with self._lock:
            if job in self._jobs:
                self._jobs.remove(job)

    def _run(self, job: Job) -> None:
        began = time.perf_counter()
        try:
            job.report = self._compute(job.question)
            self._last_s[job.question.store] = time.perf_counter() - began
        except Exception as exc:  # any failure is reported to the page
            log.exception("on-demand drift for %s failed", job.question.describe())
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_utc = datetime.now(UTC)
            job.done.set()

"""Work that must not run where the person waits: how the session hands it out.

A :class:`Runner` runs ``work(job)`` somewhere else and calls ``done(result)`` or
``failed(error)`` where the session lives (the GUI's runner: a worker thread, answers on
the Qt thread). ``work`` reports progress with ``job.report(text, fraction)`` and looks
at ``job.cancelled``. :class:`InlineRunner` runs work at once, in the caller's thread
(scripts, tests). :class:`FileWorker` runs file work one job at a time, in order: a save
queued before an open is written before the open reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol


class Cancelled(Exception):
    """Raised by work that stops because its job was cancelled."""


class Job:
    """One piece of work: its progress and whether it was cancelled."""

    def __init__(self, name: str = "", on_progress: Callable[[str, float], None] | None = None):
        self.name = name
        self.cancelled = False
        self._on_progress = on_progress

    def cancel(self) -> None:
        self.cancelled = True

    def report(self, text: str, fraction: float = -1.0) -> None:
        """Progress: ``fraction`` 0..1, or below 0 when unknown. Raises :class:`Cancelled`
        once the job is cancelled, so work stops at its next report."""
        if self.cancelled:
            raise Cancelled(self.name)
        if self._on_progress is not None:
            self._on_progress(text, fraction)


class Runner(Protocol):
    def start(self, work: Callable[[Job], Any], done: Callable[[Any], None],
              failed: Callable[[BaseException], None], job: Job) -> None: ...


class InlineRunner:
    """Runs work immediately in the calling thread."""

    def start(self, work, done, failed, job) -> None:
        try:
            result = work(job)
        except Exception as exc:  # handed to the session like a worker's error
            failed(exc)
            return
        done(result)


class FileWorker:
    """File and network work of a session, one job at a time, in the order given."""

    def __init__(self, runner: Runner, on_progress: Callable[[str, float], None],
                 on_busy: Callable[[bool], None]):
        self.runner = runner
        self.on_progress = on_progress
        self.on_busy = on_busy
        self._queue: deque = deque()
        self.current: Job | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None

    def submit(self, name: str, work: Callable[[Job], Any], done: Callable[[Any], None],
               failed: Callable[[BaseException], None]) -> Job:
        job = Job(name, self.on_progress)
        self._queue.append((job, work, done, failed))
        if self.current is None:
            self._next()
        return job

    def cancel(self) -> None:
        """Cancel the running job and drop the waiting ones."""
        for job, *_ in self._queue:
            job.cancel()
        self._queue.clear()
        if self.current is not None:
            self.current.cancel()

    def _next(self) -> None:
        if not self._queue:
            self.current = None
            self.on_busy(False)
            return
        job, work, done, failed = self._queue.popleft()
        self.current = job
        self.on_busy(True)
        self.on_progress(job.name, -1.0)

        def finish(callback, value):
            try:
                callback(value)
            finally:
                self._next()

        self.runner.start(work, lambda r: finish(done, r), lambda e: finish(failed, e), job)

"""Execution stage: a bounded pool of worker threads that runs jobs from one priority queue.

The engine knows nothing about images. A job is a callable ``fn(cancel_event)``; the engine runs
at most ``max_workers`` of them at a time, lower priority numbers first (``PRIORITY_SINGLE`` before
``PRIORITY_BULK``) and first-in-first-out within a priority. Politeness towards a host (pausing
every worker after a 429/503) lives in the transport's ``HostGate`` (``http_client``), not here.

Cancellation: a queued job that is cancelled never starts; a running job sees its
``cancel_event`` set and is expected to stop at its next check (the transport checks it between
chunks).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from ..errors import DownloadCancelledError

logger = logging.getLogger(__name__)

PRIORITY_SINGLE = 0
PRIORITY_BULK = 10

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL_STATES = frozenset({DONE, FAILED, CANCELLED})

JobFn = Callable[[threading.Event], Any]


class Job:
    """One unit of work and its outcome. Read-only for callers; the engine updates it."""

    def __init__(self, fn: JobFn, priority: int, key: str, seq: int):
        self.fn: Optional[JobFn] = fn
        self.priority = priority
        self.key = key
        self.seq = seq
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.exception: Optional[BaseException] = None
        self._status = QUEUED
        self._finished = threading.Event()

    @property
    def status(self) -> str:
        return self._status

    @property
    def done(self) -> bool:
        return self._status in TERMINAL_STATES

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the job is done, failed or cancelled; False on timeout."""
        return self._finished.wait(timeout)

    def __lt__(self, other: "Job") -> bool:  # heap order: priority, then submission order
        return (self.priority, self.seq) < (other.priority, other.seq)

    def __repr__(self) -> str:
        return f"Job(key={self.key!r}, priority={self.priority}, status={self._status})"


class DownloadEngine:
    """Bounded priority worker pool.

    ``client`` is the transport the jobs use (a ``CivitaiHttpClient``); when None the shared
    ``http_client.get_http_client()`` is used, looked up each time so a settings change is honoured.
    Worker threads are created on demand up to ``max_workers`` and live until :meth:`shutdown`.
    """

    def __init__(self, client=None, max_workers: int = 5):
        if int(max_workers) < 1:
            raise ValueError("max_workers must be at least 1")
        self._client = client
        self._max_workers = int(max_workers)
        self._cond = threading.Condition()
        self._heap: List[Job] = []
        self._jobs: Dict[str, Job] = {}
        self._workers: List[threading.Thread] = []
        self._seq = itertools.count()
        self._running = 0
        self._queued = 0
        self._closed = False

    # -- configuration ---------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            from ..http_client import get_http_client

            return get_http_client()
        return self._client

    @property
    def configured_client(self):
        """The client given to the constructor (None: the shared client is used)."""
        return self._client

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @max_workers.setter
    def max_workers(self, value: int) -> None:
        """Grow or shrink the pool; surplus workers leave after their current job."""
        if int(value) < 1:
            raise ValueError("max_workers must be at least 1")
        with self._cond:
            self._max_workers = int(value)
            self._spawn_workers_locked()
            self._cond.notify_all()

    @property
    def active_count(self) -> int:
        """Jobs running right now."""
        with self._cond:
            return self._running

    @property
    def worker_count(self) -> int:
        with self._cond:
            return sum(1 for t in self._workers if t.is_alive())

    # -- submitting ------------------------------------------------------------------------------

    def submit(self, fn: JobFn, priority: int = PRIORITY_BULK, key: Optional[str] = None) -> Job:
        """Queue ``fn(cancel_event)``; returns its :class:`Job`.

        ``key`` names the job for :meth:`cancel` and :meth:`wait` (default: an automatic name).
        A key whose previous job is still queued or running is refused with ``ValueError``.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("the download engine was shut down; create a new one")
            seq = next(self._seq)
            key = str(key) if key is not None else f"job-{seq}"
            previous = self._jobs.get(key)
            if previous is not None and not previous.done:
                raise ValueError(f"a job named {key!r} is already queued or running")
            job = Job(fn, int(priority), key, seq)
            self._jobs[key] = job
            heapq.heappush(self._heap, job)
            self._queued += 1
            self._spawn_workers_locked()
            self._cond.notify()
            return job

    def get_job(self, key: str) -> Optional[Job]:
        with self._cond:
            return self._jobs.get(key)

    # -- cancelling and waiting ------------------------------------------------------------------

    def cancel(self, keys: Optional[Iterable[str]] = None) -> int:
        """Cancel the named jobs (all when None). Returns how many were queued or running."""
        with self._cond:
            jobs = self._select_locked(keys)
            touched = 0
            for job in jobs:
                if job.status == QUEUED:
                    self._finish_locked(job, CANCELLED)
                    touched += 1
                elif job.status == RUNNING:
                    job.cancel_event.set()
                    touched += 1
            if touched:
                # queued jobs stay in the heap and are dropped when popped
                self._cond.notify_all()
            return touched

    def cancel_queued(self, keys: Optional[Iterable[str]] = None) -> List[str]:
        """Cancel the named jobs that have not started (all when None); running ones go on.

        Returns the keys of the jobs cancelled, so the caller can settle exactly those.
        """
        with self._cond:
            cancelled = []
            for job in self._select_locked(keys):
                if job.status == QUEUED:
                    self._finish_locked(job, CANCELLED)
                    cancelled.append(job.key)
            if cancelled:
                self._cond.notify_all()
            return cancelled

    def wait(self, keys: Optional[Iterable[str]] = None, timeout: Optional[float] = None) -> bool:
        """Block until the named jobs (all known jobs when None) are finished; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                pending = [job for job in self._select_locked(keys) if not job.done]
                if not pending:
                    return True
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)

    def forget_finished(self) -> int:
        """Drop finished jobs from the key table. Returns how many."""
        with self._cond:
            finished = [key for key, job in self._jobs.items() if job.done]
            for key in finished:
                del self._jobs[key]
            return len(finished)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting jobs. Queued jobs still run unless ``cancel_pending``; with ``wait`` the
        call returns when every worker has exited."""
        with self._cond:
            self._closed = True
            if cancel_pending:
                for job in list(self._jobs.values()):
                    if job.status == QUEUED:
                        self._finish_locked(job, CANCELLED)
                    elif job.status == RUNNING:
                        job.cancel_event.set()
            self._cond.notify_all()
            workers = list(self._workers)
        if wait:
            for thread in workers:
                if thread is not threading.current_thread():
                    thread.join()

    def __enter__(self) -> "DownloadEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=True, cancel_pending=exc[0] is not None)

    # -- internals -------------------------------------------------------------------------------

    def _select_locked(self, keys: Optional[Iterable[str]]) -> List[Job]:
        if keys is None:
            return list(self._jobs.values())
        if isinstance(keys, str):
            keys = [keys]
        return [self._jobs[k] for k in keys if k in self._jobs]

    def _spawn_workers_locked(self) -> None:
        self._workers = [t for t in self._workers if t.is_alive()]
        wanted = min(self._max_workers, len(self._workers) + self._queued)
        while len(self._workers) < wanted:
            thread = threading.Thread(
                target=self._worker_loop,
                name=f"civitai-download-{next(self._seq)}",
                daemon=True,
            )
            self._workers.append(thread)
            thread.start()

    def _finish_locked(self, job: Job, status: str) -> None:
        if job.status == QUEUED:
            self._queued -= 1
        elif job.status == RUNNING:
            self._running -= 1
        job._status = status
        job._finished.set()
        self._cond.notify_all()

    def _next_job_locked(self) -> Optional[Job]:
        """Pop the next runnable job, or None when this worker should exit."""
        while True:
            me = threading.current_thread()
            alive = [t for t in self._workers if t.is_alive()]
            if len(alive) > self._max_workers and me in alive:
                self._workers.remove(me)
                return None
            while self._heap and self._heap[0].status != QUEUED:
                heapq.heappop(self._heap)  # cancelled while queued
            if self._heap:
                job = heapq.heappop(self._heap)
                self._queued -= 1
                self._running += 1
                job._status = RUNNING
                return job
            if self._closed:
                if me in self._workers:
                    self._workers.remove(me)
                return None
            self._cond.wait()

    def _worker_loop(self) -> None:
        while True:
            with self._cond:
                job = self._next_job_locked()
            if job is None:
                return
            status = DONE
            try:
                fn = job.fn
                assert fn is not None  # cleared only after the job has run
                job.result = fn(job.cancel_event)
            except DownloadCancelledError as exc:
                job.exception = exc
                status = CANCELLED
            except BaseException as exc:  # noqa: B902 - a job's failure must never kill the worker
                job.exception = exc
                status = CANCELLED if job.cancel_event.is_set() else FAILED
                if status == FAILED:
                    logger.debug("job %s failed: %s", job.key, exc, exc_info=True)
            job.fn = None  # release the closure (and what it holds) once the job has run
            with self._cond:
                self._finish_locked(job, status)

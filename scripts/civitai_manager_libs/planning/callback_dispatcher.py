"""Runs the downloader's callbacks (downloaded, finished, progress) one after another on a single
daemon thread, so user code never runs on a download worker and a raising callback stops nothing.

``register_image_downloaded_callback`` fires once per *completed* task (the spec's "download
completed"), ``register_task_finished_callback`` once per task reaching any final state,
``register_progress_callback`` with a :class:`records.DownloadSummary` when tasks change (byte
progress at most every 0.25 s). An exception in a callback (any, ``SystemExit`` included) is logged
and otherwise ignored: the thread goes on, so ``wait()`` always returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from ..records import DownloadSummary

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25

TaskCallback = Callable[[Any], None]
ProgressCallback = Callable[[DownloadSummary], None]


class CallbackDispatcher:
    """Runs posted calls one after another on a single daemon thread (started on first use)."""

    def __init__(self) -> None:
        self._queue: "queue.Queue[Optional[Tuple[Callable, tuple]]]" = queue.Queue()
        self._cond = threading.Condition()
        self._unfinished = 0
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def post(self, fn: Callable, *args: Any) -> None:
        with self._cond:
            if self._closed:
                return
            self._unfinished += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="civitai-image-callbacks", daemon=True
                )
                self._thread.start()
        self._queue.put((fn, args))

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Wait until every posted call has run; False on timeout."""
        if threading.current_thread() is self._thread:
            return True  # a callback waiting for the callbacks would wait for itself
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: Optional[float] = 10) -> None:
        self.drain(timeout)
        with self._cond:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            fn, args = entry
            try:
                fn(*args)
            except BaseException:  # noqa: B902 - a callback (even SystemExit) stops nothing
                logger.exception("a download callback (%s) raised; it was ignored", fn)
            finally:
                with self._cond:
                    self._unfinished -= 1
                    self._cond.notify_all()


class TaskCallbacks:
    """The registered callbacks and when to call them; ``summary()`` gives the progress value."""

    def __init__(self, summary: Callable[[], DownloadSummary]):
        self._summary = summary
        self.dispatcher = CallbackDispatcher()
        self._lock = threading.Lock()
        self._downloaded: List[TaskCallback] = []
        self._finished: List[TaskCallback] = []
        self._progress: List[ProgressCallback] = []
        self._progress_posted = False
        self._last_progress = 0.0

    def on_downloaded(self, callback: TaskCallback) -> None:
        self._downloaded.append(callback)

    def on_finished(self, callback: TaskCallback) -> None:
        self._finished.append(callback)

    def on_progress(self, callback: ProgressCallback) -> None:
        self._progress.append(callback)

    def task_final(self, task: Any, completed: bool) -> None:
        """Queue the finished callbacks (and the downloaded ones for a completed task)."""
        for callback in list(self._finished):
            self.dispatcher.post(callback, task)
        if completed:
            for callback in list(self._downloaded):
                self.dispatcher.post(callback, task)

    def progress(self, throttle: bool = False) -> None:
        """Queue one progress delivery unless one is pending (or, throttled, one was recent)."""
        if not self._progress:
            return
        now = time.monotonic()
        with self._lock:
            if self._progress_posted or (
                throttle and now - self._last_progress < PROGRESS_INTERVAL
            ):
                return
            self._progress_posted = True
            self._last_progress = now
        self.dispatcher.post(self._deliver_progress)

    def _deliver_progress(self) -> None:
        with self._lock:
            self._progress_posted = False
        summary = self._summary()
        for callback in list(self._progress):
            try:
                callback(summary)
            except BaseException:  # noqa: B902 - see _run
                logger.exception("a progress callback (%s) raised; it was ignored", callback)

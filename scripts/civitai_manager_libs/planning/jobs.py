"""The engine side of a downloader: a planned task is settled at once when its file is already
there (the duplicate rule, ``TaskRunner.on_disk``) or handed to the engine; the download runs on
an engine slot and its local half (commit, generation data, thumbnail, archive) on the
post-processing pool; every task ends settled; a full disk halts the scheduling."""

from __future__ import annotations

import functools
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Optional, Protocol

from ..engine.duplicates import FileNames
from ..engine.task import CANCELLED, COMPLETED, FAILED, PENDING, ImageDownloadTask
from ..engine.task_runner import Fetched, Outcome, TaskRunner
from ..store import disk_space
from .callback_dispatcher import TaskCallbacks
from .task_registry import TaskRegistry

logger = logging.getLogger(__name__)

#: Threads that post-process downloaded files (JSON/txt/embedded metadata, thumbnail, archive).
POST_WORKERS = 2


class JobsHost(Protocol):
    """What :class:`Jobs` reads of the downloader it runs for, at each use."""

    output_path: str
    min_free_space_mb: int

    @property
    def engine(self) -> Any: ...

    @property
    def archive(self) -> Any: ...


class Jobs:
    """Schedules, runs and settles the tasks of ``host`` (see :class:`JobsHost`)."""

    def __init__(
        self,
        host: JobsHost,
        registry: TaskRegistry,
        callbacks: TaskCallbacks,
        runner: TaskRunner,
        names: FileNames,
    ):
        self._host = host
        self._registry = registry
        self._callbacks = callbacks
        self._runner = runner
        self._names = names
        self.halt_reason: Optional[str] = None  # why scheduling stopped (disk space)
        self._sizes: List[int] = []  # the sizes of this session's files (the space reserve)
        # post-processing (metadata, thumbnail, archive) runs here, off the download slots
        self._post_pool: Optional[ThreadPoolExecutor] = None
        self._post_lock = threading.Lock()
        self._embed_skipped: Dict[str, int] = {}  # this run's files with a txt sidecar, by reason

    def new_run(self) -> None:
        """Forget the last run's disk-full halt and notes."""
        with self._registry.lock:
            self.halt_reason = None
            self._embed_skipped = {}

    def note_embed_skipped(self, reason: str) -> None:
        """A file of this run got a txt sidecar instead of embedded text (``reason``)."""
        with self._registry.lock:
            self._embed_skipped[reason] = self._embed_skipped.get(reason, 0) + 1

    def embed_skipped(self) -> Dict[str, int]:
        with self._registry.lock:
            return dict(self._embed_skipped)

    def cancel(self, task_ids: Optional[Iterable[str]]) -> int:
        """Cancel tasks (all, and every ongoing listing, when None); how many were live."""
        with self._registry.lock:
            if task_ids is None:
                self._registry.stop_listings()
            live = [task for task in self._registry.select(task_ids) if not task.done]
        self._host.engine.cancel([task.id for task in live])
        for task in live:
            if task.status == PENDING:
                self._registry.settle(task, CANCELLED, "cancelled")
        return len(live)

    def schedule(self, task: ImageDownloadTask) -> None:
        """Settle what can be settled without a request (a file already there: the duplicate
        rule, ``TaskRunner.on_disk``), else hand the task to the engine."""
        assert task.target is not None
        if task.custom_path:  # the caller's own name: written even if a file is there
            task.target = self._names.claim(task.target, task.image_id)
        else:
            # a name another image owns (this session or an earlier run) is never adopted
            task.target = self._names.claim(
                task.target, task.image_id, owners_of=self._host.archive.image_ids_at_path
            )
            try:
                outcome = self._runner.on_disk(task)
            except Exception as exc:  # a file in the way must not stop the listing
                logger.warning("image %s: %s: %s", task.image_id, task.target, exc, exc_info=True)
                outcome = Outcome(FAILED, f"the file already at {task.target}: {exc!r}")
            if outcome is not None:
                self._settle(task, outcome)
                return
        try:
            self._host.engine.submit(functools.partial(self._run, task), task.priority, key=task.id)
        except RuntimeError as exc:  # the engine was shut down
            self._registry.settle(task, CANCELLED, f"not started: {exc}")

    def _run(self, task: ImageDownloadTask, cancel_event: threading.Event) -> None:
        """Engine job: download, then hand the file to the post-processing pool, so the download
        slot (a connection to the host) is free for the next image at once. Whatever happens (a
        bug included), the task ends final, so ``wait()`` always returns."""
        handed_off = False
        try:
            if self.halt_reason is not None:
                self._registry.settle(task, CANCELLED, self.halt_reason)
                return
            if cancel_event.is_set() or not task._start():
                self._registry.settle(task, CANCELLED, "cancelled")
                return
            self._callbacks.progress()
            staged = self._runner.fetch(task, cancel_event)
            if isinstance(staged, Outcome):
                self._settle(task, staged)
                return
            handed_off = self._post_process(task, staged)
            if not handed_off:  # the pool is shut down (closing): finish here
                self._finish(task, staged)
        finally:
            if not handed_off:
                self._settle_if_unfinished(task, cancel_event.is_set())

    def _post_process(self, task: ImageDownloadTask, staged: Fetched) -> bool:
        """Queue the local half of a job (metadata, thumbnail, archive); False when closing."""
        with self._post_lock:
            if self._post_pool is None:
                self._post_pool = ThreadPoolExecutor(POST_WORKERS, "civitai-post")
            try:
                self._post_pool.submit(self._finish, task, staged)
            except RuntimeError:  # shut down
                return False
        return True

    def _finish(self, task: ImageDownloadTask, staged: Fetched) -> None:
        try:
            self._settle(task, self._runner.finish(task, staged))
        finally:
            self._settle_if_unfinished(task, False)

    def _settle_if_unfinished(self, task: ImageDownloadTask, cancelled: bool) -> None:
        if not task._settled:
            error = sys.exc_info()[1]
            status = CANCELLED if cancelled else FAILED
            reason = f"unexpected error: {error!r}" if error is not None else "not finished"
            logger.error("image %s: %s", task.image_id, reason)
            self._registry.settle_after_error(task, status, reason)

    def _settle(self, task: ImageDownloadTask, outcome: Outcome) -> None:
        if outcome.status == COMPLETED:
            with self._registry.lock:
                self._sizes.append(outcome.fields.get("size") or 0)
        if outcome.noted:
            task.skip_noted = True
        self._registry.settle(task, outcome.status, outcome.error, **outcome.fields)
        if outcome.disk_full:
            self._halt(f"not started: {outcome.error}")

    def _halt(self, reason: str) -> None:
        """Stop scheduling: stop every listing and cancel the tasks not started yet.

        Jobs already running are left to finish (or fail cleanly on their own), so none is
        cancelled mid-stream: a halt never leaves a ``.part`` file behind. A job that was taken
        from the queue but has not started its task sees ``halt_reason`` and settles itself.
        """
        with self._registry.lock:
            self.halt_reason = reason
            self._registry.stop_listings()
            waiting = {t.id: t for t in self._registry.with_status(PENDING)}
        for key in self._host.engine.cancel_queued(list(waiting)):
            self._registry.settle(waiting[key], CANCELLED, reason)

    def reserve_space(self) -> None:
        """Stop scheduling when the queued work would bring the disk under the minimum."""
        with self._registry.lock:
            pending = self._registry.unfinished()
            sizes = list(self._sizes)
        reason = disk_space.shortfall(
            pending, sizes, self._host.output_path, self._host.min_free_space_mb
        )
        if reason is not None:
            self._halt(reason)

    def close(self, wait: bool) -> None:
        """Finish the files already downloaded (``wait``: before returning), then stop the pool."""
        with self._post_lock:
            post, self._post_pool = self._post_pool, None
        if post is not None:  # the files already downloaded are finished, not dropped
            post.shutdown(wait=wait)

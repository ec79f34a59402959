"""The session's tasks and open listings: each task by id and the live one per image, settled
exactly once (archive row, listing checkpoints, callbacks, waiters woken) and waited for."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from .callback_dispatcher import TaskCallbacks
from .crawl_state import ListingPage, ListingState
from ..engine.task import COMPLETED, SKIPPED, ImageDownloadTask, row_as_dict, task_from_record
from ..util.media_key import media_uuid

logger = logging.getLogger(__name__)


class TaskRegistry:
    """Tasks of one ImageDownloader; ``archive_of()`` gives the archive (opened on first use)."""

    def __init__(self, archive_of: Callable[[], Any], callbacks: TaskCallbacks):
        self._archive_of = archive_of
        self._callbacks = callbacks
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._tasks: Dict[str, ImageDownloadTask] = {}
        self._active_by_image: Dict[Any, ImageDownloadTask] = {}
        self._live: Set[str] = set()  # ids of the tasks not settled yet
        self._unsettled: Set[str] = set()  # ids whose settlement (callbacks queued) is to come
        self._settled_ids: List[str] = []  # ids in the order they settled (what waiters read)
        self._listings: List[ListingState] = []
        self.after_settle: Optional[Callable[[], None]] = None  # called after each settlement
        self._history: Optional[Dict[str, ImageDownloadTask]] = None  # the archive's, once read

    def __len__(self) -> int:
        return len(self._tasks)

    # -- tasks -----------------------------------------------------------------------------------

    def history(self, archived: bool) -> Dict[str, ImageDownloadTask]:
        """The archive's tasks of earlier runs, oldest first, restored with their final state
        (read once; ``archived``: whether the folder has an archive to read them from)."""
        if self._history is None:
            rows = reversed(self._archive_of().tasks()) if archived else []
            tasks = (task_from_record(row_as_dict(row)) for row in rows)
            self._history = {task.id: task for task in tasks}
        return self._history

    def add(self, task: ImageDownloadTask) -> None:
        """Register a task; a task not final yet becomes its image's live task."""
        with self.lock:
            self._tasks[task.id] = task
            if not task._settled:
                self._live.add(task.id)
                self._unsettled.add(task.id)
            if not task.done and task.image_id is not None:
                self._active_by_image[task.image_id] = task
                uuid = media_uuid(task.image_url)
                if uuid is not None:  # one file listed under two ids or URLs: one download
                    self._active_by_image.setdefault(file_key(uuid), task)

    def get(self, task_id: str) -> Optional[ImageDownloadTask]:
        with self.lock:
            return self._tasks.get(task_id)

    def active(self, image_id: Any) -> Optional[ImageDownloadTask]:
        """The live (not final) task of an image, if any."""
        with self.lock:
            return self._active_by_image.get(image_id)

    def select(self, task_ids: Optional[Iterable[str]] = None) -> List[ImageDownloadTask]:
        """The tasks with these ids (every task when None), in order, each once."""
        with self.lock:
            if task_ids is None:
                return list(self._tasks.values())
            if isinstance(task_ids, str):
                task_ids = [task_ids]
            unique = dict.fromkeys(t for t in task_ids if t in self._tasks)  # keeps the order
            return [self._tasks[t] for t in unique]

    def with_status(self, status: str) -> List[ImageDownloadTask]:
        with self.lock:
            return [t for t in self._tasks.values() if t.status == status]

    def has_live(self) -> bool:
        """True while a registered task is not settled yet (cheap: no scan)."""
        with self.lock:
            return bool(self._live)

    def unfinished(self) -> List[ImageDownloadTask]:
        with self.lock:
            return [t for t in self._tasks.values() if not t.done]

    def join_active(
        self, listing: ListingState, page: ListingPage, ident: Any, replace_last: bool
    ) -> bool:
        """Give ``listing`` the live task another call already has for this image (in place of
        its last task id with ``replace_last``); True when there is one."""
        with self.lock:
            existing = self._active_by_image.get(ident)
            if existing is None:
                return False
            if replace_last:
                listing.task_ids[-1] = existing.id
            else:
                listing.task_ids.append(existing.id)
            page.open.add(existing.id)
            return True

    def settle(
        self, task: ImageDownloadTask, status: str, error: Optional[str], record=True, **fields
    ) -> None:
        """Settle a task once: archive it, update checkpoints, queue callbacks, wake waiters."""
        if not task._finish(status, error, **fields):
            return
        try:
            if record and task.image_id is not None:
                self._archive_of().record_task(task.to_dict())
            with self.lock:
                self._forget_active(task)
                self._live.discard(task.id)
                listings = list(self._listings)
            for listing in listings:
                if listing.task_final(task):
                    self.update_checkpoint(listing)
        except Exception as exc:  # the archive failed: the task's state still counts
            logger.error("image %s: could not update the download archive: %s", task.image_id, exc)
        finally:
            self._callbacks.task_final(task, completed=status == COMPLETED)
            with self.lock:
                if status in (COMPLETED, SKIPPED):
                    task.item = None  # the listing's data is not needed any more (memory)
                self._forget_active(task)  # the archive may have failed
                self._mark_settled(task)
        self._callbacks.progress()
        if self.after_settle is not None:
            self.after_settle()

    def settle_after_error(self, task: ImageDownloadTask, status: str, reason: str) -> None:
        """Settle a task whose job raised, even if settling raises too: ``wait()`` must return."""
        try:
            self.settle(task, status, reason)
        except Exception:
            logger.exception("image %s: could not settle the task cleanly", task.image_id)
        finally:
            task._finish(status, reason)  # no-op when it is final already
            with self.lock:
                self._forget_active(task)
                self._mark_settled(task)

    def _forget_active(self, task: ImageDownloadTask) -> None:
        """(Under the lock.) The task is no longer its image's (and its file's) live task."""
        uuid = media_uuid(task.image_url)
        for key in (task.image_id, file_key(uuid) if uuid else None):
            if key is not None and self._active_by_image.get(key) is task:
                del self._active_by_image[key]

    def _mark_settled(self, task: ImageDownloadTask) -> None:
        """(Under the lock.) The task is settled: wake the waiters."""
        self._live.discard(task.id)
        if task.id in self._unsettled:
            self._unsettled.discard(task.id)
            self._settled_ids.append(task.id)
        task._settled = True
        self._changed.notify_all()

    def wait(self, task_ids: Optional[Iterable[str]], deadline: Optional[float]) -> bool:
        """Block until the tasks are settled; False when ``deadline`` (monotonic) passes.

        A wake-up looks only at what settled since the last one, never at every task: waiting
        for a run of N images is O(N) work, not O(N²) (a settlement wakes every waiter)."""
        with self.lock:
            if task_ids is None:
                waiting: Optional[Set[str]] = None
            else:
                ids = [task_ids] if isinstance(task_ids, str) else task_ids
                waiting = {t for t in ids if t in self._unsettled}
            read = len(self._settled_ids)
            while True:
                if waiting is None:
                    if not self._unsettled:
                        return True
                else:
                    waiting.difference_update(self._settled_ids[read:])
                    read = len(self._settled_ids)
                    if not waiting:
                        return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining if remaining is not None else 1.0)

    # -- listings --------------------------------------------------------------------------------

    def open_listing(self, listing: ListingState) -> None:
        """Track a listing; an earlier, interrupted run of the same query stops and hands over."""
        with self.lock:
            for older in [x for x in self._listings if x.query_key == listing.query_key]:
                # this run resumes from the checkpoint and takes over the older run's unfinished
                # tasks, so it alone writes the checkpoint from now on
                older.use_checkpoint = False
                older.stop.set()
                self._listings.remove(older)
            self._listings.append(listing)

    def stop_listings(self) -> None:
        with self.lock:
            for listing in self._listings:
                listing.stop.set()

    def update_checkpoint(self, listing: ListingState) -> None:
        def forget() -> None:
            self._listings = [x for x in self._listings if x is not listing]

        listing.sync_checkpoint(self.lock, self._archive_of, forget)


def file_key(uuid: str) -> tuple:
    """The key under which a live task is also found by its file's uuid (``join_active``)."""
    return ("uuid", uuid)

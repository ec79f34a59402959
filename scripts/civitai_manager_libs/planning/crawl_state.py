"""The bookkeeping of one listing (one ``download_*`` call): its pages, their open tasks, the
cursors it asked for, and the resume checkpoint it keeps in the archive.

Unlimited listings keep a checkpoint: the cursor of the oldest page whose tasks are not all
finished (failed counts as finished, cancelled does not). The same call resumes from it, and it is
cleared once the listing and all its tasks are done. (The cursors asked and the loop guards are
``civitai/pages.PageLoop``'s.)
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Set, Tuple

from ..engine.task import CANCELLED


class ListingPage:
    """One listed page: the cursor that asked for it, the next one, its tasks not final yet."""

    __slots__ = ("cursor", "next_cursor", "open", "held")

    def __init__(self, cursor: Optional[str], next_cursor: Optional[str]):
        self.cursor = cursor
        self.next_cursor = next_cursor
        self.open: Set[str] = set()  # task ids not final yet
        self.held = False  # a task of this page was cancelled: resume must start here


class ListingState:
    """One ``download_*`` call: its pages, for the checkpoint and to stop listing on cancel."""

    def __init__(self, query_key: str, use_checkpoint: bool, start_cursor: Optional[str]):
        self.query_key = query_key
        self.use_checkpoint = use_checkpoint
        self.start_cursor = start_cursor
        self.pages: List[ListingPage] = []
        self.task_ids: List[str] = []
        self.seen_images: Set[Any] = set()
        self.unscheduled: Set[str] = set()  # registered, not yet handed on (settled on an error)
        self.stop = threading.Event()
        self.lock = threading.Lock()  # orders checkpoint writes
        self.listing_done = False
        self.written: Any = start_cursor  # what the archive holds now

    def add_page(self, cursor: Optional[str], next_cursor: Optional[str]) -> ListingPage:
        page = ListingPage(cursor, next_cursor)
        self.pages.append(page)
        return page

    def task_final(self, task: Any) -> bool:
        """Account a final task; True when it belonged to this listing."""
        touched = False
        for page in self.pages:
            if task.id in page.open:
                page.open.discard(task.id)
                if task.status == CANCELLED:
                    page.held = True
                touched = True
        return touched

    def checkpoint(self) -> Tuple[bool, Optional[str]]:
        """(finished, cursor to resume from). ``cursor`` None means "from the beginning"."""
        for page in self.pages:
            if page.open or page.held:
                return False, page.cursor
        if not self.listing_done:
            return False, self.pages[-1].next_cursor if self.pages else self.start_cursor
        return True, None

    def sync_checkpoint(
        self, state_lock: Any, archive_of: Callable[[], Any], forget: Callable[[], None]
    ) -> None:
        """Write the checkpoint to the archive when it changed; ``forget()`` (under
        ``state_lock``, the lock guarding the tasks) once the listing and its tasks are done."""
        if not self.use_checkpoint:
            return
        with self.lock:  # compute and write together: a stale value never lands last
            with state_lock:
                finished, cursor = self.checkpoint()
                if finished:
                    forget()
                wanted = None if finished else cursor
                if wanted == self.written:
                    return
            if wanted is None:
                archive_of().clear_checkpoint(self.query_key)
            else:
                archive_of().set_checkpoint(self.query_key, wanted)
            self.written = wanted

"""One writer per output folder, held for as long as a downloader has work: while a call plans
tasks and after it until they are all settled, or for the downloader's whole life once pinned
(the CLI). The lock itself is ``store/folder_lock``; this module says when it is held."""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..store.folder_lock import FolderLock
from .task_registry import TaskRegistry


class WorkLock:
    """The output folder's lock of one downloader (see the module docstring)."""

    def __init__(self, output_path: str, registry: TaskRegistry):
        self._lock = FolderLock(output_path)
        self._registry = registry
        self._pinned = False
        self._planning = 0  # calls planning work right now
        registry.after_settle = self.release_if_idle

    def pin(self) -> None:
        """Hold the lock until :meth:`let_go` (OutputBusyError when another process holds it)."""
        self._lock.hold()
        self._pinned = True

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Hold the lock for a call that plans work, and after it while its tasks run
        (OutputBusyError when another process holds it)."""
        self._lock.hold()
        with self._registry.lock:
            self._planning += 1
        try:
            yield
        finally:
            with self._registry.lock:
                self._planning -= 1
            self.release_if_idle()

    def release_if_idle(self) -> None:
        if self._pinned or not self._lock.held:
            return
        with self._registry.lock:
            idle = self._planning == 0 and not self._registry.has_live()
        if idle:
            self._lock.let_go()

    def let_go(self) -> None:
        self._lock.let_go()

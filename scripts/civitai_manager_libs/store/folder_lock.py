"""One writer per output folder: an exclusive lock on ``<output>/.civitai_archive.lock``.

Two processes downloading into one folder (two CLIs, or the tab and a CLI) would race on the same
``.part`` files and archive rows. The first run to start holds the lock (``flock``, released by
the system when the process ends, even on ``kill -9``); a second process refuses at once with
:class:`errors.OutputBusyError` naming the folder and the process holding it. Within one process
the lock is shared (the tab and its helpers run in one process and coordinate through one
archive), counted, and released when the last holder lets go.

On a system without ``fcntl`` (Windows) the lock is a no-op.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from typing import Dict, Optional, Tuple

from ..errors import OutputBusyError, OutputPathError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME = ".civitai_archive.lock"

_table_lock = threading.Lock()
_held: Dict[str, Tuple[int, int]] = {}  # real folder -> (fd, holders in this process)


def _holder_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _busy(folder: str, fd: int) -> OutputBusyError:
    pid = _holder_pid(fd)
    who = f"another process (pid {pid})" if pid else "another process"
    return OutputBusyError(
        f"{who} is already downloading into {folder}; wait for it to finish, or choose another "
        "output folder. Two runs never share one folder."
    )


def acquire(folder: str) -> str:
    """Take the lock of ``folder`` (created if needed) for this process; returns the key to
    :func:`release`. OutputBusyError when another process holds it."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(
            f"Cannot create the output folder {folder}: {exc.strerror or exc}. Choose an output "
            "folder you can write to."
        ) from None
    key = os.path.realpath(folder)
    with _table_lock:
        if key in _held:
            fd, count = _held[key]
            _held[key] = (fd, count + 1)
            return key
        if fcntl is None:  # pragma: no cover - Windows
            _held[key] = (-1, 1)
            return key
        path = os.path.join(key, LOCK_NAME)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise OutputPathError(
                f"Cannot use the output folder {folder}: its lock file {path} cannot be opened "
                f"({exc.strerror or exc}). Choose an output folder you can write to."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
            error = _busy(folder, fd) if busy else None
            os.close(fd)
            if error is not None:
                raise error from None
            raise OutputPathError(f"Cannot lock the output folder {folder}: {exc}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as exc:  # the lock holds all the same; only the pid in messages is lost
            logger.debug("could not write the pid into %s: %s", path, exc)
        _held[key] = (fd, 1)
        logger.debug("locked the output folder %s", key)
        return key


def release(key: str) -> None:
    """Let go of one hold taken with :func:`acquire`; the lock goes with the last one."""
    with _table_lock:  # closed under the table lock: a new acquire never meets the old flock
        fd, count = _held.get(key, (-1, 0))
        if count > 1:
            _held[key] = (fd, count - 1)
            return
        _held.pop(key, None)
        if fd >= 0:
            try:
                os.close(fd)  # closing the only descriptor releases the flock
            except OSError as exc:
                logger.debug("closing the lock of %s: %s", key, exc)
    logger.debug("released the output folder %s", key)


class FolderLock:
    """The lock of one output folder as held by one owner (an ImageDownloader): ``hold()`` and
    ``let_go()`` are idempotent."""

    def __init__(self, folder: str):
        self.folder = folder
        self._key: Optional[str] = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._key is not None

    def hold(self) -> None:
        with self._lock:
            if self._key is None:
                self._key = acquire(self.folder)

    def let_go(self) -> None:
        with self._lock:
            key, self._key = self._key, None
        if key is not None:
            release(key)

"""What the disk allows a download: the size cap and the free space kept (checked before a byte
is written and every few MB while the body arrives), and a failed write in words (a full disk is
a DiskSpaceError; the ``.part`` is removed)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from typing import Any

from ..errors import DiskSpaceError, FileTooLargeError, OutputPathError
from ..store.file_path import FilePath

logger = logging.getLogger(__name__)

_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
FREE_CHECK_EVERY = 8 * 1024 * 1024  # bytes written between two free-space checks


def close_failed(handle) -> None:
    """Close a file whose write just failed; the buffered rest fails to flush again (EFBIG or
    ENOSPC once more), which must not mask the first error: the caller removes the file anyway."""
    try:
        handle.close()
    except OSError as exc:
        logger.debug("Closing %s after a failed write failed too: %s", handle.name, exc)


def disk_error(exc: OSError, name: FilePath, safe_url: str) -> Exception:
    """Turn a write failure into the typed error, removing the ``.part`` file."""
    name.discard()
    part = name.temp
    err: Exception
    if exc.errno in _DISK_FULL:
        err = DiskSpaceError(
            f"The disk filled up while saving {safe_url} to {part}; the partial file was removed. "
            "Free some space or choose another output folder."
        )
    else:
        err = OutputPathError(
            f"Cannot write {part} ({exc.strerror or exc}); check that the output folder exists "
            "and is writable."
        )
    err.errno = exc.errno
    return err


def check_size(policy: Any, name: FilePath, safe_url: str, total: int, offset: int) -> None:
    """Refuse, before writing, a file over the size cap or over the free space."""
    cap = policy.max_bytes
    if cap is not None and total > cap:
        name.discard()
        raise FileTooLargeError(
            f"{safe_url} announces {shown_size(total)}, more than the largest file accepted "
            f"({shown_size(cap)}, {policy.cap_reason}); nothing was saved.",
            url=safe_url,
        )
    folder = os.path.dirname(name.realpath())
    free = shutil.disk_usage(folder).free
    if total <= offset and free < policy.min_free_bytes:
        raise DiskSpaceError(
            f"Only {shown_size(free)} free on {folder}, under the "
            f"{shown_size(policy.min_free_bytes)} kept free (setting images.min_free_space_mb); "
            f"{safe_url} was not started. "
            "Free some space or choose another output folder."
        )
    if total - offset > free - policy.min_free_bytes and total > offset:
        raise DiskSpaceError(
            f"{safe_url} announces {shown_size(total - offset)} still to download and only "
            f"{shown_size(free)} are free on {folder} (keeping "
            f"{shown_size(policy.min_free_bytes)}, setting images.min_free_space_mb); nothing was "
            "written. Free some space."
        )


def keep_free_space(policy: Any, name: FilePath, safe_url: str, handle: Any) -> None:
    """Stop the stream when the disk goes under ``images.min_free_space_mb``."""
    folder = os.path.dirname(name.realpath())
    free = shutil.disk_usage(folder).free
    if free >= policy.min_free_bytes:
        return
    close_failed(handle)
    name.discard()
    raise DiskSpaceError(
        f"Only {shown_size(free)} left on {folder} while saving {safe_url}, under the "
        f"{shown_size(policy.min_free_bytes)} kept free (setting images.min_free_space_mb); "
        "the partial file was removed. Free some space or choose another output folder."
    )


def shown_size(size: int) -> str:
    size = max(0, size)  # a size is never shown negative
    if size >= 1024**3:
        return f"{size / 1024 ** 3:.1f} GiB"
    return f"{size / 1024 ** 2:.1f} MB"

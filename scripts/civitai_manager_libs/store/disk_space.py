"""Free-space policy of a batch: refuse to start under ``images.min_free_space_mb`` and tell when
the queued work would bring the disk under that minimum.

The queued work is estimated per task: the bytes still expected when the server said the size,
else the observed average size (after five downloads), else width x height x 1.2 bytes for a
picture and 8 MB for a video.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterable, Optional, Sequence

from ..errors import DiskSpaceError

DEFAULT_IMAGE_ESTIMATE = 1024 * 1024
VIDEO_ESTIMATE = 8 * 1024 * 1024
_AVERAGE_OF = 50  # recent downloads the average size is taken from
_AVERAGE_AFTER = 5  # downloads before the average is trusted


def existing_parent(path: str) -> str:
    """``path`` itself or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(path: str) -> int:
    """Free bytes on the disk ``path`` is (or would be) on."""
    return shutil.disk_usage(existing_parent(path)).free


def check_free_space(root: str, min_free_space_mb: int) -> None:
    """DiskSpaceError (nothing written yet) when ``root``'s disk is under the minimum."""
    free = free_bytes(root)
    if free < min_free_space_mb * 1024 * 1024:
        raise DiskSpaceError(
            f"Only {free // 2**20} MB free on {existing_parent(root)}; downloads need at "
            f"least {min_free_space_mb} MB (setting images.min_free_space_mb). Free some "
            "space or choose another output folder."
        )


def average_size(sizes: Sequence[int]) -> Optional[int]:
    """The average of the recent download sizes, once there are enough of them."""
    recent = sizes[-_AVERAGE_OF:]
    return sum(recent) // len(recent) if len(sizes) >= _AVERAGE_AFTER else None


def estimate_bytes(task, per_image: Optional[int]) -> int:
    """Bytes ``task`` (an ImageDownloadTask not final yet) will still write."""
    if task.bytes_total:
        return max(0, task.bytes_total - task.bytes_done)
    if per_image is not None:
        return per_image
    item = task.item
    if item is not None and item.type == "video":
        return VIDEO_ESTIMATE
    if item is not None and item.width and item.height:
        return int(item.width * item.height * 1.2)
    return DEFAULT_IMAGE_ESTIMATE


def shortfall(
    pending: Iterable, sizes: Sequence[int], output_path: str, min_free_space_mb: int
) -> Optional[str]:
    """Why the ``pending`` tasks may not start (a "not started: ..." reason), or None."""
    per_image = average_size(sizes)
    need = sum(estimate_bytes(task, per_image) for task in pending)
    free = free_bytes(output_path)
    if free - need >= min_free_space_mb * 1024 * 1024:
        return None
    return (
        f"not started: the queued images need about {need // 2**20} MB and only "
        f"{free // 2**20} MB are free on {output_path} "
        f"(images.min_free_space_mb = {min_free_space_mb}); free some space"
    )

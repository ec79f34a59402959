"""A size cap for a cache folder (the gallery's thumbnails and previews): files used are touched,
and past the cap the least recently used are removed (through :mod:`.confined`) until the folder
is back under 90 % of it, never the files in use."""

from __future__ import annotations

import logging
import os
from typing import Iterable, List, Optional, Tuple

from ..errors import ConfinementError
from . import confined

logger = logging.getLogger(__name__)

#: A trim goes down to this share of the cap, so the next few pages do not trim again at once.
LOW_WATER = 0.9


def touch(paths: Iterable[Optional[str]]) -> None:
    """Mark ``paths`` as used now (their modification time; access times are often not kept)."""
    for path in paths:
        if path:
            try:
                os.utime(path)
            except OSError:
                pass


def _files(folder: str) -> List[Tuple[float, int, str]]:
    found = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            found.append((info.st_mtime, info.st_size, path))
    return found


def trim(folder: str, max_bytes: int, keep: Iterable[Optional[str]] = ()) -> Tuple[int, int]:
    """Remove the least recently used files of ``folder`` while it holds more than ``max_bytes``
    (down to :data:`LOW_WATER` of it); ``keep`` are never removed. Returns (files, bytes)
    removed. ``max_bytes`` 0 or less: no cap."""
    if max_bytes <= 0 or not os.path.isdir(folder):
        return 0, 0
    files = _files(folder)
    total = sum(size for _t, size, _p in files)
    if total <= max_bytes:
        return 0, 0
    kept = {os.path.abspath(p) for p in keep if p}
    target = int(max_bytes * LOW_WATER)
    removed = freed = 0
    for _mtime, size, path in sorted(files):
        if total <= target:
            break
        if os.path.abspath(path) in kept:
            continue
        try:
            if confined.remove(path, folder):
                removed += 1
                freed += size
                total -= size
        except (OSError, ConfinementError) as exc:
            logger.debug("cache file %s not removed: %s", path, exc)
    logger.debug("cache %s trimmed: %d files, %d bytes", folder, removed, freed)
    return removed, freed

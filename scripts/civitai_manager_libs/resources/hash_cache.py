"""SHA-256 of local model files, computed once per (path, size, mtime, inode) and kept in the
archive: a file replaced under the same name (another inode) is hashed again."""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Callable, Optional

from ..store.resource_cache import ResourceCache

logger = logging.getLogger(__name__)

#: ``(bytes hashed so far, total bytes, file name)``
HashProgress = Callable[[int, int, str], None]
BLOCK = 1024 * 1024


class FileHasher:
    """Hashes files through a :class:`ResourceCache` (a cache hit reads nothing but ``stat``)."""

    def __init__(
        self, cache: Optional[ResourceCache] = None, progress: Optional[HashProgress] = None
    ):
        self.cache = cache
        self.progress = progress
        self.hashed_files = 0  # files actually read (not served from the cache)

    def sha256(self, path: str) -> str:
        """The upper-case hex SHA-256 of ``path``; OSError when it cannot be read."""
        path = os.path.abspath(path)
        info = os.stat(path)
        if self.cache is not None:
            known = self.cache.get_hash(path, info.st_size, info.st_mtime_ns, info.st_ino)
            if known:
                return known
        logger.debug("Hashing %s (%d MB) once; the result is cached.", path, info.st_size >> 20)
        digest = hashlib.sha256()
        done = 0
        name = os.path.basename(path)
        with open(path, "rb") as handle:
            while True:
                block = handle.read(BLOCK)
                if not block:
                    break
                digest.update(block)
                done += len(block)
                if self.progress is not None:
                    self.progress(done, info.st_size, name)
        value = digest.hexdigest().upper()
        self.hashed_files += 1
        if self.cache is not None:
            self.cache.put_hash(path, info.st_size, info.st_mtime_ns, value, info.st_ino)
        return value

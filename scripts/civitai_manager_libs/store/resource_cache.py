"""What we already know about model resources, kept in the archive's SQLite file.

Two tables, added beside the archive's own (same file, own connection, created if missing, so an
archive written before them still opens):

* ``civitai_lookups``: the answer of one Civitai look-up (``version:<id>`` or ``hash:<HASH>``):
  the JSON body, or a 404 (``status`` 404, no body), with the time it was fetched. A resource is
  looked up once per library, not per image; a 404 is trusted for :data:`NOT_FOUND_MAX_AGE`.
* ``local_hashes``: SHA-256 of a local model file keyed by path, size, mtime and inode (a file
  replaced by another one of the same size and time under the same name has a new inode), so a
  6 GB checkpoint is hashed once, not on every start; on any doubt it is hashed again.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from ..errors import ArchiveError
from . import confined
from ..util.documents import DocumentError, read_document

logger = logging.getLogger(__name__)

NOT_FOUND_MAX_AGE = 7 * 86_400.0  # seconds a cached 404 counts as "not on Civitai"
FOUND_MAX_AGE = (
    86_400.0  # seconds a cached answer is reused (setting resources.lookup_max_age_hours)
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS civitai_lookups (
        lookup_key TEXT PRIMARY KEY,
        status INTEGER NOT NULL,
        body TEXT,
        fetched_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS local_hashes (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    )""",
)


@dataclass(frozen=True)
class CachedLookup:
    status: int  # 200 or 404
    body: Optional[Dict[str, Any]]
    fetched_at: float

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.fetched_at)


class ResourceCache:
    """Look-up answers and local file hashes in the SQLite file at ``db_path``."""

    def __init__(self, db_path: Union[str, os.PathLike]):
        self.db_path = os.path.abspath(os.fspath(db_path))
        self._lock = threading.RLock()
        try:
            os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
            for suffix in ("", "-wal", "-shm", "-journal"):  # never a link (store/confined)
                confined.check_target(self.db_path + suffix)
            self._conn: Optional[sqlite3.Connection] = sqlite3.connect(
                self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            for statement in _SCHEMA:
                self._conn.execute(statement)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(local_hashes)")}
            if "inode" not in columns:  # a cache written before the inode was part of the key
                self._conn.execute(
                    "ALTER TABLE local_hashes ADD COLUMN inode INTEGER NOT NULL DEFAULT -1"
                )
        except (OSError, sqlite3.Error) as exc:
            raise ArchiveError(
                f"Cannot open the resource cache in {self.db_path}: {exc}. Check that the output "
                "folder is writable."
            ) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "ResourceCache":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @contextmanager
    def _db(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise ArchiveError(f"The resource cache {self.db_path} is closed.")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise ArchiveError(
                    f"Cannot {action} the resource cache {self.db_path}: {exc}."
                ) from None

    # ------------------------------------------------------------------ Civitai look-ups

    def get_lookup(self, key: str, max_age: Optional[float] = None) -> Optional[CachedLookup]:
        """The cached answer for ``key``; an expired one counts as no answer (a 404 after
        :data:`NOT_FOUND_MAX_AGE`, an answer after ``max_age`` seconds, default
        :data:`FOUND_MAX_AGE`: the service changes, a look-up is not kept for good)."""
        with self._db("read") as conn:
            row = conn.execute(
                "SELECT status, body, fetched_at FROM civitai_lookups WHERE lookup_key = ?", (key,)
            ).fetchone()
        return self._read_row(row, key, max_age)

    def find_lookup(self, key: str) -> Optional[CachedLookup]:
        """The newest cached answer for ``key`` asked of any front (the keys of a front start
        with its address, ``resources/resolve.py``), whatever its age: what an offline view
        (the Library) shows, never what a download decides on."""
        pattern = "% " + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._db("read") as conn:
            row = conn.execute(
                "SELECT status, body, fetched_at FROM civitai_lookups WHERE lookup_key = ? "
                "OR lookup_key LIKE ? ESCAPE '\\' ORDER BY fetched_at DESC LIMIT 1",
                (key, pattern),
            ).fetchone()
        return self._read_row(row, key, float("inf"))

    def _read_row(self, row: Any, key: str, max_age: Optional[float]) -> Optional[CachedLookup]:
        if row is None:
            return None
        status, body, fetched_at = row
        try:  # the one reader: a cached entry that no longer reads is dropped (asked again)
            value = read_document(body, what="cached look-up") if body else None
        except DocumentError as exc:
            logger.info("resource look-up %s: the cached answer is dropped (%s)", key, exc)
            return None
        if value is not None and not isinstance(value, dict):
            return None
        cached = CachedLookup(int(status), value, float(fetched_at))
        if cached.status == 404 and cached.age > NOT_FOUND_MAX_AGE:
            return None
        if cached.status != 404 and cached.age > (FOUND_MAX_AGE if max_age is None else max_age):
            return None
        return cached

    def put_lookup(self, key: str, status: int, body: Optional[Dict[str, Any]]) -> None:
        text = json.dumps(body, ensure_ascii=False) if body is not None else None
        with self._db("write") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO civitai_lookups (lookup_key, status, body, fetched_at) "
                "VALUES (?, ?, ?, ?)",
                (key, int(status), text, time.time()),
            )

    # ------------------------------------------------------------------ local file hashes

    def get_hash(self, path: str, size: int, mtime_ns: int, inode: int = -1) -> Optional[str]:
        """The SHA-256 cached for exactly this file (path, size, mtime and inode), else None."""
        with self._db("read") as conn:
            row = conn.execute(
                "SELECT sha256 FROM local_hashes WHERE path = ? AND size = ? AND mtime_ns = ? "
                "AND inode = ?",
                (path, int(size), int(mtime_ns), int(inode)),
            ).fetchone()
        return str(row[0]) if row else None

    def paths_with_hash(self, sha256: str) -> List[Tuple[str, int, int, int]]:
        """``(path, size, mtime_ns, inode)`` of every file hashed to ``sha256`` (it may have
        changed or gone since: check the file's size, mtime and inode before trusting a row)."""
        with self._db("read") as conn:
            rows = conn.execute(
                "SELECT path, size, mtime_ns, inode FROM local_hashes WHERE sha256 = ?",
                (sha256.upper(),),
            ).fetchall()
        return [(str(p), int(size), int(mtime), int(inode)) for p, size, mtime, inode in rows]

    def put_hash(self, path: str, size: int, mtime_ns: int, sha256: str, inode: int = -1) -> None:
        with self._db("write") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO local_hashes (path, size, mtime_ns, sha256, inode) "
                "VALUES (?, ?, ?, ?, ?)",
                (path, int(size), int(mtime_ns), sha256.upper(), int(inode)),
            )

"""The archive's connection: opening (read-write or read-only), the lock, transactions, sqlite3
errors turned into typed errors, and paths stored relative to the output root. The rows live in
archive_images, archive_tasks and archive_state; store/archive.py puts them together."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, List, Optional, TypeVar, Union
from urllib.parse import quote

from ..errors import ArchiveError, DiskSpaceError, OutputPathError
from . import archive_schema, confined
from .archive_schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)

ARCHIVE_FILENAME = ".civitai_archive.sqlite3"
# SQLite primary result codes (sqlite.org/rescode.html) that _guard turns into typed errors
_SQLITE_FULL = 13
_SQLITE_NOT_WRITABLE = (3, 8, 14)  # PERM, READONLY, CANTOPEN
_SQLITE_BUSY = (5, 6)  # BUSY, LOCKED
_SQLITE_DAMAGED = (11, 26)  # CORRUPT, NOTADB
_Self = TypeVar("_Self", bound="ArchiveDb")


def archive_path(output_path: Union[str, os.PathLike]) -> str:
    """The default archive file of an output folder."""
    return os.path.join(os.fspath(output_path), ARCHIVE_FILENAME)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _image_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"An image id must be a whole number, got {value!r}.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"An image id must be a whole number, got {value!r}.")


def _optional_id(value: Any) -> Optional[int]:
    return None if value is None else _image_id(value)


class ArchiveDb:
    """One SQLite connection guarded by a lock; see store/archive.py."""

    def __init__(self, db_path: Union[str, os.PathLike], read_only: bool = False):
        self.db_path = os.path.abspath(os.fspath(db_path))
        self._folder = os.path.dirname(self.db_path)
        self._lock = threading.RLock()
        self._conn: Optional[sqlite3.Connection] = None
        self.read_only = read_only
        if read_only:
            self._open_read_only()
            return
        try:
            os.makedirs(self._folder, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(
                f"Cannot create the folder {self._folder} for the download archive: "
                f"{exc.strerror}. Choose an output folder you can write to."
            ) from None
        # The database and SQLite's companion files are never links (a dangling link there would
        # create the database outside the output folder).
        for suffix in ("", "-wal", "-shm", "-journal"):
            confined.check_target(self.db_path + suffix, self._folder)
        with self._guard("open"):
            conn = sqlite3.connect(
                self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        self._conn = conn
        try:
            with self._guard("open"):
                self._setup()
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _open_read_only(self) -> None:
        if not os.path.isfile(self.db_path):
            raise ArchiveError(
                f"There is no download archive at {self.db_path}; nothing was downloaded into "
                "this folder yet (check --output)."
            )
        uri = "file:" + quote(self.db_path)
        conn = None
        for options in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(
                    uri + options,
                    uri=True,
                    timeout=30.0,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.Error as exc:
                # A WAL database in a read-only folder cannot make its -shm file: read it as an
                # immutable file instead (nothing else can write there either).
                logger.debug("Opening %s%s failed: %s", self.db_path, options, exc)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is None:
            with self._guard("read"):
                sqlite3.connect(uri + "?mode=ro", uri=True).execute("SELECT 1 FROM images")
            raise ArchiveError(f"Cannot read the download archive {self.db_path}.")
        conn.row_factory = sqlite3.Row
        self._conn = conn
        try:
            version = self.schema_version()
        except BaseException:
            self.close()
            raise
        if version > SCHEMA_VERSION:
            self.close()
            raise ArchiveError(
                f"The download archive {self.db_path} was written by a newer version of Civitai "
                f"Gallery (schema {version}, this one reads {SCHEMA_VERSION}); "
                "update the extension."
            )

    # -- paths: relative to the output root on disk, absolute in memory

    def _stored_path(self, path: Any) -> Optional[str]:
        """How ``path`` is stored: relative to the archive's folder when inside it."""
        if path is None:
            return None
        path = os.fspath(path)
        if not os.path.isabs(path):
            return path
        relative = confined.relative_to(path, self._folder)
        return relative if relative is not None else path

    def _read_path(self, path: Optional[str]) -> Optional[str]:
        """A stored path as an absolute path under the archive's current folder."""
        if path is None or os.path.isabs(path):
            return path
        return os.path.join(self._folder, path)

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"Archive({self.db_path!r}, {state})"

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (a second call does nothing)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn sqlite3 errors into typed errors with a sentence a user can act on."""
        try:
            yield
        except sqlite3.Error as exc:
            # by SQLite's result code (the primary code is the low byte), never by the wording
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            where = f"the download archive {self.db_path}"
            if code == _SQLITE_FULL:
                raise DiskSpaceError(
                    f"The disk is full: cannot {action} {where}. Free some space and run again."
                ) from None
            if code in _SQLITE_NOT_WRITABLE:
                raise OutputPathError(
                    f"Cannot {action} {where}: the file or its folder is not writable."
                ) from None
            if code in _SQLITE_BUSY:
                raise ArchiveError(
                    f"Cannot {action} {where}: another program keeps it locked. "
                    "Close other downloads into the same folder and try again."
                ) from None
            if code in _SQLITE_DAMAGED:
                raise ArchiveError(
                    f"{where[0].upper()}{where[1:]} is damaged. Move it away and run again; "
                    "images already on disk are kept but will be checked again."
                ) from None
            raise ArchiveError(f"Cannot {action} {where}: {exc}.") from None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ArchiveError(f"The download archive {self.db_path} is closed.")
        return self._conn

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard(action):
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for another store module's reads (store/library_index), under the
        archive's lock; sqlite3 errors it lets through become typed errors."""
        with self._lock, self._guard("read"):
            yield self._db()

    def writing(self) -> Any:
        """A write transaction on the connection (a context manager), as the archive's own."""
        return self._transaction("write to")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> List[sqlite3.Row]:
        with self._lock, self._guard("read"):
            return self._db().execute(sql, tuple(params)).fetchall()

    def _setup(self) -> None:
        conn = self._db()
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning(
                "The file system of %s does not support SQLite WAL (journal mode %s); "
                "the archive still works but concurrent access is slower.",
                self.db_path,
                mode,
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        with self._transaction("prepare"):
            version = archive_schema.create(conn)
            if version <= SCHEMA_VERSION:
                archive_schema.migrate(conn, self._folder)
        if version > SCHEMA_VERSION:
            raise ArchiveError(
                f"The download archive {self.db_path} was written by a newer version of Civitai "
                f"Gallery (schema {version}, this one reads {SCHEMA_VERSION}); "
                "update the extension."
            )

    def schema_version(self) -> int:
        return int(self._query("SELECT MAX(version) FROM schema_version")[0][0])

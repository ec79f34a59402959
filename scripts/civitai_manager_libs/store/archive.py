"""The record of what was downloaded: a SQLite file (WAL) of images, tasks and crawl checkpoints.

One :class:`Archive` per output folder, at ``<output_path>/.civitai_archive.sqlite3``
(:func:`archive_path`). It is safe to share between the download engine's worker threads (one
connection guarded by a lock) and between processes (SQLite locking, 30 s busy timeout).

Every write is its own committed transaction (batches are one transaction), and the journal is in
WAL mode with ``synchronous=NORMAL``: a process killed at any moment (``kill -9``) leaves a readable
database holding every write that returned. (A power cut may lose the last few commits, never the
file.)

Tables: ``images`` (one row per saved image: id, url, sha256, path, metadata path, size, time),
``tasks`` (every task with its latest state), ``checkpoints`` (query key -> next cursor) and
``schema_version``; ``library`` / ``library_fts``, the search index (store/library_index.py), are
written in the image row's transaction.

Paths inside the archive's folder (the output root) are stored relative to it and read back as
absolute paths under the folder the archive is in now, so a copied or moved output folder never
points at the old one (older archives with absolute paths are rewritten when opened for writing,
and read the same way meanwhile). URLs are stored with their secrets masked (``?token=***``).
``Archive(path, read_only=True)`` never writes (``tasks`` on a read-only folder).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from urllib.parse import quote
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Tuple, Union

# ArchiveError is defined in errors.py (the CLI catches it there) and stays importable from here.
from ..errors import ArchiveError, DiskSpaceError, OutputPathError
from ..util.logging_setup import redact
from ..util.media_key import media_uuid
from . import confined, library_index

logger = logging.getLogger(__name__)

ARCHIVE_FILENAME = ".civitai_archive.sqlite3"
SCHEMA_VERSION = 1
TASK_STATUSES = ("pending", "downloading", "completed", "skipped", "failed", "cancelled")
_CHUNK = 500  # ids per IN (...) query, well under SQLite's variable limit
_UNSET: Any = object()
_TASK_FIELDS = ("image_id", "url", "status", "path", "metadata_path", "error", "query_key")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    image_id INTEGER PRIMARY KEY,
    url TEXT,
    sha256 TEXT,
    path TEXT,
    metadata_path TEXT,
    size INTEGER,
    downloaded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images (sha256);
CREATE INDEX IF NOT EXISTS images_path ON images (path);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    image_id INTEGER,
    url TEXT,
    status TEXT NOT NULL,
    path TEXT,
    metadata_path TEXT,
    error TEXT,
    query_key TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_image_id ON tasks (image_id);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
CREATE TABLE IF NOT EXISTS run_options (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    name TEXT NOT NULL,
    model_id INTEGER,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    query_key TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ArchivedImage:
    image_id: int
    url: Optional[str]
    sha256: Optional[str]
    path: Optional[str]
    metadata_path: Optional[str]
    size: Optional[int]
    downloaded_at: str
    uuid: Optional[str] = None  # the file's Civitai uuid (one file, whatever URL named it)


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    image_id: Optional[int]
    url: Optional[str]
    status: str
    path: Optional[str]
    metadata_path: Optional[str]
    error: Optional[str]
    query_key: Optional[str]
    created_at: str
    updated_at: str


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


def _add_uuid_column(conn: sqlite3.Connection) -> None:
    """``images.uuid`` (indexed): the file's Civitai uuid, the key that finds one video under
    its old and its new URL. Older archives gain the column, filled from their stored URLs."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(images)")}
    if "uuid" not in columns:
        conn.execute("ALTER TABLE images ADD COLUMN uuid TEXT")
        rows = conn.execute("SELECT image_id, url FROM images WHERE url IS NOT NULL").fetchall()
        filled = [(media_uuid(url), image_id) for image_id, url in rows if media_uuid(url)]
        conn.executemany("UPDATE images SET uuid = ? WHERE image_id = ?", filled)
    conn.execute("CREATE INDEX IF NOT EXISTS images_uuid ON images (uuid)")


def _optional_id(value: Any) -> Optional[int]:
    return None if value is None else _image_id(value)


_TASK_ALIASES = {"id": "task_id", "image_url": "url", "image_path": "path"}


def _task_values(task: Any) -> Dict[str, Any]:
    """The archive fields of a whole task: a mapping or an object shaped like ``ImageDownloadTask``.

    ``id``, ``image_url`` and ``image_path`` are read as ``task_id``, ``url`` and ``path``; other
    keys or attributes (progress, model name...) are not archived and are ignored.
    """
    wanted = ("task_id",) + _TASK_FIELDS
    values: Dict[str, Any] = {}
    if isinstance(task, Mapping):
        for key, value in task.items():
            name = _TASK_ALIASES.get(key, key)
            if name in wanted and (name not in values or key == name):
                values[name] = value
    else:
        for attr in list(_TASK_ALIASES) + list(wanted):
            if hasattr(task, attr):
                name = _TASK_ALIASES.get(attr, attr)
                if name not in values or attr == name:
                    values[name] = getattr(task, attr)
    if values.get("task_id") in (None, ""):
        raise ValueError(f"A task needs an id; got {type(task).__name__} without one.")
    return values


class Archive:
    """See the module docstring. Use as a context manager or call :meth:`close`."""

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

    def _image(self, row: sqlite3.Row) -> "ArchivedImage":
        values = dict(row)
        values["path"] = self._read_path(values["path"])
        values["metadata_path"] = self._read_path(values["metadata_path"])
        return ArchivedImage(**values)

    def _task(self, row: sqlite3.Row) -> "TaskRecord":
        values = dict(row)
        values["path"] = self._read_path(values["path"])
        values["metadata_path"] = self._read_path(values["metadata_path"])
        return TaskRecord(**values)

    def _migrate_paths(self, conn: sqlite3.Connection) -> None:
        """Rewrite absolute paths inside the archive's folder (older archives) as relative."""
        prefixes = {
            os.path.join(self._folder, ""),
            os.path.join(os.path.realpath(self._folder), ""),
        }
        for table in ("images", "tasks"):
            for column in ("path", "metadata_path"):
                for prefix in prefixes:
                    conn.execute(
                        f"UPDATE {table} SET {column} = substr({column}, ?) "
                        f"WHERE substr({column}, 1, ?) = ?",
                        (len(prefix) + 1, len(prefix), prefix),
                    )

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"Archive({self.db_path!r}, {state})"

    def __enter__(self) -> "Archive":
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
            text = str(exc).lower()
            where = f"the download archive {self.db_path}"
            if "full" in text:
                raise DiskSpaceError(
                    f"The disk is full: cannot {action} {where}. Free some space and run again."
                ) from None
            if "readonly" in text or "unable to open" in text or "permission" in text:
                raise OutputPathError(
                    f"Cannot {action} {where}: the file or its folder is not writable."
                ) from None
            if "locked" in text or "busy" in text:
                raise ArchiveError(
                    f"Cannot {action} {where}: another program keeps it locked. "
                    "Close other downloads into the same folder and try again."
                ) from None
            if "not a database" in text or "malformed" in text or "corrupt" in text:
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
            # executescript() would COMMIT first: run the statements one by one instead.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            rows = conn.execute("SELECT version FROM schema_version").fetchall()
            if not rows:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
            else:
                version = max(row[0] for row in rows)
            if version <= SCHEMA_VERSION:
                self._migrate_paths(conn)
                _add_uuid_column(conn)
                library_index.create(conn)
        if version > SCHEMA_VERSION:
            raise ArchiveError(
                f"The download archive {self.db_path} was written by a newer version of Civitai "
                f"Gallery (schema {version}, this one reads {SCHEMA_VERSION}); "
                "update the extension."
            )

    def schema_version(self) -> int:
        return int(self._query("SELECT MAX(version) FROM schema_version")[0][0])

    # ------------------------------------------------------------------ images

    def has_image(self, image_id: Any) -> bool:
        rows = self._query("SELECT 1 FROM images WHERE image_id = ?", (_image_id(image_id),))
        return bool(rows)

    def known_ids(self, ids: Iterable[Any]) -> Set[int]:
        """The subset of ``ids`` already in the archive (None and duplicates are ignored)."""
        wanted = sorted({_image_id(i) for i in ids if i is not None})
        found: Set[int] = set()
        with self._lock, self._guard("read"):
            conn = self._db()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT image_id FROM images WHERE image_id IN ({marks})", chunk
                ).fetchall()
                found.update(row[0] for row in rows)
        return found

    def known_uuids(self, uuids: Iterable[Optional[str]]) -> Dict[str, int]:
        """The files of ``uuids`` already saved: uuid -> the image id they were saved as."""
        wanted = sorted({u.lower() for u in uuids if u})
        found: Dict[str, int] = {}
        with self._lock, self._guard("read"):
            conn = self._db()
            if "uuid" not in {row[1] for row in conn.execute("PRAGMA table_info(images)")}:
                return found  # an older archive opened read-only
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT uuid, image_id FROM images WHERE uuid IN ({marks})", chunk
                ).fetchall()
                found.update((row[0], row[1]) for row in rows)
        return found

    def get_image(self, image_id: Any) -> Optional[ArchivedImage]:
        rows = self._query("SELECT * FROM images WHERE image_id = ?", (_image_id(image_id),))
        return self._image(rows[0]) if rows else None

    def image_ids_at_path(self, path: str) -> Set[int]:
        """The ids of the saved images recorded at ``path`` (normally one, or none)."""
        rows = self._query("SELECT image_id FROM images WHERE path = ?", (self._stored_path(path),))
        return {row["image_id"] for row in rows}

    def find_by_sha256(self, sha256: str) -> Optional[ArchivedImage]:
        """The first saved image with this content hash, or None."""
        if not sha256:
            return None
        rows = self._query(
            "SELECT * FROM images WHERE sha256 = ? ORDER BY downloaded_at, image_id LIMIT 1",
            (sha256.lower(),),
        )
        return self._image(rows[0]) if rows else None

    def record_image(
        self,
        image_id: Any,
        url: Optional[str] = None,
        sha256: Optional[str] = None,
        path: Optional[str] = None,
        metadata_path: Optional[str] = None,
        size: Optional[int] = None,
        downloaded_at: Optional[str] = None,
        uuid: Optional[str] = None,
        record: Optional[Mapping[str, Any]] = None,
    ) -> ArchivedImage:
        """Insert or replace the record of a saved image; returns it. ``uuid`` (default: the one
        ``url`` carries) is the file's Civitai uuid (:meth:`known_uuids`). ``record`` (the
        image's metadata record) also goes into the search index, in the same transaction."""
        saved = ArchivedImage(
            image_id=_image_id(image_id),
            url=url,
            sha256=sha256.lower() if sha256 else None,
            path=os.fspath(path) if path is not None else None,
            metadata_path=os.fspath(metadata_path) if metadata_path is not None else None,
            size=size,
            downloaded_at=downloaded_at or _now(),
            uuid=(uuid or media_uuid(url) or "").lower() or None,
        )
        self.record_images([dict(saved.__dict__, record=record)])
        return saved

    def record_images(self, records: Iterable[Union[ArchivedImage, Mapping[str, Any]]]) -> int:
        """Insert or replace many image records in one transaction; returns how many. A mapping's
        ``record`` (its metadata record) is indexed for search in the same transaction."""
        rows, indexed = [], []
        for rec in records:
            values = dict(rec) if isinstance(rec, Mapping) else rec.__dict__
            sha = values.get("sha256")
            path = values.get("path")
            meta = values.get("metadata_path")
            url = values.get("url")
            if values.get("record") is not None:
                indexed.append(library_index.entry(_image_id(values["image_id"]), values["record"]))
            rows.append(
                (
                    _image_id(values["image_id"]),
                    redact(url) if url else url,
                    sha.lower() if sha else None,
                    self._stored_path(path),
                    self._stored_path(meta),
                    values.get("size"),
                    values.get("downloaded_at") or _now(),
                    (values.get("uuid") or media_uuid(url) or "").lower() or None,
                )
            )
        with self._transaction("write to") as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO images (image_id, url, sha256, path, metadata_path, size, "
                "downloaded_at, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            library_index.write(conn, indexed)
        return len(rows)

    def remove_image(self, image_id: Any) -> bool:
        """Forget a saved image (the file is not touched); True when a row was removed."""
        with self._transaction("write to") as conn:
            cur = conn.execute("DELETE FROM images WHERE image_id = ?", (_image_id(image_id),))
            return cur.rowcount > 0

    def iter_images(self, batch: int = 1000) -> Iterator[ArchivedImage]:
        """Every saved image record, by image id, read in batches (memory stays flat)."""
        last = None
        while True:
            if last is None:
                rows = self._query("SELECT * FROM images ORDER BY image_id LIMIT ?", (batch,))
            else:
                rows = self._query(
                    "SELECT * FROM images WHERE image_id > ? ORDER BY image_id LIMIT ?",
                    (last, batch),
                )
            if not rows:
                return
            for row in rows:
                yield self._image(row)
            last = rows[-1]["image_id"]

    def image_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM images")[0][0])

    def verify(self) -> List[ArchivedImage]:
        """Image records whose file is missing on disk (relative paths: from the archive folder)."""
        missing = []
        with self._lock, self._guard("read"):
            cursor = self._db().execute("SELECT * FROM images ORDER BY image_id")
            while True:
                rows = cursor.fetchmany(1000)
                if not rows:
                    break
                for row in rows:
                    rec = self._image(row)
                    path = rec.path
                    if not path or not os.path.isfile(path):
                        missing.append(rec)
        return missing

    # ------------------------------------------------------------------ tasks

    def record_task(self, task: Any, status: Any = _UNSET, **fields: Any) -> TaskRecord:
        """Insert or update one task; returns its stored state.

        Either ``record_task("task-id", "failed", error="...", image_id=1, ...)`` or
        ``record_task(task_object_or_mapping)`` (an ``ImageDownloadTask``: ``id``, ``image_id``,
        ``image_url``, ``status``, ``image_path``, ``metadata_path``, ``error``). Fields that are
        not given keep their stored value; a field given as None is cleared.
        """
        if isinstance(task, str):
            values = dict(fields, task_id=task)
            if status is not _UNSET:
                values["status"] = status
        else:
            values = _task_values(task)
            values.update(fields)
            if status is not _UNSET:
                values["status"] = status
        self._write_tasks([values])
        stored = self.get_task(values["task_id"])
        assert stored is not None  # just written in a committed transaction
        return stored

    def record_tasks(self, tasks: Iterable[Any]) -> int:
        """Insert or update many tasks (mappings or task objects) in one transaction."""
        return self._write_tasks([_task_values(task) for task in tasks])

    def _write_tasks(self, items: List[Dict[str, Any]]) -> int:
        prepared = [self._prepare_task(values) for values in items]
        with self._transaction("write to") as conn:
            for task_id, values in prepared:
                now = _now()
                row = conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
                if row is None:
                    if "status" not in values:
                        raise ValueError(f"Task {task_id!r} is new and needs a status.")
                    cols = ["task_id", "created_at", "updated_at"] + list(values)
                    params = [task_id, now, now] + list(values.values())
                    conn.execute(
                        f"INSERT INTO tasks ({', '.join(cols)}) "
                        f"VALUES ({', '.join('?' * len(cols))})",
                        params,
                    )
                else:
                    sets = ", ".join(f"{col} = ?" for col in values)
                    conn.execute(
                        f"UPDATE tasks SET {sets}{', ' if sets else ''}updated_at = ? "
                        "WHERE task_id = ?",
                        list(values.values()) + [now, task_id],
                    )
        return len(prepared)

    def _prepare_task(self, values: Dict[str, Any]):
        values = dict(values)
        task_id = values.pop("task_id", None)
        if not isinstance(task_id, str) or not task_id:
            raise ValueError(f"A task id must be non-empty text, got {task_id!r}.")
        unknown = set(values) - set(_TASK_FIELDS)
        if unknown:
            raise ValueError(
                f"Unknown task field(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(_TASK_FIELDS)}."
            )
        if "status" in values:
            status = values["status"]
            status = getattr(status, "value", status)  # accept an Enum
            if status not in TASK_STATUSES:
                raise ValueError(
                    f"Task status must be one of {', '.join(TASK_STATUSES)}, got {status!r}."
                )
            values["status"] = status
        if "image_id" in values:
            values["image_id"] = _optional_id(values["image_id"])
        for key in ("path", "metadata_path"):
            if values.get(key) is not None:
                values[key] = self._stored_path(values[key])
        if values.get("url"):
            values["url"] = redact(str(values["url"]))
        if values.get("error") is not None:
            values["error"] = str(values["error"])
        return task_id, values

    def get_task(self, task_id: str) -> Optional[TaskRecord]:
        rows = self._query("SELECT * FROM tasks WHERE task_id = ?", (task_id,))
        return self._task(rows[0]) if rows else None

    def tasks(
        self,
        limit: Optional[int] = None,
        status: Union[None, str, Iterable[str]] = None,
        query_key: Optional[str] = None,
    ) -> List[TaskRecord]:
        """Tasks newest first (by creation), optionally only some statuses or one query."""
        sql = "SELECT * FROM tasks"
        where: List[str] = []
        params: List[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if query_key is not None:
            where.append("query_key = ?")
            params.append(query_key)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._task(row) for row in self._query(sql, params)]

    def failed_tasks(self) -> List[TaskRecord]:
        """The images still failing: the newest failed task of each image not saved since (a
        later retry that saved it settles the failure), newest first."""
        rows = self.tasks(status="failed")
        saved = self.known_ids(r.image_id for r in rows if r.image_id is not None)
        seen: Set[Any] = set()
        still = []
        for row in rows:
            key = row.image_id if row.image_id is not None else ("task", row.task_id)
            if row.image_id in saved or key in seen:
                continue
            seen.add(key)
            still.append(row)
        return still

    def task_count(self, status: Optional[str] = None) -> int:
        if status is None:
            return int(self._query("SELECT COUNT(*) FROM tasks")[0][0])
        return int(self._query("SELECT COUNT(*) FROM tasks WHERE status = ?", (status,))[0][0])

    # ------------------------------------------------------------------ checkpoints

    def get_checkpoint(self, query_key: str) -> Optional[str]:
        """The cursor to continue ``query_key`` from, or None (never started, or finished)."""
        rows = self._query("SELECT cursor FROM checkpoints WHERE query_key = ?", (query_key,))
        return rows[0][0] if rows else None

    def set_run_options(self, options: Mapping[str, Any]) -> None:
        """Remember how files in this folder are written (template, metadata formats, ...), so a
        later ``retry-failed`` writes its files the same way. Values are stored as JSON."""
        with self._transaction("write to") as conn:
            conn.executemany(
                "INSERT INTO run_options (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [(name, json.dumps(value)) for name, value in options.items()],
            )

    def run_options(self) -> Dict[str, Any]:
        """What :meth:`set_run_options` remembered (empty for a new archive)."""
        rows = self._query("SELECT name, value FROM run_options")
        return {row["name"]: json.loads(row["value"]) for row in rows}

    def remember_names(self, rows: Iterable[Tuple[str, int, str, Optional[int]]]) -> None:
        """Cache Civitai names: ``(kind, id, name, model_id)`` rows, kind ``model`` or
        ``version`` (a version's row carries its model's id), so every sidecar can name its
        model and version with one look-up per model or version for the whole folder."""
        values = [(k, int(i), str(n), m) for k, i, n, m in rows if n and k in ("model", "version")]
        if not values:
            return
        with self._transaction("write to") as conn:
            conn.executemany(
                "INSERT INTO names (kind, id, name, model_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(kind, id) DO UPDATE SET name = excluded.name, "
                "model_id = COALESCE(excluded.model_id, names.model_id)",
                values,
            )

    def known_name(self, kind: str, ident: int) -> Optional[Tuple[str, Optional[int]]]:
        """``(name, model_id)`` remembered by :meth:`remember_names`, or None."""
        rows = self._query(
            "SELECT name, model_id FROM names WHERE kind = ? AND id = ?", (kind, int(ident))
        )
        return (rows[0]["name"], rows[0]["model_id"]) if rows else None

    def set_checkpoint(self, query_key: str, cursor: Optional[str]) -> None:
        """Remember where ``query_key`` continues; a None cursor (last page done) clears it."""
        if cursor is None:
            self.clear_checkpoint(query_key)
            return
        with self._transaction("write to") as conn:
            conn.execute(
                "INSERT INTO checkpoints (query_key, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(query_key) DO UPDATE SET cursor = excluded.cursor, "
                "updated_at = excluded.updated_at",
                (query_key, str(cursor), _now()),
            )

    def clear_checkpoint(self, query_key: str) -> None:
        with self._transaction("write to") as conn:
            conn.execute("DELETE FROM checkpoints WHERE query_key = ?", (query_key,))

"""The archive's schema and its migrations: the tables, the version row, and what an older
archive gains when it is opened for writing (relative paths, ``images.uuid``, the search index, the
follows and listing marks of ``sync``)."""

from __future__ import annotations

import os
import sqlite3

from ..util.media_key import media_uuid
from . import follows, library_index, listing_marks

SCHEMA_VERSION = 1

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


def create(conn: sqlite3.Connection) -> int:
    """Create what is missing (inside the caller's transaction); the file's schema version. An
    archive of a newer version is left as it is (the caller refuses it)."""
    # executescript() would COMMIT first: run the statements one by one instead.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    if not rows:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        return SCHEMA_VERSION
    return max(row[0] for row in rows)


def migrate(conn: sqlite3.Connection, folder: str) -> None:
    """Bring an archive of this version or older up to date (inside the caller's transaction)."""
    _migrate_paths(conn, folder)
    _add_uuid_column(conn)
    library_index.create(conn)
    follows.create(conn)
    listing_marks.create(conn)


def _migrate_paths(conn: sqlite3.Connection, folder: str) -> None:
    """Rewrite absolute paths inside the archive's folder (older archives) as relative."""
    prefixes = {
        os.path.join(folder, ""),
        os.path.join(os.path.realpath(folder), ""),
    }
    for table in ("images", "tasks"):
        for column in ("path", "metadata_path"):
            for prefix in prefixes:
                conn.execute(
                    f"UPDATE {table} SET {column} = substr({column}, ?) "
                    f"WHERE substr({column}, 1, ?) = ?",
                    (len(prefix) + 1, len(prefix), prefix),
                )


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

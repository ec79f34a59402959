"""The targets an output folder follows: the table ``follows`` in the folder's archive
(``store/archive.py``), written by ``python main.py follow`` / ``unfollow`` and read by ``sync``
(``cli/follow_cmd.py``).

A row is one target (``key``: its words, e.g. ``model 4201``) with the download options it is
fetched with (``options``: the ``download`` arguments after the target, as a JSON list; never the
API key, the origin or the output folder), when it was added, and its last sync (time, images new
then, its exit code).
"""

from __future__ import annotations

import sqlite3
import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS follows (key TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "value TEXT NOT NULL, options TEXT NOT NULL, added_at TEXT NOT NULL, last_sync_at TEXT, "
    "last_new INTEGER, last_code INTEGER)"
)


@dataclass(frozen=True)
class Follow:
    """One followed target."""

    key: str  # "model 4201", "user 'alice_art'", ...
    kind: str  # the download KIND
    values: List[str]  # the download VALUE words
    options: List[str]  # the download options
    added_at: str
    last_sync_at: Optional[str] = None
    last_new: Optional[int] = None
    last_code: Optional[int] = None

    @property
    def argv(self) -> List[str]:
        """The ``download`` arguments that fetch this target."""
        return [self.kind, *self.values, *self.options]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def create(conn: sqlite3.Connection) -> None:
    """Create the table when missing (``archive_schema.migrate``, inside its transaction)."""
    conn.execute(_SCHEMA)


def add(archive: Any, key: str, kind: str, values: Sequence[str], options: Sequence[str]) -> bool:
    """Follow ``key`` (its options replaced when it is followed already); True when it is new."""
    with archive.transaction("write to") as conn:
        known = conn.execute("SELECT 1 FROM follows WHERE key = ?", (key,)).fetchone()
        conn.execute(
            "INSERT INTO follows (key, kind, value, options, added_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, value = excluded.value, "
            "options = excluded.options",
            (key, kind, json.dumps(list(values)), json.dumps(list(options)), _now()),
        )
    return known is None


def remove(archive: Any, key: str) -> bool:
    """Stop following ``key``; False when it was not followed."""
    with archive.transaction("write to") as conn:
        gone = conn.execute("DELETE FROM follows WHERE key = ?", (key,)).rowcount
    return bool(gone)


def followed(archive: Any) -> List[Follow]:
    """Every followed target, in the order they were added."""
    rows = archive.query(
        "SELECT key, kind, value, options, added_at, last_sync_at, last_new, last_code "
        "FROM follows ORDER BY added_at, rowid"
    )
    return [
        Follow(
            row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4], row[5], row[6], row[7]
        )
        for row in rows
    ]


def synced(archive: Any, key: str, new: int, code: int) -> None:
    """Record ``key``'s sync: now, ``new`` images saved, exit ``code``."""
    with archive.transaction("write to") as conn:
        conn.execute(
            "UPDATE follows SET last_sync_at = ?, last_new = ?, last_code = ? WHERE key = ?",
            (_now(), int(new), int(code), key),
        )

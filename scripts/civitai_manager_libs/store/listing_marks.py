"""Which listings of an output folder completed, and the newest image each had then: the table
``listing_marks`` in the folder's archive (``store/archive.py``), read by the incremental re-run
(``planning/incremental.py``).

A row is written when a listing's first page is planned (``started_newest``: the newest image id
of that page) and completed when the listing and all its tasks are done (``newest_id``, the id a
later newest-first re-run stops at; ``completed_at``). A listing that never completed has no
``newest_id``: its re-run lists it whole.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from typing import Any, Optional

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS listing_marks ("
    "query_key TEXT PRIMARY KEY, newest_id INTEGER, started_newest INTEGER, completed_at TEXT)"
)


def create(conn: sqlite3.Connection) -> None:
    """Create the table when missing (``archive_schema.migrate``, inside its transaction)."""
    conn.execute(_SCHEMA)


def completed_newest(archive: Any) -> Any:
    """A reader: ``query_key -> newest id`` of a completed listing (None: never completed)."""

    def read(query_key: str) -> Optional[int]:
        rows = archive.query(
            "SELECT newest_id, completed_at FROM listing_marks WHERE query_key = ?", (query_key,)
        )
        if not rows or rows[0][1] is None or rows[0][0] is None:
            return None
        return int(rows[0][0])

    return read


def started(archive: Any, query_key: str, newest: int) -> None:
    """The newest image id on the first page of a run of ``query_key`` that began at the top."""
    with archive.transaction("write to") as conn:
        conn.execute(
            "INSERT INTO listing_marks (query_key, started_newest) VALUES (?, ?) "
            "ON CONFLICT(query_key) DO UPDATE SET started_newest = "
            "MAX(COALESCE(listing_marks.started_newest, 0), excluded.started_newest)",
            (query_key, int(newest)),
        )


def completed(archive: Any, query_key: str, newest: Optional[int]) -> None:
    """``query_key`` and all its tasks are done: its newest id is the highest known to it."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    with archive.transaction("write to") as conn:
        conn.execute(
            "INSERT INTO listing_marks (query_key, newest_id, completed_at) VALUES (?, ?, ?) "
            "ON CONFLICT(query_key) DO UPDATE SET completed_at = excluded.completed_at, "
            "newest_id = MAX(COALESCE(listing_marks.newest_id, 0), "
            "COALESCE(listing_marks.started_newest, 0), COALESCE(excluded.newest_id, 0))",
            (query_key, newest, now),
        )

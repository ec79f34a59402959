"""What the archive remembers besides files and tasks: crawl checkpoints (query key -> next
cursor), the run options of a folder, and Civitai's model and version names."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from .archive_db import ArchiveDb, _now


class CrawlState(ArchiveDb):
    """The ``checkpoints``, ``run_options`` and ``names`` methods of :class:`Archive`."""

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

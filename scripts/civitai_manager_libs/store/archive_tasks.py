"""The archive's ``tasks`` table: every task with its latest state (upserts by task id)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from ..util.logging_setup import redact
from .archive_db import ArchiveDb, _now, _optional_id

TASK_STATUSES = ("pending", "downloading", "completed", "skipped", "failed", "cancelled")
_UNSET: Any = object()
_TASK_FIELDS = ("image_id", "url", "status", "path", "metadata_path", "error", "query_key")


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


class TaskRows(ArchiveDb):
    """The ``tasks`` methods of :class:`Archive`."""

    def _task(self, row: sqlite3.Row) -> "TaskRecord":
        values = dict(row)
        values["path"] = self._read_path(values["path"])
        values["metadata_path"] = self._read_path(values["metadata_path"])
        return TaskRecord(**values)

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

    def task_count(self, status: Optional[str] = None) -> int:
        if status is None:
            return int(self._query("SELECT COUNT(*) FROM tasks")[0][0])
        return int(self._query("SELECT COUNT(*) FROM tasks WHERE status = ?", (status,))[0][0])

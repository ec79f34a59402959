"""The ``tasks`` command's output: the archive's task rows as an aligned text table."""

from __future__ import annotations

import contextlib
import datetime as _dt
from typing import Any, List, Optional, Sequence, Tuple

from ..planning.listing_request import describe_query_key
from ..util.logging_setup import redact

SHORT_ID = 8  # as git shows a commit: enough to tell the tasks of one folder apart

TASK_COLUMNS = (
    ("id", "task"),
    ("query_key", "download"),
    ("image_id", "image"),
    ("status", "status"),
    ("finished_at", "finished"),
    ("path", "file / error"),
)


def _field(row: Any, name: str) -> Any:
    if isinstance(row, dict):
        return row.get(name)
    with contextlib.suppress(IndexError, KeyError, TypeError):
        return row[name]
    return getattr(row, name, None)


def _task_cells(row: Any) -> Tuple[str, ...]:
    status = str(_field(row, "status") or "")
    when = _field(row, "finished_at") or _field(row, "updated_at") or _field(row, "created_at")
    if isinstance(when, (int, float)):
        when = _dt.datetime.fromtimestamp(when, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(when, str):
        when = when[:19].replace("T", " ")
    detail = _field(row, "error") if status == "failed" else None
    detail = detail or _field(row, "image_path") or _field(row, "path") or ""
    task_id = str(_field(row, "id") or _field(row, "task_id") or "")
    return (
        task_id[:SHORT_ID],
        describe_query_key(_field(row, "query_key")),
        str(_field(row, "image_id") or ""),
        status,
        str(when or ""),
        redact(str(detail)),
    )


def latest_per_image(rows: Sequence[Any]) -> List[Any]:
    """The newest task of each image (``rows`` newest first): a task cancelled by Ctrl-C, or one
    that failed, is history once a later run (the resume, retry-failed) made a new task for the
    same image; rows without an image id are all kept."""
    seen = set()
    kept = []
    for row in rows:
        image_id = _field(row, "image_id")
        if image_id is not None:
            if image_id in seen:
                continue
            seen.add(image_id)
        kept.append(row)
    return kept


def format_table(rows: Sequence[Tuple[str, ...]], headers: Sequence[str]) -> List[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    widths[-1] = 0  # the last column is free width

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [fmt(headers), fmt(["-" * max(len(h), 4) for h in headers])] + [fmt(r) for r in rows]


def task_lines(db_path: str, status: Optional[str], limit: int) -> List[str]:
    """The table of the archive's tasks (only ``status`` ones if given, at most ``limit`` rows, 0 =
    all) and a closing count line; raises ``ArchiveError`` when the archive cannot be read."""
    from ..store.archive import Archive

    archive = Archive(db_path, read_only=True)
    try:
        rows = archive.failed_tasks() if status == "failed" else latest_per_image(archive.tasks())
        if status and status != "failed":
            rows = [r for r in rows if str(_field(r, "status")) == status]
        rows = list(rows)
        total = len(rows)
        if limit:
            rows = rows[:limit]
        cells = [_task_cells(r) for r in rows]
    finally:
        closer = getattr(archive, "close", None)
        if callable(closer):
            closer()
    lines = format_table(cells, [h for _, h in TASK_COLUMNS])
    shown = f"{len(cells)} of {total}" if total > len(cells) else str(total)
    return lines + [f"{shown} task(s) in {db_path}"]

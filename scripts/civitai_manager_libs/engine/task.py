"""One image download's state (``ImageDownloadTask``): its statuses, dict form, summary counts and
its rebuild from an archive row."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from typing import Any, Dict, Iterable, Mapping, Optional

from .pool import PRIORITY_BULK
from ..records import DownloadSummary, ImageItem

PENDING = "pending"
DOWNLOADING = "downloading"
COMPLETED = "completed"
SKIPPED = "skipped"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL_STATES = frozenset({COMPLETED, SKIPPED, FAILED, CANCELLED})


class ImageDownloadTask:
    """State and metadata of one image download (the spec's properties; updates are thread-safe)."""

    def __init__(
        self,
        task_id: str,
        image_id: int,
        image_url: str,
        model_id: Optional[int] = None,
        model_name: Optional[str] = None,
        creator: Optional[str] = None,
        nsfw_level: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ):
        self._lock = threading.Lock()
        self._id = str(task_id)
        self._image_id = image_id
        self._image_url = image_url
        self.model_id = model_id
        self.model_name = model_name
        self.creator = creator
        self.nsfw_level = nsfw_level
        self.metadata = metadata
        self.version_id: Optional[int] = None
        self.post_id: Optional[int] = None
        self.item: Optional[ImageItem] = None
        self.target: Optional[str] = None  # planned path without extension
        self.save_metadata = True
        self.priority = PRIORITY_BULK
        self.custom_path = False  # target chosen by the caller: written even if a file is there
        self.replaces: Optional[str] = None  # an older copy deleted once this file is in place
        self.query_key: Optional[str] = None
        self.created_at = time.time()
        self._status = PENDING
        self._progress = 0.0
        self._image_path: Optional[str] = None
        self._metadata_path: Optional[str] = None
        self._error: Optional[str] = None
        self.bytes_done = 0
        self.bytes_total: Optional[int] = None
        self.size: Optional[int] = None
        self.sha256: Optional[str] = None
        self.thumbnail_path: Optional[str] = None
        self.finished_at: Optional[float] = None
        self.skip_noted = False  # skipped for a problem the report lists (malformed item ...)
        self._settled = False  # final state recorded and announced (what wait() waits for)

    @classmethod
    def for_item(cls, task_id: str, image_id: Any, url: str, item: Optional[ImageItem]):
        """A pending task for a listed image (``item`` None when only the id is known)."""
        task = cls(
            task_id,
            image_id,
            url,
            model_id=item.model_id if item else None,
            model_name=item.model_name if item else None,
            creator=item.creator if item else None,
            nsfw_level=item.nsfw_level if item else None,
            metadata=item.meta if item else None,
        )
        if item is not None:
            task.item = item
            task.version_id = item.version_id
            task.post_id = item.post_id
        return task

    @property
    def id(self) -> str:
        return self._id

    @property
    def image_id(self) -> int:
        return self._image_id

    @property
    def image_url(self) -> str:
        return self._image_url

    @property
    def status(self) -> str:
        return self._status

    @property
    def progress(self) -> float:
        return self._progress

    @property
    def image_path(self) -> Optional[str]:
        return self._image_path

    @property
    def metadata_path(self) -> Optional[str]:
        return self._metadata_path

    @property
    def error(self) -> Optional[str]:
        return self._error

    @property
    def done(self) -> bool:
        return self._status in FINAL_STATES

    def _set_progress(self, done: int, total: Optional[int]) -> None:
        with self._lock:
            self.bytes_done = done
            self.bytes_total = total
            if total:
                self._progress = max(0.0, min(1.0, done / total))

    def _finish(self, status: str, error: Optional[str] = None, **fields: Any) -> bool:
        """Move to a final state once; False when the task was already final."""
        with self._lock:
            if self._status in FINAL_STATES:
                return False
            self._status = status
            self._error = error
            for name, value in fields.items():
                setattr(self, name if not hasattr(type(self), name) else "_" + name, value)
            if status in (COMPLETED, SKIPPED):
                self._progress = 1.0
            self.finished_at = time.time()
            return True

    def _start(self) -> bool:
        with self._lock:
            if self._status != PENDING:
                return False
            self._status = DOWNLOADING
            return True

    def to_dict(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "id": self._id,
                "image_id": self._image_id,
                "image_url": self._image_url,
                "status": self._status,
                "progress": self._progress,
                "image_path": self._image_path,
                "metadata_path": self._metadata_path,
                "thumbnail_path": self.thumbnail_path,
                "error": self._error,
                "model_id": self.model_id,
                "model_name": self.model_name,
                "version_id": self.version_id,
                "creator": self.creator,
                "nsfw_level": self.nsfw_level,
                "post_id": self.post_id,
                "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total,
                "size": self.size,
                "sha256": self.sha256,
                "query_key": self.query_key,
                "created_at": self.created_at,
                "finished_at": self.finished_at,
            }

    def __repr__(self) -> str:
        return (
            f"ImageDownloadTask(id={self._id!r}, image_id={self._image_id}, "
            f"status={self._status!r}, progress={self._progress:.2f})"
        )


def new_task(image_id: Any, url: str, item: Optional[ImageItem]) -> ImageDownloadTask:
    """A pending task with a fresh id for an image (``item`` None when only the id is known)."""
    return ImageDownloadTask.for_item(uuid.uuid4().hex, image_id, url, item)


def summarize(tasks: Iterable[ImageDownloadTask], output_path: str) -> DownloadSummary:
    """Counts (and bytes, failures) over ``tasks`` as a :class:`records.DownloadSummary`."""
    tasks = list(tasks)
    result = DownloadSummary(listed=len(tasks), output_path=output_path)
    for task in tasks:
        status = task.status
        if status == COMPLETED:
            result.completed += 1
            result.bytes_downloaded += task.size or 0
        elif status == SKIPPED:
            result.skipped += 1
            if task.skip_noted:
                result.skipped_notes.append((task.image_id, task.error or "skipped"))
        elif status == FAILED:
            result.failed += 1
            result.failures.append((task.image_id, task.error or "failed"))
        elif status == CANCELLED:
            result.cancelled += 1
        else:
            result.pending += 1
            result.bytes_downloaded += task.bytes_done
    return result


def row_as_dict(row: Any) -> Dict[str, Any]:
    """An archive row (mapping, dataclass or plain object; None -> {}) as a dict."""
    if row is None:
        return {}
    if isinstance(row, Mapping):
        return dict(row)
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    return dict(vars(row))


def _timestamp(value: Any, default: float) -> float:
    """Seconds since the epoch from an archive's ISO time (or a number); ``default`` otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        from datetime import datetime

        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return default
    return default


def task_from_record(row: Mapping[str, Any]) -> ImageDownloadTask:
    """An :class:`ImageDownloadTask` rebuilt (final state included) from an archive row."""
    task = ImageDownloadTask(
        str(row.get("id") or row.get("task_id")),
        row.get("image_id"),  # type: ignore[arg-type]  # an int in every row the archive writes
        row.get("image_url") or row.get("url") or "",
        model_id=row.get("model_id"),
        model_name=row.get("model_name"),
        creator=row.get("creator"),
        nsfw_level=row.get("nsfw_level"),
    )
    task._settled = True
    task.created_at = _timestamp(row.get("created_at"), task.created_at)
    task.version_id = row.get("version_id")
    task.query_key = row.get("query_key")
    status = row.get("status") or FAILED
    task._status = status if status in FINAL_STATES else CANCELLED
    task._error = row.get("error") or (
        None if status in FINAL_STATES else "interrupted before it finished"
    )
    task._image_path = row.get("image_path") or row.get("path")
    task._metadata_path = row.get("metadata_path")
    task._progress = (
        1.0 if task._status in (COMPLETED, SKIPPED) else float(row.get("progress") or 0)
    )
    task.size = row.get("size")
    task.sha256 = row.get("sha256")
    task.finished_at = row.get("finished_at")
    return task

"""The spec's downloader API: a facade over :mod:`.planning`.

:class:`ImageDownloader` (``download_model_images``, ``download_version_images``,
``download_creator_images``, ``download_filtered_images``, ``download_single_image``, task
queries) plans the tasks; :class:`ImageDownloadTask` is one image's task (:mod:`.engine.task`).
"""

from __future__ import annotations

from typing import Any, List

from .planning import downloader as _downloader
from .planning.downloader import (  # noqa: F401  (the public API)
    ALL_LEVELS,
    ARCHIVE_NAME,
    CANCELLED,
    COMPLETED,
    DOWNLOADING,
    FAILED,
    FINAL_STATES,
    PENDING,
    SKIPPED,
    ImageDownloader,
    ImageDownloadTask,
    summarize,
    task_from_record,
)
from .store.file_path import MEDIA_EXTENSIONS  # noqa: F401  (the extensions of saved media)


def __getattr__(name: str) -> Any:
    """Every other name the downloader module has (helpers it re-exports)."""
    return getattr(_downloader, name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(dir(_downloader)))

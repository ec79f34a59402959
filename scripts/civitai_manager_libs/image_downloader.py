"""The spec's downloader API: a facade over :mod:`.planning`.

:class:`ImageDownloader` (``download_model_images``, ``download_version_images``,
``download_creator_images``, ``download_filtered_images``, ``download_single_image``, task
queries) plans the tasks; :class:`ImageDownloadTask` is one image's task (:mod:`.engine.task`).
"""

from __future__ import annotations

from .engine.task import (  # noqa: F401  (the public API)
    CANCELLED,
    COMPLETED,
    DOWNLOADING,
    FAILED,
    FINAL_STATES,
    PENDING,
    SKIPPED,
    ImageDownloadTask,
    summarize,
    task_from_record,
)
from .planning.downloader import ImageDownloader  # noqa: F401
from .store.paths import ARCHIVE_NAME  # noqa: F401
from .store.file_path import MEDIA_EXTENSIONS  # noqa: F401  (the extensions of saved media)

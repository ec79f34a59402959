"""The Gallery tab's actions (the backlog's ``civitai_gallery_action`` module): a facade over
:mod:`.ui.actions`.

``download_images()``, ``GalleryDownloadManager``, ``get_http_client()`` and the tab's handlers
(``load_gallery``, ``select_image``, ``download_all``, ...).
"""

from __future__ import annotations

from typing import Any, List

from .ui import actions as _actions
from .ui.actions import (  # noqa: F401  (the public API)
    ALL_VERSIONS,
    NO_GENERATION_DATA,
    PERIODS,
    SORTS,
    BatchResult,
    GalleryDownloadManager,
    GalleryView,
    cancel_download,
    download_all,
    download_images,
    download_images_batch,
    download_images_with_progress,
    download_large_image,
    fetch_thumbnails,
    get_http_client,
    image_details,
    load_gallery,
    next_page,
    pre_loading,
    prev_page,
    recent_tasks,
    refresh_tasks,
    retry_failed,
    select_image,
    select_version,
    summary_text,
)


def __getattr__(name: str) -> Any:
    """Every other name the actions module has (``jobs``, the error types it re-exports, ...)."""
    return getattr(_actions, name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(dir(_actions)))

"""The Gallery tab's actions (the backlog's ``civitai_gallery_action`` module): a facade over
the tab's handler modules (:mod:`.ui.actions`, :mod:`.ui.download_job`) and :mod:`.ui.downloads`.

``download_images()``, ``GalleryDownloadManager``, ``get_http_client()`` and the tab's handlers
(``load_gallery``, ``select_image``, ``download_all``, ...).
"""

from __future__ import annotations

from .ui.actions import (  # noqa: F401  (the public API)
    ALL_VERSIONS,
    PERIODS,
    SORTS,
    GalleryView,
    image_details,
    load_gallery,
    next_page,
    prev_page,
    select_image,
    select_version,
)
from .ui.download_job import (  # noqa: F401  (the public API)
    cancel_download,
    cancel_message,
    download_all,
    recent_tasks,
    refresh_tasks,
    retry_failed,
    summary_text,
)
from .ui.downloads import (  # noqa: F401  (the public API)
    BatchResult,
    GalleryDownloadManager,
    download_images,
    download_images_batch,
    download_images_with_progress,
    download_large_image,
    fetch_thumbnails,
    get_http_client,
    pre_loading,
)

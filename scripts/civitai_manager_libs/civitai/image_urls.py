"""Civitai image URLs: the id in the file name, and the original / resized variants of a link.

Image URLs look like ``https://image.civitai.com/<key>/<uuid>/<params>/<id>.jpeg`` where
``<params>`` is e.g. ``width=450`` or ``original=true``; the name's extension does not tell the
real type.

Video originals moved (gallery-dl 1.32.18): ``https://image-b2.civitai.com/file/
civitai-media-cache/<uuid>/original`` first, the image host's ``original=true`` URL when that one
answers 403/404, the listed URL last (:func:`download_urls`).
"""

from __future__ import annotations

import re
from typing import List, Optional
from urllib.parse import urlsplit

from ..util.media_key import (  # the URL forms live there: the record (metadata/) uses them too
    VIDEO_CACHE_PREFIX,
    image_id_from_url,
    media_uuid,
    original_url,
    sized_url,
)

__all__ = [
    "CIVITAI_MEDIA_HOSTS",
    "CIVITAI_VIDEO_HOST",
    "download_urls",
    "image_id_from_url",
    "is_civitai_media_host",
    "media_uuid",
    "original_url",
    "sized_url",
    "video_original_url",
]

#: Civitai's own media hosts: images (and the old video URLs), and the video cache.
CIVITAI_VIDEO_HOST = "https://image-b2.civitai.com"
CIVITAI_MEDIA_HOSTS = ("image.civitai.com", "image-b2.civitai.com")
_VIDEO_NAME = re.compile(r"\.(mp4|webm|mov|m4v)$", re.IGNORECASE)


def is_civitai_media_host(url: str) -> bool:
    """True when ``url`` is on one of Civitai's media hosts (:data:`CIVITAI_MEDIA_HOSTS`)."""
    try:
        host = (urlsplit(url or "").hostname or "").lower()
    except ValueError:
        return False
    return host in CIVITAI_MEDIA_HOSTS


def video_original_url(uuid: str, video_base_url: str = CIVITAI_VIDEO_HOST) -> str:
    """The video host's URL of a video original:
    ``<base>/file/civitai-media-cache/<uuid>/original``."""
    return f"{video_base_url.rstrip('/')}{VIDEO_CACHE_PREFIX}{uuid}/original"


def _is_video(url: str, item_type: Optional[str]) -> bool:
    if item_type is not None:
        return item_type == "video"
    try:
        return bool(_VIDEO_NAME.search(urlsplit(url).path))
    except ValueError:
        return False


def download_urls(
    url: str, item_type: Optional[str] = None, video_base_url: Optional[str] = None
) -> List[str]:
    """The URLs to try, in order, for a listed file's original.

    An image: its ``original=true`` URL. A video whose URL carries its uuid: the video host's
    original (``video_base_url``, used for Civitai's own media hosts and for any host when given
    explicitly, e.g. a local fake), then the ``original=true`` URL on the image host, then the URL
    as listed. A video the video host cannot serve (403/404) comes from the next one.
    """
    first = original_url(url)
    if not _is_video(url, item_type):
        return [first]
    candidates = []
    uuid = media_uuid(url)
    base = video_base_url or (CIVITAI_VIDEO_HOST if is_civitai_media_host(url) else None)
    if uuid is not None and base:
        candidates.append(video_original_url(uuid, base))
    for candidate in (first, url.strip()):
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates

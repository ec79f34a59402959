"""The identity of a Civitai media file: the uuid its URLs carry, whatever host or form.

Civitai names one uploaded file by a uuid that every URL of it carries: the image host's
``/<key>/<uuid>/<params>/<name>`` and the video host's
``/file/civitai-media-cache/<uuid>/<quality>`` (gallery-dl archives Civitai files by this
uuid). Two URLs with the same uuid are the same file.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

VIDEO_CACHE_PREFIX = "/file/civitai-media-cache/"
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def media_uuid(url: Optional[str]) -> Optional[str]:
    """The uuid of the file ``url`` names (lower case), or None when it carries none."""
    if not isinstance(url, str) or not url:
        return None
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return None
    if path.startswith(VIDEO_CACHE_PREFIX):
        candidate = path[len(VIDEO_CACHE_PREFIX) :].split("/", 1)[0]
        return candidate.lower() if _UUID.match(candidate) else None
    segments = [s for s in path.split("/") if s]
    # /<key>/<uuid>/<params>/<name>: the uuid is the first segment after the key
    if len(segments) >= 3 and _UUID.match(segments[1]):
        return segments[1].lower()
    return None

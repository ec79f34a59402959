"""The identity of a Civitai media file: the uuid its URLs carry, whatever host or form.

Civitai names one uploaded file by a uuid that every URL of it carries: the image host's
``/<key>/<uuid>/<params>/<name>`` and the video host's
``/file/civitai-media-cache/<uuid>/<quality>`` (gallery-dl archives Civitai files by this
uuid). Two URLs with the same uuid are the same file. The image host's forms of one file
(``original=true``, ``width=N``) and the id in its name are here too: the listing (``civitai/``)
and the record (``metadata/``) both build them.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from ..errors import InvalidQueryError
from .logging_setup import redact

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


_ID_FROM_NAME = re.compile(r"^([0-9]+)(?:\.[A-Za-z0-9]+)?$")
_PARAM_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^/=]*$")


def image_id_from_url(url: str) -> Optional[int]:
    """The image id carried by a Civitai image URL's file name (``.../<id>.jpeg``), if any."""
    try:
        path = urlsplit(url or "").path
    except ValueError:
        return None
    name = path.rstrip("/").rsplit("/", 1)[-1]
    match = _ID_FROM_NAME.match(name)
    return int(match.group(1)) if match else None


def _is_params_segment(segment: str) -> bool:
    return bool(segment) and all(_PARAM_PART.match(part) for part in segment.split(","))


def _with_params_segment(url: str, segment: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidQueryError("An image URL is needed to build a download link; got nothing.")
    parts = urlsplit(url.strip())
    segments = parts.path.split("/")
    if len(segments) < 2 or not segments[-1]:
        raise InvalidQueryError(
            f"{redact(url)!r} is not an image URL (it has no file name); copy the image's own "
            "link."
        )
    if len(segments) >= 3 and _is_params_segment(segments[-2]):
        segments[-2] = segment
    else:
        segments.insert(len(segments) - 1, segment)
    return urlunsplit(parts._replace(path="/".join(segments)))


def original_url(url: str) -> str:
    """The URL of the original upload: the ``<params>`` segment becomes ``original=true``.

    Scheme, host, uuid, file name, query string and fragment are kept; a URL without a params
    segment gets one inserted before the file name.
    """
    return _with_params_segment(url, "original=true")


def sized_url(url: str, width: int) -> str:
    """The URL of a re-encoded copy ``width`` pixels wide (``width=N`` params segment)."""
    if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
        raise InvalidQueryError(f"Image width must be a positive number of pixels, got {width!r}.")
    return _with_params_segment(url, f"width={width}")

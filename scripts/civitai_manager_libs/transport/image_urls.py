"""Civitai image URLs: the id in the file name, and the original / resized variants of a link.

Image URLs look like ``https://image.civitai.com/<key>/<uuid>/<params>/<id>.jpeg`` where
``<params>`` is e.g. ``width=450`` or ``original=true``; the name's extension does not tell the
real type.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from ..errors import InvalidQueryError
from ..util.logging_setup import redact

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

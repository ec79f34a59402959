"""The stable, safe file name under which the gallery caches an image URL."""

from __future__ import annotations

import hashlib
import posixpath
import re
from urllib.parse import unquote, urlsplit

MEDIA_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif", ".mp4", ".webm", ".mov")
DEFAULT_CACHE_EXTENSION = ".jpeg"
_SAFE_STEM_RE = re.compile(r"[^A-Za-z0-9_-]+")


def gallery_cache_name(url: str) -> str:
    """The cache file name for an image URL: ``<stem>_<hash>.<ext>``.

    ``hash`` is the SHA-256 of the URL's path (stable between runs and hosts, different for
    different sizes of the same image), ``stem`` a sanitized part of the URL's file name for
    readability, ``ext`` the URL file name's real extension when it is a media type (``.jpeg``,
    ``.png``, ``.webp``, ``.mp4``...), else ``.jpeg``. ValueError when ``url`` is empty.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("An image URL is needed to find its gallery cache file.")
    path = urlsplit(url.strip()).path or "/"
    digest = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    name = posixpath.basename(unquote(path))
    stem, ext = posixpath.splitext(name)
    ext = ext.lower()
    if ext not in MEDIA_EXTENSIONS:
        ext = DEFAULT_CACHE_EXTENSION
    stem = _SAFE_STEM_RE.sub("_", stem).strip("_-")[:40] or "image"
    return f"{stem}_{digest}{ext}"

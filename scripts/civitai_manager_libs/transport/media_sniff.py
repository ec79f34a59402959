"""Tell media bodies from HTML/JSON/text ones: magic bytes first, then Content-Type."""

from __future__ import annotations

from typing import Optional

#: Bytes needed to recognise every signature below (the ISO-BMFF brand sits at 8..12, the
#: Matroska DocType within the first few dozen bytes).
SNIFF_BYTES = 64

MEDIA_EXTENSIONS = (
    ".png",
    ".jpeg",
    ".webp",
    ".gif",
    ".avif",
    ".mp4",
    ".mov",
    ".webm",
    ".mkv",
    ".mp3",
    ".m4a",
    ".ogg",
    ".wav",
    ".flac",
)

_CONTENT_TYPES = {
    "image/png": ".png",
    "image/apng": ".png",
    "image/jpeg": ".jpeg",
    "image/jpg": ".jpeg",
    "image/pjpeg": ".jpeg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/ogg": ".ogg",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
}

_ISO_BRANDS = {
    b"avif": ".avif",
    b"avis": ".avif",
    b"qt  ": ".mov",
    b"M4A ": ".m4a",
    b"M4B ": ".m4a",
}

# Bodies that start like markup or JSON are never media, whatever the Content-Type claims.
_TEXT_STARTS = (b"<", b"{", b"[", b'"')


def _sniff_magic(head: bytes) -> Optional[str]:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".mkv" if b"matroska" in head[:SNIFF_BYTES] else ".webm"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return ".mp3"
    return None


def looks_like_text(head: bytes) -> bool:
    """True when the first bytes look like HTML, XML, JSON or other plain text."""
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if not stripped:
        return True
    if stripped.startswith(_TEXT_STARTS):
        return True
    try:
        stripped.decode("ascii")
    except UnicodeDecodeError:
        return False
    return True


def media_kind(first_bytes: bytes, content_type: Optional[str]) -> Optional[str]:
    """The extension (with its dot, e.g. ``".png"``) of a media body, or None if it is not media.

    The magic bytes decide; the ``Content-Type`` is only consulted when the bytes match no known
    signature and do not look like text (an HTML error page served as ``image/jpeg`` stays None).
    """
    head = bytes(first_bytes[:SNIFF_BYTES]) if first_bytes else b""
    kind = _sniff_magic(head)
    if kind is not None:
        return kind
    if not head or looks_like_text(head):
        return None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return _CONTENT_TYPES.get(mime)


def non_media_kind(first_bytes: bytes, content_type: Optional[str]) -> str:
    """What arrived instead of media: "empty", "html", "json", "markup" or "unknown"."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    head = bytes(first_bytes[:SNIFF_BYTES]).lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if not head:
        return "empty"
    if head.startswith((b"<!doctype html", b"<html")) or "html" in mime:
        return "html"
    if head.startswith((b"{", b"[")) or "json" in mime:
        return "json"
    if head.startswith(b"<"):
        return "markup"
    return "unknown"


_NON_MEDIA_WORDS = {
    "empty": "an empty body",
    "html": "an HTML page",
    "json": "JSON",
    "markup": "markup",
    "unknown": "unrecognised data",
}


def describe_non_media(first_bytes: bytes, content_type: Optional[str]) -> str:
    """A short phrase naming what arrived instead of media, for error messages."""
    mime = (content_type or "").split(";", 1)[0].strip().lower() or "no Content-Type"
    return f"{_NON_MEDIA_WORDS[non_media_kind(first_bytes, content_type)]} ({mime})"


_MIME_BY_EXTENSION = {
    ".png": "image/png",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".avif": "image/avif",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
}


def mime_for(extension: Optional[str]) -> Optional[str]:
    """The MIME type of a media extension returned by :func:`media_kind`."""
    return _MIME_BY_EXTENSION.get((extension or "").lower())

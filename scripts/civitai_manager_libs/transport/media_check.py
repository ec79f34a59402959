"""Is a received file whole? A cheap structure check run before a download is committed.

Pictures: Pillow reads the header, then the format's own end marker is looked for (PNG ``IEND``
after a walk over the chunk headers, the JPEG ``EOI`` marker at the end, the GIF trailer, the
RIFF size of a WebP). Videos: the container signature and sizes (the top-level ISO-BMFF boxes of an
MP4/MOV tile the file exactly; the EBML header and a known-size WebM/Matroska segment fit in it).
Nothing is decoded pixel by pixel; the check reads the headers and the last bytes only.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Optional

_TAIL = 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_complete(path: str, kind: Optional[str]) -> Optional[str]:
    """None when ``path`` (a file of media ``kind`` such as ``.png``) looks whole, else why not
    (``"it does not decode as a PNG image: ..."``)."""
    kind = (kind or "").lower()
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if kind in (".mp4", ".mov"):
            return _check_bmff(handle, size)
        if kind in (".webm", ".mkv"):
            return _check_ebml(handle, size)
        if kind in (".png", ".jpeg", ".jpg", ".gif", ".webp"):
            problem = _check_picture_end(handle, size, kind)
            return problem or _check_header(path, kind)
    return None


def _check_header(path: str, kind: str) -> Optional[str]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - the header was parsed
    except Image.DecompressionBombError:
        return None  # a whole (if huge) picture; the thumbnailer refuses it on its own
    except Exception as exc:  # Pillow raises many types for a damaged header
        return f"it does not decode as a {kind[1:].upper()} image ({type(exc).__name__}: {exc})"
    return None


def _tail(handle: BinaryIO, size: int) -> bytes:
    handle.seek(max(0, size - _TAIL))
    return handle.read()


def _check_picture_end(handle: BinaryIO, size: int, kind: str) -> Optional[str]:
    name = kind[1:].upper()
    if kind == ".png":
        return _check_png(handle, size)
    if kind in (".jpeg", ".jpg"):
        tail = _tail(handle, size).rstrip(b"\x00\r\n\t ")
        if not tail.endswith(b"\xff\xd9"):
            return f"it does not decode as a {name} image (it ends before its end marker)"
        return None
    if kind == ".gif":
        if not _tail(handle, size).rstrip(b"\x00").endswith(b"\x3b"):
            return "it does not decode as a GIF image (it ends before its trailer)"
        return None
    if kind == ".webp":
        handle.seek(0)
        head = handle.read(12)
        declared = struct.unpack("<I", head[4:8])[0] + 8 if len(head) >= 12 else None
        if declared is None or declared > size:
            return f"it does not decode as a WEBP image ({size} of {declared} bytes)"
        return None
    return None


def _check_png(handle: BinaryIO, size: int) -> Optional[str]:
    handle.seek(0)
    if handle.read(8) != _PNG_SIGNATURE:
        return "it does not decode as a PNG image (no PNG signature)"
    pos = 8
    while pos + 12 <= size:
        handle.seek(pos)
        header = handle.read(8)
        length, ctype = struct.unpack(">I4s", header)
        pos += 12 + length
        if ctype == b"IEND":
            return None if pos <= size else "it does not decode as a PNG image (cut in IEND)"
    return f"it does not decode as a PNG image (it ends at byte {size}, before its IEND chunk)"


def _check_bmff(handle: BinaryIO, size: int) -> Optional[str]:
    pos = 0
    boxes = 0
    while pos < size:
        handle.seek(pos)
        header = handle.read(16)
        if len(header) < 8:
            return f"the video is cut short ({size - pos} stray bytes at its end)"
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if boxes == 0 and box_type != b"ftyp":
            return "the video does not start with an ISO-BMFF ftyp box"
        if box_size == 1:
            if len(header) < 16:
                return "the video is cut short (in a box header)"
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:
            return None  # the last box runs to the end of the file
        if box_size < 8:
            return f"the video has a damaged box at byte {pos}"
        pos += box_size
        boxes += 1
    if pos > size:
        return f"the video is cut short ({size} of the {pos} bytes its boxes announce)"
    return None


def _read_vint(handle: BinaryIO, keep_marker: bool) -> Optional[tuple]:
    first = handle.read(1)
    if not first:
        return None
    byte = first[0]
    length = 1
    mask = 0x80
    while length <= 8 and not byte & mask:
        mask >>= 1
        length += 1
    if length > 8:
        return None
    rest = handle.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = byte if keep_marker else byte & (mask - 1)
    all_ones = byte & (mask - 1) == mask - 1 and all(b == 0xFF for b in rest)
    for b in rest:
        value = (value << 8) | b
    return value, length, all_ones


def _check_ebml(handle: BinaryIO, size: int) -> Optional[str]:
    handle.seek(0)
    if handle.read(4) != b"\x1a\x45\xdf\xa3":
        return "the video has no EBML (WebM/Matroska) signature"
    header_size = _read_vint(handle, keep_marker=False)
    if header_size is None:
        return "the video is cut short (in its EBML header)"
    end = handle.tell() + header_size[0]
    if end > size:
        return f"the video is cut short ({size} of the {end} bytes of its EBML header)"
    handle.seek(end)
    element = _read_vint(handle, keep_marker=True)
    if element is None:
        return "the video is cut short (it holds no segment)"
    seg_size = _read_vint(handle, keep_marker=False)
    if seg_size is None:
        return "the video is cut short (in its segment header)"
    value, _length, unknown = seg_size
    if not unknown and handle.tell() + value > size:
        return f"the video is cut short ({size} of the {handle.tell() + value} bytes announced)"
    return None

"""Put infotext inside an image file without re-encoding it, and read it back the way WebUI does.

- PNG: a ``parameters`` text chunk (``tEXt``, or ``iTXt`` for text outside Latin-1) is spliced in
  before the first ``IDAT``; every other chunk, and every pixel byte, stays as it was.
- JPEG: the EXIF ``UserComment`` (``UNICODE\\0`` + UTF-16BE) is merged into the existing EXIF (or
  a new APP1 segment placed after the JFIF header); the entropy-coded data is copied untouched.
- WebP: the same EXIF goes into the RIFF container's ``EXIF`` chunk, with the ``VP8X`` header added
  or its EXIF flag set.

Whenever the text cannot go in without loss (the file already carries its own generation data, the
text is beyond the 64 KB JPEG segment limit, animated files, videos, unknown formats) the
functions raise :class:`EmbedSkipped`, whose ``reason`` the caller logs before writing a sidecar
instead. Files are replaced atomically (temporary file in the same folder, fsync, ``os.replace``).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from typing import Dict, List, Optional, Tuple

import piexif
import piexif.helper
from PIL import Image, UnidentifiedImageError

from ..store import confined
from ..errors import MetadataError

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PARAMETERS_KEY = b"parameters"
#: Largest JPEG segment payload: the 16-bit length field counts itself (65,535 - 2).
JPEG_SEGMENT_MAX = 65533
EXIF_HEADER = b"Exif\x00\x00"

# The process umask, read once at import (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# VP8X flag bits (WebP container spec, "Extended File Format").
_VP8X_ICC = 0x20
_VP8X_ALPHA = 0x10
_VP8X_EXIF = 0x08
_VP8X_XMP = 0x04
_VP8X_ANIMATION = 0x02


class EmbedSkipped(MetadataError):
    """The text was not embedded (the file is unchanged); ``reason`` says why, for the log."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"generation data not embedded in {os.path.basename(path)}: {reason}")
        self.path = path
        self.reason = reason


def sniff_format(head: bytes) -> Optional[str]:
    """``png``/``jpeg``/``webp``/``gif``/``video`` from a file's first 16 bytes, else None."""
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video"
    return None


# --------------------------------------------------------------------------------------------- PNG


def _png_chunks(data: bytes, path: str) -> List[Tuple[int, bytes, bytes]]:
    """``(offset, type, payload)`` of every chunk; raises EmbedSkipped on a damaged file."""
    if not data.startswith(PNG_SIGNATURE):
        raise EmbedSkipped(path, "not a PNG file")
    chunks = []
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise EmbedSkipped(path, "the PNG is truncated (a chunk runs past the end of the file)")
        chunks.append((pos, ctype, data[pos + 8 : pos + 8 + length]))
        pos = end
        if ctype == b"IEND":
            return chunks
    raise EmbedSkipped(path, "the PNG has no IEND chunk (truncated download?)")


def _png_text(ctype: bytes, payload: bytes) -> Optional[Tuple[bytes, Optional[str]]]:
    """``(keyword, text or None if compressed/undecodable)`` of a tEXt/zTXt/iTXt chunk."""
    keyword, sep, rest = payload.partition(b"\x00")
    if not sep:
        return None
    if ctype == b"tEXt":
        return keyword, rest.decode("latin-1")
    if ctype == b"zTXt":
        try:
            return keyword, zlib.decompress(rest[1:]).decode("latin-1")
        except zlib.error:
            return keyword, None
    if ctype == b"iTXt" and len(rest) >= 2:
        compressed, body = rest[0], rest[2:]
        _lang, _, body = body.partition(b"\x00")
        _translated, _, body = body.partition(b"\x00")
        try:
            raw = zlib.decompress(body) if compressed else body
            return keyword, raw.decode("utf-8")
        except (zlib.error, UnicodeDecodeError):
            return keyword, None
    return None


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def png_text_chunk(text: str) -> bytes:
    """The ``parameters`` chunk Pillow's ``PngInfo.add_text`` writes: tEXt if Latin-1 fits, else
    plain iTXt."""
    try:
        return _png_chunk(b"tEXt", PARAMETERS_KEY + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        payload = PARAMETERS_KEY + b"\x00\x00\x00" + b"\x00" + b"\x00" + text.encode("utf-8")
        return _png_chunk(b"iTXt", payload)


def embed_png(data: bytes, text: str, path: str = "<png>") -> Optional[bytes]:
    """The PNG bytes with a ``parameters`` chunk added, or None when the same text is already in."""
    chunks = _png_chunks(data, path)
    for _, ctype, payload in chunks:
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            found = _png_text(ctype, payload)
            if found and found[0] == PARAMETERS_KEY:
                if found[1] == text:
                    return None
                raise EmbedSkipped(
                    path, "the PNG already carries its own 'parameters' text; it is kept untouched"
                )
    first_idat = next((off for off, ctype, _ in chunks if ctype == b"IDAT"), None)
    if first_idat is None:
        raise EmbedSkipped(path, "the PNG has no image data (IDAT chunk)")
    # Before the first IDAT: Pillow (and so WebUI) reads chunks after IDAT only once pixels load.
    return data[:first_idat] + png_text_chunk(text) + data[first_idat:]


# -------------------------------------------------------------------------------------------- EXIF


def user_comment(text: str) -> bytes:
    """EXIF UserComment as WebUI writes it: ``UNICODE\\0`` + UTF-16BE."""
    return piexif.helper.UserComment.dump(text, encoding="unicode")


#: Bytes per value of each TIFF field type (TIFF 6.0, section 2).
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


#: Tags whose value is an offset or length piexif does arithmetic with: one integer each.
_OFFSET_TAGS = {0x8769: (4,), 0x8825: (4,), 0xA005: (4,), 0x0201: (3, 4), 0x0202: (3, 4)}


def _ifd_tags(tiff: bytes, offset: int, order: str) -> Tuple[Dict[int, int], int]:
    """``{tag: raw value/offset}`` of the IFD at ``offset`` and the next IFD's offset."""
    if offset < 8 or offset + 2 > len(tiff):
        raise ValueError(f"IFD offset {offset} outside the EXIF block")
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    end = offset + 2 + 12 * count
    if end > len(tiff):
        raise ValueError("IFD runs past the end of the EXIF block")
    tags = {}
    for pos in range(offset + 2, end, 12):
        tag, kind, count_, value = struct.unpack(order + "HHII", tiff[pos : pos + 12])
        size = _TIFF_TYPE_SIZES.get(kind)
        if size is None:
            raise ValueError(f"tag {tag:#06x} has unknown type {kind}")
        # piexif builds a struct format of ``count`` items: a corrupt count must never reach it.
        if count_ * size > 4 and value + count_ * size > len(tiff):
            raise ValueError(f"tag {tag:#06x} claims {count_:,} values beyond the EXIF block")
        if tag in _OFFSET_TAGS and (kind not in _OFFSET_TAGS[tag] or count_ != 1):
            raise ValueError(f"offset tag {tag:#06x} has type {kind} x {count_}, not one integer")
        tags[tag] = value
    # Some writers end a sub-IFD without the next-IFD pointer; only IFD0's is ever followed.
    next_ifd = struct.unpack(order + "I", tiff[end : end + 4])[0] if end + 4 <= len(tiff) else 0
    return tags, next_ifd


def exif_tag_sets(tiff: bytes) -> Dict[str, set]:
    """The tag numbers in each IFD (0th, Exif, GPS, Interop, 1st), read straight from the TIFF."""
    order = "<" if tiff[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", tiff[4:8])
    zeroth, next_ifd = _ifd_tags(tiff, first, order)
    found = {"0th": set(zeroth)}
    exif = {}
    if 0x8769 in zeroth:
        exif = _ifd_tags(tiff, zeroth[0x8769], order)[0]
        found["Exif"] = set(exif)
    if 0x8825 in zeroth:
        found["GPS"] = set(_ifd_tags(tiff, zeroth[0x8825], order)[0])
    if 0xA005 in exif:
        found["Interop"] = set(_ifd_tags(tiff, exif[0xA005], order)[0])
    if next_ifd:
        found["1st"] = set(_ifd_tags(tiff, next_ifd, order)[0])
    return found


def _merged_exif(tiff: Optional[bytes], text: str, path: str) -> Optional[bytes]:
    """TIFF-structured EXIF (no ``Exif\\0\\0`` header) holding ``text``; None if already there."""
    if tiff:
        if tiff[:2] not in (b"II", b"MM"):
            raise EmbedSkipped(path, "its existing EXIF is not TIFF-structured; it is kept as is")
        try:
            present = exif_tag_sets(tiff)  # validates every count before piexif reads it
            exif = piexif.load(tiff)
        except (ValueError, struct.error, IndexError) as exc:
            raise EmbedSkipped(path, f"its existing EXIF cannot be read ({exc}); it is kept as is")
        dropped = sum(len(tags - set(exif.get(ifd) or {})) for ifd, tags in present.items())
        if dropped:
            raise EmbedSkipped(
                path,
                f"its existing EXIF holds {dropped} tag(s) that could not be carried over when "
                "rewriting it; it is kept as is",
            )
        current = exif.get("Exif", {}).get(piexif.ExifIFD.UserComment)
        if current:
            try:
                existing = piexif.helper.UserComment.load(current)
            except ValueError:
                existing = current.decode("utf-8", errors="ignore")
            if existing == text:
                return None
            if existing.strip("\x00 "):
                raise EmbedSkipped(path, "the image already has its own EXIF UserComment; kept")
    else:
        exif = {"0th": {}, "Exif": {}, "GPS": {}, "Interop": {}, "1st": {}, "thumbnail": None}
    exif.setdefault("Exif", {})[piexif.ExifIFD.UserComment] = user_comment(text)
    try:
        dumped = piexif.dump(exif)
    except (ValueError, struct.error) as exc:
        raise EmbedSkipped(path, f"its existing EXIF cannot be rewritten safely ({exc})")
    return dumped[len(EXIF_HEADER) :] if dumped.startswith(EXIF_HEADER) else dumped


# -------------------------------------------------------------------------------------------- JPEG


def _jpeg_segments(data: bytes, path: str) -> Tuple[List[bytes], bytes]:
    """Header segments (each with its marker) up to SOS, and the rest of the file from SOS on."""
    segments: List[bytes] = []
    pos = 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise EmbedSkipped(path, "the JPEG header is damaged (no marker where one is due)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan / end of image
            return segments, data[pos:]
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            segments.append(data[pos : pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise EmbedSkipped(path, "the JPEG header is damaged (a segment runs past the end)")
        segments.append(data[pos : pos + 2 + length])
        pos += 2 + length


def _is_exif_app1(segment: bytes) -> bool:
    return segment[:2] == b"\xff\xe1" and segment[4:10] == EXIF_HEADER


def embed_jpeg(data: bytes, text: str, path: str = "<jpeg>") -> Optional[bytes]:
    """The JPEG bytes with ``text`` in EXIF UserComment, or None when it is already there."""
    segments, rest = _jpeg_segments(data, path)
    index = next((i for i, seg in enumerate(segments) if _is_exif_app1(seg)), None)
    old_tiff = segments[index][10:] if index is not None else None
    tiff = _merged_exif(old_tiff, text, path)
    if tiff is None:
        return None
    payload = EXIF_HEADER + tiff
    if len(payload) > JPEG_SEGMENT_MAX:
        raise EmbedSkipped(
            path,
            f"the EXIF would be {len(payload):,} bytes, over the JPEG segment limit of "
            f"{JPEG_SEGMENT_MAX:,} bytes (text of {len(text):,} characters)",
        )
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    if index is not None:
        segments[index] = segment
    else:
        at = 1 if segments and segments[0][:2] == b"\xff\xe0" else 0  # after JFIF APP0
        segments.insert(at, segment)
    return data[:2] + b"".join(segments) + rest


# -------------------------------------------------------------------------------------------- WebP


def _riff_chunks(data: bytes, path: str) -> List[Tuple[bytes, bytes]]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = min(len(data), 8 + riff_size)
    chunks = []
    pos = 12
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if pos + 8 + size > end:
            raise EmbedSkipped(path, "the WebP is truncated (a chunk runs past the end)")
        chunks.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    if not chunks:
        raise EmbedSkipped(path, "the WebP holds no chunks")
    return chunks


def _webp_canvas(chunks: List[Tuple[bytes, bytes]], path: str) -> Tuple[int, int, bool]:
    """Width, height and alpha of a simple (VP8 / VP8L) WebP, read from the bitstream header."""
    for fourcc, payload in chunks:
        if fourcc == b"VP8 " and len(payload) >= 10 and payload[3:6] == b"\x9d\x01\x2a":
            width, height = struct.unpack("<HH", payload[6:10])
            has_alpha = any(f == b"ALPH" for f, _ in chunks)
            return width & 0x3FFF, height & 0x3FFF, has_alpha
        if fourcc == b"VP8L" and len(payload) >= 5 and payload[0] == 0x2F:
            (bits,) = struct.unpack("<I", payload[1:5])
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise EmbedSkipped(path, "the WebP has no VP8/VP8L image data to size the canvas from")


def _riff(chunks: List[Tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")
        for fourcc, payload in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def embed_webp(data: bytes, text: str, path: str = "<webp>") -> Optional[bytes]:
    """The WebP bytes with ``text`` in the EXIF chunk, or None when it is already there."""
    chunks = _riff_chunks(data, path)
    if chunks[0][0] == b"VP8X":
        flags = chunks[0][1][0]
        if flags & _VP8X_ANIMATION or any(f == b"ANIM" for f, _ in chunks):
            raise EmbedSkipped(path, "animated WebP: generation data goes to a sidecar")
    exif_index = next((i for i, (f, _) in enumerate(chunks) if f == b"EXIF"), None)
    old = chunks[exif_index][1] if exif_index is not None else None
    if old is not None and old.startswith(EXIF_HEADER):
        old = old[len(EXIF_HEADER) :]
    tiff = _merged_exif(old, text, path)
    if tiff is None:
        return None
    if exif_index is not None:
        chunks[exif_index] = (b"EXIF", tiff)
    else:
        xmp = next((i for i, (f, _) in enumerate(chunks) if f == b"XMP "), None)
        chunks.insert(xmp if xmp is not None else len(chunks), (b"EXIF", tiff))
    if chunks[0][0] == b"VP8X":
        vp8x = bytearray(chunks[0][1])
        vp8x[0] |= _VP8X_EXIF
        chunks[0] = (b"VP8X", bytes(vp8x))
    else:
        width, height, has_alpha = _webp_canvas(chunks, path)
        flags = _VP8X_EXIF | (_VP8X_ALPHA if has_alpha else 0)
        flags |= _VP8X_ICC if any(f == b"ICCP" for f, _ in chunks) else 0
        flags |= _VP8X_XMP if any(f == b"XMP " for f, _ in chunks) else 0
        header = (
            bytes([flags, 0, 0, 0])
            + struct.pack("<I", width - 1)[:3]
            + struct.pack("<I", height - 1)[:3]
        )
        chunks.insert(0, (b"VP8X", header))
    return _riff(chunks)


# --------------------------------------------------------------------------------------- file level


def embed_infotext(path: str, text: str) -> str:
    """Embed ``text`` in the image at ``path`` in place (atomically); returns ``path``.

    Raises :class:`EmbedSkipped` (file unchanged) when it cannot be done without loss.
    """
    if not text:
        raise EmbedSkipped(path, "there is no generation data to embed")
    with open(path, "rb") as handle:
        kind = sniff_format(handle.read(16))
        if kind not in ("png", "jpeg", "webp"):
            data = b""
        else:
            handle.seek(0)
            data = handle.read()
    if kind == "png":
        new = embed_png(data, text, path)
    elif kind == "jpeg":
        new = embed_jpeg(data, text, path)
    elif kind == "webp":
        new = embed_webp(data, text, path)
    elif kind == "gif":
        raise EmbedSkipped(path, "GIF has no EXIF; generation data goes to a sidecar")
    elif kind == "video":
        raise EmbedSkipped(path, "videos get a sidecar, not embedded text")
    else:
        raise EmbedSkipped(path, "unknown file type (not PNG, JPEG or WebP)")
    if new is None:
        log.debug("%s already holds this generation data", os.path.basename(path))
        return path
    confined.write_atomic(path, new)
    return path


def _load_exif_bytes(raw: bytes) -> Optional[dict]:
    """piexif.load for EXIF bytes only (piexif treats anything unrecognised as a file name)."""
    if not isinstance(raw, bytes) or not (raw[:4] == b"Exif" or raw[:2] in (b"II", b"MM")):
        return None
    try:
        exif_tag_sets(raw[6:] if raw[:4] == b"Exif" else raw)  # refuse corrupt counts first
        return piexif.load(raw)
    except (ValueError, struct.error, IndexError):
        return None


def read_infotext(path: str) -> Optional[str]:
    """The infotext WebUI's PNG Info would show for ``path`` (None when there is none).

    Mirrors WebUI's ``read_info_from_image``: the PNG ``parameters`` text, overridden by a non-empty
    EXIF UserComment; a GIF's comment. Videos and unknown files give None.
    """
    with open(path, "rb") as handle:
        head = handle.read(16)
    if sniff_format(head) in (None, "video"):
        return None
    try:
        with Image.open(path) as image:
            info = dict(image.info or {})
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise MetadataError(f"cannot read {os.path.basename(path)} as an image: {exc}") from exc
    text = info.get("parameters")
    if "exif" in info:
        exif = _load_exif_bytes(info["exif"])
        comment = (exif or {}).get("Exif", {}).get(piexif.ExifIFD.UserComment, b"")
        try:
            decoded = piexif.helper.UserComment.load(comment)
        except ValueError:
            decoded = comment.decode("utf-8", errors="ignore")
        if decoded:
            text = decoded
    elif "comment" in info:
        comment = info["comment"]
        text = comment.decode("utf-8", errors="ignore") if isinstance(comment, bytes) else comment
    return text if text else None

"""Deterministic media bytes for the fake image host: Pillow images, tiny MP4s, padded JPEGs, blobs.

Everything here is a pure function of its arguments (an id-derived seed, a size), so the same image
id always yields the same bytes, and tests can recompute what the server sent.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import threading
from collections import OrderedDict
from typing import Callable, Dict, Iterator, Optional, Tuple

import piexif
import piexif.helper
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

CONTENT_TYPES: Dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "bin": "application/octet-stream",
}

# Magic numbers put at the start of a streamed blob so content sniffers recognise the kind.
_BLOB_HEADERS: Dict[str, bytes] = {
    "mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "png": b"\x89PNG\r\n\x1a\n",
    "webp": b"RIFF\xff\xff\xff\x7fWEBPVP8 ",
    "gif": b"GIF89a",
    "webm": b"\x1a\x45\xdf\xa3",
    "bin": b"",
}


def content_type(kind: str) -> str:
    """The MIME type the image host sends for a media kind (``png``, ``jpeg``, ``mp4`` ...)."""
    return CONTENT_TYPES[kind]


def _rng(seed: int, salt: str = "") -> random.Random:
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def render_picture(seed: int, width: int, height: int) -> Image.Image:
    """A small RGB picture (gradient, shapes) that depends only on ``seed`` and the size."""
    rng = _rng(seed, "picture")
    c1 = tuple(rng.randrange(256) for _ in range(3))
    c2 = tuple(rng.randrange(256) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(
        Image.new("RGB", (width, height), c1), Image.new("RGB", (width, height), c2), gradient
    )
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 8)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = min(width - 1, x0 + rng.randint(4, max(5, width // 2)))
        y1 = min(height - 1, y0 + rng.randint(4, max(5, height // 2)))
        fill = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
    return image


def encode_picture(
    image: Image.Image, kind: str, text_chunks: Optional[Dict[str, str]] = None
) -> bytes:
    """Encode ``image`` as ``png``/``jpeg``/``webp``; PNG ``text_chunks`` become text chunks."""
    out = io.BytesIO()
    if kind == "png":
        info = None
        if text_chunks:
            info = PngInfo()
            for key, value in text_chunks.items():
                info.add_text(key, value)
        image.save(out, format="PNG", pnginfo=info)
    elif kind == "jpeg":
        image.save(out, format="JPEG", quality=85)
    elif kind == "webp":
        image.save(out, format="WEBP", quality=80)
    else:
        raise ValueError(f"cannot encode a picture as {kind!r}")
    return out.getvalue()


def with_user_comment(jpeg: bytes, text: str) -> bytes:
    """``jpeg`` with ``text`` in EXIF ``UserComment``, the way A1111 saves JPEGs (no re-encode)."""
    comment = piexif.helper.UserComment.dump(text, encoding="unicode")
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})
    out = io.BytesIO()
    piexif.insert(exif, jpeg, out)
    return out.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def tiny_mp4(seed: int, payload_size: int = 2048) -> bytes:
    """A small ISO-BMFF file (``ftyp`` + ``free`` + ``mdat``) that sniffers recognise as MP4."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")
    free = _box(b"free", f"fake-civitai video {seed}".encode())
    payload = _rng(seed, "mp4").randbytes(payload_size)
    return ftyp + free + _box(b"mdat", payload)


def resized_jpeg(original: bytes, width: int) -> bytes:
    """Re-encode ``original`` as a JPEG at most ``width`` pixels wide (no metadata carried over)."""
    with Image.open(io.BytesIO(original)) as source:
        source.load()
        picture = source.convert("RGB")
    if width < picture.width:
        height = max(1, round(picture.height * width / picture.width))
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)
    return out.getvalue()


def noise_jpeg(seed: int, width: int, height: int, quality: int = 90) -> bytes:
    """A JPEG of random pixels: it compresses badly, so its size scales with its pixel count."""
    pixels = _rng(seed, "noise").randbytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def pad_jpeg(jpeg: bytes, target_size: int, tag: str) -> bytes:
    """Insert COM segments after SOI so the JPEG is exactly ``target_size`` bytes (or just tagged).

    The first comment carries ``tag`` so two padded copies of one base image still differ. When the
    base is already larger than the target, only the tag is added.
    """
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    tag_bytes = tag.encode()[:60000]
    segments = [b"\xff\xfe" + struct.pack(">H", len(tag_bytes) + 2) + tag_bytes]
    missing = target_size - len(jpeg) - len(segments[0])
    filler = b"fake-civitai padding "
    while missing > 0:
        if missing < 4:
            # A segment needs 4 bytes of framing: grow the tag segment instead.
            grown = tag_bytes + b" " * missing
            segments[0] = b"\xff\xfe" + struct.pack(">H", len(grown) + 2) + grown
            break
        body_len = min(missing - 4, 65533)
        body = (filler * (body_len // len(filler) + 1))[:body_len]
        segments.append(b"\xff\xfe" + struct.pack(">H", body_len + 2) + body)
        missing -= body_len + 4
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


class Body:
    """A response body that can be read in slices without holding all of it in memory."""

    size: int = 0

    def iter_range(self, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        """Yield the bytes ``[start, end)`` in chunks of at most ``chunk_size``."""
        raise NotImplementedError


class BytesBody(Body):
    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def iter_range(self, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        view = memoryview(self.data)
        for offset in range(start, end, chunk_size):
            yield bytes(view[offset : min(end, offset + chunk_size)])


class BlobBody(Body):
    """``size`` generated bytes: the kind's magic header, then a repeated pseudo-random block."""

    _BLOCK = 65536

    def __init__(self, size: int, kind: str = "mp4", seed: int = 0):
        if kind not in _BLOB_HEADERS:
            raise ValueError(f"unknown blob kind {kind!r}; use one of {sorted(_BLOB_HEADERS)}")
        self.size = size
        self.kind = kind
        self._header = _BLOB_HEADERS[kind]
        if kind == "mp4" and size >= len(self._header) + 8:
            # ftyp, then one mdat box over the rest: a whole ISO-BMFF file of exactly ``size``
            self._header += struct.pack(">I", size - len(self._header)) + b"mdat"
        elif kind == "webm":
            # EBML header, then a segment of unknown size running to the end
            self._header = self._header + b"\x84webm" + b"\x18\x53\x80\x67" + b"\x01" + b"\xff" * 7
        self._block = _rng(seed, f"blob:{kind}").randbytes(self._BLOCK)

    def byte_slice(self, start: int, end: int) -> bytes:
        parts = []
        pos = start
        while pos < end:
            if pos < len(self._header):
                stop = min(end, len(self._header))
                parts.append(self._header[pos:stop])
            else:
                offset = pos % self._BLOCK
                stop = min(end, pos + self._BLOCK - offset)
                parts.append(self._block[offset : offset + (stop - pos)])
            pos = stop
        return b"".join(parts)

    def iter_range(self, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        for offset in range(start, end, chunk_size):
            yield self.byte_slice(offset, min(end, offset + chunk_size))


class EndlessBody(Body):
    """``head``, then zero bytes for ever (an endless stream; ``size`` is a huge sentinel)."""

    size = 1 << 62

    def __init__(self, head: bytes = b""):
        self._head = head
        self._zeros = bytes(65536)

    def iter_range(self, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        if self._head:
            yield self._head
        while True:
            yield self._zeros[:chunk_size]


class ByteCache:
    """A thread-safe LRU of generated bytes bounded by total size.

    Values are computed outside the lock: two threads asking for the same missing key may both
    compute it, which is harmless because every producer here is deterministic.
    """

    def __init__(self, max_bytes: int = 128 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: "OrderedDict[Tuple, bytes]" = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Tuple, produce: Callable[[], bytes]) -> bytes:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value
        value = produce()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._size += len(value)
                while self._size > self.max_bytes and len(self._items) > 1:
                    _, dropped = self._items.popitem(last=False)
                    self._size -= len(dropped)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0

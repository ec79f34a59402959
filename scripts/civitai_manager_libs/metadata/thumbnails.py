"""Small previews of downloaded images in a ``.thumbnails/`` folder beside them.

Aspect ratio is kept (the image fits inside ``size``, never enlarged), the EXIF orientation is
applied, opaque images become ``<stem>.jpg`` and images with transparency ``<stem>.webp``. Videos
get no thumbnail. The file is written atomically.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Optional, Sequence

from PIL import Image, ImageOps, UnidentifiedImageError

from .embed import sniff_format
from ..store import confined
from ..errors import MetadataError

log = logging.getLogger(__name__)

THUMBNAIL_DIR = ".thumbnails"
JPEG_QUALITY = 85


class ThumbnailError(MetadataError):
    """An image could not be read or its thumbnail could not be written."""


def thumbnail_dir(image_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(image_path)), THUMBNAIL_DIR)


def _check_size(size: Sequence[int]) -> tuple:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"thumbnail size must be two whole numbers, got {size!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"thumbnail size must be positive, got {size!r}")
    return width, height


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )


def make_thumbnail(image_path: str, size: Sequence[int] = (256, 256)) -> Optional[str]:
    """Write the thumbnail of ``image_path``; returns its path, or None for videos.

    Raises ThumbnailError when the file is not a readable image or the thumbnail cannot be saved.
    """
    width, height = _check_size(size)
    with open(image_path, "rb") as handle:
        head = handle.read(16)
    if sniff_format(head) == "video":
        log.debug("no thumbnail for video %s", os.path.basename(image_path))
        return None
    try:
        with Image.open(image_path) as image:
            if image.format == "JPEG":
                # Decode at a reduced scale straight away (DCT scaling): far cheaper for big photos.
                image.draft("RGB", (max(width, height) * 2, max(width, height) * 2))
            image.seek(0)
            thumb = ImageOps.exif_transpose(image)
            thumb.thumbnail((width, height), Image.Resampling.LANCZOS)
            if thumb.mode.startswith("I;16") or thumb.mode == "I":
                # 16-bit grayscale: scale to 8 bits (a plain convert would clip to white).
                thumb = thumb.convert("I").point(lambda v: v * (1 / 256)).convert("L")
            alpha = _has_alpha(thumb)
            thumb = thumb.convert("RGBA" if alpha else "RGB")
    except Image.DecompressionBombError as exc:
        raise ThumbnailError(
            f"no thumbnail for {os.path.basename(image_path)}: the image is too large to decode "
            f"safely ({exc})"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ThumbnailError(
            f"cannot make a thumbnail of {os.path.basename(image_path)}: it is not a readable "
            f"image ({exc})"
        ) from exc
    stem = os.path.splitext(os.path.basename(image_path))[0]
    folder = thumbnail_dir(image_path)
    target = os.path.join(folder, stem + (".webp" if alpha else ".jpg"))
    buffer = io.BytesIO()
    if alpha:
        thumb.save(buffer, "WEBP", quality=JPEG_QUALITY, method=4)
    else:
        thumb.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    try:
        # .thumbnails is created (or must already resolve) inside the image's folder
        confined.ensure_dir(folder, os.path.dirname(os.path.abspath(image_path)))
        confined.write_atomic(target, buffer.getvalue())
    except OSError as exc:
        raise ThumbnailError(
            f"cannot write the thumbnail {target}: {exc.strerror or exc}; check that the folder "
            "is writable and the disk has space"
        ) from exc
    return target

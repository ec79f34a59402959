"""The duplicate policy: which file name an image gets when its name is taken, and what happens
to either copy when its content is already in the archive under another image id.

* With ``images.skip_existing`` a file already at the target path is skipped and adopted into the
  archive. When ``skip_existing`` is off and the target exists, ``images.duplicate_policy``
  decides: ``skip``, ``replace`` (overwrite) or ``keep_both`` (save as ``name (1).ext``).
* After a download the SHA-256 is compared with the archive: ``skip`` deletes the new file
  ("same content as <path>"), ``replace`` deletes the older file (and the older id now points at
  the new one), ``keep_both`` keeps both.
* Within one session every image gets its own name (``name (1)`` on a collision).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import Any, Callable, Dict, Optional, Set

from .task import row_as_dict
from ..records import DownloadResult
from ..store import confined

logger = logging.getLogger(__name__)

MEDIA_EXTENSIONS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")


def find_existing(base: str) -> Optional[str]:
    """The media file saved at ``base`` (a path without extension), whatever its extension.
    A symbolic link is not a saved file: it is never adopted (nor read), and writing there is
    refused by the confinement rules."""
    for ext in MEDIA_EXTENSIONS:
        if os.path.isfile(base + ext) and not os.path.islink(base + ext):
            return base + ext
    return None


VIDEO_MAGIC = (b"ftyp", b"\x1a\x45\xdf\xa3")  # MP4 box type, WebM/Matroska EBML header


def unreadable_media(path: str) -> Optional[str]:
    """None when the file at ``path`` reads as the picture or video its extension says (a cheap
    structure check, no full decode), else a short reason."""
    try:
        if path.lower().endswith((".mp4", ".webm")):
            with open(path, "rb") as handle:
                head = handle.read(16)
            return None if any(magic in head for magic in VIDEO_MAGIC) else "not a video"
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
        return None
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}" if exc.strerror else "not an image"
    except Exception as exc:  # Pillow raises SyntaxError, ValueError ... on broken files
        return f"not an image ({type(exc).__name__})"


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileNames:
    """The target names given out in this session, so two images never share a file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claimed: Dict[str, Any] = {}  # planned target -> image id

    def claim(
        self,
        target: str,
        image_id: Any,
        owners_of: Optional[Callable[[str], Set[Any]]] = None,
    ) -> str:
        """``target`` for ``image_id``, or ``target (n)`` when the name belongs to another image:
        given out to it in this session, or (``owners_of``: the archive's record of a file) saved
        for it by an earlier run. A file there that no image owns is this image's to adopt (a run
        killed between saving and recording it)."""
        with self._lock:
            candidate, n = target, 0
            while not self._free(candidate, image_id, owners_of):
                n += 1
                candidate = f"{target} ({n})"
            self._claimed[candidate] = image_id
            return candidate

    def _free(self, candidate: str, image_id: Any, owners_of) -> bool:
        if self._claimed.get(candidate, image_id) != image_id:
            return False
        existing = find_existing(candidate) if owners_of is not None else None
        if existing is None:
            return True
        owners = owners_of(existing)
        return not owners or image_id in owners

    def claim_copy(self, target: str, image_id: Any) -> str:
        """The first ``target (n)`` neither on disk nor given out (``keep_both``)."""
        with self._lock:
            n = 1
            while find_existing(f"{target} ({n})") or f"{target} ({n})" in self._claimed:
                n += 1
            copy = f"{target} ({n})"
            self._claimed[copy] = image_id
            return copy


def apply_same_content(
    archive: Any,
    policy: str,
    image_id: Any,
    result: DownloadResult,
    root: Optional[str] = None,
) -> Optional[Dict[str, Any]]:
    """Apply ``policy`` when the archive holds ``result``'s content as another image's file.

    Returns that image's archive row when the new file was deleted (``skip``); None when the new
    file stays (no such other file, ``replace`` which deleted the older one, ``keep_both``).
    ``root`` (the output folder): a recorded file outside it is never deleted nor pointed to.
    """
    row = row_as_dict(archive.find_by_sha256(result.sha256))
    other = row.get("path")
    if not other or row.get("image_id") == image_id:
        return None
    if os.path.abspath(other) == os.path.abspath(result.path) or not os.path.isfile(other):
        return None
    if root is not None and confined.relative_to(other, root) is None:
        logger.debug("image %s: same content as %s, outside %s: left alone", image_id, other, root)
        return None
    if policy == "skip":
        confined.remove(result.path, root)
        return row
    if policy == "replace":
        confined.remove(other, root)
        logger.info("image %s replaces %s (same content)", image_id, other)
        other_id = row.get("image_id")
        if other_id is not None:  # the older id now lives in the new file: no ping-pong
            archive.record_image(
                image_id=other_id,
                url=row.get("url"),
                sha256=result.sha256,
                path=result.path,
                size=result.size,
            )
    return None

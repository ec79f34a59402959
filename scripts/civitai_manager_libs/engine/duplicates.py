"""Why a file was skipped or renamed: the duplicate rule, in two functions read side by side.

* :func:`by_name`, before any request: a file already where the image would go is adopted (a
  readable one, with ``images.skip_existing`` or duplicate policy ``skip``), left alone with the
  image skipped (an unreadable one, policy ``skip``), downloaded over (``replace``) or beside
  (``keep_both``: ``name (1).ext``).
* :func:`by_content`, after the download: the SHA-256 is compared with the archive: ``skip``
  deletes the new file ("same content as <path>"), ``replace`` deletes the older file (and the
  older id now points at the new one), ``keep_both`` keeps both.
* Within one session every image gets its own name (:class:`FileNames`, ``name (1)`` on a
  collision).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Set

from .task import row_as_dict
from ..records import DownloadResult
from ..store import confined
from ..store.file_path import on_disk

logger = logging.getLogger(__name__)

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
        existing = on_disk(candidate) if owners_of is not None else None
        if existing is None:
            return True
        owners = owners_of(existing)
        return not owners or image_id in owners

    def claim_copy(self, target: str, image_id: Any) -> str:
        """The first ``target (n)`` neither on disk nor given out (``keep_both``)."""
        with self._lock:
            n = 1
            while on_disk(f"{target} ({n})") or f"{target} ({n})" in self._claimed:
                n += 1
            copy = f"{target} ({n})"
            self._claimed[copy] = image_id
            return copy


@dataclass
class OnDisk:
    """What :func:`by_name` decided for an image planned at a name."""

    target: str  # where the download goes (a ``name (n)`` copy for keep_both)
    adopt: Optional[str] = None  # a readable file already there: recorded, not downloaded
    left_alone: Optional[str] = None  # why the image is skipped (an unreadable file stays)
    replaces: Optional[str] = None  # the older copy deleted once the new one is in place


def by_name(
    target: str, image_id: Any, policy: str, skip_existing: bool, names: "FileNames"
) -> OnDisk:
    """The rule for a file already at ``target`` (a path without extension), whatever its
    extension; see the module docstring. A file that cannot be read as the media its extension
    says is never adopted."""
    existing = on_disk(target)
    if existing is None:
        return OnDisk(target)
    problem = unreadable_media(existing)
    if problem is None and (skip_existing or policy == "skip"):
        return OnDisk(target, adopt=existing)
    if problem is not None and policy == "skip":
        message = (
            f"a file that cannot be read as an image is already at {existing} ({problem}); "
            "it was left as is (duplicate policy 'skip'; choose 'replace' to download over it)"
        )
        logger.warning("image %s: %s", image_id, message)
        return OnDisk(target, left_alone=message)
    if problem is not None:
        logger.warning(
            "image %s: the file already at %s cannot be read (%s); downloading %s it "
            "(duplicate policy %r)",
            image_id,
            existing,
            problem,
            "over" if policy == "replace" else "beside",
            policy,
        )
    if policy == "keep_both":
        return OnDisk(names.claim_copy(target, image_id))
    return OnDisk(target, replaces=existing)


def by_content(
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

"""One object names one file, from the planned name to the file in place (gallery-dl's
``PathFormat`` is the model): the target (a path template rendered inside the output folder, no
extension yet), the name it is streamed under, its ``.part``, the real extension once the bytes
show it, :meth:`FilePath.exists` and :meth:`FilePath.finalize` that puts the file in place.
Every file it creates, renames or deletes goes through :mod:`.confined`.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Optional

from . import confined
from .paths import PathTemplate, fields_from_item, safe_join

#: The extensions a saved image or video may carry (a file there is an earlier download).
MEDIA_EXTENSIONS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")
#: Suffixes the real extension replaces (media and their aliases); any other is part of the name.
_REPLACEABLE = {
    *MEDIA_EXTENSIONS,
    *(".avif", ".mov", ".mkv", ".mp3", ".m4a", ".ogg", ".wav", ".flac"),
    *(".jpe", ".jfif", ".bin", ".tmp"),
}


def planned(template: PathTemplate, item: Any, root: str) -> str:
    """The target of ``item`` (a path without extension): ``template`` rendered inside ``root``
    (TemplateError when the result would leave it)."""
    return safe_join(root, template.render(fields_from_item(item)))


def chosen(path: str, image_id: Any) -> str:
    """The target of a file the caller names itself: a folder (existing, or written with a
    trailing separator) gets ``<id>``, a file path loses its media extension."""
    custom = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(custom) or path.endswith(("/", os.sep)):
        return os.path.join(custom, str(image_id))
    base, ext = os.path.splitext(custom)
    return base if ext.lower() in MEDIA_EXTENSIONS else custom


def on_disk(base: str) -> Optional[str]:
    """The media file saved at ``base`` (a path without extension), whatever its extension. A
    symbolic link is not a saved file: it is never adopted (nor read), and writing there is
    refused by the confinement rules."""
    for ext in MEDIA_EXTENSIONS:
        if os.path.isfile(base + ext) and not os.path.islink(base + ext):
            return base + ext
    return None


class FilePath:
    """The names of one file: ``path`` (what it is streamed as), ``temp`` (``path + ".part"``),
    ``root`` (the folder every write must stay in; default: the file's own) and, with
    ``fix_extension``, the real extension replacing ``path``'s media suffix at :meth:`finalize`."""

    def __init__(self, path: str, root: Optional[str] = None, fix_extension: bool = False):
        self.path = os.fspath(path)
        self.temp = self.path + ".part"
        self.root = os.fspath(root) if root is not None else os.path.dirname(self.realpath())
        self.fix_extension = fix_extension

    @classmethod
    def for_image(cls, base: str, root: str, item_type: Optional[str]) -> "FilePath":
        """An image or video planned at ``base`` (no extension): streamed under a placeholder
        extension until its bytes show the real one."""
        return cls(base + (".mp4" if item_type == "video" else ".jpeg"), root, fix_extension=True)

    def __repr__(self) -> str:
        return f"FilePath({self.path!r}, root={self.root!r})"

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:
        return self.path

    def realpath(self) -> str:
        return os.path.abspath(self.path)

    def exists(self) -> Optional[str]:
        """The media file already saved under this name, whatever its extension (or None)."""
        return on_disk(os.path.splitext(self.path)[0] if self.fix_extension else self.path)

    def final(self, extension: Optional[str]) -> str:
        """The final name: ``path`` with its media suffix replaced by ``extension`` (appended
        when the suffix is part of the name); ``path`` itself without ``fix_extension``."""
        if not extension or not self.fix_extension:
            return self.path
        stem, suffix = os.path.splitext(self.path)
        return (stem if suffix.lower() in _REPLACEABLE else self.path) + extension

    def prepare(self) -> None:
        """Create the folder and check both names before anything is written."""
        confined.ensure_dir(os.path.dirname(self.realpath()), self.root)
        confined.check_target(self.temp, self.root)
        confined.check_target(self.path, self.root)

    def temp_size(self) -> int:
        return confined.regular_size(self.temp) or 0

    def open_temp(self, append: bool) -> BinaryIO:
        return confined.open_write(self.temp, self.root, append=append)

    def read_temp(self) -> BinaryIO:
        return confined.open_read(self.temp, self.root)

    def discard(self) -> None:
        """Remove the ``.part``; a symbolic link there is never the download's own: left alone."""
        if not os.path.islink(self.temp):
            confined.remove(self.temp)

    def finalize(self, extension: Optional[str]) -> str:
        """Rename the ``.part`` to its final name (see :meth:`final`), durably; the name."""
        target = self.final(extension)
        confined.replace(self.temp, target, self.root)
        confined.fsync_dir(os.path.dirname(os.path.abspath(target)))
        return target

"""Reading and atomically writing the settings JSON file (no validation, no state)."""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Dict, Mapping, Optional

from ..errors import ConfinementError, SettingsError
from ..store import confined
from ..util.documents import DocumentError, read_document

#: The largest settings file read (a real one is about 2 KB); nesting deeper than this is refused.
MAX_SETTINGS_BYTES = 1024 * 1024
MAX_SETTINGS_DEPTH = 8


def read_settings_file(path: str) -> Optional[Dict[str, Any]]:
    """The JSON object stored at ``path``, or None when the file does not exist.

    Raises SettingsError naming the file when it cannot be read, is not valid JSON or does not hold
    a JSON object.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(f"Cannot read the settings file {path}: {exc.strerror}.") from None
    if not stat.S_ISREG(mode):  # /dev/zero, a FIFO, a folder: never read (no hang, no flood)
        raise SettingsError(
            f"The settings file {path} is not a regular file; point CIVITAI_GALLERY_SETTINGS at "
            "a JSON file."
        )
    try:
        with open(path, "rb") as fh:
            data = read_document(
                fh, what="settings file", max_bytes=MAX_SETTINGS_BYTES, max_depth=MAX_SETTINGS_DEPTH
            )
    except OSError as exc:
        raise SettingsError(f"Cannot read the settings file {path}: {exc.strerror}.") from None
    except DocumentError as exc:
        raise SettingsError(
            f"The settings file {path} cannot be used: {exc}; fix it or delete it to start from "
            "the defaults."
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(f"The settings file {path} must hold a JSON object of settings.")
    return data


def write_settings_file(path: str, data: Mapping[str, Any], private: bool = False) -> str:
    """Write ``data`` as indented JSON to ``path`` atomically; returns the absolute path.

    The text goes to a temporary file in the same folder, is fsynced and ``os.replace``-d over the
    old file, so the file is either the old or the new content. ``private`` makes the file readable
    by its owner only (mode 0600). Raises SettingsError naming the file when it cannot be written;
    the old file and the folder are then left as they were.
    """
    # the settings path is one the user names (CIVITAI_GALLERY_SETTINGS, or the repo's data/): a
    # link there is theirs (a dotfiles manager) and is followed, so the link is kept, not replaced
    path = os.path.realpath(os.path.abspath(path))
    text = json.dumps(dict(data), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    folder = os.path.dirname(path)
    try:
        confined.ensure_root(folder)
    except OSError as exc:
        raise SettingsError(
            f"Cannot write the settings file {path}: {exc.strerror}. "
            "Choose a writable location with the CIVITAI_GALLERY_SETTINGS environment variable."
        ) from None
    try:
        confined.write_atomic(path, text.encode("utf-8"), folder, private=private)
    except ConfinementError as exc:
        raise SettingsError(f"Cannot write the settings file: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"Cannot write the settings file {path}: {exc.strerror}.") from None
    confined.fsync_dir(folder)
    return path

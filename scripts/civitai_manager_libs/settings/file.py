"""Reading and atomically writing the settings JSON file (no validation, no state)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Mapping, Optional

from ..errors import SettingsError


def read_settings_file(path: str) -> Optional[Dict[str, Any]]:
    """The JSON object stored at ``path``, or None when the file does not exist.

    Raises SettingsError naming the file when it cannot be read, is not valid JSON or does not hold
    a JSON object.
    """
    try:
        with open(path, "r", encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(f"Cannot read the settings file {path}: {exc.strerror}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"The settings file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}); "
            "fix it or delete it to start from the defaults."
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
    path = os.path.abspath(path)
    text = json.dumps(dict(data), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise SettingsError(
            f"Cannot write the settings file {path}: {exc.strerror}. "
            "Choose a writable location with the CIVITAI_GALLERY_SETTINGS environment variable."
        ) from None
    try:
        if private:
            os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise SettingsError(f"Cannot write the settings file {path}: {exc.strerror}.") from None
    _fsync_dir(folder)
    return path


def _fsync_dir(folder: str) -> None:
    """Make the rename durable: fsync the folder where the platform allows it."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform (Windows)
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)

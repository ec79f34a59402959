"""Every setting in one place: default, type, validation, JSON persistence, environment overrides.

Reading: ``setting.get("images.output_path")`` or, for the names the backlog uses, module attributes
(``setting.http_timeout``; dotted keys with ``_`` for ``.``: ``setting.images_output_path``).

Sources, strongest first:

1. the environment, for every entry point (CLI, standalone app, WebUI):
   ``CIVITAI_BASE_URL`` -> ``civitai_base_url`` and ``CIVITAI_API_KEY`` -> ``civitai_api_key``;
2. values set at run time (:func:`set`, :func:`update`) or read from the JSON file (:func:`load`);
3. the defaults in :data:`SPECS`.

Nothing is read from disk implicitly: each shell calls :func:`load` once at start-up (a missing file
is not an error). The settings file is ``$CIVITAI_GALLERY_SETTINGS`` or ``data/settings.json`` under
the repository (:func:`settings_path`).

Persistence rules:

- :func:`save` writes a temporary file in the same folder, fsyncs it and ``os.replace``-s it
  over the old one: the file is either the old or the new content, never half-written.
- :func:`load` is all-or-nothing: an unknown key, a wrong type or an out-of-range value raises
  :class:`SettingsError` naming the key, and the settings in memory stay as they were.
- The API key is a secret. ``as_dict()`` masks it, and :func:`save` leaves it out of the file unless
  called with ``include_secrets=True`` (the file is then created with mode 0600). Prefer the
  ``CIVITAI_API_KEY`` environment variable. Every key that is set is registered with
  :func:`logging_setup.register_secret` so no log line can carry it.

:func:`revision` is a counter that grows on every change (including a changed environment override),
so cached objects built from settings (the shared HTTP client) know when to rebuild.
:data:`SPECS` describes every setting (type, description, bounds, choices) so a UI can generate its
own settings page from it.

This module holds the settings in memory and is the API; the table lives in
:mod:`.specs`, value checking in :mod:`.values`, file I/O in :mod:`.file`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, Iterable, Mapping, Optional

from ..util import logging_setup
from ..errors import SettingsError
from .cache_name import DEFAULT_CACHE_EXTENSION, MEDIA_EXTENSIONS, gallery_cache_name
from .specs import ATTRIBUTE_KEYS, ENV_KEYS, SPECS, SettingSpec, repo_root, spec_for
from .values import DUPLICATE_POLICIES, METADATA_FORMATS, type_name
from .file import read_settings_file, write_settings_file

__all__ = [
    "DEFAULT_CACHE_EXTENSION",
    "DUPLICATE_POLICIES",
    "MEDIA_EXTENSIONS",
    "METADATA_FORMATS",
    "REDACTED",
    "SETTINGS_ENV",
    "SPECS",
    "SettingSpec",
    "as_dict",
    "get",
    "get_image_url_to_gallery_file",
    "load",
    "repo_root",
    "reset",
    "revision",
    "save",
    "set",
    "settings_path",
    "source",
    "update",
]

logger = logging.getLogger(__name__)

SETTINGS_ENV = "CIVITAI_GALLERY_SETTINGS"
REDACTED = "***"
_MISSING = object()

_lock = threading.RLock()
_values: Dict[str, Any] = {}  # explicitly set / loaded values (validated); defaults otherwise
_revision = 0
_env_seen: Dict[str, Optional[str]] = {}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _env_value(spec: SettingSpec) -> Any:
    """The validated environment override for ``spec`` or _MISSING."""
    if not spec.env:
        return _MISSING
    raw = os.environ.get(spec.env)
    if raw is None or raw.strip() == "":
        return _MISSING
    try:
        value = spec.validate(raw)
    except SettingsError as exc:
        raise SettingsError(f"Environment variable {spec.env}: {exc}") from None
    if spec.secret:
        logging_setup.register_secret(value)
    return value


def _check_env_locked() -> None:
    """Bump the revision when an environment override changed since last seen."""
    global _revision
    current = {name: os.environ.get(name) for name in ENV_KEYS}
    if current != _env_seen:
        if _env_seen:
            _revision += 1
        _env_seen.clear()
        _env_seen.update(current)


def get(key: str) -> Any:
    """The effective value of ``key``: environment override, else set/loaded value, else default."""
    spec = spec_for(key)
    env = _env_value(spec)
    if env is not _MISSING:
        return env
    with _lock:
        return _copy(_values.get(key, spec.default))


def source(key: str) -> str:
    """Where the effective value of ``key`` comes from: ``env``, ``set`` or ``default``."""
    spec = spec_for(key)
    if _env_value(spec) is not _MISSING:
        return "env"
    with _lock:
        return "set" if key in _values else "default"


def _validate_mapping(mapping: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(mapping, Mapping):
        raise SettingsError(
            f"Settings must be a mapping of setting names to values, got {type_name(mapping)}."
        )
    return {key: spec_for(key).validate(value) for key, value in mapping.items()}


def _apply_locked(validated: Mapping[str, Any], replace_all: bool = False) -> bool:
    global _revision
    new = {} if replace_all else dict(_values)
    new.update(validated)
    changed = new != _values
    if changed:
        _values.clear()
        _values.update(new)
        _revision += 1
    for key, value in validated.items():
        if SPECS[key].secret and value:
            logging_setup.register_secret(value)
    return changed


def set(key: str, value: Any) -> Any:  # noqa: A001 - the contract's name
    """Validate and set ``key``; returns the normalized value. SettingsError names a bad key."""
    validated = _validate_mapping({key: value})
    with _lock:
        _apply_locked(validated)
    env_name = SPECS[key].env
    if env_name and os.environ.get(env_name):
        logger.info(
            "Setting %s was changed but the %s environment variable still takes precedence.",
            key,
            SPECS[key].env,
        )
    return _copy(validated[key])


def update(mapping: Mapping[str, Any]) -> None:
    """Set several settings at once: all are validated first; on any error nothing changes."""
    validated = _validate_mapping(mapping)
    with _lock:
        _apply_locked(validated)


def reset() -> None:
    """Forget every set or loaded value: back to the defaults (environment overrides apply)."""
    global _revision
    with _lock:
        if _values:
            _values.clear()
            _revision += 1


def revision() -> int:
    """A counter that grows whenever a setting (or an environment override) changes."""
    with _lock:
        _check_env_locked()
        return _revision


def as_dict(redact: bool = True) -> Dict[str, Any]:
    """Every setting's effective value; secrets masked as ``***`` (or ``""`` when unset)."""
    out = {}
    for key, spec in SPECS.items():
        value = get(key)
        if spec.secret and redact:
            value = REDACTED if value else ""
        out[key] = value
    return out


def settings_path() -> str:
    """``$CIVITAI_GALLERY_SETTINGS`` or ``data/settings.json`` under the repository."""
    env = os.environ.get(SETTINGS_ENV, "").strip()
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return os.path.join(repo_root(), "data", "settings.json")


def load(path: Optional[str] = None) -> Optional[str]:
    """Replace the settings in memory with the file's content (missing keys take their defaults).

    Returns the path read, or None when the file does not exist (the settings are then unchanged).
    Raises SettingsError (naming the file and the key) on unreadable JSON, an unknown key or a bad
    value; the settings in memory are then unchanged too.
    """
    path = path or settings_path()
    data = read_settings_file(path)
    if data is None:
        logger.debug("No settings file at %s; using defaults.", path)
        return None
    try:
        validated = _validate_mapping(data)
    except SettingsError as exc:
        raise SettingsError(f"{exc} (in the settings file {path})") from None
    with _lock:
        _apply_locked(validated, replace_all=True)
    logger.debug("Loaded %d settings from %s.", len(validated), path)
    return path


def save(path: Optional[str] = None, include_secrets: bool = False) -> str:
    """Write the set/loaded values (defaults for the rest) to ``path`` atomically; returns the path.

    Environment overrides are not written (they belong to the environment). The API key is left out
    unless ``include_secrets=True``; the file is then made readable by its owner only.
    """
    with _lock:
        data = {
            key: _values.get(key, spec.default)
            for key, spec in SPECS.items()
            if include_secrets or not spec.secret
        }
    path = write_settings_file(path or settings_path(), data, private=include_secrets)
    logger.info("Saved settings to %s.", path)
    return path


def get_image_url_to_gallery_file(url: str) -> str:
    """The gallery cache file for an image URL: :func:`gallery_cache_name` under
    ``gallery_cache_path`` (keeps the URL's real media extension; stable, collision-free, safe).
    """
    return os.path.join(get("gallery_cache_path"), gallery_cache_name(url))


# ----------------------------------------------------------------------------------------------
# PEP 562 attribute access


def __getattr__(name: str) -> Any:
    key = ATTRIBUTE_KEYS.get(name)
    if key is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return get(key)


def __dir__() -> Iterable[str]:
    return sorted(list(globals()) + list(ATTRIBUTE_KEYS))

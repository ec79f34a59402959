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
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import math
import os
import posixpath
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

from . import logging_setup
from .errors import SettingsError
from .records import NSFW_LEVELS

logger = logging.getLogger(__name__)

SETTINGS_ENV = "CIVITAI_GALLERY_SETTINGS"
METADATA_FORMATS: Tuple[str, ...] = ("json", "txt", "exif")
DUPLICATE_POLICIES: Tuple[str, ...] = ("skip", "replace", "keep_both")
REDACTED = "***"
_MISSING = object()


def repo_root() -> str:
    """The repository (extension) folder: the parent of ``scripts/``."""
    return str(Path(__file__).resolve().parents[2])


# ----------------------------------------------------------------------------------------------
# Validators: each takes (key, value) and returns the normalized value or raises SettingsError.


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_bounds(key: str, value: float, lo: Optional[float], hi: Optional[float]) -> None:
    if lo is not None and value < lo:
        raise SettingsError(f"Setting '{key}' must be at least {lo}, got {value}.")
    if hi is not None and value > hi:
        raise SettingsError(f"Setting '{key}' must be at most {hi}, got {value}.")


def _int(lo: Optional[int] = None, hi: Optional[int] = None) -> Callable[[str, Any], int]:
    def validate(key: str, value: Any) -> int:
        if isinstance(value, bool):
            raise SettingsError(f"Setting '{key}' must be a whole number, got a boolean ({value}).")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # sliders and JSON writers sometimes give 5.0
        if not isinstance(value, int):
            raise SettingsError(
                f"Setting '{key}' must be a whole number, got {_type_name(value)} {value!r}."
            )
        _check_bounds(key, value, lo, hi)
        return value

    return validate


def _float(lo: Optional[float] = None, hi: Optional[float] = None) -> Callable[[str, Any], float]:
    def validate(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(
                f"Setting '{key}' must be a number, got {_type_name(value)} {value!r}."
            )
        value = float(value)
        if not math.isfinite(value):
            raise SettingsError(f"Setting '{key}' must be a finite number, got {value}.")
        _check_bounds(key, value, lo, hi)
        return value

    return validate


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(
            f"Setting '{key}' must be true or false, got {_type_name(value)} {value!r}."
        )
    return value


def _text(allow_empty: bool = True, max_len: int = 4096) -> Callable[[str, Any], str]:
    def validate(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise SettingsError(f"Setting '{key}' must be text, got {_type_name(value)} {value!r}.")
        value = value.strip()
        if not value and not allow_empty:
            raise SettingsError(f"Setting '{key}' must not be empty.")
        if len(value) > max_len:
            raise SettingsError(f"Setting '{key}' is longer than {max_len} characters.")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise SettingsError(f"Setting '{key}' must not contain control characters.")
        return value

    return validate


def _base_url(key: str, value: Any) -> str:
    value = _text(allow_empty=False)(key, value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"Setting '{key}' must be an http(s) address such as https://civitai.com, "
            f"got {value!r}."
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SettingsError(
            f"Setting '{key}' must be a plain origin such as https://civitai.com "
            "(no query, fragment or credentials)."
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError(f"Setting '{key}' has an invalid port: {value!r}.") from None
    return value.rstrip("/")


def _api_key(key: str, value: Any) -> str:
    if not isinstance(value, str):
        # Never echo the value: it is a secret.
        raise SettingsError(f"Setting '{key}' must be text, got {_type_name(value)}.")
    value = value.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise SettingsError(
            f"Setting '{key}' must be a single token without spaces or control characters; "
            "copy the key again from your Civitai account settings."
        )
    if len(value) > 512:
        raise SettingsError(f"Setting '{key}' is too long to be a Civitai API key.")
    return value


def _path_template(key: str, value: Any) -> str:
    value = _text(allow_empty=False)(key, value)
    from .paths import PathTemplate  # paths does not import setting: no cycle

    try:
        PathTemplate(value)
    except ValueError as exc:  # TemplateError
        raise SettingsError(f"Setting '{key}': {exc}") from exc
    return value


def _split_items(key: str, value: Any) -> List[str]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple, builtins.set, frozenset)):
        items = list(value)
    else:
        raise SettingsError(
            f"Setting '{key}' must be a list or comma-separated text, "
            f"got {_type_name(value)} {value!r}."
        )
    out = []
    for item in items:
        if not isinstance(item, str):
            raise SettingsError(
                f"Setting '{key}' must contain only text, got {_type_name(item)} {item!r}."
            )
        item = item.strip()
        if item:
            out.append(item)
    return out


def _metadata_format(key: str, value: Any) -> str:
    wanted = builtins.set()
    for item in _split_items(key, value):
        low = item.lower()
        if low not in METADATA_FORMATS:
            raise SettingsError(
                f"Setting '{key}': unknown metadata format {item!r}; "
                f"choose from {', '.join(METADATA_FORMATS)}."
            )
        wanted.add(low)
    if not wanted:
        raise SettingsError(
            f"Setting '{key}' needs at least one of {', '.join(METADATA_FORMATS)} "
            "(turn images.save_metadata off to save no metadata)."
        )
    return ",".join(fmt for fmt in METADATA_FORMATS if fmt in wanted)


def _nsfw_filter(key: str, value: Any) -> List[str]:
    by_lower = {level.lower(): level for level in NSFW_LEVELS}
    wanted = builtins.set()
    for item in _split_items(key, value):
        level = by_lower.get(item.lower())
        if level is None:
            raise SettingsError(
                f"Setting '{key}': unknown NSFW level {item!r}; "
                f"choose from {', '.join(NSFW_LEVELS)}."
            )
        wanted.add(level)
    if not wanted:
        raise SettingsError(
            f"Setting '{key}' needs at least one NSFW level ({', '.join(NSFW_LEVELS)})."
        )
    return [level for level in NSFW_LEVELS if level in wanted]


_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×,]\s*(\d+)\s*$")


def _thumbnail_size(key: str, value: Any) -> Tuple[int, int]:
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise SettingsError(
                f"Setting '{key}' must look like 256x256 (width x height), got {value!r}."
            )
        value = (int(match.group(1)), int(match.group(2)))
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SettingsError(
            f"Setting '{key}' must be a (width, height) pair or text like 256x256, got {value!r}."
        )
    check = _int(16, 4096)
    return (check(key, value[0]), check(key, value[1]))


def _duplicate_policy(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"Setting '{key}' must be text, got {_type_name(value)} {value!r}.")
    norm = value.strip().lower().replace("-", "_").replace(" ", "_")
    if norm not in DUPLICATE_POLICIES:
        raise SettingsError(
            f"Setting '{key}' must be one of {', '.join(DUPLICATE_POLICIES)}, got {value!r}."
        )
    return norm


# ----------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class SettingSpec:
    """One setting: what it is, its default and how a value is checked.

    ``type`` is one of ``int``, ``float``, ``bool``, ``str``, ``list``, ``tuple`` (the JSON file
    stores lists and tuples as arrays). ``choices`` lists the allowed values (for ``list`` and the
    comma-separated ``images.metadata_format``: the allowed items). ``env`` names the environment
    variable that overrides the setting, ``secret`` marks values never shown or saved by default.
    """

    key: str
    default: Any
    type: str
    description: str
    validator: Callable[[str, Any], Any]
    choices: Optional[Tuple[str, ...]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    secret: bool = False
    env: Optional[str] = None

    @property
    def attribute(self) -> str:
        """The module attribute name: ``images.output_path`` -> ``images_output_path``."""
        return self.key.replace(".", "_")

    def validate(self, value: Any) -> Any:
        return self.validator(self.key, value)


def _spec_int(key, default, description, lo=None, hi=None) -> SettingSpec:
    return SettingSpec(key, default, "int", description, _int(lo, hi), min=lo, max=hi)


def _spec_float(key, default, description, lo=None, hi=None) -> SettingSpec:
    return SettingSpec(key, float(default), "float", description, _float(lo, hi), min=lo, max=hi)


def _spec_bool(key, default, description) -> SettingSpec:
    return SettingSpec(key, default, "bool", description, _bool)


def _build_specs() -> Dict[str, SettingSpec]:
    specs = [
        _spec_float(
            "http_timeout",
            30,
            "Seconds to wait for the server to send data (read timeout).",
            1,
            600,
        ),
        _spec_float(
            "http_connect_timeout", 10, "Seconds to wait for a connection to be made.", 1, 300
        ),
        _spec_int(
            "http_max_retries",
            5,
            "Retries for connection errors, 429 and 5xx answers before giving up.",
            0,
            20,
        ),
        _spec_float(
            "http_backoff_factor",
            0.5,
            "Base of the exponential wait between retries, in seconds (with jitter).",
            0,
            60,
        ),
        _spec_float(
            "http_retry_after_cap",
            120,
            "Longest wait in seconds honoured from a server's Retry-After header.",
            0,
            3600,
        ),
        SettingSpec(
            "civitai_base_url",
            "https://civitai.com",
            "str",
            "Civitai address (API origin). The CIVITAI_BASE_URL environment variable overrides it.",
            _base_url,
            env="CIVITAI_BASE_URL",
        ),
        SettingSpec(
            "civitai_api_key",
            "",
            "str",
            "Civitai API key, needed for some content. Kept out of logs and, unless asked, out of "
            "the settings file; prefer the CIVITAI_API_KEY environment variable.",
            _api_key,
            secret=True,
            env="CIVITAI_API_KEY",
        ),
        _spec_int(
            "gallery_download_batch_size", 5, "Images downloaded per batch by the gallery.", 1, 100
        ),
        _spec_float(
            "gallery_download_timeout",
            30,
            "Seconds the gallery waits for one image download.",
            1,
            600,
        ),
        _spec_int(
            "gallery_max_concurrent_downloads",
            3,
            "Simultaneous image downloads started by the gallery.",
            1,
            16,
        ),
        _spec_int("gallery_page_size", 40, "Images shown per gallery page.", 1, 200),
        SettingSpec(
            "gallery_cache_path",
            os.path.join(repo_root(), "data", "gallery_cache"),
            "str",
            "Folder for the gallery's cached preview images.",
            _text(allow_empty=False),
        ),
        SettingSpec(
            "images.output_path",
            "./images",
            "str",
            "Base folder where downloaded images are saved.",
            _text(allow_empty=False),
        ),
        SettingSpec(
            "images.path_template",
            "{model_id}/{id}",
            "str",
            "Where each image goes under the output folder, without extension. Fields: {model_id} "
            "{model_name} {version_id} {id} {image_id} {creator} {nsfw_level} {post_id}.",
            _path_template,
        ),
        SettingSpec(
            "images.metadata_format",
            "json",
            "str",
            "Metadata formats to write, comma-separated: json, txt, exif.",
            _metadata_format,
            choices=METADATA_FORMATS,
        ),
        _spec_bool("images.save_metadata", True, "Save each image's generation data."),
        SettingSpec(
            "images.default_nsfw_filter",
            ["None", "Soft"],
            "list",
            "NSFW levels downloaded when none are given: any of None, Soft, Mature, X.",
            _nsfw_filter,
            choices=NSFW_LEVELS,
        ),
        _spec_int("images.max_concurrent", 5, "Simultaneous image downloads.", 1, 32),
        _spec_bool("images.skip_existing", True, "Skip images that were already downloaded."),
        _spec_bool("images.generate_thumbnails", False, "Make a thumbnail for each image."),
        SettingSpec(
            "images.thumbnail_size",
            (256, 256),
            "tuple",
            "Thumbnail size (width, height) in pixels, 16 to 4096; text like 256x256 is accepted.",
            _thumbnail_size,
            min=16,
            max=4096,
        ),
        SettingSpec(
            "images.duplicate_policy",
            "skip",
            "str",
            "What to do when a downloaded image has the same content as one already saved: "
            "skip, replace or keep_both.",
            _duplicate_policy,
            choices=DUPLICATE_POLICIES,
        ),
        _spec_int(
            "images.min_free_space_mb",
            200,
            "Refuse to start a batch when the output disk has less free space than this (MB).",
            0,
            10_000_000,
        ),
    ]
    return {spec.key: spec for spec in specs}


SPECS: Dict[str, SettingSpec] = _build_specs()
_ATTRIBUTES: Dict[str, str] = {spec.attribute: key for key, spec in SPECS.items()}
_ENV_KEYS: Dict[str, str] = {spec.env: key for key, spec in SPECS.items() if spec.env}

# ----------------------------------------------------------------------------------------------
# State

_lock = threading.RLock()
_values: Dict[str, Any] = {}  # explicitly set / loaded values (validated); defaults otherwise
_revision = 0
_env_seen: Dict[str, Optional[str]] = {}


def _spec(key: str) -> SettingSpec:
    try:
        return SPECS[key]
    except KeyError:
        raise SettingsError(
            f"Unknown setting '{key}'. Known settings: {', '.join(sorted(SPECS))}."
        ) from None


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
    current = {name: os.environ.get(name) for name in _ENV_KEYS}
    if current != _env_seen:
        if _env_seen:
            _revision += 1
        _env_seen.clear()
        _env_seen.update(current)


def get(key: str) -> Any:
    """The effective value of ``key``: environment override, else set/loaded value, else default."""
    spec = _spec(key)
    env = _env_value(spec)
    if env is not _MISSING:
        return env
    with _lock:
        return _copy(_values.get(key, spec.default))


def source(key: str) -> str:
    """Where the effective value of ``key`` comes from: ``env``, ``set`` or ``default``."""
    spec = _spec(key)
    if _env_value(spec) is not _MISSING:
        return "env"
    with _lock:
        return "set" if key in _values else "default"


def _validate_mapping(mapping: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(mapping, Mapping):
        raise SettingsError(
            f"Settings must be a mapping of setting names to values, got {_type_name(mapping)}."
        )
    return {key: _spec(key).validate(value) for key, value in mapping.items()}


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
    if SPECS[key].env and os.environ.get(SPECS[key].env):
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
    try:
        with open(path, "r", encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        logger.debug("No settings file at %s; using defaults.", path)
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
    try:
        validated = _validate_mapping(data)
    except SettingsError as exc:
        raise SettingsError(f"{exc} (in the settings file {path})") from None
    with _lock:
        _apply_locked(validated, replace_all=True)
    logger.info("Loaded %d settings from %s.", len(validated), path)
    return path


def _to_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def save(path: Optional[str] = None, include_secrets: bool = False) -> str:
    """Write the set/loaded values (defaults for the rest) to ``path`` atomically; returns the path.

    Environment overrides are not written (they belong to the environment). The API key is left out
    unless ``include_secrets=True``; the file is then made readable by its owner only.
    """
    path = os.path.abspath(path or settings_path())
    with _lock:
        data = {}
        for key, spec in SPECS.items():
            if spec.secret and not include_secrets:
                continue
            data[key] = _to_json(_values.get(key, spec.default))
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
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
        if include_secrets:
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
    logger.info("Saved settings to %s.", path)
    return path


def _fsync_dir(folder: str) -> None:
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


# ----------------------------------------------------------------------------------------------
# Gallery cache

MEDIA_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif", ".mp4", ".webm", ".mov")
DEFAULT_CACHE_EXTENSION = ".jpeg"
_SAFE_STEM_RE = re.compile(r"[^A-Za-z0-9_-]+")


def get_image_url_to_gallery_file(url: str) -> str:
    """The gallery cache file for an image URL.

    The name is ``<stem>_<hash>.<ext>``: ``hash`` is the SHA-256 of the URL's path (stable between
    runs and hosts, different for different sizes of the same image), ``stem`` a sanitized part of
    the URL's file name for readability, ``ext`` the URL file name's real extension when it is a
    media type (``.jpeg``, ``.png``, ``.webp``, ``.mp4``...), else ``.jpeg``.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("An image URL is needed to find its gallery cache file.")
    path = urlsplit(url.strip()).path or "/"
    digest = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    name = posixpath.basename(unquote(path))
    stem, ext = posixpath.splitext(name)
    ext = ext.lower()
    if ext not in MEDIA_EXTENSIONS:
        ext = DEFAULT_CACHE_EXTENSION
    stem = _SAFE_STEM_RE.sub("_", stem).strip("_-")[:40] or "image"
    return os.path.join(get("gallery_cache_path"), f"{stem}_{digest}{ext}")


# ----------------------------------------------------------------------------------------------
# PEP 562 attribute access


def __getattr__(name: str) -> Any:
    key = _ATTRIBUTES.get(name)
    if key is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return get(key)


def __dir__() -> Iterable[str]:
    return sorted(list(globals()) + list(_ATTRIBUTES))

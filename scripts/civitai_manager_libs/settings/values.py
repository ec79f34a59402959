"""Value checking for settings: each validator takes (key, value) and returns the clean value."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import SettingsError
from ..records import NSFW_LEVELS
from ..util import url_gate
from ..util.logging_setup import redact

METADATA_FORMATS: Tuple[str, ...] = ("json", "txt", "exif")
DUPLICATE_POLICIES: Tuple[str, ...] = ("skip", "replace", "keep_both")

Validator = Callable[[str, Any], Any]


def type_name(value: Any) -> str:
    return type(value).__name__


def check_bounds(key: str, value: float, lo: Optional[float], hi: Optional[float]) -> None:
    if lo is not None and value < lo:
        raise SettingsError(f"Setting '{key}' must be at least {lo}, got {value}.")
    if hi is not None and value > hi:
        raise SettingsError(f"Setting '{key}' must be at most {hi}, got {value}.")


def int_validator(lo: Optional[int] = None, hi: Optional[int] = None) -> Callable[[str, Any], int]:
    def validate(key: str, value: Any) -> int:
        if isinstance(value, bool):
            raise SettingsError(f"Setting '{key}' must be a whole number, got a boolean ({value}).")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # sliders and JSON writers sometimes give 5.0
        if not isinstance(value, int):
            raise SettingsError(
                f"Setting '{key}' must be a whole number, got {type_name(value)} {value!r}."
            )
        check_bounds(key, value, lo, hi)
        return value

    return validate


def float_validator(
    lo: Optional[float] = None, hi: Optional[float] = None
) -> Callable[[str, Any], float]:
    def validate(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(
                f"Setting '{key}' must be a number, got {type_name(value)} {value!r}."
            )
        value = float(value)
        if not math.isfinite(value):
            raise SettingsError(f"Setting '{key}' must be a finite number, got {value}.")
        check_bounds(key, value, lo, hi)
        return value

    return validate


def validate_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(
            f"Setting '{key}' must be true or false, got {type_name(value)} {value!r}."
        )
    return value


def text_validator(allow_empty: bool = True, max_len: int = 4096) -> Callable[[str, Any], str]:
    def validate(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise SettingsError(f"Setting '{key}' must be text, got {type_name(value)} {value!r}.")
        value = value.strip()
        if not value and not allow_empty:
            raise SettingsError(f"Setting '{key}' must not be empty.")
        if len(value) > max_len:
            raise SettingsError(f"Setting '{key}' is longer than {max_len} characters.")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise SettingsError(f"Setting '{key}' must not contain control characters.")
        return value

    return validate


def validate_base_url(key: str, value: Any) -> str:
    value = text_validator(allow_empty=False)(key, value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"Setting '{key}' must be an http(s) address such as https://civitai.com, "
            f"got {redact(value)!r}."
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
    return url_gate.check_base_url(value, f"Setting '{key}'")  # the one gate for base URLs


def validate_api_key(key: str, value: Any) -> str:
    if not isinstance(value, str):
        # Never echo the value: it is a secret.
        raise SettingsError(f"Setting '{key}' must be text, got {type_name(value)}.")
    value = value.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise SettingsError(
            f"Setting '{key}' must be a single token without spaces or control characters; "
            "copy the key again from your Civitai account settings."
        )
    if len(value) > 512:
        raise SettingsError(f"Setting '{key}' is too long to be a Civitai API key.")
    return value


def validate_path_template(key: str, value: Any) -> str:
    value = text_validator(allow_empty=False)(key, value)
    from ..store.paths import PathTemplate  # paths does not import setting: no cycle

    try:
        PathTemplate(value)
    except ValueError as exc:  # TemplateError
        raise SettingsError(f"Setting '{key}': {exc}") from exc
    return value


def split_items(key: str, value: Any) -> List[str]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise SettingsError(
            f"Setting '{key}' must be a list or comma-separated text, "
            f"got {type_name(value)} {value!r}."
        )
    out = []
    for item in items:
        if not isinstance(item, str):
            raise SettingsError(
                f"Setting '{key}' must contain only text, got {type_name(item)} {item!r}."
            )
        item = item.strip()
        if item:
            out.append(item)
    return out


def validate_metadata_format(key: str, value: Any) -> str:
    wanted = set()
    for item in split_items(key, value):
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


def validate_nsfw_filter(key: str, value: Any) -> List[str]:
    by_lower = {level.lower(): level for level in NSFW_LEVELS}
    wanted = set()
    for item in split_items(key, value):
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


def validate_thumbnail_size(key: str, value: Any) -> Tuple[int, int]:
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
    check = int_validator(16, 4096)
    return (check(key, value[0]), check(key, value[1]))


def validate_duplicate_policy(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"Setting '{key}' must be text, got {type_name(value)} {value!r}.")
    norm = value.strip().lower().replace("-", "_").replace(" ", "_")
    if norm not in DUPLICATE_POLICIES:
        raise SettingsError(
            f"Setting '{key}' must be one of {', '.join(DUPLICATE_POLICIES)}, got {value!r}."
        )
    return norm

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


#: Languages of the tab (``localizations/<code>.json``); "" and "en" mean English.
UI_LANGUAGES = ("en", "zh_TW", "zh_CN", "ja_JP", "ko_KR")


def validate_ui_language(key: str, value: Any) -> str:
    """One of :data:`UI_LANGUAGES` ("" is English); ``zh-tw`` is accepted for ``zh_TW``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SettingsError(f"Setting '{key}' must be text, got {type_name(value)} {value!r}.")
    norm = value.strip().replace("-", "_")
    if not norm:
        return ""
    for code in UI_LANGUAGES:
        if norm.lower() == code.lower():
            return code
    raise SettingsError(f"Setting '{key}' must be one of {', '.join(UI_LANGUAGES)}, got {value!r}.")


# -- pacing (transport/pacing.py): --sleep-request / http_sleep_request, --limit-rate /
# images.limit_rate -------------------------------------------------------------------------------

JITTER = 0.2  # a single interval X waits X to X * (1 + JITTER)
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)\s*(?:/s)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_interval(value: Any) -> Optional[Tuple[float, float]]:
    """``"2"`` / ``2.5`` / ``"2-5"`` -> (low, high) seconds; None for 0 or empty (no pacing)."""
    if value in (None, "", 0, 0.0):
        return None
    text = str(value).strip()
    low_text, dash, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if dash else low * (1 + JITTER)
    except ValueError:
        raise SettingsError(
            f"--sleep-request takes seconds, e.g. 1.5 or 2-5, got {text!r}."
        ) from None
    if low < 0 or high < low or high > 3600:
        raise SettingsError(f"--sleep-request {text!r}: 0 to 3600 seconds, the lower first.")
    return None if high == 0 else (low, high)


def parse_rate(value: Any) -> Optional[float]:
    """``"2M"`` / ``"500k"`` / ``1048576`` -> bytes per second (1024-based units, as gallery-dl);
    None for 0 or empty (no limit)."""
    if value in (None, "", 0):
        return None
    match = _RATE_RE.match(str(value))
    if not match:
        raise SettingsError(
            f"--limit-rate takes bytes per second, e.g. 500k or 2M, got {str(value)!r}."
        )
    rate = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if rate and rate < 1024:
        raise SettingsError(f"--limit-rate {value!r} is below 1k per second.")
    return rate or None


def validate_sleep_request(key: str, value: Any) -> str:
    parse_interval(value)
    return str(value or "0").strip()


def validate_rate(key: str, value: Any) -> str:
    parse_rate(value)
    return str(value or "").strip()

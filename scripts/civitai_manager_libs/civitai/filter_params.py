"""The images endpoint's filters as a user writes them (``username=name&sort=Newest``): known
keys in their canonical spelling, values checked, the keys the listing sets itself refused."""

from __future__ import annotations

from typing import Any, Dict, Optional
from urllib.parse import unquote

from ..errors import InvalidQueryError
from .query_target import parse_id, show, validate_username

# Filter keys the images endpoint understands, by lower-case spelling -> canonical spelling.
ID_KEYS = ("modelId", "modelVersionId", "postId", "imageId", "userId")

_CHOICE_KEYS: Dict[str, tuple] = {
    "sort": (
        "Most Reactions",
        "Most Comments",
        "Most Collected",
        "Newest",
        "Oldest",
        "Random",
    ),
    "period": ("Day", "Week", "Month", "Year", "AllTime"),
    "nsfw": ("None", "Soft", "Mature", "X", "true", "false"),
    "type": ("image", "video", "audio"),
}

_TEXT_KEYS = ("baseModels", "tags")

ID_NAMES = {
    "modelId": "model",
    "modelVersionId": "model version",
    "postId": "post",
    "imageId": "image",
    "userId": "user",
}

_CONTROLLED_KEYS = ("limit", "cursor", "page", "withmeta")

FILTER_KEYS = ID_KEYS + ("username",) + tuple(_CHOICE_KEYS) + _TEXT_KEYS

_CANONICAL = {key.lower(): key for key in FILTER_KEYS}


def parse_filter(text: str) -> Optional[Dict[str, Any]]:
    """The validated params of ``key=value&...`` (None when it holds no pair)."""
    pairs = []
    for chunk in text.split("&"):
        if not chunk.strip():
            continue
        key, sep, value = chunk.partition("=")
        if not sep or not key.strip():
            raise InvalidQueryError(
                f"The filter part {show(chunk)} is not 'key=value'; write filters as "
                "'username=name&sort=Newest'."
            )
        pairs.append((unquote(key.strip().replace("+", " ")), unquote(value.replace("+", " "))))
    if not pairs:
        return None
    params: Dict[str, Any] = {}
    for key, value in pairs:
        canonical = canonical_key(key)
        if canonical in params:
            raise InvalidQueryError(f"The filter {canonical!r} is given twice; keep one.")
        params[canonical] = filter_value(canonical, value.strip())
    return params


def canonical_key(key: str) -> str:
    lowered = key.lower()
    if lowered in _CONTROLLED_KEYS:
        raise InvalidQueryError(
            f"The filter {key!r} is set by the downloader itself (it pages with cursors and asks "
            "200 images at a time); remove it and use the limit option instead."
        )
    canonical = _CANONICAL.get(lowered)
    if canonical is None:
        raise InvalidQueryError(
            f"Unknown filter {show(key)}; use one of: {', '.join(FILTER_KEYS)}. "
            "(An unknown filter would be ignored by Civitai and list far more than you meant.)"
        )
    return canonical


def filter_value(key: str, value: str) -> Any:
    if key in ID_KEYS:
        return parse_id(value, ID_NAMES[key])
    if key == "username":
        return validate_username(value)
    if key in _CHOICE_KEYS:
        choices = _CHOICE_KEYS[key]
        for choice in choices:
            if choice.lower() == value.lower():
                return choice
        raise InvalidQueryError(
            f"The filter {key}={show(value)} is not allowed; use one of: {', '.join(choices)}."
        )
    if not value or any(ord(ch) < 32 for ch in value):
        raise InvalidQueryError(f"The filter {key} needs a plain text value, got {show(value)}.")
    return value

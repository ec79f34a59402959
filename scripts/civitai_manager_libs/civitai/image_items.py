"""Turns raw Civitai image items into :class:`records.ImageItem` (meta, id, NSFW level name).

``meta`` is unwrapped from the ``{"id", "meta"}`` shape, the id is read from the URL's file name
when the item has none, and the level (a name or a browsing-level number) becomes one of
``NSFW_LEVELS``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ..errors import InvalidResponseError
from .image_urls import image_id_from_url
from ..records import NSFW_LEVELS, ImageItem
from ..util.json_depth import depth_of

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1  # the largest id the archive (SQLite INTEGER) can hold
MAX_ITEM_DEPTH = 64  # deeper items are malformed (a real one is under 10 levels)
_SHOWN = 40  # characters of a malformed value quoted in a reason

Rejected = List[Tuple[Any, str]]  # (the item's id as listed, or None; why it was skipped)


class MalformedItemError(InvalidResponseError):
    """One listed item cannot be used; ``listed_id`` is its id as the server sent it (shortened
    text when it is not a usable number, None when absent)."""

    def __init__(self, message: str, listed_id: Any = None):
        super().__init__(message)
        self.listed_id = listed_id


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _listed_id(value: Any) -> Any:
    """An id as listed, for a report: the number when it is a usable one, else short text."""
    number = int_or_none(value)
    if number is not None and 0 < number <= MAX_ID:
        return number
    return None if value is None else _shown(value)


def int_or_none(value: Any) -> Optional[int]:
    """``value`` as an int when it is one or a string of ASCII digits (never a bool), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if (
        isinstance(value, str)
        and len(value) <= 40
        and value.strip().isascii()
        and value.strip().isdigit()
    ):
        return int(value.strip())
    return None


def _text(value: Any) -> Optional[str]:
    """A text field as listed, or None when it is not text (a hostile list, number, object)."""
    return value if isinstance(value, str) else None


def stored_int(value: Any) -> Optional[int]:
    """:func:`int_or_none` limited to what the archive can store (``|n| <= 2**63 - 1``)."""
    number = int_or_none(value)
    return number if number is not None and -MAX_ID <= number <= MAX_ID else None


def _image_id(item: Mapping[str, Any], url: str) -> int:
    """The item's id: its ``id`` (a positive number the archive can hold), else the number its
    URL's file name carries; MalformedItemError otherwise."""
    raw = item.get("id")
    if raw is not None:
        number = int_or_none(raw)
        if number is None or not 0 < number <= MAX_ID:
            raise MalformedItemError(
                f"Civitai listed an image with the id {_shown(raw)}, which is not a usable "
                "image id; it was skipped.",
                _listed_id(raw),
            )
        return number
    number = image_id_from_url(url)
    if number is None or not 0 < number <= MAX_ID:
        raise MalformedItemError(
            "Civitai listed an image without an id (and its URL names none); it was skipped "
            "so it cannot overwrite another image's file."
        )
    return number


def username_text(value: Any) -> Optional[str]:
    """A username as text: all-digit usernames arrive as JSON numbers (``20250101``)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def item_level(item: Mapping[str, Any]) -> str:
    """An item's NSFW level as one of ``NSFW_LEVELS``.

    Reads ``nsfwLevel`` (a name, or a browsing-level number as the models endpoint sends it), then
    ``browsingLevel``, then the ``nsfw`` flag. An item whose level cannot be read counts as ``X``,
    so an unknown rating is never shown to someone who asked for safe images only.
    """
    for key in ("nsfwLevel", "browsingLevel"):
        value = item.get(key)
        if isinstance(value, str):
            by_lower = {level.lower(): level for level in NSFW_LEVELS}
            if value.strip().lower() in by_lower:
                return by_lower[value.strip().lower()]
            if value.strip().lower() == "blocked":  # never shown as a safer level
                return "X"
            if value.strip().isdigit():
                value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if value >= 8:
                return "X"
            if value >= 4:
                return "Mature"
            return "Soft" if value >= 2 else "None"
    if item.get("nsfw") is False:
        return "None"
    log.debug("image %s has no readable NSFW level; treating it as X", item.get("id"))
    return "X"


def unwrap_meta(meta: Any) -> Optional[Dict[str, Any]]:
    """``meta`` as a plain dict (or None): unwraps the ``{"id": .., "meta": {..}}`` shape."""
    while isinstance(meta, dict) and "meta" in meta and set(meta) <= {"id", "meta"}:
        meta = meta["meta"]
    if meta is None or isinstance(meta, dict):
        return meta
    log.debug("ignoring meta of unexpected type %s", type(meta).__name__)
    return None


def to_image_item(
    item: Mapping[str, Any], context: Optional[Mapping[str, Any]] = None
) -> ImageItem:
    """Convert one API item to an :class:`ImageItem`.

    ``context`` may carry ``model_id``, ``model_name``, ``version_id``, ``version_name`` (the query
    the item was listed under). Raises InvalidResponseError when the item has no usable URL.
    """
    if not isinstance(item, Mapping):
        raise MalformedItemError(
            f"Civitai listed an image as {type(item).__name__} instead of an object; "
            "the API may have changed, try again later."
        )
    if depth_of(item, MAX_ITEM_DEPTH) > MAX_ITEM_DEPTH:
        raise MalformedItemError(
            f"Civitai listed image {_shown(item.get('id'))} with data nested more than "
            f"{MAX_ITEM_DEPTH} levels deep; it was skipped.",
            _listed_id(item.get("id")),
        )
    url = item.get("url")
    if not isinstance(url, str) or not url.strip():
        raise MalformedItemError(
            f"Civitai listed image {_shown(item.get('id'))} without a URL; it cannot be "
            "downloaded.",
            _listed_id(item.get("id")),
        )
    ctx = dict(context or {})
    raw = dict(item)
    meta = unwrap_meta(item.get("meta"))
    if "meta" in raw:
        raw["meta"] = meta
    image_id = _image_id(item, url)
    user_value = item.get("user")
    user: Mapping[str, Any] = user_value if isinstance(user_value, Mapping) else {}
    stats = item.get("stats")
    return ImageItem(
        id=image_id,
        url=url,
        width=stored_int(item.get("width")),
        height=stored_int(item.get("height")),
        type=_text(item.get("type")) or "image",
        nsfw_level=item_level(item),
        creator=username_text(item.get("username")) or username_text(user.get("username")),
        post_id=stored_int(item.get("postId")),
        created_at=_text(item.get("createdAt")),
        base_model=_text(item.get("baseModel")) or ctx.get("base_model"),
        meta=meta,
        stats=dict(stats) if isinstance(stats, Mapping) else {},
        model_id=stored_int(ctx.get("model_id")),
        model_name=ctx.get("model_name"),
        version_id=stored_int(ctx.get("version_id")),
        version_name=ctx.get("version_name"),
        raw=raw,
    )


def to_image_items(
    items: Iterable[Any],
    context: Optional[Mapping[str, Any]] = None,
    where: str = "skipping an unusable listed image",
    rejected: Optional[Rejected] = None,
) -> Iterator[ImageItem]:
    """Convert items lazily, in order; an unusable one is skipped: logged (``<where>: <why>``),
    and added to ``rejected`` as ``(listed id, reason)`` when a list is given."""
    for raw_item in items:
        try:
            yield to_image_item(raw_item, context)
        except InvalidResponseError as exc:
            log.warning("%s: %s", where, exc)
            if rejected is not None:
                rejected.append((getattr(exc, "listed_id", None), str(exc)))

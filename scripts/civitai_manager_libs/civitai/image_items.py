"""Turns raw Civitai image items into :class:`records.ImageItem` (meta, id, NSFW level name).

``meta`` is unwrapped from the ``{"id", "meta"}`` shape, the id is read from the URL's file name
when the item has none, and the level (a name or a browsing-level number) becomes one of
``NSFW_LEVELS``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional

from ..errors import InvalidResponseError
from .image_urls import image_id_from_url
from ..records import NSFW_LEVELS, ImageItem

log = logging.getLogger(__name__)


def int_or_none(value: Any) -> Optional[int]:
    """``value`` as an int when it is one or a string of ASCII digits (never a bool), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


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
        raise InvalidResponseError(
            f"Civitai listed an image as {type(item).__name__} instead of an object; "
            "the API may have changed, try again later."
        )
    url = item.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidResponseError(
            f"Civitai listed image {item.get('id')!r} without a URL; it cannot be downloaded."
        )
    ctx = dict(context or {})
    raw = dict(item)
    meta = unwrap_meta(item.get("meta"))
    if "meta" in raw:
        raw["meta"] = meta
    image_id = int_or_none(item.get("id"))
    if image_id is None:
        image_id = image_id_from_url(url)
    user = item.get("user") if isinstance(item.get("user"), Mapping) else {}
    stats = item.get("stats")
    return ImageItem(
        id=image_id,
        url=url,
        width=int_or_none(item.get("width")),
        height=int_or_none(item.get("height")),
        type=item.get("type") or "image",
        nsfw_level=item_level(item),
        creator=username_text(item.get("username")) or username_text(user.get("username")),
        post_id=int_or_none(item.get("postId")),
        created_at=item.get("createdAt"),
        base_model=item.get("baseModel") or ctx.get("base_model"),
        meta=meta,
        stats=dict(stats) if isinstance(stats, Mapping) else {},
        model_id=int_or_none(ctx.get("model_id")),
        model_name=ctx.get("model_name"),
        version_id=int_or_none(ctx.get("version_id")),
        version_name=ctx.get("version_name"),
        raw=raw,
    )


def to_image_items(
    items: Iterable[Any],
    context: Optional[Mapping[str, Any]] = None,
    where: str = "skipping an unusable listed image",
) -> Iterator[ImageItem]:
    """Convert items lazily, in order; an unusable one is logged (``<where>: <why>``), skipped."""
    for raw_item in items:
        try:
            yield to_image_item(raw_item, context)
        except InvalidResponseError as exc:
            log.warning("%s: %s", where, exc)

"""``GET /api/v1/images``: parameter validation, filters, NSFW masks, sorting and cursor paging.

Shapes follow Civitai (see /work/shared/civitai-api-notes.md): ``{"items": [...], "metadata":
{"nextCursor", "nextPage"}}`` with both keys absent on the last page; ``page*limit > 1000``
is a 429;
``meta`` is null unless ``withMeta=true`` and wrapped as ``{"id", "meta"}`` on the ``imageId`` path
and for ``modelId`` without ``modelVersionId`` (``flatMeta=true|false`` overrides that).

Late-2026 parameters (Civitai's ``src/pages/api/v1/images/index.ts`` and
``image-search.service.ts``): ``ids=1,2,3`` (a batch by id: one more filter, so hidden and
missing ids are simply absent, the order is the sort's and ``limit`` applies; parsed like zod's
``commaDelimitedNumberArray``: each part through ``Number()``, ``NaN`` is a 400), ``withTags=true``
(each item gets ``tags: [{id, name}]``), ``userId``, ``flatMeta``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from bisect import bisect_left
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlencode

from ..records import BASE_MODELS
from .builders import TAGS
from .dataset import Dataset, FakeImage

NSFW_MASKS: Dict[str, int] = {
    "None": 1,
    "Soft": 3,
    "Mature": 7,
    "X": 31,
    "Blocked": 32,
    "true": 60,  # R + X + XXX + Blocked
    "false": 1,
}
#: Every browsing-level bit: PG=1, PG13=2, R=4, X=8, XXX=16, Blocked=32.
ALL_LEVEL_BITS = 63
PERIOD_DAYS: Dict[str, Optional[int]] = {
    "Day": 1,
    "Week": 7,
    "Month": 30,
    "Year": 365,
    "AllTime": None,
}
TYPES = ("image", "video", "audio")
USERNAME_RE = re.compile(r"[A-Za-z0-9_]*")
MAX_LIMIT = 200
DEFAULT_LIMIT = 100
MAX_PAGE_ITEMS = 1000
PAGE_CAP_MESSAGE = "You've requested too many pages, please use cursors instead"


class ListingError(Exception):
    """A request the real endpoint refuses: ``status`` (400/429) and Civitai's ``error`` text."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _reactions(image: FakeImage) -> int:
    s = image.stats
    return (
        s.get("likeCount", 0)
        + s.get("heartCount", 0)
        + s.get("laughCount", 0)
        + s.get("cryCount", 0)
    )


def _random_rank(image: FakeImage) -> int:
    return int.from_bytes(hashlib.sha256(f"random:{image.id}".encode()).digest()[:6], "big")


# sort name -> (primary value, descending?)
SORTS: Dict[str, Tuple[Callable[[FakeImage], int], bool]] = {
    "Most Reactions": (_reactions, True),
    "Most Comments": (lambda i: i.stats.get("commentCount", 0), True),
    "Most Collected": (lambda i: i.collected, True),
    "Newest": (lambda i: i.created_ms, True),
    "Oldest": (lambda i: i.created_ms, False),
    "Random": (_random_rank, False),
    "Newest id": (lambda i: i.id, True),  # the whole-model path's only order but two
}


def _one(params: Dict[str, List[str]], name: str) -> Optional[str]:
    values = params.get(name)
    return values[-1] if values else None


def _int(params: Dict[str, List[str]], name: str, minimum: int = 0) -> Optional[int]:
    raw = _one(params, name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ListingError(400, f"Invalid {name}: expected a number, received \"{raw}\"") from None
    if value < minimum:
        raise ListingError(400, f"Invalid {name}: must be greater than or equal to {minimum}")
    return value


def _many(params: Dict[str, List[str]], name: str) -> List[str]:
    out: List[str] = []
    for raw in params.get(name, ()):
        out.extend(part for part in raw.split(",") if part)
    return out


def _choice(params: Dict[str, List[str]], name: str, allowed: Sequence[str]) -> Optional[str]:
    raw = _one(params, name)
    if raw is None:
        return None
    if raw not in allowed:
        expected = " | ".join(f"'{a}'" for a in allowed)
        raise ListingError(
            400, f"Invalid enum value for {name}. Expected {expected}, received '{raw}'"
        )
    return raw


_JS_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TRUE = ("true", "1", "yes", "on", "y", "enabled")
_FALSE = ("false", "0", "no", "off", "n", "disabled")


def _ids(params: Dict[str, List[str]]) -> Optional[set]:
    """``ids`` as Civitai's ``commaDelimitedNumberArray`` reads it: split on commas, each part
    trimmed and through JavaScript's ``Number()`` (an empty part is 0); a part that is not a
    number fails the schema (400)."""
    raws = params.get("ids")
    if not raws:
        return None
    wanted = set()
    for raw in raws:
        for index, part in enumerate(raw.split(",")):
            part = part.strip()
            if not part:
                wanted.add(0.0)
            elif _JS_NUMBER.match(part):
                wanted.add(float(part))
            else:
                raise ListingError(
                    400, f"Invalid input: expected number, received NaN (path: ids.{index})"
                )
    return wanted


def _flag(params: Dict[str, List[str]], name: str) -> Optional[bool]:
    """A ``booleanString()`` parameter: zod's ``stringbool`` words, else a 400."""
    raw = _one(params, name)
    if raw is None:
        return None
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ListingError(400, f"Invalid {name}: expected boolean string, received \"{raw}\"")


def _base_models(params: Dict[str, List[str]]) -> set:
    """``baseModels`` (comma list or repeated), checked against Civitai's fixed list as it does."""
    names = set(_many(params, "baseModels"))
    for name in sorted(names):
        if name not in BASE_MODELS:
            raise ListingError(
                400,
                f"Invalid enum value for baseModels. Expected one of Civitai's base models "
                f"('SD 1.5' | 'SDXL 1.0' | 'Pony' | ...), received '{name}'",
            )
    return names


def nsfw_mask(params: Dict[str, List[str]]) -> int:
    """The browsing-level mask of a request: ``browsingLevel`` (a bitmask) when given, it
    overrides ``nsfw``; else the mask Civitai derives from ``nsfw`` (absent/``false``: PG only)."""
    raw = _choice(params, "nsfw", list(NSFW_MASKS))
    level = _int(params, "browsingLevel", minimum=1)
    if level is not None:
        if level > ALL_LEVEL_BITS:
            raise ListingError(
                400, f"Invalid browsingLevel: number must be less than or equal to {ALL_LEVEL_BITS}"
            )
        return level
    return NSFW_MASKS[raw] if raw is not None else 1


def _filtered(dataset: Dataset, params: Dict[str, List[str]]) -> List[FakeImage]:
    version_id = _int(params, "modelVersionId")
    model_id = _int(params, "modelId")
    post_id = _int(params, "postId")
    image_id = _int(params, "imageId")
    user_id = _int(params, "userId")
    ids = _ids(params)
    username = _one(params, "username")
    if username is not None and not USERNAME_RE.fullmatch(username):
        raise ListingError(400, f"Invalid username: \"{username}\" must match ^[A-Za-z0-9_]*$")
    media_type = _choice(params, "type", TYPES)
    base_models = _base_models(params)
    tags = set()
    for raw in _many(params, "tags"):
        try:
            tags.add(int(raw))
        except ValueError:
            raise ListingError(400, f"Invalid tags: expected tag ids, received \"{raw}\"") from None
    period = _choice(params, "period", list(PERIOD_DAYS))
    days = PERIOD_DAYS.get(period) if period else None
    since = dataset.now_ms - days * 86_400_000 if days else None
    mask = nsfw_mask(params)
    ceiling = _int(params, "_ceiling")  # set by the com front: the levels civitai.com serves
    if ceiling:
        mask &= ceiling

    pool: Sequence[FakeImage]
    if image_id is not None:
        found = dataset.image(image_id)
        pool = [found] if found else []
    elif version_id is not None:
        pool = dataset.images_of_version(version_id)
    else:
        pool = dataset.images
    out = []
    for image in pool:
        if version_id is not None and version_id not in image.model_version_ids:
            continue
        if model_id is not None and image.model_id != model_id:
            continue
        if post_id is not None and image.post_id != post_id:
            continue
        if user_id is not None and image.user_id != user_id:
            continue
        if ids is not None and float(image.id) not in ids:
            continue
        if username is not None and image.username.lower() != username.lower():
            continue
        if media_type is not None and (image.type or "image") != media_type:
            continue
        if base_models and image.base_model not in base_models:
            continue
        if tags and not tags.intersection(image.tag_ids):
            continue
        if since is not None and image.created_ms < since:
            continue
        if not (image.browsing_level or 1) & mask:  # unrated (0) items list with PG
            continue
        out.append(image)
    return out


def _sort_key(primary: int, created_ms: int, descending: bool) -> Tuple[int, int]:
    return (-primary, -created_ms) if descending else (primary, created_ms)


def _parse_cursor(raw: str) -> Tuple[str, Tuple[int, int]]:
    """A cursor in any form the fake sends: ``("key", (value, created_ms))`` or
    ``("offset", (n, 0))``. Real cursors are opaque; clients must send them back verbatim."""
    try:
        if raw.startswith("offset|"):
            return "offset", (int(raw[len("offset|") :]), 0)
        if raw.startswith("bdx:"):
            data = json.loads(raw[len("bdx:") :])
            return "key", (int(data["v"]), int(data["c"]))
        if raw.startswith("feed:"):
            raw = base64.urlsafe_b64decode(raw[len("feed:") :].encode("ascii")).decode("ascii")
        if raw.isdigit():  # the old path's cursor: the next item's id
            return "id", (int(raw), 0)
        parts = raw.split("|")
        if len(parts) != 2:
            raise ValueError(raw)
        return "key", (int(parts[0]), int(parts[1]))
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise ListingError(400, f"Invalid cursor: \"{raw}\"") from None


def _make_cursor(form: str, value: int, created_ms: int, start: int) -> Any:
    if form == "id":
        return value  # a JSON number
    if form == "offset":
        return f"offset|{start}"
    if form == "bdx":
        return "bdx:" + json.dumps({"v": value, "c": created_ms}, separators=(",", ":"))
    if form == "feed":
        return "feed:" + base64.urlsafe_b64encode(f"{value}|{created_ms}".encode()).decode()
    return f"{value}|{created_ms}"


#: The cursor form each sort's query path answers with (the whole-model path uses ids).
CURSOR_FORMS = {
    "Most Reactions": "pair",
    "Most Comments": "bdx",
    "Most Collected": "feed",
    "Newest": "pair",
    "Oldest": "pair",
    "Random": "offset",
}


def whole_model_path(params: Dict[str, List[str]]) -> bool:
    """``modelId`` without ``modelVersionId``: Civitai's older query path."""
    return _one(params, "modelId") is not None and _one(params, "modelVersionId") is None


def effective_sort(params: Dict[str, List[str]], sort: str) -> str:
    """The order really applied: the whole-model path orders by newest id for every sort except
    ``Oldest`` and ``Random`` (the reaction sorts are disabled there)."""
    if whole_model_path(params) and sort not in ("Oldest", "Random"):
        return "Newest id"
    return sort


def item_json(
    image: FakeImage,
    image_base_url: str,
    with_meta: bool,
    wrapped: bool,
    with_tags: bool = False,
) -> Dict[str, Any]:
    """One item as the images endpoint sends it (``type`` absent on old items; ``tags`` only
    with ``withTags``)."""
    meta: Any = None
    if with_meta:
        visible = None if image.meta_hidden or image.meta is None else dict(image.meta)
        meta = {"id": image.id, "meta": visible} if wrapped else visible
    item: Dict[str, Any] = {
        "id": image.id,
        "url": image_base_url + image.listed_path,
        "hash": image.blurhash,
        "width": image.width,
        "height": image.height,
        "nsfwLevel": image.nsfw_level,
    }
    if image.type is not None:
        item["type"] = image.type
    item.update(
        {
            "nsfw": image.nsfw,
            "browsingLevel": image.browsing_level,
            "createdAt": image.created_at,
            "postId": image.post_id,
            "stats": dict(image.stats),
            "meta": meta,
            # All-digit usernames come back as JSON numbers (leading zeros lost).
            "username": int(image.username) if image.username.isdigit() else image.username,
            "baseModel": image.base_model,
            "modelVersionIds": list(image.model_version_ids),
        }
    )
    if with_tags:
        item["tags"] = [{"id": t, "name": TAGS.get(t, f"tag {t}")} for t in image.tag_ids]
    return item


def list_images(
    dataset: Dataset, params: Dict[str, List[str]], base_url: str, image_base_url: str
) -> Dict[str, Any]:
    """The JSON body for ``GET /api/v1/images?<params>``; raises :class:`ListingError`."""
    limit = _int(params, "limit")
    limit = DEFAULT_LIMIT if limit is None else limit
    if limit > MAX_LIMIT:
        raise ListingError(400, f"Invalid limit: number must be less than or equal to {MAX_LIMIT}")
    page = _int(params, "page", minimum=1)
    cursor_raw = _one(params, "cursor")
    cursor = _parse_cursor(cursor_raw) if cursor_raw else None
    if cursor is None and page is not None and page * limit > MAX_PAGE_ITEMS:
        raise ListingError(429, PAGE_CAP_MESSAGE)
    sort = effective_sort(params, _choice(params, "sort", list(CURSOR_FORMS)) or "Most Reactions")
    with_meta = (_one(params, "withMeta") or "").lower() == "true"
    with_tags = bool(_flag(params, "withTags"))
    flat = _flag(params, "flatMeta")
    legacy = _one(params, "imageId") is not None or whole_model_path(params)
    wrapped = legacy if flat is None else not flat
    _, descending = SORTS[sort]
    ranked, keys = _ranked(dataset, params, sort)
    form = "id" if sort == "Newest id" else CURSOR_FORMS[sort]
    if cursor is not None and cursor[0] == "offset":
        start = cursor[1][0]
    elif cursor is not None and cursor[0] == "id":
        start = bisect_left(keys, (-cursor[1][0], -(2**62)))
    elif cursor is not None:
        start = bisect_left(keys, _sort_key(cursor[1][0], cursor[1][1], descending))
    elif page is not None:
        start = (page - 1) * limit
    else:
        start = 0
    window = ranked[start : start + limit]
    more = start + limit < len(ranked)
    metadata: Dict[str, Any] = {}
    kept = [(k, v) for k, v in _flat(params) if k not in ("cursor", "page", "_ceiling")]
    if page is not None and cursor is None:
        metadata = {"currentPage": page, "pageSize": limit}
        if more:
            metadata["nextPage"] = (
                f"{base_url}/api/v1/images?{urlencode(kept + [('page', page + 1)])}"
            )
    elif more:
        nxt = ranked[start + limit]
        next_cursor = _make_cursor(form, nxt[1], nxt[2].created_ms, start + limit)
        metadata["nextCursor"] = next_cursor
        metadata["nextPage"] = (
            f"{base_url}/api/v1/images?{urlencode(kept + [('cursor', str(next_cursor))])}"
        )
    return {
        "items": [
            item_json(row[2], image_base_url, with_meta, wrapped, with_tags) for row in window
        ],
        "metadata": metadata,
    }


def _ranked(dataset: Dataset, params: Dict[str, List[str]], sort: str):
    """``(rows, keys)``: the filtered images in ``sort`` order, computed once per filter set."""
    filters = tuple(sorted((k, tuple(v)) for k, v in params.items() if k not in _PAGING_KEYS))

    def produce():
        primary, descending = SORTS[sort]
        rows = []
        for image in _filtered(dataset, params):
            value = primary(image)
            rows.append((_sort_key(value, image.created_ms, descending), value, image))
        rows.sort(key=lambda row: row[0])
        return rows, [row[0] for row in rows]

    return dataset.memo(("images", sort, filters), produce)


_PAGING_KEYS = ("cursor", "page", "limit", "withMeta", "withTags", "flatMeta")


def _flat(params: Dict[str, List[str]]) -> List[Tuple[str, str]]:
    return [(k, v) for k, values in params.items() for v in values]

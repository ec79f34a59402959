"""Listing stage: what exists on Civitai (image pages, models, versions, single images).

Every request goes through the shared transport (``http_client.CivitaiHttpClient.get_json``), which
raises the typed errors of ``errors.py``. This module adds what the endpoints mean:

* ``/api/v1/images`` is paged with cursors only (``page`` is capped by Civitai), 200 items per
  request, always ``withMeta=true`` (otherwise ``meta`` arrives as null), until ``nextCursor`` is
  absent. Items are yielded page by page, so memory stays flat however large the listing.
* The NSFW filter is a set of levels (``None``, ``Soft``, ``Mature``, ``X``). Civitai only knows a
  few masks (``nsfw=None|Soft|Mature|X|true``); the smallest mask covering the set is asked for and
  every item's ``nsfwLevel`` is then checked exactly.
* Items become :class:`records.ImageItem` (``meta`` unwrapped from ``{"id", "meta"}``, the id read
  from the URL's file name when the item has none).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from . import setting
from .errors import InvalidQueryError, InvalidResponseError, NotFoundError
from .logging_setup import redact
from .records import NSFW_LEVELS, ImageItem, ImagePage, ModelInfo, VersionInfo

log = logging.getLogger(__name__)

IMAGES_PATH = "/api/v1/images"
MODELS_PATH = "/api/v1/models/{id}"
VERSIONS_PATH = "/api/v1/model-versions/{id}"
MAX_PAGE_SIZE = 200

# Browsing-level bits (PG=1, PG13=2, R=4, X=8, XXX=16) and the string levels items carry.
_LEVEL_BITS = {"None": 1, "Soft": 2, "Mature": 4, "X": 8 | 16}
# The masks the images endpoint accepts, in the order preferred on a tie.
_MASKS: Tuple[Tuple[str, int], ...] = (
    ("None", 1),
    ("Soft", 1 | 2),
    ("Mature", 1 | 2 | 4),
    ("true", 4 | 8 | 16),
    ("X", 1 | 2 | 4 | 8 | 16),
)
# Parameters this module owns: a caller's values for them are replaced.
_CONTROLLED = ("limit", "cursor", "page", "withMeta", "nsfw")

OnPage = Callable[[Optional[str], Optional[str], int], None]
Levels = Union[str, Iterable[str]]


# -- NSFW levels -----------------------------------------------------------------------------


def normalize_levels(levels: Levels) -> Tuple[str, ...]:
    """Validate a set of NSFW levels; returns them in canonical order and spelling.

    Accepts an iterable of names or one comma-separated string; names are case-insensitive.
    Raises InvalidQueryError for an unknown name or an empty set.
    """
    if isinstance(levels, str):
        names = [part for part in levels.split(",")]
    else:
        names = list(levels)
    by_lower = {level.lower(): level for level in NSFW_LEVELS}
    chosen = set()
    for name in names:
        canonical = by_lower.get(str(name).strip().lower())
        if canonical is None:
            raise InvalidQueryError(
                f"Unknown NSFW level {name!r}; choose among {', '.join(NSFW_LEVELS)}."
            )
        chosen.add(canonical)
    if not chosen:
        raise InvalidQueryError(
            f"No NSFW level chosen, so nothing would be listed; pick at least one of "
            f"{', '.join(NSFW_LEVELS)}."
        )
    return tuple(level for level in NSFW_LEVELS if level in chosen)


def nsfw_param(levels: Levels) -> str:
    """The ``nsfw`` value of the smallest Civitai mask that covers ``levels``.

    "Smallest" counts the levels the mask brings that were not asked for (``true`` = R, X, XXX
    counts as Mature + X); ties go to the SFW-side mask. ``{"None"}`` -> ``None``,
    ``{"None","Soft"}`` -> ``Soft``, ``{"Mature"}`` or ``{"Mature","X"}`` -> ``true``,
    ``{"None","X"}`` -> ``X``.
    """
    wanted = normalize_levels(levels)
    need = 0
    for level in wanted:
        need |= _LEVEL_BITS[level]
    best: Optional[Tuple[int, int, str]] = None
    for order, (name, mask) in enumerate(_MASKS):
        if mask & need != need:
            continue
        extra = sum(1 for lvl, bits in _LEVEL_BITS.items() if lvl not in wanted and mask & bits)
        candidate = (extra, order, name)
        if best is None or candidate < best:
            best = candidate
    assert best is not None  # "X" covers everything
    return best[2]


def levels_of_param(value: Any) -> Tuple[str, ...]:
    """The item levels an ``nsfw`` value given in the caller's params lets through.

    A single Civitai value keeps Civitai's meaning (``Mature`` -> None, Soft, Mature; ``true`` ->
    Mature, X; ``false`` -> None). A list/tuple/set of level names, or a comma-separated string
    of two or more, is an exact set of levels (``["None", "Mature"]`` keeps just those two).
    """
    if isinstance(value, (list, tuple, set, frozenset)) or (
        isinstance(value, str) and "," in value
    ):
        return normalize_levels(value)
    text = str(value).strip().lower()
    for name, mask in _MASKS:
        if name.lower() == text:
            return tuple(lvl for lvl in NSFW_LEVELS if mask & _LEVEL_BITS[lvl])
    if text == "false":
        return ("None",)
    raise InvalidQueryError(
        f"Unknown nsfw filter {value!r}; use None, Soft, Mature, X, true or false, "
        "or a list of levels."
    )


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


# -- item conversion -------------------------------------------------------------------------

_ID_FROM_NAME = re.compile(r"^([0-9]+)(?:\.[A-Za-z0-9]+)?$")


def image_id_from_url(url: str) -> Optional[int]:
    """The image id carried by a Civitai image URL's file name (``.../<id>.jpeg``), if any."""
    try:
        path = urlsplit(url or "").path
    except ValueError:
        return None
    name = path.rstrip("/").rsplit("/", 1)[-1]
    match = _ID_FROM_NAME.match(name)
    return int(match.group(1)) if match else None


def unwrap_meta(meta: Any) -> Optional[Dict[str, Any]]:
    """``meta`` as a plain dict (or None): unwraps the ``{"id": .., "meta": {..}}`` shape."""
    while isinstance(meta, dict) and "meta" in meta and set(meta) <= {"id", "meta"}:
        meta = meta["meta"]
    if meta is None or isinstance(meta, dict):
        return meta
    log.debug("ignoring meta of unexpected type %s", type(meta).__name__)
    return None


def _int_or_none(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
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
    image_id = _int_or_none(item.get("id"))
    if image_id is None:
        image_id = image_id_from_url(url)
    user = item.get("user") if isinstance(item.get("user"), Mapping) else {}
    stats = item.get("stats")
    return ImageItem(
        id=image_id,
        url=url,
        width=_int_or_none(item.get("width")),
        height=_int_or_none(item.get("height")),
        type=item.get("type") or "image",
        nsfw_level=item_level(item),
        creator=item.get("username") or user.get("username"),
        post_id=_int_or_none(item.get("postId")),
        created_at=item.get("createdAt"),
        base_model=item.get("baseModel") or ctx.get("base_model"),
        meta=meta,
        stats=dict(stats) if isinstance(stats, Mapping) else {},
        model_id=_int_or_none(ctx.get("model_id")),
        model_name=ctx.get("model_name"),
        version_id=_int_or_none(ctx.get("version_id")),
        version_name=ctx.get("version_name"),
        raw=raw,
    )


# -- image URLs ------------------------------------------------------------------------------

_PARAM_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^/=]*$")


def _is_params_segment(segment: str) -> bool:
    return bool(segment) and all(_PARAM_PART.match(part) for part in segment.split(","))


def _with_params_segment(url: str, segment: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidQueryError("An image URL is needed to build a download link; got nothing.")
    parts = urlsplit(url.strip())
    segments = parts.path.split("/")
    if len(segments) < 2 or not segments[-1]:
        raise InvalidQueryError(
            f"{redact(url)!r} is not an image URL (it has no file name); copy the image's own "
            "link."
        )
    if len(segments) >= 3 and _is_params_segment(segments[-2]):
        segments[-2] = segment
    else:
        segments.insert(len(segments) - 1, segment)
    return urlunsplit(parts._replace(path="/".join(segments)))


def original_url(url: str) -> str:
    """The URL of the original upload: the ``<params>`` segment becomes ``original=true``.

    Scheme, host, uuid, file name, query string and fragment are kept; a URL without a params
    segment gets one inserted before the file name.
    """
    return _with_params_segment(url, "original=true")


def sized_url(url: str, width: int) -> str:
    """The URL of a re-encoded copy ``width`` pixels wide (``width=N`` params segment)."""
    if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
        raise InvalidQueryError(f"Image width must be a positive number of pixels, got {width!r}.")
    return _with_params_segment(url, f"width={width}")


# -- the API ---------------------------------------------------------------------------------


def describe_params(params: Mapping[str, Any]) -> str:
    """Human wording of an images query, for messages: ``model 1``, ``creator 'x'``."""
    if params.get("imageId") is not None:
        return f"image {params['imageId']}"
    if params.get("modelVersionId") is not None:
        return f"model version {params['modelVersionId']}"
    if params.get("modelId") is not None:
        return f"model {params['modelId']}"
    if params.get("username") is not None:
        return f"creator {str(params['username'])!r}"
    if params.get("postId") is not None:
        return f"post {params['postId']}"
    shown = "&".join(f"{k}={v}" for k, v in params.items() if k not in _CONTROLLED)
    return f"images matching {shown}" if shown else "all images"


def _next_cursor(metadata: Any) -> Optional[str]:
    if not isinstance(metadata, Mapping):
        return None
    cursor = metadata.get("nextCursor")
    if cursor not in (None, ""):
        return str(cursor)
    next_page = metadata.get("nextPage")
    if isinstance(next_page, str) and next_page:
        for key, value in parse_qsl(urlsplit(next_page).query):
            if key == "cursor" and value:
                return value
    return None


class CivitaiAPI:
    """Read-only view of Civitai's public API built on a :class:`CivitaiHttpClient`."""

    def __init__(self, client=None):
        if client is None:
            from .http_client import get_http_client

            client = get_http_client()
        self.client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client={type(self.client).__name__})"

    # -- images listing ---------------------------------------------------------------------

    def _query(
        self, params: Optional[Mapping[str, Any]], nsfw_levels: Optional[Levels]
    ) -> Tuple[Dict[str, Any], Tuple[str, ...], Optional[str]]:
        """Split caller params into (request params, wanted levels, start cursor from params)."""
        given = dict(params or {})
        if nsfw_levels is not None:
            levels = normalize_levels(nsfw_levels)
        elif given.get("nsfw") not in (None, ""):
            levels = levels_of_param(given["nsfw"])
        else:
            levels = normalize_levels(setting.get("images.default_nsfw_filter"))
        cursor = given.get("cursor")
        request = {k: v for k, v in given.items() if k not in _CONTROLLED and v is not None}
        request["withMeta"] = "true"
        request["nsfw"] = nsfw_param(levels)
        return request, levels, (str(cursor) if cursor not in (None, "") else None)

    @staticmethod
    def _context(params: Mapping[str, Any]) -> Dict[str, Any]:
        return {
            "model_id": params.get("modelId"),
            "version_id": params.get("modelVersionId"),
        }

    def _fetch_page(
        self, request: Dict[str, Any], cursor: Optional[str], page_size: int
    ) -> Tuple[List[Any], Optional[str]]:
        query = dict(request)
        query["limit"] = page_size
        if cursor is not None:
            query["cursor"] = cursor
        try:
            body = self.client.get_json(IMAGES_PATH, query)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{describe_params(request)} was not found on Civitai (no images listed); "
                "check the id or name.",
                status=exc.status,
                url=exc.url,
                server_message=exc.server_message,
            ) from exc
        if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
            raise InvalidResponseError(
                f"Civitai answered the image listing for {describe_params(request)} without an "
                "'items' list; the API may have changed or be failing, try again later.",
                url=IMAGES_PATH,
            )
        return body["items"], _next_cursor(body.get("metadata"))

    def iter_images(
        self,
        params: Optional[Mapping[str, Any]] = None,
        nsfw_levels: Optional[Levels] = None,
        limit: int = 0,
        start_cursor: Optional[str] = None,
        on_page: Optional[OnPage] = None,
    ) -> Iterator[ImageItem]:
        """Yield every image matching ``params`` (images-endpoint filters), page by page.

        - Pages with cursors (``start_cursor`` resumes a crawl; a ``cursor`` in ``params`` is used
          when ``start_cursor`` is None) until the server sends no ``nextCursor``; ``page`` is never
          sent. Asks 200 items per request, or ``limit`` when smaller; always ``withMeta=true``.
        - ``nsfw_levels``: levels to keep (default: the ``nsfw`` value in ``params`` as read by
          :func:`levels_of_param`, else the setting ``images.default_nsfw_filter``). The
          smallest covering mask is requested and each item's level is checked exactly.
        - ``limit``: stop after that many items *after* NSFW filtering (0 = no limit).
        - ``on_page(cursor_used, next_cursor, items_count)`` is called when a page has been
          fetched, *before* its items are yielded; ``items_count`` is the number of items the
          server sent on that page (before NSFW filtering); ``cursor_used`` is None for the first
          page. A checkpoint that must survive a crash in the middle of a page should record
          ``cursor_used`` until the page's items are handled, then ``next_cursor``.
        - A server that sends back a cursor already used in this crawl would make the crawl loop
          forever: the items of that page are still yielded, then InvalidResponseError is raised.

        Raises the transport's ApiError family; a 404 is re-raised naming what was listed. An
        unknown username is not an error: Civitai answers an empty list, so nothing is yielded.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidQueryError(
                f"limit must be 0 (no limit) or a positive number, got {limit!r}."
            )
        request, levels, params_cursor = self._query(params, nsfw_levels)
        cursor = start_cursor if start_cursor not in (None, "") else params_cursor
        return self._iterate(request, levels, limit, cursor, on_page)

    def _iterate(
        self,
        request: Dict[str, Any],
        levels: Tuple[str, ...],
        limit: int,
        cursor: Optional[str],
        on_page: Optional[OnPage],
    ) -> Iterator[ImageItem]:
        wanted = set(levels)
        context = self._context(request)
        page_size = min(MAX_PAGE_SIZE, limit) if limit else MAX_PAGE_SIZE
        cursor = str(cursor) if cursor is not None else None
        seen_cursors = {cursor} if cursor is not None else set()
        yielded = listed = pages = 0
        what = describe_params(request)
        while True:
            items, next_cursor = self._fetch_page(request, cursor, page_size)
            pages += 1
            listed += len(items)
            log.debug(
                "images page %d for %s: cursor=%s, %d items, next=%s",
                pages,
                what,
                cursor,
                len(items),
                next_cursor,
            )
            if on_page is not None:
                on_page(cursor, next_cursor, len(items))
            for raw_item in items:
                try:
                    item = to_image_item(raw_item, context)
                except InvalidResponseError as exc:
                    log.warning("skipping an unusable listed image: %s", exc)
                    continue
                if item.nsfw_level not in wanted:
                    continue
                yield item
                yielded += 1
                if limit and yielded >= limit:
                    return
            if next_cursor is None:
                if listed == 0 and "username" in request:
                    log.info("%s has no images on Civitai (or does not exist)", what)
                log.debug("listing of %s finished after %d page(s)", what, pages)
                return
            if next_cursor in seen_cursors:
                raise InvalidResponseError(
                    f"Civitai sent the page cursor {next_cursor!r} a second time while listing "
                    f"{what}; stopped after {pages} page(s) to avoid an endless loop. "
                    "Try again later.",
                    url=IMAGES_PATH,
                )
            seen_cursors.add(next_cursor)
            cursor = next_cursor

    def get_image_page(
        self,
        params: Optional[Mapping[str, Any]] = None,
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
        nsfw_levels: Optional[Levels] = None,
    ) -> ImagePage:
        """One page of images for the gallery (the UI keeps a stack of cursors for "previous").

        ``limit`` defaults to the setting ``gallery_page_size``; items of unwanted NSFW levels are
        dropped, so a page may hold fewer than ``limit`` items.
        """
        if limit is None:
            limit = setting.get("gallery_page_size")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidQueryError(
                f"Page size must be between 1 and {MAX_PAGE_SIZE} images, got {limit!r}."
            )
        request, levels, params_cursor = self._query(params, nsfw_levels)
        if cursor in (None, ""):
            cursor = params_cursor
        cursor = str(cursor) if cursor is not None else None
        items, next_cursor = self._fetch_page(request, cursor, limit)
        context = self._context(request)
        wanted = set(levels)
        kept = []
        for raw_item in items:
            try:
                item = to_image_item(raw_item, context)
            except InvalidResponseError as exc:
                log.warning("skipping an unusable listed image: %s", exc)
                continue
            if item.nsfw_level in wanted:
                kept.append(item)
        if next_cursor is not None and next_cursor == cursor:
            log.warning("Civitai repeated cursor %r; treating this page as the last one", cursor)
            next_cursor = None
        return ImagePage(items=kept, cursor=cursor, next_cursor=next_cursor)

    # -- look-ups ---------------------------------------------------------------------------

    def _get_object(self, path: str, what: str) -> Mapping[str, Any]:
        try:
            body = self.client.get_json(path)
        except NotFoundError as exc:
            raise _not_found(what, exc) from exc
        if not isinstance(body, Mapping) or "id" not in body:
            raise InvalidResponseError(
                f"Civitai answered the request for {what} with something that is not its "
                "description; the API may have changed or be failing, try again later.",
                url=path,
            )
        return body

    def get_model(self, model_id: int) -> ModelInfo:
        """A model with its versions and their showcase images (as ImageItem, without meta)."""
        model_id = _check_id(model_id, "model")
        body = self._get_object(MODELS_PATH.format(id=model_id), f"model {model_id}")
        name = str(body.get("name") or "")
        creator = body.get("creator") if isinstance(body.get("creator"), Mapping) else {}
        tags = [
            tag.get("name") if isinstance(tag, Mapping) else str(tag)
            for tag in body.get("tags") or []
        ]
        versions = [
            self._version(version, model_id=model_id, model_name=name)
            for version in body.get("modelVersions") or []
            if isinstance(version, Mapping) and _int_or_none(version.get("id")) is not None
        ]
        return ModelInfo(
            id=_int_or_none(body.get("id")) or model_id,
            name=name,
            type=body.get("type"),
            nsfw=bool(body.get("nsfw")),
            creator=creator.get("username"),
            tags=[tag for tag in tags if tag],
            versions=versions,
        )

    def get_model_version(self, version_id: int) -> VersionInfo:
        """A model version with its showcase images (these carry ``meta``)."""
        version_id = _check_id(version_id, "model version")
        body = self._get_object(VERSIONS_PATH.format(id=version_id), f"model version {version_id}")
        model = body.get("model") if isinstance(body.get("model"), Mapping) else {}
        return self._version(
            body, model_id=_int_or_none(body.get("modelId")), model_name=model.get("name")
        )

    def _version(
        self, body: Mapping[str, Any], model_id: Optional[int], model_name: Optional[str]
    ) -> VersionInfo:
        version_id = _int_or_none(body.get("id"))
        name = str(body.get("name") or "")
        base_model = body.get("baseModel")
        context = {
            "model_id": model_id,
            "model_name": model_name,
            "version_id": version_id,
            "version_name": name,
            "base_model": base_model,
        }
        images = []
        for raw_image in body.get("images") or []:
            try:
                images.append(to_image_item(raw_image, context))
            except InvalidResponseError as exc:
                log.warning("version %s: skipping an unusable image: %s", version_id, exc)
        return VersionInfo(
            id=version_id,
            name=name,
            model_id=model_id,
            model_name=model_name,
            base_model=base_model,
            images=images,
        )

    def get_image(self, image_id: int) -> ImageItem:
        """One image with its generation data, whatever its NSFW level."""
        image_id = _check_id(image_id, "image")
        what = f"image {image_id}"
        query = {"imageId": image_id, "withMeta": "true", "nsfw": "X"}
        try:
            body = self.client.get_json(IMAGES_PATH, query)
        except NotFoundError as exc:
            raise _not_found(what, exc) from exc
        items = body.get("items") if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise InvalidResponseError(
                f"Civitai answered the request for {what} without an 'items' list; the API may "
                "have changed or be failing, try again later.",
                url=IMAGES_PATH,
            )
        for raw in items:
            if not isinstance(raw, Mapping):
                continue
            try:
                item = to_image_item(raw)
            except InvalidResponseError as exc:
                log.warning("%s: skipping an unusable item: %s", what, exc)
                continue
            if item.id == image_id:
                return item
        raise _not_found(what, None, url=IMAGES_PATH)


def _check_id(value: Any, what: str) -> int:
    number = _int_or_none(value)
    if number is None or number <= 0:
        raise InvalidQueryError(f"The {what} id must be a positive number, got {value!r}.")
    return number


def _not_found(
    what: str, cause: Optional[NotFoundError], url: Optional[str] = None
) -> NotFoundError:
    """NotFoundError naming what was asked ("model 123 was not found on Civitai; ...")."""
    return NotFoundError(
        f"{what} was not found on Civitai; check the id (it may also be hidden or removed).",
        status=cause.status if cause is not None else None,
        url=cause.url if cause is not None else url,
        server_message=cause.server_message if cause is not None else None,
    )

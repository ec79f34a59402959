"""Listing stage: what exists on Civitai (image pages, models, versions, single images).

Every request goes through the shared transport (``http_client.CivitaiHttpClient.get_json``), which
raises the typed errors of ``errors.py``. This module adds what the endpoints mean:

* ``/api/v1/images`` is paged with cursors only (``page`` is capped by Civitai), 200 items per
  request, always ``withMeta=true`` (otherwise ``meta`` arrives as null), until ``nextCursor`` is
  absent. Items are yielded page by page, so memory stays flat however large the listing.
* The helpers live in their own modules and are re-exported here: ``image_query`` (request
  params, cursor), ``nsfw`` (smallest covering mask, exact level filter), ``image_items`` (raw
  item -> :class:`records.ImageItem`), ``image_urls`` (original / sized URLs, id from a URL).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..settings.specs import SPECS
from ..errors import InvalidQueryError, InvalidResponseError, NotFoundError
from . import image_batch
from .image_batch import ImageBatch
from .image_items import (
    MAX_ID,
    int_or_none,
    item_level,
    to_image_item,
    to_image_items,
    unwrap_meta,
)
from .image_query import (
    CONTROLLED,
    DEFAULT_LEVELS,
    build_request,
    describe_params,
    listing_context,
    read_next_cursor,
    whole_model_sort_notice,
)
from .fronts import Fronts, MatureCheck
from .image_urls import image_id_from_url, original_url, sized_url
from .nsfw import Levels, keep_levels, levels_of_param, normalize_levels, nsfw_param
from .drift import ShapeChangedError, listing_body
from .lookup_memo import LookupMemo
from .model_info import to_model_info, to_version_info
from .pages import OnPage, PageLoop, Watch, page_items
from .pages_ahead import PagesAhead, query_key
from .trpc import TrpcAPI
from .web_listing import WebListing, WebPages
from ..records import ImageItem, ImagePage, ModelInfo, VersionInfo

__all__ = [
    "CivitaiAPI",
    "IMAGES_PATH",
    "MAX_PAGE_SIZE",
    "MODELS_PATH",
    "VERSIONS_PATH",
    "Levels",
    "OnPage",
    "describe_params",
    "image_id_from_url",
    "item_level",
    "levels_of_param",
    "normalize_levels",
    "nsfw_param",
    "original_url",
    "sized_url",
    "to_image_item",
    "unwrap_meta",
]

log = logging.getLogger(__name__)

IMAGES_PATH = "/api/v1/images"
MODELS_PATH = "/api/v1/models/{id}"
VERSIONS_PATH = "/api/v1/model-versions/{id}"
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = int(SPECS["gallery_page_size"].default)


class CivitaiAPI:
    """Read-only view of Civitai's public API built on a :class:`CivitaiHttpClient`.

    ``fronts``: Civitai's two fronts (default: the client's, :meth:`Fronts.of`). A listing goes
    to the front that serves its levels (Mature or X: the red one); look-ups (models, versions,
    an image by id) go to the front of ``levels``, the levels in force for the command or tab
    (None: the safe-for-work front), and an image the safe-for-work front does not show is asked
    of the red front before it is called missing. ``page_size`` and ``default_levels`` answer a
    page asked without a size or levels (a shell passes the settings ``gallery_page_size`` and
    ``images.default_nsfw_filter``; the table's defaults otherwise).
    """

    def __init__(
        self,
        client=None,
        fronts: Optional[Fronts] = None,
        levels: Optional[Levels] = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        default_levels: Levels = DEFAULT_LEVELS,
    ):
        if client is None:
            from ..http_client import get_http_client

            client = get_http_client()
        self.client = client
        self.page_size = page_size
        self.default_levels = normalize_levels(default_levels)
        self.fronts = fronts if fronts is not None else Fronts.of(client)
        self.levels: Optional[Tuple[str, ...]] = (
            normalize_levels(levels) if levels is not None else None
        )
        # model / version look-ups: one request per id however many callers ask (the target
        # check, names for templates and sidecars, the tab), answers kept LOOKUP_TTL seconds
        self._lookups = LookupMemo(LOOKUP_TTL)
        # listing pages asked beside a look-up (prefetch_page), until the listing takes them
        self._ahead = PagesAhead(PAGE_AHEAD_TTL)
        # images found only on the red front (by id), so a second look-up asks it first
        self._image_fronts: Dict[int, str] = {}
        self._trpc: Optional[TrpcAPI] = None
        self.web = WebPages(self)  # page sources of the web API's listings

    @property
    def trpc(self) -> TrpcAPI:
        """The web API (tRPC) over the same client."""
        if self._trpc is None:
            self._trpc = TrpcAPI(self.client, fronts=self.fronts)
            self._trpc.levels = self.levels
        return self._trpc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client={type(self.client).__name__})"

    # -- images listing ---------------------------------------------------------------------

    def _fetch_page(
        self,
        request: Dict[str, Any],
        levels: Tuple[str, ...],
        cursor: Optional[str],
        page_size: int,
    ) -> Tuple[List[Any], Optional[str], Optional[str]]:
        query = _page_query(request, cursor, page_size)
        url = self.fronts.url(levels, IMAGES_PATH)
        ahead = self._ahead.take(query_key(dict(query, _front=url)))
        if ahead is not None:  # asked beside the look-up: its answer (or error) is this one's
            return ahead.result()
        return self._ask_page(request, query, url)

    def _ask_page(
        self, request: Dict[str, Any], query: Dict[str, Any], url: str = IMAGES_PATH
    ) -> Tuple[List[Any], Optional[str], Optional[str]]:
        """(items, next cursor, the name of an unexpected shape that could still be read)."""
        try:
            body = self.client.get_json(url, query)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{describe_params(request)} was not found on Civitai (no images listed); "
                "check the id or name.",
                status=exc.status,
                url=exc.url,
                server_message=exc.server_message,
            ) from exc
        body, shape = listing_body(body)
        if body is None:
            raise ShapeChangedError(
                f"Civitai answered the image listing for {describe_params(request)} without an "
                f"'items' list ({shape}); the API may have changed or be failing, try again later.",
                shape=shape or "unknown",
                url=url,
            )
        return body["items"], read_next_cursor(body.get("metadata")), shape

    def iter_images(
        self,
        params: Optional[Mapping[str, Any]] = None,
        nsfw_levels: Optional[Levels] = None,
        limit: int = 0,
        start_cursor: Optional[str] = None,
        on_page: Optional[OnPage] = None,
        watch: Optional[Watch] = None,
    ) -> Iterator[ImageItem]:
        """Yield every image matching ``params`` (images-endpoint filters), page by page.

        - Pages with cursors (``start_cursor`` resumes a crawl; a ``cursor`` in ``params`` is used
          when ``start_cursor`` is None) until the server sends no ``nextCursor``; ``page`` is never
          sent. Asks 200 items per request, or ``limit`` when smaller; always ``withMeta=true``.
        - ``nsfw_levels``: levels to keep (default: the ``nsfw`` value in ``params`` as read by
          :func:`levels_of_param`, else :attr:`default_levels`). The
          smallest covering mask is requested and each item's level is checked exactly.
        - ``limit``: stop after that many items *after* NSFW filtering (0 = no limit).
        - ``on_page(cursor_used, next_cursor, items_count)`` is called when a page has been
          fetched, *before* its items are yielded; ``items_count`` is the number of items the
          server sent on that page (before NSFW filtering); ``cursor_used`` is None for the first
          page. A checkpoint that must survive a crash in the middle of a page should record
          ``cursor_used`` until the page's items are handled, then ``next_cursor``.
        - A server that sends back a cursor already used in this crawl would make the crawl loop
          forever: the items of that page are still yielded, then InvalidResponseError is raised.
        - ``watch`` (``civitai/drift.Drift.watch(levels)``) counts what drifted on each page.

        Raises the transport's ApiError family; a 404 is re-raised naming what was listed. An
        unknown username is not an error: Civitai answers an empty list, so nothing is yielded.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidQueryError(
                f"limit must be 0 (no limit) or a positive number, got {limit!r}."
            )
        request, levels, params_cursor = build_request(params, nsfw_levels, self.default_levels)
        cursor = start_cursor if start_cursor not in (None, "") else params_cursor
        notice = whole_model_sort_notice(request)
        if notice:
            log.warning("%s", notice)
        page_size = min(MAX_PAGE_SIZE, limit) if limit else MAX_PAGE_SIZE
        mature = MatureCheck(self.fronts, levels)
        loop = PageLoop(
            lambda at: self._page(request, levels, at, page_size, mature=mature),
            describe_params(request),
            start=cursor,
            watch=watch,
        )
        return page_items(loop, limit, on_page, "username" in request, mature)

    def get_image_page(
        self,
        params: Optional[Mapping[str, Any]] = None,
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
        nsfw_levels: Optional[Levels] = None,
        source: Optional[WebListing] = None,
    ) -> ImagePage:
        """One page of images for the gallery (the UI keeps a stack of cursors for "previous").

        ``limit`` defaults to :attr:`page_size`; items of unwanted NSFW levels are
        dropped, so a page may hold fewer than ``limit`` items. ``source``: a listing of the web
        API (a collection, a post, ...; ``civitai/web_listing.py``), ``params`` then being its
        server-side filters.
        """
        request, levels, cursor, limit = self._page_request(params, cursor, limit, nsfw_levels)
        mature = MatureCheck(self.fronts, levels)
        page = self._page(request, levels, cursor, limit, source, mature)
        page.notice = page.notice or mature.notice()  # the order's notice first, as before
        if page.next_cursor is not None and page.next_cursor == cursor:
            log.warning("Civitai repeated cursor %r; treating this page as the last one", cursor)
            page.next_cursor = None
        return page

    def _page(
        self,
        request: Dict[str, Any],
        levels: Tuple[str, ...],
        cursor: Optional[str],
        page_size: int,
        source: Optional[WebListing] = None,
        mature: Optional[MatureCheck] = None,
    ) -> ImagePage:
        shape: Optional[str] = None
        if source is not None:  # a web listing's page source (civitai/web_listing.py)
            extra = {k: v for k, v in request.items() if k not in CONTROLLED}
            items, next_cursor = self.web.source(source, levels, extra)(cursor, page_size)
        else:
            items, next_cursor, shape = self._fetch_page(request, levels, cursor, page_size)
        rejected: List[Tuple[Any, str]] = []
        converted = list(
            self._paged(to_image_items(items, listing_context(request), rejected=rejected))
        )
        kept = list(keep_levels(converted, levels))
        if mature is not None:
            list(mature.seen(converted))
        return ImagePage(
            items=kept,
            cursor=cursor,
            next_cursor=next_cursor,
            nsfw_hidden=len(converted) - len(kept),
            rejected=rejected,
            server_items=len(items),
            notice=whole_model_sort_notice(request),
            shape=shape,
            sfw_only=mature is not None and mature.notice() is not None,
        )

    def prefetch_page(
        self,
        params: Optional[Mapping[str, Any]] = None,
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
        nsfw_levels: Optional[Levels] = None,
    ) -> None:
        """Send now, on a thread, the request that :meth:`get_image_page` (or :meth:`iter_images`)
        with these arguments will make; that call then takes its answer, or its error, instead of
        asking again (once, within ``PAGE_AHEAD_TTL`` seconds). A run lists beside its target's
        look-up this way. Bad arguments raise here, as they would there."""
        request, levels, cursor, limit = self._page_request(params, cursor, limit, nsfw_levels)
        query = _page_query(request, cursor, limit)
        url = self.fronts.url(levels, IMAGES_PATH)
        self._ahead.start(
            query_key(dict(query, _front=url)), lambda: self._ask_page(request, query, url)
        )

    def settle_prefetches(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` seconds) for pages asked ahead and forget them; before the
        client is closed."""
        self._ahead.settle(timeout)

    def _page_request(
        self,
        params: Optional[Mapping[str, Any]],
        cursor: Optional[str],
        limit: Optional[int],
        nsfw_levels: Optional[Levels],
    ) -> Tuple[Dict[str, Any], Tuple[str, ...], Optional[str], int]:
        """(request, levels kept, cursor, page size) of one page, validated."""
        if limit is None:
            limit = self.page_size
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidQueryError(
                f"Page size must be between 1 and {MAX_PAGE_SIZE} images, got {limit!r}."
            )
        request, levels, params_cursor = build_request(params, nsfw_levels, self.default_levels)
        if cursor in (None, ""):
            cursor = params_cursor
        return request, levels, (str(cursor) if cursor is not None else None), limit

    def rest_page(
        self, params: Mapping[str, Any], levels: Levels, cursor: Optional[str], size: int
    ) -> Tuple[List[Any], Optional[str]]:
        """One raw page of the REST images listing (a web listing's REST half: a tag's images)."""
        request, wanted, _cursor = build_request(params, levels, self.default_levels)
        items, next_cursor, _shape = self._fetch_page(request, wanted, cursor, size)
        return items, next_cursor

    # -- look-ups ---------------------------------------------------------------------------

    def _paged(self, items: Iterable[ImageItem]) -> Iterator[ImageItem]:
        """``items`` with their Civitai page on the front that shows each (``page_url``)."""
        for item in items:
            if item.page_url is None:
                item.page_url = self.fronts.page_url("images", item.id, item.nsfw_level)
            yield item

    def use_levels(self, levels: Optional[Levels]) -> None:
        """Set the levels in force for the look-ups that follow (a tab's job, a command)."""
        self.levels = normalize_levels(levels) if levels is not None else None

    def lookup_base(self) -> str:
        """The front look-ups go to: the one serving the levels in force (:attr:`levels`)."""
        return self.fronts.base_for(self.levels)

    def get_collection(self, collection_id: int) -> Dict[str, Any]:
        """A collection (``{id, name, type, read, user}``) through the web API; AuthError for a
        private one without a key. One request per id however many callers ask."""
        collection_id = check_id(collection_id, "collection")
        return self._lookups.get(
            ("collection", collection_id), lambda: self.trpc.collection(collection_id)
        )

    def get_tag(self, name: str) -> Tuple[int, str]:
        """A tag's id and name by its name (the web API); NotFoundError for an unknown tag."""
        key = ("tag", str(name).lower())
        return self._lookups.get(key, lambda: self.trpc.tag_id(str(name)))

    def _get_object(self, path: str, what: str) -> Mapping[str, Any]:
        try:
            body = self.client.get_json(self.fronts.on(self.lookup_base(), path))
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
        model_id = check_id(model_id, "model")
        key = ("model", self.lookup_base(), model_id)  # each front answers for itself
        return self._lookups.get(key, lambda: self._get_model(model_id))

    def _get_model(self, model_id: int) -> ModelInfo:
        body = self._get_object(MODELS_PATH.format(id=model_id), f"model {model_id}")
        return to_model_info(body, model_id, self._paged)

    def get_model_version(self, version_id: int) -> VersionInfo:
        """A model version with its showcase images (these carry ``meta``)."""
        version_id = check_id(version_id, "model version")
        key = ("version", self.lookup_base(), version_id)
        return self._lookups.get(key, lambda: self._get_version(version_id))

    def _get_version(self, version_id: int) -> VersionInfo:
        body = self._get_object(VERSIONS_PATH.format(id=version_id), f"model version {version_id}")
        model_value = body.get("model")
        model: Mapping[str, Any] = model_value if isinstance(model_value, Mapping) else {}
        return to_version_info(
            body, int_or_none(body.get("modelId")), model.get("name"), self._paged
        )

    def get_image(self, image_id: int, *, with_tags: bool = False) -> ImageItem:
        """One image with its generation data, whatever its NSFW level (and its ``tags`` with
        ``with_tags``): asked of the front of the levels in force, then of the red front before
        it is called missing (civitai.com does not show a mature image)."""
        image_id = check_id(image_id, "image")
        first = self._image_fronts.get(image_id) or self.lookup_base()
        try:
            return self._get_image_on(first, image_id, with_tags)
        except NotFoundError:
            if not self.fronts.split or first == self.fronts.red:
                raise
            log.debug("image %d: not on %s, asking %s", image_id, first, self.fronts.red)
            item = self._get_image_on(self.fronts.red, image_id, with_tags)
            self._image_fronts[image_id] = self.fronts.red  # asked again: straight there
            return item

    def _get_image_on(self, base: str, image_id: int, with_tags: bool = False) -> ImageItem:
        what = f"image {image_id}"
        query: Dict[str, Any] = {"imageId": image_id, "withMeta": "true", "nsfw": "X"}
        if with_tags:
            query["withTags"] = "true"
        try:
            body = self.client.get_json(self.fronts.on(base, IMAGES_PATH), query)
        except NotFoundError as exc:
            raise _not_found(what, exc) from exc
        items = body.get("items") if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise InvalidResponseError(
                f"Civitai answered the request for {what} without an 'items' list; the API may "
                "have changed or be failing, try again later.",
                url=IMAGES_PATH,
            )
        objects = (raw for raw in items if isinstance(raw, Mapping))
        for item in self._paged(
            to_image_items(objects, where=f"{what}: skipping an unusable item")
        ):
            if item.id == image_id:
                return item
        raise _not_found(what, None, url=IMAGES_PATH)

    def get_images(self, image_ids: Sequence[int], *, with_tags: bool = False) -> ImageBatch:
        """Several images by id, ``ids=`` batches of up to 200 (one by one when the server
        cannot take them): :class:`~.image_batch.ImageBatch` with the items in the order given
        and the ids Civitai did not answer."""
        ids = [check_id(i, "image") for i in image_ids]
        return image_batch.fetch_images(self, ids, with_tags=with_tags)


def check_id(value: Any, what: str) -> int:
    """``value`` as a positive id the archive can store; InvalidQueryError naming ``what``."""
    number = int_or_none(value)
    if number is None or number <= 0 or number > MAX_ID:
        raise InvalidQueryError(
            f"The {what} id must be a positive number (below 2**63), got {value!r}."
        )
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


#: How long a model or version look-up is reused (the tab lives for hours; a run for minutes).
LOOKUP_TTL = 300.0
#: How long a page asked ahead (prefetch_page) waits for the listing that wants it.
PAGE_AHEAD_TTL = 60.0


def _page_query(
    request: Mapping[str, Any], cursor: Optional[str], page_size: int
) -> Dict[str, Any]:
    """The query parameters one images page is asked with."""
    query = dict(request)
    query["limit"] = page_size
    if cursor is not None:
        query["cursor"] = cursor
    return query

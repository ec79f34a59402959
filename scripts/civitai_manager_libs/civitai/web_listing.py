"""Listings the public REST API cannot make (a collection, a post, a user's posts, a gallery link,
your reactions, a tag's images), each as a *page source*: ``source(cursor, page_size) -> (items,
next cursor or None)``, the raw items in the REST API's shape, so the listing loop treats them as
any images page.

The web API's items carry no generation data and name their file by its uuid. Each page of them
gets its ``meta`` (and base model, version ids, full URL) in ONE REST request
(``/api/v1/images?ids=...&withMeta=true``), never one request per image; an item that request does
not return (hidden, removed) is kept without meta, its URL built from its uuid.

What a source lists is a :class:`WebListing` (plain data, part of a ``ListingRequest``); the
look-ups it needs (the collection, the tag's id) go through ``CivitaiAPI``'s memo, so the target
check before a run and the listing share one request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import AuthError, InvalidQueryError
from .image_items import int_or_none
from .nsfw import browsing_level

PageSource = Callable[[Optional[str], int], Tuple[List[Any], Optional[str]]]

#: Where a uuid-named file lives when no REST item gives its URL (gallery-dl builds it so).
DEFAULT_IMAGE_PREFIX = "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA"
#: Posts asked per page of a user's posts (their images are then asked in one listing).
POSTS_PER_PAGE = 20
#: Pages of one batch of posts' images followed at most (a post holds at most 20 images).
MAX_INNER_PAGES = 50
REACTIONS = ("Like", "Dislike", "Heart", "Laugh", "Cry")
KINDS = ("collection", "post", "user_posts", "gallery", "reactions", "tag")


@dataclass(frozen=True)
class WebListing:
    """What a web listing lists: ``kind`` (one of :data:`KINDS`), ``value`` (an id, a username,
    a tag name, a canonical query) and the web API ``params`` it adds (site filters)."""

    kind: str
    value: Any
    params: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def describe(self) -> str:
        return {
            "collection": f"collection {self.value}",
            "post": f"post {self.value}",
            "user_posts": f"the posts of {self.value!r}",
            "gallery": f"the gallery link {self.value}",
            "reactions": "the images you reacted to",
            "tag": f"the images of tag {self.value!r}",
        }.get(self.kind, f"{self.kind} {self.value}")


def web_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Filters in the REST API's names (``type``, ``baseModels`` as a comma list; what
    ``FilterSpec.server_params`` adds) in the web API's (``types``, ``baseModels`` lists)."""
    out = dict(params)
    kind = out.pop("type", None)
    if kind and "types" not in out:
        out["types"] = [kind]
    bases = out.get("baseModels")
    if isinstance(bases, str):
        out["baseModels"] = [b.strip() for b in bases.split(",") if b.strip()]
    return out


class WebPages:
    """The page sources of one ``CivitaiAPI`` (``api.trpc``, ``api.client``, ``api.get_collection``,
    ``api.get_tag``, ``api.rest_page``, ``api.get_images``)."""

    def __init__(self, api: Any):
        self.api = api

    def source(self, listing: WebListing, levels: Tuple[str, ...], extra: Mapping[str, Any]):
        """The page source of ``listing`` keeping ``levels``; ``extra`` are the listing's
        server-side filters (REST names)."""
        mask = browsing_level(levels)
        with_tags = str(extra.get("withTags", "")).lower() == "true"
        filters = web_params({k: v for k, v in extra.items() if k != "withTags"})
        what = listing.describe()
        kind = listing.kind
        if kind == "tag":
            return self._tag_source(listing, levels, extra)
        labels: Dict[str, Any] = {}
        if kind == "collection":
            found = self.api.get_collection(listing.value)
            labels = {"collection_id": listing.value, "collection_name": found.get("name")}
            ctype = str(found.get("type") or "").lower()
            if ctype == "post":
                base = {"collectionId": listing.value}
                return self._posts_source(base, filters, mask, levels, what, labels, with_tags)
            if ctype not in ("image", ""):
                raise InvalidQueryError(
                    f"{what} is a collection of {found.get('type')}s, not of images or posts; "
                    "there are no images to download in it."
                )
            base = {"collectionId": listing.value}
        elif kind == "post":
            base = {"postId": listing.value, "pending": True}
        elif kind == "user_posts":
            base = {"username": listing.value}
            return self._posts_source(base, filters, mask, levels, what, {}, with_tags)
        elif kind == "reactions":
            if not self.api.trpc.has_api_key:
                raise AuthError(REACTIONS_NEED_KEY)
            base = {"reactions": list(listing.params.get("reactions") or REACTIONS)}
            base["useIndex"] = False
        elif kind == "gallery":
            base = dict(listing.params)
        else:
            raise InvalidQueryError(f"Unknown web listing {kind!r}; expected one of {KINDS}.")
        params = _defaults(dict(base, **filters), mask)

        def page(cursor: Optional[str], size: int) -> Tuple[List[Any], Optional[str]]:
            query = dict(params, limit=size)
            items, next_cursor = self.api.trpc.page(
                "image.getInfinite", query, cursor, what, levels
            )
            return self.with_meta(items, levels, labels, with_tags), next_cursor

        return page

    def _posts_source(
        self,
        base: Dict[str, Any],
        filters: Dict[str, Any],
        mask: int,
        levels: Tuple[str, ...],
        what: str,
        labels: Dict[str, Any],
        with_tags: bool = False,
    ):
        post_params = dict(base, browsingLevel=mask, period="AllTime", sort="Newest")
        image_filters = {k: v for k, v in filters.items() if k in ("types", "baseModels")}

        def page(cursor: Optional[str], size: int) -> Tuple[List[Any], Optional[str]]:
            query = dict(post_params, limit=max(1, min(size, POSTS_PER_PAGE)))
            posts, next_cursor = self.api.trpc.page("post.getInfinite", query, cursor, what, levels)
            ids = [int_or_none(p.get("id")) for p in posts if isinstance(p, Mapping)]
            post_ids = [i for i in ids if i is not None]
            items: List[Any] = []
            if post_ids:
                params = _defaults(dict(image_filters, postIds=post_ids, pending=True), mask)
                inner: Optional[str] = None
                seen = set()
                for _ in range(MAX_INNER_PAGES):
                    query = dict(params, limit=200)
                    found, inner = self.api.trpc.page(
                        "image.getInfinite", query, inner, what, levels
                    )
                    items += self.with_meta(found, levels, labels, with_tags)
                    if inner is None or inner in seen:
                        break
                    seen.add(inner)
            return items, next_cursor

        return page

    def _tag_source(self, listing: WebListing, levels: Tuple[str, ...], extra: Mapping[str, Any]):
        tag_id, name = self.api.get_tag(listing.value)
        params = dict(extra, tags=tag_id)
        labels = {"tag": name}

        def page(cursor: Optional[str], size: int) -> Tuple[List[Any], Optional[str]]:
            items, next_cursor = self.api.rest_page(params, levels, cursor, size)
            return [_labelled(i, labels) for i in items], next_cursor

        return page

    # -- meta: one REST request per page ------------------------------------------------------

    def with_meta(
        self,
        items: List[Any],
        levels: Tuple[str, ...],
        labels: Mapping[str, Any],
        with_tags: bool = False,
    ) -> List[Any]:
        """``items`` (web API shape) in the REST shape, with their meta from one REST request
        (``CivitaiAPI.get_images``: ``ids=`` with ``withMeta=true``; one id at a time only on a
        server that cannot take ``ids=``)."""
        ids: List[int] = []
        for item in items:
            number = int_or_none(item.get("id")) if isinstance(item, Mapping) else None
            if number is not None and 0 < number < 2**63 and number not in ids:
                ids.append(number)
        by_id: Dict[int, Mapping[str, Any]] = {}
        if ids:
            batch = self.api.get_images(ids, with_tags=with_tags)
            for found in batch.items:
                if isinstance(found.raw, Mapping):
                    by_id[found.id] = found.raw
        prefix = _image_prefix(by_id.values())
        out = []
        for item in items:
            if not isinstance(item, Mapping):
                out.append(item)  # the listing skips it as malformed, with its reason
                continue
            rest = by_id.get(int_or_none(item.get("id")) or -1)
            out.append(_labelled(rest_shape(item, rest, prefix), labels))
        return out


REACTIONS_NEED_KEY = (
    "Your reactions are only listed with your API key: set civitai_api_key (or CIVITAI_API_KEY, "
    "or --api-key) to a key of your Civitai account."
)


def _defaults(params: Dict[str, Any], mask: int) -> Dict[str, Any]:
    """What the site sends with every images query (gallery-dl sends the same)."""
    out: Dict[str, Any] = {"period": "AllTime", "sort": "Newest", "include": ["cosmetics"]}
    out.update(params)
    out["browsingLevel"] = mask
    return out


def _labelled(item: Any, labels: Mapping[str, Any]) -> Any:
    """The item with what it was listed under (collection, tag) for path templates."""
    if not labels or not isinstance(item, Mapping):
        return item
    out = dict(item)
    out["listedIn"] = dict(labels)
    return out


def _image_prefix(rest_items: Any) -> str:
    """``https://host/<key>`` of the REST URLs of a page (the fake's image host in tests)."""
    for rest in rest_items:
        url = rest.get("url") if isinstance(rest, Mapping) else None
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            parts = url.split("?", 1)[0].rsplit("/", 3)
            if len(parts) == 4 and parts[0].count("/") >= 3:
                return parts[0]
    return DEFAULT_IMAGE_PREFIX


def rest_shape(
    item: Mapping[str, Any], rest: Optional[Mapping[str, Any]], prefix: str
) -> Dict[str, Any]:
    """A web API image item as the REST API lists it (its REST twin's fields win)."""
    out: Dict[str, Any] = {}
    for key in ("id", "width", "height", "nsfwLevel", "type", "createdAt", "postId", "hash"):
        if key in item:
            out[key] = item[key]
    user = item.get("user")
    if isinstance(user, Mapping) and user.get("username") is not None:
        out["username"] = user.get("username")
    if isinstance(item.get("postTitle"), str):
        out["postTitle"] = item["postTitle"]
    version = int_or_none(item.get("modelVersionId"))
    if version is not None:
        out["modelVersionIds"] = [version]
    if isinstance(item.get("baseModel"), str):
        out["baseModel"] = item["baseModel"]
    out["url"] = _file_url(item, prefix)
    if rest is not None:
        for key in ("url", "meta", "stats", "baseModel", "modelVersionIds", "username"):
            if rest.get(key) is not None:
                out[key] = rest[key]
        if "meta" in rest:
            out["meta"] = rest["meta"]
    return out


def _file_url(item: Mapping[str, Any], prefix: str) -> Any:
    """The file's URL from the uuid the web API names it by (a full URL passes as is)."""
    url = item.get("url")
    if not isinstance(url, str) or not url or "/" in url:
        return url
    name = item.get("name")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        mime = item.get("mimeType")
        ext = mime.rpartition("/")[2] if isinstance(mime, str) and "/" in mime else "jpeg"
        name = f"{item.get('id')}.{ext}"
    return f"{prefix}/{url}/original=true/{name}"


def canonical(params: Mapping[str, Any]) -> str:
    """A stable text of a gallery link's filters (its checkpoint key)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)

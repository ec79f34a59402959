"""``GET /api/trpc/<procedure>?input=<json>``: the fake's web API, shaped as Civitai's server
answers (src/server/routers/{collection,image,post,tag}.router.ts).

Served: ``collection.getById``, ``image.getInfinite`` (collectionId, postId, postIds, username,
tags, modelVersionId, types, baseModels, period, sort, browsingLevel, reactions, limit, cursor),
``post.getInfinite`` (username, collectionId) and ``tag.getTagWithModelCount``. Answers come plain
(superjson: ``result.data.json``) or packed (devalue: ``result.data`` a string holding a flat list)
as the ``packed`` knob says. Items carry no generation data (``meta``), as on Civitai.

Access as on Civitai: a request without an API key must come from the site (a ``Referer`` or
``Origin`` on the host it asks), else ``UNAUTHORIZED``; ``Bearer invalid-key`` is refused; a
private collection is ``{"collection": null}`` and lists no images for a caller without a key (any
other key reads it); ``reactions`` only filter with a key (the key's user reacted to the images
:func:`reaction_of` names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from .builders import TAGS
from .dataset import Dataset, FakeImage
from .listing import PERIOD_DAYS, SORTS
from .response import Response, json_response

PREFIX = "/api/trpc/"
INVALID_KEY = "invalid-key"
REACTIONS = ("Like", "Dislike", "Heart", "Laugh", "Cry")
_TITLES = ("Sunset study", "../../escape/..", "CON", "Ünïcode · 画", "a/b\\c:d*e?", "")


@dataclass(frozen=True)
class FakeCollection:
    id: int
    name: str
    type: str  # Image | Post | Model
    public: bool
    owner: str
    select: Callable[[Dataset], List[int]]  # image ids (Image) or post ids (Post)


def _landscapes(d: Dataset) -> List[int]:
    return [i.id for i in d.images if 5193 in i.tag_ids or i.type == "video"]


def _bob(d: Dataset) -> List[int]:
    return [i.id for i in d.images if i.username == "BobMakes"][:30]


def _witch_posts(d: Dataset) -> List[int]:
    return sorted({i.post_id for i in d.images if i.username == "pixel_witch"})[:5]


COLLECTIONS: Dict[int, FakeCollection] = {
    c.id: c
    for c in (
        FakeCollection(7001, "Landscapes & videos", "Image", True, "alice_art", _landscapes),
        FakeCollection(7002, "../Private stash", "Image", False, "BobMakes", _bob),
        FakeCollection(7003, "Witch posts", "Post", True, "pixel_witch", _witch_posts),
        FakeCollection(7004, "Models I like", "Model", True, "con", lambda d: []),
    )
}


def reaction_of(image_id: int) -> Optional[str]:
    """The reaction the API key's user left on an image (None: none)."""
    if image_id % 5 == 0:
        return "Like"
    if image_id % 7 == 0:
        return "Heart"
    if image_id % 11 == 0:
        return "Laugh"
    return None


def post_title(post_id: int) -> Optional[str]:
    title = _TITLES[post_id % len(_TITLES)]
    return title or None


class TrpcError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_CODES = {"BAD_REQUEST": -32600, "UNAUTHORIZED": -32001, "FORBIDDEN": -32003, "NOT_FOUND": -32004}


class TrpcRoutes:
    """The web API over a dataset; ``packed`` (knob) answers in the devalue form."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.packed = False

    def handle(
        self, path: str, params: Dict[str, List[str]], headers: Mapping[str, str]
    ) -> Optional[Response]:
        if not path.startswith(PREFIX):
            return None
        procedure = path[len(PREFIX) :].strip("/")
        try:
            authed = self._auth(headers)
            raw = (params.get("input") or ["{}"])[-1]
            try:
                envelope = json.loads(raw)
            except ValueError:
                raise TrpcError(400, "BAD_REQUEST", "Invalid input: not JSON") from None
            given = envelope.get("json") if isinstance(envelope, dict) else None
            if not isinstance(given, dict):
                raise TrpcError(400, "BAD_REQUEST", "Invalid input: expected an object")
            handler = {
                "collection.getById": self.collection,
                "image.getInfinite": self.images,
                "post.getInfinite": self.posts,
                "tag.getTagWithModelCount": self.tag,
            }.get(procedure)
            if handler is None:
                raise TrpcError(404, "NOT_FOUND", f'No "query"-procedure on path "{procedure}"')
            value = handler(given, authed)
        except TrpcError as exc:
            return json_response(
                exc.status,
                {
                    "error": {
                        "json": {
                            "message": exc.message,
                            "code": _CODES.get(exc.code, -32603),
                            "data": {"code": exc.code, "httpStatus": exc.status, "path": procedure},
                        }
                    }
                },
            )
        if self.packed:
            return json_response(200, {"result": {"data": devalue(value)}})
        return json_response(200, {"result": {"data": {"json": value}}})

    @staticmethod
    def _auth(headers: Mapping[str, str]) -> bool:
        """True with an API key; UNAUTHORIZED without one from outside the site."""
        lowered = {k.lower(): v for k, v in headers.items()}
        bearer = lowered.get("authorization", "")
        if bearer:
            if bearer.split(" ", 1)[-1].strip() == INVALID_KEY:
                raise TrpcError(401, "UNAUTHORIZED", "Invalid API key")
            return True
        host = lowered.get("host", "")
        source = lowered.get("origin") or lowered.get("referer") or ""
        try:
            source_host = urlsplit(source).netloc
        except ValueError:
            source_host = ""
        if not source_host or source_host != host:
            raise TrpcError(
                401,
                "UNAUTHORIZED",
                "Please use the public API instead: https://developer.civitai.com/",
            )
        return False

    # -- procedures ------------------------------------------------------------------------------

    def collection(self, given: Dict[str, Any], authed: bool) -> Dict[str, Any]:
        ident = _int(given.get("id"), "id")
        found = COLLECTIONS.get(ident)
        readable = found is not None and (found.public or authed)
        permissions = {"read": readable, "write": False, "manage": False, "follow": readable}
        if not readable:
            return {"collection": None, "permissions": permissions}
        assert found is not None
        owner = self.dataset.creator(found.owner)
        return {
            "collection": {
                "id": found.id,
                "name": found.name,
                "description": None,
                "type": found.type,
                "read": "Public" if found.public else "Private",
                "user": {"id": owner.user_id if owner else 0, "username": found.owner},
            },
            "permissions": permissions,
        }

    def tag(self, given: Dict[str, Any], authed: bool) -> List[Dict[str, Any]]:
        name = str(given.get("name") or "").lower()
        return [{"id": i, "name": n, "count": 10} for i, n in TAGS.items() if n == name]

    def images(self, given: Dict[str, Any], authed: bool) -> Dict[str, Any]:
        pool = list(self.dataset.images)
        collection_id = given.get("collectionId")
        if collection_id is not None:
            found = COLLECTIONS.get(_int(collection_id, "collectionId"))
            if found is None or not (found.public or authed):
                return {"items": [], "nextCursor": None}
            members = set(found.select(self.dataset)) if found.type == "Image" else set()
            pool = [i for i in pool if i.id in members]
        checks: List[Callable[[FakeImage], bool]] = []
        if given.get("postId") is not None:
            post_id = _int(given["postId"], "postId")
            checks.append(lambda i: i.post_id == post_id)
        if given.get("postIds") is not None:
            post_ids = {_int(v, "postIds") for v in _list(given["postIds"], "postIds")}
            checks.append(lambda i: i.post_id in post_ids)
        if given.get("username") is not None:
            name = str(given["username"]).lower()
            checks.append(lambda i: i.username.lower() == name)
        if given.get("modelVersionId") is not None:
            version = _int(given["modelVersionId"], "modelVersionId")
            checks.append(lambda i: version in i.model_version_ids)
        if given.get("tags"):
            tags = {_int(v, "tags") for v in _list(given["tags"], "tags")}
            checks.append(lambda i: bool(tags.intersection(i.tag_ids)))
        if given.get("types"):
            types = set(_list(given["types"], "types"))
            checks.append(lambda i: (i.type or "image") in types)
        if given.get("baseModels"):
            bases = set(_list(given["baseModels"], "baseModels"))
            checks.append(lambda i: i.base_model in bases)
        if given.get("reactions") and authed:  # Civitai ignores them for an anonymous caller
            kinds = set(_list(given["reactions"], "reactions"))
            checks.append(lambda i: reaction_of(i.id) in kinds)
        period = given.get("period") or "AllTime"
        if period not in PERIOD_DAYS:
            raise TrpcError(400, "BAD_REQUEST", f"Invalid enum value for period: '{period}'")
        days = PERIOD_DAYS[period]
        if days:
            since = self.dataset.now_ms - days * 86_400_000
            checks.append(lambda i: i.created_ms >= since)
        mask = _int(given.get("browsingLevel", 1), "browsingLevel")
        checks.append(lambda i: bool((i.browsing_level or 1) & mask))
        chosen = [i for i in pool if all(check(i) for check in checks)]
        return self._page(chosen, given, self._image_json)

    def posts(self, given: Dict[str, Any], authed: bool) -> Dict[str, Any]:
        by_post: Dict[int, List[FakeImage]] = {}
        for image in self.dataset.images:
            by_post.setdefault(image.post_id, []).append(image)
        ids = sorted(by_post)
        if given.get("username") is not None:
            name = str(given["username"]).lower()
            ids = [p for p in ids if by_post[p][0].username.lower() == name]
        if given.get("collectionId") is not None:
            found = COLLECTIONS.get(_int(given["collectionId"], "collectionId"))
            if found is None or found.type != "Post" or not (found.public or authed):
                return {"items": [], "nextCursor": None}
            members = set(found.select(self.dataset))
            ids = [p for p in ids if p in members]
        ids.sort(reverse=True)  # newest first
        return self._page(ids, given, lambda p: self._post_json(p, by_post[p]))

    # -- shapes ----------------------------------------------------------------------------------

    def _page(self, rows: List[Any], given: Dict[str, Any], shape: Callable) -> Dict[str, Any]:
        sort = given.get("sort") or "Newest"
        if rows and isinstance(rows[0], FakeImage):
            if sort not in SORTS:
                raise TrpcError(400, "BAD_REQUEST", f"Invalid enum value for sort: '{sort}'")
            primary, descending = SORTS[sort]
            rows = sorted(
                rows,
                key=lambda i: (-primary(i), -i.created_ms) if descending else (primary(i), i.id),
            )
        limit = _int(given.get("limit", 50), "limit")
        if not 0 < limit <= 200:
            raise TrpcError(400, "BAD_REQUEST", "limit: Number must be less than or equal to 200")
        cursor = given.get("cursor")
        start = _int(cursor, "cursor") if cursor is not None else 0
        window = rows[start : start + limit]
        more = start + limit < len(rows)
        return {"items": [shape(r) for r in window], "nextCursor": start + limit if more else None}

    def _image_json(self, image: FakeImage) -> Dict[str, Any]:
        owner = self.dataset.creator(image.username)
        return {
            "id": image.id,
            "name": image.file_name,
            "url": image.uuid,
            "nsfwLevel": image.browsing_level,
            "width": image.width,
            "height": image.height,
            "hash": image.blurhash,
            "createdAt": image.created_at,
            "publishedAt": image.created_at,
            "mimeType": image.content_type,
            "type": image.type or "image",
            "postId": image.post_id,
            "postTitle": post_title(image.post_id),
            "index": 0,
            "modelVersionId": image.model_version_ids[0] if image.model_version_ids else None,
            "hasMeta": image.meta is not None and not image.meta_hidden,
            "user": {
                "id": owner.user_id if owner else 0,
                "username": image.username,
                "image": None,
            },
            "stats": {
                "likeCountAllTime": image.stats.get("likeCount", 0),
                "heartCountAllTime": image.stats.get("heartCount", 0),
                "commentCountAllTime": image.stats.get("commentCount", 0),
            },
        }

    def _post_json(self, post_id: int, images: List[FakeImage]) -> Dict[str, Any]:
        first = images[0]
        return {
            "id": post_id,
            "title": post_title(post_id),
            "publishedAt": first.created_at,
            "imageCount": len(images),
            "user": {"id": first.user_id, "username": first.username, "image": None},
        }


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrpcError(400, "BAD_REQUEST", f"{name}: Expected number, received {value!r}")
    return value


def _list(value: Any, name: str) -> List[Any]:
    if not isinstance(value, list):
        raise TrpcError(400, "BAD_REQUEST", f"{name}: Expected array, received {value!r}")
    return value


def devalue(value: Any) -> str:
    """``value`` in devalue's packed form: a flat list, entry 0 the root, containers holding
    indices, ``-1`` for undefined (None here, as Civitai's dates and nulls are plain)."""
    pack: List[Any] = []

    def put(item: Any) -> int:
        if item is None:
            return -1
        index = len(pack)
        pack.append(None)
        if isinstance(item, dict):
            pack[index] = {str(k): put(v) for k, v in item.items()}
        elif isinstance(item, (list, tuple)):
            pack[index] = [put(v) for v in item]
        else:
            pack[index] = item
        return index

    put(value)
    if not pack:
        pack.append(None)
    return json.dumps(pack, ensure_ascii=False, separators=(",", ":"))

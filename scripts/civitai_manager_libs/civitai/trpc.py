"""Civitai's web API (tRPC): what the public REST API does not serve (collections, posts, tags,
your reactions), asked the way the site itself asks.

A call is ``GET /api/trpc/<procedure>?input=<json>`` with ``input = {"json": {...params...}}``; the
first page of a paged procedure also sends ``"cursor": null`` with ``"meta": {"values":
{"cursor": ["undefined"]}}`` (superjson's note that the cursor is *undefined*), later pages the
``nextCursor`` the previous answer gave. The answer is ``{"result": {"data": ...}}`` in one of two
forms (Civitai's transformer changed from superjson to devalue in 2026; both still occur):

* plain (superjson): ``result.data`` is an object and the value is ``result.data.json``;
* packed (devalue): ``result.data`` is a JSON *string* holding a flat list. Entry 0 is the root;
  every object's values and every array's elements are indices into the list; ``-1`` is
  undefined (read as None); an array that starts with a type name (``["Date", "..."]``) is a
  typed value.

The whole answer is read through the transport's bounded JSON reader (size cap, typed errors);
the packed string is read by the one document reader (``util/documents``: size, depth, finite
numbers) and its list then expanded here within bounds a hostile server cannot get round: a
reference cycle, an index outside the list, nesting deeper than :data:`MAX_DEPTH` or more than
:data:`MAX_NODES` values expanded (a small list whose entries point at each other many times would
otherwise expand to billions) is an :class:`InvalidResponseError` naming the procedure.

Without an API key the server only answers requests that come from its own site, so every call
carries ``Referer: <front>/`` as the browser's do; with a key the transport adds it (API origin
only).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ApiError, AuthError, InvalidResponseError, NotFoundError
from ..util.documents import DocumentError, read_document

log = logging.getLogger(__name__)

TRPC_PATH = "/api/trpc/"
#: Values expanded from one packed answer at most (a page of 200 items is about 20,000).
MAX_NODES = 1_000_000
#: The largest packed string read (the whole answer is capped by the transport too).
MAX_PACKED_BYTES = 32 * 1024 * 1024
#: Nesting kept from a packed answer (a real one is under 12 levels).
MAX_DEPTH = 64
#: devalue's negative constants: undefined, a hole, NaN, +inf, -inf, -0.
_SPECIAL = {-1: None, -2: None, -3: None, -4: None, -5: None, -6: 0}


def unpack(packed: Any, what: str = "the web API's answer") -> Any:
    """The value a packed (devalue) list holds; InvalidResponseError for anything malformed or
    beyond the bounds (see the module's note)."""
    if not isinstance(packed, list) or not packed:
        raise InvalidResponseError(
            f"Civitai sent {what} in the packed form without any entries; try again later."
        )
    return _Unpacker(packed, what).value(0, 0)


class _Unpacker:
    def __init__(self, pack: List[Any], what: str):
        self.pack = pack
        self.what = what
        self.nodes = 0
        self.open: set = set()  # indices being expanded: one met again is a cycle

    def fail(self, why: str) -> InvalidResponseError:
        return InvalidResponseError(
            f"Civitai sent {self.what} in the packed form with {why}; it was not used. The "
            "service may be failing or the address may not be Civitai: try again later."
        )

    def value(self, index: Any, depth: int) -> Any:
        if isinstance(index, bool) or not isinstance(index, int):
            raise self.fail(f"a reference that is not an index ({type(index).__name__})")
        if index < 0:
            if index in _SPECIAL:
                return _SPECIAL[index]
            raise self.fail(f"an unknown negative reference {index}")
        if index >= len(self.pack):
            raise self.fail(f"a reference to entry {index} of a list of {len(self.pack)}")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES:,} values once expanded")
        entry = self.pack[index]
        if not isinstance(entry, (dict, list)):
            return entry
        if depth >= MAX_DEPTH:
            raise self.fail(f"values nested more than {MAX_DEPTH} levels deep")
        if index in self.open:
            raise self.fail(f"a reference cycle through entry {index}")
        self.open.add(index)
        try:
            if isinstance(entry, dict):
                return {str(key): self.value(ref, depth + 1) for key, ref in entry.items()}
            if entry and isinstance(entry[0], str):
                return self.typed(entry, depth)
            return [self.value(ref, depth + 1) for ref in entry]
        finally:
            self.open.discard(index)

    def typed(self, entry: List[Any], depth: int) -> Any:
        """devalue's typed values: a date stays its ISO text (as the plain form sends it)."""
        kind = entry[0]
        if kind == "Date" and len(entry) == 2 and isinstance(entry[1], str):
            return entry[1]
        if kind == "BigInt" and len(entry) == 2 and isinstance(entry[1], str):
            text = entry[1]
            return int(text) if text.lstrip("-").isdigit() and len(text) <= 40 else None
        if kind == "Set":
            return [self.value(ref, depth + 1) for ref in entry[1:]]
        if kind in ("Map", "null"):
            refs = entry[1:]
            if len(refs) % 2:
                raise self.fail(f"a {kind} with an odd number of entries")
            out: Dict[str, Any] = {}
            for key_ref, value_ref in zip(refs[::2], refs[1::2]):
                key = key_ref if kind == "null" else self.value(key_ref, depth + 1)
                out[str(key)] = self.value(value_ref, depth + 1)
            return out
        return None  # RegExp, URL and the like: nothing a listing reads


def read_data(body: Mapping[str, Any], what: str) -> Any:
    """The value of a tRPC answer ``body`` in either form; InvalidResponseError otherwise."""
    result = body.get("result") if isinstance(body, Mapping) else None
    data = result.get("data") if isinstance(result, Mapping) else None
    if isinstance(data, str):
        try:  # the one bounded reader: a packed list is flat (its entries 2 levels deep at most)
            packed = read_document(
                data, what="packed answer", max_bytes=MAX_PACKED_BYTES, max_depth=4
            )
        except DocumentError as exc:
            raise InvalidResponseError(
                f"Civitai sent {what} in the packed form, but it is not usable: {exc}; try again "
                "later."
            ) from None
        return unpack(packed, what)
    if isinstance(data, Mapping) and "json" in data:
        return data["json"]
    raise InvalidResponseError(
        f"Civitai answered {what} without 'result.data'; the web API may have changed or be "
        "failing, try again later."
    )


def error_message(server_message: Optional[str]) -> Optional[str]:
    """The message of a tRPC error shape (``{"json": {"message", "data": {"code"}}}``) when the
    transport kept it as JSON text; the text as it is otherwise."""
    if not server_message or not server_message.lstrip().startswith("{"):
        return server_message
    try:
        shape = read_document(server_message, what="error", max_bytes=64 * 1024)
    except DocumentError:
        return server_message
    inner = shape.get("json", shape) if isinstance(shape, dict) else None
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        return inner["message"][:300]
    return server_message


class TrpcAPI:
    """Calls of Civitai's web API through a :class:`CivitaiHttpClient` (its retries, key policy,
    bounded reading and typed errors)."""

    def __init__(self, client: Any, front: Optional[str] = None, fronts: Any = None):
        """``fronts`` (``civitai/fronts.Fronts``): a call with Mature or X among its ``levels``
        goes to the red front, as REST listings do (issue 20); without it every call goes to
        ``front`` (default: the client's base URL)."""
        self.client = client
        self.front = (front or getattr(client, "base_url", "") or "").rstrip("/")
        self.fronts = fronts
        self.levels: Optional[Sequence[str]] = None  # the look-ups' levels (the API's)

    @property
    def has_api_key(self) -> bool:
        return bool(getattr(self.client, "has_api_key", False))

    def call(
        self,
        procedure: str,
        params: Mapping[str, Any],
        what: str,
        first_page: bool = False,
        levels: Optional[Sequence[str]] = None,
    ) -> Any:
        """One call; ``first_page`` sends the undefined cursor of a paged procedure's first
        call; ``levels`` pick the front (default: the look-ups' levels). Raises the transport's
        ApiError family, its message naming ``what``."""
        body: Dict[str, Any] = {"json": dict(params)}
        if first_page:
            body["json"]["cursor"] = None
            body["meta"] = {"values": {"cursor": ["undefined"]}}
        query = {"input": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}
        front = self.front
        if self.fronts is not None:
            front = self.fronts.base_for(levels if levels is not None else self.levels) or front
        headers = {"Referer": front + "/"} if front else {}
        path = TRPC_PATH + procedure
        try:
            answer = self.client.get_json(front + path if front else path, query, headers=headers)
        except AuthError as exc:
            said = error_message(exc.server_message)
            hint = (
                "the API key was refused or its account may not see it"
                if self.has_api_key
                else "set an API key (civitai_api_key / CIVITAI_API_KEY) of an account that may"
            )
            raise AuthError(
                f"Civitai refused {what} (HTTP {exc.status}{': ' + said if said else ''}): "
                f"{hint}.",
                status=exc.status,
                url=exc.url,
                server_message=said,
            ) from None
        except NotFoundError as exc:
            raise NotFoundError(
                f"{what} was not found on Civitai; check the id or name.",
                status=exc.status,
                url=exc.url,
                server_message=error_message(exc.server_message),
            ) from None
        except ApiError as exc:
            exc.server_message = error_message(exc.server_message)
            raise
        return read_data(answer, what)

    def page(
        self,
        procedure: str,
        params: Mapping[str, Any],
        cursor: Optional[str],
        what: str,
        levels: Optional[Sequence[str]] = None,
    ) -> Tuple[List[Any], Optional[str]]:
        """One page of a paged procedure: ``(items, next cursor or None)``, asked of the front
        serving ``levels``."""
        given = dict(params)
        if cursor is not None:
            given["cursor"] = _cursor_value(cursor)
        data = self.call(procedure, given, what, first_page=cursor is None, levels=levels)
        if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
            raise InvalidResponseError(
                f"Civitai answered {what} without an 'items' list; the web API may have changed "
                "or be failing, try again later."
            )
        next_cursor = data.get("nextCursor")
        if next_cursor in (None, "") or isinstance(next_cursor, (dict, list, bool)):
            return data["items"], None
        return data["items"], encode_cursor(next_cursor)

    # -- look-ups -------------------------------------------------------------------------------

    def collection(self, collection_id: int) -> Dict[str, Any]:
        """``collection.getById``: ``{id, name, type, read, user}``. A collection the caller may
        not read comes back as null (Civitai's answer for private ones): an AuthError without a
        key, a NotFoundError with one."""
        what = f"collection {collection_id}"
        data = self.call("collection.getById", {"id": collection_id}, what)
        found = data.get("collection") if isinstance(data, Mapping) else None
        if not isinstance(found, Mapping):
            if not self.has_api_key:
                raise AuthError(
                    f"{what} is private or does not exist: a private collection needs the API "
                    "key of an account allowed to see it (civitai_api_key / CIVITAI_API_KEY)."
                )
            raise NotFoundError(
                f"{what} does not exist or this API key's account may not see it; check the id."
            )
        return dict(found)

    def tag_id(self, name: str) -> Tuple[int, str]:
        """``tag.getTagWithModelCount``: the id and exact name of the tag ``name``."""
        what = f"tag {name!r}"
        data = self.call("tag.getTagWithModelCount", {"name": name}, what)
        for tag in data if isinstance(data, list) else ():
            if isinstance(tag, Mapping) and isinstance(tag.get("id"), int):
                if str(tag.get("name", "")).lower() == name.lower():
                    return tag["id"], str(tag["name"])
        raise NotFoundError(f"Civitai has no tag {name!r}; check its spelling.")


def encode_cursor(cursor: Any) -> str:
    """A cursor as text for the checkpoint: a number or text as is; anything else as JSON
    (sent back exactly as it came, :func:`_cursor_value`)."""
    if isinstance(cursor, str) and not cursor.startswith(("#", "json:")):
        return cursor
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        return "#" + str(cursor)
    return "json:" + json.dumps(cursor, separators=(",", ":"))


def _cursor_value(text: str) -> Any:
    if text.startswith("#") and text[1:].lstrip("-").isdigit():
        return int(text[1:])
    if text.startswith("json:"):
        try:
            return read_document(text[5:], what="cursor", max_bytes=64 * 1024)
        except DocumentError:
            return text
    return text

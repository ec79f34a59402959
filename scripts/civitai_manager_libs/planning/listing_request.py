"""What one listing asks Civitai, decided before anything is asked or written.

The spec's ``download_*`` arguments become a validated :class:`ListingRequest`: the images-endpoint
parameters (server-side filters included), the NSFW levels, the limit, the client-side filters
and the key its checkpoint is stored under. The downloader plans from it; the CLI also sends its
first page beside the target check (:meth:`ListingRequest.first_page` with
``CivitaiAPI.prefetch_page``), so the listing does not wait for the look-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ..civitai import api as civitai_api
from ..civitai.filters import FilterSpec
from ..civitai.web_listing import WebListing
from ..errors import InvalidQueryError
from ..settings.specs import SPECS
from ..store.paths import ARCHIVE_NAME

#: Target kinds listed through the web API (``civitai/web_listing.py``).
WEB_KINDS = ("collection", "post", "user_posts", "gallery", "reactions", "tag")

#: The levels of a listing asked without any, when the caller passes no default either: the
#: settings table's default (the shells pass the user's ``images.default_nsfw_filter``).
DEFAULT_LEVELS: Sequence[str] = tuple(SPECS["images.default_nsfw_filter"].default)


@dataclass(frozen=True)
class ListingRequest:
    """One listing: ``kind`` (model, version, creator, filter) and ``value`` name it."""

    kind: str
    value: Any
    params: Dict[str, Any]  # what the images endpoint is asked (server-side filters included)
    limit: int  # images kept after filtering; 0: all
    levels: List[str]  # NSFW levels kept
    spec: FilterSpec = field(default_factory=FilterSpec)  # the client-side filters
    # a listing of the web API (collection, post, user's posts, gallery link, reactions, tag):
    # its pages come from that source, ``params`` then holding only the server-side filters
    source: Optional[WebListing] = None
    full: bool = False  # list every page even when a re-run could stop early (--full)

    @property
    def query_key(self) -> str:
        """The listing's name in the archive (its checkpoint, its run options, its incremental
        mark): every field :data:`KEYED` names shapes it, so another option set is another
        listing (a re-run with it lists fully, and never resumes the other's checkpoint)."""
        key = f"{self.kind}:{self.value}|nsfw={','.join(self.levels)}"
        if self.limit:
            key += f"|limit={self.limit}"
        if self.spec.active:
            key += f"|filters={self.spec.key()}"
        extra = self.extra_params()
        if extra:  # e.g. withTags=true: what Civitai answers changes
            key += "|params=" + json.dumps(extra, sort_keys=True, separators=(",", ":"))
        return key

    def extra_params(self) -> Dict[str, Any]:
        """The endpoint parameters that ``kind``, ``value`` and the filters do not imply (an
        option added to ``params``, such as ``withTags``); a parameter they imply but that is
        missing, as None."""
        implied = _plain(self.spec.server_params(_named_params(self.kind, self.value)))
        given = _plain(self.params)
        extra = {k: v for k, v in given.items() if implied.get(k, _MISSING) != v}
        extra.update({k: None for k in implied if k not in given})
        return extra

    @property
    def resumes(self) -> bool:
        """True when the listing resumes from its checkpoint (a whole listing, no limit)."""
        return self.limit == 0

    def page_size(self, most: int) -> int:
        """Items asked per page: ``most``, or the limit when it is smaller and no client-side
        filter may drop images from the page."""
        if self.limit and not self.spec.client_side:
            return min(most, self.limit)
        return most

    def first_page(self, most: int) -> Dict[str, Any]:
        """The arguments of ``CivitaiAPI.get_image_page`` for the first page of a fresh run."""
        return {
            "params": self.params,
            "cursor": None,
            "limit": self.page_size(most),
            "nsfw_levels": self.levels,
        }


_MISSING = object()


def _plain(params: Mapping[str, Any]) -> Dict[str, Any]:
    """``params`` as JSON gives them back (dates and other values as text), to compare."""
    return json.loads(json.dumps(dict(params), sort_keys=True, default=str))


def _named_params(kind: str, value: Any) -> Dict[str, Any]:
    """The endpoint parameters a listing's ``kind`` and ``value`` stand for."""
    if kind == "model":
        return {"modelId": value}
    if kind == "version":
        return {"modelVersionId": value}
    if kind == "creator":
        return {"username": value}
    if kind == "filter":
        return dict(json.loads(value))
    return {}  # a web listing: its value names it, its params hold only the filters


#: How each field of :class:`ListingRequest` enters its :attr:`~ListingRequest.query_key`
#: (tests/test_incremental.py walks the dataclass: a new field must be named here, and a keyed
#: one must change the key). None: a field that changes how a run goes, not what it lists.
KEYED: Dict[str, Optional[str]] = {
    "kind": "the key's head",
    "value": "the key's head (a web listing's value is the canonical form of its site filters)",
    "params": "|params= for every parameter kind, value and filters do not imply",
    "limit": "|limit=",
    "levels": "|nsfw=",
    "spec": "|filters=",
    "source": "its kind and value, which are the request's own",
    "full": None,  # --full: list every page this time
}


def _listing(
    kind: str,
    value: Any,
    params: Dict[str, Any],
    limit: int,
    nsfw_levels: Any,
    filters: Optional[FilterSpec],
    source: Optional[WebListing] = None,
    default_levels: Optional[Sequence[str]] = None,
) -> ListingRequest:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidQueryError(f"limit must be 0 (no limit) or a positive number, got {limit!r}.")
    if nsfw_levels is None:  # the levels the caller's user chose as default (a shell reads them)
        nsfw_levels = default_levels if default_levels is not None else DEFAULT_LEVELS
    levels = list(civitai_api.normalize_levels(nsfw_levels))
    spec = filters if filters is not None else FilterSpec()
    if spec.active:
        params = spec.server_params(params)
    return ListingRequest(kind, value, params, limit, levels, spec, source)


def web_listing(
    source: WebListing,
    limit: int = 0,
    nsfw_levels: Optional[List[str]] = None,
    filters: Optional[FilterSpec] = None,
    default_levels: Optional[Sequence[str]] = None,
) -> ListingRequest:
    """A listing of the web API (``civitai/web_listing.py``): a collection, a post, a user's
    posts, a gallery link, your reactions or a tag's images (``limit`` 0 = all)."""
    value = source.value if not isinstance(source.value, (dict, list)) else str(source.value)
    return _listing(source.kind, value, {}, limit, nsfw_levels, filters, source, default_levels)


def model_listing(
    model_id: int,
    limit: int = 0,
    nsfw_levels: Optional[List[str]] = None,
    filters: Optional[FilterSpec] = None,
    default_levels: Optional[Sequence[str]] = None,
) -> ListingRequest:
    """Every image of a model (``limit`` 0 = all)."""
    model_id = civitai_api.check_id(model_id, "model")
    params = {"modelId": model_id}
    return _listing("model", model_id, params, limit, nsfw_levels, filters, None, default_levels)


def version_listing(
    version_id: int,
    limit: int = 0,
    nsfw_levels: Optional[List[str]] = None,
    filters: Optional[FilterSpec] = None,
    default_levels: Optional[Sequence[str]] = None,
) -> ListingRequest:
    """The images of one model version (``limit`` 0 = all)."""
    version_id = civitai_api.check_id(version_id, "model version")
    params = {"modelVersionId": version_id}
    return _listing(
        "version", version_id, params, limit, nsfw_levels, filters, None, default_levels
    )


def creator_listing(
    username: str,
    limit: int = 20,
    nsfw_levels: Optional[List[str]] = None,
    filters: Optional[FilterSpec] = None,
    default_levels: Optional[Sequence[str]] = None,
) -> ListingRequest:
    """Up to ``limit`` images posted by ``username`` (0 = all)."""
    if not isinstance(username, str) or not username.strip():
        raise InvalidQueryError("A creator's username is needed, e.g. 'someartist'.")
    username = username.strip()
    params = {"username": username}
    return _listing("creator", username, params, limit, nsfw_levels, filters, None, default_levels)


def filtered_listing(
    filter_params: Mapping[str, Any],
    limit: int = 20,
    filters: Optional[FilterSpec] = None,
    default_levels: Optional[Sequence[str]] = None,
) -> ListingRequest:
    """Up to ``limit`` images matching images-endpoint filters (``nsfw`` or ``nsfw_levels``
    included)."""
    if not isinstance(filter_params, Mapping):
        raise InvalidQueryError(
            "Filters must be a mapping such as {'modelId': 1, 'sort': 'Newest'}."
        )
    params = {k: v for k, v in filter_params.items() if v is not None}
    levels = params.pop("nsfw_levels", None)
    if levels is None and params.get("nsfw") not in (None, ""):
        levels = list(civitai_api.levels_of_param(params["nsfw"]))
    params.pop("nsfw", None)
    value = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return _listing("filter", value, params, limit, levels, filters, None, default_levels)


def for_target(
    kind: str,
    value: Any,
    version_id: Optional[int] = None,
    params: Optional[Mapping[str, Any]] = None,
    nsfw_levels: Optional[List[str]] = None,
    filters: Optional[FilterSpec] = None,
    limit: Optional[int] = None,
    default_levels: Optional[Sequence[str]] = None,
) -> Optional[ListingRequest]:
    """The listing of a download target as both shells name it (kind model, version, user,
    image, filter or one of :data:`WEB_KINDS`; ``params`` for a filter, a gallery link or the
    reactions); None for a single image. ``nsfw_levels``, when
    given, win over an ``nsfw`` key in a filter's params, as they do for the gallery's pages.
    ``limit`` None keeps each kind's default (all of a model, version, collection or post, 20
    otherwise)."""
    limit_kw: Dict[str, Any] = {} if limit is None else {"limit": limit}
    limit_kw["default_levels"] = default_levels
    if kind == "model" and version_id:  # a model link naming one version
        kind, value = "version", version_id
    by_kind: Dict[str, Callable[..., ListingRequest]] = {
        "model": model_listing,
        "version": version_listing,
        "user": creator_listing,
    }
    if kind in by_kind:
        return by_kind[kind](value, nsfw_levels=nsfw_levels, filters=filters, **limit_kw)
    if kind == "image":
        return None
    if kind in WEB_KINDS:
        source = WebListing(kind, value, dict(params or {}))
        if limit is None and kind not in ("collection", "post"):  # all of a collection / post
            limit_kw = {"limit": 20, "default_levels": default_levels}
        return web_listing(source, nsfw_levels=nsfw_levels, filters=filters, **limit_kw)
    given = dict(params or {})
    if nsfw_levels is not None:
        given.pop("nsfw", None)
        given["nsfw_levels"] = list(nsfw_levels)
    return filtered_listing(given, filters=filters, **limit_kw)


def first_page_ahead(
    request: Optional[ListingRequest],
    output_path: str,
    page_size: int = civitai_api.MAX_PAGE_SIZE,
    archive: Any = None,
) -> Optional[Dict[str, Any]]:
    """The ``CivitaiAPI.prefetch_page`` arguments of ``request``'s first page when that page is
    certain, else None. A listing that resumes starts at its checkpoint's cursor: known from the
    open ``archive``, and unknown (so not asked ahead) when an archive file is in ``output_path``
    but not open."""
    if request is None or request.source is not None:  # web listings are not asked ahead
        return None
    if request.resumes:
        if archive is not None:
            if archive.get_checkpoint(request.query_key):
                return None
        elif os.path.exists(os.path.join(output_path, ARCHIVE_NAME)):
            return None
    return request.first_page(page_size)


def describe_query_key(query_key: Optional[str]) -> str:
    """What a task's listing was, in a user's words: ``model:4201|nsfw=None,Soft`` -> ``model
    4201``; no key (a single image, a retry) -> ``single image``. The tab's Recent tasks and the
    CLI's ``tasks`` show it."""
    if not query_key:
        return "single image"
    head = query_key.split("|", 1)[0]
    kind, _sep, value = head.partition(":")
    if kind == "filter":
        return "filter " + value.strip("{}").replace('"', "")[:60]
    if kind == "creator":
        return f"user {value}"
    return f"{kind} {value}".strip()

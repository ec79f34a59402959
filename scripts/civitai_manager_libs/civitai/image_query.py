"""Images-endpoint queries: a caller's params made into a request, its wording, its next cursor.

Civitai's ``/api/v1/images`` is paged with cursors only; ``limit``, ``cursor``, ``page``,
``withMeta`` and ``nsfw`` are set by the listing itself, whatever the caller passed.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

from ..settings.specs import SPECS
from .nsfw import Levels, browsing_level, levels_of_param, normalize_levels, nsfw_param
from .query import validate_username

#: The levels kept when neither the caller nor the params name any: the table's default (a shell
#: passes the user's setting, ``images.default_nsfw_filter``).
DEFAULT_LEVELS: Tuple[str, ...] = tuple(SPECS["images.default_nsfw_filter"].default)
# Parameters the listing owns: a caller's values for them are replaced.
CONTROLLED = ("limit", "cursor", "page", "withMeta", "nsfw", "browsingLevel")
#: Sorts Civitai honours on a whole-model listing (``modelId`` without ``modelVersionId``): that
#: query path orders by newest image id for every other sort.
WHOLE_MODEL_SORTS = ("Newest", "Oldest", "Random")


def whole_model_sort_notice(request: Mapping[str, Any]) -> Optional[str]:
    """The sentence telling the user which order Civitai really gives, when the chosen ``sort``
    is one a whole-model listing ignores; None when the order is the one asked for or no sort
    was chosen."""
    if request.get("modelId") is None or request.get("modelVersionId") is not None:
        return None
    sort = request.get("sort")
    if sort in (None, "") or str(sort) in WHOLE_MODEL_SORTS:
        return None  # no sort chosen (a plain download), or one Civitai honours there
    return (
        f"Civitai ignores the sort {str(sort)!r} when listing all versions of model "
        f"{request['modelId']}: the images come newest first. Pick one version to get them "
        "sorted that way."
    )


def build_request(
    params: Optional[Mapping[str, Any]],
    nsfw_levels: Optional[Levels],
    default_levels: Levels = DEFAULT_LEVELS,
) -> Tuple[Dict[str, Any], Tuple[str, ...], Optional[str]]:
    """Split caller params into (request params, wanted levels, start cursor from params).

    The levels are ``nsfw_levels`` when given, else the ``nsfw`` value in ``params`` (read by
    :func:`nsfw.levels_of_param`), else ``default_levels``. The request
    always carries ``withMeta=true``, the exact ``browsingLevel`` of those levels and the
    smallest ``nsfw`` mask covering them. A ``username`` Civitai would refuse is an
    InvalidQueryError before any request.
    """
    given = dict(params or {})
    if nsfw_levels is not None:
        levels = normalize_levels(nsfw_levels)
    elif given.get("nsfw") not in (None, ""):
        levels = levels_of_param(given["nsfw"])
    else:
        levels = normalize_levels(default_levels)
    cursor = given.get("cursor")
    request = {k: v for k, v in given.items() if k not in CONTROLLED and v is not None}
    if "username" in request:  # Civitai answers 400 for anything but ^[A-Za-z0-9_]+$
        request["username"] = validate_username(str(request["username"]))
    request["withMeta"] = "true"
    # ``browsingLevel`` asks for exactly these levels and overrides ``nsfw``; ``nsfw`` (the
    # smallest covering mask) stays for servers that predate it, and the items are still
    # checked one by one (``keep_levels``).
    request["nsfw"] = nsfw_param(levels)
    request["browsingLevel"] = browsing_level(levels)
    return request, levels, (str(cursor) if cursor not in (None, "") else None)


def listing_context(request: Mapping[str, Any]) -> Dict[str, Any]:
    """What the listed items belong to (``model_id``, ``version_id``), for :class:`ImageItem`."""
    return {
        "model_id": request.get("modelId"),
        "version_id": request.get("modelVersionId"),
    }


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
    shown = "&".join(f"{k}={v}" for k, v in params.items() if k not in CONTROLLED)
    return f"images matching {shown}" if shown else "all images"


def read_next_cursor(metadata: Any) -> Optional[str]:
    """The cursor of the next page from a response's ``metadata`` (``nextCursor``, else the
    ``cursor`` of ``nextPage``); None on the last page."""
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

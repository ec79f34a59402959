"""Images-endpoint queries: a caller's params made into a request, its wording, its next cursor.

Civitai's ``/api/v1/images`` is paged with cursors only; ``limit``, ``cursor``, ``page``,
``withMeta`` and ``nsfw`` are set by the listing itself, whatever the caller passed.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

from .. import setting
from .nsfw import Levels, levels_of_param, normalize_levels, nsfw_param

# Parameters the listing owns: a caller's values for them are replaced.
CONTROLLED = ("limit", "cursor", "page", "withMeta", "nsfw")


def build_request(
    params: Optional[Mapping[str, Any]], nsfw_levels: Optional[Levels]
) -> Tuple[Dict[str, Any], Tuple[str, ...], Optional[str]]:
    """Split caller params into (request params, wanted levels, start cursor from params).

    The levels are ``nsfw_levels`` when given, else the ``nsfw`` value in ``params`` (read by
    :func:`nsfw.levels_of_param`), else the setting ``images.default_nsfw_filter``. The request
    always carries ``withMeta=true`` and the smallest ``nsfw`` mask covering those levels.
    """
    given = dict(params or {})
    if nsfw_levels is not None:
        levels = normalize_levels(nsfw_levels)
    elif given.get("nsfw") not in (None, ""):
        levels = levels_of_param(given["nsfw"])
    else:
        levels = normalize_levels(setting.get("images.default_nsfw_filter"))
    cursor = given.get("cursor")
    request = {k: v for k, v in given.items() if k not in CONTROLLED and v is not None}
    request["withMeta"] = "true"
    request["nsfw"] = nsfw_param(levels)
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

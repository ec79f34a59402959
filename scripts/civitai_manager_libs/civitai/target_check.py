"""Does a download target exist on Civitai? Asked by both shells before anything is listed or
written, so the tab and the CLI say the same words ("model 999999999 was not found on Civitai;
...") for the same mistake."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import AuthError, InvalidQueryError
from .web_listing import REACTIONS_NEED_KEY
from ..records import NSFW_LEVELS


def check_target_exists(api: Any, kind: str, value: Any, version_id: Optional[int] = None) -> None:
    """Look the target up; raises ``NotFoundError`` (model, version, image) or
    ``InvalidQueryError`` (a user without images), ``AuthError`` (a private collection or your
    reactions without an API key). Filters, posts and gallery links are not checked (an empty
    match is an answer, not a mistake)."""
    if kind == "model":
        api.get_model(value)
        if version_id:
            api.get_model_version(version_id)
    elif kind == "version":
        api.get_model_version(value)
    elif kind == "image":
        api.get_image(value)
    elif kind == "collection":
        api.get_collection(value)  # AuthError for a private one without a key
    elif kind == "tag":
        api.get_tag(value)
    elif kind == "reactions" and not api.trpc.has_api_key:
        raise AuthError(REACTIONS_NEED_KEY)
    elif kind == "user":
        page = api.get_image_page({"username": value}, limit=1, nsfw_levels=list(NSFW_LEVELS))
        if not page.items:
            raise InvalidQueryError(
                f"no images found for user {value!r} on Civitai; check the spelling "
                "(usernames are case-sensitive)"
            )

"""A civitai.com/images?... or /videos?... link: the site's gallery filters (the web API's
names) a gallery listing passes on."""

from __future__ import annotations

from typing import Any, Dict
from urllib.parse import parse_qsl, urlencode

from ..errors import InvalidQueryError
from .filter_params import ID_NAMES, filter_value
from .query_target import Target, parse_id, show, validate_username

# The site's gallery filters (src/components/Image/image.utils.ts imagesQueryParamSchema) this
# downloader passes on, by kind: lists of ids, lists of names, booleans, choices.
_GALLERY_ID_LISTS = ("tags", "tools", "techniques")

_GALLERY_BOOLS = (
    "hideAutoResources",
    "hideManualResources",
    "fromPlatform",
    "remixesOnly",
    "nonRemixesOnly",
    "requiringMeta",
    "withMeta",
    "hideChallenges",
)

_GALLERY_IGNORED = ("view", "section", "limit", "cursor", "includePG13", "periodMode")

GALLERY_KEYS = (
    ("sort", "period", "baseModels", "types", "username", "modelId", "modelVersionId")
    + _GALLERY_ID_LISTS
    + _GALLERY_BOOLS
)


def gallery_target(page: str, raw_query: str, original: str) -> Target:
    """A civitai.com/images?... or /videos?... link: its query string as the site means it
    (the web API's names), ``types`` set by the page."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=False)
    except ValueError:
        raise InvalidQueryError(f"The link {show(original.strip())} has a malformed query.")
    by_lower = {k.lower(): k for k in GALLERY_KEYS + _GALLERY_IGNORED}
    params: Dict[str, Any] = {}
    for raw_key, raw_value in pairs:
        key = by_lower.get(raw_key.lower())
        if key is None:
            raise InvalidQueryError(
                f"The gallery link's filter {show(raw_key)} is not one this downloader can "
                f"pass on; it knows {', '.join(GALLERY_KEYS)}."
            )
        value = raw_value.strip()
        if key in _GALLERY_IGNORED or not value:
            continue
        if key in _GALLERY_ID_LISTS:
            ids = [parse_id(v.strip(), key[:-1]) for v in value.split(",") if v.strip()]
            params.setdefault(key, []).extend(i for i in ids if i not in params.get(key, []))
        elif key in _GALLERY_BOOLS:
            params[key] = value.lower() == "true"
        elif key == "baseModels":
            params.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif key == "types":
            continue  # the page decides (/images: images, /videos: videos)
        elif key in ("modelId", "modelVersionId"):
            params[key] = parse_id(value, ID_NAMES[key])
        elif key == "username":
            params[key] = validate_username(value)
        else:
            params[key] = filter_value(key, value)
    params["types"] = ["video" if page == "videos" else "image"]
    shown = urlencode(
        [
            (k, ",".join(map(str, v)) if isinstance(v, list) else v)
            for k, v in sorted(params.items())
        ]
    )
    return Target("gallery", f"/{page}?{shown}", params=params)

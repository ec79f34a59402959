"""Turn what a user types (an id, a username, a Civitai link or a filter string) into a Target.

Accepted forms (leading and trailing spaces are ignored):

===================================================  =========================================
input                                                Target
===================================================  =========================================
``123``, ``model 123``, ``model:123``                model 123
``version 456``                                      version 456
``image 789``                                        image 789
``post 12``, ``.../posts/12``                        post 12 (all its images; web API)
``collection 34``, ``.../collections/34``            collection 34 (web API; private: API key)
``tag name``, ``.../tag/name``                       tag ``name`` (its images)
``.../user/name/posts``                              user_posts ``name`` (web API)
``.../user/name/images`` (``/videos``)               filter ``username=name&type=image`` (video)
``.../user/name/images?section=reactions``           reactions (yours; the API key)
``.../images?sort=Newest&...``, ``.../videos?...``   gallery: the site's filters (web API)
``user name``, ``creator name``, ``@name``           user ``name``
``https://civitai.com/models/123[/slug]``            model 123
``.../models/123/slug?modelVersionId=456``           model 123, version_id 456
``.../images/789``                                   image 789
``.../user/name``                                    user ``name``
``.../api/v1/images?modelId=1&sort=Newest``          filter
``.../images?modelId=1&nsfw=X`` (API-only filters)   filter
``username=x&sort=Newest`` (``key=value`` pairs)     filter
===================================================  =========================================

Links must point at Civitai: ``civitai.com``, ``civitai.red`` (its front for every NSFW level,
since April 2026) and ``civitai.green`` (and their subdomains such as ``www.``), the hosts of the
configured Civitai fronts (``civitai_base_url`` and ``civitai_red_base_url``, which may be a local
Civitai: the shells pass them) or a host the caller adds (the CLI's ``--base-url``); a link to
any other website is refused. ``civitai.com/...`` may be written without a scheme. Usernames are
checked before they go anywhere near a URL or a path: separators, ``..``, control characters and
whitespace are refused, also when they arrive percent-encoded.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Optional, Set
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from ..errors import InvalidQueryError
from .filter_params import FILTER_KEYS, parse_filter  # noqa: F401 (the query's API)
from .gallery_link import GALLERY_KEYS, gallery_target  # noqa: F401 (the query's API)
from .query_target import (  # noqa: F401 (the query's API)
    KINDS,
    DIGITS,
    MAX_ID,
    MAX_USERNAME_LENGTH,
    Target,
    parse_id,
    show,
    validate_tag,
    validate_username,
)

# Civitai's own sites (a subdomain of one, e.g. www.civitai.com, is accepted too).
CIVITAI_HOSTS = ("civitai.com", "civitai.red", "civitai.green")
MAX_INPUT_LENGTH = 2000

ACCEPTED_FORMS = (
    "a model id (123), 'model 123', 'version 456', 'image 789', 'post 12', 'collection 34', "
    "'tag name', a creator ('user name' or '@name'), a Civitai link (.../models/123, "
    ".../models/123/slug?modelVersionId=456, .../images/789, .../user/name[/images|/videos|"
    "/posts], .../posts/12, .../collections/34, .../tag/name, .../images?sort=Newest, "
    ".../videos?period=Week) or filters such as 'username=name&sort=Newest'"
)


_KEYWORD = re.compile(
    r"(?P<kw>models?|model[-_ ]?versions?|versions?|images?|img|posts?|users?|creators?)"
    r"(?:\s*[:#=]\s*|\s+)(?P<value>\S+)",
    re.IGNORECASE,
)
# 'tag x', 'collection 7' ('tags=x' stays a filter)
_WEB_KEYWORD = re.compile(
    r"(?P<kw>collections?|tags?)(?:\s*[:#]\s*|\s+)(?P<value>\S+)", re.IGNORECASE
)
_AT_NAME = re.compile(r"@(?P<value>\S+)")
_BARE_HOST = re.compile(r"(?:[\w-]+\.)+[a-z]{2,}(?::\d+)?/|[\w.-]+:\d+/", re.IGNORECASE)
_USER_TABS = ("images", "videos", "posts", "models", "collections", "articles", "reviews")
_KEYWORD_KINDS = {
    "model": "model",
    "models": "model",
    "version": "version",
    "versions": "version",
    "image": "image",
    "images": "image",
    "img": "image",
    "post": "post",
    "posts": "post",
    "user": "user",
    "users": "user",
    "creator": "user",
    "creators": "user",
    "collection": "collection",
    "collections": "collection",
    "tag": "tag",
    "tags": "tag",
}


def parse_query(text: str, extra_hosts: Iterable[Optional[str]] = ()) -> Target:
    """Parse one user input into a :class:`Target`; raises InvalidQueryError naming the forms.

    A link is accepted on Civitai's hosts and the hosts (or base URLs) in ``extra_hosts`` (the
    shells add the configured fronts); a link to another website raises InvalidQueryError.
    """
    if not isinstance(text, str):
        raise InvalidQueryError(f"Expected text to search for, got {type(text).__name__}.")
    stripped = text.strip()
    if not stripped:
        raise InvalidQueryError(f"Nothing to look up: enter {ACCEPTED_FORMS}.")
    if len(stripped) > MAX_INPUT_LENGTH:
        raise InvalidQueryError(
            f"The input is {len(stripped)} characters long; enter at most {MAX_INPUT_LENGTH}: "
            f"{ACCEPTED_FORMS}."
        )
    if DIGITS.fullmatch(stripped):
        return Target("model", parse_id(stripped, "model"))
    if stripped.lower().startswith(("http://", "https://")) or stripped.startswith("/"):
        return _parse_url(stripped, text, extra_hosts)
    if _BARE_HOST.match(stripped):
        return _parse_url("https://" + stripped, text, extra_hosts)
    match = _AT_NAME.fullmatch(stripped)
    if match:
        return Target("user", validate_username(match.group("value")))
    match = _KEYWORD.fullmatch(stripped) or _WEB_KEYWORD.fullmatch(stripped)
    if match:
        return _keyword_target(match.group("kw").lower(), match.group("value"))
    if "=" in stripped:
        return _parse_filter(stripped.lstrip("?"), text)
    raise _not_understood(text)


def target_to_params(target: Target) -> Dict[str, Any]:
    """The images-endpoint parameters that list a target's images (no paging or NSFW keys)."""
    if target.kind == "model":
        params: Dict[str, Any] = {"modelId": target.value}
        if target.version_id is not None:
            params["modelVersionId"] = target.version_id
        return params
    if target.kind == "version":
        return {"modelVersionId": target.value}
    if target.kind == "user":
        return {"username": target.value}
    if target.kind == "image":
        return {"imageId": target.value}
    if target.kind == "filter":
        return dict(target.params or {})
    if target.kind in KINDS:  # web listings: their own source; no images-endpoint params
        return {}
    raise InvalidQueryError(f"Unknown target kind {target.kind!r}; expected one of {KINDS}.")


# -- helpers ---------------------------------------------------------------------------------


def _not_understood(text: str) -> InvalidQueryError:
    return InvalidQueryError(f"Could not understand {show(text.strip())}: enter {ACCEPTED_FORMS}.")


def _keyword_target(keyword: str, value: str) -> Target:
    kind = _KEYWORD_KINDS.get(keyword)
    if kind is None and keyword.replace("_", "-").replace(" ", "-").startswith("model-version"):
        kind = "version"
    if kind is None and keyword.startswith("modelversion"):
        kind = "version"
    if kind == "user":
        return Target("user", validate_username(value.lstrip("@")))
    if kind == "tag":
        return Target("tag", validate_tag(unquote(value)))
    if kind in ("model", "version", "image", "post", "collection"):
        return Target(kind, parse_id(value.lstrip("#"), kind))
    raise _not_understood(f"{keyword} {value}")


def _filter_target(params: Dict[str, Any]) -> Target:
    return Target("filter", urlencode(params), params=params)


def _hostname(text: Optional[str]) -> Optional[str]:
    """The lower-case host of a base URL or bare host name (``None`` when there is none)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        host = urlsplit(text if "//" in text else "//" + text).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def allowed_hosts(extra_hosts: Iterable[Optional[str]] = ()) -> Set[str]:
    """Hosts a link may name besides Civitai's: those of ``extra_hosts`` (host names or base
    URLs; the shells pass the configured fronts, ``transport.client_options.configured_fronts``)."""
    hosts = {_hostname(h) for h in extra_hosts}
    return {h for h in hosts if h}


def _check_host(host: Optional[str], original: str, extra_hosts: Iterable[Optional[str]]) -> None:
    host = (host or "").lower().rstrip(".")
    if any(host == h or host.endswith("." + h) for h in CIVITAI_HOSTS):
        return
    if host in allowed_hosts(extra_hosts):
        return
    raise InvalidQueryError(
        f"The link {show(original.strip())} points to {host or 'no host'}, not Civitai: paste a "
        "link from civitai.com or civitai.red (or from the Civitai address in the settings)."
    )


def _parse_url(url: str, original: str, extra_hosts: Iterable[Optional[str]] = ()) -> Target:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise InvalidQueryError(
            f"The link {show(original.strip())} is malformed ({exc})."
        ) from None
    if parts.scheme and parts.scheme.lower() not in ("http", "https"):
        raise _not_understood(original)
    if parts.scheme and not parts.netloc:
        raise _not_understood(original)
    if parts.netloc:
        _check_host(host, original, extra_hosts)
    # Split the raw (still encoded) path so an encoded '/' stays inside its segment.
    segments = [seg for seg in parts.path.split("/") if seg]
    query = _query_dict(parts.query, original)
    if not segments:
        raise _not_understood(original)
    head = segments[0].lower()
    rest = segments[1:]
    if head == "models" and rest:
        model_id = parse_id(unquote(rest[0]), "model")
        version = (query.get("modelversionid") or "").strip()
        version_id = parse_id(version, "model version") if version else None
        return Target("model", model_id, version_id=version_id)
    if head == "images" and len(rest) == 1:
        return Target("image", parse_id(unquote(rest[0]), "image"))
    if head == "images" and not rest and parts.query:
        try:  # a gallery link (the site's filters, web API) first ...
            return gallery_target(head, parts.query, original)
        except InvalidQueryError as gallery_error:
            try:  # ... else the site's feed with the API's own filters: .../images?nsfw=X
                return _parse_api_url(["images"], parts.query, original)
            except InvalidQueryError:
                raise gallery_error from None
    if head == "posts" and len(rest) == 1:
        return Target("post", parse_id(unquote(rest[0]), "post"))
    if head == "collections" and len(rest) == 1:
        return Target("collection", parse_id(unquote(rest[0]), "collection"))
    if head == "tag" and len(rest) == 1:
        return Target("tag", validate_tag(unquote(rest[0])))
    if head in ("images", "videos") and not rest:
        return gallery_target(head, parts.query, original)
    if head == "user" and rest and (len(rest) == 1 or rest[1].lower() in _USER_TABS):
        if len(rest) > 2:
            raise _not_understood(original)
        name = validate_username(unquote(rest[0]))
        tab = rest[1].lower() if len(rest) == 2 else ""
        if tab in ("images", "videos") and query.get("section", "").lower() == "reactions":
            return reactions_target(None, media=tab[:-1])
        if tab in ("images", "videos"):  # one kind of media only, as the tab shows
            return _filter_target({"username": name, "type": tab[:-1]})
        if tab == "posts":
            return Target("user_posts", name)
        return Target("user", name)
    if head == "api" and len(rest) >= 2 and rest[0].lower() == "v1":
        return _parse_api_url(rest[1:], parts.query, original)
    raise _not_understood(original)


def reactions_target(kinds: Optional[Iterable[str]], media: Optional[str] = None) -> Target:
    """Your reactions (Like, Dislike, Heart, Laugh, Cry; all by default); needs the API key."""
    by_lower = {k.lower(): k for k in REACTION_KINDS}
    chosen = []
    for kind in kinds or REACTION_KINDS:
        canonical = by_lower.get(str(kind).strip().lower())
        if canonical is None:
            raise InvalidQueryError(
                f"Unknown reaction {show(str(kind))}; use a comma list of "
                f"{','.join(REACTION_KINDS)}."
            )
        if canonical not in chosen:
            chosen.append(canonical)
    params: Dict[str, Any] = {"reactions": chosen}
    if media:
        params["types"] = [media]
    value = ",".join(chosen) + (f" ({media}s)" if media else "")
    return Target("reactions", value, params=params)


#: The reactions Civitai keeps (ReviewReactions).
REACTION_KINDS = ("Like", "Dislike", "Heart", "Laugh", "Cry")


def _parse_api_url(rest: list, raw_query: str, original: str) -> Target:
    endpoint = rest[0].lower()
    if endpoint == "images" and len(rest) == 1:
        if not raw_query:
            raise InvalidQueryError(
                "An images API link needs filters (e.g. ?modelId=123); listing every image on "
                "Civitai is not supported."
            )
        return _parse_filter(raw_query, original)
    if endpoint == "models" and len(rest) == 2:
        return Target("model", parse_id(unquote(rest[1]), "model"))
    if endpoint == "model-versions" and len(rest) == 2:
        return Target("version", parse_id(unquote(rest[1]), "model version"))
    raise _not_understood(original)


def _query_dict(raw_query: str, original: str) -> Dict[str, str]:
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True)
    except ValueError:
        raise InvalidQueryError(
            f"The link {show(original.strip())} has a malformed query."
        ) from None
    return {key.lower(): value for key, value in pairs}


def _parse_filter(text: str, original: str) -> Target:
    params = parse_filter(text)
    if params is None:
        raise _not_understood(original)
    return _filter_target(params)

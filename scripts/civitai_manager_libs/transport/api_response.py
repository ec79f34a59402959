"""Read a Civitai API answer: the JSON object it carries, or the typed error its status means."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

import requests

from ..errors import (
    ApiError,
    AuthError,
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from ..util.documents import DocumentError, NotFiniteError, read_document
from ..util.logging_setup import redact
from .retry_policy import retry_after_seconds

#: The largest decoded API answer read (a real page of 200 items with meta is well under 10 MB).
MAX_API_BYTES = 32 * 1024 * 1024
_READ = 16 * 1024  # compressed bytes per read: bounds what one read may inflate to
#: Nesting kept from an answer too deep for Python's decoder (the size cap bounds the work; the
#: listing then skips the item that was cut as malformed, the rest of the page is kept).
PRUNED_DEPTH = 128


def read_capped(response: requests.Response, safe: str, limit: int = MAX_API_BYTES) -> bytes:
    """The decoded body of a streamed ``response``, read a little at a time and counted: an answer
    that inflates past ``limit`` is an InvalidResponseError before it can fill the memory. The
    body is also left on ``response`` (``.content``/``.text``/``.json()`` keep working)."""
    if getattr(response, "_content_consumed", False) or response.raw is None:
        body = response.content or b""
    else:
        pieces = []
        total = 0
        try:
            while True:
                piece = response.raw.read(_READ, decode_content=True)
                if not piece:
                    break
                total += len(piece)
                if total > limit:
                    response.close()
                    raise InvalidResponseError(
                        f"Civitai answered {safe} with more than {limit // 2**20} MB of data once "
                        "decoded, far more than any real answer; it was not read further. Check "
                        "the civitai_base_url setting (--base-url / CIVITAI_BASE_URL).",
                        status=response.status_code,
                        url=safe,
                    )
                pieces.append(piece)
        except InvalidResponseError:
            raise
        except Exception as exc:  # urllib3 decode/protocol errors: one sentence, no traceback
            raise InvalidResponseError(
                f"Civitai's answer to {safe} could not be read ({type(exc).__name__}).",
                status=response.status_code,
                url=safe,
            ) from None
        body = b"".join(pieces)
        response._content = body
        setattr(response, "_content_consumed", True)
    return body


def status_error(
    response: requests.Response, safe: str, *, retries: int, has_api_key: bool
) -> ApiError:
    """The typed error for a non-2xx answer; ``safe`` is the request URL without secrets."""
    status = response.status_code
    server = server_message(response)
    said = f": {server}" if server else ""
    common: Dict[str, Any] = dict(status=status, url=safe, server_message=server)
    if status in (404, 410):
        return NotFoundError(
            f"Civitai found nothing at {safe} (HTTP {status}){said}. Check the id or URL.",
            **common,
        )
    if status in (401, 403):
        hint = (
            "The API key was rejected or lacks access: check civitai_api_key (CIVITAI_API_KEY)."
            if has_api_key
            else "This content needs an API key: set civitai_api_key (or CIVITAI_API_KEY)."
        )
        return AuthError(
            f"Civitai refused access to {safe} (HTTP {status}){said}. {hint}", **common
        )
    if status == 429:
        wait = retry_after_seconds(response.headers)
        return RateLimitedError(
            f"Civitai is rate limiting us (HTTP 429) on {safe} after {retries} "
            f"retries{said}. Wait a few minutes or lower images.max_concurrent, then retry.",
            retry_after=wait,
            **common,
        )
    if status >= 500:
        return ServerError(
            f"Civitai had a server error (HTTP {status}) on {safe} after {retries} "
            f"retries{said}. Try again later.",
            **common,
        )
    if 400 <= status < 500:
        return BadRequestError(
            f"Civitai refused the request {safe} (HTTP {status}){said}. Check the parameters.",
            **common,
        )
    return InvalidResponseError(
        f"Civitai answered {safe} with an unexpected HTTP {status} instead of JSON.", **common
    )


def server_message(response: requests.Response) -> Optional[str]:
    """The server's own ``error``/``message`` text (or a short plain-text body), redacted."""
    try:
        read_capped(response, "", limit=1024 * 1024)
        body = response.text
    except (requests.exceptions.RequestException, InvalidResponseError):
        return None
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        content_type = response.headers.get("Content-Type", "").lower()
        if "html" in content_type or body.lstrip().startswith("<"):
            return None
        return redact(body.strip()[:200]) or None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if value:
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                return redact(text[:300])
    return None


def decode_json_object(response: requests.Response, safe: str) -> dict:
    """The body as a JSON object, or InvalidResponseError saying what arrived instead."""
    content_type = response.headers.get("Content-Type", "")
    read_capped(response, safe)
    try:
        # the one reader (util/documents): NaN / Infinity refused; nested too deep for Python's
        # decoder: the page is kept with what is deeper than any real answer cut (the listing
        # then skips the item that held it as malformed)
        data = read_document(
            response.content,
            what="answer",
            max_bytes=MAX_API_BYTES,
            max_depth=None,
            prune_depth=PRUNED_DEPTH,
        )
    except NotFiniteError:
        raise InvalidResponseError(
            f"Civitai answered {safe} with a number that is not finite (NaN or Infinity); the "
            "answer was not used.",
            status=response.status_code,
            url=safe,
        ) from None
    except DocumentError:
        raise _not_json(response, safe, content_type) from None
    if not isinstance(data, dict):
        raise InvalidResponseError(
            f"Civitai answered {safe} with JSON of type {type(data).__name__} where an object was "
            "expected.",
            status=response.status_code,
            url=safe,
        )
    return data


def _not_json(response: requests.Response, safe: str, content_type: str) -> InvalidResponseError:
    body = response.content[:64].lstrip().lower()
    if "html" in content_type.lower() or body.startswith((b"<!doctype", b"<html")):
        what = "an HTML page (maybe a Cloudflare check or maintenance page)"
    elif not response.content:
        what = "an empty body"
    else:
        what = f"something that is not JSON ({content_type or 'no Content-Type'})"
    return InvalidResponseError(
        f"Civitai answered {safe} with {what}. Try again later; if it persists, check the "
        "Civitai address: the civitai_base_url setting, or --base-url / CIVITAI_BASE_URL for "
        "the command line.",
        status=response.status_code,
        url=safe,
    )

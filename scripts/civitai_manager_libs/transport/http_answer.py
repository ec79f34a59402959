"""What the answer to a file download says: its Content-Range (a resume that fits or not), the
validator a resume sends back as If-Range, and the body as it arrives, never decoded."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Optional, Tuple

import requests
from urllib3 import exceptions as urllib3_exceptions

from ..errors import DownloadError, RefusedUrlError
from ..util.logging_setup import redact
from ..util.url_gate import check_download_url

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
# Errors that mean "the body stopped arriving": resume from what is on disk.
STREAM_ERRORS = (requests.exceptions.RequestException, urllib3_exceptions.HTTPError)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)


def unsatisfied_size(value: Optional[str]) -> Optional[int]:
    """The size a 416 answer's ``bytes */size`` names (None when malformed)."""
    match = _UNSATISFIED_RANGE.match(value or "")
    return int(match.group(1)) if match else None


def body_chunks(response: requests.Response, size: int) -> Iterator[bytes]:
    """The body as it arrives. ``read1`` hands over every byte received before a cut (a full-size
    ``read`` would drop a partial chunk when the connection breaks), so resuming loses nothing."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # pragma: no cover - urllib3 < 2.3
        yield from raw.stream(size, decode_content=False)
        return
    while True:
        # Never decoded: a Content-Encoding on media is saved as sent (or refused by the sniff),
        # so a small gzip body cannot inflate into gigabytes on disk.
        data = read1(size, decode_content=False)
        if not data:
            return
        yield data


def validator(headers) -> Optional[str]:
    """A strong ETag, else Last-Modified: what If-Range may carry (RFC 9110 section 13.1.5)."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def int_header(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """``(start, total)`` from ``bytes a-b/total``; ``(None, None)`` when malformed."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    start, end, total = match.groups()
    if int(end) < int(start):
        return None, None
    return int(start), None if total == "*" else int(total)


def status_error(response: requests.Response, safe_url: str) -> DownloadError:
    """The typed error of an answer that is not the file (the caller drops a 404's ``.part``)."""
    status = response.status_code
    if status in (404, 410):
        what = "was not found (HTTP %d); it may have been deleted" % status
    elif status in (401, 403):
        what = "was refused (HTTP %d); it may need a valid API key" % status
    elif status == 429:
        what = "was rate limited (HTTP 429) even after retries; wait a while and retry"
    elif status >= 500:
        what = "failed with a server error (HTTP %d) after retries; try again later" % status
    else:
        what = "got an unexpected answer (HTTP %d)" % status
    return DownloadError(f"The download of {safe_url} {what}.", url=safe_url, status=status)


def redirect_gate(trusted_hosts: Tuple[str, ...], safe_url: str) -> Callable[..., Any]:
    """The response hook that passes every redirect's target through the URL gate before it is
    requested (it runs on each response, before requests follows its Location)."""

    def check_hop(response: requests.Response, *args: Any, **kwargs: Any) -> Any:
        if response.is_redirect:
            target = requests.compat.urljoin(response.url, response.headers.get("Location", ""))
            try:
                check_download_url(target, trusted_hosts, redact(target))
            except RefusedUrlError as exc:
                response.close()
                raise RefusedUrlError(
                    f"{safe_url} redirected to a refused address. {exc}", url=safe_url
                ) from None
        return response

    return check_hop

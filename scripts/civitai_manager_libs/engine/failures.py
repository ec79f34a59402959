"""Turns a download error into the one sentence a user reads in a task, a toast or a report."""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

import requests

from ..errors import (
    ApiError,
    AuthError,
    CivitaiGalleryError,
    DiskSpaceError,
    DownloadError,
    IncompleteDownloadError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransferFailedError,
    UnexpectedContentError,
)
from ..transport.failure_reason import transport_reason
from ..transport.host_gate import origin_of

# transport_reason()'s words for a connection that never opened
CONNECT_REASONS = frozenset(
    {
        "the connection was refused",
        "the host name could not be resolved",
        "the connection timed out",
    }
)

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG)


def is_disk_full(exc: BaseException) -> bool:
    """True for DiskSpaceError and for an OSError saying the disk (or file size limit) is full."""
    return isinstance(exc, DiskSpaceError) or getattr(exc, "errno", None) in DISK_FULL_ERRNOS


def describe_failure(exc: BaseException, output_root: str) -> str:
    """A sentence for a user from a download error."""
    status = getattr(exc, "status", None)
    if is_disk_full(exc):
        return f"disk full: free space on {output_root}"
    if isinstance(exc, UnexpectedContentError):
        return "the server sent a web page instead of an image"
    if status == 404 or isinstance(exc, NotFoundError):
        return "HTTP 404: the image is no longer on Civitai"
    if status in (401, 403) or isinstance(exc, AuthError):
        return (
            f"HTTP {status or 403}: this image needs a valid Civitai API key "
            "(set civitai_api_key in Settings)"
        )
    if status == 429 or isinstance(exc, RateLimitedError):
        return "HTTP 429: Civitai kept asking to slow down; retry the failed images later"
    if isinstance(exc, ServerError) or (isinstance(status, int) and status >= 500):
        return f"HTTP {status}: Civitai's image server failed; retry the failed images later"
    if isinstance(exc, IncompleteDownloadError):
        return "the download was cut off before the end; retry to resume it"
    if isinstance(exc, TransferFailedError):
        origin = origin_of(exc.url or "")
        if exc.reason in CONNECT_REASONS:  # never connected: the host is unreachable
            return f"host unreachable: {origin} ({exc.reason})"
        return f"network error: {exc.reason} ({_host(origin)}); check the connection and retry"
    if isinstance(exc, NetworkError):
        return f"network error: {exc}; check the connection and retry"
    if isinstance(exc, (requests.RequestException, ConnectionError, TimeoutError)):
        # an OSError too: not the output folder's fault
        return f"network error: {transport_reason(exc)}; check the connection and retry"
    if isinstance(exc, (CivitaiGalleryError, ApiError, DownloadError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"could not write the file ({exc.strerror or exc}); check the output folder"
    return f"unexpected error: {exc}"


# -- failures grouped by reason (issue 24 item 2) --------------------------------------------------

# What the user can do about a group; each shell words it (the CLI in cli/report.py, the tab in
# its own language).
HINT_NETWORK = "network"  # check the network, then retry the failed images
HINT_LATER = "later"  # Civitai's side: retry the failed images later
HINT_RESUME = "resume"  # retrying resumes the cut-off downloads
HINT_API_KEY = "api_key"  # a valid Civitai API key is needed
HINT_FREE_SPACE = "free_space"  # free space on the output folder's disk, then retry
HINT_OUTPUT_FOLDER = "output_folder"  # the output folder could not be written

SAMPLE_IDS = 3


@dataclass(frozen=True)
class FailureGroup:
    """Failures that share one reason: ``count`` of them, the smallest ``sample_ids``, the
    ``hint`` key (one of the ``HINT_*``, or None when retrying would not help)."""

    reason: str
    count: int
    sample_ids: Tuple[Any, ...]
    hint: Optional[str]

    @property
    def more(self) -> int:
        """How many ids ``sample_ids`` leaves out."""
        return self.count - len(self.sample_ids)


_HOST_DOWN = re.compile(r"^host unreachable: (\S+)")
_HTTP = re.compile(r"^HTTP (\d{3})\b")


def _host(origin: str) -> str:
    parts = urlsplit(origin)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or origin
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def failure_kind(reason: str) -> Tuple[str, Optional[str]]:
    """The group a failure's sentence belongs to: a short reason (the real cause) and its hint.
    The sentences come from :func:`describe_failure` and the transport's ``HostGate``."""
    text = (reason or "failed").strip()
    down = _HOST_DOWN.match(text)
    if down:
        return f"host unreachable ({_host(down.group(1))})", HINT_NETWORK
    if text.startswith("network error"):
        return "network error", HINT_NETWORK
    http = _HTTP.match(text)
    if http:
        status = int(http.group(1))
        if status == 404:
            return "no longer on Civitai (HTTP 404)", None
        if status in (401, 403):
            return f"needs a Civitai API key (HTTP {status})", HINT_API_KEY
        if status == 429:
            return "Civitai asked to slow down (HTTP 429)", HINT_LATER
        if status >= 500:
            return f"Civitai's server failed (HTTP {status})", HINT_LATER
        return f"HTTP {status}", None
    if text.startswith("disk full"):
        return "disk full", HINT_FREE_SPACE
    if text.startswith("the server sent a web page"):
        return "the server sent a web page instead of an image", HINT_LATER
    if text.startswith("the download was cut off"):
        return "the download was cut off", HINT_RESUME
    if text.startswith("could not write the file"):
        return text.split(";", 1)[0], HINT_OUTPUT_FOLDER
    return text.split(";", 1)[0], None


def group_failures(
    failures: Iterable[Tuple[Any, str]], samples: int = SAMPLE_IDS
) -> List[FailureGroup]:
    """``(image id, reason)`` pairs grouped by reason, the largest group first (then by reason);
    each group keeps its count, its smallest ``samples`` ids and its hint. The same failures read
    the same whatever order parallel downloads ended in. One function for the CLI's report and the
    tab's status: each renders the groups in its own words."""
    order: Dict[Tuple[str, Optional[str]], List[Any]] = {}
    for image_id, reason in failures:
        order.setdefault(failure_kind(str(reason)), []).append(image_id)
    groups = [
        FailureGroup(reason, len(ids), tuple(sorted(ids, key=_id_order)[:samples]), hint)
        for (reason, hint), ids in order.items()
    ]
    return sorted(groups, key=lambda group: (-group.count, group.reason))


def _id_order(image_id: Any) -> Tuple[int, int, str]:
    """Numeric ids by value, anything else (a name, None) after them by its text."""
    if isinstance(image_id, int) and not isinstance(image_id, bool):
        return (0, image_id, "")
    return (1, 0, str(image_id))

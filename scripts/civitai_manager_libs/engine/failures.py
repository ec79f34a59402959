"""Turns a download error into the one sentence a user reads in a task, a toast or a report."""

from __future__ import annotations

import errno

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
    UnexpectedContentError,
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
    if isinstance(exc, NetworkError):
        return f"network error: {exc}; check the connection and retry"
    if isinstance(exc, (CivitaiGalleryError, ApiError, DownloadError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"could not write the file ({exc.strerror or exc}); check the output folder"
    return f"unexpected error: {exc}"

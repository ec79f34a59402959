"""Typed errors shared by every stage; each carries a sentence a user can act on."""

from __future__ import annotations

from typing import Optional


class CivitaiGalleryError(Exception):
    """Base class for every error this package raises on purpose."""


class SettingsError(CivitaiGalleryError, ValueError):
    """A setting has an unknown key or a value of the wrong type or range."""


class TemplateError(CivitaiGalleryError, ValueError):
    """A path template names an unknown field or is otherwise unusable."""


class InvalidQueryError(CivitaiGalleryError, ValueError):
    """User input (an id, URL, username or filter) cannot be understood."""


class ApiError(CivitaiGalleryError):
    """The Civitai API answered with an error or with something that is not the expected JSON.

    ``status`` is the HTTP status (None when no response arrived), ``url`` the request URL with any
    token removed, ``server_message`` the ``error`` text the server sent, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        url: Optional[str] = None,
        server_message: Optional[str] = None,
    ):
        super().__init__(message)
        self.status = status
        self.url = url
        self.server_message = server_message


class NotFoundError(ApiError):
    """404: the model, version, image or user does not exist (or is hidden)."""


class BadRequestError(ApiError):
    """400: Civitai refused the parameters; ``server_message`` says why."""


class AuthError(ApiError):
    """401/403: the content needs a (valid) API key."""


class RateLimitedError(ApiError):
    """429 after every retry: Civitai asks us to slow down."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx after every retry."""


class InvalidResponseError(ApiError):
    """The body is not the JSON (or not the media) that was expected."""


class NetworkError(ApiError):
    """No usable response: connection refused or reset, DNS failure, timeout."""


class DownloadError(CivitaiGalleryError):
    """A file could not be downloaded; the final path was not written."""

    def __init__(self, message: str, *, url: Optional[str] = None, status: Optional[int] = None):
        super().__init__(message)
        self.url = url
        self.status = status


class TransferFailedError(DownloadError):
    """No usable answer from the file's host (refused, name not resolved, timed out, connection
    broken); ``reason`` says which in a few words."""

    def __init__(self, message: str, *, reason: str = "", url: Optional[str] = None):
        super().__init__(message, url=url)
        self.reason = reason


class UnexpectedContentError(DownloadError):
    """The server sent HTML/JSON (or other non-media) where an image or video was expected.

    ``kind`` names what arrived ("html", "json", "markup", "empty", "unknown"): callers decide by
    it, never by the wording of the message (``tests/test_failure_types.py``)."""

    def __init__(
        self,
        message: str,
        *,
        url: Optional[str] = None,
        status: Optional[int] = None,
        kind: str = "unknown",
    ):
        super().__init__(message, url=url, status=status)
        self.kind = kind


class IncompleteDownloadError(DownloadError):
    """The body ended before Content-Length bytes arrived, even after resuming."""


class FileTooLargeError(DownloadError):
    """The file is larger than ``images.max_file_size_mb``; nothing was kept."""


class RefusedContentError(DownloadError):
    """The body arrived but is refused: it does not decode (a truncated picture or video served
    whole) or it came content-encoded (media is never decoded); nothing was saved."""


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes do not have the SHA-256 the server lists; nothing was kept."""


class DownloadCancelledError(DownloadError):
    """The download was cancelled; a resumable ``.part`` file may remain."""


class DiskSpaceError(CivitaiGalleryError, OSError):
    """Not enough free space (before a batch) or the disk filled up during a write."""


class OutputPathError(CivitaiGalleryError, OSError):
    """The output folder cannot be created or written (read-only, permission denied)."""


class ConfinementError(OutputPathError):
    """A write, rename or delete would leave the output root or go through a symbolic link the
    tool did not create; nothing was written."""


class OutputBusyError(OutputPathError):
    """Another process is already downloading into the output folder (it holds its lock)."""


class MetadataError(CivitaiGalleryError):
    """Generation data could not be written in the requested format."""


class ArchiveError(CivitaiGalleryError):
    """The archive file cannot be used (damaged, from a newer version, locked, or closed)."""


class RefusedUrlError(DownloadError):
    """A download URL (or a redirect hop) leads where downloads never go: not https, a private,
    link-local or cloud-metadata address. Refused once, never retried."""

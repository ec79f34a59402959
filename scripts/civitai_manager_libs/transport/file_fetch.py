"""Stream one URL to disk: ``.part`` file, Range resume, sniffing, sha256, fsync, atomic rename.

A fetch has two halves. :meth:`FileFetch.receive` is the network half: the body arrives whole in
the ``.part`` file (closed, typed, hashed). :meth:`FileFetch.commit` is the local half: fsync, the
decode check, the rename into place and the folder's fsync. :meth:`FileFetch.run` does both; a
caller with many files (the downloader) commits elsewhere, so the connection serves its next
request instead of waiting on the disk.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Tuple

import requests
from urllib3 import exceptions as urllib3_exceptions

from ..errors import (
    RefusedUrlError,
    ChecksumMismatchError,
    DiskSpaceError,
    DownloadCancelledError,
    DownloadError,
    FileTooLargeError,
    IncompleteDownloadError,
    OutputPathError,
    RefusedContentError,
    TransferFailedError,
    UnexpectedContentError,
)
from .host_gate import HostGate, origin_of
from ..util.logging_setup import redact
from ..util.url_gate import check_download_url
from .media_sniff import (
    MEDIA_EXTENSIONS,
    SNIFF_BYTES,
    describe_non_media,
    media_kind,
    mime_for,
    non_media_kind,
)
from ..records import DownloadResult
from ..store import confined
from .media_check import check_complete
from .retry_policy import RetryCancelled, cancel_scope
from .failure_reason import transport_reason as _reason

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, Optional[int]], None]
#: ``(first bytes, Content-Type) -> extension or None``: what counts as the expected content.
ContentCheck = Callable[[bytes, Optional[str]], Optional[str]]

CHUNK_SIZE = 64 * 1024
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)
# Suffixes that fix_extension replaces; any other suffix is part of the name and is kept.
# Suffixes ``fix_extension`` may replace: every media extension plus their aliases.
_REPLACEABLE_SUFFIXES = set(MEDIA_EXTENSIONS) | {".jpg", ".jpe", ".jfif", ".bin", ".tmp"}
# Errors that mean "the body stopped arriving": resume from what is on disk.
_STREAM_ERRORS = (requests.exceptions.RequestException, urllib3_exceptions.HTTPError)
FREE_CHECK_EVERY = 8 * 1024 * 1024  # bytes written between two free-space checks
DEFAULT_MAX_BYTES = 2048 * 1024 * 1024


class _Cut(Exception):
    """Internal: the body ended early; ``.part`` holds a valid prefix (or nothing)."""


@dataclass
class ReceivedFile:
    """A body received whole into ``fetch.part`` (closed, typed and hashed, not yet synced or
    checked): :meth:`commit` makes it the final file."""

    fetch: "FileFetch"
    kind: str  # the media extension the first bytes showed
    size: int
    sha256: str

    def commit(self) -> DownloadResult:
        """Sync, check and rename into place (see :meth:`FileFetch.commit`)."""
        return self.fetch.commit(self)


@dataclass
class FetchPolicy:
    """How one download behaves on the wire."""

    timeout: Tuple[float, float]
    max_attempts: int = 5
    backoff_factor: float = 0.5
    chunk_size: int = CHUNK_SIZE
    max_bytes: Optional[int] = DEFAULT_MAX_BYTES  # images.max_file_size_mb; None: no cap
    # what set max_bytes, as the refusal names it
    cap_reason: str = "setting images.max_file_size_mb"
    min_free_bytes: int = 0  # images.min_free_space_mb, kept while the body is written


def final_path(filepath: str, extension: Optional[str]) -> str:
    """``filepath`` with its media suffix replaced by ``extension`` (or ``extension`` appended)."""
    if not extension:
        return filepath
    stem, suffix = os.path.splitext(filepath)
    if suffix.lower() in _REPLACEABLE_SUFFIXES:
        return stem + extension
    return filepath + extension


def _remove(path: str) -> None:
    """Remove a ``.part`` the fetch wrote; a symbolic link is never the fetch's own: left alone."""
    if os.path.islink(path):
        return
    confined.remove(path)


def _fsync_dir(folder: str) -> None:
    """Make the rename durable; some platforms cannot open a directory, which is not an error."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError as exc:
        logger.debug("Cannot open %s to sync the rename: %s", folder, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        logger.debug("Cannot sync directory %s: %s", folder, exc)
    finally:
        os.close(fd)


def _close_failed(handle) -> None:
    """Close a file whose write just failed; the buffered rest fails to flush again (EFBIG or
    ENOSPC once more), which must not mask the first error: the caller removes the file anyway."""
    try:
        handle.close()
    except OSError as exc:
        logger.debug("Closing %s after a failed write failed too: %s", handle.name, exc)


def _disk_error(exc: OSError, part: str, safe_url: str) -> Exception:
    """Turn a write failure into the typed error, removing the ``.part`` file."""
    _remove(part)
    err: Exception
    if exc.errno in _DISK_FULL:
        err = DiskSpaceError(
            f"The disk filled up while saving {safe_url} to {part}; the partial file was removed. "
            "Free some space or choose another output folder."
        )
    else:
        err = OutputPathError(
            f"Cannot write {part} ({exc.strerror or exc}); check that the output folder exists "
            "and is writable."
        )
    err.errno = exc.errno
    return err


class FileFetch:
    """One download of ``url`` to ``filepath`` through ``session`` (see :meth:`run`)."""

    def __init__(
        self,
        session: requests.Session,
        policy: FetchPolicy,
        host_gate: HostGate,
        url: str,
        filepath: str,
        progress_callback: Optional[ProgressCallback] = None,
        cancel_event: Optional[threading.Event] = None,
        fix_extension: bool = False,
        root: Optional[str] = None,
        content_kind: ContentCheck = media_kind,
        expected_sha256: Optional[str] = None,
        trusted_hosts: Tuple[str, ...] = (),
    ):
        self.session = session
        self.policy = policy
        self.host_gate = host_gate
        self.url = url
        self.filepath = os.fspath(filepath)
        self.part = self.filepath + ".part"
        # Every file this fetch writes, renames or deletes stays inside ``root``.
        self.root = (
            os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(self.filepath))
        )
        self._checked_free = 0
        self.progress = progress_callback
        self.cancel_event = cancel_event
        self.fix_extension = fix_extension
        # Images and videos by default; model files pass their own check (resources/fetch).
        self.content_kind = content_kind
        self.expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        # hosts reached over plain http or at a private address (the base URL's); url_gate
        self.trusted_hosts = trusted_hosts
        self.resumed = False
        # The validator of the response the .part was started from: resumes within this call
        # send it as If-Range, so a file changed on the server restarts instead of mixing.
        self.validator: Optional[str] = None

    @functools.cached_property
    def safe_url(self) -> str:
        """The URL as messages show it (secrets masked); worked out only when a message needs it."""
        return redact(self.url)

    # -- driver -----------------------------------------------------------------------------

    def run(self) -> DownloadResult:
        """Download and commit: the final file, or a typed error (nothing partial in place)."""
        return self.commit(self.receive())

    def receive(self) -> ReceivedFile:
        """The network half: the whole body in ``.part`` (resumed and retried as needed)."""
        check_download_url(self.url, self.trusted_hosts, self.safe_url)  # before anything
        folder = os.path.dirname(os.path.abspath(self.filepath))
        try:
            confined.ensure_dir(folder, self.root)
            confined.check_target(self.part, self.root)
            confined.check_target(self.filepath, self.root)
        except confined.ConfinementError:
            raise
        except OSError as exc:
            raise OutputPathError(
                f"Cannot create the folder {folder} ({exc.strerror or exc}); choose an output "
                "folder you can write to."
            ) from None
        attempt = 0
        while True:
            self._check_cancel(self._part_size())
            try:
                return self._attempt()
            except _Cut as cut:
                attempt += 1
                if attempt > self.policy.max_attempts:
                    raise IncompleteDownloadError(
                        f"The download of {self.safe_url} kept breaking off ({cut}) after "
                        f"{attempt} attempts; the partial file is kept for the next run.",
                        url=self.safe_url,
                    ) from None
                delay = min(10.0, self.policy.backoff_factor * (2 ** (attempt - 1)))
                logger.info(
                    "Download of %s interrupted (%s); resuming in %.1f s (attempt %d of %d).",
                    self.safe_url,
                    cut,
                    delay,
                    attempt + 1,
                    self.policy.max_attempts + 1,
                )
                if delay > 0 and self.cancel_event is not None:
                    self.cancel_event.wait(delay)
                elif delay > 0:
                    threading.Event().wait(delay)

    def _part_size(self) -> int:
        return confined.regular_size(self.part) or 0

    def _check_cancel(self, done: int) -> None:
        if self.cancel_event is not None and self.cancel_event.is_set():
            kept = f"; {done} bytes kept in {self.part} for resume" if done else ""
            raise DownloadCancelledError(
                f"The download of {self.safe_url} was cancelled{kept}.", url=self.safe_url
            )

    # -- one request ------------------------------------------------------------------------

    def _attempt(self) -> ReceivedFile:
        offset = self._part_size()
        if not self.host_gate.wait(origin_of(self.url), self.cancel_event):
            self._check_cancel(offset)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.validator:
                headers["If-Range"] = self.validator
        try:
            with cancel_scope(self.cancel_event):
                response = self.session.get(
                    self.url,
                    headers=headers,
                    stream=True,
                    timeout=self.policy.timeout,
                    hooks={"response": self._check_hop},
                )
        except RetryCancelled:
            raise DownloadCancelledError(
                f"The download of {self.safe_url} was cancelled while waiting to retry.",
                url=self.safe_url,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TransferFailedError(
                f"Could not download {self.safe_url}: {_reason(exc)}. Check your network "
                "connection and try again.",
                reason=_reason(exc),
                url=self.safe_url,
            ) from None
        with response:
            return self._handle(response, offset)

    def _check_hop(self, response: requests.Response, *args: Any, **kwargs: Any) -> Any:
        """Every redirect's target passes the URL gate before it is requested (the hook runs on
        each response, before requests follows its Location)."""
        if response.is_redirect:
            target = requests.compat.urljoin(response.url, response.headers.get("Location", ""))
            try:
                check_download_url(target, self.trusted_hosts, redact(target))
            except RefusedUrlError as exc:
                response.close()
                raise RefusedUrlError(
                    f"{self.safe_url} redirected to a refused address. {exc}", url=self.safe_url
                ) from None
        return response

    def _handle(self, response: requests.Response, offset: int) -> ReceivedFile:
        status = response.status_code
        if status == 416 and offset:
            return self._handle_unsatisfiable(response, offset)
        if status not in (200, 206):
            raise self._status_error(response)
        content_type = response.headers.get("Content-Type")
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in (
            "",
            "identity",
        )
        length = _int_header(response.headers.get("Content-Length"))
        if status == 200 and length is not None:
            self._check_size(length, 0)
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start is None or start != offset:
                logger.info(
                    "%s answered the Range request for byte %d with Content-Range %r; "
                    "starting over from zero.",
                    self.safe_url,
                    offset,
                    response.headers.get("Content-Range"),
                )
                _remove(self.part)
                raise _Cut("mismatched Content-Range")
            if total is None and length is not None:
                total = offset + length
            if total is not None:
                self._check_size(total, offset)
            return self._stream(response, offset, total, content_type, encoded)
        if offset:
            logger.info(
                "%s ignored the Range request (HTTP 200); downloading it again from the start.",
                self.safe_url,
            )
        # The body is read as sent (never decoded): Content-Length counts exactly those bytes.
        return self._stream(response, 0, length, content_type, encoded)

    def _handle_unsatisfiable(self, response: requests.Response, offset: int) -> ReceivedFile:
        match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            logger.debug("%s: the partial file is already complete.", self.safe_url)
            self.resumed = True
            return self._finish_from_part(offset, None)
        logger.info(
            "%s: the partial file does not fit the remote file; starting over.", self.safe_url
        )
        _remove(self.part)
        raise _Cut("stale partial file")

    def _check_size(self, total: int, offset: int) -> None:
        """Refuse, before writing, a file over the size cap or over the free space."""
        cap = self.policy.max_bytes
        if cap is not None and total > cap:
            _remove(self.part)
            raise FileTooLargeError(
                f"{self.safe_url} announces {_mb(total)}, more than the largest file accepted "
                f"({_mb(cap)}, {self.policy.cap_reason}); nothing was saved.",
                url=self.safe_url,
            )
        folder = os.path.dirname(os.path.abspath(self.part))
        free = shutil.disk_usage(folder).free
        if total <= offset and free < self.policy.min_free_bytes:
            raise DiskSpaceError(
                f"Only {_mb(free)} free on {folder}, under the {_mb(self.policy.min_free_bytes)} "
                f"kept free (setting images.min_free_space_mb); {self.safe_url} was not started. "
                "Free some space or choose another output folder."
            )
        if total - offset > free - self.policy.min_free_bytes and total > offset:
            raise DiskSpaceError(
                f"{self.safe_url} announces {_mb(total - offset)} still to download and only "
                f"{_mb(free)} are free on {folder} (keeping {_mb(self.policy.min_free_bytes)}, "
                "setting images.min_free_space_mb); nothing was written. Free some space."
            )

    def _status_error(self, response: requests.Response) -> DownloadError:
        status = response.status_code
        if status in (404, 410):
            _remove(self.part)
            what = "was not found (HTTP %d); it may have been deleted" % status
        elif status in (401, 403):
            what = "was refused (HTTP %d); it may need a valid API key" % status
        elif status == 429:
            what = "was rate limited (HTTP 429) even after retries; wait a while and retry"
        elif status >= 500:
            what = "failed with a server error (HTTP %d) after retries; try again later" % status
        else:
            what = "got an unexpected answer (HTTP %d)" % status
        return DownloadError(
            f"The download of {self.safe_url} {what}.", url=self.safe_url, status=status
        )

    # -- body -------------------------------------------------------------------------------

    def _stream(
        self,
        response: requests.Response,
        offset: int,
        total: Optional[int],
        content_type: Optional[str],
        encoded: bool,
    ) -> ReceivedFile:
        hasher = hashlib.sha256()
        head = b""
        if offset:
            head = self._hash_prefix(hasher)
        chunks = _body_chunks(response, self.policy.chunk_size)
        pending = []
        done = offset
        try:
            # Hold the first bytes in memory until the type is known: nothing that is not media
            # is ever written to disk.
            while len(head) < SNIFF_BYTES:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                pending.append(chunk)
                head += chunk
        except _STREAM_ERRORS as exc:
            raise _Cut(_reason(exc)) from None
        # An encoded body is kept only when its raw bytes are media themselves (a mislabelled
        # header): the Content-Type is not trusted for bytes the server says it encoded.
        kind = self.content_kind(head, None if encoded else content_type)
        if kind is None and offset:
            logger.info("%s: the partial file is not media; starting over.", self.safe_url)
            _remove(self.part)
            raise _Cut("the partial file was not media")
        if kind is None:
            _remove(self.part)
            if encoded:
                raise RefusedContentError(
                    f"{self.safe_url} sent its body with Content-Encoding "
                    f"{response.headers.get('Content-Encoding')!r}; media is only saved exactly as "
                    "sent, never decoded, and these bytes are not an image or video. Nothing was "
                    "saved.",
                    url=self.safe_url,
                    status=response.status_code,
                )
            what = describe_non_media(head, content_type)
            raise UnexpectedContentError(
                f"{self.safe_url} sent {what} instead of an "
                "image or video; nothing was saved. The file may have been removed or the host "
                "may be showing an error page.",
                url=self.safe_url,
                status=response.status_code,
                kind=non_media_kind(head, content_type),
            )
        # "Resumed" means the final file keeps bytes fetched by an earlier request.
        self.resumed = offset > 0
        if not offset:
            self.validator = _validator(response.headers)
        if total is None:
            # no size announced: at least the minimum free space must be there to begin
            self._check_size(offset, offset)
        try:
            handle = confined.open_write(self.part, self.root, append=bool(offset))
        except confined.ConfinementError:
            raise
        except OSError as exc:
            raise _disk_error(exc, self.part, self.safe_url) from None
        with handle:
            for chunk in pending:
                done = self._write(handle, hasher, chunk, done, total)
            try:
                for chunk in chunks:
                    if chunk:
                        done = self._write(handle, hasher, chunk, done, total)
                    self._check_cancel_with(handle, done)
            except _STREAM_ERRORS as exc:
                self._sync(handle)
                if encoded:
                    _remove(self.part)
                raise _Cut(_reason(exc)) from None
            self._check_cancel_with(handle, done)
            if total is not None and done < total:
                self._sync(handle)
                if encoded:
                    _remove(self.part)
                raise _Cut(f"got {done} of {total} bytes")
            if total is not None and done > total:
                _remove(self.part)
                raise IncompleteDownloadError(
                    f"{self.safe_url} sent {done} bytes but announced {total}; nothing was saved.",
                    url=self.safe_url,
                )
            try:
                handle.flush()  # synced by commit(), off the connection's time
            except OSError as exc:
                _close_failed(handle)
                raise _disk_error(exc, self.part, self.safe_url) from None
        return ReceivedFile(self, kind, done, hasher.hexdigest())

    def _write(self, handle, hasher, chunk: bytes, done: int, total: Optional[int]) -> int:
        cap = self.policy.max_bytes
        if cap is not None and done + len(chunk) > cap:
            _close_failed(handle)
            _remove(self.part)
            raise FileTooLargeError(
                f"{self.safe_url} sent more than the largest file accepted ({_mb(cap)}, "
                f"{self.policy.cap_reason}); the download was stopped and nothing was saved.",
                url=self.safe_url,
            )
        try:
            handle.write(chunk)
        except OSError as exc:
            _close_failed(handle)
            raise _disk_error(exc, self.part, self.safe_url) from None
        hasher.update(chunk)
        done += len(chunk)
        if done - self._checked_free >= FREE_CHECK_EVERY:
            self._checked_free = done
            self._keep_free_space(handle)
        if self.progress is not None:
            self.progress(done, total)
        return done

    def _keep_free_space(self, handle) -> None:
        """Stop the stream when the disk goes under ``images.min_free_space_mb``."""
        folder = os.path.dirname(os.path.abspath(self.part))
        free = shutil.disk_usage(folder).free
        if free >= self.policy.min_free_bytes:
            return
        _close_failed(handle)
        _remove(self.part)
        raise DiskSpaceError(
            f"Only {_mb(free)} left on {folder} while saving {self.safe_url}, under the "
            f"{_mb(self.policy.min_free_bytes)} kept free (setting images.min_free_space_mb); "
            "the partial file was removed. Free some space or choose another output folder."
        )

    def _sync(self, handle) -> None:
        try:
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            _close_failed(handle)
            raise _disk_error(exc, self.part, self.safe_url) from None

    def _check_cancel_with(self, handle, done: int) -> None:
        if self.cancel_event is not None and self.cancel_event.is_set():
            self._sync(handle)
            self._check_cancel(done)

    def _hash_prefix(self, hasher) -> bytes:
        """Feed the existing ``.part`` into ``hasher``; returns its first bytes for sniffing."""
        head = b""
        with confined.open_read(self.part, self.root) as existing:
            while True:
                block = existing.read(1024 * 1024)
                if not block:
                    break
                if len(head) < SNIFF_BYTES:
                    head += block[: SNIFF_BYTES - len(head)]
                hasher.update(block)
        if self.progress is not None:
            self.progress(self._part_size(), None)
        return head

    def _finish_from_part(self, size: int, content_type: Optional[str]) -> ReceivedFile:
        hasher = hashlib.sha256()
        head = self._hash_prefix(hasher)
        kind = self.content_kind(head, content_type)
        if kind is None:
            _remove(self.part)
            raise _Cut("the partial file is not media")
        return ReceivedFile(self, kind, size, hasher.hexdigest())

    def commit(self, received: ReceivedFile) -> DownloadResult:
        """The local half: fsync ``.part``, check its checksum and that it decodes, rename it to
        the final name (the media extension with ``fix_extension``) and sync the folder."""
        kind, size, sha256 = received.kind, received.size, received.sha256
        try:
            with confined.open_write(self.part, self.root, append=True) as handle:
                os.fsync(handle.fileno())
        except confined.ConfinementError:
            raise
        except OSError as exc:
            raise _disk_error(exc, self.part, self.safe_url) from None
        if self.expected_sha256 and sha256.lower() != self.expected_sha256:
            _remove(self.part)
            raise ChecksumMismatchError(
                f"{self.safe_url} arrived with SHA-256 {sha256[:12]}… but the server lists "
                f"{self.expected_sha256[:12]}…; the damaged file was deleted. Try again later.",
                url=self.safe_url,
            )
        target = final_path(self.filepath, kind) if self.fix_extension else self.filepath
        problem = check_complete(self.part, kind)
        if problem is not None:
            _remove(self.part)
            raise RefusedContentError(
                f"{self.safe_url} was received whole but {problem}; nothing was saved (the host "
                "may have sent a damaged or truncated file).",
                url=self.safe_url,
            )
        try:
            confined.replace(self.part, target, self.root)
        except confined.ConfinementError:
            raise
        except OSError as exc:
            raise _disk_error(exc, self.part, self.safe_url) from None
        _fsync_dir(os.path.dirname(os.path.abspath(target)))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Saved %s (%d bytes) to %s", self.safe_url, size, target)
        return DownloadResult(
            path=target, size=size, content_type=mime_for(kind), sha256=sha256, resumed=self.resumed
        )


def _body_chunks(response: requests.Response, size: int) -> Iterator[bytes]:
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


def _mb(size: int) -> str:
    size = max(0, size)  # a size is never shown negative
    if size >= 1024**3:
        return f"{size / 1024 ** 3:.1f} GiB"
    return f"{size / 1024 ** 2:.1f} MB"


def _validator(headers) -> Optional[str]:
    """A strong ETag, else Last-Modified: what If-Range may carry (RFC 9110 section 13.1.5)."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _int_header(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """``(start, total)`` from ``bytes a-b/total``; ``(None, None)`` when malformed."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    start, end, total = match.groups()
    if int(end) < int(start):
        return None, None
    return int(start), None if total == "*" else int(total)

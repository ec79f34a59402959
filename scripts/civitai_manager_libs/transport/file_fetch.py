"""Stream one URL to disk: ``.part`` file, Range resume, sniffing, sha256, fsync, atomic rename.

A fetch has two halves. :meth:`FileFetch.receive` is the network half: the body arrives whole in
the ``.part`` file (closed, typed, hashed). :meth:`FileFetch.commit` is the local half: fsync, the
decode check, the rename into place and the folder's fsync. :meth:`FileFetch.run` does both; a
caller with many files (the downloader) commits elsewhere, so the connection serves its next
request instead of waiting on the disk.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import requests

from ..errors import (
    ChecksumMismatchError,
    DownloadCancelledError,
    FileTooLargeError,
    IncompleteDownloadError,
    OutputPathError,
    RefusedContentError,
    TransferFailedError,
    UnexpectedContentError,
)
from .host_gate import HostGate, origin_of
from .pacing import RateLimit
from ..util.logging_setup import redact
from ..util.url_gate import check_download_url
from .media_sniff import SNIFF_BYTES, describe_non_media, media_kind, mime_for, non_media_kind
from ..records import DownloadResult
from ..store import confined
from ..store.file_path import FilePath
from .disk_guard import (
    FREE_CHECK_EVERY,
    close_failed,
    disk_error,
    shown_size,
    check_size,
    keep_free_space,
)
from .http_answer import (
    STREAM_ERRORS,
    body_chunks,
    content_range,
    int_header,
    validator,
    redirect_gate,
    status_error,
    unsatisfied_size,
)
from .media_check import check_complete
from .retry_policy import RetryCancelled, cancel_scope
from .failure_reason import transport_reason

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, Optional[int]], None]
#: ``(first bytes, Content-Type) -> extension or None``: what counts as the expected content.
ContentCheck = Callable[[bytes, Optional[str]], Optional[str]]

CHUNK_SIZE = 64 * 1024
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
    rate_limit: Optional[float] = None  # --limit-rate: bytes per second (transport/pacing)
    clock: Callable[[], float] = time.monotonic  # the rate limit's (tests inject both)
    sleep: Callable[[float], None] = time.sleep


class FileFetch:
    """One download of ``url`` to ``filepath`` through ``session`` (see :meth:`run`); a
    :class:`FilePath` names the ``.part``, the real extension and the rename into place."""

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
        # Every file this fetch writes, renames or deletes stays inside ``name.root``.
        self.name = FilePath(filepath, root, fix_extension)
        self._checked_free = 0
        self._rate: Optional[RateLimit] = None  # --limit-rate, from the first chunk written
        self.progress = progress_callback
        self.cancel_event = cancel_event
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
        try:
            self.name.prepare()
        except confined.ConfinementError:
            raise
        except OSError as exc:
            folder = os.path.dirname(self.name.realpath())
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
        return self.name.temp_size()

    def _check_cancel(self, done: int) -> None:
        if self.cancel_event is not None and self.cancel_event.is_set():
            kept = f"; {done} bytes kept in {self.name.temp} for resume" if done else ""
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
                    hooks={"response": redirect_gate(self.trusted_hosts, self.safe_url)},
                )
        except RetryCancelled:
            raise DownloadCancelledError(
                f"The download of {self.safe_url} was cancelled while waiting to retry.",
                url=self.safe_url,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TransferFailedError(
                f"Could not download {self.safe_url}: {transport_reason(exc)}. Check your network "
                "connection and try again.",
                reason=transport_reason(exc),
                url=self.safe_url,
            ) from None
        with response:
            return self._handle(response, offset)

    def _handle(self, response: requests.Response, offset: int) -> ReceivedFile:
        status = response.status_code
        if status == 416 and offset:
            return self._handle_unsatisfiable(response, offset)
        if status not in (200, 206):
            if status in (404, 410):
                self.name.discard()
            raise status_error(response, self.safe_url)
        content_type = response.headers.get("Content-Type")
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in (
            "",
            "identity",
        )
        length = int_header(response.headers.get("Content-Length"))
        if status == 200 and length is not None:
            check_size(self.policy, self.name, self.safe_url, length, 0)
        if status == 206:
            start, total = content_range(response.headers.get("Content-Range"))
            if start is None or start != offset:
                logger.info(
                    "%s answered the Range request for byte %d with Content-Range %r; "
                    "starting over from zero.",
                    self.safe_url,
                    offset,
                    response.headers.get("Content-Range"),
                )
                self.name.discard()
                raise _Cut("mismatched Content-Range")
            if total is None and length is not None:
                total = offset + length
            if total is not None:
                check_size(self.policy, self.name, self.safe_url, total, offset)
            return self._stream(response, offset, total, content_type, encoded)
        if offset:
            logger.info(
                "%s ignored the Range request (HTTP 200); downloading it again from the start.",
                self.safe_url,
            )
        # The body is read as sent (never decoded): Content-Length counts exactly those bytes.
        return self._stream(response, 0, length, content_type, encoded)

    def _handle_unsatisfiable(self, response: requests.Response, offset: int) -> ReceivedFile:
        if unsatisfied_size(response.headers.get("Content-Range")) == offset:
            logger.debug("%s: the partial file is already complete.", self.safe_url)
            self.resumed = True
            return self._finish_from_part(offset, None)
        logger.info(
            "%s: the partial file does not fit the remote file; starting over.", self.safe_url
        )
        self.name.discard()
        raise _Cut("stale partial file")

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
        chunks = body_chunks(response, self.policy.chunk_size)
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
        except STREAM_ERRORS as exc:
            raise _Cut(transport_reason(exc)) from None
        # An encoded body is kept only when its raw bytes are media themselves (a mislabelled
        # header): the Content-Type is not trusted for bytes the server says it encoded.
        kind = self.content_kind(head, None if encoded else content_type)
        if kind is None and offset:
            logger.info("%s: the partial file is not media; starting over.", self.safe_url)
            self.name.discard()
            raise _Cut("the partial file was not media")
        if kind is None:
            self.name.discard()
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
            self.validator = validator(response.headers)
        if total is None:
            # no size announced: at least the minimum free space must be there to begin
            check_size(self.policy, self.name, self.safe_url, offset, offset)
        try:
            handle = self.name.open_temp(append=bool(offset))
        except confined.ConfinementError:
            raise
        except OSError as exc:
            raise disk_error(exc, self.name, self.safe_url) from None
        with handle:
            for chunk in pending:
                done = self._write(handle, hasher, chunk, done, total)
            try:
                for chunk in chunks:
                    if chunk:
                        done = self._write(handle, hasher, chunk, done, total)
                    self._check_cancel_with(handle, done)
            except STREAM_ERRORS as exc:
                self._sync(handle)
                if encoded:
                    self.name.discard()
                raise _Cut(transport_reason(exc)) from None
            self._check_cancel_with(handle, done)
            if total is not None and done < total:
                self._sync(handle)
                if encoded:
                    self.name.discard()
                raise _Cut(f"got {done} of {total} bytes")
            if total is not None and done > total:
                self.name.discard()
                raise IncompleteDownloadError(
                    f"{self.safe_url} sent {done} bytes but announced {total}; nothing was saved.",
                    url=self.safe_url,
                )
            try:
                handle.flush()  # synced by commit(), off the connection's time
            except OSError as exc:
                close_failed(handle)
                raise disk_error(exc, self.name, self.safe_url) from None
        return ReceivedFile(self, kind, done, hasher.hexdigest())

    def _write(self, handle, hasher, chunk: bytes, done: int, total: Optional[int]) -> int:
        cap = self.policy.max_bytes
        if cap is not None and done + len(chunk) > cap:
            close_failed(handle)
            self.name.discard()
            raise FileTooLargeError(
                f"{self.safe_url} sent more than the largest file accepted ({shown_size(cap)}, "
                f"{self.policy.cap_reason}); the download was stopped and nothing was saved.",
                url=self.safe_url,
            )
        try:
            handle.write(chunk)
        except OSError as exc:
            close_failed(handle)
            raise disk_error(exc, self.name, self.safe_url) from None
        hasher.update(chunk)
        done += len(chunk)
        if self.policy.rate_limit:
            if self._rate is None:
                self._rate = RateLimit(self.policy.rate_limit, self.policy.clock, self.policy.sleep)
            self._rate.sent(len(chunk))
        if done - self._checked_free >= FREE_CHECK_EVERY:
            self._checked_free = done
            keep_free_space(self.policy, self.name, self.safe_url, handle)
        if self.progress is not None:
            self.progress(done, total)
        return done

    def _sync(self, handle) -> None:
        try:
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            close_failed(handle)
            raise disk_error(exc, self.name, self.safe_url) from None

    def _check_cancel_with(self, handle, done: int) -> None:
        if self.cancel_event is not None and self.cancel_event.is_set():
            self._sync(handle)
            self._check_cancel(done)

    def _hash_prefix(self, hasher) -> bytes:
        """Feed the existing ``.part`` into ``hasher``; returns its first bytes for sniffing."""
        head = b""
        with self.name.read_temp() as existing:
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
            self.name.discard()
            raise _Cut("the partial file is not media")
        return ReceivedFile(self, kind, size, hasher.hexdigest())

    def commit(self, received: ReceivedFile) -> DownloadResult:
        """The local half: fsync ``.part``, check its checksum and that it decodes, rename it to
        the final name (the media extension with ``fix_extension``) and sync the folder."""
        kind, size, sha256 = received.kind, received.size, received.sha256
        try:
            with self.name.open_temp(append=True) as handle:
                os.fsync(handle.fileno())
        except confined.ConfinementError:
            raise
        except OSError as exc:
            raise disk_error(exc, self.name, self.safe_url) from None
        if self.expected_sha256 and sha256.lower() != self.expected_sha256:
            self.name.discard()
            raise ChecksumMismatchError(
                f"{self.safe_url} arrived with SHA-256 {sha256[:12]}… but the server lists "
                f"{self.expected_sha256[:12]}…; the damaged file was deleted. Try again later.",
                url=self.safe_url,
            )
        problem = check_complete(self.name.temp, kind)
        if problem is not None:
            self.name.discard()
            raise RefusedContentError(
                f"{self.safe_url} was received whole but {problem}; nothing was saved (the host "
                "may have sent a damaged or truncated file).",
                url=self.safe_url,
            )
        try:
            target = self.name.finalize(kind)
        except confined.ConfinementError:
            raise
        except OSError as exc:
            raise disk_error(exc, self.name, self.safe_url) from None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Saved %s (%d bytes) to %s", self.safe_url, size, target)
        return DownloadResult(
            path=target, size=size, content_type=mime_for(kind), sha256=sha256, resumed=self.resumed
        )

"""The retry policy as data: a urllib3 ``Retry`` with jittered backoff and shared 429 pauses."""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from .host_gate import HostGate, origin_key

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PAUSE_STATUSES = frozenset({429, 503})
#: Civitai's bulkhead (a busy pod: ``503`` with ``Retry-After: 2`` and "Server busy, please retry
#: shortly." or "Image search is temporarily overloaded — please retry.") is a pause, not a
#: failure: that many such answers in a row are waited out before the retry budget is spent.
BULKHEAD_PAUSES = 30


def retry_after_seconds(headers) -> Optional[float]:
    """``Retry-After`` (seconds or HTTP date) from headers, uncapped; None if absent or bad."""
    raw = headers.get("Retry-After") if headers is not None else None
    if raw is None:
        return None
    try:
        return _UNCAPPED.parse_retry_after(str(raw))
    except InvalidHeader:
        logger.warning("Ignoring an unreadable Retry-After header %r", str(raw)[:40])
        return None


class CivitaiRetry(Retry):
    """``Retry`` for Civitai: GET/HEAD only, 429/5xx, capped ``Retry-After``, host-wide pauses.

    Differences from the stock policy:

    * the backoff starts at the first retry (``backoff_factor * 2**(n-1)`` plus up to
      ``backoff_jitter`` seconds): Civitai's Cloudflare 429s usually carry no ``Retry-After``;
    * a 429/503 closes the :class:`HostGate` of that origin for the wait, so every thread holds
      back, and every retry waits for the gate before going out again;
    * an unparseable ``Retry-After`` falls back to the backoff instead of raising.
    """

    RETRY_AFTER_STATUS_CODES = PAUSE_STATUSES

    def __init__(
        self,
        *args: Any,
        host_gate: Optional[HostGate] = None,
        origin: Optional[str] = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.host_gate = host_gate
        self.origin = origin

    @classmethod
    def build(
        cls,
        max_retries: int,
        backoff_factor: float,
        retry_after_cap: float,
        host_gate: Optional[HostGate] = None,
    ) -> "CivitaiRetry":
        """The project's policy for ``max_retries`` retries."""
        max_retries = max(0, int(max_retries))
        return cls(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            redirect=None,
            allowed_methods=frozenset({"GET", "HEAD"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=max(0.0, float(backoff_factor)),
            backoff_jitter=max(0.0, float(backoff_factor)) / 2,
            backoff_max=max(1.0, float(retry_after_cap)),
            retry_after_max=max(0.0, float(retry_after_cap)),
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            host_gate=host_gate,
        )

    def new(self, **kw: Any) -> "CivitaiRetry":
        retry = super().new(**kw)
        retry.host_gate = self.host_gate
        retry.origin = self.origin
        return retry

    def increment(
        self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None
    ):
        origin = origin_key(_pool.scheme, _pool.host, _pool.port) if _pool is not None else None
        if origin is not None and self.host_gate is not None:
            # a host refusing connection after connection is down: no more retries to it
            if error is not None and self._is_connection_error(error):
                if self.host_gate.connect_failed(origin):
                    raise MaxRetryError(_pool, url, error) from error
            elif self.host_gate.unreachable(origin) and error is not None:
                raise MaxRetryError(_pool, url, error) from error
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if origin is not None:
            retry.origin = origin
        if self._bulkhead(response) and _bulkhead_streak(retry.history) <= BULKHEAD_PAUSES:
            # "busy, come back in N s": waited out without spending the retry budget
            retry.total, retry.status = self.total, self.status
        return retry

    def _bulkhead(self, response) -> bool:
        if getattr(response, "status", None) != 503:
            return False
        asked = self.requested_wait(response)
        return asked is not None and asked > 0

    def attempts(self) -> int:
        """Retries already made (the length of the current error streak)."""
        return len(self.history)

    def get_backoff_time(self) -> float:
        streak = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            streak += 1
        if streak == 0:
            return 0.0
        value = self.backoff_factor * (2 ** (streak - 1))
        if self.backoff_jitter:
            value += random.random() * self.backoff_jitter
        return float(max(0.0, min(self.backoff_max, value)))

    def requested_wait(self, response) -> Optional[float]:
        """The server's ``Retry-After`` in seconds (uncapped), or None if absent or unparseable."""
        return retry_after_seconds(response.headers if response is not None else None)

    def pause_for(self, response) -> float:
        """How long to hold back after ``response``: Retry-After (capped) or the backoff."""
        asked = self.requested_wait(response)
        if asked is None or asked <= 0:
            return self.get_backoff_time()
        return min(asked, self.retry_after_max)

    def sleep(self, response=None) -> None:  # noqa: D401 - urllib3's hook
        status = getattr(response, "status", None)
        delay = self.pause_for(response) if response is not None else self.get_backoff_time()
        where = self.origin or "the server"
        retry_no = self.attempts()
        gate, origin = self.host_gate, self.origin
        if status in PAUSE_STATUSES:
            asked = self.requested_wait(response)
            if asked is not None and asked > 0:
                capped = (
                    f" (capped from {_secs(asked)} s by the http_retry_after_cap setting)"
                    if asked > self.retry_after_max
                    else ""
                )
                logger.warning(
                    "Civitai asked us to wait %s s (HTTP %d) before contacting %s again%s; "
                    "pausing every download to that host, then retry %d.",
                    _secs(delay),
                    status,
                    where,
                    capped,
                    retry_no,
                )
            else:
                logger.warning(
                    "HTTP %d from %s without Retry-After; backing off %s s, then retry %d.",
                    status,
                    where,
                    _secs(delay),
                    retry_no,
                )
            if gate is not None and origin:
                gate.pause(origin, delay, f"HTTP {status}")
            else:
                _cancellable_sleep(delay)
        else:
            # retry details are for -v: the default output stays one line per problem
            if status is not None:
                logger.debug(
                    "HTTP %d from %s; retry %d in %s s.", status, where, retry_no, _secs(delay)
                )
            else:
                logger.debug(
                    "Connection problem with %s; retry %d in %s s.", where, retry_no, _secs(delay)
                )
            _cancellable_sleep(delay)
        if gate is not None and origin and not gate.wait(origin, current_cancel_event()):
            raise RetryCancelled("cancelled while waiting to retry")


def _bulkhead_streak(history) -> int:
    """How many 503 answers end ``history`` in a row."""
    streak = 0
    for entry in reversed(history):
        if entry.status != 503:
            break
        streak += 1
    return streak


def _secs(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() or value >= 10 else f"{value:.1f}"


# -- cancellation of retry waits ------------------------------------------------------------------

_local = threading.local()


class RetryCancelled(Exception):
    """Raised out of a retry wait when the calling thread's cancel event is set."""


def current_cancel_event() -> Optional[threading.Event]:
    """The cancel event of the request running in this thread (see :func:`cancel_scope`)."""
    return getattr(_local, "event", None)


@contextmanager
def cancel_scope(event: Optional[threading.Event]) -> Iterator[None]:
    """Let retry waits and host pauses of requests made in this block end early on ``event``."""
    previous = getattr(_local, "event", None)
    _local.event = event
    try:
        yield
    finally:
        _local.event = previous


def _cancellable_sleep(delay: float) -> None:
    if delay <= 0:
        return
    event = current_cancel_event()
    if event is None:
        time.sleep(delay)
    elif event.wait(delay):
        raise RetryCancelled("cancelled while waiting to retry")


_UNCAPPED = Retry(total=0, retry_after_max=float("inf"))  # type: ignore[arg-type]  # no cap

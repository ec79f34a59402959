"""A per-host pause shared by all threads: after a 429/503 nobody contacts that host for a while."""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, Optional
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}
DOWN_FOR = 300.0  # seconds a host that stopped answering is left alone before one more try


def origin_key(scheme: str, host: str, port: Optional[int]) -> str:
    """``scheme://host:port`` with the default port filled in and the host lower-cased."""
    scheme = (scheme or "http").lower()
    host = (host or "").lower().strip("[]")
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}"


def origin_of(url: str) -> str:
    """The origin (scheme, host, port) of ``url`` as a comparable key; no path, no query."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return origin_key(parts.scheme, parts.hostname or "", port)


class HostGate:
    """Shared per-origin pause.

    ``pause(origin, seconds)`` closes the gate of that origin until ``now + seconds`` (a later
    deadline always wins); ``wait(origin)`` blocks the calling thread until the gate is open again.
    The HTTP adapter calls ``wait`` before every request and the retry policy calls ``pause`` when a
    host answers 429/503, so one throttled worker holds back every other worker on the same host.
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._until: Dict[str, float] = {}
        self._cond = threading.Condition()
        # A host is "down" after ``down_after`` connection failures in a row (0: never): nothing
        # more is sent to it for ``down_for`` seconds, then one request may try again.
        self.down_after = 0
        self.down_for = DOWN_FOR
        self._failures: Dict[str, int] = {}
        self._down_until: Dict[str, float] = {}

    # -- hosts that stopped answering ------------------------------------------------------------

    def connect_failed(self, origin: str) -> bool:
        """Count a failed connection to ``origin``; True when the host is (now) down."""
        with self._cond:
            count = self._failures.get(origin, 0) + 1
            self._failures[origin] = count
            if not self.down_after or count < self.down_after:
                return False
            was_down = self._clock() < self._down_until.get(origin, 0.0)
            self._down_until[origin] = self._clock() + self.down_for
        if not was_down:
            logger.warning(
                "%s is unreachable (%d connection attempts in a row failed): no more requests "
                "go to it in this run; what needs it fails with 'host unreachable'.",
                origin,
                count,
            )
        return True

    def new_run(self) -> None:
        """A new job (a download, a retry) begins: forget which hosts were down and every
        failure streak, so the job asks each host again. "Down" is what one run learnt; in a
        long-lived process (the tab) it must not outlive that run, or a retry after the network
        came back fails every image at once for ``down_for`` seconds. The 429/503 pauses stay:
        they end at the deadline the server gave."""
        with self._cond:
            self._failures.clear()
            self._down_until.clear()

    def connected(self, origin: str) -> None:
        """A response came from ``origin``: it is up, its failure streak starts over."""
        if origin in self._failures or origin in self._down_until:
            with self._cond:
                self._failures.pop(origin, None)
                self._down_until.pop(origin, None)

    def unreachable(self, origin: str) -> Optional[str]:
        """Why ``origin`` is not contacted any more (a sentence), or None while it may be."""
        with self._cond:
            until = self._down_until.get(origin)
            if until is None or self._clock() >= until:
                return None
            count = self._failures.get(origin, 0)
        return (
            f"host unreachable: {origin} failed {count} connection attempts in a row, so this "
            "image was not tried"
        )

    def pause(self, origin: str, seconds: float, reason: str = "") -> float:
        """Close ``origin`` for ``seconds``; returns the effective remaining pause."""
        seconds = max(0.0, float(seconds))
        with self._cond:
            now = self._clock()
            deadline = max(self._until.get(origin, 0.0), now + seconds)
            self._until[origin] = deadline
            self._cond.notify_all()
        remaining = deadline - now
        if seconds > 0:
            logger.debug(
                "Pausing requests to %s for %.2f s%s", origin, remaining, reason and f" ({reason})"
            )
        return remaining

    def remaining(self, origin: str) -> float:
        """Seconds until ``origin`` may be contacted again (0 when open)."""
        with self._cond:
            return max(0.0, self._until.get(origin, 0.0) - self._clock())

    def wait(self, origin: str, cancel_event: Optional[threading.Event] = None) -> bool:
        """Block until ``origin`` is open; False if ``cancel_event`` was set while waiting."""
        with self._cond:
            while True:
                if cancel_event is not None and cancel_event.is_set():
                    return False
                left = self._until.get(origin, 0.0) - self._clock()
                if left <= 0:
                    self._until.pop(origin, None)
                    return True
                # Wake up at least every 0.1 s so a cancel request is noticed promptly.
                self._cond.wait(timeout=min(left, 0.1) if cancel_event is not None else left)

    def clear(self, origin: Optional[str] = None) -> None:
        """Open one origin (or all of them) immediately."""
        with self._cond:
            if origin is None:
                self._until.clear()
            else:
                self._until.pop(origin, None)
            self._cond.notify_all()

"""Listing pages asked ahead of their reader.

A run must look its target up (does it exist, what are its names) and list its images. The two
do not depend on each other on the wire, so the first page is asked beside the look-up
(:meth:`CivitaiAPI.prefetch_page`) and kept here, keyed by the exact query, until the listing asks
for that page: it then takes the answer (or the error) instead of sending the request again.
An answer nobody takes is forgotten after ``ttl`` seconds; each is taken at most once.
Kept for latency, not CPU: the listing's request overlaps the look-up (the fake's log shows it sent
0.3-0.9 s before the look-up ends); under heavy load the time to the first image did not differ
beyond noise (issue 26 item 6).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

log = logging.getLogger(__name__)

Key = Tuple[Tuple[str, str], ...]
Page = Any  # what the fetch returns (the api's ``(items, next_cursor)``)


class Answer:
    """The answer of one request asked ahead: set once by its thread, read by its reader."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Page = None
        self._error: Optional[BaseException] = None

    def set(self, value: Page = None, error: Optional[BaseException] = None) -> None:
        self._value, self._error = value, error
        self._done.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """True once the answer is there (False after ``timeout`` seconds)."""
        return self._done.wait(timeout)

    def result(self) -> Page:
        """The page, once it arrived; raises what its request raised."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


def query_key(query: Mapping[str, Any]) -> Key:
    """A hashable, order-free key of a request's query parameters."""
    return tuple(
        sorted((str(k), json.dumps(v, sort_keys=True, default=str)) for k, v in query.items())
    )


class PagesAhead:
    """Answers of requests sent before their reader asked, by query key."""

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: Dict[Key, Tuple[float, Answer]] = {}

    def start(self, key: Key, fetch: Callable[[], Page]) -> bool:
        """Run ``fetch`` on a thread now and keep its answer under ``key``; False when that
        query is in flight already. An answer that arrived earlier and nobody took is replaced:
        who asks again wants today's page (or a second chance after an error)."""
        answer = Answer()
        with self._lock:
            self._forget_stale()
            entry = self._entries.get(key)
            if entry is not None and not entry[1].wait(0):
                return False
            self._entries[key] = (self.clock(), answer)

        def run() -> None:
            try:
                answer.set(fetch())
            except BaseException as exc:  # kept for the reader, who raises it as its own
                answer.set(error=exc)

        threading.Thread(target=run, name="civitai-page-ahead", daemon=True).start()
        return True

    def take(self, key: Key) -> Optional[Answer]:
        """The answer asked ahead for ``key`` (to wait on), or None; it is given once."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None or self.clock() - entry[0] > self._ttl:
            return None
        return entry[1]

    def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the requests still in flight, then forget every
        answer (before the client they use is closed)."""
        with self._lock:
            answers = [answer for _, answer in self._entries.values()]
            self._entries.clear()
        deadline = time.monotonic() + timeout
        pending = [a for a in answers if not a.wait(max(0.0, deadline - time.monotonic()))]
        if pending:
            log.debug("%d page(s) asked ahead still in flight; left behind", len(pending))

    def _forget_stale(self) -> None:
        now = self.clock()
        for key in [k for k, (at, _) in self._entries.items() if now - at > self._ttl]:
            del self._entries[key]

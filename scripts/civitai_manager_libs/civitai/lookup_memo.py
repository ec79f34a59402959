"""One request per key however many callers ask: answers (and "not found") kept for a while.

The model and version look-ups of one command or tab (the target check, names for templates and
sidecars, the tab) go through :class:`LookupMemo`; concurrent callers of one key wait for the one
request in flight instead of sending their own.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

from ..errors import NotFoundError

T = TypeVar("T")


class LookupMemo:
    """Answers (and NotFoundError) by key for ``ttl`` seconds; concurrent callers of one key wait
    for the one request in flight instead of sending their own."""

    def __init__(self, ttl: float):
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: Dict[Any, Tuple[float, Any, Optional[BaseException]]] = {}
        self._inflight: Dict[Any, threading.Event] = {}

    def get(self, key: Any, fetch: Callable[[], T]) -> T:
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and time.monotonic() - entry[0] < self._ttl:
                    if entry[2] is not None:
                        raise entry[2]
                    return entry[1]
                waiting = self._inflight.get(key)
                if waiting is None:
                    done = self._inflight[key] = threading.Event()
                    break
            waiting.wait()  # another thread is asking: use its answer
        try:
            value = fetch()
        except NotFoundError as exc:  # a 404 is an answer too; other errors are not kept
            with self._lock:
                self._entries[key] = (time.monotonic(), None, exc)
            raise
        else:
            with self._lock:
                self._entries[key] = (time.monotonic(), value, None)
            return value
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            done.set()

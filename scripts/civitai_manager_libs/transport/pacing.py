"""Polite pacing (issue 22), as gallery-dl's ``sleep-request`` and ``limit-rate``:

* :class:`RequestPacer`: a minimum interval between the requests to one origin (the API's), with
  jitter: ``"2"`` waits 2 to 2.4 s between requests (up to 20 % more), ``"2-5"`` a random 2 to 5 s.
  The client applies it to every API request (``transport/client.CivitaiAdapter``).
* :class:`RateLimit`: at most ``rate`` bytes per second for one media download: after each chunk
  the download sleeps until its bytes so far are no ahead of ``rate`` (``transport/file_fetch``).

Both take their clock and sleep (tests), and 0 / None means off: today's speed.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable, Dict, Optional, Tuple

# the parsers are the settings' validators too (settings sit below transport)
from ..settings.values import JITTER, parse_interval, parse_rate  # noqa: F401


class RequestPacer:
    """A minimum interval between requests, per origin (thread-safe)."""

    def __init__(
        self,
        interval: Tuple[float, float],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        draw: Callable[[float, float], float] = random.uniform,
    ):
        self.interval = interval
        self._clock, self._sleep, self._draw = clock, sleep, draw
        self._next: Dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, origin: str) -> float:
        """Wait for ``origin``'s turn (each request takes the next slot); the seconds waited."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next.get(origin, now))
            self._next[origin] = at + self._draw(*self.interval)
        delay = at - now
        if delay > 0:
            self._sleep(delay)
        return delay


class RateLimit:
    """One download's pace: :meth:`sent` after each chunk sleeps while the bytes so far are
    ahead of ``rate`` bytes per second since the first chunk."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rate = float(rate)
        self._clock, self._sleep = clock, sleep
        self._start: Optional[float] = None
        self._bytes = 0

    def sent(self, nbytes: int) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        self._bytes += nbytes
        ahead = self._start + self._bytes / self.rate - now
        if ahead > 0:
            self._sleep(ahead)

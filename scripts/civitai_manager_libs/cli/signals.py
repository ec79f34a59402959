"""Signals during a CLI run: SIGINT/SIGTERM raise ``Interrupted`` in the main thread; a second
signal while stopping exits at once."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Any, Dict, Iterator

from .report import EXIT_INTERRUPTED

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGINT / SIGTERM."""


@contextlib.contextmanager
def interruptible() -> Iterator[Dict[str, Any]]:
    """Turn SIGINT/SIGTERM into ``Interrupted``; a second signal while stopping forces the exit.

    Yields a dict whose ``"signal"`` holds the name of the signal received (None until then).
    Outside the main thread (signals cannot be handled there) nothing is installed."""
    state: Dict[str, Any] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, _frame):
        if state["signal"] is not None:
            log.warning("second %s while stopping: exiting now", signal.Signals(signum).name)
            os._exit(EXIT_INTERRUPTED)
        state["signal"] = signal.Signals(signum).name
        raise Interrupted()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

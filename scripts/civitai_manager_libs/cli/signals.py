"""Signals during a CLI run: SIGINT/SIGTERM raise ``Interrupted`` in the main thread; a second
signal while stopping exits at once; and whatever a worker thread is doing, the process ends within
``STOP_DEADLINE`` seconds of the first signal.

The stop guarantee cannot rest on Python code alone: a signal handler runs in the main thread only
when that thread gets the interpreter lock, and a worker stuck in C code that holds it (a
runaway regular expression, a huge decode) keeps it for as long as it likes. So each run starts a
tiny watchdog process. The interpreter's C-level signal handler writes the signal's number into a
pipe (``signal.set_wakeup_fd``), which needs no lock; the watchdog reads it, and if this process
has not ended ``STOP_DEADLINE`` seconds later, says so on stderr and kills it (``SIGKILL``: the
archive and ``.part`` files are as safe as after any ``kill -9``, the same command resumes). The
watchdog ends on its own when this process ends (its end of the pipe closes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, Iterator, Optional

from .report import EXIT_INTERRUPTED

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds running downloads get to stop at their next chunk after a signal
STOP_DEADLINE = 10.0  # seconds after the first signal by which the process has ended, always

# The watchdog: argv = [read fd, deadline seconds, pid to kill]. Standard library only, no site.
_WATCHDOG = r"""
import os, select, signal, sys, time
fd, deadline, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
stops = {int(signal.SIGINT), int(signal.SIGTERM)}
armed_at = None
while True:
    wait = None if armed_at is None else max(0.0, armed_at + deadline - time.monotonic())
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        break
    try:
        data = os.read(fd, 64)
    except InterruptedError:
        continue
    except OSError:
        sys.exit(0)
    if not data:
        sys.exit(0)  # the CLI ended: its end of the pipe closed
    if armed_at is None and any(b in stops for b in data):
        armed_at = time.monotonic()
try:
    os.write(2, ("error: the run did not stop within %g s of the stop request; killing it "
                 "(partial files are kept; run the same command to resume)\n" % deadline).encode())
    os.kill(pid, signal.SIGKILL)
except OSError:
    pass
"""


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGINT / SIGTERM."""


def _start_watchdog(deadline: float) -> Optional[int]:
    """Start the watchdog and route signal numbers to it; the previous wakeup fd, or None when
    no watchdog runs (not POSIX, or it could not start)."""
    if os.name != "posix" or deadline <= 0:
        return None
    read_fd, write_fd = os.pipe()
    try:
        os.set_blocking(write_fd, False)
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(read_fd), str(deadline)]
            + [str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(read_fd,),
            start_new_session=True,  # a Ctrl-C in the terminal must not kill the watchdog
        )
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (OSError, ValueError) as exc:
        log.debug("no stop watchdog: %s", exc)
        os.close(write_fd)
        return None
    finally:
        os.close(read_fd)
    return previous


def _stop_watchdog(previous: Optional[int]) -> None:
    if previous is None:
        return
    write_fd = signal.set_wakeup_fd(previous)
    if write_fd >= 0:
        os.close(write_fd)  # the watchdog sees the end of the pipe and leaves


@contextlib.contextmanager
def interruptible(deadline: float = STOP_DEADLINE) -> Iterator[Dict[str, Any]]:
    """Turn SIGINT/SIGTERM into ``Interrupted``; a second signal while stopping forces the exit,
    and the process ends at the latest ``deadline`` seconds after the first signal (watchdog).

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
    wakeup = _start_watchdog(deadline)
    try:
        yield state
    finally:
        _stop_watchdog(wakeup)
        for sig, old in previous.items():
            signal.signal(sig, old)

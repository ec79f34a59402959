"""Progress display of a CLI run: two tqdm bars on stderr, with log records printed above them.

Bars are drawn only on a terminal: they redraw themselves with cursor-up escapes (``ESC[A``),
which show up as garbage between the lines of a log file, a pipe or a CI console. Elsewhere the
log lines and the final report are the whole output."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from typing import Any, Iterator, Optional, TextIO

from ..util.logging_setup import install_filter
from ..records import DownloadSummary


def bars_wanted(quiet: bool, stream: Optional[TextIO] = None) -> bool:
    """Whether to draw bars: not ``--quiet`` and ``stream`` (stderr) is a terminal."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        return not quiet and bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(quiet: bool, **tqdm_options: Any) -> Optional[Any]:
    """A tqdm bar on stderr, or None when no bar is wanted (``--quiet``, or stderr is not a
    terminal): the one rule for every command's bars (``list``, ``export``, ``resources``)."""
    if not bars_wanted(quiet):
        return None
    from tqdm import tqdm

    return tqdm(file=sys.stderr, **tqdm_options)


class ProgressBars:
    """Two tqdm bars on stderr (images, bytes) fed from ``DownloadSummary`` callbacks."""

    def __init__(self, enabled: bool, stream: Optional[TextIO] = None):
        self._lock = threading.Lock()
        self._images: Optional[Any] = None
        self._bytes: Optional[Any] = None
        self.enabled = enabled
        if not enabled:
            return
        from tqdm import tqdm

        stream = stream or sys.stderr
        self._images = tqdm(total=0, unit="img", desc="images", position=0, file=stream)
        self._bytes = tqdm(
            total=None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="bytes ",
            position=1,
            file=stream,
        )

    def update(self, summary: DownloadSummary) -> None:
        images, size = self._images, self._bytes
        if images is None or size is None:
            return
        done = summary.completed + summary.skipped + summary.failed + summary.cancelled
        with self._lock:
            if images.total != summary.listed:
                images.total = summary.listed
            images.n = done
            images.set_postfix(failed=summary.failed, refresh=False)
            images.refresh()
            size.n = summary.bytes_downloaded
            size.refresh()

    def close(self) -> None:
        with self._lock:
            for bar in (self._images, self._bytes):
                if bar is not None:
                    bar.close()
            self._images = self._bytes = None


@contextlib.contextmanager
def logs_above_bars(enabled: bool) -> Iterator[None]:
    """Route log records through ``tqdm.write`` while the bars are drawn (the secret filter is
    put on the temporary handler too)."""
    if not enabled:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        install_filter(logging.getLogger())
        yield

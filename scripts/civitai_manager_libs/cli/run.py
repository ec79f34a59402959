"""One download run of the CLI: list off the main thread, wait with progress bars, stop cleanly on
a signal, and print (and write) the completeness report."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, TextIO

from .progress import ProgressBars, bars_wanted, logs_above_bars
from .report import RunReport, finish, user_message
from .service import RunConfig, Service, listing_for, resolve_config, start_download
from .signals import STOP_GRACE, Interrupted
from .target import CliTarget, check_target, require_key_for
from ..errors import (
    ApiError,
    ArchiveError,
    DiskSpaceError,
    NetworkError,
    NotFoundError,
    OutputBusyError,
    OutputPathError,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
STOP_TIMEOUT = STOP_GRACE  # seconds a stop waits for the listing and running downloads
_NOT_STARTED = "not started: "

# Problems that end a run that has started: the report is still printed, the exit code is 1.
RUN_STOPPERS = (ApiError, ArchiveError, DiskSpaceError, OutputPathError)

Begin = Callable[[Any], List[str]]


class _Starter(threading.Thread):
    """Runs the listing (``begin(downloader)``) off the main thread, so a signal in the main thread
    only ever interrupts the CLI's own waiting loop, never the service in the middle of a write."""

    def __init__(self, begin: Begin, downloader):
        super().__init__(name="cli-listing", daemon=True)
        self._begin = begin
        self._downloader = downloader
        self.task_ids: Optional[List[str]] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.task_ids = list(self._begin(self._downloader))
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc


def _wait_all(downloader, starter: _Starter, bars: ProgressBars) -> None:
    # One downloader per run: ``None`` selects exactly this run's tasks (not the history).
    while starter.is_alive():
        starter.join(POLL_SECONDS)
        bars.update(downloader.summary())
    # A listing that failed on a later page still leaves its earlier pages' images to finish
    # (and its checkpoint for the next run); the error is reported once they are done.
    while not downloader.wait(timeout=POLL_SECONDS):
        bars.update(downloader.summary())
    bars.update(downloader.summary())
    if starter.error is not None:
        raise starter.error


def _stop(downloader, starter: _Starter) -> None:
    """Cancel every task and the listing; wait (bounded) for workers to leave their .part files."""
    deadline = time.monotonic() + STOP_TIMEOUT
    downloader.cancel()
    while starter.is_alive() and time.monotonic() < deadline:
        starter.join(POLL_SECONDS)
        downloader.cancel()  # tasks planned by the page that was in flight
    if starter.is_alive():
        log.warning("the listing did not stop within %.0f s; leaving it", STOP_TIMEOUT)
    if not downloader.wait(timeout=max(0.5, deadline - time.monotonic())):
        busy = downloader.summary().pending
        log.warning(
            "%d download(s) did not stop within %.0f s; leaving them (their partial files are "
            "kept for the next run)",
            busy,
            STOP_TIMEOUT,
        )


def _run(
    report: RunReport,
    downloader,
    bars: ProgressBars,
    begin: Begin,
    sig: Dict[str, Any],
) -> None:
    """Run ``begin(downloader)`` then wait; fills ``report`` even when interrupted."""
    starter = _Starter(begin, downloader)
    try:
        starter.start()
        _wait_all(downloader, starter, bars)
    except Interrupted:
        report.interrupted = True
        log.warning("%s received: stopping; partial files are kept for resume", sig["signal"])
        _stop(downloader, starter)
    finally:
        report.summary = downloader.summary()
        report.limit_cut = getattr(downloader, "limit_cut", None)
        report.listed_any = getattr(downloader, "listed_any", None)
        for why, count in (getattr(downloader, "embed_skipped", None) or {}).items():
            log.info(
                "%d file(s) got a txt sidecar instead of embedded generation data: %s",
                count,
                why,
            )
        reason = downloader.stopped_reason  # scheduling stopped: a full disk
        if not report.interrupted and reason:
            report.stopped_reason = (
                reason[len(_NOT_STARTED) :] if reason.startswith(_NOT_STARTED) else reason
            )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class SavedPaths:
    """Piped or redirected, stdout carries each saved file's path as it is saved (as
    gallery-dl does) and nothing else; the report then goes to stderr."""

    def __init__(self, out: TextIO):
        self._out = out
        self._lock = threading.Lock()
        self._broken = False

    @staticmethod
    def wanted(out: TextIO) -> bool:
        return out is sys.stdout and not _is_terminal(out)

    def __call__(self, task: Any) -> None:
        path = getattr(task, "image_path", None)
        if not path or self._broken:
            return
        with self._lock:
            try:
                self._out.write(f"{path}\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):  # `| head`: the reader left
                self._broken = True


def _import_download_modules() -> None:
    """Import what opening the downloader needs (planning, engine, metadata, archive): modules
    only, nothing is written."""
    from .. import image_downloader  # noqa: F401
    from ..metadata import record, thumbnails  # noqa: F401
    from ..store import archive  # noqa: F401
    from ..transport import file_fetch  # noqa: F401


def execute(
    args: argparse.Namespace,
    out: TextIO,
    report: RunReport,
    cfg: RunConfig,
    begin: Begin,
    target: Optional[CliTarget] = None,
    remember_options: bool = False,
    ahead: Optional[Dict[str, Any]] = None,
    check_first: bool = True,
) -> int:
    """Build the service, check the target, run with bars, print (and write) the report.

    ``ahead``: the listing's first page (``CivitaiAPI.prefetch_page`` arguments), asked beside
    the target check so the listing does not wait for it; nothing is written before the check.
    ``check_first`` False (``sync``: a followed target): no look-up before the listing, whose
    first page answers whether the target exists; only a listing that held no image asks the
    look-up, which fills ``report.gone`` when the target is gone."""
    service = Service(cfg, remember_options=remember_options)
    paths = SavedPaths(out) if SavedPaths.wanted(out) else None
    try:
        if ahead is not None:
            service.api.prefetch_page(**ahead)
        if target is not None and check_first:
            # The look-up waits on the network: load the download machinery meanwhile.
            warm = threading.Thread(target=_import_download_modules, daemon=True)
            warm.start()
            try:
                # NotFoundError before any folder is created
                check_target(service.api, target, with_tags=cfg.with_tags)
            finally:
                warm.join()  # never leave an import running into the interpreter's shutdown
        bars = ProgressBars(enabled=bars_wanted(args.quiet))
        try:
            with logs_above_bars(bars.enabled):
                downloader = service.open_downloader()
                if paths is not None:
                    downloader.register_image_downloaded_callback(paths)
                _run(report, downloader, bars, begin, args.signal)
            if target is not None and not check_first and report.listed_any is False:
                if not report.interrupted and not report.stopped_reason:
                    from ..planning.follow_sync import gone_reason

                    report.gone = gone_reason(
                        service.api, target.kind, target.value, target.version_id
                    )
        except OutputBusyError:
            raise  # another process downloads into the folder: refused at once, exit 2, no report
        except RUN_STOPPERS as exc:
            if not check_first and isinstance(exc, NotFoundError) and not report.listed_any:
                report.gone = user_message(exc, cfg.base_url)  # its listing answered 404
            report.stopped_reason = user_message(exc, cfg.base_url)
            report.unreachable = isinstance(exc, NetworkError)
            bars.close()
            sys.stderr.write(f"error: {report.stopped_reason}\n")
        finally:
            bars.close()
    finally:
        # after a stop request nothing may wait for a worker that does not stop
        service.close(timeout=1.0 if report.interrupted else None)
    return finish(report, args.report, out if paths is None else sys.stderr)


def download_run(
    args: argparse.Namespace,
    out: TextIO,
    report: RunReport,
    target: CliTarget,
    check_first: bool = True,
) -> int:
    """``download``'s run of ``target``, filling ``report`` (``sync`` reads it; it passes
    ``check_first`` False: see :func:`execute`)."""
    cfg = resolve_config(args)
    require_key_for(target, cfg.api_key)  # your reactions: exit 2 without the key
    if cfg.with_tags and target.kind == "image":  # the tags come with an ids= look-up
        target = CliTarget("images", [target.value])
        report.target = target.describe()
    if cfg.template:
        from ..store.paths import PathTemplate

        PathTemplate(cfg.template)  # TemplateError before any request or folder
    from ..store.paths import check_output_folder

    check_output_folder(cfg.output)  # OutputPathError (exit 2) before any request or folder
    report.output = cfg.output
    listing = listing_for(target, cfg)  # InvalidQueryError (exit 2) before any request
    if listing is not None:  # its look-ups go to the front of the levels it lists
        cfg.lookup_levels = list(listing.levels)

    def begin(downloader):
        return start_download(downloader, target, cfg, listing)

    from ..planning.listing_request import first_page_ahead

    ahead = first_page_ahead(listing, cfg.output)  # None: nothing certain to ask ahead
    check_first = check_first or listing is None  # a single image / ids: the look-up is it
    return execute(
        args, out, report, cfg, begin, target, True, ahead=ahead, check_first=check_first
    )

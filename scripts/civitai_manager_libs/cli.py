"""Headless shell: ``python main.py download|tasks|retry-failed ...`` over the UI's service.

The CLI never talks HTTP for downloads itself: it parses arguments, checks that the target exists
(before anything is written to disk), hands the work to :class:`ImageDownloader`, draws tqdm bars on
stderr and prints a completeness report. Exit codes: 0 all done, 1 some images failed (or a disk
problem stopped the run), 2 bad usage or input, 130 interrupted (Ctrl-C / SIGTERM; the next
identical command resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from .errors import (
    ApiError,
    AuthError,
    CivitaiGalleryError,
    DiskSpaceError,
    InvalidQueryError,
    NetworkError,
    NotFoundError,
    OutputPathError,
    SettingsError,
    TemplateError,
)
from .logging_setup import configure_logging, install_filter, redact, register_secret
from .records import NSFW_LEVELS, DownloadSummary

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

ARCHIVE_NAME = ".civitai_archive.sqlite3"
TARGET_KINDS = ("model", "version", "user", "image", "url", "filter")
METADATA_FORMATS = ("json", "txt", "exif")
DUPLICATE_POLICIES = {"skip": "skip", "replace": "replace", "keep-both": "keep_both"}
POLL_SECONDS = 0.2
STOP_TIMEOUT = 20.0


class UsageError(CivitaiGalleryError, ValueError):
    """The command line is wrong; the message says what to write instead."""


# --------------------------------------------------------------------------- argument parsing


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of exiting, so ``main`` owns every exit code."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message} (see --help)")

    def exit(self, status: int = 0, message: Optional[str] = None):
        if message:
            self._print_message(message, sys.stderr)
        raise _ParserExit(status)


class _ParserExit(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _concurrency(text: str) -> int:
    value = _positive_int(text)
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError(f"concurrency must be between 1 and 32, got {value}")
    return value


def _nsfw_levels(text: str) -> List[str]:
    if text.strip().lower() == "all":
        return list(NSFW_LEVELS)
    by_lower = {level.lower(): level for level in NSFW_LEVELS}
    levels: List[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.lower() not in by_lower:
            raise argparse.ArgumentTypeError(
                f"unknown NSFW level {part!r}; use a comma list of {','.join(NSFW_LEVELS)} or 'all'"
            )
        level = by_lower[part.lower()]
        if level not in levels:
            levels.append(level)
    if not levels:
        raise argparse.ArgumentTypeError("give at least one NSFW level, e.g. --nsfw None,Soft")
    return levels


def _metadata_formats(text: str) -> List[str]:
    if text.strip().lower() == "none":
        return []
    formats: List[str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part not in METADATA_FORMATS:
            raise argparse.ArgumentTypeError(
                f"unknown metadata format {part!r}; use a comma list of "
                f"{','.join(METADATA_FORMATS)} or 'none'"
            )
        if part not in formats:
            formats.append(part)
    return formats


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", "-o", help="output folder (default: setting images.output_path, ./images)"
    )
    parser.add_argument(
        "--base-url",
        help="Civitai origin (default: $CIVITAI_BASE_URL or https://civitai.com)",
    )
    parser.add_argument(
        "--api-key",
        help="Civitai API key (default: $CIVITAI_API_KEY); sent to the API host only",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no bars")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        help="parallel image downloads (default: setting images.max_concurrent, 5)",
    )
    parser.add_argument("--report", metavar="FILE", help="write a JSON completeness report here")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="main.py",
        description="Download Civitai images with their generation data, headless.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{download,tasks,retry-failed}")
    sub.required = True

    dl = sub.add_parser(
        "download",
        help="download the images of a model, version, user, image, URL or filter",
        description=(
            "Targets: 'model ID', 'version ID', 'user NAME', 'image ID', 'url URL', "
            "'filter KEY=VALUE ...' (keys: modelId, modelVersionId, postId, imageId, userId, "
            "username, sort, period, nsfw, type, baseModels, tags)."
        ),
    )
    dl.add_argument("kind", choices=TARGET_KINDS, help="what to download")
    dl.add_argument("values", nargs="+", metavar="VALUE", help="id, name, URL or KEY=VALUE pairs")
    dl.add_argument(
        "--limit",
        type=_positive_int,
        help="at most N images; 0 = no limit (default: all for model/version, 20 for user/filter)",
    )
    dl.add_argument(
        "--nsfw",
        type=_nsfw_levels,
        help="comma list of levels None,Soft,Mature,X or 'all' "
        "(default: setting images.default_nsfw_filter)",
    )
    dl.add_argument("--template", help="path template, e.g. '{model_id}/{id}' (no extension)")
    dl.add_argument(
        "--metadata",
        type=_metadata_formats,
        help="comma list of json,txt,exif or 'none' (default: setting images.metadata_format)",
    )
    dl.add_argument(
        "--thumbnails", action="store_true", default=None, help="also write .thumbnails/"
    )
    dl.add_argument(
        "--duplicates",
        choices=sorted(DUPLICATE_POLICIES),
        help="what to do with a file whose content is already saved (default: skip)",
    )
    _add_run_options(dl)
    _add_common(dl)

    tasks = sub.add_parser("tasks", help="show the task history kept in the output folder")
    tasks.add_argument(
        "--status",
        choices=("pending", "downloading", "completed", "skipped", "failed", "cancelled"),
        help="only tasks with this status",
    )
    tasks.add_argument("--limit", type=_positive_int, default=50, help="rows to show (default 50)")
    _add_common(tasks)

    retry = sub.add_parser("retry-failed", help="download again every failed task of the archive")
    _add_run_options(retry)
    _add_common(retry)
    return parser


# --------------------------------------------------------------------------- targets


@dataclass
class CliTarget:
    """What the user asked for, normalized: kind in model/version/user/image/filter."""

    kind: str
    value: Any
    version_id: Optional[int] = None

    def describe(self) -> str:
        if self.kind == "filter":
            return "filter " + " ".join(f"{k}={v}" for k, v in self.value.items())
        if self.kind == "user":
            return f"user {self.value!r}"
        return f"{self.kind} {self.value}"


def _parse_id(kind: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{kind} needs a numeric id, got {text!r}") from None
    if value <= 0:
        raise UsageError(f"{kind} ids are positive numbers, got {value}")
    return value


def _parse_filter(pairs: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` words -> validated images-endpoint parameters (query.py's rules, as the UI)."""
    from .query import parse_query

    encoded = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"filter expects KEY=VALUE pairs, got {pair!r}")
        encoded.append(f"{quote(key.strip(), safe='')}={quote(value.strip(), safe='')}")
    parsed = parse_query("&".join(encoded))
    if parsed.kind != "filter":
        raise UsageError(f"filter expects KEY=VALUE pairs, got {' '.join(pairs)!r}")
    return dict(parsed.params or {})


def parse_target(kind: str, values: Sequence[str]) -> CliTarget:
    """Turn ``download KIND VALUE...`` into a :class:`CliTarget` (``UsageError`` when malformed)."""
    if kind == "filter":
        return CliTarget("filter", _parse_filter(values))
    if len(values) != 1:
        raise UsageError(f"'{kind}' takes exactly one value, got {len(values)}")
    text = values[0].strip()
    if kind in ("model", "version", "image"):
        return CliTarget(kind, _parse_id(kind, text))
    from .query import parse_query, validate_username

    if kind == "user":
        return CliTarget("user", validate_username(text.lstrip("@")))
    parsed = parse_query(text)  # InvalidQueryError carries its own sentence
    if parsed.kind == "filter":
        return CliTarget("filter", dict(parsed.params or {}))
    return CliTarget(parsed.kind, parsed.value, parsed.version_id)


def check_target(api, target: CliTarget) -> None:
    """Look the target up before anything is written; raises ``NotFoundError`` / ``UsageError``."""
    if target.kind == "model":
        api.get_model(target.value)
        if target.version_id:
            api.get_model_version(target.version_id)
    elif target.kind == "version":
        api.get_model_version(target.value)
    elif target.kind == "image":
        api.get_image(target.value)
    elif target.kind == "user":
        page = api.get_image_page({"username": target.value}, limit=1, nsfw_levels=NSFW_LEVELS)
        if not page.items:
            raise UsageError(
                f"no images found for user {target.value!r} on Civitai; check the spelling "
                "(usernames are case-sensitive)"
            )


# --------------------------------------------------------------------------- progress


class ProgressBars:
    """Two tqdm bars on stderr (images, bytes) fed from ``DownloadSummary`` callbacks."""

    def __init__(self, enabled: bool, stream: Optional[TextIO] = None):
        self._lock = threading.Lock()
        self._images = self._bytes = None
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
        if self._images is None:
            return
        done = summary.completed + summary.skipped + summary.failed + summary.cancelled
        with self._lock:
            if self._images.total != summary.listed:
                self._images.total = summary.listed
            self._images.n = done
            self._images.set_postfix(failed=summary.failed, refresh=False)
            self._images.refresh()
            self._bytes.n = summary.bytes_downloaded
            self._bytes.refresh()

    def close(self) -> None:
        with self._lock:
            for bar in (self._images, self._bytes):
                if bar is not None:
                    bar.close()
            self._images = self._bytes = None


# --------------------------------------------------------------------------- signals


class _Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGINT / SIGTERM."""


@contextlib.contextmanager
def _interruptible() -> Iterator[Dict[str, Any]]:
    """Turn SIGINT/SIGTERM into ``_Interrupted``; a second signal while stopping forces the exit."""
    state: Dict[str, Any] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, _frame):
        if state["signal"] is not None:
            log.warning("second %s while stopping: exiting now", signal.Signals(signum).name)
            os._exit(EXIT_INTERRUPTED)
        state["signal"] = signal.Signals(signum).name
        raise _Interrupted()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------- report


@dataclass
class RunReport:
    """The completeness report: printed at the end and written by ``--report``."""

    command: str
    target: Optional[str]
    output: str
    summary: DownloadSummary = field(default_factory=DownloadSummary)
    interrupted: bool = False
    stopped_reason: Optional[str] = None
    started_at: float = field(default_factory=time.time)
    finished_at: Optional[float] = None
    exit_code: int = EXIT_OK

    def to_dict(self) -> Dict[str, Any]:
        s = self.summary
        return {
            "command": self.command,
            "target": self.target,
            "output": self.output,
            "listed": s.listed,
            "saved": s.completed,
            "skipped": s.skipped,
            "failed": s.failed,
            "cancelled": s.cancelled,
            "pending": s.pending,
            "bytes_downloaded": s.bytes_downloaded,
            "complete": s.pending == 0 and s.failed == 0 and s.cancelled == 0,
            "interrupted": self.interrupted,
            "stopped_reason": redact(self.stopped_reason) if self.stopped_reason else None,
            "failures": [
                {"image_id": image_id, "reason": redact(str(reason))}
                for image_id, reason in s.failures
            ],
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at) if self.finished_at else None,
            "elapsed_seconds": round((self.finished_at or time.time()) - self.started_at, 3),
            "exit_code": self.exit_code,
        }

    def lines(self) -> List[str]:
        s = self.summary
        out = [
            f"listed {s.listed}: saved {s.completed}, skipped {s.skipped}, failed {s.failed}"
            + (f", cancelled {s.cancelled}" if s.cancelled else "")
            + (f", not started {s.pending}" if s.pending else "")
        ]
        if s.failures:
            out.append("failures:")
            for image_id, reason in s.failures:
                out.append(f"  image {image_id if image_id is not None else '?'}: {redact(reason)}")
        if self.stopped_reason:
            left = f", {s.cancelled} image(s) not started" if s.cancelled else ""
            out.append(f"stopped early{left}: {redact(self.stopped_reason)}")
        if self.interrupted:
            out.append("interrupted: run the same command again to resume")
        out.append(f"output: {self.output}")
        out.append(s.line())
        return out


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds")


def write_report(path: str, data: Dict[str, Any]) -> None:
    """Write the JSON report atomically (temp file in the same folder, fsync, ``os.replace``)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- service wiring


@dataclass
class RunConfig:
    output: str
    base_url: Optional[str]
    api_key: Optional[str] = field(repr=False)  # never in a repr, log or report
    concurrency: Optional[int] = None
    template: Optional[str] = None
    nsfw: Optional[List[str]] = None
    metadata: Optional[List[str]] = None
    thumbnails: Optional[bool] = None
    duplicates: Optional[str] = None
    limit: Optional[int] = None


def _resolve_config(args: argparse.Namespace) -> RunConfig:
    from . import setting

    output = args.output or setting.get("images.output_path")
    return RunConfig(
        output=os.path.abspath(os.path.expanduser(output)),
        base_url=(args.base_url or os.environ.get("CIVITAI_BASE_URL") or None),
        api_key=(args.api_key or os.environ.get("CIVITAI_API_KEY") or None),
        concurrency=getattr(args, "concurrency", None),
        template=getattr(args, "template", None),
        nsfw=getattr(args, "nsfw", None),
        metadata=getattr(args, "metadata", None),
        thumbnails=getattr(args, "thumbnails", None),
        duplicates=getattr(args, "duplicates", None),
        limit=getattr(args, "limit", None),
    )


class Service:
    """The objects one CLI run uses: one client, one API, one engine, one downloader (closed on
    exit). Every option goes to the constructors; the saved settings are never changed."""

    def __init__(self, cfg: RunConfig):
        from .civitai_api import CivitaiAPI
        from .http_client import CivitaiHttpClient

        self.cfg = cfg
        self.client = CivitaiHttpClient(
            api_key=cfg.api_key, base_url=cfg.base_url, pool_size=cfg.concurrency
        )
        self.api = CivitaiAPI(client=self.client)
        self.downloader = None

    def open_downloader(self):
        from . import setting
        from .download_engine import DownloadEngine
        from .image_downloader import ImageDownloader

        cfg = self.cfg
        workers = cfg.concurrency or setting.get("images.max_concurrent")
        options: Dict[str, Any] = {"max_concurrent": workers}
        if cfg.metadata:
            options["metadata_formats"] = list(cfg.metadata)
        if cfg.thumbnails:
            options["generate_thumbnails"] = True
        if cfg.duplicates:
            options["duplicate_policy"] = DUPLICATE_POLICIES[cfg.duplicates]
        self.downloader = ImageDownloader(
            api_client=self.api,
            download_engine=DownloadEngine(client=self.client, max_workers=workers),
            output_path=cfg.output,
            path_template=cfg.template or setting.get("images.path_template"),
            **options,
        )
        return self.downloader

    def close(self) -> None:
        if self.downloader is not None:
            self.downloader.close()
            self.downloader.engine.shutdown(wait=True, cancel_pending=True)
        self.client.close()


def start_download(downloader, target: CliTarget, cfg: RunConfig) -> List[str]:
    """Call the matching ``download_*`` method; listing runs here, downloads in the engine."""
    save = cfg.metadata is None or bool(cfg.metadata)
    levels = cfg.nsfw
    limit_kw = {} if cfg.limit is None else {"limit": cfg.limit}
    if target.kind == "model" and target.version_id:
        return downloader.download_version_images(
            target.version_id, nsfw_levels=levels, save_metadata=save, **limit_kw
        )
    if target.kind == "model":
        return downloader.download_model_images(
            target.value, nsfw_levels=levels, save_metadata=save, **limit_kw
        )
    if target.kind == "version":
        return downloader.download_version_images(
            target.value, nsfw_levels=levels, save_metadata=save, **limit_kw
        )
    if target.kind == "user":
        return downloader.download_creator_images(
            target.value, nsfw_levels=levels, save_metadata=save, **limit_kw
        )
    if target.kind == "image":
        return [downloader.download_single_image(target.value, save_metadata=save)]
    params = dict(target.value)
    if levels is not None:  # --nsfw wins over an ``nsfw`` key in the filter
        params.pop("nsfw", None)
        params["nsfw_levels"] = list(levels)
    return downloader.download_filtered_images(params, save_metadata=save, **limit_kw)


class _Starter(threading.Thread):
    """Runs the listing (``begin(downloader)``) off the main thread, so a signal in the main thread
    only ever interrupts the CLI's own waiting loop, never the service in the middle of a write."""

    def __init__(self, begin: Callable[[Any], List[str]], downloader):
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
    if starter.error is not None:
        raise starter.error
    while not downloader.wait(timeout=POLL_SECONDS):
        bars.update(downloader.summary())
    bars.update(downloader.summary())


def _stop(downloader, starter: _Starter) -> None:
    """Cancel every task and the listing; wait (bounded) for workers to leave their .part files."""
    deadline = time.monotonic() + STOP_TIMEOUT
    downloader.cancel()
    while starter.is_alive() and time.monotonic() < deadline:
        starter.join(POLL_SECONDS)
        downloader.cancel()  # tasks planned by the page that was in flight
    if starter.is_alive():
        log.warning("the listing did not stop within %.0f s; leaving it", STOP_TIMEOUT)
    downloader.wait(timeout=max(1.0, deadline - time.monotonic()))


def _run(
    report: RunReport,
    service: Service,
    bars: ProgressBars,
    begin: Callable[[Any], List[str]],
    sig: Dict[str, Any],
) -> None:
    """Run ``begin(downloader)`` then wait; fills ``report`` even when interrupted."""
    downloader = service.open_downloader()
    starter = _Starter(begin, downloader)
    try:
        starter.start()
        _wait_all(downloader, starter, bars)
    except _Interrupted:
        report.interrupted = True
        log.warning("%s received: stopping; partial files are kept for resume", sig["signal"])
        _stop(downloader, starter)
    finally:
        report.summary = downloader.summary()
        if not report.interrupted and downloader.stopped_reason:
            reason = downloader.stopped_reason  # scheduling stopped: a full disk
            report.stopped_reason = (
                reason[len("not started: ") :] if reason.startswith("not started: ") else reason
            )


def _exit_code(report: RunReport) -> int:
    s = report.summary
    if report.interrupted:
        return EXIT_INTERRUPTED
    if s.failed or s.cancelled or s.pending or report.stopped_reason:
        return EXIT_FAILED
    return EXIT_OK


def _finish(report: RunReport, report_path: Optional[str], out: TextIO) -> int:
    report.finished_at = time.time()
    report.exit_code = _exit_code(report)
    for line in report.lines():
        out.write(line + "\n")
    out.flush()
    if report_path:
        write_report(report_path, report.to_dict())
    return report.exit_code


# --------------------------------------------------------------------------- commands


@contextlib.contextmanager
def _logs_above_bars(enabled: bool) -> Iterator[None]:
    """Route log records through ``tqdm.write`` while the bars are drawn (the secret filter is
    put on the temporary handler too)."""
    if not enabled:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        install_filter(logging.getLogger())
        yield


def _execute(
    args: argparse.Namespace,
    out: TextIO,
    report: RunReport,
    cfg: RunConfig,
    begin,
    target: Optional[CliTarget] = None,
) -> int:
    """Build the service, check the target, run with bars, print (and write) the report."""
    service = Service(cfg)
    try:
        if target is not None:
            check_target(service.api, target)  # NotFoundError before any folder is created
        bars = ProgressBars(enabled=not args.quiet)
        try:
            with _logs_above_bars(bars.enabled):
                _run(report, service, bars, begin, args.signal)
        except (ApiError, DiskSpaceError, OutputPathError) as exc:
            report.stopped_reason = _user_message(exc, args)
            bars.close()
            sys.stderr.write(f"error: {report.stopped_reason}\n")
        finally:
            bars.close()
    finally:
        service.close()
    return _finish(report, args.report, out)


def cmd_download(args: argparse.Namespace, out: TextIO) -> int:
    target = parse_target(args.kind, args.values)
    cfg = _resolve_config(args)
    if cfg.template:
        from .paths import PathTemplate

        PathTemplate(cfg.template)  # TemplateError before any request or folder
    if os.path.exists(cfg.output) and not os.path.isdir(cfg.output):
        raise OutputPathError(f"the output path {cfg.output} exists and is not a folder")
    report = RunReport("download", target.describe(), cfg.output)
    return _execute(args, out, report, cfg, lambda d: start_download(d, target, cfg), target)


def cmd_retry_failed(args: argparse.Namespace, out: TextIO) -> int:
    cfg = _resolve_config(args)
    if not os.path.exists(os.path.join(cfg.output, ARCHIVE_NAME)):
        raise UsageError(
            f"no download history in {cfg.output}; pass the --output of an earlier run"
        )
    report = RunReport("retry-failed", None, cfg.output)
    return _execute(args, out, report, cfg, lambda d: d.retry_failed())


TASK_COLUMNS = (
    ("id", "task"),
    ("image_id", "image"),
    ("status", "status"),
    ("finished_at", "finished"),
    ("path", "file / error"),
)


def _field(row: Any, name: str) -> Any:
    if isinstance(row, dict):
        return row.get(name)
    with contextlib.suppress(IndexError, KeyError, TypeError):
        return row[name]
    return getattr(row, name, None)


def _task_cells(row: Any) -> Tuple[str, ...]:
    status = str(_field(row, "status") or "")
    when = _field(row, "finished_at") or _field(row, "updated_at") or _field(row, "created_at")
    if isinstance(when, (int, float)):
        when = _dt.datetime.fromtimestamp(when, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(when, str):
        when = when[:19].replace("T", " ")
    detail = _field(row, "error") if status == "failed" else None
    detail = detail or _field(row, "image_path") or _field(row, "path") or ""
    return (
        str(_field(row, "id") or _field(row, "task_id") or ""),
        str(_field(row, "image_id") or ""),
        status,
        str(when or ""),
        redact(str(detail)),
    )


def format_table(rows: Sequence[Tuple[str, ...]], headers: Sequence[str]) -> List[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    widths[-1] = 0  # the last column is free width

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [fmt(headers), fmt(["-" * max(len(h), 4) for h in headers])] + [fmt(r) for r in rows]


def cmd_tasks(args: argparse.Namespace, out: TextIO) -> int:
    cfg = _resolve_config(args)
    db_path = os.path.join(cfg.output, ARCHIVE_NAME)
    if not os.path.exists(db_path):
        raise UsageError(
            f"no download history in {cfg.output}; pass the --output of an earlier run"
        )
    from .archive import Archive

    archive = Archive(db_path)
    try:
        rows = archive.failed_tasks() if args.status == "failed" else archive.tasks()
        if args.status and args.status != "failed":
            rows = [r for r in rows if str(_field(r, "status")) == args.status]
        rows = list(rows)
        total = len(rows)
        if args.limit:
            rows = rows[: args.limit]
        cells = [_task_cells(r) for r in rows]
    finally:
        closer = getattr(archive, "close", None)
        if callable(closer):
            closer()
    for line in format_table(cells, [h for _, h in TASK_COLUMNS]):
        out.write(line + "\n")
    shown = f"{len(cells)} of {total}" if total > len(cells) else str(total)
    out.write(f"{shown} task(s) in {db_path}\n")
    return EXIT_OK


COMMANDS = {"download": cmd_download, "tasks": cmd_tasks, "retry-failed": cmd_retry_failed}


def _user_message(exc: BaseException, args: Optional[argparse.Namespace]) -> str:
    text = redact(str(exc)) or exc.__class__.__name__
    if isinstance(exc, NetworkError):
        base = getattr(args, "base_url", None) or os.environ.get("CIVITAI_BASE_URL") or "Civitai"
        return f"{text} (could not reach {redact(base)}; check the network or --base-url)"
    if isinstance(exc, AuthError):
        return f"{text} (pass a valid key with --api-key or CIVITAI_API_KEY)"
    return text


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    """Entry point for ``python main.py download|tasks|retry-failed ...``; returns the exit code."""
    out = out or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    args: Optional[argparse.Namespace] = None
    try:
        args = build_parser().parse_args(argv)
    except _ParserExit as exc:
        return exc.status
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    configure_logging(verbose=args.verbose, quiet=args.quiet)
    key = args.api_key or os.environ.get("CIVITAI_API_KEY")
    if key:
        register_secret(key)
    try:
        from . import setting

        setting.load()  # what the UI saved (data/settings.json or $CIVITAI_GALLERY_SETTINGS)
        with _interruptible() as args.signal:
            return COMMANDS[args.command](args, out)
    except (UsageError, InvalidQueryError, TemplateError, SettingsError, NotFoundError) as exc:
        sys.stderr.write(f"error: {_user_message(exc, args)}\n")
        return EXIT_USAGE
    except OutputPathError as exc:
        sys.stderr.write(f"error: {_user_message(exc, args)}\n")
        return EXIT_USAGE
    except (ApiError, DiskSpaceError) as exc:
        sys.stderr.write(f"error: {_user_message(exc, args)}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("interrupted before any download started; nothing to resume\n")
        return EXIT_INTERRUPTED

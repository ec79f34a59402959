"""The tab's bulk downloads: one job at a time, handed to ``ImageDownloader``, with progress.

A job turns a :class:`~.query.Target` into ``ImageDownloader`` calls (the same service the CLI
uses), then waits for its tasks while reporting ``(done, total)`` to a progress function. Only one
job runs per process: a second start while one runs is refused with :class:`JobBusyError`, so a
double click never starts a duplicate download. ``cancel()`` reaches the running job from any
thread, also while it is still listing.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import setting
from ..errors import CivitaiGalleryError
from ..civitai.query import Target
from ..engine.failures import group_failures
from ..records import DownloadSummary
from ..resources.fetch import human_size
from .i18n import t
from .messages import FAILURE_REASONS, say

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
POLL_SECONDS = 0.2
TASK_COLUMNS = ["Started", "Download", "Images", "Result", "Failures"]
#: Tasks of one query created further apart than this belong to different jobs (a resume later).
JOB_GAP_SECONDS = 600


class JobBusyError(CivitaiGalleryError):
    """A gallery download is already running."""


@dataclass
class JobOutcome:
    """What a finished (or cancelled) job did."""

    task_ids: List[str] = field(default_factory=list)
    summary: DownloadSummary = field(default_factory=DownloadSummary)
    cancelled: bool = False
    kind: str = "download"  # download | retry

    @property
    def total(self) -> int:
        return len(self.task_ids)


def _no_progress(done: int, total: int, desc: str) -> None:
    return None


class GalleryJobs:
    """Owns the tab's ``ImageDownloader`` (rebuilt when settings change) and its one running job."""

    def __init__(self, downloader_factory: Optional[Callable[[], object]] = None):
        self._factory = downloader_factory or _default_downloader
        self._lock = threading.Lock()  # held for the whole of a job
        self._state = threading.Lock()  # guards the fields below
        self._downloader: Optional[Any] = None
        self._revision: Optional[int] = None
        self._task_ids: List[str] = []
        self._cancel = threading.Event()
        self.last_outcome: Optional[JobOutcome] = None
        self._job_starts: set = set()  # the first task id of each job run by this process
        self.side: Optional[Any] = None  # the downloader of a job with its own (Sync now)

    # -- the service -----------------------------------------------------------------------------

    def downloader(self, _starting_job: bool = False):
        """The current ``ImageDownloader``; a new one after a settings change (between jobs)."""
        with self._state:
            revision = setting.revision()
            stale = revision != self._revision and (_starting_job or not self.running)
            if self._downloader is None or stale:
                old = self._downloader
                self._downloader = self._factory()
                self._revision = revision
                if old is not None and hasattr(old, "close"):
                    old.close()
            return self._downloader

    @property
    def running(self) -> bool:
        return self._lock.locked()

    # -- jobs ------------------------------------------------------------------------------------

    def download(
        self,
        target: Target,
        nsfw_levels: Optional[Sequence[str]] = None,
        progress: ProgressFn = _no_progress,
        filters: Any = None,
    ) -> JobOutcome:
        """Download every image of ``target`` (NSFW levels and ``filters``, a FilterSpec,
        applied) and wait for the tasks."""

        def start(downloader) -> List[str]:
            return _start(downloader, target, nsfw_levels, filters)

        return self._run(start, progress, say("listing"), "download")

    def retry_failed(self, progress: ProgressFn = _no_progress) -> JobOutcome:
        """Retry every failed task the downloader knows and wait for them."""

        def start(downloader) -> List[str]:
            return list(downloader.retry_failed())

        return self._run(start, progress, say("retrying"), "retry")

    def cancel(self) -> int:
        """Cancel the running job (its queued and running tasks). Returns how many tasks."""
        if not self.running:
            return 0
        self._cancel.set()
        with self._state:
            task_ids = list(self._task_ids)
            downloader = self.side or self._downloader
        if downloader is not None:
            # Still listing (no task ids yet): cancel(None) also stops the listing. The tab's
            # downloader runs only this one job, so "everything" is exactly this job.
            downloader.cancel(task_ids or None)
        logger.info("cancel requested for the running gallery download (%d tasks)", len(task_ids))
        return len(task_ids)

    def run_exclusive(self, work: Callable[[threading.Event], JobOutcome]) -> JobOutcome:
        """Run ``work(cancel_event)`` as the one job (Sync now, ``ui/follow_panel``: its own
        downloaders, the running one in :attr:`side`); ``JobBusyError`` while another job runs,
        and the others refused while it runs."""
        if not self._lock.acquire(blocking=False):
            raise JobBusyError(say("already_running"))
        try:
            self._cancel.clear()
            self.last_outcome = work(self._cancel)
            return self.last_outcome
        finally:
            self.side = None
            self._lock.release()

    def _run(self, start: Callable[[object], List[str]], progress: ProgressFn, listing: str, kind):
        if not self._lock.acquire(blocking=False):
            raise JobBusyError(say("already_running"))
        try:
            self._cancel.clear()
            downloader = self.downloader(_starting_job=True)
            progress(0, 0, listing)
            listed_before = getattr(downloader, "last_drift", None)
            task_ids = [str(t) for t in start(downloader)]
            with self._state:
                self._task_ids = task_ids
                if task_ids and kind == "download":
                    self._job_starts.add(min(task_ids, key=_created_at(downloader)))
            if self._cancel.is_set() and task_ids:
                downloader.cancel(task_ids)
            outcome = self._wait(downloader, task_ids, progress)
            outcome.summary.filtered = dict(getattr(downloader, "last_filtered", None) or {})
            if listed_before is not getattr(downloader, "last_drift", None):  # this job listed
                outcome.summary.drift = list(getattr(downloader, "last_drift", None) or [])
            outcome.kind = kind
            self.last_outcome = outcome
            return outcome
        finally:
            with self._state:
                self._task_ids = []
            self._lock.release()

    def _wait(self, downloader, task_ids: List[str], progress: ProgressFn) -> JobOutcome:
        total = len(task_ids)
        started = time.monotonic()
        while task_ids:
            finished = downloader.wait(task_ids, timeout=POLL_SECONDS)
            summary = downloader.summary(task_ids)
            done = total - summary.pending
            elapsed = time.monotonic() - started
            progress(done, total, progress_text(done, total, summary.bytes_downloaded, elapsed))
            if finished:
                break
        summary = downloader.summary(task_ids) if task_ids else DownloadSummary()
        if not summary.output_path:
            summary.output_path = _output_path(downloader)
        return JobOutcome(task_ids, summary, cancelled=self._cancel.is_set())

    # -- history ---------------------------------------------------------------------------------

    def recent_tasks(self, limit: int = 20) -> List[List[str]]:
        """Rows for the recent-tasks table, one per job, newest first: when it started, what
        was downloaded (``model 4201``), how many images, the counts by state and the failures
        grouped by reason (no task hashes). A job is the tasks of one query started together."""
        tasks = sorted(self.downloader().get_all_tasks(), key=lambda t: t.created_at)
        with self._state:
            starts = set(self._job_starts)
        return [job_row(group) for group in reversed(group_jobs(tasks, starts)[-limit:])]


def _created_at(downloader) -> Callable[[str], float]:
    def created(task_id: str) -> float:
        task = downloader.get_task(task_id) if hasattr(downloader, "get_task") else None
        return float(getattr(task, "created_at", 0.0) or 0.0)

    return created


def group_jobs(tasks: Sequence[Any], starts: Iterable[str] = ()) -> List[List[Any]]:
    """``tasks`` (oldest first) cut into jobs: a run of the same query whose tasks were created
    less than :data:`JOB_GAP_SECONDS` apart; a task in ``starts`` (a job of this process began
    with it) always begins a new one."""
    starts = set(starts)
    groups: List[List[Any]] = []
    for task in tasks:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and str(getattr(task, "id", "")) not in starts
            and task.query_key is not None  # a single image is a job of its own
            and last.query_key == task.query_key
            and task.created_at - last.created_at < JOB_GAP_SECONDS
        ):
            groups[-1].append(task)
        else:
            groups.append([task])
    return groups


def job_row(tasks: Sequence[Any]) -> List[str]:
    """One job's row of the tasks table."""
    counts: Dict[str, int] = {}
    for task in tasks:
        counts[str(task.status)] = counts.get(str(task.status), 0) + 1
    total = len(tasks)
    active = counts.get("pending", 0) + counts.get("downloading", 0)
    if active:
        result = say("task_running", done=total - active, total=total)
    else:
        words = (
            ("completed", "task_done"),
            ("skipped", "task_done"),
            ("failed", "task_failed"),
            ("cancelled", "task_cancelled"),
        )
        merged: Dict[str, int] = {}
        for status, name in words:
            if counts.get(status):
                merged[name] = merged.get(name, 0) + counts[status]
        result = ", ".join(f"{say(name)} {n}" for name, n in merged.items())
    failures = [(task.image_id, str(task.error or "")) for task in tasks if task.status == "failed"]
    return [
        time.strftime("%Y-%m-%d %H:%M", time.localtime(tasks[0].created_at)),
        describe_query(tasks[0].query_key, tasks[0].image_id),
        str(total),
        result,
        failure_groups_text(failures, ids_shown=3),
    ]


def failure_groups_text(failures: Sequence[Tuple[Optional[int], str]], ids_shown: int = 3) -> str:
    """``131 × host unreachable (#1, #2, #3 and 128 more); 2 × HTTP 404 (#7, #9)``: the groups of
    ``engine/failures.group_failures`` (the CLI's report groups the same way), in the user's
    language."""
    parts = []
    for group in group_failures(failures, samples=ids_shown):
        shown = ", ".join(f"#{i}" for i in group.sample_ids)
        if group.more > 0:
            shown = say("failure_more_ids", ids=shown, more=group.more)
        parts.append(
            say("failure_group", count=group.count, reason=failure_reason(group.reason), ids=shown)
        )
    return "; ".join(parts)


def failure_reason(reason: str) -> str:
    """A group's reason (``engine/failures.failure_kind``'s words) in the user's language: one of
    :data:`~.messages.FAILURE_REASONS` with its fields (a host, an HTTP status) filled; any other
    reason (the error's own sentence) as it is, through ``t``."""
    for template, pattern in _REASON_PATTERNS:
        match = pattern.fullmatch(reason)
        if match:
            return t(template, **match.groupdict())
    return t(reason)


def _reason_pattern(template: str) -> "re.Pattern[str]":
    pieces = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(
            f"(?P<{piece}>.+?)" if odd else re.escape(piece)
            for odd, piece in ((i % 2 == 1, piece) for i, piece in enumerate(pieces))
        )
    )


_REASON_PATTERNS = [(template, _reason_pattern(template)) for template in FAILURE_REASONS]


def describe_query(query_key: Optional[str], image_id: Any = None) -> str:
    """``model:4201|nsfw=None,Soft`` -> ``model 4201``; a single image -> ``image 123``: the kinds
    of ``planning.listing_request.describe_query_key`` (the CLI's ``tasks`` words), in the user's
    language."""
    from ..planning.listing_request import describe_query_key

    if not query_key:
        return say("task_image", id=image_id if image_id is not None else "")
    head = query_key.split("|", 1)[0]
    kind, _sep, value = head.partition(":")
    if kind == "filter":
        return say("task_filter")
    if kind in ("creator", "user"):
        return say("task_user", name=value)
    if kind == "model":
        return say("task_model", id=value)
    if kind == "version":
        return say("task_version", id=value)
    if kind == "image":
        return say("task_image", id=value)
    return describe_query_key(query_key)


def progress_text(done: int, total: int, done_bytes: int, elapsed: float) -> str:
    """``Downloading 12/40 images · 3.1 MB of ~10.4 MB · 1.2 MB/s · 6 s left``."""
    parts = [say("progress", done=done, total=total)]
    if done_bytes:
        estimate = done_bytes / done * total if done else 0
        parts.append(
            f"{human_size(done_bytes)} of ~{human_size(estimate)}"
            if done
            else human_size(done_bytes)
        )
        if elapsed > 0.5:
            parts.append(f"{human_size(done_bytes / elapsed)}/s")
    if done and elapsed > 0.5 and done < total:
        left = (total - done) * elapsed / done
        if left < 90:
            parts.append(say("seconds_left", n=f"{left:.0f}"))
        else:
            parts.append(say("minutes_left", n=f"{left / 60:.0f}"))
    return " · ".join(parts)


def _output_path(downloader) -> str:
    return str(getattr(downloader, "output_path", "") or setting.get("images.output_path"))


def _start(
    downloader, target: Target, nsfw_levels: Optional[Sequence[str]], filters: Any = None
) -> List[str]:
    """The ``ImageDownloader`` call that lists (and queues) every image of ``target``, after the
    check the CLI makes too (``NotFoundError``: "model N was not found on Civitai; ...")."""
    from ..civitai.target_check import check_target_exists
    from ..planning.listing_request import for_target

    spec = filters if filters is not None and filters.active else None
    levels = list(nsfw_levels) if nsfw_levels else None
    request = for_target(
        target.kind,
        target.value,
        target.version_id,
        target.params,
        levels,
        spec,
        limit=0,
        default_levels=setting.get("images.default_nsfw_filter"),
    )
    use_levels = getattr(downloader.api, "use_levels", None)
    if use_levels is not None:  # the look-ups go to the front of the levels downloaded
        use_levels(request.levels if request is not None else levels)
    if request is not None:
        downloader.prefetch_first_page(request)  # listed beside the look-up, not after it
    check_target_exists(downloader.api, target.kind, target.value, target.version_id)
    if request is None:
        return [downloader.download_single_image(target.value)]
    return downloader.download_listing(request)


def _default_downloader():
    from ..image_downloader import ImageDownloader

    return ImageDownloader(
        output_path=setting.get("images.output_path"),
        path_template=setting.get("images.path_template"),
    )

"""The tab's bulk download: the Download all / Retry failed / Cancel buttons and the recent-tasks
table. A job runs on :data:`jobs` (``ui/jobs.py``, one at a time for the whole process); when it
ends the status text counts what happened, groups the failures by reason, names their real cause
in one toast and adds a line per kind of change in Civitai's answers."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Sequence, Tuple

import gradio as gr

from . import filters_row
from .actions import GalleryView, _levels
from .feedback import _handled, inform_user, toast_problem
from .gradio_compat import update, warn_user
from .jobs import GalleryJobs, JobBusyError, JobOutcome, failure_groups_text, failure_reason
from .messages import MESSAGES, say
from ..civitai.query import Target, parse_query
from ..engine.failures import group_failures

logger = logging.getLogger(__name__)

jobs = GalleryJobs()  # the tab's download service: one job at a time for the whole process


def _status_only(message: str, *args, **kwargs) -> str:
    return say("nothing_downloaded", reason=message)


def _progress_reporter(progress):
    def report(done: int, total: int, desc: str) -> None:
        if progress is None:
            return
        if total:
            progress((done, total), desc=desc, unit="images")
        else:
            progress(0, desc=desc)

    return report


def _target_for_download(query: str, view: Optional[GalleryView]) -> Target:
    """The loaded selection (with its version); the query box when it was changed since."""
    if view is not None and view.target is not None and (query or "").strip() == view.query.strip():
        return view.target
    return parse_query(query or "")


def summary_text(outcome: JobOutcome, resumable: bool = False) -> str:
    """The status after a job: counts, where the files are, the failures grouped by reason (a
    count and a few ids each), then one line per kind of change in Civitai's answers
    (``civitai/drift.py``). ``resumable``: a cancelled download came before this retry."""
    return _counts_text(outcome, resumable) + "".join(
        "\n" + drift_line(entry) for entry in outcome.summary.drift
    )


def drift_line(entry: Dict[str, Any]) -> str:
    """One ``civitai/drift`` entry (kind, count, of, example) as the tab's status line, in the
    user's language (the English words are ``drift.line``'s)."""
    kind = str(entry.get("kind"))
    fields = dict(count=entry.get("count"), of=entry.get("of"), example=entry.get("example"))
    message = say("drift_" + kind, **fields) if "drift_" + kind in MESSAGES else entry["message"]
    return say("drift_line", message=message)


def _counts_text(outcome: JobOutcome, resumable: bool = False) -> str:
    s = outcome.summary
    if outcome.total == 0:
        if outcome.cancelled:
            return say("cancelled_listing")
        hidden = filters_row.hidden_text(s.filtered)
        if outcome.kind == "retry":
            if hidden:
                return say("nothing_to_retry_hidden", hidden=hidden)
            return say("nothing_to_retry_cancelled" if resumable else "nothing_to_retry")
        if hidden:
            return say("nothing_to_download_hidden", hidden=hidden)
        return say("nothing_to_download")
    parts = [
        say(
            "counts",
            total=outcome.total,
            completed=s.completed,
            skipped=s.skipped,
            failed=s.failed,
        )
    ]
    if s.cancelled or outcome.cancelled:
        parts.append(say("counts_cancelled", cancelled=s.cancelled))
    hidden = filters_row.hidden_text(s.filtered)
    if hidden:
        parts.append(hidden)
    text = (
        say("sentence", text=say("list_sep").join(parts))
        + " "
        + say("saved_in", path=s.output_path)
    )
    if s.failed:
        groups = failure_groups_text(s.failures)
        text += " " + say("sentence", text=say("failures") + " " + groups)
    if outcome.cancelled and outcome.kind == "download":
        text += " " + say("resume_hint")
    return text


_NETWORK_WORDS = ("host unreachable", "connection", "timed out", "timeout", "resolve", "tls", "ssl")
_DISK_WORDS = ("no space", "disk", "permission", "read-only", "output folder", "errno")


def failure_cause(failures: Sequence[Tuple[Any, str]]) -> str:
    """``network`` when every failure is the network's, ``disk`` when every one is the output
    folder's, else ``other``: the toast names the real cause and nothing else."""
    reasons = [str(reason).lower() for _id, reason in failures]
    if reasons and all(any(w in r for w in _NETWORK_WORDS) for r in reasons):
        return "network"
    if reasons and all(any(w in r for w in _DISK_WORDS) for r in reasons):
        return "disk"
    return "other"


def _top_reason(failures: Sequence[Tuple[Any, str]]) -> str:
    groups = group_failures(failures)
    return failure_reason(groups[0].reason) if groups else ""


def _finish(outcome: JobOutcome, resumable: bool = False) -> str:
    """Toasts for the outcome; returns the status text (the tasks table follows the event)."""
    s = outcome.summary
    text = summary_text(outcome, resumable)
    cause = failure_cause(s.failures)
    reason = _top_reason(s.failures)
    if s.failed and (s.completed + s.skipped) == 0 and not outcome.cancelled:
        name = {"network": "none_saved_network", "disk": "none_saved_disk"}.get(cause, "none_saved")
        toast_problem(say(name, total=outcome.total, reason=reason))
    elif s.failed:
        name = {"network": "some_failed_network", "disk": "some_failed_disk"}.get(
            cause, "some_failed"
        )
        warn_user(say(name, failed=s.failed, total=outcome.total, reason=reason))
    elif outcome.total and not outcome.cancelled:
        name = "retry_finished" if outcome.kind == "retry" else "finished"
        inform_user(say(name, completed=s.completed, skipped=s.skipped, failed=s.failed))
    return text


def _run_job(start, progress, resumable: bool = False) -> Any:
    try:
        outcome = start(_progress_reporter(progress))
    except JobBusyError as exc:
        warn_user(str(exc))
        return update()
    return _finish(outcome, resumable)


@_handled(_status_only)
def download_all(
    query: str,
    nsfw: Sequence[str],
    view: GalleryView,
    base: Optional[Sequence[str]] = None,
    media_type: Optional[str] = None,
    with_data: bool = False,
    since: Optional[str] = None,
    until: Optional[str] = None,
    reactions: Any = None,
    used_with: Optional[str] = None,
    progress=gr.Progress(),
):
    """Download all examples with the Filters row's filters (``base`` .. ``used_with``, the
    order of ``filters_row.FIELDS``). Returns the status text (the tasks table follows the
    event)."""
    target = _target_for_download(query, view)
    levels = _levels(nsfw)
    spec = filters_row.spec_from_values(
        base, media_type, with_data, since, until, reactions, used_with
    )
    return _run_job(lambda report: jobs.download(target, levels, report, filters=spec), progress)


@_handled(_status_only)
def retry_failed(progress=gr.Progress()):
    """Retry failed. Returns the status text (after a cancelled download with nothing failed, it
    says that Download all resumes it)."""
    last = jobs.last_outcome
    resumable = last is not None and last.cancelled and last.kind == "download"
    return _run_job(jobs.retry_failed, progress, resumable)


def cancel_download() -> None:
    """Cancel button. Shows a toast; the status box is left to the running download, whose own
    summary (with the cancelled count) arrives when it stops."""
    gr.Info(cancel_message())


def cancel_message() -> str:
    """Cancel the running download (if any) and say what happened."""
    was_running = jobs.running
    count = jobs.cancel()
    if not was_running:
        message = say("no_download_running")
    elif count:
        message = say("cancelling", count=count)
    else:
        message = say("cancelling_listing")
    logger.info("%s", message)
    return message


def recent_tasks(limit: int = 20) -> Any:
    """Rows for the recent-tasks table, one per job; before the first job one row that says so
    (an empty table shows an empty grey row on some Gradio lines)."""
    rows = jobs.recent_tasks(limit)
    if rows:
        return rows
    return [["", say("no_tasks"), "", "", ""]]


@_handled(lambda message: update())
def refresh_tasks():
    return recent_tasks()

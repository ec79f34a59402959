"""The outcome of a CLI run: its completeness report, exit code, error sentence and JSON file.

Exit codes: 0 all done, 1 some images failed (or a disk or archive problem stopped the run), 2 bad
usage or input, 4 Civitai could not be reached (its API: the run could not list), 130 interrupted
(Ctrl-C / SIGTERM; the next identical command resumes).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO

from .catalog import PROG
from ..engine.failures import (
    HINT_API_KEY,
    HINT_FREE_SPACE,
    HINT_LATER,
    HINT_NETWORK,
    HINT_OUTPUT_FOLDER,
    HINT_RESUME,
    FailureGroup,
    group_failures,
)
from ..civitai import drift
from ..errors import AuthError, NetworkError
from ..util.logging_setup import redact
from ..records import DownloadSummary
from ..store import confined

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 4  # as wget's "network failure"
EXIT_INTERRUPTED = 130


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
    unreachable: bool = False  # Civitai's API could not be reached: exit 4
    limit_cut: Optional[int] = None  # the listing stopped at --limit N while Civitai had more
    listed_any: Optional[bool] = None  # the listing's pages held an image (None: no listing)
    gone: Optional[str] = None  # sync: the target is no longer on Civitai (planning/follow_sync)

    @property
    def listed(self) -> int:
        """Every image looked at: those with a task and those a filter dropped."""
        return self.summary.listed + sum(self.summary.filtered.values())

    def to_dict(self) -> Dict[str, Any]:
        s = self.summary
        return {
            "command": self.command,
            "target": self.target,
            "output": self.output,
            "listed": self.listed,
            "filtered": dict(s.filtered),
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
            "skipped_items": [
                {"image_id": image_id, "reason": redact(str(reason))}
                for image_id, reason in s.skipped_notes
            ],
            "notes": list(s.notes),
            "drift": [
                {key: entry.get(key) for key in ("kind", "count", "of", "example", "message")}
                for entry in s.drift
            ],
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at) if self.finished_at else None,
            "elapsed_seconds": round((self.finished_at or time.time()) - self.started_at, 3),
            "limit_reached": self.limit_cut,
            "exit_code": self.exit_code,
        }

    def lines(self) -> List[str]:
        s = self.summary
        filtered = sum(s.filtered.values())
        reasons = ", ".join(f"{why} {count}" for why, count in s.filtered.items() if count)
        out = [
            f"listed {self.listed}: "
            + (f"filtered {filtered} ({reasons}), " if filtered else "")
            + f"saved {s.completed}, skipped {s.skipped}, failed {s.failed}"
            + (f", cancelled {s.cancelled}" if s.cancelled else "")
            + (f", not started {s.pending}" if s.pending else "")
        ]
        if self.limit_cut:
            out.append(f"{self.limit_cut} of more (--limit {self.limit_cut}); --limit 0 for all")
        out += failure_lines(s.failures, self.output)
        if s.skipped_notes:
            out.append("skipped:")
            for image_id, reason in s.skipped_notes:
                out.append(f"  image {image_id if image_id is not None else '?'}: {redact(reason)}")
        out.extend(s.notes)  # incremental stops, or why a re-run listed everything
        if self.stopped_reason:
            left = f", {s.cancelled} image(s) not started" if s.cancelled else ""
            out.append(f"stopped early{left}: {redact(self.stopped_reason)}")
        if self.interrupted:
            out.append("interrupted: run the same command again to resume")
        out.append(f"output: {self.output}")
        out.append(s.line())
        return out


def exit_code(report: RunReport) -> int:
    """130 when interrupted, 1 when anything is not done or the run stopped early, else 0."""
    s = report.summary
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.unreachable:
        return EXIT_UNREACHABLE
    if s.failed or s.cancelled or s.pending or report.stopped_reason:
        return EXIT_FAILED
    return EXIT_OK


def finish(report: RunReport, report_path: Optional[str], out: TextIO) -> int:
    """Stamp the end time and exit code, print the report to ``out``, write the JSON file."""
    report.finished_at = time.time()
    report.exit_code = exit_code(report)
    for line in report.lines():
        out.write(line + "\n")
    out.flush()
    for entry in report.summary.drift:  # one warning line per kind of change, at the end
        log.warning("%s", drift.line(entry))
    if report_path:
        write_report(report_path, report.to_dict())
    return report.exit_code


def _retry_command(output: str) -> str:
    """The retry command for ``output`` (``--output`` left out for the default folder)."""
    default = os.path.abspath("images")
    where = "" if os.path.abspath(output) == default else f" --output {shlex.quote(output)}"
    return f"`{PROG} retry-failed{where}`"


def _hint(hint: Optional[str], output: str) -> str:
    """A failure group's hint in the CLI's words."""
    retry = _retry_command(output)
    return {
        HINT_NETWORK: f"check your network, then run {retry}",
        HINT_LATER: f"try again later with {retry}",
        HINT_RESUME: f"run {retry} to resume them",
        HINT_API_KEY: f"pass a valid key with --api-key or CIVITAI_API_KEY, then run {retry}",
        HINT_FREE_SPACE: f"free space on the disk, then run {retry}",
        HINT_OUTPUT_FOLDER: f"check that {output} can be written, then run {retry}",
    }.get(hint or "", "")


def _ids(group: FailureGroup) -> str:
    ids = ", ".join(str(i) if i is not None else "?" for i in group.sample_ids)
    word = "id" if group.count == 1 else "ids"
    return f"{word} {ids}" + (f" and {group.more} more" if group.more else "")


def failure_lines(failures, output: str) -> List[str]:
    """One line per reason: ``131 images failed: host unreachable (civitai.com) — ids 12, 13,
    14 and 128 more; check your network, then run `python main.py retry-failed```."""
    lines = []
    for group in group_failures(failures):
        noun = "image" if group.count == 1 else "images"
        line = f"{group.count} {noun} failed: {redact(group.reason)} — {_ids(group)}"
        hint = _hint(group.hint, output)
        lines.append(line + (f"; {hint}" if hint else ""))
    return lines


def user_message(exc: BaseException, base_url: Optional[str] = None) -> str:
    """The error's own sentence (secrets masked), plus the CLI option that fixes it, if any."""
    text = redact(str(exc)) or exc.__class__.__name__
    if isinstance(exc, NetworkError):
        base = redact(base_url or os.environ.get("CIVITAI_BASE_URL") or "https://civitai.com")
        text = text.replace(" and the civitai_base_url setting", "").rstrip(".")
        return f"{text}, or --base-url if {base} is not where Civitai is."
    if isinstance(exc, AuthError):
        return f"{text} (pass a valid key with --api-key or CIVITAI_API_KEY)"
    return text


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds")


def write_report(path: str, data: Dict[str, Any]) -> None:
    """Write the JSON report atomically (temp file in the same folder, fsync, ``os.replace``)."""
    folder = confined.ensure_root(os.path.dirname(os.path.abspath(path)))
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    confined.write_atomic(path, text.encode("utf-8"), folder)

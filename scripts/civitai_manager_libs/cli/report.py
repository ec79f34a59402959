"""The outcome of a CLI run: its completeness report, exit code, error sentence and JSON file.

Exit codes: 0 all done, 1 some images failed (or a disk or archive problem stopped the run), 2 bad
usage or input, 130 interrupted (Ctrl-C / SIGTERM; the next identical command resumes).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO

from ..errors import AuthError, NetworkError
from ..util.logging_setup import redact
from ..records import DownloadSummary
from ..store import confined

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
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
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at) if self.finished_at else None,
            "elapsed_seconds": round((self.finished_at or time.time()) - self.started_at, 3),
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
        if s.failures:
            out.append("failures:")
            for image_id, reason in s.failures:
                out.append(f"  image {image_id if image_id is not None else '?'}: {redact(reason)}")
        if s.skipped_notes:
            out.append("skipped:")
            for image_id, reason in s.skipped_notes:
                out.append(f"  image {image_id if image_id is not None else '?'}: {redact(reason)}")
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
    if report_path:
        write_report(report_path, report.to_dict())
    return report.exit_code


def user_message(exc: BaseException, base_url: Optional[str] = None) -> str:
    """The error's own sentence (secrets masked), plus the CLI option that fixes it, if any."""
    text = redact(str(exc)) or exc.__class__.__name__
    if isinstance(exc, NetworkError):
        base = base_url or os.environ.get("CIVITAI_BASE_URL") or "Civitai"
        return f"{text} (could not reach {redact(base)}; check the network or --base-url)"
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

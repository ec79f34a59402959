"""The tab's words after a job (issue 24 items 2, 8, 12): failures grouped by reason with a count
and a few ids, the real cause named (no "output folder" when it was the network), the tab's
button names (no CLI command), Retry failed after a Cancel pointing at Download all, one Recent
tasks row per job, and a toast for a finished download."""

from __future__ import annotations

import pytest

from scripts.civitai_manager_libs.records import DownloadSummary
from scripts.civitai_manager_libs.ui import download_job as action
from scripts.civitai_manager_libs.ui.jobs import JobOutcome, group_jobs, job_row

#: engine/failures.describe_failure's sentence for an image gone from Civitai
GONE = "HTTP 404: the image is no longer on Civitai"


def outcome(failures, completed=0, cancelled=False, kind="download", total=None):
    summary = DownloadSummary()
    summary.completed = completed
    summary.failed = len(failures)
    summary.failures = list(failures)
    summary.output_path = "/out"
    total = total if total is not None else completed + len(failures)
    return JobOutcome([str(i) for i in range(total)], summary, cancelled=cancelled, kind=kind)


def test_identical_failures_are_one_group_with_a_count_and_three_ids():
    down = [(n, f"host unreachable: http://h failed {n} connection attempts") for n in range(194)]
    text = action.summary_text(outcome(down))
    assert text.count("×") == 1 and "194 × host unreachable (h) (#0, #1, #2 and 191 more)" in text
    gone = [(n, GONE) for n in (11, 12)]
    text = action.summary_text(outcome(gone, completed=3))
    assert "2 × no longer on Civitai (HTTP 404) (#11, #12)" in text


def test_the_toast_names_the_real_cause_in_the_tabs_words(monkeypatch):
    said = []
    monkeypatch.setattr(action, "toast_problem", said.append)
    monkeypatch.setattr(action, "warn_user", said.append)
    monkeypatch.setattr(action, "inform_user", said.append)
    action._finish(outcome([(n, "host unreachable: http://h") for n in range(131)]))
    assert "network connection" in said[-1] and "press Retry failed" in said[-1]
    assert "output folder" not in said[-1] and "retry-failed" not in said[-1]
    action._finish(outcome([(1, "[Errno 28] No space left on device")], completed=2))
    assert "output folder" in said[-1] and "network" not in said[-1]
    action._finish(outcome([], completed=5))
    assert said[-1] == "Download finished: 5 downloaded, 0 already there, 0 failed."


def test_retry_after_a_cancel_says_that_download_all_resumes():
    cancelled = outcome([], completed=2, cancelled=True, total=10)
    assert "press Download all examples again to resume" in action.summary_text(cancelled).replace(
        "Press", "press"
    )
    nothing = JobOutcome(kind="retry")
    assert action.summary_text(nothing) == "Nothing to retry: no download has failed."
    assert "Download all examples again to resume" in action.summary_text(nothing, resumable=True)


class _Task:
    def __init__(self, at, key, status, image_id=1, error=None):
        self.created_at, self.query_key, self.status = at, key, status
        self.image_id, self.error = image_id, error
        self.id = f"t{at}"


def test_recent_tasks_are_one_row_per_job():
    tasks = [_Task(100 + i, "model:1|nsfw=None", "completed", i) for i in range(30)]
    tasks += [_Task(140, "model:1|nsfw=None", "failed", 99, "host unreachable: http://h")]
    tasks += [_Task(5000, "model:1|nsfw=None", "completed", 7)]  # a resume later: another job
    tasks += [_Task(5001, None, "completed", 55), _Task(5002, None, "completed", 56)]
    groups = group_jobs(tasks)
    assert [len(g) for g in groups] == [31, 1, 1, 1]
    row = job_row(groups[0])
    assert row[1:] == ["model 1", "31", "done 30, failed 1", "1 × host unreachable (h) (#99)"]
    assert job_row(groups[2])[1] == "image 55"
    # the same download started again at once is a job of its own when this process ran it
    again = group_jobs(tasks[:31], starts={"t110"})
    assert [len(g) for g in again] == [10, 21]


@pytest.mark.parametrize(
    "reason",
    ["the connection timed out", "host unreachable: http://h failed 5 connection attempts"],
)
def test_network_reasons_are_the_networks(reason):
    assert action.failure_cause([(1, reason)]) == "network"


def test_grouped_failures_and_drift_lines_are_in_the_users_language():
    """The groups are engine/failures.group_failures' (the CLI's), their reasons and the drift
    lines under the status (civitai/drift.py) worded through the message table."""
    from scripts.civitai_manager_libs.civitai import drift
    from scripts.civitai_manager_libs.ui import i18n

    down = [(n, "host unreachable: http://img.example:8080 failed 5 attempts") for n in range(4)]
    done = outcome(down + [(9, GONE)], completed=1)
    kinds = [("hosts", 3, 60, "cdn.example"), ("levels", 0, 80, None)]
    done.summary.drift = [
        dict(kind=k, count=c, of=o, example=e, message=drift._message(k, c, o, e))
        for k, c, o, e in kinds
    ]
    english = action.summary_text(done).split("\n")
    assert "4 × host unreachable (img.example:8080) (#0, #1, #2 and 1 more)" in english[0]
    assert english[1:] == [drift.line(entry) for entry in done.summary.drift]
    i18n.set_language("zh_TW")
    try:
        lines = action.summary_text(done).split("\n")
    finally:
        i18n.set_language(None)
    assert "4 × 主機無法連線（img.example:8080）" in lines[0]
    assert "1 × 已不在 Civitai 上（HTTP 404）（#9）" in lines[0]
    assert len(lines) == 3 and all(
        line.startswith("Civitai 的回應格式變了：") for line in lines[1:]
    )
    assert "cdn.example" in lines[1] and "civitai.red" in lines[2]
    assert not any("answers changed" in line or "host unreachable" in line for line in lines)

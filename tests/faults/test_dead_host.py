"""Issue 10 item 9: an image host that dies mid-run costs seconds, not minutes: after a few
connection failures in a row the host counts as down, its remaining images fail at once with
"host unreachable" (retry-failed picks them up), and one line says so."""

from __future__ import annotations

import json
import time

import pytest
from cli_harness import (
    assert_complete,
    download_model_args,
    image_ids,
    media_files,
    run_cli,
    start_cli,
)

pytestmark = pytest.mark.slow

N_IMAGES = 60


def test_dead_image_host_fails_fast_with_one_line_then_retry_completes(generated_fake, tmp_path):
    fake = generated_fake(n_images=N_IMAGES, image_kb=32, bandwidth=512 * 1024)
    ids = image_ids(fake)
    output = tmp_path / "out"
    report_path = tmp_path / "report.json"
    args = [a for a in download_model_args(fake, output, 5) if a != "-q"]  # default output
    proc = start_cli([*args, "--report", report_path], tmp_path)
    try:
        deadline = time.monotonic() + 30
        while sum(r.completed for r in fake.image_requests()) < 5:
            assert time.monotonic() < deadline, "the run never got going"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        fake.stop_image_host()
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=60)  # the old code spent minutes retrying
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 1, err
    print(f"dead host: the run ended {took:.1f} s after the host died")
    assert took < 20, f"{took:.1f} s after the host died"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    unreachable = [f for f in report["failures"] if "host unreachable" in f["reason"]]
    assert report["failed"] >= 20 and len(unreachable) >= report["failed"] - 5, report["failures"]
    log_lines = [line for line in err.splitlines() if " WARNING " in line or " ERROR " in line]
    assert sum("is unreachable" in line for line in log_lines) == 1, log_lines
    assert len(log_lines) <= 3, "\n".join(log_lines)  # the old code printed one per retry
    assert not any("retry" in line.lower() for line in err.splitlines() if " INFO " in line)
    assert not any("Retrying" in line for line in err.splitlines())  # urllib3's, at -v only

    failed = run_cli(
        ["tasks", "--output", output, "--status", "failed", "--limit", "100"], tmp_path
    )
    assert failed.returncode == 0, failed.stderr
    for item in unreachable:
        assert str(item["image_id"]) in failed.stdout

    fake.start_image_host()
    retry = run_cli(
        ["retry-failed", "--output", output, "--base-url", fake.base_url, "-q"], tmp_path
    )
    assert retry.returncode == 0, retry.stderr
    assert_complete(output, ids)
    assert set(media_files(output)) == set(ids)

"""kill -9 of a real CLI run at random points, ten times, then resume to completion."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from cli_harness import (
    download_model_args,
    assert_decodable,
    assert_complete,
    image_ids,
    media_files,
    part_files,
    run_cli,
    start_cli,
)

pytestmark = pytest.mark.slow

KILLS = 10
SEED = int(os.environ.get("FAULT_SEED", "20261123"))


def _download_args(fake, output):
    return download_model_args(fake, output, 3, "--metadata", "json")


def test_kill_nine_ten_times_then_resume(generated_fake, tmp_path):
    # 60 images of 96 KiB at 384 KiB/s per response: ~0.25 s each, ~5 s of work at concurrency 3,
    # so ten kills between 0.4 s and 1.6 s after start land before, during and between files.
    fake = generated_fake(n_images=60, image_kb=96, latency=0.01, bandwidth=384 * 1024)
    output = tmp_path / "out"
    args = _download_args(fake, output)
    rng = random.Random(SEED)
    finished_early = 0
    saw_part = False
    for attempt in range(KILLS):
        proc = start_cli(args, tmp_path)
        time.sleep(rng.uniform(0.4, 1.6))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        if proc.returncode == 0:
            finished_early += 1
        else:
            assert proc.returncode == -signal.SIGKILL, f"attempt {attempt}: rc {proc.returncode}"
        saw_part = saw_part or bool(part_files(output))
        # Whatever a kill left behind, no final file is ever partial.
        for paths in media_files(output).values():
            for path in paths:
                assert_decodable(path)
    assert finished_early < KILLS, "the job finished before any kill: make it bigger"
    assert saw_part, "no kill ever landed mid-stream (no .part file was ever seen)"
    saved_before = set(media_files(output))

    fake.reset()  # the log now holds the resume's requests only
    final = run_cli(args, tmp_path)
    assert final.returncode == 0, final.stderr
    assert final.last_line.startswith("downloaded ")
    expected = image_ids(fake)
    assert len(expected) == 60
    assert_complete(output, expected)
    # The resume fetched what was missing; a file already saved is fetched again only when a kill
    # fell between its rename and its archive row (at most a few per kill).
    refetched = {_image_id(r.path) for r in fake.image_requests()} & saved_before
    assert len(refetched) <= KILLS, f"re-downloaded {len(refetched)} images that were on disk"

    # A second identical run is a no-op on the image host.
    fake.reset()
    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert fake.image_requests() == []
    assert again.last_line == "downloaded 0, skipped 60, failed 0"


def _image_id(path: str) -> int:
    return int(path.rsplit("/", 1)[-1].split(".")[0])

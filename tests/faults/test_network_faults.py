"""Network faults against a real CLI run: cut streams, 429/503 storms, HTML bodies, 404s."""

from __future__ import annotations

import json
import os
import random

import pytest
from cli_harness import (
    download_model_args,
    assert_complete,
    image_ids,
    media_files,
    part_files,
    run_cli,
)

pytestmark = pytest.mark.slow

N_IMAGES = 30


def _args(fake, output, *extra):
    return download_model_args(fake, output, 5, *extra)


def _image_id(path: str) -> int:
    return int(path.rsplit("/", 1)[-1].split(".")[0])


def _requests_by_id(fake):
    by_id = {}
    for record in fake.image_requests():
        by_id.setdefault(_image_id(record.path), []).append(record)
    return by_id


def _header(record, name):
    for key, value in dict(record.headers).items():
        if key.lower() == name.lower():
            return value
    return None


def test_thirty_percent_cut_mid_stream_are_resumed(generated_fake, tmp_path):
    fake = generated_fake(n_images=N_IMAGES, image_kb=48)
    ids = image_ids(fake)
    cut = random.Random(7).sample(ids, int(N_IMAGES * 0.3))
    for image_id in cut:
        fake.faults.cut_after(f"*/{image_id}.*", 20_000, count=1)
    output = tmp_path / "out"

    run = run_cli(_args(fake, output), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.last_line == f"downloaded {N_IMAGES}, skipped 0, failed 0"
    assert_complete(output, ids)
    by_id = _requests_by_id(fake)
    for image_id in cut:
        records = by_id[image_id]
        assert len(records) >= 2, f"image {image_id} was cut but fetched once"
        assert any(_header(r, "Range") for r in records[1:]), f"image {image_id} not resumed"
    for image_id in set(ids) - set(cut):
        assert len(by_id[image_id]) == 1


def _assert_paused(records, pause: float, grace: float = 0.25):
    """After each 503/429 answer, no new request reached that host until ``pause`` had passed
    (requests already in flight when the answer left are allowed within ``grace``)."""
    blocked = [r for r in records if r.status in (429, 503)]
    assert blocked, "the storm never happened"
    for stop in blocked:
        early = [
            r
            for r in records
            if r is not stop and stop.time + grace < r.time < stop.time + pause - 0.02
        ]
        assert not early, f"{len(early)} request(s) within {pause}s of a {stop.status} answer"


def test_429_and_503_storms_honour_retry_after(generated_fake, tmp_path):
    fake = generated_fake(n_images=N_IMAGES, image_kb=16)
    fake.faults.queue_status(
        "/api/v1/images", 429, headers={"Retry-After": "1"}, count=2, server="api"
    )
    fake.faults.queue_status("*.jpeg", 503, headers={"Retry-After": "1"}, count=6, server="image")
    output = tmp_path / "out"

    run = run_cli(_args(fake, output), tmp_path)

    assert run.returncode == 0, run.stderr
    assert_complete(output, image_ids(fake))
    _assert_paused(fake.api_requests(), 1.0)
    _assert_paused(fake.image_requests(), 1.0)


def test_html_with_status_200_is_a_reported_failure(generated_fake, tmp_path):
    fake = generated_fake(n_images=N_IMAGES, image_kb=16)
    ids = image_ids(fake)
    bad = ids[3:6]
    for image_id in bad:
        fake.faults.html_instead(f"*/{image_id}.*")
    output = tmp_path / "out"
    report_path = tmp_path / "report.json"

    run = run_cli(_args(fake, output, "--report", report_path), tmp_path)

    assert run.returncode == 1, run.stderr
    assert run.last_line == f"downloaded {N_IMAGES - 3}, skipped 0, failed 3"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["listed"], report["saved"], report["failed"]) == (N_IMAGES, N_IMAGES - 3, 3)
    assert sorted(f["image_id"] for f in report["failures"]) == sorted(bad)
    for failure in report["failures"]:
        reason = failure["reason"].lower()
        assert "html" in reason or "web page" in reason, failure["reason"]
    files = media_files(output)
    assert set(files) == set(ids) - set(bad)  # nothing saved under the bad ids
    assert part_files(output) == []
    by_id = _requests_by_id(fake)
    for image_id in bad:
        assert 1 <= len(by_id[image_id]) <= 3, "an HTML answer must not be retried forever"
    grouped = [line for line in run.report.splitlines() if line.startswith("3 images failed")]
    assert len(grouped) == 1 and grouped[0].startswith(
        "3 images failed: the server sent a web page"
    )
    assert all(str(image_id) in grouped[0] for image_id in bad)


def test_404_images_are_reported_once_then_retry_failed_completes(generated_fake, tmp_path):
    fake = generated_fake(n_images=N_IMAGES, image_kb=16)
    ids = image_ids(fake)
    missing = ids[-4:]
    for image_id in missing:
        fake.faults.not_found(f"*/{image_id}.*")
    output = tmp_path / "out"
    report_path = tmp_path / "report.json"

    run = run_cli(_args(fake, output, "--report", report_path), tmp_path)

    assert run.returncode == 1, run.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert sorted(f["image_id"] for f in report["failures"]) == sorted(missing)
    by_id = _requests_by_id(fake)
    for image_id in missing:
        assert len(by_id[image_id]) == 1, "a 404 must not be retried"
    assert set(media_files(output)) == set(ids) - set(missing)

    tasks = run_cli(["tasks", "--output", output, "--status", "failed"], tmp_path)
    assert tasks.returncode == 0, tasks.stderr
    for image_id in missing:
        assert str(image_id) in tasks.stdout

    fake.faults.clear()
    fake.reset()
    retry = run_cli(
        ["retry-failed", "--output", output, "--base-url", fake.base_url, "-q"], tmp_path
    )
    assert retry.returncode == 0, retry.stderr
    assert retry.last_line == "downloaded 4, skipped 0, failed 0"
    assert {_image_id(r.path) for r in fake.image_requests()} == set(missing)
    assert_complete(output, ids)
    # the retried images are no longer reported as failing
    still = run_cli(["tasks", "--output", output, "--status", "failed"], tmp_path)
    assert still.returncode == 0, still.stderr
    assert still.last_line.startswith("0 task(s)"), still.stdout


def test_retry_failed_writes_files_the_way_the_download_did(generated_fake, tmp_path):
    # The download chose a template and metadata formats; retry-failed, given neither, must
    # put the retried images in the same place with the same sidecars.
    fake = generated_fake(n_images=8, image_kb=16)
    ids = image_ids(fake)
    missing = ids[:3]
    for image_id in missing:
        fake.faults.not_found(f"*/{image_id}.*")
    output = tmp_path / "out"
    extra = ("--template", "by-post/{id}", "--metadata", "json,txt")
    run = run_cli(_args(fake, output, *extra), tmp_path)
    assert run.returncode == 1, run.stderr

    fake.faults.clear()
    retry = run_cli(
        ["retry-failed", "--output", output, "--base-url", fake.base_url, "-q"], tmp_path
    )
    assert retry.returncode == 0, retry.stderr
    saved = media_files(output)
    assert set(saved) == set(ids)
    for image_id in ids:
        (path,) = saved[image_id]
        assert os.path.basename(os.path.dirname(path)) == "by-post", path
        stem = os.path.splitext(path)[0]
        assert os.path.isfile(stem + ".json") and os.path.isfile(stem + ".txt"), path

"""Hostile input: unknown ids, malformed API answers, hostile names; nothing leaves --output."""

from __future__ import annotations

import os

import pytest
from cli_harness import files_outside, media_files, run_cli

pytestmark = pytest.mark.slow


def _base(fake, output):
    return ["--base-url", fake.base_url, "--output", output, "--nsfw", "all", "-q"]


@pytest.mark.parametrize(
    "target, word",
    [
        (["model", "987654321"], "model 987654321"),
        (["version", "987654321"], "version 987654321"),
        (["image", "987654321"], "image 987654321"),
        (["url", "https://civitai.com/models/987654321"], "model 987654321"),
    ],
)
def test_unknown_ids_exit_2_and_write_nothing(fake_civitai, tmp_path, target, word):
    output = tmp_path / "out"
    run = run_cli(["download", *target, *_base(fake_civitai, output)], tmp_path)
    assert run.returncode == 2, (run.stdout, run.stderr)
    message = run.stderr.strip().splitlines()
    assert len(message) == 1 and word in message[0] and "not found" in message[0], run.stderr
    assert not output.exists()
    assert fake_civitai.image_requests() == []


@pytest.mark.parametrize(
    "target",
    [
        ["model", "12abc"],
        ["user", "../../etc"],
        ["url", "https://civitai.com/images/not-a-number"],
        ["filter", "limit=5"],
        ["filter", "username"],
    ],
)
def test_malformed_targets_are_usage_errors(fake_civitai, tmp_path, target):
    output = tmp_path / "out"
    run = run_cli(["download", *target, *_base(fake_civitai, output)], tmp_path)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stderr.startswith("error: ")
    assert "traceback" not in run.stderr.lower()
    assert not output.exists()
    assert fake_civitai.log == []


def test_malformed_json_from_the_api(fake_civitai, tmp_path):
    model = fake_civitai.dataset.models[0]
    fake_civitai.faults.queue_status(
        "/api/v1/images", 200, body=b'{"items": [ {"id": 1,', count=50, server="api"
    )
    output = tmp_path / "out"
    run = run_cli(["download", "model", model.id, *_base(fake_civitai, output)], tmp_path)
    assert run.returncode in (1, 2), (run.stdout, run.stderr)
    assert "traceback" not in run.stderr.lower()
    assert "json" in run.stderr.lower() or "invalid" in run.stderr.lower(), run.stderr
    assert media_files(tmp_path) == {}


def _hostile(text: str) -> bool:
    return (
        any(mark in text for mark in ("..", "/", "\\", ":", "*", "?", "%"))
        or text.lower() in ("con", "nul", "aux", "prn")
        or len(text.encode()) > 200
        or not text.isascii()
    )


def test_hostile_creator_and_model_names_stay_inside_output(fake_civitai, tmp_path):
    dataset = fake_civitai.dataset
    hostile = [m for m in dataset.models if _hostile(m.name) or _hostile(m.creator)]
    assert len(hostile) >= 3, "the default dataset should hold hostile names"
    output = tmp_path / "deep" / "out"
    outside_before = files_outside(tmp_path, [output])
    template = ["--template", "{creator}/{model_name}/{id}", "--limit", "4"]
    for model in hostile:
        run = run_cli(
            ["download", "model", model.id, *template, *_base(fake_civitai, output)], tmp_path
        )
        assert run.returncode == 0, run.stderr
    run = run_cli(["download", "user", "con", *template, *_base(fake_civitai, output)], tmp_path)
    assert run.returncode == 0, run.stderr
    assert files_outside(tmp_path, [output]) == outside_before
    saved = media_files(output)
    assert len(saved) >= 4 * len(hostile)
    for folder, dirs, names in os.walk(output):
        for name in dirs + names:
            assert name not in ("..", ".") and "\\" not in name and len(name.encode()) <= 255
            assert name.split(".")[0].lower() not in ("con", "nul", "aux", "prn"), name

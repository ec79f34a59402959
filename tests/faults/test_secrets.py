"""The API key (a marker value) reaches the API host only: never a log line, report, sidecar,
embedded text or any request to the image host."""

from __future__ import annotations

import os

import pytest
from cli_harness import media_files, run_cli

pytestmark = pytest.mark.slow

MARKER = "MARKERkey0123456789abcdefSECRET"


def _encodings(text: str):
    return [text.encode(enc) for enc in ("utf-8", "utf-16-be", "utf-16-le")]


def _all_files(root):
    for folder, _dirs, names in os.walk(str(root)):
        for name in names:
            yield os.path.join(folder, name)


def _header(record, name):
    for key, value in dict(record.headers).items():
        if key.lower() == name.lower():
            return value
    return None


@pytest.mark.parametrize("via", ["option", "env"])
def test_api_key_goes_nowhere_but_the_api_host(fake_civitai, tmp_path, via):
    model = fake_civitai.dataset.models[0]
    output = tmp_path / "out"
    report = tmp_path / "report.json"
    args = [
        "download",
        "model",
        model.id,
        "--base-url",
        fake_civitai.base_url,
        "--output",
        output,
        "--nsfw",
        "all",
        "--limit",
        "6",
        "--metadata",
        "json,txt,exif",
        "--thumbnails",
        "--report",
        report,
        "-v",
    ]
    env = {}
    if via == "option":
        args += ["--api-key", MARKER]
    else:
        env["CIVITAI_API_KEY"] = MARKER

    run = run_cli(args, tmp_path, env=env)

    assert run.returncode == 0, run.stderr
    assert media_files(output), "nothing was downloaded"
    assert "DEBUG" in run.stderr, "verbose logging did not reach stderr"
    assert MARKER not in run.stdout and MARKER not in run.stderr
    checked = 0
    for path in list(_all_files(output)) + [str(report)]:
        with open(path, "rb") as fh:
            data = fh.read()
        for needle in _encodings(MARKER):
            assert needle not in data, f"the key is in {path}"
        checked += 1
    assert checked >= 3 * 6  # images, json and txt sidecars at least
    # The key was used: the API host received it as a bearer token ...
    api = fake_civitai.api_requests()
    assert api and all(_header(r, "Authorization") == f"Bearer {MARKER}" for r in api)
    # ... and the image host never saw it in any header or query.
    images = fake_civitai.image_requests()
    assert images
    for record in images:
        assert _header(record, "Authorization") is None
        blob = repr(dict(record.headers)) + repr(record.query) + record.path
        assert MARKER not in blob

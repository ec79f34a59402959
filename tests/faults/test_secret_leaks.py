"""Secrets in URLs (issue 10, items 10, 11 and 12): credentials in a base URL are refused
everywhere, secret-looking query values never reach output, reports or the archive, and the API key
never rides on a redirect into the API origin."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from cli_harness import ARCHIVE_NAME, download_model_args, media_files, run_cli

pytestmark = pytest.mark.slow

PASSWORD = "PASSWORDvalue0123456789"
MARKER = "MARKERkey0123456789abcdefSECRET"
QUERY_SECRETS = {
    "token": "SECRETtoken1111",
    "key": "SECRETkey2222",
    "sig": "SECRETsig3333",
    "X-Amz-Signature": "SECRETamz4444",
    "password": "SECRETpw5555",
}


def _with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://user:{PASSWORD}@{rest}"


@pytest.mark.parametrize("via", ["option", "env", "settings"])
def test_credentials_in_the_base_url_are_refused(fake_civitai, tmp_path, via):
    model = fake_civitai.dataset.models[0]
    output = tmp_path / "out"
    report = tmp_path / "report.json"
    bad = _with_credentials(fake_civitai.base_url)
    args = ["download", "model", model.id, "--output", output, "--report", report, "-v"]
    env = {}
    if via == "option":
        args += ["--base-url", bad]
    elif via == "env":
        env["CIVITAI_BASE_URL"] = bad
    else:
        (tmp_path / "settings.json").write_text(json.dumps({"civitai_base_url": bad}), "utf-8")

    run = run_cli(args, tmp_path, env=env)

    text = run.stdout + run.stderr
    assert PASSWORD not in text
    if report.exists():
        assert PASSWORD not in report.read_text("utf-8")
    assert fake_civitai.log == [], "a request was sent with the credentials"
    if via == "settings":
        # the settings file's value is refused when loaded (its default is used instead, and
        # the fake is not contacted); never printed
        assert "civitai_base_url" in text, text
    else:
        assert run.returncode == 2, (run.stdout, run.stderr)
        assert "user name or password" in run.stderr, run.stderr
        assert not output.exists()


def _signed_urls(fake):
    query = "&".join(f"{name}={value}" for name, value in QUERY_SECRETS.items())
    for image in fake.dataset.images:
        image.url_query = f"w=1&{query}"


def _secrets_in(text: str):
    return [value for value in QUERY_SECRETS.values() if value in text]


def test_secret_query_values_are_masked_in_output_and_report(generated_fake, tmp_path):
    fake = generated_fake(n_images=3, image_kb=16)
    _signed_urls(fake)
    first = sorted(image.id for image in fake.dataset.images)[0]
    # one picture is an HTML page: its failure names the URL
    fake.faults.html_instead(fake.dataset.image(first).path("original=true"), server="image")
    (tmp_path / "settings.json").write_text(json.dumps({"http_max_retries": 0}), "utf-8")
    output = tmp_path / "out"
    report = tmp_path / "report.json"
    args = download_model_args(fake, output, 2, "--report", report)
    args = [a for a in args if a != "-q"] + ["-v"]

    run = run_cli(args, tmp_path)

    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "DEBUG" in run.stderr
    assert _secrets_in(run.stdout) == [] and _secrets_in(run.stderr) == []
    assert _secrets_in(report.read_text("utf-8")) == []
    assert "key=***" in run.stdout + run.stderr  # the URLs are still shown, masked
    # the signed URL itself still worked: the secrets reached the image host only
    assert len(media_files(output)) == 2
    assert any("SECRETkey2222" in r.raw_query for r in fake.image_requests())


def test_the_archive_stores_redacted_urls(generated_fake, tmp_path):
    fake = generated_fake(n_images=3, image_kb=16)
    _signed_urls(fake)
    output = tmp_path / "out"
    run = run_cli(download_model_args(fake, output, 2), tmp_path)
    assert run.returncode == 0, (run.stdout, run.stderr)

    with sqlite3.connect(str(output / ARCHIVE_NAME)) as db:
        urls = [row[0] for row in db.execute("SELECT url FROM images")]
        urls += [row[0] for row in db.execute("SELECT url FROM tasks")]
    assert len(urls) == 6 and all(urls), urls
    assert all("token=***" in url and "w=1" in url for url in urls), urls
    for url in urls:
        assert _secrets_in(url) == [], url
    with open(output / ARCHIVE_NAME, "rb") as fh:
        raw = fh.read()
    wal = str(output / ARCHIVE_NAME) + "-wal"
    if os.path.exists(wal):
        with open(wal, "rb") as fh:
            raw += fh.read()
    assert [v for v in QUERY_SECRETS.values() if v.encode() in raw] == []


def test_a_redirect_into_the_api_origin_does_not_get_the_key(generated_fake, tmp_path):
    fake = generated_fake(n_images=2, image_kb=16)
    first = sorted(image.id for image in fake.dataset.images)[0]
    fake.faults.queue_status(
        fake.dataset.image(first).path("original=true"),
        302,
        headers={"Location": fake.base_url + "/api/v1/steal-the-key"},
        body=b"",
        count=10,
        server="image",
    )
    (tmp_path / "settings.json").write_text(json.dumps({"http_max_retries": 0}), "utf-8")
    output = tmp_path / "out"

    run = run_cli(download_model_args(fake, output, 2, "--api-key", MARKER), tmp_path)

    assert run.returncode == 1, (run.stdout, run.stderr)
    stolen = [r for r in fake.api_requests() if r.path == "/api/v1/steal-the-key"]
    assert stolen, "the redirect was not followed"
    assert all("Authorization" not in r.headers for r in stolen), [dict(r.headers) for r in stolen]
    # the key still goes to the requests the client itself sends to the API
    listing = [r for r in fake.api_requests() if r.path == "/api/v1/images"]
    assert listing and all(r.headers.get("Authorization") == f"Bearer {MARKER}" for r in listing)
    assert MARKER not in run.stdout + run.stderr

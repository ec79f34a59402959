"""The headless CLI: usage errors, a download end to end, reports, tasks history, Ctrl-C, resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.records import DownloadSummary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEDIA_EXTS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)


@pytest.fixture
def small_fake():
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    with FakeCivitai(dataset=Dataset.generate(n_images=12, image_kb=8)) as fake:
        yield fake


def _run(argv, capsys=None):
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    err = capsys.readouterr().err if capsys is not None else ""
    return code, out.getvalue(), err


def _media(root):
    found = []
    for folder, dirs, names in os.walk(str(root)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(folder, n) for n in names if n.lower().endswith(MEDIA_EXTS)]
    return sorted(found)


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "required"),
        (["download"], "required"),
        (["download", "model"], "required"),
        (["download", "model", "x1"], "numeric id"),
        (["download", "model", "1", "2"], "exactly one value"),
        (["download", "planet", "1"], "invalid choice"),
        (["download", "--nsfw", "Spicy", "model", "1"], "unknown NSFW level"),
        (["download", "--metadata", "pdf", "model", "1"], "unknown metadata format"),
        (["download", "--concurrency", "0", "model", "1"], "between 1 and 32"),
        (["download", "--duplicates", "merge", "model", "1"], "invalid choice"),
        (["download", "--limit", "-3", "model", "1"], "0 or more"),
        (["download", "filter", "colour=red"], "Unknown filter"),
        (["download", "filter", "sort"], "KEY=VALUE"),
        (["download", "user", "a/b"], "path separator"),
        (["download", "url", "ftp://civitai.com/models/1"], "Could not understand"),
        (["download", "--template", "{model_id}/{nope}", "model", "1"], "nope"),
        (["tasks", "--limit", "many"], "whole number"),
        (["tasks", "--status", "lost"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_one_sentence_and_writes_nothing(
    argv, fragment, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run([*argv, "--output", tmp_path / "out"] if argv else argv, capsys)
    assert code == cli.EXIT_USAGE
    assert err.startswith("error: ") and fragment in err, err
    assert "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path) == []


def test_help_exits_0(capsys):
    code, _out, _err = _run(["download", "--help"])
    assert code == 0
    assert "--duplicates" in capsys.readouterr().out


def test_tasks_without_history_is_a_usage_error(tmp_path, capsys):
    code, _out, err = _run(["tasks", "--output", tmp_path], capsys)
    assert code == 2 and "no download history" in err


def test_parse_target_forms():
    assert cli.parse_target("model", ["12"]) == cli.CliTarget("model", 12)
    assert cli.parse_target("url", ["https://civitai.com/models/5?modelVersionId=7"]) == (
        cli.CliTarget("model", 5, 7)
    )
    assert cli.parse_target("url", ["https://civitai.com/images/9"]) == cli.CliTarget("image", 9)
    assert cli.parse_target("user", ["@alice"]) == cli.CliTarget("user", "alice")
    assert cli.parse_target("filter", ["username=alice", "sort=most reactions"]) == (
        cli.CliTarget("filter", {"username": "alice", "sort": "Most Reactions"})
    )


# --------------------------------------------------------------------------- report


def test_report_lines_and_json_carry_every_count_and_reason(tmp_path):
    summary = DownloadSummary(
        listed=5,
        completed=2,
        skipped=1,
        failed=2,
        output_path=str(tmp_path),
        bytes_downloaded=1234,
        failures=[(11, "HTTP 404: image 11 is gone"), (12, "the server sent HTML")],
    )
    report = cli.RunReport("download", "model 1", str(tmp_path), summary=summary)
    report.finished_at = report.started_at + 1.5
    report.exit_code = 1
    lines = report.lines()
    assert lines[0] == "listed 5: saved 2, skipped 1, failed 2"
    assert "1 image failed: no longer on Civitai (HTTP 404) — id 11" in lines  # grouped (#24)
    assert "1 image failed: the server sent HTML — id 12" in lines
    assert lines[-1] == "downloaded 2, skipped 1, failed 2"
    path = tmp_path / "r" / "report.json"
    cli.write_report(str(path), report.to_dict())
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["listed"] == 5 and data["saved"] == 2 and data["skipped"] == 1
    assert data["failures"] == [
        {"image_id": 11, "reason": "HTTP 404: image 11 is gone"},
        {"image_id": 12, "reason": "the server sent HTML"},
    ]
    assert data["complete"] is False and data["elapsed_seconds"] == 1.5
    assert os.listdir(path.parent) == ["report.json"]  # no temp file left


def test_report_masks_registered_secrets(tmp_path):
    from scripts.civitai_manager_libs.util.logging_setup import register_secret

    register_secret("s3cr3t-k3y-value")
    summary = DownloadSummary(listed=1, failed=1, failures=[(1, "GET ?token=s3cr3t-k3y-value")])
    report = cli.RunReport("download", "model 1", str(tmp_path), summary=summary)
    text = json.dumps(report.to_dict()) + "\n".join(report.lines())
    assert "s3cr3t-k3y-value" not in text


def test_format_table_aligns_columns():
    lines = cli.format_table([("a", "long value", "x"), ("bbb", "v", "tail")], ["h1", "h2", "h3"])
    assert lines[0] == "h1   h2          h3"
    assert lines[2] == "a    long value  x"
    assert lines[3] == "bbb  v           tail"


# --------------------------------------------------------------------------- against the fake


def test_download_model_then_rerun_makes_no_image_request(small_fake, tmp_path, capsys):
    model_id = small_fake.dataset.models[0].id
    output = tmp_path / "out"
    report = tmp_path / "report.json"
    argv = ["download", "model", model_id, "--base-url", small_fake.base_url]
    argv += ["--output", output, "--nsfw", "all", "--report", report]

    code, out, err = _run(argv, capsys)

    assert code == 0, err
    assert out.splitlines()[-1] == "downloaded 12, skipped 0, failed 0"
    assert "listed 12: saved 12, skipped 0, failed 0" in out
    files = _media(output)
    assert len(files) == 12
    for path in files:  # json sidecars by default
        assert os.path.exists(os.path.splitext(path)[0] + ".json")
    data = json.loads(report.read_text(encoding="utf-8"))
    assert (data["listed"], data["saved"], data["failed"], data["exit_code"]) == (12, 12, 0, 0)
    assert data["bytes_downloaded"] >= 12 * 8 * 1024
    assert "\x1b[A" not in err  # no bars outside a terminal (test_cli_newcomer: bars on a tty)

    small_fake.reset()
    code, out, _err = _run(argv + ["-q"], capsys)
    assert code == 0
    assert out.splitlines()[-1] == "downloaded 0, skipped 12, failed 0"
    assert small_fake.image_requests() == []


def test_nsfw_limit_template_and_txt_metadata(fake_civitai, tmp_path, capsys):
    dataset = fake_civitai.dataset
    model = max(dataset.models, key=lambda m: len(dataset.select(model_id=m.id, levels=["None"])))
    safe = dataset.select(model_id=model.id, levels=["None"])
    assert len(safe) >= 3
    output = tmp_path / "out"
    argv = ["download", "model", model.id, "--base-url", fake_civitai.base_url, "--output", output]
    argv += [
        "--nsfw",
        "None",
        "--limit",
        "3",
        "--metadata",
        "txt",
        "--template",
        "{nsfw_level}/{id}",
    ]

    code, out, err = _run(argv, capsys)

    assert code == 0, err
    files = _media(output)
    assert len(files) == 3
    for path in files:
        assert os.path.basename(os.path.dirname(path)) == "None"
        stem = os.path.splitext(path)[0]
        assert os.path.exists(stem + ".txt") and not os.path.exists(stem + ".json")
    saved_ids = {int(os.path.basename(p).split(".")[0]) for p in files}
    assert saved_ids <= {image.id for image in safe}


def test_unknown_user_and_model_write_nothing(fake_civitai, tmp_path, capsys):
    output = tmp_path / "out"
    base = ["--base-url", fake_civitai.base_url, "--output", output]
    code, _out, err = _run(["download", "user", "nobody_here_42", *base], capsys)
    assert code == 2 and "nobody_here_42" in err
    code, _out, err = _run(["download", "model", "99999999", *base], capsys)
    assert code == 2 and "model 99999999 was not found" in err
    assert not output.exists()
    assert fake_civitai.image_requests() == []


def test_tasks_lists_history_and_filters_failed(small_fake, tmp_path, capsys):
    ids = [image.id for image in small_fake.dataset.images]
    small_fake.faults.not_found(f"*/{ids[0]}.*")
    output = tmp_path / "out"
    argv = ["download", "model", small_fake.dataset.models[0].id, "--nsfw", "all", "-q"]
    code, out, _err = _run(argv + ["--base-url", small_fake.base_url, "--output", output], capsys)
    assert code == 1
    assert out.splitlines()[-1] == "downloaded 11, skipped 0, failed 1"
    assert f"1 image failed: no longer on Civitai (HTTP 404) — id {ids[0]}" in out

    code, out, _err = _run(["tasks", "--output", output], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "task",
        "download",
        "image",
        "status",
        "finished",
        "file",
        "/",
        "error",
    ]
    assert lines[-1].startswith("12 task(s) in ")
    assert sum(" completed " in f" {line} " for line in lines) == 11

    code, out, _err = _run(["tasks", "--output", output, "--status", "failed"], capsys)
    assert code == 0
    rows = out.splitlines()[2:-1]
    assert len(rows) == 1 and str(ids[0]) in rows[0] and "failed" in rows[0]


def test_unreachable_api_is_one_clear_sentence(tmp_path, capsys):
    (tmp_path / "settings.json").write_text(json.dumps({"http_max_retries": 0}), "utf-8")
    output = tmp_path / "out"
    argv = ["download", "model", "1", "--base-url", "http://127.0.0.1:9", "--output", output]
    code, out, err = _run(argv, capsys)
    assert code == 4  # its own code since issue 24 (1 is "some images failed")
    assert "Could not reach Civitai for http://127.0.0.1:9/" in err
    assert "--base-url if http://127.0.0.1:9 is not where Civitai is" in err
    assert not output.exists()


def test_html_instead_of_json_names_every_way_to_fix_the_address(fake_civitai, tmp_path, capsys):
    fake_civitai.faults.html_instead("/api/v1/models/*")
    output = tmp_path / "out"
    argv = ["download", "model", fake_civitai.dataset.models[0].id, "--output", output]
    code, out, err = _run([*argv, "--base-url", fake_civitai.base_url], capsys)
    assert code == cli.EXIT_FAILED and out == ""
    assert err.count("\n") == 1 and err.startswith("error: Civitai answered "), err
    assert "HTML page" in err
    for fix in ("civitai_base_url setting", "--base-url", "CIVITAI_BASE_URL"):
        assert fix in err, err
    assert not output.exists()


# --------------------------------------------------------------------------- signals


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_then_same_command_resumes(tmp_path, sig):
    from scripts.civitai_manager_libs.store.archive import Archive
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    dataset = Dataset.generate(n_images=24, image_kb=128)
    with FakeCivitai(dataset=dataset, bandwidth=256 * 1024) as fake:
        output = tmp_path / "out"
        argv = [sys.executable, os.path.join(REPO, "main.py"), "download", "model"]
        argv += [str(dataset.models[0].id), "--base-url", fake.base_url, "--output", str(output)]
        argv += ["--nsfw", "all", "--concurrency", "2", "-q"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
        env["CIVITAI_GALLERY_SETTINGS"] = str(tmp_path / "settings.json")
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 20
        while not _media(output) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _media(output), "no image was saved within 20 s"
        sent = time.monotonic()
        proc.send_signal(sig)
        paths, out = proc.communicate(timeout=30)  # piped: stdout has the saved paths (#24)
        assert time.monotonic() - sent < 10, "stopping took too long"
        assert proc.returncode == cli.EXIT_INTERRUPTED, out
        assert "interrupted: run the same command again to resume" in out
        assert paths and set(paths.splitlines()) <= set(_media(output))
        assert 0 < len(_media(output)) < 24
        archive = Archive(os.path.join(output, cli.ARCHIVE_NAME))
        assert list(archive.verify()) == []

        resumed = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        last = resumed.stderr.splitlines()[-1]  # the report: stderr when stdout is piped
        assert last.startswith("downloaded ") and last.endswith(", failed 0")
        assert len(_media(output)) == 24


def test_run_config_repr_hides_the_key():
    cfg = cli.RunConfig("out", None, "k3y-in-repr-0123", 3)
    assert "k3y-in-repr-0123" not in repr(cfg)


# --------------------------------------------------------------------------- archive and disk


def _main_py(argv, tmp_path, **kwargs):
    """``python main.py ARGV`` in a subprocess, without inherited CIVITAI_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
    env["CIVITAI_GALLERY_SETTINGS"] = str(tmp_path / "settings.json")
    command = [sys.executable, os.path.join(REPO, "main.py"), *[str(a) for a in argv]]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, **kwargs
    )


def _damage_archive(output):
    output.mkdir(parents=True, exist_ok=True)
    damaged = b"this is not an SQLite database " * 200
    (output / cli.ARCHIVE_NAME).write_bytes(damaged)
    return damaged


def test_damaged_archive_is_one_clear_sentence_for_every_command(small_fake, tmp_path, capsys):
    output = tmp_path / "out"
    damaged = _damage_archive(output)
    base = ["--base-url", small_fake.base_url, "--output", output, "-q"]

    runs = {
        "download": _run(["download", "model", small_fake.dataset.models[0].id, *base], capsys),
        "tasks": _run(["tasks", "--output", output], capsys),
        "retry-failed": _run(["retry-failed", *base], capsys),
    }

    for command, (code, _out, err) in runs.items():
        assert code == cli.EXIT_FAILED, (command, err)
        assert "Traceback" not in err, (command, err)
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, (command, err)
        assert "is damaged. Move it away and run again" in errors[0], (command, err)
        assert str(output / cli.ARCHIVE_NAME) in errors[0]
    code, out, _err = runs["download"]
    assert "stopped early: The download archive" in out  # the report says why
    assert small_fake.image_requests() == []
    assert _media(output) == []
    assert (output / cli.ARCHIVE_NAME).read_bytes() == damaged  # left for the user to move


def test_damaged_archive_in_a_subprocess_has_no_traceback(tmp_path):
    output = tmp_path / "out"
    _damage_archive(output)
    run = _main_py(["tasks", "--output", output], tmp_path)
    assert run.returncode == cli.EXIT_FAILED
    assert run.stderr.startswith("error: The download archive ") and "damaged" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_disk_full_fills_stopped_reason_in_the_json_report(tmp_path):
    # RLIMIT_FSIZE caps every file the CLI writes at 256 KiB (EFBIG, SIGXFSZ ignored): each 400 KiB
    # image fails the way a full disk does, and the downloader stops scheduling the rest.
    import resource

    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    def cap_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    with FakeCivitai(dataset=Dataset.generate(n_images=6, image_kb=400)) as fake:
        output, report = tmp_path / "out", tmp_path / "report.json"
        argv = ["download", "model", fake.dataset.models[0].id, "--base-url", fake.base_url]
        argv += ["--output", output, "--report", report, "--nsfw", "all", "--concurrency", 2, "-q"]
        run = _main_py(argv, tmp_path, preexec_fn=cap_file_size)

    assert run.returncode == cli.EXIT_FAILED, (run.stdout, run.stderr)
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["stopped_reason"] and "disk full" in data["stopped_reason"].lower(), data
    assert data["complete"] is False and data["exit_code"] == cli.EXIT_FAILED
    # the halt also stops the listing: how many were listed by then depends on which came first
    assert data["saved"] == 0 and 1 <= data["listed"] <= 6
    assert "stopped early" in run.stderr and data["stopped_reason"] in run.stderr


def test_tasks_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    # ``python main.py tasks | head -1``: a closed pipe is no crash and no traceback.
    import subprocess
    import sys

    from scripts.civitai_manager_libs.store.archive import Archive, archive_path

    output = tmp_path / "out"
    output.mkdir()
    with Archive(archive_path(str(output))) as archive:
        archive.record_tasks(
            {"id": f"task-{n:05d}", "image_id": n, "status": "failed", "error": "x" * 200}
            for n in range(5000)
        )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "main.py", "tasks", "--output", str(output), "--limit", "5000"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline()  # the header; then the reader goes away
    proc.stdout.close()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()


def test_a_listing_that_fails_on_page_two_still_saves_page_one(
    fake_civitai, tmp_path, capsys, monkeypatch
):
    # Page 1 lists 200 images, page 2 answers 400: the 200 are still downloaded, then the error
    # is reported with a non-zero exit code (the next run resumes from the checkpoint).
    from scripts.civitai_manager_libs import http_client

    real_get_json = http_client.CivitaiHttpClient.get_json
    cursors = []

    def get_json(self, url, params=None):
        if "api/v1/images" in str(url) and (params or {}).get("cursor"):
            cursors.append(params["cursor"])
            fake_civitai.faults.queue_status(
                "/api/v1/images", 400, body=b'{"error": "bad cursor"}', count=1
            )
        return real_get_json(self, url, params)

    monkeypatch.setattr(http_client.CivitaiHttpClient, "get_json", get_json)
    output = tmp_path / "out"
    code = cli.main(
        ["download", "model", "4201", "--nsfw", "all", "--metadata", "none", "-q"]
        + ["--output", str(output), "--base-url", fake_civitai.base_url]
    )
    out = capsys.readouterr().out
    assert code != 0 and cursors, out
    saved = [f for _d, _s, files in os.walk(output) for f in files if not f.startswith(".")]
    assert len(saved) == 200, out

"""Issue 24 (the CLI's half): every command in ``--help``, "did you mean", a cheap top-level help,
one program name; output for pipes; exit codes and messages that tell the truth. Each test runs the
real ``python main.py`` in a subprocess, as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import List

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(REPO, "main.py")
COMMANDS = (
    "download",
    "tasks",
    "retry-failed",
    "export",
    "list",
    "search",
    "index",
    "doctor",
    "resources",
)


def run(args: List[object], tmp_path, timeout: float = 120, **extra_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
    env.update(CIVITAI_GALLERY_SETTINGS=str(tmp_path / "settings.json"), PYTHONPATH=REPO)
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, MAIN, *[str(a) for a in args]],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- item 3: every command listed, suggestions, one program name, a cheap --help ---------------


def test_top_level_help_lists_every_command_with_one_line_each(tmp_path):
    proc = run(["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for name in COMMANDS:
        rows = [line for line in lines if line.startswith(f"  {name} ")]
        assert len(rows) == 1, (name, proc.stdout)
        assert len(rows[0].split(None, 1)[1]) > 10  # a line of help, not just the name
    assert "4 Civitai could not be reached" in proc.stdout


@pytest.mark.parametrize(
    "args, wanted",
    [
        (["downlaod", "model", "1"], "did you mean 'download'?"),
        (["retry-faild"], "did you mean 'retry-failed'?"),
        (["resourses", "12"], "did you mean 'resources'?"),
        (["download", "modle", "1"], "did you mean 'model'?"),
        (["download", "model", "1", "--limt", "5"], "did you mean --limit?"),
        (["download", "model", "1", "--limt=5"], "did you mean --limit?"),
        (["tasks", "--staus", "failed"], "did you mean --status?"),
        (["list", "model", "1", "--to", "x.jsonl", "--limt", "3"], "did you mean --limit?"),
        (["resources", "12", "--downlaod"], "did you mean --download?"),
        (["--prot", "7861"], "did you mean --port?"),
        (
            ["export", "--frm", "out", "--to", "x"],
            "--frm: did you mean --from?",
        ),  # 1st error: required
        (["download", "--limt", "5"], "did you mean --limit?"),
    ],
)
def test_a_mistyped_command_choice_or_option_gets_a_suggestion_and_exit_2(tmp_path, args, wanted):
    proc = run(args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    # Python 3.14's own suggest_on_error words a choice's suggestion "maybe you meant"
    assert wanted in proc.stderr.replace("maybe you meant", "did you mean"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "images").exists()


def test_nothing_close_gets_no_guess(tmp_path):
    proc = run(["frobnicate"], tmp_path)
    assert proc.returncode == 2
    assert "unknown command 'frobnicate'" in proc.stderr and "did you mean" not in proc.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_every_usage_line_names_the_program_the_same_way(tmp_path, name):
    proc = run([name, "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python main.py {name} "), proc.stdout[:80]


_IMPORTS = """
import contextlib, io, runpy, sys
sys.argv = ["main.py", *sys.argv[1:]]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit:
        pass
print(len(sys.modules), int("gradio" in sys.modules))
"""


def _imports(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
    env.update(CIVITAI_GALLERY_SETTINGS=str(tmp_path / "s.json"), PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    count, gradio = proc.stdout.split()
    return int(count), bool(int(gradio))


def test_the_top_level_help_costs_no_more_than_a_commands_help(tmp_path):
    """``python main.py --help`` took 3 s: it imported Gradio to print a page of text."""
    top, top_gradio = _imports(tmp_path, "--help")
    sub, sub_gradio = _imports(tmp_path, "download", "--help")
    assert not top_gradio and not sub_gradio
    assert top <= sub, (top, sub)
    mistyped, gradio = _imports(tmp_path, "downlaod")
    assert not gradio and mistyped <= sub


# -- items 2 and 8: failures grouped by reason, exit codes and messages that tell the truth ----


@pytest.fixture
def small_fake():
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    with FakeCivitai(dataset=Dataset.generate(n_images=12, image_kb=8)) as fake:
        yield fake


def _fast_settings(tmp_path):
    (tmp_path / "settings.json").write_text(
        json.dumps({"http_max_retries": 0, "http_backoff_factor": 0}), "utf-8"
    )


def _download(fake, output, *extra):
    model_id = fake.dataset.models[0].id
    base = ["download", "model", model_id, "--nsfw", "all", "--base-url", fake.base_url]
    return [*base, "--output", output, *extra]


def test_failures_read_as_one_line_per_reason_with_ids_and_what_to_do(small_fake, tmp_path):
    _fast_settings(tmp_path)
    ids = sorted(image.id for image in small_fake.dataset.images)
    for gone in ids[:2]:
        small_fake.faults.not_found(f"*/{gone}.*")
    small_fake.stop_image_host()
    output = tmp_path / "out"
    proc = run(_download(small_fake, output, "-q"), tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""  # piped: only saved paths go to stdout, and none was saved
    lines = proc.stderr.splitlines()
    failed = [line for line in lines if " failed: " in line]
    assert len(failed) == 1, proc.stderr  # one reason, one line (not 12)
    host = small_fake.image_base_url.split("//", 1)[1]
    assert failed[0].startswith(f"12 images failed: host unreachable ({host}) — ids "), failed
    assert failed[0].endswith(
        f" and 9 more; check your network, then run "
        f"`python main.py retry-failed --output {output}`"
    ), failed[0]
    assert not any(line.startswith("  image ") for line in lines)
    assert "output folder" not in proc.stdout + proc.stderr  # the folder was fine

    small_fake.start_image_host()
    retry = run(["retry-failed", "--output", output, "--base-url", small_fake.base_url], tmp_path)
    assert retry.returncode == 1, retry.stderr
    failed = [line for line in retry.stderr.splitlines() if line.startswith("2 images failed")]
    assert failed == [
        f"2 images failed: no longer on Civitai (HTTP 404) — ids {ids[0]}, {ids[1]}"
    ], retry.stdout


def test_unreachable_civitai_exits_4_in_one_line_without_a_retry_hint(tmp_path):
    _fast_settings(tmp_path)
    output = tmp_path / "out"
    argv = ["download", "user", "alice", "--base-url", "http://127.0.0.1:9", "--output", output]
    proc = run(argv, tmp_path)
    assert proc.returncode == 4, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Could not reach Civitai" in errors[0], proc.stderr
    assert "retry-failed" not in proc.stderr + proc.stdout  # nothing was listed to retry
    assert not output.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["download", "model", "4201", "-o", ""],
        ["download", "model", "4201", "--output="],
        ["tasks", "--output", " "],
        ["export", "--from", "", "--to", "x", "--format", "jsonl"],
        ["list", "model", "4201", "--to", ""],
    ],
)
def test_an_empty_path_is_bad_input_not_the_default_folder(tmp_path, args):
    proc = run(args, tmp_path, CIVITAI_BASE_URL="http://127.0.0.1:9")
    assert proc.returncode == 2, proc.stderr
    assert "an empty path" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == []  # no ./images, nothing at all


@pytest.mark.parametrize("where", ["/proc/list.jsonl", "a-file/list.jsonl", "."])
def test_list_to_a_path_it_cannot_write_is_one_line_and_exit_2(fake_civitai, tmp_path, where):
    (tmp_path / "a-file").write_text("x", "utf-8")
    argv = ["list", "model", "4201", "--to", where, "--base-url", fake_civitai.base_url]
    proc = run(argv, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "--to" in proc.stderr
    assert fake_civitai.api_requests() == []  # refused before any request


def test_tasks_shows_short_ids_the_download_and_no_row_a_resume_replaced(tmp_path):
    from scripts.civitai_manager_libs.store.archive import Archive, archive_path

    output = tmp_path / "out"
    output.mkdir()
    with Archive(archive_path(str(output))) as archive:
        key = "model:4201|nsfw=None,Soft"
        archive.record_task("a" * 32, "cancelled", image_id=7, query_key=key, error="cancelled")
        archive.record_task("b" * 32, "failed", image_id=8, query_key=key, error="HTTP 404: x")
        archive.record_task("c" * 32, "completed", image_id=7, query_key=key, path="/p/7.png")
    proc = run(["tasks", "--output", output], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[2:-1]
    assert len(rows) == 2, proc.stdout  # image 7's cancelled task was replaced by the resume
    assert rows[0].split()[:4] == ["cccccccc", "model", "4201", "7"]
    assert "cancelled" not in proc.stdout and "a" * 32 not in proc.stdout
    assert rows[1].split()[:5] == ["bbbbbbbb", "model", "4201", "8", "failed"]


# -- item 4: the spec's default of 20 for a user or filter says when there is more -------------


def test_a_user_download_stopped_by_the_default_limit_says_more_exist(fake_civitai, tmp_path):
    base = ["--base-url", fake_civitai.base_url, "--nsfw", "all", "-q"]
    proc = run(["download", "user", "alice_art", "--output", tmp_path / "a", *base], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("listed 20: ")
    assert "20 of more (--limit 20); --limit 0 for all" in proc.stderr.splitlines()
    report = tmp_path / "r.json"
    more = ["--limit", "500", "--report", report]
    proc = run(
        ["download", "user", "alice_art", "--output", tmp_path / "b", *base, *more], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert " of more" not in proc.stderr  # everything was listed
    assert json.loads(report.read_text("utf-8"))["limit_reached"] is None


# -- item 7: output for terminals, pipes and logs ---------------------------------------------


def test_a_piped_download_prints_each_saved_path_and_nothing_else(fake_civitai, tmp_path):
    output = tmp_path / "out"
    argv = ["download", "model", "99001", "--nsfw", "all", "--metadata", "exif", "--output"]
    proc = run([*argv, output, "--base-url", fake_civitai.base_url], tmp_path)
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.splitlines()
    saved = sorted(
        os.path.join(folder, name)
        for folder, dirs, names in os.walk(output)
        for name in names
        if not name.startswith(".") and not name.endswith((".txt", ".json"))
    )
    assert sorted(paths) == saved and len(paths) == 11  # every file, once, nothing else
    err = proc.stderr.splitlines()
    assert err[-1] == "downloaded 11, skipped 0, failed 0"  # the report: on stderr
    assert not any("scripts.civitai_manager_libs" in line for line in err)  # no module paths
    videos = [line for line in err if "txt sidecar" in line]
    assert len(videos) == 1 and videos[0].split(" INFO ", 1)[1].startswith("2 file(s)"), err
    again = run(
        [*argv, output, "--base-url", fake_civitai.base_url, "--metadata", "exif,txt"], tmp_path
    )
    assert again.returncode == 0 and again.stdout == ""  # all skipped: nothing saved
    assert "instead" not in again.stderr


@pytest.mark.parametrize("command", ["list", "export"])
def test_no_progress_bar_is_drawn_into_a_pipe(fake_civitai, tmp_path, command):
    output = tmp_path / "out"
    base = ["--base-url", fake_civitai.base_url]
    assert run(["download", "model", "4201", "--output", output, *base], tmp_path).returncode == 0
    if command == "list":
        argv = ["list", "model", "4201", "--to", tmp_path / "l.jsonl", *base]
    else:
        argv = ["export", "--from", output, "--to", tmp_path / "set", "--format", "jsonl"]
    proc = run(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "img/s" not in proc.stderr and "it/s" not in proc.stderr


# -- item 6: one fact, one way: resources deduplicated, one hash case, one meaning of url ------


def test_an_images_resources_are_listed_once_each_with_one_hash_case_and_the_original_url(
    fake_civitai, tmp_path
):
    output = tmp_path / "out"
    base = ["--base-url", fake_civitai.base_url]
    argv = ["download", "image", "31000001", "--metadata", "json,txt", "--output", output]
    proc = run([*argv, *base], tmp_path)
    assert proc.returncode == 0, proc.stderr
    txt = next(output.rglob("31000001.txt")).read_text("utf-8")
    lines = txt.split("Resources:\n", 1)[1].splitlines()
    assert len(lines) == 4, txt  # a checkpoint, two LoRAs, an embedding: not 6 entries
    assert sum(line.startswith("  checkpoint: ") for line in lines) == 1
    assert "version 31101, version 31101" not in txt and "version 31101" in txt
    assert "Model hash: 16324e670a" in txt  # WebUI's case, whatever the run
    record = json.loads(next(output.rglob("31000001.json")).read_text("utf-8"))
    assert record["generation"]["model_hash"] == "16324e670a"
    assert "/original=true/" in record["url"] and "width=" not in record["url"]
    assert f"URL: {record['url']}" in txt

    listed = tmp_path / "l.jsonl"
    assert run(["list", "model", "31001", "--to", listed, *base], tmp_path).returncode == 0
    rows = [json.loads(line) for line in listed.read_text("utf-8").splitlines()]
    assert {row["url"] for row in rows if row["id"] == 31000001} == {record["url"]}

    (tmp_path / "m").mkdir()
    panel = run(["resources", "31000001", "--models-dir", tmp_path / "m", *base], tmp_path)
    assert panel.returncode == 1, panel.stderr  # missing files
    shown = [line for line in panel.stdout.splitlines() if line.startswith("  ✗ ")]
    assert len(shown) == 4 and "not on Civitai" not in panel.stdout, panel.stdout
    assert "Model hash: 16324e670a" in panel.stdout

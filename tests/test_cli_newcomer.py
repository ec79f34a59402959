"""What a newcomer meets in the CLI (issue 12, items 8-13): names in every sidecar, links to other
websites refused, an unwritable output folder refused before listing, one help text, log lines that
do not break the bars, and README examples that leave nothing outside the output folder.

Every test runs the real ``main.py`` in a subprocess against the local fake Civitai."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import pty
import re
import shlex
import struct
import subprocess
import sys
import termios

import pytest

from scripts.civitai_manager_libs.cli import command as cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(REPO, "main.py")
MODEL_ID = 4201  # DreamShaper in the default fake dataset
VERSION_ID = 43888  # its version "6.31"
MEDIA_EXTS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")


def _env(tmp_path, base_url=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
    env["CIVITAI_GALLERY_SETTINGS"] = str(tmp_path / "settings.json")
    env.pop("COLUMNS", None)
    # never the internet: without a fake, a closed local port
    env["CIVITAI_BASE_URL"] = base_url or "http://localhost:9"
    return env


def _main_py(argv, tmp_path, base_url=None, cwd=None):
    command = [sys.executable, MAIN, *[str(a) for a in argv]]
    return subprocess.run(
        command,
        cwd=str(cwd or REPO),
        env=_env(tmp_path, base_url),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _media(root):
    found = []
    for folder, dirs, names in os.walk(str(root)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(folder, n) for n in names if n.lower().endswith(MEDIA_EXTS)]
    return sorted(found)


def _name_lookups(fake):
    return [
        r.path
        for r in fake.api_requests()
        if re.search(r"/api/v1/(models|model-versions)/\d+", r.path)
    ]


# -- item 8: every sidecar carries the model and version names ----------------------------------


def test_every_sidecar_names_its_model_and_version_whatever_the_template(fake_civitai, tmp_path):
    output = tmp_path / "out"
    argv = ["download", "model", MODEL_ID, "--output", output, "--metadata", "json,txt", "-q"]
    run = _main_py(argv, tmp_path, fake_civitai.base_url)  # default template {model_id}/{id}
    assert run.returncode == 0, run.stderr
    files = _media(output)
    assert files
    versions = {v.id: v.name for v in fake_civitai.dataset.model(MODEL_ID).versions}
    for path in files:
        stem = os.path.splitext(path)[0]
        with open(stem + ".json", encoding="utf-8") as handle:
            record = json.load(handle)
        assert record["model_name"] == "DreamShaper", path
        assert record["version_id"] in versions, path
        assert record["version_name"] == versions[record["version_id"]], path
        with open(stem + ".txt", encoding="utf-8") as handle:
            assert "Model: DreamShaper (id 4201)" in handle.read()
    # One look-up per model (it names every version too), and none at all on a re-run: the
    # names are cached in the folder's archive.
    lookups = _name_lookups(fake_civitai)
    # one look-up: the target check's answer also gives the names (issue 16: nothing asked twice)
    assert lookups == [f"/api/v1/models/{MODEL_ID}"]
    fake_civitai.reset()
    again = _main_py(
        ["download", "version", VERSION_ID, "--output", output, "-q"],
        tmp_path,
        fake_civitai.base_url,
    )
    assert again.returncode == 0, again.stderr
    assert _name_lookups(fake_civitai) == [f"/api/v1/model-versions/{VERSION_ID}"]  # check_target


def test_a_creators_images_name_every_model_and_version(fake_civitai, tmp_path):
    output = tmp_path / "out"
    argv = ["download", "user", "alice_art", "--limit", "0", "--output", output, "-q"]
    argv += ["--template", "{creator}/{id}"]
    run = _main_py(argv, tmp_path, fake_civitai.base_url)
    assert run.returncode == 0, run.stderr
    records = []
    for path in glob.glob(str(output / "**" / "*.json"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            records.append(json.load(handle))
    with_version = [r for r in records if r.get("version_id")]
    assert with_version, "the fake's alice_art images use no model version"
    for record in with_version:
        version = fake_civitai.dataset.version(record["version_id"])
        assert record["version_name"] == version.name
        assert record["model_name"] == fake_civitai.dataset.model(version.model_id).name
    lookups = _name_lookups(fake_civitai)
    assert len(lookups) == len(set(lookups))  # never the same look-up twice


# -- item 9: links to other websites --------------------------------------------------------------


@pytest.mark.parametrize("link", ["https://example.com/models/4201", "example.com/images/12006653"])
def test_a_link_to_another_website_exits_2_and_asks_nothing(fake_civitai, tmp_path, link):
    output = tmp_path / "out"
    run = _main_py(["download", "url", link, "--output", output], tmp_path, fake_civitai.base_url)
    assert run.returncode == cli.EXIT_USAGE, run.stderr
    assert run.stderr.startswith("error: ") and "not Civitai" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert not output.exists()
    assert fake_civitai.api_requests() == []


def test_links_to_civitai_and_to_the_base_url_are_accepted(fake_civitai, tmp_path):
    output = tmp_path / "out"
    civitai = "https://civitai.com/images/12006653"  # served by the fake (CIVITAI_BASE_URL)
    run = _main_py(
        ["download", "url", civitai, "--output", output, "-q"], tmp_path, fake_civitai.base_url
    )
    assert run.returncode == 0, run.stderr
    local = f"{fake_civitai.base_url}/models/{MODEL_ID}?modelVersionId={VERSION_ID}"
    base = ["download", "url", local, "--output", output, "-q", "--limit", "2"]
    refused = _main_py(base, tmp_path)  # the configured address is http://localhost:9
    assert refused.returncode == 2 and "not Civitai" in refused.stderr
    run = _main_py(base + ["--base-url", fake_civitai.base_url], tmp_path)
    assert run.returncode == 0, run.stderr
    assert len(_media(output)) == 3


# -- item 10: the output folder is checked before anything else ----------------------------------


def test_an_unwritable_output_exits_2_before_listing_and_writes_nothing(fake_civitai, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    report = tmp_path / "report.json"
    for output in (a_file / "sub" / "dir", a_file, "/proc/nope"):
        run = _main_py(
            ["download", "model", MODEL_ID, "--output", output, "--report", report],
            tmp_path,
            fake_civitai.base_url,
        )
        assert run.returncode == cli.EXIT_USAGE, (output, run.stdout, run.stderr)
        assert run.stderr.startswith("error: the output folder "), run.stderr
        assert run.stdout == "" and "Traceback" not in run.stderr
        assert not report.exists()
    assert fake_civitai.api_requests() == []
    assert sorted(os.listdir(tmp_path)) == ["a-file"]
    assert not os.path.exists("/proc/nope")


# -- item 11: one help text ------------------------------------------------------------------------


def test_the_top_help_names_every_command_and_download_speaks_one_language(tmp_path):
    top = _main_py(["--help"], tmp_path)
    assert top.returncode == 0
    for command in ("download KIND VALUE", "tasks", "retry-failed", "exit codes"):
        assert command in top.stdout, top.stdout
    bare = _main_py(["download"], tmp_path)
    assert bare.returncode == cli.EXIT_USAGE
    assert "required: KIND, VALUE" in bare.stderr
    assert "python main.py download --help" in bare.stderr
    helptext = _main_py(["download", "--help"], tmp_path).stdout
    assert "usage: python main.py download KIND VALUE" in helptext
    assert "examples:" in helptext and "{model," not in helptext
    wrong = _main_py(["download", "planet", "1"], tmp_path)
    assert wrong.returncode == 2 and "argument KIND: invalid choice: 'planet'" in wrong.stderr


# -- item 12: log lines and progress bars ---------------------------------------------------------


def _run_in_pty(argv, tmp_path, columns=120):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    command = [sys.executable, MAIN, *[str(a) for a in argv]]
    proc = subprocess.Popen(
        command, cwd=REPO, env=_env(tmp_path), stdout=slave, stderr=slave, stdin=slave
    )
    os.close(slave)
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    assert proc.wait(timeout=120) is not None
    return proc.returncode, data.decode("utf-8", "replace")


@pytest.fixture
def slow_fake():
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    dataset = Dataset.generate(n_images=16, image_kb=64)
    with FakeCivitai(dataset=dataset, bandwidth=512 * 1024) as fake:
        # one problem worth a line at the default level, in the middle of the run
        fake.faults.queue_status(f"*/{dataset.images[5].id}.*", 503, server="image", count=1)
        yield fake


def test_logs_outside_a_terminal_carry_no_bar_escapes_and_no_routine_lines(slow_fake, tmp_path):
    argv = ["download", "model", slow_fake.dataset.models[0].id, "--nsfw", "all"]
    argv += ["--output", tmp_path / "out", "--base-url", slow_fake.base_url, "--metadata", "exif"]
    run = _main_py(argv, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\x1b[" not in run.stderr and "\r" not in run.stderr
    assert "image(s) listed" not in run.stderr  # routine: DEBUG
    assert "no generation data to embed" not in run.stderr
    assert "Loaded" not in run.stderr
    problems = [line for line in run.stderr.splitlines() if "HTTP 503" in line]
    assert len(problems) == 1 and " WARNING " in problems[0]
    verbose = _main_py(argv + ["-v"], tmp_path)
    assert "image(s) listed" in verbose.stderr  # still there for -v


def test_on_a_terminal_log_lines_print_above_the_bars(slow_fake, tmp_path):
    argv = ["download", "model", slow_fake.dataset.models[0].id, "--nsfw", "all"]
    argv += ["--output", tmp_path / "out", "--base-url", slow_fake.base_url]
    code, text = _run_in_pty(argv, tmp_path)
    assert code == 0, text
    assert "img/s" in text  # the bars are drawn on a terminal
    assert "image(s) listed" not in text
    lines = [line for line in text.split("\r\n") if "HTTP 503" in line]
    assert len(lines) == 1
    # the bars were cleared first (tqdm.write): the record starts on its own, clean line
    clean = re.sub(r"^(?:\r|\x1b\[A| )*", "", lines[0])
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING ", clean), repr(lines[0])
    assert "img/s" not in clean and "\x1b" not in clean


# -- item 13: the README's CLI examples -----------------------------------------------------------


def _readme_cli_examples():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("### The CLI", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.strip().splitlines() if line.strip()]


def test_readme_cli_examples_leave_nothing_outside_the_output_folder(fake_civitai, tmp_path):
    work = tmp_path / "checkout"  # stands for the repository a newcomer runs the examples in
    work.mkdir()
    examples = _readme_cli_examples()
    assert any("--report" in argv for argv in examples)
    for argv in examples:
        assert argv[:2] == ["python", "main.py"], argv
        args = argv[2:]
        if args[0] == "download":
            args += ["--limit", "3"] if "--limit" not in args else []
        run = _main_py(args, tmp_path, fake_civitai.base_url, cwd=work)
        assert run.returncode in (0, 1), (argv, run.stderr)
    created = sorted(os.listdir(work))
    assert created == ["images"], created
    assert (work / "images" / "report.json").exists()

"""Issue 24 (the CLI's half): every command in ``--help``, "did you mean", a cheap top-level help,
one program name; output for pipes; exit codes and messages that tell the truth. Each test runs the
real ``python main.py`` in a subprocess, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(REPO, "main.py")
COMMANDS = ("download", "tasks", "retry-failed", "export", "list", "resources")


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
    ],
)
def test_a_mistyped_command_choice_or_option_gets_a_suggestion_and_exit_2(tmp_path, args, wanted):
    proc = run(args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert wanted in proc.stderr, proc.stderr
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

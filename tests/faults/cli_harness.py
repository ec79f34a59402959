"""Harness for the fault suite: run the real CLI in a subprocess against a fake Civitai started in
the test process, then check what reached the disk (one file per image, every file decodable, no
``.part``, the archive agreeing with the folder)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAIN = os.path.join(REPO, "main.py")
ARCHIVE_NAME = ".civitai_archive.sqlite3"
MEDIA_EXTS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")
VIDEO_MAGIC = (b"ftyp", b"\x1a\x45\xdf\xa3")
# ``<id>.ext`` or a keep-both variant such as ``<id>_1.ext`` / ``<id> (1).ext``.
_MEDIA_NAME = re.compile(r"^(?P<id>\d+)(?:[ _(\-].*)?\.(?P<ext>[A-Za-z0-9]+)$")


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> str:
        """Where the command's own lines went: a piped ``download`` / ``retry-failed`` writes only
        the saved paths to stdout and its report to stderr (issue 24); other commands, stdout."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if all(os.path.isabs(line) for line in lines):
            return self.stderr
        return self.stdout

    @property
    def last_line(self) -> str:
        lines = [line for line in self.report.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def cli_env(tmp_path, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """A clean environment: no inherited key or base URL, settings file in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
    env["CIVITAI_GALLERY_SETTINGS"] = str(tmp_path / "settings.json")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = REPO
    env.update(extra or {})
    return env


def cli_command(args: Sequence[str]) -> List[str]:
    return [sys.executable, MAIN, *[str(a) for a in args]]


def run_cli(
    args: Sequence[str],
    tmp_path,
    env: Optional[Dict[str, str]] = None,
    timeout: float = 120,
    preexec_fn=None,
) -> CliRun:
    proc = subprocess.run(
        cli_command(args),
        cwd=REPO,
        env=cli_env(tmp_path, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def start_cli(args: Sequence[str], tmp_path, env: Optional[Dict[str, str]] = None):
    return subprocess.Popen(
        cli_command(args),
        cwd=REPO,
        env=cli_env(tmp_path, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def media_files(root) -> Dict[int, List[str]]:
    """Media files under ``root`` by image id (thumbnails and hidden files left out)."""
    found: Dict[int, List[str]] = {}
    for folder, dirs, files in os.walk(str(root)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            match = _MEDIA_NAME.match(name)
            if match and ("." + match.group("ext").lower()) in MEDIA_EXTS:
                found.setdefault(int(match.group("id")), []).append(os.path.join(folder, name))
    return found


def part_files(root) -> List[str]:
    return [
        os.path.join(folder, name)
        for folder, _dirs, files in os.walk(str(root))
        for name in files
        if name.endswith(".part")
    ]


def assert_decodable(path: str) -> None:
    """The file is a whole image (Pillow decodes every pixel) or a video with its magic bytes."""
    if path.lower().endswith((".mp4", ".webm")):
        with open(path, "rb") as fh:
            head = fh.read(16)
        assert any(magic in head for magic in VIDEO_MAGIC), f"{path} is not a video"
        return
    with Image.open(path) as img:
        img.load()  # raises on a truncated file (verify() only checks the structure)


def assert_complete(output, expected_ids: Iterable[int]) -> None:
    """Every expected image exactly once, decodable, no .part, and the archive agrees."""
    expected = set(expected_ids)
    files = media_files(output)
    duplicates = {i: paths for i, paths in files.items() if len(paths) > 1}
    assert not duplicates, f"images saved more than once: {duplicates}"
    assert (
        set(files) == expected
    ), f"missing {sorted(expected - set(files))}, unexpected {sorted(set(files) - expected)}"
    for paths in files.values():
        assert_decodable(paths[0])
    assert part_files(output) == []
    assert_archive_agrees(output, files)


def assert_archive_agrees(output, files: Dict[int, List[str]]) -> None:
    from scripts.civitai_manager_libs.store.archive import Archive

    archive = Archive(os.path.join(str(output), ARCHIVE_NAME))
    try:
        assert list(archive.verify()) == [], "archive rows whose file is missing"
        assert archive.known_ids(list(files)) == set(files)
        for image_id, paths in files.items():
            row = archive.get_image(image_id)
            path = row["path"] if isinstance(row, dict) else getattr(row, "path", None)
            if path is not None:
                full = path if os.path.isabs(path) else os.path.join(str(output), path)
                assert os.path.realpath(full) == os.path.realpath(paths[0])
    finally:
        closer = getattr(archive, "close", None)
        if callable(closer):
            closer()


def ignore_sigxfsz_and_limit(max_bytes: int):
    """preexec_fn: cap the size of any file the child writes; EFBIG instead of SIGXFSZ."""
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def files_outside(root, allowed) -> List[str]:
    """Every file under ``root`` that is not under one of ``allowed`` folders."""
    allowed = [os.path.realpath(str(a)) for a in allowed]
    out = []
    for folder, _dirs, names in os.walk(str(root)):
        for name in names:
            path = os.path.realpath(os.path.join(folder, name))
            if not any(path == a or path.startswith(a + os.sep) for a in allowed):
                out.append(path)
    return out


def generated_model_id(fake) -> int:
    models = fake.dataset.models
    assert len(models) == 1
    return models[0].id


def image_ids(fake, **criteria) -> List[int]:
    return [image.id for image in fake.dataset.select(**criteria)]


def download_model_args(fake, output, concurrency: int = 5, *extra) -> List[str]:
    """``download model <generated>`` from ``fake`` into ``output``: all NSFW levels, quiet."""
    return [
        "download",
        "model",
        generated_model_id(fake),
        "--base-url",
        fake.base_url,
        "--output",
        output,
        "--nsfw",
        "all",
        "--concurrency",
        str(concurrency),
        "-q",
        *extra,
    ]

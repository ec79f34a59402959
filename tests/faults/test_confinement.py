"""Root confinement (issue 10, items 3, 4 and 15): nothing the tool writes, renames or deletes
leaves the output folder, a symbolic link in the way is refused (never written through), the
archive stores paths relative to the folder, and read-only commands open it read-only."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest
from cli_harness import (
    ARCHIVE_NAME,
    download_model_args,
    generated_model_id,
    media_files,
    run_cli,
)

pytestmark = pytest.mark.slow

VICTIM_TEXT = b"precious data outside the output folder\n"


def _victim(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(VICTIM_TEXT)
    return outside, victim


def _first_ids(fake, n):
    return sorted(image.id for image in fake.dataset.images)[:n]


def test_a_part_file_linked_outside_is_refused_not_written_through(generated_fake, tmp_path):
    fake = generated_fake(n_images=3, image_kb=16)
    output = tmp_path / "out"
    outside, victim = _victim(tmp_path)
    first, second, _third = _first_ids(fake, 3)
    folder = output / str(generated_model_id(fake))
    folder.mkdir(parents=True)
    # A .part linked to an existing outside file (truncated, or appended to with Range) ...
    os.symlink(victim, folder / f"{first}.jpeg.part")
    # ... and a dangling .part link (the file would be created outside).
    os.symlink(outside / "created.bin", folder / f"{second}.jpeg.part")

    run = run_cli(download_model_args(fake, output, 2), tmp_path)

    assert victim.read_bytes() == VICTIM_TEXT
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    assert run.returncode == 1, (run.stdout, run.stderr)
    text = run.stdout + run.stderr
    assert text.count("symbolic link") >= 2, text
    assert "Traceback" not in text
    files = media_files(output)
    assert first not in files and second not in files  # the final names were not made links
    assert all(not os.path.islink(p) for paths in files.values() for p in paths)
    assert len(files) == 1  # the third image is saved as usual


def test_a_thumbnail_folder_linked_outside_gets_nothing(generated_fake, tmp_path):
    fake = generated_fake(n_images=2, image_kb=16)
    output = tmp_path / "out"
    outside, _victim_file = _victim(tmp_path)
    folder = output / str(generated_model_id(fake))
    folder.mkdir(parents=True)
    os.symlink(outside, folder / ".thumbnails", target_is_directory=True)

    run = run_cli(
        download_model_args(fake, output, 2, "--thumbnails", "--metadata", "json"), tmp_path
    )

    assert sorted(os.listdir(outside)) == ["victim.txt"], "thumbnails were written outside"
    assert run.returncode in (0, 1), (run.stdout, run.stderr)
    assert len(media_files(output)) == 2  # the images themselves are fine
    assert "symbolic link" in run.stdout + run.stderr


def test_a_model_folder_linked_outside_is_refused(generated_fake, tmp_path):
    fake = generated_fake(n_images=2, image_kb=16)
    output = tmp_path / "out"
    output.mkdir()
    outside, _victim_file = _victim(tmp_path)
    os.symlink(outside, output / str(generated_model_id(fake)), target_is_directory=True)

    run = run_cli(download_model_args(fake, output, 2, "--metadata", "json"), tmp_path)

    assert sorted(os.listdir(outside)) == ["victim.txt"]
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "outside the output folder" in run.stdout + run.stderr


def test_a_sidecar_linked_outside_is_not_written_through(generated_fake, tmp_path):
    fake = generated_fake(n_images=1, image_kb=16)
    output = tmp_path / "out"
    outside, victim = _victim(tmp_path)
    (image_id,) = _first_ids(fake, 1)
    folder = output / str(generated_model_id(fake))
    folder.mkdir(parents=True)
    os.symlink(victim, folder / f"{image_id}.json")

    run = run_cli(download_model_args(fake, output, 1, "--metadata", "json,txt"), tmp_path)

    assert victim.read_bytes() == VICTIM_TEXT
    assert os.path.islink(folder / f"{image_id}.json")
    assert "symbolic link" in run.stdout + run.stderr, (run.stdout, run.stderr)
    assert len(media_files(output)) == 1  # the image itself is saved


def test_a_dangling_link_where_the_archive_goes_is_refused(generated_fake, tmp_path):
    fake = generated_fake(n_images=2, image_kb=16)
    output = tmp_path / "out"
    output.mkdir()
    outside, _victim_file = _victim(tmp_path)
    os.symlink(outside / "archive.sqlite3", output / ARCHIVE_NAME)

    run = run_cli(download_model_args(fake, output, 2), tmp_path)

    assert sorted(os.listdir(outside)) == ["victim.txt"], "the database was created outside"
    assert run.returncode in (1, 2), (run.stdout, run.stderr)
    assert "symbolic link" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert media_files(output) == {}


def _copy_with_reposts(fake, tmp_path, absolute: bool):
    """Download into X, record its content under other ids too (reposts: same bytes, another
    image id; ``absolute``: with the absolute paths older versions stored), copy X to Y and remove
    Y's pictures, so downloading into Y again meets the content already recorded."""
    first = tmp_path / "X"
    run = run_cli(download_model_args(fake, first, 2), tmp_path)
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(str(first / ARCHIVE_NAME)) as db:
        db.execute("UPDATE images SET image_id = image_id + 1000")
        if absolute:
            db.execute(
                "UPDATE images SET path = ? || '/' || path WHERE path NOT LIKE '/%'", (str(first),)
            )
    before = {i: sorted(p) for i, p in media_files(first).items()}
    copy = tmp_path / "Y"
    subprocess.run(["cp", "-a", str(first), str(copy)], check=True)
    for paths in media_files(copy).values():
        for path in paths:
            os.remove(path)
    return first, copy, before


def test_duplicates_replace_in_a_copied_folder_leaves_the_original_alone(generated_fake, tmp_path):
    fake = generated_fake(n_images=3, image_kb=16)
    first, copy, before = _copy_with_reposts(fake, tmp_path, absolute=False)

    run = run_cli(download_model_args(fake, copy, 2, "--duplicates", "replace"), tmp_path)

    assert run.returncode == 0, (run.stdout, run.stderr)
    assert {i: sorted(p) for i, p in media_files(first).items()} == before, "X was changed"
    assert len(media_files(copy)) == 3
    # The archive holds paths relative to its folder.
    with sqlite3.connect(str(copy / ARCHIVE_NAME)) as db:
        stored = [row[0] for row in db.execute("SELECT path FROM images")]
    assert stored and all(not os.path.isabs(p) for p in stored), stored


def test_duplicates_replace_with_an_old_absolute_archive_stays_in_the_root(
    generated_fake, tmp_path
):
    """An archive written by an older version (absolute paths) and copied elsewhere: the rows
    pointing into the old folder are never deleted or renamed."""
    fake = generated_fake(n_images=3, image_kb=16)
    first, copy, before = _copy_with_reposts(fake, tmp_path, absolute=True)

    run = run_cli(download_model_args(fake, copy, 2, "--duplicates", "replace"), tmp_path)

    assert run.returncode == 0, (run.stdout, run.stderr)
    assert {i: sorted(p) for i, p in media_files(first).items()} == before, "X was changed"
    assert len(media_files(copy)) == 3


def _immutable(path, on: bool) -> bool:
    proc = subprocess.run(
        ["chattr", "+i" if on else "-i", str(path)], capture_output=True, text=True
    )
    return proc.returncode == 0


def test_tasks_reads_a_read_only_folder(generated_fake, tmp_path):
    fake = generated_fake(n_images=3, image_kb=16)
    output = tmp_path / "out"
    assert run_cli(download_model_args(fake, output, 2), tmp_path).returncode == 0
    archive = output / ARCHIVE_NAME
    locked = []
    try:
        if os.geteuid() == 0:
            # root ignores permission bits: make the folder and the archive immutable instead
            for path in (archive, output):
                if not _immutable(path, True):
                    pytest.skip("chattr +i is not available here")
                locked.append(path)
        else:
            archive.chmod(0o444)
            output.chmod(0o555)
        probe = output / "probe"
        with pytest.raises(OSError):
            probe.write_bytes(b"x")

        run = run_cli(["tasks", "--output", output], tmp_path)

        assert run.returncode == 0, (run.stdout, run.stderr)
        assert "3 task(s)" in run.stdout, run.stdout
        failed = run_cli(["tasks", "--output", output, "--status", "failed"], tmp_path)
        assert failed.returncode == 0, failed.stderr
    finally:
        for path in reversed(locked):
            _immutable(path, False)
        if os.geteuid() != 0:
            output.chmod(0o755)
            archive.chmod(0o644)

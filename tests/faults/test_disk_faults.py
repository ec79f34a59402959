"""A full disk and an unwritable output folder: a clear message, no corrupt file, exit 1 or 2."""

from __future__ import annotations

import os

import pytest
from cli_harness import (
    download_model_args,
    assert_decodable,
    generated_model_id,
    ignore_sigxfsz_and_limit,
    media_files,
    part_files,
    run_cli,
)

pytestmark = pytest.mark.slow


def _args(fake, output):
    return download_model_args(fake, output, 2)


def _files(root):
    return [os.path.join(d, n) for d, _s, names in os.walk(str(root)) for n in names]


def test_disk_full_during_writes(generated_fake, tmp_path):
    # RLIMIT_FSIZE caps every file the CLI writes at 256 KiB; the images are 400 KiB, so each
    # image write fails with EFBIG (SIGXFSZ ignored) exactly as a full disk fails with ENOSPC.
    fake = generated_fake(n_images=6, image_kb=400)
    output = tmp_path / "out"

    run = run_cli(_args(fake, output), tmp_path, preexec_fn=ignore_sigxfsz_and_limit(256 * 1024))

    assert run.returncode in (1, 2), (run.returncode, run.stdout, run.stderr)
    text = (run.stdout + run.stderr).lower()
    assert "disk full" in run.report, run.report
    assert "stopped early" in run.report, "the run did not say it stopped scheduling"
    assert "traceback" not in text
    assert part_files(output) == [], "a partial file was left behind"
    for paths in media_files(output).values():
        for path in paths:
            assert_decodable(path)  # nothing half-written under a final name
    # The run stopped scheduling after the disk filled: far fewer than 6 full downloads tried.
    assert len(fake.image_requests()) < 6 * 3


def test_output_path_is_a_file(generated_fake, tmp_path):
    fake = generated_fake(n_images=3, image_kb=16)
    output = tmp_path / "out"
    output.write_bytes(b"not a folder")

    run = run_cli(_args(fake, output), tmp_path)

    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "not a folder" in run.stderr
    assert output.read_bytes() == b"not a folder"
    assert fake.image_requests() == []


def test_model_folder_blocked_by_a_file(generated_fake, tmp_path):
    # Running as root, chmod cannot make a folder unwritable; a file where the per-model folder
    # must go makes every image write fail the same way a read-only folder does.
    fake = generated_fake(n_images=4, image_kb=16)
    output = tmp_path / "out"
    output.mkdir()
    (output / str(generated_model_id(fake))).write_bytes(b"in the way")

    run = run_cli(_args(fake, output), tmp_path)

    assert run.returncode in (1, 2), (run.stdout, run.stderr)
    assert "traceback" not in (run.stdout + run.stderr).lower()
    assert media_files(output) == {}
    assert part_files(output) == []
    assert (output / str(generated_model_id(fake))).read_bytes() == b"in the way"


def _chmod_blocks_writes(folder) -> bool:
    probe = folder / "probe"
    try:
        probe.write_bytes(b"x")
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_read_only_output_folder(generated_fake, tmp_path):
    fake = generated_fake(n_images=4, image_kb=16)
    output = tmp_path / "out"
    output.mkdir()
    output.chmod(0o555)
    try:
        if not _chmod_blocks_writes(output):
            pytest.skip("running as root: chmod 0o555 does not block writes (see the blocked test)")
        run = run_cli(_args(fake, output), tmp_path)
        assert run.returncode in (1, 2), (run.stdout, run.stderr)
        text = (run.stdout + run.stderr).lower()
        assert "permission" in text or "read-only" in text or "writ" in text, text
        assert _files(output) == []
    finally:
        output.chmod(0o755)


@pytest.mark.parametrize("limit", [100_001, 150_003, 262_144])
def test_a_write_cut_short_by_the_disk_limit_leaves_no_part(fake_civitai, tmp_path, limit):
    # RLIMIT_FSIZE makes the kernel accept part of a write, then refuse the rest: the buffered
    # remainder fails to flush again when the file is closed. That second failure must not
    # escape and leave the .part behind.
    import subprocess
    import sys

    url = fake_civitai.blob_url(400 * 1024, kind="mp4")
    target = tmp_path / "blob"
    code = (
        "import sys\n"
        "from scripts.civitai_manager_libs.http_client import CivitaiHttpClient\n"
        "from scripts.civitai_manager_libs.errors import DiskSpaceError\n"
        "from scripts.civitai_manager_libs.transport import file_fetch\n"
        "body_chunks = file_fetch.body_chunks\n"
        "# chunks smaller than the file buffer, as a slow network delivers them\n"
        "file_fetch.body_chunks = lambda response, size: body_chunks(response, 1000)\n"
        "client = CivitaiHttpClient(base_url=sys.argv[1], max_retries=0)\n"
        "try:\n"
        "    client.fetch_to_file(sys.argv[2], sys.argv[3])\n"
        "except DiskSpaceError as exc:\n"
        "    print('disk-full:', exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, fake_civitai.base_url, url, str(target)],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=ignore_sigxfsz_and_limit(limit),
    )
    assert "disk-full:" in run.stdout, (run.stdout, run.stderr[-3000:])
    assert "Traceback" not in run.stderr
    assert os.listdir(tmp_path) == [], "a partial file was left behind"

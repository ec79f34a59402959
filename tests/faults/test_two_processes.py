"""Issue 10 item 8: two processes on one output folder. The first run holds the folder; a second
one (CLI or tab) refuses at once, naming the folder, and nothing is left half-done."""

from __future__ import annotations

import time

import pytest
from cli_harness import (
    assert_complete,
    download_model_args,
    generated_model_id,
    image_ids,
    run_cli,
    start_cli,
)

pytestmark = pytest.mark.slow

ALL = ["None", "Soft", "Mature", "X"]


def _wait_until_held(hold, proc=None, timeout=60.0):
    """The run is downloading, and stays so (its images are held) until ``hold.release()``: the
    test no longer races a run that finishes while a loaded machine starts the second one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hold.wait_arrived(0.05):
            return
        assert proc is None or proc.poll() is None, proc.communicate()
    raise AssertionError("the first run never started downloading")


def _in_process_downloader(fake, output):
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.engine.pool import DownloadEngine
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
    from scripts.civitai_manager_libs.image_downloader import ImageDownloader

    client = CivitaiHttpClient(api_key="", base_url=fake.base_url)
    return ImageDownloader(
        api_client=CivitaiAPI(client=client),
        download_engine=DownloadEngine(client=client, max_workers=2),
        output_path=str(output),
        path_template="{model_id}/{id}",
        metadata_formats=["json"],
    )


def test_second_cli_on_the_same_folder_refuses_at_once(generated_fake, tmp_path):
    fake = generated_fake(n_images=24, image_kb=64, bandwidth=256 * 1024)
    output = tmp_path / "out"
    args = download_model_args(fake, output, 2, "--metadata", "json,exif", "--thumbnails")
    hold = fake.faults.hold("*", server="image")
    first = start_cli(args, tmp_path)
    try:
        _wait_until_held(hold, first)
        # "at once": the second run answers while the first is still held mid-download
        second = run_cli(args, tmp_path, timeout=60)
        hold.release()
        assert second.returncode == 2, (second.stdout, second.stderr)
        message = second.stderr.strip().splitlines()
        assert len(message) == 1, second.stderr
        assert str(output) in message[0] and "another process" in message[0], message
        assert f"pid {first.pid}" in message[0], message
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    assert err.strip().splitlines()[-1] == "downloaded 24, skipped 0, failed 0"  # piped: stderr
    assert len(out.split()) == 24  # stdout: the saved paths
    assert_complete(output, image_ids(fake))
    # the lock went with the first process: the same command now runs (and has nothing to do)
    again = run_cli(args, tmp_path, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.last_line == "downloaded 0, skipped 24, failed 0"


def test_tab_and_cli_on_the_same_folder(generated_fake, tmp_path):
    from scripts.civitai_manager_libs.errors import OutputBusyError

    fake = generated_fake(n_images=12, image_kb=64, bandwidth=128 * 1024)
    output = tmp_path / "out"
    args = download_model_args(fake, output, 2, "--metadata", "json")
    tab = _in_process_downloader(fake, output)
    try:
        # the tab is downloading: a CLI refuses
        hold = fake.faults.hold("*", server="image")
        task_ids = tab.download_model_images(generated_model_id(fake), nsfw_levels=ALL)
        _wait_until_held(hold)
        cli = run_cli(args, tmp_path, timeout=60)
        hold.release()
        assert cli.returncode == 2, cli.stderr
        assert str(output) in cli.stderr and "another process" in cli.stderr
        assert tab.wait(timeout=120)
        assert all(tab.get_task(t).status == "completed" for t in task_ids)
        # the tab is idle (its downloader still open): the folder is free for a CLI again
        cli = run_cli(args, tmp_path, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert cli.last_line == "downloaded 0, skipped 12, failed 0"

        # a CLI is downloading: the tab's next download refuses with the same message
        fake.reset()
        other = tmp_path / "other"
        args_other = download_model_args(fake, other, 1, "--metadata", "json")
        hold = fake.faults.hold("*", server="image")
        proc = start_cli(args_other, tmp_path)
        try:
            _wait_until_held(hold, proc)
            tab_other = _in_process_downloader(fake, other)
            try:
                with pytest.raises(OutputBusyError, match="another process"):
                    tab_other.download_model_images(generated_model_id(fake), nsfw_levels=ALL)
                assert tab_other.summary().listed == 0  # refused before planning anything
            finally:
                tab_other.close()
                hold.release()
            _out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert_complete(other, image_ids(fake))
    finally:
        tab.close()

"""Issue 24 item 1: what one job learnt dies with it. In the long-lived app process the "host
down" state of the shared ``HostGate`` outlived the job, so Retry failed, pressed after the network
came back, failed every image at once for five minutes. Two jobs through the objects the tab uses
(``GalleryJobs``, its downloader, the shared client) against a fake whose image host is down, then
up."""

from __future__ import annotations

import pytest

from scripts.civitai_manager_libs import http_client
from scripts.civitai_manager_libs.civitai.query import Target
from scripts.civitai_manager_libs.transport.host_gate import HostGate
from scripts.civitai_manager_libs.ui.jobs import GalleryJobs

VERSION_ID = 43888


@pytest.fixture
def env(local_settings):
    yield local_settings(
        {"http_backoff_factor": 0, "http_max_retries": 1, "http_host_down_after": 2}
    )
    http_client.SHARED_HOST_GATE.new_run()


def test_retry_failed_after_the_host_came_back_asks_the_host_again(env):
    jobs = GalleryJobs()
    env.stop_image_host()
    first = jobs.download(Target("version", VERSION_ID), ["None"])
    assert first.total > 2 and first.summary.failed == first.total
    reasons = {task.error for task in jobs.downloader().get_all_tasks() if task.error}
    assert any("host unreachable" in reason for reason in reasons), reasons

    env.start_image_host()
    before = len(env.image_requests())
    second = jobs.retry_failed()  # the same GalleryJobs, downloader and shared client
    assert second.total == first.total
    assert second.summary.failed == 0 and second.summary.completed == second.total
    assert len(env.image_requests()) - before == second.total  # each image asked once


def test_a_new_download_job_asks_a_host_the_last_job_found_down(env):
    jobs = GalleryJobs()
    env.stop_image_host()
    jobs.download(Target("version", VERSION_ID), ["None"])
    env.start_image_host()
    again = jobs.download(Target("version", VERSION_ID), ["None"])
    assert again.summary.failed == 0 and again.summary.completed == again.total > 0


def test_new_run_forgets_down_hosts_but_keeps_a_servers_retry_after():
    now = [100.0]
    gate = HostGate(clock=lambda: now[0])
    gate.down_after = 2
    gate.connect_failed("http://a:1")
    assert gate.connect_failed("http://a:1")
    assert gate.unreachable("http://a:1")
    gate.pause("http://b:2", 30)
    gate.new_run()
    assert gate.unreachable("http://a:1") is None
    assert not gate.connect_failed("http://a:1")  # the streak starts over
    assert gate.remaining("http://b:2") == 30  # Retry-After is the server's deadline, kept

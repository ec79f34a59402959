"""Nothing waits that need not (issue 16): a download slot is freed as soon as its file is on
disk (the metadata, thumbnail and archive work runs beside the next downloads), and a run asks
Civitai each model or version once."""

from __future__ import annotations

import io
import os
import threading
import time

from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.engine import task_runner
from scripts.civitai_manager_libs.engine.pool import DownloadEngine
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.image_downloader import ImageDownloader
from scripts.civitai_manager_libs.store.archive import Archive
from scripts.civitai_manager_libs.store.paths import ARCHIVE_NAME


def _one_slot_downloader(fake, out):
    """A downloader with one download slot into ``out``, JSON sidecars, files named by id."""
    client = CivitaiHttpClient(api_key="", base_url=fake.base_url)
    downloader = ImageDownloader(
        api_client=CivitaiAPI(client=client),
        download_engine=DownloadEngine(client=client, max_workers=1),
        output_path=str(out),
        path_template="{id}",
        metadata_formats=["json"],
    )
    return client, downloader


def _requested(fake, n, seconds):
    """How many image requests the fake answered whole, once ``n`` were or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sum(1 for r in fake.image_requests() if r.completed) >= n:
            break
        time.sleep(0.05)
    return sum(1 for r in fake.image_requests() if r.completed)


def test_the_next_download_starts_while_the_last_file_is_post_processed(tmp_path, monkeypatch):
    """One download slot, post-processing held until every image was requested: with the
    post-processing on the slot, the second request could never leave."""
    dataset = Dataset.generate(n_images=4, image_kb=8, seed=3)
    release = threading.Event()
    real_finish = task_runner.TaskRunner.finish

    def held_finish(self, task, fetched):
        release.wait(30)
        return real_finish(self, task, fetched)

    monkeypatch.setattr(task_runner.TaskRunner, "finish", held_finish)
    with FakeCivitai(dataset) as fake:
        client, downloader = _one_slot_downloader(fake, tmp_path / "out")
        try:
            ids = downloader.download_model_images(dataset.models[0].id, nsfw_levels=["None"])
            assert len(ids) == 4
            waited = "downloads waited for the post-processing of earlier files"
            assert _requested(fake, 4, 15) == 4, waited
            assert not any(downloader.get_task(t).done for t in ids)  # all still post-processing
            release.set()
            assert downloader.wait(timeout=60)
            assert {downloader.get_task(t).status for t in ids} == {"completed"}
            assert all(downloader.get_task(t).metadata_path for t in ids)
        finally:
            release.set()
            downloader.close()
            client.close()


def test_the_next_download_does_not_wait_for_the_disk(tmp_path, monkeypatch):
    """One download slot, every fsync held until all images were requested: the connection's
    next request leaves while earlier files wait to be synced, and no file is renamed into place
    before its bytes are synced (with the sync on the slot, the second request never left)."""
    dataset = Dataset.generate(n_images=4, image_kb=8, seed=5)
    release = threading.Event()
    real_fsync = os.fsync

    def held_fsync(fd):
        release.wait(10)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", held_fsync)
    out = tmp_path / "out"
    with FakeCivitai(dataset) as fake:
        client, downloader = _one_slot_downloader(fake, out)
        try:
            ids = downloader.download_model_images(dataset.models[0].id, nsfw_levels=["None"])
            assert len(ids) == 4
            requested = _requested(fake, 4, 5)
            on_disk = sorted(os.listdir(out))
            release.set()
            assert requested == 4, "the connection waited for the disk"
            assert [n for n in on_disk if not n.startswith(".civitai_archive.")] == sorted(
                f"{i}.jpeg.part" for i in ids_of(downloader, ids)
            ), "a file was renamed into place before its bytes were synced"
            assert downloader.wait(timeout=60)
            tasks = [downloader.get_task(t) for t in ids]
            assert {t.status for t in tasks} == {"completed"}
            assert all(os.path.isfile(t.image_path) for t in tasks)
            assert not [n for n in os.listdir(out) if n.endswith(".part")]
        finally:
            release.set()
            downloader.close()
            client.close()


def ids_of(downloader, task_ids):
    return [downloader.get_task(t).image_id for t in task_ids]


def test_a_version_download_asks_civitai_each_thing_once(fake_civitai, tmp_path):
    version = fake_civitai.dataset.models[0].versions[0]
    argv = ["download", "version", str(version.id), "--base-url", fake_civitai.base_url, "-q"]
    argv += ["--output", str(tmp_path / "out"), "--metadata", "json,txt"]
    assert cli.main(argv, out=io.StringIO()) == 0
    asked = [(r.path, r.raw_query) for r in fake_civitai.api_requests()]
    assert asked, "the run asked Civitai nothing"
    repeated = sorted({a for a in asked if asked.count(a) > 1})
    assert repeated == [], repeated


def _download(fake, out, *extra):
    argv = ["download", *extra, "--base-url", fake.base_url, "-q", "--output", str(out)]
    return cli.main(argv + ["--metadata", "json"], out=io.StringIO())


def test_the_listing_does_not_wait_for_the_look_up(fake_civitai, tmp_path):
    """The first page is asked beside the model look-up (each waits 0.3 s on the server), and
    it is the page the run uses: two API requests, none repeated, all images saved."""
    model = fake_civitai.dataset.models[0]
    fake_civitai.latency = 0.3
    assert _download(fake_civitai, tmp_path / "out", "model", str(model.id)) == 0
    api = fake_civitai.api_requests()
    look_up = next(r for r in api if r.path == f"/api/v1/models/{model.id}")
    first_page = next(r for r in api if r.path == "/api/v1/images")
    assert first_page.time < look_up.end_time, "the listing waited for the look-up"
    asked = [(r.path, r.raw_query) for r in api]
    assert sorted({a for a in asked if asked.count(a) > 1}) == []
    with Archive(str(tmp_path / "out" / ARCHIVE_NAME), read_only=True) as archive:
        assert archive.image_count() == archive.task_count() == archive.task_count("completed")
        assert archive.image_count() == len(fake_civitai.image_requests()) > 0


def test_a_missing_target_writes_nothing_though_its_listing_was_asked(fake_civitai, tmp_path):
    out = tmp_path / "out"
    assert _download(fake_civitai, out, "model", "999999999") == 2
    assert not out.exists()
    assert fake_civitai.image_requests() == []


def test_a_run_that_may_resume_asks_no_page_ahead(fake_civitai, tmp_path):
    """With an archive in the folder the first page may start at a checkpoint's cursor: nothing
    is asked ahead that the listing would not use."""
    version = fake_civitai.dataset.models[0].versions[0]
    out = tmp_path / "out"
    assert _download(fake_civitai, out, "version", str(version.id)) == 0
    fake_civitai.reset()
    assert _download(fake_civitai, out, "version", str(version.id)) == 0
    asked = [(r.path, r.raw_query) for r in fake_civitai.api_requests()]
    assert len(asked) == len(set(asked)) and [p for p, _ in asked].count("/api/v1/images") == 1


def test_waiting_for_a_run_looks_at_each_task_once_not_once_per_settlement():
    """Every settlement wakes the waiters. A waiter that checked every task on each wake-up did
    N² work over a run of N images (10,000 images: 10⁸ checks under the registry's lock); it now
    looks only at what settled since its last wake-up."""
    from scripts.civitai_manager_libs.engine.task import COMPLETED, ImageDownloadTask
    from scripts.civitai_manager_libs.planning.callback_dispatcher import TaskCallbacks
    from scripts.civitai_manager_libs.planning.task_registry import TaskRegistry

    waiter_reads = [0]

    class CountedTask(ImageDownloadTask):
        @property
        def _settled(self):
            if threading.current_thread().name == "waiter":
                waiter_reads[0] += 1
            return self.__dict__["settled_flag"]

        @_settled.setter
        def _settled(self, value):
            self.__dict__["settled_flag"] = value

    class NoArchive:
        def record_task(self, row):
            pass

    n = 3000
    registry = TaskRegistry(lambda: NoArchive(), TaskCallbacks(lambda: None))
    tasks = [CountedTask.for_item(f"t{i}", i, f"https://x/{i}.jpeg", None) for i in range(n)]
    for task in tasks:
        registry.add(task)
    results = {}
    waiters = [
        threading.Thread(
            target=lambda key=key, ids=ids: results.__setitem__(key, registry.wait(ids, None)),
            name="waiter",
        )
        for key, ids in (("all", None), ("some", [t.id for t in tasks[::2]]))
    ]
    for waiter in waiters:
        waiter.start()
    for task in tasks:
        task._start()
        registry.settle(task, COMPLETED, None, record=False)
        time.sleep(0)  # let the waiters wake between settlements
    for waiter in waiters:
        waiter.join(30)
    assert results == {"all": True, "some": True}
    assert waiter_reads[0] < n, f"the waiters read {waiter_reads[0]} task states for {n} tasks"

"""Nothing waits that need not (issue 16): a download slot is freed as soon as its file is on
disk (the metadata, thumbnail and archive work runs beside the next downloads), and a run asks
Civitai each model or version once."""

from __future__ import annotations

import io
import threading
import time

from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.engine import task_runner
from scripts.civitai_manager_libs.engine.pool import DownloadEngine
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.image_downloader import ImageDownloader


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
        client = CivitaiHttpClient(api_key="", base_url=fake.base_url)
        downloader = ImageDownloader(
            api_client=CivitaiAPI(client=client),
            download_engine=DownloadEngine(client=client, max_workers=1),
            output_path=str(tmp_path / "out"),
            path_template="{id}",
            metadata_formats=["json"],
        )
        try:
            ids = downloader.download_model_images(dataset.models[0].id, nsfw_levels=["None"])
            assert len(ids) == 4
            for _ in range(300):
                if sum(1 for r in fake.image_requests() if r.completed) == 4:
                    break
                time.sleep(0.05)
            fetched = [r for r in fake.image_requests() if r.completed]
            assert len(fetched) == 4, "downloads waited for the post-processing of earlier files"
            assert not any(downloader.get_task(t).done for t in ids)  # all still post-processing
            release.set()
            assert downloader.wait(timeout=60)
            assert {downloader.get_task(t).status for t in ids} == {"completed"}
            assert all(downloader.get_task(t).metadata_path for t in ids)
        finally:
            release.set()
            downloader.close()
            client.close()


def test_a_version_download_asks_civitai_each_thing_once(fake_civitai, tmp_path):
    version = fake_civitai.dataset.models[0].versions[0]
    argv = ["download", "version", str(version.id), "--base-url", fake_civitai.base_url, "-q"]
    argv += ["--output", str(tmp_path / "out"), "--metadata", "json,txt"]
    assert cli.main(argv, out=io.StringIO()) == 0
    asked = [(r.path, r.raw_query) for r in fake_civitai.api_requests()]
    assert asked, "the run asked Civitai nothing"
    repeated = sorted({a for a in asked if asked.count(a) > 1})
    assert repeated == [], repeated

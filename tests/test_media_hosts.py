"""Video originals from Civitai's video host (image-b2), the fallback to the image host on
403/404, and one download per file (its uuid) whatever URL names it: against the real fake."""

from __future__ import annotations

import dataclasses
import os
import sqlite3

import pytest

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.civitai.image_urls import download_urls, media_uuid
from scripts.civitai_manager_libs.engine.pool import DownloadEngine
from scripts.civitai_manager_libs.fake_civitai import FakeCivitai
from scripts.civitai_manager_libs.fake_civitai.builders import build_default
from scripts.civitai_manager_libs.fake_civitai.dataset import Dataset
from scripts.civitai_manager_libs.fake_civitai.models_api import with_resource_fixtures
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.image_downloader import COMPLETED, SKIPPED, ImageDownloader
from scripts.civitai_manager_libs.records import NSFW_LEVELS
from scripts.civitai_manager_libs.store.archive import Archive

VIDEO_MODEL = 99001
TWIN_ID = 98765001  # a second listing of the first video's file (same uuid, another id/URL)
TWIN_POST = 98765002
UUID_A = "4d7aa4b2-7e4a-4d9f-9c1f-0123456789ab"


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    setting.reset()
    yield
    setting.reset()


@pytest.fixture(scope="module")
def twin_dataset():
    """The default dataset plus a twin of the first video: the same file (uuid) listed under
    another id, post and URL form (``original=true/<uuid>.mp4``)."""
    built = with_resource_fixtures(build_default(0))
    first = min((i for i in built["images"] if i.media == "mp4"), key=lambda i: i.id)
    twin = dataclasses.replace(
        first, id=TWIN_ID, post_id=TWIN_POST, uuid_url=True, model_id=0, model_version_ids=()
    )
    built["images"] = list(built["images"]) + [twin]
    return Dataset(**built)


@pytest.fixture
def fake(twin_dataset, monkeypatch):
    with FakeCivitai(twin_dataset) as running:
        monkeypatch.setenv("CIVITAI_VIDEO_BASE_URL", running.video_base_url)
        yield running


@pytest.fixture
def make_downloader(tmp_path):
    made = []

    def make(fake, output=None):
        client = CivitaiHttpClient(base_url=fake.base_url, api_key="k-secret-1", max_retries=2)
        client.backoff_factor = 0.01
        engine = DownloadEngine(client=client, max_workers=3)
        downloader = ImageDownloader(
            CivitaiAPI(client=client), engine, str(output or tmp_path / "out"), "{model_id}/{id}"
        )
        made.append((downloader, engine, client))
        return downloader

    yield make
    for downloader, engine, client in made:
        downloader.close()
        engine.shutdown(wait=True, cancel_pending=True)
        client.close()


def videos(fake):
    return sorted(
        (i for i in fake.dataset.select(model_id=VIDEO_MODEL) if i.media == "mp4"),
        key=lambda i: i.id,
    )


def requests_for(fake, uuid, server=None):
    return [
        r
        for r in fake.log
        if uuid in r.path and r.server != "api" and (server is None or r.server == server)
    ]


def tasks_by_image(downloader, task_ids):
    return {downloader.get_task(t).image_id: downloader.get_task(t) for t in task_ids}


# -- the URLs --------------------------------------------------------------------------------


def test_download_urls_for_civitai_videos_and_images():
    old = f"https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/{UUID_A}/width=450/123.mp4"
    assert download_urls(old, "video") == [
        f"https://image-b2.civitai.com/file/civitai-media-cache/{UUID_A}/original",
        f"https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/{UUID_A}/original=true/123.mp4",
        old,
    ]
    # an image keeps its one original URL; a video on another host only gets the video host
    # when one is set explicitly
    assert download_urls(old.replace(".mp4", ".jpeg"), "image") == [
        old.replace("width=450", "original=true").replace(".mp4", ".jpeg")
    ]
    mirror = f"http://127.0.0.1:9/xG1nkqKTMzGDvpLrqFT7WA/{UUID_A}/width=450/1.mp4"
    assert not any("civitai-media-cache" in u for u in download_urls(mirror, "video"))
    assert download_urls(mirror, None, "http://127.0.0.1:7")[0] == (
        f"http://127.0.0.1:7/file/civitai-media-cache/{UUID_A}/original"
    )
    # one uuid, whatever the form
    b2 = f"https://image-b2.civitai.com/file/civitai-media-cache/{UUID_A.upper()}/original"
    assert media_uuid(old) == media_uuid(b2) == UUID_A


# -- downloads -------------------------------------------------------------------------------


def test_video_originals_come_from_the_video_host(fake, make_downloader):
    downloader = make_downloader(fake)
    ids = downloader.download_model_images(VIDEO_MODEL, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    tasks = tasks_by_image(downloader, ids)
    for video in videos(fake):
        assert tasks[video.id].status == COMPLETED, tasks[video.id].error
        with open(tasks[video.id].image_path, "rb") as handle:
            assert handle.read() == fake.dataset.original_bytes(video.id)
        assert [r.path for r in requests_for(fake, video.uuid)] == [
            f"/file/civitai-media-cache/{video.uuid}/original"
        ]
        assert requests_for(fake, video.uuid, "video")[0].status == 200
        assert "Authorization" not in requests_for(fake, video.uuid, "video")[0].headers
        assert "k-secret-1" not in requests_for(fake, video.uuid, "video")[0].raw_query
    assert fake.api_requests()[0].headers["Authorization"] == "Bearer k-secret-1"  # API host only
    stills = [i for i in fake.dataset.select(model_id=VIDEO_MODEL) if i.media != "mp4"]
    for still in stills:  # pictures stay on the image host
        assert {r.server for r in requests_for(fake, still.uuid)} <= {"image"}


@pytest.mark.parametrize("status", [403, 404])
def test_a_video_the_video_host_refuses_comes_from_the_image_host(fake, make_downloader, status):
    refused, served = videos(fake)[0], videos(fake)[1]
    fake.faults.refuse_video([refused.uuid], status)
    downloader = make_downloader(fake)
    ids = downloader.download_model_images(VIDEO_MODEL, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    tasks = tasks_by_image(downloader, ids)
    assert tasks[refused.id].status == COMPLETED, tasks[refused.id].error
    with open(tasks[refused.id].image_path, "rb") as handle:
        assert handle.read() == fake.dataset.original_bytes(refused.id)
    assert [(r.server, r.status) for r in requests_for(fake, refused.uuid)] == [
        ("video", status),
        ("image", 200),
    ]
    assert requests_for(fake, refused.uuid, "image")[0].path.endswith(
        f"/{refused.uuid}/original=true/{refused.id}.mp4"
    )
    assert [r.server for r in requests_for(fake, served.uuid)] == ["video"]


def test_the_listed_url_is_the_last_resort(fake, make_downloader):
    video = videos(fake)[0]
    fake.faults.refuse_video([video.uuid], 404)
    fake.faults.not_found(f"*/{video.uuid}/original=true/*", server="image")
    downloader = make_downloader(fake)
    ids = downloader.download_model_images(VIDEO_MODEL, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    assert tasks_by_image(downloader, ids)[video.id].status == COMPLETED
    seen = [(r.server, r.status) for r in requests_for(fake, video.uuid)]
    assert seen == [("video", 404), ("image", 404), ("image", 200)]
    assert f"width={video.width}" in requests_for(fake, video.uuid)[-1].path


def test_a_file_listed_twice_under_two_urls_is_fetched_once(fake, make_downloader):
    first = videos(fake)[0]
    assert fake.dataset.image(TWIN_ID).uuid == first.uuid
    downloader = make_downloader(fake)
    ids = downloader.download_model_images(VIDEO_MODEL, nsfw_levels=list(NSFW_LEVELS))
    second = downloader.download_filtered_images({"postId": TWIN_POST, "nsfw": "X"}, limit=0)
    assert downloader.wait(timeout=60)
    assert tasks_by_image(downloader, ids)[first.id].status == COMPLETED
    assert len(second) == 1  # the twin's listing: the first's live task, or skipped as saved
    twin_task = downloader.get_task(second[0])
    assert twin_task.image_id == first.id or (
        twin_task.status == SKIPPED and f"image {first.id}" in twin_task.error
    )
    assert len(requests_for(fake, first.uuid)) == 1  # one download of the one file


def test_an_archive_holding_the_file_under_its_old_url_skips_it(fake, make_downloader, tmp_path):
    """An archive written before the uuid column: the twin's row (old image-host URL) is found
    by its file's uuid, so the listed video is not fetched again."""
    out = tmp_path / "out"
    first = videos(fake)[0]
    saved = out / "old" / f"{TWIN_ID}.mp4"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(fake.dataset.original_bytes(first.id))
    db = out / ".civitai_archive.sqlite3"
    with Archive(str(db)) as archive:
        archive.record_image(
            TWIN_ID,
            url=f"https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/{first.uuid}/original=true/"
            f"{TWIN_ID}.mp4",
            path=str(saved),
        )
    with sqlite3.connect(db) as conn:  # as an older version wrote it
        conn.execute("DROP INDEX images_uuid")
        conn.execute("ALTER TABLE images DROP COLUMN uuid")
    downloader = make_downloader(fake, output=out)
    ids = downloader.download_model_images(VIDEO_MODEL, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    task = tasks_by_image(downloader, ids)[first.id]
    assert task.status == SKIPPED and f"image {TWIN_ID}" in task.error
    assert task.image_path == str(saved)
    assert requests_for(fake, first.uuid) == []
    assert os.path.isfile(saved)


def test_a_same_file_row_outside_the_output_folder_is_not_taken(fake, make_downloader, tmp_path):
    """A copied archive's row may point into the folder it was copied from: that file is not
    this folder's, so the video is downloaded here."""
    out = tmp_path / "out"
    first = videos(fake)[0]
    elsewhere = tmp_path / "elsewhere" / f"{TWIN_ID}.mp4"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(fake.dataset.original_bytes(first.id))
    out.mkdir()
    with Archive(str(out / ".civitai_archive.sqlite3")) as archive:
        archive.record_image(TWIN_ID, url=fake.image_url(TWIN_ID), path=str(elsewhere))
    downloader = make_downloader(fake, output=out)
    ids = downloader.download_model_images(VIDEO_MODEL, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    assert tasks_by_image(downloader, ids)[first.id].status == COMPLETED
    assert len(requests_for(fake, first.uuid)) == 1

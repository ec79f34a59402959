"""ImageDownloader end to end against the local fake Civitai: what reaches the disk and the wire."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from PIL import Image

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.engine.pool import DownloadEngine
from scripts.civitai_manager_libs.errors import (
    DiskSpaceError,
    InvalidQueryError,
    InvalidResponseError,
    NotFoundError,
    OutputPathError,
    ServerError,
    TemplateError,
)
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.image_downloader import (
    ARCHIVE_NAME,
    CANCELLED,
    COMPLETED,
    FAILED,
    MEDIA_EXTENSIONS,
    SKIPPED,
    ImageDownloader,
    ImageDownloadTask,
)
from scripts.civitai_manager_libs.records import NSFW_LEVELS, DownloadSummary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SFW = ["None", "Soft"]
EXT_OF = {"png": ".png", "jpeg": ".jpeg", "webp": ".webp", "mp4": ".mp4"}


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    setting.reset()
    yield
    setting.reset()


@pytest.fixture
def make_downloader(fake_civitai, tmp_path):
    """Factory: an ImageDownloader on a client bound to the fake; everything closed afterwards."""
    made = []

    def make(output=None, template="{model_id}/{id}", workers=4, fake=None, client=None, **kw):
        fake = fake or fake_civitai
        client = client or CivitaiHttpClient(
            base_url=fake.base_url, api_key="", max_retries=6, backoff_factor=0.01
        )
        engine = DownloadEngine(client=client, max_workers=workers)
        downloader = ImageDownloader(
            CivitaiAPI(client=client),
            engine,
            str(output or tmp_path / "out"),
            template,
            **kw,
        )
        made.append((downloader, engine, client))
        return downloader

    yield make
    for downloader, engine, client in made:
        downloader.close()
        engine.shutdown(wait=True, cancel_pending=True)
        client.close()


def media_files(root):
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".thumbnails"]
        for name in files:
            if os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS:
                found.append(os.path.join(folder, name))
    return sorted(found)


def id_of(path):
    return int(os.path.splitext(os.path.basename(path))[0].split(" ")[0])


def original_requests(fake):
    return [r for r in fake.image_requests() if "/original=true/" in r.path]


def requested_ids(fake):
    """Image ids of the original requests (by the uuid: newer URLs have no id in the name)."""
    return [fake.dataset.image_by_uuid(r.path.split("/")[2]).id for r in original_requests(fake)]


# -- construction --------------------------------------------------------------------------------


def test_unknown_template_field_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(TemplateError, match="model_title"):
        ImageDownloader(output_path=str(out), path_template="{model_title}/{id}")
    assert not out.exists()


def test_options_default_from_settings_and_are_validated(tmp_path):
    setting.set("images.duplicate_policy", "keep_both")
    setting.set("images.metadata_format", "json,txt")
    downloader = ImageDownloader(
        api_client=object(), download_engine=DownloadEngine(client=object(), max_workers=1)
    )
    try:
        assert downloader.duplicate_policy == "keep_both"
        assert downloader.metadata_formats == ["json", "txt"]
        assert downloader.output_path == os.path.abspath(setting.get("images.output_path"))
    finally:
        downloader.close()
        downloader.engine.shutdown()
    with pytest.raises(ValueError, match="images.duplicate_policy"):
        ImageDownloader(api_client=object(), output_path=str(tmp_path), duplicate_policy="merge")


def test_images_save_metadata_off_writes_no_sidecars(make_downloader, fake_civitai):
    setting.set("images.save_metadata", False)
    downloader = make_downloader(metadata_formats=["json", "txt"])
    ids = downloader.download_model_images(58390, nsfw_levels=SFW, limit=2, save_metadata=True)
    assert downloader.wait(timeout=30)
    assert downloader.summary(ids).completed == 2
    names = [n for _, _, files in os.walk(downloader.output_path) for n in files]
    assert not [n for n in names if n.endswith((".json", ".txt"))]
    assert all(downloader.get_task(t).metadata_path is None for t in ids)


# -- model listing over several pages ------------------------------------------------------------


def test_model_images_over_several_pages_land_on_disk_with_metadata(make_downloader, fake_civitai):
    downloader = make_downloader(metadata_formats=["json", "txt"])
    downloader.page_size = 25
    expected = fake_civitai.dataset.select(model_id=4201, levels=SFW)
    assert len(expected) > 50  # three pages at least

    ids = downloader.download_model_images(4201, nsfw_levels=SFW)
    assert len(ids) == len(expected)
    assert downloader.wait(timeout=60)

    pages = [r for r in fake_civitai.api_requests() if r.path == "/api/v1/images"]
    assert len(pages) >= 3
    assert all("withMeta=true" in str(r.query) or r.query.get("withMeta") for r in pages)
    files = media_files(downloader.output_path)
    assert sorted(id_of(p) for p in files) == sorted(i.id for i in expected)
    by_id = {i.id: i for i in expected}
    for path in files:
        image = by_id[id_of(path)]
        assert os.path.dirname(path) == os.path.join(downloader.output_path, "4201")
        assert path.endswith(EXT_OF[image.media])  # real type, not the URL's ".jpeg"
        with open(path, "rb") as handle:
            assert handle.read() == fake_civitai.dataset.original_bytes(image.id)
        record = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
        assert record["id"] == image.id and record["model_id"] == 4201
        assert os.path.isfile(os.path.splitext(path)[0] + ".txt")
    assert not [p for p in os.listdir(os.path.join(downloader.output_path, "4201")) if ".part" in p]

    summary = downloader.summary(ids)
    assert isinstance(summary, DownloadSummary)
    assert (summary.completed, summary.failed, summary.pending) == (len(expected), 0, 0)
    assert summary.bytes_downloaded == sum(os.path.getsize(p) for p in files)
    task = downloader.get_task(ids[0])
    assert task.status == COMPLETED and task.progress == 1.0 and task.error is None
    assert task.image_path in files and task.metadata_path.endswith(".json")
    assert task.to_dict()["image_path"] == task.image_path


def test_second_run_lists_again_but_makes_zero_image_requests(make_downloader, fake_civitai):
    # a full re-run (--full; a plain re-run of a finished newest-first listing stops at its first
    # page, tests/test_incremental.py)
    import dataclasses

    from scripts.civitai_manager_libs.planning.listing_request import model_listing

    first = make_downloader()
    first.page_size = 40
    ids = first.download_model_images(4201, nsfw_levels=SFW)
    assert first.wait(timeout=60)
    first.close()
    fake_civitai.reset()

    t0 = time.monotonic()
    second = make_downloader()
    second.page_size = 40
    full = dataclasses.replace(model_listing(4201, nsfw_levels=SFW), full=True)
    again = second.download_listing(full)
    assert second.wait(timeout=30)
    rerun_seconds = time.monotonic() - t0
    assert fake_civitai.image_requests() == []
    assert len(again) == len(ids)
    tasks = [second.get_task(t) for t in again]
    assert {t.status for t in tasks} == {SKIPPED}
    assert {t.error for t in tasks} == {"already downloaded"}
    assert all(t.image_path and os.path.isfile(t.image_path) for t in tasks)
    assert rerun_seconds < 10


def test_a_deleted_file_is_downloaded_again(make_downloader, fake_civitai):
    first = make_downloader(generate_thumbnails=True)
    first.download_model_images(58390, nsfw_levels=SFW)
    assert first.wait(timeout=30)
    files = media_files(first.output_path)
    thumbs = os.listdir(os.path.join(first.output_path, "58390", ".thumbnails"))
    assert len(thumbs) == len(files)
    os.remove(files[0])
    fake_civitai.reset()
    again = make_downloader()
    again.download_model_images(58390, nsfw_levels=SFW)
    assert again.wait(timeout=30)
    assert requested_ids(fake_civitai) == [id_of(files[0])]
    assert media_files(again.output_path) == files


def test_each_nsfw_combination_keeps_exactly_its_levels(make_downloader, fake_civitai):
    model = 90210  # an NSFW model: every level is present
    everything = make_downloader()
    everything.download_model_images(model, nsfw_levels=list(NSFW_LEVELS))
    assert everything.wait(timeout=60)
    present = {i.nsfw_level for i in fake_civitai.dataset.select(model_id=model)}
    assert present >= set(NSFW_LEVELS)  # and a Blocked item, never asked for
    fake_civitai.reset()
    checker = make_downloader()
    for size in range(1, 5):
        for combo in itertools.combinations(NSFW_LEVELS, size):
            ids = checker.download_model_images(model, nsfw_levels=list(combo))
            got = sorted(checker.get_task(t).image_id for t in ids)
            want = sorted(i.id for i in fake_civitai.dataset.select(model_id=model, levels=combo))
            assert got == want, combo
            assert {checker.get_task(t).nsfw_level for t in ids} <= set(combo)
    assert fake_civitai.image_requests() == []  # all known: the listing alone was checked


def test_default_nsfw_filter_is_the_setting(make_downloader, fake_civitai):
    setting.set("images.default_nsfw_filter", ["None"])
    downloader = make_downloader()
    ids = downloader.download_model_images(90210)
    want = sorted(i.id for i in fake_civitai.dataset.select(model_id=90210, levels=["None"]))
    assert sorted(downloader.get_task(t).image_id for t in ids) == want
    assert downloader.wait(timeout=30)


@pytest.mark.parametrize(
    "nsfw, levels",
    [
        (["None", "Mature"], ["None", "Mature"]),  # a list is an exact set
        ("Mature", ["None", "Soft", "Mature"]),  # one Civitai value keeps Civitai's mask meaning
        ("true", ["Mature", "X"]),
    ],
)
def test_filtered_images_honour_the_nsfw_filter_param(make_downloader, fake_civitai, nsfw, levels):
    downloader = make_downloader()
    ids = downloader.download_filtered_images({"modelId": 90210, "nsfw": nsfw}, limit=0)
    want = sorted(i.id for i in fake_civitai.dataset.select(model_id=90210, levels=levels))
    assert sorted(downloader.get_task(t).image_id for t in ids) == want
    assert downloader.wait(timeout=30)
    assert sorted(id_of(p) for p in media_files(downloader.output_path)) == want
    limited = downloader.download_filtered_images({"modelId": 90210, "nsfw": nsfw}, limit=3)
    assert len(limited) == 3


def test_videos_are_saved_as_mp4_without_thumbnails(make_downloader, fake_civitai):
    videos = [i for i in fake_civitai.dataset.select(model_id=99001) if i.media == "mp4"]
    assert videos
    downloader = make_downloader(generate_thumbnails=True)
    ids = downloader.download_model_images(99001, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=30)
    tasks = {downloader.get_task(t).image_id: downloader.get_task(t) for t in ids}
    for video in videos:
        task = tasks[video.id]
        assert task.status == COMPLETED and task.image_path.endswith(".mp4")
        assert task.thumbnail_path is None
    pictures = [t for i, t in tasks.items() if i not in {v.id for v in videos}]
    assert pictures and all(os.path.isfile(t.thumbnail_path) for t in pictures)


# -- names and paths -----------------------------------------------------------------------------


def test_hostile_names_never_leave_the_output_folder(make_downloader, fake_civitai, tmp_path):
    out = tmp_path / "root" / "out"
    downloader = make_downloader(output=out, template="{model_name}/{creator}/{id}")
    ids = downloader.download_model_images(
        66666, nsfw_levels=list(NSFW_LEVELS)
    )  # ../../x con\a:b*?
    ids += downloader.download_model_images(77777, nsfw_levels=list(NSFW_LEVELS))  # 300 chars
    ids += downloader.download_creator_images("con", limit=5, nsfw_levels=list(NSFW_LEVELS))
    with pytest.raises(InvalidQueryError, match="path separator"):  # no Civitai username
        downloader.download_creator_images("..%2f..", limit=5, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    summary = downloader.summary(ids)
    assert summary.failed == 0 and summary.completed > 20

    real_root = os.path.realpath(out)
    outside = [
        os.path.join(folder, name)
        for folder, _, files in os.walk(tmp_path)
        for name in files
        if not os.path.realpath(os.path.join(folder, name)).startswith(real_root + os.sep)
        and name != "settings.json"
    ]
    assert outside == []
    for folder, dirs, files in os.walk(out):
        for name in dirs + files:
            assert name not in ("..", ".") and "/" not in name and "\\" not in name
            assert len(name.encode("utf-8")) <= 255
            assert name.split(".")[0].lower() not in ("con", "nul", "aux", "prn")
            assert not any(ch in name for ch in '<>:"|?*')
    files = media_files(out)
    assert len(files) == summary.completed
    assert len({id_of(p) for p in files}) == len(files)


def test_image_listed_under_two_versions_is_saved_once(make_downloader, fake_civitai):
    doubles = [i for i in fake_civitai.dataset.images if set(i.model_version_ids) >= {70001, 70002}]
    assert doubles, "the fake dataset lists some images under two versions"
    fake_civitai.latency = 0.02  # the first listing's tasks are still queued during the second
    downloader = make_downloader(template="{model_id}/{id}", workers=1)
    every = list(NSFW_LEVELS)
    first = downloader.download_version_images(70001, nsfw_levels=every)
    second = downloader.download_version_images(70002, nsfw_levels=every)
    assert downloader.wait(timeout=60)
    for image in doubles:
        tasks = [downloader.get_task(t) for t in first + second]
        mine = {t.id for t in tasks if t.image_id == image.id}
        assert len(mine) == 1  # both calls return the one task of that image
        assert downloader.get_task(mine.pop()).status == COMPLETED
        assert requested_ids(fake_civitai).count(image.id) == 1
    files = media_files(downloader.output_path)
    assert len(files) == len({id_of(p) for p in files})
    union = {i.id for v in (70001, 70002) for i in fake_civitai.dataset.select(version_id=v)}
    assert {id_of(p) for p in files} == union


# -- concurrency, faults -------------------------------------------------------------------------


def test_simultaneous_image_requests_never_exceed_the_setting(fake_civitai, tmp_path):
    from scripts.civitai_manager_libs import http_client

    fake_civitai.latency = 0.05
    setting.update(
        {
            "civitai_base_url": fake_civitai.base_url,
            "images.max_concurrent": 3,
            "http_backoff_factor": 0.01,
        }
    )
    http_client.reset_http_client()
    # every collaborator from the defaults: shared client, owned engine, settings
    with ImageDownloader(output_path=str(tmp_path / "defaults")) as downloader:
        assert downloader.max_concurrent == downloader.engine.max_workers == 3
        ids = downloader.download_model_images(4384, nsfw_levels=list(NSFW_LEVELS))
        assert downloader.wait(timeout=60)
        assert downloader.summary(ids).completed == len(ids) > 10
        assert 2 <= fake_civitai.max_concurrent_image_requests <= 3

        fake_civitai.reset()
        downloader.max_concurrent = 1  # turned down between batches (also works during one)
        ids = downloader.download_model_images(58390, nsfw_levels=list(NSFW_LEVELS))
        assert downloader.wait(timeout=60)
        assert downloader.summary(ids).completed == len(ids) > 5
        assert fake_civitai.max_concurrent_image_requests == 1
        with pytest.raises(ValueError, match="images.max_concurrent"):
            downloader.max_concurrent = 0
    assert downloader.engine.worker_count == 0  # close() shut the owned engine down
    http_client.reset_http_client()


def test_a_429_storm_still_completes(make_downloader, fake_civitai):
    fake_civitai.faults.queue_status(
        "*/original=true/*", 429, headers={"Retry-After": "0"}, count=12, server="image"
    )
    downloader = make_downloader(workers=3)
    ids = downloader.download_model_images(58390, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    assert downloader.summary(ids).completed == len(ids)
    statuses = [r.status for r in fake_civitai.image_requests()]
    assert statuses.count(429) == 12
    assert len(media_files(downloader.output_path)) == len(ids)


def test_failures_have_user_sentences_and_retry_failed_recovers(make_downloader, fake_civitai):
    images = fake_civitai.dataset.select(model_id=4384, levels=list(NSFW_LEVELS))
    gone, html = images[0], images[1]
    fake_civitai.faults.not_found(f"*/original=true/{gone.id}.*")
    fake_civitai.faults.html_instead(f"*/original=true/{html.id}.*")
    downloader = make_downloader()
    ids = downloader.download_model_images(4384, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    errors = {downloader.get_task(t).image_id: downloader.get_task(t).error for t in ids}
    assert errors[gone.id] == "HTTP 404: the image is no longer on Civitai"
    assert errors[html.id] == "the server sent a web page instead of an image"
    summary = downloader.summary(ids)
    assert summary.failed == 2 and summary.completed == len(ids) - 2
    assert sorted(summary.failures) == sorted(
        [(gone.id, errors[gone.id]), (html.id, errors[html.id])]
    )
    on_disk = {id_of(p) for p in media_files(downloader.output_path)}
    assert gone.id not in on_disk and html.id not in on_disk

    fake_civitai.faults.clear()
    fake_civitai.reset()
    retried = downloader.retry_failed()
    assert len(retried) == 2
    assert downloader.wait(retried, timeout=30)
    assert {downloader.get_task(t).status for t in retried} == {COMPLETED}
    assert sorted(requested_ids(fake_civitai)) == sorted([gone.id, html.id])
    assert {gone.id, html.id} <= {id_of(p) for p in media_files(downloader.output_path)}


def test_failed_tasks_from_an_earlier_session_are_retried(make_downloader, fake_civitai):
    victim = fake_civitai.dataset.select(model_id=58390, levels=SFW)[0]
    fake_civitai.faults.not_found(f"*/original=true/{victim.id}.*")
    first = make_downloader()
    first.download_model_images(58390, nsfw_levels=SFW)
    assert first.wait(timeout=60)
    first.close()
    fake_civitai.faults.clear()
    fake_civitai.reset()
    second = make_downloader()
    retried = second.retry_failed()
    assert second.wait(retried, timeout=30)
    assert [second.get_task(t).image_id for t in retried] == [victim.id]
    assert second.get_task(retried[0]).status == COMPLETED
    assert requested_ids(fake_civitai) == [victim.id]


def test_the_api_key_stays_on_the_api_host_and_out_of_files_and_logs(
    make_downloader, fake_civitai, caplog
):
    secret = "sk-test-0123456789abcdef"
    client = CivitaiHttpClient(base_url=fake_civitai.base_url, api_key=secret)
    downloader = make_downloader(client=client, metadata_formats=["json", "txt"])
    caplog.set_level("DEBUG")
    fake_civitai.faults.not_found("*/original=true/*")  # failures put messages in tasks and logs
    ids = downloader.download_model_images(58390, nsfw_levels=SFW, limit=3)
    assert downloader.wait(timeout=30)
    fake_civitai.faults.clear()
    ids += downloader.retry_failed()
    assert downloader.wait(timeout=30)
    assert downloader.summary(ids).completed == 3
    assert all(
        r.headers.get("Authorization") == f"Bearer {secret}" for r in fake_civitai.api_requests()
    )
    assert all("Authorization" not in r.headers for r in fake_civitai.image_requests())
    for folder, _, files in os.walk(downloader.output_path):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                assert secret.encode() not in handle.read(), name
    assert secret not in caplog.text
    assert all(secret not in json.dumps(t.to_dict()) for t in downloader.get_all_tasks())


# -- callbacks -----------------------------------------------------------------------------------


def test_callbacks_fire_once_per_task_from_one_thread(make_downloader, fake_civitai):
    downloader = make_downloader(workers=4)
    downloaded, finished, threads, summaries = [], [], set(), []
    lock = threading.Lock()

    def on_downloaded(task):
        with lock:
            downloaded.append(task.id)
            threads.add(threading.get_ident())
        if len(downloaded) == 1:
            raise RuntimeError("a buggy callback")

    def on_finished(task):
        with lock:
            finished.append((task.id, task.status))
            threads.add(threading.get_ident())

    downloader.register_image_downloaded_callback(on_downloaded)
    downloader.register_task_finished_callback(on_finished)
    downloader.register_progress_callback(lambda s: summaries.append(s))
    ids = downloader.download_model_images(58390, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=60)
    assert sorted(downloaded) == sorted(ids)  # the raising callback did not stop later ones
    assert sorted(t for t, _ in finished) == sorted(ids)
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert summaries and isinstance(summaries[-1], DownloadSummary)
    assert summaries[-1].completed == len(ids) and summaries[-1].finished

    # skipped tasks are "finished" but not "downloaded"
    again = downloader.download_model_images(58390, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=30)
    assert len(downloaded) == len(ids)
    assert sorted(t for t, s in finished if s == SKIPPED) == sorted(again)


# -- cancel, checkpoints, kill ------------------------------------------------------------------


def test_cancel_stops_the_work_and_the_same_call_resumes(make_downloader, fake_civitai):
    fake_civitai.latency = 0.05
    downloader = make_downloader(workers=2)
    downloader.page_size = 20
    finished = []

    def on_finished(task):
        finished.append(task.id)
        if len(finished) == 30:  # the first page (20) is done, the second is not
            downloader.cancel()

    downloader.register_task_finished_callback(on_finished)
    ids = downloader.download_model_images(4201, nsfw_levels=SFW)
    assert downloader.wait(timeout=30)
    summary = downloader.summary(ids)
    assert summary.cancelled > 0 and summary.pending == 0
    expected = {i.id for i in fake_civitai.dataset.select(model_id=4201, levels=SFW)}
    done_before = {id_of(p) for p in media_files(downloader.output_path)}
    assert len(done_before) < len(expected)
    key = f"model:4201|nsfw={','.join(SFW)}"
    checkpoint = downloader.archive.get_checkpoint(key)
    pages = [r for r in fake_civitai.api_requests() if r.path == "/api/v1/images"]
    second_page_cursor = pages[1].query.get("cursor")
    assert checkpoint is not None and checkpoint == second_page_cursor
    downloader.close()

    fake_civitai.latency = 0.0
    fake_civitai.reset()
    resumed = make_downloader(workers=4)
    resumed.page_size = 20
    resumed.download_model_images(4201, nsfw_levels=SFW)
    assert resumed.wait(timeout=60)
    files = media_files(resumed.output_path)
    assert sorted(id_of(p) for p in files) == sorted(expected)
    assert not set(requested_ids(fake_civitai)) & done_before
    first_page = [r for r in fake_civitai.api_requests() if r.path == "/api/v1/images"][0]
    assert first_page.query.get("cursor") == checkpoint  # the listing resumed, not restarted
    assert resumed.archive.get_checkpoint(key) is None  # listing and tasks all done


def test_a_listing_error_is_raised_and_the_rerun_continues_after_it(make_downloader, fake_civitai):
    class BreaksAfterTwoPages(CivitaiAPI):
        pages = 0

        def get_image_page(self, *args, **kwargs):
            page = super().get_image_page(*args, **kwargs)
            self.pages += 1
            if self.pages == 2:  # from now on the listing endpoint is down
                fake_civitai.faults.queue_status("/api/v1/images", 503, count=1000, server="api")
            return page

    downloader = make_downloader()
    downloader.api = BreaksAfterTwoPages(downloader.client)
    downloader.page_size = 20
    with pytest.raises(ServerError):
        downloader.download_model_images(4201, nsfw_levels=SFW)
    assert downloader.wait(timeout=30)
    first_two_pages = {t.image_id for t in downloader.get_all_tasks()}
    assert len(first_two_pages) == 40
    assert downloader.summary().completed == 40  # the listed pages were downloaded anyway
    third_cursor = [r for r in fake_civitai.api_requests() if r.path == "/api/v1/images"][-1]
    key = f"model:4201|nsfw={','.join(SFW)}"
    assert downloader.archive.get_checkpoint(key) == third_cursor.query["cursor"]

    fake_civitai.faults.clear()
    fake_civitai.reset()
    again = make_downloader()
    again.page_size = 20
    again.download_model_images(4201, nsfw_levels=SFW)
    assert again.wait(timeout=60)
    first = [r for r in fake_civitai.api_requests() if r.path == "/api/v1/images"][0]
    assert first.query["cursor"] == third_cursor.query["cursor"]
    expected = {i.id for i in fake_civitai.dataset.select(model_id=4201, levels=SFW)}
    assert {id_of(p) for p in media_files(again.output_path)} == expected
    assert not set(requested_ids(fake_civitai)) & first_two_pages
    assert again.archive.get_checkpoint(key) is None


def test_a_server_cycling_cursors_stops_the_listing_after_planning_the_page(
    make_downloader, fake_civitai
):
    every = list(NSFW_LEVELS)
    wanted = fake_civitai.dataset.select(model_id=58390, levels=every)[:6]
    client = CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="")
    items = [
        client.get_json(f"/api/v1/images?imageId={image.id}&nsfw=X&withMeta=true")["items"][0]
        for image in wanted
    ]
    client.close()
    fake_civitai.reset()
    # the server answers a -> b -> a -> b ... (queued answers are served in order)
    served = [(items[0:2], "cur-a"), (items[2:4], "cur-b"), (items[4:6], "cur-a")]
    served += [(items[4:6], "cur-b" if n % 2 else "cur-a") for n in range(8)]
    for page_items, next_cursor in served:
        body = {"items": page_items, "metadata": {"nextCursor": next_cursor}}
        fake_civitai.faults.queue_status("/api/v1/images", 200, body=body, server="api")

    downloader = make_downloader()
    with pytest.raises(InvalidResponseError) as raised:
        downloader.download_model_images(58390, nsfw_levels=every)
    assert str(raised.value).startswith(
        "Civitai returned a cursor it already gave ('cur-a'): stopping the listing to avoid "
        "an endless loop"
    )
    listing = [r for r in fake_civitai.api_requests() if r.path == "/api/v1/images"]
    assert [r.query.get("cursor") for r in listing] == [None, "cur-a", "cur-b"]
    assert downloader.wait(timeout=30)
    # the page that sent the repeated cursor was planned too: all six images are on disk
    assert sorted(id_of(p) for p in media_files(downloader.output_path)) == sorted(
        i.id for i in wanted
    )
    assert downloader.summary().completed == 6
    # like any listing error: the next run of the same call resumes where this one stopped
    key = f"model:58390|nsfw={','.join(every)}"
    assert downloader.archive.get_checkpoint(key) == "cur-a"


def test_kill_and_resume_downloads_every_image_exactly_once(make_downloader, tmp_path):
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    out = tmp_path / "killed"
    with FakeCivitai(dataset=Dataset.generate(n_images=60, image_kb=48), bandwidth=400_000) as fake:
        script = textwrap.dedent(f"""
            import logging
            from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
            from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
            from scripts.civitai_manager_libs.engine.pool import DownloadEngine
            from scripts.civitai_manager_libs.image_downloader import ImageDownloader
            client = CivitaiHttpClient(base_url={fake.base_url!r}, api_key="")
            d = ImageDownloader(CivitaiAPI(client), DownloadEngine(client, 3), {str(out)!r})
            d.page_size = 15
            model = {fake.dataset.models[0].id}
            d.download_model_images(model, nsfw_levels=["None", "Soft", "Mature", "X"])
            d.wait()
            """)
        env = dict(os.environ, CIVITAI_GALLERY_SETTINGS=str(tmp_path / "settings.json"))
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 30
            while len(media_files(out)) < 12 and time.monotonic() < deadline:
                assert proc.poll() is None, "the download finished before it could be killed"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(10)
        before = {id_of(p) for p in media_files(out)}
        assert 12 <= len(before) < 60

        fake.reset()
        resumed = make_downloader(output=out, fake=fake, workers=4)
        resumed.page_size = 15
        ids = resumed.download_model_images(
            fake.dataset.models[0].id, nsfw_levels=list(NSFW_LEVELS)
        )
        assert resumed.wait(timeout=60)
        assert resumed.summary(ids).failed == 0
        files = media_files(out)
        assert sorted(id_of(p) for p in files) == sorted(i.id for i in fake.dataset.images)
        assert len(files) == 60  # no "(1)" copies, no duplicates
        for path in files:
            with open(path, "rb") as handle:
                assert handle.read() == fake.dataset.original_bytes(id_of(path))
        assert not set(requested_ids(fake)) & before  # finished files were not fetched again
        leftovers = [n for _, _, fs in os.walk(out) for n in fs if n.endswith(".part")]
        assert leftovers == []
        for path in files:  # sidecars too, even for files renamed just before the kill
            record = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
            assert record["id"] == id_of(path)


# -- disk space ----------------------------------------------------------------------------------


def test_disk_space_refusal_writes_nothing_and_requests_nothing(make_downloader, fake_civitai):
    downloader = make_downloader(min_free_space_mb=10_000_000)
    with pytest.raises(DiskSpaceError, match="images.min_free_space_mb"):
        downloader.download_model_images(4384)
    assert not os.path.exists(downloader.output_path)
    assert fake_civitai.log == []


def test_queued_work_larger_than_the_free_space_is_not_started(
    make_downloader, fake_civitai, monkeypatch
):
    # The disk this machine shares with other jobs moves by megabytes at any moment: report a
    # fixed 100 MB free so the batch may start (minimum 80 MB) but ~57 MB of queued work may not.
    usage = shutil.disk_usage("/")
    fixed = type(usage)(usage.total, usage.total - 100 * 2**20, 100 * 2**20)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: fixed)
    downloader = make_downloader(workers=1, min_free_space_mb=80)
    fake_civitai.latency = 0.2
    ids = downloader.download_model_images(4201, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=30)
    tasks = [downloader.get_task(t) for t in ids]
    cancelled = [t for t in tasks if t.status == CANCELLED]
    assert len(cancelled) >= len(tasks) - 2
    assert all(t.error.startswith("not started: the queued images need about") for t in cancelled)
    assert "only 100 MB are free" in cancelled[0].error
    assert "images.min_free_space_mb = 80" in cancelled[0].error
    assert len(original_requests(fake_civitai)) <= 2


def test_an_unusable_output_folder_is_a_clear_error(make_downloader, fake_civitai, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    downloader = make_downloader(output=blocker / "images")
    with pytest.raises(OutputPathError, match="Choose an output folder you can write to"):
        downloader.download_model_images(4384)
    assert fake_civitai.image_requests() == []


class _FillingClient(CivitaiHttpClient):
    """The real client, but the disk is "full" from the third image on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fetches = 0
        self._lock = threading.Lock()

    def receive_file(self, url, filepath, **kwargs):
        with self._lock:
            self.fetches += 1
            full = self.fetches > 2
        if full:
            raise DiskSpaceError(f"No space left on device while writing {filepath}.part")
        return super().receive_file(url, filepath, **kwargs)


def test_a_full_disk_fails_the_task_and_stops_scheduling(make_downloader, fake_civitai):
    client = _FillingClient(base_url=fake_civitai.base_url, api_key="")
    downloader = make_downloader(client=client, workers=1)
    ids = downloader.download_model_images(4384, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=30)
    tasks = [downloader.get_task(t) for t in ids]
    statuses = [t.status for t in tasks]
    assert statuses[:3] == [COMPLETED, COMPLETED, FAILED]
    assert tasks[2].error == f"disk full: free space on {downloader.output_path}"
    assert set(statuses[3:]) == {CANCELLED}
    assert all("disk full" in t.error for t in tasks[3:])
    assert client.fetches == 3
    assert downloader.stopped_reason == f"not started: {tasks[2].error}"
    assert len(original_requests(fake_civitai)) == 2
    assert len(media_files(downloader.output_path)) == 2


# -- single images and duplicates ----------------------------------------------------------------


def test_single_image_default_custom_file_and_folder(make_downloader, fake_civitai, tmp_path):
    image = next(i for i in fake_civitai.dataset.images if i.media == "png")
    downloader = make_downloader()
    task_id = downloader.download_single_image(image.id)
    assert isinstance(task_id, str)
    custom_file = downloader.download_single_image(image.id, str(tmp_path / "mine" / "pic.jpeg"))
    folder = tmp_path / "folder"
    folder.mkdir()
    in_folder = downloader.download_single_image(image.id, str(folder), save_metadata=False)
    assert downloader.wait(timeout=30)
    assert downloader.get_task(task_id).image_path == os.path.join(
        downloader.output_path, str(image.model_id), f"{image.id}.png"
    )
    assert downloader.get_task(custom_file).image_path == str(tmp_path / "mine" / "pic.png")
    assert os.path.isfile(tmp_path / "mine" / "pic.json")
    assert downloader.get_task(in_folder).image_path == str(folder / f"{image.id}.png")
    assert not (folder / f"{image.id}.json").exists()
    fake_civitai.reset()
    again = downloader.download_single_image(image.id)
    assert downloader.get_task(again).status == SKIPPED
    assert fake_civitai.log == []
    with pytest.raises(NotFoundError, match="image 1 was not found"):
        downloader.download_single_image(1)


def test_single_image_runs_before_queued_bulk_work(make_downloader, fake_civitai):
    fake_civitai.latency = 0.03
    downloader = make_downloader(workers=1)
    bulk = downloader.download_model_images(4201, nsfw_levels=list(NSFW_LEVELS))
    single_image = fake_civitai.dataset.select(model_id=90210)[0]
    single = downloader.download_single_image(single_image.id)
    assert downloader.wait([single], timeout=30)
    done_bulk = sum(1 for t in bulk if downloader.get_task(t).status == COMPLETED)
    assert done_bulk < len(bulk) // 2
    downloader.cancel()
    assert downloader.wait(timeout=30)


def test_existing_target_file_policies(make_downloader, fake_civitai, tmp_path):
    image = next(i for i in fake_civitai.dataset.select(model_id=58390) if i.media == "png")
    ext = EXT_OF[image.media]

    older = io.BytesIO()
    Image.new("RGB", (3, 3), "white").save(older, format="PNG")  # a readable, older picture
    older_bytes = older.getvalue()

    def prepare(name):
        out = tmp_path / name
        (out / "58390").mkdir(parents=True)
        (out / "58390" / f"{image.id}{ext}").write_bytes(older_bytes)
        return out

    out = prepare("skip_existing")
    fake_civitai.reset()
    downloader = make_downloader(output=out, skip_existing=True)
    ids = downloader.download_filtered_images({"imageId": image.id}, limit=1, save_metadata=False)
    task = downloader.get_task(ids[0])
    assert downloader.wait(timeout=30)
    assert task.status == SKIPPED and task.error.startswith("already on disk")
    assert original_requests(fake_civitai) == []

    out = prepare("keep_both")
    downloader = make_downloader(output=out, skip_existing=False, duplicate_policy="keep_both")
    downloader.download_filtered_images({"imageId": image.id}, limit=1, save_metadata=False)
    assert downloader.wait(timeout=30)
    assert (out / "58390" / f"{image.id}{ext}").read_bytes() == older_bytes
    kept = out / "58390" / f"{image.id} (1){ext}"
    assert kept.read_bytes() == fake_civitai.dataset.original_bytes(image.id)

    out = prepare("replace")
    downloader = make_downloader(output=out, skip_existing=False, duplicate_policy="replace")
    downloader.download_filtered_images({"imageId": image.id}, limit=1, save_metadata=False)
    assert downloader.wait(timeout=30)
    assert media_files(out) == [str(out / "58390" / f"{image.id}{ext}")]
    assert (out / "58390" / f"{image.id}{ext}").read_bytes() == fake_civitai.dataset.original_bytes(
        image.id
    )


def test_same_content_under_another_id_follows_the_policy(make_downloader, fake_civitai, tmp_path):
    image = fake_civitai.dataset.select(model_id=58390)[0]
    content = fake_civitai.dataset.original_bytes(image.id)
    sha = hashlib.sha256(content).hexdigest()

    def prepare(name):
        out = tmp_path / name
        out.mkdir()
        older = out / "older.bin.png"
        older.write_bytes(content)
        return out, str(older)

    results = {}
    for policy in ("skip", "replace", "keep_both"):
        out, older = prepare(policy)
        downloader = make_downloader(output=out, duplicate_policy=policy)
        downloader.archive.record_image(
            image_id=999,
            url="https://example.invalid/999.png",
            sha256=sha,
            path=older,
            size=len(content),
        )
        ids = downloader.download_filtered_images({"imageId": image.id}, limit=1)
        assert downloader.wait(timeout=30)
        results[policy] = (downloader.get_task(ids[0]), out, older)

    task, out, older = results["skip"]
    assert task.status == SKIPPED and task.error == f"same content as {older}"
    assert media_files(out) == [older]
    task, out, older = results["replace"]
    assert task.status == COMPLETED and not os.path.exists(older)
    assert media_files(out) == [task.image_path]
    replaced = ImageDownloader(
        api_client=object(),
        download_engine=DownloadEngine(client=object(), max_workers=1),
        output_path=str(out),
    )
    assert replaced.archive.get_image(999).path == task.image_path  # no ping-pong later
    replaced.close()
    replaced.engine.shutdown()
    task, out, older = results["keep_both"]
    assert task.status == COMPLETED and sorted(media_files(out)) == sorted([older, task.image_path])


# -- history and metadata helpers ----------------------------------------------------------------


def test_history_survives_a_restart(make_downloader, fake_civitai):
    first = make_downloader()
    ids = first.download_model_images(58390, nsfw_levels=SFW)
    assert first.wait(timeout=30)
    before = {t: first.get_task(t).to_dict() for t in ids}
    first.close()

    second = make_downloader()
    restored = {t.id: t for t in second.get_all_tasks()}
    assert set(ids) <= set(restored)
    for task_id in ids:
        task = restored[task_id]
        assert isinstance(task, ImageDownloadTask)
        assert task.status == COMPLETED and task.progress == 1.0
        assert task.image_id == before[task_id]["image_id"]
        assert task.image_path == before[task_id]["image_path"]
        assert second.get_task(task_id).status == COMPLETED


def test_metadata_helpers_delegate_to_metadata_module(make_downloader, fake_civitai, tmp_path):
    downloader = make_downloader()
    image = next(i for i in fake_civitai.dataset.images if i.meta and i.meta.get("prompt"))
    api_item = CivitaiAPI(CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="")).get_image(
        image.id
    )
    record = downloader.extract_image_metadata(api_item.raw)
    assert record["id"] == image.id and record["generation"]["prompt"]
    target = tmp_path / "x.png"
    shutil.copyfile(__file__, target)  # any file: json/txt sidecars do not read it
    path = downloader.save_metadata_file(str(target), record, format="json")
    assert path == str(tmp_path / "x.json")
    assert json.load(open(path, encoding="utf-8"))["id"] == image.id
    txt = downloader.save_metadata_file(str(target), record, format="txt")
    assert open(txt, encoding="utf-8").read().startswith(record["generation"]["prompt"][:20])
    assert os.path.exists(os.path.join(downloader.output_path, ARCHIVE_NAME)) is False


def test_wait_timeout_cancel_some_and_close(make_downloader, fake_civitai):
    fake_civitai.bandwidth = 60_000  # bytes/s per response: downloads take a while
    downloader = make_downloader(workers=2)
    ids = downloader.download_model_images(4384, nsfw_levels=list(NSFW_LEVELS))
    assert downloader.wait(timeout=0.2) is False
    chosen = ids[-3:]
    assert downloader.cancel(chosen) == 3
    assert {downloader.get_task(t).status for t in chosen} == {CANCELLED}
    assert downloader.get_task(ids[0]).status in ("downloading", "completed")
    downloader.close()
    assert all(downloader.get_task(t).done for t in ids)
    assert downloader.summary(ids).pending == 0
    with pytest.raises(RuntimeError, match="closed"):
        downloader.download_model_images(4384)
    never = {downloader.get_task(t).image_id for t in chosen}
    assert not never & set(requested_ids(fake_civitai))


def test_save_metadata_file_can_embed_into_the_image(make_downloader, fake_civitai, tmp_path):
    from PIL import Image

    image = next(
        i
        for i in fake_civitai.dataset.images
        if i.media == "png" and i.meta and i.meta.get("prompt") and not i.embedded
    )
    downloader = make_downloader()
    target = tmp_path / "embed.png"
    target.write_bytes(fake_civitai.dataset.original_bytes(image.id))
    item = CivitaiAPI(CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="")).get_image(
        image.id
    )
    record = downloader.extract_image_metadata(item.raw)
    assert downloader.save_metadata_file(str(target), record, format="exif") == str(target)
    with Image.open(target) as picture:
        assert picture.info["parameters"].startswith(record["generation"]["prompt"][:20])
    with pytest.raises(ValueError, match="json, txt or exif"):
        downloader.save_metadata_file(str(target), record, format="xml")


def test_hidden_meta_takes_the_generation_data_the_file_itself_carries(make_downloader, tmp_path):
    # Image 12005567 hides its meta on Civitai, but the uploaded PNG still holds WebUI's
    # "parameters": the JSON record must carry that generation data instead of null.
    from PIL import Image

    from scripts.civitai_manager_libs.metadata.infotext import parse_infotext

    downloader = make_downloader(metadata_formats="json")
    task_id = downloader.download_single_image(12005567)
    assert downloader.wait(timeout=30)
    task = downloader.get_task(task_id)
    assert task.status == "completed", task.error
    assert task.image_path.endswith(".png")
    with Image.open(task.image_path) as image:
        own = parse_infotext(image.info["parameters"])
    with open(task.metadata_path, encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["generation"] is not None
    assert record["generation"]["prompt"] == own["prompt"]


def test_images_sharing_a_template_name_each_get_their_own_file(make_downloader, tmp_path):
    # "{model_id}" gives every image of a model the same name: each image still gets its own
    # file ("4201 (n)"), in one run and across runs, and none is "adopted" as another's file.
    output = tmp_path / "same"
    first = make_downloader(output=output, template="{model_id}", metadata_formats="json")
    first.download_model_images(4201, limit=6, nsfw_levels=list(NSFW_LEVELS))
    assert first.wait(timeout=60)
    assert first.summary().completed == 6 and first.summary().skipped == 0
    second = make_downloader(output=output, template="{model_id}", metadata_formats="json")
    second.download_model_images(4201, limit=12, nsfw_levels=list(NSFW_LEVELS))
    assert second.wait(timeout=60)
    summary = second.summary()
    assert (summary.completed, summary.skipped, summary.failed) == (6, 6, 0)
    files = media_files(output)
    assert len(files) == 12
    records = {}
    for path in files:
        with open(os.path.splitext(path)[0] + ".json", encoding="utf-8") as handle:
            records[path] = json.load(handle)["id"]
    assert len(set(records.values())) == 12  # twelve different images, one file each


def test_an_adopted_file_gets_the_generation_data_it_lacks(make_downloader, tmp_path):
    # A run killed (or stopped by a full disk) after saving images but before writing their
    # metadata leaves bare files; the next run adopts them and completes json and exif.
    from scripts.civitai_manager_libs.metadata.embed import read_infotext

    output = tmp_path / "out"
    first = make_downloader(output=output, metadata_formats="json")
    first.download_model_images(4201, limit=8, nsfw_levels=list(NSFW_LEVELS))
    assert first.wait(timeout=60)
    first.close()
    os.remove(os.path.join(output, ARCHIVE_NAME))
    bare = media_files(output)
    for path in bare:
        os.remove(os.path.splitext(path)[0] + ".json")
    second = make_downloader(output=output, metadata_formats="json,exif")
    second.download_model_images(4201, limit=8, nsfw_levels=list(NSFW_LEVELS))
    assert second.wait(timeout=60)
    assert second.summary().skipped == 8  # adopted, not downloaded again
    embedded = 0
    for path in bare:
        with open(os.path.splitext(path)[0] + ".json", encoding="utf-8") as handle:
            record = json.load(handle)
        if record["generation"] is not None and not path.endswith(".mp4"):
            assert read_infotext(path) is not None, path
            embedded += 1
    assert embedded > 0

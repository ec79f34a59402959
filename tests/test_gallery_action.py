"""The backlog item's tests for civitai_gallery_action, against the local Civitai and real files:
normal download, network error, write error, repeat; small/large batches and partial failure;
normal stream, cut stream and cleanup of the partial file; retries, prefetching; and the tab's
job runner (one job at a time, summaries, errors as toasts)."""

from __future__ import annotations

import logging
import json
import os
import re
import threading
import time
import tracemalloc

import gradio as gr
import pytest

from scripts.civitai_manager_libs import civitai_gallery_action as action
from scripts.civitai_manager_libs import http_client, setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI, sized_url
from scripts.civitai_manager_libs.ui.downloads import THUMBNAIL_WIDTH
from scripts.civitai_manager_libs.ui.jobs import GalleryJobs, JobBusyError
from scripts.civitai_manager_libs.civitai.query import Target

MODEL_ID = 4201
VERSION_ID = 43888


@pytest.fixture
def env(local_settings):
    """Settings pointed at the fake Civitai and fresh folders; fast retries."""
    return local_settings(
        {"http_backoff_factor": 0, "http_max_retries": 1, "gallery_max_concurrent_downloads": 3}
    )


def image_urls(fake, n, version_id=VERSION_ID):
    """``n`` listed image URLs and their ids, as the gallery gets them."""
    page = CivitaiAPI(client=http_client.get_http_client()).get_image_page(
        {"modelVersionId": version_id}, limit=n, nsfw_levels=["None", "Soft", "Mature", "X"]
    )
    assert len(page.items) >= n
    return [(item.id, item.url) for item in page.items[:n]]


def cache_file(url):
    return setting.get_image_url_to_gallery_file(url)


def leftovers(folder):
    return [f for f in os.listdir(folder) if f.endswith(".part")] if os.path.isdir(folder) else []


# -- download_images -------------------------------------------------------------------------------


def test_download_images_writes_each_image_into_the_gallery_cache(env):
    items = image_urls(env, 6)
    result = action.download_images([url for _, url in items])
    assert (result.downloaded, result.skipped, result.failed) == (6, 0, 0)
    for image_id, url in items:
        with open(cache_file(url), "rb") as handle:
            assert handle.read(3) == b"\xff\xd8\xff"  # width=N renditions are JPEGs
    assert len(env.image_requests()) == 6
    assert leftovers(setting.get("gallery_cache_path")) == []
    assert action.get_http_client() is http_client.get_http_client()  # the shared client


def test_download_images_content_matches_what_the_server_sent(env):
    ((image_id, url),) = image_urls(env, 1)
    thumb = sized_url(url, THUMBNAIL_WIDTH)
    assert action.download_images([thumb]).downloaded == 1
    with open(cache_file(thumb), "rb") as handle:
        assert handle.read() == env.dataset.sized_bytes(image_id, THUMBNAIL_WIDTH)


def test_repeat_download_skips_existing_files_without_requests(env):
    urls = [url for _, url in image_urls(env, 4)]
    action.download_images(urls)
    env.reset()
    result = action.download_images(urls + urls[:2])  # duplicates in the list count once
    assert (result.total, result.skipped, result.downloaded) == (4, 4, 0)
    assert env.image_requests() == []


def test_network_error_is_counted_logged_and_never_raised(env, caplog):
    items = image_urls(env, 5)
    broken = items[1][0]
    env.faults.not_found(f"*/{broken}.*")
    with caplog.at_level(logging.WARNING):
        result = action.download_images([url for _, url in items])
    assert (result.downloaded, result.failed) == (4, 1)
    assert result.failed_urls == [items[1][1]]
    assert not os.path.exists(cache_file(items[1][1]))
    assert "some images failed to download (1), check your network connection" in caplog.text
    assert leftovers(setting.get("gallery_cache_path")) == []


def test_unreachable_server_fails_every_image_cleanly(env, tmp_path):
    items = image_urls(env, 3)
    env.stop()
    result = action.download_images([url for _, url in items])
    assert (result.downloaded, result.failed) == (0, 3)
    assert not any(os.path.exists(cache_file(url)) for _, url in items)


def test_write_error_is_a_counted_failure(env, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    setting.set("gallery_cache_path", str(blocker / "cache"))
    result = action.download_images([url for _, url in image_urls(env, 2)])
    assert (result.downloaded, result.failed) == (0, 2)
    assert blocker.read_text() == "a file where the cache folder should be"


def test_empty_list_does_nothing(env):
    assert action.download_images([]).total == 0
    assert action.download_images_batch([]).total == 0
    assert env.image_requests() == []


# -- progress and batches --------------------------------------------------------------------------


def test_progress_callback_counts_up_to_the_total(env):
    urls = [url for _, url in image_urls(env, 7)]
    action.download_images([urls[0]])  # one already cached: still reported
    calls = []
    result = action.download_images_with_progress(urls, lambda *args: calls.append(args))
    assert [c[0] for c in calls] == list(range(1, 8))
    assert {c[1] for c in calls} == {7}
    assert calls[-1][2] == "Downloading image 7/7"
    assert (result.skipped, result.downloaded) == (1, 6)


@pytest.mark.parametrize("count, batch_size", [(3, 5), (24, 5)])
def test_batches_respect_the_concurrency_setting(env, count, batch_size):
    setting.set("gallery_max_concurrent_downloads", 2)
    env.latency = 0.05  # long enough for requests to overlap
    urls = [url for _, url in image_urls(env, count)]
    result = action.download_images_batch(urls, batch_size=batch_size)
    assert (result.downloaded, result.failed) == (count, 0)
    assert all(os.path.isfile(cache_file(u)) for u in urls)
    assert 1 <= env.max_concurrent_image_requests <= 2
    if count > 2:
        assert env.max_concurrent_image_requests == 2  # and it really ran in parallel


def test_batch_partial_failure(env):
    items = image_urls(env, 12)
    for image_id, _ in items[::4]:
        env.faults.not_found(f"*/{image_id}.*")
    result = action.download_images_batch([url for _, url in items], batch_size=5)
    assert (result.downloaded, result.failed) == (9, 3)
    assert sorted(result.failed_urls) == sorted(url for _, url in items[::4])


def test_batch_size_must_be_positive(env):
    with pytest.raises(ValueError):
        action.download_images_batch(["http://127.0.0.1:9/x.jpeg"], batch_size=0)


# -- streaming ------------------------------------------------------------------------------------


def test_download_large_image_streams_the_whole_body(env, tmp_path):
    ((image_id, url),) = image_urls(env, 1)
    target = tmp_path / "out" / "large.png"
    from scripts.civitai_manager_libs.civitai.api import original_url

    assert action.download_large_image(original_url(url), str(target), chunk_size=4096)
    assert target.read_bytes() == env.dataset.original_bytes(image_id)
    assert not (tmp_path / "out" / "large.png.part").exists()


def test_download_large_image_memory_stays_flat(env, tmp_path):
    size = 24 * 1024 * 1024
    url = env.blob_url(size, kind="mp4")
    target = tmp_path / "big.mp4"
    tracemalloc.start()
    try:
        assert action.download_large_image(url, str(target), chunk_size=64 * 1024)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert target.stat().st_size == size
    assert peak < 4 * 1024 * 1024, f"peak traced memory {peak} bytes for a {size}-byte stream"


def test_cut_stream_removes_the_partial_file(env, tmp_path):
    ((image_id, url),) = image_urls(env, 1)
    env.faults.cut_after(f"*/{image_id}.*", 500)
    target = tmp_path / "cut.jpeg"
    assert action.download_large_image(url, str(target)) is False
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_stream_write_error_cleans_up(env, tmp_path):
    ((_, url),) = image_urls(env, 1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert action.download_large_image(url, str(blocker / "image.jpeg")) is False
    assert blocker.read_text() == "x"


def test_stream_http_error_returns_false(env, tmp_path):
    ((image_id, url),) = image_urls(env, 1)
    env.faults.not_found(f"*/{image_id}.*")
    assert action.download_large_image(url, str(tmp_path / "x.jpeg")) is False
    assert list(tmp_path.iterdir()) == []


# -- retries --------------------------------------------------------------------------------------


def test_download_with_retry_recovers_from_a_transient_error(env, tmp_path):
    ((image_id, url),) = image_urls(env, 1)
    env.faults.queue_status(f"*/{image_id}.*", 404, count=1)
    manager = action.GalleryDownloadManager(retry_delay=0)
    target = tmp_path / "img.jpeg"
    assert manager.download_with_retry(url, str(target), max_retries=2)
    assert target.stat().st_size > 0 and manager.failed_downloads == []
    statuses = [r.status for r in env.image_requests()]
    assert statuses == [404, 200]


def test_final_failure_is_remembered_and_retry_failed_downloads_completes_it(env, tmp_path):
    items = image_urls(env, 2)
    env.faults.not_found(f"*/{items[0][0]}.*")
    manager = action.GalleryDownloadManager(retry_delay=0)
    paths = [str(tmp_path / f"{image_id}.jpeg") for image_id, _ in items]
    assert manager.download_with_retry(items[0][1], paths[0], max_retries=1) is False
    assert manager.download_with_retry(items[1][1], paths[1], max_retries=1) is True
    assert manager.failed_downloads == [(items[0][1], paths[0])]
    assert len(env.image_requests()) == 3  # two tries for the broken one, one for the other

    still = manager.retry_failed_downloads()  # server still broken: stays listed
    assert (still.downloaded, still.failed) == (0, 1)
    assert manager.failed_downloads == [(items[0][1], paths[0])]

    env.faults.clear()
    retried = manager.retry_failed_downloads()
    assert (retried.downloaded, retried.failed) == (1, 0)
    assert manager.failed_downloads == [] and os.path.getsize(paths[0]) > 0


# -- prefetching ----------------------------------------------------------------------------------


def test_pre_loading_fetches_the_next_pages_thumbnails(env):
    setting.set("gallery_page_size", 10)
    api = CivitaiAPI(client=http_client.get_http_client())
    params = {"modelId": MODEL_ID, "sort": "Newest"}
    first = api.get_image_page(params, limit=10, nsfw_levels=["None", "Soft"])
    assert first.next_cursor
    page = action.pre_loading(
        "/api/v1/images?modelId=4201&sort=Newest",
        {"next_cursor": first.next_cursor, "nsfw_levels": ["None", "Soft"]},
    )
    expected = api.get_image_page(
        params, cursor=first.next_cursor, limit=10, nsfw_levels=["None", "Soft"]
    )
    assert [i.id for i in page.items] == [i.id for i in expected.items]
    for item in page.items:
        assert os.path.isfile(cache_file(sized_url(item.url, THUMBNAIL_WIDTH)))
    assert not any(
        os.path.exists(cache_file(sized_url(i.url, THUMBNAIL_WIDTH))) for i in first.items
    )


def test_pre_loading_on_the_last_page_does_nothing(env):
    assert action.pre_loading("/api/v1/images?modelId=4201", {"nextCursor": None}) is None
    assert env.api_requests() == [] and env.image_requests() == []


# -- the tab's handlers and job runner ------------------------------------------------------------


def test_load_gallery_pages_forward_and_back(env):
    setting.set("gallery_page_size", 8)
    out = action.load_gallery(
        str(MODEL_ID), ["None", "Soft"], "Newest", "AllTime", action.GalleryView()
    )
    view, value, label = out[0], out[1], out[2]
    assert len(value) == len(view.items) == 8 and "page 1" in label
    assert all(os.path.isfile(path) for path, _caption in value)
    assert out[8]["visible"] is True and any("[43888]" in c for c in out[8]["choices"])
    second = action.next_page(view)[0]
    assert second.page_number == 2 and {i.id for i in second.items}.isdisjoint(
        i.id for i in view.items
    )
    back = action.prev_page(second)[0]
    assert [i.id for i in back.items] == [i.id for i in view.items]
    chosen, preview, info, record = action.select_image(
        back, gr.SelectData(None, {"index": 1, "value": None})
    )
    assert chosen.selected == 1 and record["id"] == back.items[1].id
    assert os.path.isfile(preview) and "original=true" not in preview
    assert record["model_name"] == "DreamShaper"  # filled from the loaded model
    assert record["version_name"] in {name for _id, name in view.versions}
    # Gradio keeps the highlight on position 1 when the page changes: the data follows it.
    out = action.next_page(chosen)
    assert out[0].selected == 1 and out[7]["id"] == out[0].items[1].id and out[6]
    assert os.path.isfile(out[5])


def test_invalid_query_keeps_the_page_says_why_and_writes_nothing(env, caplog):
    status = action.download_all("https://civitai.com/models/abc", ["None"], action.GalleryView())
    assert status.startswith("Nothing downloaded: ") and "model" in status.lower()
    view = action.GalleryView(query="x")
    out = action.load_gallery("999999", ["None"], "Newest", "AllTime", view)
    assert out[0] is view and all(o == gr.update() for o in out[1:])  # nothing changes
    caplog.clear()
    with caplog.at_level("DEBUG", logger="scripts.civitai_manager_libs.ui.feedback"):
        action.load_gallery(str(MODEL_ID), [], "Newest", "AllTime", view)
    infos = [r for r in caplog.records if r.levelname == "INFO"]
    assert len(infos) == 1 and "NSFW" in infos[0].getMessage() and infos[0].exc_info is None
    assert any(r.levelname == "DEBUG" and r.exc_info for r in caplog.records)
    status = action.download_all("999999999", ["None"], action.GalleryView())
    assert (
        status == "Nothing downloaded: model 999999999 was not found on Civitai; check the id "
        "(it may also be hidden or removed)."
    )
    assert env.image_requests() == []
    assert not os.path.exists(setting.get("images.output_path"))


def test_job_runner_refuses_a_second_job_and_reports_counts(env):
    jobs = GalleryJobs()
    env.latency = 0.05
    started = threading.Event()
    outcomes = []

    def progress(done, total, desc):
        started.set()

    worker = threading.Thread(
        target=lambda: outcomes.append(
            jobs.download(Target("version", VERSION_ID), ["None"], progress)
        )
    )
    worker.start()
    assert started.wait(10)
    with pytest.raises(JobBusyError):
        jobs.download(Target("version", VERSION_ID), ["None"])
    worker.join(60)
    outcome = outcomes[0]
    s = outcome.summary
    assert s.completed == outcome.total > 0 and s.failed == 0
    saved = [f for _r, _d, files in os.walk(s.output_path) for f in files if f.endswith(".json")]
    assert len(saved) >= outcome.total  # a metadata sidecar per image
    assert "downloaded" in action.summary_text(outcome)
    rows = jobs.recent_tasks(5)  # one row per job (issue 24), not one per image
    assert len(rows) == 1 and rows[0][2:] == [str(outcome.total), f"done {outcome.total}", ""]
    assert rows[0][1] == f"version {VERSION_ID}" and re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[0][0]
    )


def test_retry_with_nothing_failed_says_so(env):
    status = action.retry_failed(progress=None)
    assert status == "Nothing to retry: no download has failed."
    assert env.image_requests() == []


def test_concurrent_callers_share_one_fetch_per_file(env):
    """The prefetch and a page load may want the same thumbnails at once: one request per file,
    and both callers see success (no writer trips over the other's .part file)."""
    env.latency = 0.05
    urls = [url for _, url in image_urls(env, 8)]
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(action.download_images(urls)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 3 and all(r.failed == 0 for r in results)
    assert sum(r.downloaded + r.skipped for r in results) == 24
    paths = [r.path for r in env.image_requests()]
    assert sorted(paths) == sorted(set(paths)) and len(paths) == 8


def test_cancel_while_listing_stops_the_listing(env):
    from scripts.civitai_manager_libs.image_downloader import ImageDownloader

    def small_pages():
        downloader = ImageDownloader(output_path=setting.get("images.output_path"))
        downloader.page_size = 10  # the model's 172 images take 18 listing requests
        return downloader

    jobs = GalleryJobs(downloader_factory=small_pages)
    env.faults.delay("/api/v1/images", 0.5)  # every listing page is slow
    phases = []
    outcomes = []

    def progress(done, total, desc):
        phases.append(desc)

    worker = threading.Thread(
        target=lambda: outcomes.append(jobs.download(Target("model", MODEL_ID), ["None"], progress))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not any(r.path == "/api/v1/images" for r in env.api_requests()):
        assert time.monotonic() < deadline, "the listing never started"
        time.sleep(0.02)
    jobs.cancel()
    worker.join(30)
    assert not worker.is_alive()
    outcome = outcomes[0]
    assert outcome.cancelled
    assert len([r for r in env.api_requests() if r.path == "/api/v1/images"]) <= 2
    assert outcome.total <= 20  # at most the pages listed before the cancel
    assert "cancelled" in action.summary_text(outcome).lower()


def test_cancel_with_nothing_running_only_says_so(env):
    assert action.cancel_message() == "No download is running."


def test_summary_of_a_job_cancelled_while_listing():
    from scripts.civitai_manager_libs.ui.jobs import JobOutcome

    text = action.summary_text(JobOutcome(task_ids=[], cancelled=True))
    assert text == "Cancelled while listing the images: nothing was downloaded."


def _saved_levels(output_path):
    """The NSFW level of every image saved under ``output_path`` (from its JSON sidecar)."""
    levels = set()
    for folder, _dirs, files in os.walk(output_path):
        for name in files:
            if name.endswith(".json"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    levels.add(json.load(handle)["nsfw_level"])
    return levels


def test_a_filter_download_keeps_exactly_the_chosen_nsfw_levels(env):
    # One level ("Mature") must not widen into Civitai's mask for it (which also lets X through).
    jobs = GalleryJobs()
    target = Target("filter", "modelId=4201", params={"modelId": MODEL_ID})
    outcome = jobs.download(target, ["Mature"])
    s = outcome.summary
    assert s.completed > 0 and s.failed == 0
    assert _saved_levels(s.output_path) == {"Mature"}


def test_the_chosen_nsfw_levels_win_over_an_nsfw_key_in_the_filter(env):
    """The gallery pages a filter with the levels ticked, whatever ``nsfw=`` its link carries;
    Download all saves those same images (the CLI's --nsfw wins the same way)."""
    jobs = GalleryJobs()
    target = Target("filter", "modelId=4201&nsfw=X", params={"modelId": MODEL_ID, "nsfw": "X"})
    outcome = jobs.download(target, ["None"])
    s = outcome.summary
    assert s.completed > 0 and s.failed == 0
    assert _saved_levels(s.output_path) == {"None"}


def test_the_page_says_which_order_civitai_gives_for_all_versions(env):
    # Issue 11 item 9: on a whole-model listing Civitai ignores the reaction sorts.
    out = action.load_gallery(
        str(MODEL_ID), ["None", "Soft"], "Most Reactions", "AllTime", action.GalleryView()
    )
    assert "newest first" in out[2] and "Most Reactions" in out[2]
    ids = [i.id for i in out[0].items]
    assert ids == sorted(ids, reverse=True)
    newest = action.load_gallery(
        str(MODEL_ID), ["None", "Soft"], "Newest", "AllTime", action.GalleryView()
    )
    assert "newest first" not in newest[2]


def test_download_all_lists_beside_the_look_up_and_asks_nothing_twice(env):
    """The tab's Download all asks the first page beside the target check (each waits 0.3 s on
    the server). A second Download all (the archive open, no checkpoint left, the look-up
    remembered) asks that page once too."""
    jobs = GalleryJobs()
    env.latency = 0.3
    outcome = jobs.download(Target("version", VERSION_ID), ["None"])
    assert outcome.summary.failed == 0 and outcome.summary.completed > 0
    api = env.api_requests()
    look_up = next(r for r in api if r.path == f"/api/v1/model-versions/{VERSION_ID}")
    first_page = next(r for r in api if r.path == "/api/v1/images")
    assert first_page.time < look_up.end_time, "the listing waited for the look-up"
    _asked_once(env)
    env.reset()
    env.latency = 0.3
    assert jobs.download(Target("version", VERSION_ID), ["None"]).summary.failed == 0
    _asked_once(env)


def _asked_once(fake):
    """Every API request of the job differs from the others; one images page was asked."""
    asked = [(r.path, r.raw_query) for r in fake.api_requests()]
    assert sorted({a for a in asked if asked.count(a) > 1}) == []
    assert [p for p, _ in asked].count("/api/v1/images") == 1

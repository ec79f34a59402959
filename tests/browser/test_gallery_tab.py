"""The Civitai Gallery tab in a real headless Chromium, against the local Civitai.

Each scenario saves a screenshot under tests/artifacts/. Selectors are the ones that work on
Gradio 3.41 to 6.x (see ../shared/gradio-and-webui-notes.md); toasts are closed before clicking.
"""

from __future__ import annotations

import json
import os
import re
import time

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI, sized_url
from scripts.civitai_manager_libs.ui.actions import image_details
from scripts.civitai_manager_libs.ui.download_job import jobs
from scripts.civitai_manager_libs.ui.downloads import THUMBNAIL_WIDTH
from scripts.civitai_manager_libs.http_client import get_http_client

MODEL_ID = 4201  # DreamShaper in the default fake dataset
VERSION_ID = 43888  # its version "6.31"
MEDIA = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")
THUMBS = "#civitai_gallery_gallery .thumbnail-item img"
TOAST = '[data-testid="toast-body"]'


def wait_until(predicate, timeout=30.0, interval=0.1, what="condition", page=None):
    """Poll ``predicate``. With ``page``, wait through Playwright so its event loop keeps running:
    the route handler that lets the browser's requests through runs only then (a bare sleep
    would hold every request of the page, e.g. the click's /queue/join, until it returns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if page is not None:
            page.wait_for_timeout(interval * 1000)
        else:
            time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# -- page helpers ---------------------------------------------------------------------------------


def text_field(page, elem_id):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def close_toasts(page):
    for button in page.locator('[data-testid="toast-close"]').all():
        if button.is_visible():
            button.click()
    page.wait_for_function(
        "() => !Array.from(document.querySelectorAll('[data-testid=\"toast-body\"]'))"
        ".some(e => e.offsetParent !== null)",
        timeout=10_000,
    )


def click(page, elem_id):
    close_toasts(page)
    page.locator(f"#{elem_id}").click()


def load(page, query):
    text_field(page, "civitai_gallery_query").fill(query)
    click(page, "civitai_gallery_load")
    page.wait_for_selector(THUMBS)
    page.wait_for_function(
        "() => !document.querySelector('#civitai_gallery_page')"
        "?.innerText.includes('Enter a model')"
    )


def metadata_text(page):
    """The "Full metadata" box's text (the box is closed by default: opened first)."""
    box = page.locator("#civitai_gallery_metadata")
    if not box.count() or not box.first.is_visible():
        page.locator("#civitai_gallery_metadata_box").get_by_text("Full metadata").first.click()
    box.first.wait_for(state="visible")
    return box.first.inner_text()


def toast(page, kind):
    """Wait for a toast of ``kind`` ("Error" / "Warning") and return its text."""
    body = page.locator(TOAST).filter(has_text=re.compile(kind, re.IGNORECASE)).first
    body.wait_for(state="visible")
    return body.inner_text()


def status(page):
    return text_field(page, "civitai_gallery_status").input_value()


def wait_status(page, pattern, timeout=60):
    regex = re.compile(pattern)
    return wait_until(
        lambda: regex.search(status(page)) and status(page),
        timeout=timeout,
        page=page,
        what=f"status matching {pattern!r} (last: {status(page)!r})",
    )


def saved_images(folder):
    found = []
    for root, _dirs, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.lower().endswith(MEDIA)]
    return sorted(found)


def first_page(params, nsfw=("None", "Soft")):
    api = CivitaiAPI(client=get_http_client())
    return api.get_image_page(
        params, limit=int(setting.get("gallery_page_size")), nsfw_levels=list(nsfw)
    )


def downloaded_count(text):
    match = re.search(r"downloaded (\d+), skipped (\d+), failed (\d+) of (\d+) images", text)
    assert match, f"no summary in the status: {text!r}"
    return tuple(int(g) for g in match.groups())


# -- scenarios ------------------------------------------------------------------------------------


def test_load_model_and_open_an_image_shows_its_prompt(gallery, fake, shot):
    page = gallery
    load(page, str(MODEL_ID))
    listing = first_page({"modelId": MODEL_ID, "sort": "Newest", "period": "AllTime"})
    assert page.locator(THUMBS).count() == len(listing.items)
    assert page.locator("#civitai_gallery_version").is_visible()
    index, item = next(
        (i, it) for i, it in enumerate(listing.items) if it.meta and it.meta.get("prompt")
    )
    page.locator(THUMBS).nth(index).click()
    prompt_line = item.meta["prompt"].splitlines()[0].strip()
    wait_until(
        lambda: prompt_line in text_field(page, "civitai_gallery_info").input_value(),
        what="the selected image's prompt in the info box",
        page=page,
    )
    info = text_field(page, "civitai_gallery_info").input_value()
    assert info == image_details(item)[0]
    assert "Steps: " in info
    assert str(item.id) in metadata_text(page)
    # The thumbnails came from the gallery cache, fetched at most 3 at a time.
    cached = os.listdir(setting.get("gallery_cache_path"))
    assert len(cached) >= len(listing.items)
    assert fake.max_concurrent_image_requests <= setting.get("gallery_max_concurrent_downloads")
    page.wait_for_function("() => window.civitaiGallery && window.civitaiGallery.ready")  # JS ran
    shot(page, "image-info")
    # javascript/civitai_gallery.js: the right arrow key pages forward (Next).
    page.locator("#civitai_gallery_page").first.click()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('#civitai_gallery_page').innerText.includes('page 2')"
    )


def test_download_all_shows_progress_then_summary_and_files_with_metadata(
    gallery, fake, output_dir, shot
):
    page = gallery
    load(page, f"https://civitai.com/models/{MODEL_ID}?modelVersionId={VERSION_ID}")
    fake.latency = 0.3  # long enough to watch the progress bar
    click(page, "civitai_gallery_download_all")
    # The n / total bar of gr.Progress (class names shared by Gradio 3.41 to 6.x).
    page.wait_for_selector("#civitai_gallery_status .progress-level, .progress-level-inner")
    page.wait_for_function(  # past listing: the bar counts images ("Downloading n/total")
        "() => document.querySelector('#civitai_gallery_status').innerText"
        ".includes('Downloading')"
    )
    shot(page, "progress")
    text = wait_status(page, r"downloaded \d+")
    downloaded, skipped, failed, total = downloaded_count(text)
    assert failed == 0 and skipped == 0 and downloaded == total > 0
    assert str(output_dir) in text
    images = saved_images(output_dir)
    assert len(images) == total
    for path in images:
        sidecar = os.path.splitext(path)[0] + ".json"
        with open(sidecar, encoding="utf-8") as handle:
            record = json.load(handle)
        assert str(record["id"]) == os.path.splitext(os.path.basename(path))[0]
        assert record["version_id"] == VERSION_ID
    assert page.locator(TOAST).filter(has_text=re.compile("Error|Warning")).count() == 0
    shot(page, "summary")
    table = page.locator("#civitai_gallery_tasks")
    page.wait_for_function(  # one row for the job, with its count
        "() => document.querySelector('#civitai_gallery_tasks').innerText.includes('done')"
    )
    assert f"done {len(images)}" in table.inner_text()


def test_failures_show_a_warning_and_retry_failed_completes_them(gallery, fake, output_dir, shot):
    page = gallery
    load(page, f"version {VERSION_ID}")
    listing = first_page({"modelVersionId": VERSION_ID})
    broken = [item.id for item in listing.items[:3]]
    for image_id in broken:
        fake.faults.not_found(f"*/{image_id}.*")
    click(page, "civitai_gallery_download_all")
    warning = toast(page, "Warning")
    assert "3 of" in warning and "Retry failed" in warning
    text = wait_status(page, r"failed 3 of")
    downloaded, _skipped, failed, total = downloaded_count(text)
    assert failed == 3 and downloaded == total - 3
    assert len(saved_images(output_dir)) == total - 3
    shot(page, "warning")
    fake.faults.clear()
    click(page, "civitai_gallery_retry_failed")
    text = wait_status(page, r"downloaded 3, skipped 0, failed 0 of 3 images")
    names = {os.path.splitext(os.path.basename(p))[0] for p in saved_images(output_dir)}
    assert {str(i) for i in broken} <= names
    assert len(names) == total
    shot(page, "retried")


def test_invalid_input_shows_a_toast_and_writes_nothing(gallery, fake, output_dir, shot):
    page = gallery
    text_field(page, "civitai_gallery_query").fill("https://civitai.com/models/not-a-number")
    click(page, "civitai_gallery_download_all")
    message = toast(page, "Warning")
    assert "model" in message.lower() or "enter" in message.lower()
    shot(page, "error")
    text_field(page, "civitai_gallery_query").fill("999999")
    click(page, "civitai_gallery_load")
    assert "not found" in toast(page, "not found").lower()
    assert not output_dir.exists() or saved_images(output_dir) == []
    assert fake.image_requests() == []


def test_second_click_does_not_start_a_duplicate_job(gallery, fake, output_dir, shot, second_tab):
    page = gallery
    load(page, f"version {VERSION_ID}")
    # The second tab is ready before the job starts (its page load reads the task history and
    # the save options), so only its click happens during the job (opening a tab on a loaded
    # machine can take longer than the whole download).
    other = second_tab()
    text_field(other, "civitai_gallery_query").fill(f"version {VERSION_ID}")
    fake.latency = 0.5
    click(page, "civitai_gallery_download_all")
    wait_until(lambda: jobs.running, timeout=10, what="the download to start", page=page)
    # Same page: Gradio 3.x ignores the click while the event is pending; 4.x+ sends it and the
    # job lock answers. Another browser tab always reaches the lock.
    page.locator("#civitai_gallery_download_all").click()
    click(other, "civitai_gallery_download_all")
    assert "already running" in toast(other, "Warning")
    shot(other, "busy")
    text = wait_status(page, r"downloaded \d+", timeout=90)
    downloaded, _skipped, failed, total = downloaded_count(text)
    assert failed == 0 and downloaded == total
    assert jobs.running is False
    ids = [r.path.rsplit("/", 1)[-1] for r in fake.image_requests() if "original=true" in r.path]
    assert len(ids) == len(set(ids)) == total  # every image fetched exactly once


def test_cancel_stops_the_running_download(gallery, fake, output_dir, shot):
    page = gallery
    load(page, str(MODEL_ID))
    fake.latency = 0.4
    click(page, "civitai_gallery_download_all")
    wait_until(lambda: jobs.running, timeout=10, what="the download to start", page=page)
    page.wait_for_function(  # let it list and start downloading, then cancel
        "() => document.querySelector('#civitai_gallery_status').innerText"
        ".includes('Downloading')"
    )
    click(page, "civitai_gallery_cancel")
    text = wait_status(page, r"cancelled \d+", timeout=60)
    downloaded, _skipped, _failed, total = downloaded_count(text)
    assert downloaded < total
    assert len(saved_images(output_dir)) == downloaded
    assert jobs.running is False
    shot(page, "cancelled")


def test_thumbnails_that_fail_show_the_network_warning(gallery, fake, shot):
    page = gallery
    listing = first_page({"modelVersionId": VERSION_ID})
    for item in listing.items[:2]:  # not cached by an earlier test, and now failing
        cached = setting.get_image_url_to_gallery_file(sized_url(item.url, THUMBNAIL_WIDTH))
        if os.path.exists(cached):
            os.remove(cached)
        fake.faults.not_found(f"*/width={THUMBNAIL_WIDTH}/{item.id}.*")
    load(page, f"version {VERSION_ID}")
    warning = toast(page, "Warning")
    assert "2 images of this page could not be downloaded; check your network connection" in warning
    assert page.locator(THUMBS).count() == len(listing.items) - 2
    shot(page, "thumbnail-warning")

"""What a newcomer meets on the tab (issue 12, items 1-7), in a real Chromium on every Gradio line:
no red "Error" badges after a mistake, the CLI's words for a missing model, the save options,
the task history on page load, one progress display with bytes, a large preview that follows the
page, and the small things (layout at 1400 px, readable tasks, long URLs, "1 image").

Screenshots (tests/artifacts/gradio-<version>/): ``...-before-bad-query``, ``...-after-bad-query``,
``...-during-download``, ``...-selected-image``.
"""

from __future__ import annotations

import json
import os
import re

from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from test_gallery_tab import (
    MODEL_ID,
    THUMBS,
    TOAST,
    VERSION_ID,
    click,
    close_toasts,
    first_page,
    load,
    metadata_text,
    saved_images,
    status,
    text_field,
    toast,
    wait_status,
    wait_until,
)

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.query import Target
from scripts.civitai_manager_libs.ui.download_job import jobs

# Visible "Error" badges of Gradio's status trackers (3.41 to 6.x), inside the tab.
ERROR_BADGES_JS = """() => Array.from(document.querySelectorAll('#civitai_gallery_root *'))
    .filter(e => e.children.length === 0 && (e.textContent || '').trim() === 'Error'
                 && e.offsetParent !== null)
    .map(e => (e.closest('[id]') || e).id)"""


def error_badges(page):
    return page.evaluate(ERROR_BADGES_JS)


def header(page):
    return page.locator("#civitai_gallery_page").first.inner_text()


def value_of(page, elem_id):
    return text_field(page, elem_id).input_value()


def submit_refused(page, elem_id, value, attempts=3):
    """Type ``value`` into a save option and press Enter until its warning toast shows; the toast's
    text. The reply to the previous save of the box can arrive after the typing and put the value
    in force back (nothing is refused then): a loaded machine made the test flaky that way."""
    warning = page.locator(TOAST).filter(has_text=re.compile("Warning", re.IGNORECASE)).first
    for _attempt in range(attempts):
        text_field(page, elem_id).fill(value)
        # Enter (submit), then Tab (blur): the box saves on either, so a reply that put the old
        # value back between the typing and one event still leaves the other to refuse it
        for key in ("Enter", "Tab"):
            if key == "Tab":
                text_field(page, elem_id).fill(value)
            text_field(page, elem_id).press(key)
            try:
                warning.wait_for(state="visible", timeout=10_000)
            except PlaywrightTimeoutError:
                continue
            return warning.inner_text()
    raise AssertionError(f"no warning toast after {attempts} tries of {value!r} in #{elem_id}")


def test_a_bad_query_keeps_the_results_shows_one_toast_and_no_error_badge(
    gallery, fake, output_dir, shot, capfd
):
    page = gallery
    load(page, str(MODEL_ID))
    before = header(page)
    count = page.locator(THUMBS).count()
    assert "DreamShaper (model 4201): page 1" in before
    shot(page, "before-bad-query")
    for query, words in (
        ("abc!!", "Could not understand"),
        ("999999999", "model 999999999 was not found"),
        ("https://civitai.com/articles/5", "Could not understand"),
        ("https://example.com/models/4201", "not Civitai"),
    ):
        text_field(page, "civitai_gallery_query").fill(query)
        click(page, "civitai_gallery_load")
        assert words in toast(page, "Warning")
        assert page.locator(TOAST).count() == 1  # one toast per failed action
        assert error_badges(page) == []
        assert header(page) == before and page.locator(THUMBS).count() == count
    shot(page, "after-bad-query")
    # Download with an empty query: the status says why, no badge on Status or Recent tasks.
    text_field(page, "civitai_gallery_query").fill("")
    click(page, "civitai_gallery_download_all")
    assert "Nothing to look up" in toast(page, "Warning")
    wait_status(page, r"^Nothing downloaded: Nothing to look up")
    assert error_badges(page) == []
    load(page, f"version {VERSION_ID}")
    assert error_badges(page) == []
    assert not os.path.exists(output_dir)
    # The server console: one line per user error, no traceback (that is at DEBUG).
    assert "Traceback" not in capfd.readouterr().err


def test_download_all_on_a_missing_model_says_what_the_cli_says(gallery, fake, output_dir):
    from scripts.civitai_manager_libs.cli import command as cli

    page = gallery
    text_field(page, "civitai_gallery_query").fill("999999999")
    click(page, "civitai_gallery_download_all")
    words = "model 999999999 was not found on Civitai; check the id"
    assert words in toast(page, "Warning")
    assert words in wait_status(page, "Nothing downloaded")
    assert error_badges(page) == []
    assert fake.image_requests() == [] and not os.path.exists(output_dir)
    # the same sentence as `python main.py download model 999999999` (exit 2)
    api_url = fake.base_url
    import io
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(
            ["download", "model", "999999999", "--base-url", api_url, "--output", str(output_dir)],
            out=io.StringIO(),
        )
    assert code == cli.EXIT_USAGE and words in err.getvalue()


def test_the_save_options_show_the_settings_persist_and_apply(gallery, fake, output_dir, tmp_path):
    page = gallery
    page.reload()  # the controls read the settings on page load
    page.wait_for_selector("#civitai_gallery_output textarea, #civitai_gallery_output input")
    formats = page.locator("#civitai_gallery_formats input[type=checkbox]")
    wait_until(  # every control shows its setting (each is filled by a page-load event)
        lambda: value_of(page, "civitai_gallery_output") == str(output_dir)
        and value_of(page, "civitai_gallery_template") == setting.get("images.path_template")
        and [formats.nth(i).is_checked() for i in range(3)] == [True, False, False]  # json
        and not page.locator("#civitai_gallery_thumbnails input[type=checkbox]").is_checked(),
        page=page,
        what="the settings in the save options",
    )
    page.wait_for_timeout(500)  # let the last page-load events settle before changing them
    # Tick exif and thumbnails, choose another folder and template.
    close_toasts(page)
    page.locator("#civitai_gallery_formats label").filter(has_text="exif").click()
    page.locator("#civitai_gallery_thumbnails input[type=checkbox]").check()
    elsewhere = tmp_path / "chosen"
    text_field(page, "civitai_gallery_output").fill(str(elsewhere))
    text_field(page, "civitai_gallery_output").press("Enter")
    text_field(page, "civitai_gallery_template").fill("{model_name}/{id}")
    text_field(page, "civitai_gallery_template").press("Enter")
    wait_until(
        lambda: setting.get("images.metadata_format") == "json,exif"
        and setting.get("images.generate_thumbnails") is True
        and setting.get("images.output_path") == str(elsewhere)
        and setting.get("images.path_template") == "{model_name}/{id}",
        page=page,
        what="the tab's choices in the settings",
    )

    def saved():
        with open(setting.settings_path(), encoding="utf-8") as handle:
            return json.load(handle)  # persisted: only the tab's keys

    chosen = {
        "images.metadata_format": "json,exif",
        "images.generate_thumbnails": True,
        "images.output_path": str(elsewhere),
        "images.path_template": "{model_name}/{id}",
    }
    assert {key: saved().get(key) for key in chosen} == chosen
    assert "civitai_base_url" not in saved()  # the app's in-memory base URL is not written
    # A refused value: one toast, the control shows the value in force.
    assert "nope" in submit_refused(page, "civitai_gallery_template", "{nope}/{id}")
    wait_until(
        lambda: value_of(page, "civitai_gallery_template") == "{model_name}/{id}",
        page=page,
        what="the template box back to the value in force",
    )
    close_toasts(page)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "not a folder" in submit_refused(page, "civitai_gallery_output", str(a_file / "sub"))
    wait_until(
        lambda: value_of(page, "civitai_gallery_output") == str(elsewhere),
        page=page,
        what="the output box back to the folder in force",
    )
    assert error_badges(page) == []
    # A download uses them: the model's name as folder, embedded infotext, thumbnails.
    load(page, f"version {VERSION_ID}")
    click(page, "civitai_gallery_download_all")
    text = wait_status(page, r"downloaded \d+")
    assert str(elsewhere) in text and "failed 0" in text
    found = saved_images(elsewhere)
    thumbs = [p for p in found if os.sep + ".thumbnails" + os.sep in p]
    images = [p for p in found if p not in thumbs]
    assert images and all(os.sep + "DreamShaper" + os.sep in p for p in images)
    assert len(thumbs) == len(images)
    embedded = 0
    for path in images:
        with Image.open(path) as im:
            embedded += bool(im.info.get("parameters") or im.getexif().get(0x9286))
    assert embedded > 0
    assert not os.path.exists(output_dir)


def test_recent_tasks_show_the_history_when_the_page_opens(
    page, base_url, output_dir, fake, open_app
):
    outcome = jobs.download(Target("version", VERSION_ID), ["None"])
    assert outcome.total > 0
    open_app(page, base_url)
    table = page.locator("#civitai_gallery_tasks")
    page.wait_for_function(
        "() => (document.querySelector('#civitai_gallery_tasks')?.innerText || '')"
        ".includes('done')"
    )
    text = table.inner_text()
    assert f"version {VERSION_ID}" in text  # a person can read what the download was
    assert not re.search(r"\b[0-9a-f]{32}\b", text)  # no task hashes


def test_progress_shows_once_with_images_and_bytes(gallery, fake, output_dir, shot):
    page = gallery
    load(page, str(MODEL_ID))
    fake.latency = 0.3
    click(page, "civitai_gallery_download_all")
    page.wait_for_function(
        "() => /Downloading \\d+\\/\\d+ images .*B .*\\/s/.test("
        "document.querySelector('#civitai_gallery_status').innerText)",
        timeout=60_000,
    )
    shot(page, "during-download")
    progress_text = page.locator("#civitai_gallery_status").inner_text()
    assert re.search(r"[\d.]+ [KM]?B of ~[\d.]+ [KM]?B", progress_text), progress_text
    tasks = page.locator("#civitai_gallery_tasks_box").inner_text()
    assert "Downloading" not in tasks  # not a second progress display
    click(page, "civitai_gallery_cancel")
    wait_status(page, r"cancelled \d+", timeout=60)
    page.wait_for_function(  # the table follows the job
        "() => document.querySelector('#civitai_gallery_tasks').innerText.includes('cancelled')"
    )


def test_a_selected_image_shows_large_with_its_data_and_paging_keeps_them_in_step(
    gallery, fake, shot
):
    page = gallery
    load(page, str(MODEL_ID))
    listing = first_page({"modelId": MODEL_ID, "sort": "Newest", "period": "AllTime"})
    first = listing.items[0]
    # the demo's first thumbnail carries generation data: the first click shows the tool's best
    assert first.meta and first.meta.get("prompt")
    page.locator(THUMBS).nth(0).click()
    preview = page.locator("#civitai_gallery_preview img").first
    preview.wait_for(state="visible")
    page.wait_for_function(
        "() => { const i = document.querySelector('#civitai_gallery_preview img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    natural = preview.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert natural == [first.width, first.height]  # the original, not the thumbnail
    from scripts.civitai_manager_libs.civitai.image_urls import original_url

    assert os.path.isfile(setting.get_image_url_to_gallery_file(original_url(first.url)))
    wait_until(
        lambda: "Steps: " in value_of(page, "civitai_gallery_info"),
        page=page,
        what="the selected image's generation data",
    )
    assert str(first.id) in metadata_text(page)
    shot(page, "selected-image")
    # Gradio keeps the highlight on its position when the page changes (and 3.x/4.x then
    # send no select event for it): the preview and the data follow the highlight.
    second = listing_page_two(listing)
    click(page, "civitai_gallery_next")
    page.wait_for_function(
        "() => document.querySelector('#civitai_gallery_page').innerText.includes('page 2')"
    )

    def in_step():
        highlighted = page.evaluate(
            "() => Array.from(document.querySelectorAll("
            "'#civitai_gallery_gallery .thumbnail-item')).findIndex("
            "e => e.classList.contains('selected'))"
        )
        info = value_of(page, "civitai_gallery_info")
        data = metadata_text(page)
        shown = page.locator("#civitai_gallery_preview img").count()
        if highlighted < 0:
            return info == "" and shown == 0
        return str(second[highlighted].id) in data and info != "" and shown == 1

    wait_until(in_step, page=page, what="highlight, preview and data in step on page 2")


def listing_page_two(listing):
    """The second page the tab shows after ``listing`` (same parameters and paging)."""
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.http_client import get_http_client

    api = CivitaiAPI(client=get_http_client())
    page = api.get_image_page(
        {"modelId": MODEL_ID, "sort": "Newest", "period": "AllTime"},
        cursor=listing.next_cursor,
        limit=int(setting.get("gallery_page_size")),
        nsfw_levels=["None", "Soft"],
    )
    return page.items


def test_layout_tasks_long_urls_and_counts_read_well(gallery, fake, output_dir):
    page = gallery
    # The four NSFW boxes sit on one line at 1400 px.
    page.wait_for_function(
        "() => document.querySelectorAll('#civitai_gallery_nsfw label').length === 4"
    )
    tops = page.evaluate(
        "() => Array.from(document.querySelectorAll('#civitai_gallery_nsfw label'))"
        ".map(l => Math.round(l.getBoundingClientRect().top))"
    )
    assert len(tops) == 4 and len(set(tops)) == 1, tops
    # One image: "1 image".
    one = first_page({"modelVersionId": VERSION_ID}).items[0]
    load(page, f"image {one.id}")
    assert header(page).endswith("page 1, 1 image")
    # The JSON panel wraps long URLs instead of clipping them.
    page.locator(THUMBS).nth(0).click()
    wait_until(lambda: str(one.id) in metadata_text(page), page=page, what="the metadata")
    clipped = page.evaluate(
        "() => Array.from(document.querySelectorAll('#civitai_gallery_metadata *'))"
        ".filter(e => e.children.length === 0 && e.textContent.includes('http'))"
        ".filter(e => { const r = e.getBoundingClientRect();"
        " const box = document.querySelector('#civitai_gallery_metadata')"
        ".getBoundingClientRect(); return r.right > box.right + 1; }).length"
    )
    assert clipped == 0
    assert status(page) == ""

"""A user's second hour with the tab (issue 24), in a real Chromium on every Gradio line: the tab in
Traditional Chinese in the standalone app (``python main.py --lang zh_TW``), the settings its
messages name settable in the app, a first Load without the sort notice, a closed "Full metadata"
box and no empty boxes, failures grouped by reason in the tab's words, Retry failed after Cancel
pointing at Download all, one Recent tasks row per job, a toast when a download finishes, and a
420 px screen where nothing is wider than the viewport.

Screenshots (tests/artifacts/gradio-<version>/): ``...-zh_TW``, ``...-narrow``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import requests
from test_demo_app import free_port
from test_gallery_tab import (
    MODEL_ID,
    THUMBS,
    TOAST,
    VERSION_ID,
    click,
    close_toasts,
    load,
    status,
    text_field,
    toast,
    wait_status,
    wait_until,
)

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.ui.download_job import jobs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZH_TW = json.load(open(os.path.join(REPO, "localizations", "zh_TW.json"), encoding="utf-8"))


@pytest.fixture
def app_process(tmp_path):
    """``start(*args)``: ``python main.py --demo --no-browser ARGS`` in its own process; its URL."""
    procs = []

    def start(*args):
        port = free_port()
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"gallery_cache_path": str(tmp_path / "cache")}))
        env = dict(os.environ, CIVITAI_GALLERY_SETTINGS=str(settings))
        env.pop("CIVITAI_BASE_URL", None)
        log = open(tmp_path / "app.log", "w")
        command = [sys.executable, "main.py", "--demo", "--no-browser", "--port", str(port)]
        command += ["--output", str(tmp_path / "images"), *args]
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"main.py exited: {(tmp_path / 'app.log').read_text()}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "main.py did not start within 90 s"
            time.sleep(0.3)

    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _visible_text(page, elem_id):
    return page.locator(f"#{elem_id}").first.inner_text()


def test_the_standalone_app_shows_the_tab_in_traditional_chinese(
    page, app_process, open_app, tmp_path, shot
):
    models = tmp_path / "models"
    models.mkdir()
    url = app_process("--lang", "zh_TW", "--models-dir", str(models))
    open_app(page, url)
    root = page.locator("#civitai_gallery_root")
    hint = ZH_TW["Enter a model, link or username and press Load."]
    page.wait_for_function(
        "() => { const e = document.querySelector('#civitai_gallery_page');"  # not yet drawn: wait
        f" return !!e && e.innerText.includes('{hint}'); }}"
    )
    text = root.inner_text()
    for english in (
        "Load",
        "Download all examples",
        "Retry failed",
        "Recent tasks",
        "Sort",
        "NSFW levels",
        "What a download saves",
        "Output folder",
        "Enter a model, link or username and press Load.",
    ):
        assert ZH_TW[english] in text, english
    for left in ("Download all examples", "Retry failed", "What a download saves", "Recent tasks"):
        assert left not in text, left
    assert "None" in text and "Soft" in text  # Civitai's level names stay as they are
    placeholder = text_field(page, "civitai_gallery_info").get_attribute("placeholder")
    assert placeholder == ZH_TW["Select an image to see its generation data."]
    # the sort shows its Chinese name, and a Load works with it (the value stays English)
    assert ZH_TW["Newest"] in page.locator("#civitai_gallery_sort").inner_text() or (
        text_field(page, "civitai_gallery_sort").input_value() == ZH_TW["Newest"]
    )
    text_field(page, "civitai_gallery_query").fill(f"{MODEL_ID}")
    page.locator("#civitai_gallery_load").click()
    page.wait_for_selector(THUMBS)
    page.wait_for_function(
        "() => document.querySelector('#civitai_gallery_page').innerText.includes('第 1 頁')"
    )
    # the Settings box names the models folder given with --models-dir and the settings file
    page.locator("#civitai_gallery_settings").first.click()
    models_box = text_field(page, "civitai_gallery_setting_models_path")
    models_box.wait_for(state="visible")
    assert models_box.input_value() == str(models)
    assert text_field(page, "civitai_gallery_settings_file").input_value() == str(
        tmp_path / "settings.json"
    )
    # a finished download: the status and the toast in Chinese
    page.locator("#civitai_gallery_download_all").click()
    done = page.locator(TOAST).filter(has_text="下載完成").first
    done.wait_for(state="visible", timeout=60_000)
    line = text_field(page, "civitai_gallery_status").input_value()
    assert "已下載" in line and "失敗 0" in line, line
    shot(page, "zh_TW")


def test_first_load_has_no_sort_notice_and_no_empty_boxes(gallery, fake, shot):
    page = gallery
    # before any selection: no Resources box, no empty row in Recent tasks
    assert not page.locator("#civitai_gallery_resources_box").first.is_visible()
    page.wait_for_function(  # the history (or its empty-state line) has arrived
        "() => /No downloads yet|\\d{4}-\\d\\d-\\d\\d/.test("
        "document.querySelector('#civitai_gallery_tasks')?.innerText || '')"
    )
    empty_rows = page.evaluate(  # drawn rows with no text (spacer rows have no height)
        "() => Array.from(document.querySelectorAll('#civitai_gallery_tasks tbody tr'))"
        ".filter(r => r.getBoundingClientRect().height > 8 && !r.innerText.trim()).length"
    )
    assert empty_rows == 0, "an empty row in Recent tasks"
    load(page, str(MODEL_ID))  # a whole-model listing with the default sort
    header = page.locator("#civitai_gallery_page").first.inner_text()
    assert "ignores the sort" not in header, header
    # the notice still comes when the user picks a sort Civitai ignores there
    sort = page.locator("#civitai_gallery_sort")
    sort.locator("input, select").first.click()
    page.locator("[role=option], li, option").filter(has_text="Most Comments").first.click()
    click(page, "civitai_gallery_load")
    page.wait_for_function(
        "() => document.querySelector('#civitai_gallery_page').innerText"
        ".includes('ignores the sort')"
    )
    # a selection: the Resources box appears, the hint leaves the info box, metadata stays shut
    page.locator(THUMBS).first.click()
    wait_until(
        lambda: text_field(page, "civitai_gallery_info").input_value().strip(),
        page=page,
        what="generation data",
    )
    page.locator("#civitai_gallery_resources_box").first.wait_for(state="visible")
    assert "select an image" not in _visible_text(page, "civitai_gallery_root").lower()
    assert not page.locator("#civitai_gallery_metadata").first.is_visible()
    # the Load button is never under a toast
    text_field(page, "civitai_gallery_query").fill("abc!!")
    page.locator("#civitai_gallery_load").click()
    toast(page, "Warning")
    load_box = page.locator("#civitai_gallery_load").bounding_box()
    for body in page.locator(TOAST).all():
        box = body.bounding_box()
        if box:
            overlaps = not (
                box["x"] + box["width"] <= load_box["x"]
                or load_box["x"] + load_box["width"] <= box["x"]
                or box["y"] + box["height"] <= load_box["y"]
                or load_box["y"] + load_box["height"] <= box["y"]
            )
            assert not overlaps, (box, load_box)
    shot(page, "first-load")


def test_failures_are_grouped_in_the_tabs_words_and_a_job_is_one_row(gallery, fake, output_dir):
    page = gallery
    load(page, f"https://civitai.com/models/{MODEL_ID}?modelVersionId={VERSION_ID}")
    fake.faults.not_found("*", server="image")  # every picture answers 404
    click(page, "civitai_gallery_download_all")
    text = wait_status(page, r"failed \d+ of \d+ images")
    failed = int(re.search(r"failed (\d+) of", text).group(1))
    words = toast(page, "Warning")
    assert "Retry failed" in words and "retry-failed" not in words
    assert "output folder" not in words.lower()  # the folder was fine
    # one group: its count and three ids, not a wall of identical lines
    assert text.count("×") == 1 and f"{failed} ×" in text and "more" in text, text
    # Recent tasks: one row for the job, not one per image
    click(page, "civitai_gallery_refresh_tasks")
    wait_until(
        lambda: "failed" in page.locator("#civitai_gallery_tasks").inner_text(),
        page=page,
        what="the job's row",
    )
    table = page.locator("#civitai_gallery_tasks").first.inner_text()
    # one row for the job (Gradio 4 draws the table twice: a sizing copy), not one per image
    assert table.count(f"version {VERSION_ID}") in (1, 2), table
    assert f"failed {failed}" in table, table
    assert "http" not in text and "http" not in table  # no link per failed image


def test_retry_after_cancel_points_at_download_all(gallery, fake, output_dir):
    page = gallery
    load(page, f"https://civitai.com/models/{MODEL_ID}?modelVersionId={VERSION_ID}")
    fake.latency = 0.5
    click(page, "civitai_gallery_download_all")
    wait_until(lambda: jobs.running, timeout=10, what="the download to start", page=page)
    page.wait_for_timeout(1500)  # a few images in
    page.locator("#civitai_gallery_cancel").click()
    wait_status(page, r"cancelled")
    assert "Download all examples again" in status(page)
    fake.latency = 0.0
    click(page, "civitai_gallery_retry_failed")
    text = wait_status(page, r"Nothing to retry")
    assert "Download all examples again to resume" in text, text


NARROW_OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const root = document.querySelector('#civitai_gallery_root');
  const wide = [];
  for (const e of root.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || e.offsetParent === null) continue;
    // inside a box that scrolls sideways, an element may be wider than the screen
    let clipped = false;
    for (let p = e.parentElement; p && p !== root; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden'].includes(style.overflowX)) {
        const pr = p.getBoundingClientRect();
        if (pr.right <= width + 1 && pr.left >= -1) { clipped = true; break; }
      }
    }
    if (!clipped && (r.right > width + 1 || r.left < -1)) {
      const name = e.id || e.className || e.tagName;
      wide.push(name + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    }
  }
  return {width: width, scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 15)};
}"""


def test_a_420px_screen_shows_everything_inside_the_viewport(
    browser, base_url, open_app, output_dir, fake, shot
):
    context = browser.new_context(viewport={"width": 420, "height": 900})
    page = context.new_page()
    try:
        open_app(page, base_url)
        load(page, f"https://civitai.com/models/{MODEL_ID}?modelVersionId={VERSION_ID}")
        page.locator(THUMBS).first.click()
        page.locator("#civitai_gallery_resources_box").first.wait_for(state="visible")
        click(page, "civitai_gallery_download_all")
        wait_status(page, r"downloaded \d+")
        click(page, "civitai_gallery_refresh_tasks")
        close_toasts(page)
        found = page.evaluate(NARROW_OVERFLOW_JS)
        assert found["wide"] == [], found
        assert found["scroll"] <= found["width"] + 1, found
        # the gallery adapts: fewer columns than the 5 of a wide screen
        tops = page.evaluate(
            "() => Array.from(document.querySelectorAll("
            "'#civitai_gallery_gallery .thumbnail-item'))"
            ".slice(0, 6).map(e => Math.round(e.getBoundingClientRect().top))"
        )
        assert len(set(tops[:5])) > 1, tops
        shot(page, "narrow")
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _english(gallery_server):
    """These tests read English words: the in-process app is built in English."""
    assert setting.get("ui_language") == ""

"""The tab's Follow, Followed and Sync now (issue 22), in a real Chromium against the fake: Follow
records the loaded model in the output folder's archive (the row ``python main.py follow``
writes), Sync now downloads it with Download all's progress and toasts and the Followed list
shows the last sync time and new count; a second Sync now costs one listing request and finds
nothing new; Download all is refused while a sync runs.
"""

from __future__ import annotations

import re

from test_gallery_tab import MODEL_ID, TOAST, click, load, saved_images, wait_status, wait_until

from scripts.civitai_manager_libs.store import follows
from scripts.civitai_manager_libs.store.archive import Archive
from scripts.civitai_manager_libs.store.paths import ARCHIVE_NAME


def _table(page):
    return page.locator("#civitai_gallery_followed").first.inner_text()


def _toast_text(page, pattern):
    regex = re.compile(pattern)
    return wait_until(
        lambda: next((t for t in page.locator(TOAST).all_inner_texts() if regex.search(t)), None),
        page=page,
        what=f"a toast matching {pattern!r}",
    )


def test_follow_then_sync_now_shows_the_new_count_and_last_sync(gallery, fake, output_dir, shot):
    page = gallery
    load(page, str(MODEL_ID))
    click(page, "civitai_gallery_follow")
    wait_status(page, rf"Following model {MODEL_ID}")
    wait_until(lambda: f"model {MODEL_ID}" in _table(page), page=page, what="the followed row")
    with Archive(str(output_dir / ARCHIVE_NAME)) as archive:
        (row,) = follows.followed(archive)
    assert (row.key, row.kind, row.values) == (f"model {MODEL_ID}", "model", [str(MODEL_ID)])
    assert row.options[:4] == ["--limit", "0", "--nsfw", "None,Soft"], row.options

    click(page, "civitai_gallery_sync_now")
    text = wait_status(page, rf"model {MODEL_ID} DreamShaper: \d+ new")
    new = int(re.search(rf"model {MODEL_ID} DreamShaper: (\d+) new", text).group(1))
    assert new > 0 and new == len(saved_images(output_dir)), text
    assert re.search(r"downloaded \d+, skipped 0, failed 0", text), text  # Download all's words
    _toast_text(page, r"[Ff]inished|downloaded")
    wait_until(
        lambda: re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d", _table(page)), page=page, what="sync time"
    )
    table = _table(page)
    assert "DreamShaper" in table and str(new) in table, table
    shot(page, "synced")

    fake.reset()  # nothing new: one listing request, nothing downloaded
    click(page, "civitai_gallery_sync_now")
    text = wait_status(page, rf"model {MODEL_ID} DreamShaper: 0 new")
    _toast_text(page, r"nothing new in 1 followed")
    assert [r.path for r in fake.api_requests()] == ["/api/v1/images"], fake.api_requests()
    assert not [r for r in fake.image_requests() if r.method == "GET"]


def test_download_all_is_refused_while_sync_now_runs(gallery, fake, output_dir):
    page = gallery
    load(page, str(MODEL_ID))
    click(page, "civitai_gallery_follow")
    wait_status(page, rf"Following model {MODEL_ID}")
    fake.latency = 0.4
    click(page, "civitai_gallery_sync_now")
    wait_until(lambda: "Sync" in page.locator("#civitai_gallery_status").inner_text(), page=page,
               what="the sync's progress")  # fmt: skip
    page.locator("#civitai_gallery_download_all").click()
    _toast_text(page, r"already running")
    fake.latency = 0.0
    wait_status(page, rf"model {MODEL_ID} DreamShaper: \d+ new", timeout=120)

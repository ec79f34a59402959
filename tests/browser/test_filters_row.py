"""The tab's Filters row (issue 14) in a real headless Chromium, against the local Civitai."""

from __future__ import annotations

import os
import re

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.filters import FilterSpec
from scripts.civitai_manager_libs.planning import item_filter

from test_gallery_tab import (  # noqa: E402  (tests/browser is on sys.path)
    THUMBS,
    click,
    first_page,
    load,
    saved_images,
    text_field,
    toast,
    wait_status,
    wait_until,
)

VERSION_ID = 128713  # DreamShaper 8: 120 images, some without generation data


def open_filters(page):
    row = page.locator("#civitai_gallery_filters")
    assert not page.locator("#civitai_gallery_filter_with_data").is_visible()  # collapsed
    row.get_by_text("Filters", exact=True).first.click()
    page.locator("#civitai_gallery_filter_with_data").wait_for(state="visible")


def expected_page(params, spec):
    page = first_page(params)
    kept = [i for i in page.items if item_filter.reason(i, spec) is None]
    hidden = item_filter.FilterCounts()
    for item in page.items:
        why = item_filter.reason(item, spec)
        if why:
            hidden.add(why)
    return kept, hidden.as_dict()


def page_label(page):
    return page.locator("#civitai_gallery_page").first.inner_text()


def test_filters_hide_images_say_why_stay_for_the_session_and_apply_to_download(
    gallery, fake, output_dir, shot
):
    page = gallery
    params = {"modelVersionId": VERSION_ID, "sort": "Newest", "period": "AllTime"}
    # a threshold in the middle of the first page's reactions: some of it is hidden for that
    counts = sorted(item_filter.reactions(i) for i in first_page(params).items)
    min_reactions = counts[len(counts) // 2]
    spec = FilterSpec(with_generation_data=True, min_reactions=min_reactions)
    kept, hidden = expected_page(params, spec)
    assert kept and hidden.get("no generation data") and hidden.get("reactions")
    open_filters(page)
    page.locator("#civitai_gallery_filter_with_data input").check()
    text_field(page, "civitai_gallery_filter_reactions").fill(str(min_reactions))
    shot(page, "filters-open")

    load(page, f"version {VERSION_ID}")
    wait_until(lambda: "hidden by filters" in page_label(page), page=page, what="hidden line")
    label = page_label(page)
    assert f"{len(kept)} images" in label
    total = sum(hidden.values())
    assert f"{total} hidden by filters ({item_filter.describe_counts(hidden)})" in label
    assert page.locator(THUMBS).count() == len(kept)
    shot(page, "filtered-page")

    # the next page keeps the session's filters
    click(page, "civitai_gallery_next")
    page.wait_for_function(
        "() => document.querySelector('#civitai_gallery_page').innerText.includes('page 2')"
    )
    assert "hidden by filters" in page_label(page)
    assert page.locator("#civitai_gallery_filter_with_data input").is_checked()

    # Download all lists every page with the same filters: exactly the kept images are saved
    fake.reset()
    click(page, "civitai_gallery_download_all")
    text = wait_status(page, r"downloaded \d+", timeout=120)
    pool = fake.dataset.select(version_id=VERSION_ID, levels=["None", "Soft"])
    expected = {
        i.id
        for i in pool
        if not (i.meta_hidden or not i.meta or not str(i.meta.get("prompt") or "").strip())
        and sum(i.stats.get(k, 0) for k in item_filter.REACTION_STATS) >= min_reactions
    }
    saved = {int(os.path.basename(p).split(".")[0]) for p in saved_images(output_dir)}
    assert saved == expected
    assert "hidden by filters" in text and "no generation data" in text
    assert str(output_dir) in text
    shot(page, "filtered-download")


def test_a_bad_filter_value_shows_a_warning_and_writes_nothing(gallery, fake, output_dir, shot):
    page = gallery
    open_filters(page)
    text_field(page, "civitai_gallery_filter_since").fill("last tuesday")
    text_field(page, "civitai_gallery_query").fill(f"version {VERSION_ID}")
    click(page, "civitai_gallery_load")
    message = toast(page, "Warning")  # issue 12: a warning toast, no error badge
    assert "YYYY-MM-DD" in message
    assert [r for r in fake.api_requests() if r.path == "/api/v1/images"] == []
    text_field(page, "civitai_gallery_filter_since").fill("")
    text_field(page, "civitai_gallery_filter_used_with").fill("abc")
    click(page, "civitai_gallery_download_all")
    assert "version ids" in toast(page, "Warning")
    assert not os.path.exists(output_dir)
    shot(page, "bad-filter")
    assert re.search(r"Enter a model", page_label(page))
    assert setting.get("images.output_path") == str(output_dir)

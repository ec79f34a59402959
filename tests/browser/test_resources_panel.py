"""Issue 13 in a real browser: the Resources panel of the selected image (✓ / ✗ with the user's
names, Civitai links and sizes) and "Download missing" with its size confirmation."""

from __future__ import annotations

import os

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.fake_civitai import models_api as M

from tests.browser.test_gallery_tab import THUMBS, click, first_page, load, text_field, wait_until

PANEL = "#civitai_gallery_resources"


def panel_text(page):
    return page.locator(PANEL).first.inner_text()  # Gradio 3 repeats the id inside


def resources_status(page):
    return text_field(page, "civitai_gallery_resources_status").input_value()


def test_panel_shows_resources_and_downloads_the_missing_ones(gallery, fake, tmp_path, shot):
    models = tmp_path / "models"
    (models / "Lora").mkdir(parents=True)
    (models / "Lora" / "my_local_name.safetensors").write_bytes(
        M.model_file_bytes(M.LORA_NEON.version_id)
    )
    setting.set("models_path", str(models))
    setting.set("resources.confirm_over_mb", 0)  # every download asks first
    page = gallery
    load(page, str(M.CHECKPOINT.model_id))
    listing = first_page({"modelId": M.CHECKPOINT.model_id, "sort": "Newest"})
    index = [item.id for item in listing.items].index(M.DEMO_IMAGE_ID)
    page.locator(THUMBS).nth(index).click()
    wait_until(
        lambda: "Soft Light" in panel_text(page),
        what="the resources of the selected image",
        page=page,
    )
    rows = page.locator(f"{PANEL} tr")
    assert rows.count() == 4
    assert page.locator(f"{PANEL} tr.present").count() == 1
    present = page.locator(f"{PANEL} tr.present").inner_text()
    assert "Neon Lines" in present and "my_local_name" in present
    missing = page.locator(f"{PANEL} tr.missing")
    assert missing.count() == 3
    link = missing.first.locator("a").get_attribute("href")
    assert link.startswith(fake.base_url + "/models/")
    assert "KB" in missing.first.inner_text()
    wait_until(
        lambda: "<lora:my_local_name:0.8>"
        in text_field(page, "civitai_gallery_info").input_value(),
        what="the info box with the user's LoRA name",
        page=page,
    )
    shot(page, "resources")

    click(page, "civitai_gallery_resources_download")  # over the threshold: asks first
    wait_until(
        lambda: "Allow large downloads" in resources_status(page), page=page, what="the question"
    )
    assert not os.path.exists(models / "Stable-diffusion")
    page.locator("#civitai_gallery_resources_confirm input").check()
    click(page, "civitai_gallery_resources_download")
    wait_until(
        lambda: "Downloaded 3 file(s)" in resources_status(page),
        timeout=60,
        page=page,
        what="the download summary",
    )
    assert page.locator(f"{PANEL} tr.present").count() == 4
    for folder, spec in (
        ("Stable-diffusion", M.CHECKPOINT),
        ("Lora", M.LORA_SOFT),
        ("embeddings", M.EMBEDDING),
    ):
        assert (models / folder / spec.file_name).read_bytes() == M.model_file_bytes(
            spec.version_id
        )
    shot(page, "resources-downloaded")

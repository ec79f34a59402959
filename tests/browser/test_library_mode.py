"""Issue 25 in a real browser: the tab's Library mode searches the saved images offline, shows
the local files, and the selected image's infotext and resources with the user's model names."""

from __future__ import annotations

import io

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.fake_civitai import models_api as M

from tests.browser.test_gallery_tab import click, text_field, wait_until

LIB_THUMBS = "#civitai_library_gallery .thumbnail-item img"


def status(page):
    return page.locator("#civitai_library_status").first.inner_text()  # Gradio 3 repeats the id


def _cli(*argv):
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    assert code in (0, 1), out.getvalue()  # resources: 1 while something is missing
    return out.getvalue()


def test_library_search_select_shows_infotext_offline(gallery, fake, output_dir, tmp_path, shot):
    models = tmp_path / "models"
    (models / "Lora").mkdir(parents=True)
    (models / "Lora" / "my_local_name.safetensors").write_bytes(
        M.model_file_bytes(M.LORA_NEON.version_id)
    )
    setting.set("models_path", str(models))
    for model_id in (M.CHECKPOINT.model_id, 4384):
        _cli("download", "model", model_id, "--base-url", fake.base_url, "-o", output_dir, "-q")
    # an earlier look-up (the resources command) is what names the LoRA "Soft Light"
    _cli("resources", M.DEMO_IMAGE_ID, "--base-url", fake.base_url, "-o", output_dir)
    fake.reset()  # from here on: not one request to Civitai

    page = gallery
    page.locator("#civitai_gallery_mode label").filter(has_text="Library").click()
    page.wait_for_selector("#civitai_library_query textarea, #civitai_library_query input")
    assert not page.locator("#civitai_gallery_query").is_visible()
    text_field(page, "civitai_library_query").fill('"neon city"')
    click(page, "civitai_library_search")
    page.wait_for_selector(LIB_THUMBS)
    wait_until(
        lambda: "1 image(s)" in status(page),
        page=page,
        what="the result count",
    )
    assert page.locator(LIB_THUMBS).count() == 1
    page.locator(LIB_THUMBS).first.click()
    info = text_field(page, "civitai_library_info")
    wait_until(lambda: "a neon city at night" in info.input_value(), page=page, what="the infotext")
    text = info.input_value()
    assert "<lora:my_local_name:0.8>" in text  # your file's name, from the cached look-up
    assert "Steps: 28" in text and "Seed: 1234" in text
    resources = page.locator("#civitai_library_resources").first.inner_text()
    assert "my_local_name" in resources and "Soft Light" in resources
    page.wait_for_selector("#civitai_library_preview img")
    shot(page, "library")

    # the filters: a LoRA by its words, and a query that finds nothing
    text_field(page, "civitai_library_query").fill("")
    page.locator("#civitai_library").get_by_text("Folders and filters").click()
    text_field(page, "civitai_library_lora").fill("Neon Lines")
    click(page, "civitai_library_search")
    wait_until(
        lambda: "2 image(s)" in status(page),
        page=page,
        what="two images with the Neon Lines LoRA",
    )
    text_field(page, "civitai_library_query").fill("nothing_like_this")
    click(page, "civitai_library_search")
    wait_until(
        lambda: "No saved image matches" in status(page),
        page=page,
        what="no result",
    )
    assert fake.log == []  # the Library asked nothing of Civitai

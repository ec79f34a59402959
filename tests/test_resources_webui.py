"""Issue 13 inside WebUI (simulated ``modules.*`` as in test_webui_load): the resources come from
WebUI's own lists, and the info box that Send to txt2img pastes uses the user's file names."""

from __future__ import annotations

import os
import sys
import types

import pytest

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.fake_civitai import models_api as M
from scripts.civitai_manager_libs.http_client import reset_http_client
from scripts.civitai_manager_libs.metadata.infotext import parse_infotext
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata
from scripts.civitai_manager_libs.ui import resources_panel
from scripts.civitai_manager_libs.ui.actions import GalleryView
from tests.test_webui_load import load_script, webui  # noqa: F401 (the fixture)


def _module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def webui_models(webui, monkeypatch, tmp_path):  # noqa: F811 (the imported fixture)
    """WebUI's model lists: the demo's checkpoint and one LoRA, both under the user's own names."""
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Lora").mkdir()
    ckpt = models / "Stable-diffusion" / "my_ckpt.safetensors"
    ckpt.write_bytes(M.model_file_bytes(M.CHECKPOINT.version_id))
    lora = models / "Lora" / "my_local_name.safetensors"
    lora.write_bytes(M.model_file_bytes(M.LORA_NEON.version_id))
    short = M.hashes_of(M.CHECKPOINT.version_id)["SHA256"][:10].lower()
    title = f"my_ckpt.safetensors [{short}]"
    checkpoint_info = types.SimpleNamespace(filename=str(ckpt), title=title, sha256=None)
    network = types.SimpleNamespace(filename=str(lora), get_alias=lambda: "my_local_name")
    embedding_db = types.SimpleNamespace(word_embeddings={}, skipped_embeddings={})
    added = {
        "modules.sd_models": _module(
            "modules.sd_models", checkpoints_list={title: checkpoint_info}
        ),
        "modules.sd_hijack": _module(
            "modules.sd_hijack", model_hijack=types.SimpleNamespace(embedding_db=embedding_db)
        ),
        "modules.sd_vae": _module("modules.sd_vae", vae_dict={}),
        "modules.paths": _module(
            "modules.paths", models_path=str(models), script_path=str(tmp_path)
        ),
        "networks": _module("networks", available_networks={"my_local_name": network}),
    }
    for name, module in added.items():
        monkeypatch.setitem(sys.modules, name, module)
        if name.startswith("modules."):
            monkeypatch.setattr(
                sys.modules["modules"], name.split(".", 1)[1], module, raising=False
            )
    webui.opts.data.clear()
    return types.SimpleNamespace(root=models, title=title, short=short)


def test_send_to_txt2img_pastes_the_users_names(
    webui, webui_models, fake_civitai, tmp_path  # noqa: F811 (the imported fixture)
):
    setting.update(
        {"civitai_base_url": fake_civitai.base_url, "images.output_path": str(tmp_path / "out")}
    )
    reset_http_client()
    load_script()
    blocks = webui.callbacks["ui_tabs"][0]()[0][0]
    fns = blocks.fns.values() if isinstance(blocks.fns, dict) else blocks.fns
    assert any(getattr(fn, "fn", None) is resources_panel.show_resources for fn in fns)
    # chained on the select event and on every page event (the selection follows the page)
    chained = [fn for fn in fns if getattr(fn, "fn", None) is resources_panel.show_resources]
    assert len(chained) == 6  # select, Load, Enter, version, Next, Previous
    # "Download missing" before a selection: a status line, no exception (no error badge)
    kept, status, _info, _plan = resources_panel.download_missing(None, False, progress=None)
    assert status == "Select an image first." and kept == {"__type__": "update"}
    (binding,) = [  # the gallery's (the Library has its own pair)
        b
        for b in webui.bindings
        if b.tabname == "txt2img" and b.source_text_component.elem_id == "civitai_gallery_info"
    ]

    item = CivitaiAPI().get_image(M.DEMO_IMAGE_ID)
    record = extract_image_metadata(item)
    view = GalleryView(items=[item])
    table, info, plan, status = resources_panel.show_resources(
        view, record, "before", progress=lambda *a, **k: None
    )
    assert plan.inventory.source == "webui"
    pasted = parse_infotext(info)
    assert "<lora:my_local_name:0.8>" in pasted["prompt"]
    assert "neonLines_v1" not in pasted["prompt"]
    assert pasted["prompt"].count("<lora:softLight_v2:0.6>") == 1  # missing, Civitai's name
    assert pasted["params"]["Model"] == webui_models.title
    assert pasted["params"]["Model hash"] == webui_models.short
    assert table.count("✓") == 2 and table.count("✗") == 2
    assert "2 of 4 missing" in status
    # Missing files go where WebUI reads them.
    assert plan.folders["lora"] == str(webui_models.root / "Lora")
    assert plan.folders["embedding"] == os.path.join(str(tmp_path), "embeddings")
    reset_http_client()


# -- issue 24 item 12: the folders before "missing", never a second copy, an honest summary ----


def _plan(fake_civitai, tmp_path, models_path=None):
    from scripts.civitai_manager_libs.http_client import get_http_client
    from scripts.civitai_manager_libs.resources.service import open_cache, reproduce

    setting.update(
        {"civitai_base_url": fake_civitai.base_url, "images.output_path": str(tmp_path / "out")}
    )
    reset_http_client()
    client = get_http_client()
    cache = open_cache(str(tmp_path / "out"))
    item = CivitaiAPI(client=client).get_image(M.DEMO_IMAGE_ID)
    return reproduce(item, client, cache, models_path), client, cache


def _storage_requests(fake_civitai):
    return [r for r in fake_civitai.image_requests() if "/storage/models/" in r.path]


def test_a_lora_copied_in_while_webui_runs_is_not_missing_nor_downloaded_again(
    webui_models, fake_civitai, tmp_path
):
    from scripts.civitai_manager_libs.resources.fetch import fetch_missing
    from scripts.civitai_manager_libs.resources.hash_cache import FileHasher

    copied = webui_models.root / "Lora" / "soft_copied_today.safetensors"  # not in WebUI's list
    copied.write_bytes(M.model_file_bytes(M.LORA_SOFT.version_id))
    plan, client, cache = _plan(fake_civitai, tmp_path)
    assert plan.inventory.source == "webui"
    soft = next(r for r in plan.resources if r.version_id == M.LORA_SOFT.version_id)
    assert soft.local_path == str(copied) and soft.local_name == "soft_copied_today"
    missing = plan.missing()
    assert [r.type for r in missing] == ["embedding"]
    with cache:
        outcomes = fetch_missing(missing, plan.folders, client, FileHasher(cache))
    assert [o.status for o in outcomes] == ["downloaded"]
    assert len(_storage_requests(fake_civitai)) == 1  # the embedding only
    assert not (webui_models.root / "Lora" / M.LORA_SOFT.file_name).exists()


def test_a_file_whose_sha256_is_already_on_disk_is_never_downloaded(fake_civitai, tmp_path):
    from scripts.civitai_manager_libs.resources.fetch import fetch_missing, summarize
    from scripts.civitai_manager_libs.resources.hash_cache import FileHasher

    models = tmp_path / "models"
    (models / "Lora").mkdir(parents=True)
    elsewhere = tmp_path / "my_archive" / "soft.safetensors"  # outside the models folder
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(M.model_file_bytes(M.LORA_SOFT.version_id))
    plan, client, cache = _plan(fake_civitai, tmp_path, str(models))
    with cache:
        FileHasher(cache).sha256(str(elsewhere))  # hashed once before (another image, a scan)
        soft = [r for r in plan.missing() if r.version_id == M.LORA_SOFT.version_id]
        outcomes = fetch_missing(soft, plan.folders, client, FileHasher(cache))
    assert [o.status for o in outcomes] == ["present"] and outcomes[0].path == str(elsewhere)
    assert _storage_requests(fake_civitai) == []
    assert summarize(outcomes).text.startswith("Downloaded 0 file(s)")
    assert "1 already on disk" in summarize(outcomes).text


def test_when_every_missing_file_fails_the_summary_says_so(fake_civitai, tmp_path):
    from scripts.civitai_manager_libs.resources.fetch import fetch_missing, summarize
    from scripts.civitai_manager_libs.resources.hash_cache import FileHasher

    models = tmp_path / "models"
    models.mkdir()
    plan, client, cache = _plan(fake_civitai, tmp_path, str(models))
    missing = plan.missing()
    for resource in missing:
        fake_civitai.storage.corrupt.add(resource.version_id)
    with cache:
        outcomes = fetch_missing(missing, plan.folders, client, FileHasher(cache))
    summary = summarize(outcomes)
    assert summary.all_failed and len(summary.failed) == len(missing) == 4
    assert summary.text.startswith("None of the 4 missing file(s) could be downloaded: ")
    assert "Downloaded 0" not in summary.text

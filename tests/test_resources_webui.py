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

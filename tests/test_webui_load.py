"""Load scripts/civitai_gallery.py the way WebUI does, with stand-in ``modules.*``; check that the
tab and the settings section register and that the tab renders (served, /config answered).

Runs on every Gradio line (also inside the gradio3 / gradio4 venvs of tests/gradio_matrix.sh).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
from dataclasses import replace
import socket
import sys
import types

import pytest
import requests

from scripts.civitai_manager_libs import setting

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "civitai_gallery.py")
ELEM_IDS = (
    "civitai_gallery_query",
    "civitai_gallery_nsfw",
    "civitai_gallery_load",
    "civitai_gallery_gallery",
    "civitai_gallery_info",
    "civitai_gallery_download_all",
    "civitai_gallery_retry_failed",
    "civitai_gallery_cancel",
    "civitai_gallery_status",
)


class OptionInfo:
    """A1111's ``shared.OptionInfo`` (modules/options.py), reduced to what extensions pass."""

    def __init__(
        self,
        default=None,
        label="",
        component=None,
        component_args=None,
        onchange=None,
        section=None,
        refresh=None,
        comment_before="",
        comment_after="",
        infotext=None,
        restrict_api=False,
        category_id=None,
    ):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id


class Options:
    def __init__(self):
        self.data_labels = {}
        self.data = {}

    def add_option(self, key, info):
        assert key not in self.data_labels, f"option {key} registered twice"
        self.data_labels[key] = info

    def set(self, key, value):  # what WebUI's Settings page does on Apply
        self.data[key] = value
        if self.data_labels[key].onchange is not None:
            self.data_labels[key].onchange()


class ParamBinding:
    def __init__(
        self,
        paste_button,
        tabname,
        source_text_component=None,
        source_image_component=None,
        source_tabname=None,
        override_settings_component=None,
        paste_field_names=None,
    ):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component


def _module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def webui(monkeypatch, tmp_path):
    """Stand-ins for the parts of WebUI's ``modules`` package the extension uses."""
    import gradio as gr

    callbacks = {"ui_tabs": [], "ui_settings": []}
    bindings = []

    def create_buttons(tabs_list):
        return {
            name: gr.Button(f"Send to {name}", elem_id=f"civitai_send_{name}") for name in tabs_list
        }

    script_callbacks = _module(
        "modules.script_callbacks",
        on_ui_tabs=callbacks["ui_tabs"].append,
        on_ui_settings=callbacks["ui_settings"].append,
    )
    shared = _module("modules.shared", opts=Options(), OptionInfo=OptionInfo)
    infotext_utils = _module(
        "modules.infotext_utils",
        create_buttons=create_buttons,
        ParamBinding=ParamBinding,
        register_paste_params_button=bindings.append,
    )
    data_path = str(tmp_path / "webui-data")
    paths_internal = _module("modules.paths_internal", data_path=data_path)
    package = _module("modules", __path__=[])
    package.script_callbacks = script_callbacks
    package.shared = shared
    package.infotext_utils = infotext_utils
    package.paths_internal = paths_internal
    for name, module in (
        ("modules", package),
        ("modules.script_callbacks", script_callbacks),
        ("modules.shared", shared),
        ("modules.infotext_utils", infotext_utils),
        ("modules.paths_internal", paths_internal),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    setting.reset()
    yield types.SimpleNamespace(
        callbacks=callbacks, opts=shared.opts, bindings=bindings, data_path=data_path
    )
    setting.reset()


def load_script(name="civitai_gallery_under_test"):
    """What WebUI's modules/script_loading.load_module does."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _elem_ids(blocks):
    return {getattr(block, "elem_id", None) for block in blocks.blocks.values()}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_script_registers_tab_and_settings_with_webui(webui):
    script = load_script()
    assert len(webui.callbacks["ui_settings"]) == 1 and len(webui.callbacks["ui_tabs"]) == 1

    webui.callbacks["ui_settings"][0]()
    labels = webui.opts.data_labels
    expected = {
        script.option_key(k)
        for k, spec in setting.SPECS.items()
        if not spec.secret and k != "ui_language"  # WebUI has its own localization setting
    }
    assert set(labels) == expected
    assert "civitai_gallery_civitai_api_key" not in labels  # never into WebUI's config.json
    assert all(info.section == ("civitai_gallery", "Civitai Gallery") for info in labels.values())
    page_size = labels["civitai_gallery_gallery_page_size"]
    assert page_size.default == 40 and page_size.component_args["maximum"] == 200
    assert labels["civitai_gallery_images_thumbnail_size"].default == "256x256"

    webui.opts.data["civitai_gallery_gallery_page_size"] = 12
    tabs = webui.callbacks["ui_tabs"][0]()
    assert len(tabs) == 1
    blocks, title, elem_id = tabs[0]
    assert (title, elem_id) == ("Civitai Gallery", "civitai_gallery_tab")
    assert setting.get("gallery_page_size") == 12  # WebUI's option reached the settings
    assert set(ELEM_IDS) <= _elem_ids(blocks)

    # Send-to buttons pass the infotext box the WebUI way: the gallery's and the Library's.
    sources = sorted((b.source_text_component.elem_id, b.tabname) for b in webui.bindings)
    assert sources == [
        ("civitai_gallery_info", "img2img"),
        ("civitai_gallery_info", "txt2img"),
        ("civitai_library_info", "img2img"),
        ("civitai_library_info", "txt2img"),
    ]
    for binding in webui.bindings:
        assert binding.paste_button.elem_id == f"civitai_send_{binding.tabname}"
    library = {
        b.tabname: b.source_image_component
        for b in webui.bindings
        if b.source_text_component.elem_id == "civitai_library_info"
    }
    assert library["img2img"].elem_id == "civitai_library_picture"  # the saved file itself
    assert library["txt2img"] is None


def test_settings_section_sits_in_its_own_category(webui):
    # Issue 11 item 6: without a category WebUI lists the section under "Uncategorized".
    load_script()
    webui.callbacks["ui_settings"][0]()
    labels = webui.opts.data_labels.values()
    assert {info.category_id for info in labels} == {"saving"}  # WebUI's "Saving images"
    assert {info.section for info in labels} == {("civitai_gallery", "Civitai Gallery")}


def test_folders_default_under_webui_data_and_are_stored_relative(webui):
    # Issue 11 item 7: no absolute path into config.json, no ./images relative to the cwd.
    load_script()
    webui.callbacks["ui_settings"][0]()
    labels = webui.opts.data_labels
    output = labels["civitai_gallery_images_output_path"].default
    cache = labels["civitai_gallery_gallery_cache_path"].default
    assert (output, cache) == (
        os.path.join("outputs", "civitai-gallery"),
        os.path.join("cache", "civitai-gallery"),
    )
    webui.callbacks["ui_tabs"][0]()  # the defaults reach the settings, under WebUI's data folder
    assert setting.get("images.output_path") == os.path.join(webui.data_path, output)
    assert setting.get("gallery_cache_path") == os.path.join(webui.data_path, cache)
    webui.opts.set("civitai_gallery_images_output_path", "outputs/mine")
    assert setting.get("images.output_path") == os.path.join(webui.data_path, "outputs/mine")
    absolute = os.path.join(webui.data_path, "elsewhere")
    webui.opts.set("civitai_gallery_images_output_path", absolute)
    assert setting.get("images.output_path") == absolute


def _button_interactive(blocks, button):
    """The ``interactive`` the page gets for ``button`` (from the served config)."""
    for entry in blocks.config["components"]:
        if entry["id"] == button._id:
            return entry.get("props", {}).get("interactive")
    raise AssertionError("button not in the page")


def test_send_buttons_need_generation_data_and_img2img_gets_the_picture(webui, fake_civitai):
    # Issue 11 items 4 and 5: no notice pasted into txt2img (and no empty box, which makes WebUI
    # paste its last generation): the buttons are off; Send to img2img sends the picture too.
    import gradio as gr

    from scripts.civitai_manager_libs.records import ImageItem
    from scripts.civitai_manager_libs.ui import actions, send_to

    load_script()
    webui.callbacks["ui_settings"][0]()
    blocks = webui.callbacks["ui_tabs"][0]()[0][0]
    binding = {
        b.tabname: b
        for b in webui.bindings
        if b.source_text_component.elem_id == "civitai_gallery_info"
    }
    picture = binding["img2img"].source_image_component
    assert picture is not None and picture.elem_id == "civitai_gallery_send_picture"
    for name in ("txt2img", "img2img"):  # nothing selected yet
        assert _button_interactive(blocks, binding[name].paste_button) is False
    buttons = {binding["txt2img"].paste_button._id, binding["img2img"].paste_button._id}
    assert any(  # the box drives the buttons
        buttons <= set(dep.get("outputs", ())) for dep in blocks.config["dependencies"]
    )

    dataset = fake_civitai.dataset
    bare = next(i for i in dataset.images if i.meta is None and i.media != "mp4")
    full = next(i for i in dataset.images if i.meta_shape == "a1111" and i.media == "png")
    view = actions.GalleryView(
        items=[
            ImageItem(id=i.id, url=fake_civitai.image_url(i.id), meta=i.meta) for i in (bare, full)
        ]
    )

    def select(index):
        return send_to.select_for_webui(view, gr.SelectData(None, {"index": index, "value": None}))

    # the tab's select outputs (state, preview, info, metadata) plus the note and the picture
    state, preview, info, record, note, image = select(0)
    assert state.selected == 0 and preview is not None
    assert info == "" and record["id"] == bare.id and image is None
    assert note["visible"] is True and note["value"] == actions.no_generation_data()
    assert all(u["interactive"] is False for u in send_to.buttons_state(info))
    state, preview, info, record, note, image = select(1)
    assert state.selected == 1 and preview == image  # the preview shows the same original
    assert "Steps: " in info and note["visible"] is False
    assert all(u["interactive"] is True for u in send_to.buttons_state(info))
    with open(image, "rb") as handle:
        assert handle.read() == dataset.original_bytes(full.id)  # the original, fetched once
    assert os.path.dirname(image) == setting.get("gallery_cache_path")
    assert image.startswith(webui.data_path + os.sep)
    # a page change moves the selection (the page outputs fill info and metadata with the
    # tab's text); the send outputs follow: no data -> an empty box, the note, no picture
    moved = replace(view, items=[view.items[1], view.items[0]], selected=1)
    info, record, note, image = send_to.follow_page(moved, actions.no_generation_data(), {"id": 1})
    assert info == "" and note["visible"] is True and image is None
    info, record, note, image = send_to.follow_page(
        replace(moved, selected=0), "Steps: 20", {"id": full.id}
    )
    assert info == "Steps: 20" and note["visible"] is False
    assert image is not None and os.path.dirname(image) == setting.get("gallery_cache_path")
    nothing = send_to.follow_page(replace(moved, selected=None), "", None)
    assert nothing[0] == "" and nothing[3] is None


def test_changed_option_is_applied_and_a_bad_one_refused(webui, caplog):
    load_script()
    webui.callbacks["ui_settings"][0]()
    webui.opts.set("civitai_gallery_gallery_max_concurrent_downloads", 5)
    assert setting.get("gallery_max_concurrent_downloads") == 5
    with caplog.at_level(logging.WARNING, logger="civitai_gallery"):
        webui.opts.set("civitai_gallery_gallery_max_concurrent_downloads", 999)
    assert setting.get("gallery_max_concurrent_downloads") == 5
    assert "civitai_gallery_gallery_max_concurrent_downloads" in caplog.text
    webui.opts.set("civitai_gallery_images_default_nsfw_filter", ["None", "X"])
    assert setting.get("images.default_nsfw_filter") == ["None", "X"]


def test_tab_renders_when_served(webui):
    load_script()
    webui.callbacks["ui_settings"][0]()
    blocks = webui.callbacks["ui_tabs"][0]()[0][0]
    blocks.queue()
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        config = requests.get(f"http://127.0.0.1:{port}/config", timeout=30)
        assert config.status_code == 200
        ids = {c.get("props", {}).get("elem_id") for c in config.json()["components"]}
        assert set(ELEM_IDS) <= ids
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200
    finally:
        blocks.close()


def test_standalone_import_registers_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "modules", raising=False)
    monkeypatch.setattr(
        sys, "path", [p for p in sys.path if not os.path.isdir(os.path.join(p, "modules"))]
    )
    script = load_script("civitai_gallery_standalone")
    assert script.script_callbacks is None and script.shared is None
    assert script.on_ui_tabs and script.on_ui_settings  # still importable and usable


def test_real_import_errors_inside_webui_are_not_hidden(monkeypatch):
    class Broken(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "modules" or name.startswith("modules."):
                raise ImportError("No module named 'torch'", name="torch")
            return None

    monkeypatch.delitem(sys.modules, "modules", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken()] + sys.meta_path)
    with pytest.raises(ImportError) as err:
        load_script("civitai_gallery_broken")
    assert err.value.name == "torch"


def _load_install():
    spec = importlib.util.spec_from_file_location(
        "civitai_gallery_install", os.path.join(REPO, "install.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_adds_only_what_webui_lacks_and_never_its_own_packages():
    install = _load_install()
    have = {"requests", "urllib3", "PIL", "gradio", "fastapi", "pydantic"}
    calls = []
    launch = types.SimpleNamespace(
        is_installed=lambda name: name in have,
        run_pip=lambda args, desc: calls.append(args),
    )
    asked = install.install(launch)
    assert asked == ["piexif", "tqdm"]
    assert calls == ["install piexif", "install tqdm"]
    launch.is_installed = lambda name: False
    calls.clear()
    install.install(launch)
    assert not any(p in " ".join(calls) for p in ("gradio", "fastapi", "pydantic"))
    assert all("==" not in c and "<" not in c for c in calls)  # no pins that move WebUI's packages


def test_compat_helpers_fit_the_installed_gradio():
    """The kwargs filter keeps the code version-free on every line of the matrix."""
    import gradio as gr

    from scripts.civitai_manager_libs.ui import gradio_compat as compat

    assert compat.parse_version("4.44.1") == (4, 44, 1)
    assert compat.parse_version("6.0.0b2") == (6, 0, 0)
    with pytest.raises(ValueError):
        compat.parse_version("latest")
    assert compat.gradio_version()[0] == int(gr.__version__.split(".")[0])
    kept = compat.supported_kwargs(gr.Textbox.__init__, {"label": "x", "no_such_option": 1})
    assert kept == {"label": "x"}
    with gr.Blocks() as demo:
        table = compat.component(gr.Dataframe, headers=["a"], max_height=123, bogus=True)
        button = compat.component(gr.Button, "go", elem_id="compat_button")
        dependency = compat.listen(button.click, None, None, None, js="() => {}", show_api=False)
    height = getattr(table, "max_height", None) or getattr(table, "height", None)
    assert height == 123  # max_height, or height where max_height does not exist yet
    assert dependency is not None
    assert compat.in_gradio_event() is False
    assert compat.warn_user("not in an event: only logged") is False
    assert compat.enable_queue(demo, 3) is not None

"""Inside WebUI, the tab's save options (metadata formats, output folder, template, thumbnails)
are WebUI options: a change on the tab is stored as the option its Settings page shows and saved
in WebUI's config file; a change on the Settings page is what the tab shows next."""

from __future__ import annotations

import pytest
from test_webui_load import load_script, webui  # noqa: F401 - the WebUI stand-in fixture

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.ui import persist
from scripts.civitai_manager_libs.ui import save_options


@pytest.fixture
def tab(webui, tmp_path, monkeypatch):  # noqa: F811 - pytest fixture injection
    import sys

    saved = []
    shared = sys.modules["modules.shared"]
    monkeypatch.setattr(shared, "config_filename", str(tmp_path / "config.json"), raising=False)
    monkeypatch.setattr(shared.opts, "save", saved.append, raising=False)
    monkeypatch.setattr(persist, "option_persister", persist.option_persister)
    load_script()
    webui.callbacks["ui_settings"][0]()
    webui.callbacks["ui_tabs"][0]()
    setting.set("images.output_path", str(tmp_path / "images"))
    yield webui, saved


def test_tab_choices_become_webui_options_saved_in_its_config(tab, tmp_path):
    host, saved = tab
    assert save_options.save_formats(["exif", "json"]) == ["json", "exif"]
    assert host.opts.data["civitai_gallery_images_metadata_format"] == "json,exif"
    assert save_options.save_thumbnails(True) is True
    assert host.opts.data["civitai_gallery_images_generate_thumbnails"] is True
    chosen = str(tmp_path / "chosen")
    assert save_options.save_output(chosen) == chosen
    assert host.opts.data["civitai_gallery_images_output_path"] == chosen
    assert save_options.save_template("{model_name}/{id}") == "{model_name}/{id}"
    assert saved and set(saved) == {str(tmp_path / "config.json")}
    assert setting.get("images.metadata_format") == "json,exif"
    assert not (tmp_path / "settings.json").exists()  # not the standalone settings file
    # A refused value changes nothing and the control gets the value in force back.
    before = dict(host.opts.data)
    assert save_options.save_template("{nope}") == "{model_name}/{id}"
    assert save_options.save_formats([]) == ["json", "exif"]
    assert host.opts.data == before


def test_settings_page_changes_are_what_the_tab_shows(tab, tmp_path):
    host, _saved = tab
    host.opts.set("civitai_gallery_images_metadata_format", "txt")
    host.opts.set("civitai_gallery_images_path_template", "{creator}/{id}")
    assert save_options.option_value("formats") == ["txt"]
    assert save_options.option_value("template") == "{creator}/{id}"


def test_the_tabs_pacing_boxes_are_the_pacing_settings(tab):
    host, _saved = tab
    assert save_options.save_sleep_request("2-5") == "2-5"
    assert save_options.save_limit_rate("2M") == "2M"
    assert (setting.get("http_sleep_request"), setting.get("http_limit_rate")) == ("2-5", "2M")
    assert host.opts.data["civitai_gallery_http_sleep_request"] == "2-5"
    assert save_options.save_limit_rate("fast") == "2M"  # refused: the value in force comes back
    assert save_options.option_value("sleep_request") == "2-5"

"""The browser tests share one app and its settings file; what one test saves through the tab is
undone after it (conftest ``_saved_settings_do_not_leak``). The Library test, run after the save
options test, searched the folder that test had saved (its in-process CLI runs read the file)."""

from __future__ import annotations

import json

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.ui import save_options

TEMPLATE = "{model_name}/{id}-isolation"


def _saved():
    try:
        with open(setting.settings_path(), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def test_a_test_saves_an_option_through_the_tab(gallery_server):
    assert save_options.save_template(TEMPLATE) == TEMPLATE  # what the template box does
    assert _saved()["images.path_template"] == TEMPLATE


def test_the_next_test_starts_from_the_settings_file_as_it_was(gallery_server):
    # runs after the one above (file order): fails when its saved template is still in the file
    assert _saved().get("images.path_template") != TEMPLATE

"""Stable Diffusion WebUI (A1111 / Forge) entry point: the Civitai Gallery tab and its settings.

WebUI imports every ``scripts/*.py`` of an extension with the extension folder on ``sys.path``;
this file registers the tab (``on_ui_tabs``) and a "Civitai Gallery" section (in the "Saving
images" category) in WebUI's Settings page (``on_ui_settings``) generated from ``setting.SPECS``.
Inside WebUI the output and cache folders default to ``outputs/civitai-gallery`` and
``cache/civitai-gallery`` under WebUI's data folder, stored relative. WebUI's options become the
package's settings when the tab is built and whenever one changes. The API key is not offered
there (WebUI saves options in its config.json): set the ``CIVITAI_API_KEY`` environment variable.

Outside WebUI (``python main.py``) the ``modules`` import fails and nothing is registered; any
other import error is a real problem and is raised.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

try:
    from modules import script_callbacks, shared
except ImportError as exc:  # standalone: no WebUI around
    if not (exc.name or "").startswith("modules"):
        raise
    script_callbacks = None
    shared = None

import gradio as gr

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.errors import SettingsError
from scripts.civitai_manager_libs.ui.tab import TAB_ID, TAB_TITLE, build_tab_contents
from scripts.civitai_manager_libs.ui.gradio_compat import supported_kwargs

logger = logging.getLogger("civitai_gallery")

SECTION = ("civitai_gallery", "Civitai Gallery")
#: WebUI's settings category for the section ("Saving images"), so it is not "Uncategorized".
CATEGORY_ID = "saving"
OPTION_PREFIX = "civitai_gallery_"
#: Folder settings whose WebUI defaults lie under WebUI's own data folder. They are stored relative
#: (WebUI writes option defaults into its config.json) and resolved against that folder when used.
WEBUI_FOLDER_DEFAULTS = {
    "images.output_path": os.path.join("outputs", "civitai-gallery"),
    "gallery_cache_path": os.path.join("cache", "civitai-gallery"),
}


def webui_data_path() -> str:
    """WebUI's data folder (``--data-dir``, else WebUI's own folder), where its outputs live."""
    for name in ("modules.paths_internal", "modules.paths"):
        try:
            module = __import__(name, fromlist=["data_path"])
        except ImportError:
            continue
        path = getattr(module, "data_path", None)
        if isinstance(path, str) and path:
            return path
    return os.getcwd()


def resolve_folder(key: str, value: Any) -> Any:
    """A relative folder option (``outputs/civitai-gallery``) as a path under WebUI's data folder;
    other settings and absolute paths are returned unchanged."""
    if key not in WEBUI_FOLDER_DEFAULTS or not isinstance(value, str) or not value.strip():
        return value
    expanded = os.path.expanduser(value.strip())
    return expanded if os.path.isabs(expanded) else os.path.join(webui_data_path(), expanded)


def option_default(key: str) -> Any:
    """The default WebUI shows and saves for a setting (relative folders for the folder ones)."""
    spec = setting.SPECS[key]
    return WEBUI_FOLDER_DEFAULTS.get(key, _to_option_value(spec, spec.default))


def option_key(key: str) -> str:
    """WebUI option name of a setting: ``civitai_gallery_`` + its attribute name
    (``images.output_path`` -> ``civitai_gallery_images_output_path``)."""
    return OPTION_PREFIX + setting.SPECS[key].attribute


#: The settings users change, first on WebUI's page, in this order; the rest (HTTP tuning...) after.
SETTINGS_FIRST = (
    "images.output_path",
    "images.path_template",
    "images.metadata_format",
    "images.default_nsfw_filter",
    "images.generate_thumbnails",
    "images.skip_existing",
    "gallery_page_size",
    "gallery_cache_max_mb",
    "models_path",
    "resources.confirm_over_mb",
)
#: Settings with no meaning inside WebUI (the tab follows WebUI's own localization).
NOT_IN_WEBUI = ("ui_language",)
#: Short labels for WebUI's Settings page (the full description becomes the hint under it where
#: this WebUI shows hints); localizations/*.json translate them.
SHORT_LABELS = {
    "images.output_path": "Output folder",
    "images.path_template": "Path template",
    "images.metadata_format": "Metadata formats (json, txt, exif)",
    "images.default_nsfw_filter": "Default NSFW levels",
    "images.generate_thumbnails": "Write thumbnails",
    "images.skip_existing": "Skip images already downloaded",
    "gallery_page_size": "Images per gallery page",
    "gallery_cache_max_mb": "Gallery cache limit (MB, 0: none)",
    "models_path": "Models folder (outside WebUI)",
    "resources.confirm_over_mb": "Ask before resource downloads over (MB)",
    "images.save_metadata": "Save generation data",
    "images.thumbnail_size": "Thumbnail size",
    "images.duplicate_policy": "Same image already saved",
    "images.max_concurrent": "Simultaneous downloads",
    "images.min_free_space_mb": "Keep free on the output disk (MB)",
    "images.max_file_size_mb": "Largest file accepted (MB)",
    "gallery_cache_path": "Gallery cache folder",
    "gallery_download_batch_size": "Gallery: images per batch",
    "gallery_download_timeout": "Gallery: seconds per image",
    "gallery_max_concurrent_downloads": "Gallery: simultaneous downloads",
    "civitai_base_url": "Civitai address",
    "http_timeout": "HTTP read timeout (s)",
    "http_connect_timeout": "HTTP connect timeout (s)",
    "http_max_retries": "HTTP retries",
    "http_host_down_after": "Failed connections before a host counts as down",
    "http_backoff_factor": "HTTP retry backoff (s)",
    "http_retry_after_cap": "Longest Retry-After honoured (s)",
}


def webui_settings() -> List[str]:
    """The settings offered on WebUI's Settings page (every one but secrets and the standalone
    app's language), what users change first, HTTP tuning last."""
    keys = [
        key for key, spec in setting.SPECS.items() if not spec.secret and key not in NOT_IN_WEBUI
    ]
    first = [key for key in SETTINGS_FIRST if key in keys]
    rest = [key for key in keys if key not in first]
    return first + sorted(rest, key=lambda key: key.startswith("http_"))


def _to_option_value(spec, value: Any) -> Any:
    if spec.type == "tuple":
        return "x".join(str(v) for v in value)
    if spec.type == "list":
        return list(value)
    return value


def _component(spec) -> Tuple[Optional[Callable], Dict[str, Any]]:
    if spec.type == "bool":
        return gr.Checkbox, {}
    if spec.type in ("int", "float"):
        args: Dict[str, Any] = {"precision": 0} if spec.type == "int" else {}
        if spec.min is not None:
            args["minimum"] = spec.min
        if spec.max is not None:
            args["maximum"] = spec.max
        return gr.Number, args
    if spec.type == "list" and spec.choices:
        return gr.CheckboxGroup, {"choices": list(spec.choices)}
    if spec.type == "str" and spec.choices and spec.key != "images.metadata_format":
        return gr.Radio, {"choices": list(spec.choices)}
    return gr.Textbox, {}


def apply_option(key: str) -> bool:
    """Copy WebUI's value of one option into the settings; False (logged) when it is refused."""
    name = option_key(key)
    data = getattr(shared.opts, "data", {}) if shared is not None else {}
    if name in data:
        value = data[name]
    elif key in WEBUI_FOLDER_DEFAULTS:
        value = option_default(key)  # not saved yet: WebUI's default, not the standalone one
    else:
        return False
    try:
        setting.set(key, resolve_folder(key, value))
    except SettingsError as exc:
        logger.warning("Civitai Gallery: the WebUI setting %s was not applied: %s", name, exc)
        return False
    return True


def apply_all_options() -> int:
    """Copy every Civitai Gallery option WebUI holds into the settings; returns how many."""
    return sum(apply_option(key) for key in webui_settings())


def on_ui_settings() -> None:
    section = SECTION
    for key in webui_settings():
        spec = setting.SPECS[key]
        component, component_args = _component(spec)
        kwargs = dict(
            default=option_default(key),
            label=SHORT_LABELS.get(key, spec.description),
            component=component,
            component_args=component_args,
            onchange=lambda key=key: apply_option(key),
            section=section,
            category_id=CATEGORY_ID,
        )
        info = shared.OptionInfo(**supported_kwargs(shared.OptionInfo.__init__, kwargs))
        if key in SHORT_LABELS and callable(getattr(info, "info", None)):
            info = info.info(spec.description) or info  # A1111 1.6+: the hint under the label
        if getattr(info, "section", None) is None:
            info.section = section
        if getattr(info, "category_id", None) is None:
            info.category_id = CATEGORY_ID
        shared.opts.add_option(option_key(key), info)


def store_option(key: str, value: Any) -> None:
    """Persist a choice made on the tab (metadata formats, output folder, template, thumbnails)
    as WebUI's option, the same one its Settings page shows, in WebUI's config file."""
    spec = setting.SPECS[key]
    shared.opts.set(option_key(key), _to_option_value(spec, value))
    save = getattr(shared.opts, "save", None)
    config = getattr(shared, "config_filename", None)
    if save is not None and config:
        save(config)


def webui_language() -> Optional[str]:
    """WebUI's chosen localization (``zh_TW``...), "" for none."""
    opts = getattr(shared, "opts", None)
    return str(getattr(opts, "localization", "") or "") if opts is not None else ""


def on_ui_tabs():
    apply_all_options()
    from scripts.civitai_manager_libs.ui import i18n, persist

    i18n.set_language(webui_language())  # the tab's words follow WebUI's localization

    persist.option_persister = store_option  # the tab's save options live in WebUI's settings
    with gr.Blocks(analytics_enabled=False) as tab:
        build_tab_contents(webui=True)
    return [(tab, TAB_TITLE, TAB_ID)]


if script_callbacks is not None:
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_ui_tabs(on_ui_tabs)

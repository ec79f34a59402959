"""The standalone app's "Settings" box: the settings the tab's messages name (the models folder,
the Civitai address, the large-download limit), the gallery cache limit and the language, each
saved in the settings file (named in the box) when the user changes it. Inside WebUI the same
settings are on WebUI's Settings page and this box is not built.

Element ids: ``civitai_gallery_settings`` (the accordion), ``civitai_gallery_setting_<name>`` for
the fields (``models_path``, ``civitai_base_url``, ``confirm_over_mb``, ``cache_max_mb``,
``ui_language``), ``civitai_gallery_settings_file``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import gradio as gr

from .. import setting
from ..errors import InvalidQueryError
from . import persist
from .feedback import _handled, inform_user
from .gradio_compat import component, listen
from .i18n import LANGUAGES, t
from .messages import say

#: field name -> setting key
FIELDS = {
    "models_path": "models_path",
    "civitai_base_url": "civitai_base_url",
    "confirm_over_mb": "resources.confirm_over_mb",
    "cache_max_mb": "gallery_cache_max_mb",
    "ui_language": "ui_language",
}
#: The language choices: their own names (a user who cannot read the current one finds theirs).
LANGUAGE_NAMES = {
    "en": "English",
    "zh_TW": "繁體中文",
    "zh_CN": "简体中文",
    "ja_JP": "日本語",
    "ko_KR": "한국어",
}


def _shown(key: str) -> Any:
    value = setting.get(key)
    if key == "ui_language":
        return _language_choice(value or "en")
    return value


def _language_choice(code: str) -> str:
    """The dropdown's value for ``code``: the code where choices are (name, code) pairs, else
    the language's name."""
    return code if _pairs_ok() else LANGUAGE_NAMES.get(code, code)


def saver(name: str) -> Callable[[Any], Any]:
    """The handler storing field ``name``: validated by its setting, written to the settings
    file, applied; answers with the value in force (the old one after a refusal, with a toast)."""
    key = FIELDS[name]

    @_handled(lambda message, *args, **kwargs: _shown(key))
    def save(value: Any) -> Any:
        if name in NUMBERS:
            if value is None or value == "":
                raise InvalidQueryError(say("enter_number", name=key))
            value = int(value)
        if key == "ui_language":
            codes = {name: code for code, name in LANGUAGE_NAMES.items()}
            value = codes.get(value, value)
            value = "" if value == "en" else value
        if persist.store(key, value) and key == "ui_language":
            inform_user(say("setting_reload"))
        return _shown(key)

    save.__name__ = f"save_{name}"
    return save


def _field(name: str, cls: Any, label: str, **extra: Any) -> Any:
    """The control of field ``name``: shows its setting's value at every page load."""
    key = FIELDS[name]
    return component(
        cls,
        value=lambda: _shown(key),
        label=t(label),
        elem_id=f"civitai_gallery_setting_{name}",
        **extra,
    )


#: The whole-number fields (MB; 0: none): field name -> label.
NUMBERS = {
    "confirm_over_mb": "Ask before resource downloads over (MB)",
    "cache_max_mb": "Gallery cache limit (MB, 0: none)",
}


def build() -> Dict[str, Any]:
    """The accordion (closed) with its fields, wired; its components by name."""
    c: Dict[str, Any] = {}
    with component(gr.Accordion, t("Settings"), open=False, elem_id="civitai_gallery_settings"):
        with gr.Row():
            c["setting_models_path"] = _field(
                "models_path",
                gr.Textbox,
                "Models folder (models_path)",
                placeholder=t("A WebUI models folder: Stable-diffusion/, Lora/, embeddings/, VAE/"),
                max_lines=1,
                scale=3,
            )
            c["setting_ui_language"] = _field(
                "ui_language",
                gr.Dropdown,
                "Language",
                choices=(
                    [(name, code) for code, name in LANGUAGE_NAMES.items()]
                    if _pairs_ok()
                    else list(LANGUAGE_NAMES.values())  # Gradio 3.41's Dropdown: names only
                ),
                scale=1,
            )
        with gr.Row():
            c["setting_civitai_base_url"] = _field(
                "civitai_base_url", gr.Textbox, "Civitai address", max_lines=1
            )
            for name, label in NUMBERS.items():
                c[f"setting_{name}"] = _field(name, gr.Number, label, precision=0, minimum=0)
        c["settings_file"] = component(
            gr.Textbox,
            value=lambda: setting.settings_path(),
            label=t("Settings file"),
            interactive=False,
            max_lines=1,
            elem_id="civitai_gallery_settings_file",
        )
    for name in FIELDS:
        control = c[f"setting_{name}"]
        # a text or number: when the typing is done (Gradio 4's Number has no blur: submit)
        triggers = [getattr(control, e) for e in ("blur", "submit") if hasattr(control, e)]
        if not isinstance(control, (gr.Textbox, gr.Number)) or not triggers:
            triggers = [getattr(control, "input", None) or control.change]
        for trigger in triggers:
            listen(trigger, saver(name), [control], [control])
    return c


def _pairs_ok() -> bool:
    from .i18n import _takes_pairs

    return _takes_pairs(gr.Dropdown)


__all__ = ["FIELDS", "LANGUAGES", "LANGUAGE_NAMES", "build", "saver"]

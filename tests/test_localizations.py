"""The tab in four languages (issue 24): every text the tab shows has an entry in each shipped
``localizations/<lang>.json`` (collected structurally from the built app, the run-time message
table and WebUI's settings labels), the entries keep their ``{fields}``, Traditional and
Simplified Chinese use their own characters, and the app built in a language shows no English
label left."""

from __future__ import annotations

import json
import os
import re
import string

import pytest
from ui_strings import component_texts

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.records import BASE_MODELS, NSFW_LEVELS
from scripts.civitai_manager_libs.ui import i18n, library
from scripts.civitai_manager_libs.ui.app_settings import LANGUAGE_NAMES
from scripts.civitai_manager_libs.ui.messages import FAILURE_REASONS, FILTER_REASONS, MESSAGES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Shown as they are in every language: Civitai's names, file formats, the product's name, the
#: languages' own names and the query box's example (ids, a link, @user).
TECHNICAL = (
    set(BASE_MODELS)
    | set(NSFW_LEVELS)
    | set(LANGUAGE_NAMES.values())
    | {"json", "txt", "exif", "Civitai Gallery"}
    | {"123, https://civitai.com/models/123?modelVersionId=456, /images/789, @username"}
    | {"Civitai", "LoRA", library.HINT}  # the Library's mode name and search syntax example
)
#: Entries whose translation may equal the English text (a template of fields only).
SAME_ALLOWED = {"{kind} {id}", "{text}.", "; "}  # Korean punctuates like English


@pytest.fixture
def app_in(tmp_path, monkeypatch):
    """``app_in(lang)``: the standalone app's Blocks built with the tab in ``lang``."""
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    setting.reset()

    def build(lang: str):
        from scripts.civitai_manager_libs.ui import standalone

        setting.set("ui_language", lang)
        return standalone.build_app()

    yield build
    setting.reset()


def _files():
    found = {}
    for lang in i18n.LANGUAGES:
        with open(os.path.join(REPO, "localizations", f"{lang}.json"), encoding="utf-8") as fh:
            found[lang] = json.load(fh)
    return found


def _webui_labels():
    import scripts.civitai_gallery as host

    return set(host.SHORT_LABELS.values())


def ui_strings(app_in):
    texts = component_texts(app_in("en")) | set(MESSAGES.values()) | _webui_labels()
    texts |= set(FILTER_REASONS.values()) | set(FAILURE_REASONS)
    return {text for text in texts if text.strip() and text not in TECHNICAL}


def _fields(text):
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name)


def test_every_ui_string_has_a_translation_in_every_shipped_language(app_in):
    strings = ui_strings(app_in)
    assert len(strings) > 150  # the walk found the tab (a broken walk must not pass)
    assert "Download all examples" in strings and MESSAGES["network"] in strings
    for lang, table in _files().items():
        missing = sorted(s for s in strings if not table.get(s, "").strip())
        assert missing == [], f"{lang}.json has no entry for {missing}"


def test_no_entry_is_left_over_from_a_string_the_tab_no_longer_shows(app_in):
    """A renamed or removed text leaves no dead entry behind (the files stay the tab's words)."""
    strings = ui_strings(app_in)
    for lang, table in _files().items():
        stale = sorted(english for english in table if english not in strings)
        assert stale == [], f"{lang}.json has entries no UI string uses: {stale}"


def test_translations_are_real_and_keep_their_fields():
    for lang, table in _files().items():
        for english, translated in table.items():
            assert isinstance(translated, str) and translated.strip(), (lang, english)
            assert translated != english or english in SAME_ALLOWED, (lang, english)
            assert _fields(translated) == _fields(english), (lang, english)
            assert "TODO" not in translated and "???" not in translated, (lang, english)
            # Markdown emphasis and file names survive
            assert translated.count("**") == english.count("**"), (lang, english)
            for token in re.findall(r"[\w-]+/|models_path|resources\.confirm_over_mb", english):
                assert token in translated, (lang, english, token)


# Characters only one of the two Chinese scripts uses (common UI words).
SIMPLIFIED_ONLY = set("这个载们为时选择图页数据设连链网络删录进务线开关读错误码资输档视频缩")
TRADITIONAL_ONLY = set("這個載們為時選擇圖頁數據設連鏈網絡刪錄進務線開關讀錯誤碼資輸檔視頻縮")


def test_traditional_and_simplified_chinese_use_their_own_characters():
    files = _files()
    for english, text in files["zh_TW"].items():
        assert not SIMPLIFIED_ONLY & set(text), (english, text, SIMPLIFIED_ONLY & set(text))
    for english, text in files["zh_CN"].items():
        assert not TRADITIONAL_ONLY & set(text), (english, text, TRADITIONAL_ONLY & set(text))
    for lang in ("ja_JP", "ko_KR"):  # the other two are not Chinese copies
        assert files[lang]["Load"] not in (files["zh_TW"]["Load"], files["zh_CN"]["Load"])


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_the_app_built_in_a_language_shows_no_english_label(app_in, lang):
    english = ui_strings(app_in)
    shown = component_texts(app_in(lang))
    left = sorted(shown & english)
    assert left == [], f"{lang}: still English: {left}"
    assert i18n.t("Load") == _files()[lang]["Load"]


def test_messages_are_filled_in_the_language_and_fall_back_to_english(tmp_path, monkeypatch):
    from scripts.civitai_manager_libs.ui.messages import say

    setting.reset()
    try:
        setting.set("ui_language", "zh_TW")
        assert say("progress", done=3, total=40) == "正在下載 3/40 張圖片"
        i18n.set_language("ja_JP")  # the WebUI host's localization wins over the setting
        assert say("progress", done=3, total=40) == "画像をダウンロード中 3/40"
        i18n.set_language("xx_XX")  # a WebUI localization we do not ship: English
        assert say("progress", done=3, total=40) == "Downloading 3/40 images"
    finally:
        i18n.set_language(None)
        setting.reset()
    monkeypatch.setattr(i18n, "table", lambda code: {"{n} s left": "{missing} broken"})
    setting.set("ui_language", "ko_KR")
    try:
        assert i18n.t("{n} s left", n=5) == "5 s left"  # a broken entry: the English text
    finally:
        setting.reset()


def test_the_setting_and_lang_flag_accept_the_shipped_languages_only():
    from scripts.civitai_manager_libs.errors import SettingsError

    spec = setting.SPECS["ui_language"]
    assert spec.validate("zh-tw") == "zh_TW" and spec.validate("") == ""
    with pytest.raises(SettingsError):
        spec.validate("klingon")

"""The tab's words in the user's language: one :func:`t` for every text the tab shows.

The translations are WebUI's kind of localization files, shipped in ``localizations/<lang>.json``
at the extension root: one flat JSON object, English text as shown -> translated text. WebUI
merges them into the localization the user picks and its ``localization.js`` replaces exact text
matches on the page. The tab does not rely on that: it passes every label, choice, info line,
placeholder, button text (when it builds the components) and every toast and status line (when it
emits them) through :func:`t`, so the standalone app, which has no ``localization.js``, shows the
same words on every Gradio line (3.41, 4.x, 6.x), and inside WebUI the texts with numbers in them
(which an exact-match replacement cannot reach) are translated too.

A text with variable parts is one template (``"{failed} of {total} images failed"``): the key is
the English template, the translation keeps the ``{fields}``. The language is WebUI's localization
inside WebUI (:func:`set_language`), else the ``ui_language`` setting (``python main.py --lang``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from .. import setting

logger = logging.getLogger(__name__)

LOCALIZATIONS_DIR = os.path.join(setting.repo_root(), "localizations")
#: The languages shipped in ``localizations/`` (WebUI's community names for them).
LANGUAGES = ("zh_TW", "zh_CN", "ja_JP", "ko_KR")
_MAX_FILE_BYTES = 2 * 1024 * 1024

_override: Optional[str] = None  # set by the WebUI host: its localization wins over the setting


def set_language(code: Optional[str]) -> None:
    """Use ``code`` (``zh_TW``...) whatever the ``ui_language`` setting says; None: the setting.
    A code without a shipped file means English."""
    global _override
    _override = code


def language() -> str:
    """The language in force: a code of :data:`LANGUAGES`, or "" for English."""
    code = _override if _override is not None else str(setting.get("ui_language") or "")
    return code if code in LANGUAGES else ""


@functools.lru_cache(maxsize=None)
def table(code: str) -> Dict[str, str]:
    """The translations of ``code`` (empty for English, or a file that cannot be read: logged)."""
    if code not in LANGUAGES:
        return {}
    path = os.path.join(LOCALIZATIONS_DIR, f"{code}.json")
    try:
        if os.path.getsize(path) > _MAX_FILE_BYTES:
            raise ValueError(f"larger than {_MAX_FILE_BYTES} bytes")
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        logger.warning("the %s localization %s cannot be used: %s", code, path, exc)
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and v}


def t(text: str, /, **fields: Any) -> str:
    """``text`` in the current language (unchanged without a translation), its ``{fields}``
    filled from ``fields`` (only when some are given: other braces stay as they are)."""
    translated = table(language()).get(text, text)
    if not fields:
        return translated
    try:
        return translated.format(**fields)
    except (KeyError, IndexError, ValueError):  # a broken translation: the English one
        logger.debug("translation of %r does not fit its fields", text)
        return text.format(**fields)


def _takes_pairs(cls: Any) -> bool:
    """Whether ``cls`` accepts ``(label, value)`` choices: every choice component on Gradio 4+,
    Radio and CheckboxGroup on 3.41 (its Dropdown turns a tuple into a string)."""
    from .gradio_compat import gradio_major

    import gradio as gr

    return gradio_major() >= 4 or cls is not gr.Dropdown


def choices(cls: Any, values: Iterable[str], translate: bool = True) -> List[Any]:
    """Choices for a ``cls`` component whose values stay English while the user reads them in
    the current language: ``(label, value)`` pairs where the component takes them, else the
    translated labels (read back with :func:`value_of`)."""
    values = list(values)
    if not translate or not language():
        return list(values)
    if _takes_pairs(cls):
        return [(t(v), v) for v in values]
    return [t(v) for v in values]


def choice_value(cls: Any, value: str) -> str:
    """The value to give ``cls`` as its current value (a translated label where the component
    holds labels, see :func:`choices`)."""
    if not language() or _takes_pairs(cls):
        return value
    return t(value)


def value_of(chosen: Any, values: Sequence[str]) -> Any:
    """The English value behind ``chosen``: itself when it is one of ``values``, else the value
    whose translation it is (Gradio 3.41's Dropdown holds translated labels)."""
    if chosen in values or not isinstance(chosen, str):
        return chosen
    for value in values:
        if t(value) == chosen:
            return value
    return chosen

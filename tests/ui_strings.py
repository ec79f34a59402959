"""Every English text the tab shows, collected structurally: the built Blocks' components (labels,
choices, info lines, placeholders, button texts, accordion titles, table headers, initial
Markdown), the run-time message table (ui/messages.py) and WebUI's settings labels."""

from __future__ import annotations

import re
from typing import Any, Iterable, Set

_NO_WORDS = re.compile(r"^[\W\d_]*$")  # numbers, punctuation, emoji: nothing to translate


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            if isinstance(v, (list, tuple)) and len(v) == 2:  # (label, value)
                yield from _texts(v[0])
            else:
                yield from _texts(v)


def component_texts(demo) -> Set[str]:
    """The texts of every component of ``demo`` (a built Blocks)."""
    import gradio as gr

    found: Set[str] = set()
    for block in demo.blocks.values():
        for attr in ("label", "info", "placeholder", "headers"):
            found.update(_texts(getattr(block, attr, None)))
        choices = getattr(block, "choices", None)
        if (
            choices
            and not isinstance(block, gr.CheckboxGroup)
            or (
                isinstance(block, gr.CheckboxGroup)
                and getattr(block, "elem_id", "") != "civitai_gallery_nsfw"
            )
        ):
            found.update(_texts(choices or []))
        if isinstance(block, (gr.Button, gr.Markdown)) and isinstance(
            getattr(block, "value", None), str
        ):
            found.add(block.value)
    return {text.strip() for text in found if text and text.strip() and not _NO_WORDS.match(text)}

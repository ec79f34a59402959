"""The controls the Civitai gallery, the Library and the Filters row share, defined once each: the
thumbnail grid, the selected image, its generation-data box and a whole-number field."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .gradio_compat import component
from .i18n import t


def thumbnail_grid(label: str, elem_id: str) -> Any:
    """Five thumbnails a row; a click selects (no Gradio lightbox, no share button)."""
    return component(
        gr.Gallery,
        label=t(label),
        show_label=False,
        elem_id=elem_id,
        columns=5,
        height=560,
        object_fit="cover",
        allow_preview=False,
        show_share_button=False,
        interactive=False,
    )


def selected_image(elem_id: str, **extra: Any) -> Any:
    """The selected image, large (a file path)."""
    return component(
        gr.Image,
        label=t("Selected image"),
        type="filepath",
        interactive=False,
        height=360,
        elem_id=elem_id,
        **extra,
    )


def data_box(label: str, elem_id: str, **extra: Any) -> Any:
    """A read-only text of generation data, with a copy button."""
    return component(
        gr.Textbox,
        label=t(label),
        lines=8,
        max_lines=20,
        interactive=False,
        elem_id=elem_id,
        show_copy_button=True,
        buttons=["copy"],
        **extra,
    )


def count_field(label: str, elem_id: str) -> Any:
    """A whole number from 0 (0: no minimum)."""
    return component(gr.Number, value=0, precision=0, minimum=0, label=t(label), elem_id=elem_id)

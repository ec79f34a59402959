"""The tab's "Filters" row (collapsed by default): the same filters as the CLI flags, read into a
:class:`~..civitai.filters.FilterSpec`, applied to a gallery page, and the line saying how many
images of the page each filter hid.

Stable element ids: ``civitai_gallery_filters`` (the accordion), ``civitai_gallery_filter_base``,
``civitai_gallery_filter_type``, ``civitai_gallery_filter_with_data``,
``civitai_gallery_filter_since``, ``civitai_gallery_filter_until``,
``civitai_gallery_filter_reactions``, ``civitai_gallery_filter_used_with``. The components keep
their values for the browser session; the loaded filters also live in the session's view.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import gradio as gr

from ..civitai.filters import MEDIA_TYPES, FilterSpec
from ..planning import item_filter
from ..planning.item_filter import FilterCounts
from ..records import BASE_MODELS, ImageItem
from .gradio_compat import component
from .i18n import choices, t
from .messages import FILTER_REASONS, say
from . import widgets

# The order of the filter components in an event's inputs (and of the handlers' parameters).
FIELDS = ("base", "type", "with_data", "since", "until", "reactions", "used_with")


def build() -> Dict[str, Any]:
    """Create the Filters accordion in the current Blocks context; its components by name
    (``filter_<field>``)."""
    c: Dict[str, Any] = {}
    with component(gr.Accordion, t("Filters"), open=False, elem_id="civitai_gallery_filters"):
        with gr.Row():
            c["filter_base"] = component(
                gr.Dropdown,
                choices=list(BASE_MODELS),
                value=[],
                multiselect=True,
                label=t("Base models (any)"),
                elem_id="civitai_gallery_filter_base",
                scale=3,
            )
            c["filter_type"] = component(
                gr.Radio,
                choices=choices(gr.Radio, MEDIA_TYPES),
                value="all",
                label=t("Type"),
                elem_id="civitai_gallery_filter_type",
                scale=2,
            )
            c["filter_with_data"] = component(
                gr.Checkbox,
                value=False,
                label=t("Only with generation data"),
                elem_id="civitai_gallery_filter_with_data",
                scale=2,
            )
        with gr.Row():
            c["filter_since"] = component(
                gr.Textbox,
                label=t("Since"),
                placeholder=t("YYYY-MM-DD"),
                max_lines=1,
                elem_id="civitai_gallery_filter_since",
            )
            c["filter_until"] = component(
                gr.Textbox,
                label=t("Until"),
                placeholder=t("YYYY-MM-DD"),
                max_lines=1,
                elem_id="civitai_gallery_filter_until",
            )
            c["filter_reactions"] = widgets.count_field(
                "Min reactions", "civitai_gallery_filter_reactions"
            )
            c["filter_used_with"] = component(
                gr.Textbox,
                label=t("Used with version ids"),
                placeholder=t("e.g. 128713, 62833"),
                max_lines=1,
                elem_id="civitai_gallery_filter_used_with",
            )
    return c


def inputs(c: Mapping[str, Any]) -> List[Any]:
    """The filter components in :data:`FIELDS` order (append them to an event's inputs)."""
    return [c[f"filter_{name}"] for name in FIELDS]


def spec_from_values(*values: Any) -> FilterSpec:
    """The row's values (in :data:`FIELDS` order; missing ones mean "no filter") as a spec;
    ``InvalidQueryError`` with the sentence to show for a bad value."""
    named = dict(zip(FIELDS, values))
    return FilterSpec.build(
        base_models=named.get("base") or None,
        media_type=named.get("type") or "all",
        with_generation_data=bool(named.get("with_data")),
        since=named.get("since") or None,
        until=named.get("until") or None,
        min_reactions=named.get("reactions") or 0,
        used_with=named.get("used_with") or None,
    )


def apply(
    items: Sequence[ImageItem], spec: FilterSpec, nsfw_hidden: int = 0
) -> Tuple[List[ImageItem], Dict[str, int]]:
    """(the items the filters keep, how many each filter hid, the NSFW filter included)."""
    counts = FilterCounts()
    counts.add(item_filter.NSFW, nsfw_hidden)
    kept = []
    for item in items:
        why = item_filter.reason(item, spec) if spec.active else None
        if why is None:
            kept.append(item)
        else:
            counts.add(why)
    return kept, counts.as_dict()


def hidden_text(hidden: Mapping[str, int]) -> str:
    """``8 hidden by filters (5 no generation data, 3 reactions)``; '' when none was hidden."""
    total = sum(hidden.values())
    if not total:
        return ""
    details = ", ".join(
        f"{count} {t(FILTER_REASONS.get(why, why))}" for why, count in hidden.items() if count
    )
    return say("hidden", total=total, details=details)

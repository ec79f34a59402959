"""The tab's "Resources" panel: what the selected image was made with, what the user has, and a
"Download missing" button.

After an image is selected (chained on the gallery's select event, so it runs after the info box
was filled) the panel resolves the image's resources, matches them to the user's files (WebUI's
lists inside WebUI, the ``models_path`` folder standalone) and rewrites the info box with the
user's names, so Send to txt2img pastes ``<lora:my_local_name:w>`` and the local checkpoint.

Element ids: ``civitai_gallery_resources`` (the table), ``civitai_gallery_resources_download``,
``civitai_gallery_resources_confirm``, ``civitai_gallery_resources_status``.
"""

from __future__ import annotations

import html
import logging
from typing import Any, Dict, List, Optional, Tuple

import gradio as gr

from .. import setting
from ..errors import CivitaiGalleryError, InvalidQueryError, SettingsError
from ..metadata.resource_refs import Resource
from ..resources.fetch import civitai_page, fetch_missing, human_size, summarize, total_size
from ..resources.hash_cache import FileHasher
from ..resources.service import ResourcePlan, open_cache, reproduce
from .downloads import get_http_client
from .feedback import _handled, toast_problem
from .persist import settings_place
from .gradio_compat import component, listen, update
from .i18n import t
from .messages import say

logger = logging.getLogger(__name__)

EMPTY = ""  # before a selection the panel is hidden, not an empty box


def resources_html(resources: List[Resource], base_url: str) -> str:
    """One row per resource: ✓ with the user's name, or ✗ with size and Civitai link."""
    if not resources:
        return f"<p class='civitai-resources-empty'>{html.escape(say('resources_none'))}</p>"
    rows = []
    for r in resources:
        present = r.local_path is not None
        mark = "✓" if present else "✗"
        weight = f" ({r.weight:g})" if r.weight is not None and r.type == "lora" else ""
        if present:
            name = html.escape(r.local_name or r.local_path or "")
            detail = f"{html.escape(say('resources_yours'))} <code>{name}</code>"
        else:
            bits = [html.escape(r.file_name or ""), human_size(r.size)]
            page = civitai_page(r, base_url)
            if page:
                bits.append(
                    f"<a href='{html.escape(page, quote=True)}' target='_blank' "
                    f"rel='noopener noreferrer'>{html.escape(say('resources_page'))}</a>"
                )
            if r.note:
                bits.append(html.escape(r.note))
            detail = " · ".join(b for b in bits if b)
        rows.append(
            f"<tr class='{'present' if present else 'missing'}' data-type='{r.type}'>"
            f"<td>{mark}</td><td>{r.type}</td><td>{html.escape(r.label)}{weight}</td>"
            f"<td>{detail}</td></tr>"
        )
    return "<table class='civitai-resources'>" + "".join(rows) + "</table>"


def _models_path() -> Optional[str]:
    value = setting.get("models_path")
    return value or None


def _selected_item(view: Any, record: Any) -> Any:
    image_id = record.get("id") if isinstance(record, dict) else None
    for item in getattr(view, "items", None) or []:
        if image_id is not None and item.id == image_id:
            return item
    return None


def _status(plan: ResourcePlan) -> str:
    missing = plan.missing()
    if not plan.resources:
        return ""
    if not missing:
        return say("resources_all_present", count=len(plan.resources))
    text = say(
        "resources_missing",
        missing=len(missing),
        total=len(plan.resources),
        size=human_size(total_size(missing)),
    )
    if not plan.folders:
        text += " " + say("resources_set_folder", where=settings_place())
    return text


def show_resources(view: Any, record: Any, info: str, progress=gr.Progress()):
    """After a selection: returns (table html, info text with the user's names, plan, status,
    panel visibility: shown from the first selection on)."""
    item = _selected_item(view, record)
    if item is None:
        return EMPTY, info, None, "", update()
    client = get_http_client()

    def hashing(done: int, total: int, name: str) -> None:
        progress((done, total), desc=say("hashing", name=name), unit="bytes")

    try:
        with open_cache(setting.get("images.output_path")) as cache:
            plan = reproduce(
                item,
                client,
                cache,
                _models_path(),
                hash_progress=hashing,
                lookup_max_age=float(setting.get("resources.lookup_max_age_hours")) * 3600,
            )
    except CivitaiGalleryError as exc:
        logger.warning("resources of image %s: %s", item.id, exc)
        return EMPTY, info, None, say("resources_check_failed", error=exc), update(visible=True)
    text = plan.infotext() or info
    table = resources_html(plan.resources, plan.page_base(client))
    return table, text, plan, _status(plan), update(visible=True)


def _status_kept(message: str, *args: Any, **kwargs: Any) -> Tuple[Any, str, Any, Any]:
    """``download_missing``'s fallback: the message in the status box, the rest unchanged."""
    return update(), message, update(), update()


@_handled(_status_kept)
def download_missing(plan: Optional[ResourcePlan], confirmed: bool, progress=gr.Progress()):
    """ "Download missing": returns (table html, status, info text, plan). A refusal or a
    failure is one warning toast and a status line (no Gradio error badge)."""
    if plan is None:
        raise InvalidQueryError(say("resources_select_first"))
    missing = [r for r in plan.missing() if r.status == "resolved"]
    client = get_http_client()
    if not missing:
        return (
            resources_html(plan.resources, plan.page_base(client)),
            say("resources_nothing"),
            plan.infotext(),
            plan,
        )
    if not plan.folders:
        raise SettingsError(say("resources_no_folder", where=settings_place()))
    size = total_size(missing)
    limit_mb = int(setting.get("resources.confirm_over_mb"))
    if size > limit_mb * 1024 * 1024 and not confirmed:
        return (
            resources_html(plan.resources, plan.page_base(client)),
            say("resources_large", size=human_size(size), limit=limit_mb, where=settings_place()),
            plan.infotext(),
            plan,
        )

    def fetching(done: int, total: Optional[int], label: str) -> None:
        if total and progress is not None:
            progress((done, total), desc=say("fetching", name=label, done=done, total=total))

    with open_cache(setting.get("images.output_path")) as cache:
        outcomes = fetch_missing(
            missing,
            plan.folders,
            client,
            FileHasher(cache),
            progress=fetching,
        )
    summary = summarize(outcomes)  # the CLI words the same counts; here in the user's language
    table = resources_html(plan.resources, plan.page_base(client))
    if summary.all_failed:  # nothing came: a toast, and no "Downloaded 0 ... verified"
        status = say(
            "resources_all_failed", count=len(summary.failed), reasons=" ".join(summary.failed)
        )
        toast_problem(status)
        return table, status, plan.infotext(), plan
    status = say("resources_downloaded", count=summary.downloaded, size=human_size(summary.bytes))
    if summary.present:
        status += " " + say("resources_present", count=summary.present)
    if summary.failed:
        status += " " + say("resources_not_downloaded", reasons=" ".join(summary.failed))
        toast_problem(status)
    return table, status, plan.infotext(), plan


def build(c: Dict[str, Any]) -> None:
    """The panel's components (inside the tab's right column); added to ``c``."""
    with component(
        gr.Accordion,
        t("Resources (reproduce this image)"),
        open=True,
        visible=False,  # shown with the first selected image
        elem_id="civitai_gallery_resources_box",
    ) as box:
        c["resources_box"] = box
        c["resources"] = component(gr.HTML, EMPTY, elem_id="civitai_gallery_resources")
        with gr.Row():
            c["resources_download"] = component(
                gr.Button, t("Download missing"), elem_id="civitai_gallery_resources_download"
            )
            c["resources_confirm"] = component(
                gr.Checkbox,
                value=False,
                label=t("Allow large downloads"),
                elem_id="civitai_gallery_resources_confirm",
            )
        c["resources_status"] = component(
            gr.Textbox,
            label=t("Resources"),
            interactive=False,
            lines=1,
            elem_id="civitai_gallery_resources_status",
        )
        c["resources_plan"] = gr.State(None)


def chain(c: Dict[str, Any], event: Any) -> None:
    """Show the resources of the selected image after ``event`` (a selection, or a page change
    that moved the selection to the new page's image)."""
    outputs = [
        c["resources"],
        c["info"],
        c["resources_plan"],
        c["resources_status"],
        c["resources_box"],
    ]
    inputs = [c["state"], c["metadata"], c["info"]]
    if event is not None and hasattr(event, "then"):
        event.then(show_resources, inputs, outputs)
    else:  # pragma: no cover - every supported Gradio returns a dependency with .then
        listen(c["metadata"].change, show_resources, inputs, outputs)


def wire(c: Dict[str, Any], selected: Any) -> None:
    """Chain the panel on the gallery's select event and wire its button."""
    chain(c, selected)
    listen(
        c["resources_download"].click,
        download_missing,
        [c["resources_plan"], c["resources_confirm"]],
        [c["resources"], c["resources_status"], c["info"], c["resources_plan"]],
        concurrency_limit=1,
        concurrency_id="civitai_gallery_resources",
    )

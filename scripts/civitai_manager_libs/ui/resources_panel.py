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
from .actions import _handled
from .gradio_compat import component, listen, update

logger = logging.getLogger(__name__)

EMPTY = "<p class='civitai-resources-empty'>Select an image to see the models it was made with.</p>"


def resources_html(resources: List[Resource], base_url: str) -> str:
    """One row per resource: ✓ with the user's name, or ✗ with size and Civitai link."""
    if not resources:
        return "<p class='civitai-resources-empty'>This image names no resources.</p>"
    rows = []
    for r in resources:
        present = r.local_path is not None
        mark = "✓" if present else "✗"
        weight = f" ({r.weight:g})" if r.weight is not None and r.type == "lora" else ""
        if present:
            detail = f"yours: <code>{html.escape(r.local_name or r.local_path or '')}</code>"
        else:
            bits = [html.escape(r.file_name or ""), human_size(r.size)]
            page = civitai_page(r, base_url)
            if page:
                bits.append(
                    f"<a href='{html.escape(page, quote=True)}' target='_blank' "
                    "rel='noopener noreferrer'>Civitai page</a>"
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
        return f"All {len(plan.resources)} resources are in your models."
    where = "" if plan.folders else " Set models_path (a WebUI models folder) to download them."
    return (
        f"{len(missing)} of {len(plan.resources)} missing ({human_size(total_size(missing))})."
        + where
    )


def show_resources(view: Any, record: Any, info: str, progress=gr.Progress()):
    """After a selection: returns (table html, info text with the user's names, plan, status)."""
    item = _selected_item(view, record)
    if item is None:
        return EMPTY, info, None, ""
    client = get_http_client()

    def hashing(done: int, total: int, name: str) -> None:
        progress((done, total), desc=f"hashing {name}", unit="bytes")

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
        return EMPTY, info, None, f"Could not check the resources: {exc}"
    text = plan.infotext() or info
    return resources_html(plan.resources, plan.page_base(client)), text, plan, _status(plan)


def _status_kept(message: str, *args: Any, **kwargs: Any) -> Tuple[Any, str, Any, Any]:
    """``download_missing``'s fallback: the message in the status box, the rest unchanged."""
    return update(), message, update(), update()


@_handled(_status_kept)
def download_missing(plan: Optional[ResourcePlan], confirmed: bool, progress=gr.Progress()):
    """ "Download missing": returns (table html, status, info text, plan). A refusal or a
    failure is one warning toast and a status line (no Gradio error badge)."""
    if plan is None:
        raise InvalidQueryError("Select an image first.")
    missing = [r for r in plan.missing() if r.status == "resolved"]
    client = get_http_client()
    if not missing:
        return (
            resources_html(plan.resources, plan.page_base(client)),
            "Nothing to download.",
            plan.infotext(),
            plan,
        )
    if not plan.folders:
        raise SettingsError(
            "No models folder: set models_path to your WebUI models folder (Stable-diffusion/, "
            "Lora/, embeddings/, VAE/) in the settings."
        )
    size = total_size(missing)
    limit_mb = int(setting.get("resources.confirm_over_mb"))
    if size > limit_mb * 1024 * 1024 and not confirmed:
        return (
            resources_html(plan.resources, plan.page_base(client)),
            f"The missing files total {human_size(size)}, over {limit_mb} MB (setting "
            "resources.confirm_over_mb): tick 'Allow large downloads' and press again.",
            plan.infotext(),
            plan,
        )

    def fetching(done: int, total: Optional[int], label: str) -> None:
        if total:
            progress((done, total), desc=f"{label}: {done} of {total} bytes", unit="bytes")

    with open_cache(setting.get("images.output_path")) as cache:
        outcomes = fetch_missing(
            missing,
            plan.folders,
            client,
            FileHasher(cache),
            progress=fetching,
        )
    status = summarize(outcomes).text  # says so when every missing file failed
    return resources_html(plan.resources, plan.page_base(client)), status, plan.infotext(), plan


def build(c: Dict[str, Any]) -> None:
    """The panel's components (inside the tab's right column); added to ``c``."""
    with component(
        gr.Accordion,
        "Resources (reproduce this image)",
        open=True,
        elem_id="civitai_gallery_resources_box",
    ):
        c["resources"] = component(gr.HTML, EMPTY, elem_id="civitai_gallery_resources")
        with gr.Row():
            c["resources_download"] = component(
                gr.Button, "Download missing", elem_id="civitai_gallery_resources_download"
            )
            c["resources_confirm"] = component(
                gr.Checkbox,
                value=False,
                label="Allow large downloads",
                elem_id="civitai_gallery_resources_confirm",
            )
        c["resources_status"] = component(
            gr.Textbox,
            label="Resources",
            interactive=False,
            lines=1,
            elem_id="civitai_gallery_resources_status",
        )
        c["resources_plan"] = gr.State(None)


def chain(c: Dict[str, Any], event: Any) -> None:
    """Show the resources of the selected image after ``event`` (a selection, or a page change
    that moved the selection to the new page's image)."""
    outputs = [c["resources"], c["info"], c["resources_plan"], c["resources_status"]]
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

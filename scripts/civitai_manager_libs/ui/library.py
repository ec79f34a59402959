"""The tab's *Library* mode: search the images saved in output folders, offline.

Beside the Civitai gallery (the *Mode* radio switches between them), a search box with the CLI's
filters (``python main.py search``) over the folders' search indexes (export/library.py), results
as a gallery of the local files, and for the selected image its infotext with your model names
(resources/offline.py: cached look-ups only), its full record and the resources panel's table.
Inside WebUI, Send to txt2img / img2img. Nothing here builds an HTTP client or asks Civitai.

Thumbnails come from ``.thumbnails/`` beside the image when a download made them, else are made
on demand; both are written to ``<gallery_cache_path>/library/`` (through store/confined) so the
app serves them whatever folder the image is in.

Element ids: ``civitai_gallery_mode``, ``civitai_library`` (the mode's column),
``civitai_library_query``, ``civitai_library_search``, ``civitai_library_folders``,
``civitai_library_lora``, ``civitai_library_model``, ``civitai_library_tag``,
``civitai_library_base_model``, ``civitai_library_sampler``, ``civitai_library_creator``,
``civitai_library_since``, ``civitai_library_min_reactions``, ``civitai_library_nsfw``,
``civitai_library_status``, ``civitai_library_gallery``, ``civitai_library_preview``,
``civitai_library_info``, ``civitai_library_metadata``, ``civitai_library_resources``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import gradio as gr
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import setting
from ..errors import CivitaiGalleryError, InvalidQueryError
from ..export.library import search_folders
from ..export.source import load_record
from ..metadata.infotext import to_infotext
from ..records import NSFW_LEVELS
from ..resources.offline import reproduce_offline
from ..store import confined
from ..store.archive import Archive, archive_path
from ..store.library_query import Hit, LibraryQuery
from ..store.resource_cache import ResourceCache
from .actions import no_generation_data
from .feedback import _handled
from .gradio_compat import component, listen, update
from .i18n import choice_value, choices, t, value_of
from .messages import say
from . import widgets

logger = logging.getLogger(__name__)

MODES = ("Civitai", "Library")
RESULTS = 200  # images a search shows (the best ones)
THUMB_SIZE = (256, 256)
PREVIEW_SIZE = (1024, 1024)
HINT = 'neon city, "cinematic lighting", knight OR spirit, -rain, neo*'


@dataclass
class LibraryView:
    """What the Library shows: the hits (folder, hit) in gallery order and the selection."""

    hits: List[Tuple[str, Hit]] = field(default_factory=list)
    selected: Optional[int] = None


# ------------------------------------------------------------------------------------ pictures


def _cache_root() -> str:
    return os.path.abspath(str(setting.get("gallery_cache_path")))


def _beside(path: str) -> Optional[str]:
    """The thumbnail a download wrote beside the image (``.thumbnails/<stem>.jpg|webp``)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    for ext in (".jpg", ".webp"):
        candidate = os.path.join(os.path.dirname(path), ".thumbnails", stem + ext)
        if os.path.isfile(candidate):
            return candidate
    return None


def _placeholder(root: str, label: str) -> str:
    target = os.path.join(root, "library", f"_{label}.png")
    if not os.path.isfile(target):
        buffer = io.BytesIO()
        Image.new("RGB", THUMB_SIZE, (96, 96, 96)).save(buffer, "PNG")
        confined.ensure_dir(os.path.dirname(target), root)
        confined.write_atomic(target, buffer.getvalue(), root)
    return target


def picture(path: Optional[str], size: Tuple[int, int] = THUMB_SIZE) -> Optional[str]:
    """A copy of ``path`` at most ``size``, in the gallery cache (made once per file version); a
    grey placeholder for a video or an unreadable file; None when the cache cannot be written."""
    root = _cache_root()
    try:
        if not path or not os.path.isfile(path):
            return _placeholder(root, "missing")
        info = os.stat(path)
        key = hashlib.sha1(f"{path}|{info.st_size}|{info.st_mtime_ns}|{size}".encode()).hexdigest()
        target = os.path.join(root, "library", key[:2], key + ".jpg")
        if os.path.isfile(target):
            return target
        source = (_beside(path) or path) if size == THUMB_SIZE else path
        try:
            with Image.open(source) as image:
                if image.format == "JPEG":
                    image.draft("RGB", (size[0] * 2, size[1] * 2))
                image.seek(0)
                thumb = ImageOps.exif_transpose(image)
                thumb.thumbnail(size)
                thumb = thumb.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            return _placeholder(root, "video")  # a video, or not a picture Pillow reads
        buffer = io.BytesIO()
        thumb.save(buffer, "JPEG", quality=88)
        confined.ensure_dir(os.path.dirname(target), root)
        confined.write_atomic(target, buffer.getvalue(), root)
        return target
    except OSError as exc:
        logger.warning("no picture for %s in %s: %s", path, root, exc)
        return None


# ------------------------------------------------------------------------------------ search


def _folders(text: Any) -> List[str]:
    parts = [p.strip() for p in str(text or "").replace(";", "\n").splitlines() if p.strip()]
    folders = parts or [str(setting.get("images.output_path"))]
    resolved = []
    for folder in folders:
        path = os.path.abspath(os.path.expanduser(folder))
        if not os.path.isfile(archive_path(path)):
            raise InvalidQueryError(say("library_no_archive", path=path))
        if path not in resolved:
            resolved.append(path)
    return resolved


def _names(text: Any) -> Tuple[str, ...]:
    return tuple(p.strip() for p in str(text or "").split(",") if p.strip())


#: The filter fields below the search box, in the order of :func:`_query`'s parameters.
FILTERS = (
    "lora",
    "model",
    "tag",
    "base_model",
    "sampler",
    "creator",
    "since",
    "min_reactions",
    "nsfw",
)


def _query(
    text: Any,
    lora: Any,
    model: Any,
    tag: Any,
    base_model: Any,
    sampler: Any,
    creator: Any,
    since: Any,
    min_reactions: Any,
    nsfw: Any,
) -> LibraryQuery:
    from ..civitai.filters import parse_count, parse_date

    levels = tuple(nsfw or ())
    return LibraryQuery(
        text=str(text or "").strip(),
        loras=_names(lora),
        models=_names(model),
        tags=_names(tag),
        base_models=_names(base_model),
        samplers=_names(sampler),
        creators=_names(creator),
        nsfw_levels=() if set(levels) >= set(NSFW_LEVELS) else levels,
        since_ms=parse_date(str(since).strip()) if since and str(since).strip() else None,
        min_reactions=parse_count(min_reactions),
    )


def _caption(hit: Hit) -> str:
    prompt = " ".join((hit.prompt or "").split())
    return f"#{hit.image_id} {hit.creator or ''}: {prompt[:80]}".strip()


def _search_kept(message: str, *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
    return (update(), update(), message, update(), update(), update(), update())


@_handled(_search_kept)
def search(text: Any, folders: Any, *filters: Any) -> Tuple[Any, ...]:
    """Search (``filters``: the values of :data:`FILTERS`): (state, gallery, status, preview,
    info, metadata, resources html)."""
    query = _query(text, *filters)
    hits, warnings = search_folders(_folders(folders), query, RESULTS)
    gallery = [(picture(hit.path), _caption(hit)) for _folder, hit in hits]
    gallery = [(thumb, caption) for thumb, caption in gallery if thumb]
    if len(hits) == RESULTS:
        status = say("library_found_best", count=len(hits))
    else:
        status = say("library_found", count=len(hits)) if hits else say("library_no_results")
    if warnings:
        status += "\n\n" + "\n\n".join(f"⚠ {w}" for w in warnings)
    from .resources_panel import EMPTY

    return LibraryView(hits), gallery, status, None, "", None, EMPTY


# ------------------------------------------------------------------------------------ selection


def image_data(folder: str, hit: Hit) -> Tuple[str, Dict[str, Any], str]:
    """(infotext with your model names, the record, resources table html) of a saved image."""
    from .resources_panel import resources_html

    with Archive(archive_path(folder), read_only=True) as archive:
        row = archive.get_image(hit.image_id)
    if row is None or not hit.path:
        raise InvalidQueryError(say("library_gone", id=hit.image_id, folder=folder))
    record = load_record(row, hit.path, folder)
    try:
        cache: Optional[ResourceCache] = ResourceCache(archive_path(folder))
    except CivitaiGalleryError as exc:  # a read-only folder: no cached look-ups, no hashes
        logger.debug("no resource cache in %s: %s", folder, exc)
        cache = None
    try:
        plan = reproduce_offline(record, cache, setting.get("models_path") or None)
    finally:
        if cache is not None:
            cache.close()
    text = plan.infotext() or (to_infotext(record) if record.get("generation") else "")
    table = resources_html(plan.resources, str(setting.get("civitai_base_url")))
    return text or no_generation_data(), record, table


def _nothing(message: str, view: Any = None, *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
    return view, None, "", None, update(), None


@_handled(_nothing)
def select(view: Optional[LibraryView], evt: gr.SelectData) -> Tuple[Any, ...]:
    """A result was clicked: (state, preview, infotext, record, resources html, picture for
    img2img: the original file)."""
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if view is None or not isinstance(index, int) or not 0 <= index < len(view.hits):
        return view, None, "", None, update(), None
    folder, hit = view.hits[index]
    text, record, table = image_data(folder, hit)
    original = hit.path if text != no_generation_data() else None
    return (
        replace(view, selected=index),
        picture(hit.path, PREVIEW_SIZE),
        text,
        record,
        table,
        original,
    )


def switch_mode(mode: str) -> Tuple[Any, Any]:
    """Show the Civitai gallery or the Library."""
    library = value_of(mode, MODES) == MODES[1]
    return update(visible=not library), update(visible=library)


# ------------------------------------------------------------------------------------ layout


def mode_radio() -> Any:
    return component(
        gr.Radio,
        choices=choices(gr.Radio, MODES),
        value=choice_value(gr.Radio, MODES[0]),
        label=t("Mode"),
        show_label=False,
        elem_id="civitai_gallery_mode",
    )


def build(c: Dict[str, Any], webui: bool = False) -> None:
    """The Library's components (hidden until the mode radio picks it), added to ``c``."""
    with component(gr.Column, visible=False, elem_id="civitai_library") as column:
        c["library"] = column
        with gr.Row():
            c["lib_query"] = component(
                gr.Textbox,
                label=t("Search your downloads (prompt, models, LoRAs, creator, tags, sampler)"),
                placeholder=HINT,
                lines=1,
                max_lines=1,
                elem_id="civitai_library_query",
                scale=5,
            )
            c["lib_search"] = component(
                gr.Button, t("Search"), variant="primary", elem_id="civitai_library_search", scale=1
            )
        with component(gr.Accordion, t("Folders and filters"), open=False):
            c["lib_folders"] = component(
                gr.Textbox,
                value=lambda: str(setting.get("images.output_path")),
                label=t("Output folders (one per line)"),
                lines=1,
                max_lines=4,
                elem_id="civitai_library_folders",
            )
            with gr.Row():
                for key, label in (
                    ("lora", "LoRA"),
                    ("model", "Model (name or id)"),
                    ("tag", "Tag"),
                    ("base_model", "Base model"),
                ):
                    c[f"lib_{key}"] = component(
                        gr.Textbox, label=t(label), lines=1, elem_id=f"civitai_library_{key}"
                    )
            with gr.Row():
                c["lib_sampler"] = component(
                    gr.Textbox, label=t("Sampler"), lines=1, elem_id="civitai_library_sampler"
                )
                c["lib_creator"] = component(
                    gr.Textbox, label=t("Creator"), lines=1, elem_id="civitai_library_creator"
                )
                c["lib_since"] = component(
                    gr.Textbox,
                    label=t("Since (YYYY-MM-DD)"),
                    lines=1,
                    elem_id="civitai_library_since",
                )
                c["lib_min_reactions"] = widgets.count_field(
                    "Min reactions", "civitai_library_min_reactions"
                )
                c["lib_nsfw"] = component(
                    gr.CheckboxGroup,
                    choices=list(NSFW_LEVELS),
                    value=list(NSFW_LEVELS),
                    label=t("NSFW levels"),
                    elem_id="civitai_library_nsfw",
                )
        c["lib_status"] = component(gr.Markdown, "", elem_id="civitai_library_status")
        with gr.Row():
            with component(gr.Column, scale=3):
                c["lib_gallery"] = widgets.thumbnail_grid("Saved images", "civitai_library_gallery")
            with component(gr.Column, scale=2):
                c["lib_preview"] = widgets.selected_image("civitai_library_preview")
                c["lib_info"] = widgets.data_box(
                    "Generation data, with your model names", "civitai_library_info"
                )
                c["lib_picture"] = component(
                    gr.Image, type="filepath", visible=False, elem_id="civitai_library_picture"
                )
                if webui:
                    c.update(_send_buttons(c["lib_info"], c["lib_picture"]))
                c["lib_resources"] = component(gr.HTML, "", elem_id="civitai_library_resources")
                c["lib_metadata"] = component(
                    gr.JSON, label=t("Full record"), elem_id="civitai_library_metadata"
                )
        c["lib_state"] = gr.State(LibraryView())


def _send_buttons(info: Any, picture_box: Any) -> Dict[str, Any]:
    """WebUI's send-to-txt2img / img2img buttons for the Library's infotext and file."""
    from .send_to import paste_buttons

    buttons = paste_buttons("civitai_library_send_row", info, lambda: picture_box)
    return {f"lib_send_to_{name}": button for name, button in buttons.items()}


def wire(c: Dict[str, Any]) -> None:
    listen(c["mode"].change, switch_mode, [c["mode"]], [c["root"], c["library"]])
    inputs = [c["lib_query"], c["lib_folders"]] + [c[f"lib_{name}"] for name in FILTERS]
    outputs = [
        c[name]
        for name in (
            "lib_state",
            "lib_gallery",
            "lib_status",
            "lib_preview",
            "lib_info",
            "lib_metadata",
            "lib_resources",
        )
    ]
    for trigger in (c["lib_search"].click, c["lib_query"].submit):
        listen(trigger, search, inputs, outputs)
    selected = [
        c["lib_state"],
        c["lib_preview"],
        c["lib_info"],
        c["lib_metadata"],
        c["lib_resources"],
        c["lib_picture"],
    ]
    listen(c["lib_gallery"].select, select, [c["lib_state"]], selected)
    if "lib_send_to_txt2img" in c:  # inside WebUI: the buttons work only with infotext
        from .send_to import buttons_state

        buttons = [c["lib_send_to_txt2img"], c["lib_send_to_img2img"]]
        listen(c["lib_info"].change, buttons_state, [c["lib_info"]], buttons)

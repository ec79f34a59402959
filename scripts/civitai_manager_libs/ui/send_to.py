"""Inside WebUI: what the Send to txt2img / img2img buttons get for the selected image.

WebUI pastes whatever the infotext box holds, and with an empty box it pastes the *last
generation* (``params.txt``). So an image without generation data leaves the box empty, says so in
a note beside it, and the send buttons are disabled while the box is empty. Send to img2img also
sends the picture, as WebUI's own send buttons do: the original upload, fetched when the image is
selected, goes into a hidden image component that the img2img binding reads.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Optional, Tuple

import gradio as gr

from .. import setting
from ..civitai.image_urls import original_url
from ..errors import CivitaiGalleryError
from ..records import ImageItem
from ..store import confined
from .actions import GalleryView, no_generation_data, select_image
from .feedback import _handled
from .downloads import get_http_client
from .gradio_compat import component, update

logger = logging.getLogger(__name__)


def buttons_state(text: Optional[str]) -> Tuple[Any, Any]:
    """Updates for the txt2img and img2img send buttons: usable only with infotext in the box."""
    usable = bool(text and text.strip())
    return update(interactive=usable), update(interactive=usable)


def original_picture(item: ImageItem) -> Optional[str]:
    """The selected image's original upload, in the gallery cache (downloaded once); None when
    it cannot be had (the reason is logged, the text is still sent)."""
    if not item.url or (item.type or "image") != "image":
        return None
    try:
        url = original_url(item.url)
        path = setting.get_image_url_to_gallery_file(url)
        if not os.path.isfile(path):
            confined.ensure_root(os.path.dirname(path))
            get_http_client().fetch_to_file(url, path)
    except (CivitaiGalleryError, OSError) as exc:
        logger.warning("image %s: the picture for img2img could not be fetched: %s", item.id, exc)
        return None
    return path


def _nothing_selected(message: str, view: Any = None, *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
    return view, None, "", None, update(value="", visible=False), None


def _send_unchanged(message: str, *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
    return "", update(), update(value="", visible=False), None  # send buttons off


@_handled(_nothing_selected)
def select_for_webui(view: GalleryView, evt: gr.SelectData) -> Tuple[Any, ...]:
    """A thumbnail was clicked inside WebUI. Returns what :func:`actions.select_image` returns
    (state, preview, infotext, metadata), with the infotext "" when the image has no generation
    data, plus (note update, picture path for img2img)."""
    view, preview, text, record = select_image(view, evt)
    return (view, preview) + send_outputs(view, text, record)


@_handled(_send_unchanged)
def follow_page(view: Optional[GalleryView], text: Any, record: Any) -> Tuple[Any, ...]:
    """After a page change (the selection moved to the new page's image): (infotext or "",
    metadata, note update, picture for img2img), so the send buttons match what is shown."""
    return send_outputs(view, text, record)


def send_outputs(view: Optional[GalleryView], text: Any, record: Any) -> Tuple[Any, ...]:
    """(infotext or "", metadata, note update, picture for img2img) for the selected image of
    ``view`` (its ``selected`` position) whose data the tab shows as ``text`` and ``record``."""
    index = getattr(view, "selected", None)
    items = getattr(view, "items", None) or []
    if record is None or index is None or not 0 <= index < len(items):
        return "", record, update(value="", visible=False), None
    if text == no_generation_data():
        return "", record, update(value=text, visible=True), None
    return text, record, update(value="", visible=False), original_picture(items[index])


def send_components() -> Dict[str, Any]:
    """The note and the hidden picture the send buttons work with (created in the current
    Blocks context)."""
    return {
        "send_note": component(gr.Markdown, "", visible=False, elem_id="civitai_gallery_send_note"),
        "send_picture": component(
            gr.Image, type="pil", visible=False, elem_id="civitai_gallery_send_picture"
        ),
    }


def paste_buttons(row_id: str, info: Any, picture: Callable[[], Any]) -> Dict[str, Any]:
    """WebUI's Send to txt2img / img2img buttons (by tab name) in a row ``row_id``, created off
    (nothing is selected yet: an empty box would paste WebUI's last generation) and bound the
    WebUI way: both paste the infotext of ``info``; img2img also gets the image component that
    ``picture()`` gives (called once the row is made). {} on a WebUI without ``ParamBinding``."""
    try:
        from modules import infotext_utils as paste
    except ImportError as exc:
        if not (exc.name or "").startswith("modules"):
            raise
        try:  # A1111 before 1.8 names the module differently
            from modules import generation_parameters_copypaste as paste
        except ImportError as old_exc:
            if not (old_exc.name or "").startswith("modules"):
                raise
            logger.warning("WebUI's infotext module was not found; no send-to buttons")
            return {}
    if not hasattr(paste, "ParamBinding"):
        logger.warning("this WebUI is too old for send-to buttons (no ParamBinding)")
        return {}
    with component(gr.Row, elem_id=row_id):
        buttons = paste.create_buttons(["txt2img", "img2img"])
    image = picture()
    for tabname, button in buttons.items():
        try:
            button.interactive = False
        except AttributeError:
            pass
        paste.register_paste_params_button(
            paste.ParamBinding(
                paste_button=button,
                tabname=tabname,
                source_text_component=info,
                # img2img gets the picture too (txt2img has no image input)
                source_image_component=image if tabname == "img2img" else None,
            )
        )
    return buttons

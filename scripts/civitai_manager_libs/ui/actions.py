"""The Civitai gallery's browsing handlers: Load, the version dropdown, Next / Previous, the
selected image (preview, generation data) and the template box's help.

Handlers take plain values and a :class:`GalleryView` (held per browser session in ``gr.State``;
there is no module-level page state) and return the new values in the order documented on each.
They call the service (civitai/query, civitai/api, ui/downloads, metadata) and never talk HTTP
themselves; a failure leaves every component as it was (``feedback._handled`` with
:func:`_keep_page`). The bulk download is ``ui/download_job.py``, the save options
``ui/save_options.py``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlencode

import gradio as gr

from .. import setting
from ..errors import CivitaiGalleryError, InvalidQueryError, TemplateError
from . import filters_row
from .downloads import fetch_preview, fetch_thumbnails, get_http_client, is_video, pre_loading
from .feedback import _handled
from .gradio_compat import update, warn_user
from .i18n import choice_value, choices, value_of
from .messages import say
from ..civitai.query import Target, parse_query, target_to_params
from ..records import NSFW_LEVELS, ImageItem
from ..transport.client_options import configured_fronts

logger = logging.getLogger(__name__)

SORTS = ("Most Reactions", "Most Comments", "Most Collected", "Newest", "Oldest")
#: The sort a Load uses unless the user picks another: the order Civitai gives a whole-model
#: listing whatever it is asked (so the first Load of a model brings no "ignores the sort" notice).
DEFAULT_SORT = "Newest"
PERIODS = ("AllTime", "Year", "Month", "Week", "Day")
ALL_VERSIONS = "All versions"
_VERSION_ID_RE = re.compile(r"\[(\d+)\]\s*$")
NO_SELECTION = ""


def no_generation_data() -> str:
    """The info box's text for an image without generation data (in the user's language)."""
    return say("no_generation_data")


@dataclass
class GalleryView:
    """What one browser session is looking at (kept in ``gr.State``)."""

    query: str = ""
    target: Optional[Target] = None
    title: str = ""
    params: Dict[str, Any] = field(default_factory=dict)
    nsfw_levels: List[str] = field(default_factory=list)
    cursor: Optional[str] = None
    previous: List[Optional[str]] = field(default_factory=list)
    next_cursor: Optional[str] = None
    items: List[ImageItem] = field(default_factory=list)
    versions: List[Tuple[int, str]] = field(default_factory=list)
    model_id: Optional[int] = None
    model_name: Optional[str] = None
    selected: Optional[int] = None  # the highlighted thumbnail (Gradio keeps it across pages)
    filters: Any = None  # the Filters row's FilterSpec (None: no filter)
    hidden: Dict[str, int] = field(default_factory=dict)  # this page's images hidden, by filter
    notice: Optional[str] = None  # the order Civitai really gives, when not the one chosen
    source: Any = None  # a web listing (collection, post, tag, ...): civitai/web_listing.py

    @property
    def page_number(self) -> int:
        return len(self.previous) + 1


def _keep_page(view_at: int, extra: int = 0) -> Callable[..., Tuple]:
    """Fallback of the paging handlers: the same state, every other output unchanged."""

    def fallback(message: str, *args, **kwargs) -> Tuple:
        view = args[view_at] if len(args) > view_at else kwargs.get("view")
        return (view,) + tuple(update() for _ in range(len(PAGE_OUTPUTS) - 1 + extra))

    return fallback


# -- browsing -------------------------------------------------------------------------------------


def _api(levels: Optional[Sequence[str]] = None):
    """The API for one action; its look-ups go to the front of the ticked ``levels``."""
    from ..civitai.api import CivitaiAPI

    return CivitaiAPI(
        client=get_http_client(),
        levels=levels or None,
        page_size=int(setting.get("gallery_page_size")),
        default_levels=setting.get("images.default_nsfw_filter"),
    )


def _levels(nsfw: Optional[Sequence[str]]) -> List[str]:
    levels = [level for level in (nsfw or []) if level in NSFW_LEVELS]
    if not levels:
        raise InvalidQueryError(say("tick_level"))
    return levels


def _listing_params(target: Target, sort: Optional[str], period: Optional[str]) -> Dict[str, Any]:
    params = target_to_params(target)
    sort, period = value_of(sort, SORTS), value_of(period, PERIODS)
    if sort in SORTS:
        params["sort"] = sort
    if period in PERIODS:
        params["period"] = period
    return params


def _version_label(version_id: int, name: str) -> str:
    return f"{name} [{version_id}]"


def _version_choices(view: GalleryView) -> List[Any]:
    """The version dropdown's choices: "All versions" (in the user's language) and each version."""
    return choices(gr.Dropdown, [ALL_VERSIONS]) + [
        _version_label(vid, name) for vid, name in view.versions
    ]


def _describe(target: Target, model_name: Optional[str] = None) -> str:
    """What is loaded, in the tab's words: ``DreamShaper (model 4201)``, ``creator 'x'``."""
    if model_name:
        return say("title_model", name=model_name, id=target.value)
    if target.kind == "model" and target.version_id is not None:
        return say("title_model_version", id=target.value, version=target.version_id)
    if target.kind == "model":
        return say("title_other", kind="model", id=target.value)
    if target.kind == "version":
        return say("title_version", id=target.value)
    if target.kind == "user":
        return say("title_user", name=target.value)
    if target.kind == "filter":
        return say("title_filter")
    if target.kind == "image":
        return say("title_image", id=target.value)
    return say("title_other", kind=target.kind, id=target.value)


def _fetch_page(view: GalleryView) -> GalleryView:
    page = _api().get_image_page(
        view.params,
        cursor=view.cursor,
        limit=int(setting.get("gallery_page_size")),
        nsfw_levels=view.nsfw_levels,
        source=view.source,
    )
    items, hidden = filters_row.apply(
        page.items,
        filters_row.spec_from_values() if view.filters is None else view.filters,
        page.nsfw_hidden,
    )
    return replace(
        view,
        items=[_with_names(view, i) for i in items],
        next_cursor=page.next_cursor,
        hidden=hidden,
        notice=page.notice,
    )


def _filtered_params(params: Dict[str, Any], spec: Any) -> Dict[str, Any]:
    """The listing's params plus what Civitai filters itself (base models, type)."""
    return spec.server_params(params) if spec is not None and spec.active else params


def _with_names(view: GalleryView, item: ImageItem) -> ImageItem:
    """Fill the model and version names the listing does not carry (for the metadata panel)."""
    changes: Dict[str, Any] = {}
    if item.model_name is None and view.model_name and item.model_id == view.model_id:
        changes["model_name"] = view.model_name
    names = dict(view.versions)
    version_id = item.version_id
    if version_id is None:  # model listings name the versions only in the raw item
        listed = item.raw.get("modelVersionIds") if isinstance(item.raw, dict) else None
        known = [v for v in listed or [] if v in names]
        if known:
            version_id = changes["version_id"] = known[0]
    if item.version_name is None and version_id in names:
        changes["version_name"] = names[version_id]
    return replace(item, **changes) if changes else item


def _gallery_value(view: GalleryView) -> Tuple[GalleryView, List[Tuple[str, str]]]:
    """Thumbnails of the page from the gallery cache (fetched concurrently when missing)."""
    paths, result = fetch_thumbnails(item.url for item in view.items)
    shown_items, value = [], []
    for item, path in zip(view.items, paths):
        if path is None:
            continue
        shown_items.append(item)
        value.append((path, f"#{item.id} · {item.nsfw_level}" if item.id else item.nsfw_level))
    if result.failed:
        warn_user(say("thumbs_failed", count=result.failed))
    return replace(view, items=shown_items), value


def _start_prefetch(view: GalleryView) -> None:
    """Fill the gallery cache with the next page's thumbnails in the background (REST listings:
    ``pre_loading`` asks the images endpoint, which does not list a web listing's page)."""
    if not view.next_cursor or view.source is not None:
        return
    page_url = "/api/v1/images?" + urlencode(view.params)
    paging = {
        "next_cursor": view.next_cursor,
        "limit": int(setting.get("gallery_page_size")),
        "nsfw_levels": list(view.nsfw_levels),
    }

    def run() -> None:
        try:
            pre_loading(page_url, paging)
        except CivitaiGalleryError as exc:
            logger.info("prefetching the next gallery page failed: %s", exc)

    threading.Thread(target=run, name="civitai-gallery-prefetch", daemon=True).start()


PAGE_OUTPUTS = ("state", "gallery", "page", "prev", "next", "preview", "info", "metadata")


def _page_outputs(view: GalleryView, value: List[Tuple[str, str]]) -> Tuple:
    """(state, gallery, page label, prev button, next button, preview, info, metadata).

    Gradio keeps the highlighted position when the gallery gets a new page (and on 3.x/4.x a
    click on it then fires no select event), so the preview and data follow the highlight: they
    show the new page's image at that position, never an empty box beside a highlight."""
    count = len(view.items)
    if count:
        name = "page_one_image" if count == 1 else "page_images"
        label = say(name, title=view.title, page=view.page_number, count=count)
    else:
        name = "page_empty_filters" if view.filters and view.filters.active else "page_empty"
        label = say(name, title=view.title, page=view.page_number)
    hidden = filters_row.hidden_text(view.hidden)
    if hidden:
        label += f"; {hidden}"
    if view.notice:  # the sort Civitai ignores on a whole-model listing
        label += "  \n" + say("sort_ignored", sort=view.params.get("sort", ""))
    preview, text, record = None, NO_SELECTION, None
    if view.selected is not None and 0 <= view.selected < len(view.items):
        item = view.items[view.selected]
        text, record = image_details(item)
        preview = preview_path(item)
    return (
        view,
        value,
        label,
        update(interactive=bool(view.previous)),
        update(interactive=bool(view.next_cursor)),
        preview,
        text,
        record,
    )


def _show(view: GalleryView) -> Tuple:
    view = _fetch_page(view)
    view, value = _gallery_value(view)
    _start_prefetch(view)
    return _page_outputs(view, value)


@_handled(_keep_page(4, extra=1))
def load_gallery(
    query: str, nsfw: Sequence[str], sort: str, period: str, old: GalleryView, *filters: Any
):
    """Load button / Enter in the query box; ``filters``: the Filters row's values.

    Returns the page outputs (:data:`PAGE_OUTPUTS`) and the version dropdown.
    """
    target = parse_query(query or "", extra_hosts=configured_fronts())
    levels = _levels(nsfw)
    spec = filters_row.spec_from_values(*filters)
    api = _api(levels)
    version_choice = functools.partial(choice_value, gr.Dropdown)
    versions: List[Tuple[int, str]] = []
    model_name = None
    model_id = None
    if target.kind == "model":
        model_id = target.value
    elif target.kind == "version":
        model_id = api.get_model_version(target.value).model_id
    if model_id is not None:
        model = api.get_model(model_id)
        model_name = model.name
        versions = [(v.id, v.name) for v in model.versions]
    view = GalleryView(
        query=query,
        target=target,
        title=_describe(target, model_name),
        params=_filtered_params(_listing_params(target, sort, period), spec),
        nsfw_levels=levels,
        versions=versions,
        model_id=model_id,
        model_name=model_name,
        selected=old.selected if isinstance(old, GalleryView) else None,
        filters=spec,
        source=_web_source(target),
    )
    outputs = _show(view)
    selected = _selected_version(target)
    dropdown = update(
        choices=_version_choices(view),
        value=next(
            (c for c in _version_choices(view) if str(c).endswith(f"[{selected}]")),
            version_choice(ALL_VERSIONS),
        ),
        visible=bool(versions),
        interactive=True,
    )
    return outputs + (dropdown,)


def _web_source(target: Target) -> Any:
    """The web listing of a collection, post, tag, gallery link, ... (None for REST targets)."""
    from ..civitai.web_listing import KINDS, WebListing

    if target.kind not in KINDS:
        return None
    return WebListing(target.kind, target.value, dict(target.params or {}))


def template_preview(template: Optional[str], view: Any) -> str:
    """The template box's help: every field, and the path the selected image would get."""
    from ..store.paths import FIELDS, PathTemplate, fields_from_item, safe_join

    fields = say(
        "template_fields",
        fields=" ".join("{" + name + "}" for name in FIELDS),
        examples="{id:>010}, {model_name:.40}, {date:%Y-%m}",
    )
    text = (template or "").strip() or str(setting.get("images.path_template"))
    try:
        parsed = PathTemplate(text)
    except TemplateError as exc:
        return f"{fields}\n\n{exc}"
    items = view.items if isinstance(view, GalleryView) else []
    index = view.selected if isinstance(view, GalleryView) else None
    if not isinstance(index, int) or not 0 <= index < len(items):
        return f"{fields}\n\n" + say("template_select")
    item = items[index]
    root = os.path.abspath(os.path.expanduser(str(setting.get("images.output_path"))))
    try:
        where = safe_join(root, parsed.render(fields_from_item(item)))
    except TemplateError as exc:
        return f"{fields}\n\n" + say("template_image_error", id=item.id, error=exc)
    return f"{fields}\n\n" + say("template_would_save", id=item.id, path=where)


def _selected_version(target: Target) -> Optional[int]:
    if target.kind == "version":
        return target.value
    return target.version_id


@_handled(_keep_page(4))
def select_version(
    version: str, nsfw: Sequence[str], sort: str, period: str, view: GalleryView, *filters: Any
):
    """Version dropdown changed. Returns the page outputs (see :func:`_page_outputs`)."""
    spec = filters_row.spec_from_values(*filters)
    if view is None or view.target is None or not view.versions:
        raise InvalidQueryError(say("load_first_version"))
    model_id = view.target.value if view.target.kind == "model" else None
    if model_id is None:  # loaded from a version link: the model is the version's
        model_id = _api(_levels(nsfw)).get_model_version(view.target.value).model_id
    match = _VERSION_ID_RE.search(version or "")
    target = Target("model", model_id, version_id=int(match.group(1)) if match else None)
    if target == view.target:
        return _page_outputs(view, _gallery_value(view)[1])
    new = replace(
        view,
        target=target,
        params=_filtered_params(_listing_params(target, sort, period), spec),
        filters=spec,
        nsfw_levels=_levels(nsfw),
        cursor=None,
        previous=[],
        next_cursor=None,
        items=[],
    )
    return _show(new)


@_handled(_keep_page(0))
def next_page(view: GalleryView):
    """Next button. Returns the page outputs."""
    if view is None or view.target is None:
        raise InvalidQueryError(say("load_first"))
    if not view.next_cursor:
        raise InvalidQueryError(say("last_page"))
    new = replace(view, previous=view.previous + [view.cursor], cursor=view.next_cursor)
    return _show(new)


@_handled(_keep_page(0))
def prev_page(view: GalleryView):
    """Previous button. Returns the page outputs."""
    if view is None or view.target is None or not view.previous:
        raise InvalidQueryError(say("first_page"))
    new = replace(view, previous=view.previous[:-1], cursor=view.previous[-1])
    return _show(new)


# -- the selected image ---------------------------------------------------------------------------


def image_details(item: ImageItem) -> Tuple[str, Dict[str, Any]]:
    """(infotext, full metadata record) of one listed image."""
    from ..metadata.infotext import to_infotext
    from ..metadata.record import extract_image_metadata

    record = extract_image_metadata(item)
    text = to_infotext(record) if record.get("generation") else ""
    return text or no_generation_data(), record


def _clear_selection(message: str, view: Any = None, *args, **kwargs) -> Tuple:
    return view, None, NO_SELECTION, None


@_handled(_clear_selection)
def select_image(view: GalleryView, evt: gr.SelectData):
    """A thumbnail was clicked. Returns (state, preview picture, info text, metadata): the
    original (the cached thumbnail while it cannot be fetched, or for a video) beside its data."""
    index = evt.index
    if isinstance(index, (list, tuple)):  # some versions report [row, col]
        index = index[0]
    if view is None or not isinstance(index, int) or not 0 <= index < len(view.items):
        return view, None, NO_SELECTION, None
    item = view.items[index]
    text, record = image_details(item)
    return replace(view, selected=index), preview_path(item), text, record


def preview_path(item: ImageItem) -> Optional[str]:
    """A local file to show ``item`` large: its original when it can be fetched, else the
    gallery's thumbnail (a warning toast says why)."""
    path = fetch_preview(item.url) if item.url else None
    if path:
        return path
    thumbs, _result = fetch_thumbnails([item.url]) if item.url else ([None], None)
    if item.url and not is_video(item.url):
        warn_user(say("preview_failed", id=item.id))
    return thumbs[0]

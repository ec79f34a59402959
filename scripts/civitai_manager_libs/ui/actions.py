"""The Civitai Gallery tab's event handlers, plus the backlog item's download functions.

Handlers take plain values and a :class:`GalleryView` (held per browser session in ``gr.State``;
there is no module-level page state) and return the new values in the order documented on each.
They call the service (civitai/query, civitai/api, ui/downloads, ui/jobs, metadata) and never
talk HTTP themselves. A handler never raises into Gradio (which would paint every output with a
red "Error" badge): a failed action shows one toast with a sentence saying what to do, logs one
line (the traceback at DEBUG) and leaves every component consistent, with the previous results
(``_handled``'s fallback). Partial failures are ``gr.Warning`` toasts too.

The backlog names (``get_http_client``, ``download_images``, ``_download_single_image``,
``download_images_with_progress``, ``download_images_batch``, ``GalleryDownloadManager``,
``download_large_image``, ``pre_loading``) live in :mod:`.downloads` and are importable
from here.
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
from ..errors import (
    ApiError,
    CivitaiGalleryError,
    InvalidQueryError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TemplateError,
)
from .downloads import (  # noqa: F401 - the backlog item's public names
    BatchResult,
    GalleryDownloadManager,
    _download_single_image,
    download_images,
    download_images_batch,
    download_images_with_progress,
    download_large_image,
    fetch_preview,
    fetch_thumbnails,
    get_http_client,
    pre_loading,
)
from . import filters_row
from .jobs import GalleryJobs, JobBusyError, JobOutcome, failure_groups_text, failure_reason
from .gradio_compat import in_gradio_event, update, warn_user
from .i18n import choice_value, choices, value_of
from .messages import MESSAGES, say
from ..civitai.query import Target, parse_query, target_to_params
from ..engine.failures import group_failures
from ..records import NSFW_LEVELS, ImageItem

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


# The English sentence (kept for callers of the backlog's names).
NO_GENERATION_DATA = (
    "This image carries no generation data: its author hid it, or it was not made with "
    "Stable Diffusion."
)

jobs = GalleryJobs()  # the tab's download service: one job at a time for the whole process


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


# -- errors -> toasts -----------------------------------------------------------------------------


def user_message(exc: BaseException) -> str:
    """The sentence a user sees for an error, with what to do about it."""
    text = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, (InvalidQueryError, NotFoundError)):
        return text  # these already say which input is wrong and what to enter
    if isinstance(exc, NetworkError):
        return say("network", error=text, where=settings_place())
    if isinstance(exc, (RateLimitedError, ServerError)):
        return say("busy", error=text)
    if isinstance(exc, ApiError):
        return say("api", error=text)
    return text


#: Where the user changes a setting a message names: set by the host (WebUI: its Settings page;
#: the standalone app: the Settings box of the tab, and the file they are saved in).
def settings_place() -> str:
    if option_persister is save_to_settings_file:
        return say("where_app", path=setting.settings_path())
    return say("where_webui")


def toast_problem(message: str) -> None:
    """The one toast of a failed action: ``gr.Warning`` (raising ``gr.Error`` would also mark every
    output component with Gradio's error badge). Outside an event it is only logged."""
    if in_gradio_event():
        gr.Warning(message)


def _handled(fallback: Callable[..., Any]):
    """Run a handler so that nothing reaches Gradio's error badge.

    A typed error (bad input, Civitai's answer, the disk) is logged as one INFO line (its
    traceback at DEBUG) and shown as one toast; anything else is a bug: its traceback is logged
    at ERROR and the toast says so. Either way the handler returns ``fallback(message, *args)``,
    which keeps every output consistent (usually: unchanged).
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CivitaiGalleryError as exc:
                message = user_message(exc)
                logger.info("%s: %s", fn.__name__, exc)
                logger.debug("%s failed", fn.__name__, exc_info=True)
            except Exception as exc:  # the UI boundary: a bug, logged with its traceback
                logger.exception("%s failed unexpectedly", fn.__name__)
                message = say("bug", error=f"{exc.__class__.__name__}: {exc}")
            toast_problem(message)
            return fallback(message, *args, **kwargs)

        return wrapper

    return decorate


def _keep_page(view_at: int, extra: int = 0) -> Callable[..., Tuple]:
    """Fallback of the paging handlers: the same state, every other output unchanged."""

    def fallback(message: str, *args, **kwargs) -> Tuple:
        view = args[view_at] if len(args) > view_at else kwargs.get("view")
        return (view,) + tuple(update() for _ in range(len(PAGE_OUTPUTS) - 1 + extra))

    return fallback


def _status_only(message: str, *args, **kwargs) -> str:
    return say("nothing_downloaded", reason=message)


# -- browsing -------------------------------------------------------------------------------------


def _api(levels: Optional[Sequence[str]] = None):
    """The API for one action; its look-ups go to the front of the ticked ``levels``."""
    from ..civitai.api import CivitaiAPI

    return CivitaiAPI(client=get_http_client(), levels=levels or None)


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
    target = parse_query(query or "")
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
    if item.url and not _is_video(item.url):
        warn_user(say("preview_failed", id=item.id))
    return thumbs[0]


def _is_video(url: str) -> bool:
    return os.path.splitext(url.split("?", 1)[0])[1].lower() in (".mp4", ".webm", ".mov")


# -- bulk download --------------------------------------------------------------------------------


def _progress_reporter(progress):
    def report(done: int, total: int, desc: str) -> None:
        if progress is None:
            return
        if total:
            progress((done, total), desc=desc, unit="images")
        else:
            progress(0, desc=desc)

    return report


def _target_for_download(query: str, view: Optional[GalleryView]) -> Target:
    """The loaded selection (with its version); the query box when it was changed since."""
    if view is not None and view.target is not None and (query or "").strip() == view.query.strip():
        return view.target
    return parse_query(query or "")


def summary_text(outcome: JobOutcome, resumable: bool = False) -> str:
    """The status after a job: counts, where the files are, the failures grouped by reason (a
    count and a few ids each), then one line per kind of change in Civitai's answers
    (``civitai/drift.py``). ``resumable``: a cancelled download came before this retry."""
    return _counts_text(outcome, resumable) + "".join(
        "\n" + drift_line(entry) for entry in outcome.summary.drift
    )


def drift_line(entry: Dict[str, Any]) -> str:
    """One ``civitai/drift`` entry (kind, count, of, example) as the tab's status line, in the
    user's language (the English words are ``drift.line``'s)."""
    kind = str(entry.get("kind"))
    fields = dict(count=entry.get("count"), of=entry.get("of"), example=entry.get("example"))
    message = say("drift_" + kind, **fields) if "drift_" + kind in MESSAGES else entry["message"]
    return say("drift_line", message=message)


def _counts_text(outcome: JobOutcome, resumable: bool = False) -> str:
    s = outcome.summary
    if outcome.total == 0:
        if outcome.cancelled:
            return say("cancelled_listing")
        hidden = filters_row.hidden_text(s.filtered)
        if outcome.kind == "retry":
            if hidden:
                return say("nothing_to_retry_hidden", hidden=hidden)
            return say("nothing_to_retry_cancelled" if resumable else "nothing_to_retry")
        if hidden:
            return say("nothing_to_download_hidden", hidden=hidden)
        return say("nothing_to_download")
    parts = [
        say(
            "counts",
            total=outcome.total,
            completed=s.completed,
            skipped=s.skipped,
            failed=s.failed,
        )
    ]
    if s.cancelled or outcome.cancelled:
        parts.append(say("counts_cancelled", cancelled=s.cancelled))
    hidden = filters_row.hidden_text(s.filtered)
    if hidden:
        parts.append(hidden)
    text = (
        say("sentence", text=say("list_sep").join(parts))
        + " "
        + say("saved_in", path=s.output_path)
    )
    if s.failed:
        groups = failure_groups_text(s.failures)
        text += " " + say("sentence", text=say("failures") + " " + groups)
    if outcome.cancelled and outcome.kind == "download":
        text += " " + say("resume_hint")
    return text


_NETWORK_WORDS = ("host unreachable", "connection", "timed out", "timeout", "resolve", "tls", "ssl")
_DISK_WORDS = ("no space", "disk", "permission", "read-only", "output folder", "errno")


def failure_cause(failures: Sequence[Tuple[Any, str]]) -> str:
    """``network`` when every failure is the network's, ``disk`` when every one is the output
    folder's, else ``other``: the toast names the real cause and nothing else."""
    reasons = [str(reason).lower() for _id, reason in failures]
    if reasons and all(any(w in r for w in _NETWORK_WORDS) for r in reasons):
        return "network"
    if reasons and all(any(w in r for w in _DISK_WORDS) for r in reasons):
        return "disk"
    return "other"


def _top_reason(failures: Sequence[Tuple[Any, str]]) -> str:
    groups = group_failures(failures)
    return failure_reason(groups[0].reason) if groups else ""


def _finish(outcome: JobOutcome, resumable: bool = False) -> str:
    """Toasts for the outcome; returns the status text (the tasks table follows the event)."""
    s = outcome.summary
    text = summary_text(outcome, resumable)
    cause = failure_cause(s.failures)
    reason = _top_reason(s.failures)
    if s.failed and (s.completed + s.skipped) == 0 and not outcome.cancelled:
        name = {"network": "none_saved_network", "disk": "none_saved_disk"}.get(cause, "none_saved")
        toast_problem(say(name, total=outcome.total, reason=reason))
    elif s.failed:
        name = {"network": "some_failed_network", "disk": "some_failed_disk"}.get(
            cause, "some_failed"
        )
        warn_user(say(name, failed=s.failed, total=outcome.total, reason=reason))
    elif outcome.total and not outcome.cancelled:
        name = "retry_finished" if outcome.kind == "retry" else "finished"
        inform_user(say(name, completed=s.completed, skipped=s.skipped, failed=s.failed))
    return text


def inform_user(message: str) -> None:
    """An information toast (``gr.Info``) inside an event; logged either way."""
    logger.info("%s", message)
    if in_gradio_event():
        gr.Info(message)


def _run_job(start, progress, resumable: bool = False) -> Any:
    try:
        outcome = start(_progress_reporter(progress))
    except JobBusyError as exc:
        warn_user(str(exc))
        return update()
    return _finish(outcome, resumable)


@_handled(_status_only)
def download_all(
    query: str,
    nsfw: Sequence[str],
    view: GalleryView,
    base: Optional[Sequence[str]] = None,
    media_type: Optional[str] = None,
    with_data: bool = False,
    since: Optional[str] = None,
    until: Optional[str] = None,
    reactions: Any = None,
    used_with: Optional[str] = None,
    progress=gr.Progress(),
):
    """Download all examples with the Filters row's filters (``base`` .. ``used_with``, the
    order of ``filters_row.FIELDS``). Returns the status text (the tasks table follows the
    event)."""
    target = _target_for_download(query, view)
    levels = _levels(nsfw)
    spec = filters_row.spec_from_values(
        base, media_type, with_data, since, until, reactions, used_with
    )
    return _run_job(lambda report: jobs.download(target, levels, report, filters=spec), progress)


@_handled(_status_only)
def retry_failed(progress=gr.Progress()):
    """Retry failed. Returns the status text (after a cancelled download with nothing failed, it
    says that Download all resumes it)."""
    last = jobs.last_outcome
    resumable = last is not None and last.cancelled and last.kind == "download"
    return _run_job(jobs.retry_failed, progress, resumable)


def cancel_download() -> None:
    """Cancel button. Shows a toast; the status box is left to the running download, whose own
    summary (with the cancelled count) arrives when it stops."""
    gr.Info(cancel_message())


def cancel_message() -> str:
    """Cancel the running download (if any) and say what happened."""
    was_running = jobs.running
    count = jobs.cancel()
    if not was_running:
        message = say("no_download_running")
    elif count:
        message = say("cancelling", count=count)
    else:
        message = say("cancelling_listing")
    logger.info("%s", message)
    return message


def recent_tasks(limit: int = 20) -> Any:
    """Rows for the recent-tasks table, one per job; before the first job one row that says so
    (an empty table shows an empty grey row on some Gradio lines)."""
    rows = jobs.recent_tasks(limit)
    if rows:
        return rows
    return [["", say("no_tasks"), "", "", ""]]


@_handled(lambda message: update())
def refresh_tasks():
    return recent_tasks()


# -- what a download saves (metadata formats, output folder, template, thumbnails) ----------------

# control name -> setting key; the tab's controls show these settings and change them
TAB_OPTIONS = {
    "formats": "images.metadata_format",
    "output": "images.output_path",
    "template": "images.path_template",
    "thumbnails": "images.generate_thumbnails",
    "sleep_request": "http_sleep_request",  # pacing (ui/follow_panel.pacing_options)
    "limit_rate": "http_limit_rate",
}
METADATA_CHOICES = ("json", "txt", "exif")
_options_lock = threading.Lock()


def save_to_settings_file(key: str, value: Any) -> None:
    """Persist one tab option in the standalone app's settings file (only that key changes: the
    file may hold values this process overrides, e.g. ``--demo``'s local Civitai)."""
    from ..settings.file import read_settings_file, write_settings_file

    path = setting.settings_path()
    data = dict(read_settings_file(path) or {})
    data[key] = list(value) if isinstance(value, tuple) else value
    write_settings_file(path, data)
    logger.debug("saved %s in %s", key, path)


# Where a changed tab option is kept: the settings file standalone; inside WebUI the host
# replaces it with one that stores WebUI's option (scripts/civitai_gallery.py).
option_persister: Callable[[str, Any], None] = save_to_settings_file


def option_value(name: str) -> Any:
    """The current setting behind control ``name``, shaped for the control."""
    value = setting.get(TAB_OPTIONS[name])
    if name == "formats":
        return [f.strip() for f in str(value).split(",") if f.strip()]
    if name == "output":
        return os.path.abspath(os.path.expanduser(str(value)))
    return value


def _option_saver(name: str) -> Callable[[Any], Any]:
    key = TAB_OPTIONS[name]

    @_handled(lambda message, *args, **kwargs: option_value(name))
    def save(value: Any) -> Any:
        if name == "output":
            from ..store.paths import check_output_folder

            text = str(value or "").strip()
            if not text:
                raise InvalidQueryError(say("enter_output"))
            value = check_output_folder(text)
        elif name == "formats":
            value = ",".join(f for f in METADATA_CHOICES if f in (value or []))
            if not value:
                raise InvalidQueryError(say("tick_format"))
        with _options_lock:  # one read-modify-write of the settings file at a time
            stored = setting.SPECS[key].validate(value)  # SettingsError before anything is kept
            if stored == setting.get(key):
                return option_value(name)
            option_persister(key, stored)
            setting.set(key, stored)
        logger.info("tab option %s set to %r", key, stored)
        return option_value(name)

    save.__name__ = f"save_{name}"
    return save


save_formats = _option_saver("formats")
save_output = _option_saver("output")
save_template = _option_saver("template")
save_thumbnails = _option_saver("thumbnails")
save_sleep_request = _option_saver("sleep_request")
save_limit_rate = _option_saver("limit_rate")

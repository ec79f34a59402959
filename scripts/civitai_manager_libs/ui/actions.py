"""The Civitai Gallery tab's event handlers, plus the backlog item's download functions.

Handlers take plain values and a :class:`GalleryView` (held per browser session in ``gr.State``;
there is no module-level page state) and return the new values in the order documented on each.
They call the service (query, civitai_api, gallery_downloads, gallery_jobs, metadata) and never
talk HTTP themselves. Errors a user can cause or meet become ``gr.Error`` with a sentence saying
what to do; partial failures become ``gr.Warning`` toasts.

The backlog names (``get_http_client``, ``download_images``, ``_download_single_image``,
``download_images_with_progress``, ``download_images_batch``, ``GalleryDownloadManager``,
``download_large_image``, ``pre_loading``) live in :mod:`.gallery_downloads` and are importable
from here.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple
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
)
from .downloads import (  # noqa: F401 - the backlog item's public names
    BatchResult,
    GalleryDownloadManager,
    _download_single_image,
    download_images,
    download_images_batch,
    download_images_with_progress,
    download_large_image,
    fetch_thumbnails,
    get_http_client,
    pre_loading,
)
from . import filters_row
from .jobs import TASK_COLUMNS, GalleryJobs, JobBusyError, JobOutcome
from .gradio_compat import update, warn_user
from ..civitai.query import Target, parse_query, target_to_params
from ..records import NSFW_LEVELS, ImageItem

logger = logging.getLogger(__name__)

SORTS = ("Most Reactions", "Most Comments", "Most Collected", "Newest", "Oldest")
PERIODS = ("AllTime", "Year", "Month", "Week", "Day")
ALL_VERSIONS = "All versions"
_VERSION_ID_RE = re.compile(r"\[(\d+)\]\s*$")
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
    filters: Any = None  # the Filters row's FilterSpec (None: no filter)
    hidden: Dict[str, int] = field(default_factory=dict)  # this page's images hidden, by filter
    notice: Optional[str] = None  # the order Civitai really gives, when not the one chosen

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
        return (
            f"Civitai could not be reached ({text}). Check your network connection, or the "
            "Civitai address in the settings, then try again."
        )
    if isinstance(exc, (RateLimitedError, ServerError)):
        return f"{text} Civitai is busy; wait a minute and try again."
    if isinstance(exc, ApiError):
        return f"{text} Try again later."
    return text


def _user_errors(fn):
    """Turn the package's typed errors into ``gr.Error`` toasts (nothing else is swallowed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CivitaiGalleryError as exc:
            logger.warning("%s: %s", fn.__name__, exc)
            raise gr.Error(user_message(exc)) from exc

    return wrapper


# -- browsing -------------------------------------------------------------------------------------


def _api():
    from ..civitai.api import CivitaiAPI

    return CivitaiAPI(client=get_http_client())


def _levels(nsfw: Optional[Sequence[str]]) -> List[str]:
    levels = [level for level in (nsfw or []) if level in NSFW_LEVELS]
    if not levels:
        raise InvalidQueryError("Tick at least one NSFW level (None, Soft, Mature or X).")
    return levels


def _listing_params(target: Target, sort: Optional[str], period: Optional[str]) -> Dict[str, Any]:
    params = target_to_params(target)
    if sort in SORTS:
        params["sort"] = sort
    if period in PERIODS:
        params["period"] = period
    return params


def _version_label(version_id: int, name: str) -> str:
    return f"{name} [{version_id}]"


def _version_choices(view: GalleryView) -> List[str]:
    return [ALL_VERSIONS] + [_version_label(vid, name) for vid, name in view.versions]


def _describe(target: Target, model_name: Optional[str] = None) -> str:
    if model_name:
        return f"{model_name} (model {target.value})"
    return target.describe()


def _fetch_page(view: GalleryView) -> GalleryView:
    page = _api().get_image_page(
        view.params,
        cursor=view.cursor,
        limit=int(setting.get("gallery_page_size")),
        nsfw_levels=view.nsfw_levels,
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
        warn_user(
            f"some images failed to download ({result.failed}), check your network connection"
        )
    return replace(view, items=shown_items), value


def _start_prefetch(view: GalleryView) -> None:
    """Fill the gallery cache with the next page's thumbnails in the background."""
    if not view.next_cursor:
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


def _page_outputs(view: GalleryView, value: List[Tuple[str, str]]) -> Tuple:
    """(state, gallery, page label, prev button, next button, info, metadata)."""
    if view.items:
        label = f"**{view.title}**: page {view.page_number}, {len(view.items)} images"
    else:
        chosen = (
            "NSFW levels and filters" if view.filters and view.filters.active else "NSFW levels"
        )
        label = f"**{view.title}**: page {view.page_number}, no images for the chosen {chosen}"
    hidden = filters_row.hidden_text(view.hidden)
    if hidden:
        label += f"; {hidden}"
    if view.notice:  # e.g. the sort Civitai ignores on a whole-model listing
        label += f"  \n{view.notice}"
    return (
        view,
        value,
        label,
        update(interactive=bool(view.previous)),
        update(interactive=bool(view.next_cursor)),
        "",
        None,
    )


def _show(view: GalleryView) -> Tuple:
    view = _fetch_page(view)
    view, value = _gallery_value(view)
    _start_prefetch(view)
    return _page_outputs(view, value)


@_user_errors
def load_gallery(
    query: str, nsfw: Sequence[str], sort: str, period: str, view: GalleryView, *filters: Any
):
    """Load button / Enter in the query box; ``filters``: the Filters row's values.

    Returns (state, gallery, page label, prev button, next button, info, metadata, version
    dropdown).
    """
    target = parse_query(query or "")
    levels = _levels(nsfw)
    spec = filters_row.spec_from_values(*filters)
    api = _api()
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
        title=_describe(target, model_name) if target.kind == "model" else target.describe(),
        params=_filtered_params(_listing_params(target, sort, period), spec),
        nsfw_levels=levels,
        versions=versions,
        model_id=model_id,
        model_name=model_name,
        filters=spec,
    )
    outputs = _show(view)
    selected = _selected_version(target)
    dropdown = update(
        choices=_version_choices(view),
        value=next(
            (c for c in _version_choices(view) if c.endswith(f"[{selected}]")), ALL_VERSIONS
        ),
        visible=bool(versions),
        interactive=True,
    )
    return outputs + (dropdown,)


def _selected_version(target: Target) -> Optional[int]:
    if target.kind == "version":
        return target.value
    return target.version_id


@_user_errors
def select_version(
    version: str, nsfw: Sequence[str], sort: str, period: str, view: GalleryView, *filters: Any
):
    """Version dropdown changed. Returns the page outputs (see :func:`_page_outputs`)."""
    spec = filters_row.spec_from_values(*filters)
    if view is None or view.target is None or not view.versions:
        raise InvalidQueryError("Load a model first, then pick one of its versions.")
    model_id = view.target.value if view.target.kind == "model" else None
    if model_id is None:  # loaded from a version link: the model is the version's
        model_id = _api().get_model_version(view.target.value).model_id
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


@_user_errors
def next_page(view: GalleryView):
    """Next button. Returns the page outputs."""
    if view is None or view.target is None:
        raise InvalidQueryError("Load a model, creator or link first.")
    if not view.next_cursor:
        raise InvalidQueryError("This is the last page.")
    new = replace(view, previous=view.previous + [view.cursor], cursor=view.next_cursor)
    return _show(new)


@_user_errors
def prev_page(view: GalleryView):
    """Previous button. Returns the page outputs."""
    if view is None or view.target is None or not view.previous:
        raise InvalidQueryError("This is the first page.")
    new = replace(view, previous=view.previous[:-1], cursor=view.previous[-1])
    return _show(new)


# -- the selected image ---------------------------------------------------------------------------


def image_details(item: ImageItem) -> Tuple[str, Dict[str, Any]]:
    """(infotext, full metadata record) of one listed image."""
    from ..metadata.infotext import to_infotext
    from ..metadata.record import extract_image_metadata

    record = extract_image_metadata(item)
    text = to_infotext(record) if record.get("generation") else ""
    return text or NO_GENERATION_DATA, record


def select_image(view: GalleryView, evt: gr.SelectData):
    """A thumbnail was clicked. Returns (info text, metadata)."""
    index = evt.index
    if isinstance(index, (list, tuple)):  # some versions report [row, col]
        index = index[0]
    if view is None or not isinstance(index, int) or not 0 <= index < len(view.items):
        return "", None
    return image_details(view.items[index])


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


def summary_text(outcome: JobOutcome) -> str:
    """The status line after a job: counts and where the files are."""
    s = outcome.summary
    if outcome.total == 0:
        if outcome.cancelled:
            return "Cancelled while listing the images: nothing was downloaded."
        hidden = filters_row.hidden_text(s.filtered)
        verb = "retry" if outcome.kind == "retry" else "download"
        if hidden:
            return f"Nothing to {verb}: {hidden}."
        if outcome.kind == "retry":
            return "Nothing to retry: no download has failed."
        return "Nothing to download: no image matches this selection and NSFW levels."
    parts = [f"{s.line()} of {outcome.total} images"]
    if s.cancelled or outcome.cancelled:
        parts.append(f"cancelled {s.cancelled}")
    hidden = filters_row.hidden_text(s.filtered)
    if hidden:
        parts.append(hidden)
    text = "; ".join(parts) + f". Saved in {s.output_path}."
    if s.failed:
        reasons = "; ".join(f"#{image_id}: {reason}" for image_id, reason in s.failures[:3])
        text += f" Failures: {reasons}" + (" ..." if len(s.failures) > 3 else "")
    return text


def _finish(outcome: JobOutcome) -> Tuple[str, Any]:
    """Toasts for the outcome; returns (status text, recent tasks)."""
    s = outcome.summary
    text = summary_text(outcome)
    if s.failed and (s.completed + s.skipped) == 0 and not outcome.cancelled:
        raise gr.Error(
            f"None of the {outcome.total} images could be downloaded ({text}). Check your "
            "network connection and the output folder, then press Retry failed."
        )
    if s.failed:
        warn_user(
            f"{s.failed} of {outcome.total} images failed to download; check your network "
            "connection, then press Retry failed."
        )
    return text, recent_tasks()


def _run_job(start, progress) -> Tuple[str, Any]:
    try:
        outcome = start(_progress_reporter(progress))
    except JobBusyError as exc:
        warn_user("a download is already running: " + str(exc).split(": ", 1)[-1])
        return update(), update()
    return _finish(outcome)


@_user_errors
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
    order of ``filters_row.FIELDS``). Returns (status text, recent tasks)."""
    target = _target_for_download(query, view)
    levels = _levels(nsfw)
    spec = filters_row.spec_from_values(
        base, media_type, with_data, since, until, reactions, used_with
    )
    return _run_job(lambda report: jobs.download(target, levels, report, filters=spec), progress)


@_user_errors
def retry_failed(progress=gr.Progress()):
    """Retry failed. Returns (status text, recent tasks)."""
    return _run_job(jobs.retry_failed, progress)


def cancel_download() -> None:
    """Cancel button. Shows a toast; the status box is left to the running download, whose own
    summary (with the cancelled count) arrives when it stops."""
    gr.Info(cancel_message())


def cancel_message() -> str:
    """Cancel the running download (if any) and say what happened."""
    was_running = jobs.running
    count = jobs.cancel()
    if not was_running:
        message = "No download is running."
    elif count:
        message = f"Cancelling the running download ({count} images)..."
    else:
        message = "Cancelling the running download while it is still listing images..."
    logger.info("%s", message)
    return message


def recent_tasks(limit: int = 20) -> Any:
    """Rows for the recent-tasks table."""
    return jobs.recent_tasks(limit) or [[""] * len(TASK_COLUMNS)]


@_user_errors
def refresh_tasks():
    return recent_tasks()

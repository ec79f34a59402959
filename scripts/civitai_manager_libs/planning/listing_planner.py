"""Lists one query page by page and turns each page's images into scheduled tasks: one task per
image (within the call and across live calls), archived images skipped without a request, the
path template applied, the checkpoint kept, a cursor the server repeats refused, images the
client-side filters drop counted by reason (``item_filter``), a date-sorted listing stopped once it
is past its date bound."""

from __future__ import annotations

import logging
import os
from typing import Any, List, Mapping, Optional, Protocol, Sequence, Tuple

from ..civitai.drift import Drift
from ..civitai.pages import PageLoop
from ..civitai.filters import FilterSpec
from .crawl_state import ListingState
from .incremental import IncrementalStop
from .listing_request import ListingRequest
from . import item_filter
from .item_filter import FilterCounts
from ..engine.task import FAILED, PENDING, SKIPPED, ImageDownloadTask, new_task, row_as_dict
from ..errors import CivitaiGalleryError
from ..store import listing_marks
from ..store.confined import relative_to
from ..store import file_path
from ..store.paths import PathTemplate
from ..records import ImageItem
from ..util.media_key import media_uuid
from .task_registry import TaskRegistry, file_key
from .template_context import TemplateContext

logger = logging.getLogger(__name__)

REASON_KNOWN = "already downloaded"


class PlannerHost(Protocol):
    """What a :class:`ListingPlanner` reads of the downloader it plans for, at each use."""

    page_size: int
    template: PathTemplate
    output_path: str
    duplicate_policy: str
    save_metadata_default: bool

    @property
    def api(self) -> Any: ...

    @property
    def archive(self) -> Any: ...

    @property
    def engine(self) -> Any: ...

    @property
    def stopped_reason(self) -> Optional[str]: ...

    def schedule(self, task: ImageDownloadTask) -> None:
        """Hand a registered task on (settled at once when its file is already there)."""

    def reserve_space(self) -> None:
        """Stop scheduling when the queued work would fill the disk (after each page)."""


class ListingPlanner:
    """Plans listings for ``owner`` (see :class:`PlannerHost`)."""

    def __init__(self, owner: PlannerHost, registry: TaskRegistry, context: TemplateContext):
        self._owner = owner
        self._registry = registry
        self._context = context
        # the latest listing stopped at its limit while Civitai had more: that limit (else None)
        self.limit_cut: Optional[int] = None

    def run(
        self,
        request: ListingRequest,
        save_metadata: bool,
        counts: Optional[FilterCounts] = None,
        drift: Optional[Drift] = None,
    ) -> List[str]:
        """List ``request`` to the end (or its ``limit`` images) and plan every page; the task
        ids.

        The client-side filters (``request.spec``) add each image they drop to ``counts`` under
        its reason (as are the images the exact NSFW filter dropped); it gets no task. ``drift``
        counts what Civitai answered differently from what is expected (``civitai/drift.py``).
        The limit counts the images kept. With ``sort=Newest`` and a ``since`` bound (``Oldest`` and
        ``until``) the listing ends with the first page that goes past the bound. A re-run of a
        listing that completed before, newest first, ends at the first page reaching a known
        image (``incremental.IncrementalStop``; its line is added to the owner's ``notes``).

        Raises the listing's ApiError (InvalidResponseError for a repeated cursor) after the
        pages listed so far were planned; their checkpoint is kept for the next run. The pages
        come from the one listing loop (``civitai/pages.PageLoop``).
        """
        owner = self._owner
        spec, limit, params = request.spec, request.limit, request.params
        query_key = request.query_key
        counts = counts if counts is not None else FilterCounts()
        listing = self._open(query_key, use_checkpoint=request.resumes)
        incremental = IncrementalStop.plan(request, owner.archive)
        context = self._context.for_listing(request.kind, request.value)
        listed = 0
        self.limit_cut = None
        told = False  # the notice about the order Civitai really gives, once per listing
        pages = PageLoop(
            lambda cursor: owner.api.get_image_page(
                params,
                cursor=cursor,
                limit=request.page_size(owner.page_size),
                nsfw_levels=request.levels,
                source=request.source,
            ),
            query_key,
            start=listing.start_cursor,
            stopped=lambda: listing.stop.is_set() or owner.stopped_reason is not None,
            watch=(
                drift.watch(request.levels, params, request.source) if drift is not None else None
            ),
        )
        try:
            for page in pages:
                if page.notice and not told:
                    logger.warning("%s", page.notice)
                    told = True
                counts.add(item_filter.NSFW, page.nsfw_hidden)
                items = self._kept(page.items, spec, counts, limit - listed if limit else 0)
                listed += len(items)
                known = self._plan_page(
                    listing, page.cursor, page.next_cursor, items, context, save_metadata
                )
                self._skip_rejected(listing, page.rejected)
                self._mark_start(request, listing, page.cursor, page.items)
                if page.next_cursor is None or (limit and listed >= limit):
                    listing.listing_done = True
                    left_on_page = bool(items) and page.items[-1] is not items[-1]
                    if limit and listed >= limit and (page.next_cursor or left_on_page):
                        self.limit_cut = limit  # "20 of more": the user is told
                    break
                if incremental.after_page(page.items, items, known):
                    logger.info("%s: %s", query_key, incremental.note)
                    listing.listing_done = True
                    break
                if item_filter.past_bound(page.items, spec, params.get("sort")):
                    logger.info("%s: past the date bound; no further page is needed", query_key)
                    listing.listing_done = True
                    break
        except BaseException as exc:
            listing.stop.set()
            self._abandon_unscheduled(listing, exc)
            raise
        finally:
            if incremental.note:
                getattr(owner, "notes", []).append(f"{query_key}: {incremental.note}")
            self._registry.update_checkpoint(listing)
        logger.debug(
            "%s: %d image(s) listed, %d task(s)%s",
            query_key,
            listed,
            len(listing.task_ids),
            f", filtered: {item_filter.describe_counts(counts.as_dict())}" if counts.total else "",
        )
        return list(listing.task_ids)

    @staticmethod
    def _kept(
        items: List[ImageItem], spec: FilterSpec, counts: FilterCounts, room: int
    ) -> List[ImageItem]:
        """The page's images the filters keep (at most ``room`` when it is not 0); the others
        are counted by reason."""
        kept: List[ImageItem] = []
        for item in items:
            if room and len(kept) >= room:
                break
            why = item_filter.reason(item, spec) if spec.active else None
            if why is None:
                kept.append(item)
            else:
                counts.add(why)
        return kept

    def plan_target(self, task: ImageDownloadTask, item: ImageItem) -> bool:
        """Set the task's target from the path template; False (task failed) when no safe name."""
        owner = self._owner
        try:
            task.target = file_path.planned(owner.template, item, owner.output_path)
        except CivitaiGalleryError as exc:
            self._registry.add(task)
            self._registry.settle(task, FAILED, f"no safe file name for this image: {exc}")
            return False
        return True

    def _mark_start(
        self, request: ListingRequest, listing: ListingState, cursor: Any, items: List[ImageItem]
    ) -> None:
        """The newest id of a resumable listing's first page (``store/listing_marks``); once the
        listing completes it is the id an incremental re-run stops at."""
        ids = [item.id for item in items if isinstance(item.id, int)]
        if not request.resumes or cursor is not None or not ids:
            return
        listing.newest_id = max(ids)
        listing_marks.started(self._owner.archive, listing.query_key, max(ids))

    def _open(self, query_key: str, use_checkpoint: bool) -> ListingState:
        archive = self._owner.archive  # OutputPathError before any request: unusable folder
        start = archive.get_checkpoint(query_key) if use_checkpoint else None
        if start:
            logger.info("resuming %s from its checkpoint", query_key)
        listing = ListingState(query_key, use_checkpoint, start)
        self._registry.open_listing(listing)
        return listing

    def _plan_page(
        self,
        listing: ListingState,
        cursor: Optional[str],
        next_cursor: Optional[str],
        items: List[ImageItem],
        context: Mapping[str, Any],
        save_metadata: bool,
    ) -> set:
        owner, registry = self._owner, self._registry
        ids = [item.id for item in items if item.id is not None]
        known = set(owner.archive.known_ids(ids)) if ids else set()
        saved_files = self._saved_files(items, known)
        page = listing.add_page(cursor, next_cursor)
        for item in items:
            if listing.stop.is_set() or owner.stopped_reason is not None:
                break
            try:
                self._plan_item(listing, page, item, known, context, save_metadata, saved_files)
            except Exception as exc:  # one image's problem never ends the listing
                self._fail_item(listing, item, exc)
        owner.reserve_space()
        registry.update_checkpoint(listing)
        return known

    def _saved_files(self, items: List[ImageItem], known: set) -> Mapping[str, int]:
        """The page's files saved under another id or URL: uuid -> the image id they were
        saved as (a video listed by its old and its new URL is one file)."""
        uuids = [media_uuid(item.url) for item in items if item.id not in known]
        wanted = [u for u in uuids if u is not None]
        lookup = getattr(self._owner.archive, "known_uuids", None)
        return lookup(wanted) if wanted and lookup is not None else {}

    def _plan_item(
        self,
        listing: ListingState,
        page: Any,
        item: ImageItem,
        known: set,
        context: Mapping[str, Any],
        save_metadata: bool,
        saved_files: Optional[Mapping[str, int]] = None,
    ) -> None:
        owner, registry = self._owner, self._registry
        ident = item.id if item.id is not None else item.url
        uuid = media_uuid(item.url)
        # one file (uuid) listed under two ids or URLs is one download, when the duplicate
        # policy is skip (replace / keep_both decide once the bytes are in)
        one_file = uuid is not None and owner.duplicate_policy == "skip"
        same_file = file_key(uuid) if one_file and uuid is not None else None
        if ident in listing.seen_images or same_file in listing.seen_images:
            return  # listed twice in this call (e.g. under two versions, or two URLs)
        listing.seen_images.add(ident)
        if same_file is not None:
            listing.seen_images.add(same_file)
        if registry.join_active(listing, page, ident, replace_last=False):
            return
        if same_file is not None and registry.join_active(
            listing, page, same_file, replace_last=False
        ):
            return
        item = self._context.complete(item, context)
        task = new_task(item.id, item.url, item)
        task.query_key = listing.query_key
        task.save_metadata = bool(save_metadata) and owner.save_metadata_default
        listing.task_ids.append(task.id)
        if item.id in known:
            row = row_as_dict(owner.archive.get_image(item.id))
            if row.get("path") and os.path.isfile(row["path"]):
                registry.add(task)
                registry.settle(task, SKIPPED, REASON_KNOWN, image_path=row["path"], record=False)
                return
            logger.info("image %s: its saved file is gone; downloading it again", item.id)
        elif (
            uuid is not None
            and saved_files
            and saved_files.get(uuid, item.id) != item.id
            and owner.duplicate_policy == "skip"  # replace / keep_both: the policy decides later
        ):
            other = saved_files[uuid]
            row = row_as_dict(owner.archive.get_image(other))
            path = row.get("path")
            if path and os.path.isfile(path) and within(path, owner.output_path):
                registry.add(task)
                reason = f"{REASON_KNOWN} (the same file as image {other})"
                registry.settle(task, SKIPPED, reason, image_path=path, record=False)
                return
        if not self.plan_target(task, item):
            return
        with registry.lock:  # another listing may have just won
            if registry.join_active(listing, page, ident, replace_last=True):
                return
            registry.add(task)
            page.open.add(task.id)
            listing.unscheduled.add(task.id)
        owner.schedule(task)
        listing.unscheduled.discard(task.id)

    def _fail_item(self, listing: ListingState, item: ImageItem, exc: BaseException) -> None:
        """Settle the task of an item whose planning raised (a new failed task if it had none)."""
        logger.warning("image %s: could not be planned: %s", item.id, exc, exc_info=True)
        reason = f"could not be planned: {describe_unexpected(exc)}"
        registry = self._registry
        if self._abandon_unscheduled(listing, exc, reason):
            return
        live = registry.active(item.id) if item.id is not None else None
        if live is not None and live.id in listing.task_ids:
            return  # planned and handed on before the error: it settles on its own
        if listing.task_ids and registry.get(listing.task_ids[-1]) is None:
            listing.task_ids.pop()  # the task the error cut short: the failed one replaces it
        task = new_task(item.id, item.url, None)
        task.query_key = listing.query_key
        listing.task_ids.append(task.id)
        registry.add(task)
        registry.settle(task, FAILED, reason)

    def _abandon_unscheduled(
        self, listing: ListingState, exc: BaseException, reason: Optional[str] = None
    ) -> int:
        """Fail the tasks this listing registered but did not hand on (so ``wait()`` returns);
        how many there were."""
        abandoned = 0
        for task_id in list(listing.unscheduled):
            listing.unscheduled.discard(task_id)
            task = self._registry.get(task_id)
            if task is None or task.status != PENDING:
                continue
            if self._owner.engine.get_job(task_id) is not None:
                continue  # handed to the engine: it settles there
            abandoned += 1
            self._registry.settle(
                task,
                FAILED,
                reason or f"not started: the listing failed: {describe_unexpected(exc)}",
            )
        return abandoned

    def _skip_rejected(self, listing: ListingState, rejected: Sequence[Tuple[Any, str]]) -> None:
        """A task, skipped with its reason, for each listed item that could not be used."""
        for listed_id, reason in rejected:
            task = new_task(listed_id, "", None)
            task.skip_noted = True
            task.query_key = listing.query_key
            listing.task_ids.append(task.id)
            self._registry.add(task)
            self._registry.settle(task, SKIPPED, reason, record=False)


def within(path: str, root: Any) -> bool:
    """True when ``path`` is inside the output folder ``root`` (a row of a copied archive may
    point into the folder it was copied from)."""
    return relative_to(path, str(root)) is not None


def describe_unexpected(exc: BaseException) -> str:
    """A short sentence for an error nobody planned for: its type and (shortened) text."""
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

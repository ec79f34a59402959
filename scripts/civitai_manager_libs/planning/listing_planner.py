"""Lists one query page by page and turns each page's images into scheduled tasks: one task per
image (within the call and across live calls), archived images skipped without a request, the
path template applied, the checkpoint kept, a cursor the server repeats refused."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

from .crawl_state import ListingState
from ..engine.task import FAILED, SKIPPED, ImageDownloadTask, new_task, row_as_dict
from ..errors import CivitaiGalleryError
from ..store.paths import fields_from_item, safe_join
from ..records import ImageItem
from .task_registry import TaskRegistry
from .template_context import TemplateContext

logger = logging.getLogger(__name__)

REASON_KNOWN = "already downloaded"


class ListingPlanner:
    """Plans listings for ``owner`` (an ImageDownloader: ``api``, ``archive``, ``page_size``,
    ``template``, ``output_path``, ``save_metadata_default``, ``stopped_reason`` are read at each
    use); ``schedule(task)`` hands a registered task on, ``reserve_space()`` runs after a page."""

    def __init__(
        self,
        owner: Any,
        registry: TaskRegistry,
        context: TemplateContext,
        schedule: Callable[[ImageDownloadTask], None],
        reserve_space: Callable[[], None],
    ):
        self._owner = owner
        self._registry = registry
        self._context = context
        self._schedule = schedule
        self._reserve_space = reserve_space

    def run(
        self,
        query_key: str,
        kind: str,
        value: Any,
        params: Dict[str, Any],
        limit: int,
        levels: List[str],
        save_metadata: bool,
    ) -> List[str]:
        """List ``params`` to the end (or ``limit`` images) and plan every page; the task ids.

        Raises the listing's ApiError (InvalidResponseError for a repeated cursor) after the
        pages listed so far were planned; their checkpoint is kept for the next run.
        """
        owner = self._owner
        listing = self._open(query_key, use_checkpoint=limit == 0)
        context = self._context.for_listing(kind, value)
        listed = 0
        cursor = listing.start_cursor
        try:
            while not listing.stop.is_set() and owner.stopped_reason is None:
                size = min(owner.page_size, limit) if limit else owner.page_size
                listing.note_request(cursor)
                page = owner.api.get_image_page(
                    params, cursor=cursor, limit=size, nsfw_levels=levels
                )
                items = page.items[: limit - listed] if limit else page.items
                listed += len(items)
                self._plan_page(
                    listing, page.cursor, page.next_cursor, items, context, save_metadata
                )
                if page.next_cursor is None or (limit and listed >= limit):
                    listing.listing_done = True
                    break
                listing.check_next_cursor(page.next_cursor)  # a cycle would never end
                cursor = page.next_cursor
        finally:
            self._registry.update_checkpoint(listing)
        logger.debug("%s: %d image(s) listed, %d task(s)", query_key, listed, len(listing.task_ids))
        return list(listing.task_ids)

    def plan_target(self, task: ImageDownloadTask, item: ImageItem) -> bool:
        """Set the task's target from the path template; False (task failed) when no safe name."""
        owner = self._owner
        try:
            task.target = safe_join(
                owner.output_path, owner.template.render(fields_from_item(item))
            )
        except CivitaiGalleryError as exc:
            self._registry.add(task)
            self._registry.settle(task, FAILED, f"no safe file name for this image: {exc}")
            return False
        return True

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
    ) -> None:
        owner, registry = self._owner, self._registry
        ids = [item.id for item in items if item.id is not None]
        known = set(owner.archive.known_ids(ids)) if ids else set()
        page = listing.add_page(cursor, next_cursor)
        for item in items:
            if listing.stop.is_set() or owner.stopped_reason is not None:
                break
            ident = item.id if item.id is not None else item.url
            if ident in listing.seen_images:
                continue  # listed twice in this call (e.g. under two versions)
            listing.seen_images.add(ident)
            if registry.join_active(listing, page, ident, replace_last=False):
                continue
            item = self._context.complete(item, context)
            task = new_task(item.id, item.url, item)
            task.query_key = listing.query_key
            task.save_metadata = bool(save_metadata) and owner.save_metadata_default
            listing.task_ids.append(task.id)
            if item.id in known:
                row = row_as_dict(owner.archive.get_image(item.id))
                if row.get("path") and os.path.isfile(row["path"]):
                    registry.add(task)
                    registry.settle(
                        task, SKIPPED, REASON_KNOWN, image_path=row["path"], record=False
                    )
                    continue
                logger.info("image %s: its saved file is gone; downloading it again", item.id)
            if not self.plan_target(task, item):
                continue
            with registry.lock:  # another listing may have just won
                if registry.join_active(listing, page, ident, replace_last=True):
                    continue
                registry.add(task)
                page.open.add(task.id)
            self._schedule(task)
        self._reserve_space()
        registry.update_checkpoint(listing)

"""Plans the images asked by id (one image, a batch of ids, the failed ones retried): an image
already in the archive with its file is skipped without a request, the others are looked up (in
``ids=`` batches of up to 200 where there are several) and scheduled under the path template;
an id Civitai does not answer gets a failed task saying so."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Set, Tuple

from ..civitai.filters import FilterSpec
from ..civitai.image_batch import ImageBatch
from ..engine.pool import PRIORITY_SINGLE
from ..engine.task import FAILED, SKIPPED, ImageDownloadTask, new_task, row_as_dict
from ..errors import NotFoundError
from ..records import ImageItem
from ..store import file_path
from . import item_filter
from .item_filter import FilterCounts
from .listing_planner import REASON_KNOWN, ListingPlanner, PlannerHost
from .task_registry import TaskRegistry
from ..civitai.image_items import int_or_none
from .template_context import TemplateContext

#: The failure of an id asked in a batch that Civitai did not answer.
MISSING_REASON = "not on Civitai, or hidden (Civitai did not answer this id)"

#: (image id, its item when known, its planned target when known): one image to retry.
Candidate = Tuple[Any, Optional[ImageItem], Optional[str]]


class IdPlanner:
    """Plans images asked by id for ``owner`` (see :class:`.listing_planner.PlannerHost`)."""

    def __init__(
        self,
        owner: PlannerHost,
        registry: TaskRegistry,
        context: TemplateContext,
        listings: ListingPlanner,
    ):
        self._owner = owner
        self._registry = registry
        self._context = context
        self._listings = listings

    def known(self, image_id: Any) -> Optional[str]:
        """The id of a skipped task when ``image_id`` is in the archive with its file, else None
        (the archive's "already downloaded", before any request)."""
        row = row_as_dict(self._owner.archive.get_image(image_id))
        if not (row.get("path") and os.path.isfile(row["path"])):
            return None
        task = new_task(image_id, row.get("url") or "", None)
        self._registry.add(task)
        self._registry.settle(task, SKIPPED, REASON_KNOWN, image_path=row["path"], record=False)
        return task.id

    def _failed(self, image_id: Any, reason: str) -> str:
        task = new_task(image_id, "", None)
        self._registry.add(task)
        self._registry.settle(task, FAILED, reason)
        return task.id

    def single(self, image_id: int, output_path: Optional[str], save_metadata: bool) -> str:
        """One image (before any queued bulk work), to ``output_path`` when given."""
        owner = self._owner
        skipped = self.known(image_id) if output_path is None else None
        if skipped is not None:
            return skipped
        item = self._context.complete(owner.api.get_image(image_id), {})
        task = new_task(image_id, item.url, item)
        task.priority = PRIORITY_SINGLE
        task.save_metadata = bool(save_metadata) and owner.save_metadata_default
        if output_path is None:
            task.target = file_path.planned(owner.template, item, owner.output_path)
        else:
            task.custom_path = True
            task.target = file_path.chosen(output_path, image_id)
        with self._registry.lock:
            existing = self._registry.active(image_id)
            if existing is not None and output_path is None:
                return existing.id
            self._registry.add(task)
        owner.schedule(task)
        owner.reserve_space()
        return task.id

    def batch(
        self, ids: List[int], save_metadata: bool, with_tags: bool, batch: Optional[ImageBatch]
    ) -> Tuple[List[str], List[int]]:
        """The task ids of ``ids`` (in their order) and the ids Civitai did not answer."""
        task_ids: Dict[int, str] = {}
        ask: List[int] = []
        for image_id in ids:
            skipped = self.known(image_id)
            if skipped is not None:
                task_ids[image_id] = skipped
            else:
                ask.append(image_id)
        if batch is None:
            batch = self._owner.api.get_images(ask, with_tags=with_tags) if ask else ImageBatch()
        by_id = {item.id: item for item in batch.items}
        missing = [i for i in ask if i not in by_id]
        for image_id in ask:
            item = by_id.get(image_id)
            if item is None:
                task_ids[image_id] = self._failed(image_id, MISSING_REASON)
            else:
                task_ids[image_id] = self._plan_one(item, save_metadata)
        self._owner.reserve_space()
        return [task_ids[i] for i in ids], missing

    def _plan_one(self, item: ImageItem, save_metadata: bool) -> str:
        """Schedule one looked-up image under the path template (its live task when it has
        one already); the task id."""
        item = self._context.complete(item, {})
        task = new_task(item.id, item.url, item)
        task.save_metadata = bool(save_metadata) and self._owner.save_metadata_default
        if not self._listings.plan_target(task, item):
            return task.id
        with self._registry.lock:
            existing = self._registry.active(item.id)
            if existing is not None:
                return existing.id
            self._registry.add(task)
        self._owner.schedule(task)
        return task.id

    def retry(
        self, failed: List[ImageDownloadTask], spec: FilterSpec, counts: FilterCounts
    ) -> List[str]:
        """New tasks for the failed images of this session and of the archive's history (see
        ``ImageDownloader.retry_failed``)."""
        retried: Set[Any] = set()
        new_ids: List[str] = []
        archive = self._owner.archive
        candidates: List[Candidate] = [(t.image_id, t.item, t.target) for t in failed]
        for row in archive.failed_tasks():
            candidates.append((row_as_dict(row).get("image_id"), None, None))
        looked_up = self._look_up_failed(candidates)
        for image_id, item, target in candidates:
            if image_id is None or image_id in retried:
                continue
            retried.add(image_id)
            if self._registry.active(image_id) is not None:
                continue
            if archive.has_image(image_id):
                continue
            if item is None and looked_up is not None:
                item = looked_up.get(int(image_id))
                if item is not None:
                    item = self._context.complete(item, {})
            if item is None:
                try:
                    if looked_up is not None:  # the batch did not answer it: not on Civitai
                        raise NotFoundError(f"image {image_id} was not in the batch answer")
                    item = self._context.complete(self._owner.api.get_image(int(image_id)), {})
                except NotFoundError:
                    reason = "HTTP 404: the image is no longer on Civitai"
                    new_ids.append(self._failed(image_id, reason))
                    continue
            why = item_filter.reason(item, spec) if spec.active else None
            if why is not None:
                counts.add(why)
                continue
            task = new_task(image_id, item.url, item)
            task.save_metadata = self._owner.save_metadata_default
            new_ids.append(task.id)
            if target is not None:
                task.target = target
            elif not self._listings.plan_target(task, item):
                continue
            self._registry.add(task)
            self._owner.schedule(task)
        if new_ids:
            self._owner.reserve_space()
        return new_ids

    def _look_up_failed(self, candidates: List[Candidate]) -> Optional[Dict[int, ImageItem]]:
        """The failed images retry must look up again, asked in ``ids=`` batches (200 a
        request instead of one each): image id -> item; None when there is nothing to ask or
        the API has no batch look-up."""
        ids: List[int] = []
        for image_id, item, _target in candidates:
            number = int_or_none(image_id)
            if item is not None or number is None or number in ids:
                continue
            if self._registry.active(number) is None and not self._owner.archive.has_image(number):
                ids.append(number)
        get_images = getattr(self._owner.api, "get_images", None)
        if len(ids) < 2 or get_images is None:
            return None
        return {item.id: item for item in get_images(ids).items if item.id is not None}

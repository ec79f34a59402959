"""Planning stage: the spec's ``ImageDownloader`` turns listings into download tasks.

The ``download_*`` methods list images through :class:`civitai_api.CivitaiAPI` in the calling
thread, page by page, and hand one :class:`ImageDownloadTask` per image to the
:class:`download_engine.DownloadEngine` as each page arrives; they return the task ids while the
downloads go on in the engine (use :meth:`ImageDownloader.wait`). What one job does is
``task_runner``; the duplicate policy ``duplicates``; checkpoints ``crawl_state``; callbacks
``callback_dispatcher``; free space ``disk_space``.

Decisions worth knowing (the spec leaves them open):

* ``nsfw_levels=None`` means the setting ``images.default_nsfw_filter`` (the user's preference),
  not "every level"; pass ``["None", "Soft", "Mature", "X"]`` for everything.
* The constructor's spec defaults ``output_path="./images"`` and ``path_template="{model_id}/{id}"``
  stand for the settings ``images.output_path`` / ``images.path_template``; other values are used
  as given. The other options default to their ``images.*`` setting.
* Metadata is written when both the call's ``save_metadata`` and ``images.save_metadata`` are true.
* ``limit`` counts listed images after the NSFW filter, including ones skipped as already
  downloaded, so re-running a limited call looks at the same images again.
* An image id already in the archive (with its file still on disk) is skipped before any request
  ("already downloaded"; such no-op tasks are not added to the archive's history). An image listed
  twice (two versions, two overlapping calls) gets one task. Other duplicates: ``duplicates``.
* Unlimited listings resume from their checkpoint (``crawl_state``); limited listings start over
  (cheap: known ids cost no image request). A listing whose server sends back a cursor it already
  gave stops with InvalidResponseError once that page is planned.
* ``download_filtered_images``: ``filter_params`` go to the images endpoint; the NSFW filter is
  ``filter_params["nsfw_levels"]`` (exact list) or ``filter_params["nsfw"]`` (a Civitai value such
  as ``"Mature"`` keeps Civitai's meaning, a list is exact), else the setting.
* Disk space: each ``download_*`` call first checks ``images.min_free_space_mb`` (DiskSpaceError,
  nothing written, no request). When, after a listed page, the queued work would bring the disk
  under the minimum (``disk_space``), or when a write meets a full disk, scheduling stops:
  listings end and every task not started yet is cancelled with the reason (``stopped_reason``).
  The next ``download_*`` call starts afresh.
* ``download_single_image(image_id, output_path=None)``: ``output_path`` is either a folder (it
  exists as one or ends with a separator; the file is ``<folder>/<id>.<ext>``) or a file path whose
  extension, if any, is replaced by the real one. It is taken as given (the user chose it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil  # noqa: F401  (kept importable: tests patch image_downloader.shutil.disk_usage)
import threading
import time
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from . import civitai_api, disk_space, setting
from .callback_dispatcher import ProgressCallback, TaskCallback, TaskCallbacks
from .crawl_state import ListingPage, ListingState
from .download_engine import PRIORITY_SINGLE, DownloadEngine
from .download_task import (  # noqa: F401  (re-exported: the task and its statuses live here)
    CANCELLED,
    COMPLETED,
    DOWNLOADING,
    FAILED,
    FINAL_STATES,
    PENDING,
    SKIPPED,
    ImageDownloadTask,
    row_as_dict,
    summarize,
    task_from_record,
)
from .duplicates import MEDIA_EXTENSIONS, FileNames, find_existing  # noqa: F401
from .errors import (
    CivitaiGalleryError,
    InvalidQueryError,
    MetadataError,
    NotFoundError,
    OutputPathError,
    SettingsError,
)
from .failures import describe_failure  # noqa: F401  (re-exported)
from .paths import PathTemplate, fields_from_item, safe_join
from .records import NSFW_LEVELS, DownloadSummary, ImageItem
from .task_runner import Outcome, TaskRunner
from .template_context import TemplateContext, int_or_none

logger = logging.getLogger(__name__)

ARCHIVE_NAME = ".civitai_archive.sqlite3"
ALL_LEVELS = list(NSFW_LEVELS)
REASON_KNOWN = "already downloaded"


def _positive_id(value: Any, what: str) -> int:
    number = int_or_none(value)
    if number is None or number <= 0:
        raise InvalidQueryError(f"The {what} id must be a positive number, got {value!r}.")
    return number


def _option(key: str, value: Any) -> Any:
    """An option given to the constructor, validated like the setting, or the setting's value."""
    if value is None:
        return setting.get(key)
    return setting.SPECS[key].validate(value)


class ImageDownloader:
    """Civitai image download manager (the spec's API plus wait, cancel, summary, retry)."""

    page_size = civitai_api.MAX_PAGE_SIZE  # items asked per listing request

    def __init__(
        self,
        api_client: Optional[civitai_api.CivitaiAPI] = None,
        download_engine: Optional[DownloadEngine] = None,
        output_path: str = "./images",
        path_template: str = "{model_id}/{id}",
        *,
        archive=None,
        metadata_formats: Optional[Sequence[str]] = None,
        duplicate_policy: Optional[str] = None,
        generate_thumbnails: Optional[bool] = None,
        thumbnail_size: Optional[Tuple[int, int]] = None,
        skip_existing: Optional[bool] = None,
        min_free_space_mb: Optional[int] = None,
        max_concurrent: Optional[int] = None,
    ):
        if path_template == "{model_id}/{id}":
            path_template = setting.get("images.path_template")
        if output_path == "./images":
            output_path = setting.get("images.output_path")
        self.template = PathTemplate(path_template)  # TemplateError before anything is written
        self.output_path = os.path.abspath(os.path.expanduser(os.fspath(output_path)))
        if isinstance(metadata_formats, (list, tuple)):
            metadata_formats = ",".join(metadata_formats)
        formats = _option("images.metadata_format", metadata_formats)
        self.metadata_formats = [f.strip() for f in str(formats).split(",") if f.strip()]
        self.duplicate_policy = _option("images.duplicate_policy", duplicate_policy)
        self.generate_thumbnails = _option("images.generate_thumbnails", generate_thumbnails)
        self.thumbnail_size = tuple(_option("images.thumbnail_size", thumbnail_size))
        self.skip_existing = _option("images.skip_existing", skip_existing)
        self.min_free_space_mb = _option("images.min_free_space_mb", min_free_space_mb)
        self.save_metadata_default = bool(setting.get("images.save_metadata"))
        workers = _option("images.max_concurrent", max_concurrent)

        self._owns_engine = download_engine is None
        if download_engine is None:
            download_engine = DownloadEngine(client=None, max_workers=workers)
        elif max_concurrent is not None:
            download_engine.max_workers = workers
        self.engine = download_engine
        if api_client is None:
            api_client = civitai_api.CivitaiAPI(client=self.engine.configured_client)
        self.api = api_client

        self._archive = archive
        self._owns_archive = archive is None
        self._archive_lock = threading.Lock()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._tasks: Dict[str, ImageDownloadTask] = {}
        self._active_by_image: Dict[Any, ImageDownloadTask] = {}
        self._names = FileNames()
        self._listings: List[ListingState] = []
        self._history: Optional[Dict[str, ImageDownloadTask]] = None
        self._halt_reason: Optional[str] = None
        self._context = TemplateContext(path_template, lambda: self.api)
        self._runner = TaskRunner(self, self._names, self._on_bytes)
        self._sizes: List[int] = []
        self._callbacks = TaskCallbacks(self.summary)
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"ImageDownloader(output_path={self.output_path!r}, "
            f"path_template={self.template.template!r}, tasks={len(self._tasks)})"
        )

    def __enter__(self) -> "ImageDownloader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- collaborators ---------------------------------------------------------------------------

    @property
    def client(self):
        """The transport used for image files (the engine's client)."""
        return self.engine.client

    @property
    def archive(self):
        """The archive, opened (and the output folder created) on first use."""
        with self._archive_lock:
            if self._archive is None:
                from .archive import Archive

                try:
                    os.makedirs(self.output_path, exist_ok=True)
                except OSError as exc:
                    raise OutputPathError(
                        f"Cannot create the output folder {self.output_path} "
                        f"({exc.strerror or exc}); choose a folder you can write to."
                    ) from exc
                self._archive = Archive(os.path.join(self.output_path, ARCHIVE_NAME))
            return self._archive

    def _archive_exists(self) -> bool:
        return self._archive is not None or os.path.exists(
            os.path.join(self.output_path, ARCHIVE_NAME)
        )

    # -- the spec's download methods -------------------------------------------------------------

    def download_model_images(
        self,
        model_id: int,
        limit: int = 0,
        nsfw_levels: Optional[List[str]] = None,
        save_metadata: bool = True,
    ) -> List[str]:
        """Download every image of a model (``limit`` 0 = all); returns the task ids.

        Raises ApiError (NotFoundError naming the model) when listing fails, DiskSpaceError when
        the output disk is below ``images.min_free_space_mb``.
        """
        model_id = _positive_id(model_id, "model")
        return self._download_listing(
            "model", model_id, {"modelId": model_id}, limit, nsfw_levels, save_metadata
        )

    def download_version_images(
        self,
        version_id: int,
        limit: int = 0,
        nsfw_levels: Optional[List[str]] = None,
        save_metadata: bool = True,
    ) -> List[str]:
        """Download the images of one model version (``limit`` 0 = all); returns the task ids."""
        version_id = _positive_id(version_id, "model version")
        return self._download_listing(
            "version",
            version_id,
            {"modelVersionId": version_id},
            limit,
            nsfw_levels,
            save_metadata,
        )

    def download_creator_images(
        self,
        username: str,
        limit: int = 20,
        nsfw_levels: Optional[List[str]] = None,
        save_metadata: bool = True,
    ) -> List[str]:
        """Download up to ``limit`` images posted by ``username`` (0 = all)."""
        if not isinstance(username, str) or not username.strip():
            raise InvalidQueryError("A creator's username is needed, e.g. 'someartist'.")
        username = username.strip()
        return self._download_listing(
            "creator", username, {"username": username}, limit, nsfw_levels, save_metadata
        )

    def download_filtered_images(
        self, filter_params: Dict[str, Any], limit: int = 20, save_metadata: bool = True
    ) -> List[str]:
        """Download up to ``limit`` images matching images-endpoint filters (``nsfw`` included)."""
        if not isinstance(filter_params, Mapping):
            raise InvalidQueryError(
                "Filters must be a mapping such as {'modelId': 1, 'sort': 'Newest'}."
            )
        params = {k: v for k, v in filter_params.items() if v is not None}
        levels = params.pop("nsfw_levels", None)
        if levels is None and params.get("nsfw") not in (None, ""):
            levels = list(civitai_api.levels_of_param(params["nsfw"]))
        params.pop("nsfw", None)
        value = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
        return self._download_listing("filter", value, params, limit, levels, save_metadata)

    def download_single_image(
        self, image_id: int, output_path: Optional[str] = None, save_metadata: bool = True
    ) -> str:
        """Download one image (before any queued bulk work); returns the task id.

        ``output_path``: a folder (existing, or written with a trailing separator) to save
        ``<id>.<ext>`` in, or a file path whose extension is replaced by the real one. Without it
        the path template applies and an image already in the archive is skipped without any
        request.
        """
        image_id = _positive_id(image_id, "image")
        self._ensure_open()
        root = self.output_path if output_path is None else os.path.abspath(output_path)
        disk_space.check_free_space(root, self.min_free_space_mb)
        row = self._archive_row(image_id) if output_path is None else {}
        if row.get("path") and os.path.isfile(row["path"]):
            task = self._new_task(image_id, row.get("url") or "", None)
            self._register(task)
            self._final(task, SKIPPED, REASON_KNOWN, image_path=row["path"], record=False)
            return task.id
        item = self._context.complete(self.api.get_image(image_id), {})
        task = self._new_task(image_id, item.url, item)
        task.priority = PRIORITY_SINGLE
        task.save_metadata = bool(save_metadata) and self.save_metadata_default
        if output_path is None:
            task.target = safe_join(self.output_path, self.template.render(fields_from_item(item)))
        else:
            task.custom_path = True
            custom = os.path.abspath(os.path.expanduser(output_path))
            if os.path.isdir(custom) or output_path.endswith(("/", os.sep)):
                task.target = os.path.join(custom, str(image_id))
            else:
                base, ext = os.path.splitext(custom)
                task.target = base if ext.lower() in MEDIA_EXTENSIONS else custom
        with self._lock:
            existing = self._active_by_image.get(image_id)
            if existing is not None and output_path is None:
                return existing.id
            self._register(task)
        self._schedule(task)
        self._reserve_space()
        return task.id

    @property
    def max_concurrent(self) -> int:
        """Simultaneous downloads; can be changed while a batch runs (the engine's pool size)."""
        return self.engine.max_workers

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        self.engine.max_workers = setting.SPECS["images.max_concurrent"].validate(value)

    @property
    def stopped_reason(self) -> Optional[str]:
        """Why scheduling stopped (disk space), or None."""
        return self._halt_reason

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ImageDownloader was closed; create a new one")

    # -- listing ---------------------------------------------------------------------------------

    def _download_listing(
        self,
        kind: str,
        value: Any,
        params: Dict[str, Any],
        limit: int,
        nsfw_levels: Any,
        save_metadata: bool,
    ) -> List[str]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidQueryError(
                f"limit must be 0 (no limit) or a positive number, got {limit!r}."
            )
        self._ensure_open()
        if nsfw_levels is None:
            nsfw_levels = setting.get("images.default_nsfw_filter")
        levels = list(civitai_api.normalize_levels(nsfw_levels))
        query_key = f"{kind}:{value}|nsfw={','.join(levels)}"
        if limit:
            query_key += f"|limit={limit}"
        disk_space.check_free_space(self.output_path, self.min_free_space_mb)
        with self._lock:
            self._halt_reason = None
        listing = self._start_listing(query_key, use_checkpoint=limit == 0)
        context = self._context.for_listing(kind, value)
        listed = 0
        cursor = listing.start_cursor
        try:
            while not listing.stop.is_set() and self._halt_reason is None:
                size = min(self.page_size, limit) if limit else self.page_size
                listing.note_request(cursor)
                page = self.api.get_image_page(
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
            self._update_checkpoint(listing)
        logger.info("%s: %d image(s) listed, %d task(s)", query_key, listed, len(listing.task_ids))
        return list(listing.task_ids)

    def _start_listing(self, query_key: str, use_checkpoint: bool) -> ListingState:
        archive = self.archive  # OutputPathError before any request when the folder is unusable
        start = archive.get_checkpoint(query_key) if use_checkpoint else None
        if start:
            logger.info("resuming %s from its checkpoint", query_key)
        listing = ListingState(query_key, use_checkpoint, start)
        with self._lock:
            for older in [x for x in self._listings if x.query_key == query_key]:
                # an earlier, interrupted run of the same query: this one resumes from its
                # checkpoint and takes over its unfinished tasks, so it alone writes from now on
                older.use_checkpoint = False
                older.stop.set()
                self._listings.remove(older)
            self._listings.append(listing)
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
        ids = [item.id for item in items if item.id is not None]
        known = set(self.archive.known_ids(ids)) if ids else set()
        page = listing.add_page(cursor, next_cursor)
        for item in items:
            if listing.stop.is_set() or self._halt_reason is not None:
                break
            ident = item.id if item.id is not None else item.url
            if ident in listing.seen_images:
                continue  # listed twice in this call (e.g. under two versions)
            listing.seen_images.add(ident)
            if self._join_active(listing, page, ident, replace_last=False):
                continue
            item = self._context.complete(item, context)
            task = self._new_task(item.id, item.url, item)
            task.query_key = listing.query_key
            task.save_metadata = bool(save_metadata) and self.save_metadata_default
            listing.task_ids.append(task.id)
            if item.id in known:
                row = self._archive_row(item.id)
                if row.get("path") and os.path.isfile(row["path"]):
                    self._register(task)
                    self._final(task, SKIPPED, REASON_KNOWN, image_path=row["path"], record=False)
                    continue
                logger.info("image %s: its saved file is gone; downloading it again", item.id)
            if not self._plan_target(task, item):
                continue
            with self._lock:  # another listing may have just won
                if self._join_active(listing, page, ident, replace_last=True):
                    continue
                self._register(task)
                page.open.add(task.id)
            self._schedule(task)
        self._reserve_space()
        self._update_checkpoint(listing)

    def _join_active(
        self, listing: ListingState, page: ListingPage, ident: Any, replace_last: bool
    ) -> bool:
        """Use the live task another call already has for this image; True when there is one."""
        with self._lock:
            existing = self._active_by_image.get(ident)
            if existing is None:
                return False
            if replace_last:
                listing.task_ids[-1] = existing.id
            else:
                listing.task_ids.append(existing.id)
            page.open.add(existing.id)
            return True

    def _plan_target(self, task: ImageDownloadTask, item: ImageItem) -> bool:
        """Set the task's target from the path template; False (task failed) when no safe name."""
        try:
            task.target = safe_join(self.output_path, self.template.render(fields_from_item(item)))
        except CivitaiGalleryError as exc:
            self._register(task)
            self._final(task, FAILED, f"no safe file name for this image: {exc}")
            return False
        return True

    # -- scheduling and running ------------------------------------------------------------------

    def _new_task(self, image_id: Any, url: str, item: Optional[ImageItem]) -> ImageDownloadTask:
        return ImageDownloadTask.for_item(uuid.uuid4().hex, image_id, url, item)

    def _register(self, task: ImageDownloadTask) -> None:
        with self._lock:
            self._tasks[task.id] = task
            if not task.done and task.image_id is not None:
                self._active_by_image[task.image_id] = task

    def _schedule(self, task: ImageDownloadTask) -> None:
        """Settle what can be settled without a request, else hand the task to the engine."""
        assert task.target is not None
        if self.skip_existing and not task.custom_path:
            existing = find_existing(task.target)
            if existing is not None:
                self._settle(task, self._runner.adopt(task, existing))
                return
        task.target = self._names.claim(task.target, task.image_id)
        try:
            self.engine.submit(lambda ev, t=task: self._run(t, ev), task.priority, key=task.id)
        except RuntimeError as exc:  # the engine was shut down
            self._final(task, CANCELLED, f"not started: {exc}")

    def _run(self, task: ImageDownloadTask, cancel_event: threading.Event) -> None:
        """Engine job: download, post-process, record. Never leaves the task half-final."""
        if self._halt_reason is not None:
            self._final(task, CANCELLED, self._halt_reason)
            return
        if cancel_event.is_set() or not task._start():
            self._final(task, CANCELLED, "cancelled")
            return
        self._callbacks.progress()
        self._settle(task, self._runner.run(task, cancel_event))

    def _settle(self, task: ImageDownloadTask, outcome: Outcome) -> None:
        if outcome.status == COMPLETED:
            with self._lock:
                self._sizes.append(outcome.fields["size"])
        self._final(task, outcome.status, outcome.error, **outcome.fields)
        if outcome.disk_full:
            self._halt(f"not started: {outcome.error}")

    def _on_bytes(self, task: ImageDownloadTask, done: int, total: Optional[int]) -> None:
        task._set_progress(done, total)
        self._callbacks.progress(throttle=True)

    # -- final states, archive, callbacks --------------------------------------------------------

    def _final(self, task: ImageDownloadTask, status: str, error: Optional[str], record=True, **kw):
        """Settle a task once: archive it, update checkpoints, queue callbacks, wake waiters."""
        if not task._finish(status, error, **kw):
            return
        try:
            if record and task.image_id is not None:
                self.archive.record_task(task.to_dict())
            with self._lock:
                if self._active_by_image.get(task.image_id) is task:
                    del self._active_by_image[task.image_id]
                listings = list(self._listings)
            for listing in listings:
                if listing.task_final(task):
                    self._update_checkpoint(listing)
        except CivitaiGalleryError as exc:  # the archive failed: the task's state still counts
            logger.error("image %s: could not update the download archive: %s", task.image_id, exc)
        finally:
            self._callbacks.task_final(task, completed=status == COMPLETED)
            with self._lock:
                if status in (COMPLETED, SKIPPED):
                    task.item = None  # the listing's data is not needed any more (memory)
                task._settled = True
                self._changed.notify_all()
        self._callbacks.progress()

    def _update_checkpoint(self, listing: ListingState) -> None:
        def forget() -> None:
            self._listings = [x for x in self._listings if x is not listing]

        listing.sync_checkpoint(self._lock, lambda: self.archive, forget)

    def _halt(self, reason: str) -> None:
        """Stop scheduling: stop every listing and cancel the tasks not started yet."""
        with self._lock:
            self._halt_reason = reason
            listings = list(self._listings)
            waiting = [t for t in self._tasks.values() if t.status == PENDING]
        for listing in listings:
            listing.stop.set()
        self.engine.cancel([t.id for t in waiting])
        for task in waiting:
            self._final(task, CANCELLED, reason)

    def _reserve_space(self) -> None:
        """Stop scheduling when the queued work would bring the disk under the minimum."""
        with self._lock:
            pending = [t for t in self._tasks.values() if not t.done]
            sizes = list(self._sizes)
        reason = disk_space.shortfall(pending, sizes, self.output_path, self.min_free_space_mb)
        if reason is not None:
            self._halt(reason)

    def _archive_row(self, image_id: int) -> Dict[str, Any]:
        return row_as_dict(self.archive.get_image(image_id))

    # -- the rest of the public API --------------------------------------------------------------

    def get_task(self, task_id: str) -> Optional[ImageDownloadTask]:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            task = self._load_history().get(task_id)
        return task

    def get_all_tasks(self) -> List[ImageDownloadTask]:
        """This session's tasks after the archive's history (restored with their final state)."""
        history = self._load_history()
        with self._lock:
            session = list(self._tasks.values())
        ids = {task.id for task in session}
        return [t for t in history.values() if t.id not in ids] + session

    def _load_history(self) -> Dict[str, ImageDownloadTask]:
        if self._history is None:
            history: Dict[str, ImageDownloadTask] = {}
            if self._archive_exists():
                for row in reversed(self.archive.tasks()):  # oldest first, like the session
                    task = task_from_record(row_as_dict(row))
                    history[task.id] = task
            self._history = history
        return self._history

    def extract_image_metadata(self, image_data: Dict[str, Any]) -> Dict[str, Any]:
        from . import metadata

        return metadata.extract_image_metadata(image_data)

    def save_metadata_file(
        self, image_path: str, metadata: Dict[str, Any], format: str = "json"
    ) -> str:
        """Write ``metadata`` for ``image_path`` as ``json``, ``txt`` or ``exif``; returns the path
        written (the image itself for ``exif`` when embedding worked)."""
        from . import metadata as metadata_module

        fmt = str(format).strip().lower()
        if fmt not in setting.METADATA_FORMATS:
            raise SettingsError(f"Unknown metadata format {format!r}; choose json, txt or exif.")
        paths = metadata_module.save_metadata(image_path, metadata, [fmt])
        if not paths:
            raise MetadataError(f"No {fmt} metadata could be written for {image_path}.")
        return paths[0]

    def register_image_downloaded_callback(self, callback: TaskCallback) -> None:
        """``callback(task)`` once per completed download, on the callback thread."""
        self._callbacks.on_downloaded(callback)

    def register_task_finished_callback(self, callback: TaskCallback) -> None:
        """``callback(task)`` once per task reaching any final state, on the callback thread."""
        self._callbacks.on_finished(callback)

    def register_progress_callback(self, callback: ProgressCallback) -> None:
        """``callback(summary)`` when tasks change (bytes at most every 0.25 s)."""
        self._callbacks.on_progress(callback)

    def wait(
        self, task_ids: Optional[Iterable[str]] = None, timeout: Optional[float] = None
    ) -> bool:
        """Block until the tasks (all of this session when None) are final and their callbacks
        have run; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                tasks = self._select(task_ids)
                if all(task._settled for task in tasks):
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining if remaining is not None else 1.0)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._callbacks.dispatcher.drain(remaining)

    def cancel(self, task_ids: Optional[Iterable[str]] = None) -> int:
        """Cancel tasks (all, and every ongoing listing, when None); returns how many were live."""
        with self._lock:
            if task_ids is None:
                for listing in self._listings:
                    listing.stop.set()
            live = [task for task in self._select(task_ids) if not task.done]
        self.engine.cancel([task.id for task in live])
        for task in live:
            if task.status == PENDING:
                self._final(task, CANCELLED, "cancelled")
        return len(live)

    def summary(self, task_ids: Optional[Iterable[str]] = None) -> DownloadSummary:
        with self._lock:
            tasks = self._select(task_ids)
        return summarize(tasks, self.output_path)

    def retry_failed(self) -> List[str]:
        """New tasks for the failed images of this session and of the archive's history.

        An image that is in the archive by now, or already queued again, is left out; an image
        Civitai no longer has gets a failed task saying so.
        """
        self._ensure_open()
        disk_space.check_free_space(self.output_path, self.min_free_space_mb)
        with self._lock:
            self._halt_reason = None
            failed = [t for t in self._tasks.values() if t.status == FAILED]
        retried: Set[Any] = set()
        new_ids: List[str] = []
        archive = self.archive
        candidates: List[Tuple[Any, Optional[ImageItem], Optional[str]]] = [
            (t.image_id, t.item, t.target) for t in failed
        ]
        for row in archive.failed_tasks():
            candidates.append((row_as_dict(row).get("image_id"), None, None))
        for image_id, item, target in candidates:
            if image_id is None or image_id in retried:
                continue
            retried.add(image_id)
            with self._lock:
                if image_id in self._active_by_image:
                    continue
            if archive.has_image(image_id):
                continue
            if item is None:
                try:
                    item = self._context.complete(self.api.get_image(int(image_id)), {})
                except NotFoundError:
                    task = self._new_task(image_id, "", None)
                    self._register(task)
                    self._final(task, FAILED, "HTTP 404: the image is no longer on Civitai")
                    new_ids.append(task.id)
                    continue
            task = self._new_task(image_id, item.url, item)
            task.save_metadata = self.save_metadata_default
            new_ids.append(task.id)
            if target is not None:
                task.target = target
            elif not self._plan_target(task, item):
                continue
            self._register(task)
            self._schedule(task)
        if new_ids:
            self._reserve_space()
        return new_ids

    def close(self) -> None:
        """Cancel what is still queued or running, stop the owned engine, flush callbacks."""
        if self._closed:
            return
        self._closed = True
        self.cancel()
        if self._owns_engine:
            self.engine.shutdown(wait=True, cancel_pending=True)
        else:
            self.wait(timeout=30)
        self._callbacks.dispatcher.close()
        if self._owns_archive and self._archive is not None and hasattr(self._archive, "close"):
            self._archive.close()

    def _select(self, task_ids: Optional[Iterable[str]]) -> List[ImageDownloadTask]:
        if task_ids is None:
            return list(self._tasks.values())
        if isinstance(task_ids, str):
            task_ids = [task_ids]
        unique = dict.fromkeys(t for t in task_ids if t in self._tasks)  # keeps the order
        return [self._tasks[t] for t in unique]

"""Planning stage: the spec's ``ImageDownloader`` turns listings into download tasks, page by
page in the calling thread, while the downloads go on in the engine (``wait()``). A facade: pages
are planned by ``listing_planner``, ids by ``by_id``, tasks run by ``jobs`` (one job:
``engine/task_runner``; why a file was skipped or renamed: ``engine/duplicates``), the folder's
lock held by ``work_lock``. The choices the spec leaves open: docs/DESIGN.md, "ImageDownloader:
decisions"."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..civitai.drift import Drift
from ..civitai import api as civitai_api
from ..civitai import image_batch
from ..civitai.image_batch import ImageBatch
from ..civitai.filters import FilterSpec
from ..store import disk_space
from .work_lock import WorkLock
from .. import setting
from .callback_dispatcher import ProgressCallback, TaskCallback, TaskCallbacks
from ..engine.pool import DownloadEngine
from ..engine.task import FAILED, ImageDownloadTask, summarize
from ..engine.duplicates import FileNames
from ..errors import MetadataError, SettingsError
from . import item_filter
from .item_filter import FilterCounts
from . import listing_request
from .listing_planner import ListingPlanner
from .listing_request import ListingRequest
from ..store.paths import ARCHIVE_NAME, PathTemplate
from ..records import DownloadSummary
from .task_registry import TaskRegistry
from .by_id import IdPlanner
from ..engine.task_runner import TaskRunner
from .jobs import Jobs
from .template_context import TemplateContext

logger = logging.getLogger(__name__)


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
        self.thumbnail_size: Tuple[int, ...] = tuple(
            _option("images.thumbnail_size", thumbnail_size)
        )
        self.skip_existing = _option("images.skip_existing", skip_existing)
        self.min_free_space_mb = _option("images.min_free_space_mb", min_free_space_mb)
        self.save_metadata_default = bool(setting.get("images.save_metadata"))
        # a changed civitai_video_base_url serves the videos of any media host (else None:
        # Civitai's own video host serves only Civitai's own media URLs)
        video_base = setting.get("civitai_video_base_url")
        changed = video_base and video_base != setting.SPECS["civitai_video_base_url"].default
        self.video_base_url: Optional[str] = video_base if changed else None
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
        # what Civitai answered differently from what is expected: this session's listings, and
        # the latest listing's (civitai/drift.py)
        self.drift = Drift()
        self.last_drift: List[Dict[str, Any]] = []
        # one line per listing that stopped early or could not (planning/incremental.py)
        self.notes: List[str] = []

        self._archive = archive
        self._owns_archive = archive is None
        self._archive_lock = threading.Lock()
        self._callbacks = TaskCallbacks(self.summary)
        self._registry = TaskRegistry(lambda: self.archive, self._callbacks)
        self._context = TemplateContext(path_template, lambda: self.api, lambda: self.archive)
        self._planner = ListingPlanner(self, self._registry, self._context)
        self._by_id = IdPlanner(self, self._registry, self._context, self._planner)
        names = FileNames()
        self._jobs = Jobs(self, self._registry, self._callbacks, TaskRunner(self, names), names)
        self._filtered = FilterCounts()  # this session's filtered images, by reason
        self.last_filtered: Dict[str, int] = {}  # the latest listing's (or retry's)
        self.last_missing: List[int] = []  # ids the latest download_images found no image for
        self._closed = False
        # one writer per output folder (store.folder_lock): held while this downloader has work,
        # or for its whole life once lock_output() was called (the CLI)
        self._work = WorkLock(self.output_path, self._registry)

    def __repr__(self) -> str:
        return (
            f"ImageDownloader(output_path={self.output_path!r}, "
            f"path_template={self.template.template!r}, tasks={len(self._registry)})"
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
                from ..store.archive import Archive

                # the archive creates the output folder (OutputPathError when it cannot)
                self._archive = Archive(os.path.join(self.output_path, ARCHIVE_NAME))
            return self._archive

    def _archived(self) -> bool:
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
        *,
        filters: Optional[FilterSpec] = None,
    ) -> List[str]:
        """Download every image of a model (``limit`` 0 = all); returns the task ids.

        Raises ApiError (NotFoundError naming the model) when listing fails, DiskSpaceError when
        the output disk is below ``images.min_free_space_mb``.
        """
        levels = self._levels(nsfw_levels)
        request = listing_request.model_listing(model_id, limit, levels, filters)
        return self.download_listing(request, save_metadata)

    def download_version_images(
        self,
        version_id: int,
        limit: int = 0,
        nsfw_levels: Optional[List[str]] = None,
        save_metadata: bool = True,
        *,
        filters: Optional[FilterSpec] = None,
    ) -> List[str]:
        """Download the images of one model version (``limit`` 0 = all); returns the task ids."""
        levels = self._levels(nsfw_levels)
        request = listing_request.version_listing(version_id, limit, levels, filters)
        return self.download_listing(request, save_metadata)

    def download_creator_images(
        self,
        username: str,
        limit: int = 20,
        nsfw_levels: Optional[List[str]] = None,
        save_metadata: bool = True,
        *,
        filters: Optional[FilterSpec] = None,
    ) -> List[str]:
        """Download up to ``limit`` images posted by ``username`` (0 = all)."""
        levels = self._levels(nsfw_levels)
        request = listing_request.creator_listing(username, limit, levels, filters)
        return self.download_listing(request, save_metadata)

    def download_filtered_images(
        self,
        filter_params: Dict[str, Any],
        limit: int = 20,
        save_metadata: bool = True,
        *,
        filters: Optional[FilterSpec] = None,
    ) -> List[str]:
        """Download up to ``limit`` images matching images-endpoint filters (``nsfw`` included)."""
        default = self._levels(None)
        request = listing_request.filtered_listing(filter_params, limit, filters, default)
        return self.download_listing(request, save_metadata)

    @staticmethod
    def _levels(nsfw_levels: Optional[List[str]]) -> List[str]:
        """``nsfw_levels`` None (the spec's API): the user's default levels, as they are now."""
        if nsfw_levels is not None:
            return nsfw_levels
        return list(setting.get("images.default_nsfw_filter"))

    def prefetch_first_page(self, request: ListingRequest) -> bool:
        """Ask ``request``'s first page now, on a thread (``CivitaiAPI.prefetch_page``), so the
        listing started after a look-up (the target check) does not wait for it. Only when that
        page is certain: a listing that resumes from a checkpoint starts at another cursor.
        Nothing is written; True when the page was asked."""
        ahead = listing_request.first_page_ahead(
            request, self.output_path, self.page_size, self._archive
        )
        if ahead is not None:
            self.api.prefetch_page(**ahead)
        return ahead is not None

    def download_listing(self, request: ListingRequest, save_metadata: bool = True) -> List[str]:
        """Download what ``request`` lists (see :mod:`.listing_request`); returns the task ids.
        The ``download_*`` methods build the request and call this."""
        with self._starting():
            # retry-failed and a re-run in this folder apply the same filters
            self.archive.set_run_options({"filters": request.spec.to_dict()})
            counts = FilterCounts()
            # the API's hosts (both fronts) serve this listing's media too (a mirror, the demo)
            client = getattr(self.api, "client", None)
            drift = Drift.for_urls(
                getattr(client, "base_url", None), getattr(client, "red_base_url", None)
            )
            try:
                return self._planner.run(request, save_metadata, counts, drift)
            finally:
                self._count_filtered(counts)
                self.drift.merge(drift)
                self.last_drift = drift.kinds()

    def download_single_image(
        self, image_id: int, output_path: Optional[str] = None, save_metadata: bool = True
    ) -> str:
        """Download one image (before any queued bulk work); returns the task id.

        ``output_path``: a folder (existing, or written with a trailing separator) to save
        ``<id>.<ext>`` in, or a file path whose extension is replaced by the real one. Without it
        the path template applies and an image already in the archive is skipped without any
        request.
        """
        image_id = civitai_api.check_id(image_id, "image")
        root = self.output_path if output_path is None else os.path.abspath(output_path)
        with self._starting(root):
            return self._by_id.single(image_id, output_path, save_metadata)

    def note_embed_skipped(self, reason: str) -> None:
        """A file of this run got a txt sidecar instead of embedded text (``reason``)."""
        self._jobs.note_embed_skipped(reason)

    @property
    def embed_skipped(self) -> Dict[str, int]:
        """This run's files whose generation data went to a txt sidecar instead of being
        embedded, by reason (the shells say it in one line per reason)."""
        return self._jobs.embed_skipped()

    @contextlib.contextmanager
    def _starting(self, root: Optional[str] = None) -> Iterator[None]:
        """A call that plans work: refused once closed, DiskSpaceError under
        ``images.min_free_space_mb`` (nothing written), the folder's lock held. What the last run
        learnt dies with it: a disk-full halt, the hosts found down (the shared ``HostGate`` of a
        long-lived process, the tab) and its counts, so a new job or a retry asks again."""
        if self._closed:
            raise RuntimeError("this ImageDownloader was closed; create a new one")
        disk_space.check_free_space(root or self.output_path, self.min_free_space_mb)
        with self._work.working():
            self._jobs.new_run()
            clients = (getattr(self.engine, "client", None), getattr(self.api, "client", None))
            gates: List[Any] = [getattr(client, "host_gate", None) for client in clients]
            for gate in {id(g): g for g in gates if hasattr(g, "new_run")}.values():
                gate.new_run()
            yield

    def download_images(
        self,
        image_ids: Sequence[int],
        save_metadata: bool = True,
        *,
        with_tags: bool = False,
        batch: Optional[ImageBatch] = None,
    ) -> List[str]:
        """Download several images by id; returns their task ids (in the order given).

        Images already in the archive (with their file) are skipped without any request; the
        others are asked in ``ids=`` batches of up to 200 (``CivitaiAPI.get_images``; ``batch``:
        that answer when the caller already has it). An id Civitai does not answer (not on
        Civitai, or hidden) gets a failed task saying so, and one line names them all
        (:attr:`last_missing` keeps them).
        """
        ids = image_batch.unique_ids(civitai_api.check_id(i, "image") for i in image_ids)
        with self._starting():
            task_ids, self.last_missing = self._by_id.batch(ids, save_metadata, with_tags, batch)
            line = ImageBatch(missing=self.last_missing).missing_line(len(ids))
            if line:
                logger.warning("%s", line)
            return task_ids

    @property
    def max_concurrent(self) -> int:
        """Simultaneous downloads; can be changed while a batch runs (the engine's pool size)."""
        return self.engine.max_workers

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        self.engine.max_workers = setting.SPECS["images.max_concurrent"].validate(value)

    @property
    def limit_cut(self) -> Optional[int]:
        """The limit the latest listing stopped at while Civitai listed more (else None)."""
        return self._planner.limit_cut

    @property
    def listed_any(self) -> Optional[bool]:
        """Whether the latest listing's pages held any image (None: nothing listed yet)."""
        return self._planner.listed_any

    @property
    def stopped_reason(self) -> Optional[str]:
        """Why scheduling stopped (disk space), or None."""
        return self._jobs.halt_reason

    def lock_output(self) -> None:
        """Hold the output folder's lock until :meth:`close` (the CLI: refuse a second process at
        once, before any listing). OutputBusyError when another process holds it."""
        self._work.pin()

    def _count_filtered(self, counts: FilterCounts) -> None:
        with self._registry.lock:
            self._filtered.merge(counts)
            self.last_filtered = counts.as_dict()

    def remembered_filters(self) -> FilterSpec:
        """The filters the last listing into this folder ran with (none when never recorded)."""
        return item_filter.remembered(self.archive) if self._archived() else FilterSpec()

    # -- scheduling and running (planning/jobs.py) ------------------------------------------------

    def schedule(self, task: ImageDownloadTask) -> None:
        """Settle what can be settled without a request, else hand the task to the engine."""
        self._jobs.schedule(task)

    def reserve_space(self) -> None:
        """Stop scheduling when the queued work would bring the disk under the minimum."""
        self._jobs.reserve_space()

    def task_bytes(self, task: ImageDownloadTask, done: int, total: Optional[int]) -> None:
        """``done`` of ``total`` bytes of ``task`` received (the runner reports them)."""
        task._set_progress(done, total)
        self._callbacks.progress(throttle=True)

    # -- the rest of the public API --------------------------------------------------------------

    def get_task(self, task_id: str) -> Optional[ImageDownloadTask]:
        task = self._registry.get(task_id)
        return task if task is not None else self._registry.history(self._archived()).get(task_id)

    def get_all_tasks(self) -> List[ImageDownloadTask]:
        """This session's tasks after the archive's history (restored with their final state)."""
        history = self._registry.history(self._archived())
        session = self._registry.select()
        ids = {task.id for task in session}
        return [t for t in history.values() if t.id not in ids] + session

    def extract_image_metadata(self, image_data: Dict[str, Any]) -> Dict[str, Any]:
        from ..metadata import record as metadata

        return metadata.extract_image_metadata(image_data)

    def save_metadata_file(
        self, image_path: str, metadata: Dict[str, Any], format: str = "json"
    ) -> str:
        """Write ``metadata`` for ``image_path`` as ``json``, ``txt`` or ``exif``; returns the path
        written (the image itself for ``exif`` when embedding worked)."""
        from ..metadata import record as metadata_module

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
        if not self._registry.wait(task_ids, deadline):
            return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._callbacks.dispatcher.drain(remaining)

    def cancel(self, task_ids: Optional[Iterable[str]] = None) -> int:
        """Cancel tasks (all, and every ongoing listing, when None); returns how many were live."""
        return self._jobs.cancel(task_ids)

    def summary(self, task_ids: Optional[Iterable[str]] = None) -> DownloadSummary:
        """Counts over the tasks (all of this session when None; then ``filtered`` holds the
        session's filtered images by reason and ``drift`` what Civitai answered differently from
        what is expected, ``civitai/drift.py``)."""
        result = summarize(self._registry.select(task_ids), self.output_path)
        if task_ids is None:
            with self._registry.lock:
                result.filtered = self._filtered.as_dict()
            result.drift = self.drift.kinds()
            result.notes = list(self.notes)
        return result

    def retry_failed(self, *, filters: Optional[FilterSpec] = None) -> List[str]:
        """New tasks for the failed images of this session and of the archive's history.

        An image that is in the archive by now, or already queued again, is left out; an image
        Civitai no longer has gets a failed task saying so. ``filters`` (default: those the last
        listing into this folder ran with) apply as in a listing: an image they drop is counted,
        not retried.
        """
        with self._starting():
            spec = filters if filters is not None else self.remembered_filters()
            counts = FilterCounts()
            with self._registry.lock:
                failed = self._registry.with_status(FAILED)
            try:
                return self._by_id.retry(failed, spec, counts)
            finally:
                self._count_filtered(counts)

    def close(self, timeout: Optional[float] = None) -> None:
        """Cancel what is still queued or running, stop the owned engine, flush callbacks.

        ``timeout``: the longest wait for running downloads and callbacks (default: the owned
        engine's workers are waited for, a shared engine's tasks up to 30 s); a worker that does
        not stop in time is left behind."""
        if self._closed:
            return
        self._closed = True
        self.cancel()
        if self._owns_engine and timeout is None:
            self.engine.shutdown(wait=True, cancel_pending=True)
        elif self._owns_engine:
            self.engine.shutdown(wait=False, cancel_pending=True)
            self.wait(timeout=timeout)
        else:
            self.wait(timeout=30 if timeout is None else timeout)
        self._jobs.close(wait=timeout is None)
        self._callbacks.dispatcher.close(10 if timeout is None else timeout)
        if self._owns_archive and self._archive is not None and hasattr(self._archive, "close"):
            self._archive.close()
        self._work.let_go()

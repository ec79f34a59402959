"""Planning stage: the spec's ``ImageDownloader`` turns listings into download tasks.

The ``download_*`` methods list images through :class:`civitai_api.CivitaiAPI` in the calling
thread, page by page, and hand one :class:`ImageDownloadTask` per image to the
:class:`download_engine.DownloadEngine` as each page arrives; they return the task ids while the
downloads go on in the engine (use :meth:`ImageDownloader.wait`).

Decisions worth knowing (the spec leaves them open):

* ``nsfw_levels=None`` means the setting ``images.default_nsfw_filter`` (the user's preference),
  not "every level"; pass ``["None", "Soft", "Mature", "X"]`` for everything.
* The constructor's spec defaults ``output_path="./images"`` and ``path_template="{model_id}/{id}"``
  stand for the settings ``images.output_path`` / ``images.path_template``; other values are used
  as given. The other options default to their ``images.*`` setting.
* Metadata is written when both the call's ``save_metadata`` and ``images.save_metadata`` are true.
* ``limit`` counts listed images after the NSFW filter, including ones skipped as already
  downloaded, so re-running a limited call looks at the same images again.
* Duplicates: an image id already in the archive (with its file still on disk) is skipped before
  any request ("already downloaded"; such no-op tasks are not added to the archive's history);
  with ``images.skip_existing`` a file already at the target path is skipped and
  adopted into the archive; when ``skip_existing`` is off and the target exists,
  ``images.duplicate_policy`` decides (``skip``, ``replace`` overwrites, ``keep_both`` saves as
  ``name (1).ext``). After a download the SHA-256 is compared with the archive: ``skip`` deletes the
  new file ("same content as <path>"), ``replace`` deletes the older file, ``keep_both`` keeps both.
  An image listed twice (two versions, two overlapping calls) gets one task.
* Unlimited listings keep a checkpoint in the archive (the cursor of the oldest page whose tasks are
  not all finished; failed counts as finished, cancelled does not). The same call resumes from it
  and clears it once the listing and all its tasks are done. Limited listings start over (cheap:
  known ids cost no image request).
* Callbacks run on one dispatcher thread: ``register_image_downloaded_callback`` fires once per
  *completed* task (the spec's "download completed"), ``register_task_finished_callback`` once per
  task reaching any final state, ``register_progress_callback`` with a
  :class:`records.DownloadSummary`. An exception in a callback is logged and otherwise ignored.
* ``download_filtered_images``: ``filter_params`` go to the images endpoint; the NSFW filter is
  ``filter_params["nsfw_levels"]`` (exact list) or ``filter_params["nsfw"]`` (a Civitai value such
  as ``"Mature"`` keeps Civitai's meaning, a list is exact), else the setting.
* Disk space: each ``download_*`` call first checks ``images.min_free_space_mb`` (DiskSpaceError,
  nothing written, no request). After each listed page the queued work is estimated (observed
  average size, else width x height x 1.2 bytes); when it would bring the disk under the minimum,
  or when a write meets a full disk, scheduling stops: listings end and every task not started yet
  is cancelled with the reason (``stopped_reason``). The next ``download_*`` call starts afresh.
* ``download_single_image(image_id, output_path=None)``: ``output_path`` is either a folder (it
  exists as one or ends with a separator; the file is ``<folder>/<id>.<ext>``) or a file path whose
  extension, if any, is replaced by the real one. It is taken as given (the user chose it).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import queue
import shutil
import string
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from . import civitai_api, setting
from .download_engine import PRIORITY_BULK, PRIORITY_SINGLE, DownloadEngine
from .errors import (
    ApiError,
    AuthError,
    CivitaiGalleryError,
    DiskSpaceError,
    DownloadCancelledError,
    DownloadError,
    IncompleteDownloadError,
    InvalidQueryError,
    MetadataError,
    NetworkError,
    NotFoundError,
    OutputPathError,
    RateLimitedError,
    ServerError,
    SettingsError,
    UnexpectedContentError,
)
from .paths import PathTemplate, fields_from_item, safe_join
from .records import NSFW_LEVELS, DownloadResult, DownloadSummary, ImageItem

logger = logging.getLogger(__name__)

PENDING = "pending"
DOWNLOADING = "downloading"
COMPLETED = "completed"
SKIPPED = "skipped"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL_STATES = frozenset({COMPLETED, SKIPPED, FAILED, CANCELLED})

ARCHIVE_NAME = ".civitai_archive.sqlite3"
MEDIA_EXTENSIONS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")
ALL_LEVELS = list(NSFW_LEVELS)
REASON_KNOWN = "already downloaded"
_MODEL_FIELDS = ("model_id", "model_name", "version_id")
_PROGRESS_INTERVAL = 0.25
_DEFAULT_IMAGE_ESTIMATE = 1024 * 1024
_VIDEO_ESTIMATE = 8 * 1024 * 1024

TaskCallback = Callable[["ImageDownloadTask"], None]
ProgressCallback = Callable[[DownloadSummary], None]


# -- the task ------------------------------------------------------------------------------------


class ImageDownloadTask:
    """State and metadata of one image download (the spec's properties; updates are thread-safe)."""

    def __init__(
        self,
        task_id: str,
        image_id: int,
        image_url: str,
        model_id: Optional[int] = None,
        model_name: Optional[str] = None,
        creator: Optional[str] = None,
        nsfw_level: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ):
        self._lock = threading.Lock()
        self._id = str(task_id)
        self._image_id = image_id
        self._image_url = image_url
        self.model_id = model_id
        self.model_name = model_name
        self.creator = creator
        self.nsfw_level = nsfw_level
        self.metadata = metadata
        self.version_id: Optional[int] = None
        self.post_id: Optional[int] = None
        self.item: Optional[ImageItem] = None
        self.target: Optional[str] = None  # planned path without extension
        self.save_metadata = True
        self.priority = PRIORITY_BULK
        self.custom_path = False  # target chosen by the caller: written even if a file is there
        self.query_key: Optional[str] = None
        self.created_at = time.time()
        self._status = PENDING
        self._progress = 0.0
        self._image_path: Optional[str] = None
        self._metadata_path: Optional[str] = None
        self._error: Optional[str] = None
        self.bytes_done = 0
        self.bytes_total: Optional[int] = None
        self.size: Optional[int] = None
        self.sha256: Optional[str] = None
        self.thumbnail_path: Optional[str] = None
        self.finished_at: Optional[float] = None
        self.restored = False  # True when rebuilt from the archive's history
        self._settled = False  # final state recorded and announced (what wait() waits for)

    @property
    def id(self) -> str:
        return self._id

    @property
    def image_id(self) -> int:
        return self._image_id

    @property
    def image_url(self) -> str:
        return self._image_url

    @property
    def status(self) -> str:
        return self._status

    @property
    def progress(self) -> float:
        return self._progress

    @property
    def image_path(self) -> Optional[str]:
        return self._image_path

    @property
    def metadata_path(self) -> Optional[str]:
        return self._metadata_path

    @property
    def error(self) -> Optional[str]:
        return self._error

    @property
    def done(self) -> bool:
        return self._status in FINAL_STATES

    def _set_progress(self, done: int, total: Optional[int]) -> None:
        with self._lock:
            self.bytes_done = done
            self.bytes_total = total
            if total:
                self._progress = max(0.0, min(1.0, done / total))

    def _finish(self, status: str, error: Optional[str] = None, **fields: Any) -> bool:
        """Move to a final state once; False when the task was already final."""
        with self._lock:
            if self._status in FINAL_STATES:
                return False
            self._status = status
            self._error = error
            for name, value in fields.items():
                setattr(self, name if not hasattr(type(self), name) else "_" + name, value)
            if status in (COMPLETED, SKIPPED):
                self._progress = 1.0
            self.finished_at = time.time()
            return True

    def _start(self) -> bool:
        with self._lock:
            if self._status != PENDING:
                return False
            self._status = DOWNLOADING
            return True

    def to_dict(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "id": self._id,
                "image_id": self._image_id,
                "image_url": self._image_url,
                "status": self._status,
                "progress": self._progress,
                "image_path": self._image_path,
                "metadata_path": self._metadata_path,
                "thumbnail_path": self.thumbnail_path,
                "error": self._error,
                "model_id": self.model_id,
                "model_name": self.model_name,
                "version_id": self.version_id,
                "creator": self.creator,
                "nsfw_level": self.nsfw_level,
                "post_id": self.post_id,
                "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total,
                "size": self.size,
                "sha256": self.sha256,
                "query_key": self.query_key,
                "created_at": self.created_at,
                "finished_at": self.finished_at,
            }

    def __repr__(self) -> str:
        return (
            f"ImageDownloadTask(id={self._id!r}, image_id={self._image_id}, "
            f"status={self._status!r}, progress={self._progress:.2f})"
        )


# -- checkpoints of one listing ------------------------------------------------------------------


class _Page:
    __slots__ = ("cursor", "next_cursor", "open", "held")

    def __init__(self, cursor: Optional[str], next_cursor: Optional[str]):
        self.cursor = cursor
        self.next_cursor = next_cursor
        self.open: Set[str] = set()  # task ids not final yet
        self.held = False  # a task of this page was cancelled: resume must start here


class _Listing:
    """One ``download_*`` call: its pages, for the checkpoint and to stop listing on cancel."""

    def __init__(self, query_key: str, use_checkpoint: bool, start_cursor: Optional[str]):
        self.query_key = query_key
        self.use_checkpoint = use_checkpoint
        self.start_cursor = start_cursor
        self.pages: List[_Page] = []
        self.task_ids: List[str] = []
        self.seen_images: Set[Any] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()  # orders checkpoint writes
        self.listing_done = False
        self.written: Any = start_cursor  # what the archive holds now

    def add_page(self, cursor: Optional[str], next_cursor: Optional[str]) -> _Page:
        page = _Page(cursor, next_cursor)
        self.pages.append(page)
        return page

    def task_final(self, task: ImageDownloadTask) -> bool:
        """Account a final task; True when it belonged to this listing."""
        touched = False
        for page in self.pages:
            if task.id in page.open:
                page.open.discard(task.id)
                if task.status == CANCELLED:
                    page.held = True
                touched = True
        return touched

    def checkpoint(self) -> Tuple[bool, Optional[str]]:
        """(finished, cursor to resume from). ``cursor`` None means "from the beginning"."""
        for page in self.pages:
            if page.open or page.held:
                return False, page.cursor
        if not self.listing_done:
            return False, self.pages[-1].next_cursor if self.pages else self.start_cursor
        return True, None


# -- callbacks on one thread ---------------------------------------------------------------------


class _Dispatcher:
    """Runs callbacks one after another on a single daemon thread."""

    def __init__(self) -> None:
        self._queue: "queue.Queue[Optional[Tuple[Callable, tuple]]]" = queue.Queue()
        self._cond = threading.Condition()
        self._unfinished = 0
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    @property
    def thread(self) -> Optional[threading.Thread]:
        return self._thread

    def post(self, fn: Callable, *args: Any) -> None:
        with self._cond:
            if self._closed:
                return
            self._unfinished += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="civitai-image-callbacks", daemon=True
                )
                self._thread.start()
        self._queue.put((fn, args))

    def drain(self, timeout: Optional[float] = None) -> bool:
        if threading.current_thread() is self._thread:
            return True  # a callback waiting for the callbacks would wait for itself
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: Optional[float] = 10) -> None:
        self.drain(timeout)
        with self._cond:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            fn, args = entry
            try:
                fn(*args)
            except Exception:  # a user's callback must not stop the others
                logger.exception("a download callback (%s) raised; it was ignored", fn)
            finally:
                with self._cond:
                    self._unfinished -= 1
                    self._cond.notify_all()


# -- helpers -------------------------------------------------------------------------------------


def _int_or_none(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _positive_id(value: Any, what: str) -> int:
    number = _int_or_none(value)
    if number is None or number <= 0:
        raise InvalidQueryError(f"The {what} id must be a positive number, got {value!r}.")
    return number


def _template_fields(template: str) -> Tuple[str, ...]:
    names = []
    for _, name, _, _ in string.Formatter().parse(template.replace("\\", "/")):
        if name:
            names.append("id" if name == "image_id" else name)
    return tuple(names)


def _existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _free_bytes(path: str) -> int:
    return shutil.disk_usage(_existing_parent(path)).free


def _find_existing(base: str) -> Optional[str]:
    for ext in MEDIA_EXTENSIONS:
        if os.path.isfile(base + ext):
            return base + ext
    return None


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _placeholder_extension(item_type: Optional[str]) -> str:
    return ".mp4" if item_type == "video" else ".jpeg"


def _option(key: str, value: Any) -> Any:
    """An option given to the constructor, validated like the setting, or the setting's value."""
    if value is None:
        return setting.get(key)
    return setting.SPECS[key].validate(value)


def describe_failure(exc: BaseException, output_root: str) -> str:
    """A sentence for a user from a download error."""
    status = getattr(exc, "status", None)
    if isinstance(exc, DiskSpaceError) or getattr(exc, "errno", None) in (
        errno.ENOSPC,
        errno.EFBIG,
    ):
        return f"disk full: free space on {output_root}"
    if isinstance(exc, UnexpectedContentError):
        return "the server sent a web page instead of an image"
    if status == 404 or isinstance(exc, NotFoundError):
        return "HTTP 404: the image is no longer on Civitai"
    if status in (401, 403) or isinstance(exc, AuthError):
        return (
            f"HTTP {status or 403}: this image needs a valid Civitai API key "
            "(set civitai_api_key in Settings)"
        )
    if status == 429 or isinstance(exc, RateLimitedError):
        return "HTTP 429: Civitai kept asking to slow down; retry the failed images later"
    if isinstance(exc, ServerError) or (isinstance(status, int) and status >= 500):
        return f"HTTP {status}: Civitai's image server failed; retry the failed images later"
    if isinstance(exc, IncompleteDownloadError):
        return "the download was cut off before the end; retry to resume it"
    if isinstance(exc, NetworkError):
        return f"network error: {exc}; check the connection and retry"
    if isinstance(exc, (CivitaiGalleryError, ApiError, DownloadError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"could not write the file ({exc.strerror or exc}); check the output folder"
    return f"unexpected error: {exc}"


# -- the downloader ------------------------------------------------------------------------------


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
        self._template_fields = _template_fields(path_template)
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
        self._claimed: Dict[str, Any] = {}  # planned target -> image id (this session)
        self._listings: List[_Listing] = []
        self._history: Optional[Dict[str, ImageDownloadTask]] = None
        self._halt_reason: Optional[str] = None
        self._lookup_cache: Dict[Tuple[str, int], Any] = {}
        self._sizes: List[int] = []
        self._downloaded_cbs: List[TaskCallback] = []
        self._finished_cbs: List[TaskCallback] = []
        self._progress_cbs: List[ProgressCallback] = []
        self._dispatcher = _Dispatcher()
        self._progress_posted = False
        self._last_progress = 0.0
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
        self._check_free_space(root)
        row = self._archive_row(image_id) if output_path is None else {}
        if row.get("path") and os.path.isfile(row["path"]):
            task = self._new_task(image_id, row.get("url") or "", None)
            self._register(task)
            self._final(task, SKIPPED, REASON_KNOWN, image_path=row["path"], record=False)
            return task.id
        item = self.api.get_image(image_id)
        item = self._with_context(item, {})
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
        self._schedule(task, listing=None, page=None)
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

    def _levels(self, nsfw_levels: Any) -> List[str]:
        if nsfw_levels is None:
            nsfw_levels = setting.get("images.default_nsfw_filter")
        return list(civitai_api.normalize_levels(nsfw_levels))

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
        levels = self._levels(nsfw_levels)
        query_key = f"{kind}:{value}|nsfw={','.join(levels)}"
        if limit:
            query_key += f"|limit={limit}"
        self._check_free_space(self.output_path)
        with self._lock:
            self._halt_reason = None
        archive = self.archive
        use_checkpoint = limit == 0
        start = archive.get_checkpoint(query_key) if use_checkpoint else None
        if start:
            logger.info("resuming %s from its checkpoint", query_key)
        listing = _Listing(query_key, use_checkpoint, start)
        with self._lock:
            for older in [x for x in self._listings if x.query_key == query_key]:
                # an earlier, interrupted run of the same query: this one resumes from its
                # checkpoint and takes over its unfinished tasks, so it alone writes from now on
                older.use_checkpoint = False
                older.stop.set()
                self._listings.remove(older)
            self._listings.append(listing)
        context = self._listing_context(kind, value)
        listed = 0
        cursor = start
        try:
            while not listing.stop.is_set() and self._halt_reason is None:
                size = min(self.page_size, limit) if limit else self.page_size
                page = self.api.get_image_page(
                    params, cursor=cursor, limit=size, nsfw_levels=levels
                )
                items = page.items
                if limit:
                    items = items[: limit - listed]
                listed += len(items)
                self._plan_page(
                    listing, page.cursor, page.next_cursor, items, context, save_metadata
                )
                if page.next_cursor is None or (limit and listed >= limit):
                    listing.listing_done = True
                    break
                cursor = page.next_cursor
        finally:
            self._update_checkpoint(listing)
        logger.info("%s: %d image(s) listed, %d task(s)", query_key, listed, len(listing.task_ids))
        return list(listing.task_ids)

    def _listing_context(self, kind: str, value: Any) -> Dict[str, Any]:
        """Names the template needs that the listing itself cannot give (one look-up each)."""
        context: Dict[str, Any] = {}
        needs = set(self._template_fields)
        if kind == "model":
            context["model_id"] = value
            if "model_name" in needs:
                context["model_name"] = self._model(value).name
        elif kind == "version":
            context["version_id"] = value
            if needs & {"model_id", "model_name"}:
                version = self._version(value)
                context["model_id"] = version.model_id
                context["model_name"] = version.model_name
                if "model_name" in needs and not version.model_name and version.model_id:
                    context["model_name"] = self._model(version.model_id).name
        return context

    def _model(self, model_id: int):
        key = ("model", int(model_id))
        if key not in self._lookup_cache:
            self._lookup_cache[key] = self.api.get_model(int(model_id))
        return self._lookup_cache[key]

    def _version(self, version_id: int):
        key = ("version", int(version_id))
        if key not in self._lookup_cache:
            self._lookup_cache[key] = self.api.get_model_version(int(version_id))
        return self._lookup_cache[key]

    def _with_context(self, item: ImageItem, context: Mapping[str, Any]) -> ImageItem:
        """Fill model fields the template needs from the listing context or cached look-ups."""
        changes = {k: v for k, v in context.items() if v is not None and getattr(item, k) is None}
        if changes:
            item = dataclasses.replace(item, **changes)
        needs = set(self._template_fields) & set(_MODEL_FIELDS)
        if not needs:
            return item
        changes = {}
        version_id = item.version_id
        if version_id is None:
            ids = item.raw.get("modelVersionIds") if isinstance(item.raw, dict) else None
            if isinstance(ids, list) and ids:
                version_id = _int_or_none(ids[0])
                changes["version_id"] = version_id
        model_id, model_name = item.model_id, item.model_name
        try:
            if model_id is None and needs & {"model_id", "model_name"} and version_id:
                version = self._version(version_id)
                model_id, model_name = version.model_id, model_name or version.model_name
            if "model_name" in needs and not model_name and model_id:
                model_name = self._model(model_id).name
        except NotFoundError as exc:
            logger.info("image %s: %s; its model fields stay 'unknown'", item.id, exc)
        changes.update({"model_id": model_id, "model_name": model_name})
        return dataclasses.replace(item, **changes)

    def _plan_page(
        self,
        listing: _Listing,
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
            with self._lock:
                existing = self._active_by_image.get(ident)
                if existing is not None:
                    listing.task_ids.append(existing.id)
                    page.open.add(existing.id)
                    continue
            item = self._with_context(item, context)
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
            try:
                task.target = safe_join(
                    self.output_path, self.template.render(fields_from_item(item))
                )
            except CivitaiGalleryError as exc:
                self._register(task)
                self._final(task, FAILED, f"no safe file name for this image: {exc}")
                continue
            with self._lock:
                other = self._active_by_image.get(ident)  # another listing may have just won
                if other is not None:
                    listing.task_ids[-1] = other.id
                    page.open.add(other.id)
                    continue
                self._register(task)
                page.open.add(task.id)
            self._schedule(task, listing, page)
        self._reserve_space()
        self._update_checkpoint(listing)

    # -- scheduling and running ------------------------------------------------------------------

    def _new_task(self, image_id: Any, url: str, item: Optional[ImageItem]) -> ImageDownloadTask:
        task = ImageDownloadTask(
            uuid.uuid4().hex,
            image_id,
            url,
            model_id=item.model_id if item else None,
            model_name=item.model_name if item else None,
            creator=item.creator if item else None,
            nsfw_level=item.nsfw_level if item else None,
            metadata=item.meta if item else None,
        )
        if item is not None:
            task.item = item
            task.version_id = item.version_id
            task.post_id = item.post_id
        return task

    def _register(self, task: ImageDownloadTask) -> None:
        with self._lock:
            self._tasks[task.id] = task
            if not task.done and task.image_id is not None:
                self._active_by_image[task.image_id] = task

    def _schedule(
        self, task: ImageDownloadTask, listing: Optional[_Listing], page: Optional[_Page]
    ) -> None:
        """Settle what can be settled without a request, else hand the task to the engine."""
        assert task.target is not None
        if self.skip_existing and not task.custom_path:
            existing = _find_existing(task.target)
            if existing is not None:
                self._adopt_existing(task, existing)
                return
        with self._lock:
            task.target = self._claim(task.target, task.image_id)
        try:
            self.engine.submit(lambda ev, t=task: self._run(t, ev), task.priority, key=task.id)
        except RuntimeError as exc:  # the engine was shut down
            self._final(task, CANCELLED, f"not started: {exc}")

    def _claim(self, target: str, image_id: Any) -> str:
        """Give each image of this session its own file name (`` (1)`` on a collision)."""
        candidate, n = target, 0
        while self._claimed.get(candidate, image_id) != image_id:
            n += 1
            candidate = f"{target} ({n})"
        self._claimed[candidate] = image_id
        return candidate

    def _adopt_existing(self, task: ImageDownloadTask, path: str) -> None:
        """A file is already where this image would go: record it, skip the download."""
        sha = _sha256_file(path)
        size = os.path.getsize(path)
        metadata_path = self._complete_sidecars(task, path)
        self._record_image(task, path, metadata_path, sha, size)
        self._final(
            task,
            SKIPPED,
            f"already on disk: {path}",
            image_path=path,
            metadata_path=metadata_path,
            sha256=sha,
        )

    def _complete_sidecars(self, task: ImageDownloadTask, image_path: str) -> Optional[str]:
        """Write the json/txt sidecars an adopted file lacks (e.g. after a kill); the file itself
        is not touched (no EXIF embedding into a file this run did not download)."""
        formats = [f for f in self.metadata_formats if f != "exif"]
        if not task.save_metadata or task.item is None or not formats:
            return None
        from . import metadata

        missing = [f for f in formats if not os.path.exists(metadata.sidecar_path(image_path, f))]
        if missing:
            try:
                record = metadata.extract_image_metadata(task.item)
                metadata.save_metadata(image_path, record, missing)
            except MetadataError as exc:
                logger.warning("image %s: %s", task.image_id, exc)
        sidecar = metadata.sidecar_path(image_path, formats[0])
        return sidecar if os.path.exists(sidecar) else None

    def _run(self, task: ImageDownloadTask, cancel_event: threading.Event) -> None:
        """Engine job: download, post-process, record. Never leaves the task half-final."""
        if self._halt_reason is not None:
            self._final(task, CANCELLED, self._halt_reason)
            return
        if cancel_event.is_set() or not task._start():
            self._final(task, CANCELLED, "cancelled")
            return
        self._post_progress()
        try:
            self._download(task, cancel_event)
        except DownloadCancelledError:
            self._final(task, CANCELLED, "cancelled")
        except DiskSpaceError as exc:
            self._disk_full(task, exc)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EFBIG):
                self._disk_full(task, exc)
            else:
                logger.warning("image %s: %s", task.image_id, exc)
                self._final(task, FAILED, describe_failure(exc, self.output_path))
        except (CivitaiGalleryError, ApiError) as exc:
            logger.warning("image %s failed: %s", task.image_id, exc)
            self._final(task, FAILED, describe_failure(exc, self.output_path))
        except Exception as exc:  # a bug must not leave the task "downloading" forever
            logger.exception("image %s: unexpected error", task.image_id)
            self._final(task, FAILED, describe_failure(exc, self.output_path))

    def _download(self, task: ImageDownloadTask, cancel_event: threading.Event) -> None:
        target = task.target
        existing = None if task.custom_path else _find_existing(target)
        if existing is not None:
            if self.duplicate_policy == "skip":
                self._adopt_existing(task, existing)
                return
            if self.duplicate_policy == "keep_both":
                with self._lock:
                    n = 1
                    while _find_existing(f"{target} ({n})") or f"{target} ({n})" in self._claimed:
                        n += 1
                    target = f"{target} ({n})"
                    self._claimed[target] = task.image_id
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        url = civitai_api.original_url(task.image_url)
        result: DownloadResult = self.client.fetch_to_file(
            url,
            target + _placeholder_extension(task.item.type if task.item else None),
            progress_callback=lambda done, total: self._on_bytes(task, done, total),
            cancel_event=cancel_event,
            fix_extension=True,
        )
        if existing is not None and self.duplicate_policy == "replace":
            if os.path.abspath(existing) != os.path.abspath(result.path):
                os.remove(existing)  # the older copy with another extension
        if self._same_content(task, result):
            return
        metadata_path, note = self._write_metadata(task, result.path)
        thumbnail = self._write_thumbnail(result.path)
        self._record_image(task, result.path, metadata_path, result.sha256, result.size)
        with self._lock:
            self._sizes.append(result.size)
        self._final(
            task,
            COMPLETED,
            note,
            image_path=result.path,
            metadata_path=metadata_path,
            sha256=result.sha256,
            size=result.size,
            thumbnail_path=thumbnail,
        )

    def _same_content(self, task: ImageDownloadTask, result: DownloadResult) -> bool:
        """Apply the duplicate policy for identical content; True when the task is settled."""
        row = self.archive.find_by_sha256(result.sha256)
        row = self._as_dict(row)
        other = row.get("path") if row else None
        if not other or row.get("image_id") == task.image_id:
            return False
        if os.path.abspath(other) == os.path.abspath(result.path) or not os.path.isfile(other):
            return False
        if self.duplicate_policy == "skip":
            os.remove(result.path)
            self._record_image(task, other, row.get("metadata_path"), result.sha256, result.size)
            self._final(
                task,
                SKIPPED,
                f"same content as {other}",
                image_path=other,
                sha256=result.sha256,
            )
            return True
        if self.duplicate_policy == "replace":
            os.remove(other)
            logger.info("image %s replaces %s (same content)", task.image_id, other)
            other_id = row.get("image_id")
            if other_id is not None:  # the older id now lives in the new file: no ping-pong
                self.archive.record_image(
                    image_id=other_id,
                    url=row.get("url"),
                    sha256=result.sha256,
                    path=result.path,
                    size=result.size,
                )
        return False

    def _write_metadata(
        self, task: ImageDownloadTask, image_path: str
    ) -> Tuple[Optional[str], Any]:
        if not task.save_metadata or not self.metadata_formats or task.item is None:
            return None, None
        from . import metadata

        try:
            record = metadata.extract_image_metadata(task.item)
            paths = metadata.save_metadata(image_path, record, self.metadata_formats)
        except MetadataError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EFBIG):
                raise DiskSpaceError(str(exc)) from exc
            logger.warning("image %s: %s", task.image_id, exc)
            return None, f"image saved, but its generation data could not be written: {exc}"
        sidecars = [p for p in paths if os.path.abspath(p) != os.path.abspath(image_path)]
        chosen = next((p for p in sidecars if p.endswith(".json")), None)
        return chosen or (sidecars[0] if sidecars else (paths[0] if paths else None)), None

    def _write_thumbnail(self, image_path: str) -> Optional[str]:
        if not self.generate_thumbnails:
            return None
        from . import thumbnails

        try:
            return thumbnails.make_thumbnail(image_path, size=self.thumbnail_size)
        except MetadataError as exc:  # ThumbnailError: the image itself is fine
            logger.warning("%s", exc)
            return None

    def _on_bytes(self, task: ImageDownloadTask, done: int, total: Optional[int]) -> None:
        task._set_progress(done, total)
        self._post_progress(throttle=True)

    # -- final states, archive, callbacks --------------------------------------------------------

    def _final(self, task: ImageDownloadTask, status: str, error: Optional[str], record=True, **kw):
        """Settle a task once: archive it, update checkpoints, queue callbacks, wake waiters."""
        if not task._finish(status, error, **kw):
            return
        try:
            if record and task.image_id is not None:
                self._record_task(task)
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
            for callback in list(self._finished_cbs):
                self._dispatcher.post(callback, task)
            if status == COMPLETED:
                for callback in list(self._downloaded_cbs):
                    self._dispatcher.post(callback, task)
            with self._lock:
                if status in (COMPLETED, SKIPPED):
                    task.item = None  # the listing's data is not needed any more (memory)
                task._settled = True
                self._changed.notify_all()
        self._post_progress()

    def _update_checkpoint(self, listing: _Listing) -> None:
        if not listing.use_checkpoint:
            return
        with listing.lock:  # compute and write together: a stale value never lands last
            with self._lock:
                finished, cursor = listing.checkpoint()
                if finished:
                    self._listings = [x for x in self._listings if x is not listing]
                wanted = None if finished else cursor
                if wanted == listing.written:
                    return
            if wanted is None:
                self.archive.clear_checkpoint(listing.query_key)
            else:
                self.archive.set_checkpoint(listing.query_key, wanted)
            listing.written = wanted

    def _disk_full(self, task: ImageDownloadTask, exc: BaseException) -> None:
        message = describe_failure(DiskSpaceError(str(exc)), self.output_path)
        logger.error("image %s: %s (%s)", task.image_id, message, exc)
        self._final(task, FAILED, message)
        self._halt(f"not started: {message}")

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

    def _as_dict(self, row: Any) -> Dict[str, Any]:
        if row is None:
            return {}
        if isinstance(row, Mapping):
            return dict(row)
        if dataclasses.is_dataclass(row):
            return dataclasses.asdict(row)
        return dict(vars(row))

    def _archive_row(self, image_id: int) -> Dict[str, Any]:
        return self._as_dict(self.archive.get_image(image_id))

    def _record_image(self, task, path, metadata_path, sha256, size) -> None:
        self.archive.record_image(
            image_id=task.image_id,
            url=task.image_url,
            sha256=sha256,
            path=path,
            metadata_path=metadata_path,
            size=size,
        )

    def _record_task(self, task: ImageDownloadTask) -> None:
        self.archive.record_task(task.to_dict())

    # -- progress --------------------------------------------------------------------------------

    def _reserve_space(self) -> None:
        """Stop scheduling when the queued work would bring the disk under the minimum."""
        with self._lock:
            pending = [t for t in self._tasks.values() if not t.done]
            per_image = (
                sum(self._sizes[-50:]) // len(self._sizes[-50:]) if len(self._sizes) >= 5 else None
            )
        need = sum(self._estimate(t, per_image) for t in pending)
        floor = self.min_free_space_mb * 1024 * 1024
        free = _free_bytes(self.output_path)
        if free - need < floor:
            self._halt(
                f"not started: the queued images need about {need // 2**20} MB and only "
                f"{free // 2**20} MB are free on {self.output_path} "
                f"(images.min_free_space_mb = {self.min_free_space_mb}); free some space"
            )

    @staticmethod
    def _estimate(task: ImageDownloadTask, per_image: Optional[int]) -> int:
        remaining = (task.bytes_total or 0) - task.bytes_done
        if task.bytes_total:
            return max(0, remaining)
        if per_image is not None:
            return per_image
        item = task.item
        if item is not None and item.type == "video":
            return _VIDEO_ESTIMATE
        if item is not None and item.width and item.height:
            return int(item.width * item.height * 1.2)
        return _DEFAULT_IMAGE_ESTIMATE

    def _check_free_space(self, root: str) -> None:
        free = _free_bytes(root)
        floor = self.min_free_space_mb * 1024 * 1024
        if free < floor:
            raise DiskSpaceError(
                f"Only {free // 2**20} MB free on {_existing_parent(root)}; downloads need at "
                f"least {self.min_free_space_mb} MB (setting images.min_free_space_mb). Free some "
                "space or choose another output folder."
            )

    def _post_progress(self, throttle: bool = False) -> None:
        if not self._progress_cbs:
            return
        now = time.monotonic()
        with self._lock:
            if self._progress_posted or (
                throttle and now - self._last_progress < _PROGRESS_INTERVAL
            ):
                return
            self._progress_posted = True
            self._last_progress = now
        self._dispatcher.post(self._deliver_progress)

    def _deliver_progress(self) -> None:
        with self._lock:
            self._progress_posted = False
        summary = self.summary()
        for callback in list(self._progress_cbs):
            try:
                callback(summary)
            except Exception:
                logger.exception("a progress callback (%s) raised; it was ignored", callback)

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
                    task = _task_from_record(self._as_dict(row))
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
        self._downloaded_cbs.append(callback)

    def register_task_finished_callback(self, callback: TaskCallback) -> None:
        """``callback(task)`` once per task reaching any final state, on the callback thread."""
        self._finished_cbs.append(callback)

    def register_progress_callback(self, callback: ProgressCallback) -> None:
        """``callback(summary)`` when tasks change (bytes at most every 0.25 s)."""
        self._progress_cbs.append(callback)

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
        return self._dispatcher.drain(remaining)

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
        result = DownloadSummary(listed=len(tasks), output_path=self.output_path)
        for task in tasks:
            status = task.status
            if status == COMPLETED:
                result.completed += 1
                result.bytes_downloaded += task.size or 0
            elif status == SKIPPED:
                result.skipped += 1
            elif status == FAILED:
                result.failed += 1
                result.failures.append((task.image_id, task.error or "failed"))
            elif status == CANCELLED:
                result.cancelled += 1
            else:
                result.pending += 1
                result.bytes_downloaded += task.bytes_done
        return result

    def retry_failed(self) -> List[str]:
        """New tasks for the failed images of this session and of the archive's history.

        An image that is in the archive by now, or already queued again, is left out; an image
        Civitai no longer has gets a failed task saying so.
        """
        self._ensure_open()
        self._check_free_space(self.output_path)
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
            row = self._as_dict(row)
            candidates.append((row.get("image_id"), None, None))
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
                    item = self._with_context(self.api.get_image(int(image_id)), {})
                except NotFoundError:
                    task = self._new_task(image_id, "", None)
                    self._register(task)
                    self._final(task, FAILED, "HTTP 404: the image is no longer on Civitai")
                    new_ids.append(task.id)
                    continue
            task = self._new_task(image_id, item.url, item)
            task.save_metadata = self.save_metadata_default
            new_ids.append(task.id)
            if target is None:
                try:
                    target = safe_join(
                        self.output_path, self.template.render(fields_from_item(item))
                    )
                except CivitaiGalleryError as exc:
                    self._register(task)
                    self._final(task, FAILED, f"no safe file name for this image: {exc}")
                    continue
            task.target = target
            self._register(task)
            self._schedule(task, None, None)
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
        self._dispatcher.close()
        if self._owns_archive and self._archive is not None and hasattr(self._archive, "close"):
            self._archive.close()

    def _select(self, task_ids: Optional[Iterable[str]]) -> List[ImageDownloadTask]:
        if task_ids is None:
            return list(self._tasks.values())
        if isinstance(task_ids, str):
            task_ids = [task_ids]
        unique = dict.fromkeys(t for t in task_ids if t in self._tasks)  # keeps the order
        return [self._tasks[t] for t in unique]


def _task_from_record(row: Mapping[str, Any]) -> ImageDownloadTask:
    """An :class:`ImageDownloadTask` rebuilt (final state included) from an archive row."""
    task = ImageDownloadTask(
        str(row.get("id") or row.get("task_id")),
        row.get("image_id"),
        row.get("image_url") or row.get("url") or "",
        model_id=row.get("model_id"),
        model_name=row.get("model_name"),
        creator=row.get("creator"),
        nsfw_level=row.get("nsfw_level"),
    )
    task.restored = True
    task._settled = True
    task.version_id = row.get("version_id")
    task.query_key = row.get("query_key")
    status = row.get("status") or FAILED
    task._status = status if status in FINAL_STATES else CANCELLED
    task._error = row.get("error") or (
        None if status in FINAL_STATES else "interrupted before it finished"
    )
    task._image_path = row.get("image_path") or row.get("path")
    task._metadata_path = row.get("metadata_path")
    task._progress = (
        1.0 if task._status in (COMPLETED, SKIPPED) else float(row.get("progress") or 0)
    )
    task.size = row.get("size")
    task.sha256 = row.get("sha256")
    task.finished_at = row.get("finished_at")
    return task

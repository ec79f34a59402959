"""The gallery's own image fetches (thumbnails into the gallery cache), on the shared transport.

These are the backlog item's functions, kept with their names and signatures and re-exported by
``civitai_gallery_action``. Every request goes through the shared ``CivitaiHttpClient``; at most
``gallery_max_concurrent_downloads`` run at once across all callers (one shared worker pool), files
already in place are skipped, and failures are counted, logged and reported (a ``gr.Warning`` toast
when called from a Gradio event) without ever breaking the caller.

Bulk downloads of a model's examples with metadata are not done here: the tab hands them to
``ImageDownloader`` (one download path, see docs/DESIGN.md).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

import requests
import urllib3

from .. import setting
from ..engine.pool import PRIORITY_BULK, PRIORITY_SINGLE, DownloadEngine
from ..errors import CivitaiGalleryError
from ..store import confined
from .gradio_compat import warn_user

logger = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 320
FAILURE_TOAST = "some images failed to download ({n}), check your network connection"

ProgressCallback = Callable[[int, int, str], Any]


@dataclass
class BatchResult:
    """What a gallery batch did: counts plus the URLs that failed."""

    total: int = 0
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    failed_urls: List[str] = field(default_factory=list)

    def line(self) -> str:
        return f"downloaded {self.downloaded}, skipped {self.skipped}, failed {self.failed}"


# -- shared transport and worker pool --


def get_http_client():
    """The shared ``CivitaiHttpClient`` (created lazily, rebuilt when its settings change)."""
    from .. import http_client

    return http_client.get_http_client()


_engine_lock = threading.Lock()
_engine: Optional[DownloadEngine] = None


def _gallery_engine() -> DownloadEngine:
    """One worker pool for every gallery fetch, sized by ``gallery_max_concurrent_downloads``."""
    global _engine
    workers = max(1, int(setting.get("gallery_max_concurrent_downloads")))
    with _engine_lock:
        if _engine is None:
            _engine = DownloadEngine(max_workers=workers)
        elif _engine.max_workers != workers:
            _engine.max_workers = workers
        return _engine


# -- single files --


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    confined.ensure_root(parent)


def _download_single_image(img_url: str, save_path: str) -> bool:
    """Download one image to ``save_path`` through the shared client; True on success.

    The transport writes to ``save_path + ".part"`` and renames atomically, so ``save_path``
    never holds partial content. Failures (network, HTTP status, non-image body, unwritable
    folder) are logged and answered with False.
    """
    logger.debug("downloading %s -> %s", img_url, save_path)
    try:
        _ensure_parent(save_path)
        ok = bool(get_http_client().download_file(img_url, save_path))
    except (CivitaiGalleryError, OSError) as exc:
        logger.warning("could not download %s to %s: %s", img_url, save_path, exc)
        return False
    if ok:
        logger.debug("saved %s", save_path)
    else:
        logger.warning("could not download %s to %s", img_url, save_path)
    return ok


def download_large_image(img_url: str, save_path: str, chunk_size: int = 8192) -> bool:
    """Stream a (large) image to disk ``chunk_size`` bytes at a time; True on success.

    Memory stays at one chunk. The body goes to ``save_path + ".part"`` and is renamed into place
    only when complete (the byte count is checked against ``Content-Length``); on a cut stream or
    a write error the partial file is removed and the response is always closed. The bytes are
    saved as sent (never decoded), at most ``images.max_file_size_mb``, and never through a
    symbolic link.
    """
    cap = int(setting.get("images.max_file_size_mb")) * 1024 * 1024
    part_path = save_path + ".part"
    try:
        _ensure_parent(save_path)
        response = get_http_client().get_stream_response(img_url)
    except (CivitaiGalleryError, OSError) as exc:
        logger.warning("could not start downloading %s: %s", img_url, exc)
        return False
    if response is None:
        logger.warning("could not download %s: no usable response", img_url)
        return False
    written = 0
    try:
        with response:
            expected = response.headers.get("Content-Length")
            with confined.open_write(part_path) as handle:
                for chunk in response.raw.stream(chunk_size, decode_content=False):
                    if chunk:
                        if written + len(chunk) > cap:
                            raise OSError(
                                f"the file is larger than {cap // 2**20} MB "
                                "(setting images.max_file_size_mb)"
                            )
                        handle.write(chunk)
                        written += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            if expected is not None and expected.isdigit() and int(expected) != written:
                raise OSError(f"stream ended after {written} of {expected} bytes")
        confined.replace(part_path, save_path)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        logger.warning("download of %s failed after %d bytes: %s", img_url, written, exc)
        _remove_quietly(part_path)
        return False
    logger.debug("streamed %s (%d bytes) to %s", img_url, written, save_path)
    return True


def _remove_quietly(path: str) -> None:
    if os.path.islink(path):
        return  # never the download's own file
    try:
        confined.remove(path)
    except OSError as exc:
        logger.warning("could not remove the partial file %s: %s", path, exc)


# -- batches into the gallery cache --


def _unique(urls: Iterable[str]) -> List[str]:
    seen, out = set(), []
    for url in urls or ():
        if url and url not in seen:
            seen.add(url)
            out.append(url)
    return out


class _Fetch:
    """One cache file being downloaded; every batch that wants it listens for the outcome."""

    def __init__(self) -> None:
        self.listeners: List[Tuple["queue.Queue[Tuple[str, bool]]", str]] = []


_inflight_lock = threading.Lock()
_inflight: Dict[str, _Fetch] = {}  # cache path -> fetch in progress (never two writers per file)


def _fetch_job(url: str, path: str, fetch: _Fetch) -> Callable[[threading.Event], bool]:
    def run(cancel_event: threading.Event) -> bool:
        ok = False
        try:
            ok = _download_single_image(url, path)
        finally:
            with _inflight_lock:
                _inflight.pop(path, None)
                listeners = list(fetch.listeners)
            for outcomes, wanted_url in listeners:
                outcomes.put((wanted_url, ok))
        return ok

    return run


def _run_batch(
    urls: List[str],
    on_each: Optional[Callable[[int, int], None]] = None,
    priority: int = PRIORITY_BULK,
    result: Optional[BatchResult] = None,
) -> BatchResult:
    """Fetch ``urls`` into the gallery cache on the shared pool; ``on_each(done, total)``."""
    result = result or BatchResult()
    result.total += len(urls)
    pending: List[Tuple[str, str]] = []
    finished = 0
    for url in urls:
        path = setting.get_image_url_to_gallery_file(url)
        if os.path.isfile(path):
            result.skipped += 1
            finished += 1
            if on_each:
                on_each(finished, len(urls))
        else:
            pending.append((url, path))
    if not pending:
        return result
    outcomes: "queue.Queue[Tuple[str, bool]]" = queue.Queue()
    engine = _gallery_engine()
    for url, path in pending:
        with _inflight_lock:
            fetch = _inflight.get(path)
            started_here = fetch is None
            if fetch is None:
                fetch = _inflight[path] = _Fetch()
            fetch.listeners.append((outcomes, url))
        if started_here:  # else another caller (e.g. the prefetch) is already fetching it
            engine.submit(_fetch_job(url, path, fetch), priority=priority)
    for _ in pending:
        url, ok = outcomes.get()
        finished += 1
        if ok:
            result.downloaded += 1
        else:
            result.failed += 1
            result.failed_urls.append(url)
        if on_each:
            on_each(finished, len(urls))
    engine.forget_finished()
    return result


def _report(result: BatchResult) -> BatchResult:
    logger.debug("gallery images: %s (of %d)", result.line(), result.total)
    if result.failed:
        warn_user(FAILURE_TOAST.format(n=result.failed))
    return result


def download_images(dn_image_list: list) -> BatchResult:
    """Download the gallery images in ``dn_image_list`` (URLs) into the gallery cache.

    Existing files are skipped; the rest run concurrently (``gallery_max_concurrent_downloads``).
    A partial failure is logged and shown as a warning toast; it never raises.
    """
    urls = _unique(dn_image_list)
    if not urls:
        return BatchResult()
    logger.debug("fetching %d gallery images", len(urls))
    return _report(_run_batch(urls))


def download_images_with_progress(
    dn_image_list: list, progress_callback: Optional[ProgressCallback] = None
) -> BatchResult:
    """Like :func:`download_images`, calling ``progress_callback(completed, total, message)``
    after each image (in the caller's thread)."""
    urls = _unique(dn_image_list)
    if not urls:
        return BatchResult()

    def on_each(done: int, total: int) -> None:
        if progress_callback:
            progress_callback(done, total, f"Downloading image {done}/{total}")

    return _report(_run_batch(urls, on_each=on_each))


def download_images_batch(dn_image_list: list, batch_size: int = 5) -> BatchResult:
    """Download in batches of ``batch_size``: a batch is finished before the next is queued.

    Within a batch the shared pool bounds the concurrency (``gallery_max_concurrent_downloads``);
    there are no fixed sleeps: politeness after a 429/503 is the transport's per-host pause.
    """
    if int(batch_size) < 1:
        raise ValueError("batch_size must be at least 1")
    urls = _unique(dn_image_list)
    result = BatchResult()
    if not urls:
        return result
    batches = (len(urls) + batch_size - 1) // batch_size
    for number, start in enumerate(range(0, len(urls), batch_size), 1):
        batch = urls[start : start + batch_size]
        logger.debug("gallery batch %d/%d: %d images", number, batches, len(batch))
        _run_batch(batch, result=result)
    return _report(result)


# -- retries --


class GalleryDownloadManager:
    """Downloads with retries, remembering what still failed so it can be retried later."""

    def __init__(self, retry_delay: float = 1.0):
        self.failed_downloads: List[Tuple[str, str]] = []
        self.retry_delay = float(retry_delay)
        self._lock = threading.Lock()

    @property
    def client(self):
        return get_http_client()

    def download_with_retry(self, img_url: str, save_path: str, max_retries: int = 2) -> bool:
        """Try ``1 + max_retries`` times; a final failure is added to :attr:`failed_downloads`."""
        for attempt in range(max_retries + 1):
            if _download_single_image(img_url, save_path):
                return True
            if attempt < max_retries:
                logger.info("retry %d of %d for %s", attempt + 1, max_retries, img_url)
                if self.retry_delay:
                    time.sleep(self.retry_delay * (attempt + 1))
        with self._lock:
            if (img_url, save_path) not in self.failed_downloads:
                self.failed_downloads.append((img_url, save_path))
        return False

    def retry_failed_downloads(self) -> BatchResult:
        """Retry every remembered failure once more; the ones that fail again stay listed."""
        with self._lock:
            retry_list = list(self.failed_downloads)
            self.failed_downloads.clear()
        result = BatchResult(total=len(retry_list))
        if not retry_list:
            return result
        logger.info("retrying %d failed downloads", len(retry_list))
        for img_url, save_path in retry_list:
            if self.download_with_retry(img_url, save_path, max_retries=1):
                result.downloaded += 1
            else:
                result.failed += 1
                result.failed_urls.append(img_url)
        return _report(result)


# -- prefetching the next gallery page --


def thumbnail_url(url: str) -> str:
    """The small rendition of an image URL the gallery shows."""
    from ..civitai.api import sized_url

    return sized_url(url, THUMBNAIL_WIDTH) if url else url


def _paging_value(paging_information: Any, *names: str) -> Any:
    for name in names:
        if isinstance(paging_information, Mapping) and name in paging_information:
            return paging_information[name]
        if hasattr(paging_information, name):
            return getattr(paging_information, name)
    return None


def pre_loading(usergal_page_url, paging_information):
    """Prefetch the thumbnails of the gallery page after the current one into the gallery cache.

    ``usergal_page_url`` is the images-endpoint URL (or path) of the current page, e.g.
    ``/api/v1/images?modelId=1&sort=Newest``; ``paging_information`` holds the next cursor
    (``next_cursor`` / ``nextCursor``, a mapping or an ``ImagePage``) and optionally ``limit`` and
    ``nsfw_levels``. Returns the next ``ImagePage`` (None on the last page) so the caller can show
    it without asking again. API errors propagate as typed ``ApiError``; image failures are
    counted and reported like :func:`download_images`.
    """
    next_cursor = _paging_value(paging_information, "next_cursor", "nextCursor")
    if not next_cursor:
        logger.debug("no next page to prefetch")
        return None
    from ..civitai.api import CivitaiAPI

    params: Dict[str, Any] = dict(parse_qsl(urlsplit(str(usergal_page_url)).query))
    params.pop("cursor", None)
    limit = _paging_value(paging_information, "limit") or params.pop("limit", None)
    nsfw_levels = _paging_value(paging_information, "nsfw_levels")
    api = CivitaiAPI(
        client=get_http_client(), default_levels=setting.get("images.default_nsfw_filter")
    )
    page = api.get_image_page(
        params,
        cursor=next_cursor,
        limit=int(limit) if limit else setting.get("gallery_page_size"),
        nsfw_levels=nsfw_levels,
    )
    urls = [thumbnail_url(item.url) for item in page.items if item.url]
    if urls:
        _report(_run_batch(_unique(urls), priority=PRIORITY_BULK))
    return page


def fetch_thumbnails(urls: Iterable[str]) -> Tuple[List[Optional[str]], BatchResult]:
    """Fetch the thumbnails of a page with priority over prefetching; returns the cache paths in
    the order given (None where the fetch failed) and the batch counts."""
    wanted = [thumbnail_url(u) for u in urls]
    result = _run_batch(_unique(wanted), priority=PRIORITY_SINGLE)
    paths = []
    for url in wanted:
        path = setting.get_image_url_to_gallery_file(url) if url else None
        paths.append(path if path and os.path.isfile(path) else None)
    cap_cache(paths)
    return paths, result


def cap_cache(in_use: List[Optional[str]]) -> None:
    """Mark ``in_use`` (cache files about to be shown) as just used, then keep the gallery cache
    under ``gallery_cache_max_mb`` by removing the least recently used other files."""
    from ..store.cache_limit import touch, trim

    touch(in_use)
    limit_mb = int(setting.get("gallery_cache_max_mb"))
    trim(str(setting.get("gallery_cache_path")), limit_mb * 1024 * 1024, keep=in_use)


def is_video(url_or_path: str) -> bool:
    """A video's URL or file (the preview shows its thumbnail, never the video itself)."""
    return os.path.splitext(url_or_path.split("?", 1)[0])[1].lower() in (".mp4", ".webm", ".mov")


def fetch_preview(url: str) -> Optional[str]:
    """The original of an image in the gallery cache (fetched once, with priority); None for a
    video or when it cannot be fetched. What the preview shows large."""
    from ..civitai.image_urls import original_url

    if not url:
        return None
    wanted = original_url(url)
    path = setting.get_image_url_to_gallery_file(wanted)
    if is_video(path):
        return None
    if not os.path.isfile(path):
        _run_batch([wanted], priority=PRIORITY_SINGLE)
    if not os.path.isfile(path):
        return None
    cap_cache([path])  # originals count toward the cap too
    return path

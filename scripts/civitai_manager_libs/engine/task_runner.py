"""What one download job does: fetch the original file, apply the duplicate policy, write the
generation data and thumbnail, record the image in the archive, and say how the task ended.

The runner never settles a task itself: it returns an :class:`Outcome` (final status, the
sentence for the user, the task fields to set) and the downloader settles it. Every error of a job
becomes a failed (or, for a full disk, a failed and ``disk_full``) outcome.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Any, Dict, List, Optional, Protocol, Tuple, Union

from ..civitai import image_urls
from .task import CANCELLED, COMPLETED, FAILED, SKIPPED, ImageDownloadTask
from .duplicates import FileNames, by_content, by_name, sha256_file
from ..errors import (
    ApiError,
    CivitaiGalleryError,
    DiskSpaceError,
    DownloadCancelledError,
    DownloadError,
    MetadataError,
    NetworkError,
    RefusedUrlError,
    TransferFailedError,
    UnexpectedContentError,
)
from .failures import describe_failure, is_disk_full
from ..store import confined
from ..store.file_path import FilePath
from ..transport.file_fetch import ReceivedFile
from ..transport.host_gate import origin_of
from ..util.logging_setup import redact

logger = logging.getLogger(__name__)


class RunnerHost(Protocol):
    """What a :class:`TaskRunner` reads of the downloader it works for, at each job (so changes
    made while a batch runs apply)."""

    output_path: str
    metadata_formats: List[str]
    duplicate_policy: str
    skip_existing: bool
    generate_thumbnails: bool
    thumbnail_size: Tuple[int, ...]
    min_free_space_mb: Optional[int]
    video_base_url: Optional[str]  # see TaskRunner._fetch

    @property
    def client(self) -> Any: ...

    @property
    def archive(self) -> Any: ...

    def note_embed_skipped(self, reason: str) -> None:
        """A file's generation data went to a txt sidecar instead of being embedded."""

    def task_bytes(self, task: ImageDownloadTask, done: int, total: Optional[int]) -> None:
        """``done`` of ``total`` bytes of ``task`` received."""


@dataclasses.dataclass
class Outcome:
    """How a job ended: the task's final status, its error/note and the fields to set."""

    status: str
    error: Optional[str] = None
    fields: Dict[str, Any] = dataclasses.field(default_factory=dict)
    disk_full: bool = False  # scheduling must stop
    noted: bool = False  # a skip the report lists with its reason


@dataclasses.dataclass
class Fetched:
    """A file received whole whose local half (:meth:`TaskRunner.finish`: commit, duplicate
    policy, generation data, thumbnail, archive) is still to do."""

    received: ReceivedFile
    root: str  # the folder every write for it must stay in
    replaces: Optional[str] = None  # an older copy to delete once committed (policy replace)


#: HTTP statuses of a media host that send a file to its next URL (the file is not there).
FALLBACK_STATUSES = (401, 403, 404, 410)


def _try_next_host(exc: Exception) -> bool:
    """Whether a failed fetch should go on to the file's next URL: the host refused it or does
    not have it (401/403/404/410), sent a page instead of media, cannot be reached, or is a host
    downloads never go to."""
    if isinstance(exc, (NetworkError, UnexpectedContentError, RefusedUrlError)):
        return True  # RefusedUrlError: a video host the URL gate refuses (never asked)
    return isinstance(exc, DownloadError) and exc.status in FALLBACK_STATUSES


class TaskRunner:
    """Runs jobs for ``owner`` (see :class:`RunnerHost`); ``names``: the session's file names."""

    def __init__(self, owner: RunnerHost, names: FileNames):
        self._owner = owner
        self._names = names

    def run(self, task: ImageDownloadTask, cancel_event: threading.Event) -> Outcome:
        """Download ``task`` (already started) and post-process it; never raises."""
        staged = self.fetch(task, cancel_event)
        return staged if isinstance(staged, Outcome) else self.finish(task, staged)

    def fetch(
        self, task: ImageDownloadTask, cancel_event: threading.Event
    ) -> Union[Outcome, "Fetched"]:
        """The network half of a job: the body whole in its ``.part`` file (:class:`Fetched`),
        or the outcome when the job ends here (adopted file, failure, cancel). Never raises."""
        down = self._host_down(task)
        if down is not None:  # a host that stopped answering gets no more requests
            logger.debug("image %s: %s", task.image_id, down)
            return Outcome(FAILED, down)
        try:
            return self._fetch(task, cancel_event)
        except Exception as exc:
            return self._failure(task, exc)

    def finish(self, task: ImageDownloadTask, fetched: "Fetched") -> Outcome:
        """The local half: commit the file (fsync, decode check, rename), duplicate policy,
        generation data, thumbnail, archive. It needs no connection, so the downloader runs it
        off the download slots. Never raises."""
        try:
            return self._finish(task, fetched)
        except Exception as exc:
            return self._failure(task, exc)

    def _failure(self, task: ImageDownloadTask, exc: Exception) -> Outcome:
        """The outcome of a job that raised ``exc``."""
        root = self._owner.output_path
        if isinstance(exc, DownloadCancelledError):
            return Outcome(CANCELLED, "cancelled")
        if isinstance(exc, OSError):  # DiskSpaceError and OutputPathError included
            if is_disk_full(exc):
                message = describe_failure(exc, root)
                logger.error("image %s: %s (%s)", task.image_id, message, exc)
                return Outcome(FAILED, message, disk_full=True)
            logger.warning("image %s: %s", task.image_id, exc)
            return Outcome(FAILED, describe_failure(exc, root))
        if isinstance(exc, (CivitaiGalleryError, ApiError)):
            down = self._host_down(task)
            if down is not None:  # the host went down during this download: one line said so
                logger.debug("image %s failed: %s", task.image_id, exc)
                return Outcome(FAILED, down)
            # a host that does not answer fails image after image: the run's end says it once,
            # grouped by reason (engine.failures.group_failures), not once per image
            quiet = isinstance(exc, TransferFailedError)
            (logger.debug if quiet else logger.warning)("image %s failed: %s", task.image_id, exc)
            return Outcome(FAILED, describe_failure(exc, root))
        # a bug must not leave the task "downloading" forever
        logger.error("image %s: unexpected error", task.image_id, exc_info=exc)
        return Outcome(FAILED, describe_failure(exc, root))

    def _host_down(self, task: ImageDownloadTask) -> Optional[str]:
        """Why the task's image host is not contacted any more (see HostGate), or None."""
        gate = getattr(self._owner.client, "host_gate", None)
        if gate is None or not task.image_url:
            return None
        # the original's URL differs from the listed one only in its path: same origin
        return gate.unreachable(origin_of(task.image_url))

    def on_disk(self, task: ImageDownloadTask) -> Optional[Outcome]:
        """Apply the duplicate rule before any request (:func:`.duplicates.by_name`): the outcome
        of an image that needs no download, else None with the task's target (a copy's name for
        ``keep_both``) and the older file it replaces set."""
        assert task.target is not None  # planned tasks always have one
        owner = self._owner
        found = by_name(
            task.target, task.image_id, owner.duplicate_policy, owner.skip_existing, self._names
        )
        if found.adopt is not None:
            return self.adopt(task, found.adopt)
        if found.left_alone is not None:
            return Outcome(SKIPPED, found.left_alone, noted=True)
        task.target, task.replaces = found.target, found.replaces
        return None

    def adopt(self, task: ImageDownloadTask, path: str) -> Outcome:
        """A file is already where this image would go: record it, skip the download."""
        sha = sha256_file(path)
        size = os.path.getsize(path)
        metadata_path = self._complete_sidecars(task, path)
        self._record_image(task, path, metadata_path, sha, size, _index_record(task, path))
        fields = {"image_path": path, "metadata_path": metadata_path, "sha256": sha}
        return Outcome(SKIPPED, f"already on disk: {path}", fields)

    def _fetch(
        self, task: ImageDownloadTask, cancel_event: threading.Event
    ) -> Union[Outcome, "Fetched"]:
        owner = self._owner
        target = task.target
        if target is None:
            raise ValueError(f"image {task.image_id} has no planned file name")
        # A file the caller named itself (custom_path) is confined to its own folder.
        folder = os.path.dirname(os.path.abspath(target))
        root: str = folder if task.custom_path else str(owner.output_path)
        min_free = owner.min_free_space_mb
        item_type = task.item.type if task.item else None
        # video_base_url: a changed civitai_video_base_url serves the videos of any media host
        name = FilePath.for_image(target, root, item_type)
        urls = image_urls.download_urls(task.image_url, item_type, owner.video_base_url)
        for number, url in enumerate(urls, 1):
            try:
                received = owner.client.receive_file(
                    url,
                    name.path,
                    progress_callback=lambda done, total: owner.task_bytes(task, done, total),
                    cancel_event=cancel_event,
                    fix_extension=name.fix_extension,
                    root=name.root,
                    min_free_bytes=None if min_free is None else int(min_free) * 1024 * 1024,
                )
                break
            except (DownloadError, NetworkError) as exc:
                if number == len(urls) or not _try_next_host(exc):
                    raise
                logger.info("image %s: %s; trying %s", task.image_id, exc, redact(urls[number]))
        return Fetched(received, root, task.replaces)

    def _finish(self, task: ImageDownloadTask, fetched: "Fetched") -> Outcome:
        owner = self._owner
        root = fetched.root
        result = fetched.received.commit()
        if fetched.replaces is not None:
            if os.path.abspath(fetched.replaces) != os.path.abspath(result.path):
                # the older copy with another extension
                confined.remove(fetched.replaces, root)
        other = by_content(owner.archive, owner.duplicate_policy, task.image_id, result, root)
        if other is not None:
            path = other["path"]
            meta, record = other.get("metadata_path"), _index_record(task, path)
            self._record_image(task, path, meta, result.sha256, result.size, record)
            fields = {"image_path": path, "sha256": result.sha256}
            return Outcome(SKIPPED, f"same content as {path}", fields)
        record = _index_record(task, result.path)
        metadata_path, note = self._write_metadata(task, result.path, record)
        thumbnail = self._write_thumbnail(result.path)
        self._record_image(task, result.path, metadata_path, result.sha256, result.size, record)
        fields = {
            "image_path": result.path,
            "metadata_path": metadata_path,
            "sha256": result.sha256,
            "size": result.size,
            "thumbnail_path": thumbnail,
        }
        return Outcome(COMPLETED, note, fields)

    def _complete_sidecars(self, task: ImageDownloadTask, image_path: str) -> Optional[str]:
        """Write the generation data an adopted file lacks: a run killed (or stopped by a full
        disk) between saving the image and writing its metadata leaves the file without it.
        Missing json/txt sidecars are written; ``exif`` is embedded only into a file that carries
        no infotext yet (a file's own ``parameters`` are never replaced)."""
        formats = list(self._owner.metadata_formats)
        if not task.save_metadata or task.item is None or not formats:
            return None
        from ..metadata import embed
        from ..metadata import record as metadata

        def lacking(fmt: str) -> bool:
            if fmt == "exif":
                return embed.read_infotext(image_path) is None
            return not os.path.exists(metadata.sidecar_path(image_path, fmt))

        try:
            missing = [f for f in formats if lacking(f)]
            if missing:
                record = _record_for(task, image_path)
                metadata.save_metadata(image_path, record, missing)
        except Exception as exc:  # the file is adopted all the same; its data is a note
            logger.warning(
                "image %s: could not complete the generation data of %s: %s",
                task.image_id,
                image_path,
                exc,
            )
        sidecars = [metadata.sidecar_path(image_path, f) for f in formats if f != "exif"]
        return next((p for p in sidecars if os.path.exists(p)), None)

    def _write_metadata(
        self, task: ImageDownloadTask, image_path: str, record: Optional[Dict[str, Any]] = None
    ) -> Tuple[Optional[str], Optional[str]]:
        """(the sidecar to show, a note when the generation data could not be written)."""
        formats: List[str] = self._owner.metadata_formats
        if not task.save_metadata or not formats or task.item is None:
            return None, None
        from ..metadata import record as metadata

        try:
            record = record if record is not None else _record_for(task, image_path)
            paths = metadata.save_metadata(
                image_path, record, formats, embed_skipped=self._owner.note_embed_skipped
            )
        except (MetadataError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc, MetadataError) else exc
            if isinstance(cause, OSError) and is_disk_full(cause):
                raise DiskSpaceError(str(exc)) from exc
            logger.warning("image %s: %s", task.image_id, exc)
            return None, f"image saved, but its generation data could not be written: {exc}"
        except Exception as exc:  # the image is saved: it is recorded, the data is a note
            logger.warning("image %s: generation data not written: %r", task.image_id, exc)
            return None, (
                "image saved, but its generation data could not be written "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )
        sidecars = [p for p in paths if os.path.abspath(p) != os.path.abspath(image_path)]
        chosen = next((p for p in sidecars if p.endswith(".json")), None)
        return chosen or (sidecars[0] if sidecars else (paths[0] if paths else None)), None

    def _write_thumbnail(self, image_path: str) -> Optional[str]:
        if not self._owner.generate_thumbnails:
            return None
        from ..metadata import thumbnails

        try:
            return thumbnails.make_thumbnail(image_path, size=self._owner.thumbnail_size)
        except Exception as exc:  # ThumbnailError or worse: the image itself is fine
            logger.warning("no thumbnail for %s: %s", image_path, exc)
            return None

    def _record_image(self, task, path, metadata_path, sha256, size, record=None) -> None:
        """The images row, and with ``record`` its search index row (one transaction)."""
        self._owner.archive.record_image(
            record=record,
            image_id=task.image_id,
            url=task.image_url,
            sha256=sha256,
            path=path,
            metadata_path=metadata_path,
            size=size,
        )


def _index_record(task: ImageDownloadTask, image_path: str) -> Optional[Dict[str, Any]]:
    """The record the search index keeps for a saved file; None when there is no item (or it
    cannot be read: the image is saved all the same and ``python main.py index`` can add it)."""
    if task.item is None:
        return None
    try:
        return _record_for(task, image_path)
    except Exception as exc:  # noqa: BLE001 - the index must never cost the image
        logger.debug("image %s: no record to index: %r", task.image_id, exc)
        return None


def _record_for(task: ImageDownloadTask, image_path: str) -> Dict[str, Any]:
    """The metadata record of a downloaded file: Civitai's data, and when the author hid it on
    Civitai, the generation data the uploaded file itself still carries (WebUI's ``parameters``)."""
    from ..metadata import record as metadata

    item: Any = task.item if task.item is not None else {}
    return metadata.with_file_generation(metadata.extract_image_metadata(item), image_path)

"""Download an image's missing resources into the folders WebUI reads, verified by SHA-256.

Files go through the package's one HTTP client (``fetch_to_file``: resumable ``.part``, Range,
Retry-After through the host gate, the API key only to the API host and never across the redirect
to the storage host), one at a time, and are renamed into place only when their SHA-256 is the one
Civitai lists. A file already present (same SHA-256) is never requested again.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional
from urllib.parse import urlsplit

from ..settings.specs import SPECS
from ..errors import (
    ChecksumMismatchError,
    DiskSpaceError,
    DownloadError,
    OutputPathError,
    UnexpectedContentError,
)
from ..metadata.resource_refs import Resource
from ..store.disk_space import existing_parent, free_bytes
from ..store.paths import safe_join, sanitize_segment
from .hash_cache import FileHasher

logger = logging.getLogger(__name__)

#: Bytes accepted beyond the size Civitai lists (its sizes are rounded KB).
MODEL_SIZE_SLACK = 1024 * 1024


#: The largest model file (MB) accepted when Civitai lists no size, enforced while the body
#: streams; the shells pass the setting ``resources.max_unknown_size_mb`` (this is its default).
UNKNOWN_SIZE_MB = int(SPECS["resources.max_unknown_size_mb"].default)
#: The free space (MB) kept by default; the shells pass ``images.min_free_space_mb``.
MIN_FREE_MB = int(SPECS["images.min_free_space_mb"].default)


#: ``(bytes done in this file, its size or None, resource label)``
FetchProgress = Callable[[int, Optional[int], str], None]
API_KEY_HINT = (
    "set your Civitai API key in the civitai_api_key setting (Settings > Civitai Gallery, "
    "or the CIVITAI_API_KEY environment variable, or --api-key)"
)


@dataclass
class FetchOutcome:
    resource: Resource
    status: str  # downloaded | present | failed | skipped
    message: str = ""
    path: Optional[str] = None
    bytes: int = 0


def model_kind(head: bytes, content_type: Optional[str]) -> Optional[str]:
    """Accept a model file (safetensors, pickle/zip checkpoints, GGUF, raw data); refuse the HTML
    or JSON a login page or an error sends instead."""
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "ckpt"
    if head[:4] == b"GGUF":
        return "gguf"
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    text = head.lstrip().lower()
    if mime in ("text/html", "application/json", "text/plain", "application/xml") or text[:1] in (
        b"<",
        b"{",
        b"[",
    ):
        return None
    return "bin"


def total_size(resources: Iterable[Resource]) -> int:
    return sum(r.size or 0 for r in resources)


def human_size(size: Optional[float]) -> str:
    """``47.0 KB``, ``6.5 GB``; "size unknown" for None or 0."""
    if not size:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def civitai_page(resource: Resource, base_url: str) -> Optional[str]:
    """The resource's page on Civitai (model and version), or None without a model id."""
    if resource.model_id is None:
        return None
    link = f"{base_url.rstrip('/')}/models/{resource.model_id}"
    return link + (f"?modelVersionId={resource.version_id}" if resource.version_id else "")


def target_path(resource: Resource, folders: Dict[str, str]) -> str:
    """Where ``resource`` goes: the type's folder and Civitai's file name (made safe)."""
    folder = folders.get(resource.type)
    if not folder:
        raise OutputPathError(
            f"No folder for {resource.type} files; set models_path (a WebUI models folder) or "
            "pass --models-dir."
        )
    name = sanitize_segment(resource.file_name or f"{resource.version_id}.safetensors")
    return safe_join(folder, name)


def check_space(resources: List[Resource], folders: Dict[str, str], min_free_mb: int = 0) -> None:
    """``DiskSpaceError`` before anything starts when a folder's disk cannot take its files."""
    need: Dict[str, int] = {}
    where: Dict[str, str] = {}
    for resource in resources:
        folder = folders.get(resource.type)
        if not folder or not resource.size:
            continue
        anchor = existing_parent(folder)
        device = str(os.stat(anchor).st_dev)
        need[device] = need.get(device, 0) + resource.size
        where[device] = anchor
    for device, size in need.items():
        free = free_bytes(where[device])
        if free - size < min_free_mb * 1024 * 1024:
            raise DiskSpaceError(
                f"The missing resources need {size / 1e6:.1f} MB on the disk of {where[device]}, "
                f"which has {free / 1e6:.1f} MB free (keeping {min_free_mb} MB spare). Free some "
                "space or choose another models folder."
            )


def _download_url(resource: Resource, base_url: str) -> Optional[str]:
    """The resource's download link on the current Civitai address: Civitai's own
    ``/api/download/...`` links (kept in a look-up answered when the address was another one)
    are rebuilt on ``base_url``; a link elsewhere is used as Civitai gave it."""
    base = base_url.rstrip("/")
    if resource.download_url:
        parts = urlsplit(resource.download_url)
        if parts.path.startswith("/api/download/"):
            return base + parts.path + (f"?{parts.query}" if parts.query else "")
        return resource.download_url
    if resource.version_id is not None:
        return f"{base}/api/download/models/{resource.version_id}"
    return None


def _needs_login(exc: DownloadError) -> bool:
    """401/403, or the login page Civitai shows instead of the file (by the kind of answer, not
    by the wording of the message)."""
    return exc.status in (401, 403) or (
        isinstance(exc, UnexpectedContentError) and exc.kind == "html"
    )


def _login_message(resource: Resource, has_key: bool) -> str:
    if has_key:
        return (
            f"{resource.label} needs early access or a login your API key does not have; check "
            "the key in the civitai_api_key setting and your access on Civitai."
        )
    return (
        f"{resource.label} needs a Civitai login (early access or login-required): {API_KEY_HINT}."
    )


def _known_copy(resource: Resource, hasher: Optional[FileHasher]) -> Optional[str]:
    """A file already on disk with the resource's SHA-256, from the hash cache (a cached row
    counts only while the file keeps the size and mtime it was hashed with)."""
    cache = getattr(hasher, "cache", None)
    if cache is None or not resource.sha256:
        return None
    for path, size, mtime_ns, inode in cache.paths_with_hash(resource.sha256):
        try:
            info = os.stat(path)
        except OSError:
            continue
        same_inode = inode < 0 or info.st_ino == inode
        if info.st_size == size and info.st_mtime_ns == mtime_ns and same_inode:
            if os.path.isfile(path):
                return path
    return None


@dataclass
class FetchSummary:
    """What a "Download missing" did, for a shell to word: counts, bytes, the failures'
    messages, and whether every file that was tried failed (``all_failed``)."""

    downloaded: int = 0
    present: int = 0
    failed: List[str] = field(default_factory=list)
    bytes: int = 0

    @property
    def all_failed(self) -> bool:
        return bool(self.failed) and not self.downloaded and not self.present

    @property
    def text(self) -> str:
        """One English sentence (the CLI's; the tab may word it in the user's language)."""
        if self.all_failed:
            return (
                f"None of the {len(self.failed)} missing file(s) could be downloaded: "
                + " ".join(self.failed)
            )
        parts = [f"Downloaded {self.downloaded} file(s) ({human_size(self.bytes)}), verified."]
        if self.present:
            parts.append(f"{self.present} already on disk (same SHA-256).")
        if self.failed:
            parts.append(f"Not downloaded ({len(self.failed)}): " + " ".join(self.failed))
        return " ".join(parts)


def summarize(outcomes: Iterable[FetchOutcome]) -> FetchSummary:
    summary = FetchSummary()
    for outcome in outcomes:
        if outcome.status == "downloaded":
            summary.downloaded += 1
            summary.bytes += outcome.bytes
        elif outcome.status == "present":
            summary.present += 1
        else:
            summary.failed.append(outcome.message)
    return summary


def fetch_resource(
    resource: Resource,
    folders: Dict[str, str],
    client: Any,
    hasher: Optional[FileHasher] = None,
    progress: Optional[FetchProgress] = None,
    cancel_event: Optional[threading.Event] = None,
    unknown_size_mb: int = UNKNOWN_SIZE_MB,
) -> FetchOutcome:
    """Download one resource (see the module docstring). Never raises for a per-file problem.
    ``unknown_size_mb``: the cap on a file whose size Civitai does not list."""
    if resource.status != "resolved" or not resource.sha256:
        why = resource.note or "Civitai lists no file with a SHA-256 for it"
        return FetchOutcome(resource, "skipped", f"{resource.label}: not downloaded ({why}).")
    url = _download_url(resource, client.base_url)
    if url is None:
        return FetchOutcome(
            resource, "skipped", f"{resource.label}: Civitai gives no download link."
        )
    already = _known_copy(resource, hasher)
    if already is not None:  # the same bytes under any name, anywhere it was hashed before
        resource.local_path = already
        resource.local_name = resource.local_name or os.path.splitext(os.path.basename(already))[0]
        return FetchOutcome(
            resource, "present", f"{resource.label}: already in {already} (same SHA-256).", already
        )
    try:
        path = target_path(resource, folders)
    except (OutputPathError, ValueError) as exc:
        return FetchOutcome(resource, "failed", str(exc))
    if os.path.isfile(path):
        hasher = hasher or FileHasher()
        if hasher.sha256(path) == resource.sha256.upper():
            resource.local_path = path
            resource.local_name = resource.local_name or os.path.splitext(os.path.basename(path))[0]
            return FetchOutcome(resource, "present", f"{resource.label}: already in {path}.", path)
        return FetchOutcome(
            resource,
            "failed",
            f"{path} exists but is not {resource.label} (different SHA-256); move it away first.",
        )

    def report(done: int, total: Optional[int]) -> None:
        if progress is not None:
            progress(done, total or resource.size, resource.label)

    if resource.size and resource.size > 0:  # model files are far larger than the image cap
        cap, cause = resource.size + MODEL_SIZE_SLACK, "the size Civitai lists for it"
    else:
        cap, cause = (
            unknown_size_mb * 1024 * 1024,
            "Civitai lists no size; setting resources.max_unknown_size_mb",
        )
    try:
        result = client.fetch_to_file(
            url,
            path,
            progress_callback=report,
            cancel_event=cancel_event,
            content_kind=model_kind,
            expected_sha256=resource.sha256,
            max_bytes=cap,
            cap_reason=cause,
            # the type folder (a link the user made there is followed: configuration); nothing
            # below it is: the file and its .part are opened without following links
            root=os.path.dirname(path),
        )
    except ChecksumMismatchError as exc:
        logger.error("%s: %s", resource.label, exc)
        return FetchOutcome(resource, "failed", f"{resource.label}: {exc}")
    except OutputPathError as exc:  # a link planted below the type folder, an unwritable file
        logger.error("%s: %s", resource.label, exc)
        return FetchOutcome(resource, "failed", f"{resource.label}: {exc}")
    except DownloadError as exc:
        if _needs_login(exc):
            message = _login_message(resource, bool(getattr(client, "has_api_key", False)))
        else:
            message = f"{resource.label}: {exc}"
        logger.error("%s", message)
        return FetchOutcome(resource, "failed", message)
    resource.local_path = result.path
    if resource.type == "checkpoint":
        name = os.path.basename(result.path)
        resource.local_name = f"{name} [{resource.sha256[:10].lower()}]"
    else:
        resource.local_name = os.path.splitext(os.path.basename(result.path))[0]
    if hasher is not None and hasher.cache is not None:
        info = os.stat(result.path)
        hasher.cache.put_hash(
            os.path.abspath(result.path),
            info.st_size,
            info.st_mtime_ns,
            resource.sha256,
            info.st_ino,
        )
    logger.debug(
        "Downloaded %s to %s (%d bytes, SHA-256 verified).",
        resource.label,
        result.path,
        result.size,
    )
    return FetchOutcome(
        resource,
        "downloaded",
        f"{resource.label}: saved to {result.path}.",
        result.path,
        result.size,
    )


def fetch_missing(
    resources: List[Resource],
    folders: Dict[str, str],
    client: Any,
    hasher: Optional[FileHasher] = None,
    progress: Optional[FetchProgress] = None,
    cancel_event: Optional[threading.Event] = None,
    min_free_mb: int = MIN_FREE_MB,
    unknown_size_mb: int = UNKNOWN_SIZE_MB,
) -> List[FetchOutcome]:
    """Download each resource of ``resources`` (the missing ones), after one disk check that
    keeps ``min_free_mb`` free (the shells pass ``images.min_free_space_mb``)."""
    check_space([r for r in resources if r.status == "resolved"], folders, min_free_mb)
    outcomes = []
    for resource in resources:
        if cancel_event is not None and cancel_event.is_set():
            outcomes.append(FetchOutcome(resource, "skipped", f"{resource.label}: cancelled."))
            continue
        outcomes.append(
            fetch_resource(
                resource, folders, client, hasher, progress, cancel_event, unknown_size_mb
            )
        )
    return outcomes

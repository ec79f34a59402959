"""Plain dataclasses passed between the pipeline stages (never loose dicts through five layers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

NSFW_LEVELS: Tuple[str, ...] = ("None", "Soft", "Mature", "X")


@dataclass
class ImageItem:
    """One image (or video) as listed by Civitai, with the context it was listed under.

    ``raw`` is the item exactly as the API sent it (``meta`` already unwrapped from the
    ``{"id", "meta"}`` shape), so post-processing can keep every key. ``id`` is None only for the
    images embedded in a model's versions when no id can be read from the URL.
    """

    id: Optional[int]
    url: str
    width: Optional[int] = None
    height: Optional[int] = None
    type: str = "image"  # image | video | audio
    nsfw_level: str = "None"  # None | Soft | Mature | X
    creator: Optional[str] = None
    post_id: Optional[int] = None
    created_at: Optional[str] = None
    base_model: Optional[str] = None
    meta: Optional[Dict[str, Any]] = None
    stats: Dict[str, Any] = field(default_factory=dict)
    model_id: Optional[int] = None
    model_name: Optional[str] = None
    version_id: Optional[int] = None
    version_name: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict)


@dataclass
class VersionInfo:
    id: int
    name: str
    model_id: Optional[int] = None
    model_name: Optional[str] = None
    base_model: Optional[str] = None
    images: List[ImageItem] = field(default_factory=list)


@dataclass
class ModelInfo:
    id: int
    name: str
    type: Optional[str] = None
    nsfw: bool = False
    creator: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    versions: List[VersionInfo] = field(default_factory=list)


@dataclass
class ImagePage:
    """One page of the images endpoint: what the gallery shows and where the next page starts."""

    items: List[ImageItem]
    cursor: Optional[str]  # the cursor this page was requested with (None for the first page)
    next_cursor: Optional[str]  # None on the last page
    # A sentence for the user when Civitai does not give the order asked for (whole-model sort)
    notice: Optional[str] = None


@dataclass
class DownloadResult:
    """What the transport wrote: the final path (extension fixed from the real content type)."""

    path: str
    size: int
    content_type: Optional[str]
    sha256: str
    resumed: bool = False


@dataclass
class DownloadSummary:
    """Counts for one batch of tasks, for toasts, CLI lines and reports."""

    listed: int = 0
    completed: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: int = 0
    pending: int = 0
    bytes_downloaded: int = 0
    output_path: str = ""
    failures: List[Tuple[Optional[int], str]] = field(default_factory=list)  # (image id, reason)

    @property
    def finished(self) -> bool:
        return self.pending == 0

    def line(self) -> str:
        return f"downloaded {self.completed}, skipped {self.skipped}, failed {self.failed}"

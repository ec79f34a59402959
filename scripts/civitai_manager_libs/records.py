"""Plain dataclasses passed between the pipeline stages (never loose dicts through five layers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

NSFW_LEVELS: Tuple[str, ...] = ("None", "Soft", "Mature", "X")

# Civitai's fixed list of base model names (``baseModels`` is checked against it: a name not in it
# is a 400). From Civitai's ``baseModels`` constant as mirrored by client projects (2026-11).
BASE_MODELS: Tuple[str, ...] = (
    "ODOR",
    "SD 1.4",
    "SD 1.5",
    "SD 1.5 LCM",
    "SD 1.5 Hyper",
    "SD 2.0",
    "SD 2.0 768",
    "SD 2.1",
    "SD 2.1 768",
    "SD 2.1 Unclip",
    "SD 3",
    "SD 3.5",
    "SD 3.5 Medium",
    "SD 3.5 Large",
    "SD 3.5 Large Turbo",
    "SDXL 0.9",
    "SDXL 1.0",
    "SDXL 1.0 LCM",
    "SDXL Distilled",
    "SDXL Turbo",
    "SDXL Lightning",
    "SDXL Hyper",
    "Stable Cascade",
    "Pony",
    "Pony V7",
    "Illustrious",
    "NoobAI",
    "Flux.1 S",
    "Flux.1 D",
    "Flux.1 Krea",
    "Flux.1 Kontext",
    "Flux.2 D",
    "AuraFlow",
    "Chroma",
    "HiDream",
    "Hunyuan 1",
    "Hunyuan Video",
    "Kolors",
    "Lumina",
    "PixArt a",
    "PixArt E",
    "Playground v2",
    "Qwen",
    "ZImageTurbo",
    "ZImageBase",
    "SVD",
    "SVD XT",
    "LTXV",
    "CogVideoX",
    "Mochi",
    "Wan Video",
    "Wan Video 1.3B t2v",
    "Wan Video 14B t2v",
    "Wan Video 14B i2v 480p",
    "Wan Video 14B i2v 720p",
    "Wan Video 2.2 TI2V-5B",
    "Wan Video 2.2 I2V-A14B",
    "Wan Video 2.2 T2V-A14B",
    "Wan Video 2.5 T2V",
    "Wan Video 2.5 I2V",
    "Other",
)


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
    #: the image's page on the Civitai front that shows it (civitai.red for a mature image)
    page_url: Optional[str] = None


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
    nsfw_hidden: int = 0  # items the server sent that the exact NSFW filter dropped
    # listed items that could not be used (no id, id out of range, nested too deep ...):
    # (their id as listed or None, why each was skipped)
    rejected: List[Tuple[Any, str]] = field(default_factory=list)
    server_items: Optional[int] = None  # items the server sent, before any filter or check
    # A sentence for the user when Civitai does not give the order asked for (whole-model sort)
    notice: Optional[str] = None
    # The answer's top level was not the expected {"items", "metadata"} but could be read (e.g. a
    # tRPC-like "result.data.json" form): its name, for the drift count (civitai/drift.py)
    shape: Optional[str] = None
    # Mature/X asked of the safe-for-work front alone and none served so far: the fronts' warning
    # (civitai/fronts.SFW_ONLY_WARNING) says it, so the drift count leaves this page's levels out
    sfw_only: bool = False


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
    # images listed but not made into tasks, by reason (planning/item_filter.py REASONS)
    filtered: Dict[str, int] = field(default_factory=dict)
    # images skipped for a problem worth reporting (malformed item, unreadable file in the way)
    skipped_notes: List[Tuple[Any, str]] = field(default_factory=list)  # (image id, reason)
    # what Civitai answered differently from what is expected, one entry per kind
    # (civitai/drift.py Drift.kinds(): kind, count, of, example, message)
    drift: List[Dict[str, Any]] = field(default_factory=list)
    # how the listings went: "incremental: stopped at known image N after 1 page", or why a
    # re-run listed everything (planning/incremental.py)
    notes: List[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.pending == 0

    def line(self) -> str:
        return f"downloaded {self.completed}, skipped {self.skipped}, failed {self.failed}"

"""The fake's entities: creators, models with versions, images (what the dataset is made of)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import media

IMAGE_HOST_PREFIX = "/xG1nkqKTMzGDvpLrqFT7WA"
NSFW_BROWSING_LEVELS: Dict[str, Tuple[int, ...]] = {
    "None": (1,),
    "Soft": (2,),
    "Mature": (4,),
    "X": (8, 16),
}


def iso_ms(ms: int) -> str:
    """Civitai's ``createdAt`` format: ``2024-04-04T21:17:27.499Z``."""
    moment = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True)
class Creator:
    username: str
    user_id: int
    image: Optional[str] = None


@dataclass
class FakeVersion:
    id: int
    model_id: int
    name: str
    base_model: str
    created_ms: int
    trained_words: Tuple[str, ...] = ()
    file_size_kb: float = 2_000_000.0


@dataclass
class FakeModel:
    id: int
    name: str
    type: str
    nsfw: bool
    creator: str
    tags: Tuple[str, ...]
    versions: List[FakeVersion] = field(default_factory=list)


@dataclass
class FakeImage:
    """One listed image or video. ``media`` is the real format of the original upload."""

    id: int
    uuid: str
    media: str  # png | jpeg | webp | mp4
    width: int
    height: int
    nsfw_level: str  # None | Soft | Mature | X | Blocked (unrated items show None)
    browsing_level: int  # 1, 2, 4, 8, 16, 32 (Blocked) or 0 (unrated)
    type: Optional[str]  # image | video; None on a few old items (the key is then absent)
    created_ms: int
    post_id: int
    username: str
    user_id: int
    model_id: int
    model_version_ids: Tuple[int, ...]
    base_model: str
    meta: Optional[Dict[str, Any]]
    meta_shape: str
    stats: Dict[str, int]
    collected: int
    tag_ids: Tuple[int, ...] = ()
    blurhash: str = "UDF~Ee%M_3of~qofofof~qofWBof"
    # What the original upload carries itself: "a1111" (PNG "parameters" chunk, or EXIF
    # UserComment in a JPEG) or "comfy" (a PNG "prompt" chunk).
    embedded: Optional[str] = None
    padded_size: Optional[int] = None  # generated datasets: exact size of the original bytes
    # A query string the listed URL carries (signed CDN URLs: "token=...&sig=..."); the image host
    # ignores it.
    url_query: str = ""
    # Listed with the URL form used since 2025-09: /<uuid>/original=true/<uuid>.jpeg
    uuid_url: bool = False

    @property
    def created_at(self) -> str:
        return iso_ms(self.created_ms)

    @property
    def meta_hidden(self) -> bool:
        return self.meta_shape == "hidden"

    @property
    def nsfw(self) -> bool:
        return self.nsfw_level != "None"

    @property
    def content_type(self) -> str:
        return media.content_type(self.media)

    @property
    def file_name(self) -> str:
        """The forced name in the URL: ``<id>.jpeg`` for images, ``<id>.mp4`` for videos."""
        return f"{self.id}.mp4" if self.media == "mp4" else f"{self.id}.jpeg"

    def path(self, params: str) -> str:
        """The image-host path for a params segment such as ``width=450`` or ``original=true``."""
        return f"{IMAGE_HOST_PREFIX}/{self.uuid}/{params}/{self.file_name}"

    @property
    def listed_path(self) -> str:
        """The path the images endpoint lists: ``width=<original width>/<id>.jpeg`` as Civitai
        did, or ``original=true/<uuid>.jpeg`` (no id in the name) for items in the newer form;
        with the query string a signed CDN URL carries, when it has one."""
        if self.uuid_url:
            ext = "mp4" if self.media == "mp4" else "jpeg"
            listed = f"{IMAGE_HOST_PREFIX}/{self.uuid}/original=true/{self.uuid}.{ext}"
        else:
            listed = self.path(f"width={self.width}")
        return f"{listed}?{self.url_query}" if self.url_query else listed

    @property
    def version_path(self) -> str:
        """The path the models endpoints list (the name still gives the image id there)."""
        return self.path(f"width={self.width}")

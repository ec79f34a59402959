"""The one call the shells make: an image -> its resources, resolved and matched to local files.

``reproduce(item, ...)`` collects what the image names, completes it from Civitai (cached in the
archive of the output folder), finds each resource among the user's model files and returns a
:class:`ResourcePlan` that also knows the folders missing files go to and the infotext to paste
(with the user's own names).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

from ..civitai.fronts import Fronts
from ..metadata.infotext import to_infotext
from ..metadata.record import extract_image_metadata
from ..metadata.resource_refs import Resource
from ..records import ImageItem
from ..store.archive import archive_path
from ..store.resource_cache import ResourceCache
from .hash_cache import FileHasher, HashProgress
from .local_models import LocalInventory, local_inventory, match_local
from .resolve import ResourceResolver, item_resources

logger = logging.getLogger(__name__)


@dataclass
class ResourcePlan:
    image_id: Optional[int]
    resources: List[Resource]
    inventory: LocalInventory
    record: Dict[str, Any] = field(default_factory=dict)
    api_requests: int = 0
    files_hashed: int = 0
    front: str = ""  # the Civitai front that shows the image (its resources' pages link there)

    @property
    def folders(self) -> Dict[str, str]:
        return self.inventory.folders

    def missing(self, types: Optional[List[str]] = None) -> List[Resource]:
        wanted = set(types) if types else None
        return [
            r
            for r in self.resources
            if r.local_path is None and (wanted is None or r.type in wanted)
        ]

    def page_base(self, client: Any) -> str:
        """The base URL of the resources' Civitai pages on ``client``'s current address: the
        front that shows the image (a mature image's pages are on the red front)."""
        return Fronts.of(client).base_for([self.record.get("nsfw_level") or "None"])

    def infotext(self) -> str:
        """The image's infotext with every resource in it under the user's names."""
        record = dict(self.record)
        record["resources"] = [r.to_dict() for r in self.resources]
        return to_infotext(record) if record.get("generation") else ""


def open_cache(output_path: str) -> ResourceCache:
    """The resource cache in the output folder's archive file."""
    return ResourceCache(archive_path(output_path))


def reproduce(
    item: Union[ImageItem, Mapping[str, Any]],
    client: Any,
    cache: Optional[ResourceCache],
    models_path: Optional[str],
    hash_progress: Optional[HashProgress] = None,
    inventory: Optional[LocalInventory] = None,
    lookup_max_age: Optional[float] = None,
) -> ResourcePlan:
    """Resolve ``item``'s resources and match them to the user's files (see the module doc).

    The look-ups go to the Civitai front that shows the image (a mature image's resources are
    asked of the red front); ``lookup_max_age``: seconds a cached answer is reused."""
    record = extract_image_metadata(item)
    front = Fronts.of(client).base_for([record.get("nsfw_level") or "None"])
    resolver = ResourceResolver(client, cache, base=front, max_age=lookup_max_age)
    resources = resolver.resolve(item_resources(item))
    inventory = inventory if inventory is not None else local_inventory(models_path)
    hasher = FileHasher(cache, hash_progress)
    match_local(resources, inventory, hasher)
    logger.debug(
        "image %s: %d resources, %d API requests, %d files hashed",
        record.get("id"),
        len(resources),
        resolver.requests,
        hasher.hashed_files,
    )
    return ResourcePlan(
        image_id=record.get("id"),
        resources=resources,
        inventory=inventory,
        record=record,
        api_requests=resolver.requests,
        files_hashed=hasher.hashed_files,
        front=front,
    )

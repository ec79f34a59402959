"""An image's resources without Civitai: for the tab's Library, which asks nothing of the network.

:func:`reproduce_offline` takes a saved image's record (its json sidecar): the resources it names,
completed only from the look-ups already cached in the archive (``civitai_lookups``: a ``resources``
run or the Civitai gallery's panel asked them earlier), matched to the user's model files. The
plan's ``infotext()`` carries the user's names, as :func:`service.reproduce`'s does.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ..metadata.resource_refs import Resource, merge_all
from ..store.resource_cache import ResourceCache
from .hash_cache import FileHasher
from .local_models import LocalInventory, local_inventory, match_local
from .resolve import fill_from_version
from .service import ResourcePlan


def _cached(cache: Optional[ResourceCache], resource: Resource) -> Optional[Dict[str, Any]]:
    if cache is None:
        return None
    keys = [f"version:{resource.version_id}"] if resource.version_id is not None else []
    keys += [f"hash:{digest.upper()}" for digest in resource.all_hashes()]
    for key in keys:
        found = cache.find_lookup(key)  # asked of either front, when online
        if found is not None and found.status == 200 and isinstance(found.body, dict):
            return found.body
    return None


def reproduce_offline(
    record: Mapping[str, Any],
    cache: Optional[ResourceCache],
    models_path: Optional[str],
    inventory: Optional[LocalInventory] = None,
) -> ResourcePlan:
    """The record's resources, completed from cached look-ups, matched to local files."""
    listed = record.get("resources")
    resources: List[Resource] = [
        Resource.from_dict(entry)
        for entry in (listed if isinstance(listed, list) else [])
        if isinstance(entry, Mapping)
    ]
    for resource in resources:
        if resource.status != "resolved":
            body = _cached(cache, resource)
            if body is not None:
                fill_from_version(resource, body)
    resources = merge_all(resources)
    inventory = inventory if inventory is not None else local_inventory(models_path)
    match_local(resources, inventory, FileHasher(cache))
    return ResourcePlan(
        image_id=record.get("id"), resources=resources, inventory=inventory, record=dict(record)
    )

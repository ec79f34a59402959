"""Resolve an image's resources: what the image names, completed from Civitai (cached).

``GET /api/v1/model-versions/{id}`` for a known version id, else
``GET /api/v1/model-versions/by-hash/{hash}`` for each hash the image gives, on the Civitai front
``base`` (the one that shows the image). Every answer (a 404 too) goes into the archive's
:class:`~..store.resource_cache.ResourceCache` under that front, so a resource is looked up once
per library and front, not per image; an answer is reused for ``max_age`` seconds (the setting
``resources.lookup_max_age_hours``), then asked again.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Union

from ..errors import ApiError, NotFoundError
from ..metadata.resource_refs import (
    Resource,
    collect_resources,
    merge_all,
    merge_into,
    resource_type,
    same_resource,
)
from ..records import ImageItem
from ..store.resource_cache import ResourceCache
from ..util.documents import finite_number, typed_text

logger = logging.getLogger(__name__)

VERSION_PATH = "/api/v1/model-versions/{}"
BY_HASH_PATH = "/api/v1/model-versions/by-hash/{}"


class ResourceResolver:
    """Fills :class:`Resource` entries from Civitai through ``client`` and ``cache``."""

    def __init__(
        self,
        client: Any,
        cache: Optional[ResourceCache] = None,
        base: str = "",
        max_age: Optional[float] = None,
    ):
        self.client = client
        self.cache = cache
        self.base = base.rstrip("/")  # the front asked ("" = the client's base URL)
        self.max_age = max_age
        self.requests = 0  # API requests made (cache misses)

    def _key(self, key: str) -> str:
        """The cache key of ``key`` on this front: each front answers for itself."""
        return f"{self.base.lower()} {key}" if self.base else key

    # ------------------------------------------------------------------ look-ups

    def _lookup(self, key: str, path: str) -> Optional[Dict[str, Any]]:
        """The JSON for ``path`` (None for a 404), through the cache."""
        if self.cache is not None:
            cached = self.cache.get_lookup(self._key(key), self.max_age)
            if cached is not None and cached.status == 200 and version_problems(cached.body):
                # an entry cached before it was checked (or by an older version): asked again
                logger.info(
                    "resource look-up %s: the cached answer is malformed; asking again", key
                )
                cached = None
            if cached is not None:
                logger.debug("resource look-up %s: cached (%d)", key, cached.status)
                return cached.body if cached.status == 200 else None
        self.requests += 1
        try:
            body = self.client.get_json(self.base + path)
        except NotFoundError:
            if self.cache is not None:
                self.cache.put_lookup(self._key(key), 404, None)
            return None
        problems = version_problems(body)
        if problems:  # used for this run (its bad parts flagged), never cached
            logger.warning(
                "Civitai's answer for %s is malformed (%s); it is not cached", key, problems[0]
            )
        elif self.cache is not None:
            self.cache.put_lookup(self._key(key), 200, body)
            version_id = body.get("id")
            if key.startswith("hash:") and isinstance(version_id, int):
                self.cache.put_lookup(self._key(f"version:{version_id}"), 200, body)
        return body

    def version(self, version_id: int) -> Optional[Dict[str, Any]]:
        return self._lookup(f"version:{version_id}", VERSION_PATH.format(version_id))

    def by_hash(self, digest: str) -> Optional[Dict[str, Any]]:
        digest = digest.upper()
        return self._lookup(f"hash:{digest}", BY_HASH_PATH.format(digest))

    # ------------------------------------------------------------------ resolution

    def resolve(self, resources: List[Resource]) -> List[Resource]:
        """Complete each resource from Civitai; returns the list merged again (a tag-only LoRA
        joins its version once Civitai gave the file name)."""
        # Version ids first: they are exact and often cached; a hash-only mention of the same
        # resource then joins it without a by-hash request.
        for resource in sorted(resources, key=lambda r: r.version_id is None):
            known = next(
                (
                    r
                    for r in resources
                    if r is not resource and r.status == "resolved" and same_resource(r, resource)
                ),
                None,
            )
            if known is not None:  # another mention of a resource already looked up
                merge_into(resource, known)
                continue
            try:
                body = None
                if resource.version_id is not None:
                    body = self.version(resource.version_id)
                else:
                    for digest in resource.all_hashes():
                        body = self.by_hash(digest)
                        if body is not None:
                            break
            except ApiError as exc:
                resource.note = f"Civitai look-up failed: {exc}"
                logger.warning("Could not look up %s on Civitai: %s", resource.label, exc)
                continue
            if body is not None:
                fill_from_version(resource, body)
            elif resource.version_id is not None or resource.all_hashes():
                resource.status = "not_on_civitai"
                resource.note = "not on Civitai"
        merged = merge_all(resources)
        # A tag-only LoRA that joined nothing stays "unresolved"; say why.
        for resource in merged:
            if resource.status == "unresolved" and resource.note is None:
                resource.note = "the image gives no hash or version id for it"
        return merged


def file_problem(entry: Any) -> Optional[str]:
    """Why a ``files[]`` entry of a model version cannot be used, or None: a name that is text
    (a number or a list is refused), a finite size, text links, a mapping of text hashes."""
    if not isinstance(entry, Mapping):
        return "a file entry is not an object"
    if typed_text(entry.get("name")) is None:
        return f"a file name is {type(entry.get('name')).__name__}, not text"
    size = entry.get("sizeKB")
    if size is not None and finite_number(size) is None:
        return f"the size of {entry['name']!r} is not a finite number"
    url = entry.get("downloadUrl")
    if url is not None and typed_text(url) is None:
        return f"the download link of {entry['name']!r} is not text"
    hashes = entry.get("hashes")
    if hashes is not None and (
        not isinstance(hashes, Mapping) or not all(isinstance(v, str) for v in hashes.values())
    ):
        return f"the hashes of {entry['name']!r} are not text"
    return None


def version_problems(body: Any) -> List[str]:
    """What makes a ``/model-versions`` answer unusable as a whole or in part (empty: valid)."""
    if not isinstance(body, Mapping):
        return ["the answer is not an object"]
    problems = []
    for key in ("id", "modelId"):
        if body.get(key) is not None and (
            not isinstance(body[key], int) or isinstance(body[key], bool)
        ):
            problems.append(f"{key} is not a number")
    model = body.get("model")
    if model is not None and not isinstance(model, Mapping):
        problems.append("model is not an object")
    files = body.get("files")
    if files is not None and not isinstance(files, list):
        problems.append("files is not a list")
    for entry in files if isinstance(files, list) else []:
        problem = file_problem(entry)
        if problem:
            problems.append(problem)
    return problems


def _pick_file(resource: Resource, files: List[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    wanted = [h.upper() for h in resource.all_hashes()]
    for entry in files:
        hashes_value = entry.get("hashes")
        values = (
            [str(v).upper() for v in (hashes_value or {}).values()]
            if isinstance(hashes_value, Mapping)
            else []
        )
        if any(v.startswith(w) or w.startswith(v) for v in values for w in wanted if v and w):
            return entry
    for entry in files:
        if entry.get("primary"):
            return entry
    return files[0] if files else None


def fill_from_version(resource: Resource, body: Mapping[str, Any]) -> None:
    """Copy what a ``/model-versions`` answer says into ``resource`` (status ``resolved``)."""
    model_value = body.get("model")
    model: Mapping[str, Any] = model_value if isinstance(model_value, Mapping) else {}
    if isinstance(body.get("id"), int):
        resource.version_id = body["id"]
    if isinstance(body.get("modelId"), int):
        resource.model_id = body["modelId"]
    resource.model_name = typed_text(model.get("name")) or resource.model_name
    resource.version_name = typed_text(body.get("name")) or resource.version_name
    civitai_type = resource_type(model.get("type"))
    if civitai_type != "other":
        resource.type = civitai_type
    listed = body.get("files")
    entries = listed if isinstance(listed, list) else []
    files = [f for f in entries if file_problem(f) is None]
    flagged = [p for p in (file_problem(f) for f in entries) if p]
    if flagged:  # a malformed file entry is left out (never downloaded) and said
        logger.warning(
            "%s: Civitai lists a malformed file (%s); it is skipped", resource.label, flagged[0]
        )
    chosen = _pick_file(resource, files)
    if chosen is not None:
        hashes_value = chosen.get("hashes")
        hashes: Mapping[str, Any] = hashes_value if isinstance(hashes_value, Mapping) else {}
        resource.file_name = typed_text(chosen.get("name")) or resource.file_name
        sha = hashes.get("SHA256")
        resource.sha256 = str(sha).upper() if sha else resource.sha256
        autov2 = hashes.get("AutoV2") or (resource.sha256[:10] if resource.sha256 else None)
        resource.autov2 = str(autov2).upper() if autov2 else None
        size_kb = finite_number(chosen.get("sizeKB"))
        if size_kb is not None:
            resource.size = int(round(size_kb * 1024))
        resource.download_url = typed_text(chosen.get("downloadUrl")) or typed_text(
            body.get("downloadUrl")
        )
    else:
        resource.download_url = typed_text(body.get("downloadUrl")) or resource.download_url
    if body.get("availability") == "EarlyAccess" or body.get("earlyAccessEndsAt"):
        resource.note = "early access: downloading needs a logged-in API key"
    resource.status = "resolved"
    if flagged and chosen is None:
        resource.note = f"Civitai's file entry is malformed ({flagged[0]}); not downloaded"
        resource.download_url = None


def item_resources(item: Union[ImageItem, Mapping[str, Any]]) -> List[Resource]:
    """The resources one listed image names (no network)."""
    if isinstance(item, ImageItem):
        raw: Mapping[str, Any] = item.raw or {}
        meta = item.meta if item.meta is not None else raw.get("meta")
    else:
        raw = item
        meta = item.get("meta")
    return collect_resources(meta, raw.get("modelVersionIds"))

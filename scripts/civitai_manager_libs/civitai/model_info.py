"""The answers of the models and model-versions endpoints made into :class:`ModelInfo` and
:class:`VersionInfo` (their showcase images as :class:`ImageItem`)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional

from ..errors import InvalidResponseError
from .image_items import int_or_none, to_image_items
from ..records import ImageItem, ModelInfo, VersionInfo

#: Gives each image its page on the front that shows it (``CivitaiAPI._paged``).
Paged = Callable[[Iterable[ImageItem]], Iterator[ImageItem]]


def to_model_info(body: Mapping[str, Any], model_id: int, paged: Paged) -> ModelInfo:
    """A model with its versions and their showcase images (as ImageItem, without meta)."""
    name = str(body.get("name") or "")
    creator_value = body.get("creator")
    creator: Mapping[str, Any] = creator_value if isinstance(creator_value, Mapping) else {}
    tags = [
        tag.get("name") if isinstance(tag, Mapping) else str(tag)
        for tag in _as_list(body.get("tags"))
    ]
    versions = [
        to_version_info(version, model_id, name, paged)
        for version in _as_list(body.get("modelVersions"))
        if isinstance(version, Mapping) and int_or_none(version.get("id")) is not None
    ]
    return ModelInfo(
        id=int_or_none(body.get("id")) or model_id,
        name=name,
        type=body.get("type"),
        nsfw=bool(body.get("nsfw")),
        creator=creator.get("username"),
        tags=[tag for tag in tags if tag],
        versions=versions,
    )


def to_version_info(
    body: Mapping[str, Any], model_id: Optional[int], model_name: Optional[str], paged: Paged
) -> VersionInfo:
    """A model version with its showcase images (these carry ``meta``)."""
    version_id = int_or_none(body.get("id"))
    if version_id is None:
        raise InvalidResponseError("Civitai answered a model version without an id")
    name = str(body.get("name") or "")
    base_model = body.get("baseModel")
    context = {
        "model_id": model_id,
        "model_name": model_name,
        "version_id": version_id,
        "version_name": name,
        "base_model": base_model,
    }
    where = f"version {version_id}: skipping an unusable image"
    images = list(paged(to_image_items(_as_list(body.get("images")), context, where)))
    return VersionInfo(
        id=version_id,
        name=name,
        model_id=model_id,
        model_name=model_name,
        base_model=base_model,
        images=images,
    )


def _as_list(value: Any) -> List[Any]:
    """A list field of an answer as a list; any other shape (``true``, a number, an object) holds
    no entries."""
    return value if isinstance(value, list) else []

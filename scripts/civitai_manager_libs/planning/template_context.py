"""Fills the model fields a path template needs (model id and name, version id) into listed
images, from what the listing itself tells or from one cached API look-up per model/version."""

from __future__ import annotations

import dataclasses
import logging
import string
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..errors import NotFoundError
from ..records import ImageItem

logger = logging.getLogger(__name__)

MODEL_FIELDS = ("model_id", "model_name", "version_id")


def int_or_none(value: Any) -> Optional[int]:
    """An int from an int or a string of digits; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def template_fields(template: str) -> Tuple[str, ...]:
    """The fields a path template names (``image_id`` read as ``id``)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template.replace("\\", "/")):
        if name:
            names.append("id" if name == "image_id" else name)
    return tuple(names)


class TemplateContext:
    """Model look-ups for one downloader; ``api_of()`` gives the CivitaiAPI to ask."""

    def __init__(self, template: str, api_of: Callable[[], Any]):
        self.fields = template_fields(template)
        self._api_of = api_of
        self._cache: Dict[Tuple[str, int], Any] = {}

    def for_listing(self, kind: str, value: Any) -> Dict[str, Any]:
        """Names the template needs that the listing itself cannot give (one look-up each)."""
        context: Dict[str, Any] = {}
        needs = set(self.fields)
        if kind == "model":
            context["model_id"] = value
            if "model_name" in needs:
                context["model_name"] = self.model(value).name
        elif kind == "version":
            context["version_id"] = value
            if needs & {"model_id", "model_name"}:
                version = self.version(value)
                context["model_id"] = version.model_id
                context["model_name"] = version.model_name
                if "model_name" in needs and not version.model_name and version.model_id:
                    context["model_name"] = self.model(version.model_id).name
        return context

    def complete(self, item: ImageItem, context: Mapping[str, Any]) -> ImageItem:
        """Fill model fields the template needs from the listing context or cached look-ups."""
        changes = {k: v for k, v in context.items() if v is not None and getattr(item, k) is None}
        if changes:
            item = dataclasses.replace(item, **changes)
        needs = set(self.fields) & set(MODEL_FIELDS)
        if not needs:
            return item
        changes = {}
        version_id = item.version_id
        if version_id is None:
            ids = item.raw.get("modelVersionIds") if isinstance(item.raw, dict) else None
            if isinstance(ids, list) and ids:
                version_id = int_or_none(ids[0])
                changes["version_id"] = version_id
        model_id, model_name = item.model_id, item.model_name
        try:
            if model_id is None and needs & {"model_id", "model_name"} and version_id:
                version = self.version(version_id)
                model_id, model_name = version.model_id, model_name or version.model_name
            if "model_name" in needs and not model_name and model_id:
                model_name = self.model(model_id).name
        except NotFoundError as exc:
            logger.info("image %s: %s; its model fields stay 'unknown'", item.id, exc)
        changes.update({"model_id": model_id, "model_name": model_name})
        return dataclasses.replace(item, **changes)

    def model(self, model_id: int):
        key = ("model", int(model_id))
        if key not in self._cache:
            self._cache[key] = self._api_of().get_model(int(model_id))
        return self._cache[key]

    def version(self, version_id: int):
        key = ("version", int(version_id))
        if key not in self._cache:
            self._cache[key] = self._api_of().get_model_version(int(version_id))
        return self._cache[key]

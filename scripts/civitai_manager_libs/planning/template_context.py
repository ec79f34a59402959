"""Fills the model fields into listed images (model id and name, version id and name): what a
path template needs and what every sidecar carries, from what the listing itself tells or from
one API look-up per model/version, cached in memory and in the archive's ``names`` table."""

from __future__ import annotations

import dataclasses
import logging
import string
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..civitai.image_items import int_or_none
from ..errors import ApiError, NotFoundError
from ..records import ImageItem

logger = logging.getLogger(__name__)

NameRow = Tuple[str, int, str, Optional[int]]  # (kind, id, name, model id of a version)


def template_fields(template: str) -> Tuple[str, ...]:
    """The fields a path template names (``image_id`` read as ``id``)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template.replace("\\", "/")):
        if name:
            names.append("id" if name == "image_id" else name)
    return tuple(names)


class TemplateContext:
    """Model and version names for one downloader: what the path template needs, and the names
    every sidecar carries whatever the template (``model_name``, ``version_name``).

    ``api_of()`` gives the CivitaiAPI to ask; ``archive_of()`` (optional) the archive whose
    ``names`` table caches the answers, so a folder costs one look-up per model or version ever.
    """

    def __init__(
        self,
        template: str,
        api_of: Callable[[], Any],
        archive_of: Optional[Callable[[], Any]] = None,
    ):
        self.fields = template_fields(template)
        self._api_of = api_of
        self._archive_of = archive_of
        self._lock = threading.RLock()
        # (kind, id) -> (name, model_id), or None when Civitai does not know it
        self._names: Dict[Tuple[str, int], Optional[Tuple[str, Optional[int]]]] = {}
        self._model_versions: Dict[int, Tuple[int, ...]] = {}

    # -- what the listing gives ------------------------------------------------------------------

    def for_listing(self, kind: str, value: Any) -> Dict[str, Any]:
        """Model and version names of a model or version listing (one cached look-up each)."""
        context: Dict[str, Any] = {}
        needs = set(self.fields)
        if kind == "model":
            context["model_id"] = value
            context["model_name"] = self._model_name(value, "model_name" in needs)
        elif kind == "version":
            context["version_id"] = value
            known = self._version(value, bool(needs & {"model_id", "model_name", "version_name"}))
            if known is not None:
                context["version_name"], context["model_id"] = known
                if known[1] is not None:
                    context["model_name"] = self._model_name(known[1], "model_name" in needs)
        return {k: v for k, v in context.items() if v is not None}

    def complete(self, item: ImageItem, context: Mapping[str, Any]) -> ImageItem:
        """Fill the model and version ids and names from the listing context or cached look-ups."""
        changes = {k: v for k, v in context.items() if v is not None and getattr(item, k) is None}
        if changes:
            item = dataclasses.replace(item, **changes)
        needs = set(self.fields)
        changes = {}
        version_id = item.version_id
        if version_id is None:
            version_id = self._version_of_listing(item)
            if version_id is not None:
                changes["version_id"] = version_id
        model_id, model_name, version_name = item.model_id, item.model_name, item.version_name
        if version_id is not None and (version_name is None or model_id is None):
            known = self._version(
                version_id, bool(needs & {"model_id", "model_name", "version_name"})
            )
            if known is not None:
                name, owner = known
                if model_id is None or owner is None or owner == model_id:
                    version_name = version_name or name
                    model_id = model_id if model_id is not None else owner
        if model_id is not None and not model_name:
            model_name = self._model_name(model_id, "model_name" in needs)
        changes.update(
            {"model_id": model_id, "model_name": model_name or None, "version_name": version_name}
        )
        changes = {k: v for k, v in changes.items() if getattr(item, k) != v}
        return dataclasses.replace(item, **changes) if changes else item

    def _version_of_listing(self, item: ImageItem) -> Optional[int]:
        """The version a model listing's image belongs to (its ``modelVersionIds``)."""
        ids = item.raw.get("modelVersionIds") if isinstance(item.raw, dict) else None
        if not isinstance(ids, list) or not ids:
            return None
        listed = [i for i in (int_or_none(v) for v in ids) if i is not None]
        own = self._model_versions.get(item.model_id) if item.model_id is not None else None
        if own:
            mine = [i for i in listed if i in own]
            if mine:
                return mine[0]
        return listed[0] if listed else None

    # -- look-ups (memory, then the archive, then Civitai) ---------------------------------------

    def model(self, model_id: int):
        """The model from Civitai (its name and every version's name are cached)."""
        model = self._api_of().get_model(int(model_id))
        rows: List[NameRow] = [("model", int(model_id), model.name, None)]
        rows += [("version", v.id, v.name, int(model_id)) for v in model.versions if v.id]
        self._remember(rows)
        with self._lock:
            self._model_versions[int(model_id)] = tuple(v.id for v in model.versions if v.id)
        return model

    def version(self, version_id: int):
        """The model version from Civitai (its and its model's names are cached)."""
        version = self._api_of().get_model_version(int(version_id))
        rows: List[NameRow] = [("version", int(version_id), version.name, version.model_id)]
        if version.model_id and version.model_name:
            rows.append(("model", version.model_id, version.model_name, None))
        self._remember(rows)
        return version

    def _model_name(self, model_id: int, required: bool) -> Optional[str]:
        known = self._known("model", model_id)
        if known is _UNKNOWN:
            known = self._ask(lambda: self.model(model_id), "model", model_id, required)
        return known[0] if known else None

    def _version(self, version_id: int, required: bool) -> Optional[Tuple[str, Optional[int]]]:
        known = self._known("version", version_id)
        if known is _UNKNOWN:
            known = self._ask(lambda: self.version(version_id), "version", version_id, required)
        return known

    def _known(self, kind: str, ident: int) -> Any:
        key = (kind, int(ident))
        with self._lock:
            if key in self._names:
                return self._names[key]
        archive = self._archive()
        found = archive.known_name(kind, int(ident)) if archive is not None else None
        if found is None:
            return _UNKNOWN
        with self._lock:
            self._names[key] = found
        return found

    def _ask(self, look_up: Callable[[], Any], kind: str, ident: int, required: bool) -> Any:
        """Run ``look_up``; a missing model/version, or any API problem when the template does
        not need the name, leaves the name empty (logged once) instead of failing the listing."""
        try:
            look_up()
        except NotFoundError as exc:
            logger.info("%s; its name stays empty in paths and sidecars", exc)
        except ApiError as exc:
            if required:
                raise
            logger.warning("the name of %s %s could not be looked up: %s", kind, ident, exc)
        key = (kind, int(ident))
        with self._lock:
            return self._names.setdefault(key, None)

    def _remember(self, rows: List[NameRow]) -> None:
        with self._lock:
            for kind, ident, name, model_id in rows:
                if name:
                    self._names[(kind, int(ident))] = (name, model_id)
        archive = self._archive()
        if archive is not None:
            archive.remember_names(rows)

    def _archive(self) -> Any:
        return self._archive_of() if self._archive_of is not None else None


_UNKNOWN = object()

"""Routes of the fake API host: images listing, models, model versions, test redirects.

Model and version look-ups follow Civitai: images embedded in ``/api/v1/models/{id}`` carry
no ``id`` and no ``meta`` (the id is the URL's file name) and, like the real service, an integer
``nsfwLevel`` (browsing level 1/2/4/8/16); ``/api/v1/model-versions/{id}`` lists up to 10 images
with ``meta``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Dict, List, Mapping, Optional

from .dataset import Dataset, FakeImage, FakeModel, FakeVersion, iso_ms
from .listing import ListingError, list_images
from .models_api import BY_HASH_RE, ModelRoutes
from .response import Response, error_response, json_response
from .trpc import TrpcRoutes

_MODEL_RE = re.compile(r"^/api/v1/models/([^/]+)/?$")
_VERSION_RE = re.compile(r"^/api/v1/model-versions/([^/]+)/?$")
REDIRECT_PREFIX = "/api/download/redirect/"
VERSION_IMAGE_LIMIT = 10
#: what civitai.com serves: PG | PG-13 (Civitai's sfwBrowsingLevelsFlag)
SFW_CEILING = 1 | 2


class ApiRoutes:
    """Answers API-host requests from a dataset; ``redirects`` maps tokens to 302 targets."""

    def __init__(self, dataset: Dataset, base_url: str, image_base_url: str):
        self.dataset = dataset
        self.base_url = base_url
        self.image_base_url = image_base_url
        self.redirects: Dict[str, str] = {}
        self.model_files = ModelRoutes(base_url, image_base_url)
        self.trpc = TrpcRoutes(dataset)  # the web API (/api/trpc/...)
        self._by_sha: Optional[Dict[str, FakeVersion]] = None
        # how the images endpoint treats ``ids=``: "served" (late 2026), "ignored" (older
        # servers: zod drops the unknown key and the unfiltered feed comes back) or "refused" (400)
        self.ids_param = "served"

    def handle(
        self,
        path: str,
        params: Dict[str, List[str]],
        headers: Optional[Mapping[str, str]] = None,
        sfw_only: bool = False,
    ) -> Response:
        """One API answer; ``sfw_only``: as civitai.com (Civitai's green domain) answers, every
        Mature/X/XXX item left out (listings, an image by id, models' and versions' images)."""
        match = BY_HASH_RE.match(path)
        listed = self._listed_file(match.group(1).upper()) if match else None
        if listed is not None:  # a listed version's file, as Civitai finds any published file
            return json_response(200, self.version_json(listed))
        files = self.model_files.handle(path, headers or {}, self._version_json_by_id)
        if files is not None:
            return files
        web = self.trpc.handle(path, params, headers or {})
        if web is not None:
            return web
        ceiling = SFW_CEILING if sfw_only else 0
        if path.rstrip("/") == "/api/v1/images":
            if "ids" in params and self.ids_param == "refused":
                return error_response(400, "Unrecognized key(s) in object: 'ids'")
            if self.ids_param == "ignored":
                params = {k: v for k, v in params.items() if k != "ids"}
            if ceiling:
                params = dict(params, _ceiling=[str(ceiling)])
            try:
                body = list_images(self.dataset, params, self.base_url, self.image_base_url)
            except ListingError as exc:
                return error_response(exc.status, exc.message)
            return json_response(200, body)
        match = _MODEL_RE.match(path)
        if match:
            model_id = _parse_id(match.group(1))
            if model_id is None:
                return error_response(400, f"Invalid model id: \"{match.group(1)}\"")
            model = self.dataset.model(model_id)
            if model is None:
                return error_response(404, f"No model with id {model_id}")
            return json_response(200, self.model_json(model, ceiling))
        match = _VERSION_RE.match(path)
        if match:
            version_id = _parse_id(match.group(1))
            if version_id is None:
                return error_response(400, f"Invalid model version id: \"{match.group(1)}\"")
            version = self.dataset.version(version_id)
            if version is None:
                return error_response(404, "Model not found")
            return json_response(200, self.version_json(version, ceiling))
        if path.startswith(REDIRECT_PREFIX):
            target = self.redirects.get(path[len(REDIRECT_PREFIX) :])
            if target is not None:
                return Response(302, {"Location": target, "Content-Length": "0"}, None)
        return error_response(404, f"Not found: {path}")

    # ------------------------------------------------------------------ JSON shapes
    def model_json(self, model: FakeModel, ceiling: int = 0) -> Dict[str, Any]:
        creator = self.dataset.creator(model.creator)
        return {
            "id": model.id,
            "name": model.name,
            "description": f"<p>{model.name} — a model of the fake Civitai.</p>",
            "type": model.type,
            "poi": False,
            "nsfw": model.nsfw,
            "allowNoCredit": True,
            "allowCommercialUse": ["Image", "RentCivit"],
            "stats": {"downloadCount": model.id % 9973, "favoriteCount": 0, "commentCount": 3},
            "creator": {
                "username": model.creator,
                "image": creator.image if creator else None,
            },
            "tags": list(model.tags),
            "modelVersions": [
                self._version_summary(model, v, i, ceiling) for i, v in enumerate(model.versions)
            ],
        }

    def _version_summary(
        self, model: FakeModel, version: FakeVersion, index: int, ceiling: int = 0
    ) -> Dict[str, Any]:
        images = [self._version_image(i, with_meta=False) for i in self._showcase(version, ceiling)]
        return {
            "id": version.id,
            "index": index,
            "name": version.name,
            "baseModel": version.base_model,
            "createdAt": iso_ms(version.created_ms),
            "trainedWords": list(version.trained_words),
            "stats": {"downloadCount": version.id % 7919, "ratingCount": 0, "rating": 0},
            "files": [self._file_json(model, version)],
            "images": images,
            "downloadUrl": f"{self.base_url}/api/download/models/{version.id}",
        }

    def version_json(self, version: FakeVersion, ceiling: int = 0) -> Dict[str, Any]:
        model = self.dataset.model(version.model_id)
        assert model is not None, "dataset integrity: a version without its model"
        return {
            "id": version.id,
            "modelId": model.id,
            "name": version.name,
            "createdAt": iso_ms(version.created_ms),
            "baseModel": version.base_model,
            "trainedWords": list(version.trained_words),
            "model": {"name": model.name, "type": model.type, "nsfw": model.nsfw, "poi": False},
            "files": [self._file_json(model, version)],
            "images": [
                self._version_image(i, with_meta=True) for i in self._showcase(version, ceiling)
            ],
            "downloadUrl": f"{self.base_url}/api/download/models/{version.id}",
        }

    def _version_json_by_id(self, version_id: int) -> Dict[str, Any]:
        version = self.dataset.version(version_id)
        assert version is not None, "a model file without its version"
        return self.version_json(version)

    def _showcase(self, version: FakeVersion, ceiling: int = 0) -> List[FakeImage]:
        images = sorted(self.dataset.images_of_version(version.id), key=lambda i: i.created_ms)
        if ceiling:  # unrated (0) images count as PG
            images = [i for i in images if (i.browsing_level or 1) & ceiling]
        return images[:VERSION_IMAGE_LIMIT]

    def _version_image(self, image: FakeImage, with_meta: bool) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "url": self.image_base_url + image.version_path,
            "nsfwLevel": image.browsing_level or 1,
            "width": image.width,
            "height": image.height,
            "hash": image.blurhash,
            "type": image.type or "image",
            "hasMeta": image.meta is not None and not image.meta_hidden,
            "onSite": False,
        }
        if with_meta:
            out["meta"] = None if image.meta_hidden or image.meta is None else dict(image.meta)
        return out

    def _listed_file(self, sha256: str) -> Optional[FakeVersion]:
        """The version whose generated file has this SHA-256 (the resource files answer for
        themselves in ``models_api``)."""
        if self._by_sha is None:
            self._by_sha = {_file_sha(v.id): v for m in self.dataset.models for v in m.versions}
        return self._by_sha.get(sha256)

    def _file_json(self, model: FakeModel, version: FakeVersion) -> Dict[str, Any]:
        real = self.model_files.file_json(version.id)
        if real is not None:
            return real
        sha = _file_sha(version.id)
        return {
            "id": version.id + 1_000_000,
            "sizeKB": version.file_size_kb,
            "name": f"model_{model.id}_{version.id}.safetensors",
            "type": "Model",
            "metadata": {"fp": "fp16", "size": "pruned", "format": "SafeTensor"},
            "hashes": {"AutoV2": sha[:10], "SHA256": sha},
            "primary": True,
            "downloadUrl": f"{self.base_url}/api/download/models/{version.id}",
        }


def _file_sha(version_id: int) -> str:
    return hashlib.sha256(f"file:{version_id}".encode()).hexdigest().upper()


def _parse_id(raw: str) -> Optional[int]:
    return int(raw) if raw.isdigit() and len(raw) < 12 else None

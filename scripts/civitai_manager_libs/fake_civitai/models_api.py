"""Model files on the fake Civitai: versions with real files, by-hash look-ups, downloads.

A few models (a checkpoint, three LoRAs, an embedding, a VAE) carry small synthetic
``.safetensors`` files with real hashes, so a client can resolve an image's resources, match them
to local files by SHA-256 and download what is missing:

* ``GET /api/v1/model-versions/by-hash/{hash}`` accepts AutoV1, AutoV2, AutoV3, SHA256 and CRC32
  (any case). BLAKE3 is not offered: the standard library has no BLAKE3 (``hashlib.blake2*`` is
  a different hash) and the project has no dependency for it.
* ``GET /api/download/models/{versionId}`` answers 302 to the storage host (the fake's image host,
  ``/storage/models/...``), which refuses any ``Authorization`` header like S3/R2 do; an
  early-access version answers 401 unless a key is sent.
* :func:`with_resource_fixtures` adds those models plus the demo images whose ``meta`` uses every
  source of resources (``civitaiResources``, ``resources``, ``hashes``, ``Lora hashes``,
  ``TI hashes``, ``<lora:…>`` tags, ``modelVersionIds``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

from .entities import FakeImage, FakeModel, FakeVersion
from .response import Response, error_response, json_response

BY_HASH_RE = re.compile(r"^/api/v1/model-versions/by-hash/([^/]+)/?$")
DOWNLOAD_RE = re.compile(r"^/api/download/models/(\d+)/?$")
STORAGE_PREFIX = "/storage/models/"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class ModelFileSpec:
    model_id: int
    model_name: str
    model_type: str  # Civitai's model types: Checkpoint, LORA, TextualInversion, VAE
    version_id: int
    version_name: str
    file_name: str
    payload_size: int
    early_access: bool = False
    base_model: str = "SD 1.5"


CHECKPOINT = ModelFileSpec(
    31001,
    "Reproduce Checkpoint",
    "Checkpoint",
    31101,
    "v1.0",
    "reproduceCkpt_v10.safetensors",
    96_000,
)
LORA_NEON = ModelFileSpec(
    31002, "Neon Lines", "LORA", 31102, "v1", "neonLines_v1.safetensors", 40_000
)
LORA_SOFT = ModelFileSpec(
    31003, "Soft Light", "LORA", 31103, "v2", "softLight_v2.safetensors", 48_000
)
EMBEDDING = ModelFileSpec(
    31004, "BadDream", "TextualInversion", 31104, "v1", "badDream.safetensors", 6_000
)
VAE = ModelFileSpec(31005, "Clear VAE", "VAE", 31105, "v1", "clearVAE.safetensors", 24_000)
EARLY_ACCESS = ModelFileSpec(
    31006, "Members Only LoRA", "LORA", 31106, "v1", "membersOnly_v1.safetensors", 8_000, True
)
RESOURCE_FILES = (CHECKPOINT, LORA_NEON, LORA_SOFT, EMBEDDING, VAE, EARLY_ACCESS)
SPECS_BY_VERSION: Dict[int, ModelFileSpec] = {s.version_id: s for s in RESOURCE_FILES}

# The demo images (all under the checkpoint's model).
DEMO_IMAGE_ID = 31_000_001  # checkpoint + two LoRAs + an embedding
SAME_LORA_IMAGE_ID = 31_000_002  # the same LoRA again (look-ups come from the cache) + a VAE
UNKNOWN_IMAGE_ID = 31_000_003  # a tag-only LoRA whose hash Civitai does not know
EARLY_ACCESS_IMAGE_ID = 31_000_004  # an early-access LoRA
UNKNOWN_LORA_HASH = "0123456789"


@functools.lru_cache(maxsize=None)
def model_file_bytes(version_id: int) -> bytes:
    """The ``.safetensors`` bytes of a resource version (a real header, deterministic data)."""
    spec = SPECS_BY_VERSION[version_id]
    count = spec.payload_size // 4
    header = {
        "__metadata__": {"ss_output_name": spec.file_name.rsplit(".", 1)[0], "fake": "civitai"},
        "weight": {"dtype": "F32", "shape": [count], "data_offsets": [0, count * 4]},
    }
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    seed = hashlib.sha256(f"model-file:{version_id}".encode()).digest()
    blocks: List[bytes] = []
    block = seed
    while len(blocks) * 32 < count * 4:
        block = hashlib.sha256(block).digest()
        blocks.append(block)
    payload = b"".join(blocks)[: count * 4]
    return struct.pack("<Q", len(raw)) + raw + payload


def file_hashes(data: bytes) -> Dict[str, str]:
    """The hashes Civitai lists for a file (upper-case hex, as the real API sends them)."""
    sha = hashlib.sha256(data).hexdigest().upper()
    autov1 = hashlib.sha256(data[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8].upper()
    header_len = struct.unpack("<Q", data[:8])[0]
    autov3 = hashlib.sha256(data[8 + header_len :]).hexdigest().upper()
    return {
        "AutoV1": autov1,
        "AutoV2": sha[:10],
        "SHA256": sha,
        "CRC32": f"{zlib.crc32(data) & 0xFFFFFFFF:08X}",
        "AutoV3": autov3,
    }


@functools.lru_cache(maxsize=None)
def hashes_of(version_id: int) -> Dict[str, str]:
    return file_hashes(model_file_bytes(version_id))


def autov2(spec: ModelFileSpec) -> str:
    return hashes_of(spec.version_id)["AutoV2"]


def storage_path(spec: ModelFileSpec) -> str:
    return f"{STORAGE_PREFIX}{spec.version_id}/{spec.file_name}"


class ModelRoutes:
    """The API host's model-file routes (by-hash, download redirect) and file JSON."""

    def __init__(self, base_url: str, image_base_url: str):
        self.base_url = base_url
        self.image_base_url = image_base_url

    def file_json(self, version_id: int) -> Optional[Dict[str, Any]]:
        spec = SPECS_BY_VERSION.get(version_id)
        if spec is None:
            return None
        data = model_file_bytes(version_id)
        return {
            "id": version_id + 2_000_000,
            "sizeKB": len(data) / 1024,
            "name": spec.file_name,
            "type": "Model",
            "metadata": {"fp": "fp16", "size": "pruned", "format": "SafeTensor"},
            "hashes": dict(hashes_of(version_id)),
            "primary": True,
            "downloadUrl": f"{self.base_url}/api/download/models/{version_id}",
        }

    def handle(self, path: str, headers: Mapping[str, str], version_json) -> Optional[Response]:
        """A response for the model-file routes, or None when ``path`` is not one of them."""
        match = BY_HASH_RE.match(path)
        if match:
            wanted = match.group(1).upper()
            for spec in RESOURCE_FILES:
                if wanted in hashes_of(spec.version_id).values():
                    return json_response(200, version_json(spec.version_id))
            return error_response(404, "Model not found")
        match = DOWNLOAD_RE.match(path)
        if match:
            found = SPECS_BY_VERSION.get(int(match.group(1)))
            if found is None:
                return error_response(404, "Model file not found")
            spec = found
            if spec.early_access and not headers.get("Authorization"):
                return json_response(
                    401,
                    {
                        "error": "Unauthorized",
                        "message": "This asset is in Early Access: log in to download it.",
                    },
                )
            location = f"{self.image_base_url}{storage_path(spec)}?X-Amz-Signature=fake"
            return Response(302, {"Location": location, "Content-Length": "0"}, None)
        return None


def with_resource_fixtures(built: Dict[str, Any]) -> Dict[str, Any]:
    """``built`` (``build_default``'s result) plus the resource models and the demo images.

    They are appended and old (a year before the dataset's "now"), so every other image, cursor
    and ``period`` filter stays as it was.
    """
    now = int(built["now_ms"])
    models: List[FakeModel] = list(built["models"])
    for spec in RESOURCE_FILES:
        model = FakeModel(spec.model_id, spec.model_name, spec.model_type, False, "alice_art", ())
        model.versions.append(
            FakeVersion(
                spec.version_id,
                spec.model_id,
                spec.version_name,
                spec.base_model,
                now - 400 * DAY_MS,
                file_size_kb=len(model_file_bytes(spec.version_id)) / 1024,
            )
        )
        models.append(model)
    images: List[FakeImage] = list(built["images"])
    images.extend(_demo_images(now - 365 * DAY_MS))
    return {**built, "models": models, "images": images}


def demo_meta() -> Dict[int, Dict[str, Any]]:
    """The ``meta`` of each demo image, by image id."""
    ckpt, neon, soft, emb, vae = (
        autov2(s) for s in (CHECKPOINT, LORA_NEON, LORA_SOFT, EMBEDDING, VAE)
    )
    base = {
        "negativePrompt": "badDream, lowres",
        "seed": 1234,
        "steps": 28,
        "sampler": "DPM++ 2M",
        "cfgScale": 6.5,
        "Size": "512x512",
        "Model": "reproduceCkpt_v10",
        "Model hash": ckpt,
    }
    return {
        DEMO_IMAGE_ID: {
            **base,
            "prompt": "a neon city at night, <lora:neonLines_v1:0.8>, soft glow",
            "civitaiResources": [
                {"type": "checkpoint", "modelVersionId": CHECKPOINT.version_id},
                {"type": "lora", "modelVersionId": LORA_NEON.version_id, "weight": 0.8},
            ],
            "resources": [{"type": "lora", "name": "softLight_v2", "hash": soft, "weight": 0.6}],
            "hashes": {"model": ckpt, "embed:badDream": emb, "lora:softLight_v2": soft},
        },
        SAME_LORA_IMAGE_ID: {
            **base,
            "prompt": "a neon harbour, rain",
            "Lora hashes": f"neonLines_v1: {neon}",
            "TI hashes": {"badDream": emb},
            "hashes": {"vae": vae},
            "VAE": "clearVAE.safetensors",
        },
        UNKNOWN_IMAGE_ID: {
            **base,
            "prompt": "a quiet lake, <lora:mystery_lora:0.5>",
            "hashes": {"lora:mystery_lora": UNKNOWN_LORA_HASH},
        },
        EARLY_ACCESS_IMAGE_ID: {
            **base,
            "prompt": "a velvet room",
            "civitaiResources": [
                {"type": "checkpoint", "modelVersionId": CHECKPOINT.version_id},
                {"type": "lora", "modelVersionId": EARLY_ACCESS.version_id, "weight": 1},
            ],
        },
    }


def _demo_images(created_ms: int) -> List[FakeImage]:
    version_ids = {
        DEMO_IMAGE_ID: (CHECKPOINT.version_id,),
        SAME_LORA_IMAGE_ID: (CHECKPOINT.version_id, LORA_NEON.version_id),
        UNKNOWN_IMAGE_ID: (CHECKPOINT.version_id, LORA_SOFT.version_id),
        EARLY_ACCESS_IMAGE_ID: (CHECKPOINT.version_id,),
    }
    images = []
    for index, (image_id, meta) in enumerate(demo_meta().items()):
        uuid = hashlib.sha256(f"demo-image:{image_id}".encode()).hexdigest()
        images.append(
            FakeImage(
                id=image_id,
                uuid=f"{uuid[:8]}-{uuid[8:12]}-4{uuid[13:16]}-a{uuid[17:20]}-{uuid[20:32]}",
                media="png",
                width=512,
                height=512,
                nsfw_level="None",
                browsing_level=1,
                type="image",
                created_ms=created_ms + index * 60_000,
                post_id=3_900_000,
                username="alice_art",
                user_id=101,
                model_id=CHECKPOINT.model_id,
                model_version_ids=version_ids[image_id],
                base_model="SD 1.5",
                meta=meta,
                meta_shape="a1111",
                stats={
                    "cryCount": 0,
                    "laughCount": 0,
                    "likeCount": 3,
                    "dislikeCount": 0,
                    "heartCount": 1,
                    "commentCount": 0,
                },
                collected=0,
            )
        )
    return images

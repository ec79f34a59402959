"""Generation data for one downloaded image: a normalized record, and the files that carry it.

``extract_image_metadata`` turns one Civitai API image item (images endpoint, model-version image,
or a model's version image that has neither id nor meta) into a JSON-safe record with a
``generation`` part. ``save_metadata`` writes that record as ``json`` / ``txt`` sidecars and/or
embeds its A1111 infotext in the image (``exif``), falling back to a sidecar with a logged reason.
The input is untrusted: odd shapes give ``None`` fields, never an exception.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union
from urllib.parse import urlsplit

from .embed import EmbedSkipped, embed_infotext, read_infotext
from ..errors import MetadataError
from .infotext import PADDING, MIN_PARAMETERS, parameter_pairs, parse_infotext, to_infotext
from ..records import ImageItem
from ..store import confined
from .resource_refs import collect_resources
from ..errors import InvalidQueryError
from ..util.logging_setup import registered_secrets
from ..util.media_key import original_url
from .resources_text import resource_lines
from .generation import (
    as_int,
    str_or_none,
    extract_generation,
    hash_pairs,
    json_safe,
    to_number,
)

log = logging.getLogger(__name__)

FORMATS = ("json", "txt", "exif")
RECORD_KEYS = (
    "id",
    "url",
    "width",
    "height",
    "type",
    "nsfw_level",
    "creator",
    "model_id",
    "model_name",
    "version_id",
    "version_name",
    "post_id",
    "created_at",
    "base_model",
    "stats",
    "generation",
    "resources",
    "tags",
    "page_url",
)
#: Civitai browsing-level bits -> the names the API's ``nsfwLevel`` uses.
_NSFW_BY_LEVEL = {0: "None", 1: "None", 2: "Soft", 4: "Mature", 8: "X", 16: "X", 32: "X"}
_TOKEN_RE = re.compile(r"([?&])token=[^&#\s\"']*(&?)", re.IGNORECASE)


# ------------------------------------------------------------------------------------ small helpers


def strip_token(url: Any) -> Any:
    """``url`` without any ``token=`` query parameter (the API key must never be written out).

    Only that parameter is cut; the rest of the URL keeps its exact spelling.
    """
    if not isinstance(url, str) or "token=" not in url.lower():
        return url
    return _TOKEN_RE.sub(lambda m: m.group(1) if m.group(2) else "", url)


def _nsfw_name(value: Any) -> Optional[str]:
    if isinstance(value, str) and value:
        number = as_int(value)
        return _NSFW_BY_LEVEL.get(number, value) if number is not None else value
    if isinstance(value, bool):
        return "X" if value else "None"
    if isinstance(value, int):
        return _NSFW_BY_LEVEL.get(value, "X" if value > 8 else None)
    return None


def _original(url: Optional[str]) -> Optional[str]:
    """The original upload's URL (``original=true``), as ``list`` and the download use: one
    meaning of ``url`` everywhere, never the listed ``width=`` preview."""
    if not url:
        return url
    try:
        return original_url(url)
    except InvalidQueryError:  # not an image link (no file name): kept as given
        return url


def id_from_url(url: Any) -> Optional[int]:
    """The image id in a Civitai image URL whose file name is ``<id>.<ext>``."""
    if not isinstance(url, str):
        return None
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


# ------------------------------------------------------------------------------------- generation


def generation_from_infotext(text: Optional[str]) -> Optional[Dict[str, Any]]:
    """A ``generation`` dict from A1111 infotext (e.g. what an original PNG carries itself)."""
    if not text or not text.strip():
        return None
    parsed = parse_infotext(text)
    meta: Dict[str, Any] = dict(parsed["params"])
    for _field, label in PADDING:  # our own filler pairs, no generation data
        meta.pop(label, None)
    hashes: Dict[str, str] = {}
    for label, prefix in (("Lora hashes", "lora:"), ("TI hashes", "embed:")):
        if isinstance(meta.get(label), str):
            hashes.update(hash_pairs(meta.pop(label), prefix))
    if meta.get("Model hash"):
        hashes.setdefault("model", meta["Model hash"])
    meta["hashes"] = hashes
    meta["prompt"] = parsed["prompt"]
    meta["negativePrompt"] = parsed["negative_prompt"] or None
    return extract_generation(meta)


def with_file_generation(record: Mapping[str, Any], image_path: str) -> Dict[str, Any]:
    """``record`` with ``generation`` read from the image's own infotext when Civitai gave none.

    Uploads often keep WebUI's ``parameters`` even when the author hid ``meta`` on Civitai.
    Returns a new dict; the record is unchanged when it has generation data or the file has none.
    """
    result = dict(record)
    if result.get("generation") is None:
        generation = generation_from_infotext(read_infotext(image_path))
        if generation is not None:
            result["generation"] = generation
            log.debug("image %s: generation data read from the file itself", record.get("id"))
    return result


# ----------------------------------------------------------------------------------------- record


def extract_image_metadata(
    image_data: Union[Mapping[str, Any], ImageItem], context: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """One normalized, JSON-safe record for an API image item or a ``records.ImageItem``.

    ``context`` may give ``model_id``, ``model_name``, ``version_id``, ``version_name`` (and
    ``base_model``): the listing they come from wins over what the item says. Keys: see
    :data:`RECORD_KEYS`. Never raises on odd values; a non-mapping input is a TypeError.
    """
    context = dict(context or {})
    if isinstance(image_data, ImageItem):
        raw = dict(image_data.raw or {})
        # a shallow view: the record below copies what it keeps (asdict's deep copy of the raw
        # item was most of a record's cost)
        fields = {
            f.name: getattr(image_data, f.name)
            for f in dataclasses.fields(image_data)
            if f.name != "raw"
        }
        meta = image_data.meta if image_data.meta is not None else raw.get("meta")
        source = {**raw, **{k: v for k, v in fields.items() if v not in (None, {}, "")}}
    elif isinstance(image_data, Mapping):
        raw = dict(image_data)
        source = raw
        meta = raw.get("meta")
    else:
        raise TypeError(
            f"image_data must be a mapping or ImageItem, not {type(image_data).__name__}"
        )

    def pick(*keys: str) -> Any:
        for key in keys:
            if context.get(key) is not None:
                return context[key]
        for key in keys:
            if source.get(key) is not None:
                return source[key]
        return None

    url = source.get("url") if isinstance(source.get("url"), str) else None
    image_id = as_int(source.get("id"))
    if image_id is None:
        image_id = id_from_url(url)
    user_value = raw.get("user")
    user: Mapping[str, Any] = user_value if isinstance(user_value, Mapping) else {}
    version_id = as_int(pick("version_id", "modelVersionId"))
    if version_id is None:
        version_ids = raw.get("modelVersionIds")
        if isinstance(version_ids, list) and len(version_ids) == 1:
            version_id = as_int(version_ids[0])
    stats = source.get("stats")
    media_type = source.get("type")
    record = {
        "id": image_id,
        "url": _original(strip_token(url)),
        "width": as_int(source.get("width")),
        "height": as_int(source.get("height")),
        "type": media_type if isinstance(media_type, str) and media_type else "image",
        "nsfw_level": _nsfw_name(
            source.get("nsfw_level", source.get("nsfwLevel", source.get("nsfw")))
        ),
        "creator": str_or_none(
            source.get("creator") or source.get("username") or user.get("username")
        ),
        "model_id": as_int(pick("model_id", "modelId")),
        "model_name": str_or_none(pick("model_name", "modelName")),
        "version_id": version_id,
        "version_name": str_or_none(pick("version_name", "modelVersionName")),
        "post_id": as_int(source.get("post_id", source.get("postId"))),
        "created_at": str_or_none(source.get("created_at") or source.get("createdAt")),
        "base_model": str_or_none(pick("base_model", "baseModel")),
        "stats": {
            str(k): to_number(v) for k, v in (stats.items() if isinstance(stats, Mapping) else ())
        },
        "generation": extract_generation(meta),
        "resources": [r.to_dict() for r in collect_resources(meta, raw.get("modelVersionIds"))],
        "tags": tag_list(source.get("tags")),
        # the Civitai page on the front that shows the image (civitai.red for a mature one)
        "page_url": strip_token(str_or_none(source.get("page_url"))),
    }
    return json_safe(record)


def tag_list(value: Any) -> Optional[List[Dict[str, Any]]]:
    """Civitai's ``tags`` (``[{id, name}]``, asked with ``withTags=true``) as ``[{id, name}]``;
    None when the item carries none (not asked), ``[]`` when it has no tags. Names are text;
    entries without one are dropped."""
    if not isinstance(value, list):
        return None
    tags: List[Dict[str, Any]] = []
    for entry in value:
        if isinstance(entry, Mapping):
            name, ident = entry.get("name"), as_int(entry.get("id"))
        else:
            name, ident = entry, None
        if isinstance(name, str) and name.strip():
            tags.append({"id": ident, "name": name.strip()})
    return tags


# ------------------------------------------------------------------------------------------ files


def sidecar_path(image_path: str, fmt: str) -> str:
    """``<dir>/<image stem>.<fmt>`` beside the image."""
    return os.path.splitext(image_path)[0] + "." + fmt


def scrub_secrets(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with URL ``token=`` parameters removed and every secret string redacted."""
    secrets = [s for s in secrets if s]
    if isinstance(value, str):
        value = strip_token(value) if "token=" in value.lower() else value
        for secret in secrets:
            value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, Mapping):
        return {k: scrub_secrets(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_secrets(v, secrets) for v in value]
    return value


def _summary_lines(record: Mapping[str, Any], short_parameters: bool = True) -> List[str]:
    def fmt(label: str, value: Any) -> Optional[str]:
        return f"{label}: {value}" if value not in (None, "", [], {}) else None

    gen = record.get("generation") or {}
    model = record.get("model_name")
    if record.get("model_id") is not None:
        model = f"{model or ''} (id {record['model_id']})".strip()
    version = record.get("version_name")
    if record.get("version_id") is not None:
        version = f"{version or ''} (id {record['version_id']})".strip()
    size = None
    if record.get("width") and record.get("height"):
        size = f"{record['width']}x{record['height']}"
    loras = ", ".join(
        lora["name"] + (f" ({lora['weight']})" if "weight" in lora else "")
        for lora in gen.get("loras") or []
        if isinstance(lora, Mapping) and lora.get("name")
    )
    lines = [
        fmt("Civitai image", record.get("id")),
        fmt("URL", record.get("url")),
        fmt("Civitai page", record.get("page_url")),
        fmt("Type", record.get("type")),
        fmt("Dimensions", size),
        fmt("Creator", record.get("creator")),
        fmt("Model", model),
        fmt("Version", version),
        fmt("Base model", record.get("base_model")),
        fmt("NSFW level", record.get("nsfw_level")),
        fmt("Post", record.get("post_id")),
        fmt("Created", record.get("created_at")),
        fmt("LoRAs", loras),
    ]
    pairs = parameter_pairs(gen) if gen and short_parameters else []
    if 0 < len(pairs) < MIN_PARAMETERS:  # too few for WebUI's parameters line (see infotext)
        lines.append(fmt("Parameters", ", ".join(f"{k}: {v}" for k, v in pairs)))
    lines += resource_lines(record.get("resources") or [])
    return [line for line in lines if line]


def format_txt(record: Mapping[str, Any]) -> str:
    """The ``txt`` sidecar: the infotext first (pastes into WebUI), then the key facts."""
    infotext = to_infotext(record)
    head = infotext if infotext else "(no generation data: the author hid it or Civitai has none)"
    # The facts repeat a short parameter list only when the infotext could not carry it.
    short = not parse_infotext(infotext)["params"] if infotext else True
    return head + "\n\n" + "\n".join(_summary_lines(record, short)) + "\n"


def _write_text(path: str, text: str) -> str:
    confined.write_atomic(path, text.encode("utf-8"))
    return path


def parse_formats(formats: Union[str, Iterable[str], None]) -> List[str]:
    """``"json,txt"`` or ``["json", "exif"]`` -> an ordered list; MetadataError on unknown names."""
    if formats is None:
        return []
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    result: List[str] = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in FORMATS:
            raise MetadataError(
                f"unknown metadata format {item!r}: use a comma list of json, txt and exif"
            )
        if name not in result:
            result.append(name)
    return result


def save_metadata(
    image_path: str,
    record: Mapping[str, Any],
    formats: Union[str, Iterable[str]],
    *,
    embed_skipped: Optional[Callable[[str], None]] = None,
) -> List[str]:
    """Write ``record`` for the image at ``image_path`` in each of ``formats``; returns the paths.

    ``json`` -> ``<stem>.json`` (the full record); ``txt`` -> ``<stem>.txt`` (infotext first);
    ``exif`` -> the image itself, or, when embedding is not possible without loss, the ``txt``
    sidecar (the reason is logged). URL tokens and every registered secret (the API key: the
    settings register it) never reach a file. Raises MetadataError for unknown formats or when a
    file cannot be written.
    """
    wanted = parse_formats(formats)
    if not wanted:
        return []
    clean = scrub_secrets(json_safe(dict(record)), registered_secrets())
    written: List[str] = []

    def note(path: str) -> None:
        if path not in written:
            written.append(path)

    try:
        if "json" in wanted:
            text = json.dumps(clean, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
            note(_write_text(sidecar_path(image_path, "json"), text))
        if "txt" in wanted:
            note(_write_text(sidecar_path(image_path, "txt"), format_txt(clean)))
        if "exif" in wanted:
            note(_embed_or_sidecar(image_path, clean, "txt" in wanted, embed_skipped))
    except OSError as exc:
        raise MetadataError(
            f"could not write generation data beside {image_path}: {exc.strerror or exc}; "
            "check that the folder is writable and the disk has space"
        ) from exc
    return written


def _embed_or_sidecar(
    image_path: str,
    record: Mapping[str, Any],
    txt_asked: bool = False,
    embed_skipped: Optional[Callable[[str], None]] = None,
) -> str:
    """Embed the infotext, else write the txt sidecar. A skipped embedding is said at the default
    level only when nothing else holds the data: not when txt was asked anyway, and, with
    ``embed_skipped`` (a run counting them for one grouped line), only by that count."""
    infotext = to_infotext(record)
    if not infotext:
        log.debug(
            "image %s: no generation data to embed; writing the txt sidecar", record.get("id")
        )
    else:
        try:
            return embed_infotext(image_path, infotext)
        except EmbedSkipped as skipped:
            if txt_asked:
                log.debug("%s; the txt sidecar holds the data", skipped)
            elif embed_skipped is not None:
                log.debug("%s; writing the txt sidecar instead", skipped)
                embed_skipped(skipped.reason)
            else:
                log.info("%s; writing the txt sidecar instead", skipped)
    return _write_text(sidecar_path(image_path, "txt"), format_txt(record))

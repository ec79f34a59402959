"""The generation part of a Civitai image's ``meta``: prompt, sampler, seed, size, model, LoRAs.

:func:`extract_generation` normalizes the many spellings Civitai's meta uses into one dict; the
record (:mod:`.record`) and the infotext writer (:mod:`.infotext`) both read it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any, Dict, List, Mapping, Optional

log = logging.getLogger(__name__)

_INT_RE = re.compile(r"[+-]?\d+")

_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")

_LORA_TAG_RE = re.compile(r"<lora:([^:<>]+)(?::([^:<>]*))?(?::[^<>]*)?>", re.IGNORECASE)

# Civitai meta key (any of these spellings) -> normalized generation field.
_GENERATION_KEYS = {
    "prompt": ("prompt", "Prompt"),
    "negative_prompt": ("negativePrompt", "negative_prompt", "Negative prompt"),
    "steps": ("steps", "Steps"),
    "sampler": ("sampler", "Sampler", "sampler_name"),
    "cfg_scale": ("cfgScale", "CFG scale", "cfg_scale"),
    "seed": ("seed", "Seed"),
    "size": ("Size", "size"),
    "clip_skip": ("clipSkip", "Clip skip", "clip_skip"),
    "model": ("Model", "model"),
    "model_hash": ("Model hash", "modelHash", "model_hash"),
}

_NUMERIC_FIELDS = ("steps", "cfg_scale", "seed", "clip_skip")


def to_number(value: Any) -> Any:
    """``"7"`` -> 7, ``" 7.5 "`` -> 7.5; anything not a clean number is returned unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        if _FLOAT_RE.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else value
    return value


def _int_or_none(value: Any) -> Optional[int]:
    value = to_number(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _str_or_none(value: Any) -> Optional[str]:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps`` writes as standard UTF-8 JSON."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:  # lone surrogates from "\\ud800" escapes
            return value.encode("utf-8", "replace").decode("utf-8")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def unwrap_meta(meta: Any) -> Optional[Dict[str, Any]]:
    """The generation ``meta`` dict, unwrapped from ``{"id", "meta"}``; None when null or hidden."""
    if isinstance(meta, Mapping) and "meta" in meta and set(meta) <= {"id", "meta"}:
        meta = meta["meta"]
    if not isinstance(meta, Mapping) or not meta:
        return None
    return dict(meta)


def _model_text(value: Any) -> Optional[str]:
    """``"Model"`` as text: a string as is; ``{"name": ..}`` by name; other objects as ``k: v``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if isinstance(value.get("name"), str):
            return value["name"]
        return ", ".join(f"{k}: {v}" if v not in (None, "") else str(k) for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(_model_text(v)) for v in value if v is not None) or None
    return str(value)


def _loras(meta: Mapping[str, Any], hashes: Mapping[str, Any], prompt: Optional[str]) -> List[dict]:
    """LoRAs by name from ``resources``, ``hashes["lora:<name>"]`` and ``<lora:name:w>`` tags.

    (``civitaiResources`` names no LoRA, only version ids; it stays in ``extra``.)
    """
    found: Dict[str, dict] = {}

    def add(name: Any, weight: Any = None, hash_: Any = None) -> None:
        if not isinstance(name, str) or not name.strip():
            return
        entry = found.setdefault(name.strip(), {"name": name.strip()})
        weight = to_number(weight)
        if (
            "weight" not in entry
            and isinstance(weight, (int, float))
            and not isinstance(weight, bool)
        ):
            entry["weight"] = weight
        if "hash" not in entry and isinstance(hash_, str) and hash_:
            entry["hash"] = hash_

    resources = meta.get("resources")
    for res in resources if isinstance(resources, list) else []:
        if isinstance(res, Mapping) and str(res.get("type", "")).lower() in (
            "lora",
            "locon",
            "lycoris",
        ):
            add(res.get("name"), res.get("weight"), res.get("hash"))
    for key, value in hashes.items():
        if isinstance(key, str) and key.lower().startswith("lora:"):
            add(key[5:], None, value)
    for match in _LORA_TAG_RE.finditer(prompt or ""):
        add(match.group(1), match.group(2))
    return list(found.values())


def extract_generation(meta: Any) -> Optional[Dict[str, Any]]:
    """The normalized ``generation`` part of a Civitai ``meta`` value (None when there is none)."""
    meta = unwrap_meta(meta)
    if meta is None:
        return None
    generation: Dict[str, Any] = {}
    used = set()
    for field, spellings in _GENERATION_KEYS.items():
        value = None
        for key in spellings:
            if key in meta:
                used.add(key)
                if value is None and meta[key] is not None:
                    value = meta[key]
        generation[field] = value
    for field in _NUMERIC_FIELDS:
        generation[field] = to_number(generation[field])
    for field in ("prompt", "negative_prompt", "sampler", "size", "model_hash"):
        generation[field] = _str_or_none(generation[field])
    raw_model = generation["model"]
    generation["model"] = _model_text(raw_model)

    hashes_value = meta.get("hashes")

    hashes: Mapping[str, Any] = hashes_value if isinstance(hashes_value, Mapping) else {}
    used.update(("hashes", "resources"))
    if generation["model_hash"] is None and isinstance(hashes.get("model"), str):
        generation["model_hash"] = hashes["model"]
    generation["loras"] = _loras(meta, hashes, generation["prompt"])
    resources = meta.get("resources")
    generation["resources"] = list(resources) if isinstance(resources, list) else []
    generation["hashes"] = dict(hashes)

    extra: Dict[str, Any] = {}
    for key, value in meta.items():
        if key in used:
            continue
        if key == "comfy" and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                log.debug("meta.comfy is not valid JSON; kept as text")
        extra[key] = value
    if raw_model is not None and not isinstance(raw_model, str):
        extra["Model"] = raw_model  # the original object; ``model`` holds its text form
    generation["extra"] = extra
    return json_safe(generation)

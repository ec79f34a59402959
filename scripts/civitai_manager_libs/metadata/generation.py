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
    "schedule_type": ("Schedule type", "schedule_type", "scheduleType"),
    "vae_hash": ("VAE hash", "vaeHash", "vae_hash"),
}

#: ComfyUI (and Civitai generator) sampler names -> the names WebUI 1.10 lists.
WEBUI_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun",
    "dpmpp_2m_sde_heun_gpu": "DPM++ 2M SDE Heun",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "plms": "PLMS",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
    "restart": "Restart",
}
#: ComfyUI scheduler names -> WebUI 1.10's ``Schedule type`` names.
WEBUI_SCHEDULERS = {
    "karras": "Karras",
    "exponential": "Exponential",
    "polyexponential": "Polyexponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "normal": "Normal",
    "ddim_uniform": "DDIM",
    "beta": "Beta",
    "kl_optimal": "KL Optimal",
    "align_your_steps": "Align Your Steps",
    "uniform": "Uniform",
    "automatic": "Automatic",
}


def webui_sampler(name: Any) -> Any:
    """WebUI's name for a ComfyUI sampler name (``euler_ancestral`` -> ``Euler a``); any other
    value (already a WebUI name, or unknown) is returned unchanged."""
    if isinstance(name, str):
        return WEBUI_SAMPLERS.get(name.strip().lower(), name)
    return name


def webui_schedule_type(name: Any) -> Any:
    """WebUI's ``Schedule type`` for a ComfyUI scheduler name (``karras`` -> ``Karras``)."""
    if isinstance(name, str):
        return WEBUI_SCHEDULERS.get(name.strip().lower(), name)
    return name


def find_hash(hashes: Mapping[str, Any], name: str) -> Optional[str]:
    """``hashes[name]`` with the key in any case (``model``, ``Model``, ``VAE``...)."""
    for key, value in hashes.items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str) and value:
            return value
    return None


def hash_pairs(value: Any, prefix: str) -> Dict[str, str]:
    """A ``Lora hashes`` / ``TI hashes`` value as ``{prefix + name: hash}``.

    Takes WebUI's text (``"a: 1f, b: 2e"``) or the object Civitai sends since 2026
    (``{"a": "1f"}``); anything else gives ``{}``.
    """
    pairs: Dict[str, str] = {}
    if isinstance(value, Mapping):
        for name, hash_ in value.items():
            if isinstance(name, str) and name.strip() and isinstance(hash_, str) and hash_:
                pairs[prefix + name.strip()] = hash_.strip()
    elif isinstance(value, str):
        for part in value.split(","):
            name, sep, hash_ = part.rpartition(":")
            if sep and name.strip() and hash_.strip():
                pairs[prefix + name.strip()] = hash_.strip()
    return pairs


_UNDEFINED_RE = re.compile(r"(?<=[:\[,])(\s*)undefined(?=\s*[,}\]])")


def parse_comfy(text: str) -> Any:
    """A ``comfy`` string as JSON: parsed as is, or after Civitai's ``undefined`` values are
    read as ``null`` (its template can write ``"workflow": undefined``); else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return json.loads(_UNDEFINED_RE.sub(r"\1null", text))
    except json.JSONDecodeError:
        log.debug("meta.comfy is not valid JSON; kept as text")
        return text


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


def as_int(value: Any) -> Optional[int]:
    value = to_number(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def str_or_none(value: Any) -> Optional[str]:
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


def _size_from(width: Any, height: Any) -> Optional[str]:
    """``"WxH"`` from 2026's ``width`` / ``height`` meta keys (the generation size)."""
    w, h = as_int(width), as_int(height)
    if w is None or h is None or w <= 0 or h <= 0:
        return None
    return f"{w}x{h}"


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
    text_fields = ("prompt", "negative_prompt", "sampler", "size", "model_hash")
    for field in text_fields + ("schedule_type", "vae_hash"):
        generation[field] = str_or_none(generation[field])
    if generation["size"] is None:
        generation["size"] = _size_from(meta.get("width"), meta.get("height"))
    raw_sampler = generation["sampler"]
    generation["sampler"] = webui_sampler(raw_sampler)
    if generation["schedule_type"] is None:
        generation["schedule_type"] = str_or_none(webui_schedule_type(meta.get("scheduler")))
    raw_model = generation["model"]
    generation["model"] = _model_text(raw_model)

    hashes: Dict[str, Any] = dict(meta["hashes"]) if isinstance(meta.get("hashes"), Mapping) else {}
    used.update(("hashes", "resources"))
    for label, prefix in (("Lora hashes", "lora:"), ("TI hashes", "embed:")):
        if label in meta:
            found = hash_pairs(meta[label], prefix)
            if found or meta[label] is None:
                used.add(label)  # kept in ``hashes`` (a value that is neither stays in extra)
            known = {key.lower() for key in hashes if isinstance(key, str)}
            hashes.update({k: v for k, v in found.items() if k.lower() not in known})
    if generation["model_hash"] is None:
        generation["model_hash"] = find_hash(hashes, "model")
    if generation["vae_hash"] is None:
        generation["vae_hash"] = find_hash(hashes, "vae")
    for field in ("model_hash", "vae_hash"):  # one case, WebUI's (its short hashes are lower)
        value = generation[field]
        if isinstance(value, str) and re.fullmatch(r"[0-9A-Fa-f]{8,64}", value.strip()):
            generation[field] = value.strip().lower()
    generation["loras"] = _loras(meta, hashes, generation["prompt"])
    resources = meta.get("resources")
    generation["resources"] = list(resources) if isinstance(resources, list) else []
    generation["hashes"] = hashes

    extra: Dict[str, Any] = {}
    for key, value in meta.items():
        if key in used:
            continue
        if key == "comfy" and isinstance(value, str):
            value = parse_comfy(value)
        extra[key] = value
    if raw_sampler != generation["sampler"] and "sampler" not in extra:
        extra["sampler"] = raw_sampler  # the original (ComfyUI) name, kept in the record
    if raw_model is not None and not isinstance(raw_model, str):
        extra["Model"] = raw_model  # the original object; ``model`` holds its text form
    generation["extra"] = extra
    return json_safe(generation)

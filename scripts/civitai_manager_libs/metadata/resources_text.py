"""Resources as text: the txt sidecar's lines and the ``<lora:name:w>`` tags of the infotext.

WebUI applies a LoRA only through a ``<lora:NAME:weight>`` tag in the prompt. Civitai's own
generator lists LoRAs in ``civitaiResources`` and leaves the tags out, so a pasted prompt would
silently drop them: :func:`with_lora_tags` appends the missing tags (never a second one for a
LoRA the prompt already has).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .resource_refs import TAG_RE, Resource


def _as_resource(value: Any) -> Optional[Resource]:
    if isinstance(value, Resource):
        return value
    if isinstance(value, Mapping):
        return Resource.from_dict(value)
    return None


def _weight_text(weight: Optional[float]) -> str:
    value = 1.0 if weight is None else float(weight)
    return f"{value:g}"


def tag_name(resource: Resource) -> Optional[str]:
    """The name a ``<lora:…>`` tag uses: the user's file, else the image's name, else Civitai's."""
    return resource.local_name or resource.name or resource.file_stem


def with_lora_tags(prompt: Optional[str], resources: Sequence[Any]) -> Optional[str]:
    """``prompt`` with a ``<lora:name:weight>`` tag for each LoRA it lacks (appended, in order).

    A LoRA counts as present when a tag names any of its names (the image's name, Civitai's file
    name or the local file's name); a tag naming the image's name is renamed to the local name when
    the user's file is called differently.
    """
    loras = [r for r in (_as_resource(v) for v in resources) if r is not None and r.type == "lora"]
    if not loras:
        return prompt
    text = prompt or ""

    def rename(match) -> str:
        name = match.group(2).strip().lower()
        for lora in loras:
            if lora.local_name and name in lora.names() and name != lora.local_name.lower():
                weight = match.group(3) if match.group(3) is not None else "1"
                return f"<{match.group(1)}:{lora.local_name}:{weight}>"
        return match.group(0)

    text = TAG_RE.sub(rename, text)
    present = {m.group(2).strip().lower() for m in TAG_RE.finditer(text)}
    missing: List[str] = []
    for lora in loras:
        name = tag_name(lora)
        if not name or present & set(lora.names()) or name.lower() in present:
            continue
        present.add(name.lower())
        missing.append(f"<lora:{name}:{_weight_text(lora.weight)}>")
    if not missing:
        return prompt if text == (prompt or "") else text
    joiner = ", " if text.strip() else ""
    return text.rstrip() + joiner + ", ".join(missing)


def resource_lines(resources: Sequence[Any]) -> List[str]:
    """Readable lines for the txt sidecar: ``Resources:`` then one line per resource."""
    items = [r for r in (_as_resource(v) for v in resources) if r is not None]
    if not items:
        return []
    lines = ["Resources:"]
    for r in items:
        parts = [f"  {r.type}: {r.label}"]
        if r.weight is not None and r.type == "lora":
            parts.append(f"weight {_weight_text(r.weight)}")
        if r.file_name:
            parts.append(r.file_name)
        if r.version_id is not None and r.label != f"version {r.version_id}":
            parts.append(f"version {r.version_id}")
        digest = r.autov2 or (r.hashes[0] if r.hashes else None)
        if digest:
            parts.append(f"hash {digest.lower()}")  # one case, as the infotext's Model hash
        if r.status == "not_on_civitai":
            parts.append("not on Civitai")
        lines.append(", ".join(parts))
    return lines


def localized_generation(generation: Mapping[str, Any], resources: Sequence[Any]) -> Dict[str, Any]:
    """``generation`` with the LoRA tags added and, for a checkpoint the user has, ``model`` set
    to the user's checkpoint title (what WebUI's checkpoint list shows)."""
    result = dict(generation)
    result["prompt"] = with_lora_tags(result.get("prompt"), resources)
    for resource in (_as_resource(v) for v in resources):
        if resource is None or resource.type != "embedding" or not resource.local_name:
            continue
        local = resource.local_name
        if resource.name and resource.name != local:  # WebUI reads the embedding's word
            word = re.compile(r"(?<![\w])" + re.escape(resource.name) + r"(?![\w])")
            for key in ("prompt", "negative_prompt"):
                if isinstance(result.get(key), str):
                    result[key] = word.sub(lambda _m: local, result[key])
    for resource in (_as_resource(v) for v in resources):
        if resource is not None and resource.type == "checkpoint" and resource.local_name:
            result["model"] = resource.local_name
            if resource.sha256:  # WebUI picks the checkpoint by its short hash on paste
                result["model_hash"] = resource.sha256[:10].lower()
    return result

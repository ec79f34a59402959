"""The resources an image names (checkpoint, LoRAs, embeddings, VAE), read from its own data.

:func:`collect_resources` reads every place Civitai and A1111 put them — ``meta.civitaiResources``,
``meta.resources``, ``meta.hashes``, ``Model`` / ``Model hash``, ``Lora hashes``, ``TI hashes``,
``VAE`` / ``VAE hash``, the item's ``modelVersionIds`` and ``<lora:name:w>`` tags in the prompt —
and merges the mentions of one resource (same version id, same hash, or same type and name) into
one :class:`Resource`. Nothing here talks to the network: ``resources/resolve`` fills the gaps.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .generation import to_number, unwrap_meta

RESOURCE_TYPES = ("checkpoint", "lora", "embedding", "vae", "other")
_TYPE_ALIASES = {
    "checkpoint": "checkpoint",
    "model": "checkpoint",
    "lora": "lora",
    "locon": "lora",
    "lycoris": "lora",
    "dora": "lora",
    "lyco": "lora",
    "embed": "embedding",
    "embedding": "embedding",
    "textualinversion": "embedding",
    "ti": "embedding",
    "vae": "vae",
}
TAG_RE = re.compile(r"<(lora|lyco):([^:<>]+)(?::([^:<>]*))?(?::[^<>]*)?>", re.IGNORECASE)
_HEX_RE = re.compile(r"^[0-9a-fA-F]{8,64}$")


def resource_type(value: Any) -> str:
    """Civitai's or A1111's type name (``LORA``, ``TextualInversion``, ``embed``...) -> ours."""
    key = re.sub(r"[^a-z]", "", str(value or "").lower())
    return _TYPE_ALIASES.get(key, "other")


@dataclass
class Resource:
    """One resource an image was made with; ``None`` where nothing says it yet."""

    type: str = "other"  # checkpoint | lora | embedding | vae | other
    name: Optional[str] = None  # the name the image uses (<lora:NAME:w>, Model, TI name)
    model_id: Optional[int] = None
    model_name: Optional[str] = None
    version_id: Optional[int] = None
    version_name: Optional[str] = None
    file_name: Optional[str] = None
    sha256: Optional[str] = None
    autov2: Optional[str] = None
    weight: Optional[float] = None
    download_url: Optional[str] = None
    size: Optional[int] = None
    hashes: List[str] = field(default_factory=list)  # short hashes the image gives (upper case)
    sources: List[str] = field(default_factory=list)
    status: str = "unresolved"  # unresolved | resolved | not_on_civitai
    note: Optional[str] = None  # why it is unresolved, or that it needs early access
    local_path: Optional[str] = None
    local_name: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Resource":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def label(self) -> str:
        """A short human name: model name and version, else the image's name, else a hash."""
        if self.model_name:
            return (
                f"{self.model_name} ({self.version_name})" if self.version_name else self.model_name
            )
        if self.name:
            return self.name
        if self.version_id is not None:
            return f"version {self.version_id}"
        return self.hashes[0] if self.hashes else "unknown"

    @property
    def file_stem(self) -> Optional[str]:
        return self.file_name.rsplit(".", 1)[0] if self.file_name else None

    def all_hashes(self) -> List[str]:
        found = list(self.hashes)
        for value in (self.sha256, self.autov2):
            if value and value.upper() not in found:
                found.append(value.upper())
        return found

    def names(self) -> List[str]:
        return [n.lower() for n in (self.name, self.file_stem, self.local_name) if n]


def _hash(value: Any) -> Optional[str]:
    if isinstance(value, str) and _HEX_RE.match(value.strip()):
        return value.strip().upper()
    return None


def _int(value: Any) -> Optional[int]:
    number = to_number(value)
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def _weight(value: Any) -> Optional[float]:
    number = to_number(value)
    if isinstance(number, (int, float)) and not isinstance(number, bool):
        return float(number)
    return None


def _hashes_match(a: Resource, b: Resource) -> bool:
    for x in a.all_hashes():
        for y in b.all_hashes():
            if x.startswith(y) or y.startswith(x):
                return True
    return False


def same_resource(a: Resource, b: Resource) -> bool:
    """Whether two mentions name one resource (version id, hash, or type + name)."""
    if a.version_id is not None and b.version_id is not None:
        return a.version_id == b.version_id
    typed = a.type == b.type or "other" in (a.type, b.type)
    if typed and _hashes_match(a, b):
        return True
    return a.type == b.type and bool(set(a.names()) & set(b.names()))


def merge_into(target: Resource, other: Resource) -> None:
    """Fill ``target``'s empty fields from ``other``; hashes and sources are joined."""
    for f in fields(Resource):
        if f.name in ("hashes", "sources"):
            continue
        mine = getattr(target, f.name)
        theirs = getattr(other, f.name)
        if f.name == "type":
            if mine == "other":
                target.type = theirs
        elif f.name == "status":
            if mine == "unresolved":
                target.status = theirs
        elif mine is None and theirs is not None:
            setattr(target, f.name, theirs)
    for value in other.hashes:
        if value not in target.hashes:
            target.hashes.append(value)
    for source in other.sources:
        if source not in target.sources:
            target.sources.append(source)


def merge_all(mentions: Iterable[Resource]) -> List[Resource]:
    """Mentions -> one :class:`Resource` each, in first-mention order."""
    merged: List[Resource] = []
    for mention in mentions:
        for existing in merged:
            if same_resource(existing, mention):
                merge_into(existing, mention)
                break
        else:
            merged.append(mention)
    # A later mention may link two earlier ones (a name on one, a hash on the other): repeat.
    changed = True
    while changed:
        changed = False
        for i, first in enumerate(merged):
            for second in merged[i + 1 :]:
                if same_resource(first, second):
                    merge_into(first, second)
                    merged.remove(second)
                    changed = True
                    break
            if changed:
                break
    _merge_by_role(merged)
    return merged


def _absorb(merged: List[Resource], keep: Resource, drop: Resource) -> None:
    merge_into(keep, drop)
    merged.remove(drop)


def _merge_by_role(merged: List[Resource]) -> None:
    """Mentions that nothing links but what they are. An image has one checkpoint and one VAE:
    the one Civitai names by version id and the one the infotext names by name and hash are the
    same file. A LoRA Civitai's generator lists by version id alone and a ``<lora:name:w>`` tag
    with no version at the same weight are the same LoRA when no other pairing is possible."""
    for kind in ("checkpoint", "vae"):
        same = [r for r in merged if r.type == kind]
        with_id = [r for r in same if r.version_id is not None]
        without = [r for r in same if r.version_id is None]
        if len(with_id) == 1 and len(without) == 1:
            _absorb(merged, with_id[0], without[0])
    loras = [r for r in merged if r.type == "lora"]
    by_id = [r for r in loras if r.version_id is not None and not r.names() and not r.hashes]
    named = [r for r in loras if r.version_id is None and r.names()]
    for resource in by_id:
        if resource.weight is None:
            continue
        peers = [r for r in named if r.weight == resource.weight]
        rivals = [r for r in by_id if r.weight == resource.weight]
        if len(peers) == 1 and len(rivals) == 1 and peers[0] in merged:
            _absorb(merged, resource, peers[0])


def _mention(source: str, type_: str, **values: Any) -> Resource:
    short = values.pop("hash", None)
    resource = Resource(type=type_, sources=[source], **values)
    if short:
        resource.hashes.append(short)
    return resource


def _hash_pairs(value: Any) -> List[Tuple[str, str]]:
    """``"a: 1f, b: 2e"`` or ``{"a": "1f"}`` -> ``[(name, HASH)]``."""
    pairs: List[Tuple[str, str]] = []
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str):
        items = [part.rpartition(":")[::2] for part in value.split(",")]
    else:
        return pairs
    for name, digest in items:
        short = _hash(digest)
        if isinstance(name, str) and name.strip() and short:
            pairs.append((name.strip(), short))
    return pairs


def _entries(value: Any) -> List[Any]:
    """A list field of ``meta`` as a list; any other shape (``true``, a number, an object) holds
    no entries."""
    return list(value) if isinstance(value, (list, tuple)) else []


def mentions_in(meta: Any, model_version_ids: Any = None) -> List[Resource]:
    """Every mention of a resource in ``meta`` and the item's ``modelVersionIds`` (unmerged)."""
    found: List[Resource] = []
    meta = unwrap_meta(meta) or {}
    for entry in _entries(meta.get("civitaiResources")):
        if isinstance(entry, Mapping) and _int(entry.get("modelVersionId")) is not None:
            found.append(
                _mention(
                    "civitaiResources",
                    resource_type(entry.get("type")),
                    version_id=_int(entry.get("modelVersionId")),
                    version_name=entry.get("modelVersionName") or None,
                    weight=_weight(
                        entry.get("weight") if "weight" in entry else entry.get("strength")
                    ),
                )
            )
    for entry in _entries(meta.get("resources")):
        if isinstance(entry, Mapping):
            name = entry.get("name") if isinstance(entry.get("name"), str) else None
            short = _hash(entry.get("hash"))
            if name or short:
                found.append(
                    _mention(
                        "resources",
                        resource_type(entry.get("type")),
                        name=name,
                        hash=short,
                        weight=_weight(entry.get("weight")),
                    )
                )
    model_name = meta.get("Model") if isinstance(meta.get("Model"), str) else None
    hashes = meta.get("hashes") if isinstance(meta.get("hashes"), Mapping) else {}
    for key, value in hashes.items():
        short = _hash(value)
        if not isinstance(key, str) or not short:
            continue
        kind, sep, name = key.partition(":")
        if not sep:
            if key.lower() == "model":
                found.append(_mention("hashes", "checkpoint", name=model_name, hash=short))
            elif key.lower() == "vae":
                vae_name = meta.get("VAE") if isinstance(meta.get("VAE"), str) else None
                found.append(_mention("hashes", "vae", name=vae_name, hash=short))
            continue
        found.append(_mention("hashes", resource_type(kind), name=name.strip() or None, hash=short))
    model_hash = _hash(meta.get("Model hash"))
    if model_name or model_hash:
        found.append(_mention("Model", "checkpoint", name=model_name, hash=model_hash))
    vae_hash = _hash(meta.get("VAE hash"))
    if vae_hash:
        vae_name = meta.get("VAE") if isinstance(meta.get("VAE"), str) else None
        found.append(_mention("VAE hash", "vae", name=vae_name, hash=vae_hash))
    for name, short in _hash_pairs(meta.get("Lora hashes")):
        found.append(_mention("Lora hashes", "lora", name=name, hash=short))
    for name, short in _hash_pairs(meta.get("TI hashes")):
        found.append(_mention("TI hashes", "embedding", name=name, hash=short))
    prompt = meta.get("prompt") if isinstance(meta.get("prompt"), str) else ""
    for match in TAG_RE.finditer(prompt):
        found.append(
            _mention("prompt", "lora", name=match.group(2).strip(), weight=_weight(match.group(3)))
        )
    if isinstance(model_version_ids, (list, tuple)):
        for value in model_version_ids:
            if _int(value) is not None:
                found.append(_mention("modelVersionIds", "other", version_id=_int(value)))
    return found


def collect_resources(meta: Any, model_version_ids: Any = None) -> List[Resource]:
    """The merged resources of one image (see the module docstring)."""
    return merge_all(mentions_in(meta, model_version_ids))

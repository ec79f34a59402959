"""The user's model files: WebUI's own lists inside WebUI, a WebUI-style models folder outside.

:func:`local_inventory` returns a :class:`LocalInventory`: the files of each type with the name
WebUI knows them by (a LoRA's and an embedding's file stem, a checkpoint's title
``name.safetensors [shorthash]``) and the folder a new file of each type goes to.
:func:`match_local` finds each resource among them by SHA-256 (any file name).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from ..metadata.resource_refs import Resource
from .hash_cache import FileHasher

logger = logging.getLogger(__name__)

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf")
#: Type -> sub-folders of a WebUI models folder, the first one is where downloads go.
FOLDERS: Dict[str, tuple] = {
    "checkpoint": ("Stable-diffusion",),
    "lora": ("Lora", "LyCORIS"),
    "embedding": ("embeddings", "../embeddings"),
    "vae": ("VAE",),
}
SIZE_SLACK = 1024  # Civitai lists sizes in KB: a file within 1 KiB may be the one


@dataclass
class LocalModel:
    type: str
    name: str  # what WebUI calls it (tag name / checkpoint title)
    path: str
    size: int
    sha256: Optional[str] = None  # when WebUI already knows it


@dataclass
class LocalInventory:
    models: List[LocalModel] = field(default_factory=list)
    folders: Dict[str, str] = field(default_factory=dict)  # type -> download folder
    source: str = "none"  # "webui" | "folder" | "none"

    def of_type(self, type_: str) -> List[LocalModel]:
        return [m for m in self.models if m.type == type_]


def _name_for(type_: str, root: str, path: str) -> str:
    if type_ == "checkpoint":
        return os.path.relpath(path, root).replace(os.sep, "/")
    return os.path.splitext(os.path.basename(path))[0]


def scan_models_folder(models_path: str) -> LocalInventory:
    """The model files under a WebUI-style ``models`` folder (``Stable-diffusion/``, ``Lora/``,
    ``embeddings/`` or WebUI's top-level ``embeddings/`` beside it, ``VAE/``)."""
    root = os.path.abspath(os.path.expanduser(models_path))
    inventory = LocalInventory(source="folder")
    for type_, subfolders in FOLDERS.items():
        for index, sub in enumerate(subfolders):
            folder = os.path.normpath(os.path.join(root, sub))
            if index == 0:
                inventory.folders[type_] = folder
            if not os.path.isdir(folder):
                continue
            if (
                type_ == "embedding"
                and index == 1
                and not os.path.isdir(os.path.join(root, subfolders[0]))
            ):
                inventory.folders[type_] = folder  # WebUI's own top-level embeddings/
            inventory.models.extend(_scan_folder(type_, folder))
    return inventory


# ------------------------------------------------------------------------------------ inside WebUI


def _webui_module(name: str) -> Any:
    """``modules.<name>`` (or a top-level WebUI module such as ``networks``), None outside WebUI."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or ""
        if missing == name or name.startswith(missing + ".") or missing.startswith("modules"):
            return None
        raise


def webui_inventory() -> Optional[LocalInventory]:
    """WebUI's own lists (checkpoints, the built-in Lora networks, loaded embeddings, VAEs), or
    None when not running inside WebUI."""
    sd_models = _webui_module("modules.sd_models")
    if sd_models is None or not hasattr(sd_models, "checkpoints_list"):
        return None
    inventory = LocalInventory(source="webui")
    for info in list(getattr(sd_models, "checkpoints_list", {}).values()):
        path = getattr(info, "filename", None)
        if not path or not os.path.isfile(path):
            continue
        sha = getattr(info, "sha256", None)
        title = getattr(info, "title", None) or os.path.basename(path)
        inventory.models.append(
            LocalModel(
                "checkpoint", title, path, os.path.getsize(path), sha.upper() if sha else None
            )
        )
    networks = _webui_module("networks")
    for name, network in list(getattr(networks, "available_networks", {}).items()):
        path = getattr(network, "filename", None)
        if path and os.path.isfile(path):
            alias = network.get_alias() if hasattr(network, "get_alias") else name
            inventory.models.append(LocalModel("lora", alias or name, path, os.path.getsize(path)))
    sd_hijack = _webui_module("modules.sd_hijack")
    db = getattr(getattr(sd_hijack, "model_hijack", None), "embedding_db", None)
    for table in ("word_embeddings", "skipped_embeddings"):
        for name, embedding in list(getattr(db, table, {}).items()):
            path = getattr(embedding, "filename", None)
            if path and os.path.isfile(path):
                inventory.models.append(LocalModel("embedding", name, path, os.path.getsize(path)))
    sd_vae = _webui_module("modules.sd_vae")
    for name, path in list(getattr(sd_vae, "vae_dict", {}).items()):
        if path and os.path.isfile(path):
            inventory.models.append(LocalModel("vae", name, path, os.path.getsize(path)))
    inventory.folders = _webui_folders()
    return inventory


def _webui_folders() -> Dict[str, str]:
    paths = _webui_module("modules.paths")
    shared = _webui_module("modules.shared")
    models_path = getattr(paths, "models_path", None) or ""
    opts = getattr(shared, "cmd_opts", None)
    script_path = getattr(paths, "script_path", None) or os.path.dirname(models_path)

    def pick(attr: str, default: str) -> str:
        value = getattr(opts, attr, None)
        return os.path.abspath(value) if value else default

    return {
        "checkpoint": pick("ckpt_dir", os.path.join(models_path, "Stable-diffusion")),
        "lora": pick("lora_dir", os.path.join(models_path, "Lora")),
        "embedding": pick("embeddings_dir", os.path.join(script_path, "embeddings")),
        "vae": pick("vae_dir", os.path.join(models_path, "VAE")),
    }


def _scan_folder(type_: str, folder: str) -> List[LocalModel]:
    found: List[LocalModel] = []
    for dirpath, _dirs, files in os.walk(folder):
        for file_name in sorted(files):
            if not file_name.lower().endswith(MODEL_EXTENSIONS):
                continue
            path = os.path.join(dirpath, file_name)
            try:
                size = os.path.getsize(path)
            except OSError as exc:
                logger.warning("Cannot read %s: %s", path, exc.strerror or exc)
                continue
            found.append(LocalModel(type_, _name_for(type_, folder, path), path, size))
    return found


def add_unlisted_files(inventory: LocalInventory) -> int:
    """Add the files in the inventory's folders that its lists lack; returns how many.

    WebUI's lists are what it loaded at start-up (or at its last Refresh): a LoRA copied into
    ``models/Lora`` since is on disk but not listed, and calling it missing would download a
    second copy. The folders are read before anything is called missing."""
    known = {os.path.realpath(m.path) for m in inventory.models}
    added = 0
    for type_, folder in inventory.folders.items():
        if not folder or not os.path.isdir(folder):
            continue
        for model in _scan_folder(type_, folder):
            if os.path.realpath(model.path) not in known:
                known.add(os.path.realpath(model.path))
                inventory.models.append(model)
                added += 1
    if added:
        logger.debug("%d model file(s) on disk that WebUI has not listed yet", added)
    return added


def local_inventory(models_path: Optional[str]) -> LocalInventory:
    """Inside WebUI its lists and every file of its folders (a file copied in while WebUI runs
    is there too); else ``models_path`` (the setting, or ``--models-dir``)."""
    inventory = webui_inventory()
    if inventory is not None:
        add_unlisted_files(inventory)
        if models_path:  # an explicit folder wins for where downloads go
            inventory.folders = scan_models_folder(models_path).folders
        return inventory
    if models_path:
        return scan_models_folder(models_path)
    return LocalInventory()


# ------------------------------------------------------------------------------------- matching


def _wanted_hashes(resource: Resource) -> List[str]:
    return [h.upper() for h in resource.all_hashes() if len(h) >= 10]


def match_local(
    resources: Iterable[Resource], inventory: LocalInventory, hasher: FileHasher
) -> None:
    """Set ``local_path`` / ``local_name`` on each resource found among the user's files.

    A file matches when its SHA-256 is the resource's SHA-256 (or starts with its AutoV2 /
    short hash). Only files of the resource's type are hashed, and when Civitai gave a size,
    only files of that size: a library of large checkpoints is not read for one LoRA.
    """
    for resource in resources:
        wanted = _wanted_hashes(resource)
        if not wanted:
            continue
        candidates = inventory.of_type(resource.type) if resource.type != "other" else []
        if resource.size:
            candidates = [m for m in candidates if abs(m.size - resource.size) <= SIZE_SLACK]
        for model in candidates:
            if model.sha256 is None:
                try:
                    model.sha256 = hasher.sha256(model.path)
                except OSError as exc:
                    logger.warning("Cannot hash %s: %s", model.path, exc.strerror or exc)
                    continue
            if any(model.sha256.startswith(h) for h in wanted):
                resource.local_path = model.path
                resource.local_name = model.name
                if resource.type == "checkpoint" and inventory.source == "folder":
                    # WebUI's checkpoint title: the path under Stable-diffusion/ and [shorthash]
                    resource.local_name = f"{model.name} [{model.sha256[:10].lower()}]"
                break

"""The three export layouts, one small writer each: ``add(item, caption)`` per image, ``close()``.

* ``captions``: ``<id>.<ext>`` beside ``<id>.txt`` (the cleaned caption); with kohya repeats the
  files go in ``N_CONCEPT/`` as kohya's trainer expects.
* ``imagefolder``: Hugging Face ``datasets``' layout: the files and ``metadata.jsonl`` whose
  ``file_name`` names each file, the other keys becoming columns (scalar columns of one type each;
  the full generation data as a JSON string).
* ``jsonl``: the files and ``records.jsonl``, one JSON record per image with ``file`` (relative to
  the export folder) and ``caption``.

Files are hard-linked when the file system allows it (same device), else copied; names are the
image ids, so nothing can leave the export folder.
"""

from __future__ import annotations

import io
import json
import os
import re
from typing import IO, Any, Dict, List, Optional, Set

from ..metadata.generation import str_or_none
from ..store import confined
from .source import ExportItem

FORMATS = ("captions", "imagefolder", "jsonl")
IMAGEFOLDER_METADATA = "metadata.jsonl"
JSONL_RECORDS = "records.jsonl"
_INT64 = 2**63 - 1
_EXPORTED_NAME = re.compile(r"^\d+\.(png|jpe?g|webp|gif|mp4|webm|mov|mkv|txt)$", re.IGNORECASE)


def _file_name(item: ExportItem) -> str:
    return f"{item.image_id}{os.path.splitext(item.path)[1].lower()}"


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and -_INT64 <= value <= _INT64:
        return value
    return None


def _float(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class Writer:
    """Base: places each file in ``folder`` and counts links and copies."""

    def __init__(self, folder: str, root: Optional[str] = None):
        self.folder = folder
        # every file goes into ``folder``, inside ``root`` (the --to folder the user named)
        self.root = confined.ensure_root(root or folder)
        confined.ensure_dir(folder, self.root)
        self.linked = 0
        self.copied = 0
        self.written: Set[str] = set()

    def stale_files(self) -> List[str]:
        """Files named like this export's (``<id>.<ext>``) that this run did not write: left by an
        earlier export into the same folder. They are not deleted (the folder is the user's)."""
        return sorted(
            name
            for name in os.listdir(self.folder)
            if _EXPORTED_NAME.match(name) and name not in self.written
        )

    def _place(self, item: ExportItem) -> str:
        name = _file_name(item)
        how = confined.place_copy(item.path, os.path.join(self.folder, name), self.root)
        self.written.add(name)
        if how == "copy":
            self.copied += 1
        else:
            self.linked += 1
        return name

    def add(self, item: ExportItem, caption: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the export (index files); the base has nothing to finish."""


class CaptionsWriter(Writer):
    """``<id>.<ext>`` + ``<id>.txt`` holding the caption."""

    def add(self, item: ExportItem, caption: str) -> None:
        name = self._place(item)
        stem = os.path.splitext(name)[0]
        confined.write_atomic(
            os.path.join(self.folder, stem + ".txt"), caption.encode("utf-8"), self.root
        )
        self.written.add(stem + ".txt")


class _IndexWriter(Writer):
    """A writer with one JSON-lines index, written to a temporary file and renamed on close."""

    index_name = ""

    def __init__(self, folder: str, root: Optional[str] = None):
        super().__init__(folder, root)
        self._index_path = os.path.join(folder, self.index_name)
        # a new temporary file with a random name (O_EXCL): a link planted at "<index>.tmp"
        # is never followed
        raw, self._tmp = confined.open_temp(self._index_path, self.root)
        self._handle: Optional[IO[str]] = io.TextIOWrapper(raw, encoding="utf-8")

    def _row(self, item: ExportItem, name: str, caption: str) -> Dict[str, Any]:
        raise NotImplementedError

    def add(self, item: ExportItem, caption: str) -> None:
        assert self._handle is not None
        name = self._place(item)
        row = self._row(item, name, caption)
        self._handle.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")

    def close(self) -> None:
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        confined.replace(self._tmp, self._index_path, self.root)

    def abort(self) -> None:
        """Drop the half-written index (an interrupted export keeps the previous one)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            confined.discard_temp(self._tmp)


class ImageFolderWriter(_IndexWriter):
    """Hugging Face imagefolder: ``metadata.jsonl`` rows of one fixed set of typed columns."""

    index_name = IMAGEFOLDER_METADATA

    def _row(self, item: ExportItem, name: str, caption: str) -> Dict[str, Any]:
        rec, gen = item.record, item.generation
        return {
            "file_name": name,
            "id": item.image_id,
            "caption": caption,
            "prompt": str_or_none(gen.get("prompt")),
            "negative_prompt": str_or_none(gen.get("negative_prompt")),
            "seed": _int(gen.get("seed")),
            "steps": _int(gen.get("steps")),
            "cfg_scale": _float(gen.get("cfg_scale")),
            "sampler": str_or_none(gen.get("sampler")),
            "clip_skip": _int(gen.get("clip_skip")),
            "checkpoint": str_or_none(gen.get("model")),
            "checkpoint_hash": str_or_none(gen.get("model_hash")),
            "loras": [str(lora.get("name")) for lora in gen.get("loras") or [] if lora.get("name")],
            "width": _int(rec.get("width")),
            "height": _int(rec.get("height")),
            "nsfw_level": str_or_none(rec.get("nsfw_level")),
            "creator": str_or_none(rec.get("creator")),
            "model_id": _int(rec.get("model_id")),
            "model_name": str_or_none(rec.get("model_name")),
            "version_id": _int(rec.get("version_id")),
            "version_name": str_or_none(rec.get("version_name")),
            "base_model": str_or_none(rec.get("base_model")),
            "created_at": str_or_none(rec.get("created_at")),
            "url": str_or_none(rec.get("url")),
            "generation": json.dumps(gen, ensure_ascii=False) if gen else None,
        }


class JsonlWriter(_IndexWriter):
    """``records.jsonl``: the JSON record, ``file`` and ``caption`` added."""

    index_name = JSONL_RECORDS

    def _row(self, item: ExportItem, name: str, caption: str) -> Dict[str, Any]:
        return {**item.record, "file": name, "caption": caption}


def open_writer(fmt: str, folder: str, root: Optional[str] = None) -> Writer:
    """The writer of ``fmt`` (one of :data:`FORMATS`) writing into ``folder`` (inside ``root``,
    the export folder the user named; default ``folder``)."""
    by_format = {"captions": CaptionsWriter, "imagefolder": ImageFolderWriter, "jsonl": JsonlWriter}
    return by_format[fmt](folder, root)

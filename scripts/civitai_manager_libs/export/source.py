"""What an export reads: the archive's saved images and, for each, the file and its record.

Nothing here touches the network. The record of an image is read from the first of: its JSON
sidecar (the full record), its ``txt`` sidecar (infotext + the key facts below it), the infotext
embedded in the file (``exif`` format, or what the upload itself carried). An image whose archived
path leaves the output folder, or whose file is gone, is reported with a reason, never read.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import InvalidQueryError, MetadataError
from ..metadata.embed import read_infotext
from ..metadata.generation import extract_generation
from ..metadata.record import RECORD_KEYS, generation_from_infotext, sidecar_path
from ..store.archive import Archive, archive_path
from ..store.archive_images import ArchivedImage
from ..util.documents import DocumentError, read_document

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv")

# Reasons an archived image is not exported (the summary counts each).
MISSING = "file missing"
OUTSIDE = "file outside the output folder"
VIDEO = "video (use --videos)"
DUPLICATE = "same content as another image"
FILTERED = "filtered out"
NO_CAPTION = "no prompt to caption"
UNREADABLE = "unreadable record (too large, too deep or not JSON)"

#: A sidecar is read up to this size and nesting depth (a real record is a few KB, 6 levels deep).
MAX_RECORD_BYTES = 8 * 1024 * 1024
MAX_RECORD_DEPTH = 32

_SUMMARY_LABELS = {
    "Civitai image": "id",
    "URL": "url",
    "Type": "type",
    "Creator": "creator",
    "Base model": "base_model",
    "NSFW level": "nsfw_level",
    "Post": "post_id",
    "Created": "created_at",
}
_NAMED_ID = re.compile(r"^(.*?)\s*\(id (\d+)\)$")


@dataclass
class ExportItem:
    """One saved image: its file (absolute), content hash and record (``RECORD_KEYS`` shape)."""

    image_id: int
    path: str
    sha256: Optional[str]
    record: Dict[str, Any] = field(default_factory=dict)

    @property
    def generation(self) -> Dict[str, Any]:
        gen = self.record.get("generation")
        return gen if isinstance(gen, dict) else {}

    @property
    def prompt(self) -> Optional[str]:
        prompt = self.generation.get("prompt")
        return prompt if isinstance(prompt, str) and prompt.strip() else None

    @property
    def is_video(self) -> bool:
        if str(self.record.get("type") or "").lower() == "video":
            return True
        return os.path.splitext(self.path)[1].lower() in VIDEO_EXTENSIONS


@dataclass
class ExportFilters:
    """Which saved images to export; an empty field lets every value through."""

    nsfw_levels: Sequence[str] = ()
    model_ids: Sequence[int] = ()
    version_ids: Sequence[int] = ()
    creators: Sequence[str] = ()
    base_models: Sequence[str] = ()
    with_generation: bool = False

    def keeps(self, record: Dict[str, Any]) -> bool:
        def among(value: Any, wanted: Sequence[Any], fold: bool = False) -> bool:
            if not wanted:
                return True
            if fold:
                return isinstance(value, str) and value.lower() in {w.lower() for w in wanted}
            return value in wanted

        gen = record.get("generation")
        return (
            among(record.get("nsfw_level"), self.nsfw_levels)
            and among(record.get("model_id"), self.model_ids)
            and among(record.get("version_id"), self.version_ids)
            and among(record.get("creator"), self.creators, fold=True)
            and among(record.get("base_model"), self.base_models, fold=True)
            and (not self.with_generation or (isinstance(gen, dict) and bool(gen.get("prompt"))))
        )


class NoArchiveError(InvalidQueryError):
    """The folder given as the source of an export holds no download archive."""


def open_archive(output_dir: str) -> Archive:
    """The archive of ``output_dir``; NoArchiveError when the folder holds no download."""
    path = archive_path(output_dir)
    if not os.path.isfile(path):
        raise NoArchiveError(
            f"no download history in {output_dir}; pass the --output folder of earlier downloads"
        )
    return Archive(path)


def _inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


class UnreadableRecord(Exception):
    """A sidecar that the one document reader refused: its image is skipped, with the reason."""


def _read_json_record(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            data = read_document(
                handle, what="record", max_bytes=MAX_RECORD_BYTES, max_depth=MAX_RECORD_DEPTH
            )
    except OSError as exc:
        logger.warning(
            "cannot read the record %s (%s); trying the image's other metadata", path, exc
        )
        return None
    except DocumentError as exc:
        raise UnreadableRecord(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise UnreadableRecord(f"{path}: the record is not a JSON object")
    return data


def _int(text: str) -> Any:
    return int(text) if text.strip().isdigit() else text.strip()


def parse_txt_sidecar(text: str) -> Dict[str, Any]:
    """A record from a ``txt`` sidecar: the infotext above the blank line, the facts below it."""
    head, tail = text, ""
    before, sep, after = text.rstrip("\n").rpartition("\n\n")
    if sep and any(line.partition(": ")[0] in _SUMMARY_LABELS for line in after.splitlines()):
        head, tail = before, after
    record: Dict[str, Any] = {}
    short_params: Dict[str, Any] = {}
    for line in tail.splitlines():
        label, sep, value = line.partition(": ")
        if not sep:
            continue
        if label == "Parameters":  # fewer than 3 pairs: kept out of the infotext (see infotext)
            for pair in value.split(", "):
                key, sep, text = pair.partition(": ")
                if sep:
                    short_params[key.strip()] = text.strip()
        elif label in _SUMMARY_LABELS:
            key = _SUMMARY_LABELS[label]
            record[key] = _int(value) if key in ("id", "post_id") else value.strip()
        elif label in ("Model", "Version"):
            prefix = label.lower()
            match = _NAMED_ID.match(value.strip())
            name, ident = (match.group(1), int(match.group(2))) if match else (value.strip(), None)
            record[f"{prefix}_id"] = ident
            record[f"{prefix}_name"] = name or None
        elif label == "Dimensions":
            width, _, height = value.partition("x")
            if width.strip().isdigit() and height.strip().isdigit():
                record["width"], record["height"] = int(width), int(height)
    no_data = head.startswith("(no generation data")
    generation = None if no_data else generation_from_infotext(head)
    if generation is not None and short_params:
        extra = extract_generation(short_params) or {}
        for key, value in extra.items():
            if generation.get(key) in (None, [], {}) and value not in (None, [], {}):
                generation[key] = value
    record["generation"] = generation
    return record


def load_record(row: ArchivedImage, image_path: str, root: str) -> Dict[str, Any]:
    """The record of a saved image (see the module docstring); ``{"id": ...}`` at least.
    Sidecars outside ``root`` are not read."""
    candidates: List[Tuple[str, str]] = []
    named = row.metadata_path
    if named and not os.path.isabs(named):
        named = os.path.join(root, named)
    for path in (named, sidecar_path(image_path, "json"), sidecar_path(image_path, "txt")):
        kind = os.path.splitext(path or "")[1].lower()
        if path and kind in (".json", ".txt") and (path, kind) not in candidates:
            candidates.append((path, kind))
    record: Optional[Dict[str, Any]] = None
    for path, kind in sorted(candidates, key=lambda c: c[1] != ".json"):
        if not os.path.isfile(path) or not _inside(root, path):
            continue
        if kind == ".json":
            record = _read_json_record(path)
        else:
            try:
                with open(path, "rb") as handle:
                    text = handle.read(MAX_RECORD_BYTES + 1)
                if len(text) > MAX_RECORD_BYTES:
                    raise UnreadableRecord(f"{path}: larger than {MAX_RECORD_BYTES // 1024} KB")
                record = parse_txt_sidecar(text.decode("utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                logger.warning("cannot read %s (%s)", path, exc)
        if record is not None:
            break
    record = dict(record or {})
    if not isinstance(record.get("generation"), dict):
        try:
            infotext = read_infotext(image_path)
        except (MetadataError, OSError) as exc:
            logger.debug("image %s: no embedded infotext (%s)", row.image_id, exc)
            infotext = None
        record["generation"] = generation_from_infotext(infotext)
    record["id"] = row.image_id
    if not record.get("url"):
        record["url"] = row.url
    if not record.get("type"):
        video = os.path.splitext(image_path)[1].lower() in VIDEO_EXTENSIONS
        record["type"] = "video" if video else "image"
    for key in RECORD_KEYS:  # one shape whatever the source held
        record.setdefault(key, None)
    return record


def iter_saved(
    archive: Archive, output_dir: str
) -> Iterator[Tuple[ArchivedImage, Optional[ExportItem], Optional[str]]]:
    """Every archived image: ``(row, item, None)`` when its file is readable, else
    ``(row, None, reason)``."""
    root = os.path.abspath(output_dir)
    for row in archive.iter_images():
        path = row.path
        if not path:
            yield row, None, MISSING
            continue
        if not os.path.isabs(path):
            path = os.path.join(root, path)
        if not _inside(root, path):
            logger.warning("image %s: its archived file %s is outside %s", row.image_id, path, root)
            yield row, None, OUTSIDE
            continue
        if not os.path.isfile(path):
            yield row, None, MISSING
            continue
        try:
            record = load_record(row, path, root)
        except UnreadableRecord as exc:
            logger.warning("image %s: skipped, its record cannot be used (%s)", row.image_id, exc)
            yield row, None, UNREADABLE
            continue
        yield row, ExportItem(row.image_id, path, row.sha256, record), None

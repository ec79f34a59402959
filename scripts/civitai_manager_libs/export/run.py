"""One export: the archive of an output folder -> a training set in another folder, offline.

:func:`check_export` refuses bad input before anything is written; :func:`run_export` walks the
archive by image id, keeps what the filters let through, skips videos (unless asked), files whose
content was already exported under another id, and (captions) images with nothing to caption, and
hands the rest to the format's writer. The summary counts what was exported and why the rest was
skipped.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set

from ..errors import DiskSpaceError, InvalidQueryError, OutputPathError
from ..store.paths import is_reserved_name
from .captions import CAPTION_SOURCES, build_caption
from .source import (
    DUPLICATE,
    FILTERED,
    NO_CAPTION,
    VIDEO,
    ExportFilters,
    ExportItem,
    iter_saved,
    open_archive,
)
from .writers import FORMATS, Writer, open_writer

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (rows looked at, rows in the archive)


@dataclass
class ExportOptions:
    fmt: str
    filters: ExportFilters = field(default_factory=ExportFilters)
    caption_prefix: Optional[str] = None
    kohya_repeats: Optional[int] = None
    concept: Optional[str] = None
    include_videos: bool = False
    caption_source: str = "prompt"  # prompt | tags | both (export/captions.build_caption)


@dataclass
class ExportSummary:
    folder: str = ""
    exported: int = 0
    linked: int = 0
    copied: int = 0
    stale: int = 0  # files of an earlier export into the same folder, not written this time
    skipped: Dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def lines(self) -> List[str]:
        total = sum(self.skipped.values())
        lines = [f"exported {self.exported} to {self.folder}, skipped {total}"]
        lines += [f"  {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        if self.exported:
            lines.append(f"  files hard-linked {self.linked}, copied {self.copied}")
        if self.stale:
            lines.append(f"  left from an earlier export (not touched): {self.stale} file(s)")
        return lines


def _concept_folder(options: ExportOptions) -> Optional[str]:
    if options.kohya_repeats is None and options.concept is None:
        return None
    if options.fmt != "captions":
        raise InvalidQueryError("--kohya-repeats and --concept go with --format captions")
    if options.kohya_repeats is None or not options.concept:
        raise InvalidQueryError("kohya's layout needs both --kohya-repeats N and --concept NAME")
    if options.kohya_repeats < 1:
        raise InvalidQueryError(f"--kohya-repeats must be 1 or more, got {options.kohya_repeats}")
    concept = options.concept.strip()
    bad = set('/\\:*?"<>|') | {chr(c) for c in range(32)}
    if not concept or concept in (".", "..") or any(ch in bad for ch in concept):
        raise InvalidQueryError(
            f"--concept {options.concept!r} must be a plain folder name (no / \\ : * ? \" < > |)"
        )
    folder = f"{options.kohya_repeats}_{concept}"
    if concept.endswith((".", " ")) or is_reserved_name(folder):
        raise InvalidQueryError(
            f"--concept {options.concept!r} does not make the same folder on every system: "
            "Windows drops a trailing dot or space (and reserves CON, NUL, COM1...); choose "
            "another name"
        )
    return f"{options.kohya_repeats}_{concept}"


def check_export(source: str, dest: str, options: ExportOptions) -> str:
    """Validate an export before anything is written; returns the folder the files go to.

    Raises InvalidQueryError (bad options; NoArchiveError: no archive in ``source``) or
    OutputPathError (``dest`` unusable).
    """
    if options.fmt not in FORMATS:
        raise InvalidQueryError(f"unknown export format {options.fmt!r}; use {', '.join(FORMATS)}")
    if options.include_videos and options.fmt == "imagefolder":
        raise InvalidQueryError("the imagefolder format holds images only; drop --videos")
    if options.caption_source not in CAPTION_SOURCES:
        raise InvalidQueryError(
            f"unknown caption source {options.caption_source!r}; use {', '.join(CAPTION_SOURCES)}"
        )
    concept = _concept_folder(options)
    source, dest = os.path.abspath(source), os.path.abspath(dest)
    open_archive(source).close()
    if os.path.realpath(source) == os.path.realpath(dest):
        raise OutputPathError(
            f"--to {dest} is the download folder itself; export into another folder"
        )
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise OutputPathError(f"--to {dest} exists and is not a folder")
    return os.path.join(dest, concept) if concept else dest


def _content_key(item: ExportItem) -> str:
    from ..engine.duplicates import sha256_file

    return item.sha256.lower() if item.sha256 else sha256_file(item.path)


def _write_error(exc: OSError, folder: str) -> Exception:
    if exc.errno == errno.ENOSPC:
        return DiskSpaceError(f"the disk of {folder} is full; free some space and export again")
    return OutputPathError(f"cannot write the export into {folder}: {exc.strerror or exc}")


def run_export(
    source: str, dest: str, options: ExportOptions, progress: Optional[Progress] = None
) -> ExportSummary:
    """Export the saved images of ``source`` into ``dest`` (see the module docstring)."""
    folder = check_export(source, dest, options)
    source = os.path.abspath(source)
    summary = ExportSummary(folder=folder)
    seen: Set[str] = set()
    archive = open_archive(source)
    writer: Optional[Writer] = None
    try:
        total = archive.image_count()
        try:
            writer = open_writer(options.fmt, folder, os.path.abspath(dest))
        except OSError as exc:
            raise _write_error(exc, folder) from None
        for done, (row, item, reason) in enumerate(iter_saved(archive, source), 1):
            if progress is not None:
                progress(done, total)
            if item is None:
                summary.skip(reason or "unreadable")
                continue
            if not options.filters.keeps(item.record):
                summary.skip(FILTERED)
                continue
            if item.is_video and not options.include_videos:
                summary.skip(VIDEO)
                continue
            key = _content_key(item)
            if key in seen:
                logger.debug("image %s: same content as an image already exported", row.image_id)
                summary.skip(DUPLICATE)
                continue
            caption = build_caption(
                item.prompt,
                item.record.get("tags"),
                options.caption_source,
                options.caption_prefix,
            )
            if options.fmt == "captions" and not caption:
                summary.skip(NO_CAPTION)
                continue
            seen.add(key)
            try:
                writer.add(item, caption)
            except OSError as exc:
                raise _write_error(exc, folder) from None
            summary.exported += 1
        try:
            writer.close()
        except OSError as exc:
            raise _write_error(exc, folder) from None
    except BaseException:
        abort = getattr(writer, "abort", None)
        if abort is not None:
            abort()
        raise
    finally:
        archive.close()
    if writer is not None:
        summary.linked, summary.copied = writer.linked, writer.copied
        summary.stale = len(writer.stale_files())
        if summary.stale:
            logger.warning(
                "%s also holds %d file(s) of an earlier export that this one did not write; "
                "export into an empty folder for a set of exactly these images",
                folder,
                summary.stale,
            )
    return summary

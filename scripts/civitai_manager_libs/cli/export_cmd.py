"""``python main.py export --from OUTPUT_DIR --to DIR --format captions|imagefolder|jsonl``: a
training set from what a download saved, offline (the archive and the files only)."""

from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence, TextIO

from .args import _nsfw_levels, _positive_int, path_arg
from .catalog import PROG
from .progress import progress_bar
from .shell import add_logging, new_parser, run_command
from ..export.captions import CAPTION_SOURCES
from ..export.run import ExportOptions, check_export, run_export
from ..export.source import ExportFilters
from ..export.writers import FORMATS


def _ids(text: str) -> List[int]:
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise argparse.ArgumentTypeError(
                f"expected positive ids separated by commas, got {text!r}"
            )
        ids.append(int(part))
    return ids


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        f"{PROG} export",
        "Export downloaded images as a training set: captions (kohya), a Hugging Face "
        "imagefolder or JSON lines. Reads only the output folder's archive and files.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=path_arg,
        required=True,
        metavar="OUTPUT_DIR",
        help="the --output folder of earlier downloads",
    )
    parser.add_argument(
        "--to",
        dest="dest",
        type=path_arg,
        required=True,
        metavar="DIR",
        help="the folder to export into (created)",
    )
    parser.add_argument("--format", dest="fmt", required=True, choices=FORMATS)
    parser.add_argument(
        "--caption-prefix",
        metavar="TEXT",
        help="tags put first in every caption, e.g. a trigger word",
    )
    parser.add_argument(
        "--caption-source",
        choices=CAPTION_SOURCES,
        default="prompt",
        help="what captions are made of: the prompt (default), Civitai's tags for the image "
        "(saved by 'download --with-tags'), or both",
    )
    parser.add_argument(
        "--kohya-repeats",
        type=_positive_int,
        metavar="N",
        help="with --concept: write into N_CONCEPT/ as kohya's trainer expects",
    )
    parser.add_argument("--concept", metavar="NAME", help="the concept folder name for kohya")
    parser.add_argument("--videos", action="store_true", help="export videos too (not imagefolder)")
    parser.add_argument(
        "--nsfw",
        type=_nsfw_levels,
        help="only these levels: comma list of None,Soft,Mature,X or 'all'",
    )
    parser.add_argument(
        "--model", type=_ids, default=[], metavar="ID[,ID]", help="only these models"
    )
    parser.add_argument(
        "--version", type=_ids, default=[], metavar="ID[,ID]", help="only these model versions"
    )
    parser.add_argument(
        "--creator", type=_names, default=[], metavar="NAME[,NAME]", help="only these creators"
    )
    parser.add_argument(
        "--base-model",
        type=_names,
        default=[],
        metavar="NAME[,NAME]",
        help="only these base models, e.g. 'SDXL 1.0'",
    )
    parser.add_argument(
        "--with-prompt", action="store_true", help="only images that carry a prompt"
    )
    add_logging(parser)
    return parser


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    source = os.path.abspath(os.path.expanduser(args.source))
    dest = os.path.abspath(os.path.expanduser(args.dest))
    filters = ExportFilters(
        nsfw_levels=tuple(args.nsfw or ()),
        model_ids=tuple(args.model),
        version_ids=tuple(args.version),
        creators=tuple(args.creator),
        base_models=tuple(args.base_model),
        with_generation=args.with_prompt,
    )
    options = ExportOptions(
        fmt=args.fmt,
        filters=filters,
        caption_prefix=args.caption_prefix,
        kohya_repeats=args.kohya_repeats,
        concept=args.concept,
        include_videos=args.videos,
        caption_source=args.caption_source,
    )
    check_export(source, dest, options)  # bad input: one sentence, before the bar or any file
    bar = progress_bar(args.quiet, total=0, unit="img", desc="export")

    def progress(done: int, total: int) -> None:
        if bar is not None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

    try:
        summary = run_export(source, dest, options, progress)
    finally:
        if bar is not None:
            bar.close()
    for line in summary.lines():
        out.write(line + "\n")
    return 0


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    """``python main.py export ...`` (``argv`` without the word ``export``)."""
    return run_command(build_parser(), cmd_export, list(argv or []), out)

"""``python main.py search ...`` and ``python main.py index ...``: find saved images by what made
them, offline. Both read the output folders' archives only (store/library_index.py,
store/library_query.py); nothing here builds an HTTP client or sends a request."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import unicodedata
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple

from .args import _filter_value, _nsfw_levels, _positive_int
from .catalog import PROG
from .shell import add_logging, new_parser, run_command
from ..errors import InvalidQueryError
from ..store.archive import Archive, archive_path
from ..store.library_query import MARK_CLOSE, MARK_OPEN, Hit, LibraryQuery

logger = logging.getLogger(__name__)

SEARCH_EXAMPLES = """examples:
  python main.py search "neon city"
  python main.py search '"neon city" OR cyberpunk -rain' --lora "Soft Light" --limit 5
  python main.py search 'neo*' --base-model "SDXL 1.0" --since 2026-01-01 --min-reactions 10
  python main.py search --creator alice_art --output ./images --output ./more-images --json
query syntax (SQLite FTS5): words (all must match), "a phrase", OR, NOT, -word, prefix*,
column:word (columns: prompt, negative_prompt, checkpoint, loras, embeddings, vae, model,
creator, tags, sampler)."""


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _date(text: str) -> int:
    from ..civitai.filters import parse_date

    value = parse_date(text)
    if value is None:
        raise InvalidQueryError(f"expected a date such as 2026-05-01, got {text!r}")
    return value


def _add_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        "-o",
        action="append",
        metavar="DIR",
        help="an output folder of earlier downloads; repeat for several "
        "(default: setting images.output_path, ./images)",
    )


def build_search_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        f"{PROG} search",
        "Search the images saved in output folders by prompt, models, LoRAs, creator, tags, "
        "sampler. Offline: reads the folders' archives only.",
    )
    parser.epilog = SEARCH_EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("query", nargs="?", default="", help="what to look for (FTS5 syntax)")
    parser.add_argument("--lora", action="append", default=[], metavar="NAME", help="used LoRA")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME|ID",
        help="checkpoint or model name, or a model / version id",
    )
    parser.add_argument("--tag", action="append", default=[], metavar="TAG", help="a tag")
    parser.add_argument(
        "--base-model", type=_names, default=[], metavar="NAME[,NAME]", help="e.g. 'SDXL 1.0'"
    )
    parser.add_argument(
        "--sampler", action="append", default=[], metavar="NAME", help="e.g. 'DPM++ 2M Karras'"
    )
    parser.add_argument("--creator", type=_names, default=[], metavar="NAME[,NAME]")
    parser.add_argument(
        "--since", type=_filter_value(_date), metavar="DATE", help="posted on or after DATE (UTC)"
    )
    parser.add_argument("--min-reactions", type=_positive_int, default=0, metavar="N")
    parser.add_argument("--nsfw", type=_nsfw_levels, metavar="LEVELS", help="None,Soft,Mature,X")
    _add_outputs(parser)
    parser.add_argument(
        "--limit", type=_positive_int, default=20, metavar="N", help="at most N (0: all; 20)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_logging(parser)
    return parser


def build_index_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        f"{PROG} index",
        "Build the search index of output folders saved by older versions (from the archive "
        "and the json / txt sidecars, else the infotext in the files). Offline.",
    )
    _add_outputs(parser)
    parser.add_argument("--rebuild", action="store_true", help="drop the index and build it anew")
    add_logging(parser)
    return parser


def _folders(args: argparse.Namespace) -> List[str]:
    from .. import setting

    folders = args.output or [setting.get("images.output_path")]
    unique: List[str] = []
    for folder in folders:
        path = os.path.abspath(os.path.expanduser(folder))
        if not os.path.isfile(archive_path(path)):
            raise InvalidQueryError(
                f"no download history in {path}; pass the --output folder of earlier downloads"
            )
        if path not in unique:
            unique.append(path)
    return unique


# ------------------------------------------------------------------------------------ index


def cmd_index(args: argparse.Namespace, out: TextIO) -> int:
    from ..export.library import build_index

    for folder in _folders(args):
        started = time.monotonic()
        bar = None
        if not args.quiet and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=0, unit="img", desc="index", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.update(done - bar.n)

        try:
            with Archive(archive_path(folder)) as archive:
                summary = build_index(archive, folder, args.rebuild, progress)
        finally:
            if bar is not None:
                bar.close()
        out.write(summary.line(time.monotonic() - started) + "\n")
    return 0


# ------------------------------------------------------------------------------------ search


def _query(args: argparse.Namespace) -> LibraryQuery:
    return LibraryQuery(
        text=args.query or "",
        loras=tuple(args.lora),
        models=tuple(args.model),
        tags=tuple(args.tag),
        base_models=tuple(args.base_model),
        samplers=tuple(args.sampler),
        creators=tuple(args.creator),
        nsfw_levels=tuple(args.nsfw or ()),
        since_ms=args.since,
        min_reactions=args.min_reactions,
    )


def _iso(ms: Any) -> Optional[str]:
    if not isinstance(ms, int):
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cells(char: str) -> int:
    """Terminal cells a character takes (CJK and other wide characters take two)."""
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit(marked: str, width: int, open_mark: str, close_mark: str) -> str:
    """``marked`` (MARK_OPEN / MARK_CLOSE around matches) on one line of at most ``width``
    visible characters, the first match in view, marks drawn as ``open_mark`` / ``close_mark``."""
    text = " ".join(marked.split())
    plain_first = text.find(MARK_OPEN)
    visible = text.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")
    if sum(_cells(c) for c in visible) <= width:  # all of it fits: only the marks change
        return text.replace(MARK_OPEN, open_mark).replace(MARK_CLOSE, close_mark)
    width = max(width, 8)
    start = 0
    if plain_first > width - 12 and len(visible) > width:
        start = plain_first - min(20, width // 3)  # a little context before the first match
    pieces: List[str] = ["…"] if start > 0 else []
    shown = len(pieces)
    inside = False
    plain_index = 0
    for char in text:
        if char in (MARK_OPEN, MARK_CLOSE):
            inside = char == MARK_OPEN
            if plain_index >= start:
                pieces.append(open_mark if inside else close_mark)
            continue
        if plain_index >= start:
            if shown + _cells(char) > width - 1:
                pieces.append("…")
                break
            pieces.append(char)
            shown += _cells(char)
        plain_index += 1
    if inside:
        pieces.append(close_mark)
    return "".join(pieces)


def _display_path(path: Optional[str]) -> str:
    if not path:
        return "-"
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def result_lines(
    hits: Iterable[Tuple[str, Hit]], as_json: bool, width: int, tty: bool
) -> Iterable[str]:
    open_mark, close_mark = ("\x1b[1;7m", "\x1b[0m") if tty else ("**", "**")
    for folder, hit in hits:
        marked = hit.marked or hit.prompt or ""
        if as_json:
            values: Dict[str, Any] = {
                "id": hit.image_id,
                "path": hit.path,
                "folder": folder,
                "creator": hit.creator,
                "prompt": hit.prompt,
                "marked": marked.replace(MARK_OPEN, "**").replace(MARK_CLOSE, "**"),
                "rank": hit.rank,
            }
            values.update(hit.values)
            values["created_at"] = _iso(values.pop("created_ms", None))
            yield json.dumps(values, ensure_ascii=False)
            continue
        head = f"{_display_path(hit.path)}  {hit.image_id}  {hit.creator or '-'}  "
        used = sum(_cells(c) for c in head)
        # the path stays whole (it is what the line is for); the prompt gets what is left
        yield head + fit(marked, max(width - used, 24), open_mark, close_mark)


def cmd_search(args: argparse.Namespace, out: TextIO) -> int:
    query = _query(args)
    from ..export.library import search_folders

    hits, warnings = search_folders(_folders(args), query, args.limit)
    for warning in warnings:
        logger.warning("%s", warning)
    tty = hasattr(out, "isatty") and out.isatty()
    width = shutil.get_terminal_size((120, 24)).columns
    for line in result_lines(hits, args.json, width, tty):
        out.write(line + "\n")
    if not hits:
        sys.stderr.write("no saved image matches\n")
    return 0


def search_main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    """``python main.py search ...`` (``argv`` without the word ``search``)."""
    return run_command(build_search_parser(), cmd_search, list(argv or []), out)


def index_main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    """``python main.py index ...`` (``argv`` without the word ``index``)."""
    return run_command(build_index_parser(), cmd_index, list(argv or []), out)

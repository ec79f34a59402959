"""Argument parsing for the CLI: the argparse parser and its option value types."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .catalog import PROG
from ..errors import CivitaiGalleryError
from ..records import NSFW_LEVELS
from ..util.suggest import SuggestingParser

TARGET_KINDS = (
    "model",
    "version",
    "user",
    "image",
    "url",
    "filter",
    "collection",
    "post",
    "tag",
    "reactions",
)
METADATA_FORMATS = ("json", "txt", "exif")
DUPLICATE_POLICIES = {"skip": "skip", "replace": "replace", "keep-both": "keep_both"}
TASK_STATUSES = ("pending", "downloading", "completed", "skipped", "failed", "cancelled")


class UsageError(CivitaiGalleryError, ValueError):
    """The command line is wrong; the message says what to write instead."""


class ParserExit(Exception):
    """``--help`` (or argparse's own exit): ``main`` returns ``status`` instead of exiting."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _Parser(SuggestingParser):
    """ArgumentParser that raises instead of exiting, so ``main`` owns every exit code; its
    errors suggest the closest command, choice or option (``util/suggest.py``)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        message = self.with_hint(message)
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: Optional[str] = None):
        if message:
            self._print_message(message, sys.stderr)
        raise ParserExit(status)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def path_arg(text: str) -> str:
    """A folder or file name given on the command line: an empty one is bad input (``-o ""``
    was silently ./images), not the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty path; give a folder or file name (leave the option out for the default)"
        )
    return text


def _concurrency(text: str) -> int:
    value = _positive_int(text)
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError(f"concurrency must be between 1 and 32, got {value}")
    return value


def _nsfw_levels(text: str) -> List[str]:
    if text.strip().lower() == "all":
        return list(NSFW_LEVELS)
    by_lower = {level.lower(): level for level in NSFW_LEVELS}
    levels: List[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.lower() not in by_lower:
            raise argparse.ArgumentTypeError(
                f"unknown NSFW level {part!r}; use a comma list of {','.join(NSFW_LEVELS)} or 'all'"
            )
        level = by_lower[part.lower()]
        if level not in levels:
            levels.append(level)
    if not levels:
        raise argparse.ArgumentTypeError("give at least one NSFW level, e.g. --nsfw None,Soft")
    return levels


def _metadata_formats(text: str) -> List[str]:
    if text.strip().lower() == "none":
        return []
    formats: List[str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part not in METADATA_FORMATS:
            raise argparse.ArgumentTypeError(
                f"unknown metadata format {part!r}; use a comma list of "
                f"{','.join(METADATA_FORMATS)} or 'none'"
            )
        if part not in formats:
            formats.append(part)
    return formats


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        "-o",
        type=path_arg,
        help="output folder (default: setting images.output_path, ./images)",
    )
    parser.add_argument(
        "--base-url",
        help="Civitai origin (default: $CIVITAI_BASE_URL or https://civitai.com); given alone "
        "it serves every NSFW level",
    )
    parser.add_argument(
        "--red-base-url",
        help="Civitai's front for Mature/X listings and look-ups (default: "
        "$CIVITAI_RED_BASE_URL, else --base-url when given, else https://civitai.red)",
    )
    parser.add_argument(
        "--api-key",
        help="Civitai API key (default: $CIVITAI_API_KEY); sent to Civitai's API paths only",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no bars")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        help="parallel image downloads (default: setting images.max_concurrent, 5)",
    )
    parser.add_argument("--report", metavar="FILE", help="write a JSON completeness report here")
    add_pacing_options(parser)


def _setting_value(parse):
    """An argparse type from a settings parser (transport/pacing's; its message on bad input)."""

    def convert(text: str) -> str:
        from ..errors import SettingsError

        try:
            parse(text)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return convert


def add_pacing_options(parser: argparse.ArgumentParser) -> None:
    """--sleep-request and --limit-rate (transport/pacing.py; settings http_sleep_request and
    http_limit_rate)."""
    from ..settings.values import parse_interval, parse_rate

    parser.add_argument(
        "--sleep-request",
        type=_setting_value(parse_interval),
        metavar="SECONDS",
        help="least seconds between two API requests, e.g. 2 (2 to 2.4 s) or 2-5 "
        "(default: setting http_sleep_request, 0)",
    )
    parser.add_argument(
        "--limit-rate",
        type=_setting_value(parse_rate),
        metavar="RATE",
        help="most bytes per second for each image download, e.g. 500k or 2M "
        "(default: setting http_limit_rate, no limit)",
    )


def _add_file_options(parser: argparse.ArgumentParser, remembered: bool) -> None:
    """How files are written: template, metadata, thumbnails, duplicate policy. ``remembered``:
    the defaults are what the last download into the folder used (``retry-failed``)."""
    last = "what the last download into this folder used"
    parser.add_argument(
        "--template",
        help="path template, e.g. '{model_id}/{id}' (no extension; default: "
        + (last if remembered else "setting images.path_template")
        + ")",
    )
    parser.add_argument(
        "--metadata",
        type=_metadata_formats,
        help="comma list of json,txt,exif or 'none' (default: "
        + (last if remembered else "setting images.metadata_format")
        + ")",
    )
    parser.add_argument(
        "--thumbnails", action="store_true", default=None, help="also write .thumbnails/"
    )
    parser.add_argument(
        "--duplicates",
        choices=sorted(DUPLICATE_POLICIES),
        help="what to do with a file whose content is already saved (default: skip)",
    )


DOWNLOAD_EXAMPLES = """examples:
  python main.py download model 4201 --output images
  python main.py download version 43888 --nsfw None,Soft --metadata json,txt,exif
  python main.py download url "https://civitai.com/models/4201?modelVersionId=43888"
  python main.py download user someartist --limit 50
  python main.py download filter modelId=4201 sort=Newest --limit 10
  python main.py download image 1001 1002 1003 --with-tags
  python main.py download image --from-file ids.txt
  python main.py download model 4201 --with-generation-data --since 2024-01-01
  python main.py download collection 107023 --template '{collection_name}/{date:%Y-%m}/{id}'
  python main.py download url https://civitai.com/user/someartist/videos --limit 0
  python main.py download url "https://civitai.com/images?sort=Newest&period=Week"
  python main.py download post 3000240
  python main.py download tag landscape --limit 100
  python main.py download reactions --kind Like,Heart --api-key KEY
"""


# -- filters (issue 14): --base-model, --type, --with-generation-data, --since/--until,
# --min-reactions, --used-with; the spec and its rules live in civitai/filters.py ---------------


def _filter_value(parse):
    """An argparse type from a ``civitai.filters`` parser (its message on bad input)."""

    def convert(text: str):
        from ..errors import InvalidQueryError

        try:
            return parse(text)
        except InvalidQueryError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _add_filter_options(parser: argparse.ArgumentParser) -> None:
    from ..civitai import filters as f

    group = parser.add_argument_group("filters (the archive remembers them for retry-failed)")
    group.add_argument(
        "--base-model",
        type=_filter_value(f.parse_base_models),
        metavar="NAME[,NAME]",
        help="only these base models, Civitai's names (e.g. 'SDXL 1.0,Pony'); sent to Civitai",
    )
    group.add_argument(
        "--type",
        dest="media_type",
        type=_filter_value(f.parse_media_type),
        metavar="image|video|all",
        help="only images or only videos (default: all); sent to Civitai",
    )
    group.add_argument(
        "--with-generation-data",
        action="store_true",
        help="only images whose metadata holds a prompt (hidden metadata counts as filtered)",
    )
    group.add_argument(
        "--since",
        type=_filter_value(f.parse_date),
        metavar="DATE",
        help="only images posted on or after DATE (YYYY-MM-DD or ISO time, UTC); the listing "
        "is sorted Newest unless a sort is given, and stops at the first older page",
    )
    group.add_argument(
        "--until",
        type=_filter_value(lambda text: f.parse_date(text, end=True)),
        metavar="DATE",
        help="only images posted up to DATE (a bare date includes that whole day)",
    )
    group.add_argument(
        "--min-reactions",
        type=_filter_value(f.parse_count),
        metavar="N",
        help="only images with at least N reactions (likes, hearts, laughs, cries, dislikes)",
    )
    group.add_argument(
        "--used-with",
        type=_filter_value(f.parse_version_ids),
        metavar="VERSION_ID[,...]",
        help="only images that used all these model versions (modelVersionIds, meta resources)",
    )


def filters_from_args(args: argparse.Namespace):
    """The ``FilterSpec`` of the filter flags (None when none was given)."""
    from ..civitai.filters import FilterSpec, iso

    since, until = getattr(args, "since", None), getattr(args, "until", None)
    spec = FilterSpec.build(
        base_models=getattr(args, "base_model", None),
        media_type=getattr(args, "media_type", None),
        with_generation_data=getattr(args, "with_generation_data", False),
        since=iso(since) if since is not None else None,
        until=iso(until) if until is not None else None,
        min_reactions=getattr(args, "min_reactions", None),
        used_with=getattr(args, "used_with", None),
    )
    return spec if spec.active else None


def _reaction_kinds(text: str) -> List[str]:
    from ..civitai.query import reactions_target
    from ..errors import InvalidQueryError

    try:
        return list(reactions_target(text.split(",")).params["reactions"])  # type: ignore[index]
    except InvalidQueryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


TARGET_HELP = (
    "  model ID | version ID | user NAME | image ID | collection ID | post ID | tag NAME |\n"
    "  reactions (yours; needs the API key; --kind Like,Heart,...) |\n"
    "  url URL (a civitai.com link: .../models/1, .../user/NAME[/images|/videos|/posts],\n"
    "  .../collections/ID, .../posts/ID, .../tag/NAME, .../images?..., .../videos?...) |\n"
    "  filter KEY=VALUE ... (keys: modelId, modelVersionId, postId, imageId, userId,\n"
    "  username, sort, period, nsfw, type, baseModels, tags)"
)


def add_target_arguments(parser: argparse.ArgumentParser, default_limit: str) -> None:
    """What to list and which images to keep: ``KIND VALUE...``, ``--limit``, ``--nsfw``,
    ``--kind`` and the filter flags; ``download`` and ``list`` share them (``default_limit``
    words the default of ``--limit``)."""
    parser.add_argument(
        "kind",
        choices=TARGET_KINDS,
        metavar="KIND",
        help="what to list: " + ", ".join(TARGET_KINDS),
    )
    parser.add_argument(
        "values",
        nargs="*",
        metavar="VALUE",
        help="id, name, URL or KEY=VALUE pairs; 'image' takes several ids (asked 200 at a time)",
    )
    parser.add_argument(
        "--limit", type=_positive_int, help=f"at most N images; 0 = no limit ({default_limit})"
    )
    parser.add_argument(
        "--nsfw",
        type=_nsfw_levels,
        help="comma list of levels None,Soft,Mature,X or 'all' "
        "(default: setting images.default_nsfw_filter)",
    )
    parser.add_argument(
        "--kind",
        dest="reaction_kinds",
        type=_reaction_kinds,
        metavar="Like,Heart,...",
        help="reactions only: which of Like,Dislike,Heart,Laugh,Cry (default: all)",
    )
    _add_filter_options(parser)


def _add_download(sub) -> None:
    dl = sub.add_parser(
        "download",
        help="download the images of a model, version, user, image, collection, post, tag, "
        "your reactions, a url or a filter",
        usage="%(prog)s KIND VALUE [VALUE ...] [options]   (reactions: no VALUE)",
        description=(
            "Download every image of a target with its generation data. KIND VALUE is one of:\n"
            + TARGET_HELP
        ),
        epilog=DOWNLOAD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(dl, "default: all for model/version/collection/post, 20 for the others")
    dl.add_argument(
        "--from-file",
        metavar="FILE",
        help="with 'image': more image ids or image links, one per line ('#' starts a comment; "
        "'-' reads standard input)",
    )
    dl.add_argument(
        "--with-tags",
        action="store_true",
        help="ask Civitai for each image's tags too (withTags=true); they go into the JSON "
        "sidecar ('tags')",
    )
    dl.add_argument(
        "--full",
        action="store_true",
        help="list every page, even on a re-run that could stop at the images it already has",
    )
    _add_file_options(dl, remembered=False)
    _add_run_options(dl)
    _add_common(dl)


def build_parser() -> argparse.ArgumentParser:
    """The ``main.py download|tasks|retry-failed`` parser; it raises ``UsageError`` on bad input
    and ``ParserExit`` where argparse would exit (``--help``)."""
    parser = _Parser(
        prog=PROG,
        description="Download Civitai images with their generation data, headless. "
        "Without a command, python main.py serves the gallery tab (python main.py --help).",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{download,tasks,retry-failed}", title="commands"
    )
    sub.required = True
    _add_download(sub)

    tasks = sub.add_parser("tasks", help="show the task history kept in the output folder")
    tasks.add_argument("--status", choices=TASK_STATUSES, help="only tasks with this status")
    tasks.add_argument("--limit", type=_positive_int, default=50, help="rows to show (default 50)")
    _add_common(tasks)

    retry = sub.add_parser("retry-failed", help="download again every failed task of the archive")
    _add_file_options(retry, remembered=True)
    _add_run_options(retry)
    _add_common(retry)
    return parser

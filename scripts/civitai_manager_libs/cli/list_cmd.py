"""``python main.py list KIND VALUE... --to FILE.parquet|FILE.jsonl``: the listing alone, one row
per image, for img2dataset to download at scale; every target and filter of ``download`` (one
argument definition: ``cli.args.add_target_arguments``). Resumable (see export.listing)."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Dict, Optional, Sequence, TextIO

from .args import add_target_arguments, filters_from_args, path_arg
from .catalog import PROG
from .progress import progress_bar
from ..errors import CivitaiGalleryError, OutputPathError
from .shell import add_logging, new_parser, run_command
from .target import check_target, parse_target, require_key_for
from ..records import NSFW_LEVELS
from ..civitai.drift import Drift
from ..export.listing import (
    ListingFile,
    ListingJob,
    job_key,
    listing_format,
    require_pyarrow,
    run_listing,
)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        f"{PROG} list",
        "List the images of any download target (model, version, user, image, collection, post, "
        "tag, your reactions, a civitai.com link or a filter) into a Parquet or JSON Lines file "
        "(url, caption, id, NSFW level, size, creator, model/version ids, generation data) "
        "without downloading them; img2dataset downloads from it. The filters are download's. "
        "An interrupted listing continues when the same command runs again.",
    )
    add_target_arguments(parser, "default: 0, all")
    parser.add_argument(
        "--to",
        dest="dest",
        type=path_arg,
        required=True,
        metavar="FILE",
        help="FILE.parquet or FILE.jsonl",
    )
    parser.add_argument("--videos", action="store_true", help="list videos too")
    parser.add_argument(
        "--with-tags",
        action="store_true",
        help="ask Civitai for each image's tags too (withTags=true): the 'tags' column",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished listing at --to (without it, an existing file is refused)",
    )
    parser.add_argument(
        "--clean-captions",
        action="store_true",
        help="captions cleaned for training as 'export --format captions' does "
        "(default: the prompt as written)",
    )
    parser.add_argument(
        "--base-url", help="Civitai origin (default: $CIVITAI_BASE_URL or https://civitai.com)"
    )
    parser.add_argument(
        "--red-base-url",
        help="Civitai's front for Mature/X (default: $CIVITAI_RED_BASE_URL, else --base-url "
        "when given, else https://civitai.red)",
    )
    parser.add_argument(
        "--api-key", help="Civitai API key (default: $CIVITAI_API_KEY); sent to the API host only"
    )
    add_logging(parser)
    return parser


def _request(target: Any, args: argparse.Namespace, spec: Any) -> Any:
    """The target's listing as ``download`` builds it (a single image: its one-item listing)."""
    from ..planning.listing_request import filtered_listing, for_target

    limit = args.limit or 0
    params = target.value if target.kind == "filter" else target.params
    if target.kind == "image":
        return filtered_listing(
            {"imageId": target.value, "nsfw_levels": args.nsfw or list(NSFW_LEVELS)}, 1, spec
        )
    from .. import setting

    default = setting.get("images.default_nsfw_filter")
    kind, value, version_id = target.kind, target.value, target.version_id
    return for_target(kind, value, version_id, params, args.nsfw, spec, limit, default)


def _check_writable(dest: str) -> None:
    """``--to`` names a file that can be written: not a folder, in a folder that is (or can
    become) writable; ``OutputPathError`` (exit 2) with one line otherwise. Nothing is left."""
    from ..store.paths import check_output_folder

    if os.path.isdir(dest):
        raise OutputPathError(f"--to {dest} is a folder; give a FILE.parquet or FILE.jsonl")
    folder = os.path.dirname(dest)
    try:
        check_output_folder(folder)
    except OutputPathError as exc:
        why = str(exc).split("(", 1)[1].split(")", 1)[0] if "(" in str(exc) else "not a folder"
        raise OutputPathError(
            f"cannot write {dest}: its folder {folder} cannot be written ({why}); "
            "choose another --to"
        ) from None


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    from ..civitai.api import CivitaiAPI
    from ..http_client import CivitaiHttpClient
    from ..planning import item_filter

    dest = os.path.abspath(os.path.expanduser(args.dest))
    _check_writable(dest)  # one line and exit 2 before any request
    if listing_format(dest) == "parquet":
        require_pyarrow()  # before any request
    ListingFile(dest).check_writable(args.overwrite)  # a finished file or a link: refused first
    target = parse_target(args.kind, args.values, args.base_url, reaction_kinds=args.reaction_kinds)
    api_key = args.api_key or os.environ.get("CIVITAI_API_KEY") or None
    require_key_for(target, api_key)  # your reactions: exit 2 without the key
    spec = filters_from_args(args)
    request = _request(target, args, spec)  # InvalidQueryError (exit 2) before any request
    params = dict(request.params)
    if args.with_tags:  # without the flag the requests stay as they were
        params["withTags"] = "true"
    videos = args.videos or (spec is not None and spec.media_type == "video")
    extra: Dict[str, Any] = {"limit": args.limit or 0, "videos": videos}
    extra["clean"] = args.clean_captions
    if args.with_tags:
        extra["tags"] = True
    if request.spec.active:
        extra["filters"] = request.spec.key()
    job = ListingJob(
        key=job_key(target.kind, target.value, request.levels, extra),
        params=params,
        levels=request.levels,
        limit=args.limit or 0,
        include_videos=videos,
        clean_captions=args.clean_captions,
        source=request.source,
        keep=(
            (lambda item: item_filter.reason(item, request.spec) is None)
            if request.spec.active
            else None
        ),
        overwrite=args.overwrite,
    )
    client = CivitaiHttpClient(
        api_key=api_key,
        # the environment's addresses are the settings' (transport.client.front_urls)
        base_url=args.base_url or None,
        red_base_url=args.red_base_url or None,
    )
    bar = None
    drift = Drift.for_urls(client.base_url, client.red_base_url)  # both fronts' hosts
    try:
        api = CivitaiAPI(client=client, levels=request.levels)
        check_target(api, target)  # NotFoundError before the file is touched
        if target.kind == "model":
            job.context = {"model_id": target.value}
        elif target.kind == "version":
            version = api.get_model_version(target.value)
            job.context = {"model_id": version.model_id, "version_id": target.value}
        bar = progress_bar(args.quiet, total=None, unit="img", desc="listed")

        def progress(rows: int, _videos: int) -> None:
            if bar is not None:
                bar.update(rows - bar.n)

        try:
            result = run_listing(api, job, dest, progress, drift)
        except OSError as exc:
            if isinstance(exc, CivitaiGalleryError):
                raise
            raise OutputPathError(
                f"cannot write {dest} ({exc.strerror or exc.__class__.__name__}); "
                "choose another --to"
            ) from None
    finally:
        if bar is not None:
            bar.close()
        client.close()
        for line in drift.lines():  # one line per kind of change, at the end
            log.warning("%s", line)
    resumed = " (resumed)" if result.resumed else ""
    out.write(f"listed {result.rows} image(s) into {result.path}{resumed}\n")
    if result.videos_skipped:
        out.write(f"  videos skipped: {result.videos_skipped} (use --videos to list them)\n")
    if result.filtered:
        out.write(f"  filtered out: {result.filtered}\n")
    return 0


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    """``python main.py list ...`` (``argv`` without the word ``list``)."""
    return run_command(build_parser(), cmd_list, list(argv or []), out)

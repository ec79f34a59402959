"""``follow`` / ``unfollow`` / ``following`` / ``sync``: the targets an output folder keeps up to
date (issue 22). ``follow KIND VALUE [download options]`` records the target with its options in
the folder's archive (``store/follows.py``); ``sync`` runs each one as ``download`` would, where a
finished newest-first listing costs a page (``planning/incremental.py``), and prints one line per
target, then a summary. Exit codes as ``download``: 0 all done, 1 a target failed, 2 bad usage,
130 interrupted."""

from __future__ import annotations

import argparse
import io
import os
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, TextIO

from .args import UsageError, add_pacing_options, build_parser
from .report import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, RunReport
from .shell import add_logging, new_parser, run_command
from .target import CliTarget, parse_target
from ..errors import CivitaiGalleryError
from ..store.paths import ARCHIVE_NAME

if TYPE_CHECKING:  # imported when a command runs (start-up speed)
    from ..planning.follow_sync import TargetSync

COMMANDS = ("follow", "unfollow", "following", "sync")
_HELP = {
    "follow": "Follow a target: `sync` downloads what is new in it, with these options. "
    "KIND VALUE and the options are download's (python main.py download --help).",
    "unfollow": "Stop following a target (its files stay).",
    "following": "List the targets this output folder follows, with their last sync.",
    "sync": "Download what is new in every followed target, one line each, then a summary.",
}


def _output(args: argparse.Namespace) -> str:
    from .. import setting

    return os.path.abspath(os.path.expanduser(args.output or setting.get("images.output_path")))


def _key(target: CliTarget) -> str:
    from ..planning.follow_sync import follow_key

    return follow_key(target.kind, target.value, target.version_id)


#: Every ``download`` argument, as ``follow`` treats it (tests/test_follow_sync.py walks the
#: download parser: a new option must be classified here). "target" and "recorded" are kept in
#: the follow row and honoured by ``sync`` (``download_options``); "follow": used by the
#: ``follow`` command itself, never recorded; any other text: the option is refused with it
#: (exit 2, nothing written).
FOLLOW_ARGUMENTS = {
    "kind": "target",
    "values": "target",
    **{
        dest: "recorded"
        for dest in (
            "limit", "nsfw", "reaction_kinds", "base_model", "media_type", "with_generation_data",
            "since", "until", "min_reactions", "used_with", "with_tags", "template", "metadata",
            "thumbnails", "duplicates", "concurrency",
        )
    },  # fmt: skip
    "output": "follow",  # the folder whose archive records the target
    "base_url": "follow",  # a url target's own host is accepted (sync takes --base-url)
    "red_base_url": "follow",
    "verbose": "follow",
    "quiet": "follow",
    "api_key": "follow records no API key: give it to sync (--api-key or $CIVITAI_API_KEY)",
    "from_file": "--from-file names fixed images: nothing new appears in them; download them "
    "with python main.py download image --from-file FILE",
    "full": "--full is for one run: sync lists what is new; run python main.py download "
    "KIND VALUE --full once to list everything",
    "report": "sync writes no report file per target; its lines are its report",
    "sleep_request": "pacing is sync's: python main.py sync --sleep-request SECONDS",
    "limit_rate": "pacing is sync's: python main.py sync --limit-rate RATE",
}


def refuse_unrecorded(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``UsageError`` (exit 2) for a download option ``follow`` neither records nor uses."""
    for dest, how in FOLLOW_ARGUMENTS.items():
        if how in ("target", "recorded", "follow"):
            continue
        if getattr(ns, dest, None) not in (None, False, parser.get_default(dest)):
            raise UsageError(f"follow: {how}")


def _target_of(ns: argparse.Namespace) -> CliTarget:
    return parse_target(
        ns.kind,
        ns.values,
        getattr(ns, "base_url", None),
        reaction_kinds=getattr(ns, "reaction_kinds", None),
        red_base_url=getattr(ns, "red_base_url", None),
    )


def download_options(ns: argparse.Namespace) -> List[str]:
    """The options of a parsed ``download`` that say what and how to fetch, as arguments again
    (``planning/follow_sync.FollowOptions``, the tab's follow writes the same)."""
    from .args import filters_from_args
    from ..civitai.filters import FilterSpec
    from ..planning.follow_sync import FollowOptions

    return FollowOptions(
        limit=ns.limit,
        nsfw=ns.nsfw,
        spec=filters_from_args(ns) or FilterSpec(),
        template=ns.template,
        metadata=ns.metadata,
        thumbnails=bool(ns.thumbnails),
        duplicates=ns.duplicates,
        reaction_kinds=getattr(ns, "reaction_kinds", None),
        with_tags=bool(getattr(ns, "with_tags", False)),
        concurrency=ns.concurrency,
    ).argv()


def _archive(output: str, must_exist: bool):
    from ..store.archive import Archive

    db_path = os.path.join(output, ARCHIVE_NAME)
    if must_exist and not os.path.exists(db_path):
        raise UsageError(
            f"{output} follows nothing yet; e.g. python main.py follow model 4201 --output {output}"
        )
    return Archive(db_path)


def cmd_follow(argv: Sequence[str], out: TextIO) -> int:
    """``follow KIND VALUE [download options]``: its own parsing (download's parser)."""

    def command(ns: argparse.Namespace, out: TextIO) -> int:
        from ..planning import follow_sync
        from ..store import follows
        from ..store.paths import check_output_folder

        refuse_unrecorded(ns, build_parser())
        target = _target_of(ns)  # UsageError: exit 2
        if target.kind in follow_sync.UNFOLLOWABLE:
            raise UsageError(
                "follow: a single image has nothing new to sync; follow its model, creator or post"
            )
        options = download_options(ns)
        build_parser().parse_args(["download", ns.kind, *ns.values, *options])  # still valid
        output = check_output_folder(_output(ns))
        with _archive(output, must_exist=False) as archive:
            new = follows.add(archive, _key(target), ns.kind, list(ns.values), options)
        shown = " ".join([_key(target), *options])
        out.write(f"{'following' if new else 'updated'}: {shown} (in {output})\n")
        return EXIT_OK

    return run_command(build_parser(), command, ["download", *argv], out)


def _small_parser(name: str) -> argparse.ArgumentParser:
    parser = new_parser(f"main.py {name}", _HELP[name])
    if name == "unfollow":
        parser.add_argument("kind", metavar="KIND", help="model, version, user, url or filter")
        parser.add_argument("values", nargs="+", metavar="VALUE")
    parser.add_argument(
        "--output", "-o", help="output folder (default: setting images.output_path, ./images)"
    )
    if name == "sync":
        parser.add_argument(
            "--base-url", help="Civitai origin (default: $CIVITAI_BASE_URL or https://civitai.com)"
        )
        parser.add_argument(
            "--api-key", help="Civitai API key (default: $CIVITAI_API_KEY); sent to the API host"
        )
        add_pacing_options(parser)
    add_logging(parser)
    return parser


def cmd_unfollow(ns: argparse.Namespace, out: TextIO) -> int:
    from ..store import follows

    key = _key(parse_target(ns.kind, ns.values))
    output = _output(ns)
    with _archive(output, must_exist=True) as archive:
        if not follows.remove(archive, key):
            raise UsageError(f"{output} does not follow {key} (python main.py following)")
    out.write(f"unfollowed: {key}\n")
    return EXIT_OK


def cmd_following(ns: argparse.Namespace, out: TextIO) -> int:
    from ..store import follows

    output = _output(ns)
    with _archive(output, must_exist=True) as archive:
        rows = follows.followed(archive)
    for row in rows:
        last = (
            f"last sync {row.last_sync_at}: {row.last_new} new"
            + ("" if not row.last_code else f", exit {row.last_code}")
            if row.last_sync_at
            else "never synced"
        )
        out.write(" ".join([row.key, *row.options]) + f"  ({last})\n")
    out.write(f"{len(rows)} followed target(s) in {output}\n")
    return EXIT_OK


def _sync_one(row: Any, ns: argparse.Namespace, output: str) -> TargetSync:
    """Run ``download`` for one followed target, its report printed nowhere, without the
    look-up before the listing (``planning/follow_sync``: the first page answers it)."""
    from .report import user_message
    from .run import download_run
    from ..planning.follow_sync import TargetSync

    try:
        args = build_parser().parse_args(["download", *row.argv, "--output", output])
        args.base_url, args.api_key = ns.base_url, ns.api_key
        args.verbose, args.quiet, args.signal = ns.verbose, ns.quiet, ns.signal
        args.sleep_request, args.limit_rate = ns.sleep_request, ns.limit_rate
        target = _target_of(args)
        report = RunReport("download", target.describe(), output)
        code = download_run(args, io.StringIO(), report, target, check_first=False)
    except CivitaiGalleryError as exc:  # this target only: the others still sync
        return TargetSync(row.key, error=user_message(exc, ns.base_url), code=EXIT_FAILED)
    s = report.summary
    result = TargetSync(row.key, s.completed, s.failed, list(s.notes), code=code)
    if report.gone is not None:
        result.gone, result.code = report.gone, EXIT_FAILED
    elif report.stopped_reason:
        result.stopped = report.stopped_reason
    return result


def _named(archive: Any, row: Any) -> str:
    from ..planning.follow_sync import target_name

    try:
        target = _target_of(build_parser().parse_args(["download", *row.argv]))
    except CivitaiGalleryError:
        return ""
    return target_name(archive, target.kind, target.value, target.version_id)


def cmd_sync(ns: argparse.Namespace, out: TextIO) -> int:
    from ..planning.follow_sync import followed, sync_all

    output = _output(ns)
    with _archive(output, must_exist=True):
        pass  # UsageError when the folder follows nothing yet
    if not followed(output):
        out.write(f"{output} follows nothing (python main.py follow model ID)\n")
        return EXIT_OK

    def said(result: TargetSync) -> None:
        out.write(result.line() + "\n")
        out.flush()

    summary = sync_all(output, lambda row: _sync_one(row, ns, output), said, _named)
    if summary.interrupted:
        out.write("interrupted: run sync again to continue\n")
        return EXIT_INTERRUPTED
    out.write(summary.line() + "\n")
    return summary.code


_COMMANDS = {"unfollow": cmd_unfollow, "following": cmd_following, "sync": cmd_sync}


def main(argv: Sequence[str], out: Optional[TextIO] = None) -> int:
    """``argv[0]`` is one of :data:`COMMANDS`."""
    import sys

    out = out or sys.stdout
    name, rest = argv[0], list(argv[1:])
    if name == "follow":
        return cmd_follow(rest, out)
    if name not in _COMMANDS:
        sys.stderr.write(f"error: unknown command {name!r}\n")
        return EXIT_USAGE
    return run_command(_small_parser(name), _COMMANDS[name], rest, out)


# the entries cli/catalog.py names (``python main.py NAME ...`` -> ``NAME_main(argv, out)``)
def follow_main(argv: Sequence[str], out: Optional[TextIO] = None) -> int:
    return main(["follow", *argv], out)


def unfollow_main(argv: Sequence[str], out: Optional[TextIO] = None) -> int:
    return main(["unfollow", *argv], out)


def following_main(argv: Sequence[str], out: Optional[TextIO] = None) -> int:
    return main(["following", *argv], out)


def sync_main(argv: Sequence[str], out: Optional[TextIO] = None) -> int:
    return main(["sync", *argv], out)

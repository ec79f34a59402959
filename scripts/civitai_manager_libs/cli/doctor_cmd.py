"""``python main.py doctor [--base-url URL] [--red-base-url URL] [--api-key KEY]``: a handful of
small questions to Civitai, each answered in plain words (``civitai/doctor.py``). Exit 0 when every
answer matches what this version expects, 1 when something changed, 2 when Civitai cannot be
reached (or for bad input). Nothing is written."""

from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence, TextIO, Tuple

from .report import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .catalog import PROG
from .shell import add_logging, new_parser, run_command
from ..civitai.drift import REPORT_AT


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        f"{PROG} doctor",
        "Ask Civitai a few small questions and say whether its answers still look the way this "
        "version expects (exit 0: all match, 1: something changed, 2: Civitai unreachable).",
    )
    parser.add_argument(
        "--base-url", help="Civitai origin (default: $CIVITAI_BASE_URL or https://civitai.com)"
    )
    parser.add_argument(
        "--red-base-url",
        help="the front that serves every level, e.g. https://civitai.red (default: "
        "$CIVITAI_RED_BASE_URL or the setting civitai_red_base_url, as downloads use; "
        "--base-url given alone is asked for every level)",
    )
    parser.add_argument(
        "--api-key", help="Civitai API key (default: $CIVITAI_API_KEY); sent to the API hosts only"
    )
    add_logging(parser)
    return parser


def fronts(args: argparse.Namespace) -> List[Tuple[str, bool]]:
    """``(origin, serves mature levels)`` for each front to ask; SettingsError (exit 2) for an
    address that is not a plain http(s) origin."""
    from ..transport.client import front_urls
    from ..util.url_gate import check_base_url

    # the client's rule (transport.client.front_urls): arguments over $CIVITAI_BASE_URL /
    # $CIVITAI_RED_BASE_URL over the settings civitai_base_url / civitai_red_base_url
    base = check_base_url(args.base_url, "--base-url") if args.base_url else None
    red = check_base_url(args.red_base_url, "--red-base-url") if args.red_base_url else None
    base, red = front_urls(base, red)
    if red != base:
        return [(base, False), (red, True)]
    return [(base, True)]


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from ..civitai.doctor import CHANGED, OK, UNREACHABLE, ask
    from ..http_client import CivitaiHttpClient

    key = args.api_key or os.environ.get("CIVITAI_API_KEY") or None
    asked = fronts(args)  # a bad address is exit 2 before any request
    findings = ask(asked, lambda base: CivitaiHttpClient(api_key=key, base_url=base, max_retries=1))
    out.write(f"Civitai doctor: {', '.join(base for base, _m in asked)}\n")
    for f in findings:
        mark = {OK: "ok", CHANGED: "CHANGED", UNREACHABLE: "NO ANSWER"}[f.status]
        front = f"[{f.front}] " if len(asked) > 1 else ""
        todo = f" -> {f.todo}" if f.todo and f.status != OK else ""
        out.write(f"  {mark:<9} {front}{f.question}: {f.said}{todo}\n")
    changed = sum(1 for f in findings if f.status == CHANGED)
    if any(f.status == UNREACHABLE for f in findings):
        out.write("Civitai could not be reached: nothing could be checked for sure.\n")
        return EXIT_USAGE
    if changed:
        out.write(
            f"{changed} of {len(findings)} answers changed: this version may miss data; "
            f"please report it at {REPORT_AT}, with this output.\n"
        )
        return EXIT_FAILED
    out.write(f"All {len(findings)} answers match what this version expects.\n")
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    """``python main.py doctor ...`` (``argv`` without the word ``doctor``)."""
    return run_command(build_parser(), cmd_doctor, list(argv or []), out)

"""What every CLI command (``download``, ``tasks``, ``retry-failed``, ``export``, ``list``,
``resources``) shares: a parser that raises instead of exiting, logging and the key set up once,
typed errors turned into one ``error: ...`` line and an exit code, Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence, TextIO

from .args import ParserExit, UsageError, _Parser
from .report import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    user_message,
)
from .signals import interruptible
from ..errors import (
    ApiError,
    ArchiveError,
    CivitaiGalleryError,
    DiskSpaceError,
    InvalidQueryError,
    NetworkError,
    NotFoundError,
    OutputPathError,
    SettingsError,
    TemplateError,
)
from ..util.logging_setup import configure_logging, register_secret

Command = Callable[[argparse.Namespace, TextIO], int]

_EXIT_CODES = (
    (
        (
            UsageError,
            InvalidQueryError,
            TemplateError,
            SettingsError,
            NotFoundError,
            OutputPathError,
        ),
        EXIT_USAGE,
    ),
    ((NetworkError,), EXIT_UNREACHABLE),
    ((ApiError, ArchiveError, DiskSpaceError, CivitaiGalleryError), EXIT_FAILED),
)
_HANDLED = tuple(kind for kinds, _code in _EXIT_CODES for kind in kinds)


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return _Parser(prog=prog, description=description)


def add_logging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no bar")


def run_command(
    parser: argparse.ArgumentParser,
    command: Command,
    argv: Sequence[str],
    out: Optional[TextIO] = None,
    interrupted: str = "interrupted: run the same command again to continue",
) -> int:
    """Parse ``argv`` and run ``command``; the exit code (0, 1, 2 or 130). ``interrupted``: the
    line printed after Ctrl-C."""
    out = out or sys.stdout
    try:
        args = parser.parse_args(list(argv))
    except ParserExit as exc:
        return exc.status
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    configure_logging(verbose=args.verbose, quiet=args.quiet)
    key = getattr(args, "api_key", None) or os.environ.get("CIVITAI_API_KEY")
    if key:
        register_secret(key)
    try:
        from .. import setting

        setting.load()
        with interruptible() as args.signal:  # the download commands poll it while they wait
            return command(args, out)
    except _HANDLED as exc:
        sys.stderr.write(f"error: {user_message(exc, getattr(args, 'base_url', None))}\n")
        return next(code for kinds, code in _EXIT_CODES if isinstance(exc, kinds))
    except KeyboardInterrupt:
        sys.stderr.write(interrupted + "\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK

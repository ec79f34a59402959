"""What every CLI command (``download``, ``tasks``, ``retry-failed``, ``export``, ``list``,
``resources``) shares: a parser that raises instead of exiting, logging and the key set up once,
typed errors turned into one ``error: ...`` line and an exit code, Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
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
from ..util.logging_setup import configure_logging, redact, register_secret

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
    try:
        _clean_api_key(args)
    except SettingsError as exc:
        sys.stderr.write(f"error: {redact(str(exc))}\n")
        return EXIT_USAGE
    try:
        from .. import setting

        setting.load()
        with interruptible() as args.signal:  # the download commands poll it while they wait
            return command(args, out)
    except _HANDLED as exc:
        message = user_message(exc, getattr(args, "base_url", None))
        sys.stderr.write(f"error: {redact(message)}\n")
        return next(code for kinds, code in _EXIT_CODES if isinstance(exc, kinds))
    except KeyboardInterrupt:
        sys.stderr.write(interrupted + "\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the net: one masked line, never a raw traceback (-v: masked too)
        return report_unexpected(exc, getattr(args, "verbose", False))


def report_unexpected(exc: BaseException, verbose: bool = False) -> int:
    """An error no command expected: one line on stderr, every secret masked; the traceback
    (masked as well) only with ``-v``. Exit code 1."""
    if verbose:
        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    hint = "" if verbose else " (run with -v for the details)"
    sys.stderr.write(f"error: unexpected {type(exc).__name__}: {text[:300]}{hint}\n")
    return EXIT_FAILED


def _clean_api_key(args: argparse.Namespace) -> None:
    """The API key of ``--api-key`` or ``CIVITAI_API_KEY`` with the line break or spaces of a
    paste or a CRLF ``.env`` stripped, registered as a secret before anything can print it; a key
    with spaces or control characters inside is refused (SettingsError that never shows it)."""
    from ..settings.values import validate_api_key

    for raw, where in (
        (getattr(args, "api_key", None), "--api-key"),
        (os.environ.get("CIVITAI_API_KEY"), "CIVITAI_API_KEY"),
    ):
        if not raw:
            continue
        register_secret(raw)
        register_secret(raw.strip())
        try:
            clean = validate_api_key("civitai_api_key", raw)
        except SettingsError:
            raise SettingsError(
                f"The API key in {where} holds spaces or control characters inside it; copy it "
                "again from your Civitai account settings (the key is not shown)."
            ) from None
        if where == "--api-key":
            args.api_key = clean or None
        elif clean != raw:
            os.environ["CIVITAI_API_KEY"] = clean

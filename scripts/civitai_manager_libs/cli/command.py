"""Headless shell: dispatch ``python main.py download|tasks|retry-failed ...`` to its command and
turn every typed error into one ``error: ...`` line on stderr and an exit code.

The CLI never talks HTTP for downloads itself: it parses arguments (cli_args), checks that the
target exists before anything is written to disk (cli_target), hands the work to
:class:`ImageDownloader` (cli_service, cli_run), draws tqdm bars on stderr (cli_progress) and prints
a completeness report (cli_report). Exit codes: 0 all done, 1 some images failed (or a disk or
archive problem stopped the run), 2 bad usage or input, 130 interrupted (Ctrl-C / SIGTERM; the next
identical command resumes).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence, TextIO

from . import catalog
from .args import UsageError, build_parser
from .report import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RunReport,
    write_report,
)
from .run import download_run, execute
from .service import RunConfig, apply_remembered_options, resolve_config
from .shell import run_command
from .target import CliTarget, parse_target
from .tasks import format_table, task_lines
from ..store.paths import ARCHIVE_NAME

__all__ = [
    "ARCHIVE_NAME",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliTarget",
    "RunConfig",
    "RunReport",
    "UsageError",
    "build_parser",
    "format_table",
    "main",
    "parse_target",
    "write_report",
]


def _history_path(output: str) -> str:
    """The archive of an earlier run in ``output``; ``UsageError`` when there is none."""
    db_path = os.path.join(output, ARCHIVE_NAME)
    if not os.path.exists(db_path):
        raise UsageError(f"no download history in {output}; pass the --output of an earlier run")
    return db_path


def cmd_download(args: argparse.Namespace, out: TextIO) -> int:
    target = parse_target(
        args.kind,
        args.values,
        getattr(args, "base_url", None),
        reaction_kinds=args.reaction_kinds,
        from_file=getattr(args, "from_file", None),
        red_base_url=getattr(args, "red_base_url", None),
    )
    return download_run(args, out, RunReport("download", target.describe(), ""), target)


def cmd_retry_failed(args: argparse.Namespace, out: TextIO) -> int:
    cfg = resolve_config(args)
    from ..store.paths import check_output_folder

    check_output_folder(cfg.output)  # a lock file that is a link or a folder: exit 2, first
    apply_remembered_options(cfg, _history_path(cfg.output))
    report = RunReport("retry-failed", None, cfg.output)
    return execute(args, out, report, cfg, lambda d: d.retry_failed())


def cmd_tasks(args: argparse.Namespace, out: TextIO) -> int:
    db_path = _history_path(resolve_config(args).output)
    for line in task_lines(db_path, args.status, args.limit):
        out.write(line + "\n")
    return EXIT_OK


COMMANDS = {"download": cmd_download, "tasks": cmd_tasks, "retry-failed": cmd_retry_failed}


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    """Entry point for ``python main.py download|tasks|retry-failed ...``; returns the exit code."""
    out = out or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    # export / list / resources: their own parsers (cli/*_cmd.py, see cli/catalog.py), imported
    # only when asked for (start-up of `download` must not pay for them)
    target = catalog.COMMANDS.get(argv[0], ("", "command"))[1] if argv else "command"
    if target != "command":
        module_name, _sep, function = target.partition(":")
        module = importlib.import_module(f".{module_name}", __package__)
        return getattr(module, function or "main")(argv[1:], out)
    return run_command(
        build_parser(),
        lambda args, out: COMMANDS[args.command](args, out),
        argv,
        out,
        interrupted="interrupted before any download started; nothing to resume",
    )

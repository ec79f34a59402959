#!/usr/bin/env python3
"""Standalone entry point.

python main.py [--host H] [--port P] [--output DIR] [--demo]   the tab in a browser
python main.py COMMAND ...                                     headless (python main.py --help
                                                               lists the commands:
                                                               scripts/civitai_manager_libs/cli/catalog.py)
"""

from __future__ import annotations

import gc
import os
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from scripts.civitai_manager_libs.cli import catalog  # the table of commands; cheap

        if argv and argv[0] in catalog.COMMANDS:
            from scripts.civitai_manager_libs.cli import command as cli

            return cli.main(argv)
        if argv and not argv[0].startswith("-"):  # a word that is no command: a typo, say which
            sys.stderr.write(catalog.unknown_command(argv[0]) + "\n")
            return 2
        from scripts.civitai_manager_libs.ui import standalone  # Gradio only when the app starts

        return standalone.main(argv, commands_help=catalog.commands_help())
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:  # the net: one masked line (the traceback with -v), never raw
        from scripts.civitai_manager_libs.cli.shell import report_unexpected

        return report_unexpected(exc, "-v" in argv or "--verbose" in argv)


if __name__ == "__main__":
    code = main()
    # Everything the run opened is closed: the interpreter's last garbage collection need not
    # scan the objects that remain. Kept: 17-35 ms CPU, 2.8 % of a 50-image run, 0.5 % of a
    # 1,000-image one (bench/bench_tricks.py).
    gc.freeze()
    if code == 130:
        # stopped by a signal: a worker thread may still be stuck (a stalled connection, CPU-bound
        # work); end now rather than wait for it in the interpreter's shutdown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)

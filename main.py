#!/usr/bin/env python3
"""Standalone entry point.

python main.py [--host H] [--port P] [--output DIR] [--demo]   the tab in a browser
python main.py download model 123 [options]                    the same service, headless
python main.py tasks | retry-failed                            history and retries
python main.py export --from OUT --to DIR --format captions    a training set from a download
python main.py list model 123 --to images.parquet              a listing for img2dataset
python main.py resources IMAGE_ID [--download] [--models-dir DIR]   an image's models
python main.py search "neon city" [--lora NAME] [--output DIR ...]   find saved images, offline
python main.py index [--output DIR] [--rebuild]                 the search index of older folders
"""

from __future__ import annotations

import gc
import os
import sys
from typing import List, Optional

CLI_COMMANDS = {
    "download",
    "tasks",
    "retry-failed",
    "export",
    "list",
    "resources",
    "search",
    "index",
}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in CLI_COMMANDS:
            from scripts.civitai_manager_libs.cli import command as cli

            return cli.main(argv)
        from scripts.civitai_manager_libs.ui import standalone

        return standalone.main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:  # the net: one masked line (the traceback with -v), never raw
        from scripts.civitai_manager_libs.cli.shell import report_unexpected

        return report_unexpected(exc, "-v" in argv or "--verbose" in argv)


if __name__ == "__main__":
    code = main()
    # Everything the run opened is closed: the interpreter's last garbage collection need not
    # scan the objects that remain (about 25 ms of a CLI's exit, measured in bench/bench.py).
    gc.freeze()
    if code == 130:
        # stopped by a signal: a worker thread may still be stuck (a stalled connection, CPU-bound
        # work); end now rather than wait for it in the interpreter's shutdown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)

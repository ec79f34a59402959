"""Test hook for the stop-time tests: run main.py with the metadata step replaced by work that
never ends, so a download worker is stuck when the stop request comes.

``python -c "import stuck_worker_hook as h; h.run_main()" <main.py args>`` with ``STUCK_MODE``:

* ``gil``: a runaway regular expression, C code that never gives up the interpreter lock (the
  main thread cannot even run its signal handler);
* ``python``: a pure-Python busy loop (the lock changes hands, the worker never checks cancel).

``STUCK_MARKER`` names a file created when a worker gets stuck.
"""

from __future__ import annotations

import os
import re
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _stuck(*_args, **_kwargs):
    with open(os.environ["STUCK_MARKER"], "a", encoding="utf-8") as marker:
        marker.write("stuck\n")
    if os.environ.get("STUCK_MODE") == "gil":
        re.match(r"(a+)+$", "a" * 64 + "b")  # exponential backtracking, lock held throughout
    while True:
        pass


def run_main() -> None:
    sys.path.insert(0, REPO)
    from scripts.civitai_manager_libs.metadata import record

    record.save_metadata = _stuck
    main = os.path.join(REPO, "main.py")
    sys.argv = [main, *sys.argv[1:]]
    runpy.run_path(main, run_name="__main__")

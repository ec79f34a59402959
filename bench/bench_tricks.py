#!/usr/bin/env python3
"""What the speed tricks earn, in CPU time (``time.process_time``, not wall time: the figures
hold on a loaded machine). Not a unit test. Issue 26 item 6: an optimisation stays where it pays.

    python bench/bench_tricks.py            # a 1,000-image run of 64 KiB files
    python bench/bench_tricks.py --n 100    # a small run to check the script

1. ``transport/client.py``'s proxy-environment memo: the CPU of ``merge_environment_settings`` per
   request with the memo and with requests' own (median of 5 rounds of 20,000 calls);
2. ``main.py``'s ``gc.freeze()`` at exit: a whole ``python main.py download model M`` against the
   fake (in its own process), then the CPU of the garbage collection the interpreter's shutdown
   runs, without and with the freeze; and the whole run's CPU (``os.wait4``), the denominator.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

_CHILD = """
import gc, os, sys, time
sys.path.insert(0, {repo!r})
import main
code = main.main(sys.argv[1:])
t0 = time.process_time(); gc.collect(); t1 = time.process_time()
gc.freeze(); t2 = time.process_time(); gc.collect(); t3 = time.process_time()
print("GC", t1 - t0, t3 - t2, file=sys.stderr)
sys.exit(code)
"""


def memo_per_request(rounds: int = 5, calls: int = 20000) -> tuple:
    import requests

    from scripts.civitai_manager_libs.transport import adapter

    url = "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/uuid/original=true/1.jpeg"

    def per_call(session) -> float:
        start = time.process_time()
        for _ in range(calls):
            session.merge_environment_settings(url, {}, True, None, None)
        return (time.process_time() - start) / calls

    memo, plain = adapter._Session(), requests.Session()
    rows = [(per_call(memo), per_call(plain)) for _ in range(rounds)]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)


def exit_gc(n: int, rounds: int) -> list:
    import bench

    results = []
    with bench.RemoteFake(n, 64, 0.1, 0, True) as fake:
        for _ in range(rounds):
            dest = tempfile.mkdtemp(prefix="bench_tricks_")
            env = dict(os.environ, CIVITAI_BASE_URL=fake.base_url)
            env["CIVITAI_GALLERY_SETTINGS"] = os.path.join(dest, "no-settings.json")
            cmd = [sys.executable, "-c", _CHILD.format(repo=REPO), "download", "model"]
            cmd += [str(fake.model_id), "--output", dest, "--concurrency", "5", "--quiet"]
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            err = proc.stderr.read()
            _, _, usage = os.wait4(proc.pid, 0)
            fake.take_log()
            shutil.rmtree(dest, ignore_errors=True)
            line = [x for x in err.splitlines() if x.startswith("GC ")][-1].split()
            results.append((float(line[1]), float(line[2]), usage.ru_utime + usage.ru_stime))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images in the run (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="whole runs (3)")
    args = parser.parse_args()
    memo, plain = memo_per_request()
    print(f"proxy-environment memo: {memo * 1e3:.4f} ms vs {plain * 1e3:.4f} ms per request")
    runs = exit_gc(args.n, args.rounds)
    cpu = statistics.median(r[2] for r in runs)
    plain_gc, frozen_gc = (statistics.median(r[i] for r in runs) for i in (0, 1))
    saved = (plain - memo) * args.n
    print(f"whole run ({args.n} images): {cpu:.2f} s CPU (median of {len(runs)})")
    print(f"  memo saves {saved * 1e3:.0f} ms = {100 * saved / cpu:.1f} % of the run")
    print(
        f"  exit GC {plain_gc * 1e3:.1f} ms, after gc.freeze() {frozen_gc * 1e3:.1f} ms: "
        f"saves {100 * (plain_gc - frozen_gc) / cpu:.2f} % of the run"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

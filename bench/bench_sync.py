#!/usr/bin/env python3
"""What a re-run costs once a listing is finished (issue 22), against the local fake Civitai:

    python bench/bench_sync.py            # 3,000 images, 5 new, 100 ms per request
    python bench/bench_sync.py --quick    # 600 images, to check the script

A finished n-image model listing (newest first) gets 5 new images; the same command then runs twice
on two copies of the output folder: with ``--full`` (every page, as every re-run did before) and
as is (incremental: it stops at the first page reaching an image it has). Each row: listing
requests, image requests, seconds (each a separate ``main.py`` process, the fake's latency on
every request).

Then ``sync`` over 10 followed targets (the default dataset's models and two of its creators) with
nothing new: API requests (listing and look-ups) and seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def _run(fake, output: str, extra: Sequence[str], model_id: int) -> List[str]:
    argv = ["download", "model", str(model_id), "--base-url", fake.base_url, "--output", output]
    argv += ["--nsfw", "all", "--metadata", "none", "-q", *extra]
    fake.reset()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "main.py"), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"main.py {' '.join(argv)} exited {done.returncode}: {done.stderr}")
    listing = [r for r in fake.api_requests() if r.path == "/api/v1/images"]
    images = [r for r in fake.image_requests() if r.method == "GET"]
    return [str(len(listing)), str(len(images)), f"{seconds:.2f}"]


def sync_ten(work: str, latency: float) -> List[str]:
    """``sync`` of 10 followed targets with nothing new: [name, listing requests, image requests
    (0), seconds] and the API requests in all in the name."""
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    dataset = Dataset.default()
    output = os.path.join(work, "followed")
    main_py = [sys.executable, os.path.join(REPO, "main.py")]
    targets = [["model", str(m.id)] for m in dataset.models[:8]]
    targets += [["user", c.username, "--limit", "0"] for c in dataset.creators[:2]]
    with FakeCivitai(dataset=dataset, latency=latency) as fake:
        for target in targets:
            subprocess.run(
                [*main_py, "follow", *target, "--nsfw", "all", "--metadata", "none", "-o", output],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
        sync = [*main_py, "sync", "--output", output, "--base-url", fake.base_url, "-q"]
        subprocess.run(sync, cwd=REPO, capture_output=True, timeout=900)  # the first, full
        fake.reset()
        start = time.perf_counter()
        subprocess.run(sync, cwd=REPO, capture_output=True, timeout=900)
        seconds = time.perf_counter() - start
        listing = [r for r in fake.api_requests() if r.path == "/api/v1/images"]
        api = len(fake.api_requests())
        images = len([r for r in fake.image_requests() if r.method == "GET"])
    name = f"sync, 10 targets, nothing new ({api} API requests in all; target 10)"
    return [name, str(len(listing)), str(images), f"{seconds:.2f}"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 images")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request (0.1)")
    args = parser.parse_args(argv)
    n = 600 if args.quick else 3000
    dataset = Dataset.generate(n_images=n, image_kb=4, seed=22)
    model_id = dataset.models[0].id
    work = tempfile.mkdtemp(prefix="bench_sync_")
    try:
        with FakeCivitai(dataset=dataset, latency=args.latency) as fake:
            first = os.path.join(work, "first")
            _run(fake, first, ["--concurrency", "8"], model_id)
            dataset.post_images(model_id, 5)
            rows = []
            for name, extra in (("before (--full)", ["--full"]), ("after (incremental)", [])):
                copy = os.path.join(work, name.split()[0])
                shutil.copytree(first, copy)
                rows.append([name, *_run(fake, copy, extra, model_id)])
        rows.append(sync_ten(work, args.latency))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    headers = ["re-run, " + f"{n:,} images + 5 new", "listing requests", "image requests", "s"]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

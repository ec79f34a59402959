"""Run the fake Civitai from the command line until Ctrl+C (or SIGTERM).

    python -m scripts.civitai_manager_libs.fake_civitai [--port P] [--red-port P3]
        [--image-port P2] [--latency S] [--bandwidth B] [--total-bandwidth B]
        [--generate N --image-kb K] [--one-front] [-v]

It serves Civitai's two fronts as Civitai does: the com port clamps every answer to the
safe-for-work levels, the red port serves every level. It prints the origins; point the app at
them with ``CIVITAI_BASE_URL`` and ``CIVITAI_RED_BASE_URL``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import List, Optional

from .dataset import Dataset
from .server import FakeCivitai


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.civitai_manager_libs.fake_civitai",
        description="Serve a local fake of Civitai's API and image host.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: any free port)")
    parser.add_argument("--image-port", type=int, default=0, help="image host port (default: any)")
    parser.add_argument(
        "--red-port", type=int, default=0, help="red front's port (every level; default: any)"
    )
    parser.add_argument(
        "--one-front",
        action="store_true",
        help="the com port serves every level too (a mirror; the older single-front fake)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    parser.add_argument("--bandwidth", type=float, default=None, help="bytes/s per response")
    parser.add_argument(
        "--total-bandwidth", type=float, default=None, help="bytes/s shared by all responses"
    )
    parser.add_argument(
        "--generate", type=int, metavar="N", default=None, help="serve N generated benchmark images"
    )
    parser.add_argument("--image-kb", type=int, default=200, help="size of generated images (KiB)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.generate is not None:
        dataset = Dataset.generate(args.generate, image_kb=args.image_kb, seed=args.seed)
    else:
        dataset = Dataset.default(seed=args.seed)
    fake = FakeCivitai(
        dataset,
        latency=args.latency,
        bandwidth=args.bandwidth,
        total_bandwidth=args.total_bandwidth,
        host=args.host,
        port=args.port,
        image_port=args.image_port,
        red_port=args.red_port,
        split_fronts=not args.one_front,
    )
    try:
        fake.start()
    except OSError as exc:
        print(
            f"cannot start the fake Civitai: {exc} (is the port already in use?)", file=sys.stderr
        )
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"Fake Civitai API (com, safe-for-work): {fake.base_url}", flush=True)
    print(f"Fake Civitai images:                   {fake.image_base_url}", flush=True)
    print(f"Fake Civitai videos:                   {fake.video_base_url}", flush=True)
    print(f"Fake Civitai API (red, every level):   {fake.red_base_url}", flush=True)
    print(
        f"{len(dataset.models)} models, {len(dataset.images)} images. Use "
        f"CIVITAI_BASE_URL={fake.base_url} CIVITAI_RED_BASE_URL={fake.red_base_url} "
        f"CIVITAI_VIDEO_BASE_URL={fake.video_base_url}  (Ctrl+C to stop)",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

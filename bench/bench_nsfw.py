#!/usr/bin/env python3
"""Listing requests saved by asking Civitai for exact NSFW sets (``browsingLevel``).

    python bench/bench_nsfw.py                 # 5,000 items, ~10 s
    python bench/bench_nsfw.py --items 1000    # quicker

A local fake Civitai lists ``--items`` images whose levels follow a typical mix (None 55 %, Soft
20 %, Mature 15 %, X 10 %). For every set of levels a user can pick, the whole listing is paged
(200 items per request) twice: as before, with only the smallest covering ``nsfw`` mask (the
client then threw the other levels away), and now, with the exact ``browsingLevel`` bitmask
(``CivitaiAPI.iter_images``). Printed per set: requests and items transferred each way.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from itertools import combinations
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import requests  # noqa: E402

from scripts.civitai_manager_libs.civitai.api import CivitaiAPI  # noqa: E402
from scripts.civitai_manager_libs.civitai.nsfw import nsfw_param  # noqa: E402
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai  # noqa: E402
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient  # noqa: E402
from scripts.civitai_manager_libs.records import NSFW_LEVELS  # noqa: E402

MIX = {"None": 55, "Soft": 20, "Mature": 15, "X": 10}
BITS = {"None": (1,), "Soft": (2,), "Mature": (4,), "X": (8, 16)}


def mixed_dataset(n_items: int) -> Dataset:
    dataset = Dataset.generate(n_images=n_items, image_kb=1)
    rng = random.Random(7)
    for image in dataset.images:
        level = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        image.nsfw_level, image.browsing_level = level, rng.choice(BITS[level])
    return dataset


def covering_mask_only(fake: FakeCivitai, levels: Sequence[str]) -> tuple:
    """The former request: ``nsfw`` = smallest covering mask; returns (requests, items sent)."""
    url, cursor, pages, sent = fake.base_url + "/api/v1/images", None, 0, 0
    while True:
        query = {"limit": 200, "withMeta": "true", "nsfw": nsfw_param(levels)}
        if cursor is not None:
            query["cursor"] = cursor
        body = requests.get(url, params=query, timeout=30).json()
        pages, sent = pages + 1, sent + len(body["items"])
        cursor = body["metadata"].get("nextCursor")
        if cursor is None:
            return pages, sent


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=5000, help="images in the listing")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    total_old = total_new = 0
    with FakeCivitai(mixed_dataset(args.items)) as fake:
        api = CivitaiAPI(CivitaiHttpClient(base_url=fake.base_url, max_retries=0, timeout=30))
        print(f"{args.items} listed images, 200 per request; levels mix {MIX}")
        print(f"{'levels':<26}{'nsfw mask':>10}{'req before':>12}{'req now':>9}"
              f"{'items before':>14}{'items now':>11}{'saved':>8}")  # fmt: skip
        for size in range(1, 5):
            for levels in combinations(NSFW_LEVELS, size):
                old_requests, old_items = covering_mask_only(fake, levels)
                fake.reset()
                kept = sum(1 for _ in api.iter_images({}, nsfw_levels=levels))
                new_requests = sum(1 for r in fake.api_requests() if r.path == "/api/v1/images")
                total_old, total_new = total_old + old_requests, total_new + new_requests
                saved = 1 - new_requests / old_requests
                print(f"{'+'.join(levels):<26}{nsfw_param(levels):>10}{old_requests:>12}"
                      f"{new_requests:>9}{old_items:>14}{kept:>11}{saved:>8.0%}")  # fmt: skip
    print(
        f"all 15 sets: {total_old} requests before, {total_new} now "
        f"({1 - total_new / total_old:.0%} fewer); {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

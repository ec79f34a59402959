#!/usr/bin/env python3
"""Search index benchmark: index 100,000 records, then time queries (not a unit test).

    python bench/bench_library.py             # 100,000 records
    python bench/bench_library.py --n 5000    # a small run to check the script itself

The records are the fake Civitai's shapes (every image of ``Dataset.default()``: A1111, ComfyUI,
2026 shapes, Unicode prompts, LoRAs, embeddings), each made into many by a new id, creator and a
few words from a 20,000-word vocabulary added to its prompt (real libraries have large
vocabularies; 376 prompts repeated would flatter the index). Printed:

1. the time to index them (``library_index.entry`` + ``write`` in batches of 500, one transaction
   each, as ``python main.py index`` does) and the time of ``Archive.record_images`` with and
   without the records (the download's path);
2. the archive's growth (its size with the index minus without, both checkpointed) against the
   size of the records (their json sidecars, as ``save_metadata`` writes them);
3. the median latency of queries (``library_query.search``, limit 20), over 31 runs each.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from scripts.civitai_manager_libs.fake_civitai import Dataset  # noqa: E402
from scripts.civitai_manager_libs.fake_civitai.listing import item_json  # noqa: E402
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata  # noqa: E402
from scripts.civitai_manager_libs.store import library_index, library_query  # noqa: E402
from scripts.civitai_manager_libs.store.archive import Archive  # noqa: E402
from scripts.civitai_manager_libs.store.library_query import LibraryQuery  # noqa: E402

BATCH = 500


def _vocabulary(rng: random.Random, size: int) -> List[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 10))))
    return sorted(words)


def synthetic_records(n: int, seed: int = 0) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    templates = [
        extract_image_metadata(item_json(image, "http://127.0.0.1:1", True, False))
        for image in Dataset.default().images
    ]
    vocabulary = _vocabulary(rng, 20_000)
    creators = [f"creator_{i}" for i in range(500)]
    records = []
    for index in range(n):
        record = copy.deepcopy(templates[index % len(templates)])
        record["id"] = 70_000_000 + index
        record["creator"] = creators[rng.randrange(len(creators))]
        gen = record.get("generation")
        if isinstance(gen, dict):
            extra = ", ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 6)))
            gen["prompt"] = f"{gen.get('prompt') or ''}, {extra}"
        records.append(record)
    return records


def _archive_size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def _fill(path: str, records: List[Dict[str, Any]], with_records: bool) -> float:
    started = time.process_time()
    with Archive(path) as archive:
        for start in range(0, len(records), BATCH):
            rows = []
            for record in records[start : start + BATCH]:
                rows.append(
                    {
                        "image_id": record["id"],
                        "url": record.get("url"),
                        "sha256": "%064x" % record["id"],
                        "path": os.path.join(os.path.dirname(path), f"{record['id']}.png"),
                        "metadata_path": os.path.join(
                            os.path.dirname(path), f"{record['id']}.json"
                        ),
                        "size": 123456,
                        "record": record if with_records else None,
                    }
                )
            archive.record_images(rows)
    return time.process_time() - started


def _median_ms(conn, query: LibraryQuery, runs: int = 31):
    """(median wall ms, median CPU ms) of ``search(query, limit 20)``."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        library_query.search(conn, query, 20)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    records = synthetic_records(args.n)
    sidecars = sum(
        len((json.dumps(r, ensure_ascii=False, indent=2) + "\n").encode()) for r in records
    )
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "plain", ".civitai_archive.sqlite3")
        indexed = os.path.join(tmp, "indexed", ".civitai_archive.sqlite3")
        t_plain = _fill(plain, records, with_records=False)
        t_indexed = _fill(indexed, records, with_records=True)
        growth = _archive_size(indexed) - _archive_size(plain)
        # the index alone, as `python main.py index --rebuild` writes it (records in memory)
        started, wall = time.process_time(), time.perf_counter()
        with Archive(indexed) as archive:
            with archive.writing() as conn:
                library_index.drop(conn)
                library_index.create(conn)
            for start in range(0, len(records), BATCH):
                rows = [library_index.entry(r["id"], r) for r in records[start : start + BATCH]]
                with archive.writing() as conn:
                    library_index.write(conn, rows)
        t_index, wall = time.process_time() - started, time.perf_counter() - wall
        print(f"records: {args.n:,}, their json sidecars {sidecars / 1e6:.1f} MB")
        print(
            f"index {args.n:,} records (entry + write, batches of {BATCH}): {t_index:.1f} s CPU "
            f"({wall:.1f} s wall)"
        )
        print(
            f"Archive.record_images (CPU): {t_plain:.1f} s without the records, "
            f"{t_indexed:.1f} s with them (+{t_indexed - t_plain:.1f} s)"
        )
        before, after = _archive_size(plain) / 1e6, _archive_size(indexed) / 1e6
        print(
            f"archive growth: {growth / 1e6:.1f} MB = {growth / sidecars:.0%} of the records "
            f"(archive {before:.1f} MB -> {after:.1f} MB)"
        )
        rare = str(records[len(records) // 2]["generation"]["prompt"]).rsplit(", ", 1)[-1]
        queries = {
            "one word (rare)": LibraryQuery(text=rare),
            'phrase "cinematic lighting"': LibraryQuery(text='"cinematic lighting"'),
            "common word: masterpiece": LibraryQuery(text="masterpiece"),
            "knight OR spirit": LibraryQuery(text="knight OR spirit"),
            "prefix cine*": LibraryQuery(text="cine*"),
            "spirit -bokeh": LibraryQuery(text="spirit -bokeh"),
            "spirit + --lora add_detail": LibraryQuery(text="spirit", loras=("add_detail",)),
            "masterpiece --creator creator_7": LibraryQuery(
                text="masterpiece", creators=("creator_7",)
            ),
            "--creator + --base-model only": LibraryQuery(
                creators=("creator_7",), base_models=("SD 1.5",)
            ),
            "no words, --min-reactions 100": LibraryQuery(min_reactions=100),
        }
        with Archive(indexed, read_only=True) as archive, archive.reading() as conn:
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print("query (limit 20)                   median ms (wall / CPU)   matches")
            for name, query in queries.items():
                hits = len(library_query.search(conn, query, 1_000_000))
                wall, cpu = _median_ms(conn, query)
                print(f"{name:<38}{wall:>8.1f} / {cpu:<8.1f}   {hits:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

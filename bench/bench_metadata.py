#!/usr/bin/env python3
"""Per-image cost of post-processing a 2-megapixel JPEG and PNG, as a ratio against a plain copy.

    python bench/bench_metadata.py            # 25 runs per cell (median), ~1 min on 2 cores
    python bench/bench_metadata.py --runs 5   # quick check of the script itself

Columns (median wall time per image, then the ratio to ``shutil.copyfile`` of the same file):
- ``copyfile``: ``shutil.copyfile`` (page cache hot, no fsync): the baseline.
- ``copy+fsync``: the same plus ``fsync`` (every write of ours is fsynced before ``os.replace``).
- ``embed``: ``embed.embed_infotext`` on a fresh copy (read, splice the chunk/EXIF, atomic write).
- ``thumbnail``: ``thumbnails.make_thumbnail`` at 256x256.
- ``json+txt+exif``: ``metadata.save_metadata`` with every format at once.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from PIL import Image  # noqa: E402

from scripts.civitai_manager_libs.metadata.embed import embed_infotext  # noqa: E402
from scripts.civitai_manager_libs.metadata.infotext import to_infotext  # noqa: E402
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata  # noqa: E402
from scripts.civitai_manager_libs.metadata.record import save_metadata  # noqa: E402
from scripts.civitai_manager_libs.metadata.thumbnails import make_thumbnail  # noqa: E402

WIDTH, HEIGHT = 1632, 1224  # 1.998 megapixels
META = {
    "prompt": "masterpiece, best quality, a lighthouse at dusk, cinematic lighting, "
    "<lora:add_detail:0.6>, 8k, highly detailed",
    "negativePrompt": "lowres, bad anatomy, bad hands, text, error, jpeg artifacts, blurry",
    "seed": 3141592653,
    "steps": 28,
    "sampler": "DPM++ 2M Karras",
    "cfgScale": 7,
    "clipSkip": 2,
    "Size": f"{WIDTH}x{HEIGHT}",
    "Model": "realisticVision",
    "Model hash": "1449e5b0b9",
    "Hires upscale": "1.5",
    "Denoising strength": "0.4",
    "hashes": {"model": "1449e5b0b9", "lora:add_detail": "7c6bad76eb54"},
    "resources": [{"type": "lora", "name": "add_detail", "weight": 0.6}],
}


def photo_like(width: int, height: int) -> Image.Image:
    """Gradients plus sensor-like noise: compresses like a photo, not like a flat fill."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    blue = Image.effect_noise((width, height), 48)
    return Image.merge("RGB", (red, green, blue))


def median_ms(fn: Callable[[], None], runs: int, setup: Callable[[], None] = lambda: None) -> float:
    times: List[float] = []
    for _ in range(runs):
        setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_one(folder: str, fmt: str, runs: int) -> Dict[str, float]:
    source = os.path.join(folder, f"source.{fmt.lower()}")
    image = photo_like(WIDTH, HEIGHT)
    if fmt == "JPEG":
        image.save(source, "JPEG", quality=92)
    else:
        image.save(source, "PNG", compress_level=6)
    work = os.path.join(folder, f"work.{fmt.lower()}")
    copy = os.path.join(folder, f"copy.{fmt.lower()}")
    record = extract_image_metadata({"id": 1, "url": "https://x/1.jpeg", "meta": META})
    text = to_infotext(record)

    def fresh() -> None:
        shutil.copyfile(source, work)
        for sidecar in (".json", ".txt"):
            path = os.path.splitext(work)[0] + sidecar
            if os.path.exists(path):
                os.unlink(path)

    def copy_fsync() -> None:
        shutil.copyfile(source, copy)
        with open(copy, "rb+") as handle:
            os.fsync(handle.fileno())

    fresh()
    embed_infotext(work, text)  # warm caches and imports once
    return {
        "size_mb": os.path.getsize(source) / 1e6,
        "copyfile": median_ms(lambda: shutil.copyfile(source, copy), runs),
        "copy+fsync": median_ms(copy_fsync, runs),
        "embed": median_ms(lambda: embed_infotext(work, text), runs, setup=fresh),
        "thumbnail": median_ms(lambda: make_thumbnail(source), runs),
        "json+txt+exif": median_ms(
            lambda: save_metadata(work, record, "json,txt,exif"), runs, setup=fresh
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25, help="timed runs per cell (median)")
    args = parser.parse_args(argv)
    print(
        f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{WIDTH}x{HEIGHT} ({WIDTH * HEIGHT / 1e6:.2f} MP), median of {args.runs} runs"
    )
    columns = ["copyfile", "copy+fsync", "embed", "thumbnail", "json+txt+exif"]
    print(f"{'format':<6} {'size':>8} " + " ".join(f"{c:>22}" for c in columns))
    with tempfile.TemporaryDirectory(prefix="bench-metadata-") as folder:
        for fmt in ("JPEG", "PNG"):
            row = bench_one(folder, fmt, args.runs)
            base = row["copyfile"]
            cells = " ".join(f"{row[c]:>9.2f} ms ({row[c] / base:>6.1f}x)" for c in columns)
            print(f"{fmt:<6} {row['size_mb']:>5.2f} MB {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

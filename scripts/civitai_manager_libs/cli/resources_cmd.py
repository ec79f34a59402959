"""``python main.py resources IMAGE_ID|URL [--download] [--models-dir DIR] [--types lora,...]``.

Shows what an image was made with (checkpoint, LoRAs, embeddings, VAE), which of those the user
has (✓, found by SHA-256 under any name) and which are missing (✗, with size and Civitai link),
then the infotext to paste into txt2img with the user's own names. ``--download`` fetches the
missing files into the WebUI folders, verified against Civitai's SHA-256. Exit codes: 0 all
present (or downloaded), 1 something is still missing or failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from .args import UsageError, _Parser, path_arg
from .catalog import PROG
from .progress import bars_wanted
from .report import EXIT_FAILED, EXIT_OK
from .shell import run_command
from ..metadata.resource_refs import RESOURCE_TYPES, Resource
from ..resources.fetch import civitai_page, human_size, summarize


def _types(text: str) -> List[str]:
    aliases = {"checkpoints": "checkpoint", "loras": "lora", "embeddings": "embedding"}
    types: List[str] = []
    for part in text.split(","):
        name = aliases.get(part.strip().lower(), part.strip().lower())
        if not name:
            continue
        if name not in RESOURCE_TYPES:
            raise argparse.ArgumentTypeError(
                f"unknown resource type {part!r}; use a comma list of {','.join(RESOURCE_TYPES)}"
            )
        if name not in types:
            types.append(name)
    if not types:
        raise argparse.ArgumentTypeError("give at least one type, e.g. --types lora,embedding")
    return types


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{PROG} resources",
        description="Show (and with --download fetch) the models an image was made with.",
    )
    parser.add_argument("image", metavar="IMAGE_ID|URL", help="image id or civitai.com/images/N")
    parser.add_argument(
        "--download", action="store_true", help="download the missing files (SHA-256 verified)"
    )
    parser.add_argument(
        "--models-dir",
        type=path_arg,
        metavar="DIR",
        help="WebUI models folder (Stable-diffusion/, Lora/, embeddings/, VAE/); default: the "
        "models_path setting",
    )
    parser.add_argument(
        "--types", type=_types, help="only these types: checkpoint,lora,embedding,vae,other"
    )
    parser.add_argument(
        "--output",
        "-o",
        type=path_arg,
        help="output folder whose archive caches look-ups (default: setting)",
    )
    parser.add_argument("--base-url", help="Civitai origin (default: $CIVITAI_BASE_URL)")
    parser.add_argument(
        "--red-base-url",
        help="Civitai's front for mature images (default: $CIVITAI_RED_BASE_URL, else "
        "--base-url when given, else https://civitai.red)",
    )
    parser.add_argument("--api-key", help="Civitai API key (default: $CIVITAI_API_KEY)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress")
    return parser


def _image_id(text: str) -> int:
    from ..civitai.query import parse_query
    from ..transport.client_options import configured_fronts

    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    target = parse_query(stripped, extra_hosts=configured_fronts())
    if target.kind != "image":
        raise UsageError(
            f"{text!r} is not an image; give an image id or a civitai.com/images/N link"
        )
    return int(target.value)


def resource_line(resource: Resource, base_url: str) -> str:
    mark = "✓" if resource.local_path else "✗"
    parts = [f"{mark} {resource.type:<10} {resource.label}"]
    if resource.weight is not None and resource.type == "lora":
        parts.append(f"weight {resource.weight:g}")
    if resource.local_path:
        parts.append(f"yours: {resource.local_name} ({resource.local_path})")
    else:
        if resource.file_name:
            parts.append(resource.file_name)
        parts.append(human_size(resource.size))
        page = civitai_page(resource, base_url)
        if page:
            parts.append(page)
        if resource.note:
            parts.append(resource.note)
    return "  " + ", ".join(parts)


def _progress(quiet: bool):
    if not bars_wanted(quiet):  # a pipe or a log gets no bars
        return None, None
    from tqdm import tqdm

    bars: Dict[Tuple[str, str], Any] = {}

    def hashing(done: int, total: int, name: str) -> None:
        bar = bars.get(("hash", name))
        if bar is None:
            bar = bars[("hash", name)] = tqdm(
                total=total, unit="B", unit_scale=True, desc=f"hashing {name}", file=sys.stderr
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def fetching(done: int, total: Optional[int], label: str) -> None:
        bar = bars.get(("get", label))
        if bar is None:
            bar = bars[("get", label)] = tqdm(
                total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr
            )
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()

    return hashing, fetching


def run(args: argparse.Namespace, out: TextIO) -> int:
    from .. import setting
    from ..civitai.api import CivitaiAPI
    from ..http_client import CivitaiHttpClient
    from ..resources.fetch import fetch_missing, total_size
    from ..resources.hash_cache import FileHasher
    from ..resources.service import open_cache, reproduce

    image_id = _image_id(args.image)
    models_dir = args.models_dir or setting.get("models_path") or None
    if models_dir and not os.path.isdir(os.path.expanduser(models_dir)):
        raise UsageError(f"the models folder {models_dir} does not exist (see --models-dir)")
    output = os.path.abspath(os.path.expanduser(args.output or setting.get("images.output_path")))
    client = CivitaiHttpClient(
        api_key=args.api_key or os.environ.get("CIVITAI_API_KEY") or None,
        # the environment's addresses are the settings' (transport.client.front_urls)
        base_url=args.base_url or None,
        red_base_url=args.red_base_url or None,
    )
    hashing, fetching = _progress(args.quiet)
    with client, open_cache(output) as cache:
        item = CivitaiAPI(client=client).get_image(image_id)
        plan = reproduce(
            item,
            client,
            cache,
            models_dir,
            hash_progress=hashing,
            lookup_max_age=float(setting.get("resources.lookup_max_age_hours")) * 3600,
        )
        shown = [r for r in plan.resources if not args.types or r.type in args.types]
        where = models_dir or ("WebUI" if plan.inventory.source == "webui" else None)
        out.write(
            f"Image {image_id}: {len(shown)} resource(s)"
            + (f"; your models: {where}" if where else "; no models folder (use --models-dir)")
            + "\n"
        )
        for resource in shown:
            out.write(resource_line(resource, plan.page_base(client)) + "\n")
        missing = plan.missing(args.types)
        status = EXIT_OK
        if missing and args.download:
            if not plan.folders:
                raise UsageError("--download needs a models folder: pass --models-dir DIR")
            out.write(f"Downloading {len(missing)} file(s), {human_size(total_size(missing))}\n")
            outcomes = fetch_missing(
                missing,
                plan.folders,
                client,
                FileHasher(cache),
                progress=fetching,
                min_free_mb=int(setting.get("images.min_free_space_mb")),
                unknown_size_mb=int(setting.get("resources.max_unknown_size_mb")),
            )
            for outcome in outcomes:
                mark = "✓" if outcome.status in ("downloaded", "present") else "✗"
                out.write(f"  {mark} {outcome.message}\n")
            summary = summarize(outcomes)
            if summary.failed:
                status = EXIT_FAILED
                if summary.all_failed:  # not a "Downloaded 0 file(s)" that reads like success
                    out.write(
                        f"None of the {len(summary.failed)} missing file(s) was downloaded.\n"
                    )
        elif missing:
            out.write(
                f"Missing: {len(missing)} file(s), {human_size(total_size(missing))}. "
                "Run again with --download to fetch them.\n"
            )
            status = EXIT_FAILED
        else:
            out.write("Everything is present.\n")
        text = plan.infotext()
        if text:
            out.write("\nGeneration data with your file names (paste into txt2img):\n")
            out.write(text + "\n")
    return status


def main(argv: Sequence[str], out: Optional[TextIO] = None) -> int:
    """``argv`` without the word ``resources``; returns the exit code (0 all present, 1 something
    missing or failed, 2 bad input, 130 interrupted)."""
    return run_command(
        build_parser(),
        run,
        list(argv),
        out,
        interrupted="interrupted; a partial download is kept and resumes next time",
    )

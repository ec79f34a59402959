"""The service one CLI run uses, built from its options: client, API, engine and downloader, and
the ``download_*`` call that matches the target."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .args import DUPLICATE_POLICIES, filters_from_args
from .target import CliTarget

if TYPE_CHECKING:  # imported lazily at run time (start-up speed)
    from ..image_downloader import ImageDownloader
    from ..planning.listing_request import ListingRequest


@dataclass
class RunConfig:
    output: str
    base_url: Optional[str]
    api_key: Optional[str] = field(repr=False)  # never in a repr, log or report
    concurrency: Optional[int] = None
    template: Optional[str] = None
    nsfw: Optional[List[str]] = None
    metadata: Optional[List[str]] = None
    thumbnails: Optional[bool] = None
    duplicates: Optional[str] = None
    limit: Optional[int] = None
    filters: Optional[Any] = None  # civitai.filters.FilterSpec of the filter flags
    full: bool = False  # --full: no incremental stop (planning/incremental.py)
    sleep_request: Optional[str] = None  # --sleep-request / --limit-rate (transport/pacing.py)
    limit_rate: Optional[str] = None
    red_base_url: Optional[str] = None  # Civitai's front for Mature/X (None: see front_urls)
    lookup_levels: Optional[List[str]] = None  # the listing's levels (an nsfw= in a filter too)
    base_url_flag: bool = False  # --base-url given: that one address serves both fronts
    with_tags: bool = False  # --with-tags: withTags=true on every images request


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Options over environment over saved settings (the settings themselves are not changed)."""
    from .. import setting

    from ..transport.client import check_base_url

    output = args.output or setting.get("images.output_path")
    base_url = args.base_url or os.environ.get("CIVITAI_BASE_URL") or None
    if base_url:
        base_url = check_base_url(base_url)  # SettingsError for user:password@ (never echoed)
    red_base_url = getattr(args, "red_base_url", None) or os.environ.get("CIVITAI_RED_BASE_URL")
    if red_base_url:
        red_base_url = check_base_url(red_base_url)
    return RunConfig(
        output=os.path.abspath(os.path.expanduser(output)),
        base_url=base_url,
        api_key=(args.api_key or os.environ.get("CIVITAI_API_KEY") or None),
        concurrency=getattr(args, "concurrency", None),
        template=getattr(args, "template", None),
        nsfw=getattr(args, "nsfw", None),
        metadata=getattr(args, "metadata", None),
        thumbnails=getattr(args, "thumbnails", None),
        duplicates=getattr(args, "duplicates", None),
        limit=getattr(args, "limit", None),
        filters=filters_from_args(args),
        full=bool(getattr(args, "full", False)),
        sleep_request=getattr(args, "sleep_request", None),
        limit_rate=getattr(args, "limit_rate", None),
        red_base_url=red_base_url or None,
        base_url_flag=bool(args.base_url),
        with_tags=bool(getattr(args, "with_tags", False)),
    )


class Service:
    """The objects one CLI run uses: one client, one API, one engine, one downloader (closed on
    exit). Every option goes to the constructors; the saved settings are never changed."""

    def __init__(self, cfg: RunConfig, remember_options: bool = False):
        from ..civitai.api import CivitaiAPI
        from ..http_client import CivitaiHttpClient

        self.cfg = cfg
        from .. import setting

        self.client = CivitaiHttpClient(
            api_key=cfg.api_key,
            # the environment's address is the settings' (front_urls: civitai.com there keeps
            # civitai.red for Mature/X); --base-url alone serves both fronts
            base_url=cfg.base_url if cfg.base_url_flag else None,
            pool_size=cfg.concurrency,
            red_base_url=cfg.red_base_url,
            sleep_request=cfg.sleep_request,
            limit_rate=cfg.limit_rate,
        )
        # look-ups (models, versions, an image by id) go to the front of the run's levels
        default_levels = setting.get("images.default_nsfw_filter")
        levels = cfg.lookup_levels or cfg.nsfw or default_levels
        self.api = CivitaiAPI(client=self.client, levels=levels, default_levels=default_levels)
        self.downloader: Optional[ImageDownloader] = None
        self.remember_options = remember_options

    def open_downloader(self) -> "ImageDownloader":
        from .. import setting
        from ..engine.pool import DownloadEngine
        from ..image_downloader import ImageDownloader

        cfg = self.cfg
        workers = cfg.concurrency or setting.get("images.max_concurrent")
        options: Dict[str, Any] = {"max_concurrent": workers}
        if cfg.metadata:
            options["metadata_formats"] = list(cfg.metadata)
        if cfg.thumbnails:
            options["generate_thumbnails"] = True
        if cfg.duplicates:
            options["duplicate_policy"] = DUPLICATE_POLICIES[cfg.duplicates]
        downloader = ImageDownloader(
            api_client=self.api,
            download_engine=DownloadEngine(client=self.client, max_workers=workers),
            output_path=cfg.output,
            path_template=cfg.template or setting.get("images.path_template"),
            **options,
        )
        self.downloader = downloader
        # one run per output folder: a second process refuses here (OutputBusyError), before any
        # listing or write; the lock is held until close()
        downloader.lock_output()
        if self.remember_options:  # retry-failed in this folder writes its files the same way
            d = downloader
            d.archive.set_run_options(
                {
                    "template": d.template.template,
                    "metadata": list(d.metadata_formats),
                    "thumbnails": bool(d.generate_thumbnails),
                    "duplicates": d.duplicate_policy,
                }
            )
        return downloader

    def close(self, timeout: Optional[float] = None) -> None:
        """Close the downloader, engine and client; with ``timeout`` (a stop request) workers
        still busy after it are left behind (daemon threads) instead of waited for."""
        if self.downloader is not None:
            self.downloader.close(timeout=timeout)
            self.downloader.engine.shutdown(wait=timeout is None, cancel_pending=True)
        self.api.settle_prefetches(timeout=1.0 if timeout is not None else 5.0)
        self.client.close()


def listing_for(target: CliTarget, cfg: RunConfig) -> Optional["ListingRequest"]:
    """What the run lists for ``target`` (None for a single image), validated before any request;
    ``--nsfw`` wins over an ``nsfw`` key in a filter."""
    from ..planning.listing_request import for_target

    filters = cfg.filters
    if filters is not None and target.kind in ("image", "images"):
        logging.getLogger(__name__).warning("the filter flags do not apply to a single image")
        filters = None
    if target.kind == "images":
        return None
    params = target.value if target.kind == "filter" else target.params
    from .. import setting

    default = setting.get("images.default_nsfw_filter")
    request = for_target(
        target.kind, target.value, target.version_id, params, cfg.nsfw, filters, cfg.limit, default
    )
    if request is not None and cfg.with_tags:  # without the flag the requests stay as they were
        request = dataclasses.replace(request, params={**request.params, "withTags": "true"})
    if request is not None and cfg.full:
        request = dataclasses.replace(request, full=True)
    return request


def start_download(
    downloader, target: CliTarget, cfg: RunConfig, listing: Optional["ListingRequest"] = None
) -> List[str]:
    """Run the target's listing (``listing``, else :func:`listing_for`) or fetch its single
    image; listing runs here, downloads in the engine."""
    save = cfg.metadata is None or bool(cfg.metadata)
    if listing is None:
        listing = listing_for(target, cfg)
    if listing is not None:
        return downloader.download_listing(listing, save_metadata=save)
    if target.kind == "images":
        return downloader.download_images(
            target.value, save_metadata=save, with_tags=cfg.with_tags, batch=target.batch
        )
    return [downloader.download_single_image(target.value, save_metadata=save)]


def apply_remembered_options(cfg: RunConfig, db_path: str) -> None:
    """Fill the file options ``retry-failed`` was not given from what the last download into the
    folder used (its archive remembers them); options given on the command line win."""
    from ..store.archive import Archive

    with Archive(db_path) as archive:
        remembered = archive.run_options()
    if cfg.template is None:
        cfg.template = remembered.get("template")
    if cfg.metadata is None and "metadata" in remembered:
        cfg.metadata = list(remembered["metadata"])
    if cfg.thumbnails is None and remembered.get("thumbnails"):
        cfg.thumbnails = True
    if cfg.duplicates is None and remembered.get("duplicates"):
        by_policy = {policy: name for name, policy in DUPLICATE_POLICIES.items()}
        cfg.duplicates = by_policy.get(remembered["duplicates"])

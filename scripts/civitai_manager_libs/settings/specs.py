"""The table of every setting: key, default, type, description, bounds, choices, env override."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import SettingsError
from ..records import NSFW_LEVELS
from .values import (
    DUPLICATE_POLICIES,
    METADATA_FORMATS,
    UI_LANGUAGES,
    Validator,
    float_validator,
    int_validator,
    text_validator,
    validate_api_key,
    validate_base_url,
    validate_bool,
    validate_duplicate_policy,
    validate_metadata_format,
    validate_nsfw_filter,
    validate_path_template,
    validate_rate,
    validate_sleep_request,
    validate_thumbnail_size,
    validate_ui_language,
)


def repo_root() -> str:
    """The repository (extension) folder: the parent of ``scripts/``."""
    return str(Path(__file__).resolve().parents[3])


@dataclass(frozen=True)
class SettingSpec:
    """One setting: what it is, its default and how a value is checked.

    ``type`` is one of ``int``, ``float``, ``bool``, ``str``, ``list``, ``tuple`` (the JSON file
    stores lists and tuples as arrays). ``choices`` lists the allowed values (for ``list`` and the
    comma-separated ``images.metadata_format``: the allowed items). ``env`` names the environment
    variable that overrides the setting, ``secret`` marks values never shown or saved by default.
    """

    key: str
    default: Any
    type: str
    description: str
    validator: Validator
    choices: Optional[Tuple[str, ...]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    secret: bool = False
    env: Optional[str] = None

    @property
    def attribute(self) -> str:
        """The module attribute name: ``images.output_path`` -> ``images_output_path``."""
        return self.key.replace(".", "_")

    def validate(self, value: Any) -> Any:
        return self.validator(self.key, value)


def _spec_int(key, default, description, lo=None, hi=None) -> SettingSpec:
    return SettingSpec(key, default, "int", description, int_validator(lo, hi), min=lo, max=hi)


def _spec_float(key, default, description, lo=None, hi=None) -> SettingSpec:
    return SettingSpec(
        key, float(default), "float", description, float_validator(lo, hi), min=lo, max=hi
    )


def _spec_bool(key, default, description) -> SettingSpec:
    return SettingSpec(key, default, "bool", description, validate_bool)


def _build_specs() -> Dict[str, SettingSpec]:
    specs = [
        _spec_float(
            "http_timeout",
            30,
            "Seconds to wait for the server to send data (read timeout).",
            1,
            600,
        ),
        _spec_float(
            "http_connect_timeout", 10, "Seconds to wait for a connection to be made.", 1, 300
        ),
        _spec_int(
            "http_max_retries",
            5,
            "Retries for connection errors, 429 and 5xx answers before giving up.",
            0,
            20,
        ),
        _spec_int(
            "http_host_down_after",
            5,
            "Connection failures in a row after which a host counts as down for the run: its "
            "remaining images fail at once with 'host unreachable' (retry-failed picks them "
            "up). 0 never gives up on a host.",
            0,
            100,
        ),
        _spec_float(
            "http_backoff_factor",
            0.5,
            "Base of the exponential wait between retries, in seconds (with jitter).",
            0,
            60,
        ),
        SettingSpec(
            "http_sleep_request",
            "0",
            "str",
            "Least seconds between two API requests (as gallery-dl's sleep-request): '2' waits "
            "2 to 2.4 s, '2-5' a random 2 to 5 s. 0: no wait. --sleep-request overrides it.",
            validate_sleep_request,
        ),
        SettingSpec(
            "http_limit_rate",
            "",
            "str",
            "Most bytes per second for each image or video download, e.g. 500k or 2M (1024-based). "
            "Empty: no limit. --limit-rate overrides it.",
            validate_rate,
        ),
        _spec_float(
            "http_retry_after_cap",
            120,
            "Longest wait in seconds honoured from a server's Retry-After header.",
            0,
            3600,
        ),
        SettingSpec(
            "civitai_base_url",
            "https://civitai.com",
            "str",
            "Civitai address (API origin). The CIVITAI_BASE_URL environment variable overrides it.",
            validate_base_url,
            env="CIVITAI_BASE_URL",
        ),
        SettingSpec(
            "civitai_red_base_url",
            "https://civitai.red",
            "str",
            "Civitai's front for every NSFW level (Mature and X listings go there; civitai.com "
            "serves None/Soft only). The CIVITAI_RED_BASE_URL environment variable overrides it. "
            "Left unset while civitai_base_url names another address (a mirror, the demo), that "
            "address serves both.",
            validate_base_url,
            env="CIVITAI_RED_BASE_URL",
        ),
        SettingSpec(
            "civitai_video_base_url",
            "https://image-b2.civitai.com",
            "str",
            "Where video originals are fetched first (Civitai's video host; the image host's URL "
            "is the fallback). Used for Civitai's own media URLs, and for any media host once "
            "changed from its default (a local fake). Env CIVITAI_VIDEO_BASE_URL.",
            validate_base_url,
            env="CIVITAI_VIDEO_BASE_URL",
        ),
        SettingSpec(
            "civitai_api_key",
            "",
            "str",
            "Civitai API key, needed for some content. Kept out of logs and, unless asked, out of "
            "the settings file; prefer the CIVITAI_API_KEY environment variable.",
            validate_api_key,
            secret=True,
            env="CIVITAI_API_KEY",
        ),
        _spec_int(
            "gallery_download_batch_size", 5, "Images downloaded per batch by the gallery.", 1, 100
        ),
        _spec_float(
            "gallery_download_timeout",
            30,
            "Seconds the gallery waits for one image download.",
            1,
            600,
        ),
        _spec_int(
            "gallery_max_concurrent_downloads",
            3,
            "Simultaneous image downloads started by the gallery.",
            1,
            16,
        ),
        _spec_int("gallery_page_size", 40, "Images shown per gallery page.", 1, 200),
        SettingSpec(
            "gallery_cache_path",
            os.path.join(repo_root(), "data", "gallery_cache"),
            "str",
            "Folder for the gallery's cached preview images.",
            text_validator(allow_empty=False),
        ),
        _spec_int(
            "gallery_cache_max_mb",
            500,
            "Largest size of the gallery's cache folder (MB); the least recently used pictures "
            "are removed past it. 0: no limit.",
            0,
            10_000_000,
        ),
        SettingSpec(
            "ui_language",
            "",
            "str",
            "Language of the standalone app's tab: en, zh_TW, zh_CN, ja_JP or ko_KR ('' is "
            "English). Inside WebUI the tab follows WebUI's localization.",
            validate_ui_language,
            choices=UI_LANGUAGES,
        ),
        SettingSpec(
            "images.output_path",
            "./images",
            "str",
            "Base folder where downloaded images are saved.",
            text_validator(allow_empty=False),
        ),
        SettingSpec(
            "images.path_template",
            "{model_id}/{id}",
            "str",
            "Where each image goes under the output folder, without extension. Fields: {model_id} "
            "{model_name} {version_id} {id} {image_id} {creator} {nsfw_level} {post_id}.",
            validate_path_template,
        ),
        SettingSpec(
            "images.metadata_format",
            "json",
            "str",
            "Metadata formats to write, comma-separated: json, txt, exif.",
            validate_metadata_format,
            choices=METADATA_FORMATS,
        ),
        _spec_bool("images.save_metadata", True, "Save each image's generation data."),
        SettingSpec(
            "images.default_nsfw_filter",
            ["None", "Soft"],
            "list",
            "NSFW levels downloaded when none are given: any of None, Soft, Mature, X.",
            validate_nsfw_filter,
            choices=NSFW_LEVELS,
        ),
        _spec_int("images.max_concurrent", 5, "Simultaneous image downloads.", 1, 32),
        _spec_bool("images.skip_existing", True, "Skip images that were already downloaded."),
        _spec_bool("images.generate_thumbnails", False, "Make a thumbnail for each image."),
        SettingSpec(
            "images.thumbnail_size",
            (256, 256),
            "tuple",
            "Thumbnail size (width, height) in pixels, 16 to 4096; text like 256x256 is accepted.",
            validate_thumbnail_size,
            min=16,
            max=4096,
        ),
        SettingSpec(
            "images.duplicate_policy",
            "skip",
            "str",
            "What to do when a downloaded image has the same content as one already saved: "
            "skip, replace or keep_both.",
            validate_duplicate_policy,
            choices=DUPLICATE_POLICIES,
        ),
        _spec_int(
            "images.min_free_space_mb",
            200,
            "Refuse to start a batch when the output disk has less free space than this (MB).",
            0,
            10_000_000,
        ),
        _spec_int(
            "images.max_file_size_mb",
            2048,
            "The largest image or video accepted (MB): a larger announced size is refused before "
            "anything is written, and a stream that passes it is stopped and removed.",
            1,
            1_000_000,
        ),
        SettingSpec(
            "models_path",
            "",
            "str",
            "WebUI-style models folder (Stable-diffusion/, Lora/, embeddings/, VAE/) used to find "
            "and store an image's resources outside WebUI; inside WebUI its own folders are used.",
            text_validator(allow_empty=True),
        ),
        _spec_int(
            "resources.confirm_over_mb",
            1024,
            "Ask before downloading missing resources larger than this in total (MB).",
            0,
            10_000_000,
        ),
        _spec_float(
            "resources.lookup_max_age_hours",
            24,
            "Hours a cached Civitai answer about a model version (by id or hash) is reused before "
            "it is asked again.",
            0,
            24 * 365,
        ),
        _spec_int(
            "resources.max_unknown_size_mb",
            8192,
            "The largest model file accepted when Civitai lists no size for it (MB); the download "
            "stops once it passes this.",
            1,
            10_000_000,
        ),
    ]
    return {spec.key: spec for spec in specs}


SPECS: Dict[str, SettingSpec] = _build_specs()
# module attribute name (``images_output_path``) -> key (``images.output_path``)
ATTRIBUTE_KEYS: Dict[str, str] = {spec.attribute: key for key, spec in SPECS.items()}
# environment variable -> key it overrides
ENV_KEYS: Dict[str, str] = {spec.env: key for key, spec in SPECS.items() if spec.env}


def spec_for(key: str) -> SettingSpec:
    """The spec of ``key``; SettingsError listing the known settings when there is none."""
    try:
        return SPECS[key]
    except KeyError:
        raise SettingsError(
            f"Unknown setting '{key}'. Known settings: {', '.join(sorted(SPECS))}."
        ) from None

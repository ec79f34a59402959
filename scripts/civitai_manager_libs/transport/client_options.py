"""What a client is built from, as data (urllib3's "policy as data"): :class:`ClientOptions`.

:meth:`ClientOptions.from_settings` is the one place the transport reads the settings (the shells
and the shared client call it); a client built from the table's defaults is ``ClientOptions()``.
:func:`pick_fronts` decides the two fronts' addresses from values alone; :func:`front_urls` is
that rule over the settings.
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple, dataclass
from typing import Any, Optional, Tuple
from urllib.parse import urlsplit

from .. import setting
from ..settings.specs import SPECS
from ..util import url_gate


def _default(key: str) -> Any:
    return SPECS[key].default


#: Civitai's own safe-for-work hosts: configured there, the red front stays civitai.red
SFW_FRONT_HOSTS = ("civitai.com", "civitai.green")


@dataclass(frozen=True)
class ClientOptions:
    """Every value a :class:`~.client.CivitaiHttpClient` takes from the settings (the key as
    given: the client hides it). ``red_base_url`` is None when not configured (see
    :func:`pick_fronts`)."""

    api_key: str = ""
    timeout: float = _default("http_timeout")
    connect_timeout: float = _default("http_connect_timeout")
    download_timeout: float = _default("gallery_download_timeout")
    max_retries: int = _default("http_max_retries")
    backoff_factor: float = _default("http_backoff_factor")
    retry_after_cap: float = _default("http_retry_after_cap")
    base_url: str = _default("civitai_base_url")
    red_base_url: Optional[str] = None
    pool_size: int = max(
        _default("images.max_concurrent"), _default("gallery_max_concurrent_downloads")
    )
    host_down_after: int = _default("http_host_down_after")
    sleep_request: Any = _default("http_sleep_request")
    limit_rate: Any = _default("http_limit_rate")
    max_file_mb: int = _default("images.max_file_size_mb")
    min_free_mb: int = _default("images.min_free_space_mb")

    def __repr__(self) -> str:  # the key never shows
        return f"ClientOptions(base_url={self.base_url!r}, api_key={'***' if self.api_key else ''})"

    def digest(self) -> str:
        """A fingerprint of every value (the key included, not readable from it)."""
        return hashlib.sha256(repr(astuple(self)).encode("utf-8")).hexdigest()

    @classmethod
    def from_settings(cls) -> "ClientOptions":
        """The options as the settings (environment, file, run-time changes) say now."""
        get = setting.get
        red = get("civitai_red_base_url")
        return cls(
            api_key=get("civitai_api_key") or "",
            timeout=float(get("http_timeout")),
            connect_timeout=float(get("http_connect_timeout")),
            download_timeout=float(get("gallery_download_timeout")),
            max_retries=int(get("http_max_retries")),
            backoff_factor=float(get("http_backoff_factor")),
            retry_after_cap=float(get("http_retry_after_cap")),
            base_url=get("civitai_base_url"),
            red_base_url=red if setting.source("civitai_red_base_url") != "default" else None,
            pool_size=max(
                int(get("images.max_concurrent")), int(get("gallery_max_concurrent_downloads"))
            ),
            host_down_after=int(get("http_host_down_after")),
            sleep_request=get("http_sleep_request"),
            limit_rate=get("http_limit_rate"),
            max_file_mb=int(get("images.max_file_size_mb")),
            min_free_mb=int(get("images.min_free_space_mb")),
        )


def configured_fronts() -> Tuple[str, str]:
    """The two fronts' addresses as configured (a link to their hosts is a Civitai link)."""
    return setting.get("civitai_base_url"), setting.get("civitai_red_base_url")


def settings_revision() -> int:
    """The settings' change counter: when it moved, :meth:`ClientOptions.from_settings` may
    differ."""
    return setting.revision()


def pick_fronts(
    base_url: Optional[str], red_base_url: Optional[str], options: ClientOptions
) -> Tuple[str, str]:
    """The API base URLs of Civitai's two fronts, ``(sfw, red)``: arguments (the CLI's
    ``--base-url`` / ``--red-base-url``) over ``options``.

    The red front (every NSFW level) is ``red_base_url``, else the configured
    ``options.red_base_url``, else the SFW address itself when that names one address for
    everything (an argument, or a configured address other than Civitai's own civitai.com /
    civitai.green: a mirror, the demo, a test fake), else ``https://civitai.red``."""
    sfw = url_gate.check_base_url(base_url or options.base_url)
    if red_base_url:
        red = red_base_url
    elif options.red_base_url:
        red = options.red_base_url
    elif base_url or not _civitai_sfw_host(sfw):
        red = sfw
    else:
        red = _default("civitai_red_base_url")
    return sfw, url_gate.check_base_url(red)


def front_urls(
    base_url: Optional[str] = None, red_base_url: Optional[str] = None
) -> Tuple[str, str]:
    """:func:`pick_fronts` over the settings (environment over settings file): what a client
    built now with these arguments would use."""
    return pick_fronts(base_url, red_base_url, ClientOptions.from_settings())


def _civitai_sfw_host(url: str) -> bool:
    """True for Civitai's own safe-for-work front (civitai.com, www.civitai.com, civitai.green)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == name or host.endswith("." + name) for name in SFW_FRONT_HOSTS)

"""Civitai's two fronts as data: which origin serves which NSFW levels.

Since April 2026 Civitai runs two fronts on one API. Its server picks by the Host a request comes
in on (``src/server/utils/server-domain.ts``, the "domain colours"): on ``civitai.com`` (green)
the ``canViewNsfw`` feature is off and every answer is clamped to the safe-for-work levels (PG =
``None``, PG-13 = ``Soft``); ``civitai.red`` serves every level. Accounts and API keys are shared.

:class:`Fronts` answers "which origin serves these levels" for the listings and the look-ups of
one command or tab. It is built once, at the edge, from the HTTP client (whose addresses come
from the settings, the environment or the command line: ``transport.client_options.front_urls``)
and is passed down; nothing below reads a setting to decide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Tuple
from urllib.parse import urlsplit

from ..records import ImageItem

log = logging.getLogger(__name__)

#: The levels civitai.com serves; any other level (Mature, X) needs the red front.
SFW_LEVELS = ("None", "Soft")
MATURE_LEVELS = ("Mature", "X")
#: Civitai's own hosts of each front (a subdomain such as www. counts too).
SFW_HOSTS = ("civitai.com", "civitai.green")
RED_HOSTS = ("civitai.red",)

SFW_ONLY_WARNING = "civitai.com serves safe-for-work images only; mature images are on civitai.red"


def wants_mature(levels: Optional[Iterable[str]]) -> bool:
    """True when ``levels`` include a level the safe-for-work front does not serve."""
    return any(str(level) not in SFW_LEVELS for level in levels or ())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else ""


def _on(host: str, names: Tuple[str, ...]) -> bool:
    return any(host == name or host.endswith("." + name) for name in names)


@dataclass(frozen=True)
class Fronts:
    """The API base URLs of the safe-for-work front (``sfw``) and the every-level front
    (``red``). Both are the same address for a mirror, the demo or a test fake; an empty string
    means "the client's own base URL" (paths are then passed to it as they are)."""

    sfw: str = ""
    red: str = ""

    @classmethod
    def of(cls, client: Any) -> "Fronts":
        """The fronts a :class:`~..http_client.CivitaiHttpClient` was built for (a client
        without a red front serves both from its base URL)."""
        sfw = getattr(client, "base_url", "")
        sfw = sfw.rstrip("/") if isinstance(sfw, str) else ""
        red = getattr(client, "red_base_url", "")
        red = red.rstrip("/") if isinstance(red, str) and red else sfw
        return cls(sfw, red)

    @property
    def split(self) -> bool:
        """True when mature levels go to another address than the safe-for-work ones."""
        return _origin(self.sfw) != _origin(self.red)

    def base_for(self, levels: Optional[Iterable[str]]) -> str:
        """The base URL serving ``levels`` (None: the safe-for-work front)."""
        return self.red if wants_mature(levels) else self.sfw

    def url(self, levels: Optional[Iterable[str]], path: str) -> str:
        """``path`` (``/api/v1/...``) on the front serving ``levels``."""
        base = self.base_for(levels)
        return base + path if base else path

    def on(self, base: str, path: str) -> str:
        """``path`` on the front ``base`` (one of :attr:`sfw` / :attr:`red`)."""
        return base + path if base else path

    def page_url(self, kind: str, item_id: Any, level: Optional[str] = None) -> Optional[str]:
        """The Civitai page of an image (``kind`` ``images``) or model (``models``) on the front
        that shows it: a mature image's page is on the red front. None without an address."""
        base = self.red if level is not None and wants_mature([level]) else self.sfw
        if not base or item_id is None:
            return None
        return f"{base}/{kind}/{item_id}"

    def on_civitai_com(self) -> bool:
        """True when the safe-for-work front is Civitai's own (civitai.com, civitai.green)."""
        return _on((urlsplit(self.sfw).hostname or "").lower(), SFW_HOSTS)

    def sfw_only_single(self) -> bool:
        """True when one address serves every listing and it is civitai.com's safe-for-work
        front (the user gave --base-url https://civitai.com and no red front): a mature listing
        then comes back without its mature images."""
        # only civitai.com itself: a mirror or a fake at one address may simply hold no mature
        # image (tests/faults/test_kill_resume.py lists a model without any)
        return not self.split and self.on_civitai_com()


class MatureCheck:
    """Notices a mature listing sent to civitai.com's safe-for-work front alone (the user's
    ``--base-url https://civitai.com`` with no red front) that came back with none of the mature
    levels it asked for, and says so instead of reporting success."""

    def __init__(self, fronts: Fronts, levels: Tuple[str, ...]):
        self.active = wants_mature(levels) and fronts.sfw_only_single()
        self.listed = 0
        self.mature = 0

    def seen(self, items: Iterable[ImageItem]) -> Iterator[ImageItem]:
        for item in items:
            if self.active:
                self.listed += 1
                self.mature += wants_mature([item.nsfw_level])
            yield item

    def notice(self) -> Optional[str]:
        if self.active and not self.mature:  # civitai.com: an empty answer says it too
            return SFW_ONLY_WARNING + " (set --red-base-url / civitai_red_base_url)."
        return None

    def warn_at_end(self) -> None:
        notice = self.notice()
        if notice:
            log.warning("%s", notice)

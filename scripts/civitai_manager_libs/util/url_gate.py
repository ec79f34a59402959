"""The one gate for URLs: base URLs the user gives, and every hop of a download.

* :func:`check_base_url`: an ``http(s)`` origin (no ``file:``, ``ftp:``, ``gopher:``,
  ``javascript:``...), with a host, no user:password, query or fragment, and no control
  characters, spaces or CR/LF anywhere. Raises :class:`~..errors.SettingsError` (exit 2, bad
  input) whose message never echoes a credential.
* :func:`check_download_url`: where a model or media file may come from: a public ``https`` host.
  The hosts of the configured base URLs (a mirror, the fake Civitai) and loopback are trusted
  (``http`` allowed); link-local (169.254.0.0/16, fe80::/10), cloud metadata names
  (``metadata.google.internal``...), private, multicast, reserved and unspecified addresses are
  refused. Checked on the URL and on every redirect hop; the refusal
  (:class:`~..errors.RefusedUrlError`) is final, never retried.

Host names are classed by their literal form (an IP address, or a name known to be internal);
a public-looking name is not resolved here.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Optional
from urllib.parse import urlsplit

from ..errors import RefusedUrlError, SettingsError

BASE_SCHEMES = ("http", "https")
#: Names that reach a cloud provider's instance metadata (credentials) from inside a VM.
METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
_LOCAL_SUFFIXES = (".internal", ".local", ".localdomain", ".intranet", ".lan", ".home.arpa")


def _has_bad_characters(text: str) -> bool:
    return any(ord(ch) < 33 or ord(ch) == 127 for ch in text)


def host_class(host: Optional[str]) -> str:
    """``loopback``, ``link-local``, ``metadata``, ``private``, ``reserved`` or ``public``."""
    name = (host or "").strip("[]").rstrip(".").lower()
    if not name:
        return "reserved"
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    if name in METADATA_NAMES:
        return "metadata"
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return "private" if name.endswith(_LOCAL_SUFFIXES) else "public"
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return "reserved"
    return "public"


def check_base_url(url: str, what: str = "The Civitai base URL") -> str:
    """``url`` without a trailing slash after the checks of the module docstring."""
    if not isinstance(url, str) or not url.strip():
        raise SettingsError(f"{what} is empty; give an address such as https://civitai.com.")
    if _has_bad_characters(url):
        raise SettingsError(
            f"{what} holds a space, line break or control character; give a plain address such "
            "as https://civitai.com."
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in BASE_SCHEMES:
        scheme = parts.scheme or "no scheme"
        raise SettingsError(
            f"{what} must start with https:// (or http:// for a local mirror), not {scheme[:20]}: "
            "give an address such as https://civitai.com."
        )
    if "@" in (parts.netloc or ""):
        raise SettingsError(
            f"{what} must not carry a user name or password (user:password@host): they would be "
            "sent to every host and shown in logs. Give the API key with --api-key / "
            "CIVITAI_API_KEY / civitai_api_key instead."
        )
    if parts.query or parts.fragment:
        raise SettingsError(
            f"{what} must be a plain address such as https://civitai.com, without a query string "
            "or fragment (?...#...): a key belongs in --api-key / CIVITAI_API_KEY / "
            "civitai_api_key."
        )
    if not parts.hostname:
        raise SettingsError(f"{what} names no host; give an address such as https://civitai.com.")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError(f"{what} has an invalid port.") from None
    return url.rstrip("/")


def check_download_url(url: str, trusted_hosts: Iterable[str] = (), shown: str = "") -> None:
    """RefusedUrlError unless a file may be downloaded from ``url`` (module docstring).
    ``shown``: the URL as messages show it (secrets masked)."""
    shown = shown or "the download link"
    if not isinstance(url, str) or _has_bad_characters(url):
        raise RefusedUrlError(f"Refused {shown}: it holds spaces or control characters.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    trusted = {h.lower().strip("[]") for h in trusted_hosts if h}
    kind = host_class(host)
    if scheme not in BASE_SCHEMES or not host:
        raise RefusedUrlError(
            f"Refused {shown}: downloads go only to https addresses (got {scheme or 'none'}:).",
            url=shown,
        )
    if host in trusted or kind == "loopback":
        return
    if kind != "public":
        raise RefusedUrlError(
            f"Refused {shown}: it leads to a {kind} address ({host}); model and media files are "
            "downloaded only from public https hosts. Nothing was requested from it.",
            url=shown,
        )
    if scheme != "https":
        raise RefusedUrlError(
            f"Refused {shown}: downloads from other hosts than Civitai's must use https.",
            url=shown,
        )


def url_host(url: str) -> Optional[str]:
    """The host of ``url`` in lower case (None when it has none)."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None

"""The one HTTP client: a shared Session with retries as data, host pauses and key-only-to-the-API.

Every request of the package goes through :class:`CivitaiHttpClient` (usually the shared one from
:func:`get_http_client`). Its session and adapter (:mod:`.adapter`) wait for the host gate, pace
API requests, add the API key only to the API paths of Civitai's two fronts and retry; what it is
built from is a :class:`~.client_options.ClientOptions` (the settings, read by the shells and by
:func:`get_http_client`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urljoin, urlsplit

import requests

from .api_response import decode_json_object, status_error
from ..errors import (
    RefusedUrlError,
    DiskSpaceError,
    DownloadError,
    InvalidResponseError,
    NetworkError,
    OutputPathError,
)
from .failure_reason import transport_reason
from .adapter import CivitaiAdapter, _ApiKey, _Session, is_api_path  # noqa: F401 (public API)
from .client_options import (  # noqa: F401 (public API)
    ClientOptions,
    front_urls,
    pick_fronts,
    settings_revision,
)
from .host_gate import HostGate, origin_of
from .pacing import RequestPacer, parse_interval, parse_rate
from ..util import url_gate
from ..util.logging_setup import redact
from .media_sniff import media_kind  # noqa: F401 - part of this module's public API
from ..records import DownloadResult
from .retry_policy import CivitaiRetry

if TYPE_CHECKING:  # imported when the first file is fetched: an API call does not need it
    from .file_fetch import ContentCheck, FileFetch, ProgressCallback, ReceivedFile

logger = logging.getLogger(__name__)

USER_AGENT = "civitai-gallery/1.0 (Stable Diffusion WebUI extension)"
POOL_HEADROOM = 2  # connections beyond the download concurrency, for the listing's API calls

Timeout = Union[None, float, Tuple[float, float]]


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, through the one URL gate (util/url_gate): an http(s)
    origin without credentials, query, spaces or CR/LF; SettingsError (exit 2) otherwise."""
    return url_gate.check_base_url(url)


class CivitaiHttpClient:
    """Thread-safe HTTP client for the Civitai API and its image hosts.

    ``options`` (:class:`~.client_options.ClientOptions`; default: the settings now, through
    :meth:`ClientOptions.from_settings`) holds every value; an argument given here wins over it.
    ``timeout`` is the read timeout in seconds, or a ``(connect, read)`` pair. ``red_base_url``
    is Civitai's front for every NSFW level (see :func:`~.client_options.pick_fronts`: a
    ``base_url`` given alone serves both fronts). ``pool_size`` is the download concurrency.
    ``api_key=""`` means "no key" even if one is configured.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        timeout: Timeout = None,
        max_retries: Optional[int] = None,
        base_url: Optional[str] = None,
        pool_size: Optional[int] = None,
        *,
        download_timeout: Timeout = None,
        backoff_factor: Optional[float] = None,
        retry_after_cap: Optional[float] = None,
        host_gate: Optional[HostGate] = None,
        sleep_request: Any = None,
        limit_rate: Any = None,
        red_base_url: Optional[str] = None,
        options: Optional[ClientOptions] = None,
    ):
        opts = options if options is not None else ClientOptions.from_settings()
        self.options = replace(opts, api_key="")  # the key lives in _ApiKey alone
        self.timeout = _timeout_pair(timeout, opts.connect_timeout, opts.timeout)
        self.download_timeout = _timeout_pair(
            download_timeout, self.timeout[0], max(self.timeout[1], opts.download_timeout)
        )
        self.max_retries = int(_given(max_retries, opts.max_retries))
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.backoff_factor = float(_given(backoff_factor, opts.backoff_factor))
        self.retry_after_cap = float(_given(retry_after_cap, opts.retry_after_cap))
        self.base_url, self.red_base_url = pick_fronts(base_url, red_base_url, opts)
        self.api_origin = origin_of(self.base_url)
        #: the origins the key goes to (on their /api/ paths): both fronts, one account
        self.api_origins = tuple(dict.fromkeys((self.api_origin, origin_of(self.red_base_url))))
        self.pool_size = max(1, int(_given(pool_size, opts.pool_size)))
        self._api_key = _ApiKey(_given(api_key, opts.api_key))
        for front in dict.fromkeys((self.base_url, self.red_base_url)):
            if self._api_key and _plain_http_to_remote(front):
                logger.warning(
                    "The API key will be sent unencrypted to %s (plain http); use an https "
                    "Civitai address.",
                    origin_of(front),
                )
        self.host_gate = host_gate if host_gate is not None else HostGate()
        self.host_gate.down_after = opts.host_down_after
        self.retry = CivitaiRetry.build(
            self.max_retries, self.backoff_factor, self.retry_after_cap, self.host_gate
        )
        # polite pacing (transport/pacing.py); None: the options' (off by default)
        interval = parse_interval(_given(sleep_request, opts.sleep_request))
        self.pacer = RequestPacer(interval) if interval else None
        self.limit_rate = parse_rate(_given(limit_rate, opts.limit_rate))
        self.session = _Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = CivitaiAdapter(
            self.retry,
            self.host_gate,
            self.api_origins,
            self._api_key,
            pool_maxsize=self.pool_size + POOL_HEADROOM,
            pacer=self.pacer,
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return (
            f"CivitaiHttpClient(base_url={self.base_url!r}, red_base_url={self.red_base_url!r}, "
            f"api_key={self._api_key!r}, "
            f"timeout={self.timeout}, max_retries={self.max_retries}, pool_size={self.pool_size})"
        )

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    def close(self) -> None:
        """Close the pooled connections (the client must not be used afterwards)."""
        self.session.close()

    def __enter__(self) -> "CivitaiHttpClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- API ------------------------------------------------------------------------------------

    def api_url(self, url_or_path: str) -> str:
        """Absolute URLs pass through; a path such as ``/api/v1/images`` is joined to base_url."""
        if url_or_path.startswith(("http://", "https://")):
            return url_or_path
        return urljoin(self.base_url + "/", url_or_path.lstrip("/"))

    def get_json(
        self,
        url_or_path: str,
        params: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> dict:
        """GET a JSON object; every failure is a typed :class:`~.errors.ApiError`. ``headers``
        are added to the request (the web API's ``Referer``)."""
        url = self.api_url(url_or_path)
        safe = redact(url)
        try:
            # streamed: the body is read through a counting reader (a cap on the decoded size)
            response = self.session.get(
                url,
                params=params,
                timeout=self.timeout,
                headers={"Accept": "application/json", **(headers or {})},
                stream=True,
            )
        except requests.exceptions.TooManyRedirects:
            raise InvalidResponseError(
                f"Civitai redirected {safe} in a loop; check the civitai_base_url setting.",
                url=safe,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise NetworkError(_network_message(exc, safe, self.timeout), url=safe) from None
        with response:
            safe = redact(response.url or url)
            if response.status_code >= 300:
                raise status_error(
                    response, safe, retries=self.max_retries, has_api_key=bool(self._api_key)
                )
            return decode_json_object(response, safe)

    # -- files ----------------------------------------------------------------------------------

    def fetch_to_file(self, url: str, filepath: str, *args: Any, **kwargs: Any) -> DownloadResult:
        """Download ``url`` to ``filepath`` (via ``filepath + ".part"``) with the arguments of
        :meth:`file_fetch`.

        Raises :class:`~.errors.DownloadError` (and its subclasses ``UnexpectedContentError``,
        ``IncompleteDownloadError``, ``DownloadCancelledError``), ``DiskSpaceError`` or
        ``OutputPathError``. The final path never holds partial or non-media content.
        """
        return self.file_fetch(url, filepath, *args, **kwargs).run()

    def receive_file(self, url: str, filepath: str, *args: Any, **kwargs: Any) -> "ReceivedFile":
        """The network half of :meth:`fetch_to_file` (same arguments and errors): the body whole
        in ``filepath + ".part"``; its ``commit()`` (the local half: fsync, decode check, rename)
        may run on another thread, leaving the connection to the next request."""
        return self.file_fetch(url, filepath, *args, **kwargs).receive()

    def file_fetch(
        self,
        url: str,
        filepath: str,
        progress_callback: Optional["ProgressCallback"] = None,
        cancel_event: Optional[threading.Event] = None,
        fix_extension: bool = False,
        *,
        root: Optional[str] = None,
        min_free_bytes: Optional[int] = None,
        content_kind: Optional["ContentCheck"] = None,
        expected_sha256: Optional[str] = None,
        max_bytes: Optional[int] = None,
        cap_reason: Optional[str] = None,
    ) -> "FileFetch":
        """One download of ``url`` to ``filepath`` with this client's session and policy, not
        started (see :class:`FileFetch`).

        ``root``: the output folder every written, renamed or deleted file must stay in (default:
        the file's folder). ``min_free_bytes``: the free space kept while writing (default:
        ``images.min_free_space_mb``). Files over ``images.max_file_size_mb`` are refused.
        ``content_kind`` replaces the media check (model files); with ``expected_sha256`` the
        file is renamed into place only when its SHA-256 matches (``ChecksumMismatchError``).
        ``max_bytes`` replaces the ``images.max_file_size_mb`` cap (model files are larger);
        ``cap_reason`` says where that cap came from (the refusal names it). Every hop of the
        download (the URL and each redirect) passes ``util/url_gate.check_download_url``: public
        https hosts, this client's base URL host and loopback.
        """
        from .file_fetch import FetchPolicy, FileFetch

        policy = FetchPolicy(
            timeout=self.download_timeout,
            max_attempts=self.max_retries,
            backoff_factor=self.backoff_factor,
            max_bytes=(
                self.options.max_file_mb * 1024 * 1024 if max_bytes is None else int(max_bytes)
            ),
            cap_reason=(
                cap_reason
                or ("setting images.max_file_size_mb" if max_bytes is None else "the size cap")
            ),
            min_free_bytes=(
                self.options.min_free_mb * 1024 * 1024
                if min_free_bytes is None
                else int(min_free_bytes)
            ),
            rate_limit=self.limit_rate,
        )
        return FileFetch(
            self.session,
            policy,
            self.host_gate,
            url,
            filepath,
            progress_callback=progress_callback,
            cancel_event=cancel_event,
            fix_extension=fix_extension,
            root=root,
            content_kind=content_kind or media_kind,
            expected_sha256=expected_sha256,
            trusted_hosts=self.trusted_hosts(),
        )

    def trusted_hosts(self) -> Tuple[str, ...]:
        """The hosts downloads may reach over plain http or at a private address: the API
        hosts of this client's two fronts (a mirror, the fake Civitai). Public https hosts need
        no trust."""
        hosts = (url_gate.url_host(self.base_url), url_gate.url_host(self.red_base_url))
        return tuple(dict.fromkeys(host for host in hosts if host))

    def download_file(
        self, url: str, filepath: str, progress_callback: Optional["ProgressCallback"] = None
    ) -> bool:
        """The backlog's wrapper: True when ``filepath`` holds the file, False (logged) if not."""
        try:
            result = self.fetch_to_file(url, filepath, progress_callback=progress_callback)
        except (DownloadError, DiskSpaceError, OutputPathError) as exc:
            logger.warning("Download failed: %s", exc)
            return False
        logger.debug("Downloaded %s (%d bytes)", result.path, result.size)
        return True

    def get_stream_response(
        self, url: str, headers: Optional[Dict[str, str]] = None
    ) -> Optional[requests.Response]:
        """An open streaming response (use it in ``with``), or None after logging why not.
        The URL and every redirect hop pass the download gate (util/url_gate)."""
        safe = redact(url)
        trusted = self.trusted_hosts()

        def check_hop(response: requests.Response, *args: Any, **kwargs: Any) -> Any:
            if response.is_redirect:
                target = urljoin(response.url, response.headers.get("Location", ""))
                response.close()  # the hop is closed either way: no body is read from it
                url_gate.check_download_url(target, trusted, redact(target))
            return response

        try:
            url_gate.check_download_url(url, trusted, safe)
            response = self.session.get(
                url,
                headers=headers,
                stream=True,
                timeout=self.download_timeout,
                hooks={"response": check_hop},
            )
        except RefusedUrlError as exc:
            logger.warning("%s", exc)
            return None
        except requests.exceptions.RequestException as exc:
            logger.warning("Could not open %s: %s.", safe, transport_reason(exc))
            return None
        if not response.ok:
            logger.warning("Could not open %s: HTTP %d.", safe, response.status_code)
            response.close()
            return None
        return response


# -- helpers ------------------------------------------------------------------------------------


def _given(value: Any, default: Any) -> Any:
    """An argument given to the constructor, else the options' value."""
    return default if value is None else value


def _timeout_pair(value: Timeout, connect_default: float, read_default: Any) -> Tuple[float, float]:
    if value is None:
        read = float(read_default)
        return (min(connect_default, read), read)
    if isinstance(value, (tuple, list)):
        connect, read = value
        return (float(connect), float(read))
    read = float(value)
    return (min(connect_default, read), read)


def _plain_http_to_remote(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "http" and host not in ("localhost", "127.0.0.1", "::1")


def _network_message(exc: BaseException, safe: str, timeout: Tuple[float, float]) -> str:
    reason = transport_reason(exc)
    hint = "Check your network connection and the civitai_base_url setting."
    if "timeout" in reason or "timed out" in reason:
        hint = f"It did not answer within {timeout[1]:g} s; try again or raise http_timeout."
    return f"Could not reach Civitai for {safe}: {reason}. {hint}"


# -- the shared client ----------------------------------------------------------------------------

#: Host pauses outlive client rebuilds: a 429 still applies after a setting change.
SHARED_HOST_GATE = HostGate()

_shared_lock = threading.Lock()
_shared_client: Optional[CivitaiHttpClient] = None
_shared_revision: Optional[int] = None
_shared_key: Optional[str] = None


def get_http_client() -> CivitaiHttpClient:
    """The lazily created shared client, rebuilt when the options it was built from change
    (:meth:`ClientOptions.from_settings`, looked at when a setting changed).

    A replaced client is not closed: threads that still hold it finish their requests, and its
    connections are released when it is garbage collected.
    """
    global _shared_client, _shared_revision, _shared_key
    with _shared_lock:
        revision = settings_revision()
        if _shared_client is not None and revision == _shared_revision:
            return _shared_client
        options = ClientOptions.from_settings()
        key = options.digest()  # a digest, so the API key is not kept in one more place
        if _shared_client is None or key != _shared_key:
            if _shared_client is not None:
                logger.info("HTTP settings changed; using a new HTTP client from now on.")
            _shared_client = CivitaiHttpClient(host_gate=SHARED_HOST_GATE, options=options)
            _shared_key = key
        _shared_revision = revision
        return _shared_client


def reset_http_client() -> None:
    """Forget the shared client (tests, or after changing settings in bulk)."""
    global _shared_client, _shared_revision, _shared_key
    with _shared_lock:
        _shared_client = None
        _shared_revision = None
        _shared_key = None

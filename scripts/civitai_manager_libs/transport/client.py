"""The one HTTP layer: a shared Session with retries as data, host pauses and key-only-to-the-API.

Every request of the package goes through :class:`CivitaiHttpClient` (usually the shared one from
:func:`get_http_client`). It owns one ``requests.Session`` whose adapter

* waits for the :class:`~.host_gate.HostGate` of the target origin before sending anything,
* adds ``Authorization: Bearer <key>`` only to a request the client itself addressed to an API
  path (``/api/...``) of one of Civitai's two API fronts (scheme, host and port of ``base_url`` and
  ``red_base_url``: one account, one key): never to a redirect hop (a host that redirects into
  the API origin does not get the key), never to another path of those hosts, and removes it
  everywhere else,
* retries connection errors, 429 and 5xx for GET/HEAD with :class:`~.retry_policy.CivitaiRetry`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urljoin, urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter

from .. import setting
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
from .host_gate import HostGate, origin_of
from .pacing import RequestPacer, parse_interval, parse_rate
from ..util import url_gate
from ..util.logging_setup import redact, register_secret
from .media_sniff import media_kind  # noqa: F401 - part of this module's public API
from ..records import DownloadResult
from .retry_policy import PAUSE_STATUSES, CivitaiRetry, RetryCancelled, current_cancel_event

if TYPE_CHECKING:  # imported when the first file is fetched: an API call does not need it
    from .file_fetch import ContentCheck, FileFetch, ProgressCallback, ReceivedFile

logger = logging.getLogger(__name__)

USER_AGENT = "civitai-gallery/1.0 (Stable Diffusion WebUI extension)"
POOL_HEADROOM = 2  # connections beyond the download concurrency, for the listing's API calls

Timeout = Union[None, float, Tuple[float, float]]


class _ApiKey:
    """Holds the API key so that it never shows up in a repr, a traceback or a log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value or ""
        register_secret(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def header(self) -> str:
        return f"Bearer {self._value}"

    def __repr__(self) -> str:
        return "<api key set>" if self._value else "<no api key>"

    __str__ = __repr__


class _KeyOnly(requests.auth.AuthBase):
    """The session's authentication: none of its own. Civitai is authenticated by the API key
    alone (added by :class:`CivitaiAdapter` for the API origin), so the passwords of a
    ``~/.netrc`` are never sent to Civitai's hosts or image hosts (gallery-dl reads ``.netrc``
    only when asked to), and it is not looked for on every request."""

    def __call__(self, request):
        return request


class _Session(requests.Session):
    """A session that marks every redirect hop, so the adapter never attaches the key to one,
    and reads the proxy environment once per origin instead of once per request."""

    def __init__(self) -> None:
        super().__init__()
        self.auth = _KeyOnly()
        # origin and call arguments -> requests' merged settings. requests scans every
        # environment variable (proxies, no_proxy, CA bundle) for each request; the environment
        # of a running process is taken as fixed. Kept: 0.116 ms CPU saved per request, ~1.6 % of
        # a 1,000-image run's CPU (bench/bench_tricks.py).
        self._environment: Dict[Tuple[Any, ...], Any] = {}

    def rebuild_auth(self, prepared_request, response):
        prepared_request.civitai_redirect_hop = True
        super().rebuild_auth(prepared_request, response)

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        try:
            key = (
                origin_of(url or ""),
                tuple(sorted(proxies.items())) if proxies else None,
                stream,
                verify,
                cert,
                tuple(sorted(self.proxies.items())),
                self.trust_env,
                self.verify,
                self.cert,
            )
            hash(key)
        except TypeError:  # an unhashable argument (a list as cert): no memo for this call
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings: Any = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        fresh: Any = dict(settings, proxies=dict(settings["proxies"]))
        return fresh


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, through the one URL gate (util/url_gate): an http(s)
    origin without credentials, query, spaces or CR/LF; SettingsError (exit 2) otherwise."""
    return url_gate.check_base_url(url)


#: Civitai's own safe-for-work hosts: configured there, the red front stays civitai.red
SFW_FRONT_HOSTS = ("civitai.com", "civitai.green")


def front_urls(
    base_url: Optional[str] = None, red_base_url: Optional[str] = None
) -> Tuple[str, str]:
    """The API base URLs of Civitai's two fronts, ``(sfw, red)``: arguments (the CLI's
    ``--base-url`` / ``--red-base-url``) over environment over settings.

    The red front (every NSFW level) is ``red_base_url``, else ``civitai_red_base_url`` when it
    was set (environment or settings), else the SFW address itself when that names one address
    for everything (an argument, or a setting other than Civitai's own civitai.com /
    civitai.green: a mirror, the demo, a test fake), else ``https://civitai.red``."""
    sfw = check_base_url(base_url or setting.get("civitai_base_url"))
    if red_base_url:
        red = red_base_url
    elif setting.source("civitai_red_base_url") != "default":
        red = setting.get("civitai_red_base_url")
    elif base_url or not _civitai_sfw_host(sfw):
        red = sfw
    else:
        red = setting.get("civitai_red_base_url")
    return sfw, check_base_url(red)


def _civitai_sfw_host(url: str) -> bool:
    """True for Civitai's own safe-for-work front (civitai.com, www.civitai.com, civitai.green)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == name or host.endswith("." + name) for name in SFW_FRONT_HOSTS)


def is_api_path(url: str) -> bool:
    """True for a path of Civitai's API (``/api/...``): the only paths the key goes to."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return path == "/api" or path.startswith("/api/")


class CivitaiAdapter(HTTPAdapter):
    """``HTTPAdapter`` applying the host gate and the API-paths-only bearer to every request."""

    def __init__(
        self,
        retry: CivitaiRetry,
        host_gate: HostGate,
        api_origins: Tuple[str, ...],
        api_key: _ApiKey,
        pool_maxsize: int,
        pacer: Optional[RequestPacer] = None,
    ):
        self._host_gate = host_gate
        self._pacer = pacer  # --sleep-request: applied to every API request (transport/pacing)
        self._api_origins = frozenset(api_origins)
        self._api_key = api_key
        super().__init__(
            max_retries=retry, pool_connections=8, pool_maxsize=pool_maxsize, pool_block=False
        )

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]  # noqa: E501
        origin = origin_of(request.url or "")
        if not self._host_gate.wait(origin, current_cancel_event()):
            raise RetryCancelled("cancelled while the host was paused")
        self._apply_auth(request, origin)
        if self._pacer is not None and origin in self._api_origins:
            self._pacer.wait(origin)
        response = super().send(request, **kwargs)
        self._host_gate.connected(origin)
        if response.status_code in PAUSE_STATUSES:
            # The retries are spent (or were disabled): still hold every other thread back.
            retry = self.max_retries
            assert isinstance(retry, CivitaiRetry)  # set in __init__
            delay = retry.requested_wait(response)
            if delay is None or delay <= 0:
                delay = retry.backoff_factor
            self._host_gate.pause(origin, min(delay, retry.retry_after_max), "final 429/503")
        return response

    def _apply_auth(self, request, origin: str) -> None:
        if not self._api_key:
            return
        bearer = self._api_key.header()
        hop = getattr(request, "civitai_redirect_hop", False)
        api = origin in self._api_origins and is_api_path(request.url or "")
        if api and not hop:
            request.headers["Authorization"] = bearer
        elif api and request.headers.get("Authorization") == bearer:
            # a same-origin redirect of a request the client addressed to the API keeps its key
            return
        elif request.headers.get("Authorization") == bearer:
            del request.headers["Authorization"]


class CivitaiHttpClient:
    """Thread-safe HTTP client for the Civitai API and its image hosts.

    ``timeout`` is the read timeout in seconds, or a ``(connect, read)`` pair; ``None`` values come
    from the settings (``http_timeout``, ``http_connect_timeout``, ``http_max_retries``,
    ``civitai_base_url``, ``civitai_red_base_url``, ``civitai_api_key``). ``red_base_url`` is
    Civitai's front for every NSFW level (see :func:`front_urls`: a ``base_url`` given alone
    serves both fronts). ``pool_size`` is the download concurrency
    (default: the larger of ``images.max_concurrent`` and ``gallery_max_concurrent_downloads``).
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
    ):
        connect_default = float(setting.get("http_connect_timeout"))
        self.timeout = _timeout_pair(timeout, connect_default, setting.get("http_timeout"))
        self.download_timeout = _timeout_pair(
            download_timeout,
            self.timeout[0],
            max(self.timeout[1], float(setting.get("gallery_download_timeout"))),
        )
        self.max_retries = int(
            setting.get("http_max_retries") if max_retries is None else max_retries
        )
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.backoff_factor = float(
            setting.get("http_backoff_factor") if backoff_factor is None else backoff_factor
        )
        self.retry_after_cap = float(
            setting.get("http_retry_after_cap") if retry_after_cap is None else retry_after_cap
        )
        self.base_url, self.red_base_url = front_urls(base_url, red_base_url)
        self.api_origin = origin_of(self.base_url)
        #: the origins the key goes to (on their /api/ paths): both fronts, one account
        self.api_origins = tuple(dict.fromkeys((self.api_origin, origin_of(self.red_base_url))))
        if pool_size is None:
            pool_size = max(
                int(setting.get("images.max_concurrent")),
                int(setting.get("gallery_max_concurrent_downloads")),
            )
        self.pool_size = max(1, int(pool_size))
        self._api_key = _ApiKey(setting.get("civitai_api_key") if api_key is None else api_key)
        for front in dict.fromkeys((self.base_url, self.red_base_url)):
            if self._api_key and _plain_http_to_remote(front):
                logger.warning(
                    "The API key will be sent unencrypted to %s (plain http); use an https "
                    "Civitai address.",
                    origin_of(front),
                )
        self.host_gate = host_gate if host_gate is not None else HostGate()
        self.host_gate.down_after = int(setting.get("http_host_down_after"))
        self.retry = CivitaiRetry.build(
            self.max_retries, self.backoff_factor, self.retry_after_cap, self.host_gate
        )
        # polite pacing (transport/pacing.py); None: the settings' (off by default)
        interval = parse_interval(
            setting.get("http_sleep_request") if sleep_request is None else sleep_request
        )
        self.pacer = RequestPacer(interval) if interval else None
        self.limit_rate = parse_rate(
            setting.get("http_limit_rate") if limit_rate is None else limit_rate
        )
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
                int(setting.get("images.max_file_size_mb")) * 1024 * 1024
                if max_bytes is None
                else int(max_bytes)
            ),
            cap_reason=(
                cap_reason
                or ("setting images.max_file_size_mb" if max_bytes is None else "the size cap")
            ),
            min_free_bytes=(
                int(setting.get("images.min_free_space_mb")) * 1024 * 1024
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

#: Settings the shared client is built from; a change to any of them rebuilds it.
CLIENT_SETTINGS = (
    "http_timeout",
    "http_connect_timeout",
    "http_max_retries",
    "http_backoff_factor",
    "http_retry_after_cap",
    "civitai_base_url",
    "civitai_red_base_url",
    "civitai_api_key",
    "gallery_download_timeout",
    "gallery_max_concurrent_downloads",
    "images.max_concurrent",
)

#: Host pauses outlive client rebuilds: a 429 still applies after a setting change.
SHARED_HOST_GATE = HostGate()

_shared_lock = threading.Lock()
_shared_client: Optional[CivitaiHttpClient] = None
_shared_revision: Optional[int] = None
_shared_key: Optional[str] = None


def get_http_client() -> CivitaiHttpClient:
    """The lazily created shared client, rebuilt when a setting it was built from changes.

    A replaced client is not closed: threads that still hold it finish their requests, and its
    connections are released when it is garbage collected.
    """
    global _shared_client, _shared_revision, _shared_key
    with _shared_lock:
        revision = setting.revision()
        if _shared_client is not None and revision == _shared_revision:
            return _shared_client
        # A digest, so the API key is not kept in one more place.
        key = hashlib.sha256(
            repr([setting.get(name) for name in CLIENT_SETTINGS]).encode("utf-8")
        ).hexdigest()
        if _shared_client is None or key != _shared_key:
            if _shared_client is not None:
                logger.info("HTTP settings changed; using a new HTTP client from now on.")
            _shared_client = CivitaiHttpClient(host_gate=SHARED_HOST_GATE)
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

"""The session and adapter every request goes through: the host gate, polite pacing, the API key
only to the API paths of Civitai's fronts, retries as data.

:class:`CivitaiAdapter` waits for the :class:`~.host_gate.HostGate` of the target origin before
sending anything, adds ``Authorization: Bearer <key>`` only to a request the client itself
addressed to an API path (``/api/...``) of one of Civitai's two API fronts (never to a redirect
hop, never to another path of those hosts) and removes it everywhere else, and retries connection
errors, 429 and 5xx for GET/HEAD with :class:`~.retry_policy.CivitaiRetry`. :class:`_Session`
marks redirect hops and reads the proxy environment once per origin.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter

from .host_gate import HostGate, origin_of
from .pacing import RequestPacer
from ..util.logging_setup import register_secret
from .retry_policy import PAUSE_STATUSES, CivitaiRetry, RetryCancelled, current_cancel_event


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

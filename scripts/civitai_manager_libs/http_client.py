"""The shared HTTP client (the backlog's ``http_client`` module): a facade over :mod:`.transport`.

``get_http_client()`` gives the process's :class:`CivitaiHttpClient` (one Session, retries as data,
the per-host pause, the API key only to the API origin), rebuilt when its settings change;
:class:`ClientOptions` is what a client is built from (the settings as data).
"""

from __future__ import annotations

from .transport.client import (  # noqa: F401  (the public API)
    POOL_HEADROOM,
    SHARED_HOST_GATE,
    USER_AGENT,
    CivitaiAdapter,
    CivitaiHttpClient,
    ClientOptions,
    get_http_client,
    media_kind,
    redact,
    reset_http_client,
)

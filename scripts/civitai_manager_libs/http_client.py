"""The shared HTTP client (the backlog's ``http_client`` module): a facade over :mod:`.transport`.

``get_http_client()`` gives the process's :class:`CivitaiHttpClient` (one Session, retries as data,
the per-host pause, the API key only to the API origin), rebuilt when its settings change.
"""

from __future__ import annotations

from .transport.client import (  # noqa: F401  (the public API)
    CLIENT_SETTINGS,
    POOL_HEADROOM,
    SHARED_HOST_GATE,
    USER_AGENT,
    CivitaiAdapter,
    CivitaiHttpClient,
    get_http_client,
    media_kind,
    redact,
    reset_http_client,
)

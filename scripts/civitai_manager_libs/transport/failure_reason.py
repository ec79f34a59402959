"""Why a request failed, in a few words without secrets ("the connection was refused"): shared by
the JSON client and the file fetch."""

from __future__ import annotations

import socket
from typing import Iterator

import requests
from urllib3 import exceptions as urllib3_exceptions

from ..util.logging_setup import redact


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests keeps urllib3's error in ``args[0]``, urllib3 keeps
    the socket's in ``reason`` and the exception chain (bounded: a chain may loop)."""
    todo: list = [exc]
    seen: set = set()
    while todo and len(seen) < 20:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__]
        linked += list(current.args[:1])
        todo.extend(x for x in linked if isinstance(x, BaseException))


def transport_reason(exc: BaseException) -> str:
    """A short, secret-free description of a transport failure."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout,)):
        return "the connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "the server stopped sending data (read timeout)"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS/SSL handshake failed"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off mid-body"
    if isinstance(exc, requests.exceptions.ConnectionError):
        causes = list(_causes(exc))
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            return "the connection was refused"
        if any(
            isinstance(c, (socket.gaierror, urllib3_exceptions.NameResolutionError)) for c in causes
        ):
            return "the host name could not be resolved"
        # urllib3's NewConnectionError is a TimeoutError subclass for history's sake only
        timeouts = (TimeoutError, urllib3_exceptions.TimeoutError)
        if any(
            isinstance(c, timeouts) and not isinstance(c, urllib3_exceptions.NewConnectionError)
            for c in causes
        ):
            return "the server stopped sending data (read timeout)"
        return "the connection failed"
    if isinstance(exc, urllib3_exceptions.ReadTimeoutError):
        return "the server stopped sending data (read timeout)"
    if isinstance(exc, urllib3_exceptions.ProtocolError):
        return "the connection broke off mid-body"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return "too many redirects"
    return redact(type(exc).__name__)

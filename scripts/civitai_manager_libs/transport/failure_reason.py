"""Why a request failed, in a few words without secrets ("the connection was refused"): shared by
the JSON client and the file fetch."""

from __future__ import annotations

import requests
from urllib3 import exceptions as urllib3_exceptions

from ..util.logging_setup import redact


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
        text = str(exc)
        if "timed out" in text.lower() or "timeout" in text.lower():
            return "the server stopped sending data (read timeout)"
        if "refused" in text.lower():
            return "the connection was refused"
        if "Name or service not known" in text or "getaddrinfo" in text:
            return "the host name could not be resolved"
        return "the connection failed"
    if isinstance(exc, urllib3_exceptions.ReadTimeoutError):
        return "the server stopped sending data (read timeout)"
    if isinstance(exc, urllib3_exceptions.ProtocolError):
        return "the connection broke off mid-body"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return "too many redirects"
    return redact(type(exc).__name__)

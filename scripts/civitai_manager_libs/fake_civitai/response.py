"""The response value the fake's routes return and the server writes: status, headers, body."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Dict, Optional

from .media import Body, BytesBody

JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Response:
    status: int
    headers: Dict[str, str] = field(default_factory=dict)
    body: Optional[Body] = None
    ranged: bool = False  # True when the image host may answer a Range request for this body
    # Fault knobs: the Content-Length sent instead of the body's size (a lie), or none at all
    # (``send_length=False``: the body runs until the connection closes).
    declared_length: Optional[int] = None
    send_length: bool = True

    @property
    def size(self) -> int:
        return self.body.size if self.body is not None else 0


def json_response(status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> Response:
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    merged = {"Content-Type": JSON_TYPE}
    merged.update(headers or {})
    return Response(status, merged, BytesBody(data))


def error_response(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> Response:
    """Civitai's error shape: ``{"error": "..."}``."""
    return json_response(status, {"error": message}, headers)


def text_response(
    status: int, text: str, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    return Response(status, {"Content-Type": content_type}, BytesBody(text.encode("utf-8")))


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"

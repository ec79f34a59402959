"""Fault injection for the fake Civitai: queued statuses, cuts, HTML bodies, 404s, stalls.

Every rule matches ``fnmatch`` patterns against the request path without its query string and may
be limited to one server (``"api"``, ``"image"``, ``"video"``
or ``"any"``). Rules with a ``count`` are used up
in the order they were added, so ``queue_status`` twice on one path answers the first status, then
the second, then the normal response.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit, urlunsplit

from .media import Body, BytesBody, EndlessBody
from .response import JSON_TYPE, Response, reason

SERVERS = ("any", "api", "image", "video")
DRIFT_SHAPES = ("meta_stripped", "items_renamed", "unknown_hosts", "packed", "mature_filtered")
_RENAMED = {"items": "data", "modelVersions": "versions", "files": "modelFiles"}
DEFAULT_ERROR_TEXT = {
    429: "Too Many Requests",
    500: "canceling statement due to statement timeout",
    503: "Server busy, please retry shortly.",
}
CHALLENGE_HTML = (
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head>"
    "<body><h1>Checking your browser before accessing civitai.com</h1>"
    "<p>This page is HTML, not an image.</p></body></html>"
)


@dataclass
class Rule:
    kind: str  # status | cut | html | not_found | delay | empty_pages | stall | drift
    path_glob: str
    server: str = "any"
    remaining: Optional[int] = None  # None: forever
    status: int = 0
    headers: Dict[str, str] = field(default_factory=dict)
    body: Any = None
    nbytes: int = 0
    seconds: float = 0.0
    declared_length: Optional[int] = None
    send_length: bool = True
    endless: bool = False
    release: Optional[threading.Event] = None  # hold: answers wait for it (``seconds`` at most)
    arrived: Optional[threading.Event] = None  # hold: set by the first request held
    served: int = 0  # answers given so far (empty_pages numbers its cursors with it)

    def matches(self, server: str, path: str) -> bool:
        return self.server in ("any", server) and fnmatchcase(path, self.path_glob)


class Faults:
    """The fault knobs of one :class:`FakeCivitai` (``fake.faults``); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: List[Rule] = []
        self.ignore_range = False

    def queue_status(
        self,
        path_glob: str,
        status: int,
        headers: Optional[Dict[str, str]] = None,
        body: Any = None,
        count: int = 1,
        server: str = "any",
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``.

        ``body``: None for Civitai's ``{"error": ...}`` JSON, a dict/list for JSON, str or bytes as
        is. ``headers`` (e.g. ``{"Retry-After": "2"}``) are added to the response.
        """
        self._add(
            Rule(
                "status",
                path_glob,
                server,
                count,
                status=status,
                headers=dict(headers or {}),
                body=body,
            )
        )

    def cut_after(
        self, path_glob: str, nbytes: int, count: Optional[int] = None, server: str = "any"
    ) -> None:
        """Send the full headers, ``nbytes`` of the body, then close the socket."""
        self._add(Rule("cut", path_glob, server, count, nbytes=nbytes))

    def html_instead(
        self, path_glob: str, count: Optional[int] = None, server: str = "any"
    ) -> None:
        """Answer 200 ``text/html`` (a challenge page) instead of the real body."""
        self._add(Rule("html", path_glob, server, count))

    def refuse_video(self, uuids, status: int = 403) -> None:
        """The video host answers ``status`` (403 or 404, as Civitai's does for a file it has not
        cached) for these uuids, forever; the image host still serves them (the fallback)."""
        for uuid in [uuids] if isinstance(uuids, str) else uuids:
            self._add(Rule("status", f"/file/civitai-media-cache/{uuid}/*", "video", None, status))

    def not_found(self, path_glob: str, server: str = "any") -> None:
        """Answer 404 forever."""
        self._add(Rule("not_found", path_glob, server, None))

    def delay(
        self, path_glob: str, seconds: float, count: Optional[int] = None, server: str = "any"
    ) -> None:
        """Stall ``seconds`` before sending the headers."""
        self._add(Rule("delay", path_glob, server, count, seconds=seconds))

    def hold(self, path_glob: str, seconds: float = 60.0, server: str = "any") -> "Hold":
        """Hold every matching request before its headers until the test releases it (or
        ``seconds`` pass): a run that must still be busy while the test does something else."""
        rule = Rule(
            "delay",
            path_glob,
            server,
            None,
            seconds=seconds,
            release=threading.Event(),
            arrived=threading.Event(),
        )
        self._add(rule)
        return Hold(self, rule)

    def serve_raw(
        self,
        path_glob: str,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: Optional[Dict[str, str]] = None,
        content_length: Any = "actual",
        endless: bool = False,
        count: Optional[int] = None,
        server: str = "any",
    ) -> None:
        """Answer with exactly these bytes and headers (hostile hosts).

        ``content_length``: ``"actual"`` (the body's size), an int (a lie: ``10 * 2**40`` for
        10 TB) or None (no Content-Length, the body ends when the connection closes).
        ``endless``: after ``body``, zero bytes for ever. ``headers`` are sent as given (e.g.
        ``{"Content-Encoding": "gzip"}`` over a body gzipped by the test: nothing is encoded
        here).
        """
        rule = Rule(
            "raw",
            path_glob,
            server,
            count,
            status=status,
            headers=dict(headers or {}),
            body=bytes(body),
            endless=endless,
        )
        if content_length is None:
            rule.send_length = False
        elif content_length != "actual":
            rule.declared_length = int(content_length)
        self._add(rule)

    def empty_pages(self, path_glob: str, count: Optional[int] = None, server: str = "api") -> None:
        """Answer 200 with no items and a fresh ``nextCursor`` every time (a listing that never
        ends unless the client gives up)."""
        self._add(Rule("empty_pages", path_glob, server, count))

    def stall_after(
        self,
        path_glob: str,
        nbytes: int,
        seconds: float,
        count: Optional[int] = None,
        server: str = "any",
    ) -> None:
        """Send the headers and ``nbytes`` of the body, then stall ``seconds`` (the socket stays
        open, nothing more is sent) before going on."""
        self._add(Rule("stall", path_glob, server, count, nbytes=nbytes, seconds=seconds))

    def drift(self, shape: str, path_glob: str = "/api/*", count: Optional[int] = None) -> None:
        """Answer the API's normal JSON changed the way the real service has changed before
        (:data:`DRIFT_SHAPES`): ``meta_stripped`` (every ``meta`` null), ``items_renamed`` (the
        main list under another name: ``items`` -> ``data``, ``modelVersions`` -> ``versions``,
        ``files`` -> ``modelFiles``), ``unknown_hosts`` (media URLs on ``localhost`` instead of
        the image host's address: still served), ``packed`` (the body inside a tRPC-like
        ``{"result": {"data": {"json": ...}}}``), ``mature_filtered`` (Mature and X items left
        out, as civitai.com does)."""
        if shape not in DRIFT_SHAPES:
            raise ValueError(f"shape must be one of {DRIFT_SHAPES}, not {shape!r}")
        self._add(Rule("drift", path_glob, "api", count, body=shape))

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        self.ignore_range = False

    @property
    def rules(self) -> List[Rule]:
        with self._lock:
            return list(self._rules)

    def _add(self, rule: Rule) -> None:
        if rule.server not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}, not {rule.server!r}")
        if rule.remaining is not None and rule.remaining < 1:
            raise ValueError("count must be at least 1 (or None for every request)")
        with self._lock:
            self._rules.append(rule)

    def take(self, kinds: tuple, server: str, path: str) -> Optional[Rule]:
        """Use up one matching rule of one of ``kinds`` (first added first) or return None."""
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds and rule.matches(server, path):
                    rule.served += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
                    return rule
        return None


def fault_response(rule: Rule, server: str) -> Response:
    """The response a status / html / not_found / raw rule stands for."""
    if rule.kind == "raw":
        raw: Body = EndlessBody(rule.body) if rule.endless else BytesBody(rule.body)
        headers = {"Content-Type": "application/octet-stream"}
        headers.update(rule.headers)
        response = Response(rule.status, headers, raw)
        response.declared_length = rule.declared_length
        response.send_length = rule.send_length and not rule.endless
        if rule.endless and rule.declared_length is not None:
            response.send_length = True
        return response
    if rule.kind == "html":
        return Response(
            200, {"Content-Type": "text/html; charset=utf-8"}, BytesBody(CHALLENGE_HTML.encode())
        )
    if rule.kind == "empty_pages":
        body = {"items": [], "metadata": {"nextCursor": f"empty-{rule.served}"}}
        return _body_response(200, body, {})
    if rule.kind == "not_found":
        if server == "image":
            return Response(
                404, {"Content-Type": "text/plain; charset=utf-8"}, BytesBody(b"Not Found")
            )
        return _body_response(404, {"error": "Not found"}, {})
    body = rule.body
    if body is None:
        body = {"error": DEFAULT_ERROR_TEXT.get(rule.status, reason(rule.status))}
    return _body_response(rule.status, body, rule.headers)


def _body_response(status: int, body: Any, headers: Dict[str, str]) -> Response:
    if isinstance(body, (dict, list)):
        data, ctype = json.dumps(body).encode(), JSON_TYPE
    elif isinstance(body, str):
        data = body.encode("utf-8")
        ctype = (
            "text/html; charset=utf-8"
            if body.lstrip().startswith("<")
            else "text/plain; charset=utf-8"
        )
    else:
        data, ctype = bytes(body), "application/octet-stream"
    merged = {"Content-Type": ctype}
    merged.update(headers)
    return Response(status, merged, BytesBody(data))


def drifted(response: Response, shape: str) -> Response:
    """``response`` (the API's JSON) changed as :meth:`Faults.drift` describes."""
    if response.status != 200 or not isinstance(response.body, BytesBody):
        return response
    body = json.loads(response.body.data)
    if not isinstance(body, dict):
        return response
    if shape == "packed":
        body = {"result": {"data": {"json": body}}}
    elif shape == "items_renamed":
        body = {_RENAMED.get(key, key): value for key, value in body.items()}
    else:
        _change_images(body, shape)
    return _body_response(200, body, {})


def _change_images(body: Dict[str, Any], shape: str) -> None:
    """Change every image object of ``body`` (listing items, a version's or model's images)."""
    lists = [body] + [v for v in body.get("modelVersions") or [] if isinstance(v, dict)]
    for holder in lists:
        for key in ("items", "images"):
            images = holder.get(key)
            if not isinstance(images, list):
                continue
            if shape == "mature_filtered":
                holder[key] = [i for i in images if i.get("nsfwLevel") not in ("Mature", "X")]
                continue
            for image in images:
                if shape == "meta_stripped" and "meta" in image:
                    image["meta"] = None
                if shape == "unknown_hosts" and isinstance(image.get("url"), str):
                    parts = urlsplit(image["url"])
                    netloc = "localhost" + (f":{parts.port}" if parts.port else "")
                    image["url"] = urlunsplit(parts._replace(netloc=netloc))


class Hold:
    """A :meth:`Faults.hold` in force: ``wait_arrived()`` until a request is held, ``release()``
    lets every held and later request through (and ends the hold)."""

    def __init__(self, faults: Faults, rule: Rule) -> None:
        self._faults, self._rule = faults, rule

    def wait_arrived(self, timeout: float = 30.0) -> bool:
        assert self._rule.arrived is not None
        return self._rule.arrived.wait(timeout)

    def release(self) -> None:
        assert self._rule.release is not None
        self._faults.remove(self._rule)
        self._rule.release.set()

"""The fake Civitai's HTTP side: threaded HTTP/1.1 servers (the API's two fronts, the image host)
and the knobs.

Civitai runs two fronts on one API (since April 2026): ``civitai.com`` clamps every answer to the
safe-for-work levels, ``civitai.red`` serves every level. The fake serves both on two ports:
``base_url`` (com) and ``red_base_url``. With ``split_fronts`` on (``python -m ...fake_civitai``,
the demo, the tests of the fronts), the com port drops every Mature/X/XXX item from its answers
(listings, an image by id, the images of models and versions) as Civitai's green domain does;
off (the default), it serves every level like a mirror, as the fake always did.

Throttling: ``bandwidth`` (bytes/s) paces each response on its own, so N parallel downloads
each get ``bandwidth`` (like per-connection limits on a CDN); ``total_bandwidth`` is one shared
cap across all concurrent responses of both hosts (the ideal bound for a benchmark). Both apply
to body bytes only; ``latency`` (seconds) is added before the headers of every request. All of
them can be changed while the servers run.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, List, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

from .api import REDIRECT_PREFIX, ApiRoutes
from .dataset import Dataset
from .faults import Faults, drifted, fault_response
from .imagehost import ImageRoutes
from .media import Body, BytesBody
from .response import Response, error_response
from .storage import ModelStorage

logger = logging.getLogger(__name__)

DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
IDLE_TIMEOUT = 30.0  # seconds a kept-alive connection may sit idle before the server drops it


@dataclass
class RequestRecord:
    """One request as the fake saw it. ``status`` is what was sent (0 until the headers go out)."""

    time: float
    server: str  # "api" (either front) | "image" | "video"
    method: str
    path: str
    query: Dict[str, str]  # last value of each parameter
    headers: Mapping[str, str]  # case-insensitive
    status: int = 0
    raw_query: str = ""
    connection_id: int = 0  # same id = same TCP connection (keep-alive reuse)
    bytes_sent: int = 0  # body bytes written
    completed: bool = False  # the whole body was written
    end_time: float = 0.0  # when the last body byte was written (0 until then)
    front: str = ""  # which API front answered: "com" | "red" ("" for the image host)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 resets connections under a parallel burst

    def __init__(self, address: Tuple[str, int], fake: "FakeCivitai", role: str, front: str = ""):
        self.fake = fake
        self.role = role
        self.front = front
        self.connections: Set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.connection_counter = 0
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # resets, broken pipes, timeouts: the client went away
            logger.debug("fake %s: client %s went away: %s", self.role, client_address, exc)
        else:
            logger.error(
                "fake %s: error while serving %s", self.role, client_address, exc_info=True
            )

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-civitai/1.0"
    # Headers and body go out in separate writes: with Nagle on, delayed ACKs add ~40 ms to every
    # kept-alive request.
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
            self.server.connection_counter += 1
            self.connection_id = self.server.connection_counter

    def finish(self) -> None:
        try:
            super().finish()
        except DISCONNECTS as exc:
            logger.debug("fake %s: connection closed while flushing: %s", self.server.role, exc)
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        logger.debug("fake %s %s - %s", self.server.role, self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._serve(head=False, allowed=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    # ------------------------------------------------------------------ one request
    def _serve(self, head: bool, allowed: bool = True) -> None:
        fake, role = self.server.fake, self.server.role
        split = urlsplit(self.path)
        path = split.path
        params = parse_qs(split.query, keep_blank_values=True)
        record = RequestRecord(
            time=time.time(),
            server=role,
            method=self.command,
            path=path,
            query={k: v[-1] for k, v in params.items()},
            headers=CaseInsensitiveDict(self.headers.items()),
            raw_query=split.query,
            connection_id=self.connection_id,
            front=self.server.front,
        )
        with fake._in_flight(role):
            if fake.latency > 0:
                time.sleep(fake.latency)
            stall = fake.faults.take(("delay",), role, path)
            if stall is not None and stall.release is not None and stall.arrived is not None:
                stall.arrived.set()
                stall.release.wait(stall.seconds)
            elif stall is not None:
                time.sleep(stall.seconds)
            if allowed:
                response = fake._route(role, path, params, record.headers, self.server.front)
            else:
                response = error_response(405, f"Method {self.command} not allowed")
            start, end = 0, response.size
            if response.ranged and response.status == 200 and not fake.faults.ignore_range:
                response, start, end = _apply_range(
                    response, self.headers.get("Range"), self.headers.get("If-Range")
                )
            cut = stall = None
            if not head and response.body is not None:
                cut = fake.faults.take(("cut",), role, path)
                stall = fake.faults.take(("stall",), role, path) if cut is None else None
            record.status = response.status
            fake._append(record)
            try:
                self._send_head(response, end - start)
                if head or response.body is None:
                    record.completed = True
                    return
                if stall is not None:
                    middle = min(end, start + stall.nbytes)
                    self._send_body(response.body, start, middle, None, record, partial=True)
                    self.wfile.flush()
                    time.sleep(stall.seconds)
                    start = middle
                self._send_body(response.body, start, end, cut.nbytes if cut else None, record)
            except DISCONNECTS as exc:
                logger.debug("fake %s: client left during %s: %s", role, path, exc)
                self.close_connection = True
            finally:
                record.end_time = time.time()

    def _send_head(self, response: Response, length: int) -> None:
        self.send_response(response.status)
        for key, value in response.headers.items():
            if key.lower() != "content-length":
                self.send_header(key, value)
        if not response.send_length:
            self.close_connection = True  # the body ends when the connection does
            self.send_header("Connection", "close")
        elif response.declared_length is not None:
            self.send_header("Content-Length", str(response.declared_length))
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_body(
        self,
        body: Body,
        start: int,
        end: int,
        limit: Optional[int],
        record: RequestRecord,
        partial: bool = False,
    ) -> None:
        """Send ``body[start:end]`` (cut after ``limit`` bytes); ``partial``: one piece of a
        response whose rest follows in another call."""
        fake = self.server.fake
        pacer = fake._pacer()
        sent = 0
        before = record.bytes_sent
        for piece in body.iter_range(start, end, pacer.chunk_size):
            if limit is not None:
                piece = piece[: max(0, limit - sent)]
            if piece:
                pacer.wait(len(piece))
                # Update the record before the write: once the client holds the last byte, a test
                # reading the log must already see the response as complete.
                record.bytes_sent = before + sent + len(piece)
                record.completed = not partial and sent + len(piece) == end - start
                try:
                    self.wfile.write(piece)
                except DISCONNECTS:
                    record.bytes_sent, record.completed = before + sent, False
                    raise
                sent += len(piece)
            if limit is not None and sent >= limit:
                break
        if partial:
            return
        if sent < end - start:
            logger.debug("fake %s: cutting %s after %d bytes", self.server.role, record.path, sent)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed first
            return
        record.completed = True  # also true for an empty body


def _apply_range(
    response: Response, header: Optional[str], if_range: Optional[str]
) -> Tuple[Response, int, int]:
    """``(response, start, end)`` for a single-range request: 206, 416, or the unchanged 200."""
    size = response.size
    if not header:
        return response, 0, size
    if if_range and if_range not in (
        response.headers.get("ETag"),
        response.headers.get("Last-Modified"),
    ):
        return response, 0, size
    match = _RANGE_RE.match(header.strip())
    if not match or not (match.group(1) or match.group(2)):
        return response, 0, size  # multi-range or malformed: RFC 9110 lets us ignore it
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        if last and int(last) < start:
            return response, 0, size
        end = min(size, int(last) + 1) if last else size
    else:
        start, end = max(0, size - int(last)), size
        if int(last) == 0:
            start = size
    if start >= size:
        body = BytesBody(b"Requested Range Not Satisfiable")
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Range": f"bytes */{size}"}
        return Response(416, headers, body), 0, body.size
    headers = dict(response.headers)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(206, headers, response.body, ranged=True), start, end


class _Pacer:
    """Sleeps before each chunk so one response keeps to ``bandwidth`` and all to ``total``."""

    def __init__(self, fake: "FakeCivitai"):
        self.fake = fake
        rate = min(r for r in (fake.bandwidth, fake.total_bandwidth, 1 << 40) if r)
        self.chunk_size = 65536 if rate >= 1 << 40 else int(max(1024, min(65536, rate / 50)))
        self.deadline = 0.0

    def wait(self, nbytes: int) -> None:
        fake = self.fake
        now = time.monotonic()
        until = now
        if fake.bandwidth:
            self.deadline = max(self.deadline, now) + nbytes / fake.bandwidth
            until = self.deadline
        if fake.total_bandwidth:
            with fake._bucket_lock:
                fake._bucket_next = max(fake._bucket_next, now) + nbytes / fake.total_bandwidth
                until = max(until, fake._bucket_next)
        if until > now:
            time.sleep(until - now)


class FakeCivitai:
    """A local Civitai: API host + image host on 127.0.0.1, serving a :class:`Dataset`.

    ``FakeCivitai(dataset=None, latency=0.0, bandwidth=None)``; ``start()``/``stop()`` or use it as
    a context manager. See docs/DESIGN.md "fake_civitai knobs" for the test-facing API.
    """

    def __init__(
        self,
        dataset: Optional[Dataset] = None,
        latency: float = 0.0,
        bandwidth: Optional[float] = None,
        *,
        total_bandwidth: Optional[float] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        image_port: int = 0,
        video_port: int = 0,
        red_port: int = 0,
        split_fronts: bool = False,
    ):
        self.dataset = dataset if dataset is not None else Dataset.default()
        self.latency = latency
        self.bandwidth = bandwidth
        self.total_bandwidth = total_bandwidth
        self.faults = Faults()
        self.host = host
        self._ports = (port, image_port, video_port)
        self._red_port = red_port
        #: the com front (base_url) filters mature items out, as civitai.com does (a knob)
        self.split_fronts = split_fronts
        self._servers: Dict[str, _Server] = {}
        self._threads: List[threading.Thread] = []
        self._log: List[RequestRecord] = []
        self._lock = threading.Lock()
        self._in_flight_count = {"api": 0, "image": 0, "video": 0}
        self._max_in_flight = {"api": 0, "image": 0, "video": 0}
        self._bucket_lock = threading.Lock()
        self._bucket_next = 0.0
        self._api: Optional[ApiRoutes] = None
        self._red_api: Optional[ApiRoutes] = None
        self._images = ImageRoutes(self.dataset)
        self._stopped_image_port = 0
        self._image_origin: Optional[str] = None
        self.storage = ModelStorage()  # model files behind the download redirect (knob: corrupt)
        self._ids_param = "served"
        self._trpc_packed = False

    @property
    def trpc_packed(self) -> bool:
        """Knob: the web API (/api/trpc/) answers in the packed (devalue) form, else plain."""
        return self._trpc_packed

    @trpc_packed.setter
    def trpc_packed(self, value: bool) -> None:
        self._trpc_packed = bool(value)
        if self._api is not None:
            self._api.trpc.packed = self._trpc_packed

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeCivitai":
        if self._servers:
            raise RuntimeError("this FakeCivitai is already running")
        for role, port in zip(("api", "image", "video"), self._ports):
            front = "com" if role == "api" else ""
            self._servers[role] = _Server((self.host, port), self, role, front)
        self._servers["red"] = _Server((self.host, self._red_port), self, "api", "red")
        self._api = ApiRoutes(self.dataset, self.base_url, self.image_base_url)
        self._api.trpc.packed = self._trpc_packed
        self._api.ids_param = self.ids_param
        self._red_api = ApiRoutes(self.dataset, self.red_base_url, self.image_base_url)
        self._red_api.ids_param = self.ids_param
        self._red_api.redirects = self._api.redirects  # one table: a token works on both
        for role, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-civitai-{role}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        logger.info(
            "fake Civitai API at %s (com) and %s (red), images at %s",
            self.base_url,
            self.red_base_url,
            self.image_base_url,
        )
        return self

    def stop(self) -> None:
        servers, self._servers = self._servers, {}
        self._image_origin = None
        for server in servers.values():
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def stop_image_host(self) -> None:
        """Take the image host down (as if it died): open connections are cut and new ones are
        refused; the API host keeps answering. :meth:`start_image_host` brings it back."""
        server = self._servers.pop("image", None)
        if server is None:
            raise RuntimeError("the image host is not running")
        self._stopped_image_port = server.server_address[1]
        self._image_origin = self._origin_of(server)
        server.shutdown()
        server.close_connections()
        server.server_close()

    def start_image_host(self) -> None:
        """Bring the image host back on the port it had (after :meth:`stop_image_host`)."""
        if "image" in self._servers:
            raise RuntimeError("the image host is already running")
        server = _Server((self.host, self._stopped_image_port), self, "image")
        self._servers["image"] = server
        self._image_origin = None
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-civitai-image",
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)

    def __enter__(self) -> "FakeCivitai":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._servers)

    def _origin(self, role: str) -> str:
        server = self._servers.get(role)
        if server is None:
            if role == "image" and self._image_origin is not None:
                return self._image_origin  # taken down by stop_image_host(): URLs still point here
            raise RuntimeError("the fake Civitai is not running: call start() first")
        return self._origin_of(server)

    @staticmethod
    def _origin_of(server: "_Server") -> str:
        host, port = server.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode("ascii")
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The API origin, e.g. ``http://127.0.0.1:40123`` (use it as ``civitai_base_url``)."""
        return self._origin("api")

    @property
    def red_base_url(self) -> str:
        """The red front's origin (every NSFW level; use it as ``civitai_red_base_url``)."""
        return self._origin("red")

    @property
    def image_base_url(self) -> str:
        return self._origin("image")

    @property
    def video_base_url(self) -> str:
        """The origin standing for ``https://image-b2.civitai.com``: video originals at
        ``/file/civitai-media-cache/<uuid>/<quality>`` (the image host still serves them)."""
        return self._origin("video")

    def video_url(self, image_id: int, quality: str = "original") -> str:
        """A dataset video's URL on the video host."""
        image = self.dataset.image(image_id)
        if image is None:
            raise KeyError(f"no image {image_id} in this dataset")
        return f"{self.video_base_url}/file/civitai-media-cache/{image.uuid}/{quality}"

    @property
    def ids_param(self) -> str:
        """How ``GET /api/v1/images`` treats ``ids=``: ``"served"`` (a batch by id, late 2026),
        ``"ignored"`` (an older server: the unfiltered listing comes back) or ``"refused"``
        (400). Changeable at run time."""
        return self._ids_param

    @ids_param.setter
    def ids_param(self, mode: str) -> None:
        if mode not in ("served", "ignored", "refused"):
            raise ValueError("ids_param must be 'served', 'ignored' or 'refused'")
        self._ids_param = mode
        for routes in (self._api, self._red_api):
            if routes is not None:
                routes.ids_param = mode

    # ------------------------------------------------------------------ URLs for tests
    def image_url(self, image_id: int, original: bool = False, width: Optional[int] = None) -> str:
        """The image-host URL of a dataset image (``original=true``, ``width=N`` or as listed)."""
        image = self.dataset.image(image_id)
        if image is None:
            raise KeyError(f"no image {image_id} in this dataset")
        if original:
            return self.image_base_url + image.path("original=true")
        if width is not None:
            return self.image_base_url + image.path(f"width={width}")
        return self.image_base_url + image.listed_path

    def blob_url(self, size: int, kind: str = "mp4") -> str:
        """An image-host URL streaming ``size`` generated bytes of ``kind`` (not held in memory)."""
        return self.image_base_url + self._images.add_blob(size, kind)

    def redirect_url(self, target_url: str) -> str:
        """An API-host URL answering ``302 Location: target_url``."""
        if self._api is None:
            raise RuntimeError("the fake Civitai is not running: call start() first")
        with self._lock:
            token = str(len(self._api.redirects) + 1)
            self._api.redirects[token] = target_url
        return f"{self.base_url}{REDIRECT_PREFIX}{token}"

    # ------------------------------------------------------------------ observation
    @property
    def log(self) -> List[RequestRecord]:
        with self._lock:
            return list(self._log)

    def api_requests(self, front: Optional[str] = None) -> List[RequestRecord]:
        """API requests of both fronts, or of one (``"com"`` or ``"red"``)."""
        return [r for r in self.log if r.server == "api" and front in (None, r.front)]

    def image_requests(self) -> List[RequestRecord]:
        return [r for r in self.log if r.server == "image"]

    def video_requests(self) -> List[RequestRecord]:
        return [r for r in self.log if r.server == "video"]

    @property
    def max_concurrent_image_requests(self) -> int:
        """The highest number of image-host requests in progress at the same time."""
        with self._lock:
            return self._max_in_flight["image"]

    @property
    def max_concurrent_api_requests(self) -> int:
        with self._lock:
            return self._max_in_flight["api"]

    def reset(self) -> None:
        """Clear the log, the faults and the concurrency counters (knobs such as latency stay)."""
        with self._lock:
            self._log.clear()
            self._max_in_flight = {"api": 0, "image": 0, "video": 0}
        self.faults.clear()

    def __repr__(self) -> str:
        where = f"{self.base_url} + {self.image_base_url}" if self.running else "stopped"
        return f"<FakeCivitai {where} images={len(self.dataset.images)}>"

    # ------------------------------------------------------------------ used by the handler
    def _append(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    @contextmanager
    def _in_flight(self, role: str) -> Iterator[None]:
        with self._lock:
            self._in_flight_count[role] += 1
            self._max_in_flight[role] = max(self._max_in_flight[role], self._in_flight_count[role])
        try:
            yield
        finally:
            with self._lock:
                self._in_flight_count[role] -= 1

    def _pacer(self) -> _Pacer:
        return _Pacer(self)

    def _route(
        self,
        role: str,
        path: str,
        params: Dict[str, List[str]],
        headers: Optional[Mapping[str, str]] = None,
        front: str = "com",
    ) -> Response:
        rule = self.faults.take(("status", "not_found", "html", "raw", "empty_pages"), role, path)
        if rule is not None:
            return fault_response(rule, role)
        try:
            if role == "api":
                if front == "red":
                    assert self._red_api is not None
                    answer = self._red_api.handle(path, params, headers)
                else:
                    assert self._api is not None
                    answer = self._api.handle(path, params, headers, sfw_only=self.split_fronts)
                shape = self.faults.take(("drift",), role, path)
                return drifted(answer, shape.body) if shape is not None else answer
            if role == "video":
                return self._images.handle_video(path)
            stored = self.storage.handle(path, headers or {})
            return stored if stored is not None else self._images.handle(path)
        except Exception:  # a bug in the fake itself: answer 500 and say so loudly
            logger.exception("fake Civitai failed on %s %s", role, path)
            return error_response(500, "fake Civitai internal error (see the server log)")

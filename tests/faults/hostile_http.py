"""A small hostile HTTP server for the fault suite: real sockets on 127.0.0.1, each path answered
with exactly the bytes, status and headers a test gives (malformed JSON, NaN, redirects to
metadata addresses...), and a log of every request it received."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit

Answer = Tuple[int, Dict[str, str], bytes]
Route = Union[Answer, Callable[[str, Dict[str, str]], Answer]]


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: Dict[str, str] = field(default_factory=dict)


class HostileServer:
    """``routes``: path -> (status, headers, body) or a function (path with query, headers) ->
    the same. Unknown paths get 404."""

    def __init__(self, routes: Optional[Dict[str, Route]] = None):
        self.routes: Dict[str, Route] = dict(routes or {})
        self.log: List[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                headers = {k: v for k, v in self.headers.items()}
                server.log.append(Seen("GET", parts.path, parts.query, headers))
                route = server.routes.get(parts.path)
                if route is None:
                    status, extra, body = 404, {"Content-Type": "application/json"}, b"{}"
                elif callable(route):
                    status, extra, body = route(self.path, headers)
                else:
                    status, extra, body = route
                self.send_response(status)
                extra = dict(extra)
                extra.setdefault("Content-Length", str(len(body)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def paths(self) -> List[str]:
        return [seen.path for seen in self.log]

    def __enter__(self) -> "HostileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def json_answer(text: str, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, text.encode("utf-8")


def redirect(location: str, status: int = 302) -> Answer:
    return status, {"Location": location}, b""

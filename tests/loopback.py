"""A threaded HTTP server on 127.0.0.1 for download tests: routes, dropped connections, Range."""

from __future__ import annotations

import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[BaseHTTPRequestHandler], None]


class LoopbackServer(ThreadingHTTPServer):
    """Serves `routes` (path -> handler function) and records each request's path and Range."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def ranges(self) -> list[str | None]:
        return [range_ for _, range_ in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
        else:
            route(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_bytes(
    data: bytes,
    *,
    honour_range: bool = True,
    drops: int = 0,
    fail_status: int | None = None,
    content_type: str = "application/octet-stream",
) -> Route:
    """A route serving `data`.

    The first `drops` answers announce their full length but close the connection half way;
    with `fail_status`, the first answer is that HTTP status instead.
    """
    calls = 0

    def handle(handler: BaseHTTPRequestHandler) -> None:
        nonlocal calls
        calls += 1
        if fail_status is not None and calls == 1:
            handler.send_error(fail_status)
            return
        start = 0
        range_ = handler.headers.get("Range")
        if range_ and honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_)[1])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if calls <= drops:
            handler.wfile.write(body[: len(body) // 2])
            handler.close_connection = True  # HTTP/1.0: the socket closes when we return
            return
        handler.wfile.write(body)

    return handle

"""A tiny HTTP server for the containment tests: fixed pages by path, and a count of hits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Page = tuple[str, bytes, dict[str, str]]
"""(content type, body, extra headers)"""


class Site:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@contextmanager
def serve(pages: dict[str, Page], host: str = "127.0.0.1", port: int = 0) -> Iterator[Site]:
    """Serve `pages` on host:port (404 elsewhere), recording each request path in `hits`."""
    site: Site

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a proxy must not reuse the connection

        def do_GET(self) -> None:
            site.hits.append(self.path)
            page = pages.get(self.path.split("?")[0])
            if page is None:
                self.send_error(404)
                return
            kind, body, headers = page
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Access-Control-Allow-Origin", "*")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    site = Site(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def html(body: str) -> Page:
    return ("text/html; charset=utf-8", body.encode(), {})


@contextmanager
def download_site(page: str, name: str, size: int | None) -> Iterator[str]:
    """`page` at every path but /file, which is an attachment named `name`: `size` bytes,
    or, for None, one that never ends (64 KiB chunks until the client goes); its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/file":
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", f"attachment; filename={name}")
            if size is not None:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            with suppress(OSError):
                if size is not None:
                    self.wfile.write(b"x" * size)
                    return
                while True:
                    self.wfile.write(b"\0" * 65536)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()

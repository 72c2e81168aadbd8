"""A loopback HTTP server for the download tests: serves ``server.files`` by URL path and
understands ``Range`` requests, unless told to ignore them or to cut transfers short."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.data.download_fixtures import PAYLOAD


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-[M]`` unless ``server.ignore_range``."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        srv = self.server
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        if data is None:
            srv.log.append((self.path, rng, 404, 0))
            self.send_error(404)
            return
        status, body = 200, data
        if rng and not srv.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            assert match, rng
            start = int(match[1])
            end = int(match[2]) if match[2] else len(data) - 1
            if start >= len(data):
                srv.log.append((self.path, rng, 416, 0))  # before answering: no race
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, body = 206, data[start : end + 1]
        sent = body if srv.truncate_at is None else body[: srv.truncate_at]
        srv.log.append((self.path, rng, status, len(sent)))
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = True
        self.wfile.write(sent)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {"/payload.bin": PAYLOAD}
        self.log: list[tuple[str, str | None, int, int]] = []
        self.ignore_range = False
        self.truncate_at: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)

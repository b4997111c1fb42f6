"""A tiny HTTP/1.1 server on 127.0.0.1 for the client and redaction tests (real sockets, real timing).

Routes: ``/json`` (200 JSON), ``/error`` (500 JSON), ``/stream`` (three SSE chunks 50 ms apart, then
``[DONE]``), ``/big`` (a body over any small cap, with Content-Length), ``/big-stream`` (the same,
chunked), ``/hang`` (one chunk, then the stream is left open until the test ends, 10 s at most) and
``/slow-headers`` (no answer until the test ends). It never echoes request headers; it only remembers
the auth headers it received so a test can prove the key really went out.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STREAM_GAP_S = 0.05
HANG_LIMIT_S = 10.0
BIG_BYTES = 64 * 1024


@dataclass
class ServerState:
    """What the handlers share with the test."""

    stop: threading.Event = field(default_factory=threading.Event)
    auth_seen: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle keep-alive connection ends its handler thread soon after the test
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the tests capture stderr."""

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._route()

    def _route(self) -> None:
        state = self.server.state
        for name in ("Authorization", "x-api-key"):
            if self.headers.get(name):
                state.auth_seen.append(self.headers[name])
        routes: dict[str, Callable[[], object]] = {
            "/json": lambda: self._json(200, {"object": "test", "ok": True}),
            "/error": lambda: self._json(500, {"error": {"message": "boom", "type": "server_error"}}),
            "/stream": self._stream,
            "/big": lambda: self._fixed(b"x" * BIG_BYTES),
            "/big-stream": self._big_stream,
            "/hang": self._hang,
            "/slow-headers": lambda: state.stop.wait(HANG_LIMIT_S),
        }
        routes.get(self.path, lambda: self._json(404, {"error": {"message": "no route"}}))()

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fixed(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self) -> None:
        self._start_chunked("text/event-stream")
        for index in range(3):
            if index:
                self.server.state.stop.wait(STREAM_GAP_S)
            self._chunk(b'data: {"index": %d}\n\n' % index)
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _big_stream(self) -> None:
        self._start_chunked("application/octet-stream")
        for _ in range(BIG_BYTES // 4096):
            self._chunk(b"y" * 4096)
        self._chunk(b"")

    def _hang(self) -> None:
        self._start_chunked("text/event-stream")
        self._chunk(b'data: {"index": 0}\n\n')
        self.server.state.stop.wait(HANG_LIMIT_S)
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that stops reading (size cap, timeout) resets the connection: expected, not news."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def running_server() -> Iterator[tuple[str, ServerState]]:
    """Serve on an ephemeral port of 127.0.0.1; yields (base URL, state); stops everything on exit."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = ServerState()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.state
    finally:
        server.state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

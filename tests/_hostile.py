"""Small scripted HTTP servers on 127.0.0.1 for tests of how gatecheck meets a hostile or broken target.

    with scripted(lambda req: Reply(401, {"content-type": "text/plain"}, b"no")) as url:
        ...  # url = "http://127.0.0.1:<port>"; every request gets the answer the function gives

``Reply.body`` may be bytes, or an iterable of (delay_s, bytes) pieces written one after another
with the delays between them (a trickle, a stall: the server stops early when the test ends).
With ``raw=True`` the pieces are the whole response, status line and headers included (a
trickle of header bytes). ``refused_url()`` is a loopback URL nobody listens on. The server
records every request it saw.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """What to answer: status, headers, and the body (bytes, or timed pieces)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    body: bytes | Iterable[tuple[float, bytes]] = b"{}"
    raw: bool = False


Script = Callable[[Seen], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError):  # a client that refused our certificate, or gave up
            self.close_connection = True

    def _answer(self, body: bytes) -> None:
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.seen.append(seen)
        reply = self.server.script(seen)
        if reply.raw and not isinstance(reply.body, bytes):
            self.close_connection = True
            self._write_pieces(reply.body)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if isinstance(reply.body, bytes):
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self._write_pieces(reply.body)

    def _write_pieces(self, pieces: Iterable[tuple[float, bytes]]) -> None:
        for delay, piece in pieces:
            if self.server.stopping.wait(delay):
                return
            try:
                self.wfile.write(piece)
                self.wfile.flush()
            except OSError:  # the client gave up
                return


@contextmanager
def scripted(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    """A server answering each request with ``script(request)``; ``.url`` is its base URL (https: ``tls``)."""
    server = _Server(script, tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def refused_url() -> str:
    """A loopback URL with nothing listening (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def elapsed(func: Callable[[], object]) -> tuple[object, float]:
    """``func()``'s result (or the exception it raised) and the seconds it took."""
    started = time.monotonic()
    try:
        result: object = func()
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started

"""A hostile gateway on 127.0.0.1 that echoes the caller's key back in every way a report could quote.

Whatever the request, the key it carried (Bearer or x-api-key) comes back: as a run of copies long
enough that every excerpt boundary (120, 200, 300, 600 bytes...) cuts one in half, JSON-escaped
(``\\u002d``, ``\\/``, every character as ``\\u00XX``), percent-encoded, as HTML character
references, in a response header (``X-Echo-Key``), in a non-streamed body, in a chunk's fields and
in a mid-stream error event. Requests with ``max_tokens: 1`` (the rate-limit bursts) get 429
without rate-limit headers, so the header check quotes the headers. Nothing here is conformant:
every check that reads these answers fails and quotes them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

RUN = 40
"""Copies of the key in a row: 40 keys of 30+ characters cover every cut up to 1,200 bytes."""


def escaped_forms(key: str) -> dict[str, str]:
    """The key as a gateway may write it inside JSON text (each decodes to the key itself)."""
    return {
        "json-dash": key.replace("-", "\\u002d").replace("/", "\\/"),
        "json-every-char": "".join(f"\\u{ord(c):04X}" for c in key),
    }


def echo_text(key: str) -> str:
    """Text (valid inside a JSON string) carrying the key in every form, decoded or not."""
    forms = escaped_forms(key)
    return (
        f"invalid key {key * RUN} | escaped {forms['json-dash']} | every char {forms['json-every-char']} "
        f"| url https://gw.invalid/?key={quote(key, safe='')} "
        f"| all percent {''.join(f'%{b:02x}' for b in key.encode())} "
        f"| html {''.join(f'&#{ord(c)};' for c in key)} | again {key * RUN}"
    )


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""

    def do_GET(self) -> None:
        self._answer({})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        self._answer(body if isinstance(body, dict) else {})

    def _key(self) -> str:
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        return self.headers.get("x-api-key") or bearer

    def _answer(self, body: dict[str, object]) -> None:
        key = self._key()
        echo = echo_text(key) if key else "no key"
        if body.get("stream") is True:
            self._stream(key, echo)
        elif body.get("max_tokens") == 1:
            self._send(429, "application/json", f'{{"error":{{"message":"{echo}"}}}}'.encode(), key)
        else:
            self._send(
                200, "application/json", f'{{"error":{{"message":"{echo}","key":"{key}"}}}}'.encode(), key
            )

    def _stream(self, key: str, echo: str) -> None:
        head = '"id":"chatcmpl-echo","created":1,"model":"m"'
        events = [
            f'{{{head},"object":"{key}","choices":[{{"index":0,"delta":{{"role":"assistant"}}}}]}}',
            f'{{{head},"object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{echo}"}}}}]}}',
            f'{{"error":{{"message":"{echo}","type":"authentication_error"}}}}',
        ]
        data = "".join(f"data: {event}\n\n" for event in events).encode()
        self._send(200, "text/event-stream", data, key)

    def _send(self, status: int, ctype: str, data: bytes, key: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if key:
            self.send_header("X-Echo-Key", key)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def echo_server() -> Iterator[str]:
    """The echo gateway's base URL on 127.0.0.1 (a free port), stopped when the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

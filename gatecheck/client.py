"""The HTTP client: one ``Exchange`` per request, every received byte chunk stamped as it arrives.

Built on a sync ``httpx.Client``. The body is read with ``iter_bytes()`` (never line by line) and
each chunk is stamped with ``time.perf_counter_ns()`` the moment it is handed over, so stream timings
and SSE framing can be checked from the record alone.

Transport problems do not raise: they are recorded in the Exchange (``status`` 0 when no response
came, ``error`` and ``error_kind`` set) so a check can report them; ``raise_for_transport()`` turns
them into a ``TransportError`` when a caller prefers that.

Bounds: ``connect_timeout`` and ``read_timeout`` per step, ``total_timeout`` for the whole exchange
from connecting to the last byte, response headers included (every socket operation is bounded by
the deadline: ``gatecheck.net.BoundedBackend``), so a stream left open or a trickle of header bytes
ends as an error and never hangs; a streamed response that sends no byte for ``stall_seconds`` is
ended there and recorded as a ``stall``; ``max_response_bytes`` caps the body. The target's extra
headers go on every request, its TLS and proxy settings on every connection
(``gatecheck.net``). The API key is only ever in a request header: it is refused in URLs, and
every repr, log line and error text is scrubbed of the target's keys and secret header values.
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TypeAlias

import httpx

from gatecheck import __version__, net
from gatecheck._types import JSON, Headers
from gatecheck.config import Target
from gatecheck.curl import to_curl
from gatecheck.errors import ConfigError, ResponseTooLarge, TransportError
from gatecheck.redaction import Secret, as_secret, redact
from gatecheck.request import Request

if TYPE_CHECKING:
    from gatecheck.sse import SSEEvent

__all__ = ["AUTH_MODES", "OTHER_KEY_ENV", "Client", "ErrorKind", "Exchange", "Request"]

logger = logging.getLogger(__name__)

AUTH_MODES = ("default", "bearer", "x-api-key", "none")
"""``send(auth=...)``: the target's style, a forced style, or no auth header at all."""

OTHER_KEY_ENV = "GATECHECK_OTHER_KEY"
"""The variable a curl repro names for a key that is neither of the target's (e.g. an invalid key)."""

ErrorKind: TypeAlias = Literal[
    "connect", "connect_timeout", "read_timeout", "write_timeout", "pool_timeout", "total_timeout",
    "stall", "too_large", "protocol", "decoding", "network",
]  # fmt: skip

_ERROR_KINDS: tuple[tuple[type[httpx.HTTPError], ErrorKind, str], ...] = (
    (httpx.ConnectTimeout, "connect_timeout", "connect timeout"),
    (httpx.ReadTimeout, "read_timeout", "read timeout"),
    (httpx.WriteTimeout, "write_timeout", "write timeout"),
    (httpx.PoolTimeout, "pool_timeout", "pool timeout"),
    (httpx.ConnectError, "connect", "connection failed"),
    (httpx.ProtocolError, "protocol", "protocol error"),
    (httpx.DecodingError, "decoding", "undecodable body"),
)
"""httpx exception -> (kind, label), most specific first; anything else is a "network" error."""

_CUT_OFF: tuple[ErrorKind, ...] = ("protocol", "network")
"""Errors that, once a response has started, mean the server cut the body off."""


def auth_header(style: str, key: str) -> Headers:
    """The header that carries ``key`` in auth style ``style`` ("x-api-key", else Bearer)."""
    return {"x-api-key": key} if style == "x-api-key" else {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True, repr=False)
class Exchange:
    """One request with its response: status, headers, raw chunks with arrival times, errors.

    Times are ``perf_counter_ns`` values: ``t_start_ns`` just before sending, ``t_headers_ns`` when
    the response headers were in (None if they never came), ``t_end_ns`` when reading stopped.
    ``server_closed`` is True when the body ended because the server ended it (complete, or cut
    off: see ``error``), False when we stopped reading (timeout, size cap) or never got a response.
    """

    request: Request
    status: int = 0
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    t_start_ns: int = 0
    t_headers_ns: int | None = None
    t_end_ns: int = 0
    error: str | None = None
    error_kind: ErrorKind | None = None
    server_closed: bool = False
    http_version: str = ""

    @functools.cached_property
    def body(self) -> bytes:
        """The chunks joined: the body as received (decoded from any Content-Encoding)."""
        return b"".join(data for _, data in self.chunks)

    def json(self) -> JSON:
        """The body decoded as JSON (raises ``ValueError`` when it is not JSON)."""
        return jsonlib.loads(self.body)

    def events(self) -> list[SSEEvent]:
        """The body decoded as an event stream, each event stamped with its completing chunk's time.

        An unterminated event at the end is discarded, as the SSE rules say; ``SSEError`` is raised
        for an event over the decoder's size cap.
        """
        from gatecheck.sse import decode_chunks  # imported here: the decoder is only needed for streams

        decoded = decode_chunks(self.chunks)
        if decoded.error is not None:
            raise decoded.error
        return decoded.events

    def curl(self) -> str:
        """A shell command reproducing the request, the key as an environment variable reference."""
        return to_curl(self.request)

    def raise_for_transport(self) -> None:
        """Raise ``TransportError`` (``ResponseTooLarge`` for the size cap) if the exchange failed."""
        if self.error is None:
            return
        if self.error_kind == "too_large":
            raise ResponseTooLarge(self.error)
        raise TransportError(self.error)

    @property
    def duration_ns(self) -> int:
        """From sending to the end of reading."""
        return self.t_end_ns - self.t_start_ns

    def __repr__(self) -> str:
        outcome = (
            f"error={self.error!r}" if self.error else f"{len(self.body)} bytes in {len(self.chunks)} chunks"
        )
        return (
            f"<Exchange {self.request.method} {redact(self.request.url, self.request.secrets)} -> "
            f"{self.status} {outcome}, {self.duration_ns / 1e6:.1f} ms>"
        )


@dataclass(slots=True)
class _Recording:
    """What is known so far about one exchange; frozen into an ``Exchange`` at the end."""

    request: Request
    t_start_ns: int
    status: int = 0
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    http_version: str = ""
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    t_headers_ns: int | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    server_closed: bool = False

    def fail(self, kind: ErrorKind, text: str) -> None:
        """Record the first error only: later ones are consequences of it."""
        if self.error is None:
            self.error_kind = kind
            self.error = redact(text, self.request.secrets)

    def freeze(self, t_end_ns: int) -> Exchange:
        """The finished record."""
        return Exchange(
            request=self.request,
            status=self.status,
            headers=self.headers,
            chunks=self.chunks,
            t_start_ns=self.t_start_ns,
            t_headers_ns=self.t_headers_ns,
            t_end_ns=t_end_ns,
            error=self.error,
            error_kind=self.error_kind,
            server_closed=self.server_closed,
            http_version=self.http_version,
        )


def _classify(exc: httpx.HTTPError) -> tuple[ErrorKind, str]:
    """The kind of a transport error and a one-line description (not yet redacted)."""
    detail = str(exc) or type(exc).__name__
    for exc_type, kind, label in _ERROR_KINDS:
        if isinstance(exc, exc_type):
            return kind, f"{label}: {detail}"
    return "network", f"network error: {detail}"


def _refuse_key_in_url(url: str, secrets: tuple[Secret, ...]) -> None:
    """Keys go in headers only: httpx logs URLs, and URLs end up in reports."""
    if redact(url, secrets) != url:
        raise ValueError("an API key must not appear in a URL: gatecheck sends keys in headers only")


def _content_length(headers: httpx.Headers) -> int | None:
    """The declared body length, None when absent or not a number."""
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


class Client:
    """Sends requests to one target and records each as an ``Exchange``.

    ``transport`` is the test seam (e.g. ``httpx.MockTransport``); None means real sockets.
    ``on_exchange`` is called with every finished ``Exchange`` (``gatecheck.cassettes`` records
    them). Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        target: Target,
        transport: httpx.BaseTransport | None = None,
        *,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        if target.base_url is None:
            raise ConfigError("base_url", None, "a URL: start the reference gateway first and target its URL")
        self.target = target
        self._on_exchange = on_exchange
        keys = tuple(k for k in (target.api_key, target.api_key_2) if k is not None)
        self._secrets = keys + target.header_secrets
        _refuse_key_in_url(target.base_url, self._secrets)
        total = target.total_timeout
        timeout = httpx.Timeout(
            connect=min(target.connect_timeout, total),
            read=min(target.read_timeout, total),
            write=min(target.read_timeout, total),
            pool=min(target.connect_timeout, total),
        )
        self._http = httpx.Client(
            transport=transport or net.bounded_transport(target), timeout=timeout, follow_redirects=False
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __repr__(self) -> str:
        return f"Client({self.target.name}: {self.target.base_url})"

    def build_request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str = "default",
        key: Secret | str | None = None,
    ) -> Request:
        """The ``Request`` that ``send`` would send (same arguments), without sending it."""
        if json is not None and content is not None:
            raise ValueError("give json or content, not both")
        url = f"{self.target.base_url}{path}"
        override = None if key is None else as_secret(key)
        secrets = self._secrets + ((override,) if override is not None else ())
        _refuse_key_in_url(url, secrets)
        sent: Headers = {"User-Agent": f"gatecheck/{__version__}"}
        body = b""
        if json is not None:
            body = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            sent["Content-Type"] = "application/json"
        elif content is not None:
            body = content.encode("utf-8") if isinstance(content, str) else content
        used_key, key_env, auth_header = self._auth(auth, override)
        sent.update(auth_header)
        _merge(sent, {name: _reveal(value) for name, value in self.target.headers})
        _merge(sent, headers or {})
        return Request(method.upper(), url, sent, body, used_key, key_env, secrets)

    def _auth(self, auth: str, override: Secret | None) -> tuple[Secret | None, str | None, Headers]:
        """The key to send, the variable a repro reads it from, and the auth header."""
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
        key = override if override is not None else self.target.api_key
        if auth == "none" or key is None:
            return None, None, {}
        if key == self.target.api_key:
            key_env = self.target.api_key_env
        elif key == self.target.api_key_2:
            key_env = self.target.api_key_2_env
        else:
            key_env = OTHER_KEY_ENV
        style = self.target.auth if auth == "default" else auth
        return key, key_env, auth_header(style, key.reveal())

    def send(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str = "default",
        key: Secret | str | None = None,
    ) -> Exchange:
        """Send one request and record it; transport errors are in the Exchange, not raised.

        ``auth``: "default" (the target's style), "bearer", "x-api-key" or "none" (no auth header).
        ``key`` replaces the target's key for this request (second-key and invalid-key checks).
        ``headers`` are added last and win over gatecheck's own (case-insensitively).
        """
        request = self.build_request(
            method, path, json=json, content=content, headers=headers, auth=auth, key=key
        )
        return self.exchange(request)

    def exchange(self, request: Request) -> Exchange:
        """Send a prepared ``Request`` within the target's bounds and record everything received."""
        recording = _Recording(request=request, t_start_ns=time.perf_counter_ns())
        with net.bounds(time.monotonic() + self.target.total_timeout) as bounds:
            try:
                with self._http.stream(
                    request.method, request.url, headers=request.headers, content=request.body or None
                ) as response:
                    recording.t_headers_ns = time.perf_counter_ns()
                    recording.status = response.status_code
                    recording.headers = response.headers
                    recording.http_version = response.http_version
                    if _is_stream(request, response.headers):
                        bounds.stall_s = self.target.stall_seconds
                    self._read_body(response, recording)
            except httpx.HTTPError as exc:
                self._failed(recording, exc, bounds.binding)
        exchange = recording.freeze(time.perf_counter_ns())
        logger.debug("%r", exchange)
        if self._on_exchange is not None:
            self._on_exchange(exchange)
        return exchange

    def _failed(self, recording: _Recording, exc: httpx.HTTPError, binding: net.Binding) -> None:
        """Record a transport error, telling the total deadline and a stall from an ordinary timeout."""
        if isinstance(exc, httpx.TimeoutException) and binding == "total":
            self._total_timeout(recording)
        elif isinstance(exc, httpx.ReadTimeout) and binding == "stall":
            recording.server_closed = False
            received = sum(len(data) for _, data in recording.chunks)
            silence = f"{self.target.stall_seconds:g} s (--stall-seconds)"
            recording.fail("stall", f"stalled: no byte for {silence} after {received} bytes")
        kind, text = _classify(exc)
        recording.server_closed = recording.error is None and kind in _CUT_OFF and recording.status != 0
        recording.fail(kind, text)

    def _total_timeout(self, recording: _Recording) -> None:
        recording.server_closed = False
        recording.fail("total_timeout", f"total timeout: no end within {self.target.total_timeout:g} s")

    def _read_body(self, response: httpx.Response, recording: _Recording) -> None:
        """Read chunks as they arrive until the server ends the body, the size cap or the deadline."""
        cap = self.target.max_response_bytes
        declared = _content_length(response.headers)
        if declared is not None and declared > cap:
            recording.fail(
                "too_large", f"response too large: Content-Length {declared} is over the {cap}-byte cap"
            )
            return
        deadline_ns = recording.t_start_ns + int(self.target.total_timeout * 1e9)
        received = 0
        for data in response.iter_bytes():
            t_ns = time.perf_counter_ns()
            if received + len(data) > cap:
                recording.chunks.append((t_ns, data[: cap - received]))
                recording.fail("too_large", f"response too large: more than the {cap}-byte cap")
                return
            received += len(data)
            recording.chunks.append((t_ns, data))
            if t_ns > deadline_ns:
                self._total_timeout(recording)
                return
        recording.server_closed = True


def _is_stream(request: Request, headers: httpx.Headers) -> bool:
    """Whether the answer is (or was asked to be) an event stream: silence then means a stall."""
    if headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream":
        return True
    return b'"stream":true' in request.body.replace(b" ", b"")


def _reveal(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def _merge(headers: Headers, extra: Mapping[str, str]) -> None:
    """Add ``extra`` to ``headers``, replacing same-named ones whatever their case."""
    for name, value in extra.items():
        for existing in [h for h in headers if h.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value

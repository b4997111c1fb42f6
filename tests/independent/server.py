"""The double's HTTP side: the standard library's ThreadingHTTPServer on 127.0.0.1, a thread per connection.

Every request: read the body, authenticate (002: Bearer or x-api-key, on every endpoint), route,
admit under the key's limits (``limits.py``), validate, answer, then charge the tokens the answer
used. JSON answers carry Content-Length; streams are sent with chunked transfer encoding, one
chunk per SSE event, a pause after each token. Errors use 002's envelope
``{"error": {"code", "message", "request_id"}}``; on /v1/messages the same object also carries
Anthropic's ``type`` fields (``{"type": "error", "error": {"type": ..., ...}}``), so both the
document and the Anthropic SDK read it. Every admitted response carries X-RateLimit-Limit and
X-RateLimit-Remaining (requests, 002), X-RateLimit-Reset (seconds until Remaining next grows) and
the token pair; a 429 adds Retry-After and says in its message which limit it is for.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time
import traceback
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import answers
from . import model as lm
from .catalog import MODELS, QUIRKS, ApiError, invalid
from .limits import BucketLimiter, Decision, KeyLimits, SlidingLimiter
from .validate import chat_request, images_request, messages_request

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
}
PRICE_PER_TOKEN = 2e-6
"""CNY per token, for /v1/balance."""
BALANCE = 138.5
DAILY_BUDGET = 20.0
CHINA = timezone(timedelta(hours=8))
IMAGE_FILES = "/v1/images/files/"
KEPT_IMAGES = 32
STALL_LIMIT_S = 60.0
RELAYED = {
    "X-RateLimit-Limit": "10000",
    "X-RateLimit-Remaining": "9999",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6ms",
}
"""What an upstream provider says about its own limits, relayed by the 'relayed-headers' quirk."""


@dataclass(frozen=True)
class DoubleConfig:
    """Keys with their limits, the limits' window, the pause between streamed tokens, quirks."""

    keys: dict[str, KeyLimits]
    window_s: float = 60.0
    token_interval_s: float = 0.002
    quirks: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.quirks) - set(QUIRKS)
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(QUIRKS)}")


@dataclass
class Reply:
    """A 200 answer to send: a JSON body or an event stream, and the tokens it costs."""

    body: Any = None
    stream: Iterator[answers.Event] | None = None
    tokens: int = 0


@dataclass
class Ledger:
    """Tokens spent per key (for the balance)."""

    spent: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, tokens: int) -> None:
        """Record tokens spent on ``key``."""
        with self.lock:
            self.spent[key] = self.spent.get(key, 0) + tokens


class DoubleServer(ThreadingHTTPServer):
    """The server and its shared state."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, config: DoubleConfig) -> None:
        self.config = config
        self.quirks = frozenset(config.quirks)
        limiter_class = BucketLimiter if "tpm-off-bucket" in self.quirks else SlidingLimiter
        if limiter_class is SlidingLimiter:
            short_by = 1 if "under-admission" in self.quirks else 0
            self.limiter: SlidingLimiter | BucketLimiter = SlidingLimiter(
                config.keys, config.window_s, short_by=short_by
            )
        else:
            self.limiter = BucketLimiter(config.keys, config.window_s)
        self.ledger = Ledger()
        self.images: OrderedDict[str, bytes] = OrderedDict()
        self.images_lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)

    def keep_image(self, png: bytes) -> str:
        """Store a generated image for its URL; the oldest are dropped."""
        name = uuid.uuid4().hex
        with self.images_lock:
            self.images[name] = png
            while len(self.images) > KEPT_IMAGES:
                self.images.popitem(last=False)
        return name


class Handler(BaseHTTPRequestHandler):
    """One connection (HTTP/1.1 keep-alive): requests handled one after another."""

    protocol_version = "HTTP/1.1"
    server_version = "independent-double/1"
    timeout = 30
    server: DoubleServer

    def setup(self) -> None:
        """No Nagle: each SSE event leaves when written (else events and bodies wait for delayed ACKs)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: tests capture stderr."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        request_id = "req-" + uuid.uuid4().hex[:20]
        path = urlsplit(self.path).path
        anthropic = path == "/v1/messages"
        try:
            raw = self._read_body()
            if "redirect-loop" in self.server.quirks:
                self._send_bytes(307, b"", "text/plain", {"Location": self.path})
                return
            if method == "GET" and path.startswith(IMAGE_FILES):
                self._image_file(path[len(IMAGE_FILES) :])
                return
            key = self._authenticate()
            route = ROUTES.get(path)
            if route is None:
                raise ApiError(404, "NOT_FOUND", f"No endpoint {path}")
            if route[0] != method:
                raise ApiError(405, "METHOD_NOT_ALLOWED", f"{path} takes {route[0]}, not {method}")
            decision = self._admit(key)
            headers = self._limit_headers(decision)
            body = _json_body(raw) if method == "POST" else None
            reply = route[1](self, key, body)
            self._send(reply, headers, request_id)
            self.server.limiter.charge(key, reply.tokens)
            self.server.ledger.add(key, reply.tokens)
        except ApiError as error:
            self._send_error(error, request_id, anthropic)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as crash:  # a bug of the double: say so as 002's 500, and keep it visible
            traceback.print_exc()
            self.close_connection = True
            self._send_error(
                ApiError(500, "INTERNAL_ERROR", f"double crashed: {crash!r}"), request_id, anthropic
            )

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            self.close_connection = True
            raise invalid("Content-Length is not a number")
        return self.rfile.read(int(length)) if int(length) else b""

    def _authenticate(self) -> str:
        """002 Overview: Bearer token or x-api-key; 401 UNAUTHORIZED otherwise."""
        bearer = self.headers.get("Authorization") or ""
        key = bearer[7:].strip() if bearer[:7].lower() == "bearer " else self.headers.get("x-api-key")
        if not key:
            raise ApiError(401, "UNAUTHORIZED", "No API key: send Authorization: Bearer <key> or x-api-key")
        if key not in self.server.config.keys:
            raise ApiError(401, "UNAUTHORIZED", "Invalid or expired API key")
        return key

    def _admit(self, key: str) -> Decision | None:
        if "no-ratelimit" in self.server.quirks:
            return None
        decision = self.server.limiter.admit(key)
        if not decision.admitted:
            raise ApiError(429, "RATE_LIMIT", _limit_message(decision), decision.headers())
        return decision

    def _limit_headers(self, decision: Decision | None) -> dict[str, str]:
        if decision is None:
            return {}
        headers = decision.headers()
        if "relayed-headers" in self.server.quirks:
            headers = {k: v for k, v in headers.items() if not k.startswith("X-RateLimit")} | RELAYED
        return headers

    def _send(self, reply: Reply, headers: dict[str, str], request_id: str) -> None:
        if reply.stream is not None:
            self._send_stream(reply.stream, headers, request_id)
            return
        data = json.dumps(reply.body).encode()
        self._send_bytes(200, data, "application/json", {**headers, "X-Request-Id": request_id})

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, events: Iterator[answers.Event], headers: dict[str, str], request_id: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Request-Id", request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if "stall-after-headers" in self.server.quirks and self.path.startswith("/v1/chat/"):
            self.server.stopping.wait(STALL_LIMIT_S)
            self.close_connection = True
            return
        pause = self.server.config.token_interval_s
        for event in events:
            text = (f"event: {event.name}\n" if event.name else "") + f"data: {event.data}\n\n"
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            if event.token and pause:
                time.sleep(pause)
        self.wfile.write(b"0\r\n\r\n")

    def _send_error(self, error: ApiError, request_id: str, anthropic: bool) -> None:
        headers = {**error.headers, "X-Request-Id": request_id}
        if error.status == 429 and "plain-text-429" in self.server.quirks:
            self._send_bytes(429, b"Too Many Requests", "text/plain; charset=utf-8", headers)
            return
        inner: dict[str, Any] = {"code": error.code, "message": error.message, "request_id": request_id}
        body: dict[str, Any] = {"error": inner}
        if anthropic and "openai-envelope-on-messages" in self.server.quirks:
            body = {
                "error": {
                    "message": error.message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
        elif anthropic:
            kind = ANTHROPIC_TYPES.get(error.status, "api_error")
            body = {"type": "error", "error": {"type": kind, **inner}, "request_id": request_id}
        self._send_bytes(error.status, json.dumps(body).encode(), "application/json", headers)

    def _image_file(self, name: str) -> None:
        """A generated image, by the unguessable name its URL carries (no key: it is a CDN-like link)."""
        with self.server.images_lock:
            png = self.server.images.get(name.removesuffix(".png"))
        if png is None:
            raise ApiError(404, "NOT_FOUND", "No such image")
        self._send_bytes(200, png, "image/png", {})


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    return body


def _limit_message(decision: Decision) -> str:
    if decision.exceeded == "tokens":
        return (
            f"Rate limit exceeded: this key's {decision.tokens_limit} tokens per minute are used up. "
            f"Please retry after {decision.retry_after_s}s."
        )
    return (
        f"Rate limit exceeded: this key's {decision.limit} requests per minute are used up. "
        f"Please retry after {decision.retry_after_s}s."
    )


def _context_check(model_id: str, prompt: int, cap: int | None) -> None:
    """400 INVALID_PARAMS when prompt and requested output exceed the model's context length."""
    limit = MODELS[model_id].context_length
    if limit is not None and prompt + (cap or 0) > limit:
        asked = f" + {cap} output tokens" if cap else ""
        raise invalid(
            f"This model's maximum context length is {limit} tokens; the request needs "
            f"{prompt} prompt tokens{asked} (context length exceeded)"
        )


def chat(handler: Handler, key: str, body: Any, *, search: bool = False) -> Reply:
    """POST /v1/chat/completions (000, 001, 002, 003, 004)."""
    request = chat_request(body, search=search)
    prompt = lm.prompt_tokens(request.messages, tools=request.tools or None)
    _context_check(request.model.id, prompt, request.cap)
    quirks = handler.server.quirks
    generations = [
        lm.realise(answers.chat_intent(request, i, quirks, search), request.cap, request.stops)
        for i in range(request.n)
    ]
    usage = answers.chat_usage(prompt, generations, request.model.reasoning)
    tokens = usage["total_tokens"]
    if request.stream:
        return Reply(stream=answers.chat_stream(request, generations, usage, quirks), tokens=tokens)
    return Reply(body=answers.chat_completion(request, generations, usage), tokens=tokens)


def search(handler: Handler, key: str, body: Any) -> Reply:
    """POST /v1/search/completions (002): the chat shape, sources cited in the answer."""
    return chat(handler, key, body, search=True)


def messages(handler: Handler, key: str, body: Any) -> Reply:
    """POST /v1/messages (002 Messages)."""
    request = messages_request(body)
    prompt = lm.prompt_tokens(request.messages, system=request.system, tools=request.tools or None)
    _context_check(request.model.id, prompt, request.cap)
    quirks = handler.server.quirks
    generation = lm.realise(answers.messages_intent(request, quirks), request.cap, request.stops)
    tokens = prompt + generation.tokens
    if request.stream:
        return Reply(stream=answers.message_stream(request, generation, prompt, quirks), tokens=tokens)
    return Reply(body=answers.message(request, generation, prompt, quirks), tokens=tokens)


def models(handler: Handler, key: str, body: Any) -> Reply:
    """GET /v1/models: OpenAI's list shape, with each chat model's context_length."""
    data = []
    for model in MODELS.values():
        entry: dict[str, Any] = {
            "id": model.id,
            "object": "model",
            "created": 1_750_000_000,
            "owned_by": model.owned_by,
        }
        if model.context_length is not None:
            entry["context_length"] = model.context_length
        data.append(entry)
    return Reply(body={"object": "list", "data": data})


def balance(handler: Handler, key: str, body: Any) -> Reply:
    """GET /v1/balance (002): the tenant's balance and this key's daily budget use."""
    spent = handler.server.ledger.spent
    used = round(spent.get(key, 0) * PRICE_PER_TOKEN, 2)
    tomorrow = (datetime.now(CHINA) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    position = list(handler.server.config.keys).index(key)
    return Reply(
        body={
            "object": "balance",
            "currency": "CNY",
            "balance": round(BALANCE - sum(spent.values()) * PRICE_PER_TOKEN, 2),
            "api_key": {
                "id": str(1_900_000_000_000_000_000 + position),
                "name": f"double-key-{position + 1}",
                "daily_budget": DAILY_BUDGET,
                "daily_used": used,
                "daily_remaining": round(DAILY_BUDGET - used, 2),
                "daily_reset_at": tomorrow.isoformat(),
                "monthly_budget": None,
                "monthly_used": None,
                "monthly_remaining": None,
                "monthly_reset_at": None,
            },
        }
    )


def images(handler: Handler, key: str, body: Any) -> Reply:
    """POST /v1/images/generations (002): real PNGs, as URLs on this server or base64."""
    request = images_request(body)
    data = []
    for index in range(request.n):
        png = gradient_png(request.width, request.height, lm.seed_of(request.prompt, index))
        if request.response_format == "b64_json":
            data.append({"b64_json": base64.b64encode(png).decode()})
        else:
            port = handler.server.server_address[1]
            data.append({"url": f"http://127.0.0.1:{port}{IMAGE_FILES}{handler.server.keep_image(png)}.png"})
    return Reply(body={"created": int(time.time()), "data": data})


def gradient_png(width: int, height: int, seed: str) -> bytes:
    """An RGB PNG (8-bit, no interlace): a gradient whose colour the seed picks."""
    blue = int(seed[:2], 16)
    reds = bytes(x * 255 // max(1, width - 1) for x in range(width))
    blues = bytes([blue]) * width
    rows = bytearray()
    for y in range(height):
        row = bytearray(3 * width)
        row[0::3] = reds
        row[1::3] = bytes([y * 255 // max(1, height - 1)]) * width
        row[2::3] = blues
        rows += b"\x00" + row

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


ROUTES: dict[str, tuple[str, Callable[[Handler, str, Any], Reply]]] = {
    "/v1/chat/completions": ("POST", chat),
    "/v1/search/completions": ("POST", search),
    "/v1/messages": ("POST", messages),
    "/v1/images/generations": ("POST", images),
    "/v1/models": ("GET", models),
    "/v1/balance": ("GET", balance),
}


@dataclass
class RunningDouble:
    """A double serving on 127.0.0.1 in a thread."""

    server: DoubleServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """The base URL (without /v1)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving, release stalled streams, close the socket."""
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextmanager
def running_double(config: DoubleConfig) -> Iterator[RunningDouble]:
    """Start the double on 127.0.0.1:0 in a thread; stopped when the block ends."""
    double = start_double(config)
    try:
        yield double
    finally:
        double.stop()


def start_double(config: DoubleConfig) -> RunningDouble:
    """Start the double on 127.0.0.1:0 in a daemon thread (call ``stop()``)."""
    server = DoubleServer(config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return RunningDouble(server, thread)

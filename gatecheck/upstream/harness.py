"""The upstream harness (``gatecheck upstream``): the provider a gateway under test calls, scripted.

It serves OpenAI chat completions, ``/v1/models`` and Anthropic messages with the reference
gateway's fake model and renderers, and requires its own key from the gateway (``key`` of the
config's one ``KeySpec``). What it does with a request is the scenario registered for the nonce
found in the request body (``gatecheck.upstream.scenarios``); every attempt goes to the log
(``gatecheck.upstream.log``), stamped on the harness's monotonic clock.

The control API lives under ``/_gatecheck/`` on the same port and answers loopback clients only
(a gateway on another machine can reach the provider endpoints when ``--host`` allows, never the
control API):

    POST /_gatecheck/scenarios     {"nonce": "gcnonce-...", "scenario": "status", "status": 503, ...}
    GET  /_gatecheck/log?nonce=N   every attempt for N: headers (keys redacted), body, writes, stamps
    GET  /_gatecheck/log?since=S   attempts numbered above S, stamps only (load runs poll this;
                                   &prefix=P: only nonces starting with P; &limit=N)
    GET  /_gatecheck/info          the key the gateway must send (a canary the checks look for),
                                   the harness's clock now, whether it logs every token write,
                                   the scenarios

With ``log_writes`` (``gatecheck upstream --log-writes``) every attempt's log keeps the stamp of
each token write, not only the first: the load test's per-chunk gateway overhead reads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import json
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from gatecheck import __version__
from gatecheck._types import JSON, JSONObject
from gatecheck.reference.arrival import arrived_at
from gatecheck.reference.catalogue import MODELS
from gatecheck.reference.chat import ChatAnswer, ChatStream, chat_body
from gatecheck.reference.config import GatewayConfig, KeySpec
from gatecheck.reference.extras import models_body
from gatecheck.reference.fakemodel import complete
from gatecheck.reference.messages import MessageAnswer, MessageStream, message_body
from gatecheck.reference.prompts import anthropic_prompt, openai_prompt
from gatecheck.reference.runner import RunningGateway, SiteStarter, start_in_thread
from gatecheck.reference.streaming import Schedule, sleep_until
from gatecheck.upstream.log import Attempt, Log, redacted_headers
from gatecheck.upstream.scenarios import (
    NONCE_RE,
    SCENARIOS,
    Scenario,
    ScenarioError,
    anthropic_usage,
    openai_usage,
    parse_scenario,
)

CONTROL = "/_gatecheck"
DEFAULT_MODEL = MODELS["deepseek-v4-flash"]
"""What an unknown model name is answered as (a gateway may map any alias to the harness)."""

POLL_S = 0.02
"""How often a silent or stalled attempt looks whether the gateway has left."""

RESET_GRACE_S = 0.05
"""Pause between the last chunk and a mid-stream reset: a peer's kernel drops unread data on RST."""

MAX_LOG_PAGE = 10_000
MALFORMED_MARK = "gatecheck-malformed-chunk"
"""In the malformed chunk, so a check can find it in what the client received."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def harness_config(
    *,
    key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    ttft_ms: float = 0.0,
    itl_ms: float = 0.0,
) -> GatewayConfig:
    """The harness's settings (a ``GatewayConfig``: the same validation); a canary key when none is given."""
    key = key or f"gcu-canary-{secrets.token_hex(16)}"
    return GatewayConfig(
        host=host, port=port, keys=(KeySpec(key),), ttft_ms=ttft_ms, itl_ms=itl_ms, errors="openai"
    )


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address is a loopback address (127.0.0.0/8, ::1, IPv4-mapped loopback)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


@dataclass(frozen=True)
class Rendered:
    """One event of an answer: when (step), what kind, its bytes."""

    step: int
    kind: str  # "head", "content", "end"
    data: bytes


class Harness:
    """The scripted provider and its control API."""

    def __init__(self, config: GatewayConfig, *, log_writes: bool = False) -> None:
        self.config = config
        self.key = config.keys[0].key if config.keys else ""
        self.log = Log(log_writes=log_writes)
        self._scenarios: dict[str, Scenario] = {}
        self._closing = False
        self._ids = iter(range(1, 1 << 62))

    def close(self) -> None:
        """Stopping: silent and stalled attempts end now."""
        self._closing = True

    async def stop_serving(self, runner: web.AppRunner) -> None:
        """End held attempts, then finish or cancel in-flight requests."""
        self.close()
        await runner.cleanup()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._loopback_only])
        app.add_routes(
            [
                web.post("/v1/chat/completions", self.chat_completions),
                web.post("/v1/messages", self.messages),
                web.get("/v1/models", self.models),
                web.post(f"{CONTROL}/scenarios", self.register),
                web.get(f"{CONTROL}/log", self.read_log),
                web.get(f"{CONTROL}/info", self.info),
            ]
        )
        return app

    # --- control API ---------------------------------------------------------------------------

    @web.middleware
    async def _loopback_only(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The control API refuses every client that is not on this machine's loopback."""
        if request.path.startswith(CONTROL) and not is_loopback(request.remote):
            return web.json_response({"error": "the control API answers loopback clients only"}, status=403)
        return await handler(request)

    async def register(self, request: web.Request) -> web.StreamResponse:
        try:
            nonce, scenario = parse_scenario(await request.json())
        except (ValueError, ScenarioError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._scenarios[nonce] = scenario
        return web.json_response({"nonce": nonce, "scenario": scenario.to_json()})

    async def read_log(self, request: web.Request) -> web.StreamResponse:
        nonce = request.query.get("nonce")
        if nonce is not None:
            return web.json_response({"attempts": [a.to_json() for a in self.log.of(nonce)]})
        try:
            since = int(request.query.get("since", "0"))
            limit = min(int(request.query.get("limit", str(MAX_LOG_PAGE))), MAX_LOG_PAGE)
        except ValueError:
            return web.json_response({"error": "since and limit are integers"}, status=400)
        found, last = self.log.since(since, limit, request.query.get("prefix", ""))
        return web.json_response({"attempts": [a.to_json(brief=True) for a in found], "next": last})

    async def info(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "harness": f"gatecheck upstream {__version__}",
                "key": self.key,
                "clock_ns": time.monotonic_ns(),
                "log_writes": self.log.log_writes,
                "scenarios": SCENARIOS,
            }
        )

    # --- provider endpoints --------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.StreamResponse:
        if self._auth(request) != "ok":
            return _openai_error(401, "Incorrect API key provided", "invalid_api_key")
        return web.json_response(models_body())

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "openai")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "anthropic")

    async def _answer(self, request: web.Request, dialect: str) -> web.StreamResponse:
        raw = await request.read()
        t0 = arrived_at(request)
        text = raw.decode("utf-8", "replace")
        nonce = next((m for m in NONCE_RE.findall(text) if m in self._scenarios), None)
        nonce = nonce or next(iter(NONCE_RE.findall(text)), None)
        scenario = self._scenarios.get(nonce or "", Scenario())
        try:
            body: JSON = json.loads(raw)
        except ValueError:
            body = text[:65_536]
        attempt = self.log.open(
            nonce,
            scenario=scenario.name,
            method=request.method,
            path=request.path,
            headers=redacted_headers(dict(request.headers)),
            auth=self._auth(request),
            body=body,
            t_arrival_ns=int(t0 * 1e9),
            detailed=nonce in self._scenarios,
        )
        writer = Writer(request, attempt)
        try:
            if attempt.auth != "ok":
                return await writer.error(
                    401, _error_body(dialect, 401, "Incorrect API key provided"), "refused"
                )
            if not isinstance(body, dict):
                return await writer.error(
                    400, _error_body(dialect, 400, "The body is not a JSON object"), "refused"
                )
            events, whole = self._render(body, dialect, scenario)
            stream = body.get("stream") is True
            schedule = self._schedule(t0, scenario)
            if scenario.fails(attempt.attempt):
                return await self._scripted(writer, scenario, dialect, stream, events, whole, schedule)
            if stream:
                return await writer.stream(events, schedule)
            return await writer.whole(whole, schedule.at(max(_last_step(events), 0)))
        except ConnectionError:  # the gateway left mid-answer: logged as such by finish()
            return writer.response or web.Response(status=499)
        finally:
            writer.finish()

    def _auth(self, request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key", "").strip()
        if not given:
            return "missing"
        return "ok" if secrets.compare_digest(given.encode(), self.key.encode()) else "wrong"

    def _schedule(self, t0: float, scenario: Scenario) -> Schedule:
        ttft = scenario.ttft_ms if scenario.ttft_ms is not None else self.config.ttft_ms
        if scenario.name == "slow-first-token":
            ttft += scenario.delay_ms
        itl = scenario.itl_ms if scenario.itl_ms is not None else self.config.itl_ms
        return Schedule(t0, ttft / 1000, itl / 1000, 0.0, None)

    def _render(self, body: JSONObject, dialect: str, scenario: Scenario) -> tuple[list[Rendered], bytes]:
        """The answer as stream events and as a whole body, usage and finish reason as scripted."""
        name = body.get("model") if isinstance(body.get("model"), str) else DEFAULT_MODEL.id
        assert isinstance(name, str)
        model = MODELS.get(name) or DEFAULT_MODEL
        words = scenario.words or self.config.reply_words
        number = next(self._ids)
        finish = scenario.finish_reason
        if dialect == "anthropic":
            prompt = anthropic_prompt(body)
            completion = complete(prompt, 0, words)
            if finish is not None:
                completion = dataclasses.replace(completion, finish=finish)  # type: ignore[arg-type]
            answer = MessageAnswer(f"msg_up{number:08d}", name, prompt.prompt_tokens, completion)
            usage = anthropic_usage(scenario.usage) if scenario.usage else None
            events = [_anthropic_event(step, data, usage) for step, data in MessageStream(answer).events()]
            whole = message_body(answer)
        else:
            prompt = openai_prompt(body, model)
            choices = tuple(complete(prompt, i, words) for i in range(prompt.n))
            if finish is not None:
                choices = tuple(dataclasses.replace(c, finish=finish) for c in choices)  # type: ignore[arg-type]
            chat = ChatAnswer(
                f"chatcmpl-up{number:08d}",
                int(time.time()),
                name,
                prompt.prompt_tokens,
                choices,
                model.reasoning,
            )
            usage = openai_usage(scenario.usage) if scenario.usage else None
            options = body.get("stream_options")
            include = isinstance(options, dict) and options.get("include_usage") is True
            events = [
                _chat_event(step, data, usage)
                for step, data in ChatStream(chat, include_usage=include).events()
            ]
            whole = chat_body(chat)
        if usage is not None:
            whole["usage"] = usage
        return events, json.dumps(whole, separators=(",", ":")).encode()

    async def _scripted(
        self,
        writer: Writer,
        scenario: Scenario,
        dialect: str,
        stream: bool,
        events: list[Rendered],
        whole: bytes,
        schedule: Schedule,
    ) -> web.StreamResponse:
        """A scenario's failure, for the attempts it fails."""
        name = scenario.name
        if name in ("status", "flap"):
            headers = {} if scenario.retry_after is None else {"Retry-After": _seconds(scenario.retry_after)}
            body = _error_body(dialect, scenario.status, scenario.message)
            return await writer.error(scenario.status, body, "complete", headers)
        if name == "reset":
            if scenario.when == "after-headers":
                await writer.start(200, "text/event-stream" if stream else "application/json", len(whole))
            return writer.reset()
        if name == "silent":
            return await writer.hold(scenario.hold_s, lambda: self._closing, "silent")
        if name == "slow-first-token":
            if stream:
                return await writer.stream(events, schedule)
            return await writer.whole(whole, schedule.at(max(_last_step(events), 0)))
        if not stream:
            return await self._broken_body(writer, scenario, dialect, whole)
        head, tail = _split(events, scenario.after)
        if name == "stream-cut":
            await writer.stream(head, schedule, end=False)
            if scenario.how == "reset":
                await asyncio.sleep(RESET_GRACE_S)  # let the gateway read what was sent before the RST
                return writer.reset()
            return await writer.close("cut")
        if name == "stream-stall":
            await writer.stream(head, schedule, end=False)
            return await writer.hold(scenario.hold_s, lambda: self._closing, "stalled")
        step = head[-1].step if head else -1
        if name == "stream-error-event":
            error = Rendered(step, "end", _error_event(dialect, scenario.message))
            await writer.stream([*head, error], schedule, end=False)
            return await writer.close("error-event")
        malformed = Rendered(step, "end", _malformed(dialect))
        return await writer.stream([*head, malformed, *tail], schedule)

    async def _broken_body(
        self, writer: Writer, scenario: Scenario, dialect: str, whole: bytes
    ) -> web.StreamResponse:
        """A stream scenario on a request that does not stream: the body breaks halfway."""
        if scenario.name == "stream-error-event":
            return await writer.error(500, _error_body(dialect, 500, scenario.message), "complete")
        await writer.start(200, "application/json", len(whole))
        if scenario.name == "malformed-chunk":
            await writer.write(whole[: len(whole) // 2] + b"\n" + MALFORMED_MARK.encode(), token=True)
            return await writer.close("malformed", short=True)
        await writer.write(whole[: len(whole) // 2], token=True)
        if scenario.name == "stream-stall":
            return await writer.hold(scenario.hold_s, lambda: self._closing, "stalled")
        return writer.reset() if scenario.how == "reset" else await writer.close("cut", short=True)


class Writer:
    """Writes one attempt's response and logs every write with its stamp."""

    def __init__(self, request: web.Request, attempt: Attempt) -> None:
        self.request = request
        self.attempt = attempt
        self.response: web.StreamResponse | None = None

    async def start(
        self, status: int, content_type: str, length: int | None = None, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = content_type
        if length is not None:
            response.content_length = length
        elif self.request.version >= (1, 1):
            response.enable_chunked_encoding()
        await response.prepare(self.request)
        self.response = response
        self.attempt.status = status
        self.attempt.response_headers = dict(response.headers)
        self.attempt.t_headers_ns = time.monotonic_ns()
        return response

    async def write(self, data: bytes, *, token: bool) -> None:
        """One write, stamped just before the bytes go to the socket: no client can receive them
        earlier than their stamp (a stamp taken after could come late, when another thread runs)."""
        assert self.response is not None
        t_ns = time.monotonic_ns()
        await self.response.write(data)
        self.attempt.wrote(t_ns, data, token=token)

    async def stream(
        self, events: Iterable[Rendered], schedule: Schedule, *, end: bool = True
    ) -> web.StreamResponse:
        """The events at their deadlines (one write each), then the end of the response if ``end``."""
        if self.response is None:
            await self.start(200, "text/event-stream", headers={"Cache-Control": "no-cache"})
        for event in events:
            await sleep_until(schedule.at(event.step))
            await self.write(event.data, token=event.kind == "content")
        assert self.response is not None
        if end:
            return await self.close("complete")
        return self.response

    async def whole(self, body: bytes, deadline: float) -> web.StreamResponse:
        await sleep_until(deadline)
        await self.start(200, "application/json", len(body))
        await self.write(body, token=True)
        return await self.close("complete")

    async def error(
        self, status: int, body: JSONObject, outcome: str, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        data = json.dumps(body).encode()
        await self.start(status, "application/json", len(data), headers)
        await self.write(data, token=False)
        return await self.close(outcome)

    async def close(self, outcome: str, *, short: bool = False) -> web.StreamResponse:
        """End the response: cleanly (chunked: the last chunk), or ``short`` of its Content-Length."""
        assert self.response is not None
        transport = self.request.transport
        if short and transport is not None:
            transport.close()
        else:
            await self.response.write_eof()
        self.attempt.end(time.monotonic_ns(), outcome)
        return self.response

    def reset(self) -> web.StreamResponse:
        """A TCP reset (SO_LINGER 0, then abort): the gateway reads ECONNRESET."""
        transport = self.request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self.attempt.end(time.monotonic_ns(), "reset")
        return self.response or web.Response(status=500)

    async def hold(self, seconds: float, closing: Callable[[], bool], outcome: str) -> web.StreamResponse:
        """Say nothing until the gateway leaves, ``seconds`` pass or the harness stops; then reset."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not closing():
            transport = self.request.transport
            if transport is None or transport.is_closing():
                self.attempt.end(time.monotonic_ns(), "client-left")
                return self.response or web.Response(status=500)
            await asyncio.sleep(POLL_S)
        self.attempt.end(time.monotonic_ns(), outcome)
        return self.reset()

    def finish(self) -> None:
        """The handler is over (also when cancelled because the gateway left)."""
        self.attempt.end(time.monotonic_ns(), "client-left")


def _split(events: list[Rendered], after: int) -> tuple[list[Rendered], list[Rendered]]:
    """Events up to the ``after``-th content event (before the ending when there are fewer), the rest."""
    seen = 0
    for index, event in enumerate(events):
        if event.kind == "end" or (event.kind == "content" and seen == after):
            return events[:index], events[index:]
        seen += event.kind == "content"
    return events, []


def _last_step(events: list[Rendered]) -> int:
    return max((e.step for e in events), default=0)


def _chat_event(step: int, data: bytes, usage: JSONObject | None) -> Rendered:
    """Classify one rendered chat chunk (and put the scripted usage on the usage chunk)."""
    payload = data.decode()[len("data: ") :].strip()
    if payload == "[DONE]":
        return Rendered(step, "end", data)
    chunk = json.loads(payload)
    choices = chunk.get("choices") or []
    if not choices:
        if usage is not None:
            data = b"data: " + json.dumps({**chunk, "usage": usage}, separators=(",", ":")).encode() + b"\n\n"
        return Rendered(step, "end", data)
    if any(c.get("finish_reason") for c in choices):
        return Rendered(step, "end", data)
    delta = choices[0].get("delta") or {}
    return Rendered(step, "head" if "role" in delta else "content", data)


def _anthropic_event(step: int, data: bytes, usage: JSONObject | None) -> Rendered:
    """Classify one rendered Messages event (and put the scripted usage in message_start/message_delta)."""
    name, _, rest = data.decode().partition("\n")
    payload = json.loads(rest[len("data: ") :])
    kind = payload.get("type")
    if usage is not None and kind in ("message_start", "message_delta"):
        if kind == "message_start":
            payload["message"]["usage"] = {**usage, "output_tokens": 0}
        else:
            payload["usage"] = {"output_tokens": usage["output_tokens"]}
        data = f"{name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
    if kind == "content_block_delta":
        return Rendered(step, "content", data)
    if kind in ("content_block_stop", "message_delta", "message_stop"):
        return Rendered(step, "end", data)
    return Rendered(step, "head", data)


def _seconds(value: float) -> str:
    """Retry-After as delta-seconds (RFC 9110: a whole number; a fraction is rounded up)."""
    whole = int(value)
    return str(whole if whole == value else whole + 1)


def _error_body(dialect: str, status: int, message: str) -> JSONObject:
    """An error as the provider speaks it: OpenAI's envelope, or Anthropic's."""
    if dialect == "anthropic":
        kind = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(
            status, "api_error"
        )
        if status == 400:
            kind = "invalid_request_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = {401: "invalid_request_error", 429: "rate_limit_error", 400: "invalid_request_error"}.get(
        status, "server_error"
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _openai_error(status: int, message: str, code: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}},
        status=status,
    )


def _error_event(dialect: str, message: str) -> bytes:
    """A mid-stream error as the provider sends it."""
    if dialect == "anthropic":
        data = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return f"event: error\ndata: {json.dumps(data)}\n\n".encode()
    data = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return f"data: {json.dumps(data)}\n\n".encode()


def _malformed(dialect: str) -> bytes:
    """A chunk that is not JSON (an unterminated object holding ``MALFORMED_MARK``)."""
    if dialect == "anthropic":
        head = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
        return f"event: content_block_delta\ndata: {head}{MALFORMED_MARK}\n\n".encode()
    head = '{"id":"chatcmpl-bad","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"'
    return f"data: {head}{MALFORMED_MARK}\n\n".encode()


async def start_harness_site(
    config: GatewayConfig, sock: socket.socket, *, log_writes: bool = False
) -> tuple[Harness, web.AppRunner]:
    """Serve the harness on ``sock`` in the running loop (``runner.SiteStarter``)."""
    from gatecheck.reference.runner import SHUTDOWN_GRACE_S

    harness = Harness(config, log_writes=log_writes)
    runner = web.AppRunner(
        harness.app(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        handler_cancellation=True,
    )
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    return harness, runner


def harness_site(*, log_writes: bool = False) -> SiteStarter:
    """The harness as a ``SiteStarter``, logging every token write or not."""
    return functools.partial(start_harness_site, log_writes=log_writes)


def start_harness(config: GatewayConfig | None = None, *, log_writes: bool = False) -> RunningGateway:
    """The harness in a daemon thread (``.url``, ``.config``, ``.stop()``; a context manager)."""
    return start_in_thread(config or harness_config(), site=harness_site(log_writes=log_writes))

"""Proxy mode of the reference gateway (``gatecheck serve --upstream URL``): a faithful forwarder.

Chat completions are forwarded as they came, after the gateway's own steps (auth, validation,
model, context, rate limit); ``/v1/messages`` is translated to the upstream's chat completions and
back (002 finish_reason Mapping: stop -> end_turn, length -> max_tokens). What the client gets
when the upstream fails follows 002 Error Codes:

- a 5xx, a reset or an answer that is not the protocol: 502 UPSTREAM_ERROR, after
  ``upstream_retries`` retries;
- no answer within ``upstream_timeout_s`` (per attempt; also the longest silence between two
  stream reads): 504 GATEWAY_TIMEOUT, not retried (the client has waited long enough);
- a 429: retried after its Retry-After when that is at most ``MAX_RETRY_WAIT_S`` and a retry is
  left, else the client gets 429 with the upstream's Retry-After;
- a 400: the client gets 400 with the upstream's message.

Once a stream has started the status cannot change: a cut, reset, stall, upstream error event or
malformed chunk ends the client's stream with one error event in its dialect and without
``[DONE]`` (``message_stop``), so no SDK takes the truncated answer for a whole one. Events are
relayed as they arrive. Tokens are charged from the upstream's usage, once, whatever the attempts;
a failed request is not charged. The ``proxy-*`` fault modes each break one of these rules.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import web

from gatecheck._headers import parse_retry_after
from gatecheck._types import JSON, JSONObject
from gatecheck.reference import errors as E
from gatecheck.reference.prompts import anthropic_prompt, openai_prompt
from gatecheck.sse import SSEDecoder

if TYPE_CHECKING:
    from gatecheck.reference.server import Gateway

GATEWAY_TIMEOUT = E.ErrorKind(504, "GATEWAY_TIMEOUT", "server_error", "gateway_timeout")
"""002 Error Codes: 504 GATEWAY_TIMEOUT, Request timeout."""

MAX_RETRY_WAIT_S = 1.0
"""The longest upstream Retry-After the proxy waits out itself; a longer one goes to the client."""

RETRY_BACKOFF_S = 0.05
"""Pause before retrying an upstream 5xx or reset."""

STORM_RETRIES = 5
"""Retries of the ``proxy-retry-storm`` fault (each at once)."""

ERROR_BODY_BYTES = 4096
"""How much of an upstream error body is read (its message goes into ours)."""


def _dumps(value: JSON) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Relay(Protocol):
    """Turns the upstream's chat chunks into the client's events (chat as is, or Anthropic's)."""

    def opening(self) -> bytes: ...

    def chunk(self, chunk: JSONObject, data: str) -> bytes: ...

    def done(self) -> bytes: ...

    def error(self, body: JSONObject) -> bytes: ...

    def passthrough(self, data: str) -> bytes: ...

    def completed(self) -> bytes: ...


@dataclass
class ChatRelay:
    """The client speaks chat completions: events go through as they came."""

    usage_dropped: bool
    last: JSONObject = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    choices: set[int] = field(default_factory=set)

    def opening(self) -> bytes:
        return b""

    def chunk(self, chunk: JSONObject, data: str) -> bytes:
        self.last = chunk
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and isinstance(choice.get("index"), int):
                self.choices.add(choice["index"])
                if choice.get("finish_reason"):
                    self.finished.add(choice["index"])
        if self.usage_dropped and chunk.get("usage") is not None:
            if not chunk.get("choices"):
                return b""
            return b"data: " + _dumps({**chunk, "usage": None}) + b"\n\n"
        return f"data: {data}\n\n".encode()

    def done(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, body: JSONObject) -> bytes:
        return b"data: " + _dumps(body) + b"\n\n"

    def passthrough(self, data: str) -> bytes:
        return f"data: {data}\n\n".encode()

    def completed(self) -> bytes:
        """The ``proxy-truncated-success`` fault: a finish chunk for each open choice, then [DONE]."""
        head = {k: self.last.get(k) for k in ("id", "object", "created", "model")}
        chunks = [
            b"data: "
            + _dumps({**head, "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
            + b"\n\n"
            for i in sorted((self.choices or {0}) - self.finished)
        ]
        return b"".join(chunks) + self.done()


STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
"""002 finish_reason Mapping (stop, length); Anthropic's names for the other two."""


@dataclass
class MessagesRelay:
    """The client speaks Anthropic Messages: chat chunks become the Messages event grammar."""

    message_id: str
    model: str
    wrong_for_length: bool
    finish: str | None = None
    usage: JSONObject | None = None

    @staticmethod
    def event(name: str, data: JSONObject) -> bytes:
        return f"event: {name}\ndata: ".encode() + _dumps(data) + b"\n\n"

    def opening(self) -> bytes:
        message: JSONObject = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        return (
            self.event("message_start", {"type": "message_start", "message": message})
            + self.event("content_block_start", block)
            + self.event("ping", {"type": "ping"})
        )

    def chunk(self, chunk: JSONObject, data: str) -> bytes:
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        out = b""
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                out += self.event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            if isinstance(choice.get("finish_reason"), str):
                self.finish = choice["finish_reason"]
        return out

    def done(self) -> bytes:
        usage: JSONObject = {"output_tokens": 0}
        if self.usage is not None:
            usage = {
                "input_tokens": self.usage.get("prompt_tokens"),
                "output_tokens": self.usage.get("completion_tokens") or 0,
            }
        delta = {"stop_reason": stop_reason(self.finish, self.wrong_for_length), "stop_sequence": None}
        return (
            self.event("content_block_stop", {"type": "content_block_stop", "index": 0})
            + self.event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
            + self.event("message_stop", {"type": "message_stop"})
        )

    def error(self, body: JSONObject) -> bytes:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        message = str(error.get("message", "Upstream model service error")) if isinstance(error, dict) else ""
        return self.event("error", E.anthropic_stream_error(message))

    def passthrough(self, data: str) -> bytes:
        return f"event: content_block_delta\ndata: {data}\n\n".encode()

    def completed(self) -> bytes:
        self.finish = self.finish or "stop"
        return self.done()


def stop_reason(finish: str | None, wrong_for_length: bool) -> str:
    """002's mapping (``anthropic-stop-reason-wrong`` breaks it for length, as on the fake model)."""
    if finish == "length" and wrong_for_length:
        return "end_turn"
    return STOP_REASONS.get(finish or "stop", "end_turn")


class UpstreamFailed(Exception):
    """The upstream attempt failed in a way the client must hear about (an ``ApiError`` to send)."""

    def __init__(self, error: E.ApiError, *, retry: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry = retry


class UpstreamProxy:
    """The chat and messages handlers of a gateway in proxy mode."""

    def __init__(self, gateway: Gateway) -> None:
        config = gateway.config
        assert config.upstream is not None
        self.gateway = gateway
        self.url = config.upstream.rstrip("/") + "/v1/chat/completions"
        self.origin = config.upstream.rstrip("/")
        self.faults = config.faults
        self.timeout_s: float | None = (
            None if "proxy-hang-on-silent" in self.faults else config.upstream_timeout_s
        )
        self.retries = STORM_RETRIES if "proxy-retry-storm" in self.faults else config.upstream_retries
        self._headers = {"Content-Type": "application/json"}
        if config.upstream_api_key:
            self._headers["Authorization"] = f"Bearer {config.upstream_api_key}"
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """One client session per gateway, made in its loop; no connection limit (load runs)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True
            )
        return self._session

    async def cleanup(self, _app: web.Application) -> None:
        """Close the upstream connections with the gateway."""
        if self._session is not None:
            await self._session.close()

    # --- the two endpoints ---------------------------------------------------------------------

    async def chat_completions(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/chat/completions, forwarded."""
        gw = self.gateway
        key = gw.authenticate(request)
        body, _ = await gw.accept(request, "openai.chat.request", _as_read)
        model = gw.model_for(body, key, "chat")
        prompt = openai_prompt(body, model)
        gw.check_context(prompt, model)
        headers = self._answer_headers(gw.admit(key, prompt.prompt_tokens), request_id)
        forwarded = (
            {k: v for k, v in body.items() if k != "stop"} if "proxy-param-dropped" in self.faults else body
        )
        relay = ChatRelay(usage_dropped="proxy-usage-dropped" in self.faults)
        if body.get("stream") is True:
            return await self._stream(
                request, request_id, key, prompt.prompt_tokens, forwarded, relay, headers
            )
        answer, _ = await self._charged(key, prompt.prompt_tokens, self._complete(forwarded))
        if relay.usage_dropped:
            answer.pop("usage", None)
        return web.Response(body=_dumps(answer), content_type="application/json", headers=headers)

    async def messages(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/messages, translated to the upstream's chat completions and back."""
        gw = self.gateway
        key = gw.authenticate(request)
        body, _ = await gw.accept(request, "anthropic.messages.request", _as_read)
        model = gw.model_for(body, key, "chat")
        prompt = anthropic_prompt(body)
        gw.check_context(prompt, model)
        headers = self._answer_headers(gw.admit(key, prompt.prompt_tokens), request_id)
        forwarded = chat_request(body)
        wrong = "anthropic-stop-reason-wrong" in self.faults
        message_id = f"msg_{request_id[4:]}"
        if body.get("stream") is True:
            relay = MessagesRelay(message_id, model.id, wrong)
            return await self._stream(
                request, request_id, key, prompt.prompt_tokens, forwarded, relay, headers
            )
        answer, _ = await self._charged(key, prompt.prompt_tokens, self._complete(forwarded))
        message = anthropic_message(answer, message_id, model.id, wrong)
        return web.Response(body=_dumps(message), content_type="application/json", headers=headers)

    def _answer_headers(self, limit_headers: dict[str, str], request_id: str) -> dict[str, str]:
        headers = {**limit_headers, "x-request-id": request_id}
        if "proxy-address-header" in self.faults:
            headers["X-Upstream-Server"] = self.origin
        return headers

    # --- calling the upstream ------------------------------------------------------------------

    async def _charged(
        self, key: str, estimate: int, call: Awaitable[tuple[JSONObject, int]]
    ) -> tuple[JSONObject, int]:
        """Run ``call``; charge the upstream's usage, not the admission estimate (nothing on failure)."""
        try:
            answer, attempts = await call
        except BaseException:
            self.gateway.charge(key, -estimate)
            raise
        self._settle(key, estimate, answer.get("usage"), attempts)
        return answer, attempts

    def _settle(self, key: str, estimate: int, usage: object, attempts: int) -> None:
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        used = total if isinstance(total, int) and total >= 0 else estimate
        if "proxy-double-charge" in self.faults:
            used *= attempts
        self.gateway.charge(key, used - estimate)

    async def _complete(self, body: JSONObject) -> tuple[JSONObject, int]:
        """A non-streamed answer (retried as the policy says); the number of attempts it took."""

        async def read(response: aiohttp.ClientResponse) -> JSONObject:
            try:
                answer = json.loads(await response.read())
            except ValueError:
                answer = None
            if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
                raise UpstreamFailed(
                    self._upstream_error("the upstream's answer is not a chat completion"), retry=True
                )
            return answer

        return await self._attempts(body, read)

    async def _open_stream(self, body: JSONObject) -> tuple[aiohttp.ClientResponse, int]:
        async def keep(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
            return response

        return await self._attempts(body, keep, release=False)

    async def _attempts(
        self,
        body: JSONObject,
        on_ok: Callable[[aiohttp.ClientResponse], Awaitable[Any]],
        *,
        release: bool = True,
    ) -> tuple[Any, int]:
        """Call the upstream until an attempt succeeds or the policy says stop; raise the client's error."""
        attempt = 0
        while True:
            attempt += 1
            deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
            try:
                return await self._within(deadline, self._attempt(body, on_ok, release)), attempt
            except TimeoutError:
                raise E.ApiError(
                    GATEWAY_TIMEOUT, f"The upstream model service did not answer within {self.timeout_s:g}s"
                ) from None
            except UpstreamFailed as failed:
                wait = failed.retry_wait if isinstance(failed, RateLimited) else RETRY_BACKOFF_S
                if not failed.retry or attempt > self.retries:
                    raise failed.error from None
                await asyncio.sleep(wait)

    async def _within(self, deadline: float | None, step: Awaitable[Any]) -> Any:
        if deadline is None:
            return await step
        return await asyncio.wait_for(step, max(deadline - time.monotonic(), 0.0))

    async def _attempt(
        self, body: JSONObject, on_ok: Callable[[aiohttp.ClientResponse], Awaitable[Any]], release: bool
    ) -> Any:
        try:
            response = await self.session().post(self.url, data=_dumps(body), headers=self._headers)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamFailed(
                self._upstream_error(f"the connection to the upstream failed ({type(exc).__name__})"),
                retry=True,
            ) from None
        try:
            if response.status == 200:
                try:
                    return await on_ok(response)
                except (aiohttp.ClientError, ConnectionError) as exc:
                    raise UpstreamFailed(
                        self._upstream_error(f"the upstream's answer was cut ({type(exc).__name__})"),
                        retry=True,
                    ) from None
            raise await self._refusal(response)
        finally:
            if release or response.status != 200:
                response.release()

    async def _refusal(self, response: aiohttp.ClientResponse) -> UpstreamFailed:
        """What the client gets for an upstream answer that is not 200."""
        try:
            text = (await response.content.read(ERROR_BODY_BYTES)).decode("utf-8", "replace")
        except (aiohttp.ClientError, ConnectionError):
            text = ""
        status = response.status
        if status == 429:
            value = response.headers.get("Retry-After")
            wait = parse_retry_after(value)
            headers = (
                {} if value is None or "proxy-retry-after-dropped" in self.faults else {"Retry-After": value}
            )
            error = E.ApiError(
                E.RATE_LIMIT_REQUESTS, "The upstream model service is rate limited", headers=headers
            )
            storm = "proxy-retry-storm" in self.faults
            retry = storm or (wait is not None and wait <= MAX_RETRY_WAIT_S)
            return RateLimited(error, retry=retry, retry_wait=0.0 if storm else (wait or 0.0))
        if status == 400:
            return UpstreamFailed(
                E.ApiError(E.INVALID_PARAMS, f"The upstream refused the request: {_message(text)}"),
                retry=False,
            )
        return UpstreamFailed(
            self._upstream_error(f"the upstream answered HTTP {status}: {_message(text)}"),
            retry=status >= 500,
        )

    def _upstream_error(self, what: str, kind: E.ErrorKind = E.UPSTREAM) -> E.ApiError:
        """502 UPSTREAM_ERROR (or 504), as the faults bend it."""
        message = f"Upstream model service error: {what}"
        if "proxy-key-leaked" in self.faults:
            message += f" (request: POST {self.url} with {self._headers.get('Authorization', 'no key')})"
        if "proxy-500-not-502" in self.faults and kind is E.UPSTREAM:
            kind = E.INTERNAL
        return E.ApiError(kind, message)

    # --- relaying a stream ---------------------------------------------------------------------

    async def _stream(
        self,
        request: web.Request,
        request_id: str,
        key: str,
        estimate: int,
        body: JSONObject,
        relay: Relay,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """Open the upstream stream (errors before it starts are ordinary error responses), then relay it."""
        try:
            upstream, attempts = await self._open_stream(body)
        except BaseException:
            self.gateway.charge(key, -estimate)
            raise
        try:
            response = web.StreamResponse(headers=headers)
            response.content_type = "text/event-stream"
            response.headers["Cache-Control"] = "no-cache"
            if request.version >= (1, 1):
                response.enable_chunked_encoding()
            await response.prepare(request)
            usage = await self._relay(upstream, response, relay, request_id)
            self._settle(key, estimate, usage, attempts)
            await response.write_eof()
        except ConnectionError:
            pass  # the client left; nothing more to send
        finally:
            upstream.release()
        return response

    async def _relay(
        self, upstream: aiohttp.ClientResponse, response: web.StreamResponse, relay: Relay, request_id: str
    ) -> object:
        """Relay events as they arrive; end with [DONE] or with one error event. Returns the usage seen."""
        buffered: list[bytes] | None = [] if "proxy-stream-buffered" in self.faults else None

        async def emit(data: bytes) -> None:
            if not data:
                return
            if buffered is None:
                await response.write(data)
            else:
                buffered.append(data)

        await emit(relay.opening())
        usage: object = None
        ending = await self._pump(upstream, relay, emit)
        if isinstance(ending, _Finished):
            usage = ending.usage
        elif isinstance(ending, _Quiet):
            pass
        elif isinstance(ending, _Cut) and "proxy-truncated-success" in self.faults:
            await emit(relay.completed())
        else:
            kind = GATEWAY_TIMEOUT if isinstance(ending, _Stalled) else E.UPSTREAM
            error = self._upstream_error(ending.what, kind)
            dialect = self.gateway.config.errors
            await emit(relay.error(E.error_body(error, dialect, request_id)))
        if buffered is not None:
            await response.write(b"".join(buffered))
        return usage

    async def _pump(
        self, upstream: aiohttp.ClientResponse, relay: Relay, emit: Callable[[bytes], Awaitable[None]]
    ) -> _Ending:
        decoder = SSEDecoder()
        usage: object = None
        while True:
            try:
                read = upstream.content.readany()
                data = await (read if self.timeout_s is None else asyncio.wait_for(read, self.timeout_s))
            except TimeoutError:
                return _Stalled(f"the upstream stream stalled for {self.timeout_s:g}s")
            except (aiohttp.ClientError, ConnectionError) as exc:
                return _Cut(f"the upstream stream was cut ({type(exc).__name__})")
            if not data:
                return _Cut("the upstream stream ended before data: [DONE]")
            for event in decoder.feed(data, 0):
                if event.data.strip() == "[DONE]":
                    await emit(relay.done())
                    return _Finished(usage)
                try:
                    chunk = json.loads(event.data)
                except ValueError:
                    chunk = None
                if not isinstance(chunk, dict):
                    if "proxy-malformed-passthrough" in self.faults:
                        await emit(relay.passthrough(event.data))
                        continue
                    return _Broken("the upstream sent a chunk that is not JSON")
                if "error" in chunk:
                    if "proxy-error-event-dropped" in self.faults:
                        return _Quiet()
                    return _Broken(f"the upstream reported an error mid-stream: {_message(event.data)}")
                if chunk.get("usage") is not None:
                    usage = chunk["usage"]
                await emit(relay.chunk(chunk, event.data))


class RateLimited(UpstreamFailed):
    """An upstream 429: retried after ``retry_wait`` seconds when ``retry``."""

    def __init__(self, error: E.ApiError, *, retry: bool, retry_wait: float) -> None:
        super().__init__(error, retry=retry)
        self.retry_wait = retry_wait


@dataclass(frozen=True)
class _Finished:
    usage: object


@dataclass(frozen=True)
class _Cut:
    what: str


@dataclass(frozen=True)
class _Stalled:
    what: str


@dataclass(frozen=True)
class _Broken:
    what: str


@dataclass(frozen=True)
class _Quiet:
    """The ``proxy-error-event-dropped`` fault: end without a word."""


_Ending = _Finished | _Cut | _Stalled | _Broken | _Quiet


def _message(text: str) -> str:
    """The upstream error's message (OpenAI's envelope), else the start of its body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:200]
    return text[:200]


def chat_request(body: JSONObject) -> JSONObject:
    """An Anthropic Messages request as the upstream's chat completion request (text content only)."""
    if body.get("tools"):
        raise E.ApiError(
            E.INVALID_PARAMS, "The proxy translates text messages only, not tools", param="tools"
        )
    messages: list[JSON] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system, "system")})
    for index, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            where = f"messages[{index}].content"
            messages.append({"role": message.get("role"), "content": _text(message.get("content"), where)})
    out: JSONObject = {"model": body.get("model"), "messages": messages, "max_tokens": body.get("max_tokens")}
    for name in ("temperature", "top_p"):
        if name in body:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _text(content: JSON, where: str) -> str:
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    if any(not isinstance(b, dict) or b.get("type") != "text" for b in blocks):
        raise E.ApiError(E.INVALID_PARAMS, "The proxy translates text content blocks only", param=where)
    return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))


def anthropic_message(answer: JSONObject, message_id: str, model: str, wrong_for_length: bool) -> JSONObject:
    """A chat completion as an Anthropic message (002 finish_reason Mapping; usage carried over)."""
    choices = answer.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    text = message.get("content") if isinstance(message, dict) else None
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    finish = first.get("finish_reason")
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text if isinstance(text, str) else ""}],
        "stop_reason": stop_reason(finish if isinstance(finish, str) else None, wrong_for_length),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens") or 0,
            "output_tokens": usage.get("completion_tokens") or 0,
        },
    }


def _as_read(body: JSONObject) -> JSONObject:
    """The body as read and validated: the proxy plans nothing before forwarding it."""
    return body

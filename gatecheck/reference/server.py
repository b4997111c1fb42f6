"""The reference gateway's HTTP layer (aiohttp): auth, validation, limits, shaping, faults.

Request order: authenticate (401) -> read JSON (400) -> validate against the request schema
(400) -> model known (404), of the right kind (400), allowed for the key (403) -> context length
(400) -> generate -> rate limit (429; the token cost is known once generated) -> answer. Only
generation endpoints (chat, messages, search, images) are rate-limited.

Latency shaping: token ``k`` of a stream is written at the absolute deadline
``t0 + ttft + k * itl`` (``t0`` = the request's arrival, see ``arrival``), so sleep errors never
accumulate and a busy loop's delay in starting the handler is not added; what
precedes the first token (headers, role chunk, message_start) is sent at once. A non-streaming
answer of N tokens is sent at ``t0 + ttft + (N - 1) * itl``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from aiohttp import web

from gatecheck._types import JSON, JSONObject
from gatecheck.reference import errors as E
from gatecheck.reference.arrival import arrived_at
from gatecheck.reference.catalogue import MIDSTREAM_ERROR_MODEL, MODELS, ModelInfo
from gatecheck.reference.chat import (
    BODY_FAULTS,
    STREAM_FAULTS,
    BodyFaults,
    ChatAnswer,
    ChatStream,
    StreamFaults,
    chat_body,
)
from gatecheck.reference.config import GatewayConfig, KeySpec
from gatecheck.reference.extras import (
    NOT_A_PNG,
    ImageStore,
    balance_body,
    colour_for,
    models_body,
    parse_size,
    png,
)
from gatecheck.reference.fakemodel import QUIRK_FAULTS, Completion, Prompt, Quirks, complete
from gatecheck.reference.faults import switches
from gatecheck.reference.limiter import Decision, RateLimiter
from gatecheck.reference.messages import (
    MESSAGE_FAULTS,
    MessageAnswer,
    MessageFaults,
    MessageStream,
    message_body,
)
from gatecheck.reference.prompts import anthropic_prompt, openai_prompt
from gatecheck.reference.proxy import UpstreamProxy
from gatecheck.reference.streaming import (
    Event,
    Pacer,
    Schedule,
    TimedWriter,
    burst,
    hold_open,
    sleep_until,
)
from gatecheck.reference.validation import RequestValidator
from gatecheck.schemas import SchemaStore, default_store

log = logging.getLogger("gatecheck.reference")

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest accepted request body: room for a prompt beyond a 1M-token context."""

MIDSTREAM_TOKENS = 3
"""Tokens the mid-stream error model streams before its error event."""

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class Gateway:
    """One gateway's state (keys, limiter, usage, images) and its aiohttp application."""

    def __init__(self, config: GatewayConfig, store: SchemaStore | None = None) -> None:
        self.config = config
        faults = config.faults
        self._faults = faults
        self._keys: dict[str, KeySpec] = config.key_specs()
        self._key_names = {key: f"key-{i}" for i, key in enumerate(self._keys, start=1)}
        self._limits = {key: config.limits_for(key) for key in self._keys}
        store = store or default_store()
        lax = "validation-lax" in faults
        self._validators = {
            name: RequestValidator(store, name, lax=lax)
            for name in (
                "openai.chat.request",
                "anthropic.messages.request",
                "gateway.images.request",
                "gateway.search.request",
            )
        }
        for validator in self._validators.values():
            validator.prepare()
        never = "ratelimit-never-429" in faults
        self.limiter = RateLimiter(
            config.window_seconds,
            admit_factor=2 if "ratelimit-over-admit" in faults else 1,
            enforce_rpm=not never,
            enforce_tpm=not (never or "tpm-unenforced" in faults),
        )
        self._tokens_used: dict[str, int] = {}
        self._images = ImageStore()
        self._requests = itertools.count()
        self._closing = False
        self._pacer: Pacer | None = None  # made in the gateway's event loop, on the first stream
        self._body_faults = switches(BodyFaults, BODY_FAULTS, faults)
        self._stream_faults = switches(StreamFaults, STREAM_FAULTS, faults)
        self._message_faults = switches(MessageFaults, MESSAGE_FAULTS, faults)
        self._quirks = switches(Quirks, QUIRK_FAULTS, faults)
        self._stream_quirks = dataclasses.replace(
            self._quirks, prefix_word="Well," if "stream-nondeterministic" in faults else None
        )
        self._proxy = UpstreamProxy(self) if config.upstream else None

    # --- application -------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._route_errors])
        chat, messages = (self.chat_completions, self.messages)
        if self._proxy is not None:  # proxy mode: both forwarded upstream (gatecheck.reference.proxy)
            chat, messages = (self._proxy.chat_completions, self._proxy.messages)
            app.on_cleanup.append(self._proxy.cleanup)
        routes = [
            web.post("/v1/chat/completions", self._endpoint(chat)),
            web.post("/v1/messages", self._endpoint(messages)),
            web.post("/v1/search/completions", self._endpoint(self.search_completions)),
            web.post("/v1/images/generations", self._endpoint(self.images)),
            web.get("/v1/models", self._endpoint(self.models)),
            web.get("/v1/balance", self._endpoint(self.balance)),
            web.get("/v1/images/files/{name}", self._endpoint(self.image_file)),
        ]
        app.add_routes(routes)
        return app

    def close(self) -> None:
        """Tell held-open streams (sse-keep-open) to end now: the gateway is stopping."""
        self._closing = True

    def _endpoint(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Give the handler a request id and turn its ``ApiError`` (or any bug) into an error body."""

        async def run(request: web.Request) -> web.StreamResponse:
            request_id = f"req-{secrets.token_hex(12)}"
            try:
                return await handler(request, request_id)
            except E.ApiError as error:
                return self.error_response(error, request_id)
            except web.HTTPException:
                raise
            except Exception:
                log.exception("reference gateway bug on %s %s", request.method, request.path)
                return self.error_response(E.ApiError(E.INTERNAL, "Internal server error"), request_id)

        return run

    @web.middleware
    async def _route_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Unknown paths, wrong methods and oversized bodies answer in the error dialect too."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            kind = E.ROUTE_ERRORS.get(exc.status)
            if kind is None:
                raise
            return self.error_response(E.ApiError(kind, exc.reason), f"req-{secrets.token_hex(12)}")

    def error_response(self, error: E.ApiError, request_id: str) -> web.Response:
        """The error in the configured dialect (or as plain text under ``error-body-plain-text``)."""
        kind = error.kind
        if "error-5xx-on-invalid" in self._faults and kind.status == 400 and kind is not E.CONTEXT_LENGTH:
            kind = E.INTERNAL
            error = E.ApiError(E.INTERNAL, error.message, error.param, error.headers)
        headers = {**error.headers, "x-request-id": request_id}
        if "error-body-plain-text" in self._faults:
            return web.Response(status=kind.status, text=f"error: {error.message}", headers=headers)
        body = E.error_body(
            error, self.config.errors, request_id, with_request_id="error-no-request-id" not in self._faults
        )
        return _json_response(body, status=kind.status, headers=headers)

    # --- shared request steps ----------------------------------------------------------------

    def authenticate(self, request: web.Request) -> str:
        """The caller's key from ``Authorization: Bearer`` or ``x-api-key``; 401 otherwise."""
        key = ""
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            key = token.strip()
        elif "x-api-key" in request.headers and "auth-reject-x-api-key" not in self._faults:
            key = request.headers["x-api-key"].strip()
        if not key:
            raise E.ApiError(E.UNAUTHORIZED, "Missing API key: send Authorization: Bearer <key> or x-api-key")
        if key not in self._keys and "auth-accept-any-key" not in self._faults:
            raise E.ApiError(E.UNAUTHORIZED, "Invalid API key provided")
        return key

    async def read_json(
        self, request: web.Request, schema: str, defaults: JSONObject | None = None
    ) -> JSONObject:
        """The body parsed and validated against ``schema``; 400 naming the field otherwise.

        ``defaults`` fill missing top-level fields before validation (for a fault mode).
        """
        raw = await request.read()
        try:
            body: JSON = json.loads(raw)
        except ValueError as exc:
            raise E.ApiError(E.INVALID_JSON, f"Malformed JSON body: {exc}") from None
        if defaults and isinstance(body, dict):
            body = {**defaults, **body}
        self._validators[schema].check(body)
        if not isinstance(body, dict):
            raise E.ApiError(E.INVALID_PARAMS, "The request body must be a JSON object", param="body")
        return body

    def model_for(self, body: JSONObject, key: str, kind: str) -> ModelInfo:
        """The requested model: 404 unknown, 400 wrong kind, 403 denied to this key."""
        name = body.get("model")
        model = MODELS.get(name) if isinstance(name, str) else None
        if model is None:
            if "error-unknown-model-400" in self._faults:
                raise E.ApiError(E.INVALID_PARAMS, f"Unknown model {str(name)[:100]!r}", param="model")
            raise E.ApiError(
                E.MODEL_NOT_FOUND,
                f"The model {str(name)[:100]!r} does not exist or is offline",
                param="model",
            )
        if model.kind != kind:
            raise E.ApiError(E.INVALID_PARAMS, f"The model {model.id!r} is not a {kind} model", param="model")
        spec = self._keys.get(key)
        if spec is not None and model.id in spec.denied_models:
            raise E.ApiError(
                E.FORBIDDEN, f"This API key has no access to the model {model.id!r}", param="model"
            )
        return model

    def check_context(self, prompt: Prompt, model: ModelInfo) -> None:
        """400 context_length_exceeded when the prompt alone exceeds the model's context."""
        if prompt.prompt_tokens > model.context_length and "context-length-unchecked" not in self._faults:
            raise E.ApiError(
                E.CONTEXT_LENGTH,
                f"This model's maximum context length is {model.context_length} tokens, however you "
                f"requested {prompt.prompt_tokens} tokens.",
                param="messages",
            )

    def admit(self, key: str, cost: int) -> dict[str, str]:
        """Charge the limiter; the rate-limit headers of the answer, or a 429 ``ApiError``."""
        rpm, tpm = self._limits.get(key) or (self.config.rpm, self.config.tpm)
        decision = self.limiter.check(key, rpm, tpm, cost)
        headers = self._limit_headers(decision)
        if decision.admitted:
            self._tokens_used[key] = self._tokens_used.get(key, 0) + cost
            return headers
        if "ratelimit-no-headers" in self._faults:
            del headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]
        if "ratelimit-retry-after-short" in self._faults:
            headers["Retry-After"] = "1"
        elif "ratelimit-no-retry-after" not in self._faults:
            headers["Retry-After"] = str(decision.retry_after)
        if decision.reason == "tpm":
            message = (
                f"Rate limit exceeded: tokens per minute (TPM) limit {tpm}, used {decision.tokens_used}, "
                f"requested {cost}. Please retry after {decision.retry_after}s."
            )
            raise E.ApiError(E.RATE_LIMIT_TOKENS, message, headers=headers)
        message = (
            f"Rate limit exceeded: requests per minute (RPM) limit {rpm}. "
            f"Please retry after {decision.retry_after}s."
        )
        raise E.ApiError(E.RATE_LIMIT_REQUESTS, message, headers=headers)

    def charge(self, key: str, tokens: int) -> None:
        """Correct what ``admit`` charged ``key`` (proxy mode: the upstream's usage replaces the estimate)."""
        self._tokens_used[key] = self._tokens_used.get(key, 0) + tokens

    def _limit_headers(self, decision: Decision) -> dict[str, str]:
        remaining = decision.remaining
        if "ratelimit-remaining-increases" in self._faults and decision.admitted and decision.used % 2 == 0:
            remaining += 2
        return {
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Limit-Tokens": str(decision.token_limit),
            "X-RateLimit-Remaining-Tokens": str(decision.tokens_remaining),
            "X-RateLimit-Reset": str(decision.retry_after),
        }

    def schedule(self, t0: float) -> Schedule:
        """This request's token deadlines (a seeded generator per request when jitter is on)."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}:{next(self._requests)}") if cfg.jitter_ms else None
        return Schedule(t0, cfg.ttft_ms / 1000, cfg.itl_ms / 1000, cfg.jitter_ms / 1000, rng)

    # --- OpenAI chat and search --------------------------------------------------------------

    async def chat_completions(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/chat/completions, streaming or not."""
        return await self._chat_like(request, request_id, "openai.chat.request")

    async def search_completions(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/search/completions: a chat completion (same model rule, same shape)."""
        return await self._chat_like(request, request_id, "gateway.search.request")

    async def _chat_like(self, request: web.Request, request_id: str, schema: str) -> web.StreamResponse:
        key = self.authenticate(request)
        body = await self.read_json(request, schema)
        t0 = arrived_at(request)  # the read that completed the body
        model = self.model_for(body, key, "chat")
        prompt = openai_prompt(body, model)
        self.check_context(prompt, model)
        stream = body.get("stream") is True
        quirks = self._stream_quirks if stream else self._quirks
        count = 1 if "ignore-n" in self._faults else prompt.n
        choices = tuple(complete(prompt, i, self.config.reply_words, quirks) for i in range(count))
        answer = ChatAnswer(
            id=f"chatcmpl-{request_id[4:]}",
            created=int(time.time()),
            model=model.id,
            prompt_tokens=prompt.prompt_tokens,
            choices=choices,
            reasoning_model=model.reasoning,
        )
        headers = self.admit(key, answer.prompt_tokens + answer.completion_tokens)
        headers["x-request-id"] = request_id
        if schema == "gateway.search.request" and "search-bad-shape" in self._faults and not stream:
            await sleep_until(self._answer_deadline(t0, choices))
            return _json_response({"answer": choices[0].text, "sources": []}, headers=headers)
        if model.id == MIDSTREAM_ERROR_MODEL:
            return await self._midstream_error(request, request_id, t0, answer, stream, headers)
        if not stream:
            await sleep_until(self._answer_deadline(t0, choices))
            return _json_response(chat_body(answer, self._body_faults), headers=headers)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = ChatStream(answer, include_usage=include_usage, faults=self._stream_faults).events()
        return await self.stream(request, t0, events, headers)

    def _answer_deadline(self, t0: float, choices: Iterable[Completion]) -> float:
        steps = max((c.tokens for c in choices), default=0)
        return self.schedule(t0).at(max(steps - 1, 0))

    async def _midstream_error(
        self,
        request: web.Request,
        request_id: str,
        t0: float,
        answer: ChatAnswer,
        stream: bool,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """The trigger model: a 502 when not streaming; a few tokens then an error event otherwise."""
        error = E.ApiError(E.UPSTREAM, "Upstream model service error: the connection to the model was lost")
        if not stream:
            return self.error_response(error, request_id)
        body = E.error_body(error, self.config.errors, request_id)
        tail = (MIDSTREAM_TOKENS - 1, f"data: {json.dumps(body)}\n\n".encode())
        events = ChatStream(answer, include_usage=False, faults=self._stream_faults).events()
        head = itertools.takewhile(lambda e: e[0] < MIDSTREAM_TOKENS, events)
        return await self.stream(request, t0, itertools.chain(head, [tail]), headers)

    # --- Anthropic messages ------------------------------------------------------------------

    async def messages(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/messages (Anthropic-compatible), streaming or not."""
        key = self.authenticate(request)
        optional = "anthropic-max-tokens-optional" in self._faults
        body = await self.read_json(
            request, "anthropic.messages.request", {"max_tokens": 4096} if optional else None
        )
        t0 = arrived_at(request)  # the read that completed the body
        model = self.model_for(body, key, "chat")
        prompt = anthropic_prompt(body)
        self.check_context(prompt, model)
        stream = body.get("stream") is True
        completion = complete(
            prompt, 0, self.config.reply_words, self._stream_quirks if stream else self._quirks
        )
        answer = MessageAnswer(f"msg_{request_id[4:]}", model.id, prompt.prompt_tokens, completion)
        headers = self.admit(key, prompt.prompt_tokens + completion.tokens)
        headers["x-request-id"] = request_id
        midstream = model.id == MIDSTREAM_ERROR_MODEL
        if not stream:
            if midstream:
                return self.error_response(E.ApiError(E.UPSTREAM, "Upstream model service error"), request_id)
            await sleep_until(self._answer_deadline(t0, [completion]))
            return _json_response(message_body(answer, self._message_faults), headers=headers)
        renderer = MessageStream(answer, self._message_faults)
        events: Iterator[Event] = renderer.events()
        if midstream:
            error = renderer.event("error", E.anthropic_stream_error("Upstream model service error"))
            head = itertools.takewhile(lambda e: e[0] < MIDSTREAM_TOKENS, events)
            events = itertools.chain(head, [(MIDSTREAM_TOKENS - 1, error)])
        return await self.stream(request, t0, events, headers)

    # --- auxiliary endpoints -----------------------------------------------------------------

    async def models(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """GET /v1/models."""
        self.authenticate(request)
        hide = "deepseek-v4-flash" if "models-missing-model" in self._faults else None
        return _json_response(models_body(hide=hide), headers={"x-request-id": request_id})

    async def balance(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """GET /v1/balance for the caller's key."""
        key = self.authenticate(request)
        body = balance_body(
            key,
            self._key_names.get(key, "unregistered-key"),
            tokens_used=self._tokens_used.get(key, 0),
            tenant_tokens_used=sum(self._tokens_used.values()),
            balance=self.config.balance,
            daily_budget=self.config.daily_budget,
            arithmetic_fault="balance-arithmetic" in self._faults,
        )
        return _json_response(body, headers={"x-request-id": request_id})

    async def images(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/images/generations: url (served back by this gateway) or b64_json."""
        key = self.authenticate(request)
        body = await self.read_json(request, "gateway.images.request")
        self.model_for(body, key, "image")
        size = parse_size(body.get("size", "1024x1024"))
        if size is None:
            raise E.ApiError(
                E.INVALID_PARAMS, "Invalid parameter 'size': expected WxH, sides 1 to 4096", param="size"
            )
        prompt = str(body.get("prompt") or "")
        count = body.get("n")
        count = min(max(count, 1), 10) if isinstance(count, int) else 1
        headers = self.admit(key, len(prompt.split()))
        headers["x-request-id"] = request_id
        as_b64 = body.get("response_format") == "b64_json"
        data = []
        for index in range(count):
            image = NOT_A_PNG if "images-bad-png" in self._faults else png(*size, colour_for(prompt, index))
            if as_b64:
                data.append({"b64_json": base64.b64encode(image).decode()})
            else:
                image_id = f"img-{secrets.token_hex(8)}"
                self._images.put(image_id, image)
                data.append({"url": f"{request.scheme}://{request.host}/v1/images/files/{image_id}.png"})
        return _json_response({"created": int(time.time()), "data": data}, headers=headers)

    async def image_file(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """GET /v1/images/files/<id>.png: a generated image (no key needed, like a CDN link)."""
        name = request.match_info["name"]
        image = self._images.get(name.removesuffix(".png"))
        if image is None:
            raise E.ApiError(E.NOT_FOUND, f"No image {name[:80]!r}")
        return web.Response(body=image, content_type="image/png", headers={"x-request-id": request_id})

    # --- the stream writer -------------------------------------------------------------------

    async def stream(
        self, request: web.Request, t0: float, events: Iterable[Event], headers: dict[str, str]
    ) -> web.StreamResponse:
        """Write each event at its step's deadline; faults may burst it or hold the connection."""
        response = web.StreamResponse(headers=headers)
        response.content_type = (
            "text/plain" if "sse-wrong-content-type" in self._faults else "text/event-stream"
        )
        response.headers["Cache-Control"] = "no-cache"
        TimedWriter.prepare_chunked(request, response)
        payload = await response.prepare(request)
        if "stream-burst" in self._faults:
            events = burst(events)
        try:
            if payload is not None:
                if self._pacer is None:
                    self._pacer = Pacer(asyncio.get_running_loop())
                writer = TimedWriter(request, response, payload, self.schedule(t0), events, self._pacer)
                await writer.run()
            if "sse-keep-open" in self._faults:
                await hold_open(request, self.config.keep_open_seconds, lambda: self._closing)
            await response.write_eof()
        except ConnectionError:
            log.debug("client went away during a stream")
        return response


def _json_response(
    body: JSONObject, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )

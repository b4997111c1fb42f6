"""The reference gateway's HTTP layer (aiohttp): auth, validation, limits, shaping, faults.

Request order: authenticate (401) -> read the body (413 over the size limit) -> parse JSON (400)
-> validate against the request schema (400) -> model known (404), of the right kind (400),
allowed for the key (403) -> context length (400) -> generate -> rate limit (429; the token cost
is known once generated) -> answer. Only generation endpoints (chat, messages, search, images)
are rate-limited.

Bounded work: from the body to the generated answer, a request is a *plan* (a plain function of
the body, ``_plan_*``). A small body that is valid and cheap to answer is planned on the event
loop; a big body, an invalid one (explaining a violation is slow) or a big answer is planned in
the gateway's worker thread (``bodies.Intake``), and only the plan (the answer, a few flags)
outlives it: the body is dropped before the answer is sent. Connections are timed by ``guard``.

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
from typing import TypeVar

from aiohttp import web

from gatecheck._types import JSON, JSONObject
from gatecheck.reference import errors as E
from gatecheck.reference.bends import bend_chat_request
from gatecheck.reference.bodies import SMALL_BODY_BYTES, Intake, parse_json
from gatecheck.reference.catalogue import MIDSTREAM_ERROR_MODEL, MODELS, ModelInfo
from gatecheck.reference.chat import (
    ANSWER_FAULTS,
    BODY_FAULTS,
    DONE,
    STREAM_FAULTS,
    AnswerFaults,
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
    search_sources,
)
from gatecheck.reference.fakemodel import (
    QUIRK_FAULTS,
    Completion,
    Prompt,
    Quirks,
    complete_all,
    count_tokens,
)
from gatecheck.reference.faults import switches
from gatecheck.reference.guard import ConnectionGuard
from gatecheck.reference.limiter import Decision, RateLimiter
from gatecheck.reference.messages import (
    MESSAGE_FAULTS,
    MessageAnswer,
    MessageFaults,
    MessageStream,
    message_body,
)
from gatecheck.reference.prompts import answer_work, anthropic_prompt, openai_prompt
from gatecheck.reference.proxy import UpstreamProxy
from gatecheck.reference.streaming import (
    Event,
    Pacer,
    Schedule,
    TimedWriter,
    burst,
    cut_off,
    hold_open,
    sleep_until,
)
from gatecheck.reference.validation import RequestValidator
from gatecheck.schemas import SchemaStore, default_store

log = logging.getLogger("gatecheck.reference")

MIDSTREAM_TOKENS = 3
"""Tokens the mid-stream error model (and the stream-error-event/-cut/-stall faults) stream first."""

BROKEN_ENDINGS = {"stream-cut": "cut", "stream-stall": "stall"}
"""Fault -> how a chat stream ends after its first MIDSTREAM_TOKENS tokens (instead of data: [DONE])."""

INLINE_WORK = 8_192
"""Requests whose work is at most this are answered on the event loop (a few milliseconds at most):
``answer_work`` tokens (~0.6 µs each) or, for images, pixels / 1024 (~0.7 µs per 1,024 pixels)."""

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
Plan = TypeVar("Plan")


@dataclasses.dataclass(frozen=True, slots=True)
class ChatPlan:
    """A chat (or search) request, answered: all that outlives its body."""

    answer: ChatAnswer
    stream: bool
    include_usage: bool


@dataclasses.dataclass(frozen=True, slots=True)
class MessagePlan:
    """An Anthropic messages request, answered."""

    answer: MessageAnswer
    stream: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ImagePlan:
    """An images request: its PNGs and the prompt's token cost."""

    images: tuple[bytes, ...]
    cost: int
    as_b64: bool


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
            over_admit="ratelimit-over-admit" in faults,
            under_admit="ratelimit-under-admit" in faults,
            enforce_rpm=not never,
            enforce_tpm=not (never or "tpm-unenforced" in faults),
        )
        self._tokens_used: dict[str, int] = {}
        self._images = ImageStore()
        self._requests = itertools.count()
        self._closing = False
        self._pacer: Pacer | None = None  # made in the gateway's event loop, on the first stream
        self._body_faults = switches(BodyFaults, BODY_FAULTS, faults)
        self._answer_faults = switches(AnswerFaults, ANSWER_FAULTS, faults)
        self._stream_faults = switches(StreamFaults, STREAM_FAULTS, faults)
        self._message_faults = switches(MessageFaults, MESSAGE_FAULTS, faults)
        self._quirks = switches(Quirks, QUIRK_FAULTS, faults)
        self._stream_quirks = dataclasses.replace(
            self._quirks, prefix_word="Well," if "stream-nondeterministic" in faults else None
        )
        self.guard = ConnectionGuard(
            config.header_timeout_seconds, config.idle_timeout_seconds, config.body_timeout_seconds
        )
        self._intake = Intake(config.max_body_bytes)
        self.listener: asyncio.Server | None = None  # set by runner.start_site
        self._proxy = UpstreamProxy(self) if config.upstream else None

    # --- application -------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[self._route_errors])
        chat, messages = (self.chat_completions, self.messages)
        if self._proxy is not None:  # proxy mode: both forwarded upstream (gatecheck.reference.proxy)
            chat, messages = (self._proxy.chat_completions, self._proxy.messages)
            app.on_cleanup.append(self._proxy.cleanup)
        routes = [
            web.post("/v1/chat/completions", self._endpoint(chat)),
            web.post("/v1/messages", self._endpoint(messages, messages=True)),
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

    def shutdown(self) -> None:
        """After the last request: stop the worker thread."""
        self._intake.close()

    async def stop_serving(self, runner: web.AppRunner) -> None:
        """Close the listening socket, end held streams, finish or cancel in-flight requests."""
        if self.listener is not None:
            self.listener.close()
        self.guard.stop()
        self.close()
        await runner.cleanup()
        self.shutdown()

    def _endpoint(
        self, handler: Handler, *, messages: bool = False
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Give the handler a request id and turn its ``ApiError`` (or any bug) into an error body.

        ``messages``: the endpoint is /v1/messages, whose errors are also in Anthropic's envelope.
        """

        async def run(request: web.Request) -> web.StreamResponse:
            request_id = f"req-{secrets.token_hex(12)}"
            try:
                return await handler(request, request_id)
            except E.ApiError as error:
                return self.error_response(error, request_id, messages=messages)
            except web.HTTPException:
                raise
            except ConnectionError:  # the client left (or the guard closed it) mid-request: nobody to tell
                log.debug("client went away during %s %s", request.method, request.path)
                return web.Response(status=400)
            except Exception:
                log.exception("reference gateway bug on %s %s", request.method, request.path)
                bug = E.ApiError(E.INTERNAL, "Internal server error")
                return self.error_response(bug, request_id, messages=messages)

        return run

    @web.middleware
    async def _route_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Unknown paths, wrong methods and oversized bodies answer in the error dialect too.

        Also tells the connection guard that a request is being answered, then that it was.
        """
        connection = self.guard.of(request)
        if connection is not None:
            connection.answering()
        try:
            return await handler(request)
        except web.HTTPException as exc:
            kind = E.ROUTE_ERRORS.get(exc.status)
            if kind is None:
                raise
            return self.error_response(E.ApiError(kind, exc.reason), f"req-{secrets.token_hex(12)}")
        finally:
            if connection is not None:
                connection.idle()

    def error_response(self, error: E.ApiError, request_id: str, *, messages: bool = False) -> web.Response:
        """The error in the configured dialect (or as plain text under ``error-body-plain-text``).

        On /v1/messages (``messages``) the body is also Anthropic's envelope, or OpenAI's alone under
        ``anthropic-error-openai-envelope``.
        """
        kind = error.kind
        if "error-5xx-on-invalid" in self._faults and kind.status == 400 and kind is not E.CONTEXT_LENGTH:
            kind = E.INTERNAL
            error = E.ApiError(E.INTERNAL, error.message, error.param, error.headers)
        headers = {**error.headers, "x-request-id": request_id}
        if "error-body-plain-text" in self._faults:
            return web.Response(status=kind.status, text=f"error: {error.message}", headers=headers)
        with_request_id = "error-no-request-id" not in self._faults
        if messages and "anthropic-error-openai-envelope" in self._faults:
            body = E.error_body(error, "openai", request_id)
        elif messages:
            body = E.messages_error_body(
                error, self.config.errors, request_id, with_request_id=with_request_id
            )
        else:
            body = E.error_body(error, self.config.errors, request_id, with_request_id=with_request_id)
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
        if not key and "auth-key-optional" in self._faults:
            return next(iter(self._keys))
        if not key:
            raise E.ApiError(E.UNAUTHORIZED, "Missing API key: send Authorization: Bearer <key> or x-api-key")
        if key not in self._keys and "auth-accept-any-key" not in self._faults:
            raise E.ApiError(E.UNAUTHORIZED, "Invalid API key provided")
        return key

    async def accept(
        self,
        request: web.Request,
        schema: str,
        plan: Callable[[JSONObject], Plan],
        *,
        work: Callable[[JSONObject], int] | None = None,
        bend: Callable[[JSONObject], JSONObject] | None = None,
    ) -> tuple[Plan, float]:
        """``(plan(body), arrival)`` for the request's body, read, parsed and validated (4xx otherwise).

        On the event loop when the body is small, valid and ``work(body) <= INLINE_WORK``; in the
        worker thread otherwise. ``bend`` rewrites a JSON object body before validation (how a fault
        mode reads requests).
        """
        validator = self._validators[schema]
        async with self._intake.body(request, self.guard.of(request)) as (raw, t0):
            small = len(raw) <= SMALL_BODY_BYTES
            if small:
                body = _bent(parse_json(raw), bend)
                if (
                    isinstance(body, dict)
                    and validator.accepts(body)
                    and (work is None or work(body) <= INLINE_WORK)
                ):
                    return plan(body), t0
            return await self._intake.run(lambda: plan(self.parsed(raw, schema, bend, explain=small))), t0

    def parsed(
        self, raw: bytearray, schema: str, bend: Callable[[JSONObject], JSONObject] | None, *, explain: bool
    ) -> JSONObject:
        """The body parsed and validated against ``schema``; 400 naming the field otherwise."""
        body = _bent(parse_json(raw), bend)
        self._validators[schema].check(body, explain=explain)
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
        limit, remaining = decision.limit, decision.remaining
        if "ratelimit-remaining-increases" in self._faults and decision.admitted and decision.used % 2 == 0:
            remaining += 2
        if "ratelimit-headers-relayed" in self._faults and decision.admitted:
            limit, remaining = 10_000, 9_999
        return {
            "X-RateLimit-Limit": str(limit),
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
        search = schema == "gateway.search.request"
        plan, t0 = await self.accept(
            request,
            schema,
            lambda body: self._plan_chat(body, key, request_id, search=search),
            work=self._work,
            bend=lambda body: bend_chat_request(body, self._faults),
        )
        answer, stream, choices = plan.answer, plan.stream, plan.answer.choices
        headers = self.admit(key, answer.prompt_tokens + answer.completion_tokens)
        headers["x-request-id"] = request_id
        if schema == "gateway.search.request" and "search-bad-shape" in self._faults and not stream:
            await sleep_until(self._answer_deadline(t0, choices))
            return _json_response({"answer": choices[0].text, "sources": []}, headers=headers)
        if answer.model == MIDSTREAM_ERROR_MODEL or (stream and "stream-error-event" in self._faults):
            return await self._midstream_error(request, request_id, t0, answer, stream, headers)
        if not stream:
            await sleep_until(self._answer_deadline(t0, choices))
            return _json_response(chat_body(answer, self._body_faults), headers=headers)
        events: Iterable[Event] = ChatStream(
            answer, include_usage=plan.include_usage, faults=self._stream_faults
        ).events()
        ending = next((end for fault, end in BROKEN_ENDINGS.items() if fault in self._faults), "eof")
        if ending != "eof":
            events = _first_tokens(events)
        return await self.stream(request, t0, events, headers, ending=ending)

    def _plan_chat(self, body: JSONObject, key: str, request_id: str, *, search: bool = False) -> ChatPlan:
        """Model (404/400/403), context (400), the answer (thread-safe: reads only the config).

        A search completion's answer ends with its sources (002: citations included in the answer).
        """
        model = self.model_for(body, key, "chat")
        prompt = openai_prompt(body, model)
        if search and "search-no-citations" not in self._faults:
            prompt = dataclasses.replace(prompt, sources=search_sources(prompt.text))
        self.check_context(prompt, model)
        stream = body.get("stream") is True or ("stream-by-default" in self._faults and "stream" not in body)
        count = 1 if "ignore-n" in self._faults else prompt.n
        quirks = self._stream_quirks if stream else self._quirks
        answer = ChatAnswer(
            id=f"chatcmpl-{request_id[4:]}",
            created=int(time.time()),
            model=model.id,
            prompt_tokens=prompt.prompt_tokens,
            choices=complete_all(prompt, count, self.config.reply_words, quirks),
            reasoning_model=model.reasoning,
            faults=self._answer_faults,
        )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return ChatPlan(answer, stream, include_usage)

    def _work(self, body: JSONObject) -> int:
        return answer_work(body, honour_max_tokens="ignore-max-tokens" not in self._faults)

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
        return await self.stream(request, t0, itertools.chain(_first_tokens(events), [tail]), headers)

    # --- Anthropic messages ------------------------------------------------------------------

    async def messages(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/messages (Anthropic-compatible), streaming or not."""
        key = self.authenticate(request)
        plan, t0 = await self.accept(
            request,
            "anthropic.messages.request",
            lambda body: self._plan_message(body, key, request_id),
            work=self._work,
            bend=self._bend_messages_request,
        )
        answer, stream = plan.answer, plan.stream
        headers = self.admit(key, answer.input_tokens + answer.completion.tokens)
        headers["x-request-id"] = request_id
        midstream = answer.model == MIDSTREAM_ERROR_MODEL
        if not stream:
            if midstream:
                upstream = E.ApiError(E.UPSTREAM, "Upstream model service error")
                return self.error_response(upstream, request_id, messages=True)
            await sleep_until(self._answer_deadline(t0, [answer.completion]))
            return _json_response(message_body(answer, self._message_faults), headers=headers)
        renderer = MessageStream(answer, self._message_faults)
        events: Iterator[Event] = renderer.events()
        if midstream:
            error = renderer.event("error", E.anthropic_stream_error("Upstream model service error"))
            head = itertools.takewhile(lambda e: e[0] < MIDSTREAM_TOKENS, events)
            events = itertools.chain(head, [(MIDSTREAM_TOKENS - 1, error)])
        return await self.stream(request, t0, events, headers)

    def _bend_messages_request(self, body: JSONObject) -> JSONObject:
        """The Messages request as the fault modes read it, before validation (each bends one rule)."""
        faults = self._faults
        bent = dict(body)
        if "anthropic-max-tokens-optional" in faults:
            bent.setdefault("max_tokens", 4096)
        for name, fault in (("temperature", "anthropic-temperature-lax"), ("top_p", "anthropic-top-p-lax")):
            value = bent.get(name)
            if fault in faults and isinstance(value, int | float) and 1 < value <= 2:
                del bent[name]  # accepted as chat completions accept it, and ignored
        if "anthropic-ignore-stop-sequences" in faults:
            bent.pop("stop_sequences", None)
        if "anthropic-system-blocks-rejected" in faults and isinstance(bent.get("system"), list):
            raise E.ApiError(E.INVALID_PARAMS, "Invalid parameter 'system': must be a string", param="system")
        messages = bent.get("messages")
        blocks = isinstance(messages, list) and any(
            isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages
        )
        if "anthropic-content-blocks-rejected" in faults and blocks:
            message = "Invalid parameter 'messages[].content': must be a string"
            raise E.ApiError(E.INVALID_PARAMS, message, param="messages")
        return bent

    def _plan_message(self, body: JSONObject, key: str, request_id: str) -> MessagePlan:
        model = self.model_for(body, key, "chat")
        prompt = anthropic_prompt(body)
        self.check_context(prompt, model)
        stream = body.get("stream") is True
        (completion,) = complete_all(
            prompt, 1, self.config.reply_words, self._stream_quirks if stream else self._quirks
        )
        return MessagePlan(
            MessageAnswer(f"msg_{request_id[4:]}", model.id, prompt.prompt_tokens, completion), stream
        )

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
            currency="USD" if "balance-currency-usd" in self._faults else "CNY",
            reset_past="balance-reset-past" in self._faults,
        )
        return _json_response(body, headers={"x-request-id": request_id})

    async def images(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /v1/images/generations: url (served back by this gateway) or b64_json."""
        key = self.authenticate(request)
        plan, _ = await self.accept(
            request, "gateway.images.request", lambda body: self._plan_images(body, key), work=_image_work
        )
        headers = self.admit(key, plan.cost)
        headers["x-request-id"] = request_id
        data = []
        for image in plan.images:
            if plan.as_b64:
                data.append({"b64_json": base64.b64encode(image).decode()})
            else:
                image_id = f"img-{secrets.token_hex(8)}"
                self._images.put(image_id, image)
                data.append({"url": f"{request.scheme}://{request.host}/v1/images/files/{image_id}.png"})
        return _json_response({"created": int(time.time()), "data": data}, headers=headers)

    def _plan_images(self, body: JSONObject, key: str) -> ImagePlan:
        self.model_for(body, key, "image")
        size = parse_size(
            "1024x1024" if "images-ignore-size" in self._faults else body.get("size", "1024x1024")
        )
        if size is None:
            raise E.ApiError(
                E.INVALID_PARAMS, "Invalid parameter 'size': expected WxH, sides 1 to 4096", param="size"
            )
        prompt = str(body.get("prompt") or "")
        count = 1 if "images-ignore-n" in self._faults else _image_count(body)
        images = tuple(
            NOT_A_PNG if "images-bad-png" in self._faults else png(*size, colour_for(prompt, index))
            for index in range(count)
        )
        as_b64 = (
            body.get("response_format") == "b64_json" and "images-ignore-response-format" not in self._faults
        )
        return ImagePlan(images, count_tokens(prompt), as_b64)

    async def image_file(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """GET /v1/images/files/<id>.png: a generated image (no key needed, like a CDN link)."""
        name = request.match_info["name"]
        image = self._images.get(name.removesuffix(".png"))
        if image is None:
            raise E.ApiError(E.NOT_FOUND, f"No image {name[:80]!r}")
        return web.Response(body=image, content_type="image/png", headers={"x-request-id": request_id})

    # --- the stream writer -------------------------------------------------------------------

    async def stream(
        self,
        request: web.Request,
        t0: float,
        events: Iterable[Event],
        headers: dict[str, str],
        *,
        ending: str = "eof",
    ) -> web.StreamResponse:
        """Write each event at its step's deadline; faults may burst it or hold the connection.

        ``ending``: "eof" ends the response; "cut" closes the connection without ending the body;
        "stall" sends nothing more until the client leaves (at most ``keep_open_seconds``), then cuts.
        """
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
            if "sse-keep-open" in self._faults or ending == "stall":
                await hold_open(request, self.config.keep_open_seconds, lambda: self._closing)
            if ending != "eof":
                cut_off(request)
                return response
            await response.write_eof()
        except ConnectionError:
            log.debug("client went away during a stream")
        return response


def _image_count(body: JSONObject) -> int:
    count = body.get("n")
    return min(max(count, 1), 10) if isinstance(count, int) and not isinstance(count, bool) else 1


def _image_work(body: JSONObject) -> int:
    """Pixels to render / 1024 (a 4096x4096 PNG takes ~12 ms)."""
    width, height = parse_size(body.get("size", "1024x1024")) or (0, 0)
    return _image_count(body) * width * height // 1024


def _bent(body: JSON, bend: Callable[[JSONObject], JSONObject] | None) -> JSON:
    return bend(body) if bend is not None and isinstance(body, dict) else body


def _first_tokens(events: Iterable[Event]) -> Iterator[Event]:
    """The events of a stream's first MIDSTREAM_TOKENS token steps, never its ``data: [DONE]``."""
    return itertools.takewhile(
        lambda e: e[0] < MIDSTREAM_TOKENS and not e[1].startswith(DONE.encode()), events
    )


def _json_response(
    body: JSONObject, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )

"""Behind the gateway: what a gateway does with its upstream's failures (issue 12; 002 Error Codes).

The gateway under test is configured to call the upstream harness (``gatecheck upstream``). Each
check scripts the harness for a nonce it puts in its prompt (prompts cross gateways unchanged,
whatever model aliases they map), sends its request to the gateway, and judges what the client
received against the harness's log of what the gateway sent and got. 002 documents what a client
must see: 502 UPSTREAM_ERROR, 504 GATEWAY_TIMEOUT, a 429 with Retry-After, the finish_reason
mapping of /v1/messages; what the documents leave open (retry pacing, leaks, buffering) is
judgement, and graded so.

A real target needs ``--upstream URL`` (the harness) and declares its upstream timeout and retries
(``upstream_timeout_s``, ``retries``); without ``--upstream`` the area is "not checked". Without a
base URL the embedded pair is started for the session: the harness and the reference gateway
proxying to it (``gatecheck.upstream.embedded``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, NotChecked, check, observation, requires
from gatecheck.checks.context import CheckContext
from gatecheck.checks.wire import as_json, describe, excerpt, header, json_of
from gatecheck.redaction import Secret, redact_bytes

if TYPE_CHECKING:
    from gatecheck.client import Client, Exchange
    from gatecheck.upstream.control import Control

AREA = "upstream"
ERRORS = "002 Error Codes"
MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"

AFTER_CHUNKS = 3
"""Content chunks the harness sends before a stream scenario strikes."""

MARGIN_S = 2.0
"""Slack on the declared timeout before a silent upstream's answer counts as late (at least this,
or half the timeout)."""

RETRY_SLACK_S = 0.05
"""A retry this much earlier than Retry-After still counts as honouring it (clock and stamp error)."""

RELAYED_429_S = 2
"""Retry-After of the upstream 429 that fails every attempt (above the embedded proxy's own wait)."""

RETRIED_429_S = 1
"""Retry-After of the upstream 429 that fails once (a gateway may wait it out and retry)."""

STREAM_ITL_MS = 50.0
STREAM_WORDS = 8
"""The not-buffered check: the harness sends 8 tokens 50 ms apart."""

BUFFERED_FRACTION = 0.5
"""Content reaching the client over less than half the time the harness took to send it is buffered."""

USAGE: dict[str, int] = {"prompt_tokens": 1237, "completion_tokens": 41}
"""Usage figures no gateway could count itself (the Anthropic mapping check; no cache details)."""


def margin(timeout_s: float) -> float:
    """The slack allowed beyond a declared timeout."""
    return max(MARGIN_S, timeout_s / 2)


@dataclass
class Upstream:
    """The area's handles: the gateway under test, the harness's control API and what was seen."""

    client: Client
    control: Control
    key: Secret
    address: str
    model: str
    timeout_s: float
    retries: int
    embedded: bool
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def bound_s(self) -> float:
        """How long a client waits for an answer about a silent upstream."""
        return self.timeout_s + margin(self.timeout_s)

    def script(self, scenario: str, **params: Any) -> str:
        """A nonce the harness answers with ``scenario``."""
        from gatecheck.upstream.control import ControlError

        try:
            return self.control.register(scenario, **params)
        except ControlError as exc:
            raise NotChecked(f"not checked: {exc}") from None

    def attempts(self, nonce: str) -> list[dict[str, Any]]:
        """What the harness logged for ``nonce``."""
        from gatecheck.upstream.control import ControlError

        try:
            return self.control.attempts(nonce)
        except ControlError as exc:
            raise NotChecked(f"not checked: {exc}") from None


@observation(cost=Cost())
def upstream(ctx: CheckContext) -> Upstream:
    """The gateway under test and its harness: the embedded pair, or the target and ``--upstream``."""
    from gatecheck.upstream.control import ControlError
    from gatecheck.upstream.embedded import EMBEDDED_RETRIES, EMBEDDED_TIMEOUT_S

    session = ctx.session
    wire = session.settings.wire
    target = ctx.target
    if session.embedded:
        errors = "openai" if ctx.profile.error_dialect == "openai" else "gateway"
        gateway_url, harness_url = session.resources.enter_context(wire.upstream_pair(lambda: _urls(errors)))
        target = dataclasses.replace(target, base_url=gateway_url)
        timeout_s, retries = EMBEDDED_TIMEOUT_S, EMBEDDED_RETRIES
    elif target.upstream is None:
        raise NotChecked(
            "not checked: no upstream harness: start `gatecheck upstream`, make it the gateway's "
            "provider and pass --upstream URL (docs/behind-the-gateway.md)"
        )
    else:
        harness_url, timeout_s, retries = target.upstream, target.upstream_timeout_s, target.retries
    control = session.resources.enter_context(wire.control(harness_url))
    try:
        info = control.info()
    except ControlError as exc:
        raise NotChecked(f"not checked: {exc}") from None
    key = Secret(str(info.get("key", "")), source="upstream harness key")
    session.secrets = (*session.secrets, key)
    bound = timeout_s + margin(timeout_s)
    area_target = dataclasses.replace(target, read_timeout=bound, total_timeout=bound)
    return Upstream(
        client=session.resources.enter_context(wire.client(area_target)),
        control=control,
        key=key,
        address=urlsplit(harness_url).netloc,
        model=target.upstream_model or target.models.chat,
        timeout_s=timeout_s,
        retries=retries,
        embedded=session.embedded,
    )


@contextmanager
def _urls(errors: str) -> Iterator[tuple[str, str]]:
    """The embedded pair in the ``errors`` dialect: its gateway's URL and its harness's."""
    from gatecheck.upstream.embedded import start_pair

    with start_pair(errors=errors) as pair:
        yield pair.gateway.url, pair.harness.url


# --- sending -------------------------------------------------------------------------------------


def chat_request(up: Upstream, nonce: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    """A short chat request carrying ``nonce`` in its prompt."""
    body = rq.chat_body(
        up.model, rq.user(f"In one short sentence: what is a rainbow? (ref {nonce})"), **extra
    )
    return rq.streaming(body) if stream else body


def messages_request(up: Upstream, nonce: str, *, stream: bool = False) -> dict[str, Any]:
    """A short Messages request carrying ``nonce``."""
    body = rq.anthropic_body(up.model, text=f"In one short sentence: what is a rainbow? (ref {nonce})")
    return {**body, "stream": True} if stream else body


def send(
    ctx: CheckContext, up: Upstream, body: dict[str, Any], *, path: str = CHAT, paced: bool = True
) -> Exchange:
    """POST ``body`` to the gateway under test (Messages with x-api-key, as the Anthropic SDK does)."""
    extra: dict[str, Any] = {}
    if path == MESSAGES:
        extra = {"auth": "x-api-key", "headers": {"anthropic-version": "2023-06-01"}}
    exchange = ctx.send("POST", path, json_body=body, client=up.client, paced=paced, **extra)
    up.exchanges.append(exchange)
    return exchange


def hung(exchange: Exchange) -> bool:
    """The client gave up waiting (its bound is the declared timeout plus the margin)."""
    return exchange.error_kind in ("read_timeout", "total_timeout")


def timeline(attempts: list[dict[str, Any]]) -> str:
    """The attempts as the harness saw them: arrival relative to the first, status, outcome."""
    if not attempts:
        return "the harness received no attempt"
    start = attempts[0]["t_arrival_ns"]
    parts = [
        f"+{(a['t_arrival_ns'] - start) / 1e6:.0f} ms {a.get('status') or '-'} ({a.get('outcome')})"
        for a in attempts
    ]
    return f"{len(attempts)} attempt{'' if len(attempts) == 1 else 's'}: " + ", ".join(parts)


@dataclass(frozen=True)
class StreamEnd:
    """How a client's stream came to its end."""

    exchange: Exchange
    events: int
    done: bool
    error: Any
    text: str

    @property
    def complete_looking(self) -> bool:
        """[DONE] (message_stop) with no error event: what an SDK takes for a whole answer."""
        return self.exchange.status == 200 and self.done and self.error is None

    def describe(self) -> str:
        ex = self.exchange
        if ex.status != 200:
            return describe(ex)
        how = "ended by the server" if ex.server_closed else f"still open ({ex.error})"
        last = excerpt(ex.body[-300:])
        end = "[DONE]/message_stop" if self.done else "no [DONE]/message_stop"
        err = f"error event {as_json(self.error)}" if self.error is not None else "no error event"
        return f"HTTP 200 stream, {self.events} events, {end}, {err}, {how}; last bytes {last}"


def stream_end(exchange: Exchange, path: str = CHAT) -> StreamEnd:
    """Decode a streamed exchange the way the project's assemblers do."""
    if path == MESSAGES:
        from gatecheck.checks.anthropic import decode_messages

        message = decode_messages(exchange)
        text = "".join(str(b.get("text", "")) for b in message.message.content if isinstance(b, dict))
        return StreamEnd(exchange, len(message.events), message.message.stopped, message.message.error, text)
    from gatecheck.checks.stream import decode_capture

    chat = decode_capture(exchange, "reasoning_content")
    text = chat.chat.choices[0].content if 0 in chat.chat.choices else ""
    return StreamEnd(exchange, len(chat.events), chat.chat.done, chat.chat.error, text)


def stream_paths(ctx: CheckContext) -> list[str]:
    """Chat completions, and /v1/messages when the target offers it."""
    return [CHAT, MESSAGES] if ctx.target.claims("anthropic") else [CHAT]


def unended(exchange: Exchange, up: Upstream, what: str) -> Failure:
    return Failure(
        title=f"the client's stream never ended after {what}",
        rule="upstream-stream-unended",
        expected=f"the stream ends (an error event, then the end) within {up.bound_s:g} s "
        f"(upstream_timeout_s {up.timeout_s:g} + {margin(up.timeout_s):g})",
        received=f"still open when the client gave up: {exchange.error}",
        exchange=exchange,
    )


def error_code(ctx: CheckContext, exchange: Exchange, code: str, what: str) -> None:
    """In the gateway dialect, the documented code of a 502/504 (the envelope is the errors area's)."""
    if ctx.profile.error_dialect != "gateway":
        return
    body = json_of(exchange)
    error = body.get("error") if isinstance(body, dict) else None
    got = error.get("code") if isinstance(error, dict) else None
    if got != code:
        ctx.record(
            Failure(
                title=f"the {exchange.status} for {what} does not say {code}",
                rule="upstream-error-code",
                expected=f'error.code "{code}" ({ERRORS})',
                received=f"code {as_json(got)}; {describe(exchange)}",
                exchange=exchange,
            )
        )


# --- failures before the answer ------------------------------------------------------------------

ERROR_SCENARIOS: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("an upstream 500", {"scenario": "status", "status": 500}, False),
    ("an upstream 503", {"scenario": "status", "status": 503}, False),
    ("an upstream 503 to a stream request", {"scenario": "status", "status": 503}, True),
    ("an upstream reset before its headers", {"scenario": "reset", "when": "before-headers"}, False),
    ("an upstream reset after its headers", {"scenario": "reset", "when": "after-headers"}, False),
)


@check(
    AREA,
    f"{ERRORS} (502 UPSTREAM_ERROR: Upstream model service error)",
    cost=Cost(len(ERROR_SCENARIOS), rq.SHORT_TOKENS),
    rules=(
        "upstream-error-status",
        "upstream-error-code",
        "upstream-error-as-200",
        "upstream-success-unseen",
        "upstream-no-answer",
        "upstream-retries-exceeded",
    ),
)
def upstream_error_is_502(ctx: CheckContext, upstream: Upstream) -> None:
    """An upstream 500, 503 or reset reaches the client as 502 UPSTREAM_ERROR, never a 200 or a hang."""
    for what, params, stream in ERROR_SCENARIOS:
        params = dict(params)
        nonce = upstream.script(params.pop("scenario"), **params)
        exchange = send(ctx, upstream, chat_request(upstream, nonce, stream=stream))
        attempts = upstream.attempts(nonce)
        _judge_failure_answer(ctx, upstream, exchange, attempts, what)


def _judge_failure_answer(
    ctx: CheckContext, up: Upstream, exchange: Exchange, attempts: list[dict[str, Any]], what: str
) -> None:
    seen = timeline(attempts)
    if len(attempts) > up.retries + 1:
        ctx.record(
            Failure(
                title=f"the gateway tried the upstream {len(attempts)} times for {what}",
                rule="upstream-retries-exceeded",
                expected=f"at most {up.retries + 1} attempts (the target declares retries = {up.retries})",
                received=seen,
                exchange=exchange,
            )
        )
    if exchange.status == 0:
        ctx.record(
            Failure(
                title=f"no answer for {what}",
                rule="upstream-no-answer",
                expected=f"HTTP 502 within {up.bound_s:g} s",
                received=f"{exchange.error}; harness: {seen}",
                exchange=exchange,
            )
        )
        return
    if exchange.status == 200:
        body = json_of(exchange)
        carries_error = (isinstance(body, dict) and "error" in body) or b'"error"' in exchange.body[:2000]
        ctx.record(
            Failure(
                title=f"{what} was answered 200" + (" carrying an error" if carries_error else ""),
                rule="upstream-error-as-200" if carries_error else "upstream-success-unseen",
                expected="HTTP 502 UPSTREAM_ERROR (the harness failed every attempt)",
                received=f"{describe(exchange)}; harness: {seen}",
                exchange=exchange,
            )
        )
        return
    if exchange.status != 502:
        ctx.record(
            Failure(
                title=f"{what} was answered {exchange.status}, not 502",
                rule="upstream-error-status",
                expected=f"HTTP 502 UPSTREAM_ERROR ({ERRORS}: Upstream model service error)",
                received=f"{describe(exchange)}; harness: {seen}",
                exchange=exchange,
            )
        )
        return
    error_code(ctx, exchange, "UPSTREAM_ERROR", what)


@check(
    AREA,
    f"{ERRORS} (504 GATEWAY_TIMEOUT: Request timeout); the target's upstream_timeout_s",
    cost=Cost(2, rq.SHORT_TOKENS),
    rules=("upstream-timeout-status", "upstream-error-code", "upstream-no-answer"),
)
def upstream_timeout_is_504(ctx: CheckContext, upstream: Upstream) -> None:
    """A silent upstream gets the client 504 GATEWAY_TIMEOUT within the declared timeout plus a margin."""
    for stream in (False, True):
        what = "a silent upstream" + (" (stream request)" if stream else "")
        nonce = upstream.script("silent", hold_s=upstream.bound_s + 5)
        exchange = send(ctx, upstream, chat_request(upstream, nonce, stream=stream))
        if exchange.status == 0 or hung(exchange):
            ctx.record(
                Failure(
                    title=f"no answer within {upstream.bound_s:g} s for {what}",
                    rule="upstream-no-answer",
                    expected=f"HTTP 504 GATEWAY_TIMEOUT within upstream_timeout_s {upstream.timeout_s:g} s "
                    f"+ {margin(upstream.timeout_s):g} s",
                    received=f"{exchange.error}; harness: {timeline(upstream.attempts(nonce))}",
                    exchange=exchange,
                )
            )
        elif exchange.status == 504:
            error_code(ctx, exchange, "GATEWAY_TIMEOUT", what)
        elif not (stream and exchange.status == 200 and stream_end(exchange).error is not None):
            ctx.record(
                Failure(
                    title=f"{what} was answered {exchange.status}, not 504",
                    rule="upstream-timeout-status",
                    expected=f"HTTP 504 GATEWAY_TIMEOUT ({ERRORS}: Request timeout)",
                    received=describe(exchange),
                    exchange=exchange,
                )
            )


# --- failures mid-stream -------------------------------------------------------------------------


@check(
    AREA,
    f"{ERRORS} (502 UPSTREAM_ERROR); 000 Streaming SSE Chunks ([DONE] ends a stream); Anthropic streaming",
    cost=lambda s: Cost(3, rq.SHORT_TOKENS * 3),
    rules=("upstream-truncated-as-complete", "upstream-stream-unended"),
)
@requires("streaming")
def upstream_stream_cut(ctx: CheckContext, upstream: Upstream) -> None:
    """A stream the upstream cut never reaches the client looking complete ([DONE]/message_stop, no error)."""
    cases = [(CHAT, "close"), (CHAT, "reset")] + (
        [(MESSAGES, "close")] if ctx.target.claims("anthropic") else []
    )
    for path, how in cases:
        ending = "TCP reset" if how == "reset" else "closed"
        what = f"an upstream stream cut after {AFTER_CHUNKS} chunks ({ending})"
        nonce = upstream.script("stream-cut", after=AFTER_CHUNKS, how=how)
        body = (messages_request if path == MESSAGES else chat_request)(upstream, nonce, stream=True)
        end = stream_end(send(ctx, upstream, body, path=path), path)
        if hung(end.exchange):
            ctx.record(unended(end.exchange, upstream, what))
        elif end.complete_looking:
            ctx.record(
                Failure(
                    title=f"truncated stream delivered as success on {path}: {what}",
                    rule="upstream-truncated-as-complete",
                    expected="an error event and no [DONE] (message_stop): the answer is incomplete",
                    received=f"{end.describe()}; harness: {timeline(upstream.attempts(nonce))}",
                    exchange=end.exchange,
                )
            )


@check(
    AREA,
    f"{ERRORS} (504 GATEWAY_TIMEOUT); the target's upstream_timeout_s",
    cost=Cost(1, rq.SHORT_TOKENS),
    rules=("upstream-truncated-as-complete", "upstream-stream-unended"),
)
@requires("streaming")
def upstream_stream_stall(ctx: CheckContext, upstream: Upstream) -> None:
    """A stream the upstream stalls ends within the timeout, not looking complete."""
    what = f"an upstream stream stalled after {AFTER_CHUNKS} chunks"
    nonce = upstream.script("stream-stall", after=AFTER_CHUNKS, hold_s=upstream.bound_s + 5)
    end = stream_end(send(ctx, upstream, chat_request(upstream, nonce, stream=True)))
    if hung(end.exchange):
        raise unended(end.exchange, upstream, what)
    if end.complete_looking:
        raise Failure(
            title=f"a stalled stream delivered as success: {what}",
            rule="upstream-truncated-as-complete",
            expected="an error event (504 GATEWAY_TIMEOUT) and no [DONE]",
            received=end.describe(),
            exchange=end.exchange,
        )


@check(
    AREA,
    "the SDKs raise on an error event (OpenAI data: {error}; Anthropic event: error)",
    cost=lambda s: Cost(2, rq.SHORT_TOKENS * 2),
    rules=("upstream-error-event-dropped", "upstream-stream-unended"),
)
@requires("streaming")
def upstream_stream_error_forwarded(ctx: CheckContext, upstream: Upstream) -> None:
    """An upstream mid-stream error reaches the client as an error event in its dialect."""
    for path in stream_paths(ctx):
        what = f"an upstream error event after {AFTER_CHUNKS} chunks"
        nonce = upstream.script("stream-error-event", after=AFTER_CHUNKS)
        body = (messages_request if path == MESSAGES else chat_request)(upstream, nonce, stream=True)
        end = stream_end(send(ctx, upstream, body, path=path), path)
        if hung(end.exchange):
            ctx.record(unended(end.exchange, upstream, what))
        elif end.exchange.status == 200 and end.error is None:
            form = "event: error" if path == MESSAGES else 'data: {"error": ...}'
            ctx.record(
                Failure(
                    title=f"the upstream's mid-stream error was not forwarded on {path}",
                    rule="upstream-error-event-dropped",
                    expected=f"an error event ({form}) where the upstream's came",
                    received=end.describe(),
                    exchange=end.exchange,
                )
            )


@check(
    AREA,
    "000 Streaming SSE Chunks (every data payload is one JSON chunk); the SDKs' stream decoders",
    cost=Cost(1, rq.SHORT_TOKENS),
    rules=("upstream-malformed-relayed", "upstream-malformed-dropped", "upstream-stream-unended"),
)
@requires("streaming")
def upstream_malformed_chunk(ctx: CheckContext, upstream: Upstream) -> None:
    """A malformed upstream chunk is neither passed through as it is nor silently dropped."""
    from gatecheck.upstream.harness import MALFORMED_MARK

    what = "a malformed upstream chunk"
    nonce = upstream.script("malformed-chunk", after=AFTER_CHUNKS)
    end = stream_end(send(ctx, upstream, chat_request(upstream, nonce, stream=True)))
    if hung(end.exchange):
        raise unended(end.exchange, upstream, what)
    relayed = [e for e in end.exchange.events() if MALFORMED_MARK in e.data and not _is_json(e.data)]
    if relayed:
        ctx.record(
            Failure(
                title="a malformed upstream chunk was passed through as it is",
                rule="upstream-malformed-relayed",
                expected="an error event in its place (the client's SDK cannot decode it)",
                received=f"wire {excerpt(relayed[0].raw)}",
                exchange=end.exchange,
            )
        )
    elif end.complete_looking:
        ctx.record(
            Failure(
                title="a malformed upstream chunk was dropped and the stream delivered as whole",
                rule="upstream-malformed-dropped",
                expected="an error event: the client's answer lacks what the chunk carried",
                received=end.describe(),
                exchange=end.exchange,
            )
        )


def _is_json(data: str) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


# --- rate limits ---------------------------------------------------------------------------------


@check(
    AREA,
    "002 Rate Limits (429 with Retry-After); 000 Best Practices (back off on 429)",
    cost=Cost(2, rq.SHORT_TOKENS * 2),
    rules=(
        "upstream-429-status",
        "upstream-retry-after-missing",
        "upstream-retry-after-shorter",
        "upstream-retry-early",
        "upstream-ok-status",
    ),
)
def upstream_rate_limited(ctx: CheckContext, upstream: Upstream) -> None:
    """An upstream 429 reaches the client with its Retry-After, or is retried no earlier than it asked."""
    nonce = upstream.script("status", status=429, retry_after=RELAYED_429_S)
    exchange = send(ctx, upstream, chat_request(upstream, nonce), paced=False)
    attempts = upstream.attempts(nonce)
    _retries_waited(ctx, exchange, attempts, RELAYED_429_S)
    if exchange.status == 429:
        _relayed_retry_after(ctx, exchange, RELAYED_429_S)
    else:
        ctx.record(
            Failure(
                title=f"an upstream 429 (every attempt) reached the client as {exchange.status or 'nothing'}",
                rule="upstream-429-status",
                expected=f"HTTP 429 with Retry-After >= {RELAYED_429_S}",
                received=f"{describe(exchange)}; harness: {timeline(attempts)}",
                exchange=exchange,
            )
        )
    nonce = upstream.script("flap", status=429, retry_after=RETRIED_429_S, times=1)
    exchange = send(ctx, upstream, chat_request(upstream, nonce), paced=False)
    attempts = upstream.attempts(nonce)
    _retries_waited(ctx, exchange, attempts, RETRIED_429_S)
    if exchange.status == 429:
        _relayed_retry_after(ctx, exchange, RETRIED_429_S)
    elif exchange.status != 200:
        ctx.record(
            Failure(
                title=f"an upstream 429 then success reached the client as {exchange.status or 'nothing'}",
                rule="upstream-ok-status",
                expected="HTTP 429 with the upstream's Retry-After, or 200 after a retry",
                received=f"{describe(exchange)}; harness: {timeline(attempts)}",
                exchange=exchange,
            )
        )


def _relayed_retry_after(ctx: CheckContext, exchange: Exchange, upstream_s: int) -> None:
    from gatecheck._headers import parse_retry_after

    value = header(exchange, "retry-after")
    seconds = parse_retry_after(value)
    if seconds is None:
        ctx.record(
            Failure(
                title="the client's 429 has no Retry-After (the upstream's said wait)",
                rule="upstream-retry-after-missing",
                expected=f"Retry-After >= {upstream_s} (002 Rate Limits: a 429 carries Retry-After)",
                received=f"Retry-After {as_json(value)}",
                exchange=exchange,
            )
        )
    elif seconds < upstream_s:
        ctx.record(
            Failure(
                title="the client's Retry-After is shorter than the upstream's",
                rule="upstream-retry-after-shorter",
                expected=f"Retry-After >= {upstream_s} (what the upstream asked)",
                received=f"Retry-After {value}",
                exchange=exchange,
            )
        )


def _retries_waited(
    ctx: CheckContext, exchange: Exchange, attempts: list[dict[str, Any]], wait_s: int
) -> None:
    """Every retry after a 429 came at least ``wait_s`` after that 429 was sent."""
    early = [
        (before, after)
        for before, after in itertools.pairwise(attempts)
        if before.get("status") == 429
        and (after["t_arrival_ns"] - (before.get("t_end_ns") or before["t_arrival_ns"])) / 1e9
        < wait_s - RETRY_SLACK_S
    ]
    if early:
        ctx.record(
            Failure(
                title=f"the gateway retried an upstream 429 before its Retry-After ({len(early)} early)",
                rule="upstream-retry-early",
                expected=f"each retry at least {wait_s} s after the 429 (Retry-After: {wait_s})",
                received=timeline(attempts),
                exchange=exchange,
            )
        )


# --- what reaches the client ---------------------------------------------------------------------


@check(
    AREA,
    "004 Response Fields (usage, when the upstream returns it); 000 Compatibility (upstream format as is)",
    cost=Cost(2, rq.SHORT_TOKENS * 2),
    rules=(
        "upstream-usage-missing",
        "upstream-usage-differs",
        "upstream-usage-details",
        "upstream-ok-status",
    ),
)
def upstream_usage_relayed(ctx: CheckContext, upstream: Upstream) -> None:
    """The client's usage is the upstream's: prompt, completion, total, cached and reasoning details."""
    from gatecheck.upstream.scenarios import DEFAULT_USAGE, openai_usage

    sent = openai_usage(DEFAULT_USAGE)
    for stream in (False, True) if ctx.target.claims("streaming") else (False,):
        nonce = upstream.script("usage", usage=DEFAULT_USAGE)
        exchange = send(ctx, upstream, chat_request(upstream, nonce, stream=stream))
        what = "the streamed answer (include_usage)" if stream else "the answer"
        if exchange.status != 200:
            ctx.record(_not_ok(exchange, upstream, nonce, what))
            continue
        usage = _stream_usage(exchange) if stream else _body_usage(exchange)
        if not isinstance(usage, dict):
            ctx.record(
                Failure(
                    title=f"the upstream's usage did not reach the client in {what}",
                    rule="upstream-usage-missing",
                    expected=f"usage {as_json(sent)} (the upstream returned it)",
                    received=f"usage {as_json(usage)}",
                    exchange=exchange,
                )
            )
            continue
        _compare_usage(ctx, exchange, usage, sent, what)


def _body_usage(exchange: Exchange) -> Any:
    body = json_of(exchange)
    return body.get("usage") if isinstance(body, dict) else None


def _stream_usage(exchange: Exchange) -> Any:
    from gatecheck.checks.stream import decode_capture

    return decode_capture(exchange, "reasoning_content").chat.usage


def _compare_usage(
    ctx: CheckContext, exchange: Exchange, got: dict[str, Any], sent: dict[str, Any], what: str
) -> None:
    main = ("prompt_tokens", "completion_tokens", "total_tokens")
    differs = [k for k in main if got.get(k) != sent[k]]
    if differs:
        ctx.record(
            Failure(
                title=f"the usage in {what} is not the upstream's ({', '.join(differs)})",
                rule="upstream-usage-differs",
                expected=f"{as_json({k: sent[k] for k in main})} as the upstream reported",
                received=f"{as_json({k: got.get(k) for k in main})}",
                exchange=exchange,
            )
        )
    details = [
        (
            f"{group}.{name}",
            sent[group][name],
            (got.get(group) or {}).get(name) if isinstance(got.get(group), dict) else None,
        )
        for group, name in (
            ("prompt_tokens_details", "cached_tokens"),
            ("completion_tokens_details", "reasoning_tokens"),
        )
    ]
    lost = [(path, want, have) for path, want, have in details if have != want]
    if lost:
        ctx.record(
            Failure(
                title=f"usage details the upstream sent are lost or changed in {what}",
                rule="upstream-usage-details",
                expected=", ".join(f"{path} {want}" for path, want, _ in lost),
                received=", ".join(f"{path} {as_json(have)}" for path, _, have in lost),
                exchange=exchange,
            )
        )


def _not_ok(exchange: Exchange, up: Upstream, nonce: str, what: str) -> Failure:
    return Failure(
        title=f"{what} was answered {exchange.status or 'with nothing'} although the upstream answered",
        rule="upstream-ok-status",
        expected="HTTP 200 (the harness answered the gateway 200)",
        received=f"{describe(exchange)}; harness: {timeline(up.attempts(nonce))}",
        exchange=exchange,
    )


@dataclass(frozen=True)
class ParamGroup:
    """Parameters sent together, the capability they need, and how each may legitimately arrive."""

    name: str
    capability: str | None
    params: dict[str, Any]
    stream: bool = False


PARAM_GROUPS: tuple[ParamGroup, ...] = (
    ParamGroup("sampling", None, {"temperature": 0.3, "top_p": 0.9, "max_tokens": 40, "stop": ["zzq"]}),
    ParamGroup("n", "n", {"n": 2}),
    ParamGroup(
        "tools",
        "tools",
        {
            "tools": [rq.WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    ),
    ParamGroup("json mode", "json_mode", {"response_format": {"type": "json_object"}}),
    ParamGroup(
        "streaming",
        "streaming",
        {"max_completion_tokens": 40, "stream_options": {"include_usage": True}},
        True,
    ),
    ParamGroup("reasoning", "reasoning", {"reasoning_effort": "low"}),
)
"""What ``upstream_params_forwarded`` sends, one request per group (a refused group is not judged)."""


@check(
    AREA,
    "000/001 Request Parameters; 000 Compatibility (pass-through: stream_options, tools, response_format)",
    cost=Cost(len(PARAM_GROUPS), rq.SHORT_TOKENS * len(PARAM_GROUPS)),
    rules=("upstream-param-dropped", "upstream-param-changed"),
)
def upstream_params_forwarded(ctx: CheckContext, upstream: Upstream) -> None:
    """The parameters a client sends reach the upstream unchanged (or as documented equivalents)."""
    refused: list[str] = []
    judged = 0
    for group in PARAM_GROUPS:
        if group.capability is not None and not ctx.target.claims(group.capability):
            continue
        nonce = upstream.script("ok")
        body = chat_request(upstream, nonce, **group.params)
        if group.stream:
            body["stream"] = True
        exchange = send(ctx, upstream, body)
        attempts = upstream.attempts(nonce)
        if exchange.status != 200 or not attempts or not isinstance(attempts[-1].get("body"), dict):
            refused.append(f"{group.name} (HTTP {exchange.status or 'none'})")
            continue
        judged += 1
        arrived = attempts[-1]["body"]
        for name, value in group.params.items():
            _compare_param(ctx, exchange, name, value, arrived)
    if not judged:
        raise NotChecked(
            f"not checked: the gateway answered no parameter group with 200: {', '.join(refused)}"
        )


EQUIVALENT = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}
"""OpenAI's two names of the output cap: a gateway may send either."""


def _compare_param(
    ctx: CheckContext, exchange: Exchange, name: str, sent: Any, arrived: dict[str, Any]
) -> None:
    present = name in arrived
    got = arrived.get(name)
    if not present and name in EQUIVALENT and EQUIVALENT[name] in arrived:
        present, got = True, arrived[EQUIVALENT[name]]
    if not present:
        ctx.record(
            Failure(
                title=f"the gateway accepted {name} and did not forward it",
                rule="upstream-param-dropped",
                expected=f"{name} {as_json(sent)} in the request the upstream received",
                received=f"no {name}; the upstream got keys {as_json(sorted(arrived))}",
                exchange=exchange,
            )
        )
    elif not _same(name, sent, got):
        ctx.record(
            Failure(
                title=f"the gateway changed {name} on its way upstream",
                rule="upstream-param-changed",
                expected=f"{name} {as_json(sent)}",
                received=f"the upstream got {name} {as_json(got)}",
                exchange=exchange,
            )
        )


def _same(name: str, sent: Any, got: Any) -> bool:
    if isinstance(sent, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return bool(abs(sent - got) < 1e-9)
    if name == "stop" and isinstance(got, str):
        return bool([got] == sent)
    if name == "stream_options" and isinstance(got, dict):
        return got.get("include_usage") is True
    if name == "tools" and isinstance(got, list):
        return [_function(t) for t in got] == [_function(t) for t in sent]
    return json.dumps(sent, sort_keys=True) == json.dumps(got, sort_keys=True)


def _function(tool: Any) -> Any:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict):
        return tool
    return (function.get("name"), function.get("parameters"))


@check(
    AREA,
    "002 finish_reason Mapping (stop -> end_turn, length -> max_tokens); 002 Messages Streaming, Response",
    cost=Cost(2, rq.SHORT_TOKENS * 2),
    rules=(
        "upstream-anthropic-stop-reason",
        "upstream-anthropic-usage",
        "upstream-anthropic-grammar",
        "upstream-ok-status",
    ),
)
@requires("anthropic")
def upstream_anthropic_mapping(ctx: CheckContext, upstream: Upstream) -> None:
    """/v1/messages before an OpenAI upstream: 002's stop_reason mapping, the event grammar, usage carried."""
    cases = [("length", "max_tokens", False)]
    if ctx.target.claims("streaming"):
        cases.append(("stop", "end_turn", True))
    for finish, expected, stream in cases:
        nonce = upstream.script("usage", usage=USAGE, finish_reason=finish)
        exchange = send(ctx, upstream, messages_request(upstream, nonce, stream=stream), path=MESSAGES)
        what = (
            f"{'a streamed' if stream else 'a'} /v1/messages answer whose upstream finish_reason is {finish}"
        )
        if exchange.status != 200:
            ctx.record(_not_ok(exchange, upstream, nonce, what))
            continue
        stop, usage = _message_outcome(ctx, exchange, stream)
        if stop != expected:
            ctx.record(
                Failure(
                    title=f"stop_reason {as_json(stop)} for {what}",
                    rule="upstream-anthropic-stop-reason",
                    expected=f'stop_reason "{expected}" (002 finish_reason Mapping: {finish} -> {expected})',
                    received=f"stop_reason {as_json(stop)}",
                    exchange=exchange,
                )
            )
        want = {"input_tokens": USAGE["prompt_tokens"], "output_tokens": USAGE["completion_tokens"]}
        have = {k: usage.get(k) for k in want}
        if have != want:
            ctx.record(
                Failure(
                    title=f"the usage of {what} is not the upstream's",
                    rule="upstream-anthropic-usage",
                    expected=f"{as_json(want)} (the upstream's prompt_tokens and completion_tokens)",
                    received=as_json(have),
                    exchange=exchange,
                )
            )


def _message_outcome(ctx: CheckContext, exchange: Exchange, stream: bool) -> tuple[Any, dict[str, Any]]:
    """stop_reason and usage of a Messages answer (stream: assembled; grammar violations recorded)."""
    if not stream:
        body = json_of(exchange)
        body = body if isinstance(body, dict) else {}
        usage = body.get("usage")
        return body.get("stop_reason"), usage if isinstance(usage, dict) else {}
    from gatecheck.checks.anthropic import decode_messages

    capture = decode_messages(exchange)
    if capture.assembled.violations:
        first = capture.assembled.violations[0]
        ctx.record(
            Failure(
                title="the translated Messages stream breaks the event grammar",
                rule="upstream-anthropic-grammar",
                expected="message_start, content blocks (start, deltas, stop), message_delta, message_stop",
                received=f"{first.message}; wire {excerpt(first.raw)}"
                + (
                    f" (and {len(capture.assembled.violations) - 1} more)"
                    if len(capture.assembled.violations) > 1
                    else ""
                ),
                exchange=exchange,
            )
        )
    return capture.message.stop_reason, dict(capture.message.usage)


@check(
    AREA,
    "000 overview (real-time responses); 000 Best Practices (consume the stream promptly)",
    cost=Cost(1, STREAM_WORDS),
    rules=("upstream-stream-buffered", "upstream-ok-status"),
)
@requires("streaming")
def upstream_stream_not_buffered(ctx: CheckContext, upstream: Upstream) -> None:
    """Tokens the upstream sends 50 ms apart reach the client spread out, not in one burst (WARN)."""
    nonce = upstream.script("ok", itl_ms=STREAM_ITL_MS, words=STREAM_WORDS)
    exchange = send(ctx, upstream, chat_request(upstream, nonce, stream=True))
    if exchange.status != 200:
        raise _not_ok(exchange, upstream, nonce, "the stream request")
    from gatecheck.checks.stream import content_times

    received = content_times(exchange.events())
    attempts = upstream.attempts(nonce)
    sent = _content_writes(attempts[-1]) if attempts else []
    if len(received) < 3 or len(sent) < 3:
        raise NotChecked(
            f"not checked: too few content events to judge ({len(received)} received, {len(sent)} sent)"
        )
    sent_span, got_span = sent[-1] - sent[0], received[-1] - received[0]
    if got_span < BUFFERED_FRACTION * sent_span:
        gaps = [f"{(b - a) / 1e6:.1f}" for a, b in itertools.pairwise(received)]
        raise Failure(
            title="the gateway buffered the upstream's stream",
            rule="upstream-stream-buffered",
            expected=f"content spread as sent: {len(sent)} upstream writes over {sent_span / 1e6:.0f} ms",
            received=f"{len(received)} events in {got_span / 1e6:.1f} ms (gaps, ms: {', '.join(gaps)})",
            exchange=exchange,
        )


def _content_writes(attempt: dict[str, Any]) -> list[int]:
    """When the harness wrote each content chunk."""
    times = []
    for t_ns, text in attempt.get("sent") or []:
        if '"content":"' in text and '"content":""' not in text:
            times.append(int(t_ns))
    return times


@check(
    AREA,
    "002 Balance (daily_used: what the key consumed today)",
    cost=Cost(5, rq.SHORT_TOKENS * 2),
    rules=("upstream-double-charge",),
)
@requires("balance")
def upstream_retry_charged_once(ctx: CheckContext, upstream: Upstream) -> None:
    """A request the gateway retried to success is charged once (/v1/balance daily_used)."""
    from gatecheck.upstream.scenarios import DEFAULT_USAGE

    before = _daily_used(ctx, upstream)
    once = upstream.script("usage", usage=DEFAULT_USAGE)
    if send(ctx, upstream, chat_request(upstream, once)).status != 200:
        raise NotChecked("not checked: a plain request through the gateway failed")
    middle = _daily_used(ctx, upstream)
    flap = upstream.script("flap", status=503, times=1, usage=DEFAULT_USAGE)
    exchange = send(ctx, upstream, chat_request(upstream, flap))
    attempts = upstream.attempts(flap)
    if exchange.status != 200 or len(attempts) < 2:
        raise NotChecked(
            f"not checked: the gateway did not retry the failing upstream to success "
            f"(HTTP {exchange.status}; harness: {timeline(attempts)})"
        )
    after = _daily_used(ctx, upstream)
    single, retried = middle - before, after - middle
    if retried > single + 1e-6:
        raise Failure(
            title="a request retried to success was charged more than one answer",
            rule="upstream-double-charge",
            expected=f"daily_used grows by {single:.6f} (what the same answer cost without a retry)",
            received=f"daily_used grew by {retried:.6f}; harness: {timeline(attempts)}",
            exchange=exchange,
        )


def _daily_used(ctx: CheckContext, up: Upstream) -> float:
    exchange = ctx.send("GET", "/v1/balance", client=up.client)
    body = json_of(exchange)
    key = body.get("api_key") if isinstance(body, dict) else None
    used = key.get("daily_used") if isinstance(key, dict) else None
    if exchange.status != 200 or not isinstance(used, int | float):
        raise NotChecked(f"not checked: /v1/balance gave no daily_used ({describe(exchange)})")
    return float(used)


# --- leaks (scan everything the area received, so these run last) --------------------------------


def _with_own_requests(ctx: CheckContext, up: Upstream) -> list[Exchange]:
    """Everything the area's checks received, plus an answer, an upstream error and a reset of its own."""
    for scenario, params in (("ok", {}), ("status", {"status": 500}), ("reset", {})):
        send(ctx, up, chat_request(up, up.script(scenario, **params)))
    return list(up.exchanges)


def _wire(exchange: Exchange) -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in exchange.headers.items())
    return head.encode() + b"\n" + exchange.body


@check(
    AREA,
    "gatecheck judgement: the provider key is the gateway's secret",
    cost=Cost(3, rq.SHORT_TOKENS),
    rules=("upstream-key-leaked",),
)
def upstream_key_not_leaked(ctx: CheckContext, upstream: Upstream) -> None:
    """The key the gateway sends the upstream never appears in any byte a client received (WARN)."""
    exchanges = _with_own_requests(ctx, upstream)
    leaked = [ex for ex in exchanges if redact_bytes(_wire(ex), [upstream.key]) != _wire(ex)]
    if leaked:
        first = leaked[0]
        raise Failure(
            title=f"the upstream's API key reached the client in {len(leaked)} of {len(exchanges)} responses",
            rule="upstream-key-leaked",
            expected="the harness's key nowhere in what clients receive (headers or body)",
            received=f"first: {describe(first)} (the key is masked here)",
            exchange=first,
        )


@check(
    AREA,
    "gatecheck judgement: internal topology stays internal",
    cost=Cost(3, rq.SHORT_TOKENS),
    rules=("upstream-address-in-header",),
)
def upstream_address_hidden(ctx: CheckContext, upstream: Upstream) -> None:
    """No response header reveals the upstream harness's address (WARN)."""
    exchanges = _with_own_requests(ctx, upstream)
    found = [
        (ex, name, value)
        for ex in exchanges
        for name, value in ex.headers.items()
        if upstream.address.lower() in value.lower()
    ]
    if found:
        exchange, name, value = found[0]
        raise Failure(
            title=f"a response header names the upstream's address ({upstream.address})",
            rule="upstream-address-in-header",
            expected="no header carrying the provider's host and port",
            received=f"{name}: {value} (in {len(found)} header values)",
            exchange=exchange,
        )

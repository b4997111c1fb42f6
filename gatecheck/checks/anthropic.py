"""The Anthropic-compatible ``POST /v1/messages`` (002 Messages; the Anthropic Messages protocol)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, check, observation, requires
from gatecheck.checks.context import CheckContext
from gatecheck.checks.wire import (
    Capture,
    as_dict,
    as_json,
    describe,
    excerpt,
    invalid_events,
    is_json,
    json_object,
    json_of,
    report_capture,
    require_status,
    schema_failures,
)

if TYPE_CHECKING:
    from gatecheck.assemble import AssembledMessage
    from gatecheck.client import Exchange

MESSAGES = "/v1/messages"
STREAMING = "002 Messages Streaming; Anthropic streaming"


class MessageCapture(Capture["AssembledMessage"]):
    """One streamed /v1/messages exchange: its events and the assembled message."""

    rule_prefix = "anthropic"

    @property
    def message(self) -> AssembledMessage:
        """The assembled message."""
        return self.assembled


def send_message(ctx: CheckContext, body: dict[str, Any], auth: str = "x-api-key") -> Exchange:
    """POST a Messages request (x-api-key by default, as the Anthropic SDK sends it)."""
    return ctx.send("POST", MESSAGES, json_body=body, auth=auth, headers={"anthropic-version": "2023-06-01"})


def message_body(ctx: CheckContext, exchange: Exchange, what: str) -> dict[str, Any]:
    """The 200 body validated against anthropic.messages.response (schema issues recorded)."""
    require_status(exchange, 200, rule="anthropic-status", what=what)
    body = json_object(exchange, rule="anthropic-not-json", what=what)
    for found in schema_failures(
        ctx.store, "anthropic.messages.response", body, rule="anthropic-schema", what=what, exchange=exchange
    ):
        ctx.record(found)
    return body


def capture_messages(ctx: CheckContext, body: dict[str, Any]) -> MessageCapture:
    """Stream a Messages request and assemble its events."""
    return decode_messages(send_message(ctx, {**body, "stream": True}))


def decode_messages(exchange: Exchange) -> MessageCapture:
    """Decode and assemble a streamed Messages exchange (never raises on bad bytes)."""
    from gatecheck.assemble import MessageStreamAssembler

    return MessageCapture.of(exchange, MessageStreamAssembler())


def opened(ctx: CheckContext, capture_: MessageCapture) -> MessageCapture:
    """The capture when the stream opened with 200, decodes and carried no error event; else a Failure.

    Every event is validated against ``anthropic.stream.event`` on the way (the first invalid one
    is recorded), so each stream check holds the stream to the schema.
    """
    if capture_.exchange.status != 200:
        raise Failure(
            title=f"the Messages stream was answered {capture_.exchange.status or 'with nothing'}",
            rule="anthropic-status",
            expected="HTTP 200 with an event stream",
            received=describe(capture_.exchange),
            exchange=capture_.exchange,
        )
    if capture_.decode_error is not None:
        raise Failure(
            title="the Messages event stream cannot be decoded",
            rule="sse-undecodable",
            expected="a WHATWG event stream",
            received=capture_.decode_error,
            exchange=capture_.exchange,
        )
    if capture_.message.error is not None:
        raw = next((v.raw for v in capture_.violations("error-event")), b"")
        raise Failure(
            title="the Messages stream carried an error event",
            rule="anthropic-error-event",
            expected="a complete stream (a mid-stream upstream error is reported as such)",
            received=f"error {as_json(capture_.message.error)}; wire {excerpt(raw)}",
            exchange=capture_.exchange,
        )
    for invalid in invalid_events(
        ctx.store,
        capture_.events,
        "anthropic.stream.event",
        rule="anthropic-event-schema",
        what="an event",
        exchange=capture_.exchange,
    ):
        ctx.record(invalid)
    return capture_


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def anthropic_answer(ctx: CheckContext) -> Exchange:
    """002's Request Example, sent with x-api-key."""
    return send_message(ctx, rq.anthropic_body(ctx.target.models.chat))


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def anthropic_stream(ctx: CheckContext) -> MessageCapture:
    """002's Request Example, streamed."""
    return capture_messages(ctx, rq.anthropic_body(ctx.target.models.chat))


@check("anthropic", "002 Messages Authentication (x-api-key, recommended)")
@requires("anthropic")
def anthropic_auth_x_api_key(ctx: CheckContext, anthropic_answer: Exchange) -> None:
    """/v1/messages accepts the key in x-api-key."""
    require_status(anthropic_answer, 200, rule="anthropic-auth-x-api-key", what="/v1/messages with x-api-key")


@check("anthropic", "002 Messages Authentication (Authorization: Bearer)", cost=Cost(1, rq.SHORT_TOKENS))
@requires("anthropic")
def anthropic_auth_bearer(ctx: CheckContext) -> None:
    """/v1/messages accepts the key as a Bearer token."""
    exchange = send_message(ctx, rq.anthropic_body(ctx.target.models.chat), auth="bearer")
    require_status(
        exchange, 200, rule="anthropic-auth-bearer", what="/v1/messages with Authorization: Bearer"
    )


@check("anthropic", "002 Messages Parameters (max_tokens: required)", cost=Cost(1, 0))
@requires("anthropic")
def anthropic_max_tokens_required(ctx: CheckContext) -> None:
    """A Messages request without max_tokens gets 400 with a JSON error body."""
    body = rq.anthropic_body(ctx.target.models.chat)
    del body["max_tokens"]
    exchange = send_message(ctx, body)
    if exchange.status != 400:
        raise Failure(
            title=f"a Messages request without max_tokens was answered {exchange.status}",
            rule="anthropic-max-tokens-optional",
            expected="HTTP 400 (max_tokens is required)",
            received=describe(exchange),
            exchange=exchange,
        )
    decoded = json_of(exchange)
    if not (is_json(decoded) and isinstance(decoded, dict) and isinstance(decoded.get("error"), dict)):
        raise Failure(
            title="the 400 for a missing max_tokens has no JSON error object",
            rule="error-body",
            expected='a JSON body with an "error" object (002: all error responses use JSON format)',
            received=describe(exchange),
            exchange=exchange,
        )


@check("anthropic", "002 Messages Response; 002 finish_reason Mapping (end_turn)")
@requires("anthropic")
def anthropic_response_valid(ctx: CheckContext, anthropic_answer: Exchange) -> None:
    """The response is a valid message: role assistant, text content, end_turn below max_tokens."""
    body = message_body(ctx, anthropic_answer, "the Messages response")
    usage = as_dict(body.get("usage"))
    output = usage.get("output_tokens")
    reason = body.get("stop_reason")
    consistent = (reason == "end_turn" and isinstance(output, int) and output < rq.SHORT_TOKENS) or (
        reason == "max_tokens" and output == rq.SHORT_TOKENS
    )
    if body.get("role") != "assistant" or not consistent:
        ctx.record(
            Failure(
                title="the message's role or stop_reason does not match its usage",
                rule="anthropic-stop-reason",
                expected=f"role assistant; end_turn under {rq.SHORT_TOKENS} tokens, or max_tokens at the cap",
                received=f"role {as_json(body.get('role'))}, stop_reason {as_json(reason)}, "
                f"output_tokens {as_json(output)}",
                exchange=anthropic_answer,
            )
        )


@check("anthropic", "002 finish_reason Mapping (max_tokens <-> length)", cost=Cost(1, rq.CUT_TOKENS))
@requires("anthropic")
def anthropic_stop_reason_max_tokens(ctx: CheckContext) -> None:
    """A message cut by max_tokens says stop_reason max_tokens with output_tokens at most max_tokens."""
    exchange = send_message(
        ctx, rq.anthropic_body(ctx.target.models.chat, max_tokens=rq.CUT_TOKENS, text=rq.COUNT_PROMPT)
    )
    body = message_body(ctx, exchange, "the Messages response cut by max_tokens")
    output = (body.get("usage") or {}).get("output_tokens") if isinstance(body.get("usage"), dict) else None
    if body.get("stop_reason") != "max_tokens" or not isinstance(output, int) or output > rq.CUT_TOKENS:
        raise Failure(
            title="a message cut by max_tokens does not say so",
            rule="anthropic-stop-reason-max-tokens",
            expected=f'stop_reason "max_tokens", output_tokens <= {rq.CUT_TOKENS} (the count needs 20+)',
            received=f"stop_reason {as_json(body.get('stop_reason'))}, output_tokens {as_json(output)}",
            exchange=exchange,
        )


@check("anthropic", f"{STREAMING} (event payloads)", markers=("stream",))
@requires("anthropic", "streaming")
def anthropic_stream_events_valid(ctx: CheckContext, anthropic_stream: MessageCapture) -> None:
    """Every event's data is JSON valid against anthropic.stream.event."""
    capture_ = opened(ctx, anthropic_stream)
    report_capture(
        ctx,
        capture_,
        ("invalid-json", "not-an-object", "malformed"),
        "an event's data is not a JSON object",
        "JSON object data in every event",
    )
    report_capture(
        ctx, capture_, ("unknown-event",), "an event of an unknown type", "the documented event types"
    )


@check("anthropic", f"{STREAMING} (message_start first, message_stop last)", markers=("stream",))
@requires("anthropic", "streaming")
def anthropic_stream_order(ctx: CheckContext, anthropic_stream: MessageCapture) -> None:
    """message_start comes first and once; message_stop comes last."""
    report_capture(
        ctx,
        opened(ctx, anthropic_stream),
        (
            "message-start-not-first",
            "message-start-repeated",
            "message-start-missing",
            "message-stop-not-last",
            "message-stop-missing",
        ),
        "the stream does not run message_start ... message_stop",
        "message_start first (once), message_stop last (pings allowed anywhere)",
    )


@check("anthropic", f"{STREAMING} (the event: name equals data.type)", markers=("stream",))
@requires("anthropic", "streaming")
def anthropic_stream_event_names(ctx: CheckContext, anthropic_stream: MessageCapture) -> None:
    """Each event's SSE ``event:`` name equals its ``data.type``."""
    report_capture(
        ctx,
        opened(ctx, anthropic_stream),
        ("event-name-mismatch",),
        "an event's name differs from its data.type",
        "event: <name> equal to data.type",
    )


@check(
    "anthropic",
    f"{STREAMING} (content_block_start -> content_block_delta* -> content_block_stop)",
    markers=("stream",),
)
@requires("anthropic", "streaming")
def anthropic_stream_blocks(ctx: CheckContext, anthropic_stream: MessageCapture) -> None:
    """Each block runs start, deltas of its own type, stop, with one index; indices count 0, 1, 2..."""
    report_capture(
        ctx,
        opened(ctx, anthropic_stream),
        (
            "block-start-repeated",
            "block-delta-without-start",
            "block-delta-after-stop",
            "block-stop-without-start",
            "block-not-stopped",
            "block-stop-repeated",
            "block-index-gap",
            "delta-type-mismatch",
            "tool-input-invalid",
        ),
        "a content block breaks the start/delta/stop grammar",
        "start -> delta* -> stop per block, deltas matching the block type (text -> text_delta)",
    )


@check("anthropic", f"{STREAMING} (message_delta: stop_reason, usage)", markers=("stream",))
@requires("anthropic", "streaming")
def anthropic_stream_message_delta(ctx: CheckContext, anthropic_stream: MessageCapture) -> None:
    """message_delta carries stop_reason and usage, and output_tokens never decreases."""
    report_capture(
        ctx,
        opened(ctx, anthropic_stream),
        ("message-delta-missing", "stop-reason-missing", "usage-decreased"),
        "message_delta is missing or its usage decreases",
        "a message_delta with stop_reason and usage.output_tokens that never decreases",
    )

"""Non-streaming chat completions (001, 002; OpenAI): the body, usage and every honoured parameter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, check, observation, requires
from gatecheck.checks.context import CheckContext
from gatecheck.checks.wire import (
    are_numbers,
    as_dict,
    as_json,
    describe,
    excerpt,
    json_object,
    require_status,
    schema_failures,
)

if TYPE_CHECKING:
    from gatecheck.client import Exchange

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
"""001 Field Reference: choices[].finish_reason."""

FIELD_REF = "001 Field Reference"
PARAMS = "000/001 Request Parameters"

_EARLIEST_CREATED = 1_000_000_000  # 2001: anything earlier is not a Unix timestamp in seconds
_CLOCK_SKEW_S = 86_400


def completion(exchange: Exchange, what: str = "the chat completion") -> dict[str, Any]:
    """The 200 JSON object body of a chat completion, or a Failure saying what came instead."""
    require_status(exchange, 200, rule="chat-status", what=what)
    return json_object(exchange, rule="chat-not-json", what=what)


def validated_completion(
    ctx: CheckContext, exchange: Exchange, what: str = "the chat completion"
) -> dict[str, Any]:
    """``completion`` plus schema validation (recorded, not fatal: the other rules still get checked)."""
    body = completion(exchange, what)
    for found in schema_failures(
        ctx.store, "openai.chat.response", body, rule="chat-schema", what=what, exchange=exchange
    ):
        ctx.record(found)
    return body


def first_message(body: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
    """choices[0].message, or a Failure when the body has none."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Failure(
            title="the completion has no choices",
            rule="chat-choices",
            expected="choices: a non-empty array",
            received=describe(exchange),
            exchange=exchange,
        )
    message = choices[0].get("message")
    return message if isinstance(message, dict) else {}


def usage_of(body: dict[str, Any]) -> dict[str, Any]:
    """The usage object, or an empty dict."""
    usage = body.get("usage")
    return usage if isinstance(usage, dict) else {}


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def basic_answer(ctx: CheckContext) -> Exchange:
    """A plain question answered without streaming, at temperature 0."""
    return ctx.chat(rq.basic(ctx.target.models.chat))


@check("nonstream", f"{FIELD_REF} (Successful Response); OpenAI")
def nonstream_schema(ctx: CheckContext, basic_answer: Exchange) -> None:
    """A non-streaming answer is a valid chat.completion body."""
    validated_completion(ctx, basic_answer)


@dataclass(frozen=True)
class FieldRule:
    """One top-level field of a completion and what it must hold."""

    field: str
    ok: Callable[[Any], bool]
    rule: str
    expected: str


def _non_empty_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


IDENTITY = (
    FieldRule(
        "object",
        lambda v: v == "chat.completion",
        rule="nonstream-object-wrong",
        expected='"chat.completion"',
    ),
    FieldRule("id", _non_empty_text, rule="nonstream-id", expected="a non-empty string"),
    FieldRule(
        "created",
        lambda v: _plausible_time(v),
        rule="nonstream-created",
        expected="integer seconds since 1970, not in the future",
    ),
    FieldRule("model", _non_empty_text, rule="nonstream-model", expected="the model id actually used"),
)
"""001 Field Reference: the identity fields of a chat.completion."""


@check("nonstream", f"{FIELD_REF}: id, object, created, model")
def nonstream_identity(ctx: CheckContext, basic_answer: Exchange) -> None:
    """id, object "chat.completion", created (a Unix time) and model are present and right."""
    body = validated_completion(ctx, basic_answer)
    for spec in IDENTITY:
        value = body.get(spec.field)
        if not spec.ok(value):
            ctx.record(
                Failure(
                    title=f"{spec.field} is missing or wrong",
                    rule=spec.rule,
                    expected=spec.expected,
                    received=as_json(value),
                    exchange=basic_answer,
                )
            )


@check("nonstream", f"{FIELD_REF}: choices[].index, choices[].message.role")
def nonstream_choices(ctx: CheckContext, basic_answer: Exchange) -> None:
    """choices are indexed 0..n-1 and every message has role assistant."""
    body = validated_completion(ctx, basic_answer)
    _check_choices(ctx, body, 1, basic_answer)


@check("nonstream", f"{FIELD_REF}: choices[].finish_reason")
def nonstream_finish_reason(ctx: CheckContext, basic_answer: Exchange) -> None:
    """finish_reason is one of the documented values and agrees with what happened."""
    body = validated_completion(ctx, basic_answer)
    usage = usage_of(body)
    for choice in _choices(body):
        _check_finish_reason(ctx, choice, usage, rq.SHORT_TOKENS, basic_answer)


@check("nonstream", f"{FIELD_REF}: usage.prompt_tokens, completion_tokens, total_tokens")
def nonstream_usage(ctx: CheckContext, basic_answer: Exchange) -> None:
    """usage is present and total_tokens = prompt_tokens + completion_tokens."""
    check_usage(ctx, usage_of(validated_completion(ctx, basic_answer)), basic_answer, "nonstream-usage")


@check("nonstream", "001 Multi-Turn Conversation; 000 Message Roles", cost=Cost(1, rq.SHORT_TOKENS))
def nonstream_multi_turn(ctx: CheckContext) -> None:
    """system, user and assistant turns are accepted in one conversation."""
    exchange = ctx.chat(rq.multi_turn(ctx.target.models.chat))
    body = validated_completion(ctx, exchange, "the multi-turn completion")
    _check_choices(ctx, body, 1, exchange)


@check(
    "nonstream",
    "001 Compatibility (n > 1 candidates); 000 Request Parameters (n)",
    cost=Cost(1, 2 * rq.SHORT_TOKENS),
)
@requires("n")
def nonstream_n(ctx: CheckContext) -> None:
    """n=2 returns two choices indexed 0 and 1."""
    exchange = ctx.chat(rq.basic(ctx.target.models.chat, n=2))
    body = validated_completion(ctx, exchange, "the n=2 completion")
    _check_choices(ctx, body, 2, exchange)


@check("nonstream", f"{PARAMS} (stop); OpenAI", cost=Cost(1, rq.SHORT_TOKENS))
def nonstream_stop(ctx: CheckContext) -> None:
    """Generation stops before the stop sequence, which is not returned; finish_reason stop."""
    exchange = ctx.chat(rq.counting(ctx.target.models.chat, stop=[rq.STOP_SEQUENCE]))
    body = validated_completion(ctx, exchange, "the completion with stop")
    message = first_message(body, exchange)
    content = message.get("content") or ""
    if rq.STOP_SEQUENCE in content:
        ctx.record(
            Failure(
                title=f"the stop sequence {as_json(rq.STOP_SEQUENCE)} appears in the content",
                rule="stop-ignored",
                expected=f"content ending before {as_json(rq.STOP_SEQUENCE)} (the stop text is not returned)",
                received=f"content {excerpt(content)}",
                exchange=exchange,
            )
        )
    reason = _choices(body)[0].get("finish_reason")
    if reason != "stop":
        ctx.record(
            Failure(
                title=f"finish_reason is {as_json(reason)} after a stop sequence",
                rule="stop-finish-reason",
                expected='finish_reason "stop"',
                received=f"finish_reason {as_json(reason)}, content {excerpt(content)}",
                exchange=exchange,
            )
        )


@check(
    "nonstream",
    f"{PARAMS} (max_tokens, max_completion_tokens); 004 Request Body",
    cost=Cost(2, 2 * rq.CUT_TOKENS),
)
def nonstream_max_tokens(ctx: CheckContext) -> None:
    """max_tokens and max_completion_tokens cap completion_tokens and give finish_reason length."""
    for field in ("max_tokens", "max_completion_tokens"):
        body = rq.counting(ctx.target.models.chat)
        del body["max_tokens"]
        body[field] = rq.CUT_TOKENS
        exchange = ctx.chat(body)
        answer = validated_completion(ctx, exchange, f"the completion with {field}={rq.CUT_TOKENS}")
        used = usage_of(answer).get("completion_tokens")
        reason = _choices(answer)[0].get("finish_reason") if _choices(answer) else None
        if not isinstance(used, int) or used > rq.CUT_TOKENS or reason != "length":
            ctx.record(
                Failure(
                    title=f"{field}={rq.CUT_TOKENS} was not honoured",
                    rule="max-tokens-ignored",
                    expected=f'completion_tokens <= {rq.CUT_TOKENS}, finish_reason "length" (20 asked for)',
                    received=f"completion_tokens {as_json(used)}, finish_reason {as_json(reason)}",
                    exchange=exchange,
                )
            )


def check_usage(ctx: CheckContext, usage: dict[str, Any], exchange: Exchange, rule: str) -> None:
    """Record failures unless usage has integer counts and total = prompt + completion."""
    tokens = [usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
    if not are_numbers(tokens, counts=True):
        ctx.record(
            Failure(
                title="usage is missing or incomplete",
                rule=f"{rule}-missing",
                expected="usage with integer prompt_tokens, completion_tokens and total_tokens",
                received=f"usage {as_json(usage) if usage else 'absent'}",
                exchange=exchange,
            )
        )
        return
    prompt, done, total = tokens
    if total != prompt + done:
        ctx.record(
            Failure(
                title="usage.total_tokens is not prompt_tokens + completion_tokens",
                rule=f"{rule}-total",
                expected=f"total_tokens = {prompt} + {done} = {prompt + done}",
                received=f"total_tokens {as_json(total)}",
                exchange=exchange,
            )
        )


def _choices(body: dict[str, Any]) -> list[dict[str, Any]]:
    choices = body.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def _check_choices(ctx: CheckContext, body: dict[str, Any], n: int, exchange: Exchange) -> None:
    choices = _choices(body)
    indices = sorted(c["index"] for c in choices if isinstance(c.get("index"), int))
    if indices != list(range(n)) or len(choices) != n:
        ctx.record(
            Failure(
                title=f"expected {n} choice(s) indexed 0..{n - 1}",
                rule="choices-indexed",
                expected=f"{n} choices with index {list(range(n))}",
                received=f"{len(choices)} choices with index {as_json([c.get('index') for c in choices])}",
                exchange=exchange,
            )
        )
    for choice in choices:
        role = as_dict(choice.get("message")).get("role")
        if role != "assistant":
            ctx.record(
                Failure(
                    title=f"choice {choice.get('index')} has message.role {as_json(role)}",
                    rule="message-role",
                    expected='message.role "assistant"',
                    received=f"message.role {as_json(role)}",
                    exchange=exchange,
                )
            )


def _check_finish_reason(
    ctx: CheckContext, choice: dict[str, Any], usage: dict[str, Any], max_tokens: int, exchange: Exchange
) -> None:
    reason = choice.get("finish_reason")
    message = as_dict(choice.get("message"))
    if reason not in FINISH_REASONS:
        ctx.record(
            Failure(
                title=f"finish_reason {as_json(reason)} is not a documented value",
                rule="finish-reason-enum",
                expected=f"one of {', '.join(FINISH_REASONS)}",
                received=f"finish_reason {as_json(reason)}",
                exchange=exchange,
            )
        )
        return
    has_calls = bool(message.get("tool_calls"))
    used = usage.get("completion_tokens")
    inconsistent = (reason == "tool_calls") != has_calls or (
        reason == "length" and isinstance(used, int) and used < max_tokens
    )
    if inconsistent:
        ctx.record(
            Failure(
                title=f"finish_reason {as_json(reason)} does not match what happened",
                rule="finish-reason-consistent",
                expected=f"tool_calls exactly with tool calls; length only at max_tokens={max_tokens}",
                received=f"finish_reason {as_json(reason)}, tool calls: {as_json(has_calls)}, "
                f"completion_tokens {as_json(used)}",
                exchange=exchange,
            )
        )


def _plausible_time(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and _EARLIEST_CREATED <= value <= time.time() + _CLOCK_SKEW_S
    )

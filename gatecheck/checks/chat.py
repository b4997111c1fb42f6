"""Non-streaming chat completions (001, 002; OpenAI): the body, usage and every honoured parameter."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatecheck import clock
from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, NotChecked, check, observation, owned_elsewhere, requires
from gatecheck.checks.context import CheckContext
from gatecheck.checks.wire import (
    are_numbers,
    as_dict,
    as_json,
    describe,
    excerpt,
    header,
    is_json,
    json_object,
    json_of,
    require_status,
    schema_failures,
)

if TYPE_CHECKING:
    from gatecheck.client import Exchange

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
"""001 Field Reference: choices[].finish_reason."""

FIELD_REF = "001 Field Reference"
BASIC_OWNER = "nonstream_schema"
"""The check that reports what makes the shared basic answer unreadable (a 500, a body not JSON)."""
DEFAULT_OWNER = "nonstream_default"
"""The check that reports an event stream sent back to a request without ``stream``."""
REASONING_OWNER = "nonstream_reasoning_effort"
"""The check that reports what makes the shared reasoning answer unreadable (reasoning_effort refused...)."""
PARAMS = "000/001 Request Parameters"

_EARLIEST_CREATED = 1_000_000_000  # 2001: anything earlier is not a Unix timestamp in seconds
_CLOCK_SKEW_S = 86_400


def completion(exchange: Exchange, what: str = "the chat completion") -> dict[str, Any]:
    """The 200 JSON object body of a chat completion, or a Failure saying what came instead.

    An event stream answering a request without ``stream`` is ``nonstream_default``'s finding: every
    other reader is "not checked".
    """
    streamed = streamed_by_default(exchange)
    if streamed is not None:
        raise NotChecked(
            f"not checked: {what} was answered with an event stream ({DEFAULT_OWNER} reports it)"
        )
    require_status(exchange, 200, rule="chat-status", what=what)
    return json_object(exchange, rule="chat-not-json", what=what)


def streamed_by_default(exchange: Exchange) -> Failure | None:
    """The finding when a request that did not ask to stream got an event stream back, else None.

    An event stream: a body that is not JSON and is served as text/event-stream or starts like one.
    """
    if exchange.status != 200 or is_json(json_of(exchange)):
        return None
    ctype = (header(exchange, "content-type") or "").split(";")[0].strip().lower()
    if ctype != "text/event-stream" and not exchange.body.lstrip().startswith((b"data:", b"event:")):
        return None
    return Failure(
        title="a request without stream was answered with an event stream",
        rule="stream-default-off",
        expected="one JSON chat.completion (004: a request without stream is handled as non-streaming; "
        "000/001/002: stream defaults to false)",
        received=describe(exchange),
        exchange=exchange,
    )


def validated_completion(
    ctx: CheckContext, exchange: Exchange, what: str = "the chat completion", observed: str = ""
) -> dict[str, Any]:
    """``completion`` plus schema validation, recorded (not fatal): for the check that owns the schema.

    A constraint another check of the same ``observed`` answer owns (its ``x-rule``) is its finding.
    """
    body = completion(exchange, what)
    elsewhere = owned_elsewhere(ctx.check.id, observed) if observed else set()
    for found in schema_failures(
        ctx.store,
        "openai.chat.response",
        body,
        rule="chat-schema",
        what=what,
        exchange=exchange,
        elsewhere=elsewhere,
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


def shared_body(ctx: CheckContext, exchange: Exchange, what: str, owner: str = BASIC_OWNER) -> dict[str, Any]:
    """The body of an answer several checks read; a 500 or a body that is not JSON is ``owner``'s finding.

    One root cause, one finding: ``owner`` reports it, the other readers are "not checked".
    """
    try:
        return completion(exchange, what)
    except Failure as failure:
        ctx.owned_by(owner, failure)


def shared_message(
    ctx: CheckContext, exchange: Exchange, what: str, owner: str = BASIC_OWNER
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``shared_body`` and its first message; a body without choices is ``owner``'s finding too."""
    body = shared_body(ctx, exchange, what, owner)
    try:
        return body, first_message(body, exchange)
    except Failure as failure:
        ctx.owned_by(owner, failure)


def usage_of(body: dict[str, Any]) -> dict[str, Any]:
    """The usage object, or an empty dict."""
    usage = body.get("usage")
    return usage if isinstance(usage, dict) else {}


def count_of(value: Any) -> int | None:
    """A token count read from a body: a whole number of at least 0 (not a JSON ``true``), else None."""
    return value if are_numbers([value], counts=True) else None


def output_cap(ctx: CheckContext, asked: int) -> int:
    """The output limit a request asking for ``asked`` really carries (``--max-output-tokens`` caps it)."""
    return min(asked, ctx.target.max_output_tokens)


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def basic_answer(ctx: CheckContext) -> Exchange:
    """A plain question answered without streaming, at temperature 0."""
    return ctx.chat(rq.basic(ctx.target.models.chat))


@check(
    "nonstream",
    f"{FIELD_REF} (Successful Response); OpenAI",
    rules=("chat-status", "chat-not-json", "chat-schema", "null-optional-field"),
)
def nonstream_schema(ctx: CheckContext, basic_answer: Exchange) -> None:
    """A non-streaming answer is 200 with a valid chat.completion body (the shared answer's owner)."""
    validated_completion(ctx, basic_answer, observed="basic_answer")


@check(
    "nonstream",
    "004 Request Body (stream not provided: handled as non-streaming); 001 Request Parameters (stream: "
    "false or omitted); 000/002 (stream: default false)",
    rules=("stream-default-off",),
)
def nonstream_default(ctx: CheckContext, basic_answer: Exchange) -> None:
    """A request without ``stream`` is answered with one JSON completion, not an event stream."""
    streamed = streamed_by_default(basic_answer)
    if streamed is not None:
        raise streamed
    shared_body(ctx, basic_answer, "the chat completion")


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


@check(
    "nonstream",
    f"{FIELD_REF}: id, object, created, model",
    rules=tuple(spec.rule for spec in IDENTITY),
)
def nonstream_identity(ctx: CheckContext, basic_answer: Exchange) -> None:
    """id, object "chat.completion", created (a Unix time) and model are present and right."""
    body = shared_body(ctx, basic_answer, "the chat completion")
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


@check(
    "nonstream",
    f"{FIELD_REF}: choices[].index, choices[].message.role",
    rules=("choices-indexed", "message-role"),
)
def nonstream_choices(ctx: CheckContext, basic_answer: Exchange) -> None:
    """choices are indexed 0..n-1 and every message has role assistant."""
    body, _ = shared_message(ctx, basic_answer, "the chat completion")
    _check_choices(ctx, body, 1, basic_answer)


@check(
    "nonstream",
    f"{FIELD_REF}: choices[].finish_reason",
    rules=("finish-reason-enum", "finish-reason-consistent"),
)
def nonstream_finish_reason(ctx: CheckContext, basic_answer: Exchange) -> None:
    """finish_reason is one of the documented values and agrees with what happened."""
    body, _ = shared_message(ctx, basic_answer, "the chat completion")
    usage = usage_of(body)
    for choice in _choices(body):
        _check_finish_reason(ctx, choice, usage, output_cap(ctx, rq.SHORT_TOKENS), basic_answer)


@check(
    "nonstream",
    f"{FIELD_REF}: usage.prompt_tokens, completion_tokens, total_tokens",
    rules=("nonstream-usage-missing", "nonstream-usage-total"),
)
def nonstream_usage(ctx: CheckContext, basic_answer: Exchange) -> None:
    """usage is present and total_tokens = prompt_tokens + completion_tokens."""
    body = shared_body(ctx, basic_answer, "the chat completion")
    check_usage(ctx, usage_of(body), basic_answer, "nonstream-usage")


_OWN_ANSWER_RULES = ("chat-status", "chat-not-json", "chat-choices")
"""What a check reports about an answer to its own request (it alone reads it)."""


@check(
    "nonstream",
    "001 Multi-Turn Conversation; 000 Message Roles",
    cost=Cost(1, rq.SHORT_TOKENS),
    rules=(*_OWN_ANSWER_RULES, "choices-indexed", "message-role"),
)
def nonstream_multi_turn(ctx: CheckContext) -> None:
    """system, user and assistant turns are accepted in one conversation."""
    exchange = ctx.chat(rq.multi_turn(ctx.target.models.chat))
    body = completion(exchange, "the multi-turn completion")
    _check_choices(ctx, body, 1, exchange)


@check(
    "nonstream",
    "001 Compatibility (n > 1 candidates); 000 Request Parameters (n)",
    cost=Cost(1, 2 * rq.SHORT_TOKENS),
    rules=(*_OWN_ANSWER_RULES, "choices-indexed", "message-role"),
)
@requires("n")
def nonstream_n(ctx: CheckContext) -> None:
    """n=2 returns two choices indexed 0 and 1."""
    exchange = ctx.chat(rq.basic(ctx.target.models.chat, n=2))
    body = completion(exchange, "the n=2 completion")
    _check_choices(ctx, body, 2, exchange)


@dataclass(frozen=True)
class StopPick:
    """A stop sequence taken from the target's own answer, and where it first begins there."""

    text: str
    at: int


MAX_STOP_CHARS = 20
"""A word longer than this is not used as a stop sequence."""


def pick_stop(answer: str) -> StopPick | None:
    """A word of ``answer`` (not its first) that first occurs where it stands, nearest the middle.

    Generation must end where the stop sequence first begins, so the word must not occur earlier,
    even inside another word; near the middle leaves text on both sides to see where it ended.
    """
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", answer)]
    candidates = [
        StopPick(word, at)
        for at, word in words[1:]
        if len(word) <= MAX_STOP_CHARS and answer.find(word) == at
    ]
    middle = len(answer) / 2
    return min(candidates, key=lambda c: (abs(c.at - middle), -len(c.text)), default=None)


@check(
    "nonstream",
    f"{PARAMS} (stop); OpenAI",
    cost=Cost(3, 3 * rq.SHORT_TOKENS),
    rules=(*_OWN_ANSWER_RULES, "stop-ignored", "stop-finish-reason"),
)
def nonstream_stop(ctx: CheckContext) -> None:
    """Generation ends where a stop sequence from the target's own answer begins; the stop is not returned.

    Calibrated, no obedient model assumed: a temperature-0 answer without stop gives the stop
    sequence (a word from inside it); a second one tells whether the target is deterministic.
    """
    body = rq.counting(ctx.target.models.chat)
    free = _text_of(ctx.chat(body), "the answer without stop")
    pick = pick_stop(free)
    if pick is None:
        raise NotChecked(
            f"not checked: the answer without stop ({excerpt(free, 120)}) has no word after its first "
            "that occurs only where it stands, to use as a stop sequence"
        )
    again = _text_of(ctx.chat(body), "the second answer without stop")
    exchange = ctx.chat({**body, "stop": [pick.text]})
    answer = completion(exchange, "the completion with stop")
    content = first_message(answer, exchange).get("content")
    content = content if isinstance(content, str) else ""
    context = f"stop {as_json(pick.text)}, taken from the answer without stop {excerpt(free, 200)}"
    if pick.text in content or (free.startswith(content) and len(content) > pick.at):
        ctx.record(
            Failure(
                title=f"generation did not end where the stop sequence {as_json(pick.text)} begins",
                rule="stop-ignored",
                expected=f"content ending before {as_json(pick.text)} (the stop text is not returned); "
                f"{context}",
                received=f"content {excerpt(content)}",
                exchange=exchange,
            )
        )
        return
    if not _stopped_before(content, pick.text, (free, again)):
        same = (
            "although two answers without stop agreed"
            if free == again
            else "and the target is not deterministic"
        )
        raise NotChecked(
            f"not checked: the answer with stop {excerpt(content, 120)} is no prefix of an answer without "
            f"stop ending where {as_json(pick.text)} begins ({same}), so where generation stopped is unknown"
        )
    reason = _choices(answer)[0].get("finish_reason")
    if reason != "stop":
        ctx.record(
            Failure(
                title=f"finish_reason is {as_json(reason)} after generation stopped at a stop sequence",
                rule="stop-finish-reason",
                expected=f'finish_reason "stop"; {context}',
                received=f"finish_reason {as_json(reason)}, content {excerpt(content)}",
                exchange=exchange,
            )
        )


def _text_of(exchange: Exchange, what: str) -> str:
    """The text of an answer the check calibrates with; "not checked" when it gave none."""
    content = first_message(completion(exchange, what), exchange).get("content")
    if not isinstance(content, str) or not content.strip():
        raise NotChecked(
            f"not checked: {what} has no text to take a stop sequence from ({describe(exchange)})"
        )
    return content


def _stopped_before(content: str, stop: str, unconstrained: tuple[str, ...]) -> bool:
    """Whether ``content`` is an unconstrained answer cut at or before where ``stop`` first begins."""
    return any(
        stop in free and free.startswith(content) and len(content) <= free.find(stop)
        for free in unconstrained
    )


@check(
    "nonstream",
    f"{PARAMS} (max_tokens, max_completion_tokens); 004 Request Body; 002 finish_reason Mapping",
    cost=Cost(2, 2 * rq.CUT_TOKENS),
    rules=(*_OWN_ANSWER_RULES, "max-tokens-ignored", "max-tokens-finish-reason"),
)
def nonstream_max_tokens(ctx: CheckContext) -> None:
    """max_tokens and max_completion_tokens cap usage.completion_tokens; an answer at the cap says length.

    Calibrated by the target's own usage: the model need not write more than the cap; finish_reason
    is judged only when usage shows the cap was reached.
    """
    cap = output_cap(ctx, rq.CUT_TOKENS)
    unseen = [
        why for field in ("max_tokens", "max_completion_tokens") if (why := _judge_cap(ctx, field, cap))
    ]
    if len(unseen) == 2 and not ctx.failures:
        raise NotChecked("not checked: " + "; ".join(unseen))


def _judge_cap(ctx: CheckContext, field: str, cap: int) -> str:
    """Send the counting prompt capped by ``field``; record what breaks the cap, or say why nothing could."""
    body = rq.counting(ctx.target.models.chat)
    del body["max_tokens"]
    body[field] = cap
    exchange = ctx.chat(body)
    answer = completion(exchange, f"the completion with {field}={cap}")
    first_message(answer, exchange)
    reason = _choices(answer)[0].get("finish_reason")
    used = usage_of(answer).get("completion_tokens")
    if not isinstance(used, int) or isinstance(used, bool):
        return f"{field}: the answer reports no integer usage.completion_tokens ({json.dumps(used)})"
    if used > cap:
        ctx.record(
            Failure(
                title=f"{field}={cap} was not honoured",
                rule="max-tokens-ignored",
                expected=f"usage.completion_tokens <= {cap}",
                received=f"completion_tokens {used}, finish_reason {as_json(reason)}",
                exchange=exchange,
            )
        )
    elif used == cap and reason != "length":
        ctx.record(
            Failure(
                title=f"an answer that reached {field}={cap} does not say finish_reason length",
                rule="max-tokens-finish-reason",
                expected=f'finish_reason "length" (usage says the cap of {cap} tokens was reached)',
                received=f"completion_tokens {used}, finish_reason {as_json(reason)}",
                exchange=exchange,
            )
        )
    elif used < cap and reason != "length":
        return f"{field}: the answer ended by itself after {used} tokens, under the cap of {cap}"
    return ""


@observation(cost=Cost(1, rq.REASONING_CAP))
def reasoning_answer(ctx: CheckContext) -> Exchange:
    """The plain question to the reasoning model, reasoning_effort low, max_completion_tokens capped."""
    return ctx.chat(rq.reasoning(ctx.target.models.reasoning, "low"))


REASONING = "000/001 Request Parameters (reasoning_effort: low, medium, high; reasoning models only); 004"


@check(
    "nonstream",
    f"{REASONING} Request Body (reasoning_effort); 000/001 Compatibility (reasoning_effort supported)",
    cost=Cost(len(rq.REASONING_EFFORTS) - 1, (len(rq.REASONING_EFFORTS) - 1) * rq.REASONING_CAP),
    rules=(*_OWN_ANSWER_RULES, "reasoning-effort-rejected"),
)
@requires("reasoning")
def nonstream_reasoning_effort(ctx: CheckContext, reasoning_answer: Exchange) -> None:
    """The reasoning model accepts reasoning_effort low, medium and high (taking effect is the model's)."""
    model = ctx.target.models.reasoning
    for effort in rq.REASONING_EFFORTS:
        exchange = reasoning_answer if effort == "low" else ctx.chat(rq.reasoning(model, effort))
        what = f"the reasoning completion with reasoning_effort {as_json(effort)}"
        try:
            if 400 <= exchange.status < 500:
                raise Failure(
                    title=f"reasoning_effort {as_json(effort)} was refused by the reasoning model",
                    rule="reasoning-effort-rejected",
                    expected=f"HTTP 200: reasoning_effort {as_json(effort)} is a documented value for "
                    "reasoning models",
                    received=describe(exchange),
                    exchange=exchange,
                )
            first_message(completion(exchange, what), exchange)
        except Failure as failure:
            ctx.record(failure)


@check(
    "nonstream",
    "004 Request Body (max_completion_tokens: including reasoning tokens); OpenAI usage "
    "(completion_tokens_details.reasoning_tokens)",
    rules=("max-completion-tokens-reasoning", "usage-reasoning-tokens"),
)
@requires("reasoning")
def nonstream_reasoning_cap(ctx: CheckContext, reasoning_answer: Exchange) -> None:
    """max_completion_tokens caps the completion tokens of a reasoning model, its reasoning tokens included.

    Calibrated by the target's usage: judged when the answer shows reasoning and reached the cap
    (or went past it); one that ended by itself under the cap is "not checked".
    """
    cap = output_cap(ctx, rq.REASONING_CAP)
    body, message = shared_message(ctx, reasoning_answer, "the reasoning completion", REASONING_OWNER)
    usage = usage_of(body)
    used = count_of(usage.get("completion_tokens"))
    reasoning = count_of(as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"))
    check_reasoning_tokens(ctx, usage, reasoning_answer)
    if used is None:
        if not ctx.failures:
            shown_usage = as_json(usage.get("completion_tokens"))
            raise NotChecked(f"not checked: the answer reports no usage.completion_tokens ({shown_usage})")
        return
    thought = message.get(ctx.profile.reasoning_field)
    shown = bool(reasoning) or (isinstance(thought, str) and bool(thought))
    reason = _choices(body)[0].get("finish_reason")
    if used > cap:
        ctx.record(
            Failure(
                title=f"max_completion_tokens={cap} did not cap the reasoning model's completion tokens",
                rule="max-completion-tokens-reasoning",
                expected=f"usage.completion_tokens <= {cap}, reasoning tokens included (004)",
                received=f"completion_tokens {used}, reasoning_tokens {as_json(reasoning)}, "
                f"finish_reason {as_json(reason)}",
                exchange=reasoning_answer,
            )
        )
    elif ctx.failures:
        return
    elif not shown:
        raise NotChecked(
            "not checked: the reasoning model's answer shows no reasoning (no "
            f"{ctx.profile.reasoning_field}, completion_tokens_details.reasoning_tokens {as_json(reasoning)})"
        )
    elif used < cap and reason != "length":
        raise NotChecked(
            f"not checked: the answer ended by itself after {used} tokens (reasoning included), under the "
            f"cap of {cap}: nothing to cut"
        )


def check_reasoning_tokens(ctx: CheckContext, usage: dict[str, Any], exchange: Exchange) -> bool:
    """Record a failure unless reasoning_tokens <= completion_tokens; False when they are not both given."""
    done = count_of(usage.get("completion_tokens"))
    reasoning = count_of(as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"))
    if done is None or reasoning is None:
        return False
    if reasoning > done:
        ctx.record(
            Failure(
                title="usage counts more reasoning tokens than completion tokens",
                rule="usage-reasoning-tokens",
                expected="completion_tokens_details.reasoning_tokens <= completion_tokens (reasoning tokens "
                "are part of the completion tokens)",
                received=f"reasoning_tokens {reasoning}, completion_tokens {done}",
                exchange=exchange,
            )
        )
    return True


@check(
    "nonstream",
    "OpenAI usage (prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens)",
    rules=("usage-cached-tokens", "usage-reasoning-tokens"),
)
def nonstream_usage_details(ctx: CheckContext, basic_answer: Exchange) -> None:
    """Usage details, when given, are parts: cached <= prompt tokens, reasoning <= completion tokens."""
    usage = usage_of(shared_body(ctx, basic_answer, "the chat completion"))
    prompt = count_of(usage.get("prompt_tokens"))
    cached = count_of(as_dict(usage.get("prompt_tokens_details")).get("cached_tokens"))
    judged = check_reasoning_tokens(ctx, usage, basic_answer)
    if prompt is not None and cached is not None:
        judged = True
        if cached > prompt:
            ctx.record(
                Failure(
                    title="usage counts more cached tokens than prompt tokens",
                    rule="usage-cached-tokens",
                    expected="prompt_tokens_details.cached_tokens <= prompt_tokens (cached tokens are "
                    "part of the prompt tokens)",
                    received=f"cached_tokens {cached}, prompt_tokens {prompt}",
                    exchange=basic_answer,
                )
            )
    if not judged:
        raise NotChecked(
            "not checked: the answer's usage gives neither prompt_tokens_details.cached_tokens nor "
            f"completion_tokens_details.reasoning_tokens with its count (usage {as_json(usage)})"
        )


MULTIMODAL = "004 Request Body (content: text, image_url, input_audio, file, video_url); 000 Compatibility"


@check(
    "nonstream",
    f"{MULTIMODAL} (multimodal input: images, audio); 002 Error Codes (400 INVALID_PARAMS)",
    cost=Cost(1 + len(rq.MEDIA_PARTS), (1 + len(rq.MEDIA_PARTS)) * rq.CUT_TOKENS),
    rules=(*_OWN_ANSWER_RULES, "content-text-parts", "media-part-status", "media-part-dropped"),
)
@requires("multimodal")
def nonstream_multimodal(ctx: CheckContext) -> None:
    """Content as an array of parts is accepted; each media part is accepted, or refused with 400.

    A model may lack a modality (the documented answer is then a 400); an accepted part must reach
    the model: the target's own prompt_tokens grow over the same text without it (judgement).
    """
    model = ctx.target.models.chat
    exchange = ctx.chat(rq.content_parts(model))
    if exchange.status != 200:
        raise Failure(
            title="a content array of one text part was refused",
            rule="content-text-parts" if 400 <= exchange.status < 500 else "chat-status",
            expected="HTTP 200: 004 documents content as an array of parts",
            received=describe(exchange),
            exchange=exchange,
        )
    baseline = count_of(usage_of(completion(exchange, "the text-part completion")).get("prompt_tokens"))
    refused = [media for media in rq.MEDIA_PARTS if not _judge_media(ctx, media, baseline)]
    if len(refused) == len(rq.MEDIA_PARTS) and not ctx.failures:
        raise NotChecked(
            f"not checked: the model refused every media part ({', '.join(refused)}) with 400; a model "
            "that lacks them all has no multimodal input to judge (claim multimodal for one that has)"
        )


def _judge_media(ctx: CheckContext, media: str, baseline: int | None) -> bool:
    """Send the text part with one ``media`` part, record what breaks the rules; False when refused (400)."""
    exchange = ctx.chat(rq.content_parts(ctx.target.models.chat, media))
    what = f"the completion with a {media} part"
    if exchange.status == 400:
        return False
    if exchange.status != 200:
        ctx.record(
            Failure(
                title=f"a {media} content part was answered {exchange.status or 'with nothing'}",
                rule="media-part-status",
                expected="HTTP 200, or 400 when the model lacks the modality (002 Error Codes: "
                "INVALID_PARAMS)",
                received=describe(exchange),
                exchange=exchange,
            )
        )
        return True
    try:
        body = completion(exchange, what)
        first_message(body, exchange)
    except Failure as failure:
        ctx.record(failure)
        return True
    prompt = count_of(usage_of(body).get("prompt_tokens"))
    if baseline is not None and prompt is not None and prompt <= baseline:
        ctx.record(
            Failure(
                title=f"the {media} part was accepted but seems not to reach the model",
                rule="media-part-dropped",
                expected=f"usage.prompt_tokens above the {baseline} of the same text without the {media} "
                "part (the target's own count)",
                received=f"prompt_tokens {prompt}",
                exchange=exchange,
            )
        )
    return True


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
        and _EARLIEST_CREATED <= value <= clock.time() + _CLOCK_SKEW_S
    )

"""The Anthropic-compatible ``POST /v1/messages`` (002 Messages; the Anthropic Messages protocol).

One finding, one owner. The shared non-streaming answer (``anthropic_answer``) is judged for its
status by ``anthropic_auth_x_api_key`` and for its body and schema by ``anthropic_response_valid``;
the shared stream (``anthropic_stream``) answered non-200, cut, undecodable or carrying an error
event, and its events' schema, are ``anthropic_stream_events_valid``'s; the capped answer
(``anthropic_cut``) is ``anthropic_stop_reason_max_tokens``'s. Every other check reading them
ends "not checked: ... (<owner> reports it)" and judges only its own rule.

Calibrated, never assuming what the model writes: a cut is judged from the usage of the same
request unconstrained, a stop sequence is picked from inside an unconstrained answer, and a check
with nothing to judge (no response, an answer that never reached what it needed) is a SKIP saying
"not checked" with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, NotChecked, check, observation, requires
from gatecheck.checks.context import CheckContext
from gatecheck.checks.errors import GATEWAY_CODES, INVALID_KEY, UNKNOWN_MODEL, one_per_rule
from gatecheck.checks.wire import (
    Capture,
    as_dict,
    as_json,
    describe,
    excerpt,
    header,
    invalid_events,
    json_of,
    report_capture,
    schema_failures,
)

if TYPE_CHECKING:
    from gatecheck.assemble import AssembledMessage
    from gatecheck.client import Exchange

MESSAGES = "/v1/messages"
PARAMS = "002 Messages Parameters"
STREAMING = "002 Messages Streaming; Anthropic streaming"
MAPPING = "002 finish_reason Mapping"

AUTH_OWNER = "anthropic_auth_x_api_key"
"""Owns the status of ``anthropic_answer`` (sent with x-api-key)."""
ANSWER_OWNER = "anthropic_response_valid"
"""Owns the body and schema of ``anthropic_answer``."""
CUT_OWNER = "anthropic_stop_reason_max_tokens"
"""Owns ``anthropic_cut``, the same request capped at CUT_TOKENS."""
EVENTS_OWNER = "anthropic_stream_events_valid"
"""Owns ``anthropic_stream`` answered non-200, cut, undecodable or with an error event, and its schema."""

PROBE_TOKENS = 16
"""Output cap of requests sent only to see them accepted or refused."""

STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
"""The stop_reason values anthropic.messages.response accepts."""

FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens"}
"""002 finish_reason Mapping: the chat finish_reason -> the Messages stop_reason."""

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
"""Anthropic errors: the error.type of each status."""

MAX_STOP_CHARS = 12
_WORD = re.compile(r"\w{3,}")


class MessageCapture(Capture["AssembledMessage"]):
    """One streamed /v1/messages exchange: its events and the assembled message."""

    rule_prefix = "anthropic"

    @property
    def message(self) -> AssembledMessage:
        """The assembled message."""
        return self.assembled


def send_message(ctx: CheckContext, body: dict[str, Any], auth: str = "x-api-key", **kwargs: Any) -> Exchange:
    """POST a Messages request (x-api-key by default, as the Anthropic SDK sends it)."""
    headers = {"anthropic-version": "2023-06-01"}
    return ctx.send("POST", MESSAGES, json_body=body, auth=auth, headers=headers, **kwargs)


def capture_messages(ctx: CheckContext, body: dict[str, Any]) -> MessageCapture:
    """Stream a Messages request and assemble its events."""
    return decode_messages(send_message(ctx, {**body, "stream": True}))


def decode_messages(exchange: Exchange) -> MessageCapture:
    """Decode and assemble a streamed Messages exchange (never raises on bad bytes)."""
    from gatecheck.assemble import MessageStreamAssembler

    return MessageCapture.of(exchange, MessageStreamAssembler())


def answered(exchange: Exchange) -> None:
    """Nothing came back (a transport error): no verdict on any rule, a SKIP saying so."""
    if exchange.status == 0:
        raise NotChecked(
            f"not checked: {exchange.request.method} {MESSAGES} got no response ({exchange.error})"
        )


def not_ok(exchange: Exchange, what: str, rule: str = "anthropic-status") -> Failure:
    """The finding for a valid request answered with something else than 200."""
    return Failure(
        title=f"{what} was answered {exchange.status}, not 200",
        rule=rule,
        expected="HTTP 200 with a message",
        received=describe(exchange),
        exchange=exchange,
    )


def message_json(
    ctx: CheckContext, exchange: Exchange, what: str, *, owner: str, status_owner: str | None = None
) -> dict[str, Any]:
    """The 200 JSON object body of a Messages response.

    Anything else is a finding of ``status_owner`` (the status) or ``owner`` (the body); in any
    other check it ends the check as not checked.
    """
    answered(exchange)
    if exchange.status != 200:
        ctx.owned_by(status_owner or owner, not_ok(exchange, what))
    body = json_of(exchange)
    if not isinstance(body, dict):
        ctx.owned_by(
            owner,
            Failure(
                title=f"{what} is not a JSON object",
                rule="anthropic-not-json",
                expected="a JSON object body (a message)",
                received=describe(exchange),
                exchange=exchange,
            ),
        )
    return body


def answer_json(ctx: CheckContext, exchange: Exchange) -> dict[str, Any]:
    """``anthropic_answer``'s body, its status and body findings left to their owners."""
    return message_json(ctx, exchange, "the Messages response", owner=ANSWER_OWNER, status_owner=AUTH_OWNER)


def count(value: object) -> int | None:
    """A token count read from a body: a whole number >= 0 (a JSON true is not one), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def output_tokens(body: dict[str, Any]) -> int | None:
    """usage.output_tokens when it is a count."""
    return count(as_dict(body.get("usage")).get("output_tokens"))


def sent_cap(exchange: Exchange) -> int:
    """The max_tokens the request really carried (``--max-output-tokens`` may have lowered it)."""
    sent = json.loads(exchange.request.body)
    return int(sent["max_tokens"])


def text_of(body: dict[str, Any]) -> str:
    """The text blocks of a message, joined."""
    blocks = body.get("content")
    if not isinstance(blocks, list):
        return ""
    return "".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


def stop_string_from(text: str) -> str | None:
    """A stop sequence the answer reaches with text before it: a word whose first occurrence is
    nearest the middle of ``text`` (never its first word), at most MAX_STOP_CHARS long."""
    firsts: dict[str, int] = {}
    for match in _WORD.finditer(text):
        word = match.group()[:MAX_STOP_CHARS]
        if match.start() > 0 and text.find(word) == match.start():
            firsts.setdefault(word, match.start())
    if not firsts:
        return None
    middle = len(text) / 2
    return min(firsts, key=lambda word: abs(firsts[word] - middle))


# --- stream ownership ----------------------------------------------------------------------------


def broken_stream(capture_: MessageCapture) -> Failure | None:
    """Why the stream cannot be judged whole: not 200, undecodable, an error event, or cut."""
    exchange = capture_.exchange
    if exchange.status != 200:
        return Failure(
            title=f"the Messages stream was answered {exchange.status}",
            rule="anthropic-status",
            expected="HTTP 200 with an event stream",
            received=describe(exchange),
            exchange=exchange,
        )
    if capture_.decode_error is not None:
        return Failure(
            title="the Messages event stream cannot be decoded",
            rule="sse-undecodable",
            expected="a WHATWG event stream",
            received=capture_.decode_error,
            exchange=exchange,
        )
    if capture_.message.error is not None:
        raw = next((v.raw for v in capture_.violations("error-event")), b"")
        return Failure(
            title="the Messages stream carried an error event",
            rule="anthropic-error-event",
            expected="a complete stream (a mid-stream upstream error is reported as such)",
            received=f"error {as_json(capture_.message.error)}; wire {excerpt(raw)}",
            exchange=exchange,
        )
    if exchange.error is not None and not capture_.message.stopped:
        last = capture_.events[-1].raw if capture_.events else b""
        return Failure(
            title="the Messages stream was cut off before message_stop",
            rule="anthropic-stream-cut",
            expected="the stream runs to message_stop and ends",
            received=f"{exchange.error} after {len(capture_.events)} events; last {excerpt(last)}",
            exchange=exchange,
        )
    return None


def opened(ctx: CheckContext, capture_: MessageCapture, owner: str = EVENTS_OWNER) -> MessageCapture:
    """The capture when it can be judged whole; else ``owner``'s finding, not checked elsewhere."""
    answered(capture_.exchange)
    failure = broken_stream(capture_)
    if failure is not None:
        ctx.owned_by(owner, failure)
    return capture_


def record_event_schema(ctx: CheckContext, capture_: MessageCapture) -> None:
    """Record one failure per rule the stream's events break in anthropic.stream.event."""
    for invalid in invalid_events(
        ctx.store,
        capture_.events,
        "anthropic.stream.event",
        rule="anthropic-event-schema",
        what="an event",
        exchange=capture_.exchange,
    ):
        ctx.record(invalid)


STREAM_OWNER_RULES = (
    "anthropic-status",
    "sse-undecodable",
    "anthropic-error-event",
    "anthropic-stream-cut",
    "anthropic-event-schema",
    "null-optional-field",
)
"""What the owner of a stream reports about it as a whole."""


# --- observations --------------------------------------------------------------------------------


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def anthropic_answer(ctx: CheckContext) -> Exchange:
    """002's Request Example at temperature 0, sent with x-api-key."""
    return send_message(ctx, rq.anthropic_body(ctx.target.models.chat))


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def anthropic_stream(ctx: CheckContext) -> MessageCapture:
    """The request of ``anthropic_answer``, streamed."""
    return capture_messages(ctx, rq.anthropic_body(ctx.target.models.chat))


@observation(cost=Cost(1, rq.CUT_TOKENS))
def anthropic_cut(ctx: CheckContext) -> Exchange:
    """The request of ``anthropic_answer`` capped at CUT_TOKENS."""
    return send_message(ctx, rq.anthropic_body(ctx.target.models.chat, max_tokens=rq.CUT_TOKENS))


@observation(cost=Cost(1, 0))
def anthropic_no_max_tokens(ctx: CheckContext) -> Exchange:
    """002's Request Example without max_tokens (required): must be refused."""
    body = rq.anthropic_body(ctx.target.models.chat)
    del body["max_tokens"]
    return send_message(ctx, body, tokens=1)


# --- authentication and required parameters ------------------------------------------------------


@check(
    "anthropic",
    "002 Messages Authentication (x-api-key, recommended)",
    rules=("anthropic-auth-x-api-key", "anthropic-status"),
)
@requires("anthropic")
def anthropic_auth_x_api_key(ctx: CheckContext, anthropic_answer: Exchange) -> None:
    """/v1/messages accepts the key in x-api-key (and answers the valid request 200)."""
    judge_accepted_key(anthropic_answer, "anthropic-auth-x-api-key", "/v1/messages with x-api-key")


@check(
    "anthropic",
    "002 Messages Authentication (Authorization: Bearer)",
    cost=Cost(1, rq.SHORT_TOKENS),
    rules=("anthropic-auth-bearer", "anthropic-status"),
)
@requires("anthropic")
def anthropic_auth_bearer(ctx: CheckContext) -> None:
    """/v1/messages accepts the key as a Bearer token."""
    exchange = send_message(ctx, rq.anthropic_body(ctx.target.models.chat), auth="bearer")
    judge_accepted_key(exchange, "anthropic-auth-bearer", "/v1/messages with Authorization: Bearer")


def judge_accepted_key(exchange: Exchange, rule: str, what: str) -> None:
    """200, else a finding: of ``rule`` when the key was refused (401/403), of the status otherwise."""
    answered(exchange)
    if exchange.status != 200:
        raise not_ok(exchange, what, rule if exchange.status in (401, 403) else "anthropic-status")


@check(
    "anthropic",
    f"{PARAMS} (max_tokens: required)",
    rules=("anthropic-max-tokens-optional",),
)
@requires("anthropic")
def anthropic_max_tokens_required(ctx: CheckContext, anthropic_no_max_tokens: Exchange) -> None:
    """A Messages request without max_tokens gets 400 (its body is anthropic_error_envelope's)."""
    judge_refused(anthropic_no_max_tokens, "anthropic-max-tokens-optional", "without max_tokens (required)")


def judge_refused(exchange: Exchange, rule: str, what: str) -> None:
    """400, else a finding of ``rule`` (the error body is anthropic_error_envelope's)."""
    answered(exchange)
    if exchange.status != 400:
        raise Failure(
            title=f"a Messages request {what} was answered {exchange.status}",
            rule=rule,
            expected="HTTP 400 (002 Error Codes: 400 INVALID_PARAMS)",
            received=describe(exchange),
            exchange=exchange,
        )


@check(
    "anthropic",
    f"{PARAMS} (temperature: 0-1)",
    cost=Cost(1, PROBE_TOKENS),
    rules=("anthropic-temperature-range",),
)
@requires("anthropic")
def anthropic_temperature_range(ctx: CheckContext) -> None:
    """temperature 1.5 (valid on chat completions, 0-2) is refused on /v1/messages (0-1)."""
    body = rq.anthropic_body(ctx.target.models.chat, max_tokens=PROBE_TOKENS, temperature=1.5)
    judge_refused(
        send_message(ctx, body, tokens=1), "anthropic-temperature-range", "with temperature 1.5 (0-1)"
    )


@check("anthropic", f"{PARAMS} (top_p: 0-1)", cost=Cost(1, PROBE_TOKENS), rules=("anthropic-top-p-range",))
@requires("anthropic")
def anthropic_top_p_range(ctx: CheckContext) -> None:
    """top_p 1.5 is refused on /v1/messages (0-1)."""
    body = rq.anthropic_body(ctx.target.models.chat, max_tokens=PROBE_TOKENS, top_p=1.5)
    judge_refused(send_message(ctx, body, tokens=1), "anthropic-top-p-range", "with top_p 1.5 (0-1)")


def judge_accepted(ctx: CheckContext, exchange: Exchange, rule: str, what: str) -> None:
    """A 200 JSON message, else a finding of ``rule`` (refused) or of the body."""
    answered(exchange)
    if exchange.status != 200:
        raise not_ok(exchange, what, rule)
    message_json(ctx, exchange, what, owner=ctx.check.id)


@check(
    "anthropic",
    f"{PARAMS} (system: string or content blocks)",
    cost=Cost(1, PROBE_TOKENS),
    rules=("anthropic-system-blocks", "anthropic-not-json"),
)
@requires("anthropic")
def anthropic_system_blocks(ctx: CheckContext) -> None:
    """A system prompt given as text blocks is accepted."""
    system = [{"type": "text", "text": rq.ANTHROPIC_SYSTEM}]
    body = rq.anthropic_body(ctx.target.models.chat, max_tokens=PROBE_TOKENS, system=system)
    judge_accepted(ctx, send_message(ctx, body), "anthropic-system-blocks", "system as text blocks")


@check(
    "anthropic",
    f"{PARAMS} (messages.content: string or content blocks)",
    cost=Cost(1, PROBE_TOKENS),
    rules=("anthropic-content-blocks", "anthropic-not-json"),
)
@requires("anthropic")
def anthropic_content_blocks(ctx: CheckContext) -> None:
    """Message content given as text blocks is accepted."""
    messages = [{"role": "user", "content": [{"type": "text", "text": rq.ANTHROPIC_QUESTION}]}]
    body = rq.anthropic_body(ctx.target.models.chat, max_tokens=PROBE_TOKENS, messages=messages)
    judge_accepted(ctx, send_message(ctx, body), "anthropic-content-blocks", "content as text blocks")


# --- error bodies --------------------------------------------------------------------------------


@check(
    "anthropic",
    "002 Error Codes (all error responses use JSON format); 002 Messages (Anthropic compatible); "
    "Anthropic errors",
    cost=Cost(2, 0),
    markers=("errors",),
    rules=(
        "anthropic-error-envelope",
        "anthropic-error-content-type",
        "anthropic-error-type",
        "anthropic-error-code",
    ),
)
@requires("anthropic")
def anthropic_error_envelope(ctx: CheckContext, anthropic_no_max_tokens: Exchange) -> None:
    """Errors on /v1/messages are JSON in the envelope the profile expects (002's, Anthropic's, either)."""
    body = rq.anthropic_body(ctx.target.models.chat, max_tokens=PROBE_TOKENS)
    cases = (
        ("a request without max_tokens", anthropic_no_max_tokens),
        ("an invalid key", send_message(ctx, body, key=INVALID_KEY, tokens=1)),
        (
            f"the unknown model {as_json(UNKNOWN_MODEL)}",
            send_message(ctx, {**body, "model": UNKNOWN_MODEL}, tokens=1),
        ),
    )
    errors = [(what, exchange) for what, exchange in cases if exchange.status >= 400]
    if not errors:
        statuses = ", ".join(str(exchange.status or "no response") for _, exchange in cases)
        raise NotChecked(f"not checked: no error came back to judge (statuses {statuses})")
    found = [
        (what, failure) for what, exchange in errors for failure in error_body_failures(ctx, exchange, what)
    ]
    for failure in one_per_rule(found):  # one envelope on every probe is one finding, the others counted
        ctx.record(failure)


def error_body_failures(ctx: CheckContext, exchange: Exchange, what: str) -> list[Failure]:
    """How an error on /v1/messages is not JSON in the profile's envelope, with its type/code."""
    found: list[Failure] = []
    body = json_of(exchange)
    if isinstance(body, dict):
        ctype = header(exchange, "content-type") or ""
        if "json" not in ctype.lower():
            found.append(
                Failure(
                    title=f"the error for {what} on /v1/messages is not served as JSON",
                    rule="anthropic-error-content-type",
                    expected="Content-Type: application/json (002: all error responses use JSON format)",
                    received=f"Content-Type {ctype or '(none)'}",
                    exchange=exchange,
                )
            )
    dialect = ctx.profile.messages_error_dialect
    anthropic = dialect != "gateway" and ctx.store.is_valid("anthropic.error", body)
    gateway = dialect != "anthropic" and ctx.store.is_valid("error.gateway", body)
    if not (anthropic or gateway):
        return [*found, envelope_failure(ctx, exchange, body, what)]
    error = as_dict(as_dict(body).get("error"))
    expected_type = ANTHROPIC_ERROR_TYPES.get(exchange.status)
    if anthropic and expected_type is not None and error.get("type") != expected_type:
        found.append(
            Failure(
                title=f"the error type for {what} on /v1/messages is {as_json(error.get('type'))}",
                rule="anthropic-error-type",
                expected=f"error.type {as_json(expected_type)} for HTTP {exchange.status} (Anthropic errors)",
                received=excerpt(exchange.body),
                exchange=exchange,
            )
        )
    expected_code = GATEWAY_CODES.get(exchange.status)
    if gateway and expected_code is not None and error.get("code") != expected_code:
        found.append(
            Failure(
                title=f"the error code for {what} on /v1/messages is {as_json(error.get('code'))}",
                rule="anthropic-error-code",
                expected=f"error.code {as_json(expected_code)} for HTTP {exchange.status} (002 Error Codes)",
                received=excerpt(exchange.body),
                exchange=exchange,
            )
        )
    return found


ENVELOPES = {
    "gateway": ("error.gateway",),
    "anthropic": ("anthropic.error",),
    "either": ("error.gateway", "anthropic.error"),
}
"""The schemas of the envelopes each messages_error_dialect accepts."""


def envelope_failure(ctx: CheckContext, exchange: Exchange, body: Any, what: str) -> Failure:
    """The finding for an error body in none of the envelopes the profile accepts."""
    schemas = ENVELOPES[ctx.profile.messages_error_dialect]
    names = " or ".join(f"schemas/{name}.json" for name in schemas)
    if isinstance(body, dict):
        issues = ((name, ctx.store.issues(name, body)[0]) for name in schemas)
        why = "; ".join(f"not {name}: at {issue.path}: {issue.message}" for name, issue in issues)
    else:
        why = "the body is not a JSON object"
    return Failure(
        title=f"the error for {what} on /v1/messages is not in the expected envelope",
        rule="anthropic-error-envelope",
        expected=f"a JSON body valid against {names} (profile {ctx.profile.name}, "
        f"messages_error_dialect {ctx.profile.messages_error_dialect})",
        received=f"{why}; {describe(exchange, 300)}",
        exchange=exchange,
    )


# --- the non-streaming message and its stop reasons ----------------------------------------------


@check(
    "anthropic",
    f"002 Messages Response; {PARAMS} (max_tokens)",
    rules=("anthropic-not-json", "anthropic-schema", "null-optional-field", "anthropic-stop-reason"),
)
@requires("anthropic")
def anthropic_response_valid(ctx: CheckContext, anthropic_answer: Exchange) -> None:
    """The response is a valid message whose stop_reason agrees with its usage."""
    body = answer_json(ctx, anthropic_answer)
    for found in schema_failures(
        ctx.store,
        "anthropic.messages.response",
        body,
        rule="anthropic-schema",
        what="the Messages response",
        exchange=anthropic_answer,
    ):
        ctx.record(found)
    output, cap, reason = output_tokens(body), sent_cap(anthropic_answer), body.get("stop_reason")
    if output is None:
        return  # the schema finding above says usage.output_tokens is missing or not a count
    problem = None
    if output > cap:
        problem = f"output_tokens {output} exceed max_tokens {cap}"
    elif reason == "max_tokens" and output < cap:
        problem = f"stop_reason max_tokens after {output} tokens, under max_tokens {cap}"
    if problem is not None:
        ctx.record(
            Failure(
                title="the message's stop_reason does not agree with its usage",
                rule="anthropic-stop-reason",
                expected=f"output_tokens <= max_tokens {cap}, stop_reason max_tokens only at the cap",
                received=f"{problem} (stop_reason {as_json(reason)})",
                exchange=anthropic_answer,
            )
        )


@check(
    "anthropic",
    f"{MAPPING} (max_tokens <-> length); {PARAMS} (max_tokens)",
    rules=(
        "anthropic-status",
        "anthropic-not-json",
        "anthropic-stop-reason-max-tokens",
        "anthropic-max-tokens-exceeded",
    ),
)
@requires("anthropic")
def anthropic_stop_reason_max_tokens(
    ctx: CheckContext, anthropic_answer: Exchange, anthropic_cut: Exchange
) -> None:
    """Capped below what the same request takes unconstrained, a message says stop_reason max_tokens."""
    longest = output_tokens(answer_json(ctx, anthropic_answer))
    if longest is None:
        raise NotChecked(
            "not checked: the unconstrained message reports no usage.output_tokens "
            f"({ANSWER_OWNER} reports it)"
        )
    what = "the Messages response capped at max_tokens"
    body = message_json(ctx, anthropic_cut, what, owner=CUT_OWNER)
    cap, output, reason = sent_cap(anthropic_cut), output_tokens(body), body.get("stop_reason")
    if longest <= cap:
        raise NotChecked(
            f"not checked: the same request unconstrained takes {longest} tokens, within max_tokens "
            f"{cap}: nothing to cut"
        )
    if output is None:
        raise NotChecked("not checked: the capped message reports no usage.output_tokens to judge the cut by")
    if output > cap:
        raise Failure(
            title="a message has more output tokens than its max_tokens",
            rule="anthropic-max-tokens-exceeded",
            expected=f"output_tokens <= max_tokens {cap}",
            received=f"output_tokens {output}, stop_reason {as_json(reason)}",
            exchange=anthropic_cut,
        )
    if reason == "max_tokens":
        return
    if output < cap:
        raise NotChecked(
            f"not checked: capped at {cap}, the answer ended by itself ({as_json(reason)}) after "
            f"{output} tokens although the same request unconstrained took {longest}: the model "
            "answered differently"
        )
    raise Failure(
        title="a message cut by max_tokens does not say so",
        rule="anthropic-stop-reason-max-tokens",
        expected=f'stop_reason "max_tokens": output_tokens reached max_tokens {cap}, and the same request '
        f"unconstrained takes {longest}",
        received=f"stop_reason {as_json(reason)}, output_tokens {output}",
        exchange=anthropic_cut,
    )


@check(
    "anthropic",
    f"{PARAMS} (stop_sequences); Anthropic Messages (stop_reason stop_sequence)",
    cost=Cost(1, rq.SHORT_TOKENS),
    rules=(
        "anthropic-status",
        "anthropic-not-json",
        "anthropic-stop-sequence-ignored",
        "anthropic-stop-sequence-reported",
    ),
)
@requires("anthropic")
def anthropic_stop_sequences(ctx: CheckContext, anthropic_answer: Exchange) -> None:
    """A stop sequence taken from inside an unconstrained answer ends the answer there, and is named."""
    text = text_of(answer_json(ctx, anthropic_answer))
    stop = stop_string_from(text)
    if stop is None:
        raise NotChecked(f"not checked: the unconstrained answer {excerpt(text, 120)} has no word to stop at")
    body = {**rq.anthropic_body(ctx.target.models.chat), "stop_sequences": [stop]}
    exchange = send_message(ctx, body)
    stopped = message_json(
        ctx, exchange, f"the Messages request with stop_sequences [{as_json(stop)}]", owner=ctx.check.id
    )
    got, reason, sequence = text_of(stopped), stopped.get("stop_reason"), stopped.get("stop_sequence")
    received = f"text {excerpt(got, 200)}, stop_reason {as_json(reason)}, stop_sequence {as_json(sequence)}"
    if stop in got:
        raise Failure(
            title="the answer runs past its stop sequence",
            rule="anthropic-stop-sequence-ignored",
            expected=f"the text ends before {as_json(stop)} (stop_sequences [{as_json(stop)}]), "
            "which is not returned",
            received=received,
            exchange=exchange,
        )
    reported = Failure(
        title="an answer ended by its stop sequence does not say so",
        rule="anthropic-stop-sequence-reported",
        expected=f'stop_reason "stop_sequence" and stop_sequence {as_json(stop)}',
        received=received,
        exchange=exchange,
    )
    if reason == "stop_sequence":
        if sequence != stop:
            raise reported
        return
    before = text[: text.find(stop)].rstrip()
    if got.rstrip() == before:
        raise reported
    raise NotChecked(
        f"not checked: with stop_sequences [{as_json(stop)}] the answer ({as_json(reason)}) differs "
        f"from the unconstrained one and never reached {as_json(stop)}: {excerpt(got, 120)}"
    )


# --- 002's finish_reason mapping, both endpoints on the same request -----------------------------


@dataclass(frozen=True)
class Ending:
    """How one endpoint ended one request: its reason, output tokens and cap."""

    reason: Any
    tokens: int
    cap: int

    @property
    def state(self) -> str:
        """under, at or over the cap."""
        return "under" if self.tokens < self.cap else ("at" if self.tokens == self.cap else "over")


def chat_mirror(body: dict[str, Any]) -> dict[str, Any]:
    """The Messages request as a chat completion: the system prompt as the first message."""
    system = [{"role": "system", "content": body["system"]}] if body.get("system") else []
    return rq.chat_body(body["model"], [*system, *body["messages"]], max_tokens=body["max_tokens"])


def chat_ending(ctx: CheckContext, body: dict[str, Any]) -> Ending:
    """Send the chat mirror of ``body``; its finish_reason and usage, or not checked."""
    exchange = ctx.chat(chat_mirror(body))
    answered(exchange)
    answer = json_of(exchange)
    choices = as_dict(answer).get("choices")
    first = as_dict(choices[0]) if isinstance(choices, list) and choices else {}
    tokens = count(as_dict(as_dict(answer).get("usage")).get("completion_tokens"))
    if exchange.status != 200 or tokens is None or "finish_reason" not in first:
        raise NotChecked(
            "not checked: the same request on /v1/chat/completions gave no finish_reason and usage "
            f"to compare ({describe(exchange, 200)})"
        )
    return Ending(first["finish_reason"], tokens, sent_cap(exchange))


def message_ending(body: dict[str, Any], exchange: Exchange, owner: str) -> Ending:
    """A message's stop_reason and usage, or not checked (``owner`` reports a missing usage)."""
    tokens = output_tokens(body)
    if tokens is None:
        raise NotChecked(f"not checked: the message reports no usage.output_tokens ({owner} reports it)")
    return Ending(body.get("stop_reason"), tokens, sent_cap(exchange))


def mapping_verdict(row: str, message: Ending, chat: Ending) -> str | None:
    """Why the row cannot be judged here (None: it can), from each endpoint's own usage."""
    if "over" in (message.state, chat.state):
        return f"{row}: more output than max_tokens (reported by the checks of max_tokens)"
    if message.state != chat.state:
        return (
            f"{row}: the endpoints wrote answers of different lengths ({message.tokens} and {chat.tokens} "
            f"tokens for max_tokens {message.cap})"
        )
    if chat.reason not in FINISH_TO_STOP:
        return f"{row}: chat finish_reason {as_json(chat.reason)} has no row in 002's mapping"
    if chat.state == "under" and chat.reason != "stop":
        reason = as_json(chat.reason)
        return f"{row}: chat says {reason} under its cap (a chat completion finding, not the mapping's)"
    if row == "natural" and (
        message.reason not in STOP_REASONS or (message.reason == "max_tokens" and message.state == "under")
    ):
        return f"{row}: stop_reason {as_json(message.reason)} ({ANSWER_OWNER} reports it)"
    if row == "cut" and message.state == "at" and message.reason != "max_tokens":
        return f"{row}: stop_reason {as_json(message.reason)} at the cap ({CUT_OWNER} reports it)"
    return None


@check(
    "anthropic",
    f"{MAPPING} (end_turn <-> stop, max_tokens <-> length)",
    cost=Cost(2, rq.SHORT_TOKENS + rq.CUT_TOKENS),
    rules=("anthropic-finish-reason-mapping",),
)
@requires("anthropic")
def anthropic_finish_reason_mapping(
    ctx: CheckContext, anthropic_answer: Exchange, anthropic_cut: Exchange
) -> None:
    """The same request on both endpoints ends with mapped reasons: stop/end_turn, length/max_tokens."""
    model = ctx.target.models.chat
    rows = (
        ("natural", anthropic_answer, ANSWER_OWNER, rq.anthropic_body(model)),
        ("cut", anthropic_cut, CUT_OWNER, rq.anthropic_body(model, max_tokens=rq.CUT_TOKENS)),
    )
    unjudged: list[str] = []
    for row, exchange, owner, body in rows:
        status_owner = AUTH_OWNER if exchange is anthropic_answer else owner
        message = message_ending(
            message_json(ctx, exchange, "the Messages response", owner=owner, status_owner=status_owner),
            exchange,
            owner,
        )
        chat = chat_ending(ctx, body)
        why = mapping_verdict(row, message, chat)
        if why is not None:
            unjudged.append(why)
            continue
        expected = FINISH_TO_STOP[chat.reason]
        if chat.state == "at" and message.reason in FINISH_TO_STOP.values():
            continue  # at the cap both readings hold on each side: a natural end exactly there, or the cut
        if message.reason != expected:
            ctx.record(
                Failure(
                    title=f"/v1/messages says {as_json(message.reason)} where chat completions say "
                    f"{as_json(chat.reason)}",
                    rule="anthropic-finish-reason-mapping",
                    expected=f"stop_reason {as_json(expected)} for finish_reason {as_json(chat.reason)} "
                    f"({MAPPING}), "
                    f"the same request ending the same way ({row}: {chat.tokens} and {message.tokens} "
                    f"tokens, max_tokens {message.cap})",
                    received=f"stop_reason {as_json(message.reason)}; finish_reason {as_json(chat.reason)}",
                    exchange=exchange,
                )
            )
    if unjudged and not ctx.failures:
        raise NotChecked("not checked: " + "; ".join(unjudged))


# --- the stream ----------------------------------------------------------------------------------


@check(
    "anthropic",
    f"{STREAMING} (event payloads)",
    markers=("stream",),
    rules=(
        *STREAM_OWNER_RULES,
        "anthropic-invalid-json",
        "anthropic-not-an-object",
        "anthropic-malformed",
        "anthropic-unknown-event",
    ),
)
@requires("anthropic", "streaming")
def anthropic_stream_events_valid(ctx: CheckContext, anthropic_stream: MessageCapture) -> None:
    """The stream is 200 and complete, and every event's data is JSON valid against anthropic.stream.event."""
    capture_ = opened(ctx, anthropic_stream)
    record_event_schema(ctx, capture_)
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


@check(
    "anthropic",
    f"{STREAMING} (message_start first, message_stop last)",
    markers=("stream",),
    rules=(
        "anthropic-message-start-not-first",
        "anthropic-message-start-repeated",
        "anthropic-message-start-missing",
        "anthropic-message-stop-not-last",
        "anthropic-message-stop-missing",
    ),
)
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


@check(
    "anthropic",
    f"{STREAMING} (the event: name equals data.type)",
    markers=("stream",),
    rules=("anthropic-event-name-mismatch",),
)
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


BLOCK_RULES = (
    "block-start-repeated",
    "block-delta-without-start",
    "block-delta-after-stop",
    "block-stop-without-start",
    "block-not-stopped",
    "block-stop-repeated",
    "block-index-gap",
    "delta-type-mismatch",
    "tool-input-invalid",
)


@check(
    "anthropic",
    f"{STREAMING} (content_block_start -> content_block_delta* -> content_block_stop)",
    markers=("stream",),
    rules=tuple(f"anthropic-{rule}" for rule in BLOCK_RULES),
)
@requires("anthropic", "streaming")
def anthropic_stream_blocks(ctx: CheckContext, anthropic_stream: MessageCapture) -> None:
    """Each block runs start, deltas of its own type, stop, with one index; indices count 0, 1, 2..."""
    report_capture(
        ctx,
        opened(ctx, anthropic_stream),
        BLOCK_RULES,
        "a content block breaks the start/delta/stop grammar",
        "start -> delta* -> stop per block, deltas matching the block type (text -> text_delta)",
    )


@check(
    "anthropic",
    f"{STREAMING} (message_delta: stop_reason, usage)",
    markers=("stream",),
    rules=("anthropic-message-delta-missing", "anthropic-stop-reason-missing", "anthropic-usage-decreased"),
)
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


@check(
    "anthropic",
    f"{STREAMING} (message_start usage); Anthropic streaming",
    markers=("stream",),
    rules=("anthropic-stream-input-tokens",),
)
@requires("anthropic", "streaming")
def anthropic_stream_input_tokens(
    ctx: CheckContext, anthropic_answer: Exchange, anthropic_stream: MessageCapture
) -> None:
    """message_start's input_tokens equal the non-streaming input_tokens of the same request."""
    message = opened(ctx, anthropic_stream).message
    expected = count(as_dict(answer_json(ctx, anthropic_answer).get("usage")).get("input_tokens"))
    if expected is None:
        raise NotChecked(
            "not checked: the non-streaming message reports no usage.input_tokens "
            f"({ANSWER_OWNER} reports it)"
        )
    if message.start_usage is None or count(message.start_usage.get("input_tokens")) is None:
        raise NotChecked(
            f"not checked: no message_start usage.input_tokens ({EVENTS_OWNER} reports the event)"
        )
    got = message.start_usage["input_tokens"]
    if got != expected:
        final = message.usage.get("input_tokens")
        later = f"; message_delta later says {final}" if final != got else ""
        raise Failure(
            title="message_start does not carry the request's input_tokens",
            rule="anthropic-stream-input-tokens",
            expected=f"message_start usage.input_tokens {expected}, as the same request not streamed counts",
            received=f"message_start usage {as_json(message.start_usage)}{later}",
            exchange=anthropic_stream.exchange,
        )


@check(
    "anthropic",
    "Anthropic tool use (tool_choice, tool_use blocks, stop_reason tool_use); "
    "Anthropic streaming (input_json_delta)",
    cost=Cost(1, 64),
    markers=("tools", "stream"),
    rules=(
        *STREAM_OWNER_RULES,
        "anthropic-tool-use-missing",
        "anthropic-tool-input-invalid",
        "anthropic-tool-use-stop-reason",
    ),
)
@requires("anthropic", "streaming", "tools")
def anthropic_tool_use(ctx: CheckContext) -> None:
    """A forced tool streams a tool_use block whose input_json_delta make a JSON object, ending tool_use."""
    capture_ = opened(
        ctx, capture_messages(ctx, rq.anthropic_tool_body(ctx.target.models.chat)), ctx.check.id
    )
    record_event_schema(ctx, capture_)
    message = capture_.message
    calls = [b for b in message.content if b.get("type") == "tool_use"]
    if message.stop_reason == "max_tokens":
        raise NotChecked(
            f"not checked: the answer was cut by max_tokens ({len(calls)} tool_use blocks by then)"
        )
    if not any(b.get("name") == "get_weather" for b in calls):
        ctx.record(
            Failure(
                title="a forced tool_choice gave no tool_use block of that tool",
                rule="anthropic-tool-use-missing",
                expected="a tool_use block calling get_weather "
                '(tool_choice {"type": "tool", "name": "get_weather"})',
                received=f"content {as_json(message.content, 300)}, "
                f"stop_reason {as_json(message.stop_reason)}",
                exchange=capture_.exchange,
            )
        )
        return
    report_capture(
        ctx,
        capture_,
        ("tool-input-invalid",),
        "a tool_use block's input_json_delta fragments are not JSON",
        "partial_json fragments concatenating to the tool input, a JSON object",
    )
    for block in calls:
        if not isinstance(block.get("input"), dict):
            ctx.record(
                Failure(
                    title="a tool_use block's input is not a JSON object",
                    rule="anthropic-tool-input-invalid",
                    expected="input: a JSON object (the tool's input_schema is an object)",
                    received=f"input {as_json(block.get('input'), 200)}",
                    exchange=capture_.exchange,
                )
            )
    if message.stop_reason != "tool_use":
        ctx.record(
            Failure(
                title="a message ending with a tool call does not say stop_reason tool_use",
                rule="anthropic-tool-use-stop-reason",
                expected='stop_reason "tool_use" after the tool_use block',
                received=f"stop_reason {as_json(message.stop_reason)}",
                exchange=capture_.exchange,
            )
        )

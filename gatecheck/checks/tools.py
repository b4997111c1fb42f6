"""Tool calling and structured output on chat completions (000, 001, 004; OpenAI function calling).

No obedient model is assumed: a tool call or a JSON answer cut by max_tokens (``finish_reason:
"length"``, a valid prefix of a JSON object) is the token limit at work, not a broken answer; it is
retried once with a larger cap, else "not checked".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, NotChecked, PlanSettings, check, observation, requires
from gatecheck.checks.chat import completion, first_message, output_cap, shared_message
from gatecheck.checks.context import CheckContext
from gatecheck.checks.wire import as_dict, as_json, describe, excerpt, is_json_object_prefix
from gatecheck.schemas import issue_message

if TYPE_CHECKING:
    from gatecheck._types import JSONObject
    from gatecheck.client import Exchange

TOOL_CHOICE = "000 Request Parameters (tool_choice); OpenAI function calling"
TOOLS_BY_NAME = {t["function"]["name"]: t for t in (rq.WEATHER_TOOL, rq.TIME_TOOL)}
NEUTRAL_PROMPT = "Tell me something useful about Beijing."
REQUIRED_OWNER = "tools_choice_required"
"""The check that reports what makes the shared tool_choice "required" answer unreadable."""

_OWN_ANSWER_RULES = ("chat-status", "chat-not-json", "chat-choices")
_FINISH_RULES = ("tool-choice-finish-stop", "tool-call-finish-reason")
_CALL_RULES = ("tool-call-shape", "tool-arguments-invalid")


@observation(cost=Cost(1, 64))
def required_tool_answer(ctx: CheckContext) -> Exchange:
    """tool_choice "required" with two tools and a prompt that names neither."""
    body = rq.with_tools(ctx.target.models.chat, "required", [rq.WEATHER_TOOL, rq.TIME_TOOL])
    body["messages"] = rq.user(NEUTRAL_PROMPT)
    return ctx.chat(body)


@check("tools", TOOL_CHOICE, cost=Cost(1, 64), rules=(*_OWN_ANSWER_RULES, "tool-choice-none"))
@requires("tools")
def tools_choice_none(ctx: CheckContext) -> None:
    """tool_choice "none" gives a text answer without tool calls, even when the prompt asks for the tool."""
    exchange = ctx.chat(rq.with_tools(ctx.target.models.chat, "none"))
    body = completion(exchange, 'the tool_choice "none" completion')
    message = first_message(body, exchange)
    reason = body["choices"][0].get("finish_reason")
    if message.get("tool_calls") or reason == "tool_calls":
        ctx.record(
            Failure(
                title='tool_choice "none" was answered with a tool call',
                rule="tool-choice-none",
                expected="a text answer, no tool_calls, finish_reason other than tool_calls",
                received=f"tool_calls {as_json(message.get('tool_calls'))}, finish {as_json(reason)}",
                exchange=exchange,
            )
        )


@check(
    "tools",
    TOOL_CHOICE,
    cost=Cost(1, 64),
    rules=(*_OWN_ANSWER_RULES, "tool-choice-auto-empty", *_FINISH_RULES, *_CALL_RULES),
)
@requires("tools")
def tools_choice_auto(ctx: CheckContext) -> None:
    """tool_choice "auto": either a text answer or well-formed tool calls with finish_reason tool_calls."""
    exchange = ctx.chat(rq.with_tools(ctx.target.models.chat, "auto"))
    body = completion(exchange, 'the tool_choice "auto" completion')
    message = first_message(body, exchange)
    if message.get("tool_calls"):
        _check_finish(ctx, body, exchange)
        _check_calls(ctx, message, body, exchange, allowed=set(TOOLS_BY_NAME))
    elif not message.get("content"):
        ctx.record(
            Failure(
                title='tool_choice "auto" gave neither content nor tool calls',
                rule="tool-choice-auto-empty",
                expected="content or tool_calls",
                received=f"message {as_json(message)}",
                exchange=exchange,
            )
        )


@check("tools", TOOL_CHOICE, rules=(*_OWN_ANSWER_RULES, "tool-choice-required", *_FINISH_RULES))
@requires("tools")
def tools_choice_required(ctx: CheckContext, required_tool_answer: Exchange) -> None:
    """tool_choice "required" forces a tool call even when the prompt names no tool."""
    body, message = shared_message(
        ctx, required_tool_answer, 'the tool_choice "required" completion', REQUIRED_OWNER
    )
    if not message.get("tool_calls"):
        raise Failure(
            title='tool_choice "required" was answered without a tool call',
            rule="tool-choice-required",
            expected="at least one tool call",
            received=f"message {as_json(message)}",
            exchange=required_tool_answer,
        )
    _check_finish(ctx, body, required_tool_answer)


@check(
    "tools",
    TOOL_CHOICE,
    cost=Cost(1, 64),
    rules=(*_OWN_ANSWER_RULES, "tool-choice-named", *_FINISH_RULES, *_CALL_RULES),
)
@requires("tools")
def tools_choice_named(ctx: CheckContext) -> None:
    """A named tool_choice calls that function and no other, even when the prompt asks for another."""
    named = {"type": "function", "function": {"name": "get_local_time"}}
    exchange = ctx.chat(rq.with_tools(ctx.target.models.chat, named, [rq.WEATHER_TOOL, rq.TIME_TOOL]))
    body = completion(exchange, "the named tool_choice completion")
    message = first_message(body, exchange)
    names = [
        (c.get("function") or {}).get("name") for c in message.get("tool_calls") or [] if isinstance(c, dict)
    ]
    if not names or set(names) != {"get_local_time"}:
        raise Failure(
            title="the named tool_choice did not force get_local_time",
            rule="tool-choice-named",
            expected="tool calls of get_local_time only",
            received=f"tool calls of {as_json(names) if names else 'nothing'}",
            exchange=exchange,
        )
    _check_finish(ctx, body, exchange)
    _check_calls(ctx, message, body, exchange, allowed={"get_local_time"})


@check(
    "tools",
    "OpenAI function calling (arguments are JSON satisfying the parameters schema)",
    rules=_CALL_RULES,
)
@requires("tools")
def tools_arguments_valid(ctx: CheckContext, required_tool_answer: Exchange) -> None:
    """Every tool call has an id, type function, a known name and arguments satisfying the tool's schema."""
    body, message = shared_message(
        ctx, required_tool_answer, 'the tool_choice "required" completion', REQUIRED_OWNER
    )
    if not message.get("tool_calls"):
        raise NotChecked(
            f'not checked: the tool_choice "required" answer has no tool call ({REQUIRED_OWNER} reports it)'
        )
    if not _check_calls(ctx, message, body, required_tool_answer, allowed=set(TOOLS_BY_NAME)):
        raise NotChecked(
            "not checked: every tool call was cut inside its arguments by max_tokens (finish_reason length)"
        )


TOOL_RESULTS = {
    "one tool result": rq.tool_result_turn,
    "two tool results (the second as text parts)": rq.parallel_tool_results,
}
"""The tool-role conversations sent: 000's single call, and two calls answered in one turn."""


@check(
    "tools",
    "000 Message Roles (tool: tool call results); 004 Request Body (roles; content as text parts); "
    "OpenAI function calling",
    cost=Cost(len(TOOL_RESULTS), len(TOOL_RESULTS) * rq.SHORT_TOKENS),
    rules=("chat-not-json", "chat-choices", "tool-result-refused"),
)
@requires("tools")
def tools_result_turn(ctx: CheckContext) -> None:
    """Tool calls followed by their tool-role results (one, or two in a row) are accepted and answered."""
    for what, make in TOOL_RESULTS.items():
        exchange = ctx.chat(make(ctx.target.models.chat))
        try:
            if exchange.status != 200:
                raise Failure(
                    title=f"a conversation carrying {what} was answered {exchange.status or 'with nothing'}",
                    rule="tool-result-refused",
                    expected="HTTP 200 and an answer: tool messages carry the results of the assistant's "
                    "calls",
                    received=describe(exchange),
                    exchange=exchange,
                )
            first_message(completion(exchange, f"the completion after {what}"), exchange)
        except Failure as failure:
            ctx.record(failure)


@check(
    "tools",
    f"{TOOL_CHOICE}; OpenAI parallel function calling (each call its own id)",
    cost=Cost(1, 64),
    rules=(*_OWN_ANSWER_RULES, "tool-call-ids-distinct", *_FINISH_RULES, *_CALL_RULES),
)
@requires("tools")
def tools_parallel_calls(ctx: CheckContext) -> None:
    """Two tool calls in one answer have distinct ids and well-formed arguments (one call: not checked)."""
    exchange = ctx.chat(rq.parallel_tools(ctx.target.models.chat))
    body = completion(exchange, "the completion asking for two tools")
    message = first_message(body, exchange)
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    if len(calls) < 2:
        raise NotChecked(
            f"not checked: the model made {len(calls)} tool call(s) where two were asked for "
            f"({as_json([as_dict(c.get('function')).get('name') for c in calls])}); two are needed"
        )
    ids = [c.get("id") for c in calls]
    repeated = sorted({str(i) for i in ids if ids.count(i) > 1})
    if repeated:
        ctx.record(
            Failure(
                title=f"{len(calls)} tool calls of one answer share an id",
                rule="tool-call-ids-distinct",
                expected="a distinct id per tool call (each tool message answers one call by tool_call_id)",
                received=f"ids {as_json(ids)}",
                exchange=exchange,
            )
        )
    _check_finish(ctx, body, exchange)
    _check_calls(ctx, message, body, exchange, allowed=set(TOOLS_BY_NAME))


JSON_RETRY_TOKENS = 256
"""The larger cap a JSON answer cut at max_tokens is retried with (``--max-output-tokens`` caps it too)."""


def _json_cost(first_cap: int) -> Callable[[PlanSettings], Cost]:
    """One request, and a retry with a larger cap when the target's cap leaves room for one."""

    def cost(settings: PlanSettings) -> Cost:
        retry = min(JSON_RETRY_TOKENS, settings.max_output_tokens)
        return Cost(1, first_cap) + (Cost(1, retry) if retry > first_cap else Cost())

    return cost


@dataclass(frozen=True)
class JSONAnswer:
    """The content of a JSON-mode answer, parsed (``UNPARSABLE`` when it is not JSON), and its exchange."""

    content: Any
    value: Any
    exchange: Exchange


def json_answer(
    ctx: CheckContext, make_body: Callable[[int], JSONObject], first_cap: int, what: str
) -> JSONAnswer:
    """A JSON-mode answer; one cut by max_tokens inside a JSON object is retried once with a larger cap.

    Still cut after the retry (or no room for one under ``--max-output-tokens``): "not checked".
    """
    caps = [output_cap(ctx, first_cap)]
    retry = output_cap(ctx, JSON_RETRY_TOKENS)
    if retry > caps[0]:
        caps.append(retry)
    for cap in caps:
        exchange = ctx.chat(make_body(cap))
        body = completion(exchange, what)
        content = first_message(body, exchange).get("content")
        value = _parse_json(content)
        cut = body["choices"][0].get("finish_reason") == "length"
        if isinstance(value, dict) or not (
            cut and isinstance(content, str) and is_json_object_prefix(content)
        ):
            return JSONAnswer(content, value, exchange)
    raise NotChecked(
        f"not checked: {what} was cut at max_tokens={caps[-1]} (finish_reason length) inside a valid JSON "
        f"object ({excerpt(str(content), 200)}); raise --max-output-tokens to judge it"
    )


@check(
    "json",
    "001 JSON Mode Output; 000 Request Parameters (response_format)",
    cost=_json_cost(rq.SHORT_TOKENS),
    rules=(*_OWN_ANSWER_RULES, "json-mode-object"),
)
@requires("json_mode")
def json_object_mode(ctx: CheckContext) -> None:
    """response_format json_object returns content that parses as one JSON object (a cut is no fault)."""
    model = ctx.target.models.chat
    answer = json_answer(
        ctx, lambda cap: rq.json_mode(model, max_tokens=cap), rq.SHORT_TOKENS, "the JSON-mode completion"
    )
    if not isinstance(answer.value, dict):
        raise Failure(
            title="JSON mode did not return a JSON object",
            rule="json-mode-object",
            expected="message.content that parses as a JSON object (or, cut at max_tokens, begins one)",
            received=f"content {excerpt(str(answer.content))}",
            exchange=answer.exchange,
        )


@check(
    "json",
    "004 Request Body (response_format json_schema); OpenAI structured outputs",
    cost=_json_cost(rq.SCHEMA_TOKENS),
    rules=(*_OWN_ANSWER_RULES, "json-schema-output"),
)
@requires("json_schema")
def json_schema_output(ctx: CheckContext) -> None:
    """response_format json_schema returns content valid against the given schema (a cut is no fault)."""
    model = ctx.target.models.chat
    answer = json_answer(
        ctx,
        lambda cap: rq.json_schema_mode(model, max_tokens=cap),
        rq.SCHEMA_TOKENS,
        "the json_schema completion",
    )
    problem = schema_problem(rq.PERSON_SCHEMA, answer.value)
    if problem:
        raise Failure(
            title="the structured output does not satisfy the requested json_schema",
            rule="json-schema-output",
            expected=f"content valid against {json.dumps(rq.PERSON_SCHEMA)}",
            received=f"{problem}; content {excerpt(str(answer.content))}",
            exchange=answer.exchange,
        )


def schema_problem(schema: dict[str, Any], value: Any) -> str:
    """Why ``value`` (a parsed JSON value, or ``_UNPARSABLE``) fails ``schema``; "" if it passes."""
    if value is _UNPARSABLE:
        return "not JSON"
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(value))
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {issue_message(error)}"


_UNPARSABLE = object()


def _parse_json(text: Any) -> Any:
    if not isinstance(text, str):
        return _UNPARSABLE
    try:
        return json.loads(text)
    except ValueError:
        return _UNPARSABLE


def _check_finish(ctx: CheckContext, body: dict[str, Any], exchange: Exchange) -> None:
    """An answer with tool calls ends with tool_calls (or length: cut by max_tokens, as OpenAI says)."""
    reason = body["choices"][0].get("finish_reason")
    if reason in ("tool_calls", "length"):
        return
    ctx.record(
        Failure(
            title=f"a tool call ended with finish_reason {as_json(reason)}",
            rule="tool-choice-finish-stop" if reason == "stop" else "tool-call-finish-reason",
            expected='finish_reason "tool_calls" (OpenAI says "stop" for a forced call: profiles may warn)',
            received=f"finish_reason {as_json(reason)}",
            exchange=exchange,
        )
    )


def _check_calls(
    ctx: CheckContext, message: dict[str, Any], body: dict[str, Any], exchange: Exchange, allowed: set[str]
) -> int:
    """Judge each tool call's shape and arguments; returns how many calls were judged.

    A call whose arguments were cut by max_tokens (finish_reason length, a valid JSON object prefix)
    is not judged: the limit cut it, not the model or the gateway.
    """
    cut = body["choices"][0].get("finish_reason") == "length"
    judged = 0
    for position, call in enumerate(message.get("tool_calls") or []):
        call = call if isinstance(call, dict) else {}
        function = as_dict(call.get("function"))
        name = function.get("name")
        if not call.get("id") or call.get("type") != "function" or name not in allowed:
            judged += 1
            ctx.record(
                Failure(
                    title=f"tool call {position} is malformed",
                    rule="tool-call-shape",
                    expected=f'an id, type "function" and a name among {sorted(allowed)}',
                    received=as_json(call),
                    exchange=exchange,
                )
            )
            continue
        arguments = function.get("arguments")
        value = _parse_json(arguments)
        if value is _UNPARSABLE and cut and isinstance(arguments, str) and is_json_object_prefix(arguments):
            continue
        judged += 1
        schema = TOOLS_BY_NAME[name]["function"]["parameters"]
        problem = schema_problem(schema, value)
        if problem:
            ctx.record(
                Failure(
                    title=f"the arguments of tool call {position} ({name}) break its parameters schema",
                    rule="tool-arguments-invalid",
                    expected=f"arguments: a JSON string valid against {json.dumps(schema)}",
                    received=f"{problem}; arguments {excerpt(str(arguments))}",
                    exchange=exchange,
                )
            )
    return judged

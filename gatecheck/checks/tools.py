"""Tool calling and structured output on chat completions (000, 001, 004; OpenAI function calling)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jsonschema

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, check, observation, requires
from gatecheck.checks.chat import first_message, validated_completion
from gatecheck.checks.context import CheckContext
from gatecheck.checks.wire import as_dict, as_json
from gatecheck.schemas import issue_message

if TYPE_CHECKING:
    from gatecheck.client import Exchange

TOOL_CHOICE = "000 Request Parameters (tool_choice); OpenAI function calling"
TOOLS_BY_NAME = {t["function"]["name"]: t for t in (rq.WEATHER_TOOL, rq.TIME_TOOL)}
NEUTRAL_PROMPT = "Tell me something useful about Beijing."


@observation(cost=Cost(1, 64))
def required_tool_answer(ctx: CheckContext) -> Exchange:
    """tool_choice "required" with two tools and a prompt that names neither."""
    body = rq.with_tools(ctx.target.models.chat, "required", [rq.WEATHER_TOOL, rq.TIME_TOOL])
    body["messages"] = rq.user(NEUTRAL_PROMPT)
    return ctx.chat(body)


@check("tools", TOOL_CHOICE, cost=Cost(1, 64))
@requires("tools")
def tools_choice_none(ctx: CheckContext) -> None:
    """tool_choice "none" gives a text answer without tool calls, even when the prompt asks for the tool."""
    exchange = ctx.chat(rq.with_tools(ctx.target.models.chat, "none"))
    body = validated_completion(ctx, exchange, 'the tool_choice "none" completion')
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


@check("tools", TOOL_CHOICE, cost=Cost(1, 64))
@requires("tools")
def tools_choice_auto(ctx: CheckContext) -> None:
    """tool_choice "auto": either a text answer or well-formed tool calls with finish_reason tool_calls."""
    exchange = ctx.chat(rq.with_tools(ctx.target.models.chat, "auto"))
    body = validated_completion(ctx, exchange, 'the tool_choice "auto" completion')
    message = first_message(body, exchange)
    if message.get("tool_calls"):
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


@check("tools", TOOL_CHOICE)
@requires("tools")
def tools_choice_required(ctx: CheckContext, required_tool_answer: Exchange) -> None:
    """tool_choice "required" forces a tool call even when the prompt names no tool."""
    body = validated_completion(ctx, required_tool_answer, 'the tool_choice "required" completion')
    message = first_message(body, required_tool_answer)
    if not message.get("tool_calls"):
        raise Failure(
            title='tool_choice "required" was answered without a tool call',
            rule="tool-choice-required",
            expected="at least one tool call",
            received=f"message {as_json(message)}",
            exchange=required_tool_answer,
        )
    _check_finish(ctx, body, required_tool_answer)


@check("tools", TOOL_CHOICE, cost=Cost(1, 64))
@requires("tools")
def tools_choice_named(ctx: CheckContext) -> None:
    """A named tool_choice calls that function and no other, even when the prompt asks for another."""
    named = {"type": "function", "function": {"name": "get_local_time"}}
    exchange = ctx.chat(rq.with_tools(ctx.target.models.chat, named, [rq.WEATHER_TOOL, rq.TIME_TOOL]))
    body = validated_completion(ctx, exchange, "the named tool_choice completion")
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
    _check_calls(ctx, message, body, exchange, allowed={"get_local_time"})


@check("tools", "OpenAI function calling (arguments are JSON satisfying the parameters schema)")
@requires("tools")
def tools_arguments_valid(ctx: CheckContext, required_tool_answer: Exchange) -> None:
    """Every tool call has an id, type function, a known name and arguments satisfying the tool's schema."""
    body = validated_completion(ctx, required_tool_answer, 'the tool_choice "required" completion')
    message = first_message(body, required_tool_answer)
    if message.get("tool_calls"):  # no call at all is tools_choice_required's finding
        _check_calls(ctx, message, body, required_tool_answer, allowed=set(TOOLS_BY_NAME))


@check("tools", "000 Message Roles (tool); OpenAI function calling", cost=Cost(1, rq.SHORT_TOKENS))
@requires("tools")
def tools_result_turn(ctx: CheckContext) -> None:
    """An assistant tool call followed by a tool-role result is accepted and answered."""
    exchange = ctx.chat(rq.tool_result_turn(ctx.target.models.chat))
    body = validated_completion(ctx, exchange, "the completion after a tool result")
    first_message(body, exchange)


@check(
    "json", "001 JSON Mode Output; 000 Request Parameters (response_format)", cost=Cost(1, rq.SHORT_TOKENS)
)
@requires("json_mode")
def json_object_mode(ctx: CheckContext) -> None:
    """response_format json_object returns content that parses as one JSON object."""
    exchange = ctx.chat(rq.json_mode(ctx.target.models.chat))
    body = validated_completion(ctx, exchange, "the JSON-mode completion")
    content = first_message(body, exchange).get("content")
    parsed = _parse_json(content)
    if not isinstance(parsed, dict):
        raise Failure(
            title="JSON mode did not return a JSON object",
            rule="json-mode-object",
            expected="message.content that parses as a JSON object",
            received=f"content {as_json(content)}",
            exchange=exchange,
        )


@check("json", "004 Request Body (response_format json_schema); OpenAI structured outputs", cost=Cost(1, 64))
@requires("json_schema")
def json_schema_output(ctx: CheckContext) -> None:
    """response_format json_schema returns content valid against the given schema."""
    exchange = ctx.chat(rq.json_schema_mode(ctx.target.models.chat))
    body = validated_completion(ctx, exchange, "the json_schema completion")
    content = first_message(body, exchange).get("content")
    problem = schema_problem(rq.PERSON_SCHEMA, _parse_json(content))
    if problem:
        raise Failure(
            title="the structured output does not satisfy the requested json_schema",
            rule="json-schema-output",
            expected=f"content valid against {json.dumps(rq.PERSON_SCHEMA)}",
            received=f"{problem}; content {as_json(content)}",
            exchange=exchange,
        )


def schema_problem(schema: dict[str, Any], value: Any) -> str:
    """Why ``value`` (a parsed JSON value, or ``None`` when unparsable) fails ``schema``; "" if it passes."""
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
    reason = body["choices"][0].get("finish_reason")
    if reason == "tool_calls":
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
) -> None:
    _check_finish(ctx, body, exchange)
    for position, call in enumerate(message.get("tool_calls") or []):
        call = call if isinstance(call, dict) else {}
        function = as_dict(call.get("function"))
        name = function.get("name")
        if not call.get("id") or call.get("type") != "function" or name not in allowed:
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
        schema = TOOLS_BY_NAME[name]["function"]["parameters"]
        problem = schema_problem(schema, _parse_json(function.get("arguments")))
        if problem:
            ctx.record(
                Failure(
                    title=f"the arguments of tool call {position} ({name}) break its parameters schema",
                    rule="tool-arguments-invalid",
                    expected=f"arguments: a JSON string valid against {json.dumps(schema)}",
                    received=f"{problem}; arguments {as_json(function.get('arguments'))}",
                    exchange=exchange,
                )
            )

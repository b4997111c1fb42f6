"""What the double answers: chat completions, their streams, Anthropic messages and their events.

Shapes follow 000/001 (chat.completion, chat.completion.chunk, usage, tool_calls), 003
(reasoning_content deltas before content), 004 (usage only with include_usage) and 002 (the
Messages response, its event sequence and stop_reason mapping) plus the protocols they claim:
with include_usage the usage comes on an extra last chunk whose choices is empty (as OpenAI
sends it), tool calls stream as indexed fragments, tool use streams as input_json_delta. A stream
is a list of ``Event``s; the server sends them, pausing after each token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import model as lm
from .validate import ChatRequest, MessagesRequest

FINISH = {"natural": "stop", "stop_sequence": "stop", "cap": "length", "tool": "tool_calls"}
"""The model's finish -> OpenAI finish_reason (001 Field Reference)."""
STOP_REASON = {
    "natural": "end_turn",
    "stop_sequence": "stop_sequence",
    "cap": "max_tokens",
    "tool": "tool_use",
}
"""The model's finish -> Anthropic stop_reason (002 finish_reason Mapping; Anthropic)."""
EFFORT_WORDS = {"low": (3, 5), "medium": (6, 10), "high": (12, 18)}
SEARCH_SOURCE = "https://search.double.invalid/r/"


@dataclass(frozen=True)
class Event:
    """One SSE event to send; ``token`` events are paced."""

    data: str
    name: str | None = None
    token: bool = False


def new_id(prefix: str) -> str:
    """A fresh response id."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _last_text(messages: list[dict[str, Any]], role: str = "user") -> str:
    for message in reversed(messages):
        if message.get("role") == role:
            return lm.content_text(message.get("content"))
    return ""


def _choose_tool(
    names: list[str], mode: str, named: str | None, messages: list[dict[str, Any]], draw: lm.Draw
) -> str | None:
    """The model's own tool policy: forced -> that tool; required -> the one mentioned, else one by lot;
    auto -> a tool only when the last message is the user's and names it (never after a tool result)."""
    if not names or mode == "none":
        return None
    if named is not None:
        return named
    last = messages[-1] if messages else {}
    mentioned = next((n for n in names if n in _last_text(messages)), None)
    if mode == "required":
        return mentioned or names[draw.below(len(names))]
    return mentioned if last.get("role") == "user" else None


def _call(seed: str, name: str, schema: Any) -> lm.ToolCall:
    arguments = json.dumps(lm.instance(schema or {"type": "object"}, lm.Draw(seed + name)))
    return lm.ToolCall(f"call_{seed[:24]}", name, arguments)


def chat_intent(request: ChatRequest, index: int, quirks: frozenset[str], search: bool) -> lm.Intent:
    """What the model says to a chat request (choice ``index``): never what the prompt asks for."""
    salt = index if request.temperature > 0 else 0
    seed = lm.seed_of(
        request.model.id, request.messages, request.tools, request.response_format, request.json_schema, salt
    )
    reasoning = ""
    if request.model.reasoning:
        words = EFFORT_WORDS.get(request.reasoning_effort or "medium", EFFORT_WORDS["medium"])
        reasoning = "Considering: " + lm.sentence(seed + "reasoning", words)
    choice = request.tool_choice
    named = choice["function"]["name"] if isinstance(choice, dict) else None
    mode = "auto" if choice is None else ("named" if named else choice)
    tools = {t["function"]["name"]: t["function"].get("parameters") for t in request.tools}
    picked = _choose_tool(list(tools), mode, named, request.messages, lm.Draw(seed))
    if picked is not None:
        return lm.Intent(reasoning, calls=(_call(seed, picked, tools[picked]),))
    return lm.Intent(reasoning, text=_chat_text(request, seed, quirks, search))


def _chat_text(request: ChatRequest, seed: str, quirks: frozenset[str], search: bool) -> str:
    if request.response_format == "json_schema":
        return json.dumps(lm.instance(request.json_schema, lm.Draw(seed)))
    if request.response_format == "json_object":
        words = (40, 50) if "long-json" in quirks else (4, 8)
        return json.dumps({"reply": lm.sentence(seed, words), "source": "independent-double"})
    if search:
        return f"{lm.sentence(seed, (6, 12))} Sources: [1] {SEARCH_SOURCE}{seed[:8]}"
    return lm.sentence(seed, (40, 60) if "verbose" in quirks else (9, 20))


def chat_usage(prompt: int, generations: list[lm.Generation], reasoning: bool) -> dict[str, Any]:
    """001 usage: prompt, completion (reasoning included, 004) and total tokens."""
    completion = sum(g.tokens for g in generations)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reasoning:
        usage["completion_tokens_details"] = {
            "reasoning_tokens": sum(g.reasoning_tokens for g in generations)
        }
    return usage


def _tool_calls(generation: lm.Generation) -> list[dict[str, Any]]:
    return [
        {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in generation.calls
    ]


def chat_completion(
    request: ChatRequest, generations: list[lm.Generation], usage: dict[str, Any]
) -> dict[str, Any]:
    """001 Successful Response."""
    choices = []
    for index, generation in enumerate(generations):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if generation.calls else generation.text,
        }
        if request.model.reasoning:
            message["reasoning_content"] = generation.reasoning
        if generation.calls:
            message["tool_calls"] = _tool_calls(generation)
        choices.append({"index": index, "message": message, "finish_reason": FINISH[generation.finish]})
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model.id,
        "choices": choices,
        "usage": usage,
    }


def chat_stream(
    request: ChatRequest, generations: list[lm.Generation], usage: dict[str, Any], quirks: frozenset[str]
) -> Iterator[Event]:
    """000 Streaming SSE Chunks: role first, reasoning (003), content or tool-call fragments, finish,
    usage on an extra chunk when include_usage is set, then [DONE]."""
    head = {"id": new_id("chatcmpl-"), "object": "chat.completion.chunk", "created": int(time.time())}
    head["model_name" if "model-name-field" in quirks else "model"] = request.model.id

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, token: bool = False) -> Event:
        if "tool-calls-null" in quirks and "content" in delta:
            delta = {**delta, "tool_calls": None}
        if "index-in-delta" in quirks:
            choice: dict[str, Any] = {"delta": {"index": index, **delta}, "finish_reason": finish}
        else:
            choice = {"index": index, "delta": delta, "finish_reason": finish}
        return Event(json.dumps({**head, "choices": [choice]}), token=token)

    for index, generation in enumerate(generations):
        plain = not generation.calls and not generation.reasoning
        yield chunk(index, {"role": "assistant", "content": ""} if plain else {"role": "assistant"})
        for piece in lm.split_tokens(generation.reasoning):
            yield chunk(index, {"reasoning_content": piece}, token=True)
        for piece in lm.split_tokens(generation.text):
            yield chunk(index, {"content": piece}, token=True)
        for position, call in enumerate(generation.calls):
            header = {"index": position, "id": call.call_id, "type": "function"}
            yield chunk(index, {"tool_calls": [{**header, "function": {"name": call.name, "arguments": ""}}]})
            for piece in lm.split_tokens(call.arguments):
                fragment = {"index": position, "function": {"arguments": piece}}
                yield chunk(index, {"tool_calls": [fragment]}, token=True)
        yield chunk(index, {}, FINISH[generation.finish])
    if request.include_usage:
        yield Event(json.dumps({**head, "choices": [], "usage": usage}))
    yield Event("[DONE]")


def messages_intent(request: MessagesRequest, quirks: frozenset[str]) -> lm.Intent:
    """What the model says to a Messages request (no thinking: it was not asked for)."""
    seed = lm.seed_of(request.model.id, request.system, request.messages, request.tools)
    choice = request.tool_choice or {"type": "auto"}
    mode = {"any": "required", "tool": "named"}.get(choice["type"], choice["type"])
    tools = {t["name"]: t.get("input_schema") for t in request.tools}
    picked = _choose_tool(list(tools), mode, choice.get("name"), request.messages, lm.Draw(seed))
    if picked is not None:
        return lm.Intent(calls=(_call(seed, picked, tools[picked]),))
    return lm.Intent(text=lm.sentence(seed, (40, 60) if "verbose" in quirks else (9, 20)))


def _broken_tool_use(generation: lm.Generation, quirks: frozenset[str]) -> bool:
    return bool(generation.calls) and "anthropic-tool-use-broken" in quirks


def _tool_input(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return {}


def message(
    request: MessagesRequest, generation: lm.Generation, prompt: int, quirks: frozenset[str]
) -> dict[str, Any]:
    """002 Messages Response."""
    content: list[dict[str, Any]] = [
        {
            "type": "tool_use",
            "id": "toolu_" + c.call_id[5:],
            "name": c.name,
            "input": _tool_input(c.arguments),
        }
        for c in generation.calls
    ] or [{"type": "text", "text": generation.text}]
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": request.model.id,
        "content": content,
        "stop_reason": "end_turn" if _broken_tool_use(generation, quirks) else STOP_REASON[generation.finish],
        "stop_sequence": generation.matched,
        "usage": {"input_tokens": prompt, "output_tokens": generation.tokens},
    }


def message_stream(
    request: MessagesRequest, generation: lm.Generation, prompt: int, quirks: frozenset[str]
) -> Iterator[Event]:
    """002 Messages Streaming: message_start, a ping, each block's start/deltas/stop, message_delta,
    message_stop; every event named after its data's type."""

    def event(data: dict[str, Any], token: bool = False) -> Event:
        return Event(json.dumps(data), name=data["type"], token=token)

    whole = message(request, generation, prompt, quirks)
    start = {**whole, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {
        "input_tokens": 0 if "zero-input-tokens-start" in quirks else prompt,
        "output_tokens": 0,
    }
    yield event({"type": "message_start", "message": start})
    yield event({"type": "ping"})
    broken = _broken_tool_use(generation, quirks)
    for index, block in enumerate(whole["content"]):
        if block["type"] == "text":
            yield event(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            for piece in lm.split_tokens(block["text"]):
                yield event(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                    True,
                )
        else:
            opened = {**block, "input": {}}
            yield event({"type": "content_block_start", "index": index, "content_block": opened})
            arguments = generation.calls[index].arguments
            for piece in lm.split_tokens(arguments[:-1] if broken else arguments):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield event({"type": "content_block_delta", "index": index, "delta": delta}, True)
        yield event({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": whole["stop_reason"], "stop_sequence": whole["stop_sequence"]}
    yield event({"type": "message_delta", "delta": delta, "usage": {"output_tokens": generation.tokens}})
    yield event({"type": "message_stop"})

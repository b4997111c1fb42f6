"""The requests the checks send: prompts that give checkable answers from any model, capped output.

No check relies on the model obeying its prompt: the stop check takes its stop sequence from the
target's own unconstrained answer, the max_tokens check judges the target's own usage, and JSON
cut at max_tokens is told apart from JSON that is wrong. The counting prompt stays because it gives
long, plain answers from real models (and the reference model counts when asked to, see
docs/reference-gateway.md). Output is capped everywhere (``max_tokens``) so a run's token spend is
bounded and priced by ``--plan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatecheck._types import JSONObject
from gatecheck.checks.media import TINY_MP4, b64, data_url, pdf_document, png_image, wav_audio

SHORT_TOKENS = 48
"""Output cap for ordinary requests: long enough for a short natural answer to end by itself."""

CUT_TOKENS = 5
"""Output cap of the max_tokens check: most answers to the counting prompt are longer."""

SCHEMA_TOKENS = 64
"""Output cap of the structured-output request (a person object)."""

REASONING_CAP = 12
"""max_completion_tokens of the reasoning requests: reasoning plus answer is longer for most models."""

REASONING_EFFORTS = ("low", "medium", "high")
"""000/001 Request Parameters (reasoning_effort); 004 Request Body (common values)."""

COUNT_PROMPT = "Count from 1 to 20. Reply with only the numbers, separated by spaces."

WEATHER_TOOL: JSONObject = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather information for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
"""The tool of document 000 (Streaming with Tool Calls)."""

TIME_TOOL: JSONObject = {
    "type": "function",
    "function": {
        "name": "get_local_time",
        "description": "Get the local time in a city, as hours and minutes",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "format": {"type": "string", "enum": ["12h", "24h"]},
            },
            "required": ["city", "format"],
        },
    },
}

WEATHER_PROMPT = "What's the weather like in Beijing today? Use the get_weather tool."

PARALLEL_PROMPT = (
    "What's the weather like in Beijing today, and what is the local time in Tokyo? "
    "Call get_weather and get_local_time."
)

PERSON_SCHEMA: JSONObject = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"type": "string", "enum": ["Paris", "Tokyo", "Lima"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


def user(text: str) -> list[JSONObject]:
    """A one-message conversation."""
    return [{"role": "user", "content": text}]


def chat_body(
    model: str, messages: list[JSONObject], *, max_tokens: int = SHORT_TOKENS, **extra: Any
) -> JSONObject:
    """A chat completion request at temperature 0 (answers comparable across requests)."""
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, **extra}


def basic(model: str, **extra: Any) -> JSONObject:
    """A plain short question."""
    return chat_body(model, user("In one short sentence: what is a rainbow?"), **extra)


def counting(model: str, **extra: Any) -> JSONObject:
    """The counting prompt (for stop and max_tokens)."""
    return chat_body(model, user(COUNT_PROMPT), **extra)


def streaming(body: JSONObject, *, include_usage: bool = True) -> JSONObject:
    """``body`` as a stream request, with usage asked for by default."""
    made = {**body, "stream": True}
    if include_usage:
        made["stream_options"] = {"include_usage": True}
    return made


def json_mode(model: str, *, max_tokens: int = SHORT_TOKENS) -> JSONObject:
    """JSON mode, as 001 (JSON Mode Output) shows it."""
    return chat_body(
        model,
        [
            {"role": "system", "content": "Return the result as JSON with name and description fields."},
            {"role": "user", "content": "Describe the colour blue in JSON."},
        ],
        max_tokens=max_tokens,
        response_format={"type": "json_object"},
    )


def json_schema_mode(model: str, *, max_tokens: int = SCHEMA_TOKENS) -> JSONObject:
    """Structured output with a strict schema (004 Request Body, response_format json_schema)."""
    return chat_body(
        model,
        user("Invent a person living in Paris, Tokyo or Lima; answer in JSON with name, age and city."),
        max_tokens=max_tokens,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
    )


def with_tools(
    model: str, tool_choice: Any, tools: list[JSONObject] | None = None, **extra: Any
) -> JSONObject:
    """The weather question with tools and a tool_choice."""
    body = chat_body(model, user(WEATHER_PROMPT), max_tokens=64, tools=tools or [WEATHER_TOOL], **extra)
    body["tool_choice"] = tool_choice
    return body


def reasoning(model: str, effort: str, cap: int = REASONING_CAP) -> JSONObject:
    """The plain question to a reasoning model with ``reasoning_effort``, capped by max_completion_tokens.

    max_completion_tokens, not max_tokens: 004 recommends it for reasoning models (some refuse max_tokens).
    """
    body = basic(model, reasoning_effort=effort, max_completion_tokens=cap)
    del body["max_tokens"]
    return body


MEDIA_QUESTION = "What is in the attachment? Answer in one short sentence."

MEDIA_PARTS: dict[str, Callable[[], JSONObject]] = {
    "image_url": lambda: {"type": "image_url", "image_url": {"url": data_url("image/png", png_image())}},
    "input_audio": lambda: {
        "type": "input_audio",
        "input_audio": {"data": b64(wav_audio()), "format": "wav"},
    },
    "file": lambda: {
        "type": "file",
        "file": {"filename": "gatecheck.pdf", "file_data": data_url("application/pdf", pdf_document())},
    },
    "video_url": lambda: {"type": "video_url", "video_url": {"url": data_url("video/mp4", TINY_MP4)}},
}
"""004 Request Body (content: text, image_url, input_audio, file, video_url): each non-text part, small and
inline (no URL for the target to fetch)."""


def content_parts(model: str, media: str | None = None) -> JSONObject:
    """A user message whose content is an array: a text part, and the ``media`` part when given."""
    parts: list[JSONObject] = [{"type": "text", "text": MEDIA_QUESTION}]
    if media is not None:
        parts.append(MEDIA_PARTS[media]())
    return chat_body(model, [{"role": "user", "content": parts}], max_tokens=CUT_TOKENS)


def parallel_tools(model: str) -> JSONObject:
    """A question for two tools at once, a call required (a model may still choose one call)."""
    body = with_tools(model, "required", [WEATHER_TOOL, TIME_TOOL])
    body["messages"] = user(PARALLEL_PROMPT)
    return body


def multi_turn(model: str) -> JSONObject:
    """System, user, assistant, user: 001's Multi-Turn Conversation example."""
    return chat_body(
        model,
        [
            {"role": "system", "content": "You are a technical interviewer."},
            {"role": "user", "content": "I'd like to learn about React Hooks."},
            {"role": "assistant", "content": "React Hooks were introduced in React 16.8..."},
            {"role": "user", "content": "Can you explain useEffect in one sentence?"},
        ],
    )


def tool_result_turn(model: str) -> JSONObject:
    """A conversation that carries a tool call and its result back to the model (the tool role)."""
    return chat_body(
        model,
        [
            {"role": "user", "content": WEATHER_PROMPT},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_gatecheck_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Beijing"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_gatecheck_1",
                "content": '{"city": "Beijing", "sky": "sunny"}',
            },
        ],
        tools=[WEATHER_TOOL],
    )


def parallel_tool_results(model: str) -> JSONObject:
    """Two tool calls in one assistant turn, each answered by a tool message (the second as text parts)."""
    calls = [
        ("call_gatecheck_1", "get_weather", '{"city": "Beijing"}'),
        ("call_gatecheck_2", "get_local_time", '{"city": "Tokyo", "format": "24h"}'),
    ]
    return chat_body(
        model,
        [
            {"role": "user", "content": PARALLEL_PROMPT},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                    for call_id, name, arguments in calls
                ],
            },
            {"role": "tool", "tool_call_id": "call_gatecheck_1", "content": '{"sky": "sunny"}'},
            {
                "role": "tool",
                "tool_call_id": "call_gatecheck_2",
                "content": [{"type": "text", "text": '{"time": "14:05"}'}],
            },
        ],
        tools=[WEATHER_TOOL, TIME_TOOL],
    )


ANTHROPIC_SYSTEM = "You are a helpful assistant."
ANTHROPIC_QUESTION = "In one short sentence: what is a rainbow?"

ANTHROPIC_WEATHER_TOOL: JSONObject = {
    "name": "get_weather",
    "description": "Get weather information for a city",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}
"""000's get_weather in Anthropic's tool shape (name, description, input_schema)."""


def anthropic_body(model: str, *, max_tokens: int = SHORT_TOKENS, text: str = "", **extra: Any) -> JSONObject:
    """An Anthropic Messages request (002 Messages Request Example), at temperature 0."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": ANTHROPIC_SYSTEM,
        "messages": [{"role": "user", "content": text or ANTHROPIC_QUESTION}],
        "temperature": 0,
        **extra,
    }


def anthropic_tool_body(model: str) -> JSONObject:
    """The weather question with get_weather forced (Anthropic's tool_choice {type: tool})."""
    return anthropic_body(
        model,
        max_tokens=64,
        text=WEATHER_PROMPT,
        tools=[ANTHROPIC_WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    )

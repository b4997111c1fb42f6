"""Request validation: only what the five documents say, nothing from OpenAI's reference alone.

Chat completions (000/001 Request Parameters, 002 Chat Completions, 004 Request Body): model and
messages required; roles system/user/assistant/tool; content a string or 004's content parts;
temperature 0-2, top_p 0-1 (002), penalties -2..2, n and the output caps positive integers (no
upper bound on n: 128 is OpenAI's), stop a string or an array of strings (no count limit, empty
allowed: those are OpenAI's rules), tools as function definitions, tool_choice auto/none/required
or a named function (accepted without tools: that rejection is OpenAI's rule too),
response_format text/json_object/json_schema, reasoning_effort low/medium/high (000 lists them;
a model that does not reason ignores it, 004). Messages (002): model, messages (user/assistant)
and max_tokens required, temperature and top_p 0-1, stop_sequences an array. Images (002): model
and prompt required, n positive, size WxH, response_format url or b64_json. Unknown fields are
ignored (protocol compatibility); null for an optional field means "not given".

Judgement calls, each a 400: an empty messages array (nothing to answer), a named tool_choice
that names none of the given tools, more than 10 images or a side over 4096 pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from .catalog import MODELS, ApiError, Model, invalid

CHAT_ROLES = ("system", "user", "assistant", "tool")
MESSAGE_ROLES = ("user", "assistant")
PART_TYPES = ("text", "image_url", "input_audio", "file", "video_url")
FORMATS = ("text", "json_object", "json_schema")
EFFORTS = ("low", "medium", "high")
"""000 Request Parameters: reasoning_effort low, medium, high (004: "common values"; 000 lists them)."""
MAX_IMAGES = 10
MAX_SIDE = 4096


def need(condition: bool, message: str) -> None:
    """Raise 400 INVALID_PARAMS with ``message`` unless ``condition``."""
    if not condition:
        raise invalid(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    """An optional number within [low, high]."""
    value = body.get(name)
    if value is not None:
        need(_is_number(value), f"{name} must be a number")
        need(low <= value <= high, f"{name} must be between {low:g} and {high:g}, got {value}")


def positive_int(body: dict[str, Any], name: str) -> int | None:
    """An optional integer of at least 1."""
    value = body.get(name)
    if value is None:
        return None
    need(_is_int(value), f"{name} must be an integer")
    need(value >= 1, f"{name} must be at least 1, got {value}")
    return int(value)


def boolean(body: dict[str, Any], name: str) -> bool:
    """An optional boolean (default false)."""
    value = body.get(name)
    need(value is None or isinstance(value, bool), f"{name} must be a boolean")
    return bool(value)


def model_of(body: dict[str, Any], kind: str) -> Model:
    """The requested model: 400 when absent or of the wrong kind, 404 when unknown (002)."""
    name = body.get("model")
    need(isinstance(name, str) and bool(name), "model is required and must be a string")
    model = MODELS.get(str(name))
    if model is None:
        raise ApiError(404, "MODEL_NOT_FOUND", f"The model {name!r} does not exist or is offline")
    need(model.kind == kind, f"The model {name!r} cannot serve this endpoint (it is a {model.kind} model)")
    return model


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat completion (or search completion) request."""

    model: Model
    messages: list[dict[str, Any]]
    n: int
    cap: int | None
    stops: tuple[str, ...]
    stream: bool
    include_usage: bool
    tools: list[dict[str, Any]]
    tool_choice: Any
    response_format: str
    json_schema: Any
    reasoning_effort: str | None
    temperature: float


def chat_request(body: dict[str, Any], *, search: bool = False) -> ChatRequest:
    """Validate a chat completion request (002: a search request takes the same messages)."""
    model = model_of(body, "chat")
    if search:
        need(model.search, f"The model {model.id!r} does not support search")
    messages = chat_messages(body.get("messages"))
    for name, low, high in (
        ("temperature", 0, 2),
        ("top_p", 0, 1),
        ("presence_penalty", -2, 2),
        ("frequency_penalty", -2, 2),
    ):
        number(body, name, low, high)
    caps = [c for c in (positive_int(body, "max_tokens"), positive_int(body, "max_completion_tokens")) if c]
    stream = boolean(body, "stream")
    options = body.get("stream_options")
    need(options is None or isinstance(options, dict), "stream_options must be an object")
    include_usage = boolean(options or {}, "include_usage")
    tools = tool_list(body.get("tools"))
    response_format, schema = response_format_of(body.get("response_format"))
    effort = body.get("reasoning_effort")
    need(effort in (None, *EFFORTS), f"reasoning_effort must be one of {', '.join(EFFORTS)}")
    temperature = body.get("temperature")
    return ChatRequest(
        model=model,
        messages=messages,
        n=positive_int(body, "n") or 1,
        cap=min(caps) if caps else None,
        stops=stop_list(body.get("stop"), "stop"),
        stream=stream,
        include_usage=include_usage,
        tools=tools,
        tool_choice=tool_choice_of(body.get("tool_choice"), tools),
        response_format=response_format,
        json_schema=schema,
        reasoning_effort=effort,
        temperature=1.0 if temperature is None else float(temperature),
    )


def chat_messages(messages: Any) -> list[dict[str, Any]]:
    """000 Message Roles, 002 messages.role/content, 004 content parts."""
    need(isinstance(messages, list), "messages is required and must be an array")
    need(bool(messages), "messages must contain at least one message")
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        need(isinstance(message, dict), f"{where} must be an object")
        role = message.get("role")
        need(role in CHAT_ROLES, f"{where}.role must be one of {', '.join(CHAT_ROLES)}, got {role!r}")
        content = message.get("content")
        if role == "assistant" and content is None and message.get("tool_calls"):
            need(isinstance(message["tool_calls"], list), f"{where}.tool_calls must be an array")
            continue
        content_of(content, where)
    return cast(list[dict[str, Any]], messages)


def content_of(content: Any, where: str) -> None:
    """A string, or an array of 004's content parts."""
    if isinstance(content, str):
        return
    need(isinstance(content, list), f"{where}.content must be a string or an array of content parts")
    for index, part in enumerate(content):
        need(isinstance(part, dict), f"{where}.content[{index}] must be an object")
        kind = part.get("type")
        need(kind in PART_TYPES, f"{where}.content[{index}].type must be one of {', '.join(PART_TYPES)}")
        if kind == "text":
            need(isinstance(part.get("text"), str), f"{where}.content[{index}].text must be a string")


def stop_list(stop: Any, name: str) -> tuple[str, ...]:
    """A string or an array of strings (000: stop; 002: stop_sequences)."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    need(isinstance(stop, list), f"{name} must be a string or an array of strings")
    need(all(isinstance(s, str) for s in stop), f"every item of {name} must be a string")
    return tuple(stop)


def tool_list(tools: Any) -> list[dict[str, Any]]:
    """000 tools: function definitions with a name."""
    if tools is None:
        return []
    need(isinstance(tools, list), "tools must be an array")
    for index, tool in enumerate(tools):
        need(
            isinstance(tool, dict) and tool.get("type") == "function",
            f'tools[{index}].type must be "function"',
        )
        function = tool.get("function")
        need(isinstance(function, dict), f"tools[{index}].function must be an object")
        name = function.get("name")
        need(isinstance(name, str) and bool(name), f"tools[{index}].function.name must be a string")
        parameters = function.get("parameters")
        need(
            parameters is None or isinstance(parameters, dict),
            f"tools[{index}].function.parameters must be an object",
        )
    return cast(list[dict[str, Any]], tools)


def tool_choice_of(choice: Any, tools: list[dict[str, Any]]) -> Any:
    """000 tool_choice: auto, none, required, or a specific function."""
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    need(isinstance(choice, dict), "tool_choice must be auto, none, required or a function object")
    function = choice.get("function")
    need(
        choice.get("type") == "function"
        and isinstance(function, dict)
        and isinstance(function.get("name"), str),
        'a specific tool_choice is {"type": "function", "function": {"name": ...}}',
    )
    names = [t["function"]["name"] for t in tools]
    need(
        not tools or function["name"] in names,
        f"tool_choice names {function['name']!r}, not one of the tools",
    )
    return choice


def response_format_of(value: Any) -> tuple[str, Any]:
    """000/004 response_format: text, json_object, or json_schema with its schema."""
    if value is None:
        return "text", None
    need(isinstance(value, dict), "response_format must be an object")
    kind = value.get("type")
    need(kind in FORMATS, f"response_format.type must be one of {', '.join(FORMATS)}")
    if kind != "json_schema":
        return kind, None
    spec = value.get("json_schema")
    need(isinstance(spec, dict), "response_format.json_schema must be an object")
    schema = spec.get("schema")
    need(schema is None or isinstance(schema, dict), "response_format.json_schema.schema must be an object")
    return kind, schema or {"type": "object"}


@dataclass(frozen=True)
class MessagesRequest:
    """A validated Anthropic Messages request (002 Messages Parameters)."""

    model: Model
    messages: list[dict[str, Any]]
    system: Any
    cap: int
    stops: tuple[str, ...]
    stream: bool
    tools: list[dict[str, Any]]
    tool_choice: dict[str, Any] | None
    temperature: float


def messages_request(body: dict[str, Any]) -> MessagesRequest:
    """002 Messages Parameters (and Anthropic's tools, which its SDK sends)."""
    model = model_of(body, "chat")
    messages = cast(list[dict[str, Any]], body.get("messages"))
    need(isinstance(messages, list) and bool(messages), "messages is required and must be a non-empty array")
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        need(isinstance(message, dict), f"{where} must be an object")
        need(message.get("role") in MESSAGE_ROLES, f"{where}.role must be user or assistant")
        blocks(message.get("content"), f"{where}.content")
    system = body.get("system")
    if system is not None:
        blocks(system, "system")
    max_tokens = body.get("max_tokens")
    need(max_tokens is not None, "max_tokens is required")
    cap = positive_int(body, "max_tokens")
    number(body, "temperature", 0, 1)
    number(body, "top_p", 0, 1)
    stops = body.get("stop_sequences")
    need(stops is None or isinstance(stops, list), "stop_sequences must be an array of strings")
    tools = anthropic_tools(body.get("tools"))
    choice = body.get("tool_choice")
    need(
        choice is None
        or (isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none")),
        "tool_choice must be an object with type auto, any, tool or none",
    )
    if choice is not None and choice.get("type") == "tool":
        need(choice.get("name") in [t["name"] for t in tools], "tool_choice names none of the tools")
    temperature = body.get("temperature")
    return MessagesRequest(
        model=model,
        messages=messages,
        system=system,
        cap=cap or 1,
        stops=stop_list(stops, "stop_sequences"),
        stream=boolean(body, "stream"),
        tools=tools,
        tool_choice=choice,
        temperature=1.0 if temperature is None else float(temperature),
    )


def blocks(content: Any, where: str) -> None:
    """002: a string or content blocks (objects with a type; text blocks carry text)."""
    if isinstance(content, str):
        return
    need(isinstance(content, list), f"{where} must be a string or an array of content blocks")
    for index, block in enumerate(content):
        need(isinstance(block, dict) and isinstance(block.get("type"), str), f"{where}[{index}] needs a type")
        if block["type"] == "text":
            need(isinstance(block.get("text"), str), f"{where}[{index}].text must be a string")


def anthropic_tools(tools: Any) -> list[dict[str, Any]]:
    """Anthropic tools: a name and an input_schema object."""
    if tools is None:
        return []
    need(isinstance(tools, list), "tools must be an array")
    for index, tool in enumerate(tools):
        need(
            isinstance(tool, dict) and isinstance(tool.get("name"), str),
            f"tools[{index}].name must be a string",
        )
        need(isinstance(tool.get("input_schema"), dict), f"tools[{index}].input_schema must be an object")
    return cast(list[dict[str, Any]], tools)


_SIZE = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


@dataclass(frozen=True)
class ImagesRequest:
    """A validated image generation request (002 Images Generations)."""

    model: Model
    prompt: str
    n: int
    width: int
    height: int
    response_format: str


def images_request(body: dict[str, Any]) -> ImagesRequest:
    """002 Images Generations parameters."""
    model = model_of(body, "images")
    prompt = body.get("prompt")
    need(isinstance(prompt, str) and bool(prompt), "prompt is required and must be a string")
    n = positive_int(body, "n") or 1
    need(n <= MAX_IMAGES, f"n must be at most {MAX_IMAGES}")
    size = body.get("size") or "1024x1024"
    match = _SIZE.match(size) if isinstance(size, str) else None
    need(match is not None, "size must look like 1024x1024")
    assert match is not None
    width, height = int(match.group(1)), int(match.group(2))
    need(width <= MAX_SIDE and height <= MAX_SIDE, f"size must be at most {MAX_SIDE}x{MAX_SIDE}")
    response_format = body.get("response_format") or "url"
    need(response_format in ("url", "b64_json"), "response_format must be url or b64_json")
    return ImagesRequest(model, str(prompt), n, width, height, response_format)

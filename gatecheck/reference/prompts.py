"""Request bodies (already schema-validated, or lax) reduced to the fake model's ``Prompt``.

Defensive on purpose: with the ``validation-lax`` fault the body has not been range-checked, so
every read tolerates odd values instead of raising.
"""

from __future__ import annotations

from gatecheck._types import JSON, JSONObject
from gatecheck.reference.catalogue import ModelInfo
from gatecheck.reference.fakemodel import (
    MAX_ANSWER_TOKENS,
    MAX_OUTPUT_TOKENS,
    MEDIA_PART_TOKENS,
    REASONING_WORDS,
    VALUES_PER_TOKEN,
    Output,
    Prompt,
    Tool,
    ToolChoice,
    count_tokens,
)

MAX_CHOICES = 128
"""The most choices one request may ask for (OpenAI's limit on n)."""

_TEXT_PART_TYPES = ("text", "input_text")


def openai_prompt(body: JSONObject, model: ModelInfo) -> Prompt:
    """The Prompt of a Chat Completions (or search completions) request."""
    messages = [m for m in _list(body.get("messages")) if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    after_tool = last.get("role") == "tool"
    source = last if after_tool else next((m for m in reversed(messages) if m.get("role") == "user"), {})
    choice, name = _openai_tool_choice(body.get("tool_choice"))
    return Prompt(
        text=_text(source.get("content")),
        prompt_tokens=sum(_openai_message_tokens(m) for m in messages),
        after_tool_result=after_tool,
        tools=_openai_tools(body.get("tools")),
        tool_choice=choice,
        tool_name=name,
        parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        output=_openai_output(body.get("response_format")),
        json_schema=_openai_json_schema(body.get("response_format")),
        stop=_stops(body.get("stop")),
        max_tokens=_max_tokens(body.get("max_tokens"), body.get("max_completion_tokens")),
        ignore_eos=body.get("ignore_eos") is True,
        reasoning_words=_reasoning_words(body.get("reasoning_effort")) if model.reasoning else 0,
        n=min(max(_int(body.get("n"), 1), 1), MAX_CHOICES),
    )


def anthropic_prompt(body: JSONObject) -> Prompt:
    """The Prompt of an Anthropic Messages request (one choice, no reasoning)."""
    messages = [m for m in _list(body.get("messages")) if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    results = [
        b for b in _list(last.get("content")) if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    after_tool = last.get("role") == "user" and bool(results)
    source = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    choice, name = _anthropic_tool_choice(body.get("tool_choice"))
    system_tokens = _content_tokens(body.get("system"))
    return Prompt(
        text=" ".join(_text(r.get("content")) for r in results)
        if after_tool
        else _text(source.get("content")),
        prompt_tokens=system_tokens + sum(_content_tokens(m.get("content")) for m in messages),
        after_tool_result=after_tool,
        tools=_anthropic_tools(body.get("tools")),
        tool_choice=choice,
        tool_name=name,
        parallel_tool_calls=not (
            isinstance(body.get("tool_choice"), dict)
            and body["tool_choice"].get("disable_parallel_tool_use") is True
        ),
        stop=_stops(body.get("stop_sequences")),
        max_tokens=_max_tokens(body.get("max_tokens"), None),
    )


def answer_work(body: JSONObject, *, honour_max_tokens: bool = True) -> int:
    """An upper bound of the work of answering ``body`` (chat or messages), read from the body alone.

    Tokens of all choices (n x each one's cap), times VALUES_PER_TOKEN when JSON instances are made
    (a json_schema answer or tool calls). The gateway answers on its event loop only when this is
    small; generating 8,192 tokens takes about 5 ms.
    """
    n = min(max(_int(body.get("n"), 1), 1), MAX_CHOICES)
    cap = (
        _max_tokens(body.get("max_tokens"), body.get("max_completion_tokens")) if honour_max_tokens else None
    )
    tokens = n * min(cap or MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS, MAX_ANSWER_TOKENS // n)
    output = body.get("response_format")
    schema = isinstance(output, dict) and output.get("type") == "json_schema"
    return tokens * VALUES_PER_TOKEN if schema or _list(body.get("tools")) else tokens


def _list(value: JSON) -> list[JSON]:
    return value if isinstance(value, list) else []


def _int(value: JSON, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _text(content: JSON) -> str:
    """The text of a message content: the string, or its text parts joined by spaces."""
    if isinstance(content, str):
        return content
    texts = [
        p.get("text") for p in _list(content) if isinstance(p, dict) and p.get("type") in _TEXT_PART_TYPES
    ]
    return " ".join(t for t in texts if isinstance(t, str))


def _content_tokens(content: JSON) -> int:
    """Words of the text parts, MEDIA_PART_TOKENS per other part; tool blocks count their text."""
    if isinstance(content, str):
        return count_tokens(content)
    total = 0
    for part in _list(content):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
            total += count_tokens(part["text"])
        elif kind == "tool_result":
            total += _content_tokens(part.get("content"))
        elif kind == "tool_use":
            total += 1 + count_tokens(str(part.get("input")))
        else:
            total += MEDIA_PART_TOKENS
    return total


def _openai_message_tokens(message: JSONObject) -> int:
    calls = [c for c in _list(message.get("tool_calls")) if isinstance(c, dict)]
    arguments = [c.get("function", {}).get("arguments") for c in calls if isinstance(c.get("function"), dict)]
    return _content_tokens(message.get("content")) + sum(
        1 + count_tokens(a) for a in arguments if isinstance(a, str)
    )


def _openai_tools(tools: JSON) -> tuple[Tool, ...]:
    out = []
    for tool in _list(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            params = function.get("parameters")
            out.append(Tool(function["name"], params if isinstance(params, dict) else {"type": "object"}))
    return tuple(out)


def _anthropic_tools(tools: JSON) -> tuple[Tool, ...]:
    out = []
    for tool in _list(tools):
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            schema = tool.get("input_schema")
            out.append(Tool(tool["name"], schema if isinstance(schema, dict) else {"type": "object"}))
    return tuple(out)


def _openai_tool_choice(value: JSON) -> tuple[ToolChoice, str | None]:
    if value in ("none", "auto", "required"):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        name = value["function"].get("name")
        if isinstance(name, str):
            return "named", name
    return "auto", None


def _anthropic_tool_choice(value: JSON) -> tuple[ToolChoice, str | None]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "tool" and isinstance(value, dict) and isinstance(value.get("name"), str):
        return "named", value["name"]
    mapping: dict[JSON, ToolChoice] = {"any": "required", "none": "none"}
    return mapping.get(kind, "auto"), None


def _openai_output(response_format: JSON) -> Output:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return "json_object"
    return "json_schema" if kind == "json_schema" else "text"


def _openai_json_schema(response_format: JSON) -> JSON:
    if not isinstance(response_format, dict) or not isinstance(response_format.get("json_schema"), dict):
        return None
    schema = response_format["json_schema"].get("schema")
    return schema if isinstance(schema, dict) else None


def _stops(value: JSON) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else _list(value)
    return tuple(v for v in values if isinstance(v, str) and v)


def _max_tokens(max_tokens: JSON, max_completion_tokens: JSON) -> int | None:
    """The smaller of max_tokens and max_completion_tokens when both are given; at least 1."""
    given = [v for v in (max_tokens, max_completion_tokens) if isinstance(v, int) and not isinstance(v, bool)]
    return max(min(given), 1) if given else None


def _reasoning_words(effort: JSON) -> int:
    return REASONING_WORDS.get(effort if isinstance(effort, str) else "medium", REASONING_WORDS["medium"])

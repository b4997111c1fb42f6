"""The double's own model: deterministic, disobedient, and counting about 4 characters per token.

Written from shared/api-docs alone, as a second opinion on gatecheck's verdicts. A reply is a
sentence drawn from a fixed vocabulary by a hash of the conversation, never the answer the prompt
asks for (asked to count to 20, it does not count; asked for "name and description" fields, it
returns its own object), so a check that only passes on an obedient model shows it here. Tokens are
not words: a token is 4 characters of text (the last one may be shorter), the same rule for prompts,
replies, usage, caps and rate limits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4
DEFAULT_CAP = 4096
"""The output cap when a request sets none (000: max_tokens defaults to the model's default)."""

MESSAGE_OVERHEAD = 3
"""Tokens a message costs beyond its text (role and separators), as chat formats do."""
PART_COST = {"image_url": 85, "input_audio": 100, "file": 100, "video_url": 200}
"""Flat prompt cost of a non-text content part (004 multimodal parts)."""

VOCABULARY = (
    "amber", "harbor", "quietly", "lantern", "copper", "gull", "tide", "meadow", "silver", "orchard",
    "ferry", "granite", "willow", "compass", "drifting", "velvet", "beacon", "canyon", "maple", "ember",
    "river", "signal", "paper", "window", "thunder", "garden", "marble", "voyage", "cedar", "glacier",
    "hollow", "kettle", "lagoon", "mosaic", "nectar", "pebble", "quarry", "ribbon", "saddle", "timber",
    "violet", "wander", "yonder", "zephyr", "basalt", "cobalt", "dune", "fjord", "grove", "heron",
)  # fmt: skip
"""Words the double speaks: no digits, so a reply never contains a number the prompt asked for."""

STRING_VALUES = ("Lima", "Paris", "Tokyo", "Oslo", "Quito", "Accra")


class Draw:
    """A deterministic stream of integers from a seed (SHA-256 in counter mode)."""

    def __init__(self, seed: str) -> None:
        self._seed = seed.encode()
        self._counter = 0

    def below(self, bound: int) -> int:
        """An integer in [0, bound)."""
        self._counter += 1
        digest = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        return int.from_bytes(digest[:8], "big") % max(1, bound)

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + self.below(high - low + 1)


def count_tokens(text: str) -> int:
    """Tokens in ``text``: one per 4 characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def split_tokens(text: str) -> list[str]:
    """``text`` as its tokens, in order (what a stream sends one delta at a time)."""
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def first_tokens(text: str, tokens: int) -> str:
    """The text of the first ``tokens`` tokens."""
    return text[: max(0, tokens) * CHARS_PER_TOKEN]


def sentence(seed: str, words: tuple[int, int] = (9, 20)) -> str:
    """A sentence of vocabulary words chosen by ``seed``."""
    draw = Draw(seed)
    chosen = [VOCABULARY[draw.below(len(VOCABULARY))] for _ in range(draw.between(*words))]
    return " ".join(chosen).capitalize() + "."


def seed_of(*parts: Any) -> str:
    """A seed from any JSON-able parts of a request (stable across key order)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def content_tokens(content: Any) -> int:
    """Prompt tokens of one message content, flat costs for non-text parts included."""
    tokens = count_tokens(content_text(content))
    if isinstance(content, list):
        tokens += sum(PART_COST.get(str(part.get("type")), 0) for part in content if isinstance(part, dict))
    return tokens


def prompt_tokens(messages: Sequence[dict[str, Any]], system: Any = None, tools: Any = None) -> int:
    """Prompt tokens of a conversation (system, messages with their tool calls, tool definitions)."""
    total = MESSAGE_OVERHEAD
    if system:
        total += MESSAGE_OVERHEAD + content_tokens(system)
    for message in messages:
        total += MESSAGE_OVERHEAD + content_tokens(message.get("content"))
        if message.get("tool_calls"):
            total += count_tokens(json.dumps(message["tool_calls"]))
    if tools:
        total += count_tokens(json.dumps(tools))
    return total


def instance(schema: Any, draw: Draw, depth: int = 0) -> Any:
    """A value satisfying a (simple) JSON schema: what the model puts in tool arguments and JSON output."""
    if not isinstance(schema, dict) or depth > 6:
        return STRING_VALUES[draw.below(len(STRING_VALUES))]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][draw.below(len(schema["enum"]))]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(combinator), list) and schema[combinator]:
            return instance(schema[combinator][0], draw, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _typed_instance(kind, schema, draw, depth)


def _typed_instance(kind: Any, schema: dict[str, Any], draw: Draw, depth: int) -> Any:
    if kind == "object" or (kind is None and "properties" in schema):
        properties: dict[str, Any] = (
            schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        )
        return {name: instance(sub, draw, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        items: int = schema["minItems"] if isinstance(schema.get("minItems"), int) else 1
        return [instance(schema.get("items"), draw, depth + 1) for _ in range(max(1, items))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        value = draw.between(int(low), int(high)) if high >= low else int(high)
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return draw.below(2) == 1
    if kind == "null":
        return None
    text = STRING_VALUES[draw.below(len(STRING_VALUES))]
    min_length: int = schema["minLength"] if isinstance(schema.get("minLength"), int) else 0
    return (text * (1 + min_length // len(text)))[: max(min_length, len(text))]


@dataclass(frozen=True)
class ToolCall:
    """A function call the model makes: its name and its arguments as a JSON string."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Intent:
    """What the model would say with no cap and no stop sequence."""

    reasoning: str = ""
    text: str = ""
    calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class Generation:
    """What the model says under a cap and stop sequences.

    ``finish`` is neutral: "natural" (it ended by itself), "stop_sequence" (``matched`` was
    generated and cut off), "cap" (the output cap was reached), "tool" (it called tools); each API
    maps it to its own vocabulary.
    """

    reasoning: str
    text: str
    calls: tuple[ToolCall, ...]
    finish: str
    tokens: int
    reasoning_tokens: int
    matched: str | None = None


def realise(intent: Intent, cap: int | None, stops: Sequence[str]) -> Generation:
    """Apply the output cap (reasoning counts against it, 004) and the stop sequences to an intent."""
    budget = DEFAULT_CAP if cap is None else cap
    reasoning_tokens = count_tokens(intent.reasoning)
    if reasoning_tokens >= budget and (intent.text or intent.calls or reasoning_tokens > budget):
        return Generation(first_tokens(intent.reasoning, budget), "", (), "cap", budget, budget)
    left = budget - reasoning_tokens
    if intent.calls:
        return _realise_calls(intent, left, reasoning_tokens)
    hit = _first_stop(intent.text, stops)
    if hit is not None and hit[0] + len(hit[1]) <= left * CHARS_PER_TOKEN:
        position, matched = hit
        used = count_tokens(intent.text[: position + len(matched)])
        return Generation(
            intent.reasoning,
            intent.text[:position],
            (),
            "stop_sequence",
            reasoning_tokens + used,
            reasoning_tokens,
            matched,
        )
    if count_tokens(intent.text) > left:
        text = first_tokens(intent.text, left)
        return Generation(intent.reasoning, text, (), "cap", budget, reasoning_tokens)
    used = count_tokens(intent.text)
    return Generation(intent.reasoning, intent.text, (), "natural", reasoning_tokens + used, reasoning_tokens)


def _realise_calls(intent: Intent, left: int, reasoning_tokens: int) -> Generation:
    calls: list[ToolCall] = []
    used = 0
    for call in intent.calls:
        cost = count_tokens(call.name) + count_tokens(call.arguments)
        if used + cost > left:
            room = max(0, left - used - count_tokens(call.name))
            calls.append(ToolCall(call.call_id, call.name, first_tokens(call.arguments, room)))
            return Generation(
                intent.reasoning, "", tuple(calls), "cap", reasoning_tokens + left, reasoning_tokens
            )
        calls.append(call)
        used += cost
    return Generation(intent.reasoning, "", tuple(calls), "tool", reasoning_tokens + used, reasoning_tokens)


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """The earliest stop sequence in ``text`` (position, sequence); the longest wins a tie."""
    found = [(text.find(s), -len(s), s) for s in stops if s and s in text]
    if not found:
        return None
    position, _, matched = min(found)
    return position, matched

"""The deterministic fake model behind every endpoint (sans-IO: a request in, a completion out).

Token rule: one whitespace-separated word is one token, for prompts and completions alike; a
non-text content part (image, audio, file, video) costs ``MEDIA_PART_TOKENS``. A completion is
a list of pieces, each exactly one token, whose concatenation is the text, so the streamed and the
non-streamed answers are the same text and ``completion_tokens`` is the number of deltas.

Reply rule (see docs/reference-gateway.md): a prompt that says "count from A to B" (or "count to
B") is answered with the integers A..B separated by spaces; any other prompt is answered by
echoing the words of the last user message cyclically up to ``reply_words`` words (choice ``i``
starts ``i`` words later). After a tool result the reply echoes the tool result. A prompt with
``sources`` (search completions) ends its text reply with them: ``Sources: [1] <url>``.
Temperature and the sampling parameters do not change the answer.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from gatecheck._types import JSON, JSONObject
from gatecheck.reference.instances import instance, invalid_instance

MEDIA_PART_TOKENS = 85
"""Tokens charged for each non-text content part (OpenAI's low-detail image cost)."""

MAX_COUNT_WORDS = 4096
"""A counting reply stops after this many numbers even when the prompt asks for more."""

MAX_OUTPUT_TOKENS = 32_768
"""No completion is longer, whatever max_tokens and ignore_eos say."""

REASONING_WORDS = {"low": 8, "medium": 16, "high": 32}
"""Reasoning tokens a reasoning model spends per reasoning_effort (default medium)."""

FALLBACK_WORDS = ("Hello", "from", "the", "gatecheck", "reference", "gateway.")
"""Echoed when the last user message has no words (only media parts, or empty)."""

Output = Literal["text", "json_object", "json_schema"]
ToolChoice = Literal["none", "auto", "required", "named"]
Finish = Literal["stop", "length", "tool_calls"]

_COUNT_RE = re.compile(r"\bcount(?:\s+from\s+(-?\d+))?\s+to\s+(-?\d+)", re.IGNORECASE)
_PIECE_RE = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the request offers: its name and its parameters (JSON Schema)."""

    name: str
    schema: JSONObject


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request reduced to what the fake model needs, the same for both API dialects."""

    text: str
    prompt_tokens: int
    after_tool_result: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    tool_name: str | None = None
    parallel_tool_calls: bool = True
    output: Output = "text"
    json_schema: JSON = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    ignore_eos: bool = False
    reasoning_words: int = 0
    n: int = 1
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call: its name (one token) and its argument pieces (one token each)."""

    name: str
    fragments: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


@dataclass(frozen=True, slots=True)
class Completion:
    """One choice's answer as token pieces, with why it ended."""

    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    finish: Finish
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def tokens(self) -> int:
        """completion_tokens: reasoning + content + one per tool name + argument pieces."""
        return len(self.reasoning) + len(self.content) + sum(1 + len(c.fragments) for c in self.tool_calls)


QUIRK_FAULTS = {
    "ignore_stop": "ignore-stop",
    "ignore_max_tokens": "ignore-max-tokens",
    "ignore_response_format": "ignore-response-format",
    "break_json_schema": "ignore-json-schema",
    "break_tool_args": "tool-args-invalid",
    "ignore_tool_choice": "ignore-tool-choice",
    "cap_excludes_reasoning": "reasoning-outside-cap",
}
"""Quirks field -> the fault mode that sets it (``prefix_word`` is set for stream-nondeterministic)."""


@dataclass(frozen=True, slots=True)
class Quirks:
    """Deviations the fault modes ask of the model itself (everything else is rendering)."""

    ignore_stop: bool = False
    ignore_max_tokens: bool = False
    ignore_response_format: bool = False
    break_json_schema: bool = False
    break_tool_args: bool = False
    ignore_tool_choice: bool = False
    cap_excludes_reasoning: bool = False
    prefix_word: str | None = None


def count_tokens(text: str) -> int:
    """The token rule: whitespace-separated words (fast enough for a million-word prompt)."""
    return len(text.split())


def pieces(text: str) -> tuple[str, ...]:
    """``text`` cut into one-word pieces (leading spaces kept) that concatenate back to it."""
    parts = _PIECE_RE.findall(text)
    tail = text[len(text.rstrip()) :]
    if parts and tail:
        parts[-1] += tail
    return tuple(parts)


def complete(prompt: Prompt, choice: int, reply_words: int, quirks: Quirks = Quirks()) -> Completion:
    """The answer of choice ``choice`` to ``prompt``: deterministic, bounded, honouring the limits."""
    budget = None if prompt.max_tokens is None or quirks.ignore_max_tokens else prompt.max_tokens
    budget = MAX_OUTPUT_TOKENS if budget is None else min(budget, MAX_OUTPUT_TOKENS)
    reasoning = pieces(_reasoning_text(prompt)) if prompt.reasoning_words else ()
    if not quirks.cap_excludes_reasoning:
        if len(reasoning) >= budget:
            return Completion(reasoning[: max(budget, 0)], (), (), "length")
        budget -= len(reasoning)
    tools = chosen_tools(prompt, ignore_forcing=quirks.ignore_tool_choice)
    if tools:
        calls, cut = _tool_calls(prompt, tools, budget, quirks)
        return Completion(reasoning, (), calls, "length" if cut else "tool_calls")
    text = _content_text(prompt, choice, reply_words, budget, quirks)
    text, matched = (text, None) if quirks.ignore_stop else _cut_at_stop(text, prompt.stop)
    content = pieces(text)
    if len(content) > budget:
        return Completion(reasoning, content[:budget], (), "length")
    return Completion(reasoning, content, (), "stop", matched)


def chosen_tools(prompt: Prompt, *, ignore_forcing: bool = False) -> tuple[Tool, ...]:
    """Which tools the model calls (see the tool rule in docs/reference-gateway.md).

    ``ignore_forcing`` (the ignore-tool-choice fault) answers required/named with no call at all.
    """
    if not prompt.tools or prompt.tool_choice == "none":
        return ()
    if ignore_forcing and prompt.tool_choice in ("required", "named"):
        return ()
    if prompt.tool_choice == "named":
        return tuple(t for t in prompt.tools if t.name == prompt.tool_name)[:1]
    if prompt.after_tool_result and prompt.tool_choice == "auto":
        return ()
    lowered = prompt.text.lower()
    mentioned = tuple(t for t in prompt.tools if t.name.lower() in lowered)
    if not mentioned and (prompt.tool_choice == "required" or len(prompt.tools) == 1):
        mentioned = prompt.tools[:1]
    return mentioned if prompt.parallel_tool_calls else mentioned[:1]


def reply_source(prompt: Prompt) -> list[str]:
    """The words an answer is made of: the last user message's (or the tool result's)."""
    return prompt.text.split() or list(FALLBACK_WORDS)


def _reasoning_text(prompt: Prompt) -> str:
    words = itertools.chain(["Considering:"], itertools.cycle(reply_source(prompt)))
    return " ".join(itertools.islice(words, prompt.reasoning_words))


def _content_text(prompt: Prompt, choice: int, reply_words: int, budget: int, quirks: Quirks) -> str:
    output = "text" if quirks.ignore_response_format else prompt.output
    words = _reply_words(prompt, choice, reply_words, budget)
    if output == "json_object" or (output == "json_schema" and not prompt.json_schema):
        return json.dumps({"answer": " ".join(words)})
    if output == "json_schema":
        if quirks.break_json_schema:
            found, bad = invalid_instance(prompt.json_schema, words)
            return json.dumps(bad) if found else " ".join(words)
        return json.dumps(instance(prompt.json_schema, words))
    if quirks.prefix_word:
        words = [quirks.prefix_word, *words]
    if prompt.sources:
        words += ["Sources:", *(f"[{i}] {url}" for i, url in enumerate(prompt.sources, start=1))]
    return " ".join(words)


def _reply_words(prompt: Prompt, choice: int, reply_words: int, budget: int) -> list[str]:
    stream, natural = _word_stream(prompt, choice, reply_words)
    length = budget + _stop_slack(prompt) if prompt.ignore_eos else min(natural, budget + _stop_slack(prompt))
    return list(itertools.islice(stream, length))


def _stop_slack(prompt: Prompt) -> int:
    """Extra words generated past the budget so a stop sequence there still wins over 'length'."""
    return 1 + max((count_tokens(s) for s in prompt.stop), default=0)


def _word_stream(prompt: Prompt, choice: int, reply_words: int) -> tuple[Iterator[str], int]:
    """An endless word source and its natural length (where the model would end by itself)."""
    match = _COUNT_RE.search(prompt.text) if not prompt.after_tool_result else None
    if match is not None:
        start = int(match.group(1)) if match.group(1) is not None else 1
        end = int(match.group(2))
        step = 1 if end >= start else -1
        natural = min(abs(end - start) + 1, MAX_COUNT_WORDS)
        return (str(i) for i in itertools.count(start, step)), natural
    words = reply_source(prompt)
    offset = choice % len(words)
    return itertools.cycle(words[offset:] + words[:offset]), reply_words


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """Text before the earliest stop sequence (which is not returned) and the sequence matched."""
    best: tuple[int, str] | None = None
    for stop in stops:
        at = text.find(stop) if stop else -1
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    return (text, None) if best is None else (text[: best[0]], best[1])


def _tool_calls(
    prompt: Prompt, tools: tuple[Tool, ...], budget: int, quirks: Quirks
) -> tuple[tuple[ToolCall, ...], bool]:
    """Calls with arguments made from the prompt's words; truncated (cut=True) past the budget."""
    words = reply_source(prompt)
    calls: list[ToolCall] = []
    for tool in tools:
        if budget < 1:
            return tuple(calls), True
        arguments = _arguments(tool.schema, words, quirks.break_tool_args)
        fragments = pieces(arguments)
        if len(fragments) + 1 > budget:
            calls.append(ToolCall(tool.name, fragments[: budget - 1]))
            return tuple(calls), True
        calls.append(ToolCall(tool.name, fragments))
        budget -= len(fragments) + 1
    return tuple(calls), False


def _arguments(schema: JSONObject, words: list[str], broken: bool) -> str:
    if broken:
        found, bad = invalid_instance(schema, words)
        return json.dumps(bad) if found else "not json"
    return json.dumps(instance(schema, words))

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

Bounded work: a prompt may be 8 MiB of text and ask for 128 choices, so what the rules read from
the text is read once per request (``complete_all``), without splitting all of it; token counting
splits it a slice at a time; and an answer has at most ``MAX_ANSWER_TOKENS`` tokens and
``MAX_ANSWER_CHARS`` characters over all its choices (a choice cut by them ends with ``length``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from gatecheck._types import JSON, JSONObject
from gatecheck.reference.instances import Limit, instance, invalid_instance

MEDIA_PART_TOKENS = 85
"""Tokens charged for each non-text content part (OpenAI's low-detail image cost)."""

MAX_COUNT_WORDS = 4096
"""A counting reply stops after this many numbers even when the prompt asks for more."""

MAX_OUTPUT_TOKENS = 32_768
"""No completion is longer, whatever max_tokens and ignore_eos say."""

MAX_ANSWER_TOKENS = 131_072
"""Tokens of all choices together: with n choices each is cut at MAX_ANSWER_TOKENS // n (n <= 4: no cut)."""

MAX_ANSWER_CHARS = 4 * 1024 * 1024
"""Characters of all choices together (each at most MAX_ANSWER_CHARS // n): echoed words may be long."""

MAX_SOURCE_WORDS = 65_536
"""Words of the prompt an answer can use (an answer of MAX_OUTPUT_TOKENS from choice 127 needs fewer)."""

MAX_COUNT_DIGITS = 100
"""Longest number the count rule reads (a longer one makes the prompt an ordinary one)."""

MAX_MENTIONED_TOOLS = 128
"""Tools the auto rule looks for in the prompt (OpenAI's limit on ``tools``); later ones never are."""

VALUES_PER_TOKEN = 2
"""Values a JSON instance may hold per token of its answer's budget. A token of generated JSON holds
at most 9 values (a leaf under at most 8 brackets), so the budget cuts an instance only past the
answer's last token: what is sent is what an unbounded generator would send."""

_COUNT_SLICE = 1 << 16
"""Characters split at a time when counting tokens: one split never holds the GIL for long."""

REASONING_WORDS = {"low": 8, "medium": 16, "high": 32}
"""Reasoning tokens a reasoning model spends per reasoning_effort (default medium)."""

FALLBACK_WORDS = ("Hello", "from", "the", "gatecheck", "reference", "gateway.")
"""Echoed when the last user message has no words (only media parts, or empty)."""

Output = Literal["text", "json_object", "json_schema"]
ToolChoice = Literal["none", "auto", "required", "named"]
Finish = Literal["stop", "length", "tool_calls"]

COUNT_RE = re.compile(r"\bcount(?:\s+from\s+(-?\d+))?\s+to\s+(-?\d+)", re.IGNORECASE)
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
    """The token rule: whitespace-separated words, counted a slice at a time.

    ``len(text.split())`` of 8 MiB held the GIL for 0.3 s and made a list of 1.6M strings; a word
    cut by a slice boundary is counted once (``str.isspace`` and ``str.split`` agree on whitespace).
    """
    if len(text) <= _COUNT_SLICE:
        return len(text.split())
    total = 0
    inside_word = False
    for start in range(0, len(text), _COUNT_SLICE):
        part = text[start : start + _COUNT_SLICE]
        total += len(part.split())
        if inside_word and not part[0].isspace():
            total -= 1
        inside_word = not part[-1].isspace()
    return total


def pieces(text: str) -> tuple[str, ...]:
    """``text`` cut into one-word pieces (leading spaces kept) that concatenate back to it."""
    parts = _PIECE_RE.findall(text)
    tail = text[len(text.rstrip()) :]
    if parts and tail:
        parts[-1] += tail
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class _Reading:
    """What the reply rules read from a prompt's text, once per request however many choices."""

    words: list[str]
    count: tuple[int, int] | None
    tools: tuple[Tool, ...]


def _read(prompt: Prompt, quirks: Quirks) -> _Reading:
    return _Reading(
        reply_source(prompt),
        None if prompt.after_tool_result else count_range(prompt.text),
        chosen_tools(prompt, ignore_forcing=quirks.ignore_tool_choice),
    )


def complete(prompt: Prompt, choice: int, reply_words: int, quirks: Quirks = Quirks()) -> Completion:
    """The answer of choice ``choice`` to ``prompt``: deterministic, bounded, honouring the limits."""
    return _complete(prompt, choice, reply_words, quirks, _read(prompt, quirks))


def complete_all(
    prompt: Prompt, count: int, reply_words: int, quirks: Quirks = Quirks()
) -> tuple[Completion, ...]:
    """The answers of choices ``0..count-1`` (``complete`` for each, the prompt read once)."""
    reading = _read(prompt, quirks)
    return tuple(_complete(prompt, i, reply_words, quirks, reading) for i in range(count))


def _complete(prompt: Prompt, choice: int, reply_words: int, quirks: Quirks, reading: _Reading) -> Completion:
    budget = None if prompt.max_tokens is None or quirks.ignore_max_tokens else prompt.max_tokens
    budget = min(
        MAX_OUTPUT_TOKENS if budget is None else budget, MAX_OUTPUT_TOKENS, MAX_ANSWER_TOKENS // prompt.n
    )
    chars = MAX_ANSWER_CHARS // prompt.n
    reasoning = pieces(_reasoning_text(prompt, reading, chars)) if prompt.reasoning_words else ()
    if not quirks.cap_excludes_reasoning:
        if len(reasoning) >= budget:
            return Completion(reasoning[: max(budget, 0)], (), (), "length")
        budget -= len(reasoning)
    chars -= sum(map(len, reasoning))
    if reading.tools:
        calls, cut = _tool_calls(reading, reading.tools, budget, chars, quirks)
        return Completion(reasoning, (), calls, "length" if cut else "tool_calls")
    text, clipped = _content_text(prompt, reading, choice, reply_words, budget, chars, quirks)
    text, matched = (text, None) if quirks.ignore_stop else _cut_at_stop(text, prompt.stop)
    content = pieces(text)
    if len(content) > budget or (clipped and matched is None):
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
    mentioned = tuple(t for t in prompt.tools[:MAX_MENTIONED_TOOLS] if t.name.lower() in lowered)
    if not mentioned and (prompt.tool_choice == "required" or len(prompt.tools) == 1):
        mentioned = prompt.tools[:1]
    return mentioned if prompt.parallel_tool_calls else mentioned[:1]


def reply_source(prompt: Prompt) -> list[str]:
    """The words an answer is made of: the last user message's (or the tool result's), at most
    MAX_SOURCE_WORDS of them (split without copying the rest of a long text into words)."""
    words = prompt.text.split(None, MAX_SOURCE_WORDS)
    return words[:MAX_SOURCE_WORDS] or list(FALLBACK_WORDS)


def count_range(text: str) -> tuple[int, int] | None:
    """(A, B) when the text asks to "count from A to B" (or "count to B": from 1), else None.

    Equivalent to ``COUNT_RE.search`` but fast on long texts: that regex, case-insensitive and
    starting with ``\\b``, tried every position (0.3 s on 8 MiB); here only the places where
    "count" appears are tried. Lower-casing keeps positions except for U+0130, which becomes two
    characters, hence its stand-in (another word character).
    """
    lowered = text.replace("\u0130", "I").lower()
    if len(lowered) != len(text):
        match = COUNT_RE.search(text)
    else:
        match = None
        at = lowered.find("count")
        while at >= 0 and match is None:
            match = COUNT_RE.match(text, at)
            at = lowered.find("count", at + 1)
    if match is None:
        return None
    start, end = match.group(1), match.group(2)
    if max(len(start or ""), len(end)) > MAX_COUNT_DIGITS:
        return None
    return (1 if start is None else int(start)), int(end)


def _reasoning_text(prompt: Prompt, reading: _Reading, chars: int) -> str:
    words = itertools.chain(["Considering:"], itertools.cycle(reading.words))
    return " ".join(_take(words, prompt.reasoning_words, chars)[0])


def _content_text(
    prompt: Prompt, reading: _Reading, choice: int, reply_words: int, budget: int, chars: int, quirks: Quirks
) -> tuple[str, bool]:
    """The reply text, and whether the character limit cut it."""
    output = "text" if quirks.ignore_response_format else prompt.output
    words, clipped = _reply_words(prompt, reading, choice, reply_words, budget, chars)
    if output == "json_object" or (output == "json_schema" and not prompt.json_schema):
        return json.dumps({"answer": " ".join(words)}), clipped
    if output == "json_schema":
        limit = Limit(chars, VALUES_PER_TOKEN * (budget + 1))
        if quirks.break_json_schema:
            found, bad = invalid_instance(prompt.json_schema, words, limit)
            return (json.dumps(bad) if found else " ".join(words)), clipped or limit.spent
        return json.dumps(instance(prompt.json_schema, words, limit)), clipped or limit.spent
    if quirks.prefix_word:
        words = [quirks.prefix_word, *words]
    if prompt.sources:
        words += ["Sources:", *(f"[{i}] {url}" for i, url in enumerate(prompt.sources, start=1))]
    return " ".join(words), clipped


def _reply_words(
    prompt: Prompt, reading: _Reading, choice: int, reply_words: int, budget: int, chars: int
) -> tuple[list[str], bool]:
    stream, natural = _word_stream(reading, choice, reply_words)
    length = budget + _stop_slack(prompt) if prompt.ignore_eos else min(natural, budget + _stop_slack(prompt))
    return _take(stream, length, chars)


def _take(words: Iterator[str], count: int, chars: int) -> tuple[list[str], bool]:
    """Up to ``count`` words whose space-joined text fits in ``chars`` (the last one cut to fit),
    and whether ``chars`` cut them."""
    taken = list(itertools.islice(words, count))
    if sum(map(len, taken)) + len(taken) <= chars:
        return taken, False
    kept: list[str] = []
    for word in taken:
        if len(word) >= chars:
            if chars > 0:
                kept.append(word[:chars])
            break
        kept.append(word)
        chars -= len(word) + 1
    return kept, True


def _stop_slack(prompt: Prompt) -> int:
    """Extra words generated past the budget so a stop sequence there still wins over 'length'."""
    return 1 + max((count_tokens(s) for s in prompt.stop), default=0)


def _word_stream(reading: _Reading, choice: int, reply_words: int) -> tuple[Iterator[str], int]:
    """An endless word source and its natural length (where the model would end by itself)."""
    if reading.count is not None:
        start, end = reading.count
        step = 1 if end >= start else -1
        natural = min(abs(end - start) + 1, MAX_COUNT_WORDS)
        return (str(i) for i in itertools.count(start, step)), natural
    words = reading.words
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
    reading: _Reading, tools: tuple[Tool, ...], budget: int, chars: int, quirks: Quirks
) -> tuple[tuple[ToolCall, ...], bool]:
    """Calls with arguments made from the prompt's words; truncated (cut=True) past the budget."""
    limit = Limit(chars, VALUES_PER_TOKEN * (budget + 1))
    calls: list[ToolCall] = []
    for tool in tools:
        if budget < 1 or limit.spent:
            return tuple(calls), True
        arguments = _arguments(tool.schema, reading.words, quirks.break_tool_args, limit)
        fragments = pieces(arguments)
        if len(fragments) + 1 > budget:
            calls.append(ToolCall(tool.name, fragments[: budget - 1]))
            return tuple(calls), True
        calls.append(ToolCall(tool.name, fragments))
        budget -= len(fragments) + 1
    return tuple(calls), limit.spent


def _arguments(schema: JSONObject, words: list[str], broken: bool, limit: Limit) -> str:
    if broken:
        found, bad = invalid_instance(schema, words, limit)
        return json.dumps(bad) if found else "not json"
    return json.dumps(instance(schema, words, limit))

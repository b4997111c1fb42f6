"""Stream assembly: decoded SSE events in, the final answer out, protocol violations as data.

The assemblers never raise on what a gateway sends: every deviation becomes a :class:`Violation`
with a stable ``rule`` id (below), a message, the position of the event where it showed and that
event's raw bytes (first 300). Rules about the whole stream (``missing-done``...) point at the last
event received, the place where the missing thing should have been. Checks decide which rules FAIL
and which only WARN for a profile; end-of-stream rules are recorded even after a mid-stream error.

Chat Completions streams (:class:`ChatStreamAssembler`):

    invalid-json                a data payload is not JSON (NaN/Infinity included)
    not-an-object               a data payload is JSON but not an object
    malformed                   a field the assembler reads has the wrong type (schema checks say more)
    data-after-done             an event after ``data: [DONE]``
    missing-done                the stream ended without ``data: [DONE]``
    error-event                 a mid-stream ``{"error": {...}}`` payload
    object-wrong                ``object`` is not ``chat.completion.chunk``
    id-changed                  ``id`` differs from the first chunk's
    created-changed             ``created`` differs from the first chunk's
    model-changed               ``model`` differs from the first chunk's
    choice-no-index             a choice has no integer ``index`` (merged by its position)
    role-missing                the first delta of a choice has no role
    role-not-first              a role in a delta after the first chunk of that choice
    content-after-finish        content, reasoning or tool calls after the choice's finish_reason
    reasoning-after-content     reasoning text after the choice's content started
    finish-reason-repeated      a second non-null finish_reason for a choice
    finish-reason-missing       a choice never got a finish_reason
    usage-not-last              a usage object on a chunk that is not the last chunk before [DONE]
    usage-repeated              more than one chunk carries a usage object
    usage-with-choices          the usage chunk's ``choices`` is not empty
    tool-call-no-index          a tool-call fragment has no integer ``index`` (merged by position)
    tool-call-index-gap         a new tool-call index that is not the next of 0, 1, 2...
    tool-call-header-missing    a tool call's first fragment lacks ``id`` or ``function.name``
    tool-call-header-repeated   ``id`` or ``function.name`` on a later fragment of a tool call (the OpenAI
                                SDK concatenates them; a repeated ``type`` is harmless: it is assigned)
    tool-call-arguments-invalid a tool call's concatenated arguments are not JSON

Anthropic Messages streams (:class:`MessageStreamAssembler`):

    invalid-json, not-an-object, malformed, error-event    as above
    event-name-mismatch         the SSE ``event:`` name differs from ``data.type``
    unknown-event               an event type this module does not know (clients should tolerate it)
    message-start-not-first     an event other than ping/error before message_start
    message-start-repeated      a second message_start
    message-start-missing       no message_start at all
    message-stop-not-last       an event other than ping after message_stop
    message-stop-missing        no message_stop
    message-delta-missing       no message_delta
    stop-reason-missing         no non-null stop_reason by the end
    usage-decreased             output_tokens smaller than an earlier value
    block-start-repeated        a second content_block_start for an index
    block-index-gap             a content_block_start whose index is not the next of 0, 1, 2...
    block-delta-without-start   a delta for an index never started
    block-delta-after-stop      a delta for a block already stopped
    block-stop-without-start    a content_block_stop for an index never started
    block-stop-repeated         a second content_block_stop for an index
    block-not-stopped           a block still open at the end
    delta-type-mismatch         a delta type the block's type does not take (text_delta on tool_use...)
    tool-input-invalid          a tool_use block's concatenated partial_json is not JSON
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, NoReturn, TypeGuard

from gatecheck._types import JSONObject
from gatecheck.quote import as_json
from gatecheck.redaction import clip
from gatecheck.sse import SSEEvent

__all__ = [
    "CHAT_RULES",
    "MESSAGE_RULES",
    "QUOTE_LIMIT",
    "AssembledChat",
    "AssembledChoice",
    "AssembledMessage",
    "AssembledToolCall",
    "ChatStreamAssembler",
    "MessageStreamAssembler",
    "ParsedEvent",
    "Violation",
]

QUOTE_LIMIT = 300
"""How many bytes of the offending event a violation quotes."""

_COMMON_RULES = frozenset({"invalid-json", "not-an-object", "malformed", "error-event"})
CHAT_RULES = _COMMON_RULES | frozenset(
    {
        "data-after-done",
        "missing-done",
        "object-wrong",
        "id-changed",
        "created-changed",
        "model-changed",
        "choice-no-index",
        "role-missing",
        "role-not-first",
        "content-after-finish",
        "reasoning-after-content",
        "finish-reason-repeated",
        "finish-reason-missing",
        "usage-not-last",
        "usage-repeated",
        "usage-with-choices",
        "tool-call-no-index",
        "tool-call-index-gap",
        "tool-call-header-missing",
        "tool-call-header-repeated",
        "tool-call-arguments-invalid",
    }
)
"""Every rule id ChatStreamAssembler can record."""
MESSAGE_RULES = _COMMON_RULES | frozenset(
    {
        "event-name-mismatch",
        "unknown-event",
        "message-start-not-first",
        "message-start-repeated",
        "message-start-missing",
        "message-stop-not-last",
        "message-stop-missing",
        "message-delta-missing",
        "stop-reason-missing",
        "usage-decreased",
        "block-start-repeated",
        "block-index-gap",
        "block-delta-without-start",
        "block-delta-after-stop",
        "block-stop-without-start",
        "block-stop-repeated",
        "block-not-stopped",
        "delta-type-mismatch",
        "tool-input-invalid",
    }
)
"""Every rule id MessageStreamAssembler can record."""

_CHUNK_OBJECT = "chat.completion.chunk"
_HEADER_KEYS = ("id", "created", "model")
# The delta types each Anthropic block type takes; blocks of other types are not judged.
_BLOCK_DELTAS = {
    "text": frozenset({"text_delta", "citations_delta"}),
    "tool_use": frozenset({"input_json_delta"}),
    "server_tool_use": frozenset({"input_json_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "redacted_thinking": frozenset(),
}
# Delta type -> (the delta's text field, the block field it extends).
_DELTA_TEXT = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("signature", "signature"),
    "input_json_delta": ("partial_json", "input"),
}
_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use"})


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_SHORT_LIMIT = 120


@dataclass(frozen=True, slots=True)
class Violation:
    """One protocol rule broken by a stream, quoting the event where it showed."""

    rule: str
    message: str
    index: int | None
    """Position of the event in the stream (0-based, in ``add`` order); None for an empty stream."""
    raw: bytes
    """That event's raw bytes, at most QUOTE_LIMIT of them, keys masked before the cut."""


class ParsedEvent(NamedTuple):
    """One event's JSON payload with its position and arrival time (a tuple: built per chunk)."""

    event_index: int
    t_ns: int
    data: JSONObject


@dataclass(slots=True)
class AssembledToolCall:
    """One tool call merged from its fragments."""

    index: int
    id: str | None
    type: str | None
    name: str | None
    arguments: str


@dataclass(slots=True)
class AssembledChoice:
    """One choice merged from its deltas."""

    index: int
    role: str | None
    content: str
    reasoning: str
    tool_calls: dict[int, AssembledToolCall]
    finish_reason: str | None


@dataclass(slots=True)
class AssembledChat:
    """A whole Chat Completions stream: the answer, the chunks and what was wrong with them."""

    id: str | None
    model: str | None
    created: int | None
    choices: dict[int, AssembledChoice]
    usage: JSONObject | None
    chunks: list[ParsedEvent]
    """Every JSON chunk (error payloads excluded), in order."""
    done: bool
    """The stream sent ``data: [DONE]``."""
    error: JSONObject | None
    """The last mid-stream error payload, whole (``{"error": {...}}``)."""
    violations: list[Violation]


@dataclass(slots=True)
class AssembledMessage:
    """A whole Anthropic Messages stream: the message, the events and what was wrong with them."""

    id: str | None
    model: str | None
    role: str | None
    content: list[JSONObject]
    """Content blocks in index order, shaped as in a non-streaming response."""
    stop_reason: str | None
    stop_sequence: str | None
    usage: JSONObject
    """The usage as it stood at the end: message_start's, updated by every message_delta."""
    start_usage: JSONObject | None
    """message_start's usage as sent (its input_tokens: what a client billing at the start reads)."""
    events: list[ParsedEvent]
    """Every JSON event payload (pings and errors included), in order."""
    stopped: bool
    """The stream sent message_stop."""
    error: JSONObject | None
    """The last ``error`` event payload, whole."""
    violations: list[Violation]

    def as_response(self) -> JSONObject:
        """The message as a non-streaming ``/v1/messages`` response, to validate with its schema."""
        return {
            "id": self.id,
            "type": "message",
            "role": self.role,
            "model": self.model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": self.usage,
        }


def _parse(text: str) -> tuple[Any, str | None]:
    """(value, None) for JSON text, (None, why) otherwise; never raises."""
    try:
        return _DECODER.decode(text), None
    except (ValueError, RecursionError) as exc:
        return None, str(exc)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> str | None:
    """A non-empty string, else None (absent, null, empty and non-strings alike)."""
    return value if isinstance(value, str) and value else None


def _short(value: object) -> str:
    """A bounded JSON quote for messages (keys masked before the cut), so huge payloads cost nothing."""
    return as_json(value, _SHORT_LIMIT)


class _Recorder:
    """Numbers the events of one stream and records violations against them."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.count = 0
        self.last_raw = b""

    def next(self, event: SSEEvent) -> int:
        """Register an event; return its position."""
        self.count += 1
        self.last_raw = event.raw
        return self.count - 1

    def add(self, rule: str, message: str, index: int | None, raw: bytes) -> None:
        self.violations.append(Violation(rule, message, index, clip(raw, QUOTE_LIMIT)))

    def at_end(self, rule: str, message: str) -> Violation:
        """A whole-stream violation, pointing at the last event (none for an empty stream)."""
        index = self.count - 1 if self.count else None
        return Violation(rule, message, index, clip(self.last_raw, QUOTE_LIMIT))

    def payload(self, index: int, event: SSEEvent) -> JSONObject | None:
        """The event's data as a JSON object, or None after recording why not."""
        value, error = _parse(event.data)
        if error is not None:
            self.add("invalid-json", f"data is not JSON: {error}", index, event.raw)
            return None
        if not isinstance(value, dict):
            self.add("not-an-object", f"data is JSON but not an object: {_short(value)}", index, event.raw)
            return None
        return value


@dataclass(slots=True)
class _ToolCallState:
    index: int
    id: str | None
    type: str | None
    name: str | None
    arguments: list[str] = field(default_factory=list)
    last: int = 0
    last_raw: bytes = b""


@dataclass(slots=True)
class _ChoiceState:
    index: int
    role: str | None = None
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallState] = field(default_factory=dict)
    finish_reason: str | None = None
    last: int = 0
    last_raw: bytes = b""


class ChatStreamAssembler:
    """Merges a Chat Completions stream's chunks into the final choices, recording violations.

    ``reasoning_field`` names the delta field carrying reasoning text: profiles use
    ``reasoning_content`` (DeepSeek style) or ``reasoning``.
    """

    def __init__(self, reasoning_field: str = "reasoning_content") -> None:
        self.reasoning_field = reasoning_field
        self._log = _Recorder()
        self._chunks: list[ParsedEvent] = []
        self._header: dict[str, Any] = {}
        self._choices: dict[int, _ChoiceState] = {}
        self._usage: JSONObject | None = None
        self._usage_at: list[tuple[int, bytes]] = []
        self._last_chunk: int | None = None
        self._done = False
        self._error: JSONObject | None = None

    def add(self, event: SSEEvent) -> None:
        """Take the next event of the stream."""
        index = self._log.next(event)
        if self._done:
            self._log.add("data-after-done", "an event came after data: [DONE]", index, event.raw)
            return
        if event.data == "[DONE]":
            self._done = True
            return
        payload = self._log.payload(index, event)
        if payload is None:
            return
        if payload.get("error") is not None:
            self._error = payload
            self._log.add("error-event", f"mid-stream error: {_short(payload['error'])}", index, event.raw)
            return
        self._chunks.append(ParsedEvent(index, event.t_ns, payload))
        self._last_chunk = index
        self._check_header(index, event, payload)
        self._take_usage(index, event, payload)
        choices = payload.get("choices")
        if not isinstance(choices, list):
            self._log.add("malformed", f"choices is not a list: {_short(choices)}", index, event.raw)
            return
        for position, choice in enumerate(choices):
            self._take_choice(index, event, position, choice)

    def finish(self) -> AssembledChat:
        """The assembled stream; whole-stream rules are checked here (calling it twice is fine)."""
        violations = [*self._log.violations, *self._end_violations()]
        return AssembledChat(
            id=self._header.get("id"),
            model=self._header.get("model"),
            created=self._header.get("created"),
            choices={number: _assembled_choice(state) for number, state in sorted(self._choices.items())},
            usage=self._usage,
            chunks=list(self._chunks),
            done=self._done,
            error=self._error,
            violations=violations,
        )

    def _check_header(self, index: int, event: SSEEvent, chunk: JSONObject) -> None:
        """object must be chat.completion.chunk; id, created and model must not change."""
        if chunk.get("object") != _CHUNK_OBJECT:
            message = f"object is {_short(chunk.get('object'))}, expected {_short(_CHUNK_OBJECT)}"
            self._log.add("object-wrong", message, index, event.raw)
        for key in _HEADER_KEYS:
            if key not in chunk:
                continue
            first = self._header.setdefault(key, chunk[key])
            if chunk[key] != first:
                message = f"{key} changed from {_short(first)} to {_short(chunk[key])}"
                self._log.add(f"{key}-changed", message, index, event.raw)

    def _take_usage(self, index: int, event: SSEEvent, chunk: JSONObject) -> None:
        """Keep the (last) usage object; note where usage objects came."""
        usage = chunk.get("usage")
        if usage is None:
            return
        if not isinstance(usage, dict):
            self._log.add("malformed", f"usage is not an object: {_short(usage)}", index, event.raw)
            return
        if self._usage_at:
            self._log.add("usage-repeated", "a second chunk carries usage", index, event.raw)
        if chunk.get("choices"):
            self._log.add("usage-with-choices", "the usage chunk's choices is not empty", index, event.raw)
        self._usage = usage
        self._usage_at.append((index, event.raw))

    def _index_of(
        self, item: JSONObject, rule: str, what: str, position: int, index: int, event: SSEEvent
    ) -> int:
        """``item``'s integer ``index``; without one, ``rule`` is recorded and its position is used."""
        number = item.get("index")
        if _is_int(number):
            return number
        self._log.add(rule, f"{what} has index {_short(number)}; merged as {position}", index, event.raw)
        return position

    def _take_choice(self, index: int, event: SSEEvent, position: int, choice: object) -> None:
        """Merge one choice of a chunk into its state."""
        if not isinstance(choice, dict):
            self._log.add("malformed", f"choice {position} is not an object", index, event.raw)
            return
        number = self._index_of(choice, "choice-no-index", f"choice {position}", position, index, event)
        state = self._choices.get(number)
        first = state is None
        if state is None:
            state = self._choices[number] = _ChoiceState(number)
        state.last, state.last_raw = index, event.raw
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            self._log.add("malformed", f"choice {number}: delta is not an object", index, event.raw)
            delta = {}
        self._take_role(index, event, state, first, delta)
        self._take_texts(index, event, state, delta)
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            for call_position, call in enumerate(tool_calls):
                self._take_tool_call(index, event, state, call_position, call)
        elif tool_calls is not None:
            self._log.add("malformed", f"choice {number}: tool_calls is not a list", index, event.raw)
        self._take_finish(index, event, state, choice.get("finish_reason"))

    def _take_role(
        self, index: int, event: SSEEvent, state: _ChoiceState, first: bool, delta: JSONObject
    ) -> None:
        role = delta.get("role")
        if first and role is None:
            self._log.add(
                "role-missing", f"choice {state.index}: the first delta has no role", index, event.raw
            )
        elif not first and role is not None:
            message = f"choice {state.index}: role {_short(role)} after the first chunk"
            self._log.add("role-not-first", message, index, event.raw)
        if state.role is None and isinstance(role, str):
            state.role = role

    def _take_texts(self, index: int, event: SSEEvent, state: _ChoiceState, delta: JSONObject) -> None:
        """Append content and reasoning; they must come before finish_reason, reasoning first."""
        content = _text(delta.get("content"))
        reasoning = _text(delta.get(self.reasoning_field))
        if state.finish_reason is not None and (content or reasoning or delta.get("tool_calls")):
            message = f"choice {state.index}: delta content after finish_reason {_short(state.finish_reason)}"
            self._log.add("content-after-finish", message, index, event.raw)
        if reasoning is not None:
            if state.content:
                message = f"choice {state.index}: {self.reasoning_field} after content started"
                self._log.add("reasoning-after-content", message, index, event.raw)
            state.reasoning.append(reasoning)
        if content is not None:
            state.content.append(content)

    def _take_tool_call(
        self, index: int, event: SSEEvent, state: _ChoiceState, position: int, call: object
    ) -> None:
        """Merge one tool-call fragment: header from the first fragment, arguments concatenated."""
        where = f"choice {state.index}, tool call"
        if not isinstance(call, dict):
            self._log.add("malformed", f"{where} {position} is not an object", index, event.raw)
            return
        number = self._index_of(call, "tool-call-no-index", f"{where} {position}", position, index, event)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        header = {
            "id": _text(call.get("id")),
            "type": _text(call.get("type")),
            "name": _text(function.get("name")),
        }
        tool = state.tool_calls.get(number)
        if tool is None:
            if number != len(state.tool_calls):
                message = f"{where} index {number} after indices {sorted(state.tool_calls)}"
                self._log.add("tool-call-index-gap", message, index, event.raw)
            tool = state.tool_calls[number] = _ToolCallState(
                number, header["id"], header["type"], header["name"]
            )
            missing = [name for name in ("id", "name") if header[name] is None]
            if missing:
                message = f"{where} {number}: the first fragment lacks {' and '.join(missing)}"
                self._log.add("tool-call-header-missing", message, index, event.raw)
        else:
            repeated = [name for name in ("id", "name") if header[name] is not None]
            if repeated:
                message = f"{where} {number}: {', '.join(repeated)} on a later fragment"
                self._log.add("tool-call-header-repeated", message, index, event.raw)
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            tool.arguments.append(arguments)
        tool.last, tool.last_raw = index, event.raw

    def _take_finish(self, index: int, event: SSEEvent, state: _ChoiceState, reason: object) -> None:
        if reason is None:
            return
        if state.finish_reason is not None:
            earlier = _short(state.finish_reason)
            message = f"choice {state.index}: finish_reason {_short(reason)} after {earlier}"
            self._log.add("finish-reason-repeated", message, index, event.raw)
            return
        state.finish_reason = reason if isinstance(reason, str) else str(reason)

    def _end_violations(self) -> list[Violation]:
        """Rules only the end of the stream can decide."""
        found: list[Violation] = []
        if not self._done:
            found.append(self._log.at_end("missing-done", "the stream ended without data: [DONE]"))
        for at, raw in self._usage_at:
            if at != self._last_chunk:
                quote = clip(raw, QUOTE_LIMIT)
                found.append(Violation("usage-not-last", "usage on a chunk that is not the last", at, quote))
        for state in self._choices.values():
            if state.finish_reason is None:
                message = f"choice {state.index} never got a finish_reason"
                quote = clip(state.last_raw, QUOTE_LIMIT)
                found.append(Violation("finish-reason-missing", message, state.last, quote))
            for tool in state.tool_calls.values():
                arguments = "".join(tool.arguments)
                _, error = _parse(arguments)
                if error is not None:
                    where = f"choice {state.index}, tool call {tool.index}"
                    message = f"{where}: arguments {_short(arguments)} are not JSON: {error}"
                    quote = clip(tool.last_raw, QUOTE_LIMIT)
                    found.append(Violation("tool-call-arguments-invalid", message, tool.last, quote))
        return found


def _assembled_choice(state: _ChoiceState) -> AssembledChoice:
    tool_calls = {
        number: AssembledToolCall(number, tool.id, tool.type, tool.name, "".join(tool.arguments))
        for number, tool in sorted(state.tool_calls.items())
    }
    return AssembledChoice(
        index=state.index,
        role=state.role,
        content="".join(state.content),
        reasoning="".join(state.reasoning),
        tool_calls=tool_calls,
        finish_reason=state.finish_reason,
    )


@dataclass(slots=True)
class _BlockState:
    index: int
    start: JSONObject
    kind: str | None
    texts: dict[str, list[str]] = field(default_factory=dict)
    citations: list[Any] = field(default_factory=list)
    stopped: bool = False
    first: int = 0
    first_raw: bytes = b""
    last: int = 0
    last_raw: bytes = b""


class MessageStreamAssembler:
    """Builds the message of an Anthropic ``/v1/messages`` stream, recording grammar violations."""

    def __init__(self) -> None:
        self._log = _Recorder()
        self._events: list[ParsedEvent] = []
        self._message: JSONObject = {}
        self._usage: JSONObject = {}
        self._start_usage: JSONObject | None = None
        self._output_tokens: int | None = None
        self._blocks: dict[int, _BlockState] = {}
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._started = False
        self._early_event_seen = False
        self._deltas = 0
        self._stopped = False
        self._error: JSONObject | None = None

    def add(self, event: SSEEvent) -> None:
        """Take the next event of the stream."""
        index = self._log.next(event)
        payload = self._log.payload(index, event)
        if payload is None:
            return
        kind = payload.get("type")
        if not isinstance(kind, str):
            self._log.add("malformed", f"type is {_short(kind)}, not a string", index, event.raw)
            return
        self._events.append(ParsedEvent(index, event.t_ns, payload))
        if event.event != kind:
            message = f"SSE event name {_short(event.event)} but data.type {_short(kind)}"
            self._log.add("event-name-mismatch", message, index, event.raw)
        if kind == "ping":
            return
        if self._stopped:
            self._log.add("message-stop-not-last", f"{kind} after message_stop", index, event.raw)
        handler = self._HANDLERS.get(kind)
        if handler is None:
            self._log.add("unknown-event", f"unknown event type {_short(kind)}", index, event.raw)
            return
        if not self._started and kind not in ("message_start", "error") and not self._early_event_seen:
            self._early_event_seen = True
            self._log.add("message-start-not-first", f"{kind} before message_start", index, event.raw)
        handler(self, index, event, payload)

    def finish(self) -> AssembledMessage:
        """The assembled message; whole-stream rules are checked here (calling it twice is fine)."""
        content: list[JSONObject] = []
        found: list[Violation] = []
        for number in sorted(self._blocks):
            block, problem = _assembled_block(self._blocks[number])
            content.append(block)
            if problem is not None:
                found.append(problem)
        return AssembledMessage(
            id=self._message.get("id"),
            model=self._message.get("model"),
            role=self._message.get("role"),
            content=content,
            stop_reason=self._stop_reason,
            stop_sequence=self._stop_sequence,
            usage=dict(self._usage),
            start_usage=self._start_usage,
            events=list(self._events),
            stopped=self._stopped,
            error=self._error,
            violations=[*self._log.violations, *self._end_violations(), *found],
        )

    def _on_message_start(self, index: int, event: SSEEvent, payload: JSONObject) -> None:
        if self._started:
            self._log.add("message-start-repeated", "a second message_start", index, event.raw)
            return
        self._started = True
        message = payload.get("message")
        if not isinstance(message, dict):
            self._log.add("malformed", "message_start.message is not an object", index, event.raw)
            return
        self._message = message
        if isinstance(message.get("stop_reason"), str):
            self._stop_reason = message["stop_reason"]
        if isinstance(message.get("stop_sequence"), str):
            self._stop_sequence = message["stop_sequence"]
        usage = message.get("usage")
        self._start_usage = dict(usage) if isinstance(usage, dict) else None
        self._take_usage(index, event, usage)

    def _on_block_start(self, index: int, event: SSEEvent, payload: JSONObject) -> None:
        number = self._block_index(index, event, payload)
        if number is None:
            return
        if number in self._blocks:
            self._log.add("block-start-repeated", f"block {number} started again", index, event.raw)
            return
        if number != len(self._blocks):
            message = f"block {number} started after blocks {sorted(self._blocks)}"
            self._log.add("block-index-gap", message, index, event.raw)
        start = payload.get("content_block")
        if not isinstance(start, dict):
            self._log.add("malformed", f"block {number}: content_block is not an object", index, event.raw)
            start = {}
        kind = start.get("type")
        self._blocks[number] = _BlockState(
            number, start, kind if isinstance(kind, str) else None, first=index, first_raw=event.raw
        )

    def _on_block_delta(self, index: int, event: SSEEvent, payload: JSONObject) -> None:
        block = self._open_block(index, event, payload, "block-delta-without-start", "a delta")
        if block is None:
            return
        if block.stopped:
            self._log.add(
                "block-delta-after-stop", f"block {block.index}: delta after stop", index, event.raw
            )
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            self._log.add("malformed", f"block {block.index}: delta is not an object", index, event.raw)
            return
        kind = delta.get("type")
        allowed = _BLOCK_DELTAS.get(block.kind or "")
        if allowed is not None and kind not in allowed:
            message = f"block {block.index} is {_short(block.kind)} but got a {_short(kind)} delta"
            self._log.add("delta-type-mismatch", message, index, event.raw)
            return
        _apply_delta(block, delta)
        block.last, block.last_raw = index, event.raw

    def _on_block_stop(self, index: int, event: SSEEvent, payload: JSONObject) -> None:
        block = self._open_block(index, event, payload, "block-stop-without-start", "a stop")
        if block is None:
            return
        if block.stopped:
            self._log.add("block-stop-repeated", f"block {block.index} stopped again", index, event.raw)
        block.stopped = True

    def _on_message_delta(self, index: int, event: SSEEvent, payload: JSONObject) -> None:
        self._deltas += 1
        delta = payload.get("delta")
        if isinstance(delta, dict):
            if delta.get("stop_reason") is not None:
                self._stop_reason = str(delta["stop_reason"])
            if delta.get("stop_sequence") is not None:
                self._stop_sequence = str(delta["stop_sequence"])
        else:
            self._log.add("malformed", "message_delta.delta is not an object", index, event.raw)
        self._take_usage(index, event, payload.get("usage"))

    def _on_message_stop(self, index: int, event: SSEEvent, payload: JSONObject) -> None:
        self._stopped = True

    def _on_error(self, index: int, event: SSEEvent, payload: JSONObject) -> None:
        self._error = payload
        self._log.add("error-event", f"error event: {_short(payload.get('error'))}", index, event.raw)

    _HANDLERS: ClassVar[dict[str, Callable[[MessageStreamAssembler, int, SSEEvent, JSONObject], None]]] = {
        "message_start": _on_message_start,
        "content_block_start": _on_block_start,
        "content_block_delta": _on_block_delta,
        "content_block_stop": _on_block_stop,
        "message_delta": _on_message_delta,
        "message_stop": _on_message_stop,
        "error": _on_error,
    }

    def _block_index(self, index: int, event: SSEEvent, payload: JSONObject) -> int | None:
        number = payload.get("index")
        if _is_int(number):
            return number
        self._log.add("malformed", f"{payload['type']}: index is {_short(number)}", index, event.raw)
        return None

    def _open_block(
        self, index: int, event: SSEEvent, payload: JSONObject, rule: str, what: str
    ) -> _BlockState | None:
        """The started block the event is about, or None after recording why there is none."""
        number = self._block_index(index, event, payload)
        if number is None:
            return None
        block = self._blocks.get(number)
        if block is None:
            self._log.add(rule, f"{what} for block {number}, which never started", index, event.raw)
        return block

    def _take_usage(self, index: int, event: SSEEvent, usage: object) -> None:
        """Merge a usage object; output_tokens must never go down."""
        if usage is None:
            return
        if not isinstance(usage, dict):
            self._log.add("malformed", f"usage is not an object: {_short(usage)}", index, event.raw)
            return
        output = usage.get("output_tokens")
        if _is_int(output):
            if self._output_tokens is not None and output < self._output_tokens:
                message = f"output_tokens went from {self._output_tokens} down to {output}"
                self._log.add("usage-decreased", message, index, event.raw)
            self._output_tokens = output
        self._usage.update((key, value) for key, value in usage.items() if value is not None)

    def _end_violations(self) -> list[Violation]:
        """Rules only the end of the stream can decide."""
        end = self._log.at_end
        found: list[Violation] = []
        if not self._started:
            found.append(end("message-start-missing", "the stream has no message_start"))
        if not self._stopped:
            found.append(end("message-stop-missing", "the stream ended without message_stop"))
        if not self._deltas:
            found.append(end("message-delta-missing", "the stream has no message_delta"))
        if self._stop_reason is None:
            found.append(end("stop-reason-missing", "no stop_reason by the end of the stream"))
        for block in self._blocks.values():
            if not block.stopped:
                message = f"block {block.index} was never stopped"
                found.append(
                    Violation("block-not-stopped", message, block.first, clip(block.first_raw, QUOTE_LIMIT))
                )
        return found


def _apply_delta(block: _BlockState, delta: JSONObject) -> None:
    """Extend the block with one delta's text (or citation)."""
    kind = delta.get("type")
    if kind == "citations_delta":
        block.citations.append(delta.get("citation"))
        return
    fields = _DELTA_TEXT.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return
    source, target = fields
    text = delta.get(source)
    if isinstance(text, str):
        block.texts.setdefault(target, []).append(text)


def _assembled_block(block: _BlockState) -> tuple[JSONObject, Violation | None]:
    """The block as in a non-streaming response, and a tool-input-invalid violation if any."""
    out = dict(block.start)
    problem = None
    for target, parts in block.texts.items():
        if target == "input":
            partial_json = "".join(parts)
            if not partial_json:
                continue
            value, error = _parse(partial_json)
            if error is None:
                out["input"] = value
            elif block.kind in _TOOL_BLOCKS:
                message = f"block {block.index}: input {_short(partial_json)} is not JSON: {error}"
                quote = clip(block.last_raw, QUOTE_LIMIT)
                problem = Violation("tool-input-invalid", message, block.last, quote)
            continue
        start = out.get(target)
        out[target] = (start if isinstance(start, str) else "") + "".join(parts)
    if block.citations:
        earlier = out.get("citations")
        out["citations"] = [*(earlier if isinstance(earlier, list) else []), *block.citations]
    return out, problem

"""Anthropic Messages rendering (002 Messages): the message body and the SSE event sequence.

Stream grammar: message_start, then per content block content_block_start, content_block_delta*,
content_block_stop, then message_delta (stop_reason, usage) and message_stop; one ping after the
first block starts. Events are ``(step, bytes)`` pairs as in ``gatecheck.reference.chat``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from gatecheck._types import JSON, JSONObject
from gatecheck.reference.fakemodel import Completion

Event = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class MessageAnswer:
    """One Anthropic message: the completion and what surrounds it."""

    id: str
    model: str
    input_tokens: int
    completion: Completion

    def stop_reason(self, faults: MessageFaults) -> str:
        """002's mapping: stop -> end_turn or stop_sequence, length -> max_tokens, tools -> tool_use."""
        finish = self.completion.finish
        if finish == "length":
            return "end_turn" if faults.stop_reason_wrong else "max_tokens"
        if finish == "tool_calls":
            return "end_turn" if faults.tool_stop_reason_wrong else "tool_use"
        if self.completion.stop_sequence is not None:
            return "end_turn" if faults.stop_sequence_unreported else "stop_sequence"
        return "stop_sequence" if faults.end_turn_as_stop_sequence else "end_turn"

    def stop_sequence(self, faults: MessageFaults) -> str | None:
        """The stop sequence matched (None under stop-sequence-unreported)."""
        return None if faults.stop_sequence_unreported else self.completion.stop_sequence

    def tool_use_id(self, index: int) -> str:
        return f"toolu_{self.id[-16:]}_{index}"


MESSAGE_FAULTS = {
    "no_blank_line": "sse-no-blank-line",
    "no_message_start": "anthropic-no-message-start",
    "event_name_mismatch": "anthropic-event-name-mismatch",
    "delta_type_mismatch": "anthropic-delta-type-mismatch",
    "missing_block_stop": "anthropic-missing-block-stop",
    "usage_decreases": "anthropic-usage-decreases",
    "stop_reason_wrong": "anthropic-stop-reason-wrong",
    "input_tokens_zero": "anthropic-input-tokens-zero",
    "tool_stop_reason_wrong": "anthropic-tool-stop-reason-wrong",
    "tool_input_invalid": "anthropic-tool-input-invalid",
    "stop_sequence_unreported": "anthropic-stop-sequence-unreported",
    "end_turn_as_stop_sequence": "anthropic-end-turn-as-stop-sequence",
}
"""MessageFaults field -> the fault mode that sets it."""


@dataclass(frozen=True, slots=True)
class MessageFaults:
    """Fault switches of the Anthropic endpoint."""

    no_blank_line: bool = False
    no_message_start: bool = False
    event_name_mismatch: bool = False
    delta_type_mismatch: bool = False
    missing_block_stop: bool = False
    usage_decreases: bool = False
    stop_reason_wrong: bool = False
    input_tokens_zero: bool = False
    tool_stop_reason_wrong: bool = False
    tool_input_invalid: bool = False
    stop_sequence_unreported: bool = False
    end_turn_as_stop_sequence: bool = False


def message_body(answer: MessageAnswer, faults: MessageFaults = MessageFaults()) -> JSONObject:
    """The non-streaming message."""
    completion = answer.completion
    content: list[JSONObject] = [
        {"type": "tool_use", "id": answer.tool_use_id(i), "name": call.name, "input": _input(call.arguments)}
        for i, call in enumerate(completion.tool_calls)
    ]
    if not content:
        content = [{"type": "text", "text": completion.text}]
    return {
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": answer.stop_reason(faults),
        "stop_sequence": answer.stop_sequence(faults),
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": completion.tokens},
    }


def _input(arguments: str) -> JSON:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dumps(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"))


class MessageStream:
    """Renders one answer as Anthropic stream events."""

    def __init__(self, answer: MessageAnswer, faults: MessageFaults = MessageFaults()) -> None:
        self.answer = answer
        self.faults = faults
        self._end = "\n" if faults.no_blank_line else "\n\n"

    def event(self, name: str, data: JSONObject) -> bytes:
        """One event whose ``event:`` field equals ``data.type``."""
        return f"event: {name}\ndata: {_dumps(data)}{self._end}".encode()

    def events(self) -> Iterator[Event]:
        """The whole event sequence, each token's delta at its step."""
        completion = self.answer.completion
        if not self.faults.no_message_start:
            yield -1, self._message_start()
        step = 0
        if completion.tool_calls:
            for index, call in enumerate(completion.tool_calls):
                block = {
                    "type": "tool_use",
                    "id": self.answer.tool_use_id(index),
                    "name": call.name,
                    "input": {},
                }
                yield step, self._block_start(index, block)
                if index == 0:
                    yield step, self.event("ping", {"type": "ping"})
                fragments = call.fragments[:-1] if self.faults.tool_input_invalid else call.fragments
                deltas = [{"type": "input_json_delta", "partial_json": f} for f in fragments]
                step = yield from self._block_body(index, step + 1, deltas)
                step += 1
        else:
            yield -1, self._block_start(0, {"type": "text", "text": ""})
            yield -1, self.event("ping", {"type": "ping"})
            kind, field = (
                ("input_json_delta", "partial_json")
                if self.faults.delta_type_mismatch
                else ("text_delta", "text")
            )
            step = yield from self._block_body(0, 0, [{"type": kind, field: p} for p in completion.content])
            step += 1
        yield from self._closing(max(step - 1, 0))

    def _message_start(self) -> bytes:
        output = self.answer.completion.tokens + 5 if self.faults.usage_decreases else 0
        message: JSONObject = {
            "id": self.answer.id,
            "type": "message",
            "role": "assistant",
            "model": self.answer.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0 if self.faults.input_tokens_zero else self.answer.input_tokens,
                "output_tokens": output,
            },
        }
        return self.event("message_start", {"type": "message_start", "message": message})

    def _block_start(self, index: int, block: JSONObject) -> bytes:
        return self.event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )

    def _block_body(self, index: int, step: int, deltas: list[JSONObject]) -> Generator[Event, None, int]:
        """Deltas from ``step`` on, then the block's stop; returns the step of the last delta."""
        name = "content_delta" if self.faults.event_name_mismatch else "content_block_delta"
        for delta in deltas:
            yield step, self.event(name, {"type": "content_block_delta", "index": index, "delta": delta})
            step += 1
        last = max(step - 1, 0)
        if not self.faults.missing_block_stop:
            yield last, self.event("content_block_stop", {"type": "content_block_stop", "index": index})
        return last

    def _closing(self, step: int) -> Iterator[Event]:
        answer = self.answer
        delta = {
            "stop_reason": answer.stop_reason(self.faults),
            "stop_sequence": answer.stop_sequence(self.faults),
        }
        usage = {"output_tokens": answer.completion.tokens}
        yield step, self.event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        yield step, self.event("message_stop", {"type": "message_stop"})

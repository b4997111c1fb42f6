"""OpenAI Chat Completions rendering: the non-streaming body and the SSE chunk stream.

The stream is produced as ``(step, bytes)`` pairs: ``step`` is the index of the token a chunk
carries (-1 for what is sent at once, like the role chunk), which the server turns into an
absolute deadline. Each event is rendered from a per-request template with one string format,
and lazily, so a long stream starts at once and costs no per-chunk object.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote

from gatecheck._types import JSONObject
from gatecheck.reference.fakemodel import Completion

DONE = "data: [DONE]"

Event = tuple[int, bytes]


ANSWER_FAULTS = {
    "reasoning_excluded": "usage-reasoning-excluded",
    "cached_over_prompt": "usage-cached-over-prompt",
    "same_call_ids": "tool-calls-same-id",
}
"""AnswerFaults field -> the fault mode that sets it."""


@dataclass(frozen=True, slots=True)
class AnswerFaults:
    """Fault switches of what a chat answer says, streamed or not (usage, tool-call ids)."""

    reasoning_excluded: bool = False
    cached_over_prompt: bool = False
    same_call_ids: bool = False


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """Everything a chat response says, for every choice."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    choices: tuple[Completion, ...]
    reasoning_model: bool = False
    object_name: str = "chat.completion"
    faults: AnswerFaults = AnswerFaults()

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        return sum(len(c.reasoning) for c in self.choices)

    def call_id(self, choice: int, call: int) -> str:
        return f"call_{self.id[-16:]}_{choice}_{0 if self.faults.same_call_ids else call}"

    def usage(self, *, total_offset: int = 0) -> JSONObject:
        """The usage object (no prompt cache: 0 cached); ``total_offset`` is body-usage-total-wrong's."""
        completion = self.completion_tokens - (self.reasoning_tokens if self.faults.reasoning_excluded else 0)
        cached = self.prompt_tokens + 1 if self.faults.cached_over_prompt else 0
        usage: JSONObject = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion + total_offset,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        if self.reasoning_model:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage


BODY_FAULTS = {
    "usage_total_wrong": "body-usage-total-wrong",
    "wrong_object": "body-wrong-object",
    "role_not_assistant": "body-role-not-assistant",
    "bad_finish_reason": "body-bad-finish-reason",
}
"""BodyFaults field -> the fault mode that sets it."""


@dataclass(frozen=True, slots=True)
class BodyFaults:
    """Fault switches of the non-streaming body."""

    usage_total_wrong: bool = False
    wrong_object: bool = False
    role_not_assistant: bool = False
    bad_finish_reason: bool = False


def chat_body(answer: ChatAnswer, faults: BodyFaults = BodyFaults()) -> JSONObject:
    """The non-streaming ``chat.completion`` body."""
    choices = []
    for index, completion in enumerate(answer.choices):
        message: JSONObject = {
            "role": "model" if faults.role_not_assistant else "assistant",
            "content": None if completion.tool_calls else completion.text,
        }
        if answer.reasoning_model:
            message["reasoning_content"] = "".join(completion.reasoning)
        if completion.tool_calls:
            message["tool_calls"] = [
                {
                    "id": answer.call_id(index, j),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for j, call in enumerate(completion.tool_calls)
            ]
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": "eos" if faults.bad_finish_reason else completion.finish,
            }
        )
    return {
        "id": answer.id,
        "object": "chat.completion.chunk" if faults.wrong_object else answer.object_name,
        "created": answer.created,
        "model": answer.model,
        "choices": choices,
        "usage": answer.usage(total_offset=1 if faults.usage_total_wrong else 0),
    }


STREAM_FAULTS = {
    "no_blank_line": "sse-no-blank-line",
    "missing_done": "sse-missing-done",
    "data_after_done": "sse-data-after-done",
    "invalid_json": "sse-invalid-json",
    "role_repeated": "chunk-role-repeated",
    "id_changes": "chunk-id-changes",
    "wrong_object": "chunk-wrong-object",
    "finish_reason_twice": "chunk-finish-reason-twice",
    "usage_missing": "chunk-usage-missing",
    "usage_every_chunk": "chunk-usage-every-chunk",
    "tool_call_id_repeated": "tool-call-id-repeated",
    "tool_call_bad_arguments": "tool-call-bad-arguments",
    "reasoning_after_content": "reasoning-after-content",
    "tool_calls_same_index": "tool-calls-same-index",
    "tool_calls_interleaved": "tool-calls-interleaved",
}
"""StreamFaults field -> the fault mode that sets it."""


@dataclass(frozen=True, slots=True)
class StreamFaults:
    """Fault switches of the chunk stream (SSE framing included)."""

    no_blank_line: bool = False
    missing_done: bool = False
    data_after_done: bool = False
    invalid_json: bool = False
    role_repeated: bool = False
    id_changes: bool = False
    wrong_object: bool = False
    finish_reason_twice: bool = False
    usage_missing: bool = False
    usage_every_chunk: bool = False
    tool_call_id_repeated: bool = False
    tool_call_bad_arguments: bool = False
    reasoning_after_content: bool = False
    tool_calls_same_index: bool = False
    tool_calls_interleaved: bool = False


class ChatStream:
    """Renders one answer as ``chat.completion.chunk`` events."""

    def __init__(
        self, answer: ChatAnswer, *, include_usage: bool, faults: StreamFaults = StreamFaults()
    ) -> None:
        self.answer = answer
        self.include_usage = include_usage
        self.faults = faults
        self._end = "\n" if faults.no_blank_line else "\n\n"
        usage = json.dumps(answer.usage(), separators=(",", ":"))
        if faults.usage_every_chunk:
            self._tail = f',"usage":{usage}}}{self._end}'
        else:
            self._tail = ',"usage":null}' + self._end if include_usage else "}" + self._end
        self._usage = usage
        self._head = self._prefix(answer.id)
        self._later_head = self._prefix(answer.id + "x") if faults.id_changes else self._head

    def _prefix(self, chunk_id: str) -> str:
        obj = "chat.completion" if self.faults.wrong_object else "chat.completion.chunk"
        return (
            f'data: {{"id":"{chunk_id}","object":"{obj}","created":{self.answer.created},'
            f'"model":{_quote(self.answer.model)},"choices":['
        )

    def _chunk(self, index: int, delta: str, finish: str = "null", *, first: bool = False) -> bytes:
        head = self._head if first else self._later_head
        return (
            f'{head}{{"index":{index},"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]{self._tail}'
        ).encode()

    def events(self) -> Iterator[Event]:
        """Role chunks at once, then one chunk per token by step, finish chunks, usage, [DONE]."""
        for index in range(len(self.answer.choices)):
            yield -1, self._chunk(index, '{"role":"assistant","content":""}', first=True)
        per_choice = [self._deltas(i, c) for i, c in enumerate(self.answer.choices)]
        last_step = max((len(d) for d in per_choice), default=0) - 1
        corrupt_pending = self.faults.invalid_json
        for step in range(max(last_step + 1, 1)):
            for index, deltas in enumerate(per_choice):
                if step < len(deltas):
                    chunk = self._chunk(index, deltas[step])
                    if corrupt_pending:
                        chunk, corrupt_pending = (
                            chunk.replace(b"}" + self._end.encode(), self._end.encode(), 1),
                            False,
                        )
                    yield step, chunk
                if step == max(len(deltas) - 1, 0):
                    yield from self._finish(step, index)
        yield from self._ending(max(last_step, 0))

    def _finish(self, step: int, index: int) -> Iterator[Event]:
        finish = _quote(self.answer.choices[index].finish)
        chunk = self._chunk(index, "{}", finish)
        yield step, chunk
        if self.faults.finish_reason_twice:
            yield step, chunk

    def _ending(self, step: int) -> Iterator[Event]:
        if self.include_usage and not self.faults.usage_missing:
            yield step, f'{self._later_head}],"usage":{self._usage}}}{self._end}'.encode()
        if not self.faults.missing_done:
            yield step, (DONE + self._end).encode()
        if self.faults.data_after_done:
            yield step, self._chunk(0, "{}")

    def _deltas(self, index: int, completion: Completion) -> list[str]:
        """The delta JSON of each token of one choice, in stream order."""
        role = '"role":"assistant",' if self.faults.role_repeated else ""
        reasoning = [f'{{{role}"reasoning_content":{_quote(p)}}}' for p in completion.reasoning]
        content = [f'{{{role}"content":{_quote(p)}}}' for p in completion.content]
        calls = [
            self._tool_deltas(index, j, c.name, c.fragments, role)
            for j, c in enumerate(completion.tool_calls)
        ]
        if self.faults.tool_calls_interleaved:  # round robin: call 0's fragment, call 1's, call 0's...
            content += [d for step in itertools.zip_longest(*calls) for d in step if d is not None]
        else:
            content += [d for deltas in calls for d in deltas]
        return content + reasoning if self.faults.reasoning_after_content else reasoning + content

    def _tool_deltas(self, index: int, j: int, name: str, fragments: tuple[str, ...], role: str) -> list[str]:
        header = f'"id":"{self.answer.call_id(index, j)}","type":"function",'
        named = f'"name":{_quote(name)},'
        frags = list(fragments)
        if self.faults.tool_call_bad_arguments and frags:
            frags[-1] = frags[-1][:-1]
        at = 0 if self.faults.tool_calls_same_index else j
        out = [f'{{{role}"tool_calls":[{{"index":{at},{header}"function":{{{named}"arguments":""}}}}]}}']
        repeat_header, repeat_name = (header, named) if self.faults.tool_call_id_repeated else ("", "")
        out += [
            f'{{{role}"tool_calls":[{{"index":{at},{repeat_header}"function":{{{repeat_name}"arguments":{_quote(f)}}}}}]}}'
            for f in frags
        ]
        return out

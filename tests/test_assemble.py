"""The stream assemblers: merging, and every violation rule (a stream that has it, clean ones that don't)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gatecheck.assemble as assemble_module
from gatecheck.assemble import (
    CHAT_RULES,
    MESSAGE_RULES,
    QUOTE_LIMIT,
    AssembledChat,
    AssembledMessage,
    ChatStreamAssembler,
    MessageStreamAssembler,
)
from gatecheck.sse import SSEDecoder, SSEEvent

# --- the documents' example streams, verbatim ------------------------------------------------------

# 000_70fdfcbe6a599fa7.txt, "Response Format / Streaming SSE Chunks".
DOC_000_STREAM = b"""\
data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1712345678,"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1712345678,"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{"content":"Artificial"},"finish_reason":null}]}

data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1712345678,"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{"content":" intelligence"},"finish_reason":null}]}

data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1712345678,"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":28,"completion_tokens":156,"total_tokens":184}}

data: [DONE]

"""  # noqa: E501 (verbatim from the document)

# 002_ec4c486f57c04692.txt, "Chat Completions / Streaming".
DOC_002_CHAT_STREAM = b"""\
data: {"id":"chatcmpl-xxx","object":"chat.completion.chunk","choices":[{"delta":{"content":"Hello"},"finish_reason":null}]}

data: {"id":"chatcmpl-xxx","object":"chat.completion.chunk","choices":[{"delta":{"content":"!"},"finish_reason":null}]}

data: [DONE]

"""  # noqa: E501 (verbatim from the document)

# 002_ec4c486f57c04692.txt, "Messages (Anthropic Compatible) / Streaming".
DOC_002_MESSAGES_STREAM = b"""\
event: message_start
data: {"type":"message_start","message":{"id":"msg_xxx","type":"message","role":"assistant","model":"deepseek-v4-flash","stop_reason":null,"usage":{"input_tokens":10,"output_tokens":0}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":10}}

event: message_stop
data: {"type":"message_stop"}

"""  # noqa: E501 (verbatim from the document)


def decode(stream: bytes) -> list[SSEEvent]:
    """The stream's events, each stamped with its position (as if every event came in its own chunk)."""
    decoder = SSEDecoder()
    events = [
        event
        for t_ns, piece in enumerate(stream.split(b"\n\n"))
        for event in decoder.feed(piece + b"\n\n", t_ns)
    ]
    assert decoder.close() == b""
    return events


def rules(result: AssembledChat | AssembledMessage) -> set[str]:
    return {v.rule for v in result.violations}


# --- Chat Completions ---------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    """A chat.completion.chunk for choice 0; keyword fields override or add top-level keys."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    body.update(fields)
    return body


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
ROLE = chunk({"role": "assistant", "content": ""})
HEL = chunk({"content": "Hel"})
LO = chunk({"content": "lo"})
STOP = chunk({}, "stop")
USAGE_CHUNK = chunk(choices=[], usage=USAGE)
DONE = "[DONE]"
CLEAN_CHAT = [ROLE, HEL, LO, STOP, USAGE_CHUNK, DONE]

TOOL_HEAD = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": ""},
}
TOOL_ARGS_1 = {"index": 0, "function": {"arguments": '{"city": '}}
TOOL_ARGS_2 = {"index": 0, "function": {"arguments": '"Beijing"}'}}


def tools(*fragments: dict[str, Any]) -> dict[str, Any]:
    return chunk({"tool_calls": list(fragments)})


CLEAN_TOOLS = [ROLE, tools(TOOL_HEAD), tools(TOOL_ARGS_1), tools(TOOL_ARGS_2), chunk({}, "tool_calls"), DONE]


def wire(*payloads: object) -> bytes:
    """Payloads as data events: strings verbatim, anything else as JSON."""
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\n\n" for p in payloads
    )


def chat(*payloads: object, reasoning_field: str = "reasoning_content") -> AssembledChat:
    assembler = ChatStreamAssembler(reasoning_field=reasoning_field)
    for event in decode(wire(*payloads)):
        assembler.add(event)
    return assembler.finish()


def test_a_clean_stream_assembles_with_no_violations() -> None:
    result = chat(*CLEAN_CHAT)
    assert result.violations == []
    assert (result.id, result.model, result.created, result.done) == ("chatcmpl-1", "m", 1700000000, True)
    (choice,) = result.choices.values()
    assert (choice.index, choice.role, choice.content, choice.finish_reason) == (
        0,
        "assistant",
        "Hello",
        "stop",
    )
    assert (choice.reasoning, choice.tool_calls) == ("", {})
    assert result.usage == USAGE
    assert [c.data for c in result.chunks] == [ROLE, HEL, LO, STOP, USAGE_CHUNK]
    assert [(c.event_index, c.t_ns) for c in result.chunks] == [(i, i) for i in range(5)]
    assert result.error is None


def test_the_000_example_is_clean_but_for_usage_on_the_finish_chunk() -> None:
    result = chat_from_wire(DOC_000_STREAM)
    # 000 puts usage on the finish_reason chunk; OpenAI sends a separate chunk: a profile decides.
    assert rules(result) == {"usage-with-choices"}
    assert result.choices[0].content == "Artificial intelligence"
    assert result.usage == {"prompt_tokens": 28, "completion_tokens": 156, "total_tokens": 184}
    assert result.done


def test_the_002_chat_example_lacks_index_role_and_finish_reason() -> None:
    result = chat_from_wire(DOC_002_CHAT_STREAM)
    assert rules(result) == {"choice-no-index", "role-missing", "finish-reason-missing"}
    assert result.choices[0].content == "Hello!"


def chat_from_wire(stream: bytes) -> AssembledChat:
    assembler = ChatStreamAssembler()
    for event in decode(stream):
        assembler.add(event)
    return assembler.finish()


def test_the_clean_tool_stream_merges_fragments() -> None:
    result = chat(*CLEAN_TOOLS)
    assert result.violations == []
    call = result.choices[0].tool_calls[0]
    assert (call.index, call.id, call.type, call.name) == (0, "call_1", "function", "get_weather")
    assert json.loads(call.arguments) == {"city": "Beijing"}


def test_parallel_tool_calls_merge_by_their_own_index() -> None:
    second = {
        "index": 1,
        "id": "call_2",
        "type": "function",
        "function": {"name": "get_time", "arguments": "{}"},
    }
    result = chat(
        ROLE,
        tools(TOOL_HEAD, second),
        tools(TOOL_ARGS_1),
        tools(TOOL_ARGS_2),
        chunk({}, "tool_calls"),
        DONE,
    )
    assert result.violations == []
    calls = result.choices[0].tool_calls
    assert [(c.index, c.name, c.arguments) for c in calls.values()] == [
        (0, "get_weather", '{"city": "Beijing"}'),
        (1, "get_time", "{}"),
    ]


def test_several_choices_are_merged_separately() -> None:
    both = [{"index": 0, "delta": {"role": "assistant"}}, {"index": 1, "delta": {"role": "assistant"}}]
    result = chat(
        chunk(choices=both),
        chunk(choices=[{"index": 1, "delta": {"content": "B"}, "finish_reason": "stop"}]),
        chunk(choices=[{"index": 0, "delta": {"content": "A"}, "finish_reason": "length"}]),
        DONE,
    )
    assert result.violations == []
    assert [(c.index, c.content, c.finish_reason) for c in result.choices.values()] == [
        (0, "A", "length"),
        (1, "B", "stop"),
    ]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_comes_from_the_configured_field(field: str) -> None:
    other = "reasoning" if field == "reasoning_content" else "reasoning_content"
    result = chat(
        ROLE,
        chunk({field: "Think", other: "ignored"}),
        chunk({field: "ing."}),
        HEL,
        STOP,
        DONE,
        reasoning_field=field,
    )
    assert result.violations == []
    assert (result.choices[0].reasoning, result.choices[0].content) == ("Thinking.", "Hel")


def test_a_mid_stream_error_is_kept_whole_and_recorded() -> None:
    error = {"error": {"code": "UPSTREAM_ERROR", "message": "upstream failed", "request_id": "req-1"}}
    result = chat(ROLE, HEL, error)
    assert result.error == error
    assert rules(result) == {"error-event", "missing-done", "finish-reason-missing"}
    assert len(result.chunks) == 2


def test_a_violation_quotes_its_event_and_says_where_it_is() -> None:
    long_content = chunk({"content": "x" * 1000})
    result = chat(ROLE, STOP, long_content, DONE)
    (violation,) = result.violations
    assert (violation.rule, violation.index) == ("content-after-finish", 2)
    assert violation.raw == wire(long_content)[:QUOTE_LIMIT]
    assert 'finish_reason "stop"' in violation.message  # values quoted as JSON


def test_whole_stream_rules_point_at_the_last_event() -> None:
    result = chat(ROLE, HEL)
    missing = [v for v in result.violations if v.rule == "missing-done"]
    assert [(v.index, v.raw) for v in missing] == [(1, wire(HEL))]
    assert [(v.index, v.raw) for v in ChatStreamAssembler().finish().violations] == [(None, b"")]


def test_nan_and_infinity_are_not_json() -> None:
    assert rules(chat(ROLE, '{"a": NaN}', STOP, DONE)) == {"invalid-json"}
    assert rules(chat(ROLE, "Infinity", STOP, DONE)) == {"invalid-json"}


def test_finish_can_be_called_twice() -> None:
    assembler = ChatStreamAssembler()
    for event in decode(wire(ROLE, HEL)):
        assembler.add(event)
    assert assembler.finish() == assembler.finish()


def test_usage_null_on_every_chunk_is_not_usage() -> None:
    # OpenAI with include_usage sends "usage": null on every chunk but the last.
    result = chat(*(dict(c, usage=None) for c in (ROLE, HEL, LO, STOP)), USAGE_CHUNK, DONE)
    assert result.violations == []


def test_a_repeated_type_on_later_tool_call_fragments_is_harmless() -> None:
    # LiteLLM repeats "type": "function" on every fragment; the OpenAI SDK assigns type (id and name it
    # concatenates), so only those are tool-call-header-repeated
    repeated_type = _with(CLEAN_TOOLS, 2, tools(_tool_fragment(type="function")), drop=1)
    assert chat(*repeated_type).violations == []


def test_null_for_an_optional_field_is_absent_not_malformed() -> None:
    # the SDKs read null and absent alike; the chunk schema reports the null (null-optional-field)
    nulls = {"tool_calls": None, "role": None, "refusal": None, "reasoning_content": None}
    result = chat(
        ROLE,
        *(chunk({**d, **nulls}) for d in ({"content": "Hel"}, {"content": "lo"})),
        STOP,
        USAGE_CHUNK,
        DONE,
    )
    assert result.violations == []
    assert result.choices[0].content == "Hello"


def _with(base: list[Any], at: int, *payloads: object, drop: int = 0) -> list[Any]:
    """base with ``drop`` payloads from ``at`` replaced by ``payloads``."""
    return [*base[:at], *payloads, *base[at + drop :]]


def _tool_fragment(**changes: Any) -> dict[str, Any]:
    return {**TOOL_ARGS_1, **changes}


CHAT_CASES: dict[str, tuple[list[Any], set[str]]] = {
    "invalid-json": (_with(CLEAN_CHAT, 1, '{"id": '), set()),
    "not-an-object": (_with(CLEAN_CHAT, 1, "[1, 2]"), set()),
    "malformed": (_with(CLEAN_CHAT, 1, chunk(choices="none")), set()),
    "data-after-done": ([*CLEAN_CHAT, HEL], set()),
    "missing-done": (CLEAN_CHAT[:-1], set()),
    "error-event": (
        _with(CLEAN_CHAT, 2, {"error": {"message": "overloaded", "type": "server_error"}}),
        set(),
    ),
    "object-wrong": (
        _with(CLEAN_CHAT, 1, chunk({"content": "Hel"}, object="chat.completion"), drop=1),
        set(),
    ),
    "id-changed": (_with(CLEAN_CHAT, 1, chunk({"content": "Hel"}, id="chatcmpl-2"), drop=1), set()),
    "created-changed": (_with(CLEAN_CHAT, 1, chunk({"content": "Hel"}, created=1700000001), drop=1), set()),
    "model-changed": (_with(CLEAN_CHAT, 1, chunk({"content": "Hel"}, model="other"), drop=1), set()),
    "choice-no-index": (_with(CLEAN_CHAT, 1, chunk(choices=[{"delta": {"content": "Hel"}}]), drop=1), set()),
    "role-missing": (_with(CLEAN_CHAT, 0, chunk({"content": ""}), drop=1), set()),
    "role-not-first": (_with(CLEAN_CHAT, 1, chunk({"role": "assistant", "content": "Hel"}), drop=1), set()),
    "content-after-finish": (_with(CLEAN_CHAT, 4, chunk({"content": "!"})), set()),
    "reasoning-after-content": (_with(CLEAN_CHAT, 3, chunk({"reasoning_content": "hmm"})), set()),
    "finish-reason-repeated": (_with(CLEAN_CHAT, 4, chunk({}, "length")), set()),
    "finish-reason-missing": (_with(CLEAN_CHAT, 3, drop=1), set()),
    "usage-not-last": (_with(CLEAN_CHAT, 3, USAGE_CHUNK, STOP, drop=2), set()),
    "usage-repeated": (_with(CLEAN_CHAT, 5, USAGE_CHUNK), {"usage-not-last"}),
    "usage-with-choices": (_with(CLEAN_CHAT, 3, chunk({}, "stop", usage=USAGE), drop=2), set()),
    "tool-call-no-index": (
        _with(CLEAN_TOOLS, 2, tools({"function": {"arguments": '{"city": '}}), drop=1),
        set(),
    ),
    "tool-call-index-gap": (
        [ROLE, *(tools(dict(f, index=1)) for f in (TOOL_HEAD, TOOL_ARGS_1, TOOL_ARGS_2)), *CLEAN_TOOLS[-2:]],
        set(),
    ),
    "tool-call-header-missing": (_with(CLEAN_TOOLS, 1, tools(dict(TOOL_HEAD, id=None)), drop=1), set()),
    "tool-call-header-repeated": (
        _with(CLEAN_TOOLS, 2, tools(_tool_fragment(id="call_1")), drop=1),
        set(),
    ),
    "tool-call-arguments-invalid": (_with(CLEAN_TOOLS, 3, drop=1), set()),
}


def test_every_chat_rule_has_a_case() -> None:
    assert set(CHAT_CASES) == CHAT_RULES


@pytest.mark.parametrize("rule", sorted(CHAT_CASES))
def test_each_chat_rule_is_recorded_for_the_stream_that_breaks_it(rule: str) -> None:
    payloads, also = CHAT_CASES[rule]
    assert rules(chat(*payloads)) == {rule, *also}


def test_chat_rules_are_documented_in_the_module_docstring() -> None:
    documented = set(re.findall(r"^    ([a-z][a-z-]+) ", assemble_module.__doc__ or "", re.MULTILINE))
    assert documented >= CHAT_RULES | MESSAGE_RULES


# --- Anthropic Messages --------------------------------------------------------------------------


Event = tuple[str, Any]
"""An Anthropic event as (SSE event name, data): data is JSON-encoded unless it is a str."""


def ev(kind: str, name: str | None = None, **fields: Any) -> Event:
    """One Anthropic event: (SSE event name, data)."""
    return (kind if name is None else name, {"type": kind, **fields})


MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [],
    "stop_reason": None,
}
START = ev("message_start", message={**MESSAGE, "usage": {"input_tokens": 10, "output_tokens": 1}})
PING = ev("ping")
TEXT_START = ev("content_block_start", index=0, content_block={"type": "text", "text": ""})
TEXT_DELTA = ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"})
TEXT_STOP = ev("content_block_stop", index=0)
TOOL_START = ev(
    "content_block_start",
    index=1,
    content_block={"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
)
TOOL_DELTA_1 = ev(
    "content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": '{"city": '}
)
TOOL_DELTA_2 = ev(
    "content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": '"Paris"}'}
)
TOOL_STOP = ev("content_block_stop", index=1)
MESSAGE_DELTA = ev(
    "message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None}, usage={"output_tokens": 12}
)
STOP_EVENT = ev("message_stop")
CLEAN_MESSAGES = [
    START,
    PING,
    TEXT_START,
    TEXT_DELTA,
    TEXT_STOP,
    TOOL_START,
    TOOL_DELTA_1,
    TOOL_DELTA_2,
    TOOL_STOP,
    MESSAGE_DELTA,
    STOP_EVENT,
]


def message_wire(*events: Event) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
        for name, data in events
    )


def messages(*events: Event) -> AssembledMessage:
    return messages_from_wire(message_wire(*events))


def messages_from_wire(stream: bytes) -> AssembledMessage:
    assembler = MessageStreamAssembler()
    for event in decode(stream):
        assembler.add(event)
    return assembler.finish()


def test_the_002_messages_example_is_clean() -> None:
    result = messages_from_wire(DOC_002_MESSAGES_STREAM)
    assert result.violations == []
    assert (result.id, result.model, result.role) == ("msg_xxx", "deepseek-v4-flash", "assistant")
    assert result.content == [{"type": "text", "text": "Hello!"}]
    assert (result.stop_reason, result.stop_sequence, result.stopped) == ("end_turn", None, True)
    assert result.usage == {"input_tokens": 10, "output_tokens": 10}


def test_a_clean_stream_builds_text_and_tool_use_blocks() -> None:
    result = messages(*CLEAN_MESSAGES)
    assert result.violations == []
    assert result.content == [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert result.usage == {"input_tokens": 10, "output_tokens": 12}
    assert result.stop_reason == "tool_use"
    assert [e.data["type"] for e in result.events][:2] == ["message_start", "ping"]
    assert result.as_response() == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": result.content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 12},
    }


def test_thinking_blocks_collect_thinking_and_signature() -> None:
    result = messages(
        START,
        ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Let me "}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "think."}),
        ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "c2ln"}),
        ev("content_block_stop", index=0),
        ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 3}),
        STOP_EVENT,
    )
    assert result.violations == []
    assert result.content == [{"type": "thinking", "thinking": "Let me think.", "signature": "c2ln"}]


def test_a_tool_use_block_without_deltas_keeps_its_start_input() -> None:
    result = messages(START, TOOL_START, TOOL_STOP, MESSAGE_DELTA, STOP_EVENT)
    assert rules(result) == {"block-index-gap"}  # index 1 with no block 0
    assert result.content[0]["input"] == {}


def test_pings_are_allowed_anywhere() -> None:
    result = messages(
        PING, START, PING, TEXT_START, PING, TEXT_DELTA, TEXT_STOP, MESSAGE_DELTA, STOP_EVENT, PING
    )
    assert result.violations == []


def test_a_mid_stream_error_event_is_kept_and_recorded() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    result = messages(START, TEXT_START, TEXT_DELTA, ("error", error))
    assert result.error == error
    assert rules(result) == {
        "error-event",
        "block-not-stopped",
        "message-delta-missing",
        "message-stop-missing",
        "stop-reason-missing",
    }


MESSAGE_CASES: dict[str, tuple[list[Event], set[str]]] = {
    "invalid-json": (_with(CLEAN_MESSAGES, 1, ("ping", "{not json")), set()),
    "not-an-object": (_with(CLEAN_MESSAGES, 1, ("ping", '"ping"')), set()),
    "malformed": (_with(CLEAN_MESSAGES, 1, ("ping", {"kind": "ping"})), set()),
    "error-event": (
        _with(CLEAN_MESSAGES, 1, ev("error", error={"type": "api_error", "message": "x"})),
        set(),
    ),
    "event-name-mismatch": (
        _with(CLEAN_MESSAGES, 3, ev("content_block_delta", "delta", **TEXT_DELTA[1]), drop=1),
        set(),
    ),
    "unknown-event": (_with(CLEAN_MESSAGES, 1, ev("content_block_preview", index=0)), set()),
    "message-start-not-first": ([TEXT_START, START, *CLEAN_MESSAGES[3:]], set()),
    "message-start-repeated": (_with(CLEAN_MESSAGES, 1, START), set()),
    "message-start-missing": (CLEAN_MESSAGES[1:], {"message-start-not-first"}),
    "message-stop-not-last": ([*CLEAN_MESSAGES, STOP_EVENT], set()),
    "message-stop-missing": (CLEAN_MESSAGES[:-1], set()),
    "message-delta-missing": (_with(CLEAN_MESSAGES, 9, drop=1), {"stop-reason-missing"}),
    "stop-reason-missing": (
        _with(CLEAN_MESSAGES, 9, ev("message_delta", delta={}, usage={"output_tokens": 12}), drop=1),
        set(),
    ),
    "usage-decreased": (
        _with(
            CLEAN_MESSAGES,
            10,
            ev("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 11}),
        ),
        set(),
    ),
    "block-start-repeated": (_with(CLEAN_MESSAGES, 3, TEXT_START), set()),
    "block-index-gap": (
        [
            START,
            *(ev(k, index=1, **{f: v for f, v in d.items() if f != "index"}) for k, d in CLEAN_MESSAGES[2:5]),
            *CLEAN_MESSAGES[9:],
        ],
        set(),
    ),
    "block-delta-without-start": (
        _with(CLEAN_MESSAGES, 3, ev("content_block_delta", index=7, delta=TEXT_DELTA[1]["delta"])),
        set(),
    ),
    "block-delta-after-stop": (_with(CLEAN_MESSAGES, 5, TEXT_DELTA), set()),
    "block-stop-without-start": (_with(CLEAN_MESSAGES, 5, ev("content_block_stop", index=7)), set()),
    "block-stop-repeated": (_with(CLEAN_MESSAGES, 5, TEXT_STOP), set()),
    "block-not-stopped": (_with(CLEAN_MESSAGES, 4, drop=1), set()),
    "delta-type-mismatch": (
        _with(CLEAN_MESSAGES, 3, ev("content_block_delta", index=0, delta=TOOL_DELTA_1[1]["delta"])),
        set(),
    ),
    "tool-input-invalid": (_with(CLEAN_MESSAGES, 7, drop=1), set()),
}


def test_every_message_rule_has_a_case() -> None:
    assert set(MESSAGE_CASES) == MESSAGE_RULES


@pytest.mark.parametrize("rule", sorted(MESSAGE_CASES))
def test_each_message_rule_is_recorded_for_the_stream_that_breaks_it(rule: str) -> None:
    events, also = MESSAGE_CASES[rule]
    assert rules(messages(*events)) == {rule, *also}


def test_a_delta_of_the_wrong_type_is_not_applied() -> None:
    events, _ = MESSAGE_CASES["delta-type-mismatch"]
    assert messages(*events).content[0] == {"type": "text", "text": "Hi"}


def test_an_empty_messages_stream_misses_everything_without_raising() -> None:
    result = MessageStreamAssembler().finish()
    assert rules(result) == {
        "message-start-missing",
        "message-stop-missing",
        "message-delta-missing",
        "stop-reason-missing",
    }
    assert all(v.index is None for v in result.violations)


# --- never raise ---------------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "index",
        "delta",
        "role",
        "content",
        "reasoning_content",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "type",
        "finish_reason",
        "usage",
        "error",
        "message",
        "content_block",
        "text",
        "partial_json",
        "thinking",
        "signature",
        "citation",
        "citations",
        "input",
        "stop_reason",
        "output_tokens",
        "message_start",
        "content_block_delta",
        "tool_use",
        "input_json_delta",
    ]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=5), KEYS
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
DATA = st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=20), st.just("[DONE]"), st.just("NaN"))
EVENTS = st.lists(
    st.builds(
        lambda name, data, t: SSEEvent(name, data, "", None, t, data.encode()),
        st.one_of(st.just("message"), KEYS),
        DATA,
        st.integers(0, 10),
    ),
    max_size=12,
)


@settings(deadline=None, max_examples=300)
@given(EVENTS)
def test_the_assemblers_never_raise(events: list[SSEEvent]) -> None:
    chat_assembler, message_assembler = ChatStreamAssembler(), MessageStreamAssembler()
    for event in events:
        chat_assembler.add(event)
        message_assembler.add(event)
    chat_result, message_result = chat_assembler.finish(), message_assembler.finish()
    assert {v.rule for v in chat_result.violations} <= CHAT_RULES
    assert {v.rule for v in message_result.violations} <= MESSAGE_RULES
    assert all(len(v.raw) <= QUOTE_LIMIT for v in [*chat_result.violations, *message_result.violations])


@pytest.mark.parametrize("depth", [500, 900, 100_000])
def test_deeply_nested_payloads_are_recorded_not_raised(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    payloads = [nested, f'{{"id": {nested}, "type": {nested}}}', f'{{"id": {nested}, "type": "ping"}}']
    events = [SSEEvent("message", data, "", None, 0, data.encode()) for data in payloads]
    chat_assembler, message_assembler = ChatStreamAssembler(), MessageStreamAssembler()
    for event in events:
        chat_assembler.add(event)
        message_assembler.add(event)
    assert rules(chat_assembler.finish()) & {"invalid-json", "not-an-object"}
    assert rules(message_assembler.finish()) & {"invalid-json", "not-an-object", "malformed"}


def test_whole_stream_violations_quote_at_most_the_limit_too() -> None:
    """finish-reason-missing, usage-not-last and bad tool arguments quote a long event cut at the limit."""
    filler = "y" * 2 * QUOTE_LIMIT
    header = {"index": 0, "id": "c", "function": {"name": "f"}}
    fragment = {"index": 0, "function": {"arguments": "{"}}
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    payloads = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": filler}}]},
        {"choices": [], "usage": usage},
        {"choices": [{"index": 1, "delta": {"tool_calls": [header]}}], "pad": filler},
        {"choices": [{"index": 1, "delta": {"tool_calls": [fragment]}}], "pad": filler},
    ]
    assembler = ChatStreamAssembler()
    for payload in payloads:
        data = json.dumps(payload)
        assembler.add(SSEEvent("message", data, "", None, 0, data.encode()))
    found = assembler.finish().violations
    wanted = {"finish-reason-missing", "usage-not-last", "tool-call-arguments-invalid"}
    assert wanted <= {v.rule for v in found}
    assert all(len(v.raw) <= QUOTE_LIMIT for v in found)

"""gatecheck.load.stampers: turning received bytes into raw stamps (no locust, no sockets)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatecheck.assemble import ChatStreamAssembler, MessageStreamAssembler
from gatecheck.load.stampers import (
    BodyStamper,
    ChatStreamStamper,
    ErrorStamper,
    MessagesStreamStamper,
    OutputShape,
    ResponseRefused,
    _chunk_has_output,
    decoded,
    error_code,
    quick_chat_output,
    quick_delta_output,
    stamper_for,
    surely_chat_output,
    surely_delta_output,
)
from gatecheck.load.timing import StreamTiming, derive
from gatecheck.sse import SSEDecoder, SSEEvent

# The streaming example of api-docs/000 ("Streaming SSE Chunks"): a role-only first chunk, two
# content chunks, a final chunk with finish_reason and usage, then [DONE].
_HEAD = (
    b'"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1712345678,'
    b'"model":"deepseek-v4-flash"'
)
DOC_000_STREAM = (
    b"data: {"
    + _HEAD
    + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    b"data: {"
    + _HEAD
    + b',"choices":[{"index":0,"delta":{"content":"Artificial"},"finish_reason":null}]}\n\n'
    b"data: {"
    + _HEAD
    + b',"choices":[{"index":0,"delta":{"content":" intelligence"},"finish_reason":null}]}\n\n'
    b"data: {" + _HEAD + b',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":28,"completion_tokens":156,"total_tokens":184}}\n\n'
    b"data: [DONE]\n\n"
)

# The /v1/messages stream of api-docs/002 ("Messages Streaming").
DOC_002_MESSAGES = b"".join(
    b"event: " + name + b"\ndata: " + data + b"\n\n"
    for name, data in (
        (
            b"message_start",
            b'{"type":"message_start","message":{"id":"msg_xxx","type":"message","role":"assistant",'
            b'"model":"deepseek-v4-flash","stop_reason":null,"usage":{"input_tokens":10,"output_tokens":0}}}',
        ),
        (
            b"content_block_start",
            b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}',
        ),
        (b"content_block_stop", b'{"type":"content_block_stop","index":0}'),
        (
            b"message_delta",
            b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":10}}',
        ),
        (b"message_stop", b'{"type":"message_stop"}'),
    )
)


def _timing(streamed: bool = True) -> StreamTiming:
    return StreamTiming(t_start_ns=0, wall_start_s=0.0, streamed=streamed, t_headers_ns=1, status=200)


def _events(stream: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in stream.split(b"\n\n") if part]


def test_doc_stream_one_event_per_read() -> None:
    stamper = ChatStreamStamper(_timing())
    for i, event in enumerate(_events(DOC_000_STREAM)):
        stamper.feed(event, (i + 1) * 1000)
    stamper.finish(9000)
    t = stamper.timing
    assert t.token_ns == [2000, 3000], "the role-only chunk with empty content is not output"
    assert t.content_ns == 2000
    assert (t.output_tokens, t.prompt_tokens) == (156, 28)
    assert t.complete and t.error_code is None and t.finish_reason == "stop"
    assert derive(t).ok
    assert t.bytes_received == len(DOC_000_STREAM)
    assert t.t_end_ns == 9000


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_any_split_of_the_stream_gives_the_same_stamps(size: int) -> None:
    stamper = ChatStreamStamper(_timing())
    for offset in range(0, len(DOC_000_STREAM), size):
        stamper.feed(DOC_000_STREAM[offset : offset + size], offset)
    stamper.finish(10**9)
    t = stamper.timing
    assert len(t.token_ns) == 2 and t.complete and t.output_tokens == 156
    assert t.token_ns == sorted(t.token_ns)


def _chunk(delta: dict[str, object]) -> bytes:
    body = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@pytest.mark.parametrize(
    ("delta", "counts"),
    [
        ({"role": "assistant"}, False),
        ({"content": ""}, False),
        ({"content": None}, False),
        ({}, False),
        ({"content": "x"}, True),
        ({"reasoning_content": "thinking"}, True),
        ({"reasoning": "thinking"}, True),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}, True),
    ],
)
def test_what_counts_as_an_output_chunk(delta: dict[str, object], counts: bool) -> None:
    stamper = ChatStreamStamper(_timing())
    stamper.feed(_chunk(delta), 5)
    assert stamper.timing.token_ns == ([5] if counts else [])


def test_mid_stream_error_and_missing_done_are_failures() -> None:
    stamper = ChatStreamStamper(_timing())
    stamper.feed(_chunk({"content": "a"}), 1)
    stamper.feed(b'data: {"error": {"code": "UPSTREAM_ERROR", "message": "boom"}}\n\n', 2)
    stamper.finish(3)
    m = derive(stamper.timing)
    assert not m.ok and m.error_code == "stream-error-event:UPSTREAM_ERROR"

    cut = ChatStreamStamper(_timing())
    cut.feed(_chunk({"content": "a"}), 1)
    cut.finish(2)
    assert derive(cut.timing).error_code == "stream-incomplete"


def test_invalid_chunks_are_recorded_not_raised() -> None:
    stamper = ChatStreamStamper(_timing())
    stamper.feed(b"data: {not json\n\ndata: [1, 2]\n\ndata: [DONE]\n\n", 1)
    stamper.finish(2)
    assert stamper.timing.error_code == "invalid-chunk"


def test_anthropic_doc_stream() -> None:
    stamper = MessagesStreamStamper(_timing())
    for i, event in enumerate(_events(DOC_002_MESSAGES)):
        stamper.feed(event, (i + 1) * 10)
    stamper.finish(100)
    t = stamper.timing
    assert t.token_ns == [30, 40] and t.content_ns == 30
    assert (t.prompt_tokens, t.output_tokens) == (10, 10)
    assert t.complete and t.finish_reason == "end_turn"
    assert derive(t).tpot_ms == pytest.approx(10 / 1e6 / 9)


def test_anthropic_error_event_and_other_deltas() -> None:
    stamper = MessagesStreamStamper(_timing())
    stamper.feed(
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"thinking_delta","thinking":"hm"}}\n\n',
        1,
    )
    stamper.feed(
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,'
        b'"delta":{"type":"input_json_delta","partial_json":""}}\n\n',
        2,
    )
    stamper.feed(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}\n\n', 3
    )
    assert stamper.timing.token_ns == [1]
    assert stamper.timing.error_code == "stream-error-event:overloaded_error"


def test_non_streaming_bodies_read_usage_in_either_dialect() -> None:
    openai = BodyStamper(_timing(streamed=False), "openai")
    openai.feed(b'{"choices": [], "usage": {"prompt_tokens": 5, ', 1)
    openai.feed(b'"completion_tokens": 9}}', 2)
    openai.finish(3)
    assert (openai.timing.prompt_tokens, openai.timing.output_tokens, openai.timing.complete) == (5, 9, True)
    assert derive(openai.timing).error_code == "response-no-finish-reason", "no choice, no finish_reason"
    anthropic = BodyStamper(_timing(streamed=False), "anthropic")
    anthropic.feed(b'{"content": [], "usage": {"input_tokens": 4, "output_tokens": 6}}', 1)
    anthropic.finish(2)
    assert (anthropic.timing.prompt_tokens, anthropic.timing.output_tokens) == (4, 6)
    whole = BodyStamper(_timing(streamed=False), "openai")
    whole.feed(b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},', 1)
    whole.feed(b' "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}', 2)
    whole.finish(3)
    assert whole.timing.generated and whole.timing.finish_reason == "stop" and derive(whole.timing).ok
    message = BodyStamper(_timing(streamed=False), "anthropic")
    message.feed(b'{"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}', 1)
    message.finish(2)
    assert derive(message.timing).ok
    broken = BodyStamper(_timing(streamed=False), "openai")
    broken.feed(b"<html>", 1)
    broken.finish(2)
    assert broken.timing.error_code == "invalid-body"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"error": {"code": "RATE_LIMIT", "message": "slow down", "request_id": "r"}}', "RATE_LIMIT"),
        (
            b'{"error": {"message": "m", "type": "invalid_request_error", "param": null, "code": null}}',
            "invalid_request_error",
        ),
        (
            b'{"error": {"message": "m", "type": "t", "param": null, "code": "rate_limit_exceeded"}}',
            "rate_limit_exceeded",
        ),
        (b'{"type": "error", "error": {"type": "rate_limit_error", "message": "m"}}', "rate_limit_error"),
        (b"Too Many Requests", "invalid-body"),
        (b'{"detail": "no"}', "unknown-error"),
    ],
)
def test_error_codes_from_every_documented_body(body: bytes, code: str) -> None:
    assert error_code(body) == code


def test_stamper_choice_follows_status_and_request() -> None:
    assert isinstance(stamper_for(_timing(), "openai", 429), ErrorStamper)
    assert isinstance(stamper_for(_timing(streamed=False), "anthropic", 200), BodyStamper)
    assert isinstance(stamper_for(_timing(), "anthropic", 200), MessagesStreamStamper)
    assert isinstance(stamper_for(_timing(), "openai", 200), ChatStreamStamper)
    errors = ErrorStamper(_timing())
    errors.feed(b'{"error": {"code": "FORBIDDEN"}}', 1)
    errors.finish(2)
    assert errors.timing.error_code == "FORBIDDEN"


# --- the quick classifiers agree with a full parse --------------------------------------------

_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(
    ['"content":"x"', "content", '"usage"', '\\"error\\"', "", " ", '{"', "\u2028"]
)
_delta = st.fixed_dictionaries(
    {},
    optional={
        "role": st.just("assistant"),
        "content": st.none() | _text,
        "reasoning_content": st.none() | _text,
        "reasoning": st.none() | _text,
        "tool_calls": st.none() | st.just([]) | st.just([{"index": 0, "function": {"arguments": "{"}}]),
    },
)
_choice = st.fixed_dictionaries(
    {"index": st.just(0), "delta": _delta},
    optional={"finish_reason": st.none() | st.just("stop"), "logprobs": st.none() | st.just({"content": []})},
)
_chunk_obj = st.fixed_dictionaries(
    {"choices": st.lists(_choice, max_size=2)},
    optional={
        "id": st.just("chatcmpl-1"),
        "usage": st.none() | st.just({"prompt_tokens": 1, "completion_tokens": 2}),
        "error": st.just({"code": "X"}),
    },
)


def _encoded(obj: dict[str, object], style: int) -> str:
    if style == 0:
        return json.dumps(obj, separators=(",", ":"))
    if style == 1:
        return json.dumps(obj)
    return json.dumps(obj, indent=1, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(obj=_chunk_obj, style=st.integers(0, 2))
def test_quick_chat_classifier_agrees_with_json(obj: dict[str, object], style: int) -> None:
    quick = quick_chat_output(_encoded(obj, style))
    if quick is not None:
        assert quick == _chunk_has_output(obj)
        assert "usage" not in obj or obj["usage"] is None
        assert "error" not in obj
        assert all(c.get("finish_reason") is None for c in obj["choices"]), "a finish_reason is parsed"


_anthropic_delta = st.sampled_from(
    ["text_delta", "thinking_delta", "input_json_delta", "signature_delta"]
).flatmap(
    lambda kind: st.fixed_dictionaries(
        {
            "type": st.just(kind),
            {
                "text_delta": "text",
                "thinking_delta": "thinking",
                "input_json_delta": "partial_json",
                "signature_delta": "signature",
            }[kind]: _text,
        }
    )
)


@settings(max_examples=200, deadline=None)
@given(delta=_anthropic_delta, style=st.integers(0, 2))
def test_quick_delta_classifier_agrees_with_json(delta: dict[str, str], style: int) -> None:
    event = {"type": "content_block_delta", "index": 0, "delta": delta}
    quick = quick_delta_output(_encoded(event, style))
    field = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}.get(
        delta["type"]
    )
    if quick is not None:
        assert quick == bool(field and delta.get(field))


def test_the_common_chunks_take_the_quick_path() -> None:
    assert quick_chat_output(_chunk({"content": "x"}).decode()[6:].strip()) is True
    assert quick_chat_output(_chunk({"role": "assistant", "content": ""}).decode()[6:].strip()) is False
    assert quick_chat_output('{"choices":[],"usage":{"completion_tokens":3}}') is None
    assert (
        quick_delta_output('{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}') is True
    )


# --- the stamper's byte tests and per-piece shape test agree with a full parse ---------------------

_texts = st.one_of(
    st.just(" word"),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6),
    st.sampled_from(["content", "usage", "error", "\\", 'a"b', "\\\\", "a\\", "", " "]),
)


def _openai_chunk(text: str | None, style: int) -> dict[str, object]:
    """A chunk of one stream: content ``text`` (None: a usage chunk; style 1: role and content;
    style 2: ``"usage":null`` as OpenAI sends with include_usage)."""
    head: dict[str, object] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
    if text is None:
        return {**head, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 7}}
    delta = {"role": "assistant", "content": text} if style == 1 else {"content": text}
    chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    return {**chunk, "usage": None} if style == 2 else chunk


def _stamped(stamper: ChatStreamStamper | MessagesStreamStamper, stream: bytes, cuts: list[int]) -> list[int]:
    """Feed the stream cut at ``cuts``, piece i stamped i; the token stamps."""
    points = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    for t_ns, (a, b) in enumerate(pairwise(points)):
        stamper.feed(stream[a:b], t_ns)
    stamper.finish(len(points))
    return stamper.timing.token_ns


def _expected(stream: bytes, cuts: list[int], is_output: Callable[[SSEEvent], bool]) -> list[int]:
    """The arrival of each output event by SSEDecoder.feed and a full JSON parse of every event."""
    points = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    decoder = SSEDecoder()
    events = [e for t, (a, b) in enumerate(pairwise(points)) for e in decoder.feed(stream[a:b], t)]
    return [e.t_ns for e in events if is_output(e)]


def _chat_output(event: SSEEvent) -> bool:
    return event.data != "[DONE]" and _chunk_has_output(json.loads(event.data))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2),
    st.lists(st.tuples(st.none() | _texts, st.integers(0, 2)), max_size=40),
    st.lists(st.integers(min_value=0, max_value=6000), max_size=6),
)
def test_chat_stamps_equal_a_full_parse_for_any_texts_and_split(
    first: int, chunks: list[tuple[str | None, int]], cuts: list[int]
) -> None:
    stream = (
        b"".join(
            b"data: " + json.dumps(_openai_chunk(text, style), separators=(",", ":")).encode() + b"\n\n"
            for text, style in [(" word", first), *chunks]
        )
        + b"data: [DONE]\n\n"
    )
    stamper = ChatStreamStamper(_timing())
    assert _stamped(stamper, stream, cuts) == _expected(stream, cuts, _chat_output)
    usage = any(text is None for text, _ in chunks)
    assert stamper.timing.output_tokens == (7 if usage else None), "tokens come from usage when present"
    assert stamper.timing.complete


def _messages_output(event: SSEEvent) -> bool:
    delta = json.loads(event.data).get("delta", {})
    return event.event == "content_block_delta" and bool(delta.get("text") or delta.get("thinking"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_texts, st.sampled_from(["text_delta", "thinking_delta", "ping"])), max_size=40),
    st.lists(st.integers(min_value=0, max_value=6000), max_size=6),
)
def test_messages_stamps_equal_a_full_parse_for_any_texts_and_split(
    deltas: list[tuple[str, str]], cuts: list[int]
) -> None:
    def event(text: str, kind: str) -> bytes:
        if kind == "ping":
            return b'event: ping\ndata: {"type":"ping"}\n\n'
        field = "text" if kind == "text_delta" else "thinking"
        data = {"type": "content_block_delta", "index": 0, "delta": {"type": kind, field: text}}
        return (
            b"event: content_block_delta\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
        )

    stream = b"".join(event(text, kind) for text, kind in [(" word", "text_delta"), *deltas])
    stream += b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    stamper = MessagesStreamStamper(_timing())
    assert _stamped(stamper, stream, cuts) == _expected(stream, cuts, _messages_output)
    assert stamper.timing.complete


def test_a_piece_of_plain_chunks_is_stamped_by_the_learned_shape() -> None:
    def compact(text: str) -> bytes:
        chunk = json.dumps(_openai_chunk(text, 0), separators=(",", ":")).encode()
        return b"data: " + chunk + b"\n\n"

    plain = b"".join(compact(f"w{i}") for i in range(50))
    stamper = ChatStreamStamper(_timing())
    stamper.feed(compact("first"), 1)
    assert stamper._shape is None, "one event per piece: not worth learning"
    stamper.feed(b"".join(compact(f"v{i}") for i in range(8)), 2)
    shape = stamper._shape
    assert shape is not None and shape.head.endswith(b'"content":"') and shape.tail.startswith(b'"}')
    assert shape.covers([part[6:] for part in plain.split(b"\n\n") if part])
    stamper.feed(plain, 3)
    assert stamper.timing.token_ns == [1] + [2] * 8 + [3] * 50


@pytest.mark.parametrize("text", ["", 'say "hi"', "ends with \\", "content", "usage"])
def test_the_shape_test_leaves_unusual_texts_to_the_per_event_path(text: str) -> None:
    shape = OutputShape(b'{"choices":[{"delta":{"content":"', b'"}}]}')
    data = json.dumps({"choices": [{"delta": {"content": text}}]}, separators=(",", ":")).encode()
    plain = b'{"choices":[{"delta":{"content":"x"}}]}'
    assert shape.covers([plain, plain])
    assert shape.covers([plain, data]) == (text in ("content", "usage"))


@settings(max_examples=300, deadline=None)
@given(obj=_chunk_obj, style=st.integers(0, 2))
def test_the_chat_byte_test_agrees_with_json(obj: dict[str, object], style: int) -> None:
    if surely_chat_output(_encoded(obj, style).encode()):
        assert _chunk_has_output(obj)
        assert obj.get("usage") is None and "error" not in obj
        assert all(c.get("finish_reason") is None for c in obj["choices"])


@settings(max_examples=200, deadline=None)
@given(delta=_anthropic_delta, style=st.integers(0, 2))
def test_the_delta_byte_test_agrees_with_json(delta: dict[str, str], style: int) -> None:
    event = {"type": "content_block_delta", "index": 0, "delta": delta}
    if surely_delta_output(_encoded(event, style).encode()):
        assert delta["type"] == "text_delta" and delta["text"]


def test_the_common_compact_chunks_pass_the_byte_tests() -> None:
    assert surely_chat_output(json.dumps(_openai_chunk("x", 2), separators=(",", ":")).encode())
    assert not surely_chat_output(json.dumps(_openai_chunk("", 2), separators=(",", ":")).encode())
    assert not surely_chat_output(json.dumps(_openai_chunk(None, 0), separators=(",", ":")).encode())
    assert surely_delta_output(
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}'
    )


# --- finish reasons, content, checked streams, encodings -------------------------------------------


def _compact(chunk: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _gateway_chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    """A chunk as the reference gateway writes it (compact, logprobs, usage null)."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _compact({"id": "c", "object": "chat.completion.chunk", "choices": [choice], "usage": None})


def _gateway_stream(words: int, finish: str = "length") -> bytes:
    head = _gateway_chunk({"role": "assistant", "content": ""})
    body = b"".join(_gateway_chunk({"content": f" w{i}"}) for i in range(words))
    usage = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {"completion_tokens": words},
    }
    return head + body + _gateway_chunk({}, finish) + _compact(usage) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("size", [7, 300, 100_000])
def test_the_finish_reason_is_read_whatever_path_the_chunks_take(size: int) -> None:
    """The finish chunk never takes a path that skips it (byte test, learned shape, quick look)."""
    stream = _gateway_stream(40)
    stamper = ChatStreamStamper(_timing())
    for offset in range(0, len(stream), size):
        stamper.feed(stream[offset : offset + size], offset)
    stamper.finish(10**9)
    assert stamper.timing.finish_reason == "length" and len(stamper.timing.token_ns) == 40
    assert derive(stamper.timing).ok


def test_a_content_chunk_carrying_the_finish_reason_is_parsed() -> None:
    stamper = ChatStreamStamper(_timing())
    stamper.feed(_gateway_chunk({"content": "last"}, "stop") + b"data: [DONE]\n\n", 1)
    stamper.finish(2)
    assert stamper.timing.finish_reason == "stop" and stamper.timing.token_ns == [1]


def test_done_without_a_finish_reason_is_an_error() -> None:
    """What a real inference server sends for a stream it interrupts under concurrency."""
    stamper = ChatStreamStamper(_timing())
    stamper.feed(_gateway_chunk({"content": "a"}) + b"data: [DONE]\n\n", 1)
    stamper.finish(2)
    assert derive(stamper.timing).error_code == "stream-no-finish-reason"


def test_ttfc_waits_for_content_after_reasoning_and_tool_calls() -> None:
    stamper = ChatStreamStamper(_timing())
    stamper.feed(_gateway_chunk({"reasoning_content": "hmm"}), 1)
    stamper.feed(_gateway_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}), 2)
    stamper.feed(b'data: {"choices":[{"index":0,"delta":{"content": "spaced"}}]}\n\n', 3)
    stamper.feed(_gateway_chunk({"content": "x"}, "stop") + b"data: [DONE]\n\n", 4)
    stamper.finish(5)
    assert stamper.timing.token_ns == [1, 2, 3, 4] and stamper.timing.content_ns == 3
    thinking = MessagesStreamStamper(_timing())
    thinking.feed(
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"thinking_delta","thinking":"hm"}}\n\n',
        1,
    )
    thinking.feed(
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 1, '
        b'"delta": {"type": "text_delta", "text": "a"}}\n\n',
        2,
    )
    assert thinking.timing.token_ns == [1, 2] and thinking.timing.content_ns == 2


def test_a_checked_stream_gets_the_assembler_violations() -> None:
    faithful = ChatStreamStamper(_timing(), ChatStreamAssembler())
    faithful.feed(_gateway_stream(5), 1)
    faithful.finish(2)
    assert faithful.timing.checked and faithful.timing.violations == []
    assert faithful.timing.token_ns == [1] * 5 and faithful.timing.finish_reason == "length"
    changed = _gateway_stream(3).replace(b'"id":"c"', b'"id":"d"', 2)
    broken = ChatStreamStamper(_timing(), ChatStreamAssembler())
    broken.feed(changed[: -len(b"data: [DONE]\n\n")], 1)
    broken.finish(2)
    rules = {v.rule for v in broken.timing.violations}
    assert rules == {"id-changed", "missing-done"}
    messages = MessagesStreamStamper(_timing(), MessageStreamAssembler())
    messages.feed(DOC_002_MESSAGES, 1)
    messages.finish(2)
    assert messages.timing.violations == [] and messages.timing.token_ns == [1, 1]
    unchecked = ChatStreamStamper(_timing())
    assert not unchecked.timing.checked


def test_gzip_and_deflate_bodies_are_decoded_as_they_arrive() -> None:
    stream = _gateway_stream(6)
    for wbits, encoding in ((31, "gzip"), (15, "deflate")):
        packer = zlib.compressobj(wbits=wbits)
        pieces = [
            packer.compress(stream[i : i + 50]) + packer.flush(zlib.Z_SYNC_FLUSH)
            for i in range(0, len(stream), 50)
        ]
        pieces.append(packer.flush())
        stamper = decoded(ChatStreamStamper(_timing()), encoding, 1 << 20)
        for t, piece in enumerate(pieces):
            stamper.feed(piece, t)
        stamper.finish(99)
        assert derive(stamper.timing).ok and len(stamper.timing.token_ns) == 6
    assert decoded(ChatStreamStamper(_timing()), "identity", 10) is not None


def test_other_encodings_bombs_and_garbage_are_refused_with_a_code() -> None:
    with pytest.raises(ResponseRefused, match="content-encoding-unsupported:br"):
        decoded(ChatStreamStamper(_timing()), "br", 1 << 20)
    bomb = zlib.compress(b"data: " + b"x" * 5_000_000, 9)
    with pytest.raises(ResponseRefused, match="response-too-large"):
        decoded(ChatStreamStamper(_timing()), "deflate", 1 << 20).feed(bomb, 1)
    with pytest.raises(ResponseRefused, match="content-encoding-invalid"):
        decoded(ChatStreamStamper(_timing()), "gzip", 1 << 20).feed(b"not gzip at all", 1)

"""Reading responses for the load test, sans-IO: bytes with arrival times in, raw stamps out.

The locust users (``gatecheck.load.users``) receive bytes from the socket and pass each piece here
with the ``perf_counter_ns`` taken as it arrived. A stamper feeds them to the project's one SSE
decoder (``gatecheck.sse.SSEDecoder``) and records into a :class:`gatecheck.load.timing.StreamTiming`
only what :func:`gatecheck.load.timing.derive` needs: the arrival time of each event carrying output,
usage, completion and errors. No metric is computed here.

An event carries output when it has non-empty ``content``, reasoning (``reasoning_content`` or
``reasoning``) or a tool-call fragment (OpenAI), or a non-empty ``text_delta``,
``thinking_delta`` or ``input_json_delta`` (Anthropic). Role-only and empty chunks do not count.
Content proper (``content``, ``text_delta``) is also stamped on its own (``content_ns``: TTFC), and
the first non-null ``finish_reason`` / ``stop_reason`` is kept: the outcome rule of
:func:`gatecheck.load.timing.error_code` needs it.

Conformance under load: a stamper given an assembler (``gatecheck.assemble``) also feeds it every
event (decoded with ``SSEDecoder.feed``, the full path) and keeps its violations; the plugin picks
which streams are checked (``--conformance-sample``), because the full path costs capacity.

A body sent with a ``Content-Encoding`` is decoded first (:func:`decoded`): gzip and deflate are
decompressed as they arrive; any other encoding is refused with an error code naming it.

Speed: parsing every chunk with ``json.loads`` would cost more than everything else in the loop.
Three tiers, cheapest first. The decoder's ``feed_data`` hands over each event's data as bytes
(no ``SSEEvent``, no UTF-8 decoding), and the compact common chunk (``"content":"x`` or
``"text":"x`` once, no usage, no error) is recognised on those bytes by a few C-level searches
(:func:`surely_chat_output`, :func:`surely_delta_output`). Otherwise the data is decoded and the
value after its few keys is examined (:func:`quick_chat_output`, :func:`quick_delta_output`);
anything that is not plainly an output event (role-only chunks, a non-null ``finish_reason``,
usage objects, errors, several choices, a key seen twice, an unexpected value) is parsed in full:
a few events per stream, and the only ones ``invalid-chunk`` is judged on (an output event taken by
the byte tests is not parsed; the assembler checks every event of the streams it checks). JSON
keys cannot hide inside string values (quotes there are escaped), so a quick answer is the parsed
answer; property tests check it. All events completed by one received piece share its arrival time.
"""

from __future__ import annotations

import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from itertools import repeat
from operator import itemgetter
from typing import Any, Protocol

from gatecheck.assemble import ChatStreamAssembler, MessageStreamAssembler
from gatecheck.errors import SSEError
from gatecheck.load.timing import StreamTiming
from gatecheck.load.workload import Dialect
from gatecheck.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent

Assembler = ChatStreamAssembler | MessageStreamAssembler

_REASONING_FIELDS = ("reasoning_content", "reasoning")
_ANTHROPIC_OUTPUT = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}


class Stamper(Protocol):
    """What the I/O loop drives: ``feed`` per received piece, ``finish`` at the end."""

    timing: StreamTiming

    def feed(self, data: bytes, t_ns: int) -> None:
        """Account for bytes that arrived at ``t_ns``."""

    def finish(self, t_ns: int) -> None:
        """The response ended (or was abandoned) at ``t_ns``."""


class ResponseRefused(Exception):
    """The response cannot be read any further; ``code`` names why (the request's error code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def error_code(body: bytes) -> str:
    """A short code naming what went wrong, from any documented error body (or ``invalid-body``).

    Gateway bodies give ``error.code`` (``RATE_LIMIT``), OpenAI ones ``error.code`` or
    ``error.type``, Anthropic ones ``error.type``.
    """
    try:
        value = json.loads(body)
    except ValueError:
        return "invalid-body"
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, dict):
        for key in ("code", "type"):
            if isinstance(error.get(key), str) and error[key]:
                return str(error[key])
    return "unknown-error"


def _first_int(obj: object, *keys: str) -> int | None:
    if not isinstance(obj, dict):
        return None
    for key in keys:
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _chunk_has_output(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        if delta.get("content") or delta.get("tool_calls"):
            return True
        if any(delta.get(name) for name in _REASONING_FIELDS):
            return True
    return False


_EMPTY_OR_QUOTE = (b"", b'"')
_OPEN_BRACE = 0x7B


def surely_chat_output(data: bytes) -> bool:
    """True when an OpenAI chunk's bytes surely carry content and nothing else to read: ``"content":"``
    once, followed by a character, no usage and no finish_reason (or one compact ``null`` each) and
    no error (the compact common chunk). False means: look closer. (Written out, not factored: it
    runs once per event on the hot path.)"""
    at = data.find(b'"content":"')
    if (
        at <= 0
        or data[at + 11 : at + 12] in _EMPTY_OR_QUOTE
        or data[0] != _OPEN_BRACE
        or data.count(b'"content"') != 1
        or b'"error"' in data
    ):
        return False
    usage = data.find(b'"usage"')
    if usage >= 0 and not (data.startswith(b'"usage":null', usage) and data.find(b'"usage"', usage + 7) < 0):
        return False
    finish = data.find(b'"finish_reason"')
    return finish < 0 or (
        data.startswith(b'"finish_reason":null', finish) and data.find(b'"finish_reason"', finish + 15) < 0
    )


def surely_delta_output(data: bytes) -> bool:
    """True when an Anthropic ``content_block_delta``'s bytes surely carry output: ``"text":"``
    once, followed by a character, and no error. False means: look closer."""
    at = data.find(b'"text":"')
    return (
        at > 0
        and data[at + 8 : at + 9] not in _EMPTY_OR_QUOTE
        and data[0] == _OPEN_BRACE
        and data.count(b'"text"') == 1
        and b'"error"' not in data
    )


_BACKSLASH = 0x5C
_SHAPE_TRIES = 8
"""Output events tried as a stream's shape before giving up on it (their text had quotes...)."""
_SMALL_RUN = 4
"""Events the recursive run test stamps one by one rather than halving further."""
_name_of = itemgetter(0)
_data_of = itemgetter(1)
_DELTA = b"content_block_delta"


class OutputShape:
    """What one stream's plain output events look like: ``head`` + text + ``tail``, where only
    the text changes from event to event (``head`` ends with ``"content":"`` or ``"text":"``).

    Learned (:meth:`learn`) from an event that parses to an output event and whose text holds no
    quote and does not end with a backslash. An event made of the same head and tail around a
    non-empty text that also holds no quote and does not end with a backslash differs from it only
    in that string's value (no key can appear or vanish without a quote), so it is an output event
    too. :meth:`covers` tests all the events of one received piece with a handful of C-level
    operations, whatever their number; a property test checks it against a full parse.
    """

    __slots__ = ("_joint", "_text_of", "head", "tail")

    def __init__(self, head: bytes, tail: bytes) -> None:
        self.head = head
        self.tail = tail
        self._joint = tail + b"\r" + head
        self._text_of = itemgetter(slice(len(head), -len(tail)))  # tail holds the closing quote

    @classmethod
    def learn(
        cls, data: bytes, key: bytes, is_output: Callable[[dict[str, Any]], bool]
    ) -> OutputShape | None:
        """The shape of ``data`` around the string after ``key``, if ``data`` is a fit model."""
        start = data.find(key) + len(key)
        end = data.find(b'"', start)
        if start == len(key) - 1 or end <= start or data[end - 1] == _BACKSLASH:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        if not isinstance(value, dict) or not is_output(value):
            return None
        return cls(data[:start], data[end:])

    def covers(self, datas: list[bytes]) -> bool:
        """True when every one of these events has this shape around a fitting text.

        Each event's text is cut at the shape's offsets; the events joined with CR (which none
        holds) must then equal head + the texts joined with tail + CR + head + tail, which makes
        every event head + its text + tail (copies and one comparison, no search). The texts are
        then checked together: none empty, no quote, none ending with a backslash (an escaped one
        included: the per-event path then decides).
        """
        if not datas:
            return False
        texts = list(map(self._text_of, datas))
        if b"\r".join(datas) != self.head + self._joint.join(texts) + self.tail:
            return False
        together = b"\r".join(texts)
        return (
            min(map(len, texts)) > 0
            and together.find(b'"') < 0
            and together.find(b"\\\r") < 0
            and not together.endswith(b"\\")
        )


def _choices(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunk's choices that are objects."""
    choices = chunk.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def _chunk_has_content(chunk: dict[str, Any]) -> bool:
    """Some choice's delta carries content proper (not only reasoning or tool calls)."""
    return any(isinstance(c.get("delta"), dict) and bool(c["delta"].get("content")) for c in _choices(chunk))


def _delta_has_content(obj: dict[str, Any]) -> bool:
    delta = obj.get("delta")
    return isinstance(delta, dict) and delta.get("type") == "text_delta" and bool(delta.get("text"))


def _delta_has_output(obj: dict[str, Any]) -> bool:
    delta = obj.get("delta")
    return isinstance(delta, dict) and bool(delta.get(_ANTHROPIC_OUTPUT.get(str(delta.get("type")), "")))


_LOOKAHEAD = 16
"""Characters read after a key for ``: <value>`` (more whitespace than that means: parse it)."""


def _value_head(data: str, quoted_key: str) -> str | None:
    """The first two characters of the value of a key that occurs once in a JSON text.

    ``""`` when the key is absent; None when a quick look cannot tell (the key occurs twice, or
    the text around it is unusual): the caller then parses the JSON.
    """
    first = data.find(quoted_key)
    if first < 0:
        return ""
    after = first + len(quoted_key)
    if data.find(quoted_key, after) >= 0:
        return None
    tail = data[after : after + _LOOKAHEAD].lstrip()
    if tail[:1] != ":":
        return None
    head = tail[1:].lstrip()[:2]
    return head if len(head) == 2 else None


def _string_output(head: str) -> bool | None:
    """A key's value head: True for a non-empty string, False for absent/null/empty, None otherwise."""
    if head in ("", "nu", '""'):
        return False
    return True if head[0] == '"' else None


def _needs_parse(data: str) -> bool:
    """An error, a usage object or a non-null finish_reason: only a full parse reads those."""
    return (
        data[:1] != "{"
        or '"error"' in data
        or ('"usage"' in data and _value_head(data, '"usage"') != "nu")
        or ('"finish_reason"' in data and _value_head(data, '"finish_reason"') != "nu")
    )


def quick_chat_output(data: str) -> bool | None:
    """Whether an OpenAI chunk carries output, without parsing it; None when it must be parsed
    (it carries an error, usage or a finish_reason, or a quick look cannot tell)."""
    if _needs_parse(data):
        return None
    for key in ('"content"', '"reasoning_content"', '"reasoning"'):
        head = _value_head(data, key)
        if head is None:
            return None
        found = _string_output(head)
        if found is None or found:
            return found
    calls = _value_head(data, '"tool_calls"')
    if calls == "[{":
        return True
    return False if calls in ("", "nu", "[]") else None


def quick_chat_content(data: str) -> bool:
    """Whether an OpenAI chunk that :func:`quick_chat_output` found to carry output has content
    proper (not only reasoning or a tool-call fragment)."""
    return _string_output(_value_head(data, '"content"') or "") is True


def quick_delta_output(data: str) -> bool | None:
    """Whether an Anthropic ``content_block_delta`` carries output, without parsing it (or None)."""
    if data[:1] != "{" or '"error"' in data:
        return None
    for key in ('"text"', '"thinking"', '"partial_json"'):
        head = _value_head(data, key)
        if head is None:
            return None
        if head:
            return _string_output(head)
    return None


class _StreamStamper(ABC):
    """Shared part: decode, count bytes, note a stream the decoder refuses, feed an assembler."""

    def __init__(
        self,
        timing: StreamTiming,
        assembler: Assembler | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.timing = timing
        self._decoder = SSEDecoder(max_event_bytes)
        self._shape: OutputShape | None = None
        self._shape_tries = _SHAPE_TRIES
        self._assembler = assembler
        timing.checked = assembler is not None

    def _decode(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The (name, data) pairs of the events this piece completed."""
        timing = self.timing
        timing.bytes_received += len(data)
        try:
            return self._decoder.feed_data(data)
        except SSEError:
            timing.error_code = timing.error_code or "sse-event-too-large"
            return []

    def feed(self, data: bytes, t_ns: int) -> None:
        """Decode a piece of the stream and stamp each event it completed."""
        if self._assembler is None:
            self._stamp(self._decode(data), t_ns)
        else:
            self._stamp(self._assemble(data, t_ns), t_ns)

    def _assemble(self, data: bytes, t_ns: int) -> list[tuple[bytes, bytes]]:
        """The checked path: whole events to the assembler, their (name, data) to the stamps."""
        timing = self.timing
        timing.bytes_received += len(data)
        events: list[SSEEvent] = []
        try:
            events = self._decoder.feed(data, t_ns)
        except SSEError:
            timing.error_code = timing.error_code or "sse-event-too-large"
        add = self._assembler.add if self._assembler is not None else None
        pairs = []
        for event in events:
            if add is not None:
                add(event)
            pairs.append((event.event.encode(), event.data.encode()))
        return pairs

    def _stamp(self, pairs: list[tuple[bytes, bytes]], t_ns: int) -> None:
        """Stamp events that all have the stream's output shape at once; else split the list in
        halves and try again, down to a few events stamped one by one (the odd role, usage or
        [DONE] event costs a few more tests, not a pass over every event). The shape is learned
        from the first piece of many events: for one event per piece it would not pay."""
        if len(pairs) <= _SMALL_RUN:
            self._each(pairs, t_ns, learn=False)
        elif self._shape is None:
            self._each(pairs, t_ns, learn=self._shape_tries > 0)
        elif self._covered(pairs):
            self.timing.token_ns += repeat(t_ns, len(pairs))
            self._content(t_ns)
        else:
            half = len(pairs) // 2
            self._stamp(pairs[:half], t_ns)
            self._stamp(pairs[half:], t_ns)

    @abstractmethod
    def _covered(self, pairs: list[tuple[bytes, bytes]]) -> bool:
        """Whether every event is an output event of the stream's learned shape."""

    @abstractmethod
    def _each(self, pairs: list[tuple[bytes, bytes]], t_ns: int, learn: bool) -> None:
        """Stamp events one by one; ``learn``: take the first plain output event as the shape."""

    def _parsed(self, data: str) -> dict[str, Any] | None:
        """The event's JSON object (None, and the response marked invalid, when it is not one)."""
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self.timing.error_code = self.timing.error_code or "invalid-chunk"
            return None
        return value

    def _learn(self, data: bytes, key: bytes, is_output: Callable[[dict[str, Any]], bool]) -> None:
        """Try a sure output event as the stream's shape (a few times at most)."""
        self._shape_tries -= 1
        self._shape = OutputShape.learn(data, key, is_output)

    def _content(self, t_ns: int) -> None:
        """The first event with content proper arrived at ``t_ns`` (TTFC)."""
        if self.timing.content_ns is None:
            self.timing.content_ns = t_ns

    def _finish_reason(self, reason: object) -> None:
        """Keep the first non-null finish / stop reason."""
        if reason is not None and self.timing.finish_reason is None:
            self.timing.finish_reason = str(reason)

    def finish(self, t_ns: int) -> None:
        """End of the response: stamp it, drop any unterminated event, keep the violations."""
        self.timing.t_end_ns = t_ns
        self._decoder.close()
        if self._assembler is not None:
            self.timing.violations = self._assembler.finish().violations


class ChatStreamStamper(_StreamStamper):
    """An OpenAI chat completion stream: output chunks, the usage chunk, ``[DONE]``."""

    def _covered(self, pairs: list[tuple[bytes, bytes]]) -> bool:
        """Whether every event is an output chunk of the stream's learned shape."""
        return self._shape is not None and self._shape.covers(list(map(_data_of, pairs)))

    def _each(self, pairs: list[tuple[bytes, bytes]], t_ns: int, learn: bool) -> None:
        """Stamp events one by one: the byte test, else the quick look, else a full parse."""
        tokens = self.timing.token_ns
        content = False
        for _, payload in pairs:
            if surely_chat_output(payload):
                tokens.append(t_ns)
                content = True
                if learn and self._shape is None:
                    self._learn(payload, b'"content":"', _chunk_has_output)
            else:
                self._closer(payload.decode("utf-8", "replace"), t_ns)
        if content:  # the events of one piece share its time
            self._content(t_ns)

    def _closer(self, data: str, t_ns: int) -> None:
        """An event the byte test could not settle: the quick look, else a full parse."""
        if quick_chat_output(data):
            self.timing.token_ns.append(t_ns)
            if self.timing.content_ns is None and quick_chat_content(data):
                self._content(t_ns)
        else:  # not output, or unclear: rare (role, finish, usage chunks), so parsed (invalid-chunk)
            self._slow(data, t_ns)

    def _slow(self, data: str, t_ns: int) -> None:
        timing = self.timing
        if data == "[DONE]":
            timing.complete = True
            return
        chunk = self._parsed(data)
        if chunk is None:
            return
        if _chunk_has_output(chunk):
            timing.token_ns.append(t_ns)
            if _chunk_has_content(chunk):
                self._content(t_ns)
        for choice in _choices(chunk):
            self._finish_reason(choice.get("finish_reason"))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            timing.output_tokens = _first_int(usage, "completion_tokens")
            timing.prompt_tokens = _first_int(usage, "prompt_tokens")
        if "error" in chunk:
            timing.error_code = "stream-error-event:" + error_code(data.encode())


class MessagesStreamStamper(_StreamStamper):
    """An Anthropic messages stream: ``content_block_delta`` output, usage, ``message_stop``."""

    def _covered(self, pairs: list[tuple[bytes, bytes]]) -> bool:
        """Whether every event is a ``content_block_delta`` output of the stream's learned shape."""
        return (
            self._shape is not None
            and list(map(_name_of, pairs)).count(_DELTA) == len(pairs)
            and self._shape.covers(list(map(_data_of, pairs)))
        )

    def _each(self, pairs: list[tuple[bytes, bytes]], t_ns: int, learn: bool) -> None:
        """Stamp events one by one: the byte test, else the quick look, else a full parse."""
        tokens = self.timing.token_ns
        content = False
        for name, payload in pairs:
            if name == _DELTA and surely_delta_output(payload):
                tokens.append(t_ns)
                content = True
                if learn and self._shape is None:
                    self._learn(payload, b'"text":"', _delta_has_output)
            else:
                self._closer(name.decode("utf-8", "replace"), payload.decode("utf-8", "replace"), t_ns)
        if content:  # the events of one piece share its time
            self._content(t_ns)

    def _closer(self, name: str, data: str, t_ns: int) -> None:
        """An event the byte test could not settle: the quick look, else a full parse."""
        if name == "content_block_delta" and quick_delta_output(data):
            self.timing.token_ns.append(t_ns)
            if _string_output(_value_head(data, '"text"') or "") is True:
                self._content(t_ns)
        else:  # every other event is parsed (few per stream)
            self._slow(name, data, t_ns)

    def _slow(self, name: str, data: str, t_ns: int) -> None:
        timing = self.timing
        obj = self._parsed(data)
        if obj is None:
            return
        kind = obj.get("type", name)
        if kind == "content_block_delta":
            if _delta_has_output(obj):
                timing.token_ns.append(t_ns)
                if _delta_has_content(obj):
                    self._content(t_ns)
        elif kind == "message_start":
            message = obj.get("message")
            message = message if isinstance(message, dict) else {}
            timing.prompt_tokens = _first_int(message.get("usage"), "input_tokens")
            self._finish_reason(message.get("stop_reason"))
        elif kind == "message_delta":
            output = _first_int(obj.get("usage"), "output_tokens")
            if output is not None:
                timing.output_tokens = output
            delta = obj.get("delta")
            self._finish_reason(delta.get("stop_reason") if isinstance(delta, dict) else None)
        elif kind == "message_stop":
            timing.complete = True
        elif kind == "error":
            timing.error_code = "stream-error-event:" + error_code(data.encode())


class BodyStamper:
    """A non-streaming answer: the body is collected and read once it is complete."""

    def __init__(self, timing: StreamTiming, dialect: Dialect) -> None:
        self.timing = timing
        self._dialect = dialect
        self._parts: list[bytes] = []

    def feed(self, data: bytes, t_ns: int) -> None:
        """Keep a piece of the body."""
        self.timing.bytes_received += len(data)
        self._parts.append(data)

    def finish(self, t_ns: int) -> None:
        """The body is complete: read its usage."""
        timing = self.timing
        timing.t_end_ns = t_ns
        try:
            body = json.loads(b"".join(self._parts))
        except ValueError:
            self.timing.error_code = "invalid-body"
            return
        if not isinstance(body, dict):
            return
        usage = body.get("usage")
        if self._dialect == "anthropic":
            timing.output_tokens = _first_int(usage, "output_tokens")
            timing.prompt_tokens = _first_int(usage, "input_tokens")
            reason = body.get("stop_reason")
            blocks = body.get("content")
            timing.generated = isinstance(blocks, list) and any(map(_block_has_output, blocks))
        else:
            timing.output_tokens = _first_int(usage, "completion_tokens")
            timing.prompt_tokens = _first_int(usage, "prompt_tokens")
            choices = _choices(body)
            reason = next((c["finish_reason"] for c in choices if c.get("finish_reason") is not None), None)
            timing.generated = any(map(_message_has_output, choices))
        timing.finish_reason = None if reason is None else str(reason)
        timing.complete = True


def _message_has_output(choice: dict[str, Any]) -> bool:
    message = choice.get("message")
    if not isinstance(message, dict):
        return False
    return any(bool(message.get(key)) for key in ("content", "tool_calls", *_REASONING_FIELDS))


def _block_has_output(block: object) -> bool:
    if not isinstance(block, dict):
        return False
    return block.get("type") in ("tool_use", "server_tool_use") or any(
        bool(block.get(key)) for key in ("text", "thinking")
    )


class ErrorStamper:
    """A non-2xx answer: the body only names the error."""

    def __init__(self, timing: StreamTiming) -> None:
        self.timing = timing
        self._parts: list[bytes] = []

    def feed(self, data: bytes, t_ns: int) -> None:
        """Keep a piece of the error body."""
        self.timing.bytes_received += len(data)
        self._parts.append(data)

    def finish(self, t_ns: int) -> None:
        """Name the error from the body."""
        self.timing.t_end_ns = t_ns
        self.timing.error_code = error_code(b"".join(self._parts))


def stamper_for(
    timing: StreamTiming,
    dialect: Dialect,
    status: int,
    *,
    assembler: Assembler | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Stamper:
    """The reader for a response with this status, given what was asked (``timing.streamed``);
    ``assembler`` (a stream to check) is used for a 2xx stream only."""
    if not 200 <= status < 300:
        return ErrorStamper(timing)
    if not timing.streamed:
        return BodyStamper(timing, dialect)
    kind = MessagesStreamStamper if dialect == "anthropic" else ChatStreamStamper
    return kind(timing, assembler, max_event_bytes)


_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}
"""zlib window bits per Content-Encoding (RFC 9110 8.4.1): gzip framing, zlib framing."""


class Decoding:
    """A stamper behind a Content-Encoding: each piece is decompressed as it arrives, at most
    ``max_bytes`` decoded bytes in all (a small compressed body can expand to gigabytes)."""

    def __init__(self, inner: Stamper, encoding: str, max_bytes: int) -> None:
        self.timing = inner.timing
        self._inner = inner
        self._zlib = zlib.decompressobj(wbits=_WBITS[encoding])
        self._left = max_bytes

    def feed(self, data: bytes, t_ns: int) -> None:
        """Decompress a piece (refused when it does not decode or goes over the cap)."""
        try:
            plain = self._zlib.decompress(data, self._left + 1)
        except zlib.error:
            raise ResponseRefused("content-encoding-invalid") from None
        self._left -= len(plain)
        if self._left < 0 or self._zlib.unconsumed_tail:
            raise ResponseRefused("response-too-large")
        if plain:
            self._inner.feed(plain, t_ns)

    def finish(self, t_ns: int) -> None:
        """End of the body: the inner stamper finishes."""
        self._inner.finish(t_ns)


def decoded(stamper: Stamper, encoding: str | None, max_bytes: int) -> Stamper:
    """``stamper`` behind the response's Content-Encoding (``identity`` or none: as is).

    Raises :class:`ResponseRefused` for an encoding the load users cannot decode (br, zstd...).
    """
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return stamper
    if name not in _WBITS:
        raise ResponseRefused(f"content-encoding-unsupported:{name}")
    return Decoding(stamper, name, max_bytes)

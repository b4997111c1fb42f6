"""The project's one Server-Sent Events decoder: sans-IO, incremental, WHATWG event-stream rules.

Feed it bytes as they arrive with their arrival time; it returns the events those bytes completed.
The rules followed (https://html.spec.whatwg.org/multipage/server-sent-events.html):

- lines end with LF, CRLF or a lone CR, and with nothing else: U+2028, U+2029, NEL and friends are
  ordinary text. Splitting happens on bytes, so a CR ending one chunk and an LF starting the next
  are one line ending (the line is complete at the CR; the LF is then skipped);
- one UTF-8 BOM is stripped at the very start of the stream (also when split across chunks);
- a line starting with ``:`` is a comment; ``name: value`` sets a field (one leading space of the
  value is dropped); a line without ``:`` is a field name with an empty value;
- ``data`` lines are joined with LF; ``event`` names the event (``message`` when absent or empty);
  ``id`` sets the last-event-id buffer, which persists across events, unless it contains NUL;
  ``retry`` counts only when it is all ASCII digits; other fields are ignored;
- a blank line dispatches the event, unless its data buffer is empty (nothing is dispatched then);
- at the end of the stream an unterminated event is discarded: ``close()`` returns its bytes so a
  failure can quote them.

Values are decoded as UTF-8 with ``errors="replace"``, so any input decodes; data is decoded once
after joining its lines with LF, which gives the same text as decoding each line (an LF byte never
occurs inside a UTF-8 sequence). The only exception raised is :class:`gatecheck.errors.SSEError`:
an event (or the unfinished tail) larger than ``max_event_bytes``, or ``feed()`` after ``close()``
or after an error.

``SSEEvent.raw`` holds the event's bytes from just after the previous blank line (or the BOM) to
the end of its own blank line. The one exception: when a CRLF ending the blank line is split
between two chunks, the event is complete at the CR, so its ``raw`` ends with that CR.

Speed: the decoder runs in the load-test hot loop, so the common cases take C-level bytes
operations only. A chunk that is exactly one ``data: ...\\n\\n`` event is recognised by a few
bytes tests and sliced; a chunk of several whole events (no CR, nothing pending) is cut with one
``bytes.split(b"\\n\\n")`` and its ``data:`` and ``event:``+``data:`` events are built without a
per-line loop; everything else (CR line endings, events split across chunks) goes through a
regular-expression line scanner that scans each byte once. ``benchmarks/sse_bench.py`` measures it.

``feed_data()`` is the same decoder (same state, same paths) for a caller that needs only each
event's name and data, the load test: it returns ``(name, data)`` byte pairs instead of building an
``SSEEvent`` per event, and skips the UTF-8 decoding the caller may not need. Its own fast path:
a run of whole single-line ``data:`` events (nothing pending, no CR) is cut with one
``split(b"\\n\\ndata: ")``, checked by counting its LFs, so there is no per-event Python work.
Use one of ``feed`` or ``feed_data`` per stream; a property test checks both give the same events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any, cast

from gatecheck.errors import SSEError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "DecodedStream", "SSEDecoder", "SSEEvent", "decode_chunks"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
"""Default cap on one event's bytes: a stream that never sends a blank line cannot eat the memory."""

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n?|\n")
_CR = 0x0D
_LF = 0x0A
_SPACE = 0x20
_MESSAGE = b"message"

_Out = list[Any]
"""What the shared paths append to: SSEEvents for ``feed``, (name, data) pairs for ``feed_data``."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event, stamped with the arrival time of the chunk that completed it."""

    event: str
    """The ``event`` field, ``"message"`` when absent or empty."""
    data: str
    """The ``data`` lines joined by ``"\\n"``."""
    id: str
    """The last-event-id buffer at dispatch (it persists across events)."""
    retry: int | None
    """A valid ``retry`` field seen in this event, else None."""
    t_ns: int
    """Arrival time (as given to ``feed``) of the chunk that completed the event."""
    raw: bytes
    """The event's bytes as received, blank line included."""


def _event_builder() -> Callable[[str, str, str, int | None, int, bytes], SSEEvent]:
    """Build SSEEvents without the frozen dataclass ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``, which makes construction
    about three times slower than the slot stores done here; the decoder builds one event per
    chunk in the load-test loop. The result is an ordinary, equal, immutable SSEEvent.
    """
    new = object.__new__
    slots = vars(SSEEvent)
    set_event, set_data, set_id, set_retry, set_t_ns, set_raw = (
        slots[name].__set__ for name in ("event", "data", "id", "retry", "t_ns", "raw")
    )

    def build(event: str, data: str, id_: str, retry: int | None, t_ns: int, raw: bytes) -> SSEEvent:
        made: SSEEvent = new(SSEEvent)
        set_event(made, event)
        set_data(made, data)
        set_id(made, id_)
        set_retry(made, retry)
        set_t_ns(made, t_ns)
        set_raw(made, raw)
        return made

    return build


_new_event = _event_builder()


def _retry_value(value: bytes) -> int | None:
    """The retry field's integer, None unless it is all ASCII digits that ``int`` accepts."""
    if not value.isdigit():  # bytes.isdigit() is ASCII-only
        return None
    try:
        return int(value)
    except ValueError:  # more digits than the interpreter's int-from-string limit
        return None


class SSEDecoder:
    """Incremental event-stream decoder: ``feed(chunk, t_ns)`` per chunk, ``close()`` at the end.

    ``max_event_bytes`` caps one event's bytes (its lines plus the blank line) and the unfinished
    tail; going over it raises SSEError, after which the decoder refuses further input.
    """

    __slots__ = (
        "_bom_pending",
        "_buf",
        "_cr_end",
        "_data",
        "_event",
        "_halted",
        "_id",
        "_line_start",
        "_max",
        "_retry",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buf = bytearray()  # bytes of the unfinished event (or of a BOM still incomplete)
        self._line_start = 0  # where the unterminated line starts in _buf
        self._cr_end = False  # the last byte fed was a CR ending a line: a next leading LF belongs to it
        self._bom_pending = True
        self._halted: str | None = None  # why feed() refuses input
        self._data: list[bytes] = []
        self._event = b""
        self._id = ""
        self._retry: int | None = None

    def feed(self, data: bytes, t_ns: int) -> list[SSEEvent]:
        """Decode one chunk that arrived at ``t_ns``; return the events it completed, in order."""
        return cast(list[SSEEvent], self._feed(data, t_ns, False))

    def feed_data(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Decode one chunk; return ``(event name, data)`` of each event it completed, in order.

        The name is ``b"message"`` when the field is absent or empty; the data lines are joined by
        LF. Both are the bytes received: decoding them as UTF-8 with ``errors="replace"`` gives the
        ``SSEEvent.event`` and ``SSEEvent.data`` that ``feed`` would return. The id, retry, raw bytes
        and arrival time are not returned (the caller has the time of the chunk it fed).
        """
        return cast(list[tuple[bytes, bytes]], self._feed(data, 0, True))

    def _feed(self, data: bytes, t_ns: int, lean: bool) -> _Out:
        """Both entry points: SSEEvents, or (name, data) pairs when ``lean``."""
        if self._halted is not None:
            raise SSEError(self._halted)
        if self._bom_pending:
            data = self._strip_bom(data)
        if self._cr_end and data:
            data = self._skip_lf_after_cr(data)
        no_cr = data.find(b"\r") < 0
        if (
            not lean
            and not self._buf
            and data.startswith(b"data: ")
            and data.endswith(b"\n\n")
            and data.find(b"\n") == len(data) - 2
            and no_cr
            and len(data) <= self._max
        ):  # the usual chunk: exactly one single-line data event
            return [_new_event("message", data[6:-2].decode("utf-8", "replace"), self._id, None, t_ns, data)]
        events: _Out = []
        if (
            not self._buf
            and no_cr
            and data.endswith(b"\n\n")
            and data.find(b"\n\n") == len(data) - 2
            and data[0] != _LF
        ):  # one whole event of several lines (Anthropic's event: + data:)
            self._block(data[:-2], data, t_ns, events, lean)
            return events
        return self._feed_all(data, t_ns, no_cr, events, lean)

    def _feed_all(self, data: bytes, t_ns: int, no_cr: bool, events: _Out, lean: bool) -> _Out:
        """Decode any chunk: whole events at once while nothing is pending, else line by line."""
        size = len(data)
        pos = 0
        while pos < size:
            if no_cr and not self._buf:
                pos = self._feed_events(data, pos, t_ns, events, lean)
                if pos == size:
                    break
            pos = self._feed_lines(data, pos, t_ns, events, lean)
        return events

    def close(self) -> bytes:
        """End of stream: return the unterminated tail that is discarded (b"" if none)."""
        tail = bytes(self._buf)
        self._buf.clear()
        self._halted = "feed() after close()"
        return tail

    def _strip_bom(self, data: bytes) -> bytes:
        """Drop one leading BOM, holding back up to two bytes that might be its beginning."""
        head = bytes(self._buf) + data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._buf[:] = head
            return b""
        self._buf.clear()
        self._bom_pending = False
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _skip_lf_after_cr(self, data: bytes) -> bytes:
        """The previous chunk ended with CR: an LF starting this one completes that CRLF."""
        self._cr_end = False
        if data[0] != _LF:
            return data
        if self._buf:  # the CR ended a field line of a pending event: keep the LF in its raw bytes
            self._buf.append(_LF)
            self._line_start += 1
        return data[1:]

    def _feed_events(self, data: bytes, pos: int, t_ns: int, events: _Out, lean: bool) -> int:
        """Fast path: nothing pending and no CR, so events end exactly at ``\\n\\n``.

        Returns where the incomplete last event starts (``len(data)`` when there is none).
        """
        rest = data[pos:] if pos else data
        if rest[0] == _LF:  # blank lines with nothing pending dispatch nothing
            rest = rest.lstrip(b"\n")
        if lean:
            taken = self._data_run(rest, events)
            if taken:
                return len(data) - len(rest) + taken
        blocks = rest.split(b"\n\n")
        tail = blocks.pop()
        if len(blocks) == 1 and not tail:  # the usual chunk: exactly one whole event, no copy
            self._block(blocks[0], rest, t_ns, events, lean)
            return len(data)
        for block in blocks:
            if not block:  # "\n\n\n\n": two more blank lines
                continue
            if block[0] == _LF:  # "\n\n\n": one more blank line before this event
                block = block[1:]
            self._block(block, None, t_ns, events, lean)
        return len(data) - len(tail)

    def _data_run(self, rest: bytes, pairs: _Out) -> int:
        """``feed_data``'s run of whole single-line ``data:`` events at the start of ``rest``, up to
        its last blank line: add their pairs and return the length taken (0: not such a run).

        One split on ``"\\n\\ndata: "`` cuts it; its LF count proves it: two per event (its blank
        line) means no event has another line.
        """
        end = rest.rfind(b"\n\n")
        if end < 0 or end + 2 > self._max or not rest.startswith(b"data: "):
            return 0  # over the cap: some event may be, let _block tell
        datas = rest[6:end].split(b"\n\ndata: ")
        if rest.count(b"\n", 0, end) != 2 * len(datas) - 2:
            return 0
        pairs += zip(repeat(_MESSAGE), datas)
        return end + 2

    def _block(self, block: bytes, raw: bytes | None, t_ns: int, events: _Out, lean: bool) -> None:
        """Decode one complete event's lines (LF-separated, no blank line) and dispatch it.

        ``raw`` None means the event's bytes are ``block`` and a blank line: they are then only
        built when an SSEEvent needs them.
        """
        newline = block.find(b"\n")
        if (len(block) + 2 if raw is None else len(raw)) <= self._max:
            if newline < 0 and block.startswith(b"data: "):  # data: {...}
                pair = (_MESSAGE, block[6:])
            elif (
                block.startswith(b"event: ")
                and block.startswith(b"data: ", newline + 1)
                and block.find(b"\n", newline + 1) < 0
            ):  # event: name, then data: {...} (Anthropic's shape)
                pair = (block[7:newline] or _MESSAGE, block[newline + 7 :])
            else:
                pair = None
            if pair is not None:
                if lean:
                    events.append(pair)
                    return
                name = pair[0].decode("utf-8", "replace")
                data = pair[1].decode("utf-8", "replace")
                raw = block + b"\n\n" if raw is None else raw
                events.append(_new_event(name, data, self._id, None, t_ns, raw))
                return
        for line in block.split(b"\n"):
            self._field(line)
        self._dispatch(block + b"\n\n" if raw is None else raw, t_ns, events, lean)

    def _feed_lines(self, data: bytes, pos: int, t_ns: int, events: _Out, lean: bool) -> int:
        """General path: parse ``data[pos:]`` line by line until the pending event is dispatched.

        Returns where parsing stopped; when no blank line comes, the rest is buffered as the pending
        event (its complete lines already parsed) and ``len(data)`` is returned.
        """
        begin = pos
        size = len(data)
        for match in _LINE_END.finditer(data, pos):
            end, after = match.span()
            if pos == begin and self._line_start < len(self._buf):  # ends the line carried over
                line = bytes(self._buf[self._line_start :]) + data[pos:end]
            else:
                line = data[pos:end]
            pos = after
            if after == size and data[end] == _CR and after - end == 1:
                self._cr_end = True
            if line:
                self._field(line)
                continue
            raw = bytes(self._buf) + data[begin:after] if self._buf else data[begin:after]
            self._buf.clear()
            self._line_start = 0
            self._dispatch(raw, t_ns, events, lean)
            return after
        self._buf += memoryview(data)[begin:]
        if pos != begin:  # some line ended here: the unterminated one starts after it
            self._line_start = len(self._buf) - (size - pos)
        if len(self._buf) > self._max:
            self._fail(len(self._buf))
        return size

    def _field(self, line: bytes) -> None:
        """Apply one non-blank line to the event being built."""
        name, _, value = line.partition(b":")
        if value and value[0] == _SPACE:
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\x00" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry":
            retry = _retry_value(value)
            if retry is not None:
                self._retry = retry

    def _dispatch(self, raw: bytes, t_ns: int, events: _Out, lean: bool) -> None:
        """A blank line: emit the event if it has data, then reset the per-event buffers."""
        if len(raw) > self._max:
            self._fail(len(raw))
        if self._data:
            joined = b"\n".join(self._data)
            if lean:
                events.append((self._event or _MESSAGE, joined))
            else:
                name = self._event.decode("utf-8", "replace") if self._event else "message"
                data = joined.decode("utf-8", "replace")
                events.append(_new_event(name, data, self._id, self._retry, t_ns, raw))
            self._data = []
        self._event = b""
        self._retry = None

    def _fail(self, size: int) -> None:
        """Refuse an event over the cap, and any input after it."""
        self._buf.clear()
        self._halted = f"an earlier event exceeded max_event_bytes={self._max}"
        raise SSEError(f"SSE event of at least {size} bytes exceeds max_event_bytes={self._max}")


@dataclass(frozen=True, slots=True)
class DecodedStream:
    """A whole received body decoded as an event stream."""

    events: list[SSEEvent]
    """The events, in order; when decoding failed, those completed before the failing chunk."""
    tail: bytes
    """The unterminated tail discarded at the end of the stream (``b""`` if none, or after an error)."""
    error: SSEError | None
    """Why decoding stopped early (an event over the size cap), else None."""


def decode_chunks(
    chunks: Iterable[tuple[int, bytes]], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> DecodedStream:
    """Decode ``(t_ns, data)`` chunks as received, end the stream, and never raise.

    The one loop from received chunks to events: ``Exchange.events()`` and the stream checks use it.
    """
    decoder = SSEDecoder(max_event_bytes)
    events: list[SSEEvent] = []
    try:
        for t_ns, data in chunks:
            events.extend(decoder.feed(data, t_ns))
        tail = decoder.close()
    except SSEError as exc:
        return DecodedStream(events, b"", exc)
    return DecodedStream(events, tail, None)

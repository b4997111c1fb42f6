"""The SSE decoder against the WHATWG event-stream rules, rule by rule and by property."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatecheck.errors import SSEError
from gatecheck.sse import SSEDecoder, SSEEvent, _new_event, decode_chunks

BOM = b"\xef\xbb\xbf"
# The machine running the suite is shared: a slow example is not a failure.
PROPERTY = settings(deadline=None, max_examples=150)


def decode(*chunks: bytes, max_event_bytes: int | None = None) -> tuple[list[SSEEvent], bytes]:
    """Feed chunks stamped 0, 1, 2...; return the events and what close() discarded."""
    decoder = SSEDecoder() if max_event_bytes is None else SSEDecoder(max_event_bytes)
    events: list[SSEEvent] = []
    for t_ns, chunk in enumerate(chunks):
        events.extend(decoder.feed(chunk, t_ns))
    return events, decoder.close()


def fields(events: list[SSEEvent]) -> list[tuple[str, str, str, int | None]]:
    """What an event means, without when it arrived or how its bytes looked."""
    return [(e.event, e.data, e.id, e.retry) for e in events]


def datas(*chunks: bytes) -> list[str]:
    return [e.data for e in decode(*chunks)[0]]


# --- one test per rule ---------------------------------------------------------------------------


def test_an_event_carries_its_fields_time_and_raw_bytes() -> None:
    events, tail = decode(b'event: add\nid: 7\nretry: 1500\ndata: {"a": 1}\n\n')
    assert events == [
        SSEEvent("add", '{"a": 1}', "7", 1500, 0, b'event: add\nid: 7\nretry: 1500\ndata: {"a": 1}\n\n')
    ]
    assert tail == b""


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_ends_lines(eol: bytes) -> None:
    stream = eol.join([b"data: a", b"data: b", b"", b"event: x", b"data: c", b"", b""])
    events, _ = decode(stream)
    assert fields(events) == [("message", "a\nb", "", None), ("x", "c", "", None)]
    assert events[0].raw == b"data: a" + eol + b"data: b" + eol + eol


def test_cr_ending_one_chunk_and_lf_starting_the_next_are_one_line_ending() -> None:
    events, _ = decode(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert fields(events) == [("message", "a\nb", "", None)]
    assert events[0].raw == b"data: a\r\ndata: b\r\n\r\n"


def test_an_event_ending_at_a_split_crlf_is_complete_at_the_cr() -> None:
    events, tail = decode(b"data: a\r\n\r", b"\ndata: b\r\n\r\n")
    assert [(e.data, e.t_ns, e.raw) for e in events] == [
        ("a", 0, b"data: a\r\n\r"),
        ("b", 1, b"data: b\r\n\r\n"),
    ]
    assert tail == b""


def test_a_lone_cr_then_a_blank_lf_line_in_another_chunk_is_still_one_line_ending() -> None:
    # "data: a\r" + "\n" is CRLF, not a CR line then an LF blank line: nothing is dispatched yet.
    events, tail = decode(b"data: a\r", b"\n")
    assert events == []
    assert tail == b"data: a\r\n"


def test_event_time_is_the_arrival_of_the_chunk_that_completes_it() -> None:
    events, _ = decode(b'data: {"par', b'tial": true}\n', b"\n")
    assert [(e.data, e.t_ns) for e in events] == [('{"partial": true}', 2)]
    assert events[0].raw == b'data: {"partial": true}\n\n'


def test_a_leading_bom_is_stripped() -> None:
    events, _ = decode(BOM + b"data: x\n\n")
    assert [(e.data, e.raw) for e in events] == [("x", b"data: x\n\n")]


def test_a_bom_split_across_chunks_is_stripped() -> None:
    assert datas(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == ["x"]


def test_a_bom_anywhere_but_the_start_is_text() -> None:
    # The second BOM makes the field name "\ufeffdata", which is no known field.
    assert datas(BOM + BOM + b"data: x\n\n") == []
    assert datas(b"data: x\n\n" + BOM + b"data: y\n\n") == ["x"]


def test_the_start_of_a_bom_followed_by_other_bytes_is_kept() -> None:
    assert datas(b"\xef\xbb", b"data: x\n\n") == []  # "\ufffddata" is no known field
    assert decode(b"\xef\xbb")[1] == b"\xef\xbb"


def test_comment_lines_are_ignored_and_a_comment_block_dispatches_nothing() -> None:
    assert datas(b": keep-alive\n\n:\n\ndata: x\n: in between\ndata: y\n\n") == ["x\ny"]


def test_a_line_without_colon_is_a_field_with_an_empty_value() -> None:
    assert datas(b"data\n\n") == [""]
    assert datas(b"data\ndata\n\n") == ["\n"]


def test_no_space_after_the_colon_is_fine_and_only_one_space_is_stripped() -> None:
    assert datas(b"data:x\n\n") == ["x"]
    assert datas(b"data:  x\n\n") == [" x"]
    assert datas(b"data:\tx\n\n") == ["\tx"]


def test_only_the_first_colon_separates_name_and_value() -> None:
    assert datas(b'data: {"a": "b:c"}\n\n') == ['{"a": "b:c"}']


def test_an_empty_or_missing_event_field_means_message() -> None:
    events, _ = decode(b"event:\ndata: a\n\nevent: x\ndata: b\n\ndata: c\n\n")
    assert [e.event for e in events] == ["message", "x", "message"]


def test_an_event_without_data_is_not_dispatched_and_resets_the_event_type() -> None:
    events, _ = decode(b"event: x\n\ndata: y\n\n")
    assert fields(events) == [("message", "y", "", None)]


def test_an_empty_data_line_still_dispatches() -> None:
    assert datas(b"data:\n\n") == [""]


def test_unknown_fields_are_ignored() -> None:
    assert fields(decode(b"foo: bar\nData: x\ndata: y\n\n")[0]) == [("message", "y", "", None)]


def test_retry_counts_only_when_all_ascii_digits() -> None:
    stream = b"".join(
        b"retry: " + value + b"\ndata: x\n\n"
        for value in (b"1500", b"12a", b"-1", b"", b" 1", b"1.5", "١٢".encode(), b"0")
    )
    assert [e.retry for e in decode(stream)[0]] == [1500, None, None, None, None, None, None, 0]


def test_retry_is_per_event_and_the_last_valid_one_wins() -> None:
    events, _ = decode(b"retry: 1\nretry: x\nretry: 2\ndata: a\n\ndata: b\n\n")
    assert [e.retry for e in events] == [2, None]


def test_a_retry_too_long_for_int_is_ignored_not_raised() -> None:
    events, _ = decode(b"retry: " + b"9" * 10_000 + b"\ndata: a\n\n")
    assert [e.retry for e in events] == [None]


def test_id_persists_across_events_and_an_id_with_nul_is_ignored() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\nid\ndata: d\n\n"
    assert [e.id for e in decode(stream)[0]] == ["1", "1", "1", ""]


def test_an_id_in_an_event_without_data_still_sets_the_last_event_id() -> None:
    assert [e.id for e in decode(b"id: 5\n\ndata: a\n\n")[0]] == ["5"]


def test_unicode_line_separators_are_text_not_line_endings() -> None:
    text = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg"
    events, _ = decode(b"data: " + text.encode() + b"\n\n")
    assert [e.data for e in events] == [text]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert datas(b"data: \xff\xe2\x80\n\n") == ["\ufffd\ufffd"]


def test_an_unterminated_event_is_discarded_and_close_returns_its_bytes() -> None:
    events, tail = decode(b"data: a\n\ndata: b\nevent: x")
    assert [e.data for e in events] == ["a"]
    assert tail == b"data: b\nevent: x"
    assert decode(b"data: b\n")[1] == b"data: b\n"


def test_feed_after_close_raises_sse_error() -> None:
    decoder = SSEDecoder()
    decoder.close()
    with pytest.raises(SSEError, match="after close"):
        decoder.feed(b"data: x\n\n", 0)


def test_a_pending_line_over_the_cap_raises_and_the_decoder_stays_refused() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    assert decoder.feed(b"data: " + b"x" * 50, 0) == []
    with pytest.raises(SSEError, match="max_event_bytes=64"):
        decoder.feed(b"x" * 50, 1)
    with pytest.raises(SSEError):
        decoder.feed(b"\n\n", 2)


def test_a_whole_event_over_the_cap_raises_even_in_one_chunk() -> None:
    with pytest.raises(SSEError):
        SSEDecoder(max_event_bytes=64).feed(b"data: " + b"x" * 100 + b"\n\n", 0)
    assert SSEDecoder(max_event_bytes=64).feed(b"data: " + b"x" * 56 + b"\n\n", 0) != []


def test_decode_chunks_keeps_the_tail_and_never_raises() -> None:
    whole = decode_chunks([(5, b"data: a\n\nda"), (9, b"ta: b\n\ndata: c")])
    assert [(e.data, e.t_ns) for e in whole.events] == [("a", 5), ("b", 9)]
    assert (whole.tail, whole.error) == (b"data: c", None)
    cut = decode_chunks([(1, b"data: a\n\n"), (2, b"data: " + b"x" * 100), (3, b"\n\n")], max_event_bytes=64)
    assert [e.data for e in cut.events] == ["a"]
    assert cut.tail == b"" and isinstance(cut.error, SSEError) and "max_event_bytes=64" in str(cut.error)


def test_many_events_in_one_chunk_each_get_their_own_raw_bytes() -> None:
    events, _ = decode(b"\n\ndata: a\n\n\ndata: b\n\n\n\nevent: e\ndata: c\n\ndata: d")
    assert [(e.data, e.raw) for e in events] == [
        ("a", b"data: a\n\n"),
        ("b", b"data: b\n\n"),
        ("c", b"event: e\ndata: c\n\n"),
    ]


def test_events_are_frozen_dataclasses_equal_to_constructed_ones() -> None:
    built = _new_event("message", "x", "1", None, 5, b"data: x\n\n")
    assert built == SSEEvent("message", "x", "1", None, 5, b"data: x\n\n")
    assert hash(built) == hash(SSEEvent("message", "x", "1", None, 5, b"data: x\n\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.data = "y"  # type: ignore[misc]


def test_a_byte_at_a_time_gives_the_same_events_as_one_chunk() -> None:
    stream = BOM + b"id: 1\r\nevent: a\r\ndata: x\r\n\r\n: c\rdata: y\rretry: 9\r\r"
    whole, _ = decode(stream)
    one_by_one, _ = decode(*(stream[i : i + 1] for i in range(len(stream))))
    assert fields(one_by_one) == fields(whole) == [("a", "x", "1", None), ("message", "y", "1", 9)]
    # One byte per chunk splits the first blank line's CRLF: that event is complete at the CR.
    assert [e.raw for e in whole] == [b"id: 1\r\nevent: a\r\ndata: x\r\n\r\n", b": c\rdata: y\rretry: 9\r\r"]
    assert [e.raw for e in one_by_one] == [
        b"id: 1\r\nevent: a\r\ndata: x\r\n\r",
        b": c\rdata: y\rretry: 9\r\r",
    ]


# --- properties: a model of valid streams ---------------------------------------------------------

EOLS = ("\n", "\r\n", "\r")
VALUE = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=6),
    st.sampled_from(["\u2028", "\u2029", "\x85", "a\x00b", "12", "007", " lead", "x:y"]),
)
FIELD_LINE = st.builds(
    lambda name, sep, value: name + sep + value if sep else name,
    st.sampled_from(["data", "event", "id", "retry", "foo", "dat"]),
    st.sampled_from(["", ":", ": ", ":  "]),
    VALUE,
)
COMMENT_LINE = VALUE.map(lambda text: ":" + text)
LINE = st.one_of(FIELD_LINE, FIELD_LINE, COMMENT_LINE)
BLOCKS = st.lists(st.lists(LINE, max_size=4), max_size=6)
TAIL = st.lists(LINE, max_size=2)


@dataclass(frozen=True)
class Expected:
    """An event the model says the stream holds, with where its bytes are."""

    fields: tuple[str, str, str, int | None]
    start: int  # first byte of its raw bytes
    dispatch: int  # first byte of the blank line's line ending
    end: int  # one past its blank line


@dataclass(frozen=True)
class Stream:
    data: bytes
    events: list[Expected]
    tail_start: int  # where the unterminated tail begins (lines are never empty, so it is all tail)


def interpret(lines: list[str], last_id: str) -> tuple[tuple[str, str, str, int | None] | None, str]:
    """The WHATWG rules applied to one block's lines, on text: (event or None, last id)."""
    event, data, retry = "", [], None
    for line in lines:
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\x00" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    if not data:
        return None, last_id
    return (event or "message", "\n".join(data), last_id, retry), last_id


def render(blocks: list[list[str]], tail: list[str], eols: list[str], bom: bool) -> Stream:
    """Serialise blocks (each closed by a blank line) and an unterminated tail; note the offsets.

    ``eols`` is cycled over the lines. A lone CR followed by an empty line ending in LF would make
    one CRLF, so that pairing is replaced by a CR.
    """
    out = bytearray(BOM if bom else b"")
    expected: list[Expected] = []
    last_id, previous_eol, n = "", "", 0

    def line_end() -> str:
        nonlocal n
        eol = eols[n % len(eols)]
        n += 1
        return eol

    for block in blocks:
        start = len(out)
        for line in block:
            previous_eol = line_end()
            out += (line + previous_eol).encode()
        blank_eol = line_end()
        if previous_eol == "\r" and blank_eol == "\n":
            blank_eol = "\r"
        dispatch = len(out)
        out += blank_eol.encode()
        previous_eol = blank_eol
        event, last_id = interpret(block, last_id)
        if event is not None:
            expected.append(Expected(event, start, dispatch, len(out)))
    tail_start = len(out)
    for i, line in enumerate(tail):
        out += (line + (line_end() if i < len(tail) - 1 else "")).encode()
    return Stream(bytes(out), expected, tail_start)


STREAMS = st.builds(
    render,
    BLOCKS,
    TAIL,
    st.lists(st.sampled_from(EOLS), min_size=1, max_size=3),
    st.booleans(),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """The data cut at the given offsets (repeated offsets make empty chunks)."""
    points = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


@PROPERTY
@given(STREAMS, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_split_of_a_valid_stream_gives_the_models_events(stream: Stream, cuts: list[int]) -> None:
    chunks = split(stream.data, cuts)
    events, tail = decode(*chunks)
    ends = [sum(map(len, chunks[: i + 1])) for i in range(len(chunks))]
    expected_times = [next(i for i, end in enumerate(ends) if end > e.dispatch) for e in stream.events]
    assert fields(events) == [e.fields for e in stream.events]
    assert [e.t_ns for e in events] == expected_times
    for got, want in zip(events, stream.events, strict=True):
        raw = stream.data[want.start : want.end]
        crlf_cut_at_cr = raw.endswith(b"\r\n") and want.dispatch + 1 in ends
        assert got.raw == (raw[:-1] if crlf_cut_at_cr else raw)
    assert tail == stream.data[stream.tail_start :]


@PROPERTY
@given(BLOCKS, st.booleans())
def test_lf_crlf_and_cr_streams_give_the_same_events(blocks: list[list[str]], bom: bool) -> None:
    variants = [decode(render(blocks, [], [eol], bom).data)[0] for eol in EOLS]
    assert fields(variants[0]) == fields(variants[1]) == fields(variants[2])


@PROPERTY
@given(st.lists(st.sampled_from(["\u2028", "\u2029", "\x85", "x", " ", "\x1e"]), min_size=1, max_size=12))
def test_unicode_separators_inside_data_are_preserved(parts: list[str]) -> None:
    text = "".join(parts)
    assert datas(b"data: " + text.encode() + b"\n\n") == [text]


NASTY = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            [b"\r", b"\n", b":", b" ", b"data", b"id", b"retry", b"event", b"9", b"\x00", BOM, b"\xff"]
        ),
        max_size=40,
    ).map(b"".join),
)


@PROPERTY
@given(NASTY, st.lists(st.integers(min_value=0, max_value=200), max_size=10), st.sampled_from([None, 16]))
def test_arbitrary_bytes_raise_nothing_but_sse_error(data: bytes, cuts: list[int], cap: int | None) -> None:
    decoder = SSEDecoder() if cap is None else SSEDecoder(max_event_bytes=cap)
    try:
        for t_ns, chunk in enumerate(split(data, cuts)):
            assert all(isinstance(e, SSEEvent) for e in decoder.feed(chunk, t_ns))
        assert isinstance(decoder.close(), bytes)
    except SSEError:
        assert cap is not None  # only the small cap can be exceeded by 200 bytes


@PROPERTY
@given(NASTY, st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_arbitrary_bytes_give_the_same_events_however_split(data: bytes, cuts: list[int]) -> None:
    whole, whole_tail = decode(data)
    pieces, pieces_tail = decode(*split(data, cuts))
    assert fields(pieces) == fields(whole)
    assert pieces_tail == whole_tail


# --- feed_data: the same decoder, (name, data) byte pairs -----------------------------------------


def decode_pairs(
    *chunks: bytes, max_event_bytes: int | None = None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Like ``decode`` through ``feed_data``: the pairs and what close() discarded."""
    decoder = SSEDecoder() if max_event_bytes is None else SSEDecoder(max_event_bytes)
    pairs: list[tuple[bytes, bytes]] = []
    for chunk in chunks:
        pairs.extend(decoder.feed_data(chunk))
    return pairs, decoder.close()


def as_text(pairs: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("utf-8", "replace"), data.decode("utf-8", "replace")) for name, data in pairs]


def test_feed_data_returns_names_and_data_as_bytes() -> None:
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\nevent: ping\ndata: x\ndata: y\n\ndata: \xff\n\n: c\n\n'
    pairs, tail = decode_pairs(stream[:5], stream[5:])
    assert pairs == [
        (b"message", b'{"a":1}'),
        (b"message", b'{"b":2}'),
        (b"ping", b"x\ny"),
        (b"message", b"\xff"),
    ]
    assert tail == b""


def test_feed_data_takes_a_run_of_data_events_whole_and_still_keeps_the_unfinished_one() -> None:
    pairs, tail = decode_pairs(b"data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4")
    assert pairs == [(b"message", b"1"), (b"message", b"2"), (b"message", b"3")]
    assert tail == b"data: 4"


def test_feed_data_enforces_the_cap_like_feed() -> None:
    with pytest.raises(SSEError):
        decode_pairs(b"data: 1\n\ndata: 0123456789abcdef\n\n", max_event_bytes=16)


@PROPERTY
@given(STREAMS, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_feed_data_gives_the_events_of_feed_for_any_split_of_a_valid_stream(
    stream: Stream, cuts: list[int]
) -> None:
    chunks = split(stream.data, cuts)
    events, tail = decode(*chunks)
    pairs, pairs_tail = decode_pairs(*chunks)
    assert as_text(pairs) == [(e.event, e.data) for e in events]
    assert pairs_tail == tail


DATA_RUNS = st.lists(
    st.one_of(
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8).map(
            lambda text: b"data: " + text.encode() + b"\n\n"
        ),
        st.sampled_from(
            [b"\n", b"data:x\n\n", b"event: e\ndata: d\n\n", b"data: a\ndata: b\n\n", b": c\n\n"]
        ),
    ),
    max_size=12,
).map(b"".join)


@PROPERTY
@given(
    st.one_of(NASTY, DATA_RUNS),
    st.lists(st.integers(min_value=0, max_value=200), max_size=10),
    st.sampled_from([None, 16]),
)
def test_feed_data_gives_the_events_of_feed_for_any_bytes(
    data: bytes, cuts: list[int], cap: int | None
) -> None:
    def run(lean: bool) -> tuple[list[tuple[str, str]], bytes | None]:
        decoder = SSEDecoder() if cap is None else SSEDecoder(max_event_bytes=cap)
        got: list[tuple[str, str]] = []
        try:
            for chunk in split(data, cuts):
                if lean:
                    got.extend(as_text(decoder.feed_data(chunk)))
                else:
                    got.extend((e.event, e.data) for e in decoder.feed(chunk, 0))
        except SSEError:
            return got, None  # None: refused, as the other entry point must be at the same event
        return got, decoder.close()

    assert run(lean=True) == run(lean=False)

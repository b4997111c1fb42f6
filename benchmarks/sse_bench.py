"""How fast SSEDecoder turns chunks into events, next to a naive line splitter in the same run.

Run: ``/work/venv/bin/python benchmarks/sse_bench.py``. Prints events/s for each way of feeding,
the naive ``bytes.split(b"\\n")`` line counter fed the same chunks, and the ratio decoder/naive.
The naive counter only counts ``data:`` lines: it keeps no event boundary, fields, raw bytes or
timestamps, so it is a floor on the work, not a competitor. Each figure is the best of a few runs,
in process CPU time (the machine is shared, so wall-clock time would measure the neighbours).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from gatecheck.assemble import ChatStreamAssembler
from gatecheck.sse import SSEDecoder

REPEATS = 5
WORDS = ("Artificial", " intelligence", " is", " the", " study", " of", " agents", ",", " and", " more")


def openai_event(n: int) -> bytes:
    """One typical streamed chat.completion.chunk as it travels on the wire (~220 bytes)."""
    chunk = {
        "id": "chatcmpl-bench0000000000000000",
        "object": "chat.completion.chunk",
        "created": 1712345678,
        "model": "deepseek-v4-flash",
        "choices": [{"index": 0, "delta": {"content": WORDS[n % len(WORDS)]}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def anthropic_event(n: int) -> bytes:
    """One content_block_delta event with its ``event:`` line, as Anthropic streams send it."""
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": WORDS[n % 10]},
    }
    return b"event: content_block_delta\ndata: " + json.dumps(delta, separators=(",", ":")).encode() + b"\n\n"


def cut(stream: bytes, size: int) -> list[bytes]:
    """The stream in reads of ``size`` bytes, boundaries falling anywhere (as a socket delivers)."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def decode(chunks: list[bytes]) -> int:
    """Feed every chunk to a fresh decoder; return the number of events."""
    decoder = SSEDecoder()
    count = 0
    for t_ns, chunk in enumerate(chunks):
        count += len(decoder.feed(chunk, t_ns))
    decoder.close()
    return count


def decode_and_parse(chunks: list[bytes]) -> int:
    """The load-test hot loop: decode, then ``json.loads`` every event's data."""
    decoder = SSEDecoder()
    loads = json.loads
    count = 0
    for t_ns, chunk in enumerate(chunks):
        for event in decoder.feed(chunk, t_ns):
            loads(event.data)
            count += 1
    return count


def decode_and_assemble(chunks: list[bytes]) -> int:
    """What a conformance check does: decode, then merge every event with ChatStreamAssembler."""
    decoder = SSEDecoder()
    assembler = ChatStreamAssembler()
    count = 0
    for t_ns, chunk in enumerate(chunks):
        for event in decoder.feed(chunk, t_ns):
            assembler.add(event)
            count += 1
    assembler.finish()
    return count


def naive_lines(chunks: list[bytes]) -> int:
    """Baseline: split on LF, carry the partial line, count ``data:`` lines."""
    pending = b""
    count = 0
    for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                count += 1
    return count


def rate(run: Callable[[list[bytes]], int], chunks: list[bytes], expected: int) -> float:
    """Best events/s over REPEATS runs; checks the run saw every event."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time_ns()
        seen = run(chunks)
        best = min(best, time.process_time_ns() - start)
        if seen != expected:
            raise SystemExit(f"{run.__name__} saw {seen} events, expected {expected}")
    return expected / (best / 1e9)


def report(label: str, chunks: list[bytes], events: int) -> None:
    """Print the decoder's and the baseline's rates for one way of feeding."""
    ours = rate(decode, chunks, events)
    naive = rate(naive_lines, chunks, events)
    print(f"{label:<48} decoder {ours:>11,.0f} ev/s   naive {naive:>11,.0f} ev/s   ratio {ours / naive:5.2f}")


def main() -> None:
    """Run every scenario once (best of REPEATS) and print one line each."""
    events = [openai_event(n) for n in range(20_000)]
    stream = b"".join(events)
    report("(a) OpenAI chunks, one event per feed", events, len(events))
    report("(b) OpenAI stream in 16 KiB reads", cut(stream, 16_384), len(events))
    small = events[:400]
    report("(c) OpenAI stream, one byte per feed", cut(b"".join(small), 1), len(small))
    anthropic = [anthropic_event(n) for n in range(20_000)]
    report("(d) Anthropic event:+data: events, one per feed", anthropic, len(anthropic))
    with_json = rate(decode_and_parse, events, len(events))
    print(f"{'(e) (a) plus json.loads of every event':<48} decoder {with_json:>11,.0f} ev/s")
    assembled = rate(decode_and_assemble, events, len(events))
    print(f"{'(f) (a) plus ChatStreamAssembler.add':<48} decoder {assembled:>11,.0f} ev/s")


if __name__ == "__main__":
    main()

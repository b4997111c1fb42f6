"""What masking keys before every cut costs: one quote per violation, a report page, a huge event.

Run: ``.venv/bin/python benchmarks/redaction_bench.py``. Prints microseconds per call for the
quote helpers every failure and stream violation goes through (``excerpt``, ``clip`` with the
assembler's 300-byte limit, ``as_json``), with no key, one key and two keys in effect, on a
typical chunk, on a chunk holding JSON escapes (the slower path: every escaped form of a key is
searched), and on a chunk that echoes the key; then milliseconds to redact a 1 MB report page and
to quote the start of a 16 MiB event. Each figure is the best of a few runs, in process CPU time
(the machine is shared, so wall-clock time would measure the neighbours).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from gatecheck.quote import as_json, excerpt
from gatecheck.redaction import Secret, clip, redact, redacting

REPEATS = 5
KEY = Secret("sk-bench-0123456789abcdef0123456789abcdef")
KEY_2 = Secret("another-key-fedcba9876543210")


def chunk(content: str) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    body["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]  # type: ignore[assignment]
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def best_us(call: Callable[[], object], calls: int) -> float:
    """Best of REPEATS runs of ``calls`` calls, in microseconds of CPU per call."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(calls):
            call()
        best = min(best, time.process_time() - started)
    return best / calls * 1e6


def main() -> None:
    plain = chunk("Artificial intelligence is the study of agents " * 12)
    escaped = chunk("line one\nline two \u00e9 & 50% " * 20)
    echoed = chunk(f"invalid key {KEY.reveal()} " * 20)
    value = json.loads(echoed[6:])
    print(f"{'case':<44}{'no key':>10}{'1 key':>10}{'2 keys':>10}   (us per call)")
    for name, data in (
        ("typical chunk", plain),
        ("chunk with escapes", escaped),
        ("chunk echoing the key", echoed),
    ):
        for label, call in (
            ("excerpt 600 B", lambda d=data: excerpt(d)),
            ("clip 300 B (violation)", lambda d=data: clip(d, 300)),
        ):
            figures = []
            for keys in ((), (KEY,), (KEY, KEY_2)):
                with redacting(keys):
                    figures.append(best_us(call, 2000))
            print(f"{name + ': ' + label:<44}" + "".join(f"{f:>10.1f}" for f in figures))
    figures = []
    for keys in ((), (KEY,), (KEY, KEY_2)):
        with redacting(keys):
            figures.append(best_us(lambda: as_json(value, 120), 2000))
    print(f"{'echoed value: as_json 120':<44}" + "".join(f"{f:>10.1f}" for f in figures))
    page = (escaped.decode() + KEY.reveal() + "\n") * (1_000_000 // (len(escaped) + 50))
    page_ms = best_us(lambda: redact(page, [KEY, KEY_2]), 3) / 1000
    print(f"redact a {len(page) / 1e6:.1f} MB page with escapes, 2 keys: {page_ms:.1f} ms")
    huge = b"data: " + b"x" * (16 * 1024 * 1024) + b"\n\n"
    with redacting([KEY, KEY_2]):
        print(f"excerpt of a 16 MiB event, 2 keys: {best_us(lambda: excerpt(huge), 20):.1f} us")


if __name__ == "__main__":
    main()

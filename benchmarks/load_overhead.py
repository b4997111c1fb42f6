"""The gateway overhead ``gatecheck load --upstream`` measures, through the reference gateway in proxy mode.

Three processes, as a real set-up has them: the upstream harness (``gatecheck upstream --log-writes
--itl-ms 20``) and the reference gateway proxying to it (``gatecheck serve --upstream``) pinned to
core 0, and ``gatecheck load --upstream`` (one locust process) pinned to core 1 (``taskset``). For
each concurrency of ``--streams`` the faithful proxy is measured, then the same with
``--fault proxy-stream-buffered`` (the whole stream held back to its end: the first token should
be late by the stream's length, ``(tokens - 1) x 20 ms``). Prints, per run, the overhead of the
first token and of every chunk (p50, p90, p99, max, ms), how many streams were matched in the
harness's log, and the share of the two cores the hypervisor stole meanwhile
(``_common.steal_seconds``). Bounded: 2 x levels runs of ``--seconds``, 127.0.0.1 only.

    python benchmarks/load_overhead.py [--seconds 8] [--streams 1 16 64] [--tokens 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import pinned, steal_seconds

from gatecheck.reference import DEMO_KEY

ITL_MS = 20
UNLIMITED = ["--rpm", "1000000000", "--tpm", "1000000000000"]


@contextmanager
def _server(command: list[str]) -> Iterator[list[str]]:
    """A gatecheck server on core 0; yields the lines it printed first (its URL, then more)."""
    process = subprocess.Popen(
        pinned(0, command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip(), process.stdout.readline().strip()]
        if not lines[0].startswith("http://"):
            raise RuntimeError(f"{' '.join(command)} did not start: {lines}")
        yield lines
    finally:
        process.terminate()
        process.wait(timeout=15)


def _gatecheck(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from gatecheck.cli import main; sys.exit(main())", *args]


def _run(harness: str, key: str, streams: int, seconds: float, tokens: int, fault: str | None) -> dict:
    faults = ["--fault", fault] if fault else []
    serve = _gatecheck(
        "serve", "--port", "0", "--upstream", harness, "--upstream-api-key", key, *UNLIMITED, *faults
    )
    with _server(serve) as (gateway, _), tempfile.TemporaryDirectory() as tmp:
        command = _gatecheck(
            "load", "--base-url", gateway, "--upstream", harness, "-u", str(streams), "-t", f"{seconds:g}s",
            "--output-tokens", str(tokens), "--max-output-tokens", str(tokens),
            "--budget-requests", "1000000", "--report-dir", tmp, "--run-name", "overhead", "--plots", "off",
        )  # fmt: skip
        env = {**os.environ, "GATECHECK_API_KEY": DEMO_KEY}
        stolen = steal_seconds((0, 1))
        started = time.monotonic()
        subprocess.run(pinned(1, command), env=env, capture_output=True, timeout=seconds + 180, check=False)
        elapsed = time.monotonic() - started
        share = (steal_seconds((0, 1)) - stolen) / (2 * elapsed) * 100
        summary = json.loads((Path(tmp) / "overhead.json").read_text())
    return {"summary": summary, "stolen": share}


def _row(label: str, result: dict) -> str:
    summary = result["summary"]
    metrics, section = summary["metrics"], summary["upstream"]

    def figures(key: str) -> str:
        stats = metrics[key]
        if not stats["count"]:
            return f"{'-':>31}"
        return "".join(f"{stats[p]:>8.2f}" for p in ("p50", "p90", "p99")) + f"{stats['max']:>7.1f}"

    matched = f"{section['matched']}/{summary['requests']['ok']}"
    chunks = figures("chunk_overhead_ms")
    return f"{label:<34}{matched:>10}{figures('overhead_ms')}  {chunks}{result['stolen']:>7.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="length of each run (default 8)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 16, 64], help="concurrency levels")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per answer (default 16)")
    args = parser.parse_args()
    harness_command = _gatecheck("upstream", "--port", "0", "--log-writes", "--itl-ms", str(ITL_MS))
    with _server(harness_command) as (harness, key_line):
        key = key_line.removeprefix("key ")
        rows = []
        for streams in args.streams:
            for fault in (None, "proxy-stream-buffered"):
                result = _run(harness, key, streams, args.seconds, args.tokens, fault)
                rows.append(_row(f"{streams} streams, {fault or 'faithful proxy'}", result))
    print(
        f"gateway overhead through the reference gateway in proxy mode: harness {ITL_MS} ms between tokens, "
        f"{args.tokens} tokens per answer, {args.seconds:g} s per run (ms; client arrival - harness write)"
    )
    first = "first token p50/p90/p99/max"
    print(f"{'run':<34}{'matched':>10}{first:>31}  {'every chunk p50/p90/p99/max':>31}{'stolen':>8}")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()

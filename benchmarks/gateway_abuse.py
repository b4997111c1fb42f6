"""How the reference gateway holds up under abusive requests: its memory, its event loop, its answers.

Run: ``.venv/bin/python benchmarks/gateway_abuse.py`` (about a minute; 127.0.0.1 only). With
``--source DIR`` the gateway is run from another checkout (``PYTHONPATH=DIR``), to compare a
version before a change with the one after it.

A ``gatecheck serve`` subprocess is started per phase, pinned to core 0 (this script runs on
core 1). While each phase runs, one thread samples the server's resident memory (``VmRSS`` every
5 ms) and another sends a small request (``GET /v1/models``) every 5 ms on a keep-alive
connection: the slowest of those answers is how long the event loop stalled (the same probe
over 0.5 s of the idle server is printed too: on a shared machine it is the noise floor). Each
phase sends its big requests at once from threads (raw sockets), and reports the statuses they
got, how long they took, the peak RSS over the idle server's, the stall, and the tracebacks the
server logged.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from _common import percentile

KEY = "gatecheck-demo-key"
SERVER_CORE, CLIENT_CORE = 0, 1
MIB = 1024 * 1024
SEND_TIMEOUT_S = 60.0


def chat(messages: object, **fields: object) -> dict[str, object]:
    return {"model": "deepseek-v4-flash", "max_tokens": 1, "messages": messages, **fields}


HI = [{"role": "user", "content": "hi"}]


def compact(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def prompt_body(size: int) -> bytes:
    """A chat request of about ``size`` bytes: one user message of five-letter words."""
    return compact(chat([{"role": "user", "content": "word " * (size // 5)}]))


def empty_arrays_body(size: int) -> bytes:
    """About ``size`` bytes of empty arrays in one field (the most objects per byte)."""
    return compact(chat(HI, stop=[[]] * (size // 3)))


def messages_body(size: int) -> bytes:
    """About ``size`` bytes of one-word messages (valid, but many values)."""
    return compact(chat([{"role": "user", "content": "a"}] * (size // 30)))


def deep_body(levels: int) -> bytes:
    return compact(chat(HI)).replace(b"}]}", b'}],"stop":' + b"[" * levels + b"]" * levels + b"}")


def nan_body() -> bytes:
    return compact(chat(HI, temperature=0.5)).replace(b"0.5", b"NaN")


def many_choices_body() -> bytes:
    """A small request for 128 choices of 32,768 tokens each."""
    return compact(chat(HI, n=128, max_tokens=32768, ignore_eos=True))


def huge_schema_body(items: int) -> bytes:
    """A small request whose json_schema answer must have ``items`` items."""
    schema = {"type": "array", "minItems": items, "items": {"type": "integer"}}
    return compact(
        chat(
            HI,
            max_tokens=32768,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )
    )


@dataclass
class Phase:
    label: str
    bodies: Callable[[], list[bytes]]


def phases(big: int) -> list[Phase]:
    mb = f"{big / MIB:g} MiB"
    return [
        Phase("one 50 MB prompt", lambda: [prompt_body(50 * 10**6)]),
        Phase("six 50 MB prompts at once", lambda: [prompt_body(50 * 10**6)] * 6),
        Phase(f"six {mb} prompts at once", lambda: [prompt_body(big)] * 6),
        Phase(f"six {mb} bodies of empty arrays at once", lambda: [empty_arrays_body(big)] * 6),
        Phase(f"six {mb} bodies of one-word messages", lambda: [messages_body(big)] * 6),
        Phase("JSON nested 1,000 levels deep", lambda: [deep_body(1000)]),
        Phase("temperature NaN", lambda: [nan_body()]),
        Phase("six requests for 128 x 32,768 tokens", lambda: [many_choices_body()] * 6),
        Phase("json_schema answer of minItems 2,000,000", lambda: [huge_schema_body(2_000_000)]),
    ]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """Peak RSS of ``pid`` and the latency of small requests, until stopped."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.peak = 0
        self.latencies: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        rss = threading.Thread(target=self._rss, daemon=True)
        rss.start()
        conn: http.client.HTTPConnection | None = None
        while not self.stopping.is_set():
            t0 = time.perf_counter()
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=SEND_TIMEOUT_S)
                conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn = None
                continue
            self.latencies.append(time.perf_counter() - t0)
            time.sleep(0.005)
        rss.join()

    def _rss(self) -> None:
        while not self.stopping.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.005)


def post_bytes(port: int, body: bytes) -> bytes:
    """The whole request (built before the clock starts: copying 50 MB holds this process's GIL)."""
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def send(port: int, request: bytes, statuses: list[str]) -> None:
    """Send ``request`` on a raw socket; the status line's code (or what went wrong) joins ``statuses``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=SEND_TIMEOUT_S) as sock:
            with contextlib.suppress(OSError):  # an early answer (413), a closed connection
                sock.sendall(request)
            reply = sock.recv(4096)
        statuses.append(reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "no answer")
    except OSError as exc:
        statuses.append(type(exc).__name__)


@contextmanager
def gateway(source: str | None, log: str) -> Iterator[tuple[int, int]]:
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source
    command = [sys.executable, "-m", "gatecheck.cli", "serve", "--port", "0"]
    command += ["--rpm", "1000000000", "--tpm", "1000000000000"]
    with open(log, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=source,  # python -m looks in the working directory first
            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}),
        )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        yield int(url.rsplit(":", 1)[1]), process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # a gateway whose event loop is stuck does not see SIGTERM
            process.kill()
            process.wait(10)


def run_phase(phase: Phase, source: str | None) -> list[str]:
    bodies = phase.bodies()  # shared objects: six "copies" of a body cost nothing
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        with gateway(source, log.name) as (port, pid):
            requests = [post_bytes(port, body) for body in bodies]
            time.sleep(0.3)
            idle = rss_bytes(pid)
            sampler = Sampler(pid, port)
            sampler.start()
            time.sleep(0.5)
            idle_probes = len(sampler.latencies)
            statuses: list[str] = []
            senders = [threading.Thread(target=send, args=(port, request, statuses)) for request in requests]
            t0 = time.perf_counter()
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            elapsed = time.perf_counter() - t0
            time.sleep(0.2)
            sampler.stopping.set()
            sampler.join()
            after = rss_bytes(pid)
        with open(log.name, encoding="utf-8", errors="replace") as logged:
            tracebacks = logged.read().count("Traceback")
    counts = ", ".join(f"{n} x {status}" for status, n in sorted(Counter(statuses).items()))
    idle_lat, lat = sampler.latencies[:idle_probes], sampler.latencies[idle_probes:]
    return [
        phase.label,
        counts,
        f"{elapsed:.2f} s",
        f"{(sampler.peak - idle) / MIB:+,.0f} MiB (idle {idle / MIB:.0f}, after {after / MIB:.0f})",
        f"{max(lat) * 1000:,.0f} ms / {percentile(lat, 99) * 1000:,.0f} ms (n={len(lat)})" if lat else "-",
        f"{max(idle_lat) * 1000:,.0f} ms" if idle_lat else "-",
        str(tracebacks),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="run the gateway from this checkout (PYTHONPATH)")
    parser.add_argument("--big-mib", type=float, default=7.5, help="size of the accepted big bodies")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {CLIENT_CORE})
    header = [
        "phase",
        "answers",
        "all answered in",
        "peak RSS over idle",
        "probe max / p99",
        "idle probe max",
        "tracebacks",
    ]
    rows = [header]
    for phase in phases(int(args.big_mib * MIB)):
        rows.append(run_phase(phase, args.source))
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    width = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print(f"gateway_abuse (gateway from {args.source or 'this checkout'})")
    for row in rows:
        print("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)))


if __name__ == "__main__":
    main()

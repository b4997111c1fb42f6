"""How fast the reference gateway streams, and how exactly it shapes latency.

Run: ``/work/venv/bin/python benchmarks/gateway_bench.py`` (about 40 s). The gateway runs as a
``gatecheck serve`` subprocess pinned to core 0; this script is the load generator, pinned to
core 1: raw asyncio protocols (uvloop when installed) that send keep-alive HTTP/1.1 requests and
count SSE events (``\\n\\n``) as bytes arrive, stamping each with ``perf_counter_ns``. 127.0.0.1 only.

1. Throughput: 256 concurrent streams, no shaping, each request 256 tokens (``ignore_eos``): content
   chunks per second of wall time, and per second of the server's own CPU time (the machine is
   shared, so the CPU-time figure is the one that does not depend on the neighbours).
2. Shaping error with ``--ttft-ms 100 --itl-ms 20``: measured minus configured TTFT (request sent ->
   first token event) and ITL (between token events), p50 and p99, at 1 and 256 concurrent
   streams (``--requests-each`` 16 requests per stream: 4,096 first tokens and ~78,000 gaps at 256).
   Streams start at random offsets within one request period, as independent users would (if they
   all started in the same millisecond the first answers would queue behind each other). The error
   includes this client's own delay in reading, so it is an upper bound on the gateway's.

Each phase also prints the share of CPU time the hypervisor stole from the two cores: a p99 of a
few milliseconds cannot be told apart from a stolen stretch, so runs with more than 2% are flagged.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from _common import percentile, steal_seconds

KEY = "gatecheck-demo-key"
SERVER_CORE, CLIENT_CORE = 0, 1
CORES = (SERVER_CORE, CLIENT_CORE)
END_OF_RESPONSE = b"\r\n0\r\n\r\n"


def request_bytes(port: int, tokens: int) -> bytes:
    """One streaming chat request producing exactly ``tokens`` token events."""
    body = json.dumps(
        {
            "model": "deepseek-v4-flash",
            "stream": True,
            "max_tokens": tokens,
            "ignore_eos": True,
            "messages": [{"role": "user", "content": "alpha beta gamma delta epsilon"}],
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Totals:
    """Shared counters of one run."""

    events: int = 0
    errors: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    itl_ms: list[float] = field(default_factory=list)


class StreamClient(asyncio.Protocol):
    """One keep-alive connection sending the same streaming request until told to stop."""

    def __init__(self, request: bytes, totals: Totals, record: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.totals = totals
        self.record = record
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = loop.create_future()
        self.tail = b""
        self.sent_ns = 0
        self.times: list[int] = []
        self.first = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> asyncio.Future[None]:
        """Send the request; the future resolves at the end of the response."""
        self.done = self.loop.create_future()
        self.tail, self.times, self.first = b"", [], True
        self.sent_ns = time.perf_counter_ns()
        assert self.transport is not None
        self.transport.write(self.request)
        return self.done

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        if self.first:
            self.first = False
            if not data.startswith(b"HTTP/1.1 200"):
                self.totals.errors += 1
        count = (self.tail[-1:] + data).count(b"\n\n")  # one byte back: a pair split across reads
        self.totals.events += count
        if self.record:
            self.times.extend([now] * count)
        self.tail = (self.tail + data)[-len(END_OF_RESPONSE) :]
        if self.tail == END_OF_RESPONSE and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("connection lost"))


async def connect(port: int, request: bytes, totals: Totals, record: bool) -> StreamClient:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: StreamClient(request, totals, record, loop), "127.0.0.1", port
    )
    return protocol


async def throughput(
    port: int, streams: int, tokens: int, seconds: float, server_pid: int
) -> dict[str, float]:
    """Content chunks per second with ``streams`` connections looping requests for ``seconds``."""
    totals = Totals()
    clients = [await connect(port, request_bytes(port, tokens), totals, False) for _ in range(streams)]
    deadline = time.perf_counter() + seconds + 0.5
    stop = asyncio.Event()

    async def loop_requests(client: StreamClient) -> None:
        while not stop.is_set():
            await client.send()

    tasks = [asyncio.create_task(loop_requests(c)) for c in clients]
    await asyncio.sleep(0.5)  # warm-up
    events0, cpu0, t0 = totals.events, cpu_seconds(server_pid), time.perf_counter()
    await asyncio.sleep(max(deadline - time.perf_counter(), 0))
    events1, cpu1, t1 = totals.events, cpu_seconds(server_pid), time.perf_counter()
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    per_request = tokens + 3  # role chunk, tokens, finish chunk, [DONE]
    content = (events1 - events0) * tokens / per_request
    return {
        "chunks_per_s": content / (t1 - t0),
        "chunks_per_cpu_s": content / max(cpu1 - cpu0, 1e-9),
        "server_cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "errors": totals.errors,
    }


async def shaping(port: int, streams: int, tokens: int, requests_each: int, period_s: float) -> Totals:
    """TTFT and ITL errors over ``streams`` connections, each sending ``requests_each`` requests."""
    totals = Totals()
    clients = [await connect(port, request_bytes(port, tokens), totals, True) for _ in range(streams)]
    rng = random.Random(7)

    async def run(client: StreamClient) -> None:
        await asyncio.sleep(rng.uniform(0, period_s) if streams > 1 else 0)
        for _ in range(requests_each):
            await client.send()
            token_times = client.times[1 : 1 + tokens]  # skip the role chunk
            totals.ttft_ms.append((token_times[0] - client.sent_ns) / 1e6)
            totals.itl_ms += [(b - a) / 1e6 for a, b in itertools.pairwise(token_times)]

    await asyncio.wait_for(asyncio.gather(*(run(c) for c in clients)), 120)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return totals


def stolen_share(stolen0: float, t0: float) -> str:
    """The share of both cores' time stolen since ``steal_seconds`` gave ``stolen0`` at ``t0``."""
    share = (steal_seconds(CORES) - stolen0) / ((time.perf_counter() - t0) * len(CORES))
    return f"{share:.1%}" + ("  (a noisy neighbour: rerun)" if share > 0.02 else "")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def gateway(*options: str) -> Iterator[tuple[int, int]]:
    """A ``gatecheck serve`` subprocess pinned to SERVER_CORE; yields (port, pid)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gatecheck.cli",
            "serve",
            "--port",
            "0",
            "--rpm",
            "1000000000",
            "--tpm",
            "1000000000000",
            *options,
        ],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        yield int(url.rsplit(":", 1)[1]), process.pid
    finally:
        process.terminate()
        process.wait(10)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput measuring window")
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument(
        "--requests-each", type=int, default=16, help="requests per stream in the many-stream shaping phase"
    )
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {CLIENT_CORE})
    gc.freeze()
    loop = new_loop()
    rows: list[tuple[str, str, str]] = []
    with gateway() as (port, pid):
        stolen0, t0 = steal_seconds(CORES), time.perf_counter()
        figures = loop.run_until_complete(throughput(port, args.streams, 256, args.seconds, pid))
        stolen = stolen_share(stolen0, t0)
    rows.append(
        (
            f"throughput, {args.streams} streams, no shaping",
            "content chunks/s (wall)",
            f"{figures['chunks_per_s']:,.0f}",
        )
    )
    rows.append(("", "content chunks per server CPU-second", f"{figures['chunks_per_cpu_s']:,.0f}"))
    rows.append(("", "server CPU share of one core", f"{figures['server_cpu_share']:.0%}"))
    rows.append(("", "non-200 responses", f"{figures['errors']:.0f}"))
    rows.append(("", "CPU stolen by the hypervisor", stolen))
    tokens = 20
    period = (args.ttft_ms + (tokens - 1) * args.itl_ms) / 1000
    with gateway("--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms)) as (port, pid):
        for streams, each in ((1, 20), (args.streams, args.requests_each)):
            cpu0, stolen0, t0 = cpu_seconds(pid), steal_seconds(CORES), time.perf_counter()
            totals = loop.run_until_complete(shaping(port, streams, tokens, each, period))
            share = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
            stolen = stolen_share(stolen0, t0)
            ttft = [t - args.ttft_ms for t in totals.ttft_ms]
            itl = [t - args.itl_ms for t in totals.itl_ms]
            label = f"shaping error, {streams} stream(s), ttft {args.ttft_ms:g} / itl {args.itl_ms:g} ms"
            rows.append(
                (
                    label,
                    f"TTFT p50 / p99 ms (n={len(ttft)})",
                    f"{percentile(ttft, 50):+.2f} / {percentile(ttft, 99):+.2f}",
                )
            )
            rows.append(
                (
                    "",
                    f"ITL p50 / p99 ms (n={len(itl)})",
                    f"{percentile(itl, 50):+.2f} / {percentile(itl, 99):+.2f}",
                )
            )
            rows.append(("", "ITL mean ms", f"{statistics.fmean(itl):+.3f}"))
            rows.append(("", "server CPU share of one core", f"{share:.0%}"))
            rows.append(("", "CPU stolen by the hypervisor", stolen))
    loop.close()
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    print(
        f"gateway_bench (server on core {SERVER_CORE}, load generator on core {CLIENT_CORE}, "
        f"{type(loop).__module__.split('.')[0]} client loop)"
    )
    for row in rows:
        print("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)))


if __name__ == "__main__":
    main()

"""How many content chunks per second one locust worker process consumes on one core.

Side by side in one run, against the same fast local SSE server:

- gatecheck's ``ChatStreamUser`` (loadtests/locustfile.py): every recv() stamped with
  ``perf_counter_ns``, decoded by gatecheck's SSE decoder, each event classified, the outcome of
  every request judged, metrics derived; with conformance under load at its default sample (the
  assembler's violation rules on one stream in ten), and also with it off and on every stream, to
  show what the rules cost;
- a minimal hand-written locust ``FastHttpUser`` that only counts ``data:`` lines with
  ``FastHttpSession.iter_lines`` (no timing at all);
- gatecheck's user measuring the gateway overhead (``--upstream``, default sample): a nonce in every
  prompt, the server's log polled once a second and matched chunk by chunk. The server then plays
  the upstream harness too: it keeps the harness's log (``gatecheck.upstream.log``, every token write
  stamped) for requests with a nonce and answers ``/_gatecheck/info`` and ``/_gatecheck/log``.

The server (asyncio, pre-rendered chunked responses of ``--chunks`` OpenAI chunks, written at once)
runs on core 0 and is much faster than either client, so the client's core is the bottleneck; each
locust process is pinned to core 1 with ``taskset``. Prints chunks/s for both and the ratio, and
the same per CPU-second of the locust process during the run (``time.process_time`` at test start
and stop, the same listener in both locustfiles): on a machine shared with other work the wall
rate says as much about the neighbours as about the client, the CPU rate much less
(target >= 1.0, at the default sample). The clients alternate for ``--rounds`` rounds and each keeps
its best round, so a burst of other work on a shared machine hurts none more than the others.
Bounded: 5 x rounds runs of ``--seconds`` each, 127.0.0.1 only.

    python benchmarks/load_capacity.py [--users 32] [--seconds 6] [--rounds 2] [--chunks 512]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import pinned

from gatecheck.load.options import DEFAULT_CONFORMANCE_SAMPLE
from gatecheck.upstream.log import Log
from gatecheck.upstream.scenarios import NONCE_RE

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
KEY = "capacity-bench-key"
SAMPLES = {
    "0": "gatecheck ChatStreamUser, conformance rules off",
    DEFAULT_CONFORMANCE_SAMPLE: f"gatecheck ChatStreamUser, rules on a {DEFAULT_CONFORMANCE_SAMPLE} sample",
    "1": "gatecheck ChatStreamUser, rules on every stream",
}
OVERHEAD = "overhead"
LABELS = {**SAMPLES, OVERHEAD: "  the same, gateway overhead measured (--upstream)"}
"""Each gatecheck variant: a --conformance-sample, or the default sample with --upstream."""

CPU_LISTENERS = textwrap.dedent("""

    import time as _time

    from locust import events as _events

    _CPU = {"start": 0.0, "stop": 0.0}


    @_events.test_start.add_listener
    def _cpu_start(**_kw):
        _CPU["start"] = _time.process_time()


    @_events.test_stop.add_listener
    def _cpu_stop(**_kw):
        _CPU["stop"] = _time.process_time()


    @_events.quitting.add_listener
    def _cpu_report(**_kw):
        print("CPU", _CPU["stop"] - _CPU["start"], flush=True)
""")

GATECHECK = textwrap.dedent('''
    """gatecheck's locustfile, as shipped, plus the CPU listeners."""
    import sys

    sys.path.insert(0, {loadtests!r})
    import locustfile  # noqa: F401  (gatecheck's options and plugin)
    from gatecheck.load.users import (  # noqa: F401  (the users the plugin may pick)
        ChatStreamUser, ChatUser, LimitsUser, MessagesStreamUser, MessagesUser, RateUser,
    )
''')

BASELINE = textwrap.dedent('''
    """The minimal FastHttpUser: stream a chat completion, count the data lines, nothing else."""
    import json
    import time

    from locust import FastHttpUser, constant, events, task

    COUNT = {"chunks": 0, "start": 0.0, "stop": 0.0}
    BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                       "max_tokens": 100000})


    class CountingUser(FastHttpUser):
        wait_time = constant(0)

        @task
        def stream(self):
            for line in self.client.iter_lines("/v1/chat/completions", method="POST", data=BODY,
                                               headers={"Content-Type": "application/json"}):
                if line.startswith("data: {"):
                    COUNT["chunks"] += 1


    @events.test_start.add_listener
    def _start(**_kw):
        COUNT["start"] = time.time()


    @events.test_stop.add_listener
    def _stop(**_kw):
        COUNT["stop"] = time.time()


    @events.quitting.add_listener
    def _report(**_kw):
        print("BASELINE", COUNT["chunks"], COUNT["stop"] - COUNT["start"], flush=True)
''')


def _chunk(text: str) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def render_response(chunks: int, per_write: int) -> tuple[list[bytes], list[int]]:
    """An HTTP/1.1 streamed chat completion (``chunks`` content events, the finish chunk, usage,
    [DONE]) cut into the pieces the server writes one at a time (``per_write`` events each), and
    the number of content events in each piece."""
    events = [_chunk(" word") for _ in range(chunks)]
    finish = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
    }
    events.append(b"data: " + json.dumps(finish, separators=(",", ":")).encode() + b"\n\n")
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": chunks, "total_tokens": chunks + 1},
    }
    events.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    framed = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: keep-alive\r\n\r\n"
    )
    pieces = [b"".join(framed[i : i + per_write]) for i in range(0, len(framed), per_write)]
    pieces[0] = head + pieces[0]
    pieces[-1] += b"0\r\n\r\n"
    contents = [max(0, min(chunks, i + per_write) - i) for i in range(0, len(framed), per_write)]
    return pieces, contents


def _json_response(value: object) -> bytes:
    body = json.dumps(value).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    return head + body


class _Stream(asyncio.Protocol):
    """Answers every request on the connection with the pre-rendered stream, piece by piece,
    letting the other connections write between two pieces; a request with a nonce is logged the
    upstream harness's way (every token write stamped before it is written), and the harness's
    ``GET /_gatecheck/info`` and ``/_gatecheck/log`` are answered from that log."""

    def __init__(self, response: list[bytes], contents: list[int], log: Log) -> None:
        self.response = response
        self.contents = contents
        self.log = log
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            match = re.search(rb"content-length:\s*(\d+)", self.buffer[:end], re.IGNORECASE)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < total:
                return
            request, self.buffer = self.buffer[:total], self.buffer[total:]
            if request.startswith(b"GET /_gatecheck/"):
                self._control(request.split(b" ", 2)[1].decode())
                continue
            nonce = NONCE_RE.search(request[end:].decode("utf-8", "replace"))
            attempt = None
            if nonce is not None:
                attempt = self.log.open(
                    nonce.group(), scenario="ok", method="POST", path="/v1/chat/completions", headers={},
                    auth="ok", body=None, t_arrival_ns=time.monotonic_ns(), detailed=False,
                )  # fmt: skip
                attempt.status = 200
            asyncio.get_running_loop().create_task(self._write(attempt))

    def _control(self, target: str) -> None:
        """The harness's info (this host's clock, every write logged) or a page of its log."""
        assert self.transport is not None
        path, _, query = target.partition("?")
        if path.endswith("/info"):
            reply: object = {"key": "", "clock_ns": time.monotonic_ns(), "log_writes": True}
        else:
            params = dict(item.split("=", 1) for item in query.split("&") if "=" in item)
            found, last = self.log.since(int(params.get("since", 0)), int(params.get("limit", 10000)),
                                         params.get("prefix", ""))  # fmt: skip
            reply = {"attempts": [a.to_json(brief=True) for a in found], "next": last}
        self.transport.write(_json_response(reply))

    async def _write(self, attempt: object) -> None:
        for piece, contents in zip(self.response, self.contents, strict=True):
            assert self.transport is not None
            if self.transport.is_closing():
                return
            if attempt is not None:
                t_ns = time.monotonic_ns()
                for _ in range(contents):
                    attempt.wrote(t_ns, b"", token=True)  # type: ignore[attr-defined]
            self.transport.write(piece)
            await asyncio.sleep(0)
        if attempt is not None:
            attempt.end(time.monotonic_ns(), "complete")  # type: ignore[attr-defined]


def serve(port_file: str, chunks: int, per_write: int) -> None:
    """Run the fast SSE server until killed; write its port to ``port_file``."""
    loop = asyncio.new_event_loop()
    response, contents = render_response(chunks, per_write)
    log = Log(log_writes=True)
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    server = loop.run_until_complete(loop.create_server(lambda: _Stream(response, contents, log), sock=sock))
    Path(port_file).write_text(str(sock.getsockname()[1]))
    try:
        loop.run_forever()
    finally:
        server.close()


def _locust(locustfile: Path, host: str, users: int, seconds: float, extra: list[str], workdir: Path) -> str:
    command = pinned(
        1,
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "--only-summary",
            "--host",
            host,
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{seconds:g}s",
            *extra,
        ],
    )
    env = {**os.environ, "GATECHECK_API_KEY": KEY}
    proc = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=seconds + 120
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"locust failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


Rates = tuple[float, float]
"""Content chunks per second of the run, and per CPU-second of the locust process."""


def _cpu_seconds(out: str) -> float:
    return float(next(line for line in out.splitlines() if line.startswith("CPU ")).split()[1])


def measure_gatecheck(host: str, users: int, seconds: float, workdir: Path, variant: str) -> Rates:
    """Content chunks gatecheck's streaming user consumed (each stamped and decoded): ``variant`` is
    the share of the streams checked against the protocol rules, or ``OVERHEAD`` (the default share,
    and the gateway overhead measured against the server's harness log)."""
    sample = DEFAULT_CONFORMANCE_SAMPLE if variant == OVERHEAD else variant
    locustfile = workdir / "gatecheck_locustfile.py"
    locustfile.write_text(
        GATECHECK.format(loadtests=str(LOCUSTFILE.parent)) + CPU_LISTENERS, encoding="utf-8"
    )
    options = ["--report-dir", str(workdir), "--run-name", "capacity", "--output-tokens", "100000"]
    options += ["--max-output-tokens", "100000", "--budget-requests", "1000000", "--preflight", "off"]
    options += ["--conformance-sample", sample, "--plots", "off"]
    if variant == OVERHEAD:
        options += ["--upstream", host]
    out = _locust(locustfile, host, users, seconds, options, workdir)
    summary = json.loads((workdir / "capacity.json").read_text())
    if summary["requests"]["ok"] != summary["requests"]["total"]:
        raise RuntimeError(f"gatecheck counted failed requests: {summary['errors']}")
    upstream = summary["upstream"]
    if variant == OVERHEAD and (
        not upstream["measured"] or upstream["unmatched"] or upstream["chunks_reason"]
    ):
        raise RuntimeError(f"the overhead was not measured in full: {upstream}")
    metrics = summary["metrics"]
    chunks = metrics["itl_ms"]["count"] + metrics["ttft_ms"]["count"]
    return chunks / summary["throughput"]["duration_s"], chunks / _cpu_seconds(out)


def measure_baseline(host: str, users: int, seconds: float, workdir: Path) -> Rates:
    """Content chunks the minimal line-counting FastHttpUser consumed."""
    locustfile = workdir / "baseline_locustfile.py"
    locustfile.write_text(BASELINE + CPU_LISTENERS, encoding="utf-8")
    out = _locust(locustfile, host, users, seconds, [], workdir)
    _, chunks, elapsed = next(line for line in out.splitlines() if line.startswith("BASELINE")).split()
    return int(chunks) / float(elapsed), int(chunks) / _cpu_seconds(out)


def _best(a: Rates, b: Rates) -> Rates:
    return max(a[0], b[0]), max(a[1], b[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=32, help="concurrent streams (default 32)")
    parser.add_argument("--seconds", type=float, default=6, help="length of each run (default 6)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per client (default 2)")
    parser.add_argument("--chunks", type=int, default=512, help="content chunks per response (default 512)")
    parser.add_argument(
        "--per-write",
        type=int,
        default=8,
        help="events the server writes at once, then lets other streams write (default 8)",
    )
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.chunks, args.per_write)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port_file = workdir / "port"
        server = subprocess.Popen(
            pinned(
                0,
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    str(port_file),
                    "--chunks",
                    str(args.chunks),
                    "--per-write",
                    str(args.per_write),
                ],
            )
        )
        try:
            deadline = time.monotonic() + 10
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError("the SSE server did not start")
                time.sleep(0.05)
            host = f"http://127.0.0.1:{port_file.read_text()}"
            baseline: Rates = (0.0, 0.0)
            ours: dict[str, Rates] = dict.fromkeys(LABELS, (0.0, 0.0))
            for _ in range(args.rounds):
                baseline = _best(baseline, measure_baseline(host, args.users, args.seconds, workdir))
                for variant in LABELS:
                    rates = measure_gatecheck(host, args.users, args.seconds, workdir, variant)
                    ours[variant] = _best(ours[variant], rates)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"content chunks/s on one core: {args.users} streams of {args.chunks} chunks, written "
        f"{args.per_write} events at a time; best of {args.rounds} alternating runs of {args.seconds:g} s"
    )
    print(f"{'client':<56}{'chunks/s':>10}{'ratio':>7}{'chunks/CPU-s':>14}{'ratio':>7}")
    rows = [("minimal FastHttpUser counting lines (no timing)", baseline)]
    rows += [(label, ours[variant]) for variant, label in LABELS.items()]
    for label, (wall, cpu) in rows:
        print(f"{label:<56}{wall:>10,.0f}{wall / baseline[0]:>7.2f}{cpu:>14,.0f}{cpu / baseline[1]:>7.2f}")
    default = ours[DEFAULT_CONFORMANCE_SAMPLE]
    print(
        f"ratio gatecheck (default sample) / minimal: {default[0] / baseline[0]:.2f} wall, "
        f"{default[1] / baseline[1]:.2f} per CPU-second (target >= 1.0)"
    )
    off = ours["0"]
    for sample in ("1", DEFAULT_CONFORMANCE_SAMPLE):
        cost = (1 - ours[sample][1] / off[1]) * 100
        print(f"conformance rules on a sample of {sample}: cost {cost:.0f}% of the capacity per CPU-second")
    measured = ours[OVERHEAD]
    cost = (1 - measured[1] / default[1]) * 100
    print(
        f"gateway overhead measured (--upstream): ratio {measured[0] / baseline[0]:.2f} wall, "
        f"{measured[1] / baseline[1]:.2f} per CPU-second; cost {cost:.0f}% of the capacity per CPU-second"
    )


if __name__ == "__main__":
    main()

"""How close gatecheck's measured TTFT and ITL are to what the gateway injects.

The reference gateway is shaped with ``--ttft-ms 100 --itl-ms 20`` (absolute deadlines from the
kernel's arrival stamp of the request) and pinned to core 0; one locust process with gatecheck's streaming
user is pinned to core 1 (``taskset``). For 1, 64 and 256 concurrent streams, prints the error of
the measured TTFT and ITL (p50 and p99 minus the injected value). Targets: TTFT p99 error < 2 ms
at 64 streams, < 5 ms at 256. Bounded: one run of ``--seconds`` per level, 127.0.0.1 only.
Each level also prints the share of the two cores' time the hypervisor stole during it (see
``_common.steal_seconds``); above 2% the figures say more about the neighbours than about us.

Each user waits a random part of one request period before its first request, as independent
users would (locust spawns a second's users at once, and closed-loop users of equal request length
then stay in lockstep: the gateway admitted each such burst one request after the other, 20-30 ms
for the last one at 64 streams, which is the gateway's queueing, not a measurement error).

The measured TTFT error is then split, per request, with stamps from both processes (the same
``CLOCK_MONOTONIC`` on Linux: ``time.monotonic`` in the gateway, ``perf_counter_ns`` in locust):

- arrival: request start (client) -> the request's arrival at the gateway, where its deadlines
  start (the kernel's receive stamp);
- server late: the gateway's write of the first output event - that event's deadline;
- client late: gatecheck's stamp of that event - the gateway's write: the measurement error proper.

For that, and only in this benchmark, the gateway runs in a wrapper (``--serve-logged``) that logs
each request's id, arrival, first deadline and first output write through a proxy of its
transport, and the locust users are a subclass of ``ChatStreamUser`` (in a generated locustfile)
that logs each request's id (``x-request-id``) and stamps. Neither changes what goes on the wire.
The split covers the requests started after the first two seconds (the spawn), and so does a
second TTFT error computed from the same stamps gatecheck reported: while locust spawns users,
each new user's first request also waits for its TCP connection and for the spawning greenlets,
which the whole-run figures include (TTFT is measured from the request's start, connection
included, as users see it); the steady state is what the accuracy targets are about.

    python benchmarks/load_accuracy.py [--seconds 10] [--streams 1 64 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import IO, Any

from _common import percentile, pinned, steal_seconds

from gatecheck.commands.load import locust_command

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
TTFT_MS = 100.0
ITL_MS = 20.0
DEMO_KEY = "gatecheck-demo-key"
OUTPUT_TOKENS = 32
PERIOD_S = (TTFT_MS + (OUTPUT_TOKENS - 1) * ITL_MS) / 1000
"""One request's length: users start at a random offset within it."""
STEADY_AFTER_NS = 2_000_000_000
"""The split covers requests started this long after the first one (the spawn is over)."""

ACCURACY_LOCUSTFILE = textwrap.dedent('''
    """gatecheck's locustfile plus AccuracyUser: a random start offset, and a log of each request."""
    import os
    import random
    import sys

    import gevent
    from locust import events

    sys.path.insert(0, {loadtests!r})
    import locustfile  # noqa: F401  (gatecheck's options and plugin)
    from gatecheck.load.users import ChatStreamUser

    LOG = open(os.environ["ACCURACY_CLIENT_LOG"], "w", encoding="ascii")


    class AccuracyUser(ChatStreamUser):
        def __init__(self, environment):
            super().__init__(environment)
            self.request_id = None
            request = self.http.request

            def noted(*args, **kwargs):
                response = request(*args, **kwargs)
                self.request_id = response.get("x-request-id")
                return response

            self.http.request = noted

        def on_start(self):
            gevent.sleep(random.uniform(0, {period_s!r}))

        def send(self, body, group, key=None):
            timing, headers = super().send(body, group, key)
            first = timing.token_ns[0] if timing.token_ns else 0
            LOG.write(f"{{self.request_id}} {{timing.t_start_ns}} {{first}}\\n")
            return timing, headers


    @events.quitting.add_listener
    def _close(**_kw):
        LOG.close()
''')


class _FirstOutputLog:
    """A gateway transport that logs when the first output event of its response is written."""

    def __init__(self, transport: Any, log: IO[str], request_id: str, t0: float, deadline: float) -> None:
        self._inner = transport
        self._log = log
        self._line = f"{request_id} {int(t0 * 1e9)} {int(deadline * 1e9)}"
        self._logged = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, data: bytes) -> None:
        if not self._logged and b'"content":"' in data and b'"content":""' not in data:
            self._logged = True
            self._log.write(f"{self._line} {time.monotonic_ns()}\n")
        self._inner.write(data)


def serve_logged(log_path: str, serve_args: list[str]) -> int:
    """``gatecheck serve`` with each stream's arrival, first deadline and first output
    write logged (``time.monotonic`` is ``CLOCK_MONOTONIC``, like locust's ``perf_counter_ns``)."""
    from gatecheck.cli import main as gatecheck_main
    from gatecheck.reference import streaming

    original_init = streaming.TimedWriter.__init__

    with open(log_path, "w", encoding="ascii") as log:

        def init(writer: Any, request: Any, response: Any, payload: Any, schedule: Any, *rest: Any) -> None:
            original_init(writer, request, response, payload, schedule, *rest)
            if writer._transport is not None:
                request_id = response.headers.get("x-request-id", "-")
                writer._transport = _FirstOutputLog(
                    writer._transport, log, request_id, schedule.at(-1), schedule.at(0)
                )

        streaming.TimedWriter.__init__ = init  # type: ignore[method-assign,assignment]
        return gatecheck_main(["serve", *serve_args])


def start_gateway(log_path: Path) -> tuple[subprocess.Popen[str], str]:
    """The shaped reference gateway on core 0, without limits, logging its stamps to ``log_path``;
    returns the process and its URL."""
    command = pinned(
        0,
        [
            sys.executable,
            __file__,
            "--serve-logged",
            str(log_path),
            "--port",
            "0",
            "--ttft-ms",
            f"{TTFT_MS:g}",
            "--itl-ms",
            f"{ITL_MS:g}",
            "--reply-words",
            "4096",
            "--rpm",
            "1000000000",
            "--tpm",
            "1000000000000",
        ],
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(f"the gateway did not print its URL (got {url!r})")
    return process, url


def measure(url: str, streams: int, seconds: float, workdir: Path) -> dict[str, float]:
    """One locust run at ``streams`` users; the summary's TTFT and ITL statistics."""
    name = f"accuracy-{streams}"
    spawn_rate = max(1, streams // 2)
    locustfile = workdir / "accuracy_locustfile.py"
    locustfile.write_text(
        ACCURACY_LOCUSTFILE.format(loadtests=str(LOCUSTFILE.parent), period_s=PERIOD_S), encoding="utf-8"
    )
    command = pinned(
        1,
        locust_command(
            url,
            locustfile=locustfile,
            users=streams,
            spawn_rate=spawn_rate,
            run_time=f"{seconds:g}s",
            report_dir=workdir,
            run_name=name,
            processes=None,
            extra=[
                "--prompt-tokens",
                "16",
                "--output-tokens",
                str(OUTPUT_TOKENS),
                "--ignore-eos",
                "on",
                "--budget-requests",
                "1000000",
                "--plots",
                "off",
                "AccuracyUser",
            ],
        ),
    )
    env = {
        **os.environ,
        "GATECHECK_API_KEY": DEMO_KEY,
        "ACCURACY_CLIENT_LOG": str(workdir / f"client-{streams}.log"),
    }
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    summary_path = workdir / f"{name}.json"
    if not summary_path.exists():
        raise RuntimeError(f"locust wrote no summary ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(summary_path.read_text())
    ttft, itl, ttfb = (summary["metrics"][k] for k in ("ttft_ms", "itl_ms", "ttfb_ms"))
    return {
        "requests": summary["requests"]["ok"],
        "failed": summary["requests"]["failed"],
        "ttft_p50": ttft["p50"] - TTFT_MS,
        "ttft_p99": ttft["p99"] - TTFT_MS,
        "itl_p50": itl["p50"] - ITL_MS,
        "itl_p99": itl["p99"] - ITL_MS,
        "ttfb_p50": ttfb["p50"],
        "ttfb_p99": ttfb["p99"],
    }


def split_ttft(server_log: Path, client_log: Path) -> dict[str, float]:
    """Per request after the spawn: the TTFT error as gatecheck measured it, and its parts: arrival,
    server lateness and client lateness (ms), p50/p99."""
    server: dict[str, tuple[int, int, int]] = {}
    for line in server_log.read_text(encoding="ascii").splitlines():
        request_id, *stamps = line.split()
        server[request_id] = (int(stamps[0]), int(stamps[1]), int(stamps[2]))
    client = [
        (rid, int(start), int(first))
        for rid, start, first in map(str.split, client_log.read_text("ascii").splitlines())
    ]
    begin = min((start for _, start, _ in client), default=0)
    parts: dict[str, list[float]] = {"ttft": [], "arrival": [], "server_late": [], "client_late": []}
    for request_id, start, first in client:
        if not first or start - begin < STEADY_AFTER_NS:
            continue
        parts["ttft"].append((first - start) / 1e6 - TTFT_MS)
        if request_id not in server:
            continue
        arrived, deadline, written = server[request_id]
        parts["arrival"].append((arrived - start) / 1e6)
        parts["server_late"].append((written - deadline) / 1e6)
        parts["client_late"].append((first - written) / 1e6)
    result: dict[str, float] = {"requests": len(parts["ttft"])}
    for key, values in parts.items():
        for pct in (50, 99):
            result[f"{key}_p{pct}"] = percentile(values, pct) if values else float("nan")
    return result


def main() -> None:
    if sys.argv[1:2] == ["--serve-logged"]:  # the gateway subprocess of start_gateway
        sys.exit(serve_logged(sys.argv[2], sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each run (default 10)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 64, 256], help="concurrency levels")
    args = parser.parse_args()
    rows = []
    splits = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server_log = workdir / "server.log"
        gateway, url = start_gateway(server_log)
        try:
            for streams in args.streams:
                stolen0, t0 = steal_seconds((0, 1)), time.perf_counter()
                figures = measure(url, streams, args.seconds, workdir)
                figures["stolen"] = (steal_seconds((0, 1)) - stolen0) / (2 * (time.perf_counter() - t0))
                rows.append((streams, figures))
        finally:
            gateway.terminate()
            gateway.wait(timeout=10)
        for streams in args.streams:
            splits.append((streams, split_ttft(server_log, workdir / f"client-{streams}.log")))
    print(
        f"measured minus injected (TTFT {TTFT_MS:g} ms, ITL {ITL_MS:g} ms), ms; {args.seconds:g} s per level"
    )
    print("TTFB: response headers, which the gateway sends as its handler starts (after any queueing)")
    heads = ("TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "TTFB p50", "TTFB p99")
    print(f"{'streams':>8}{'requests':>10}{'failed':>8}" + "".join(f"{h:>10}" for h in heads) + "    stolen")
    keys = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "ttfb_p50", "ttfb_p99")
    for streams, r in rows:
        print(
            f"{streams:>8}{r['requests']:>10.0f}{r['failed']:>8.0f}"
            + "".join(f"{r[k]:>10.2f}" for k in keys)
            + f"{r['stolen']:>10.1%}"
            + ("  (noisy neighbour: rerun)" if r["stolen"] > 0.02 else "")
        )
    print("targets: TTFT p99 error < 2 ms at 64 streams, < 5 ms at 256")
    print()
    print("After the spawn (requests started after the first 2 s): TTFT error and its parts, ms")
    print("  arrival: client start -> request at the gateway; server late: first output write - deadline;")
    print("  client late: gatecheck's stamp - the gateway's write (the measurement error proper)")
    split_heads = ("TTFT p50", "TTFT p99", "arr p50", "arr p99", "srv p50", "srv p99", "cli p50", "cli p99")
    print(f"{'streams':>8}{'requests':>10}" + "".join(f"{h:>10}" for h in split_heads))
    split_keys = [
        f"{part}_p{pct}" for part in ("ttft", "arrival", "server_late", "client_late") for pct in (50, 99)
    ]
    for streams, r in splits:
        print(f"{streams:>8}{r['requests']:>10.0f}" + "".join(f"{r[k]:>10.2f}" for k in split_keys))


if __name__ == "__main__":
    main()

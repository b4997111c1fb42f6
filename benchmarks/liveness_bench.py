"""Figures: how long ``gatecheck conform`` takes against targets that stall, die or are misconfigured.

Run as a script from any directory (``python benchmarks/liveness_bench.py [case ...]``); every
server binds 127.0.0.1 and is stopped at the end. Cases:

- ``preflight``: the time to the exit-2 message for each configuration mistake (connection
  refused, a host name that does not resolve, an HTML page, a 401 to the key, no key for a remote
  URL);
- ``stall``: the whole suite against the reference gateway behind a proxy that passes every
  response through but stops every stream after its first chunk (and keeps it open);
- ``dies``: the whole suite against the reference gateway behind a proxy that serves a few
  requests (``SERVED_BEFORE_DEATH``: the preflight's and the first checks') and then stops
  listening (every later connection is refused);
- ``hangs``: the same, but then the proxy accepts connections and never answers;
- ``faithful``: the same proxy passing everything through (the suite's own time, for comparison).

Each case prints the exit code, the wall time and the lines that say why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
from aiohttp import web

from gatecheck.checks.session import EMBEDDED_LIMITS_KEY, EMBEDDED_MAIN_KEY, embedded_gateway_config
from gatecheck.reference import start_in_thread

_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
STALL_HOLD_S = 600.0
"""How long a stalled stream is held open (the proxy is stopped long before)."""
SERVED_BEFORE_DEATH = 6
"""Requests a dying or hanging proxy serves first by default: the preflight's (2) and a few checks'."""


class Proxy:
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` that misbehaves in one way (``mode``).

    ``stall``: every event stream stops after its first chunk and stays open. ``dies``: after
    ``served_before_death`` requests the listening socket is closed. ``hangs``: after those, every
    request is accepted and never answered.
    """

    def __init__(self, upstream: str, mode: str, served_before_death: int = SERVED_BEFORE_DEATH) -> None:
        self.upstream = upstream
        self.mode = mode
        self.served_before_death = served_before_death
        self.served = 0
        self.url = ""
        self._dead = False
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._site = site
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            self._session = session
            self._ready.set()
            await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._dead and request.transport is not None:  # a kept-alive connection of a crashed server
            request.transport.abort()
            return web.Response()
        if self.served >= self.served_before_death and self.mode == "hangs":
            await asyncio.sleep(STALL_HOLD_S)
        self.served += 1
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(
            request.method, self.upstream + request.rel_url.path_qs, headers=headers, data=body
        ) as upstream:
            out = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_HEADERS:
                    out.headers[name] = value
            await out.prepare(request)
            stream = upstream.headers.get("content-type", "").startswith("text/event-stream")
            if stream and self.mode == "stall":
                await out.write(await upstream.content.readany())
                await asyncio.sleep(STALL_HOLD_S)
            async for piece in upstream.content.iter_any():
                await out.write(piece)
            await out.write_eof()
        if self.mode == "dies" and self.served == self.served_before_death:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._die()))
        return out

    async def _die(self) -> None:
        """Stop listening and drop every open connection, as a crashed server would."""
        await self._site.stop()
        self._dead = True


@contextmanager
def gateway_behind(mode: str, served_before_death: int = SERVED_BEFORE_DEATH) -> Iterator[str]:
    """The reference gateway (the suite's embedded configuration) behind a ``mode`` proxy; its URL."""
    with (
        start_in_thread(embedded_gateway_config()) as gateway,
        Proxy(gateway.url, mode, served_before_death) as proxy,
    ):
        yield proxy.url


def conform(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float, str]:
    """Run ``gatecheck conform`` in a subprocess: exit code, wall seconds, stdout + stderr."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gatecheck.cli", "conform", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def suite_env(**extra: str) -> dict[str, str]:
    """The environment of a run on the embedded gateway's keys (none of the user's GATECHECK_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    keys = {"GATECHECK_API_KEY": EMBEDDED_MAIN_KEY, "GATECHECK_API_KEY_2": EMBEDDED_LIMITS_KEY}
    return {**env, **keys, **extra}


SUITE_ARGS = ["--rpm", "1000000", "--tpm", "1000000000", "--rpm-2", "5", "--tpm-2", "600", "-q"]
"""The embedded gateway's limits: the main key is never limited, the second key has 5 RPM / 600 TPM."""


def whole_suite(mode: str, extra: list[str], cwd: Path, served: int) -> None:
    with gateway_behind(mode, served) as url:
        code, seconds, output = conform(["--base-url", url, *SUITE_ARGS, *extra], suite_env(), cwd)
    lines = [line for line in output.splitlines() if line.strip()]
    after = f" after {served} requests" if mode in ("dies", "hangs") else ""
    print(f"{mode}{after}: exit {code} in {seconds:.1f} s")
    for line in lines[:4]:
        print(f"    {line[:160]}")
    results_file = cwd / "reports" / "conformance" / "results.json"
    if code != 2 and results_file.exists():
        results = json.loads(results_file.read_text())["results"]
        slowest = sorted(results, key=lambda r: -r["duration_s"])[:6]
        print("    slowest: " + ", ".join(f"{r['check_id']} {r['duration_s']:.1f} s" for r in slowest))
        for reason in sorted({r["message"] for r in results if r["verdict"] == "SKIP"}):
            print(f"    SKIP x{sum(r['message'] == reason for r in results)}: {reason[:140]}")


def preflight_cases(cwd: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_GET(self) -> None:
            html = self.server.server_port == html_port  # type: ignore[attr-defined]
            body = b"<html><body>Welcome</body></html>" if html else b'{"error":{"message":"bad key"}}'
            self.send_response(200 if html else 401)
            self.send_header("Content-Type", "text/html" if html else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
    html_port, key_port = (s.server_port for s in servers)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    refused = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    refused_port = refused.server_port
    refused.server_close()
    cases = {
        "refused": ([f"--base-url=http://127.0.0.1:{refused_port}"], {}),
        "dns": (["--base-url=http://gatecheck-bench.invalid"], {"GATECHECK_API_KEY": "sk-bench"}),
        "html": ([f"--base-url=http://127.0.0.1:{html_port}"], {}),
        "401": ([f"--base-url=http://127.0.0.1:{key_port}"], {"GATECHECK_API_KEY": "sk-bench"}),
        "no key (remote URL)": (["--base-url=https://gw.example.com"], {}),
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    try:
        for name, (args, env) in cases.items():
            code, seconds, output = conform(args, {**base, **env}, cwd)
            message = output.strip().splitlines()[-1] if output.strip() else ""
            print(f"preflight {name}: exit {code} in {seconds:.2f} s: {message[:150]}")
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("cases", nargs="*", default=["preflight", "faithful", "stall", "dies", "hangs"])
    parser.add_argument("--extra", default="", help="more conform arguments, space separated")
    parser.add_argument(
        "--served",
        type=int,
        default=SERVED_BEFORE_DEATH,
        help="requests a dying or hanging target serves first",
    )
    options = parser.parse_args()
    extra = options.extra.split()
    with TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for case in options.cases:
            if case == "preflight":
                preflight_cases(cwd)
            else:
                whole_suite(case, extra, cwd, options.served)


if __name__ == "__main__":
    main()

"""Running the reference gateway: in a daemon thread (tests, embedded target) or in the foreground.

The listening socket is bound by the caller before anything else, so a port in use fails at once
and port 0 is resolved before ``start_in_thread`` returns. ``stop()`` closes the socket, ends
every open stream and joins the thread, in well under a second.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Protocol

from aiohttp import web

from gatecheck.reference.arrival import stamping
from gatecheck.reference.config import GatewayConfig
from gatecheck.reference.server import Gateway

SHUTDOWN_GRACE_S = 0.25
"""How long stopping waits for in-flight requests before cancelling them."""

_STOP_TIMEOUT_S = 5.0


class PreciseEpollSelector(selectors.EpollSelector):
    """epoll that wakes the loop on time for sub-millisecond deadlines.

    ``epoll_wait`` counts whole milliseconds and CPython rounds a timeout up, so every loop timer
    fired 0-1 ms late (0.5 ms on average: most of the gateway's TTFT error). Here a timeout is
    rounded down to whole milliseconds, and a sub-millisecond rest is slept (``clock_nanosleep``)
    before one poll that does not wait. Input arriving during such a rest waits for it (< 1 ms);
    requests are stamped on arrival (``arrival``), so their deadlines do not move. At 256 shaped
    streams this costs a tenth more CPU (59% -> 68% of the core) and took the p99 shaping error
    from +4.2 to +1.4 ms (TTFT) and +2.6 to +1.3 ms (ITL); see benchmarks/gateway_bench.py.
    """

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:
            return super().select(timeout)
        whole_ms = math.floor(timeout * 1000)
        if whole_ms:
            return super().select(whole_ms / 1000)
        time.sleep(timeout)
        return super().select(0)


def new_loop() -> asyncio.AbstractEventLoop:
    """The gateway's event loop: asyncio's, with a precise selector where epoll is the default."""
    if selectors.DefaultSelector is getattr(selectors, "EpollSelector", None):
        return asyncio.SelectorEventLoop(PreciseEpollSelector())
    return asyncio.new_event_loop()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port) that stamps request arrivals."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return stamping(socket.create_server((host, port), family=family, backlog=1024))


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def start_site(config: GatewayConfig, sock: socket.socket) -> tuple[Gateway, web.AppRunner]:
    """Serve ``config`` on ``sock`` in the running loop; returns what ``stop_site`` needs.

    aiohttp's own sites would serve its protocol as is; the gateway's connections are wrapped by
    its connection guard (idle, header and body timeouts), so the server is created here.
    """
    gateway = Gateway(config)
    runner = web.AppRunner(
        gateway.app(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        handler_cancellation=True,
        # The guard closes idle connections; aiohttp's own timer (75 s before 3.10) must not do it first.
        keepalive_timeout=config.idle_timeout_seconds + config.header_timeout_seconds,
    )
    await runner.setup()
    assert runner.server is not None  # set by setup()
    loop = asyncio.get_running_loop()
    gateway.listener = await loop.create_server(
        gateway.guard.protocols(runner.server), sock=sock, backlog=1024
    )
    gateway.guard.start(loop)
    return gateway, runner


class Served(Protocol):
    """What a site serves (``Gateway``, the upstream harness): it knows how to stop serving."""

    async def stop_serving(self, runner: web.AppRunner) -> None: ...


SiteStarter = Callable[[GatewayConfig, socket.socket], Awaitable[tuple[Served, web.AppRunner]]]
"""Serves a configuration on a bound socket in the running loop: ``start_site`` or another server's."""


async def stop_site(served: Served, runner: web.AppRunner) -> None:
    """Close the listening socket, end held streams, finish or cancel in-flight requests."""
    await served.stop_serving(runner)


class RunningGateway:
    """A gateway serving from its own event loop in a daemon thread; a context manager."""

    def __init__(
        self,
        config: GatewayConfig,
        url: str,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        stopper: Callable[[], None],
    ) -> None:
        self.config = config
        self.url = url
        self._loop = loop
        self._thread = thread
        self._stopper = stopper
        self._stopped = False

    def __repr__(self) -> str:
        return f"RunningGateway(url={self.url!r}, faults={sorted(self.config.faults)})"

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopper()
        self._thread.join(_STOP_TIMEOUT_S)

    def __enter__(self) -> RunningGateway:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_in_thread(config: GatewayConfig | None = None, *, site: SiteStarter = start_site) -> RunningGateway:
    """Start a gateway on ``config.host:config.port`` in a daemon thread; returns once it listens.

    ``site`` serves something else with the same machinery (the upstream harness).
    """
    config = config or GatewayConfig()
    sock = bind(config.host, config.port)
    url = url_of(sock)
    loop = new_loop()
    started: Future[tuple[Served, web.AppRunner]] = Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(site(config, sock)))
        except BaseException as exc:
            started.set_exception(exc)
            sock.close()
            loop.close()
            return
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=serve, name=f"gatecheck-gateway-{url}", daemon=True)
    thread.start()
    gateway, runner = started.result(_STOP_TIMEOUT_S)

    def stopper() -> None:
        done = asyncio.run_coroutine_threadsafe(stop_site(gateway, runner), loop)
        try:
            done.result(_STOP_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    return RunningGateway(config, url, loop, thread, stopper)

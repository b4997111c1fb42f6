"""Running the reference gateway: in a daemon thread (tests, embedded target) or in the foreground.

The listening socket is bound by the caller before anything else, so a port in use fails at once
and port 0 is resolved before ``start_in_thread`` returns. ``stop()`` closes the socket, ends
every open stream and joins the thread, in well under a second.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType

from aiohttp import web

from gatecheck.reference.config import GatewayConfig
from gatecheck.reference.server import Gateway

SHUTDOWN_GRACE_S = 0.25
"""How long stopping waits for in-flight requests before cancelling them."""

_STOP_TIMEOUT_S = 5.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def start_site(config: GatewayConfig, sock: socket.socket) -> tuple[Gateway, web.AppRunner]:
    """Serve ``config`` on ``sock`` in the running loop; returns what ``stop_site`` needs."""
    gateway = Gateway(config)
    runner = web.AppRunner(
        gateway.app(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        handler_cancellation=True,
    )
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    return gateway, runner


async def stop_site(gateway: Gateway, runner: web.AppRunner) -> None:
    """Close the listening socket, end held streams, finish or cancel in-flight requests."""
    gateway.close()
    await runner.cleanup()


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


def start_in_thread(config: GatewayConfig | None = None) -> RunningGateway:
    """Start a gateway on ``config.host:config.port`` in a daemon thread; returns once it listens."""
    config = config or GatewayConfig()
    sock = bind(config.host, config.port)
    url = url_of(sock)
    loop = asyncio.new_event_loop()
    started: Future[tuple[Gateway, web.AppRunner]] = Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(start_site(config, sock)))
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

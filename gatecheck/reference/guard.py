"""Connection deadlines: a connection that sends nothing, or sends its request too slowly, is closed.

aiohttp's server waits as long as a client likes for a first request, and for the rest of a request
head or body that trickles in a byte at a time (its keep-alive timer, where it has one, only runs
between requests); every such connection holds a socket, a task and its buffers. Here each
connection's protocol is wrapped in a ``GuardedProtocol`` that notes when bytes arrive, the
gateway's handlers say when they read a body and when they are done, and one periodic sweep per
gateway closes the connections past their deadline:

- a new connection: its first request head must be complete ``header_timeout`` after it opened;
- between requests (its last answer given): idle for at most ``idle_timeout``; once a byte of the
  next request arrives, its head must be complete within ``header_timeout`` of that byte;
- while a body is read: complete within ``body_timeout`` of the start of the read (a body waiting
  for the gateway, not for the client, is not timed);
- while a handler answers (a stream may take minutes): no deadline.

The sweep runs every quarter of the shortest timeout (at most once a second), so a deadline is
enforced within that much of passing; one pass over the open connections costs about 0.1 µs each.
Closing aborts the transport: nobody is waiting for an answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import cast

from aiohttp import web

MAX_SWEEP_S = 1.0


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the deadline the sweep enforces."""

    __slots__ = ("_guard", "_inner", "_transport", "_waiting_for_head", "deadline")

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._waiting_for_head = False
        self.deadline = math.inf

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._guard.open[transport] = self
        self.deadline = time.monotonic() + self._guard.header_timeout
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._waiting_for_head:
            self._waiting_for_head = False
            self.deadline = time.monotonic() + self._guard.header_timeout
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.open.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- what the handlers say ----------------------------------------------------------------

    def answering(self) -> None:
        """A request's head is in and its handler runs: no deadline until it is done."""
        self._waiting_for_head = False
        self.deadline = math.inf

    def reading_body(self) -> None:
        """The handler starts reading the body: it must be in within the body timeout."""
        self.deadline = time.monotonic() + self._guard.body_timeout

    def idle(self) -> None:
        """The handler is done: the connection may wait for a next request (keep-alive)."""
        self._waiting_for_head = True
        self.deadline = time.monotonic() + self._guard.idle_timeout

    def expire(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class ConnectionGuard:
    """The deadlines of one gateway's connections and the sweep that enforces them."""

    def __init__(self, header_timeout: float, idle_timeout: float, body_timeout: float) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.open: dict[asyncio.BaseTransport, GuardedProtocol] = {}
        self._interval = min(MAX_SWEEP_S, header_timeout / 4, idle_timeout / 4, body_timeout / 4)
        self._timer: asyncio.TimerHandle | None = None

    def protocols(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], GuardedProtocol]:
        """A protocol factory wrapping each protocol ``inner`` makes (for ``loop.create_server``)."""
        return lambda: GuardedProtocol(inner(), self)

    def of(self, request: web.BaseRequest) -> GuardedProtocol | None:
        """The guarded connection ``request`` came on (None when served without the guard)."""
        transport = request.transport
        return self.open.get(transport) if transport is not None else None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start sweeping in ``loop`` (the one serving the connections)."""
        self._timer = loop.call_later(self._interval, self._sweep, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for connection in [c for c in self.open.values() if c.deadline <= now]:
            connection.expire()
        self._timer = loop.call_later(self._interval, self._sweep, loop)

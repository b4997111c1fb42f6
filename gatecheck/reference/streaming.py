"""Writing a stream: absolute deadlines per token, one SSE event per transport write.

The hot path of the gateway. ``TimedWriter`` writes each event from an event-loop callback at
its deadline (``loop.call_later``), straight to the transport as one HTTP/1.1 chunk: no future,
task switch or coroutine layer per event, and no drain awaited. Compared with ``await
StreamResponse.write`` after ``await asyncio.sleep`` this halves the CPU per event and writes in
the very callback that wakes up, one loop iteration earlier (see benchmarks/gateway_bench.py).

Deadlines use ``time.monotonic`` (the asyncio loop's clock, at full resolution) and are absolute:
``t0 + ttft + k * itl``; a late wake-up delays one event, never the ones after it. Events already
due are written back to back, ``BATCH`` at a time before yielding to other streams. A reader that
does not keep up (the transport's buffer over its high-water mark) is waited for with aiohttp's
``drain``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Iterator

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

Event = tuple[int, bytes]

BATCH = 64
KEEP_OPEN_POLL_S = 0.05


class Schedule:
    """Absolute deadlines of token steps: ``t0 + ttft + k * itl``, each gap jittered if asked."""

    def __init__(self, t0: float, ttft: float, itl: float, jitter: float, rng: random.Random | None) -> None:
        self._t0 = t0
        self._itl = itl
        self._jitter = jitter if rng is not None else 0.0
        self._rng = rng
        self._first = t0 + self._gap(ttft)
        self._step = 0
        self._at = self._first

    def _gap(self, base: float) -> float:
        if self._rng is None or not self._jitter:
            return base
        return max(0.0, base + self._rng.uniform(-self._jitter, self._jitter))

    def at(self, step: int) -> float:
        """The deadline of ``step`` (-1: at once); jittered steps must be asked in non-decreasing order."""
        if step < 0:
            return self._t0
        if not self._jitter:
            return self._first + step * self._itl
        while self._step < step:
            self._at += self._gap(self._itl)
            self._step += 1
        return self._at


async def sleep_until(deadline: float) -> None:
    """Sleep to an absolute ``time.monotonic`` deadline (no-op when it has passed)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def burst(events: Iterable[Event]) -> list[Event]:
    """The ``stream-burst`` fault: every event joined into one, sent at the last event's deadline."""
    collected = list(events)
    last = max((step for step, _ in collected), default=-1)
    return [(last, b"".join(data for _, data in collected))]


class TimedWriter:
    """Writes ``(step, event)`` pairs of a prepared response at their deadlines, from loop callbacks."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        payload: AbstractStreamWriter,
        schedule: Schedule,
        events: Iterable[Event],
    ) -> None:
        self._transport = request.transport
        self._chunked = response.chunked
        self._payload = payload
        self._schedule = schedule
        self._events: Iterator[Event] = iter(events)
        self._pending: Event | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.Handle | None = None
        self._wake: asyncio.Future[bool] = self._loop.create_future()

    @staticmethod
    def prepare_chunked(request: web.Request, response: web.StreamResponse) -> None:
        """Ask for chunked encoding before ``prepare`` when the client speaks HTTP/1.1."""
        if request.version >= (1, 1):
            response.enable_chunked_encoding()

    async def run(self) -> None:
        """Write everything; raises ``ConnectionResetError`` if the client leaves first."""
        try:
            while True:
                self._wake = self._loop.create_future()
                self._fire()
                if not await self._wake:
                    return
                await self._payload.drain()  # the transport paused writing: a slow reader
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _fire(self) -> None:
        self._timer = None
        try:
            self._write_due()
        except Exception as exc:  # a failure must end run(), not vanish in a loop callback
            if not self._wake.done():
                self._wake.set_exception(exc)

    def _write_due(self) -> None:
        """Write what is due (at most BATCH), then arm a timer for what is next.

        Resolves ``_wake`` with False at the end of the stream, True when the transport's buffer is
        over its high-water mark (then ``run`` drains and calls again).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        high_water = transport.get_write_buffer_limits()[1]
        for _ in range(BATCH):
            if self._pending is None:
                self._pending = next(self._events, None)
                if self._pending is None:
                    self._wake.set_result(False)
                    return
            step, data = self._pending
            delay = self._schedule.at(step) - time.monotonic()
            if delay > 0:
                self._timer = self._loop.call_later(delay, self._fire)
                return
            if transport.get_write_buffer_size() > high_water:
                self._wake.set_result(True)
                return
            transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
            self._pending = None
        self._timer = self._loop.call_soon(self._fire)


async def hold_open(request: web.Request, seconds: float, closing: Callable[[], bool]) -> None:
    """The ``sse-keep-open`` fault: keep the connection after the end until the client leaves (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not closing():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(KEEP_OPEN_POLL_S)

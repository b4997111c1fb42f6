"""Writing a stream: absolute deadlines per token, every stream of a loop woken by one timer.

The hot path of the gateway. A ``Pacer`` keeps the next deadline of every open stream in one heap
(tuples compared in C) behind a single ``loop.call_at`` timer; when it fires, each stream that is
due writes what is due straight to the transport, as one HTTP/1.1 chunk. Compared with a timer
per event (``call_later``: a ``TimerHandle`` per event, compared in Python inside asyncio's heap)
this takes a quarter off the gateway's CPU at 256 shaped streams, and events of one stream due at
the same time (the last token, the finish chunk and ``[DONE]``) cost one send instead of three.
No future, task switch or coroutine layer per event, and no drain awaited unless a reader lags.

Deadlines use ``time.monotonic`` (the asyncio loop's clock, at full resolution) and are absolute:
``t0 + ttft + k * itl``; a late wake-up delays one event, never the ones after it. A stream writes
at most ``BATCH`` events per wake-up before yielding to the others. A reader that does not keep up
(the transport's buffer over its high-water mark) is waited for with aiohttp's ``drain``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
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


class Pacer:
    """Wakes the streams of one event loop at their deadlines, from a single timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, TimedWriter]] = []
        self._order = itertools.count()  # ties never compare writers
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._waking = False

    def wake_at(self, deadline: float, writer: TimedWriter) -> None:
        """Call ``writer.fire()`` at ``deadline`` (at the next wake-up if it has passed)."""
        heapq.heappush(self._heap, (deadline, next(self._order), writer))
        if deadline < self._armed_for and not self._waking:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        self._timer = self._loop.call_at(deadline, self._wake)

    def _wake(self) -> None:
        """Fire every stream due now; streams that ask again wait for the next wake-up."""
        self._timer, self._armed_for = None, math.inf
        heap = self._heap
        now = time.monotonic()
        due = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        self._waking = True
        try:
            for writer in due:
                writer.fire()
        finally:
            self._waking = False
            if heap:
                self._arm(heap[0][0])


class TimedWriter:
    """Writes ``(step, event)`` pairs of a prepared response at their deadlines, woken by a pacer."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        payload: AbstractStreamWriter,
        schedule: Schedule,
        events: Iterable[Event],
        pacer: Pacer,
    ) -> None:
        self._transport = request.transport
        self._chunked = response.chunked
        self._payload = payload
        self._schedule = schedule
        self._events: Iterator[Event] = iter(events)
        self._pending: Event | None = None
        self._pacer = pacer
        self._loop = asyncio.get_running_loop()
        self._wake: asyncio.Future[bool] = self._loop.create_future()
        self._finished = False

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
                self.fire()
                if not await self._wake:
                    return
                await self._payload.drain()  # the transport paused writing: a slow reader
        finally:
            self._finished = True  # a wake-up still queued in the pacer is ignored

    def fire(self) -> None:
        """Write what is due; a failure ends ``run()`` instead of vanishing in a loop callback."""
        if self._finished or self._wake.done():
            return
        try:
            self._write_due()
        except Exception as exc:
            self._wake.set_exception(exc)

    def _write_due(self) -> None:
        """Write what is due (at most BATCH events, in one send), then ask the pacer for the next.

        Resolves ``_wake`` with False at the end of the stream, True when the transport's buffer is
        over its high-water mark (then ``run`` drains and fires again).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            self._wake.set_result(True)
            return
        now = time.monotonic()
        due: list[bytes] = []
        deadline = now
        while len(due) < BATCH:
            if self._pending is None:
                self._pending = next(self._events, None)
                if self._pending is None:
                    break
            deadline = self._schedule.at(self._pending[0])
            if deadline > now:
                break
            due.append(self._pending[1])
            self._pending = None
        if due:
            data = b"".join(due)
            transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        if self._pending is None and len(due) < BATCH:
            self._wake.set_result(False)
        else:
            self._pacer.wake_at(deadline, self)


async def hold_open(request: web.Request, seconds: float, closing: Callable[[], bool]) -> None:
    """The ``sse-keep-open`` fault: keep the connection after the end until the client leaves (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not closing():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(KEEP_OPEN_POLL_S)


def cut_off(request: web.Request) -> None:
    """The ``stream-cut`` and ``stream-stall`` faults: close the connection without ending the body."""
    transport = request.transport
    if transport is not None:
        transport.close()

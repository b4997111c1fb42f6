"""The gateway's timing machinery: arrival stamps, the pacer, the precise selector.

Timing assertions here are lower bounds or margins of hundreds of milliseconds: how exact the
shaping is under load is measured in benchmarks/gateway_bench.py, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest
from _gateway_helpers import CHAT, chat_body, stream

from gatecheck.reference import arrival
from gatecheck.reference.runner import PreciseEpollSelector, bind, new_loop
from gatecheck.reference.streaming import Pacer

linux_only = pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll is Linux-only")


def _request_on(conn: socket.socket) -> Any:
    """What ``arrived_at`` reads of an aiohttp request: its transport's socket."""
    return SimpleNamespace(transport=SimpleNamespace(get_extra_info=lambda name: conn))


def test_accepted_connections_note_when_bytes_arrived_not_when_they_were_read() -> None:
    """Even a request that arrived before its connection was accepted (a busy gateway)."""
    with bind("127.0.0.1", 0) as listener:
        assert isinstance(listener, arrival.StampingListener)
        with socket.create_connection(listener.getsockname()) as client:
            sent = time.monotonic()
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            time.sleep(0.05)
            conn, _ = listener.accept()
            with conn:
                assert isinstance(conn, arrival.StampedConnection)
                assert conn.recv(4096) == b"GET / HTTP/1.1\r\n\r\n"
                read = time.monotonic()
                arrived = arrival.arrived_at(_request_on(conn))
                fd = conn.fileno()
            assert fd not in arrival._ARRIVALS  # closing forgets the connection
    assert sent - 0.001 <= arrived <= sent + 0.02, arrived - sent
    assert read - arrived >= 0.04


def test_an_unstamped_request_arrives_now() -> None:
    before = time.monotonic()
    assert before <= arrival.arrived_at(_request_on(None)) <= time.monotonic()


def test_deadlines_start_when_the_request_arrives_not_when_the_loop_gets_to_it(gateway: Any) -> None:
    """The gateway's loop is stuck for 300 ms as the request comes in: the first token still
    comes 400 ms after the request was sent, not 700 ms."""
    gw = gateway(ttft_ms=400)
    gw._loop.call_soon_threadsafe(time.sleep, 0.3)
    streamed = stream(gw, CHAT, chat_body("a b c", max_tokens=2, stream=True))
    first = next(
        e.t_ns
        for e in streamed.events
        if e.data != "[DONE]" and json.loads(e.data)["choices"][0]["delta"].get("content")
    )
    ttft_ms = (first - streamed.t_start_ns) / 1e6
    assert 400 <= ttft_ms < 600, ttft_ms


class _Recorder:
    """A stand-in for a TimedWriter: notes when the pacer fires it; may ask again from ``fire``."""

    def __init__(self, name: str, log: list[tuple[str, float]], pacer: Pacer, again: int = 0) -> None:
        self.name, self.log, self.pacer, self.again = name, log, pacer, again

    def fire(self) -> None:
        self.log.append((self.name, time.monotonic()))
        if self.again:
            self.again -= 1
            asyncio.get_running_loop().call_soon(self.log.append, ("other callback", 0.0))
            self.pacer.wake_at(0.0, self)  # long past: due at once


def test_the_pacer_fires_each_writer_at_its_deadline_in_deadline_order() -> None:
    async def scenario() -> tuple[list[tuple[str, float]], dict[str, float]]:
        pacer = Pacer(asyncio.get_running_loop())
        log: list[tuple[str, float]] = []
        now = time.monotonic()
        deadlines = {"late": now + 0.06, "early": now + 0.02, "middle": now + 0.04}
        for name, deadline in deadlines.items():
            pacer.wake_at(deadline, _Recorder(name, log, pacer))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        return log, deadlines

    log, deadlines = asyncio.run(scenario())
    assert [name for name, _ in log] == ["early", "middle", "late"]
    assert all(at >= deadlines[name] for name, at in log)


def test_a_writer_due_again_at_once_lets_other_callbacks_run_first() -> None:
    """A stream with more due events than one batch does not starve the loop."""

    async def scenario() -> list[str]:
        pacer = Pacer(asyncio.get_running_loop())
        log: list[tuple[str, float]] = []
        pacer.wake_at(0.0, _Recorder("stream", log, pacer, again=2))  # type: ignore[arg-type]
        await asyncio.sleep(0.02)
        return [name for name, _ in log]

    assert asyncio.run(scenario()) == ["stream", "other callback", "stream", "other callback", "stream"]


@linux_only
def test_the_precise_selector_sleeps_out_sub_millisecond_timeouts() -> None:
    with PreciseEpollSelector() as selector:
        started = time.perf_counter()
        assert selector.select(0.0004) == []
        assert time.perf_counter() - started >= 0.0004


@linux_only
def test_the_precise_selector_still_reports_ready_sockets_at_once() -> None:
    left, right = socket.socketpair()
    with left, right, PreciseEpollSelector() as selector:
        selector.register(left, selectors.EVENT_READ)
        right.send(b"x")
        started = time.perf_counter()
        ready = selector.select(5.0)
        assert time.perf_counter() - started < 1.0
        assert [key.fileobj for key, _ in ready] == [left]


@linux_only
def test_the_gateway_loop_uses_the_precise_selector() -> None:
    loop = new_loop()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert isinstance(loop._selector, PreciseEpollSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()

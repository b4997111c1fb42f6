"""The time a conformance run sees: the system's, or a replay's virtual one.

Checks, the session and the pacer read time and sleep through this module (``clock.monotonic()``,
``clock.perf_counter_ns()``, ``clock.time()``, ``clock.sleep()``), never through ``time`` directly
(tests/test_replay.py scans for it). Live, these are the ``time`` module's functions. During
``gatecheck replay`` a ``VirtualClock`` is installed: sleeping advances it at once, and each
replayed exchange moves it to the recorded instants of that exchange, so a check computes the same
waits, windows and gaps as it did live, in a fraction of the time and with the recorded stamps.

``perf_counter_ns`` and ``monotonic`` are one timeline (exchange stamps are ``perf_counter_ns``
values; the session's bookkeeping uses ``monotonic``), as they are on Linux.
"""

from __future__ import annotations

import math
import threading
import time as _time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Clock(Protocol):
    """What a run needs of time."""

    def monotonic(self) -> float: ...

    def perf_counter_ns(self) -> int: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real time."""

    def monotonic(self) -> float:
        return _time.monotonic()

    def perf_counter_ns(self) -> int:
        return _time.perf_counter_ns()

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        _time.sleep(seconds)


class VirtualClock:
    """A clock that only moves when told: by ``sleep`` and by ``reach`` (a replayed exchange's stamps).

    ``now_ns`` starts at the recorded run's first instant (``perf_counter_ns`` of the live run, so
    replayed stamps equal live ones); ``wall_s`` is the wall-clock time at that instant, so
    ``time()`` gives what the live run read (a reset time "in the future" stays in the future).
    Thread-safe: the rate-limit burst replays from several threads.
    """

    def __init__(self, now_ns: int, wall_s: float) -> None:
        self._start_ns = now_ns
        self._now_ns = now_ns
        self._wall_s = wall_s
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.perf_counter_ns() / 1e9

    def perf_counter_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def time(self) -> float:
        with self._lock:
            return self._wall_s + (self._now_ns - self._start_ns) / 1e9

    def sleep(self, seconds: float) -> None:
        # Rounded up, and at least a nanosecond: a caller that sleeps until a float instant (the
        # pacer: "until this ticket leaves the window") must get there, not loop a hair short of it.
        if seconds > 0:
            with self._lock:
                self._now_ns += max(1, math.ceil(seconds * 1e9))

    def reach(self, instant_ns: int) -> None:
        """Move forward to ``instant_ns`` (never back: concurrent exchanges overlap)."""
        with self._lock:
            self._now_ns = max(self._now_ns, instant_ns)


SYSTEM = SystemClock()
_current: Clock = SYSTEM


def monotonic() -> float:
    """Seconds on the run's monotonic clock."""
    return _current.monotonic()


def perf_counter_ns() -> int:
    """Nanoseconds on the same timeline (the stamps of an ``Exchange``)."""
    return _current.perf_counter_ns()


def time() -> float:
    """Wall-clock seconds since the epoch, as the run sees them."""
    return _current.time()


def sleep(seconds: float) -> None:
    """Wait ``seconds`` on the run's clock."""
    _current.sleep(seconds)


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the run's clock until exit (process-wide: one run at a time)."""
    global _current
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous

"""A client-side limiter shared by every check, so the suite never trips the limits it is testing.

The target declares its limits per key and minute (``--rpm``, ``--tpm``). ``Pacer`` keeps a sliding
log of what was sent in the last window and makes a caller wait until one more request (and its
token estimate) fits under a fraction of both limits. A sliding window is conservative for every
server-side algorithm: any fixed or sliding server window is also an interval our log covers.
After a 429, ``hold(seconds)`` makes every caller wait out the server's Retry-After. Each key has
its own pacer (its own declared limits). A wait of a second or more is announced through
``notify`` ("waiting 42 s: pacing under 60 rpm (key 1)"), so a quiet terminal is never a mystery.
Clock and sleep are injectable so tests run in virtual time.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gatecheck import clock as run_clock

NOTICE_MIN_S = 1.0
"""Waits at least this long are announced."""

HEADROOM = 0.9
"""The share of the declared limits the pacer fills."""

WINDOW_SLACK = 1.05
"""The pacer's window is the server's minute plus this much, absorbing the network delay."""


class PacingTimeout(Exception):
    """A request could not be paced in within the caller's bound."""


@dataclass(slots=True)
class Ticket:
    """One admitted request in the log; ``tokens`` may be corrected once usage is known."""

    t: float
    tokens: int


class Pacer:
    """Sliding-window limiter over requests and tokens, thread-safe."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        *,
        window_s: float = 60.0,
        headroom: float = HEADROOM,
        clock: Callable[[], float] = run_clock.monotonic,
        sleep: Callable[[float], None] = run_clock.sleep,
        label: str = "",
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < headroom <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self.rpm, self.tpm = rpm, tpm
        self._label = f" ({label})" if label else ""
        self._notify = notify
        self._max_requests = None if rpm is None else max(1, int(rpm * headroom))
        self._max_tokens = None if tpm is None else max(1, int(tpm * headroom))
        # A little longer than the server's minute absorbs the network delay between our send
        # time and its arrival time.
        self._window = window_s * WINDOW_SLACK
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._log: deque[Ticket] = deque()
        self._held_until = 0.0

    def describe(self) -> str:
        """The limits paced under, e.g. ``60 rpm / 100000 tpm (key 1)``."""
        limits = " / ".join(
            f"{n} {unit}" for n, unit in ((self.rpm, "rpm"), (self.tpm, "tpm")) if n is not None
        )
        return (limits or "no declared limits") + self._label

    def acquire(self, tokens: int, *, max_wait_s: float = 120.0) -> Ticket:
        """Block until one request of ``tokens`` fits, then log it; raise ``PacingTimeout`` past the bound."""
        deadline = self._clock() + max_wait_s
        while True:
            with self._lock:
                now = self._clock()
                wait, why = self._wait_needed(now, tokens)
                if wait <= 0:
                    ticket = Ticket(now, tokens)
                    self._log.append(ticket)
                    return ticket
            if now + wait > deadline:
                raise PacingTimeout(
                    f"waiting {wait:.1f}s for a request slot would pass the {max_wait_s:.0f}s bound"
                )
            if self._notify is not None and wait >= NOTICE_MIN_S:
                self._notify(f"waiting {wait:.0f} s: {why}{self._label}")
            self._sleep(wait)

    def settle(self, ticket: Ticket, tokens: int) -> None:
        """Replace a ticket's token estimate with what the response's usage says it cost."""
        with self._lock:
            ticket.tokens = max(0, tokens)

    def hold(self, seconds: float) -> None:
        """Make every caller wait ``seconds`` from now (the server said Retry-After)."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    def _wait_needed(self, now: float, tokens: int) -> tuple[float, str]:
        """Seconds until one more request of ``tokens`` fits, and what it waits for."""
        while self._log and self._log[0].t <= now - self._window:
            self._log.popleft()
        waits = [(self._held_until - now, "the target's Retry-After")]
        if self._max_requests is not None and len(self._log) >= self._max_requests:
            waits.append(
                (self._expiry(now, len(self._log) - self._max_requests), f"pacing under {self.rpm} rpm")
            )
        if self._max_tokens is not None and self._log:
            waits.append((self._token_wait(now, tokens, self._max_tokens), f"pacing under {self.tpm} tpm"))
        return max(waits, key=lambda w: w[0])

    def _expiry(self, now: float, index: int) -> float:
        """Seconds until log entry ``index`` (0 = oldest) leaves the window."""
        return self._log[index].t + self._window - now

    def _token_wait(self, now: float, tokens: int, limit: int) -> float:
        """Seconds until enough old tokens leave the window for ``tokens`` more (0 if they fit now)."""
        excess = sum(t.tokens for t in self._log) + tokens - limit
        if excess <= 0:
            return 0.0
        for index, ticket in enumerate(self._log):
            excess -= ticket.tokens
            if excess <= 0:
                return self._expiry(now, index)
        # Bigger than the whole budget on its own: admit it into an empty window.
        return self._expiry(now, len(self._log) - 1)

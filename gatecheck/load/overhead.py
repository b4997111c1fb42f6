"""Gateway overhead under load: what the gateway added between its provider and the client.

With ``--upstream URL`` the gateway under test calls the upstream harness (``gatecheck upstream``)
and the load run measures, per streamed request, what the gateway added:

- ``overhead_ms``: the client's arrival stamp of the first output event minus the harness's stamp of
  its first token write (one sample per request);
- ``chunk_overhead_ms``: for every content chunk, its arrival at the client minus the harness's write
  of the same chunk (the i-th output event against the i-th token write; one sample per chunk, the
  first included). It needs the harness's stamp of every write (``gatecheck upstream --log-writes``);
  a request whose chunk counts differ (the gateway merged or split chunks) is counted in
  ``chunk_mismatch`` and not measured per chunk.

Each streamed request carries a nonce ``gcnonce-<prefix><counter>`` in its prompt (prompts cross
gateways unchanged); the plugin polls the harness's log (``GET /_gatecheck/log?since=S&prefix=P``,
stamps only) and :class:`OverheadTracker` matches the two sides by nonce, whichever comes first.

One clock: the client's stamps are ``perf_counter_ns`` and the harness's ``monotonic_ns``, both
``CLOCK_MONOTONIC`` on Linux, so on one host the difference is a subtraction. :func:`clock_check`
verifies it against the harness's ``/_gatecheck/info`` clock (it must fall between two local
readings taken around the call). Across hosts the monotonic clocks are unrelated (each counts from
its own boot) and the control API answers loopback clients only: the overhead is then not measured,
with that reason. The gateway itself may be anywhere: only the load generator and the harness share
the clock. Nothing here imports locust or gevent.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gatecheck.load.stats import Overhead

NONCE_PREFIX = "gcnonce-"
PREFIX_HEX = 6
"""Hex digits of a process's nonce prefix (the rest of the nonce's 16 is a counter)."""
POLL_S = 1.0
"""How often a load process reads the harness's log."""
PAGE = 2000
"""Attempts read per call."""
MATCH_WINDOW_S = 30.0
"""How long one side waits for the other (the client's record for the harness's, or the reverse)."""
CLOCK_TRIES = 3
ACROSS_HOSTS = (
    "its monotonic clock is not this machine's: gateway overhead needs the load generator and the "
    "harness on one host (their clocks are otherwise unrelated)"
)


class NonceSource:
    """This process's nonces: a random prefix, then a counter (``gcnonce-`` + 16 hex digits)."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = NONCE_PREFIX + (prefix or secrets.token_hex(PREFIX_HEX // 2))
        self._counter = itertools.count(1)
        self._digits = 16 - (len(self.prefix) - len(NONCE_PREFIX))

    def next(self) -> str:
        """A fresh nonce."""
        return f"{self.prefix}{next(self._counter):0{self._digits}x}"


def clock_check(
    read_clock: Callable[[], int], now: Callable[[], int] = time.perf_counter_ns, tries: int = CLOCK_TRIES
) -> str | None:
    """None when the harness's clock is this process's ``perf_counter_ns`` clock (each of ``tries``
    readings falls between two local ones taken around it), else why not."""
    for _ in range(tries):
        before = now()
        theirs = read_clock()
        after = now()
        if not before <= theirs <= after:
            offset_s = (theirs - before) / 1e9
            return f"{ACROSS_HOSTS} (it read {offset_s:+.3f} s from this one)"
    return None


@dataclass(slots=True)
class _Waiting:
    since_s: float
    client_ns: list[int] | None = None
    harness: Mapping[str, Any] | None = None


class OverheadTracker:
    """One process's matching of client stamps with the harness's log, by nonce.

    The client side arrives with :meth:`expect` (a successful stream), the harness's with
    :meth:`take_page` (one page of ``/_gatecheck/log?since=cursor&prefix=...``); whichever comes
    second completes the pair. A side left waiting longer than ``MATCH_WINDOW_S`` is dropped (a
    client record so dropped counts as ``unmatched``). Attempts still open are read again next time.
    """

    def __init__(self, nonces: NonceSource, *, window_s: float = MATCH_WINDOW_S) -> None:
        self.nonces = nonces
        self.cursor = 0
        self.window_s = window_s
        self._waiting: dict[str, _Waiting] = {}

    @property
    def prefix(self) -> str:
        """The nonce prefix of this process's requests (the log filter)."""
        return self.nonces.prefix

    @property
    def pending(self) -> int:
        """Requests whose client side waits for the harness's record."""
        return sum(w.client_ns is not None for w in self._waiting.values())

    def expect(self, nonce: str, client_ns: list[int], into: Overhead, now_s: float) -> None:
        """A successful stream's output-event stamps (perf_counter_ns)."""
        if not client_ns:
            return
        waiting = self._waiting.pop(nonce, None)
        if waiting is not None and waiting.harness is not None:
            self._pair(client_ns, waiting.harness, into)
            return
        self._waiting[nonce] = _Waiting(now_s, client_ns=client_ns)

    def take_page(
        self, attempts: Iterable[Mapping[str, Any]], last: int, into: Overhead, now_s: float, now_ns: int
    ) -> None:
        """One page of the harness's log; the cursor moves past it, except to attempts still open
        (and younger than the window), which are read again."""
        reopen: int | None = None
        for attempt in attempts:
            still_open = attempt.get("outcome") == "open"
            if still_open and now_ns - int(attempt.get("t_arrival_ns") or 0) < self.window_s * 1e9:
                reopen = attempt["seq"] if reopen is None else min(reopen, attempt["seq"])
                continue
            if attempt.get("status") != 200 or attempt.get("t_first_token_ns") is None:
                continue  # a failed attempt (a retry may follow), or one without a token
            self._harness(str(attempt.get("nonce")), attempt, into, now_s)
        self.cursor = last if reopen is None else max(self.cursor, reopen - 1)

    def _harness(self, nonce: str, attempt: Mapping[str, Any], into: Overhead, now_s: float) -> None:
        waiting = self._waiting.get(nonce)
        if waiting is not None and waiting.client_ns is not None:
            del self._waiting[nonce]
            self._pair(waiting.client_ns, attempt, into)
            return
        self._waiting[nonce] = _Waiting(now_s, harness=attempt)

    @staticmethod
    def _pair(client_ns: list[int], attempt: Mapping[str, Any], into: Overhead) -> None:
        writes = attempt.get("token_writes_ns")
        into.record(client_ns, int(attempt["t_first_token_ns"]), None if writes is None else list(writes))

    def expire(self, into: Overhead, now_s: float) -> None:
        """Drop what waited longer than the window (client records count as unmatched)."""
        old = [n for n, w in self._waiting.items() if now_s - w.since_s > self.window_s]
        for nonce in old:
            into.unmatched += self._waiting.pop(nonce).client_ns is not None

    def finish(self, into: Overhead) -> None:
        """The run is over: every client record still waiting is unmatched."""
        into.unmatched += self.pending
        self._waiting.clear()

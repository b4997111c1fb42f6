"""The harness's log: every attempt a gateway made, what the harness sent back, and when.

Stamps are ``time.monotonic_ns()`` of the harness process (``CLOCK_MONOTONIC``: on one Linux host
the same clock as the client's ``perf_counter_ns``); a write's is taken just before its bytes go to
the socket. An attempt's arrival is the kernel's receive stamp of the read that completed its body
(``gatecheck.reference.arrival``). Header values that carry credentials are redacted; bodies are
kept as JSON (or text). What the harness wrote is kept write by write for attempts whose nonce has
a registered scenario (a check reads them); for the others (load traffic) only the stamps, so a
long load run stays small: the first token's, and with ``log_writes`` (``gatecheck upstream
--log-writes``) that of every token write, which the load test's per-chunk gateway overhead needs.
The log is bounded.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from gatecheck._types import JSON, JSONObject

MAX_ATTEMPTS = 100_000
"""Attempts kept (oldest dropped first)."""

MAX_NONCES = 10_000
"""Nonces whose attempt counts are kept (oldest dropped first)."""

BODY_CHARS = 65_536
"""A body that is not JSON is kept as text up to this many characters."""

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})
"""Headers whose values are credentials: logged as ``***``."""

REDACTED = "***"


@dataclass
class Attempt:
    """One request the harness received, and what it did with it."""

    seq: int
    nonce: str | None
    attempt: int
    scenario: str
    method: str
    path: str
    headers: dict[str, str]
    auth: str
    body: JSON
    t_arrival_ns: int
    detailed: bool
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    t_headers_ns: int | None = None
    t_first_token_ns: int | None = None
    t_end_ns: int | None = None
    writes: int = 0
    sent: list[tuple[int, str]] = field(default_factory=list)
    outcome: str = "open"
    token_writes_ns: list[int] | None = None
    """The stamp of every write that carried content (None: the log does not keep them)."""

    def wrote(self, t_ns: int, data: bytes, *, token: bool) -> None:
        """Note one write (``token``: it carried content; the first one is ``t_first_token_ns``)."""
        self.writes += 1
        if token:
            if self.t_first_token_ns is None:
                self.t_first_token_ns = t_ns
            if self.token_writes_ns is not None:
                self.token_writes_ns.append(t_ns)
        if self.detailed:
            self.sent.append((t_ns, data.decode("utf-8", "replace")))

    def end(self, t_ns: int, outcome: str) -> None:
        """The attempt is over: how (complete, reset, cut, stalled, silent, client-left, refused)."""
        if self.t_end_ns is None:
            self.t_end_ns = t_ns
            self.outcome = outcome

    def to_json(self, *, brief: bool = False) -> JSONObject:
        """The attempt for the control API (``brief``: stamps and status only, for load runs)."""
        record: JSONObject = {
            "seq": self.seq,
            "nonce": self.nonce,
            "attempt": self.attempt,
            "scenario": self.scenario,
            "path": self.path,
            "status": self.status,
            "outcome": self.outcome,
            "t_arrival_ns": self.t_arrival_ns,
            "t_headers_ns": self.t_headers_ns,
            "t_first_token_ns": self.t_first_token_ns,
            "t_end_ns": self.t_end_ns,
            "writes": self.writes,
        }
        if self.token_writes_ns is not None:
            record["token_writes_ns"] = list(self.token_writes_ns)
        if not brief:
            record.update(
                method=self.method,
                headers=self.headers,
                auth=self.auth,
                body=self.body,
                response_headers=self.response_headers,
                sent=[[t, text] for t, text in self.sent],
            )
        return record


def redacted_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as logged: credential values replaced by ``***``."""
    return {name: REDACTED if name.lower() in SECRET_HEADERS else value for name, value in headers.items()}


class Log:
    """Attempts in arrival order, numbered, counted per nonce; bounded. ``log_writes``: keep the
    stamp of every token write of every attempt (load runs), not only the first."""

    def __init__(self, max_attempts: int = MAX_ATTEMPTS, *, log_writes: bool = False) -> None:
        self.log_writes = log_writes
        self._attempts: deque[Attempt] = deque(maxlen=max_attempts)
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._seq = itertools.count(1)

    def open(self, nonce: str | None, **details: object) -> Attempt:
        """Record a new attempt; its number among the attempts of the same nonce is counted here."""
        number = 1
        if nonce is not None:
            number = self._counts.pop(nonce, 0) + 1
            self._counts[nonce] = number
            while len(self._counts) > MAX_NONCES:
                self._counts.popitem(last=False)
        attempt = Attempt(seq=next(self._seq), nonce=nonce, attempt=number, **details)  # type: ignore[arg-type]
        if self.log_writes:
            attempt.token_writes_ns = []
        self._attempts.append(attempt)
        return attempt

    def of(self, nonce: str) -> list[Attempt]:
        """The attempts made for ``nonce``, oldest first."""
        return [a for a in self._attempts if a.nonce == nonce]

    def since(self, seq: int, limit: int, prefix: str = "") -> tuple[list[Attempt], int]:
        """Up to ``limit`` attempts numbered above ``seq`` whose nonce starts with ``prefix``, oldest
        first, and the number to ask from next time (the last attempt looked at: with a prefix,
        attempts of other nonces are passed over once, not again)."""
        newer = []
        for attempt in reversed(self._attempts):
            if attempt.seq <= seq:
                break
            newer.append(attempt)
        found: list[Attempt] = []
        last = seq
        for attempt in reversed(newer):
            if len(found) == limit:
                break
            last = attempt.seq
            if not prefix or (attempt.nonce or "").startswith(prefix):
                found.append(attempt)
        return found, last

"""What keeps a load run bounded and honest while it runs: the request budget, the early stop and
the back-off after connection failures. Pure state, fed by the plugin; no locust here.

- Budget: ``--budget-requests`` is the most requests a run may SEND (in-flight ones included), so
  a run never exceeds it, whatever the concurrency. In a distributed run each worker gets its
  share (:func:`budget_share`) and tells the master when it is spent.
- Early stop: when the first :data:`EARLY_STOP_AFTER` requests of a process all failed with 401,
  403 or a refused connection, the run cannot measure anything: it stops with exit code 2 and says
  why, instead of sending thousands of rejected requests.
- Back-off: after a connection failure (refused, timed out, reset) new requests of the process
  wait ``backoff_s()`` (doubling from :data:`BACKOFF_START_S` up to :data:`BACKOFF_MAX_S`); any
  answer resets it. A dead target gets a few requests a second, not thousands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

EARLY_STOP_AFTER = 8
"""The first requests that decide the early stop (each process)."""
BACKOFF_START_S = 0.02
BACKOFF_MAX_S = 1.0
FATAL_STATUSES = frozenset({401, 403})
CONNECT_FAILURES = frozenset({"connect-refused", "connect-timeout"})
"""Error codes of a request that never reached the target."""
_CONNECTION_PREFIX = "transport-"


def budget_share(budget: int, workers: int, index: int) -> int:
    """Worker ``index``'s share of ``budget`` requests among ``workers``: the shares add up to it."""
    workers = max(workers, 1)
    return budget // workers + (1 if index % workers < budget % workers else 0)


def is_connection_failure(status: int, code: str | None) -> bool:
    """The request failed before any answer: no connection, or the connection broke."""
    if status or code is None:
        return False
    return code in CONNECT_FAILURES or code.startswith(_CONNECTION_PREFIX)


@dataclass(slots=True)
class Guard:
    """One process's budget, early-stop window and back-off (see the module docstring)."""

    budget: int
    sent: int = 0
    in_flight: int = 0
    _first: list[tuple[int, str]] = field(default_factory=list)
    _early_done: bool = False
    _backoff_s: float = 0.0
    _backoff_until: float = 0.0

    def take(self) -> bool:
        """Reserve one request of the budget; False once it is spent (send nothing then)."""
        if self.sent >= self.budget:
            return False
        self.sent += 1
        self.in_flight += 1
        return True

    @property
    def spent(self) -> bool:
        """The budget is used up (requests may still be in flight)."""
        return self.sent >= self.budget

    def done(self, status: int, code: str | None, now: float | None = None) -> str | None:
        """A request ended; returns why the run must stop early, if it must."""
        self.in_flight -= 1
        now = time.monotonic() if now is None else now
        if is_connection_failure(status, code):
            self._backoff_s = min(max(self._backoff_s * 2, BACKOFF_START_S), BACKOFF_MAX_S)
            self._backoff_until = now + self._backoff_s
        elif status:
            self._backoff_s = 0.0
        return self._early(status, code)

    def _early(self, status: int, code: str | None) -> str | None:
        if self._early_done:
            return None
        fatal = status in FATAL_STATUSES or (status == 0 and code in CONNECT_FAILURES)
        if not fatal:
            self._early_done = True
            return None
        self._first.append((status, code or ""))
        if len(self._first) < EARLY_STOP_AFTER:
            return None
        self._early_done = True
        return self._reason()

    def _reason(self) -> str:
        kinds = sorted({f"{status} {code}".strip() if status else code for status, code in self._first})
        if all(status in FATAL_STATUSES for status, _ in self._first):
            why = "the key is rejected (check the key and the auth style)"
        elif all(status == 0 for status, _ in self._first):
            why = "the target cannot be reached"
        else:
            why = "the key is rejected or the target cannot be reached"
        return f"the first {len(self._first)} requests all failed ({', '.join(kinds)}): {why}"

    def backoff_s(self, now: float | None = None) -> float:
        """How long a new request should wait (0 when the last connection attempt worked)."""
        now = time.monotonic() if now is None else now
        return max(self._backoff_until - now, 0.0)

"""Per-key fixed-window rate limiter for requests (RPM) and tokens (TPM).

A key's window opens at its first request and lasts ``window_seconds``; the first request after
it ends opens the next one. A request is admitted when one more request fits the RPM and its whole
token cost (prompt + completion, known up front because the model is deterministic) fits the
TPM; a rejected request consumes nothing. ``check`` runs without awaiting, on the event loop's
one thread, so concurrent requests are counted exactly: with RPM N, exactly N of M > N
simultaneous requests are admitted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's answer with what the rate-limit headers report."""

    admitted: bool
    reason: Literal["rpm", "tpm"] | None
    limit: int
    used: int
    token_limit: int
    tokens_used: int
    reset_s: float

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def tokens_remaining(self) -> int:
        return max(self.token_limit - self.tokens_used, 0)

    @property
    def retry_after(self) -> int:
        """Whole seconds to the end of the window, at least 1 (the Retry-After header)."""
        return max(1, math.ceil(self.reset_s))


@dataclass(slots=True)
class _Window:
    start: float
    requests: int = 0
    tokens: int = 0


class RateLimiter:
    """Fixed windows per key; ``over_admit`` (half the RPM again, at least one more),
    ``under_admit`` (one request short of the RPM) and the enforce flags exist for fault modes."""

    def __init__(
        self,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        over_admit: bool = False,
        under_admit: bool = False,
        enforce_rpm: bool = True,
        enforce_tpm: bool = True,
    ) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._over_admit = over_admit
        self._under_admit = under_admit
        self._enforce_rpm = enforce_rpm
        self._enforce_tpm = enforce_tpm
        self._windows: dict[str, _Window] = {}

    def check(self, key: str, rpm: int, tpm: int, cost: int) -> Decision:
        """Admit (and charge) one request of ``cost`` tokens for ``key``, or say why not."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now >= window.start + self.window_seconds:
            window = self._windows[key] = _Window(now)
        reset = window.start + self.window_seconds - now
        reason: Literal["rpm", "tpm"] | None = None
        if self._enforce_rpm and window.requests + 1 > self._allowance(rpm):
            reason = "rpm"
        elif self._enforce_tpm and window.tokens + cost > tpm:
            reason = "tpm"
        if reason is None:
            window.requests += 1
            window.tokens += cost
        return Decision(reason is None, reason, rpm, window.requests, tpm, window.tokens, reset)

    def _allowance(self, rpm: int) -> int:
        """Requests admitted per window: the RPM, unless a fault mode says otherwise."""
        if self._over_admit:
            return rpm + max(1, rpm // 2)
        return rpm - 1 if self._under_admit else rpm

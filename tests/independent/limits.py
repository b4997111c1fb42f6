"""Per-key rate limits (002 Rate Limits): RPM by a sliding log, TPM charged after the response.

RPM: a request is admitted while fewer than RPM requests were admitted in the last window (a
sliding log of admission times; rejected requests are not counted). TPM: a request is admitted
while the tokens charged in the last window are below TPM, and its tokens (prompt + completion,
as its usage says) are charged when its response has been sent. So the request that crosses the
TPM is served and the next one gets 429: a legitimate design (the gateway cannot know a reply's
length before generating it), unlike the reference gateway's. The window is a minute; tests
shorten it.

``BucketLimiter`` is the alternative a reproduction needs: RPM by a token bucket (a request slot
comes back every window/RPM seconds, which is what its Retry-After says) and no TPM at all.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyLimits:
    """One key's limits per window."""

    rpm: int
    tpm: int


@dataclass(frozen=True)
class Decision:
    """The limiter's answer: admitted or not, and what the headers say."""

    admitted: bool
    limit: int
    remaining: int
    reset_s: float
    tokens_limit: int
    tokens_remaining: int
    retry_after_s: int = 0
    exceeded: str = ""
    """"requests" or "tokens" when not admitted."""

    def headers(self) -> dict[str, str]:
        """002's X-RateLimit-Limit/Remaining (requests), a reset in seconds, the token pair, Retry-After."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{math.floor(self.reset_s * 1000) / 1000:.3f}",
            "X-RateLimit-Limit-Tokens": str(self.tokens_limit),
            "X-RateLimit-Remaining-Tokens": str(self.tokens_remaining),
        }
        if not self.admitted:
            out["Retry-After"] = str(self.retry_after_s)
        return out


class SlidingLimiter:
    """Sliding-log RPM and charge-after TPM for every key, thread-safe.

    ``short_by`` admits that many requests fewer than the RPM it reports (a reproduction of
    under-admission; 0 in the faithful double).
    """

    def __init__(
        self,
        limits: dict[str, KeyLimits],
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        short_by: int = 0,
    ) -> None:
        self._limits = limits
        self._window = window_s
        self._clock = clock
        self._short_by = short_by
        self._lock = threading.Lock()
        self._admitted: dict[str, deque[float]] = {key: deque() for key in limits}
        self._charged: dict[str, deque[tuple[float, int]]] = {key: deque() for key in limits}

    def admit(self, key: str) -> Decision:
        """Admit (and log) a request on ``key``, or say which limit refuses it and for how long."""
        limits = self._limits[key]
        with self._lock:
            now = self._clock()
            admitted, charged = self._expire(key, now)
            used = sum(tokens for _, tokens in charged)
            allowed = limits.rpm - self._short_by
            if len(admitted) >= allowed:
                wait = admitted[len(admitted) - allowed] + self._window - now if allowed > 0 else self._window
                return self._decision(key, now, False, "requests", wait)
            if used >= limits.tpm:
                return self._decision(key, now, False, "tokens", self._token_wait(charged, used, limits, now))
            admitted.append(now)
            return self._decision(key, now, True)

    def charge(self, key: str, tokens: int) -> None:
        """Charge the tokens a served request used (after its response)."""
        with self._lock:
            self._charged[key].append((self._clock(), max(0, tokens)))

    def _expire(self, key: str, now: float) -> tuple[deque[float], deque[tuple[float, int]]]:
        admitted, charged = self._admitted[key], self._charged[key]
        while admitted and admitted[0] <= now - self._window:
            admitted.popleft()
        while charged and charged[0][0] <= now - self._window:
            charged.popleft()
        return admitted, charged

    def _token_wait(
        self, charged: deque[tuple[float, int]], used: int, limits: KeyLimits, now: float
    ) -> float:
        """Seconds until enough charged tokens leave the window for usage to drop below the TPM."""
        for at, tokens in charged:
            used -= tokens
            if used < limits.tpm:
                return at + self._window - now
        return self._window

    def _decision(
        self, key: str, now: float, admitted: bool, exceeded: str = "", wait: float = 0.0
    ) -> Decision:
        limits = self._limits[key]
        log = self._admitted[key]
        used = sum(tokens for _, tokens in self._charged[key])
        return Decision(
            admitted=admitted,
            limit=limits.rpm,
            remaining=max(0, limits.rpm - self._short_by - len(log)),
            reset_s=max(0.0, log[0] + self._window - now) if log else 0.0,
            tokens_limit=limits.tpm,
            tokens_remaining=max(0, limits.tpm - used),
            retry_after_s=max(1, math.ceil(wait)),
            exceeded=exceeded,
        )


class BucketLimiter:
    """RPM by a token bucket (capacity RPM, one slot back every window/RPM s); TPM not enforced."""

    def __init__(
        self, limits: dict[str, KeyLimits], window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._window = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._level = {key: (float(spec.rpm), clock()) for key, spec in limits.items()}

    def admit(self, key: str) -> Decision:
        """Take a slot from ``key``'s bucket, or say how long until one comes back."""
        limits = self._limits[key]
        period = self._window / limits.rpm
        with self._lock:
            now = self._clock()
            level, then = self._level[key]
            level = min(float(limits.rpm), level + (now - then) / period)
            admitted = level >= 1.0
            self._level[key] = (level - 1.0 if admitted else level, now)
            remaining = int(level - 1.0) if admitted else 0
            return Decision(
                admitted=admitted,
                limit=limits.rpm,
                remaining=max(0, remaining),
                reset_s=(1.0 - (level % 1.0)) * period,
                tokens_limit=limits.tpm,
                tokens_remaining=limits.tpm,
                retry_after_s=max(1, math.ceil((1.0 - level) * period)),
                exceeded="" if admitted else "requests",
            )

    def charge(self, key: str, tokens: int) -> None:
        """Tokens are not limited here."""

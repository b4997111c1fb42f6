"""One request: raw stamps (:class:`StreamTiming`) -> :func:`derive` -> its metrics (:class:`RequestMetrics`).

The request loop (``gatecheck.load.users``) only stamps raw monotonic times into a
:class:`StreamTiming`; :func:`derive` turns one timing into a :class:`RequestMetrics` afterwards,
as a pure function, so every definition below is unit-tested without locust:

- ``ttfb_ms``: request start -> response headers received.
- ``ttft_ms``: request start -> first event carrying output (content, reasoning content or a
  tool-call fragment); role-only and empty chunks do not count. ``None`` without such an event.
- ``itl_ms``: every gap between consecutive output events of one request.
- ``tpot_ms``: (last output event - first output event) / (output tokens - 1); ``None`` below 2 tokens.
- ``e2e_ms``: request start -> last byte of the response.
- ``output_tokens``: ``usage`` when the response carries it, else the number of output events
  (``tokens_estimated`` is then True).
- ``output_tokens_per_s`` (per request): output tokens / end-to-end seconds.

Nothing here imports locust or gevent.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from gatecheck._headers import parse_retry_after

METRIC_KEYS = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "output_tokens_per_s")
"""The summary's metric keys, in report order; ``ttfb_ms`` is reported beside them."""
ALL_METRIC_KEYS = (*METRIC_KEYS, "ttfb_ms")
PERCENTILES = (50, 90, 95, 99)
"""The percentiles every metric is reported at (``p50`` ... in the summary)."""
_US_PER_MS = 1000
_NS_PER_MS = 1_000_000
_NS_PER_US = 1_000
_HALF_US = 500


@dataclass(slots=True)
class StreamTiming:
    """Raw stamps of one request as the loop saw them (``perf_counter_ns``); nothing derived.

    ``token_ns`` holds the arrival time of every event that carried output. ``complete`` says the
    response ended as its protocol says it should (``[DONE]``, ``message_stop`` or a whole body).
    """

    t_start_ns: int
    wall_start_s: float
    streamed: bool = True
    t_headers_ns: int | None = None
    t_end_ns: int | None = None
    token_ns: list[int] = field(default_factory=list)
    status: int = 0
    error_code: str | None = None
    retry_after: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    complete: bool = False
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """What one request measured, in milliseconds; ``None`` where a quantity is undefined."""

    wall_start_s: float
    ok: bool
    status: int
    error_code: str | None
    ttfb_ms: float | None
    ttft_ms: float | None
    itl_us: tuple[int, ...]
    tpot_ms: float | None
    e2e_ms: float | None
    output_tokens: int
    prompt_tokens: int | None
    tokens_estimated: bool
    output_tokens_per_s: float | None
    retry_after_s: float | None
    bytes_received: int

    @property
    def itl_ms(self) -> tuple[float, ...]:
        """The inter-token gaps in milliseconds (kept in whole microseconds)."""
        return tuple(gap / _US_PER_MS for gap in self.itl_us)

    @property
    def rate_limited(self) -> bool:
        """True for a 429 answer."""
        return self.status == 429


def _ms(delta_ns: int) -> float:
    return delta_ns / _NS_PER_MS


def _error_code(timing: StreamTiming) -> str | None:
    if timing.error_code is not None:
        return timing.error_code
    if not 200 <= timing.status < 300:
        return f"http-{timing.status}" if timing.status else "no-response"
    if not timing.complete:
        return "incomplete-response"
    return None


def derive(timing: StreamTiming) -> RequestMetrics:
    """Turn one request's raw stamps into its metrics (the definitions are in the module docstring)."""
    code = _error_code(timing)
    ok = code is None
    start = timing.t_start_ns
    tokens_ns = timing.token_ns
    estimated = timing.output_tokens is None
    output_tokens = len(tokens_ns) if estimated else int(timing.output_tokens or 0)
    e2e = _ms(timing.t_end_ns - start) if timing.t_end_ns is not None else None
    ttft = _ms(tokens_ns[0] - start) if timing.streamed and tokens_ns else None
    itl: tuple[int, ...] = ()
    tpot = None
    if timing.streamed and len(tokens_ns) >= 2:
        itl = tuple([(gap + _HALF_US) // _NS_PER_US for gap in map(operator.sub, tokens_ns[1:], tokens_ns)])
        if output_tokens >= 2:
            tpot = _ms(tokens_ns[-1] - tokens_ns[0]) / (output_tokens - 1)
    rate = output_tokens / (e2e / 1000) if ok and e2e and output_tokens else None
    return RequestMetrics(
        wall_start_s=timing.wall_start_s,
        ok=ok,
        status=timing.status,
        error_code=code,
        ttfb_ms=_ms(timing.t_headers_ns - start) if timing.t_headers_ns is not None else None,
        ttft_ms=ttft,
        itl_us=itl,
        tpot_ms=tpot,
        e2e_ms=e2e,
        output_tokens=output_tokens if ok else 0,
        prompt_tokens=timing.prompt_tokens,
        tokens_estimated=estimated,
        output_tokens_per_s=rate,
        retry_after_s=parse_retry_after(timing.retry_after),
        bytes_received=timing.bytes_received,
    )

"""One request: raw stamps (:class:`StreamTiming`) -> :func:`derive` -> its metrics (:class:`RequestMetrics`).

The request loop (``gatecheck.load.users``) only stamps raw monotonic times into a
:class:`StreamTiming`; :func:`derive` turns one timing into a :class:`RequestMetrics` afterwards,
as a pure function, so every definition below is unit-tested without locust:

- ``ttfb_ms``: request start -> response headers received.
- ``ttft_ms``: request start -> first event carrying output (content, reasoning content or a
  tool-call fragment); role-only and empty chunks do not count. ``None`` without such an event.
- ``ttfc_ms``: request start -> first event carrying visible content (``content`` or a
  ``text_delta``), after any reasoning or tool-call fragments. ``None`` without one.
- ``itl_ms``: every gap between consecutive output events of one request.
- ``tpot_ms``: (last output event - first output event) / (output tokens - 1); ``None`` below 2 tokens.
- ``e2e_ms``: request start -> last byte of the response.
- ``output_tokens``: ``usage`` when the response carries it, else the number of output events
  (``tokens_estimated`` is then True).
- ``output_tokens_per_s`` (per request): output tokens / end-to-end seconds.

The outcome (:func:`error_code`): a request succeeds only when it was answered 2xx and ended as its
protocol says (``[DONE]`` / ``message_stop`` / a whole JSON body), a finish or stop reason arrived,
and something was generated or the reason says why not (``length``, ``max_tokens``,
``content_filter``, ``refusal``). Anything else is an error with a code of its own
(``ERROR_CODES``), counted in the error rate like a 5xx. 429s fail too but are counted apart.

Nothing here imports locust or gevent.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gatecheck._headers import parse_retry_after
from gatecheck.assemble import Violation
from gatecheck.redaction import Secret, redact

METRIC_KEYS = ("ttft_ms", "ttfc_ms", "itl_ms", "tpot_ms", "e2e_ms", "output_tokens_per_s")
"""The summary's metric keys, in report order; ``ttfb_ms`` is reported beside them."""
ALL_METRIC_KEYS = (*METRIC_KEYS, "ttfb_ms")
OVERHEAD_KEYS = ("overhead_ms", "chunk_overhead_ms")
"""The gateway overhead's keys in the summary's ``metrics`` (``--upstream``; ``gatecheck.load.overhead``)."""
PERCENTILES = (50, 90, 95, 99)
"""The percentiles every metric is reported at (``p50`` ... in the summary)."""
_US_PER_MS = 1000
_NS_PER_MS = 1_000_000
_NS_PER_US = 1_000
_HALF_US = 500

EMPTY_OK_REASONS = frozenset({"length", "max_tokens", "content_filter", "refusal"})
"""Finish/stop reasons that explain an answer with no output (judgement: the budget or a filter
stopped generation); ``stop`` or ``end_turn`` with nothing generated is ``stream-empty``."""
ERROR_CODES = {
    "stream-incomplete": "the stream ended without [DONE] / message_stop (connection closed early)",
    "stream-no-finish-reason": "the stream ended properly but no finish_reason / stop_reason arrived",
    "stream-empty": "the stream finished normally but generated nothing",
    "stream-error-event": "an error event arrived mid-stream (its code follows the colon)",
    "stream-stalled": "no byte arrived for --stall-seconds (or --read-timeout, if shorter) after the headers",
    "invalid-chunk": "a data payload is not a JSON object",
    "sse-event-too-large": "one SSE event exceeded the size cap",
    "response-too-large": "the response exceeded --max-response-bytes; the connection was closed",
    "response-no-finish-reason": "a non-streamed answer without finish_reason / stop_reason",
    "response-empty": "a non-streamed answer that finished normally but generated nothing",
    "invalid-body": "the body is not JSON",
    "content-encoding-unsupported": "Content-Encoding the load users cannot decode (its name follows)",
    "content-encoding-invalid": "the body does not decode as its Content-Encoding says",
    "connect-refused": "the connection was refused",
    "timeout": "no connection or no response headers within the timeouts",
    "read-timeout": "the body stopped arriving for --read-timeout seconds",
    "total-timeout": "the request took longer than --total-timeout",
    "other": "one of the codes beyond the first 50 distinct ones",
}
"""The error codes gatecheck gives (besides the target's own error codes and ``http-<status>``)."""


@dataclass(slots=True)
class StreamTiming:
    """Raw stamps of one request as the loop saw them (``perf_counter_ns``); nothing derived.

    ``token_ns`` holds the arrival time of every event that carried output, ``content_ns`` that of
    the first one carrying visible content. ``complete`` says the response ended as its protocol
    says it should (``[DONE]``, ``message_stop`` or a whole body); ``finish_reason`` is the first
    non-null finish or stop reason; ``generated`` says a non-streamed answer had content.
    ``violations`` are the stream's protocol violations when it was checked (``checked``).
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
    content_ns: int | None = None
    finish_reason: str | None = None
    generated: bool = False
    checked: bool = False
    violations: list[Violation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """What one request measured, in milliseconds; ``None`` where a quantity is undefined."""

    wall_start_s: float
    ok: bool
    status: int
    error_code: str | None
    ttfb_ms: float | None
    ttft_ms: float | None
    ttfc_ms: float | None
    itl_us: tuple[int, ...]
    tpot_ms: float | None
    e2e_ms: float | None
    output_tokens: int
    prompt_tokens: int | None
    tokens_estimated: bool
    output_tokens_per_s: float | None
    retry_after_s: float | None
    bytes_received: int
    output_events: int = 0
    streamed: bool = True
    checked: bool = False
    violations: tuple[Violation, ...] = ()

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


CODE_LIMIT = 64
"""Characters of an error code kept (the target's codes can be anything)."""
TEXT_LIMIT = 300
_CODE_JUNK = re.compile(r"[^A-Za-z0-9_.:/+*-]+")


def public_text(text: str, secrets: Iterable[Secret | str], limit: int = TEXT_LIMIT) -> str:
    """Target-provided text as a report may show it: keys removed (``gatecheck.redaction``), then
    cut to ``limit`` characters (redacting first, so no cut can leave part of a key behind)."""
    return redact(text, secrets)[:limit]


def public_code(code: str, secrets: Iterable[Secret | str]) -> str:
    """An error code (often the target's own) as a failure name or table row may show it: keys
    removed (``***``), runs of other characters than ``[A-Za-z0-9_.:/+-]`` as ``_``, at most 64 characters."""
    cleaned = _CODE_JUNK.sub("_", redact(code, secrets)).strip("_")
    return cleaned[:CODE_LIMIT] or "unnamed"


def error_code(timing: StreamTiming) -> str | None:
    """Why the request failed (None: it succeeded); the rule is in the module docstring."""
    if timing.error_code is not None:
        return timing.error_code
    if not 200 <= timing.status < 300:
        return f"http-{timing.status}" if timing.status else "no-response"
    kind = "stream" if timing.streamed else "response"
    if not timing.complete:
        return "stream-incomplete" if timing.streamed else "invalid-body"
    if timing.finish_reason is None:
        return f"{kind}-no-finish-reason"
    generated = bool(timing.token_ns) if timing.streamed else timing.generated
    if not generated and timing.finish_reason not in EMPTY_OK_REASONS:
        return f"{kind}-empty"
    return None


def derive(timing: StreamTiming) -> RequestMetrics:
    """Turn one request's raw stamps into its metrics (the definitions are in the module docstring)."""
    code = error_code(timing)
    ok = code is None
    start = timing.t_start_ns
    tokens_ns = timing.token_ns
    estimated = timing.output_tokens is None
    output_tokens = len(tokens_ns) if estimated else int(timing.output_tokens or 0)
    e2e = _ms(timing.t_end_ns - start) if timing.t_end_ns is not None else None
    ttft = _ms(tokens_ns[0] - start) if timing.streamed and tokens_ns else None
    ttfc = _ms(timing.content_ns - start) if timing.streamed and timing.content_ns is not None else None
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
        ttfc_ms=ttfc,
        itl_us=itl,
        tpot_ms=tpot,
        e2e_ms=e2e,
        output_tokens=output_tokens if ok else 0,
        prompt_tokens=timing.prompt_tokens,
        tokens_estimated=estimated,
        output_tokens_per_s=rate,
        retry_after_s=parse_retry_after(timing.retry_after),
        bytes_received=timing.bytes_received,
        output_events=len(tokens_ns),
        streamed=timing.streamed,
        checked=timing.checked,
        violations=tuple(timing.violations),
    )

"""Rate limits per key (002 Rate Limits): 429 beyond RPM and TPM, Retry-After, the limit headers.

The burst goes to ``ctx.ratelimit``: a second key when one is configured (or the embedded
gateway's small-limit key), otherwise the main key, in which case these checks run last and the
shared pacer is held for the Retry-After afterwards. A small burst is sent request after request;
a large one by parallel workers (eight requests each) so a real target's minute cannot pass before
RPM + k requests are out. "Remaining never increases" is judged only between responses whose
order is certain (one finished before the other was sent), so parallel sending cannot fake an
increase.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatecheck._headers import parse_retry_after
from gatecheck.checks import ratelimit_headers as rlh
from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, PlanSettings, check, observation
from gatecheck.checks.context import MAX_RETRY_WAIT_S, CheckContext
from gatecheck.checks.errors import check_error_body
from gatecheck.checks.wire import as_json, describe, header

if TYPE_CHECKING:
    from gatecheck.client import Exchange

RATE_LIMITS = "002 Rate Limits"
EXTRA = 3
"""k: how many requests beyond the declared RPM the burst sends."""

SEQUENTIAL_UP_TO = 16
"""A burst this small is sent one request after another: every pair's order is then certain."""
TPM_REQUESTS = 3
"""The TPM burst: this many requests whose prompts together exceed the TPM by a third."""


@dataclass(frozen=True)
class Burst:
    """RPM + k requests sent at once: each exchange with its response's rate-limit reading."""

    exchanges: list[Exchange]
    readings: list[rlh.RateLimitInfo]
    rpm: int

    @property
    def rejected(self) -> list[Exchange]:
        """The 429 responses."""
        return [e for e in self.exchanges if e.status == 429]

    @property
    def admitted(self) -> list[Exchange]:
        """The 2xx responses."""
        return [e for e in self.exchanges if 200 <= e.status < 300]


def _burst_body(ctx: CheckContext) -> dict[str, object]:
    return rq.chat_body(ctx.target.models.chat, rq.user("Say OK."), max_tokens=1)


def _send_all(ctx: CheckContext, bodies: list[dict[str, object]]) -> list[Exchange]:
    """Send ``bodies`` unpaced on the rate-limit key: in order when few, else by workers (8 each)."""
    setup = ctx.ratelimit

    def one(body: dict[str, object]) -> Exchange:
        return ctx.send(
            "POST", "/v1/chat/completions", json_body=body, client=setup.client, key=setup.key, paced=False
        )

    workers = 1 if len(bodies) <= SEQUENTIAL_UP_TO else min(32, math.ceil(len(bodies) / 8))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, bodies))


def _after_429s(ctx: CheckContext, exchanges: list[Exchange]) -> None:
    """Tell the shared pacer to wait out the 429s when the burst used the main key."""
    waits = [_retry_after(e) or 1.0 for e in exchanges if e.status == 429]
    if waits and not ctx.ratelimit.dedicated:
        ctx.session.pacer.hold(min(max(waits), MAX_RETRY_WAIT_S))


def _retry_after(exchange: Exchange) -> float | None:
    return parse_retry_after(header(exchange, "retry-after"))


@observation(cost=lambda s: Cost(s.rpm + EXTRA, s.rpm + EXTRA))
def rpm_burst(ctx: CheckContext) -> Burst:
    """RPM + k small requests on the rate-limit key, sent at once."""
    rpm = ctx.ratelimit.rpm
    exchanges = _send_all(ctx, [_burst_body(ctx) for _ in range(rpm + EXTRA)])
    _after_429s(ctx, exchanges)
    dialect = ctx.profile.ratelimit_dialect
    readings = [rlh.read(e.headers, dialect, time.time()) for e in exchanges]
    return Burst(exchanges, readings, rpm)


@check("ratelimit", f"{RATE_LIMITS} (Default RPM; 429 when rate limited)")
def ratelimit_rpm_enforced(ctx: CheckContext, rpm_burst: Burst) -> None:
    """A burst of RPM + k requests meets 429s, with an error body in the profile's dialect."""
    if not rpm_burst.rejected:
        statuses = sorted({e.status for e in rpm_burst.exchanges})
        raise Failure(
            title=f"{len(rpm_burst.exchanges)} requests at once on a {rpm_burst.rpm}-RPM key met no 429",
            rule="ratelimit-never-429",
            expected=f"HTTP 429 for the requests beyond {rpm_burst.rpm} in the window",
            received=f"statuses {statuses}, {len(rpm_burst.admitted)} admitted",
            exchange=rpm_burst.exchanges[-1],
        )
    check_error_body(ctx, rpm_burst.rejected[0], "a 429")


@check("ratelimit", f"{RATE_LIMITS} (RPM: requests per minute)")
def ratelimit_rpm_not_exceeded(ctx: CheckContext, rpm_burst: Burst) -> None:
    """No more than RPM requests of the burst are admitted."""
    admitted = len(rpm_burst.admitted)
    if admitted > rpm_burst.rpm:
        raise Failure(
            title=f"{admitted} requests were admitted on a key declared at {rpm_burst.rpm} RPM",
            rule="ratelimit-over-admit",
            expected=f"at most {rpm_burst.rpm} admitted in the window",
            received=f"{admitted} admitted of {len(rpm_burst.exchanges)} sent at once",
            exchange=rpm_burst.admitted[-1],
        )


@check("ratelimit", f"{RATE_LIMITS} (Retry-After: suggested retry wait time in seconds)")
def ratelimit_retry_after(ctx: CheckContext, rpm_burst: Burst) -> None:
    """Every 429 carries a valid Retry-After."""
    for exchange in rpm_burst.rejected:
        value = header(exchange, "retry-after")
        if parse_retry_after(value) is None:
            raise Failure(
                title="a 429 has no valid Retry-After",
                rule="ratelimit-retry-after-missing",
                expected="Retry-After: delta-seconds (or an HTTP date)",
                received=f"Retry-After {as_json(value)}; {describe(exchange, 200)}",
                exchange=exchange,
            )


@check("ratelimit", f"{RATE_LIMITS} (X-RateLimit-Limit, X-RateLimit-Remaining); profile header dialect")
def ratelimit_headers(ctx: CheckContext, rpm_burst: Burst) -> None:
    """Every 429 carries the profile's rate-limit headers, readable, with Remaining 0."""
    dialect = ctx.profile.ratelimit_dialect
    for exchange, info in zip(rpm_burst.exchanges, rpm_burst.readings, strict=True):
        if exchange.status != 429:
            continue
        if not info.complete or info.remaining != 0:
            raise Failure(
                title="a 429 lacks the rate-limit headers (or they say requests remain)",
                rule="ratelimit-headers-missing",
                expected=f"{rlh.expected_headers(dialect)}, Remaining 0 (profile {ctx.profile.name})",
                received=f"limit {as_json(info.limit)}, remaining {as_json(info.remaining)}; "
                f"headers {as_json(dict(exchange.headers))}",
                exchange=exchange,
            )


@check("ratelimit", f"{RATE_LIMITS} (X-RateLimit-Remaining: remaining requests in the current window)")
def ratelimit_remaining_monotonic(ctx: CheckContext, rpm_burst: Burst) -> None:
    """X-RateLimit-Remaining never increases within a window."""
    pairs = list(zip(rpm_burst.exchanges, rpm_burst.readings, strict=True))
    for earlier, before in pairs:
        for later, after in pairs:
            if not _certainly_before(earlier, later) or before.remaining is None or after.remaining is None:
                continue
            if after.remaining > before.remaining and not _window_ended(earlier, before, later):
                raise Failure(
                    title="Remaining increased within a window",
                    rule="ratelimit-remaining-increases",
                    expected="Remaining never above an earlier response's value until the window resets",
                    received=f"Remaining {before.remaining} then {after.remaining} "
                    f"{(later.t_start_ns - earlier.t_end_ns) / 1e6:.1f} ms later",
                    exchange=later,
                )


def _certainly_before(first: Exchange, second: Exchange) -> bool:
    """The server answered ``first`` before ``second`` was even sent."""
    return (
        first.t_headers_ns is not None
        and second.t_headers_ns is not None
        and first.t_end_ns < second.t_start_ns
    )


def _window_ended(earlier: Exchange, reading: rlh.RateLimitInfo, later: Exchange) -> bool:
    """``later`` was sent after the window ``earlier`` reported had reset."""
    reset = reading.reset_s if reading.reset_s is not None else _retry_after(earlier)
    return reset is not None and (later.t_start_ns - earlier.t_end_ns) / 1e9 >= reset


@check("ratelimit", f"{RATE_LIMITS} (Retry-After)", cost=Cost(1, 1), markers=("slow",))
def ratelimit_retry_after_honoured(ctx: CheckContext, rpm_burst: Burst) -> None:
    """After waiting the Retry-After of the last 429, the request succeeds."""
    if not rpm_burst.rejected:
        return  # ratelimit_rpm_enforced reports the missing 429
    last = max(rpm_burst.rejected, key=lambda e: e.t_end_ns)
    wait = _retry_after(last)
    if wait is None:
        return  # ratelimit_retry_after reports it
    if wait > MAX_RETRY_WAIT_S:
        raise Failure(
            title=f"Retry-After {wait:g} s is longer than a rate-limit window",
            rule="ratelimit-retry-after-long",
            expected=f"Retry-After of at most a minute ({MAX_RETRY_WAIT_S:g} s allowed)",
            received=f"Retry-After {wait:g}",
            exchange=last,
        )
    time.sleep(max(0.0, wait - (time.perf_counter_ns() - last.t_end_ns) / 1e9))
    setup = ctx.ratelimit
    retried = ctx.send(
        "POST",
        "/v1/chat/completions",
        json_body=_burst_body(ctx),
        client=setup.client,
        key=setup.key,
        paced=False,
    )
    if not 200 <= retried.status < 300:
        raise Failure(
            title=f"the request still failed after waiting Retry-After {wait:g} s",
            rule="ratelimit-retry-after-short",
            expected="HTTP 200 once Retry-After has passed",
            received=describe(retried),
            exchange=retried,
        )
    _after_429s(ctx, [retried])


def _tpm_cost(settings: PlanSettings) -> Cost:
    return Cost(TPM_REQUESTS, TPM_REQUESTS)


@check("ratelimit", f"{RATE_LIMITS} (Default TPM)", cost=_tpm_cost, markers=("costly", "slow"))
def ratelimit_tpm_enforced(ctx: CheckContext, rpm_burst: Burst) -> None:
    """Prompts that together exceed the declared TPM meet a 429 (few requests: the RPM is not the cause)."""
    setup = ctx.ratelimit
    _wait_for_fresh_window(rpm_burst)
    words = math.ceil(setup.tpm * 4 / 3 / TPM_REQUESTS)
    body = rq.chat_body(ctx.target.models.chat, rq.user(" ".join(["x"] * words)), max_tokens=1)
    exchanges = [
        ctx.send(
            "POST", "/v1/chat/completions", json_body=body, client=setup.client, key=setup.key, paced=False
        )
        for _ in range(TPM_REQUESTS)
    ]
    _after_429s(ctx, exchanges)
    if not any(e.status == 429 for e in exchanges):
        raise Failure(
            title=f"{TPM_REQUESTS} requests of {words} prompt words met no 429 on a {setup.tpm}-TPM key",
            rule="tpm-unenforced",
            expected=f"HTTP 429 once the window's tokens pass {setup.tpm}",
            received=f"statuses {[e.status for e in exchanges]}",
            exchange=exchanges[-1],
        )


def _wait_for_fresh_window(burst: Burst) -> None:
    """Sleep until the RPM window the burst filled has reset (bounded by a minute)."""
    waits = [(_retry_after(e) or 0.0) - (time.perf_counter_ns() - e.t_end_ns) / 1e9 for e in burst.rejected]
    time.sleep(min(max([0.0, *waits]), MAX_RETRY_WAIT_S))

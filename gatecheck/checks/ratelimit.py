"""Rate limits per key (002 Rate Limits): 429 beyond RPM and TPM, Retry-After, the limit headers.

The burst goes to ``ctx.ratelimit``: a second key when one is configured (or the embedded
gateway's small-limit key), otherwise the main key, in which case these checks run last and the
shared pacer is held for the Retry-After afterwards. Nothing here assumes our own limiter's
window algorithm:

- every burst starts from a *fresh window* (the key unused for a whole window), where a fixed
  window, a sliding log and a full token bucket all admit the declared RPM;
- a burst that meets 429 before RPM admissions goes on within that window as Retry-After says,
  so a limiter that smooths bursts (a token bucket refilling over the minute) is not called
  under-admitting when it admits its RPM within the minute;
- an admission after an earlier 429's announced reset (Retry-After or a reset header) belongs to
  a new window (a fixed window's boundary, a slot a sliding log freed) and is neither
  over-admission nor a Remaining that "increased within a window".

Not seen is not passed: without a 429 (no rate limiting, a dead host, a redirect loop) every check
but ``ratelimit_rpm_enforced`` (which owns the missing 429) is "not checked". A target that
declares no rate limiting (capability ``ratelimit`` off) skips the whole area. The bodies of the
429s are judged once, by ``ratelimit_429_body``, never by the check that counted them.

TPM (``ratelimit_tpm_enforced``): requests sized in the target's own tokens (one calibration
request, ``gatecheck.calibration``), each well under the TPM, sent one after another from a fresh
window until a 429 or until the tokens admitted pass the TPM by more than one request: a gateway
may charge a request before serving it or after (the request that crosses the TPM is served, the
next refused). A 429 is a TPM verdict only when it says it is about tokens, or when fewer than RPM
requests were sent in the window (requests cannot explain it).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatecheck import calibration as cal
from gatecheck import clock
from gatecheck._headers import parse_retry_after
from gatecheck.checks import ratelimit_headers as rlh
from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, NotChecked, PlanSettings, check, observation, requires
from gatecheck.checks.context import MAX_RETRY_WAIT_S, CheckContext
from gatecheck.checks.errors import BODY_ERROR_RULES, KnownContext, error_body_findings, one_per_rule
from gatecheck.checks.wire import as_json, describe, header, json_of

if TYPE_CHECKING:
    from gatecheck.client import Exchange

RATE_LIMITS = "002 Rate Limits"
EXTRA = 3
"""k: how many requests beyond the declared RPM the burst sends."""

SEQUENTIAL_UP_TO = 16
"""A burst this small is sent one request after another: every pair's order is then certain."""
TPM_MAX_REQUESTS = cal.TPM_FILL_REQUESTS + 4
"""The most requests the TPM burst sends (it stops at the first 429)."""
SETTLE_S = 1.0
"""Once the admitted tokens reach the TPM, the next request waits this long (at most a twentieth of
the window): a gateway may charge a served request's tokens asynchronously (LiteLLM charges usage
from a callback after the response)."""
UNDER_ADMIT_TOLERANCE = 0.1
"""A tokens 429 is under-admission when the admitted tokens and the refused request stay 10% under the TPM."""


@dataclass(frozen=True)
class Burst:
    """RPM + k requests sent at once from a fresh window, then, when 429s came before RPM
    admissions, one request at a time within the window as Retry-After says; each exchange with its
    response's rate-limit reading, in the order sent."""

    exchanges: list[Exchange]
    readings: list[rlh.RateLimitInfo]
    rpm: int
    window_s: float

    @property
    def rejected(self) -> list[Exchange]:
        """The 429 responses."""
        return [e for e in self.exchanges if e.status == 429]

    @property
    def admitted(self) -> list[Exchange]:
        """The 2xx responses."""
        return [e for e in self.exchanges if 200 <= e.status < 300]

    @property
    def t0_ns(self) -> int:
        """When the burst's first request was sent (the fresh window opens there at the latest)."""
        return min(e.t_start_ns for e in self.exchanges)

    def statuses(self) -> str:
        """``statuses 200 x5, 429 x3`` for messages."""
        counts: dict[int, int] = {}
        for exchange in self.exchanges:
            counts[exchange.status] = counts.get(exchange.status, 0) + 1
        return "statuses " + ", ".join(f"{s or 'no answer'} x{n}" for s, n in sorted(counts.items()))

    def in_first_window(self) -> list[Exchange]:
        """The admissions of the first window: sent within a window of the first request, and not
        after an earlier 429's announced reset (the server said a new window, or a freed slot, began)."""
        end = self.t0_ns + int(self.window_s * 1e9)
        resets = [e.t_end_ns + int(s * 1e9) for e, s in self._announced_resets()]
        first_reset = min(resets, default=end)
        return [e for e in self.admitted if e.t_start_ns < min(end, first_reset)]

    def refill(self, span_ns: int) -> int:
        """Requests a limiter that returns its allowance continuously (a token bucket refilling RPM
        per window) may admit on top of the RPM over ``span_ns``: none within a fraction of a window."""
        return math.floor(max(0, span_ns) / 1e9 * self.rpm / self.window_s)

    def _announced_resets(self) -> list[tuple[Exchange, float]]:
        found = []
        for exchange, reading in zip(self.exchanges, self.readings, strict=True):
            if exchange.status == 429:
                reset = reading.reset_s if reading.reset_s is not None else retry_after(exchange)
                if reset is not None:
                    found.append((exchange, reset))
        return found


def retry_after(exchange: Exchange) -> float | None:
    """The response's Retry-After in seconds, None when absent or unreadable."""
    return parse_retry_after(header(exchange, "retry-after"))


def _burst_body(ctx: CheckContext) -> dict[str, object]:
    return rq.chat_body(ctx.target.models.chat, rq.user("Say OK."), max_tokens=1)


def _send_one(ctx: CheckContext, body: dict[str, object]) -> Exchange:
    setup = ctx.ratelimit
    return ctx.send(
        "POST", "/v1/chat/completions", json_body=body, client=setup.client, key=setup.key, paced=False
    )


def _send_all(ctx: CheckContext, bodies: list[dict[str, object]]) -> list[Exchange]:
    """Send ``bodies`` unpaced on the rate-limit key: in order when few, else by workers (8 each)."""
    workers = 1 if len(bodies) <= SEQUENTIAL_UP_TO else min(32, math.ceil(len(bodies) / 8))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda body: _send_one(ctx, body), bodies))


def _after_429s(ctx: CheckContext, exchanges: list[Exchange]) -> None:
    """Tell the shared pacer to wait out the 429s when the burst used the main key."""
    waits = [retry_after(e) or 1.0 for e in exchanges if e.status == 429]
    if waits and not ctx.ratelimit.dedicated:
        ctx.session.pacer.hold(min(max(waits), MAX_RETRY_WAIT_S))


def _within_window(ctx: CheckContext, sent: list[Exchange], rpm: int) -> list[Exchange]:
    """After a burst that met 429 before ``rpm`` admissions, ask again as Retry-After says (1 s
    without one) until ``rpm`` are admitted or the window that opened with the burst ends."""
    end_ns = min(e.t_start_ns for e in sent) + int(ctx.ratelimit.window_s * 1e9)
    more: list[Exchange] = []
    while sum(200 <= e.status < 300 for e in [*sent, *more]) < rpm and len(more) < rpm:
        last = max((e for e in [*sent, *more] if e.status == 429), key=lambda e: e.t_end_ns, default=None)
        if last is None:
            break
        due_ns = last.t_end_ns + int((retry_after(last) or 1.0) * 1e9)
        if due_ns >= end_ns:
            break
        ctx.session.wait((due_ns - clock.perf_counter_ns()) / 1e9, "the rate-limit key's Retry-After")
        more.append(_send_one(ctx, _burst_body(ctx)))
    return more


@observation(cost=lambda s: Cost(2 * s.rpm + EXTRA, 2 * s.rpm + EXTRA))
def rpm_burst(ctx: CheckContext) -> Burst:
    """From a fresh window, RPM + k small requests at once on the rate-limit key (and, after early
    429s, more within the window as Retry-After says)."""
    setup = ctx.ratelimit
    ctx.session.wait_for_fresh_window()
    exchanges = _send_all(ctx, [_burst_body(ctx) for _ in range(setup.rpm + EXTRA)])
    admitted = sum(200 <= e.status < 300 for e in exchanges)
    if admitted < setup.rpm and any(e.status == 429 for e in exchanges):
        exchanges += _within_window(ctx, exchanges, setup.rpm)
    _after_429s(ctx, exchanges)
    dialect = ctx.profile.ratelimit_dialect
    readings = [rlh.read(e.headers, dialect, clock.time()) for e in exchanges]
    return Burst(exchanges, readings, setup.rpm, setup.window_s)


def _require_429(burst: Burst) -> None:
    """Not seen is not passed: the checks that judge 429s have nothing to judge without one."""
    if not burst.rejected:
        raise NotChecked(
            f"not checked: no 429 was received ({burst.statuses()}; ratelimit_rpm_enforced reports it)"
        )


@check("ratelimit", f"{RATE_LIMITS} (Default RPM; 429 when rate limited)", rules=("ratelimit-never-429",))
@requires("ratelimit")
def ratelimit_rpm_enforced(ctx: CheckContext, rpm_burst: Burst) -> None:
    """A burst of RPM + k requests from a fresh window meets 429s."""
    if rpm_burst.rejected:
        return
    admitted = len(rpm_burst.admitted)
    if admitted <= rpm_burst.rpm:
        raise NotChecked(
            f"not checked: only {admitted} of {len(rpm_burst.exchanges)} requests were admitted "
            f"({rpm_burst.statuses()}), so the {rpm_burst.rpm}-RPM limit was never reached"
        )
    raise Failure(
        title=f"{len(rpm_burst.exchanges)} requests at once on a {rpm_burst.rpm}-RPM key met no 429",
        rule="ratelimit-never-429",
        expected=f"HTTP 429 for the requests beyond {rpm_burst.rpm} in the window",
        received=f"{rpm_burst.statuses()}: {admitted} admitted",
        exchange=rpm_burst.exchanges[-1],
    )


@check("ratelimit", f"{RATE_LIMITS} (RPM: requests per minute)", rules=("ratelimit-over-admit",))
@requires("ratelimit")
def ratelimit_rpm_not_exceeded(ctx: CheckContext, rpm_burst: Burst) -> None:
    """No more than RPM requests are admitted in the burst's window."""
    _require_429(rpm_burst)
    admitted = rpm_burst.in_first_window()
    refill = rpm_burst.refill(max((e.t_start_ns for e in admitted), default=0) - rpm_burst.t0_ns)
    if len(admitted) > rpm_burst.rpm + refill:
        more = f" (and {refill} a continuous refill allows over the burst's time)" if refill else ""
        raise Failure(
            title=f"{len(admitted)} requests were admitted in a window on a {rpm_burst.rpm}-RPM key",
            rule="ratelimit-over-admit",
            expected=f"at most {rpm_burst.rpm} admitted in the window{more}, before a 429 announced a reset",
            received=f"{len(admitted)} admitted; {rpm_burst.statuses()}",
            exchange=admitted[-1],
        )


@check(
    "ratelimit",
    f"{RATE_LIMITS} (Default RPM, configurable per key: the key gets its RPM)",
    rules=("ratelimit-under-admit",),
)
@requires("ratelimit")
def ratelimit_rpm_admitted(ctx: CheckContext, rpm_burst: Burst) -> None:
    """From a fresh window, the key admits its declared RPM within the window (under-admission)."""
    _require_429(rpm_burst)
    end = rpm_burst.t0_ns + int(rpm_burst.window_s * 1e9)
    admitted = [e for e in rpm_burst.admitted if e.t_start_ns < end]
    if len(admitted) < rpm_burst.rpm:
        first_429 = min(rpm_burst.rejected, key=lambda e: e.t_end_ns)
        raise Failure(
            title=f"only {len(admitted)} requests were admitted in a window on a key declared at "
            f"{rpm_burst.rpm} RPM",
            rule="ratelimit-under-admit",
            expected=f"{rpm_burst.rpm} requests admitted within the {rpm_burst.window_s:g} s window that "
            "opened with the burst (the key was unused for a window before it; 429s were retried as "
            "Retry-After said until the window ended)",
            received=f"{len(admitted)} admitted; {rpm_burst.statuses()}; "
            f"first 429: {describe(first_429, 200)}",
            exchange=first_429,
        )


@check(
    "ratelimit",
    f"{RATE_LIMITS} (Retry-After: suggested retry wait time in seconds)",
    rules=("ratelimit-retry-after-missing",),
)
@requires("ratelimit")
def ratelimit_retry_after(ctx: CheckContext, rpm_burst: Burst) -> None:
    """Every 429 carries a valid Retry-After."""
    _require_429(rpm_burst)
    found = []
    for index, exchange in enumerate(rpm_burst.exchanges):
        value = header(exchange, "retry-after")
        if exchange.status == 429 and parse_retry_after(value) is None:
            failure = Failure(
                title="a 429 has no valid Retry-After",
                rule="ratelimit-retry-after-missing",
                expected="Retry-After: delta-seconds (or an HTTP date)",
                received=f"Retry-After {as_json(value)}; {describe(exchange, 200)}",
                exchange=exchange,
            )
            found.append((f"request {index + 1}", failure))
    for failure in one_per_rule(found):
        ctx.record(failure)


def _disagreement(info: rlh.RateLimitInfo, rpm: int, token_limit: int | None = None, tpm: int = 0) -> str:
    """Why a header reading does not describe this key's limits ("" when it does)."""
    if info.limit is not None and info.limit != rpm:
        return f"limit {info.limit} on a key declared at {rpm} RPM"
    if info.remaining is not None and info.remaining > (info.limit if info.limit is not None else rpm):
        return f"remaining {info.remaining} above the limit of {info.limit or rpm}"
    if token_limit is not None and token_limit != tpm:
        return f"token limit {token_limit} on a key declared at {tpm} TPM"
    return ""


def _header_findings(ctx: CheckContext, burst: Burst) -> tuple[list[tuple[str, Failure]], int]:
    """Every header finding of the burst's responses, and how many responses had readable headers."""
    dialect = ctx.profile.ratelimit_dialect
    on_success = dialect in ("openai", "anthropic")
    found: list[tuple[str, Failure]] = []
    readable = 0
    for index, (exchange, info) in enumerate(zip(burst.exchanges, burst.readings, strict=True)):
        where = f"request {index + 1} ({exchange.status})"
        limited, admitted = exchange.status == 429, 200 <= exchange.status < 300
        readable += info.limit is not None or info.remaining is not None
        wrong = _disagreement(info, burst.rpm, rlh.token_limit(exchange.headers), ctx.ratelimit.tpm)
        if wrong and (limited or admitted):
            failure = Failure(
                title="the rate-limit headers do not describe this key's limit",
                rule="ratelimit-headers-disagree",
                expected=f"Limit {burst.rpm} (the key's declared RPM), Remaining at most that, and a token "
                f"limit, if any, of {ctx.ratelimit.tpm} (its TPM) "
                "(002: total limit and remaining requests in the current window; relayed upstream "
                "headers describe someone else's limit)",
                received=f"{wrong}; headers {as_json(dict(exchange.headers))}",
                exchange=exchange,
            )
            found.append((where, failure))
        elif limited and (not info.complete or info.remaining != 0):
            failure = Failure(
                title="a 429 lacks the rate-limit headers (or they say requests remain)",
                rule="ratelimit-headers-missing",
                expected=f"{rlh.expected_headers(dialect)}, Remaining 0 (profile {ctx.profile.name})",
                received=f"limit {as_json(info.limit)}, remaining {as_json(info.remaining)}; "
                f"headers {as_json(dict(exchange.headers))}",
                exchange=exchange,
            )
            found.append((where, failure))
        elif admitted and on_success and not info.complete:
            failure = Failure(
                title="a successful response lacks the rate-limit headers",
                rule="ratelimit-headers-on-success",
                expected=f"{rlh.expected_headers(dialect)} on every response (profile {ctx.profile.name})",
                received=f"headers {as_json(dict(exchange.headers))}",
                exchange=exchange,
            )
            found.append((where, failure))
    return found, readable


@check(
    "ratelimit",
    f"{RATE_LIMITS} (X-RateLimit-Limit, X-RateLimit-Remaining); profile header dialect",
    rules=("ratelimit-headers-missing", "ratelimit-headers-disagree", "ratelimit-headers-on-success"),
)
@requires("ratelimit")
def ratelimit_headers(ctx: CheckContext, rpm_burst: Burst) -> None:
    """Every 429 carries the profile's rate-limit headers with Remaining 0; every response's headers
    agree with the key's declared RPM (and, in OpenAI's dialect, every response carries them)."""
    found, readable = _header_findings(ctx, rpm_burst)
    for failure in one_per_rule(found):
        ctx.record(failure)
    if not found and not rpm_burst.rejected:
        seen = (
            f"the {readable} responses with rate-limit headers agree with the declared RPM; "
            if readable
            else ""
        )
        raise NotChecked(
            f"not checked: no 429 was received ({seen}{rpm_burst.statuses()}; "
            "ratelimit_rpm_enforced reports it)"
        )


@check(
    "ratelimit",
    f"{RATE_LIMITS} (X-RateLimit-Remaining: remaining requests in the current window)",
    rules=("ratelimit-remaining-increases",),
)
@requires("ratelimit")
def ratelimit_remaining_monotonic(ctx: CheckContext, rpm_burst: Burst) -> None:
    """X-RateLimit-Remaining never increases within a window (a new window, a freed slot or a
    bucket's continuous refill may)."""
    _require_429(rpm_burst)
    if any(_disagreement(info, rpm_burst.rpm) for info in rpm_burst.readings):
        raise NotChecked(
            "not checked: the rate-limit headers do not describe this key's limit "
            "(ratelimit_headers reports it)"
        )
    window_end = rpm_burst.t0_ns + int(rpm_burst.window_s * 1e9)
    pairs = list(zip(rpm_burst.exchanges, rpm_burst.readings, strict=True))
    compared = 0
    for earlier, before in pairs:
        for later, after in pairs:
            if not _certainly_before(earlier, later) or before.remaining is None or after.remaining is None:
                continue
            if later.t_start_ns >= window_end or _window_ended(earlier, before, later):
                continue
            compared += 1
            if after.remaining > before.remaining + rpm_burst.refill(later.t_start_ns - earlier.t_end_ns):
                raise Failure(
                    title="Remaining increased within a window",
                    rule="ratelimit-remaining-increases",
                    expected="Remaining never above an earlier response's value until the window resets "
                    "(a reset announced by Retry-After or a reset header, or the window's end)",
                    received=f"Remaining {before.remaining} then {after.remaining} "
                    f"{(later.t_start_ns - earlier.t_end_ns) / 1e6:.1f} ms later",
                    exchange=later,
                )
    if not compared:
        raise NotChecked("not checked: no two responses in one window carried a readable Remaining")


def _certainly_before(first: Exchange, second: Exchange) -> bool:
    """The server answered ``first`` before ``second`` was even sent."""
    return (
        first.t_headers_ns is not None
        and second.t_headers_ns is not None
        and first.t_end_ns < second.t_start_ns
    )


def _window_ended(earlier: Exchange, reading: rlh.RateLimitInfo, later: Exchange) -> bool:
    """``later`` was sent after the reset ``earlier`` announced (its reset header, or its Retry-After).

    A sliding window announces when its oldest admission leaves it; a slot freed then is new room,
    not an increase within the window.
    """
    reset = reading.reset_s if reading.reset_s is not None else retry_after(earlier)
    return reset is not None and (later.t_start_ns - earlier.t_end_ns) / 1e9 >= reset


@check(
    "ratelimit",
    f"{RATE_LIMITS} (429 when rate limited); 002 Error Codes (429 RATE_LIMIT, JSON error bodies)",
    rules=BODY_ERROR_RULES,
)
@requires("ratelimit")
def ratelimit_429_body(ctx: CheckContext, rpm_burst: Burst) -> None:
    """Every 429 of the burst has an error body in the profile's dialect (code RATE_LIMIT in 002's)."""
    _require_429(rpm_burst)
    found = [
        (f"429 to request {i + 1}", f)
        for i, e in enumerate(rpm_burst.exchanges)
        if e.status == 429
        for f in error_body_findings(ctx, e, "a 429")
    ]
    for failure in one_per_rule(found):
        ctx.record(failure)


@check(
    "ratelimit",
    f"{RATE_LIMITS} (Retry-After)",
    cost=Cost(1, 1),
    markers=("slow",),
    rules=("ratelimit-retry-after-long", "ratelimit-retry-after-short"),
)
@requires("ratelimit")
def ratelimit_retry_after_honoured(ctx: CheckContext, rpm_burst: Burst) -> None:
    """After waiting the Retry-After of the last 429, the request succeeds."""
    _require_429(rpm_burst)
    last = max(rpm_burst.rejected, key=lambda e: e.t_end_ns)
    wait = retry_after(last)
    if wait is None:
        raise NotChecked(
            "not checked: the last 429 has no valid Retry-After (ratelimit_retry_after reports it)"
        )
    if wait > MAX_RETRY_WAIT_S:
        raise Failure(
            title=f"Retry-After {wait:g} s is longer than a rate-limit window",
            rule="ratelimit-retry-after-long",
            expected=f"Retry-After of at most a minute ({MAX_RETRY_WAIT_S:g} s allowed)",
            received=f"Retry-After {wait:g}",
            exchange=last,
        )
    ctx.session.wait(wait - (clock.perf_counter_ns() - last.t_end_ns) / 1e9, "the last 429's Retry-After")
    retried = _send_one(ctx, _burst_body(ctx))
    if not 200 <= retried.status < 300:
        raise Failure(
            title=f"the request still failed after waiting Retry-After {wait:g} s",
            rule="ratelimit-retry-after-short",
            expected="HTTP 200 once Retry-After has passed",
            received=describe(retried),
            exchange=retried,
        )
    _after_429s(ctx, [retried])


# ---------------------------------------------------------------- TPM


def _tpm_cost(settings: PlanSettings) -> Cost:
    """Requests that together pass the TPM by one request (each about 1.1 x TPM / k tokens)."""
    return Cost(TPM_MAX_REQUESTS, TPM_MAX_REQUESTS, input_tokens=2 * settings.tpm)


@dataclass
class _TpmRun:
    """What the TPM burst saw so far."""

    plan: cal.TpmBurst
    admitted_tokens: int = 0
    largest: int = 0
    sent: int = 0
    estimated: bool = False

    def admit(self, exchange: Exchange) -> None:
        tokens = cal.total_tokens_of(json_of(exchange))
        self.estimated |= tokens is None
        tokens = self.plan.request_tokens if tokens is None else tokens
        self.admitted_tokens += tokens
        self.largest = max(self.largest, tokens)

    def summary(self) -> str:
        how = "estimated from the calibration" if self.estimated else "by the responses' usage"
        return (
            f"{self.sent} requests of about {self.plan.request_tokens} tokens sent one after another from "
            f"a fresh window; {self.admitted_tokens} tokens admitted ({how})"
        )


@check(
    "ratelimit",
    f"{RATE_LIMITS} (Default TPM; 429 when rate limited)",
    cost=_tpm_cost,
    markers=("costly", "slow"),
    rules=("tpm-unenforced", "tpm-under-admit"),
)
@requires("ratelimit")
def ratelimit_tpm_enforced(
    ctx: CheckContext, chat_context: KnownContext | None, chat_token_rate: cal.TokenRate | str
) -> None:
    """Requests sized in the target's tokens, each well under the TPM, meet a 429 about tokens once
    the tokens admitted in a window pass the TPM (charged before or after serving)."""
    setup = ctx.ratelimit
    if isinstance(chat_token_rate, str):
        raise NotChecked(f"not checked: {chat_token_rate}")
    context = None if chat_context is None else chat_context.tokens
    plan = cal.plan_tpm_burst(setup.tpm, setup.rpm, chat_token_rate, context_length=context)
    if isinstance(plan, str):
        raise NotChecked(f"not checked: {plan}")
    body = rq.chat_body(ctx.target.models.chat, rq.user(cal.filler(plan.units)), max_tokens=plan.max_tokens)
    ctx.session.wait_for_fresh_window()
    run = _TpmRun(plan)
    started = clock.monotonic()
    for _ in range(min(plan.max_requests, TPM_MAX_REQUESTS)):
        if run.admitted_tokens >= plan.tpm:
            clock.sleep(min(SETTLE_S, setup.window_s / 20))
        if clock.monotonic() - started > setup.window_s:
            raise NotChecked(
                f"not checked: the burst outlasted the {setup.window_s:g} s window; {run.summary()}"
            )
        exchange = _send_one(ctx, body)
        run.sent += 1
        if exchange.status == 429:
            _after_429s(ctx, [exchange])
            _judge_tpm_429(run, exchange)
            return
        if not 200 <= exchange.status < 300:
            raise NotChecked(f"not checked: {_refused(run, exchange)}")
        run.admit(exchange)
        if plan.exceeded(run.admitted_tokens, run.largest):
            raise Failure(
                title=f"the tokens admitted passed the {setup.tpm} TPM by more than a request without a 429",
                rule="tpm-unenforced",
                expected=f"HTTP 429 once a window's tokens pass {setup.tpm} (charging a request before or "
                "after serving it, at most one request beyond the TPM is admitted)",
                received=run.summary(),
                exchange=exchange,
            )
    raise NotChecked(f"not checked: {run.summary()}, not enough to pass the TPM by a request")


def _refused(run: _TpmRun, exchange: Exchange) -> str:
    """Why a TPM probe request got neither 2xx nor 429: its own size, or something else."""
    if exchange.status in (400, 413):
        return (
            f"the target refused a probe request of about {run.plan.request_tokens} of its tokens "
            f"({run.plan.units} words) for its own size: {describe(exchange, 200)}"
        )
    return f"TPM probe request {run.sent} was answered {describe(exchange, 200)}"


def _judge_tpm_429(run: _TpmRun, exchange: Exchange) -> None:
    """A 429 in the TPM burst: a TPM verdict when it says tokens, or when requests cannot explain it."""
    plan = run.plan
    named = cal.limit_named(exchange.headers, exchange.body)
    before = run.sent - 1
    if named == "requests" or (named is None and before >= plan.rpm):
        said = "says it is about requests" if named else "does not say which limit it is about"
        raise NotChecked(
            f"not checked: the 429 after {before} requests {said} (the key's RPM is {plan.rpm}), "
            f"so it is no TPM verdict; {run.summary()}"
        )
    if run.admitted_tokens + plan.request_tokens < plan.tpm * (1 - UNDER_ADMIT_TOLERANCE):
        raise Failure(
            title=f"a request was refused for tokens after only {run.admitted_tokens} of {plan.tpm} TPM",
            rule="tpm-under-admit",
            expected=f"requests admitted while the window's tokens, this one's included (about "
            f"{plan.request_tokens}), stay within the TPM of {plan.tpm}",
            received=f"{run.summary()}; then {describe(exchange, 200)}",
            exchange=exchange,
        )

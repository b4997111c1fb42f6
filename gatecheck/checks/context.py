"""What a check talks to: one ``Session`` per target, one ``CheckContext`` per running check.

The session owns the client, the shared pacer, the request budget and the memoised observations.
Every request a check sends goes through ``CheckContext.send``, which paces it under the target's
declared limits, waits out and retries a 429 (bounded) so an unrelated check never reports a rate
limit as its failure, counts it against the budget and against the check (or observation) that
sent it, so the costs declared for ``--plan`` can be verified.

The session also keeps the run alive and bounded: each key is paced by its own declared limits;
after a request times out, stalls or loses its connection the target is probed (``GET /v1/models``,
any HTTP answer counts), and when it no longer answers nothing more is sent: every later request
and check ends "not checked: the target stopped answering after <check>". Past the run's deadline
the same happens with "not checked: deadline".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from gatecheck import clock
from gatecheck._headers import parse_retry_after
from gatecheck.checks.base import OBSERVATIONS, Check, Failure, NotChecked
from gatecheck.checks.pacing import Pacer, PacingTimeout, Ticket
from gatecheck.redaction import Secret

if TYPE_CHECKING:
    from gatecheck.client import Client, Exchange
    from gatecheck.config import Target
    from gatecheck.profiles import Profile
    from gatecheck.schemas import SchemaStore
    from gatecheck.upstream.control import Control

RETRIES_ON_429 = 3
"""How many times a paced request is retried after a 429 before the check gives up (SKIP)."""

MAX_RETRY_WAIT_S = 65.0
"""The longest Retry-After honoured for one retry (a minute window plus slack)."""

PACING_BOUND_S = 120.0
"""The longest one request waits for a pacing slot before its check gives up (not checked)."""

TRANSPORT_FAILURES = frozenset(
    {"connect", "connect_timeout", "read_timeout", "write_timeout", "pool_timeout", "total_timeout", "stall"}
    | {"protocol", "network"}
)
"""Exchange errors after which the target is probed: did it stop answering altogether?"""

PROBE_ATTEMPTS = 2
PROBE_PAUSE_S = 1.0
PROBE_TIMEOUT_S = 5.0
"""A liveness probe: up to two bounded ``GET /v1/models``, a second apart; any HTTP answer is alive."""


def _quiet(_line: str) -> None:
    """The default ``notify``: say nothing."""


@dataclass(frozen=True)
class RateLimitSetup:
    """Where the rate-limit checks send their bursts, and the limits declared for that key.

    ``dedicated`` is true when the key is not the one the other checks use (a second key, or the
    embedded gateway's small-limit key), so bursting it disturbs nothing else. ``window_s`` is the
    limits' window: a minute, as RPM and TPM say (the embedded gateway's is shorter).
    """

    client: Client
    key: Secret | None
    rpm: int
    tpm: int
    dedicated: bool
    window_s: float = 60.0


PairStarter = Callable[[], AbstractContextManager[tuple[str, str]]]
"""Starts the upstream area's embedded pair: yields its gateway's URL and its harness's."""


class Wire:
    """How a session reaches its target: here, live sockets (and the embedded gateway started for real).

    ``gatecheck.cassettes`` derives a ``Recorder`` (live, every exchange kept per check) and a
    ``Replayer`` (no network: the recorded exchanges, on a virtual clock). The session tells it
    which check runs (``begin``); the checks never know which wire they are on.
    """

    @contextmanager
    def embedded_gateway(self, config: Any) -> Iterator[str]:
        """Start the reference gateway with ``config`` for the session; its URL."""
        from gatecheck.reference import start_in_thread

        with start_in_thread(config) as gateway:
            yield gateway.url

    def client(self, target: Target) -> Client:
        """A client on ``target`` (the session's main client, or its liveness probe)."""
        from gatecheck.client import Client

        return Client(target)

    @contextmanager
    def upstream_pair(self, start: PairStarter) -> Iterator[tuple[str, str]]:
        """The upstream area's embedded pair, started by ``start`` (a harness and a gateway proxying
        to it): the gateway's URL and the harness's."""
        with start() as urls:
            yield urls

    def control(self, url: str) -> Control:
        """A client of the harness's control API at ``url`` (the upstream area)."""
        from gatecheck.upstream.control import Control

        return Control(url)

    def begin(self, check_id: str) -> None:
        """``check_id`` starts: the requests from now on are its (checks run one at a time)."""


@dataclass(frozen=True)
class RunSettings:
    """Run parameters that are not part of the target."""

    fuzz_examples: int = 10
    fuzz_seed: int = 0
    close_grace_s: float = 2.0
    deadline_s: float | None = None
    """The whole run's bound (``--deadline``); None: unbounded."""
    notify: Callable[[str], None] = _quiet
    """Where a waiting or stopping notice goes (one line, no newline)."""
    wire: Wire = field(default_factory=Wire)
    """Live sockets, a recording of them, or a replay (``gatecheck.cassettes``)."""


@dataclass
class Session:
    """Everything one run against one target shares."""

    target: Target
    profile: Profile
    client: Client
    store: SchemaStore
    pacer: Pacer
    ratelimit: RateLimitSetup
    settings: RunSettings = field(default_factory=RunSettings)
    secrets: tuple[Secret, ...] = ()
    observations: dict[str, Any] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    requests_sent: int = 0
    last_sent: dict[str, float] = field(default_factory=dict)
    """When a request on the main key (``main``) or the rate-limit key (``ratelimit``) last ended."""
    pacer_2: Pacer | None = None
    """The second key's pacer, under its own declared limits (None: no second key to pace)."""
    probe_client: Client | None = None
    """A client with short bounds for liveness probes (None: never probe)."""
    deadline: float | None = None
    """``clock.monotonic()`` past which nothing more is started (from ``settings.deadline_s``)."""
    stopped: str | None = None
    """Why nothing more is sent ("not checked: ..."), once the target died or the deadline passed."""
    probes: int = 0
    embedded: bool = False
    """The target is the embedded reference gateway (started for this session)."""
    resources: ExitStack = field(default_factory=ExitStack, repr=False)
    """Closed with the session: what an observation started (the upstream area's embedded pair)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.deadline is None and self.settings.deadline_s is not None:
            self.deadline = clock.monotonic() + self.settings.deadline_s

    def context(self, check: Check) -> CheckContext:
        """A fresh context for one run of ``check`` (the wire is told it starts)."""
        self.settings.wire.begin(check.id)
        return CheckContext(self, check)

    def pacer_for(self, key: Secret | str | None) -> Pacer:
        """The pacer of the key a request uses: the second key's own, else the main one."""
        if self.pacer_2 is not None and key is not None and key == self.target.api_key_2:
            return self.pacer_2
        return self.pacer

    def remaining_s(self) -> float:
        """Seconds left before the run's deadline (infinite without one)."""
        return float("inf") if self.deadline is None else self.deadline - clock.monotonic()

    def guard(self) -> None:
        """Raise ``NotChecked`` once nothing more may be sent (the target stopped answering, the deadline)."""
        if self.stopped is None and self.remaining_s() <= 0:
            self.stop(self.deadline_reason())
        if self.stopped is not None:
            raise NotChecked(self.stopped)

    def stop(self, reason: str) -> None:
        """From now on every check and request ends as ``reason`` (the first reason stays)."""
        with self._lock:
            first = self.stopped is None
            if first:
                self.stopped = reason
        if first:
            self.settings.notify(
                f"{reason.removeprefix('not checked: ')}: the remaining checks are not checked"
            )

    def deadline_reason(self) -> str:
        """The reason every check left at the deadline is given."""
        minutes = (self.settings.deadline_s or 0) / 60
        return f"not checked: the run's deadline (--deadline {minutes:g} min) passed"

    def after(self, exchange: Exchange, check_id: str) -> None:
        """After a transport failure, probe the target; when it no longer answers, stop the run there."""
        if self.stopped is not None or exchange.error_kind not in TRANSPORT_FAILURES:
            return
        if not self.answers():
            self.stop(f"not checked: the target stopped answering after {check_id}")

    def answers(self) -> bool:
        """Whether the target gives any HTTP answer to a bounded ``GET /v1/models`` (True: not probed)."""
        if self.probe_client is None:
            return True
        for attempt in range(PROBE_ATTEMPTS):
            if attempt:
                clock.sleep(PROBE_PAUSE_S)
            with self._lock:
                self.probes += 1
            if self.probe_client.send("GET", "/v1/models").status != 0:
                return True
        return False

    def wait(self, seconds: float, why: str) -> None:
        """Sleep ``seconds`` (not past the deadline), announcing it when it is a second or more."""
        seconds = max(0.0, min(seconds, self.remaining_s()))
        if seconds >= 1:
            self.settings.notify(f"waiting {seconds:.0f} s: {why}")
        clock.sleep(seconds)

    def charge(self, account: str) -> None:
        """Count one request against the budget and ``account``; refuse past the budget (thread-safe)."""
        with self._lock:
            if self.requests_sent >= self.target.max_requests:
                budget = self.target.max_requests
                raise NotChecked(f"not checked: the budget of {budget} requests (--budget-requests) is spent")
            self.requests_sent += 1
            self.spent[account] = self.spent.get(account, 0) + 1

    def key_account(self, key: Secret | str | None) -> str:
        """Which key a request used, for ``last_sent``: ``main``, ``ratelimit`` or ``other``."""
        if key is None or key is self.target.api_key:
            return "main"
        return "ratelimit" if key is self.ratelimit.key else "other"

    def quiet_s(self, account: str) -> float:
        """Seconds since a request on ``account`` last ended (infinite when none was sent)."""
        last = self.last_sent.get(account)
        return float("inf") if last is None else clock.monotonic() - last

    def wait_for_fresh_window(self) -> float:
        """Sleep until the rate-limit key has been quiet for a whole window; the seconds slept.

        Whatever the server's window algorithm (fixed, sliding, token bucket), a key nobody used
        for a window starts the next request with its whole allowance; 5% absorbs network delay.
        """
        window = self.ratelimit.window_s * 1.05
        wait = max(0.0, window - self.quiet_s(self.key_account(self.ratelimit.key)))
        self.wait(wait, "a fresh rate-limit window (the key unused for a whole window)")
        return wait


class CheckContext:
    """A check's handle on the target: send requests, share observations, record failures."""

    def __init__(self, session: Session, check: Check) -> None:
        self.session = session
        self.check = check
        self.failures: list[Failure] = []
        self._account = check.id
        self._stalled = ""

    @property
    def target(self) -> Target:
        """The target under test."""
        return self.session.target

    @property
    def profile(self) -> Profile:
        """The profile the verdicts follow."""
        return self.session.profile

    @property
    def store(self) -> SchemaStore:
        """The schema store every response is validated with."""
        return self.session.store

    @property
    def settings(self) -> RunSettings:
        """Run parameters (fuzz examples, seed, grace periods)."""
        return self.session.settings

    @property
    def ratelimit(self) -> RateLimitSetup:
        """Where rate-limit bursts go."""
        return self.session.ratelimit

    def record(self, failure: Failure) -> None:
        """Note a failure and let the check go on."""
        self.failures.append(failure)

    def owned_by(self, owner: str, failure: Failure) -> NoReturn:
        """End the check on a root cause ``owner`` reports: that check fails, any other is not checked.

        For what a check needs but does not judge (a shared stream that was answered 500, cut or
        stalled): the finding is the owner's alone, the others say why they could not judge.
        """
        if self.check.id == owner:
            raise failure
        raise NotChecked(f"not checked: {failure.title} ({owner} reports it)")

    def record_if_owner(self, owner: str, failure: Failure) -> None:
        """Record ``failure`` only in the check ``owner``; in any other check it is the owner's finding."""
        if self.check.id == owner:
            self.record(failure)

    def observe(self, name: str) -> Any:
        """The value of observation ``name``, produced once per session and charged to it."""
        if name not in self.check.observations:
            raise RuntimeError(
                f"check {self.check.id} uses observation {name!r} without naming it as a parameter"
            )
        if name not in self.session.observations:
            previous, self._account = self._account, f"observation:{name}"
            try:
                self.session.observations[name] = OBSERVATIONS[name].func(self)
            finally:
                self._account = previous
        return self.session.observations[name]

    def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str = "default",
        key: Secret | str | None = None,
        client: Client | None = None,
        paced: bool = True,
        tokens: int | None = None,
    ) -> Exchange:
        """Send one request: paced, budgeted, 429s waited out and retried unless ``paced`` is false.

        Output limits in the body are capped at the target's ``max_output_tokens``; ``tokens``
        overrides the pacing estimate (a request the target must reject costs nothing).
        """
        chosen = client or self.session.client
        json_body = capped(json_body, self.target.max_output_tokens)
        account = self.session.key_account(key)
        self.session.guard()
        self._refuse_second_stall(json_body)
        if not paced:
            self.session.charge(self._account)
            exchange = self._sent(
                chosen.send(
                    method, path, json=json_body, content=content, headers=headers, auth=auth, key=key
                )
            )
            self.session.last_sent[account] = clock.monotonic()
            return exchange
        if tokens is None:
            tokens = estimate_tokens(json_body, self.target.max_output_tokens)
        pacer = self.session.pacer_for(key)
        for attempt in range(RETRIES_ON_429 + 1):
            ticket = self._slot(pacer, tokens)
            self.session.charge(self._account)
            exchange = self._sent(
                chosen.send(
                    method, path, json=json_body, content=content, headers=headers, auth=auth, key=key
                )
            )
            self.session.last_sent[account] = clock.monotonic()
            pacer.settle(ticket, used_tokens(exchange, tokens))
            if exchange.status != 429:
                return exchange
            wait = retry_after_seconds(exchange, default=2.0**attempt)
            if attempt == RETRIES_ON_429:
                break
            pacer.hold(min(wait, MAX_RETRY_WAIT_S))
        raise NotChecked(
            f"not checked: {method} {path} met 429 {RETRIES_ON_429 + 1} times although the "
            f"suite paces under the declared limits ({pacer.describe()}); "
            "declare lower limits with --rpm/--tpm (--rpm-2/--tpm-2 for the second key)"
        )

    def _slot(self, pacer: Pacer, tokens: int) -> Ticket:
        """A pacing slot, waited for no longer than the pacing bound or the run's deadline."""
        remaining = self.session.remaining_s()
        try:
            return pacer.acquire(tokens, max_wait_s=min(PACING_BOUND_S, max(0.0, remaining)))
        except PacingTimeout as exc:
            if remaining < PACING_BOUND_S:  # the deadline comes first: the run ends there
                self.session.stop(self.session.deadline_reason())
                self.session.guard()
            raise NotChecked(f"not checked: {exc} (the declared --rpm/--tpm leave no room)") from None

    def _sent(self, exchange: Exchange) -> Exchange:
        """Note the exchange with the session (a transport failure makes it probe the target)."""
        if exchange.error_kind == "stall":
            self._stalled = exchange.error or "stalled"
        self.session.after(exchange, self.check.id)
        return exchange

    def _refuse_second_stall(self, json_body: Any) -> None:
        """One stall per check: a check whose stream stalled sends no further stream (one root cause).

        Each would wait out ``--stall-seconds`` again to show the same thing; the check ends there,
        keeping what it found ("not checked" for the rest).
        """
        if self._stalled and isinstance(json_body, Mapping) and json_body.get("stream") is True:
            raise NotChecked(
                f"not checked: a stream of this check already stalled ({self._stalled}); "
                "its further streamed requests were not sent"
            )

    def chat(self, body: Mapping[str, Any], **kwargs: Any) -> Exchange:
        """POST ``body`` to /v1/chat/completions."""
        return self.send("POST", "/v1/chat/completions", json_body=dict(body), **kwargs)


def capped(body: Any, cap: int) -> Any:
    """``body`` with any integer output limit above ``cap`` (``--max-output-tokens``) lowered to it."""
    if not isinstance(body, Mapping):
        return body
    over = [f for f in ("max_tokens", "max_completion_tokens") if _is_int(body.get(f)) and body[f] > cap]
    return {**body, **dict.fromkeys(over, cap)} if over else body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def estimate_tokens(body: Any, default_output: int) -> int:
    """A generous token estimate for pacing: a token per 3 characters of request, plus the output cap."""
    if not isinstance(body, Mapping):
        return 1
    prompt = len(json.dumps(body, ensure_ascii=False)) // 3 + 1
    cap = body.get("max_tokens") or body.get("max_completion_tokens") or default_output
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    output = cap if isinstance(cap, int) and cap > 0 else default_output
    return prompt + output * max(1, n or 1)


def used_tokens(exchange: Exchange, estimate: int) -> int:
    """What the response says the request cost (usage), else the estimate."""
    if exchange.status >= 400 or "stream" in exchange.headers.get("content-type", ""):
        return estimate if exchange.status < 400 else 0
    try:
        usage = exchange.json().get("usage")
    except (ValueError, AttributeError):
        return estimate
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    if isinstance(total, int):
        return total
    if isinstance(usage, dict) and isinstance(usage.get("input_tokens"), int):
        return int(usage["input_tokens"]) + int(usage.get("output_tokens") or 0)
    return estimate


def retry_after_seconds(exchange: Exchange, default: float) -> float:
    """Retry-After as seconds (delta-seconds or an HTTP date), else ``default``."""
    parsed = parse_retry_after(exchange.headers.get("retry-after"))
    return default if parsed is None else parsed

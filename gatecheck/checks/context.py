"""What a check talks to: one ``Session`` per target, one ``CheckContext`` per running check.

The session owns the client, the shared pacer, the request budget and the memoised observations.
Every request a check sends goes through ``CheckContext.send``, which paces it under the target's
declared limits, waits out and retries a 429 (bounded) so an unrelated check never reports a rate
limit as its failure, counts it against the budget and against the check (or observation) that
sent it, so the costs declared for ``--plan`` can be verified.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from gatecheck._headers import parse_retry_after
from gatecheck.checks.base import OBSERVATIONS, Check, Failure, NotChecked
from gatecheck.checks.pacing import Pacer, PacingTimeout
from gatecheck.redaction import Secret

if TYPE_CHECKING:
    from gatecheck.client import Client, Exchange
    from gatecheck.config import Target
    from gatecheck.profiles import Profile
    from gatecheck.schemas import SchemaStore

RETRIES_ON_429 = 3
"""How many times a paced request is retried after a 429 before the check gives up (SKIP)."""

MAX_RETRY_WAIT_S = 65.0
"""The longest Retry-After honoured for one retry (a minute window plus slack)."""


@dataclass(frozen=True)
class RateLimitSetup:
    """Where the rate-limit checks send their bursts, and the limits declared for that key.

    ``dedicated`` is true when the key is not the one the other checks use (a second key, or the
    embedded gateway's small-limit key), so bursting it disturbs nothing else.
    """

    client: Client
    key: Secret | None
    rpm: int
    tpm: int
    dedicated: bool


@dataclass(frozen=True)
class RunSettings:
    """Run parameters that are not part of the target."""

    fuzz_examples: int = 10
    fuzz_seed: int = 0
    close_grace_s: float = 2.0


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
    embedded: bool = False
    """The target is the embedded reference gateway (started for this session)."""
    resources: ExitStack = field(default_factory=ExitStack, repr=False)
    """Closed with the session: what an observation started (the upstream area's embedded pair)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def context(self, check: Check) -> CheckContext:
        """A fresh context for one run of ``check``."""
        return CheckContext(self, check)

    def charge(self, account: str) -> None:
        """Count one request against the budget and ``account``; refuse past the budget (thread-safe)."""
        with self._lock:
            if self.requests_sent >= self.target.max_requests:
                budget = self.target.max_requests
                raise NotChecked(f"not checked: the budget of {budget} requests (--budget-requests) is spent")
            self.requests_sent += 1
            self.spent[account] = self.spent.get(account, 0) + 1


class CheckContext:
    """A check's handle on the target: send requests, share observations, record failures."""

    def __init__(self, session: Session, check: Check) -> None:
        self.session = session
        self.check = check
        self.failures: list[Failure] = []
        self._account = check.id

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
        if not paced:
            self.session.charge(self._account)
            return chosen.send(
                method, path, json=json_body, content=content, headers=headers, auth=auth, key=key
            )
        if tokens is None:
            tokens = estimate_tokens(json_body, self.target.max_output_tokens)
        for attempt in range(RETRIES_ON_429 + 1):
            try:
                ticket = self.session.pacer.acquire(tokens)
            except PacingTimeout as exc:
                raise NotChecked(f"not checked: {exc} (the declared --rpm/--tpm leave no room)") from None
            self.session.charge(self._account)
            exchange = chosen.send(
                method, path, json=json_body, content=content, headers=headers, auth=auth, key=key
            )
            self.session.pacer.settle(ticket, used_tokens(exchange, tokens))
            if exchange.status != 429:
                return exchange
            wait = retry_after_seconds(exchange, default=2.0**attempt)
            if attempt == RETRIES_ON_429:
                break
            self.session.pacer.hold(min(wait, MAX_RETRY_WAIT_S))
        raise NotChecked(
            f"not checked: {method} {path} met 429 {RETRIES_ON_429 + 1} times although the "
            f"suite paces under the declared limits ({self.target.rpm} rpm, {self.target.tpm} tpm); "
            "declare lower limits with --rpm/--tpm"
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

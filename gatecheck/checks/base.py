"""The check framework: failures, costs, the registry and the decorators that fill it.

A check is a small function whose name is its id (in pytest node ids, JUnit, JSON and the CLI). Its
first parameter is the ``CheckContext``; every further parameter names an *observation*, a shared,
memoised request (one streamed answer serves a dozen stream checks), so the registry knows from the
signature alone what a check will send, and ``gatecheck conform --plan`` can price a run before
it starts. Preconditions are decorators: ``@requires("streaming")`` turns a capability the target
declares it lacks into a SKIP with that reason; ``@profile_rule("x_api_key_everywhere")`` makes a
check apply only under profiles that state that rule.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from gatecheck.client import Exchange
    from gatecheck.profiles import Profile

Severity = Literal["fail", "warn"]

AREAS: dict[str, str] = {
    "nonstream": "non-streaming chat completions",
    "stream": "streaming chat completions (SSE)",
    "tools": "tool calling",
    "json": "JSON mode and structured output",
    "errors": "authentication, status codes and error bodies",
    "ratelimit": "rate limits (RPM, TPM) and their headers",
    "anthropic": "the Anthropic-compatible /v1/messages endpoint",
    "aux": "auxiliary endpoints: models, balance, images, search",
    "fuzz": "requests generated from the request schema",
    "upstream": "behind the gateway: what it does with its upstream's failures (needs --upstream)",
}
"""Every area; each is also a pytest marker."""

EXTRA_MARKERS: dict[str, str] = {
    "slow": "waits out a rate-limit window (Retry-After)",
    "costly": "spends many tokens (TPM burst) on a real target",
    "heavy": "sends one very large request (the over-long prompt); runs after every other check",
}

FAMILIES: tuple[str, ...] = (
    "chat",
    "tools",
    "stream",
    "anthropic",
    "errors",
    "ratelimit",
    "auxiliary",
    "fuzz",
    "upstream",
)
"""The family modules in registration order; ``auxiliary`` holds the ``aux`` area (``AUX`` is a reserved
file name on Windows)."""


@dataclass(eq=False)
class Failure(Exception):
    """One broken rule, with everything a reader needs to judge it and reproduce it.

    Raised from a check it ends the check; passed to ``CheckContext.record`` it is noted and the
    check goes on. ``rule`` is a registered rule id (``gatecheck/rules.toml``): its provenance
    decides, through the profile, the ``severity`` the runner grades the failure with; checks do
    not set the severity themselves.
    """

    title: str
    rule: str
    expected: str
    received: str
    citation: str = ""
    severity: Severity = "fail"
    exchange: Exchange | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__init__(self.title)

    def __str__(self) -> str:
        return self.title

    def key(self) -> tuple[str, str, str, str]:
        """What makes two failures the same finding (used to deduplicate)."""
        return (self.rule, self.title, self.expected, self.received)


class NotChecked(Exception):
    """The check could not reach a verdict for a reason that is not the target's fault.

    Raised by the context (the request budget is spent, the target kept answering 429 to an
    unrelated request); the result is a SKIP carrying this reason.
    """


PROMPT_TOKENS_PER_REQUEST = 200
"""What a plan counts for the prompt of an ordinary request (ours are a few dozen to ~150 tokens)."""


@dataclass(frozen=True, slots=True)
class Cost:
    """An upper bound on what running something spends: requests and output tokens.

    ``input_tokens`` are prompt tokens *beyond* ``PROMPT_TOKENS_PER_REQUEST`` per request: only a
    check sending large prompts (a TPM burst, an over-long prompt) declares them.
    """

    requests: int = 0
    output_tokens: int = 0
    input_tokens: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.requests + other.requests,
            self.output_tokens + other.output_tokens,
            self.input_tokens + other.input_tokens,
        )

    def times(self, count: int) -> Cost:
        """This cost ``count`` times over."""
        return Cost(self.requests * count, self.output_tokens * count, self.input_tokens * count)

    @property
    def prompt_tokens(self) -> int:
        """An estimate of every prompt token sent: the ordinary prompts plus the declared large ones."""
        return self.requests * PROMPT_TOKENS_PER_REQUEST + self.input_tokens


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The run parameters a cost can depend on."""

    rpm: int
    tpm: int
    fuzz_examples: int
    max_output_tokens: int
    context_length: int | None = None
    """The chat model's context length when declared or documented (None: unknown before the run)."""


CostSpec = Cost | Callable[[PlanSettings], Cost]


def _resolve(cost: CostSpec, settings: PlanSettings) -> Cost:
    return cost(settings) if callable(cost) else cost


@dataclass(frozen=True)
class Observation:
    """A named, memoised request shared by checks (its name is the parameter name checks use)."""

    name: str
    func: Callable[..., Any]
    cost: CostSpec

    def cost_for(self, settings: PlanSettings) -> Cost:
        """Its price under ``settings``."""
        return _resolve(self.cost, settings)


@dataclass(frozen=True)
class Check:
    """One registered check: its id, area, citation, preconditions and what it spends."""

    id: str
    area: str
    citation: str
    func: Callable[..., None]
    doc: str
    observations: tuple[str, ...]
    cost: CostSpec = Cost()
    requires: frozenset[str] = frozenset()
    profile_rules: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    def own_cost(self, settings: PlanSettings) -> Cost:
        """Requests the check sends itself, beyond its shared observations."""
        return _resolve(self.cost, settings)

    @property
    def all_markers(self) -> tuple[str, ...]:
        """The area marker first, then any extra markers."""
        return (self.area, *(m for m in self.markers if m != self.area))


CHECKS: dict[str, Check] = {}
"""Every registered check by id, in registration order."""

OBSERVATIONS: dict[str, Observation] = {}
"""Every registered observation by name."""

F = TypeVar("F", bound=Callable[..., Any])


def observation(cost: CostSpec) -> Callable[[F], F]:
    """Register a memoised request producer; checks receive its value by naming it as a parameter."""

    def decorate(func: F) -> F:
        name = func.__name__
        if name in OBSERVATIONS:
            raise ValueError(f"observation {name!r} registered twice")
        OBSERVATIONS[name] = Observation(name, func, cost)
        return func

    return decorate


def check(
    area: str,
    citation: str,
    *,
    cost: CostSpec = Cost(),
    markers: Iterable[str] = (),
    rules: Iterable[str] = (),
) -> Callable[[Callable[..., None]], Check]:
    """Register ``func`` as a check; apply it *outermost* (above ``requires``/``profile_rule``).

    ``rules`` are the ids (``gatecheck/rules.toml``) of every rule the check can report: the
    check owns them, ``--list`` shows them with their provenance, and the runner notes a finding
    of any other rule as a gatecheck bug (one root cause, one finding, in the check that owns it).
    """
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; areas: {', '.join(AREAS)}")
    extra = tuple(markers)
    unknown = [m for m in extra if m not in AREAS and m not in EXTRA_MARKERS]
    if unknown:
        raise ValueError(f"unknown markers {unknown}")

    def decorate(func: Callable[..., None]) -> Check:
        params = list(inspect.signature(func).parameters)
        if not params or params[0] != "ctx":
            raise TypeError(f"check {func.__name__} must take ctx as its first parameter")
        missing = [p for p in params[1:] if p not in OBSERVATIONS]
        if missing:
            raise TypeError(f"check {func.__name__} names unknown observations {missing}")
        if func.__name__ in CHECKS:
            raise ValueError(f"check {func.__name__!r} registered twice")
        made = Check(
            id=func.__name__,
            area=area,
            citation=citation,
            func=func,
            doc=_first_line(func),
            observations=tuple(params[1:]),
            cost=cost,
            requires=frozenset(getattr(func, "_gatecheck_requires", ())),
            profile_rules=tuple(getattr(func, "_gatecheck_profile_rules", ())),
            markers=extra,
            rules=tuple(rules),
        )
        CHECKS[made.id] = made
        return made

    return decorate


def requires(*capabilities: str) -> Callable[[F], F]:
    """Precondition: the target must claim every capability, or the check is a SKIP saying so."""

    def decorate(func: F) -> F:
        func._gatecheck_requires = (*getattr(func, "_gatecheck_requires", ()), *capabilities)  # type: ignore[attr-defined]
        return func

    return decorate


def profile_rule(name: str) -> Callable[[F], F]:
    """Precondition: the check applies only under profiles whose rule ``name`` is true."""

    def decorate(func: F) -> F:
        func._gatecheck_profile_rules = (*getattr(func, "_gatecheck_profile_rules", ()), name)  # type: ignore[attr-defined]
        return func

    return decorate


@dataclass(frozen=True)
class CheckGroup:
    """The checks of some areas, as a conformance suite module declares them for collection.

    ``conformance/test_stream.py`` holds ``STREAM = CheckGroup("stream")``; the pytest plugin turns
    each such module attribute into one pytest item per check, named by the check id.
    """

    areas: tuple[str, ...]

    def __init__(self, *areas: str) -> None:
        unknown = [a for a in areas if a not in AREAS]
        if unknown:
            raise ValueError(f"unknown areas {unknown}; areas: {', '.join(AREAS)}")
        object.__setattr__(self, "areas", areas)

    def checks(self) -> list[Check]:
        """The registered checks of these areas, in registration order."""
        return [c for c in load_all().values() if c.area in self.areas]


def plan_cost(checks: Iterable[Check], settings: PlanSettings) -> Cost:
    """What running ``checks`` spends at most: each shared observation once, plus each check's own.

    Output tokens are also bounded by the per-request cap (``CheckContext.send`` clamps every
    ``max_tokens`` to ``--max-output-tokens``).
    """
    chosen = list(checks)
    names = {name for c in chosen for name in c.observations}
    total = sum((OBSERVATIONS[n].cost_for(settings) for n in sorted(names)), Cost())
    total = sum((c.own_cost(settings) for c in chosen), total)
    capped = min(total.output_tokens, total.requests * settings.max_output_tokens)
    return Cost(total.requests, capped, total.input_tokens)


def with_severity(failure: Failure, profile: Profile) -> Failure | None:
    """The failure as the profile grades its rule: severity set, or None when the profile ignores it."""
    try:
        graded = profile.severity_of(failure.rule)
    except KeyError:  # an unregistered rule is a gatecheck bug (tests/test_rules.py): never hide it
        graded = "fail"
    if graded == "ignore":
        return None
    return replace(failure, severity="warn" if graded == "warn" else "fail")


def _first_line(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.splitlines()[0] if doc else ""


def load_all() -> dict[str, Check]:
    """Import every family module so all checks are registered; returns the registry."""
    for family in FAMILIES:
        importlib.import_module(f"gatecheck.checks.{family}")
    return CHECKS


def owned_elsewhere(check_id: str, observation_name: str) -> set[str]:
    """The rules the other checks reading ``observation_name`` own (an issue of theirs is their finding)."""
    return {
        rule
        for other in CHECKS.values()
        if other.id != check_id and observation_name in other.observations
        for rule in other.rules
    }

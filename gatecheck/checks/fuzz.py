"""Requests generated from the request schema (hypothesis + hypothesis-jsonschema).

Valid requests are drawn from ``openai.chat.request`` itself, then pinned to the target's chat
model with output capped (``max_tokens`` at most ``FUZZ_MAX_TOKENS``, n at most 2) so a run's spend
is bounded: each must get a 2xx with a schema-valid body (or stream) or a documented 4xx.
Invalid requests are the same drawn requests with one schema constraint broken (``negative.py``,
the constraint picked by a generator seeded like hypothesis): never a 2xx, never a 5xx. Examples
are drawn once for both checks (drawing from this schema costs most of a second each), capped by
``--fuzz-examples``, without shrinking (it would send more requests) or an example database; the
seed is in every message for replay.

A broken constraint carries its rule: one the documents state is ``fuzz-invalid-request``, one
only OpenAI's reference states is ``request-protocol-constraint`` (a warning under ``gateway``);
the answers' schema issues likewise take the rule of the constraint (``null-optional-field``...).
Findings are one per rule, the first quoted and the rest counted. Zero examples is not checked.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gatecheck.checks.base import Cost, Failure, NotChecked, PlanSettings, check, observation
from gatecheck.checks.context import CheckContext
from gatecheck.checks.errors import InvalidAnswer, one_per_rule
from gatecheck.checks.negative import broken_rule, negative_cases
from gatecheck.checks.wire import as_dict, describe, excerpt, invalid_events, schema_failures
from gatecheck.errors import SSEError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from gatecheck.client import Exchange

FUZZ_MAX_TOKENS = 16
DOCUMENTED_4XX = (400, 404)
"""002 Error Codes a valid-by-schema request may still meet (e.g. a reasoning option the model refuses)."""

SCHEMA = "openai.chat.request"


def _valid_cost(settings: PlanSettings) -> Cost:
    return Cost(settings.fuzz_examples, settings.fuzz_examples * FUZZ_MAX_TOKENS * 2)


def _invalid_cost(settings: PlanSettings) -> Cost:
    return Cost(settings.fuzz_examples, 0)


def pinned(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A generated request pinned to the target's model with its output capped."""
    made = {**body, "model": model}
    for field in ("max_tokens", "max_completion_tokens"):
        if isinstance(made.get(field), int):
            made[field] = min(made[field], FUZZ_MAX_TOKENS)
    if not isinstance(made.get("max_completion_tokens"), int):
        made["max_tokens"] = (
            min(made["max_tokens"], FUZZ_MAX_TOKENS)
            if isinstance(made.get("max_tokens"), int)
            else FUZZ_MAX_TOKENS
        )
    if isinstance(made.get("n"), int):
        made["n"] = min(made["n"], 2)
    return made


def _strategy(ctx: CheckContext) -> SearchStrategy[Any]:
    from hypothesis_jsonschema import from_schema

    return from_schema(ctx.store.bundled(SCHEMA)).map(lambda b: pinned(as_dict(b), ctx.target.models.chat))


def _replay_note(ctx: CheckContext) -> str:
    return f"(fuzz seed {ctx.settings.fuzz_seed}: rerun with --fuzz-seed {ctx.settings.fuzz_seed} to replay)"


@contextmanager
def _own_constants_only() -> Iterator[None]:
    """Draw without the literals of the process's own modules, so a seed draws the same requests anywhere.

    Hypothesis (6.131 on) mixes string and number literals of every loaded non-library module into
    its draws: the same seed drew other requests in a ``gatecheck conform`` run (the reference
    gateway's modules loaded) than in another process, and a replay could not match them. Its
    internal hook is replaced for the draw (hypothesis is pinned below 6.170.10 in pyproject.toml;
    without the hook the draw is left as it is).
    """
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:  # pragma: no cover - another hypothesis layout: nothing to neutralise
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    if original is None:  # pragma: no cover
        yield
        return
    providers.CONSTANTS_CACHE.cache.clear()  # entries computed with the local constants
    providers._get_local_constants = Constants
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()


@observation(cost=Cost())
def fuzz_requests(ctx: CheckContext) -> list[dict[str, Any]]:
    """Up to --fuzz-examples schema-valid requests drawn by hypothesis (seeded; nothing is sent here)."""
    from hypothesis import HealthCheck, Phase, given, seed, settings

    drawn: list[dict[str, Any]] = []

    def keep(body: dict[str, Any]) -> None:
        if len(drawn) < ctx.settings.fuzz_examples and ctx.store.is_valid(SCHEMA, body):
            drawn.append(body)

    if ctx.settings.fuzz_examples <= 0:
        raise NotChecked("not checked: --fuzz-examples 0 draws no request")
    draw_all = settings(
        max_examples=ctx.settings.fuzz_examples,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )(given(_strategy(ctx))(keep))
    with _own_constants_only():
        seed(ctx.settings.fuzz_seed)(draw_all)()
    if not drawn:
        raise NotChecked(f"not checked: hypothesis drew no schema-valid request {_replay_note(ctx)}")
    return drawn


@check(
    "fuzz",
    "000/001 Request Parameters via schemas/openai.chat.request.json; 002 Error Codes",
    cost=_valid_cost,
    rules=("fuzz-valid-request", "null-optional-field"),
)
def fuzz_valid_requests(ctx: CheckContext, fuzz_requests: list[dict[str, Any]]) -> None:
    """Schema-valid requests get a 2xx with a valid body (or stream), or a documented 4xx."""
    found: list[tuple[str, Failure]] = []
    answered = 0
    for number, body in enumerate(fuzz_requests, start=1):
        exchange = ctx.chat(body)
        if exchange.status == 0:
            continue  # no answer at all (a transport error) is not judged
        answered += 1
        found += [(f"example {number}", f) for f in _valid_answer_findings(ctx, body, exchange)]
    if not answered:
        raise NotChecked(f"not checked: no drawn request was answered {_replay_note(ctx)}")
    for failure in one_per_rule(found):
        ctx.record(failure)


@check(
    "fuzz",
    "schemas/openai.chat.request.json constraints; 002 Error Codes (400 INVALID_PARAMS); OpenAI reference",
    cost=_invalid_cost,
    rules=("fuzz-invalid-request", "request-protocol-constraint"),
)
def fuzz_invalid_requests(
    ctx: CheckContext, fuzz_requests: list[dict[str, Any]], invalid_param_answers: list[InvalidAnswer]
) -> None:
    """The drawn requests, each with one schema constraint broken, never get a 2xx or a 5xx.

    A constraint ``errors_invalid_params`` also breaks (same property, same constraint) accepted
    there as here is that check's finding, not reported twice. A 5xx stays this check's: a crash
    may come from the drawn context around the constraint.
    """
    chooser = random.Random(ctx.settings.fuzz_seed)
    schema = ctx.store.get(SCHEMA)
    owned = {a.case.label: _outcome(a.exchange.status) for a in invalid_param_answers}
    found: list[tuple[str, Failure]] = []
    judged = 0
    for body in fuzz_requests:
        cases = negative_cases(schema, body, lambda b: ctx.store.is_valid(SCHEMA, b))
        if not cases:
            continue
        case = chooser.choice(cases)
        exchange = ctx.chat(case.body, tokens=1)
        outcome = _outcome(exchange.status)
        if outcome == "none" or (outcome == "accepted" and owned.get(case.label) == outcome):
            continue  # no answer is not judged; an acceptance errors_invalid_params also saw is its
        judged += 1
        if outcome == "refused":
            continue
        rule = "fuzz-invalid-request"
        if exchange.status < 400:
            rule = broken_rule(ctx.store, SCHEMA, case.body, default="fuzz-invalid-request")
        failure = Failure(
            title=f"an invalid request ({case.label}) was answered {exchange.status}",
            rule=rule,
            expected=f"a 4xx, never a 2xx or 5xx {_replay_note(ctx)}",
            received=describe(exchange, 300),
            exchange=exchange,
        )
        found.append((case.label, failure))
    if not judged:
        raise NotChecked(
            "not checked: every broken constraint was accepted, as errors_invalid_params reports"
        )
    for failure in one_per_rule(found):
        ctx.record(failure)


def _outcome(status: int) -> str:
    """The kind of answer: accepted, refused (4xx), a server error, or none."""
    if status == 0:
        return "none"
    return "accepted" if status < 400 else "refused" if status < 500 else "server error"


def _valid_answer_findings(ctx: CheckContext, body: dict[str, Any], exchange: Exchange) -> list[Failure]:
    """Why the answer to a valid request is not acceptable (nothing when it is)."""
    if exchange.status in DOCUMENTED_4XX:
        return []
    what = "the answer to a schema-valid request"
    if not 200 <= exchange.status < 300:
        return [_undocumented(ctx, describe(exchange, 300), exchange)]
    if body.get("stream") is True:
        return _stream_findings(ctx, exchange, what)
    try:
        answer = json.loads(exchange.body)
    except ValueError:
        return [_undocumented(ctx, f"a body that is not JSON: {excerpt(exchange.body, 200)}", exchange)]
    return schema_failures(
        ctx.store,
        "openai.chat.response",
        answer,
        rule="fuzz-valid-request",
        what=what,
        exchange=exchange,
        own=ctx.check.rules,
    )


def _undocumented(ctx: CheckContext, problem: str, exchange: Exchange) -> Failure:
    return Failure(
        title="a schema-valid request got an undocumented answer",
        rule="fuzz-valid-request",
        expected=f"2xx with a valid body, or one of {DOCUMENTED_4XX} {_replay_note(ctx)}",
        received=problem,
        exchange=exchange,
    )


def _stream_findings(ctx: CheckContext, exchange: Exchange, what: str) -> list[Failure]:
    try:
        events = exchange.events()
    except SSEError as exc:
        return [_undocumented(ctx, f"an undecodable event stream: {exc}", exchange)]
    data = [e for e in events if e.data.strip() != "[DONE]"]
    for event in data:
        try:
            json.loads(event.data)
        except ValueError:
            return [_undocumented(ctx, f"an event that is not JSON: {excerpt(event.raw, 200)}", exchange)]
    found = invalid_events(
        ctx.store,
        data,
        "openai.chat.chunk",
        rule="fuzz-valid-request",
        what=what,
        exchange=exchange,
        own=ctx.check.rules,
    )
    if len(data) == len(events):
        found.append(_undocumented(ctx, "a stream without data: [DONE]", exchange))
    return found

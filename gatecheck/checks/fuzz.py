"""Requests generated from the request schema (hypothesis + hypothesis-jsonschema).

Valid requests are drawn from ``openai.chat.request`` itself, then pinned to the target's chat
model with output capped (``max_tokens`` at most ``FUZZ_MAX_TOKENS``, n at most 2) so a run's spend
is bounded: each must get a 2xx with a schema-valid body (or stream) or a documented 4xx.
Invalid requests are the same drawn requests with one schema constraint broken (``negative.py``,
the constraint picked by a generator seeded like hypothesis): never a 2xx, never a 5xx. Examples
are drawn once for both checks (drawing from this schema costs most of a second each), capped by
``--fuzz-examples``, without shrinking (it would send more requests) or an example database; the
seed is in every message for replay.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

from gatecheck.checks.base import Cost, Failure, PlanSettings, check, observation
from gatecheck.checks.context import CheckContext
from gatecheck.checks.negative import negative_cases
from gatecheck.checks.wire import as_dict, describe, excerpt
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


@observation(cost=Cost())
def fuzz_requests(ctx: CheckContext) -> list[dict[str, Any]]:
    """Up to --fuzz-examples schema-valid requests drawn by hypothesis (seeded; nothing is sent here)."""
    from hypothesis import HealthCheck, Phase, given, seed, settings

    drawn: list[dict[str, Any]] = []

    def keep(body: dict[str, Any]) -> None:
        if len(drawn) < ctx.settings.fuzz_examples and ctx.store.is_valid(SCHEMA, body):
            drawn.append(body)

    if ctx.settings.fuzz_examples > 0:
        draw_all = settings(
            max_examples=ctx.settings.fuzz_examples,
            phases=[Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )(given(_strategy(ctx))(keep))
        seed(ctx.settings.fuzz_seed)(draw_all)()
    return drawn


@check(
    "fuzz",
    "000/001 Request Parameters via schemas/openai.chat.request.json; 002 Error Codes",
    cost=_valid_cost,
)
def fuzz_valid_requests(ctx: CheckContext, fuzz_requests: list[dict[str, Any]]) -> None:
    """Schema-valid requests get a 2xx with a valid body (or stream), or a documented 4xx."""
    for body in fuzz_requests:
        exchange = ctx.chat(body)
        problem = _valid_answer_problem(ctx, body, exchange)
        if problem:
            ctx.record(
                Failure(
                    title="a schema-valid request got an undocumented answer",
                    rule="fuzz-valid-request",
                    expected=f"2xx with a valid body, or one of {DOCUMENTED_4XX} {_replay_note(ctx)}",
                    received=problem,
                    exchange=exchange,
                )
            )


@check(
    "fuzz",
    "schemas/openai.chat.request.json constraints; 002 Error Codes (400 INVALID_PARAMS)",
    cost=_invalid_cost,
)
def fuzz_invalid_requests(ctx: CheckContext, fuzz_requests: list[dict[str, Any]]) -> None:
    """The drawn requests, each with one schema constraint broken, never get a 2xx or a 5xx."""
    chooser = random.Random(ctx.settings.fuzz_seed)
    schema = ctx.store.get(SCHEMA)
    for body in fuzz_requests:
        cases = negative_cases(schema, body, lambda b: ctx.store.is_valid(SCHEMA, b))
        if not cases:
            continue
        case = chooser.choice(cases)
        exchange = ctx.chat(case.body, tokens=1)
        if exchange.status < 400 or exchange.status >= 500:
            ctx.record(
                Failure(
                    title=f"an invalid request ({case.label}) was answered {exchange.status}",
                    rule="fuzz-invalid-request",
                    expected=f"a 4xx, never a 2xx or 5xx {_replay_note(ctx)}",
                    received=describe(exchange, 300),
                    exchange=exchange,
                )
            )


def _valid_answer_problem(ctx: CheckContext, body: dict[str, Any], exchange: Exchange) -> str:
    """Why the answer to a valid request is not acceptable ("" when it is)."""
    if exchange.status in DOCUMENTED_4XX:
        return ""
    if not 200 <= exchange.status < 300:
        return describe(exchange, 300)
    if body.get("stream") is True:
        return _stream_problem(ctx, exchange)
    try:
        answer = json.loads(exchange.body)
    except ValueError:
        return f"a body that is not JSON: {excerpt(exchange.body, 200)}"
    issues = ctx.store.issues("openai.chat.response", answer)
    return f"{issues[0]}" if issues else ""


def _stream_problem(ctx: CheckContext, exchange: Exchange) -> str:
    try:
        events = exchange.events()
    except SSEError as exc:
        return f"an undecodable event stream: {exc}"
    for event in events:
        if event.data.strip() == "[DONE]":
            return ""
        try:
            chunk = json.loads(event.data)
        except ValueError:
            return f"an event that is not JSON: {excerpt(event.raw, 200)}"
        issues = ctx.store.issues("openai.chat.chunk", chunk)
        if issues:
            return f"{issues[0]}; wire {excerpt(event.raw, 200)}"
    return "a stream without data: [DONE]"

"""Authentication, status codes and error bodies (002 Error Codes; 000/001 Error Response; OpenAI).

One root cause, one finding: the status of each error probe is judged by its own check
(``errors_missing_key``, ``errors_unknown_model``, ...), and the *bodies* of every error answer
those probes collected are judged once, by ``errors_bodies`` (a JSON content type, a body valid
against ``error.gateway`` or ``error.openai``, the documented code for its status, a ``request_id``
where the dialect has one), one finding per broken rule with "and N more". A gateway that answers
every error in plain text thus gets the error-body findings once, not one per probe.

The negative requests of ``errors_invalid_params`` take the rule of the constraint they break: a
constraint the documents state is ``invalid-param-accepted`` when accepted, one only OpenAI's
reference states (``stop`` with 5 items, ``tool_choice`` without ``tools``) is
``request-protocol-constraint``, which the ``gateway`` profile grades as a warning.

``errors_context_length`` needs the model's context length: declared in the target file
(``[models.<id>] context_length``), published in ``GET /v1/models`` (``context_length``,
``max_model_len``, ...) or documented (000 Supported Models) for the documented ids; unknown, it
is not checked. The probe is sized in the target's own tokens (one calibration request, see
``gatecheck.calibration``) on the smallest known context, and the check runs after every other
(marker ``heavy``): a prompt of a million tokens is megabytes, and a server may not survive it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gatecheck import calibration as cal
from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, NotChecked, PlanSettings, check, observation, profile_rule
from gatecheck.checks.context import CheckContext
from gatecheck.checks.negative import NegativeCase, broken_rule, negative_cases
from gatecheck.checks.wire import as_dict, as_json, describe, excerpt, header, is_json, json_of
from gatecheck.client import auth_header

if TYPE_CHECKING:
    from gatecheck.client import Exchange

ERROR_CODES = "002 Error Codes"
GATEWAY_CODES = {
    400: "INVALID_PARAMS",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "MODEL_NOT_FOUND",
    429: "RATE_LIMIT",
}
"""002's table: the gateway dialect's code for each client-error status."""

OPENAI_CODES = {404: "model_not_found"}
"""Codes OpenAI's wire format fixes for a status (others vary by message)."""

CONTEXT_FIELDS = (
    "context_length",
    "context_window",
    "max_model_len",
    "max_context_length",
    "max_input_tokens",
    "input_token_limit",
)
"""Where ``GET /v1/models`` entries publish a context length (OpenRouter, vLLM, LM Studio, LiteLLM...)."""

MAX_CONTEXT_PROBE_BYTES = 16 * 1024 * 1024
"""A larger over-long prompt is not sent (not checked: declare a model with a smaller context)."""
BODY_ERROR_RULES = (
    "error-content-type",
    "error-body",
    "error-body-dialect",
    "error-code",
    "error-request-id-missing",
)
"""The rules of an error body, owned by errors_bodies and ratelimit_429_body."""

INVALID_KEY = "gatecheck-invalid-key-0000"
UNKNOWN_MODEL = "gatecheck-no-such-model"
REQUEST_SCHEMA = "openai.chat.request"
_CONTEXT_WORDS = re.compile(
    r"context|too long|too large|too many tokens|max(imum)?\b[^.]{0,40}\btokens|token limit", re.IGNORECASE
)
MAX_LISTED = 10
"""How many further occurrences a grouped finding names."""


# ---------------------------------------------------------------- grouping and error bodies


def one_per_rule(found: Iterable[tuple[str, Failure]]) -> list[Failure]:
    """One finding per rule: the first occurrence quoted, the others counted and named.

    ``found`` pairs each failure with what it was about (``a request without a key``); a gateway
    that breaks a rule on every probe gets one finding with "and N more", not N findings.
    """
    by_rule: dict[str, list[tuple[str, Failure]]] = {}
    for what, failure in found:
        by_rule.setdefault(failure.rule, []).append((what, failure))
    grouped = []
    for items in by_rule.values():
        first = items[0][1]
        if len(items) > 1:
            others = [what for what, _ in items[1:]]
            named = "; ".join(others[:MAX_LISTED]) + ("; ..." if len(others) > MAX_LISTED else "")
            first = replace(first, received=f"{first.received}\nand {len(others)} more like it: {named}")
        grouped.append(first)
    return grouped


def error_body_findings(ctx: CheckContext, exchange: Exchange, what: str) -> list[Failure]:
    """Every way an error response's content type and body break the profile's error dialect."""
    found: list[Failure] = []
    ctype = header(exchange, "content-type") or ""
    if "json" not in ctype.lower():
        found.append(
            Failure(
                title=f"the error body for {what} is not served as JSON",
                rule="error-content-type",
                expected="Content-Type: application/json (002: all error responses use JSON format)",
                received=f"Content-Type {ctype or '(none)'}",
                exchange=exchange,
            )
        )
    body = json_of(exchange)
    error = body.get("error") if is_json(body) and isinstance(body, dict) else None
    if not isinstance(error, dict):
        found.append(
            Failure(
                title=f"the error body for {what} is not the documented JSON envelope",
                rule="error-body",
                expected='{"error": {...}} as JSON',
                received=describe(exchange),
                exchange=exchange,
            )
        )
        return found
    return found + _dialect_findings(ctx, exchange, body, error, what)


def dialect_of(ctx: CheckContext, error: dict[str, Any]) -> str:
    """The error dialect to hold ``error`` to: the profile's, or under ``any`` the one it looks like."""
    dialect = ctx.profile.error_dialect
    if dialect != "any":
        return dialect
    return "gateway" if "request_id" in error or str(error.get("code", "")).isupper() else "openai"


def _dialect_findings(
    ctx: CheckContext, exchange: Exchange, body: Any, error: dict[str, Any], what: str
) -> list[Failure]:
    found: list[Failure] = []
    dialect = dialect_of(ctx, error)
    if dialect == "gateway" and not error.get("request_id"):
        found.append(
            Failure(
                title=f"the error body for {what} has no request_id",
                rule="error-request-id-missing",
                expected="error.request_id (002: use request_id to trace issues)",
                received=excerpt(exchange.body),
                exchange=exchange,
            )
        )
        body = {**body, "error": {**error, "request_id": "(missing)"}}
    issues = ctx.store.issues(f"error.{dialect}", body)
    if issues:
        found.append(
            Failure(
                title=f"the error body for {what} is not in the {dialect} error dialect",
                rule="error-body-dialect",
                expected=f"a body valid against schemas/error.{dialect}.json (profile {ctx.profile.name})",
                received=f"{issues[0]}; body {excerpt(exchange.body)}",
                exchange=exchange,
            )
        )
        return found
    expected_code = (GATEWAY_CODES if dialect == "gateway" else OPENAI_CODES).get(exchange.status)
    if expected_code is not None and error.get("code") != expected_code:
        found.append(
            Failure(
                title=f"the error code for {what} is {as_json(error.get('code'))}",
                rule="error-code",
                expected=f"code {as_json(expected_code)} for HTTP {exchange.status} ({ERROR_CODES})",
                received=f"code {as_json(error.get('code'))}",
                exchange=exchange,
            )
        )
    return found


def answered(exchange: Exchange, what: str) -> Exchange:
    """``exchange`` when the target answered it; no answer at all (a transport error) is not checked."""
    if exchange.status == 0:
        raise NotChecked(f"not checked: no answer to {what}: {exchange.error}")
    return exchange


def status_findings(exchange: Exchange, status: int, what: str, *, rule: str) -> list[Failure]:
    """The finding when ``exchange`` is not answered ``status``: a 5xx is always ``client-error-5xx``."""
    if exchange.status >= 500:
        return [
            Failure(
                title=f"{what} was answered with a server error {exchange.status}",
                rule="client-error-5xx",
                expected=f"HTTP {status}: the client is at fault, never a 5xx",
                received=describe(exchange),
                exchange=exchange,
            )
        ]
    if exchange.status != status:
        return [
            Failure(
                title=f"{what} was answered {exchange.status or 'with nothing'}, not {status}",
                rule=rule,
                expected=f"HTTP {status}",
                received=describe(exchange),
                exchange=exchange,
            )
        ]
    return []


def _record_all(ctx: CheckContext, found: list[Failure]) -> None:
    """Record every finding (each of a different rule, or already grouped)."""
    for failure in found:
        ctx.record(failure)


# ---------------------------------------------------------------- the error probes (shared observations)


def _probe_body(ctx: CheckContext) -> dict[str, Any]:
    return rq.chat_body(ctx.target.models.chat, rq.user("Say OK."), max_tokens=8)


@observation(cost=Cost(1, 0))
def missing_key_answer(ctx: CheckContext) -> Exchange:
    """A chat request without any key."""
    return ctx.chat(_probe_body(ctx), auth="none", tokens=1)


@observation(cost=Cost(1, 0))
def invalid_key_answer(ctx: CheckContext) -> Exchange:
    """A chat request with a key the target cannot know.

    The wrong key is no secret: it goes as a plain header, so the repro shows the key really sent.
    """
    wrong = auth_header(ctx.target.auth, INVALID_KEY)
    return ctx.chat(_probe_body(ctx), auth="none", headers=wrong, tokens=1)


@observation(cost=Cost(1, 0))
def unknown_model_answer(ctx: CheckContext) -> Exchange:
    """A chat request for a model that does not exist."""
    return ctx.chat({**_probe_body(ctx), "model": UNKNOWN_MODEL}, tokens=1)


@observation(cost=Cost(1, 0))
def malformed_json_answer(ctx: CheckContext) -> Exchange:
    """A chat request whose body is cut JSON."""
    return ctx.send(
        "POST",
        "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
        tokens=1,
    )


def invalid_cases(ctx: CheckContext) -> list[NegativeCase]:
    """The request schema's constraints, each broken once on a valid base request."""
    base = {**_probe_body(ctx), "tools": [rq.WEATHER_TOOL], "tool_choice": "none"}
    return negative_cases(
        ctx.store.get(REQUEST_SCHEMA), base, lambda b: ctx.store.is_valid(REQUEST_SCHEMA, b)
    )


def _invalid_cost(_: object) -> Cost:
    from gatecheck.schemas import default_store

    store = default_store()
    base = {
        "model": "m",
        "messages": rq.user("Say OK."),
        "max_tokens": 8,
        "tools": [rq.WEATHER_TOOL],
        "tool_choice": "none",
    }
    count = len(negative_cases(store.get(REQUEST_SCHEMA), base, lambda b: store.is_valid(REQUEST_SCHEMA, b)))
    return Cost(count, 8 * count)


@dataclass(frozen=True)
class InvalidAnswer:
    """One negative case, the rule of the constraint it breaks, and what the target answered."""

    case: NegativeCase
    rule: str
    exchange: Exchange

    @property
    def what(self) -> str:
        """For messages: ``an invalid request (stop: more than maxItems 4)``."""
        return f"an invalid request ({self.case.label})"


@observation(cost=_invalid_cost)
def invalid_param_answers(ctx: CheckContext) -> list[InvalidAnswer]:
    """Every constraint of the request schema broken once, each request with its answer."""
    answers = []
    for case in invalid_cases(ctx):
        rule = broken_rule(ctx.store, REQUEST_SCHEMA, case.body, default="invalid-param-accepted")
        answers.append(InvalidAnswer(case, rule, ctx.chat(case.body, tokens=1)))
    return answers


# ---------------------------------------------------------------- the checks


def _expect_status(ctx: CheckContext, exchange: Exchange, status: int, what: str, *, rule: str) -> None:
    """Record the finding when the probe ``what`` is not answered ``status`` (no answer: not checked)."""
    _record_all(ctx, status_findings(answered(exchange, what), status, what, rule=rule))


@check(
    "errors",
    f"{ERROR_CODES} (401 UNAUTHORIZED); 002 Overview (Authentication)",
    rules=("auth-missing-key", "client-error-5xx"),
)
def errors_missing_key(ctx: CheckContext, missing_key_answer: Exchange) -> None:
    """A request without any key gets 401."""
    _expect_status(ctx, missing_key_answer, 401, "a request without a key", rule="auth-missing-key")


@check(
    "errors",
    f"{ERROR_CODES} (401 UNAUTHORIZED: invalid or expired API Key)",
    rules=("auth-invalid-key", "client-error-5xx"),
)
def errors_invalid_key(ctx: CheckContext, invalid_key_answer: Exchange) -> None:
    """A request with an invalid key gets 401."""
    _expect_status(ctx, invalid_key_answer, 401, "a request with an invalid key", rule="auth-invalid-key")


@check(
    "errors",
    "002 Overview (Authentication: Bearer Token or x-api-key header)",
    cost=Cost(1, 8),
    rules=("auth-x-api-key",),
)
@profile_rule("x_api_key_everywhere")
def errors_x_api_key_chat(ctx: CheckContext) -> None:
    """The key sent as x-api-key authenticates chat completions like Bearer does."""
    exchange = answered(ctx.chat(_probe_body(ctx), auth="x-api-key"), "a request with x-api-key")
    if exchange.status in (401, 403):
        raise Failure(
            title=f"the key sent as x-api-key was refused ({exchange.status})",
            rule="auth-x-api-key",
            expected="the request authenticated, as with Authorization: Bearer (002 Overview)",
            received=describe(exchange),
            exchange=exchange,
        )
    if not 200 <= exchange.status < 300:
        raise NotChecked(
            f"not checked: the request with x-api-key was answered {describe(exchange, 200)}, "
            "neither accepted nor refused for its key"
        )


@check(
    "errors",
    f"{ERROR_CODES} (404 MODEL_NOT_FOUND)",
    rules=("unknown-model-status", "client-error-5xx"),
)
def errors_unknown_model(ctx: CheckContext, unknown_model_answer: Exchange) -> None:
    """An unknown model gets 404 (MODEL_NOT_FOUND / model_not_found)."""
    what = f"the unknown model {as_json(UNKNOWN_MODEL)}"
    _expect_status(ctx, unknown_model_answer, 404, what, rule="unknown-model-status")


@check("errors", f"{ERROR_CODES} (400 INVALID_PARAMS)", rules=("error-status", "client-error-5xx"))
def errors_malformed_json(ctx: CheckContext, malformed_json_answer: Exchange) -> None:
    """A body that is not JSON gets 400."""
    _expect_status(ctx, malformed_json_answer, 400, "a malformed JSON body", rule="error-status")


@check(
    "errors",
    f"000/001 Request Parameters; {ERROR_CODES} (400 INVALID_PARAMS); OpenAI's request constraints",
    rules=(
        "invalid-param-accepted",
        "invalid-param-status",
        "request-protocol-constraint",
        "client-error-5xx",
    ),
)
def errors_invalid_params(ctx: CheckContext, invalid_param_answers: list[InvalidAnswer]) -> None:
    """Every constraint of the request schema, broken once, gets 400 (OpenAI-only ones graded as such)."""
    answers = [a for a in invalid_param_answers if a.exchange.status != 0]
    if not answers:
        raise NotChecked(
            f"not checked: no invalid request was answered ({invalid_param_answers[0].exchange.error})"
        )
    found: list[tuple[str, Failure]] = []
    for answer in answers:
        exchange, protocol = answer.exchange, answer.rule != "invalid-param-accepted"
        source = "an OpenAI-only constraint" if protocol else "a documented constraint"
        if 200 <= exchange.status < 300:
            failure = Failure(
                title=f"an invalid request was accepted ({answer.case.label})",
                rule=answer.rule,
                expected=f"HTTP 400: the request breaks {source} ({answer.case.label})",
                received=f"HTTP {exchange.status}",
                exchange=exchange,
            )
            found.append((answer.case.label, failure))
            continue
        status_rule = answer.rule if protocol else "invalid-param-status"
        found += [
            (answer.case.label, f) for f in status_findings(exchange, 400, answer.what, rule=status_rule)
        ]
    _record_all(ctx, one_per_rule(found))


@check(
    "errors",
    f"{ERROR_CODES} (all error responses use JSON format; codes; request_id); 000/001 Error Response",
    rules=BODY_ERROR_RULES,
)
def errors_bodies(
    ctx: CheckContext,
    missing_key_answer: Exchange,
    invalid_key_answer: Exchange,
    unknown_model_answer: Exchange,
    malformed_json_answer: Exchange,
    invalid_param_answers: list[InvalidAnswer],
) -> None:
    """Every error answer of the error probes is JSON in the profile's error dialect, with its code."""
    answered = [
        ("a request without a key", missing_key_answer),
        ("a request with an invalid key", invalid_key_answer),
        (f"the unknown model {as_json(UNKNOWN_MODEL)}", unknown_model_answer),
        ("a malformed JSON body", malformed_json_answer),
        *((a.what, a.exchange) for a in invalid_param_answers),
    ]
    errors = [(what, e) for what, e in answered if e.status >= 400]
    if not errors:
        raise NotChecked(
            "not checked: no error probe was answered with an error status (their checks report it)"
        )
    found = [(what, f) for what, e in errors for f in error_body_findings(ctx, e, what)]
    _record_all(ctx, one_per_rule(found))


# ---------------------------------------------------------------- context length


@dataclass(frozen=True)
class KnownContext:
    """A model's context length in tokens, and where it is stated."""

    model: str
    tokens: int
    source: str


def context_from_listing(entry: Any) -> int | None:
    """The context length a ``GET /v1/models`` entry publishes (or its ``top_provider``), if any."""
    for place in (as_dict(entry), as_dict(as_dict(entry).get("top_provider"))):
        for name in CONTEXT_FIELDS:
            value = place.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def _listed_contexts(ctx: CheckContext, models: set[str]) -> dict[str, int]:
    """Context lengths ``GET /v1/models`` publishes for ``models`` (nothing when it is not claimed)."""
    if not ctx.target.claims("models"):
        return {}
    exchange = ctx.send("GET", "/v1/models", tokens=1)
    data = as_dict(json_of(exchange)).get("data") if exchange.status == 200 else None
    found: dict[str, int] = {}
    for entry in data if isinstance(data, list) else []:
        model, length = as_dict(entry).get("id"), context_from_listing(entry)
        if model in models and length is not None:
            found[str(model)] = length
    return found


@observation(cost=Cost(1, 0))
def chat_context(ctx: CheckContext) -> KnownContext | None:
    """The chat model's context length: declared in the target file, else published in
    ``GET /v1/models`` (one request), else documented in 000 for the documented ids; None if unknown."""
    chat = ctx.target.models.chat
    declared = ctx.target.context_length(chat)
    if declared is not None:
        return KnownContext(chat, declared, f"[models.{chat}] context_length in the target file")
    listed = _listed_contexts(ctx, {chat}).get(chat)
    if listed is not None:
        return KnownContext(chat, listed, "GET /v1/models")
    if chat in cal.DOCUMENTED_CONTEXT_LENGTHS:
        return KnownContext(chat, cal.DOCUMENTED_CONTEXT_LENGTHS[chat], "000 Supported Models")
    return None


def known_contexts(ctx: CheckContext, chat: KnownContext | None) -> list[KnownContext]:
    """The chat model's context and those of every model the target file describes."""
    known = {} if chat is None else {chat.model: chat}
    for model, length in ctx.target.context_lengths:
        known[model] = KnownContext(model, length, f"[models.{model}] context_length in the target file")
    return list(known.values())


@observation(cost=Cost(1, 1))
def chat_token_rate(ctx: CheckContext) -> cal.TokenRate | str:
    """The chat model's tokens for a known prompt (or why it cannot be known): one request."""
    return calibrate(ctx, ctx.target.models.chat)


def calibrate(ctx: CheckContext, model: str) -> cal.TokenRate | str:
    """One request of ``CALIBRATION_UNITS`` filler words: the target's ``usage.prompt_tokens`` for it."""
    body = rq.chat_body(model, rq.user(cal.filler(cal.CALIBRATION_UNITS)), max_tokens=1)
    exchange = ctx.chat(body)
    rate = cal.rate_from(cal.CALIBRATION_UNITS, json_of(exchange)) if exchange.status == 200 else None
    if rate is None:
        return (
            f"the calibration request ({cal.CALIBRATION_UNITS} words to {model}) reported no "
            f"usage.prompt_tokens, so no size can be stated in the target's tokens: {describe(exchange, 200)}"
        )
    return rate


def _context_cost(settings: PlanSettings) -> Cost:
    """The calibration request and the over-long prompt (its size when the context is known)."""
    known = settings.context_length
    return Cost(2, 2, input_tokens=0 if known is None else cal.context_probe_tokens(known))


@check(
    "errors",
    "002 Error Codes (400 INVALID_PARAMS); 001 Error Response (context_length_exceeded); "
    "000 Supported Models (context length)",
    cost=_context_cost,
    markers=("heavy",),
    rules=("context-length-unchecked", "context-length-code", "context-length-message", "client-error-5xx"),
)
def errors_context_length(
    ctx: CheckContext, chat_context: KnownContext | None, chat_token_rate: cal.TokenRate | str
) -> None:
    """A prompt beyond the model's context length gets 400 saying so (OpenAI: context_length_exceeded)."""
    known = known_contexts(ctx, chat_context)
    if not known:
        model = ctx.target.models.chat
        raise NotChecked(
            f"not checked: the context length of {as_json(model)} is unknown: declare it in the target file "
            f"([models.{model}] context_length = N) or publish it in GET /v1/models"
        )
    target = min(known, key=lambda k: k.tokens)
    rate = chat_token_rate if target.model == ctx.target.models.chat else calibrate(ctx, target.model)
    if isinstance(rate, str):
        raise NotChecked(f"not checked: {rate}")
    units = rate.units_over(cal.context_probe_tokens(target.tokens))
    body = rq.chat_body(target.model, rq.user(cal.filler(units)), max_tokens=1)
    size = len(json.dumps(body))
    if size > MAX_CONTEXT_PROBE_BYTES:
        raise NotChecked(
            f"not checked: a prompt over {target.model}'s {target.tokens}-token context ({target.source}) "
            f"is {size / 1e6:.1f} MB at this target's {rate.describe()}; "
            "declare a model with a smaller context"
        )
    exchange = ctx.chat(body, tokens=1)
    what = (
        f"a prompt of {units} words (about {rate.tokens_for(units)} tokens at {rate.per_unit:.3g} per word) "
        f"to {target.model}, whose context is {target.tokens} tokens ({target.source})"
    )
    _judge_context_answer(ctx, exchange, what)


def _judge_context_answer(ctx: CheckContext, exchange: Exchange, what: str) -> None:
    if exchange.status == 0:
        raise NotChecked(f"not checked: no answer to {what}: {exchange.error}")
    if exchange.status == 413:
        raise NotChecked(
            f"not checked: the gateway refused the {len(exchange.request.body)}-byte body for its size "
            "(413) before its context length could be judged"
        )
    if exchange.status != 400:
        rule = "client-error-5xx" if exchange.status >= 500 else "context-length-unchecked"
        raise Failure(
            title=f"{what} was answered {exchange.status}, not 400",
            rule=rule,
            expected="HTTP 400: the prompt is beyond the model's context length (002 400 INVALID_PARAMS)",
            received=describe(exchange, 300),
            exchange=exchange,
        )
    error = as_dict(as_dict(json_of(exchange)).get("error"))
    if dialect_of(ctx, error) == "openai":
        if error.get("code") != "context_length_exceeded":
            raise Failure(
                title="the error for an over-long prompt is not code context_length_exceeded",
                rule="context-length-code",
                expected='error.code "context_length_exceeded" (001 Error Response, the openai dialect)',
                received=excerpt(exchange.body, 300),
                exchange=exchange,
            )
        return
    said = json.dumps(error) if error else exchange.body.decode("utf-8", "replace")
    if not _CONTEXT_WORDS.search(said):
        raise Failure(
            title="the error for an over-long prompt does not say the prompt is too long",
            rule="context-length-message",
            expected="400 INVALID_PARAMS whose message says the context length is exceeded (002 Error Codes)",
            received=excerpt(exchange.body, 300),
            exchange=exchange,
        )

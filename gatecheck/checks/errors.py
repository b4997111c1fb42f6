"""Authentication, status codes and error bodies (002 Error Codes; 000/001 Error Response; OpenAI).

Every error response is held to the profile's error dialect: a JSON content type, a body valid
against ``error.gateway`` or ``error.openai``, the documented code for its status, and a
``request_id`` where the dialect has one. A client error is never answered with a 5xx.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, check, profile_rule
from gatecheck.checks.chat import validated_completion
from gatecheck.checks.context import CheckContext
from gatecheck.checks.negative import NegativeCase, negative_cases
from gatecheck.checks.wire import as_json, describe, excerpt, header, is_json, json_of
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

CONTEXT_LENGTHS = {
    "deepseek-v4-flash": 1_000_000,
    "deepseek-v4-pro": 1_000_000,
    "qwen3.7-max": 1_000_000,
    "glm-5.7": 200_000,
    "kimi-k2.6": 256_000,
    "minimax-m3": 1_000_000,
}
"""000 Supported Models: context length per documented model (1M = 1,000,000)."""

INVALID_KEY = "gatecheck-invalid-key-0000"
UNKNOWN_MODEL = "gatecheck-no-such-model"


def check_error(
    ctx: CheckContext, exchange: Exchange, status: int, what: str, *, status_rule: str = "error-status"
) -> dict[str, Any] | None:
    """Record every way ``exchange`` is not the documented error response; return its error object."""
    if exchange.status >= 500:
        ctx.record(
            Failure(
                title=f"{what} was answered with a server error {exchange.status}",
                rule="client-error-5xx",
                expected=f"HTTP {status}: the client is at fault, never a 5xx",
                received=describe(exchange),
                exchange=exchange,
            )
        )
        return None
    if exchange.status != status:
        ctx.record(
            Failure(
                title=f"{what} was answered {exchange.status or 'with nothing'}, not {status}",
                rule=status_rule,
                expected=f"HTTP {status}",
                received=describe(exchange),
                exchange=exchange,
            )
        )
        return None
    return check_error_body(ctx, exchange, what)


def check_error_body(ctx: CheckContext, exchange: Exchange, what: str) -> dict[str, Any] | None:
    """Record failures of an error response's content type and body against the profile's dialect."""
    ctype = header(exchange, "content-type") or ""
    if "json" not in ctype.lower():
        ctx.record(
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
        ctx.record(
            Failure(
                title=f"the error body for {what} is not the documented JSON envelope",
                rule="error-body",
                expected='{"error": {...}} as JSON',
                received=describe(exchange),
                exchange=exchange,
            )
        )
        return None
    _check_dialect(ctx, exchange, body, error, what)
    return error


def _check_dialect(
    ctx: CheckContext, exchange: Exchange, body: Any, error: dict[str, Any], what: str
) -> None:
    dialect = ctx.profile.error_dialect
    if dialect == "any":
        dialect = "gateway" if "request_id" in error or str(error.get("code", "")).isupper() else "openai"
    if dialect == "gateway" and not error.get("request_id"):
        ctx.record(
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
        ctx.record(
            Failure(
                title=f"the error body for {what} is not in the {dialect} error dialect",
                rule="error-body-dialect",
                expected=f"a body valid against schemas/error.{dialect}.json (profile {ctx.profile.name})",
                received=f"{issues[0]}; body {excerpt(exchange.body)}",
                exchange=exchange,
            )
        )
        return
    expected_code = (GATEWAY_CODES if dialect == "gateway" else OPENAI_CODES).get(exchange.status)
    if expected_code is not None and error.get("code") != expected_code:
        ctx.record(
            Failure(
                title=f"the error code for {what} is {as_json(error.get('code'))}",
                rule="error-code",
                expected=f"code {as_json(expected_code)} for HTTP {exchange.status} ({ERROR_CODES})",
                received=f"code {as_json(error.get('code'))}",
                exchange=exchange,
            )
        )


def _probe_body(ctx: CheckContext) -> dict[str, Any]:
    return rq.chat_body(ctx.target.models.chat, rq.user("Say OK."), max_tokens=8)


@check("errors", f"{ERROR_CODES} (401 UNAUTHORIZED); 002 Overview (Authentication)", cost=Cost(1, 0))
def errors_missing_key(ctx: CheckContext) -> None:
    """A request without any key gets 401 with an error body."""
    exchange = ctx.chat(_probe_body(ctx), auth="none", tokens=1)
    check_error(ctx, exchange, 401, "a request without a key", status_rule="auth-missing-key")


@check("errors", f"{ERROR_CODES} (401 UNAUTHORIZED: invalid or expired API Key)", cost=Cost(1, 0))
def errors_invalid_key(ctx: CheckContext) -> None:
    """A request with an invalid key gets 401 with an error body.

    The wrong key is no secret: it goes as a plain header, so the repro shows the key really sent.
    """
    wrong = auth_header(ctx.target.auth, INVALID_KEY)
    exchange = ctx.chat(_probe_body(ctx), auth="none", headers=wrong, tokens=1)
    check_error(ctx, exchange, 401, "a request with an invalid key", status_rule="auth-invalid-key")


@check("errors", "002 Overview (Authentication: Bearer Token or x-api-key header)", cost=Cost(1, 8))
@profile_rule("x_api_key_everywhere")
def errors_x_api_key_chat(ctx: CheckContext) -> None:
    """The key sent as x-api-key authenticates chat completions like Bearer does."""
    exchange = ctx.chat(_probe_body(ctx), auth="x-api-key")
    validated_completion(ctx, exchange, "a chat completion authenticated with x-api-key")


@check("errors", f"{ERROR_CODES} (404 MODEL_NOT_FOUND)", cost=Cost(1, 0))
def errors_unknown_model(ctx: CheckContext) -> None:
    """An unknown model gets 404 (MODEL_NOT_FOUND / model_not_found)."""
    body = {**_probe_body(ctx), "model": UNKNOWN_MODEL}
    exchange = ctx.chat(body, tokens=1)
    check_error(
        ctx, exchange, 404, f"the unknown model {as_json(UNKNOWN_MODEL)}", status_rule="unknown-model-status"
    )


@check("errors", f"{ERROR_CODES} (400 INVALID_PARAMS)", cost=Cost(1, 0))
def errors_malformed_json(ctx: CheckContext) -> None:
    """A body that is not JSON gets 400 with an error body."""
    exchange = ctx.send(
        "POST",
        "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
        tokens=1,
    )
    check_error(ctx, exchange, 400, "a malformed JSON body")


def invalid_cases(ctx: CheckContext) -> list[NegativeCase]:
    """The request schema's constraints, each broken once on a valid base request."""
    base = {**_probe_body(ctx), "tools": [rq.WEATHER_TOOL], "tool_choice": "none"}
    return negative_cases(
        ctx.store.get("openai.chat.request"), base, lambda b: ctx.store.is_valid("openai.chat.request", b)
    )


def _invalid_cost(_: object) -> Cost:
    from gatecheck.schemas import default_store

    schema = default_store().get("openai.chat.request")
    base = {
        "model": "m",
        "messages": rq.user("Say OK."),
        "max_tokens": 8,
        "tools": [rq.WEATHER_TOOL],
        "tool_choice": "none",
    }
    count = len(negative_cases(schema, base, lambda b: default_store().is_valid("openai.chat.request", b)))
    return Cost(count, 8 * count)


@check("errors", f"000/001 Request Parameters; {ERROR_CODES} (400 INVALID_PARAMS)", cost=_invalid_cost)
def errors_invalid_params(ctx: CheckContext) -> None:
    """Every constraint of the request schema, broken once, gets 400 with a dialect-valid error body."""
    for case in invalid_cases(ctx):
        exchange = ctx.chat(case.body, tokens=1)
        if 200 <= exchange.status < 300:
            ctx.record(
                Failure(
                    title=f"an invalid request was accepted ({case.label})",
                    rule="invalid-param-accepted",
                    expected=f"HTTP 400: {case.label}",
                    received=f"HTTP {exchange.status}",
                    exchange=exchange,
                )
            )
            continue
        check_error(
            ctx, exchange, 400, f"an invalid request ({case.label})", status_rule="invalid-param-status"
        )


@check(
    "errors",
    "001 Error Response (context_length_exceeded); 000 Supported Models (context length)",
    cost=Cost(1, 1),
)
def errors_context_length(ctx: CheckContext) -> None:
    """A prompt beyond the model's context length gets 400 context_length_exceeded."""
    model = ctx.target.models.chat
    words = CONTEXT_LENGTHS.get(model, max(CONTEXT_LENGTHS.values())) * 5 // 4 + 1
    body = rq.chat_body(model, rq.user(" ".join(["x"] * words)), max_tokens=1)
    exchange = ctx.chat(body, tokens=1)
    error = check_error(ctx, exchange, 400, f"a {words}-word prompt", status_rule="context-length-unchecked")
    if error is not None and "context_length_exceeded" not in json.dumps(error):
        ctx.record(
            Failure(
                title="the error for an over-long prompt does not say context_length_exceeded",
                rule="context-length-code",
                expected='"context_length_exceeded" as the code (openai dialect) or in the error (gateway)',
                received=excerpt(exchange.body),
                exchange=exchange,
            )
        )

"""Errors the gateway answers with, in either documented dialect.

``gateway`` (002 Error Codes): ``{"error": {"code", "message", "request_id"}}`` with upper-case
codes. ``openai`` (000/001 Error Response): ``{"error": {"message", "type", "param", "code"}}`` with
lower-case codes. On ``/v1/messages`` the dialect's body is also Anthropic's envelope
(``{"type": "error", "error": {"type", "message", ...}}``, Anthropic's error type for the status):
002 says every error uses its envelope, the Anthropic SDK reads Anthropic's, one body is both.
Both dialects also send the request id in the ``x-request-id`` header. The gateway dialect has no
``code`` for an over-long context: it answers ``INVALID_PARAMS`` with a message that starts
``context_length_exceeded:``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatecheck._types import JSONObject
from gatecheck.reference.config import ErrorDialect


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """One row of the error table: HTTP status, the code/type of each dialect, Anthropic's type."""

    status: int
    gateway_code: str
    openai_type: str
    openai_code: str | None
    anthropic_type: str = "invalid_request_error"


INVALID_PARAMS = ErrorKind(400, "INVALID_PARAMS", "invalid_request_error", "invalid_value")
MISSING_PARAM = ErrorKind(400, "INVALID_PARAMS", "invalid_request_error", "missing_required_parameter")
INVALID_JSON = ErrorKind(400, "INVALID_PARAMS", "invalid_request_error", "invalid_json")
CONTEXT_LENGTH = ErrorKind(400, "INVALID_PARAMS", "invalid_request_error", "context_length_exceeded")
UNAUTHORIZED = ErrorKind(
    401, "UNAUTHORIZED", "invalid_request_error", "invalid_api_key", "authentication_error"
)
FORBIDDEN = ErrorKind(403, "FORBIDDEN", "permission_error", "model_not_allowed", "permission_error")
MODEL_NOT_FOUND = ErrorKind(
    404, "MODEL_NOT_FOUND", "invalid_request_error", "model_not_found", "not_found_error"
)
RATE_LIMIT_REQUESTS = ErrorKind(429, "RATE_LIMIT", "requests", "rate_limit_exceeded", "rate_limit_error")
RATE_LIMIT_TOKENS = ErrorKind(429, "RATE_LIMIT", "tokens", "rate_limit_exceeded", "rate_limit_error")
INTERNAL = ErrorKind(500, "INTERNAL_ERROR", "server_error", "internal_error", "api_error")
UPSTREAM = ErrorKind(502, "UPSTREAM_ERROR", "server_error", "upstream_error", "api_error")
NOT_FOUND = ErrorKind(404, "NOT_FOUND", "invalid_request_error", "unknown_url", "not_found_error")
METHOD_NOT_ALLOWED = ErrorKind(405, "METHOD_NOT_ALLOWED", "invalid_request_error", "method_not_allowed")
TOO_LARGE = ErrorKind(
    413, "INVALID_PARAMS", "invalid_request_error", "request_too_large", "request_too_large"
)

ROUTE_ERRORS = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: TOO_LARGE}
"""What aiohttp's own HTTP errors (unknown path, wrong method, body too large) become."""


class ApiError(Exception):
    """Raised by request handling; the server turns it into the dialect's error response."""

    def __init__(
        self, kind: ErrorKind, message: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.headers = headers or {}


def error_body(
    error: ApiError, dialect: ErrorDialect, request_id: str, *, with_request_id: bool = True
) -> JSONObject:
    """The JSON error body of ``error`` in ``dialect``."""
    return {"error": _error_object(error, dialect, request_id, with_request_id)}


def messages_error_body(
    error: ApiError, dialect: ErrorDialect, request_id: str, *, with_request_id: bool = True
) -> JSONObject:
    """A /v1/messages error: the dialect's error object, in Anthropic's envelope, with its type."""
    inner = _error_object(error, dialect, request_id, with_request_id)
    body: JSONObject = {"type": "error", "error": {**inner, "type": error.kind.anthropic_type}}
    if with_request_id:
        body["request_id"] = request_id
    return body


def _error_object(
    error: ApiError, dialect: ErrorDialect, request_id: str, with_request_id: bool
) -> JSONObject:
    kind = error.kind
    if dialect == "openai":
        return {
            "message": error.message,
            "type": kind.openai_type,
            "param": error.param,
            "code": kind.openai_code,
        }
    message = f"context_length_exceeded: {error.message}" if kind is CONTEXT_LENGTH else error.message
    inner: JSONObject = {"code": kind.gateway_code, "message": message}
    if with_request_id:
        inner["request_id"] = request_id
    return inner


def anthropic_stream_error(message: str) -> JSONObject:
    """The data of an Anthropic ``event: error`` (Anthropic's own shape, as its SDK parses it)."""
    return {"type": "error", "error": {"type": "api_error", "message": message}}

"""gatecheck's exceptions.

    GatecheckError
     ├── ConfigError        bad target configuration or option (the CLI exits 2, no traceback)
     ├── SSEError           the SSE decoder's one error type
     ├── SchemaNotFound     no schema under that name in schemas/
     └── TransportError     the request could not be completed (connect, timeout, ...)
          └── ResponseTooLarge

Messages never contain an API key: values of secret fields are replaced before they get here.
"""

from __future__ import annotations


class GatecheckError(Exception):
    """Base of every error gatecheck raises on purpose."""


class ConfigError(GatecheckError):
    """One configuration field is wrong: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid configuration: {field} = {value!r}; allowed: {allowed}")


class SSEError(GatecheckError):
    """The event stream cannot be decoded (for example a line over the size cap)."""


class SchemaNotFound(GatecheckError):
    """No schema of that name exists in schemas/."""


class TransportError(GatecheckError):
    """The request did not complete: connection refused, timeout, protocol error."""


class ResponseTooLarge(TransportError):
    """The response body exceeded the configured size cap."""

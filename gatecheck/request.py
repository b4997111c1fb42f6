"""What a request was, exactly as sent: the data the client sends and a curl repro renders.

Kept apart from the client so that ``gatecheck.curl`` can render a request without importing the
HTTP machinery (and the client can offer ``Exchange.curl()`` without an import circle).
"""

from __future__ import annotations

from dataclasses import dataclass

from gatecheck._types import Headers
from gatecheck.redaction import Secret, redact


@dataclass(frozen=True, slots=True, repr=False)
class Request:
    """A request exactly as sent. ``headers`` holds the real key: print ``redacted_headers()``.

    ``key`` is the key put in the auth header (None: no auth header) and ``key_env`` the variable a
    curl repro reads it from; ``secrets`` are every key to scrub from anything shown.
    """

    method: str
    url: str
    headers: Headers
    body: bytes = b""
    key: Secret | None = None
    key_env: str | None = None
    secrets: tuple[Secret, ...] = ()

    def redacted_headers(self) -> Headers:
        """The headers with every key replaced by ``***``."""
        return {name: redact(value, self.secrets) for name, value in self.headers.items()}

    def __repr__(self) -> str:
        return (
            f"Request({self.method} {redact(self.url, self.secrets)}, "
            f"headers={self.redacted_headers()!r}, body={len(self.body)} bytes)"
        )

"""The report writers' safety net: no key reaches a report file, whoever forgot to redact it.

Two layers, both here: known secrets (the caller's ``run_info["secrets"]``) are replaced wherever
they occur (``gatecheck.redaction.redact``), and values that look like credentials (a bearer token
or ``x-api-key`` header value that is not a ``$VARIABLE`` reference, an ``sk-`` key) are masked
even when nobody declared them, because gateways echo keys back in error bodies and checks quote
those bodies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from gatecheck._types import JSON
from gatecheck.redaction import REDACTED, Secret, redact

_HEADER_VALUE = r"""(?P<keep>{name}["']?\s*[:=]\s*["']?\s*{scheme})(?P<secret>[^\s"'$\\*][^\s"',;\\]*)"""
_CREDENTIAL_PATTERNS = (
    re.compile(_HEADER_VALUE.format(name=r"\bauthorization", scheme=r"(?:bearer|basic)\s+"), re.IGNORECASE),
    re.compile(_HEADER_VALUE.format(name=r"\bx-api-key", scheme=""), re.IGNORECASE),
    re.compile(r"(?P<keep>\bsk-)(?P<secret>[A-Za-z0-9_-]{16,})"),
)


class Redactor:
    """Masks known secrets and credential-looking values in text and in JSON-like data."""

    def __init__(self, secrets: Iterable[object]) -> None:
        self._secrets: list[Secret | str] = []
        for secret in secrets:
            if not isinstance(secret, Secret | str):
                raise TypeError(
                    f"run_info['secrets'] items must be Secret or str, not {type(secret).__name__}"
                )
            self._secrets.append(secret)

    def known(self, text: str) -> str:
        """``text`` with every known secret masked: the last pass over a rendered page.

        Patterns are not applied there: they could match across escaped markup (``&#x27;``) and
        every string that reaches a page has already been through :meth:`text`.
        """
        return redact(text, self._secrets)

    def text(self, text: str) -> str:
        """``text`` with every known secret and every credential-looking value masked."""
        text = self.known(text)
        for pattern in _CREDENTIAL_PATTERNS:
            text = pattern.sub(lambda m: m["keep"] + REDACTED, text)
        return text

    def data(self, value: object) -> JSON:
        """``value`` as plain JSON data with every string (keys included) passed through :meth:`text`.

        Bytes are decoded (invalid UTF-8 kept as ``\\xNN``), non-finite floats and unknown objects
        become their ``str()`` (a ``Secret`` prints masked), so the JSON writer never meets a
        value it cannot encode or one it would print unredacted.
        """
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "backslashreplace"))
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return self.text(str(value))

"""The report writers' safety net: no known key reaches a report file, whoever forgot to redact it.

Every string from the results and the run info is scrubbed of the run's keys (the caller's
``run_info["secrets"]`` and the targets' keys) before rendering, and every rendered page again
before it is written; request bodies saved next to the reports too. Only keys are masked, in any
form ``gatecheck.redaction`` knows (plain, JSON-, percent- or HTML-escaped): everything else a
report quotes is the wire as received, so ``Authorization: Bearer answered`` stays as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from gatecheck._types import JSON
from gatecheck.redaction import Secret, redact, redact_bytes


class Redactor:
    """Masks known secrets in text, bytes and JSON-like data."""

    def __init__(self, secrets: Iterable[object]) -> None:
        self._secrets: list[Secret | str] = []
        for secret in secrets:
            if not isinstance(secret, Secret | str):
                raise TypeError(
                    f"run_info['secrets'] items must be Secret or str, not {type(secret).__name__}"
                )
            self._secrets.append(secret)

    def text(self, text: str) -> str:
        """``text`` with every known secret masked."""
        return redact(text, self._secrets)

    def content(self, data: bytes) -> bytes:
        """``data`` with every known secret masked (a saved request body)."""
        return redact_bytes(data, self._secrets)

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

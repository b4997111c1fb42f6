"""Keeping API keys out of everything gatecheck prints, logs, raises or writes.

A key lives in a ``Secret`` from the moment it is read (environment or command line) until the
HTTP client puts it in a header. ``str``, ``repr`` and ``format`` of a ``Secret`` never show any part
of it, ``json.dumps`` refuses it, and ``redact()`` scrubs text that may contain a key (exception
messages, wire excerpts, reports). ``RedactingFilter`` does the same for log records.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable

REDACTED = "***"
"""What a key is replaced with wherever it would otherwise appear."""


class Secret:
    """A key that only ``reveal()`` shows; equal to another ``Secret`` with the same value.

    ``Secret`` is deliberately not a ``str`` subclass, so ``json.dumps`` raises ``TypeError`` on it
    instead of writing the key, and string operations cannot leak it by accident.
    """

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "") -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value
        self._source = source

    @property
    def source(self) -> str:
        """Where the key came from (``$GATECHECK_API_KEY``, ``--api-key``), for messages; may be empty."""
        return self._source

    def reveal(self) -> str:
        """The key itself: call this only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return format(REDACTED, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        # Immutable: dataclasses.asdict(target) deep-copies fields and must not fall back to pickling.
        return self

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled (it would write the key)")


def as_secret(value: Secret | str) -> Secret:
    """Wrap a plain key; a ``Secret`` is returned as is."""
    return value if isinstance(value, Secret) else Secret(value)


def _plain_values(secrets: Iterable[Secret | str]) -> list[str]:
    """Non-empty key values, longest first so a key containing another is scrubbed whole."""
    values = {s.reveal() if isinstance(s, Secret) else s for s in secrets}
    return sorted((v for v in values if v), key=len, reverse=True)


def redact(text: str, secrets: Iterable[Secret | str]) -> str:
    """``text`` with every occurrence of every secret replaced by ``***``."""
    for value in _plain_values(secrets):
        text = text.replace(value, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs known keys from a record's message, traceback and stack.

    Attach it to a *handler* (``handler.addFilter(...)``): filters on a logger do not see records
    propagated from child loggers such as ``httpcore.http11``. The record is rendered once here, so
    a key passed as a ``%s`` argument is scrubbed too.
    """

    def __init__(self, secrets: Iterable[Secret | str] = ()) -> None:
        super().__init__()
        self._secrets: list[Secret] = [as_secret(s) for s in secrets]
        self._formatter = logging.Formatter()

    def add(self, secret: Secret | str) -> None:
        """Scrub one more key from now on (keys can be loaded after logging is set up)."""
        self._secrets.append(as_secret(secret))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True

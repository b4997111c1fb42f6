"""HTTP header values that the conformance checks and the load test both read, parsed once."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds or an HTTP-date (RFC 9110 10.2.3).

    None when there is no value or it is neither; a date already past is 0. A date without a time
    zone (the asctime form, or ``-0000``) is read as UTC: RFC 9110 5.6.7 says every HTTP-date is
    UTC, so the reading never depends on the machine's local zone. ``now_s`` (default: now) is the
    wall-clock time the wait is counted from.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)

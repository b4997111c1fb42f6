"""Small readers shared by the checks: headers, JSON bodies, wire excerpts, schema failures.

A failure quotes what came back; these helpers keep every quote short, escaped and honest: wire
bytes and values are shown as JSON (a missing blank line, a stray CR or a BOM stays visible), and
every key is masked before a quote is cut (``gatecheck.quote``, re-exported here for the checks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gatecheck.checks.base import Failure
from gatecheck.quote import EXCERPT_BYTES, as_json, excerpt

__all__ = [
    "EXCERPT_BYTES",
    "as_dict",
    "as_json",
    "describe",
    "excerpt",
    "first_invalid_event",
    "header",
    "is_json",
    "json_object",
    "json_of",
    "report_violations",
    "require_status",
    "schema_failure",
]

if TYPE_CHECKING:
    from gatecheck.assemble import Violation
    from gatecheck.checks.context import CheckContext
    from gatecheck.client import Exchange
    from gatecheck.schemas import SchemaStore
    from gatecheck.sse import SSEEvent

_MISSING = object()


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (for reading optional nested fields)."""
    return value if isinstance(value, dict) else {}


def header(exchange: Exchange, name: str) -> str | None:
    """A response header, case-insensitively; None when absent."""
    value = exchange.headers.get(name)
    return None if value is None else str(value)


def describe(exchange: Exchange, limit: int = EXCERPT_BYTES) -> str:
    """Status, content type and the start of the body (or the transport error)."""
    if exchange.error:
        return f"no complete response: {exchange.error}"
    ctype = header(exchange, "content-type") or "(no content-type)"
    return f"HTTP {exchange.status}, {ctype}, body {excerpt(exchange.body, limit)}"


def json_of(exchange: Exchange) -> Any:
    """The decoded JSON body, or ``_MISSING`` when the body is not JSON (see ``is_json``)."""
    try:
        return json.loads(exchange.body)
    except (ValueError, UnicodeDecodeError):
        return _MISSING


def is_json(value: Any) -> bool:
    """False for the marker ``json_of`` returns on a body that is not JSON."""
    return value is not _MISSING


def json_object(exchange: Exchange, *, rule: str, what: str) -> dict[str, Any]:
    """The JSON object body, or raise a Failure saying what came back instead."""
    body = json_of(exchange)
    if not isinstance(body, dict):
        raise Failure(
            title=f"{what} is not a JSON object",
            rule=rule,
            expected="a JSON object body",
            received=describe(exchange),
            exchange=exchange,
        )
    return body


def require_status(exchange: Exchange, expected: int, *, rule: str, what: str) -> None:
    """Raise a Failure unless the response has status ``expected``."""
    if exchange.status != expected:
        raise Failure(
            title=f"{what} answered {exchange.status or 'nothing'}, not {expected}",
            rule=rule,
            expected=f"HTTP {expected}",
            received=describe(exchange),
            exchange=exchange,
        )


def schema_failure(
    store: SchemaStore, schema: str, instance: Any, *, rule: str, what: str, exchange: Exchange | None
) -> Failure | None:
    """A Failure naming the best schema issue (and how many more), or None when ``instance`` is valid."""
    issues = store.issues(schema, instance)
    if not issues:
        return None
    more = f" (+{len(issues) - 1} more issues)" if len(issues) > 1 else ""
    return Failure(
        title=f"{what} does not match schema {schema}",
        rule=rule,
        expected=f"an instance valid against schemas/{schema}.json",
        received=f"{issues[0]}{more}",
        exchange=exchange,
    )


def first_invalid_event(
    store: SchemaStore, events: Iterable[SSEEvent], schema: str, *, rule: str, what: str, exchange: Exchange
) -> Failure | None:
    """A failure for the first event whose data is JSON but invalid against ``schema``, quoting its bytes.

    Data that is not JSON (``[DONE]``, garbage) is left to the checks that own those rules.
    """
    for event in events:
        try:
            data = json.loads(event.data)
        except ValueError:
            continue
        issues = store.issues(schema, data)
        if issues:
            return Failure(
                title=f"{what} does not match schema {schema}",
                rule=rule,
                expected=f"every event valid against schemas/{schema}.json",
                received=f"{issues[0]}; wire {excerpt(event.raw)}",
                exchange=exchange,
            )
    return None


def report_violations(
    ctx: CheckContext,
    violations: Iterable[Violation],
    exchange: Exchange,
    *,
    prefix: str,
    title: str,
    expected: str,
) -> None:
    """Record one failure per violated rule, quoting its first violation and counting the others.

    A broken rule usually repeats on every chunk; one finding with "and N more" reads better than
    N findings that differ only in their position.
    """
    by_rule: dict[str, list[Violation]] = {}
    for violation in violations:
        by_rule.setdefault(violation.rule, []).append(violation)
    for rule, found in by_rule.items():
        first = found[0]
        where = "" if first.index is None else f" (event {first.index})"
        more = ""
        if len(found) > 1:
            positions = [str(v.index) for v in found[1:] if v.index is not None]
            shown = ", ".join(positions[:10]) + (", ..." if len(positions) > 10 else "")
            more = f"; and {len(found) - 1} more" + (f" (events {shown})" if positions else "")
        ctx.record(
            Failure(
                title=f"{title}{where}",
                rule=f"{prefix}-{rule}",
                expected=expected,
                received=f"{first.message}; wire {excerpt(first.raw)}{more}",
                exchange=exchange,
            )
        )

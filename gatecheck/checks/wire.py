"""Small readers shared by the checks: headers, JSON bodies, stream captures, wire excerpts, schema failures.

A failure quotes what came back; these helpers keep every quote short, escaped and honest: wire
bytes and values are shown as JSON (a missing blank line, a stray CR or a BOM stays visible), and
every key is masked before a quote is cut (``gatecheck.quote``, re-exported here for the checks).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeGuard, TypeVar

import jiter

from gatecheck.checks.base import Failure
from gatecheck.quote import EXCERPT_BYTES, as_json, excerpt
from gatecheck.rules import rules

__all__ = [
    "EXCERPT_BYTES",
    "Capture",
    "StreamAssembler",
    "are_numbers",
    "as_dict",
    "as_json",
    "describe",
    "excerpt",
    "header",
    "invalid_events",
    "is_json",
    "json_object",
    "json_of",
    "report_capture",
    "report_violations",
    "require_status",
    "schema_failures",
]

if TYPE_CHECKING:
    from gatecheck.assemble import Violation
    from gatecheck.checks.context import CheckContext
    from gatecheck.client import Exchange
    from gatecheck.schemas import SchemaIssue, SchemaStore
    from gatecheck.sse import SSEEvent

_MISSING = object()


class _Assembled(Protocol):
    """An assembled stream (``AssembledChat``, ``AssembledMessage``): the answer and its violations."""

    @property
    def violations(self) -> list[Violation]: ...


AssembledT = TypeVar("AssembledT", bound=_Assembled)
_AssembledT_co = TypeVar("_AssembledT_co", bound=_Assembled, covariant=True)


class StreamAssembler(Protocol[_AssembledT_co]):
    """``ChatStreamAssembler`` or ``MessageStreamAssembler``: events in, the assembled stream out."""

    def add(self, event: SSEEvent) -> None: ...

    def finish(self) -> _AssembledT_co: ...


@dataclass(frozen=True)
class Capture(Generic[AssembledT]):
    """One streamed exchange, decoded once with the project's SSE decoder and assembled once.

    ``tail`` is the unterminated end the decoder discarded; ``decode_error`` says why decoding
    stopped early (the events before it are kept and assembled).
    """

    rule_prefix: ClassVar[str]
    """The prefix of the failure rules its violations are reported under (``stream-``, ``anthropic-``)."""

    exchange: Exchange
    events: list[SSEEvent]
    tail: bytes
    decode_error: str | None
    assembled: AssembledT

    @classmethod
    def of(cls, exchange: Exchange, assembler: StreamAssembler[AssembledT]) -> Self:
        """Decode ``exchange``'s body and assemble its events (never raises on bad bytes)."""
        from gatecheck.sse import decode_chunks

        decoded = decode_chunks(exchange.chunks)
        for event in decoded.events:
            assembler.add(event)
        error = None if decoded.error is None else str(decoded.error)
        return cls(exchange, decoded.events, decoded.tail, error, assembler.finish())

    def violations(self, *rules: str) -> list[Violation]:
        """The assembler's violations with one of ``rules``."""
        return [v for v in self.assembled.violations if v.rule in rules]


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (for reading optional nested fields)."""
    return value if isinstance(value, dict) else {}


def are_numbers(values: Sequence[object], *, counts: bool = False) -> TypeGuard[Sequence[float]]:
    """Whether every value read from a body is a number, so a check may do arithmetic on them.

    With ``counts``, each must be a whole number of at least 0 (a JSON ``true`` is not a count).
    """
    if counts:
        return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
    return all(isinstance(v, int | float) for v in values)


def is_json_object_prefix(text: str) -> bool:
    """Whether ``text`` is the start of a JSON object (or one whole): what a cut at max_tokens leaves.

    Whitespace alone counts (OpenAI warns that JSON mode may emit whitespace until the limit); a
    whole value followed by more text does not, nor does anything that does not open with ``{``.
    """
    stripped = text.strip()
    if not stripped:
        return True
    if not stripped.startswith("{"):
        return False
    try:
        json.loads(stripped)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            return False
    else:
        return True
    try:
        jiter.from_json(stripped.encode(), partial_mode="trailing-strings")
    except ValueError:
        return False
    return True


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


def schema_failures(
    store: SchemaStore,
    schema: str,
    instance: Any,
    *,
    rule: str,
    what: str,
    exchange: Exchange | None,
    elsewhere: Collection[str] = (),
    own: Collection[str] | None = None,
) -> list[Failure]:
    """One Failure per rule the instance's schema issues break (``rule`` for unannotated ones).

    An issue under an ``x-rule`` annotation belongs to that rule (and its provenance), so an
    OpenAI-only constraint or a null optional field is graded apart from the documented schema.
    One root cause, one finding: an issue of a rule another check of the same answer owns
    (``elsewhere``) is left to it; with ``own`` given, see ``owned_rule``.
    """
    by_rule: dict[str, list[SchemaIssue]] = {}
    for issue in store.issues(schema, instance):
        named = owned_rule(issue.rule or rule, rule, own)
        if named is not None and named not in elsewhere:
            by_rule.setdefault(named, []).append(issue)
    return [
        Failure(
            title=f"{what} does not match schema {schema}",
            rule=rule_id,
            expected=f"an instance valid against schemas/{schema}.json",
            received=f"{found[0]}" + (f" (+{len(found) - 1} more issues)" if len(found) > 1 else ""),
            exchange=exchange,
        )
        for rule_id, found in by_rule.items()
    ]


def owned_rule(named: str, rule: str, own: Collection[str] | None) -> str | None:
    """The rule a check reports a schema issue of rule ``named`` under; None: not its finding.

    A check judging a whole body in another body's shape (a search answer, a fuzzed request's
    answer) reports an annotated constraint outside its ``own`` rules as its own ``rule`` when that
    constraint is a document's or an SDK's; an OpenAI-only or judgement one is left to the check
    that owns it on the shared answer (it must not turn into a documented finding here).
    """
    if own is None or named in own:
        return named
    return rule if rules()[named].provenance in ("documented", "sdk") else None


def invalid_events(
    store: SchemaStore,
    events: Iterable[SSEEvent],
    schema: str,
    *,
    rule: str,
    what: str,
    exchange: Exchange,
    own: Collection[str] | None = None,
) -> list[Failure]:
    """One failure per rule broken by events whose data is JSON but invalid against ``schema``.

    Each quotes the first event that broke the rule (its bytes) and counts the others. Data that
    is not JSON (``[DONE]``, garbage) is left to the checks that own those rules; ``own`` as in
    ``owned_rule``.
    """
    first: dict[str, tuple[SchemaIssue, SSEEvent]] = {}
    count: dict[str, int] = {}
    for event in events:
        try:
            data = json.loads(event.data)
        except ValueError:
            continue
        for issue in store.issues(schema, data):
            rule_id = owned_rule(issue.rule or rule, rule, own)
            if rule_id is None:
                continue
            first.setdefault(rule_id, (issue, event))
            count[rule_id] = count.get(rule_id, 0) + 1
    failures = []
    for rule_id, (issue, event) in first.items():
        more = f"; and {count[rule_id] - 1} more issues" if count[rule_id] > 1 else ""
        failures.append(
            Failure(
                title=f"{what} does not match schema {schema}",
                rule=rule_id,
                expected=f"every event valid against schemas/{schema}.json",
                received=f"{issue}; wire {excerpt(event.raw)}{more}",
                exchange=exchange,
            )
        )
    return failures


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


def report_capture(
    ctx: CheckContext, capture: Capture[Any], rules: Iterable[str], title: str, expected: str
) -> None:
    """Record one failure per violation of ``rules`` in a capture, quoting its raw bytes."""
    report_violations(
        ctx,
        capture.violations(*rules),
        capture.exchange,
        prefix=capture.rule_prefix,
        title=title,
        expected=expected,
    )

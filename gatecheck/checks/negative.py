"""Invalid requests generated from a request schema's own constraints.

Walks the top-level properties of a (self-contained, draft-07) request schema and, for each,
derives one request per constraint that breaks exactly that constraint: a value below ``minimum``
and above ``maximum``, a value of a type the property does not allow, a value outside an ``enum``,
an empty string or array under ``minLength``/``minItems``, one item too many over ``maxItems``, an
item of the wrong type in an array, each ``required`` property left out, and each property a
present property ``dependencies`` on left out. Every candidate is
checked against the schema's validator before use, so a case is only ever a request the schema
itself rejects; nothing is hand-picked, and a constraint added to the schema is tested at once.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatecheck._types import JSONObject

if TYPE_CHECKING:
    from gatecheck.schemas import SchemaStore

INVALID_TEXT = "gatecheck-invalid-value"

_SAMPLES: dict[str, Any] = {
    "string": INVALID_TEXT,
    "integer": 7,
    "number": 1.5,
    "boolean": True,
    "array": [INVALID_TEXT],
    "object": {"gatecheck": INVALID_TEXT},
    "null": None,
}


@dataclass(frozen=True, slots=True)
class NegativeCase:
    """One invalid request: which property, which constraint it breaks, and the body."""

    field: str
    constraint: str
    body: JSONObject

    @property
    def label(self) -> str:
        """A short name for messages, e.g. ``temperature: above maximum 2``."""
        return f"{self.field}: {self.constraint}"


def negative_cases(
    schema: JSONObject, base: JSONObject, is_valid: Callable[[Any], bool]
) -> list[NegativeCase]:
    """Every single-constraint violation of ``schema`` applied to the valid request ``base``."""
    if not is_valid(base):
        raise ValueError("the base request must be valid against the schema")
    cases: list[NegativeCase] = []
    seen: set[str] = set()
    for field, constraint, mutate in _mutations(schema):
        body = copy.deepcopy(base)
        mutate(body)
        key = repr(sorted(body.items(), key=lambda kv: kv[0]))
        if key in seen or is_valid(body):
            continue
        seen.add(key)
        cases.append(NegativeCase(field, constraint, body))
    return cases


def broken_rule(store: SchemaStore, schema: str, body: JSONObject, *, default: str) -> str:
    """The rule of the constraint ``body`` breaks: ``default`` (the documents') unless every issue
    lies under an ``x-rule`` annotation (an OpenAI-only constraint: ``request-protocol-constraint``)."""
    issues = store.issues(schema, body)
    if not issues or any(issue.rule is None for issue in issues):
        return default
    return issues[0].rule or default


Mutation = tuple[str, str, Callable[[JSONObject], None]]


def _mutations(schema: JSONObject) -> Iterator[Mutation]:
    definitions = schema.get("definitions", {})
    for name in schema.get("required", []):
        yield name, "required property left out", _drop(name)
    for name, needed in schema.get("dependencies", {}).items():
        for other in needed if isinstance(needed, list) else ():
            yield other, f"left out although {name} needs it", _drop(other)
    for name, sub in schema.get("properties", {}).items():
        resolved = _resolve(sub, definitions)
        for constraint, value in _bad_values(resolved, definitions):
            yield name, constraint, _put(name, value)


def _bad_values(sub: JSONObject, definitions: JSONObject) -> Iterator[tuple[str, Any]]:
    """(constraint broken, value) pairs for one property schema."""
    allowed = _allowed_types(sub, definitions)
    if allowed is not None:
        for kind in ("string", "number", "integer", "boolean", "array", "object"):
            if kind not in allowed and not (kind == "integer" and "number" in allowed):
                yield f"type {kind} where {'/'.join(sorted(allowed))} is allowed", _SAMPLES[kind]
                break
    for branch in _branches(sub, definitions):
        yield from _bounds(branch)
        if "enum" in branch:
            yield f"not one of {json.dumps(branch['enum'])}", INVALID_TEXT
        if branch.get("minLength", 0) >= 1:
            yield f"shorter than minLength {branch['minLength']}", ""
        if branch.get("minItems", 0) >= 1:
            yield f"fewer than minItems {branch['minItems']}", []
        if "maxItems" in branch:
            yield f"more than maxItems {branch['maxItems']}", ["x"] * (branch["maxItems"] + 1)
        items = branch.get("items")
        if isinstance(items, dict):
            item_types = _allowed_types(_resolve(items, definitions), definitions)
            wrong = next(
                (k for k in ("integer", "string", "object") if item_types and k not in item_types), None
            )
            if wrong is not None:
                yield f"an item of type {wrong}", [_SAMPLES[wrong]]


def _bounds(branch: JSONObject) -> Iterator[tuple[str, Any]]:
    integer = _types_of(branch) == {"integer"} or (
        "integer" in _types_of(branch) and "number" not in _types_of(branch)
    )
    step = 1 if integer else 0.5
    if "minimum" in branch:
        yield f"below minimum {branch['minimum']}", branch["minimum"] - step
    if "exclusiveMinimum" in branch:
        yield f"not above exclusiveMinimum {branch['exclusiveMinimum']}", branch["exclusiveMinimum"]
    if "maximum" in branch:
        yield f"above maximum {branch['maximum']}", branch["maximum"] + step
    if "exclusiveMaximum" in branch:
        yield f"not below exclusiveMaximum {branch['exclusiveMaximum']}", branch["exclusiveMaximum"]


def _branches(sub: JSONObject, definitions: JSONObject) -> list[JSONObject]:
    """The schema itself, or its anyOf/oneOf branches (resolved)."""
    for key in ("anyOf", "oneOf"):
        if key in sub:
            return [_resolve(b, definitions) for b in sub[key]]
    return [sub]


def _allowed_types(sub: JSONObject, definitions: JSONObject) -> set[str] | None:
    """JSON types the property accepts, or None when a branch does not say."""
    found: set[str] = set()
    for branch in _branches(sub, definitions):
        kinds = _types_of(branch)
        if not kinds:
            return None
        found |= kinds
    return found


def _types_of(branch: JSONObject) -> set[str]:
    declared = branch.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    values = branch["enum"] if "enum" in branch else [branch["const"]] if "const" in branch else None
    return {_json_type(v) for v in values} if values is not None else set()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _resolve(sub: JSONObject, definitions: JSONObject) -> JSONObject:
    ref = sub.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        return _resolve(definitions[ref.removeprefix("#/definitions/")], definitions)
    return sub


def _drop(name: str) -> Callable[[JSONObject], None]:
    def mutate(body: JSONObject) -> None:
        body.pop(name, None)

    return mutate


def _put(name: str, value: Any) -> Callable[[JSONObject], None]:
    def mutate(body: JSONObject) -> None:
        body[name] = copy.deepcopy(value)

    return mutate

"""Small JSON Schema instance generator: the fake model's structured outputs and tool arguments.

Covers what structured-output and tool schemas use: type (or a list of types), object properties
and required, array items/minItems/maxItems/uniqueItems, string minLength/maxLength and a few
formats, number/integer bounds (inclusive and exclusive) and multipleOf, boolean, null, enum,
const, anyOf/oneOf (first branch), allOf (merged) and local ``#/...`` refs. ``pattern`` is not
honoured. Deterministic: strings are drawn in turn from the words given.

Bounded: a schema may ask for ``minItems: 1e9`` or ``minLength: 1e9``, and the same ``Limit`` is
shared by every instance of one answer, so its instances together make at most so many values
and characters of strings; past either, arrays stop growing and strings stop being padded (the
answer ends with ``length``). Bounds too large for a double, or a
multipleOf that overflows, are treated as absent instead of raising.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import jsonschema

from gatecheck._types import JSON, JSONObject

_MAX_DEPTH = 8
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "hostname": "example.com",
}
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


class Limit:
    """What is left of one answer's budgets: characters of strings and values generated."""

    __slots__ = ("chars", "values")

    def __init__(self, chars: float, values: float) -> None:
        self.chars = chars
        self.values = values

    @property
    def spent(self) -> bool:
        return self.chars <= 0 or self.values <= 0

    def take(self, chars: int) -> int:
        """Spend up to ``chars`` characters (returns how many could be spent)."""
        granted = int(max(0, min(chars, self.chars)))
        self.chars -= max(chars, 1)
        return granted


class _Generator:
    def __init__(self, root: JSON, words: Iterator[str], limit: Limit) -> None:
        self.root = root
        self.words = words
        self.limit = limit

    def make(self, schema: JSON, depth: int = 0) -> JSON:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None if depth > _MAX_DEPTH else self.word()
        self.limit.values -= 1
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                rest = {k: v for k, v in schema.items() if k != key}
                return self.make({**rest, **self._resolve(schema[key][0])}, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self._resolve(part))
            return self.make(merged, depth + 1)
        kind = _pick_type(schema)
        maker = getattr(self, f"_{kind}")
        result: JSON = maker(schema, depth)
        return result

    def word(self) -> str:
        return next(self.words)

    def _resolve(self, schema: JSONObject) -> JSONObject:
        seen = 0
        while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#") and seen < _MAX_DEPTH:
            target: Any = self.root
            for part in schema["$ref"][1:].split("/")[1:]:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra} if isinstance(target, dict) else extra
            seen += 1
        return schema

    def _object(self, schema: JSONObject, depth: int) -> JSON:
        declared = schema.get("properties")
        properties: JSONObject = declared if isinstance(declared, dict) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        out: dict[str, JSON] = {name: self.make(sub, depth + 1) for name, sub in properties.items()}
        for name in required:
            if name not in out:
                out[name] = self.word()
        return out

    def _array(self, schema: JSONObject, depth: int) -> JSON:
        low = _int_or(schema.get("minItems"), 0)
        high = _int_or(schema.get("maxItems"), max(low, 1))
        count = min(max(low, 1), high)
        items = schema.get("items", {})
        if isinstance(items, list):
            return [self.make(sub, depth + 1) for sub in items[:count]]
        if schema.get("uniqueItems") and isinstance(items, dict) and isinstance(items.get("enum"), list):
            return list(items["enum"][:count])
        out: list[JSON] = []
        while len(out) < count and not self.limit.spent:
            out.append(self.make(items, depth + 1))
        return out

    def _string(self, schema: JSONObject, depth: int) -> JSON:
        fmt = schema.get("format")
        text = _FORMATS[fmt] if fmt in _FORMATS else self.word()
        low = _int_or(schema.get("minLength"), 0)
        high = _int_or(schema.get("maxLength"), max(low, len(text)))
        text = text[: self.limit.take(len(text))]
        if len(text) < low:
            text += "x" * self.limit.take(low - len(text))
        return text[:high]

    def _integer(self, schema: JSONObject, depth: int) -> JSON:
        return int(_number_in(schema, integer=True))

    def _number(self, schema: JSONObject, depth: int) -> JSON:
        return _number_in(schema, integer=False)

    def _boolean(self, schema: JSONObject, depth: int) -> JSON:
        return True

    def _null(self, schema: JSONObject, depth: int) -> JSON:
        return None


def _pick_type(schema: JSONObject) -> str:
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    types = [t for t in types if t in _TYPE_ORDER]
    non_null = [t for t in types if t != "null"]
    if non_null:
        return str(non_null[0])
    if types:
        return "null"
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _int_or(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bound(schema: JSONObject, key: str) -> float | None:
    """A numeric keyword as a finite float; None when absent, not a number or beyond a double."""
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        bound = float(value)
    except OverflowError:
        return None
    return bound if math.isfinite(bound) else None


def _number_in(schema: JSONObject, *, integer: bool) -> float:
    """1 when the bounds allow it, else a value inside them; a multiple of multipleOf when given."""
    low, high = -math.inf, math.inf
    if (minimum := _bound(schema, "minimum")) is not None:
        low = minimum
    if (exclusive := _bound(schema, "exclusiveMinimum")) is not None:
        low = max(low, exclusive + (1 if integer else 1e-6))
    if (maximum := _bound(schema, "maximum")) is not None:
        high = maximum
    if (exclusive := _bound(schema, "exclusiveMaximum")) is not None:
        high = min(high, exclusive - (1 if integer else 1e-6))
    value = (
        1.0
        if low <= 1.0 <= high
        else (low + high) / 2
        if math.isfinite(low + high)
        else min(max(1.0, low), high)
    )
    if integer:
        value = float(math.ceil(value)) if value <= high else float(math.floor(value))
    multiple = _bound(schema, "multipleOf")
    if multiple is not None and multiple > 0 and math.isfinite(value / multiple):
        value = math.ceil(value / multiple) * multiple
        if value > high:
            value -= multiple
        if integer:
            value = float(round(value))
    return value


def _merge(a: JSONObject, b: JSONObject) -> JSONObject:
    merged = {**a, **b}
    if isinstance(a.get("properties"), dict) and isinstance(b.get("properties"), dict):
        merged["properties"] = {**a["properties"], **b["properties"]}
    if isinstance(a.get("required"), list) and isinstance(b.get("required"), list):
        merged["required"] = list(dict.fromkeys(a["required"] + b["required"]))
    return merged


def instance(schema: JSON, words: list[str], limit: Limit | None = None) -> JSON:
    """A value valid against ``schema`` (within the supported subset), strings taken from ``words``.

    ``limit``: the answer's budgets (shared by its instances); none when not given.
    """
    source = itertools.cycle(words or ["value"])
    return _Generator(schema, source, limit or Limit(math.inf, math.inf)).make(schema)


def invalid_instance(schema: JSON, words: list[str], limit: Limit | None = None) -> tuple[bool, JSON]:
    """``(True, value)`` with a JSON value the schema rejects, or ``(False, None)`` if it accepts all.

    Used by fault modes that must break exactly the schema rule: the value is still JSON.
    """
    validator = jsonschema.Draft7Validator(schema if isinstance(schema, dict) else {})
    valid = instance(schema, words, limit)
    candidates: list[JSON] = []
    if isinstance(valid, dict):
        candidates += [{**valid, name: _wrong_type(value)} for name, value in valid.items()]
        candidates.append({})
    candidates += [[], {}, "", 0, None, True, {"unexpected": [None]}]
    for candidate in candidates:
        if not validator.is_valid(candidate):
            return True, candidate
    return False, None


def _wrong_type(value: JSON) -> JSON:
    return [value] if not isinstance(value, list) else {"value": value}

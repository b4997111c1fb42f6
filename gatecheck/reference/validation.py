"""Request validation against the project's request schemas (the one source of truth).

Two validators built from the same schema: a compiled one (fastjsonschema, tens of microseconds
per body instead of milliseconds with jsonschema's interpreter, which would make validation the
gateway's main cost under load) decides; only when it rejects does jsonschema run, to find the
most relevant violation. A failing body becomes a 400 ``ApiError`` naming the offending field
(OpenAI's ``param`` style, ``messages[0].role``). Should the two ever disagree, jsonschema (the
project's reference validator) wins: a body it accepts is accepted.

jsonschema's explanation is slow (about 0.7 ms per message of the body, so seconds for a big
one): it runs for small bodies only, and in the gateway's worker thread; for a bigger body the
compiled validator's own first violation is reported, named the same way.

The ``validation-lax`` fault validates against a copy of the same schema with the numeric range and
size keywords removed, so only out-of-range values slip through.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import fastjsonschema
import jsonschema

from gatecheck._types import JSON, JSONObject
from gatecheck.reference.errors import INVALID_PARAMS, MISSING_PARAM, ApiError
from gatecheck.schemas import SchemaStore

RANGE_KEYWORDS = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
    }
)
_MESSAGE_LIMIT = 300


class RequestValidator:
    """Validates request bodies for one schema name; the validators are built on first use."""

    def __init__(self, store: SchemaStore, name: str, *, lax: bool = False) -> None:
        self._store = store
        self._name = name
        self._lax = lax
        self._fast: Callable[[JSON], object] | None = None
        self._validator: jsonschema.protocols.Validator | None = None

    def accepts(self, body: JSON) -> bool:
        """Whether the compiled validator accepts ``body`` (fast; explains nothing)."""
        fast = self._fast or self._build_fast()
        try:
            fast(body)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    def check(self, body: JSON, *, explain: bool = True) -> None:
        """Raise a 400 ``ApiError`` for a violation (the most relevant one when ``explain``)."""
        fast = self._fast or self._build_fast()
        try:
            fast(body)
        except fastjsonschema.JsonSchemaValueException as exc:
            if explain:
                self._explain(body)
            else:
                _first_violation(exc)
        except fastjsonschema.JsonSchemaException:
            self._explain(body)

    def _explain(self, body: JSON) -> None:
        validator = self._validator or self._build()
        best = jsonschema.exceptions.best_match(validator.iter_errors(body))
        if best is None:
            return
        path: list[str | int] = list(best.absolute_path)
        kind = INVALID_PARAMS
        if best.validator == "required" and isinstance(best.instance, dict):
            missing = [p for p in best.validator_value if p not in best.instance]
            path += missing[:1]
            kind = MISSING_PARAM
        param = param_name(path)
        text = (
            best.message
            if len(best.message) <= _MESSAGE_LIMIT
            else best.message[: _MESSAGE_LIMIT - 3] + "..."
        )
        raise ApiError(kind, f"Invalid parameter '{param}': {text}", param=param)

    def prepare(self) -> None:
        """Compile now if the schema exists (it takes ~0.1 s, better not on a first request)."""
        if self._name in self._store.names():
            self._build_fast()

    def _build_fast(self) -> Callable[[JSON], object]:
        self._fast = _compiled(self._store, self._name, self._lax)
        return self._fast

    def _build(self) -> jsonschema.protocols.Validator:
        if self._lax:
            self._validator = jsonschema.Draft7Validator(_schema(self._store, self._name, lax=True))
        else:
            self._validator = self._store.validator(self._name)
        return self._validator


def _first_violation(exc: fastjsonschema.JsonSchemaValueException) -> None:
    """The compiled validator's violation as the 400 (``data.messages[1]`` -> ``messages[1]``)."""
    param = (exc.name or "data").removeprefix("data").lstrip(".") or "body"
    kind = INVALID_PARAMS
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = [p for p in definition.get("required", []) if p not in exc.value]
        if missing:
            param = missing[0] if param == "body" else f"{param}.{missing[0]}"
            kind = MISSING_PARAM
    text = exc.message.removeprefix("data").lstrip(".")[:_MESSAGE_LIMIT]
    raise ApiError(kind, f"Invalid parameter '{param}': {text}", param=param)


def _schema(store: SchemaStore, name: str, *, lax: bool) -> JSONObject:
    schema = store.bundled(name)
    return relaxed(schema) if lax else schema


@cache
def _compiled(store: SchemaStore, name: str, lax: bool) -> Callable[[JSON], object]:
    """One compiled validator per schema for the process (every in-process gateway shares it).

    ``use_default=False``: fastjsonschema would otherwise write schema defaults into the body.
    """
    return fastjsonschema.compile(_schema(store, name, lax=lax), use_default=False)


def param_name(path: list[str | int]) -> str:
    """``["messages", 0, "role"]`` -> ``messages[0].role``; the empty path is the body itself."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def relaxed(node: Any) -> Any:
    """``node`` without numeric range/size keywords (a property named like one is kept)."""
    if isinstance(node, dict):
        return {
            k: relaxed(v)
            for k, v in node.items()
            if not (k in RANGE_KEYWORDS and isinstance(v, int | float) and not isinstance(v, bool))
        }
    if isinstance(node, list):
        return [relaxed(v) for v in node]
    return node

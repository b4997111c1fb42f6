"""The schema store: every JSON Schema in schemas/, one validator per schema, built once.

Schemas are draft-07 and refer to each other by relative ``$ref`` against their ``$id``
(``https://gatecheck.invalid/schemas/<name>.json``); the registry below resolves those refs
from the local files only, never from the network.

A subschema may carry ``"x-rule"``: the id of the rule (``gatecheck/rules.toml``) its constraints
belong to, when that is not the rule of the schema as a whole (typically an OpenAI-only constraint
in a schema derived from the documents). Either a rule id for every keyword of the subschema, or
an object mapping keywords to rule ids (``{"maxItems": "request-protocol-constraint"}``). Each
``SchemaIssue`` carries the rule of the innermost annotation on its path (None when there is none:
the caller's rule applies), so a finding is graded by the provenance of the constraint it breaks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from gatecheck._resources import data_dir
from gatecheck._types import JSON, JSONObject
from gatecheck.errors import SchemaNotFound
from gatecheck.quote import as_json
from gatecheck.redaction import clip_text

ID_PREFIX = "https://gatecheck.invalid/schemas/"
_VALUE_LIMIT = 200
NULL_OPTIONAL_RULE = "null-optional-field"
"""The rule of a null where an optional field may only be absent (OpenAI omits it; the SDKs accept null)."""


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One way an instance fails its schema, for people: where, what rule, what value."""

    path: str
    message: str
    schema_path: str
    value: str
    rule: str | None = None

    def __str__(self) -> str:
        return f"at {self.path}: {self.message} (schema rule {self.schema_path}; value {self.value})"


def _json_path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _relevance(error: jsonschema.ValidationError) -> tuple[bool, Any]:
    """jsonschema's relevance, with the branches a discriminator rejected ranked last.

    In an ``anyOf`` dispatching on ``role`` or ``type`` (the request schemas use anyOf because
    hypothesis-jsonschema generates from it quickly), the branch whose discriminator matched holds
    the real issue; without this, best_match reports "not valid under any of the given schemas".
    """
    return (_rejected_by_discriminator(error), jsonschema.exceptions.relevance(error))


def _rejected_by_discriminator(error: jsonschema.ValidationError) -> bool:
    """True when a const or enum on a direct property failed in the same anyOf/oneOf branch."""
    if error.parent is None or not error.relative_schema_path:
        return False
    branch = error.relative_schema_path[0]
    return any(
        sibling.relative_schema_path
        and sibling.relative_schema_path[0] == branch
        and sibling.validator in ("const", "enum")
        and len(sibling.relative_path) == 1
        for sibling in error.parent.context
    )


def _lineage(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    """The error and the anyOf/oneOf errors that contain it, innermost first."""
    current: object = error
    while isinstance(current, jsonschema.ValidationError):
        yield current
        current = current.parent


def _short(value: object) -> str:
    """A value as bounded JSON, keys masked before the cut (``gatecheck.quote``)."""
    return as_json(value, _VALUE_LIMIT)


_MESSAGES = {
    "type": "{instance} is not of type {expected}",
    "enum": "{instance} is not one of {expected}",
    "const": "{expected} was expected",
    "minimum": "{instance} is less than the minimum of {expected}",
    "maximum": "{instance} is greater than the maximum of {expected}",
    "exclusiveMinimum": "{instance} is less than or equal to the minimum of {expected}",
    "exclusiveMaximum": "{instance} is greater than or equal to the maximum of {expected}",
    "minLength": "{instance} is shorter than {expected} characters",
    "maxLength": "{instance} is longer than {expected} characters",
    "minItems": "{instance} has fewer than {expected} items",
    "maxItems": "{instance} has more than {expected} items",
    "pattern": "{instance} does not match {expected}",
    "multipleOf": "{instance} is not a multiple of {expected}",
}
"""jsonschema's sentences for the common keywords, with JSON values (its own use Python reprs)."""


def issue_message(error: jsonschema.ValidationError) -> str:
    """The issue in words, values as JSON (``null``, ``"stop"``), never a Python repr."""
    rule, expected, instance = error.validator, error.validator_value, error.instance
    if rule == "required" and isinstance(expected, list):
        missing = next((p for p in expected if repr(p) in error.message), None)
        return f"{_short(missing)} is a required property"
    if rule == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        patterns = schema.get("patternProperties", {})
        known = schema.get("properties", {})
        extra = [k for k in instance if k not in known and not any(re.search(p, k) for p in patterns)]
        return f"additional properties are not allowed ({_short(extra)} unexpected)"
    template = _MESSAGES.get(str(rule))
    if template is None:
        cut = len(error.message) > _VALUE_LIMIT
        return clip_text(error.message, _VALUE_LIMIT) + ("..." if cut else "")
    return template.format(instance=_short(instance), expected=_short(expected))


class SchemaStore:
    """Loads ``<name>.json`` files from a directory and validates instances against them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._schemas: dict[str, JSONObject] = {}
        for path in sorted(directory.glob("*.json")):
            self._schemas[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        resources = [
            (schema.get("$id", ID_PREFIX + name + ".json"), Resource.from_contents(schema, DRAFT7))
            for name, schema in self._schemas.items()
        ]
        self._registry: Registry[Any] = Registry().with_resources(resources)
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def names(self) -> list[str]:
        """Every schema name (the file name without ``.json``), sorted."""
        return sorted(self._schemas)

    def get(self, name: str) -> JSONObject:
        """The schema document itself."""
        try:
            return self._schemas[name]
        except KeyError:
            raise SchemaNotFound(f"no schema {name!r} in {self.directory}") from None

    def validator(self, name: str) -> jsonschema.protocols.Validator:
        """The cached draft-07 validator for ``name``, with formats checked."""
        if name not in self._validators:
            self._validators[name] = jsonschema.Draft7Validator(
                self.get(name),
                registry=self._registry,
                format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
            )
        return self._validators[name]

    def issues(self, name: str, instance: JSON) -> list[SchemaIssue]:
        """All issues of ``instance`` against schema ``name``; the most relevant one first."""
        errors = list(self.validator(name).iter_errors(instance))
        if not errors:
            return []
        best = jsonschema.exceptions.best_match(errors, key=_relevance)
        # best_match may descend into an anyOf's context: lead with that error, and drop the vague
        # "not valid under any of the given schemas" it came from.
        enclosing = {id(e) for e in _lineage(best)}
        ordered = [best, *(e for e in errors if id(e) not in enclosing)]
        return [
            SchemaIssue(
                path=_json_path(e.absolute_path),
                message=issue_message(e),
                schema_path="/".join(str(p) for p in e.absolute_schema_path),
                value=_short(e.instance),
                rule=self.rule_at(name, list(e.absolute_schema_path))
                or (NULL_OPTIONAL_RULE if self._null_for_optional(name, e) else None),
            )
            for e in ordered
        ]

    def rule_at(self, name: str, schema_path: list[str | int]) -> str | None:
        """The rule of the innermost ``x-rule`` annotation along ``schema_path`` in schema ``name``."""
        found: str | None = None
        for node, key in self._walk(name, schema_path):
            annotation = node.get("x-rule") if isinstance(node, dict) else None
            if isinstance(annotation, str):
                found = annotation
            elif isinstance(annotation, dict) and isinstance(annotation.get(str(key)), str):
                found = annotation[str(key)]
        return found

    def _walk(self, name: str, schema_path: list[str | int]) -> Iterator[tuple[JSON, str | int]]:
        """(node, key) along ``schema_path``: each node visited and the key taken from it.

        The path is jsonschema's ``absolute_schema_path``: it runs through ``$ref`` without naming
        it, so a key missing from a node that has a ``$ref`` is looked up in the referenced schema.
        """
        root: JSON = self.get(name)
        node: JSON = root
        for key in schema_path:
            while isinstance(node, dict) and key not in node and isinstance(node.get("$ref"), str):
                root, node = self._deref(root, node["$ref"])
            yield node, key
            if isinstance(node, dict):
                node = node.get(str(key))
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            else:
                return

    def _null_for_optional(self, name: str, error: jsonschema.ValidationError) -> bool:
        """True for a null refused (by type, const or enum) in a property its object does not require."""
        path = list(error.absolute_schema_path)
        if (
            error.validator not in ("type", "const", "enum")
            or error.instance is not None
            or len(path) < 3
            or path[-3] != "properties"
        ):
            return False
        owner = [node for node, _ in self._walk(name, path)][-3]
        required = owner.get("required", []) if isinstance(owner, dict) else []
        return path[-2] not in required

    def _deref(self, root: JSON, ref: str) -> tuple[JSON, JSON]:
        """(document, subschema) a ``$ref`` points at: another file's root, or a local pointer."""
        location, _, pointer = ref.partition("#")
        if location:
            root = self.get(location.rsplit("/", 1)[-1].removesuffix(".json"))
        node = root
        for part in (p for p in pointer.split("/") if p):
            node = node.get(part) if isinstance(node, dict) else None
        return root, node

    def is_valid(self, name: str, instance: JSON) -> bool:
        """True when ``instance`` satisfies schema ``name``."""
        return bool(self.validator(name).is_valid(instance))

    def bundled(self, name: str) -> JSONObject:
        """Schema ``name`` with every cross-file ``$ref`` inlined, for tools without a registry."""
        inlined: JSONObject = _inline(self.get(name), self)
        return inlined


def _inline(node: JSON, store: SchemaStore) -> JSON:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#") and ref.endswith(".json"):
            target = store.get(ref.rsplit("/", 1)[-1][: -len(".json")])
            inlined = {k: v for k, v in target.items() if k not in ("$id", "$schema")}
            return _inline(inlined, store)
        return {k: _inline(v, store) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, store) for v in node]
    return node


@cache
def default_store() -> SchemaStore:
    """The store over the shipped ``schemas/`` directory (cached for the process)."""
    return SchemaStore(data_dir("schemas"))

"""Invalid requests generated from the request schema: each breaks exactly what it says."""

from __future__ import annotations

import copy
from typing import Any

from gatecheck.checks.negative import negative_cases
from gatecheck.checks.requests import WEATHER_TOOL
from gatecheck.schemas import default_store

SCHEMA = "openai.chat.request"
BASE: dict[str, Any] = {
    "model": "deepseek-v4-flash",
    "messages": [{"role": "user", "content": "Say OK."}],
    "max_tokens": 8,
    "tools": [WEATHER_TOOL],
    "tool_choice": "none",
}


def cases() -> dict[str, dict[str, Any]]:
    store = default_store()
    found = negative_cases(store.get(SCHEMA), BASE, lambda b: store.is_valid(SCHEMA, b))
    return {case.label: case.body for case in found}


def test_every_case_is_rejected_by_the_schema_and_differs_from_the_base() -> None:
    store = default_store()
    generated = cases()
    assert len(generated) >= 30
    for label, body in generated.items():
        assert not store.is_valid(SCHEMA, body), label
        assert body != BASE, label


def test_every_range_of_the_schema_is_tested_on_both_sides() -> None:
    generated = cases()
    properties = default_store().get(SCHEMA)["properties"]
    for name, sub in properties.items():
        if "minimum" in sub:
            assert f"{name}: below minimum {sub['minimum']}" in generated
        if "maximum" in sub:
            assert f"{name}: above maximum {sub['maximum']}" in generated
    assert generated["n: below minimum 1"]["n"] == 0
    assert generated["temperature: above maximum 2"]["temperature"] > 2


def test_required_fields_enums_types_and_dependencies_are_covered() -> None:
    generated = cases()
    assert "model" not in generated["model: required property left out"]
    assert "messages" not in generated["messages: required property left out"]
    assert any(label.startswith("reasoning_effort: not one of") for label in generated)
    assert any(label.startswith("stream: type ") for label in generated)
    assert "tools" not in generated["tools: left out although tool_choice needs it"]


def test_a_constraint_added_to_the_schema_is_tested_at_once() -> None:
    schema = copy.deepcopy(default_store().get(SCHEMA))
    schema["properties"]["seed"] = {"type": "integer", "minimum": 0, "maximum": 99}
    validator = default_store().validator(SCHEMA).__class__(schema)
    found = negative_cases(schema, BASE, validator.is_valid)
    assert {"seed: below minimum 0", "seed: above maximum 99"} <= {c.label for c in found}

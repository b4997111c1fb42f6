"""The rule registry: every rule a finding can name is registered with its provenance, and no more."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gatecheck.assemble import CHAT_RULES, MESSAGE_RULES
from gatecheck.checks import CHECKS, load_all
from gatecheck.rules import PROVENANCES, markdown_table, rule, rules
from gatecheck.schemas import NULL_OPTIONAL_RULE, default_store

ROOT = Path(__file__).resolve().parent.parent
CHECK_SOURCES = sorted((ROOT / "gatecheck" / "checks").glob("*.py"))

TEMPLATES = {
    # rule ids the checks build from a prefix (``f"{schema}-schema"``, ``f"{rule}-total"``...)
    "schema bodies": [
        f"{schema}-{what}"
        for schema in (
            "openai.models",
            "gateway.balance",
            "gateway.images.response",
            "gateway.search.response",
        )
        for what in ("status", "not-json", "schema")
    ],
    "usage": [
        f"{area}-usage-{what}" for area in ("nonstream", "stream", "search") for what in ("missing", "total")
    ],
}


def check_source() -> str:
    return "".join(p.read_text(encoding="utf-8") for p in CHECK_SOURCES)


def literal_rules() -> set[str]:
    """``rule="..."`` / ``status_rule="..."`` (and ``rule: str = "..."``) literals in the check modules."""
    return set(re.findall(r'rule(?:: str)? ?= ?"([a-z0-9.-]+)"', check_source()))


def schema_rules() -> set[str]:
    """The rule ids named by ``x-rule`` annotations in schemas/."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            annotation = node.get("x-rule")
            if isinstance(annotation, str):
                found.add(annotation)
            elif isinstance(annotation, dict):
                found.update(annotation.values())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in (ROOT / "schemas").glob("*.json"):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def emitted_rules() -> set[str]:
    """Every rule id the code can put on a finding."""
    assembled = {f"stream-{r}" for r in CHAT_RULES} | {f"anthropic-{r}" for r in MESSAGE_RULES}
    templated = {r for family in TEMPLATES.values() for r in family}
    return literal_rules() | assembled | templated | schema_rules() | {NULL_OPTIONAL_RULE}


def test_every_rule_the_code_can_report_is_registered() -> None:
    unregistered = sorted(emitted_rules() - set(rules()))
    assert not unregistered, f"register these in gatecheck/rules.toml: {unregistered}"


def test_every_registered_rule_is_reported_somewhere() -> None:
    mentioned = set(re.findall(r'"([a-z0-9.-]+)"', check_source()))
    unused = sorted(set(rules()) - emitted_rules() - mentioned)
    assert not unused, f"rules.toml names rules no code reports: {unused}"


def test_every_rule_has_a_provenance_and_a_source_that_says_where() -> None:
    for entry in rules().values():
        assert entry.provenance in PROVENANCES
        if entry.provenance == "documented":
            assert re.search(r"\b00[0-4]\b", entry.source), (
                f"{entry.id}: a documented rule names its document"
            )


def test_every_rule_a_check_declares_is_registered() -> None:
    load_all()
    for made in CHECKS.values():
        for rule_id in made.rules:
            rule(rule_id)


def test_schema_annotations_name_registered_rules_and_reach_the_issues() -> None:
    store = default_store()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}
    assert [i.rule for i in store.issues("openai.chat.request", body)] == ["request-protocol-constraint"]
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"tool_calls": None}}],
    }
    assert [i.rule for i in store.issues("openai.chat.chunk", chunk)] == [NULL_OPTIONAL_RULE]
    broken = {**chunk, "id": 7, "object": "chunk"}
    assert {i.rule for i in store.issues("openai.chat.chunk", broken)} == {
        None,
        NULL_OPTIONAL_RULE,
        "stream-object-wrong",
    }


def test_the_rule_table_in_docs_conformance_md_is_current() -> None:
    text = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    table = text.split("<!-- rules:begin -->\n", 1)[1].split("<!-- rules:end -->", 1)[0]
    assert table == markdown_table(), "regenerate the table from gatecheck.rules.markdown_table()"

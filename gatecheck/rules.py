"""Every rule a finding can name, where it comes from, and so how hard a profile grades it.

A ``Failure`` names a rule id; ``rules.toml`` (beside this module) says, for every id, its
*provenance* and its source:

- ``documented``: one of the five API documents says it (the source names document and section);
- ``protocol``: OpenAI's or Anthropic's own reference, which the documents claim compatibility
  with, says it, but the documents do not;
- ``sdk``: the official OpenAI or Anthropic SDKs rely on it (breaking it breaks a client);
- ``judgement``: gatecheck's own judgement (a good practice, a heuristic).

Profiles grade by provenance (``[grading]`` in a profile file), then by rule (``[severity]``), so
a FAIL under the default profile always has a document or a broken SDK behind it. Schema
constraints take part too: a subschema carrying ``"x-rule": "<id>"`` hands its issues to that
rule (see ``gatecheck.schemas``), so a schema finding is graded like any other.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal, cast

Provenance = Literal["documented", "protocol", "sdk", "judgement"]
PROVENANCES: tuple[Provenance, ...] = ("documented", "protocol", "sdk", "judgement")

RULES_FILE = Path(__file__).resolve().parent / "rules.toml"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: its stable id, where it comes from and what it says."""

    id: str
    provenance: Provenance
    source: str
    says: str


@cache
def rules() -> Mapping[str, Rule]:
    """Every registered rule by id (read from ``rules.toml`` once)."""
    data = tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))
    table: dict[str, Rule] = {}
    for rule_id, entry in data.items():
        provenance = entry.get("provenance")
        if provenance not in PROVENANCES or not entry.get("source") or not entry.get("says"):
            raise ValueError(
                f"rules.toml: {rule_id} needs provenance ({', '.join(PROVENANCES)}), source, says"
            )
        unknown = set(entry) - {"provenance", "source", "says"}
        if unknown:
            raise ValueError(f"rules.toml: {rule_id} has unknown keys {sorted(unknown)}")
        table[rule_id] = Rule(rule_id, cast(Provenance, provenance), entry["source"], entry["says"])
    return MappingProxyType(table)


def rule(rule_id: str) -> Rule:
    """The registered rule ``rule_id``; a KeyError names an unregistered one (a gatecheck bug)."""
    try:
        return rules()[rule_id]
    except KeyError:
        raise KeyError(f"rule {rule_id!r} is not registered in {RULES_FILE.name}") from None


def markdown_table() -> str:
    """Every rule as a Markdown table (provenance, id, what it says, source): docs/conformance.md."""
    order = {p: i for i, p in enumerate(PROVENANCES)}
    rows = sorted(rules().values(), key=lambda r: (order[r.provenance], r.id))
    lines = ["| provenance | rule | says | source |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.provenance} | `{r.id}` | {_cell(r.says)} | {_cell(r.source)} |" for r in rows]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")

"""The coverage map: every statement of the five documents, what verifies it, and the proof.

``statements.toml`` (beside this module) lists every statement of shared/api-docs 000-004 by
document and section, each with the rule ids that verify it or the reason it is not verified
("not observable from outside", "not normative", "open: ..."). This module joins each statement
to its rules (``rules.toml``), the checks that declare those rules (``rules=`` on ``@check``) and
the reference-gateway faults that prove those checks can fail (``checks/faultmap.py``), finds every
break in that chain, and renders the whole as Markdown: docs/coverage.md is ``render()``'s output
(``gatecheck conform --coverage``), and tests/test_coverage.py fails on any ``problems()``.

Known breaks are listed in the file's ``[gaps]`` with what closes them; a break not listed there,
and a listed one that is no longer true, are both problems, so the list cannot rot.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from gatecheck.checks.base import FAMILIES, Check
from gatecheck.results import Verdict
from gatecheck.rules import Rule

STATEMENTS_FILE = Path(__file__).resolve().parent / "statements.toml"

Status = Literal["verified", "not observable from outside", "not normative", "open"]
UNVERIFIABLE: tuple[Status, ...] = ("not observable from outside", "not normative")
OPEN_PREFIX = "open: "

RUNNER_RULES = frozenset({"check-error"})
"""Rules the runner reports for any check (one that crashed): no check declares them."""

_KEYS = {"section", "quote", "rules", "checks", "reason", "note"}


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a document: where it is, what it says, and what verifies it."""

    id: str
    document: str
    section: str
    quote: str
    rules: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    reason: str = ""
    note: str = ""

    @property
    def status(self) -> Status:
        """verified, open, or why it cannot be verified (an unknown reason counts as open)."""
        if not self.reason:
            return "verified"
        if self.reason in UNVERIFIABLE:
            return "not observable from outside" if self.reason == UNVERIFIABLE[0] else "not normative"
        return "open"


@dataclass(frozen=True, slots=True)
class Registry:
    """``statements.toml``: the documents, their statements, and the known gaps in the chain."""

    documents: Mapping[str, str]
    statements: tuple[Statement, ...]
    unproven_checks: Mapping[str, str]
    undeclared_rules: Mapping[str, str]


def parse_registry(text: str) -> Registry:
    """Read a statements file; a ValueError names an entry of the wrong shape."""
    data = tomllib.loads(text)
    documents = {str(k): str(v) for k, v in data.get("documents", {}).items()}
    gaps = data.get("gaps", {})
    made = [_statement(sid, entry) for sid, entry in data.get("statements", {}).items()]
    return Registry(
        MappingProxyType(documents),
        tuple(made),
        MappingProxyType(dict(gaps.get("checks-without-fault", {}))),
        MappingProxyType(dict(gaps.get("rules-without-check", {}))),
    )


def _statement(sid: str, entry: dict[str, Any]) -> Statement:
    unknown = set(entry) - _KEYS
    if unknown or not entry.get("section") or not entry.get("quote"):
        raise ValueError(f"statements.toml: {sid} needs section and quote, may have {sorted(_KEYS)}")
    return Statement(
        id=sid,
        document=sid[:3],
        section=entry["section"],
        quote=entry["quote"],
        rules=tuple(entry.get("rules", ())),
        checks=tuple(entry.get("checks", ())),
        reason=entry.get("reason", ""),
        note=entry.get("note", ""),
    )


@cache
def registry() -> Registry:
    """The statements registry shipped beside this module (read once)."""
    return parse_registry(STATEMENTS_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Coverage:
    """Statements joined to rules, checks and faults; every input is plain data, so tests can vary it."""

    registry: Registry
    rules: Mapping[str, Rule]
    checks: Mapping[str, tuple[str, ...]]
    """Check id -> the rule ids it declares (registration order)."""
    areas: Mapping[str, str]
    """Check id -> its area."""
    faults: tuple[str, ...]
    """Every reference-gateway fault, in the fault table's order."""
    proofs: Mapping[str, Mapping[str, Verdict]]
    """Fault -> {check id: the verdict the check reaches with it} (the fault map)."""

    def owners(self, rule_id: str) -> tuple[str, ...]:
        """The checks that declare ``rule_id``."""
        return tuple(c for c, declared in self.checks.items() if rule_id in declared)

    def proving(self, check_id: str) -> tuple[tuple[str, Verdict], ...]:
        """The faults that prove ``check_id`` can fail, with the verdict it reaches on each."""
        return tuple((fault, mapped[check_id]) for fault, mapped in self.proofs.items() if check_id in mapped)

    def judges(self, statement: Statement, rule_id: str) -> tuple[str, ...]:
        """The checks judging ``statement`` by ``rule_id``: its owners, within those the statement names."""
        owners = self.owners(rule_id)
        return tuple(c for c in owners if c in statement.checks) if statement.checks else owners

    def checks_of(self, statement: Statement) -> tuple[str, ...]:
        """Every check judging ``statement``, by any of its rules."""
        return tuple(dict.fromkeys(c for r in statement.rules for c in self.judges(statement, r)))

    def chain(self, statement: Statement) -> str:
        """How far a statement's proof reaches: proven, no proving fault yet, no declaring check yet."""
        checks = self.checks_of(statement)
        if not checks:
            return "no declaring check yet"
        return "proven" if any(self.proving(c) for c in checks) else "no proving fault yet"

    def problems(self) -> list[str]:
        """Every break in the chain not listed in ``[gaps]``, every stale gap, every malformed statement."""
        return [
            *self._check_problems(),
            *self._fault_problems(),
            *self._rule_problems(),
            *self._statement_problems(),
        ]

    def _check_problems(self) -> Iterable[str]:
        gaps = self.registry.unproven_checks
        for check_id in self.checks:
            if not self.proving(check_id) and check_id not in gaps:
                yield f"check {check_id} has no fault proving it (gatecheck/checks/faultmap.py)"
        for check_id in gaps:
            if check_id not in self.checks:
                yield f"[gaps.checks-without-fault] names {check_id}, which is not a check: remove it"
            elif self.proving(check_id):
                yield f"[gaps.checks-without-fault] {check_id} is proved by a fault now: remove it"

    def _fault_problems(self) -> Iterable[str]:
        for fault in self.faults:
            if not self.proofs.get(fault):
                yield f"fault {fault} proves no check (gatecheck/checks/faultmap.py)"
        for fault, mapped in self.proofs.items():
            if fault not in self.faults:
                yield f"the fault map names {fault}, which is not a reference-gateway fault"
            yield from (
                f"the fault map maps {fault} to {c}, which is not a check"
                for c in mapped
                if c not in self.checks
            )

    def _rule_problems(self) -> Iterable[str]:
        declared = {r for rules in self.checks.values() for r in rules}
        gaps = self.registry.undeclared_rules
        for rule_id in self.rules:
            if rule_id not in declared and rule_id not in gaps and rule_id not in RUNNER_RULES:
                yield f"rule {rule_id} is declared by no check (rules= on @check)"
        for check_id, rules in self.checks.items():
            yield from (
                f"check {check_id} declares {r}, which is not registered (gatecheck/rules.toml)"
                for r in rules
                if r not in self.rules
            )
        for rule_id in gaps:
            if rule_id not in self.rules:
                yield f"[gaps.rules-without-check] names {rule_id}, which is not registered: remove it"
            elif rule_id in declared:
                owners = ", ".join(self.owners(rule_id))
                yield f"[gaps.rules-without-check] {rule_id} is declared by {owners} now: remove it"
        cited = {r for s in self.registry.statements for r in s.rules}
        for rule_id, entry in self.rules.items():
            if entry.provenance == "documented" and rule_id not in cited:
                yield f"documented rule {rule_id} is cited by no statement (gatecheck/statements.toml)"

    def _statement_problems(self) -> Iterable[str]:
        for s in self.registry.statements:
            where = f"statement {s.id}"
            if s.document not in self.registry.documents:
                yield f"{where}: its id does not start with a document ({', '.join(self.registry.documents)})"
            if not s.rules and not s.reason:
                yield f"{where}: neither a rule nor a reason"
            if s.reason and s.reason not in UNVERIFIABLE and not s.reason.startswith(OPEN_PREFIX):
                yield f"{where}: reason must be {' or '.join(repr(r) for r in UNVERIFIABLE)} or 'open: ...'"
            if s.reason in UNVERIFIABLE and not s.note:
                yield f"{where}: {s.reason}, says why in a note"
            yield from (
                f"{where}: names {r}, which is not registered" for r in s.rules if r not in self.rules
            )
            for check_id in s.checks:
                if not set(self.checks.get(check_id, ())) & set(s.rules):
                    yield f"{where}: names check {check_id}, which declares none of its rules"
            for rule_id in s.rules:
                if s.checks and self.owners(rule_id) and not self.judges(s, rule_id):
                    yield f"{where}: none of the checks it names declares {rule_id}"


def build() -> Coverage:
    """The coverage of this gatecheck: its statements, rules, checks and fault map."""
    from gatecheck.checks import load_all
    from gatecheck.checks.faultmap import FAULT_CHECKS, PROXY_FAULT_CHECKS
    from gatecheck.reference.faults import FAULTS
    from gatecheck.rules import rules

    checks = sorted(load_all().values(), key=_source_order)
    return Coverage(
        registry=registry(),
        rules=rules(),
        checks={c.id: c.rules for c in checks},
        areas={c.id: c.area for c in checks},
        faults=tuple(FAULTS),
        proofs=merged_proofs(FAULT_CHECKS, PROXY_FAULT_CHECKS),
    )


def merged_proofs(*maps: Mapping[str, Mapping[str, Verdict]]) -> dict[str, dict[str, Verdict]]:
    """Fault -> every check it proves, over fault maps proven by different tests.

    The embedded gateway's map (tests/test_conformance_faults.py) and the proxy pair's
    (tests/test_upstream_faults.py) share fault names: ``anthropic-stop-reason-wrong`` proves
    anthropic_stop_reason_max_tokens on the gateway alone and upstream_anthropic_mapping behind the
    proxy, so a fault's checks are the union of its entries.
    """
    merged: dict[str, dict[str, Verdict]] = {}
    for fault_map in maps:
        for fault, mapped in fault_map.items():
            merged.setdefault(fault, {}).update(mapped)
    return merged


def _source_order(made: Check) -> tuple[int, int]:
    """Family module, then line: registration order varies with what imported a family first."""
    family = made.func.__module__.rpartition(".")[2]
    rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    return rank, made.func.__code__.co_firstlineno


# ------------------------------------------------------------------------------------ rendering

_GENERATED = (
    "Generated from the code by `gatecheck conform --coverage` (`gatecheck/coverage.py`): the statements "
    "and their mapping are `gatecheck/statements.toml`, the rules `gatecheck/rules.toml`, the owning checks "
    "their `rules=` declarations, the proving faults `gatecheck/checks/faultmap.py`. Do not edit it by hand: "
    "`tests/test_coverage.py` fails when this file is not what the code generates."
)

_READING = (
    "A statement is **verified** when a rule checks what it says; **open** when (part of) it is not checked "
    "yet, **partly verified** when a rule already checks the rest; otherwise it is **not observable from "
    "outside** or **not normative**, and says why. Each rule leads to the checks that declare it "
    "(`rules=`), each check to the reference-gateway faults that make it fail (or warn): a statement is "
    "*proven* when one of its checks has such a fault. The `upstream` area's checks are proven on the "
    "reference gateway as a proxy in front of the scripted upstream (`PROXY_FAULT_CHECKS`, "
    "`tests/test_upstream_faults.py`), the others on the gateway alone (`tests/test_conformance_faults.py`). "
    "Quotes are the documents' own words; table rows have their cells joined by ` | `."
)


def render(coverage: Coverage | None = None) -> str:
    """docs/coverage.md: counts, open statements, known gaps, every statement, then rules and checks."""
    cov = coverage or build()
    reg = cov.registry
    lines = ["# Coverage: the five documents, statement by statement", "", _GENERATED, "", _summary(cov), ""]
    lines += [*_counts_table(cov), "", _READING, ""]
    lines += _open_section(cov) + _gaps_section(cov)
    for doc, title in reg.documents.items():
        lines += [f"## {doc} {title}", "", "| statement | section | quote | verdict | rules → checks |"]
        lines.append("| --- | --- | --- | --- | --- |")
        lines += [_statement_row(cov, s) for s in reg.statements if s.document == doc]
        lines.append("")
    lines += _rules_section(cov) + _checks_section(cov)
    return "\n".join(lines).rstrip("\n") + "\n"


def _summary(cov: Coverage) -> str:
    statements = cov.registry.statements
    status = Counter(s.status for s in statements)
    verified = [s for s in statements if s.status == "verified"]
    chains = Counter(cov.chain(s) for s in verified)
    partly = sum(1 for s in statements if s.status == "open" and s.rules)
    unverifiable = status["not observable from outside"] + status["not normative"]
    return (
        f"**{len(statements)} statements: {status['verified']} verified "
        f"({chains['proven']} proven by a fault, {chains['no proving fault yet']} through checks no fault "
        f"proves yet, {chains['no declaring check yet']} through rules no check declares yet); "
        f"{unverifiable} not verifiable ({status['not observable from outside']} not observable from "
        f"outside, {status['not normative']} not normative); {status['open']} open ({partly} of them partly "
        "verified).**"
    )


def _counts_table(cov: Coverage) -> list[str]:
    columns: tuple[Status, ...] = ("verified", "not observable from outside", "not normative", "open")
    rows = ["| document | statements | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * 5]
    groups = [
        (f"{d} {t}", [s for s in cov.registry.statements if s.document == d])
        for d, t in cov.registry.documents.items()
    ]
    groups.append(("all", list(cov.registry.statements)))
    for label, members in groups:
        status = Counter(s.status for s in members)
        rows.append(f"| {label} | {len(members)} | " + " | ".join(str(status[c]) for c in columns) + " |")
    return rows


def _open_section(cov: Coverage) -> list[str]:
    lines = ["## Open statements", "", "| statement | section | what is open | already verified by |"]
    lines.append("| --- | --- | --- | --- |")
    for s in cov.registry.statements:
        if s.status == "open":
            gap = s.reason.removeprefix(OPEN_PREFIX)
            lines.append(f"| `{s.id}` | {_cell(s.section)} | {_cell(gap)} | {_codes(s.rules) or '—'} |")
    return [*lines, ""]


def _gaps_section(cov: Coverage) -> list[str]:
    reg = cov.registry
    lines = ["## Known gaps in the chain", ""]
    lines += ["Checks no reference-gateway fault proves yet:", ""]
    lines += _gap_table("check", reg.unproven_checks)
    lines += [
        "",
        "Rules no check declares yet (their statements count as verified, with no owning check):",
        "",
    ]
    lines += _gap_table("rule", reg.undeclared_rules)
    runner = ", ".join(f"`{r}`" for r in sorted(RUNNER_RULES))
    lines += [
        "",
        f"The runner's own rule ({runner}) belongs to no check: any check that crashes reports it.",
        "",
    ]
    return lines


def _gap_table(kind: str, gaps: Mapping[str, str]) -> list[str]:
    """A table of known gaps, or "None." (a table with no rows would read as a broken one)."""
    if not gaps:
        return ["None."]
    rows = [f"| `{name}` | {_cell(why)} |" for name, why in gaps.items()]
    return [f"| {kind} | why |", "| --- | --- |", *rows]


def _statement_row(cov: Coverage, s: Statement) -> str:
    verdict = {"verified": "verified", "open": "partly verified" if s.rules else "open"}.get(
        s.status, s.status
    )
    detail = [s.reason.removeprefix(OPEN_PREFIX) if s.status == "open" else "", s.note]
    text = verdict + "".join(f" — {_cell(d)}" for d in detail if d)
    return f"| `{s.id}` | {_cell(s.section)} | {_quote(s.quote)} | {text} | {_chain_cell(cov, s)} |"


def _chain_cell(cov: Coverage, s: Statement) -> str:
    parts = []
    for rule_id in s.rules:
        parts.append(f"`{rule_id}` → {_codes(cov.judges(s, rule_id)) or 'no check declares it yet'}")
    return "<br>".join(parts) or "—"


def _rules_section(cov: Coverage) -> list[str]:
    cited: dict[str, list[str]] = {}
    for s in cov.registry.statements:
        for rule_id in s.rules:
            cited.setdefault(rule_id, []).append(s.id)
    lines = [
        "## Rules",
        "",
        "| rule | provenance | says | checks | statements |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rule_id, entry in cov.rules.items():
        owners = _codes(cov.owners(rule_id)) or ("the runner" if rule_id in RUNNER_RULES else "none yet")
        statements = _codes(cited.get(rule_id, ())) or "—"
        lines.append(f"| `{rule_id}` | {entry.provenance} | {_cell(entry.says)} | {owners} | {statements} |")
    return [*lines, ""]


def _checks_section(cov: Coverage) -> list[str]:
    lines = ["## Checks and the faults that prove them", "", "| check | area | rules | faults |"]
    lines.append("| --- | --- | --- | --- |")
    for check_id, rules in cov.checks.items():
        proofs = ", ".join(f"`{f}` ({v})" for f, v in cov.proving(check_id)) or "none yet"
        declared = _codes(rules) or "none declared yet"
        lines.append(f"| `{check_id}` | {cov.areas.get(check_id, '')} | {declared} | {proofs} |")
    return lines


def _codes(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _cell(text: str) -> str:
    """Plain text in a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _quote(text: str) -> str:
    """A document's words verbatim, as code in a table cell (a pipe escaped, as GFM tables need)."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"

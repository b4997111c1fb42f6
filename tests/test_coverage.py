"""The coverage map: every statement of the five documents mapped, every link of the chain proven.

The chain is statement -> rule -> check that declares it -> reference-gateway fault that makes the
check fail. These tests fail on any break not listed in statements.toml's [gaps] (and on a listed
one that has been closed), on a quote that is not in its document, and when docs/coverage.md is
not what the code generates. The synthetic maps below show each kind of break is caught.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from gatecheck.checks import CHECKS
from gatecheck.checks.base import FAMILIES
from gatecheck.checks.faultmap import FAULT_CHECKS, PROXY_FAULT_CHECKS
from gatecheck.cli import main
from gatecheck.coverage import (
    Coverage,
    Registry,
    Statement,
    build,
    merged_proofs,
    parse_registry,
    registry,
    render,
)
from gatecheck.rules import Rule

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT.parent / "shared" / "api-docs"
COVERAGE_MD = ROOT / "docs" / "coverage.md"


# --- the real map --------------------------------------------------------------------------------


def test_the_chain_has_no_break_beyond_the_listed_gaps() -> None:
    problems = build().problems()
    assert not problems, "coverage problems:\n" + "\n".join(problems)


def test_docs_coverage_md_is_what_the_code_generates() -> None:
    assert COVERAGE_MD.read_text(encoding="utf-8") == render(), (
        "docs/coverage.md is stale: regenerate it with `gatecheck conform --coverage > docs/coverage.md`"
    )


def test_proxy_faults_prove_the_upstream_area_beside_the_gateway_faults() -> None:
    """A fault of both maps proves its checks of each: the gateway's own, and the proxy pair's."""
    cov = build()
    for fault, mapped in (*FAULT_CHECKS.items(), *PROXY_FAULT_CHECKS.items()):
        assert {c: cov.proofs[fault][c] for c in mapped} == dict(mapped), fault
    assert cov.proving("upstream_anthropic_mapping") == (("anthropic-stop-reason-wrong", "FAIL"),)
    assert ("anthropic-stop-reason-wrong", "FAIL") in cov.proving("anthropic_stop_reason_max_tokens")
    assert merged_proofs({"f": {"a": "FAIL"}}, {"f": {"b": "WARN"}, "g": {"c": "FAIL"}}) == {
        "f": {"a": "FAIL", "b": "WARN"},
        "g": {"c": "FAIL"},
    }


def test_checks_come_in_family_order_whatever_imported_them_first() -> None:
    """The suite imports the families in varying order; the rendered map must not change with it."""
    ranks = [FAMILIES.index(CHECKS[c].func.__module__.rpartition(".")[2]) for c in build().checks]
    assert ranks == sorted(ranks)


def test_conform_coverage_prints_the_map(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--coverage"]) == 0
    assert capsys.readouterr().out == render()


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _heading(lines: list[str], start: int, heading: str) -> int | None:
    """The first line from ``start`` that is ``heading`` (or ends with it after punctuation: these
    pages were flattened to text, so a heading can follow the code block above it on one line)."""
    for i in range(start, len(lines)):
        line = lines[i].strip()
        before = line[-len(heading) - 1] if len(line) > len(heading) else ""
        if line == heading or (
            line.endswith(heading) and before and not (before.isalnum() or before.isspace())
        ):
            return i
    return None


def test_every_quote_is_in_its_document_under_its_section() -> None:
    assert DOCS.is_dir(), f"the API documents must sit beside the checkout: {DOCS} is missing"
    misplaced = []
    for statement in registry().statements:
        (path,) = DOCS.glob(f"{statement.document}_*.txt")
        lines = path.read_text(encoding="utf-8").splitlines()
        at: int | None = 0
        for heading in statement.section.split(" > "):
            at = _heading(lines, at, heading) if at is not None else None
        if at is None:
            misplaced.append(f"{statement.id}: no section {statement.section!r}")
            continue
        cells = re.sub(r"\s*\|\s*", "", statement.quote)  # a table row: the text has its cells run together
        if _normal(cells) not in _normal("\n".join(lines[at:])):
            misplaced.append(f"{statement.id}: {statement.quote!r} is not under {statement.section!r}")
    assert not misplaced, "\n".join(misplaced)


def test_every_document_is_mapped() -> None:
    documents = {p.name[:3] for p in DOCS.glob("00?_*.txt")}
    assert set(registry().documents) == documents
    assert {s.document for s in registry().statements} == documents


def test_the_counts_add_up_in_the_header() -> None:
    header = next(line for line in render().splitlines() if line.startswith("**"))
    numbers = [int(n) for n in re.findall(r"\d+", header)]
    total, verified, proven, unproven, undeclared, unverifiable, unobservable, normative, opened, _ = numbers
    assert total == len(registry().statements) == verified + unverifiable + opened
    assert verified == proven + unproven + undeclared
    assert unverifiable == unobservable + normative


# --- each kind of break, on a small synthetic map -----------------------------------------------


def _rule(rule_id: str, provenance: str = "protocol") -> Rule:
    return Rule(rule_id, provenance, "somewhere", "something")  # type: ignore[arg-type]


def _map(
    statements: tuple[Statement, ...] = (Statement("000-a", "000", "S", "q", rules=("r1",)),),
    checks: dict[str, tuple[str, ...]] | None = None,
    rules: tuple[Rule, ...] = (_rule("r1"),),
    faults: tuple[str, ...] = ("f1",),
    proofs: dict[str, dict[str, str]] | None = None,
    unproven: dict[str, str] | None = None,
    undeclared: dict[str, str] | None = None,
) -> Coverage:
    checks = {"c1": ("r1",)} if checks is None else checks
    return Coverage(
        registry=Registry({"000": "Doc"}, statements, unproven or {}, undeclared or {}),
        rules={r.id: r for r in rules},
        checks=checks,
        areas=dict.fromkeys(checks, "stream"),
        faults=faults,
        proofs={"f1": {"c1": "FAIL"}} if proofs is None else proofs,  # type: ignore[dict-item]
    )


def test_a_whole_chain_has_no_problem() -> None:
    assert _map().problems() == []


def test_a_check_no_fault_proves_is_a_problem_unless_listed() -> None:
    cov = _map(checks={"c1": ("r1",), "c2": ("r1",)})
    assert cov.problems() == ["check c2 has no fault proving it (gatecheck/checks/faultmap.py)"]
    assert replace(cov, registry=replace(cov.registry, unproven_checks={"c2": "why"})).problems() == []


def test_a_fault_that_proves_no_check_is_a_problem() -> None:
    assert _map(faults=("f1", "f2")).problems() == ["fault f2 proves no check (gatecheck/checks/faultmap.py)"]
    assert _map(proofs={"f1": {"c1": "FAIL", "c9": "FAIL"}}).problems() == [
        "the fault map maps f1 to c9, which is not a check"
    ]


def test_a_rule_no_check_declares_is_a_problem_unless_listed() -> None:
    cov = _map(rules=(_rule("r1"), _rule("r2")))
    assert cov.problems() == ["rule r2 is declared by no check (rules= on @check)"]
    assert replace(cov, registry=replace(cov.registry, undeclared_rules={"r2": "why"})).problems() == []


def test_the_runners_own_rule_needs_no_check() -> None:
    assert _map(rules=(_rule("r1"), _rule("check-error"))).problems() == []


def test_a_check_declaring_an_unregistered_rule_is_a_problem() -> None:
    assert _map(checks={"c1": ("r1", "r9")}).problems() == [
        "check c1 declares r9, which is not registered (gatecheck/rules.toml)"
    ]


def test_a_statement_with_neither_a_rule_nor_a_reason_is_a_problem() -> None:
    bare = Statement("000-b", "000", "S", "q")
    assert _map(statements=(*_map().registry.statements, bare)).problems() == [
        "statement 000-b: neither a rule nor a reason"
    ]


def test_a_statement_reason_is_one_of_three_and_unverifiable_ones_say_why() -> None:
    base = _map().registry.statements
    odd = Statement("000-b", "000", "S", "q", reason="too hard")
    silent = Statement("000-c", "000", "S", "q", reason="not normative")
    problems = _map(statements=(*base, odd, silent)).problems()
    assert problems == [
        "statement 000-b: reason must be 'not observable from outside' or 'not normative' or 'open: ...'",
        "statement 000-c: not normative, says why in a note",
    ]
    fine = Statement("000-d", "000", "S", "q", reason="open: later (issue 13)")
    assert _map(statements=(*base, fine)).problems() == []
    assert fine.status == "open" and silent.status == "not normative" and base[0].status == "verified"


def test_a_statement_naming_an_unknown_rule_or_a_check_that_does_not_judge_it_is_a_problem() -> None:
    unknown = Statement("000-b", "000", "S", "q", rules=("r9",))
    narrowed = Statement("000-c", "000", "S", "q", rules=("r1",), checks=("c2",))
    cov = _map(
        statements=(_map().registry.statements[0], unknown, narrowed), checks={"c1": ("r1",), "c2": ()}
    )
    assert cov.problems() == [
        "check c2 has no fault proving it (gatecheck/checks/faultmap.py)",
        "statement 000-b: names r9, which is not registered",
        "statement 000-c: names check c2, which declares none of its rules",
        "statement 000-c: none of the checks it names declares r1",
    ]


def test_a_documented_rule_no_statement_cites_is_a_problem() -> None:
    cov = _map(rules=(_rule("r1"), _rule("r2", "documented")), checks={"c1": ("r1", "r2")})
    assert cov.problems() == ["documented rule r2 is cited by no statement (gatecheck/statements.toml)"]


def test_a_gap_that_is_closed_is_stale() -> None:
    cov = _map()
    stale = replace(
        cov.registry, unproven_checks={"c1": "why", "gone": "why"}, undeclared_rules={"r1": "why"}
    )
    assert replace(cov, registry=stale).problems() == [
        "[gaps.checks-without-fault] c1 is proved by a fault now: remove it",
        "[gaps.checks-without-fault] names gone, which is not a check: remove it",
        "[gaps.rules-without-check] r1 is declared by c1 now: remove it",
    ]


def test_the_render_shows_the_chain_of_a_statement() -> None:
    text = render(_map())
    assert "**1 statements: 1 verified (1 proven by a fault" in text
    assert "| `000-a` | S | `q` | verified | `r1` → `c1` |" in text
    assert "| `c1` | stream | `r1` | `f1` (FAIL) |" in text


def test_the_registry_refuses_an_entry_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="000-x"):
        parse_registry('[statements.000-x]\nsection = "S"\nquote = "q"\nrule = ["r1"]\n')
    with pytest.raises(ValueError, match="000-y"):
        parse_registry('[statements.000-y]\nsection = "S"\n')

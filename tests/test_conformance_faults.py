"""Proof that the checks work: every reference-gateway fault is caught by the checks meant for it.

For each of the gateway's fault modes, a gateway with that one fault is started in-process and only
the checks mapped to it (``gatecheck.checks.faultmap``) are run; each must reach its mapped verdict
(FAIL, or WARN where the rule is a warning). ``test_conformance_suite.py`` shows the same checks
PASS against the faithful gateway. A fault without a mapping, or a mapping that does not catch it,
fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from _replay import run_recorded

from gatecheck.checks import RunSettings, select
from gatecheck.checks.faultmap import FAULT_CHECKS
from gatecheck.config import Target
from gatecheck.reference import FAULTS
from gatecheck.results import CheckResult

FAST = RunSettings(fuzz_examples=3, fuzz_seed=1, close_grace_s=0.5)
"""A stream left open is judged after half a second."""

PYTHON_REPR = re.compile(r"""\bb['"]|\b(?:None|True|False)\b|\[?'[^'\s]*'(?:, |\])""")
"""``b'...'``, ``None``, ``True``, ``['a', 'b']``: a Python repr where a message must show JSON."""
JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def our_words(message: str) -> str:
    """A message without its JSON string literals (quoted wire text) and its curl commands."""
    prose = "\n".join(line for line in message.splitlines() if not line.lstrip().startswith(("curl ", "# ")))
    return JSON_STRING.sub('""', prose)


TARGET = Target(name="faulty", total_timeout=2.0)
"""The embedded gateway, with a 2 s bound on any exchange (a stream kept open ends there)."""


def run_with_fault(fault: str, check_ids: Iterator[str]) -> dict[str, CheckResult]:
    """Run ``check_ids`` against an embedded gateway that has ``fault``, recorded: the recording
    replays to the same verdicts and messages (``gatecheck replay``, timing included)."""
    overrides = {"faults": frozenset({fault}), "keep_open_seconds": 10.0}
    results = run_recorded(TARGET, FAST, select(list(check_ids)), gateway_overrides=overrides)
    return {r.check_id: r for r in results}


def test_every_fault_of_the_gateway_is_mapped_to_checks() -> None:
    assert set(FAULT_CHECKS) == set(FAULTS)
    assert all(FAULT_CHECKS[name] for name in FAULTS)


def test_every_mapped_check_exists() -> None:
    known = {c.id for c in select()}
    assert {check_id for mapped in FAULT_CHECKS.values() for check_id in mapped} <= known


@pytest.mark.parametrize("fault", sorted(f for f in FAULTS if FAULTS[f].area != "proxy"))
def test_the_fault_is_caught_by_its_checks(fault: str) -> None:
    """Proxy faults (the upstream area) are proven on the embedded pair: tests/test_upstream_faults.py."""
    expected = FAULT_CHECKS[fault]
    results = run_with_fault(fault, iter(expected))
    got = {check_id: result.verdict for check_id, result in results.items()}
    details = "\n\n".join(f"{r.check_id}: {r.verdict}\n{r.message}" for r in results.values())
    assert got == dict(expected), f"fault {fault}: {FAULTS[fault].rule}\n{details}"
    for check_id, verdict in expected.items():
        assert "undeclared_rules" not in results[check_id].extra, results[check_id].extra
        message = results[check_id].message
        assert message.startswith(f"{verdict}: ") or f"\n\n{verdict}: " in message, message
        assert "Rule: " in message and "Documented in: " in message and "Expected: " in message
        assert PYTHON_REPR.search(our_words(message)) is None, message


BASIC_STREAM_CHECKS = [c.id for c in select() if c.observations == ("basic_stream",)]


@pytest.mark.parametrize("fault", ["stream-error-event", "stream-cut", "stream-stall"])
def test_a_broken_stream_is_one_finding_and_the_other_checks_judge_only_what_arrived(fault: str) -> None:
    results = run_with_fault(fault, iter(BASIC_STREAM_CHECKS))
    failed = {check_id for check_id, result in results.items() if result.verdict == "FAIL"}
    assert failed == {"stream_completes"}, {k: r.message for k, r in results.items() if k in failed}
    for result in results.values():
        if result.verdict == "SKIP":
            assert (
                result.message.startswith("not checked: ")
                and "(stream_completes reports it)" in result.message
            )

"""Shared check helpers: a broken rule is one finding, however many chunks repeat it."""

from __future__ import annotations

from typing import Any

from gatecheck.assemble import Violation
from gatecheck.checks.base import Failure
from gatecheck.checks.wire import report_violations
from gatecheck.client import Exchange, Request


class _Recorder:
    def __init__(self) -> None:
        self.failures: list[Failure] = []

    def record(self, failure: Failure) -> None:
        self.failures.append(failure)


def _report(violations: list[Violation]) -> list[Failure]:
    ctx: Any = _Recorder()
    exchange = Exchange(Request("POST", "http://127.0.0.1:9/v1/chat/completions", {}))
    report_violations(ctx, violations, exchange, prefix="stream", title="role repeated", expected="once")
    failures: list[Failure] = ctx.failures
    return failures


def test_repeats_of_one_rule_are_one_failure_quoting_the_first_and_counting_the_rest() -> None:
    repeated = [
        Violation("role-not-first", f"role at {i}", i, f"data: {i}\n\n".encode()) for i in range(1, 15)
    ]
    (failure,) = _report(repeated)
    assert failure.rule == "stream-role-not-first"
    assert failure.title == "role repeated (event 1)"
    assert "role at 1" in failure.received and "data: 1" in failure.received
    assert "and 13 more (events 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...)" in failure.received


def test_each_rule_gets_its_own_failure() -> None:
    found = _report([Violation("a", "first", 0, b"x"), Violation("b", "second", None, b"y")])
    assert [(f.rule, f.title) for f in found] == [
        ("stream-a", "role repeated (event 0)"),
        ("stream-b", "role repeated"),
    ]
    assert all("more" not in f.received for f in found)


def test_no_violation_no_failure() -> None:
    assert _report([]) == []

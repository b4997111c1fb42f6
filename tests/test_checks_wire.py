"""Shared check helpers: a broken rule is one finding, however many chunks repeat it; quotes are JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatecheck.assemble import Violation
from gatecheck.checks.base import Failure
from gatecheck.checks.wire import as_json, excerpt, report_violations
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


# ---------------------------------------------------------------- quotes are JSON (gatecheck.quote)


def test_an_excerpt_is_a_json_string_that_keeps_invisible_bytes_visible() -> None:
    wire = '\ufeffdata: {"a": "é\u2028"}\r\n\x00'.encode() + b"\xff"
    shown = excerpt(wire)
    assert shown == '"\\ufeffdata: {\\"a\\": \\"é\\u2028\\"}\\r\\n\\u0000\\\\xff"'
    assert json.loads(shown).startswith("\ufeffdata: ")  # it reads back as JSON


def test_a_cut_excerpt_says_how_long_the_whole_was_and_never_splits_a_character() -> None:
    assert excerpt("ab€".encode(), 3) == '"ab"... (5 bytes in all)'
    assert excerpt(b"abc", 3) == '"abc"'


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        ("stop", '"stop"'),
        ([0, None, "x"], '[0, null, "x"]'),
        ({"k": {"n": 1.5}}, '{"k": {"n": 1.5}}'),
        (b"raw \xff", r'"raw \\xff"'),  # bytes decoded; what is not UTF-8 as \xNN
    ],
)
def test_values_are_shown_as_json(value: object, shown: str) -> None:
    assert as_json(value) == shown


def test_as_json_is_bounded_in_length_and_depth() -> None:
    assert as_json("x" * 1000, 20) == '"' + "x" * 19 + "..."
    deep: list[object] = []
    cursor = deep
    for _ in range(5000):  # deeper than json.dumps could recurse
        cursor.append([])
        cursor = cursor[0]  # type: ignore[assignment]
    shown = as_json(deep, 200)
    assert "[...]" in shown and len(shown) <= 203

"""The check framework: registry invariants, preconditions, grading, the one failure formatter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from _checks_helpers import CANARY_KEY, make_session

from gatecheck.checks import (
    AREAS,
    CHECKS,
    OBSERVATIONS,
    Check,
    CheckGroup,
    Cost,
    Failure,
    NotChecked,
    PlanSettings,
    check,
    format_failure,
    load_all,
    plan_cost,
    run_check,
)
from gatecheck.checks.base import observation
from gatecheck.checks.context import CheckContext

SETTINGS = PlanSettings(rpm=5, tpm=600, fuzz_examples=3, max_output_tokens=64)


def made(func, *, requires: frozenset[str] = frozenset(), observations: tuple[str, ...] = ()) -> Check:  # type: ignore[no-untyped-def]
    """A check object outside the registry (so tests do not add to the real suite)."""
    return Check(func.__name__, "nonstream", "test citation", func, "doc", observations, requires=requires)


def test_every_registered_check_is_named_documented_cited_and_in_an_area() -> None:
    load_all()
    assert len(CHECKS) >= 55
    for check_id, registered in CHECKS.items():
        assert registered.id == check_id == registered.func.__name__
        assert re.fullmatch(r"[a-z][a-z0-9_]+", check_id)
        assert registered.doc, check_id
        assert registered.citation, check_id
        assert registered.area in AREAS
        assert set(registered.observations) <= set(OBSERVATIONS)


def test_every_area_has_checks_and_a_conformance_module() -> None:
    load_all()
    assert {c.area for c in CHECKS.values()} == set(AREAS)
    assert {c.id for area in AREAS for c in CheckGroup(area).checks()} == set(CHECKS)


def test_a_check_must_take_ctx_and_name_known_observations() -> None:
    with pytest.raises(TypeError, match="ctx"):
        check("nonstream", "x")(lambda request: None)
    with pytest.raises(TypeError, match="unknown observations"):

        def needs_nothing_known(ctx: CheckContext, no_such_observation: object) -> None:
            """Doc."""

        check("nonstream", "x")(needs_nothing_known)
    with pytest.raises(ValueError, match="unknown area"):
        check("astrology", "x")
    with pytest.raises(ValueError, match="unknown areas"):
        CheckGroup("astrology")


def test_a_plan_prices_each_shared_observation_once() -> None:
    load_all()
    sharing = [CHECKS["nonstream_schema"], CHECKS["nonstream_usage"], CHECKS["nonstream_choices"]]
    assert plan_cost(sharing, SETTINGS) == OBSERVATIONS["basic_answer"].cost_for(SETTINGS)
    burst = plan_cost([CHECKS["ratelimit_rpm_enforced"]], SETTINGS)
    assert burst.requests == 2 * SETTINGS.rpm + 3, "RPM + 3 at once, and up to RPM more within the window"
    assert plan_cost([CHECKS["fuzz_valid_requests"]], SETTINGS).requests == SETTINGS.fuzz_examples


def test_a_failure_names_rule_source_expectation_what_came_and_a_curl_without_the_key() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    session = make_session(answer)
    exchange = session.client.send("POST", "/v1/chat/completions", json={"model": "m"})
    text = format_failure(
        Failure(
            title="usage does not add up", rule="usage-total", expected="30", received="31", exchange=exchange
        ),
        "001 Field Reference",
    )
    assert text.splitlines()[0] == "FAIL: usage does not add up"
    for part in ("Rule: usage-total", "Documented in: 001 Field Reference", "Expected: 30", "Received: 31"):
        assert part in text
    assert "Reproduce with:" in text and "curl" in text and "$GATECHECK_API_KEY" in text
    assert CANARY_KEY not in text


def test_failures_are_graded_deduplicated_and_turned_into_a_verdict() -> None:
    def twice_and_a_warning(ctx: CheckContext) -> None:
        for _ in range(2):
            ctx.record(Failure(title="same", rule="stream-missing-done", expected="a", received="b"))
        ctx.record(Failure(title="minor", rule="stream-burst", expected="a", received="b"))

    result = run_check(make_session(), made(twice_and_a_warning))
    assert result.verdict == "FAIL"
    assert result.message.count("FAIL: same") == 1
    assert "WARN: minor" in result.message
    assert "Rule: stream-burst (judgement)" in result.message
    assert result.extra["rules"] == ["stream-burst", "stream-missing-done"]


def test_a_finding_of_an_unregistered_rule_fails_and_says_so() -> None:
    def unregistered(ctx: CheckContext) -> None:
        ctx.record(Failure(title="odd", rule="no-such-rule", expected="a", received="b"))

    result = run_check(make_session(), made(unregistered))
    assert result.verdict == "FAIL"
    assert "Rule: no-such-rule (unregistered rule)" in result.message


def test_warnings_alone_give_warn_and_a_profile_can_ignore_a_rule() -> None:
    def warns(ctx: CheckContext) -> None:
        ctx.record(Failure(title="w", rule="stream-burst", expected="a", received="b"))

    def role_missing(ctx: CheckContext) -> None:
        ctx.record(Failure(title="no role", rule="stream-role-missing", expected="a", received="b"))

    assert run_check(make_session(), made(warns)).verdict == "WARN"
    assert run_check(make_session(profile="gateway"), made(role_missing)).verdict == "WARN"
    assert run_check(make_session(profile="lenient"), made(role_missing)).verdict == "PASS"


def test_a_raised_failure_ends_the_check() -> None:
    def raises(ctx: CheckContext) -> None:
        raise Failure(title="stop here", rule="r", expected="a", received="b")

    result = run_check(make_session(), made(raises))
    assert result.verdict == "FAIL" and "stop here" in result.message


def test_skip_only_for_a_capability_the_target_declares_it_lacks() -> None:
    def needs_images(ctx: CheckContext) -> None:
        raise AssertionError("must not run")

    session = make_session(capabilities=frozenset({"streaming"}))
    result = run_check(session, made(needs_images, requires=frozenset({"images"})))
    assert result.verdict == "SKIP"
    assert result.message == "the target declares it does not offer: images"


def test_not_checked_is_a_skip_with_its_reason() -> None:
    def blocked(ctx: CheckContext) -> None:
        raise NotChecked("not checked: the budget is spent")

    result = run_check(make_session(), made(blocked))
    assert (result.verdict, result.message) == ("SKIP", "not checked: the budget is spent")


def test_the_request_budget_is_enforced() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})

    def greedy(ctx: CheckContext) -> None:
        for _ in range(5):
            ctx.send("GET", "/v1/models")

    session = make_session(answer, max_requests=3)
    result = run_check(session, made(greedy))
    assert result.verdict == "SKIP" and "budget" in result.message
    assert session.requests_sent == 3


def test_a_crash_is_reported_as_a_failure_that_may_be_a_gatecheck_bug() -> None:
    def crashes(ctx: CheckContext) -> None:
        raise KeyError("choices")

    result = run_check(make_session(), made(crashes))
    assert result.verdict == "FAIL"
    assert "check-error" in result.message and "gatecheck bug" in result.message
    assert "KeyError" in str(result.extra["internal_error"])


def test_observations_are_memoised_charged_to_themselves_and_must_be_declared() -> None:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"n": len(calls)})

    @observation(cost=Cost(1, 0))
    def test_only_probe(ctx: CheckContext) -> object:
        return ctx.send("GET", "/v1/models").json()

    try:

        def first(ctx: CheckContext, test_only_probe: object) -> None:
            assert test_only_probe == {"n": 1}

        def undeclared(ctx: CheckContext) -> None:
            ctx.observe("test_only_probe")

        session = make_session(answer)
        for func in (first, first):
            assert run_check(session, made(func, observations=("test_only_probe",))).verdict == "PASS"
        assert len(calls) == 1
        assert session.spent == {"observation:test_only_probe": 1}
        crashed = run_check(session, made(undeclared))
        assert crashed.verdict == "FAIL" and "without naming it" in crashed.message
    finally:
        del OBSERVATIONS["test_only_probe"]


def test_a_429_on_an_unrelated_request_is_waited_out_and_retried() -> None:
    statuses = iter([429, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), headers={"Retry-After": "0"}, json={})

    def sends(ctx: CheckContext) -> None:
        assert ctx.send("GET", "/v1/models").status == 200

    assert run_check(make_session(answer), made(sends)).verdict == "PASS"


def test_a_target_that_keeps_answering_429_is_not_blamed_for_another_check() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "0"}, json={})

    def sends(ctx: CheckContext) -> None:
        ctx.send("GET", "/v1/models")

    result = run_check(make_session(answer), made(sends))
    assert result.verdict == "SKIP" and "429" in result.message


def test_results_are_json_ready_and_carry_no_key() -> None:
    def leaks(ctx: CheckContext) -> None:
        raise Failure(title="x", rule="r", expected="a", received=f"body echoed {CANARY_KEY}")

    result = run_check(make_session(), made(leaks))
    assert CANARY_KEY not in json.dumps(result.to_json())


def test_the_documentation_lists_every_check() -> None:
    load_all()
    text = (Path(__file__).resolve().parent.parent / "docs" / "conformance.md").read_text()
    missing = [check_id for check_id in CHECKS if f"`{check_id}`" not in text]
    assert not missing


def test_output_limits_are_capped_at_the_targets_max_output_tokens() -> None:
    sent: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={})

    def asks_for_much(ctx: CheckContext) -> None:
        ctx.chat({"model": "m", "messages": [], "max_tokens": 48, "max_completion_tokens": 5})

    run_check(make_session(answer, max_output_tokens=10), made(asks_for_much))
    assert (sent[0]["max_tokens"], sent[0]["max_completion_tokens"]) == (10, 5)
    load_all()
    tight = PlanSettings(rpm=5, tpm=600, fuzz_examples=3, max_output_tokens=1)
    plan = plan_cost(CHECKS.values(), tight)
    assert plan.output_tokens <= plan.requests

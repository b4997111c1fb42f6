"""The errors, rate-limit and fuzz checks on gateways we did not write (issue 9's false alarms).

Each test starts a small hand-made gateway on 127.0.0.1 (``_handmade_gateway``) that implements
the documents differently from the reference gateway (tokens are 4 characters, TPM charged after
the response, errors in 002's dialect, sliding windows, token buckets...) or reproduces one
situation of issue 9 (no 429 ever, relayed upstream headers, a 429 about requests while TPM is
off), and pins the verdict the checks must now reach: PASS, WARN or "not checked" (SKIP), and
FAIL only where the gateway really breaks the rule.
"""

from __future__ import annotations

import dataclasses
import re
import socket

import pytest
from _handmade_gateway import Handmade, session_on, verdicts

from gatecheck.checks import RunSettings, order_checks, select
from gatecheck.checks.session import open_session, plan_settings
from gatecheck.config import CAPABILITIES, Target
from gatecheck.redaction import Secret
from gatecheck.results import CheckResult

RATELIMIT = [c.id for c in select() if c.area == "ratelimit"]
NEED_A_429 = [
    "ratelimit_rpm_not_exceeded",
    "ratelimit_rpm_admitted",
    "ratelimit_retry_after",
    "ratelimit_headers",
    "ratelimit_remaining_monotonic",
    "ratelimit_429_body",
    "ratelimit_retry_after_honoured",
]
DECLARED = {"context_lengths": (("hm-chat", 8192),)}
ERRORS = [c.id for c in select() if c.area == "errors"]


def said(results: dict[str, CheckResult]) -> dict[str, str]:
    """Verdict per check id; every result must also name only the rules its check declares."""
    for result in results.values():
        assert "undeclared_rules" not in result.extra, (result.check_id, result.extra)
    return {check_id: r.verdict for check_id, r in results.items()}


# ---------------------------------------------------------------- errors


def test_openai_only_constraints_accepted_warn_under_gateway_and_fail_under_openai() -> None:
    with session_on(Handmade()) as (session, _):
        result = verdicts(session, "errors_invalid_params")["errors_invalid_params"]
    assert result.verdict == "WARN", result.message
    assert "Rule: request-protocol-constraint (protocol)" in result.message
    assert "tools: left out although tool_choice needs it" in result.message
    assert "stop: more than maxItems 4" in result.message and "stop: fewer than minItems 1" in result.message
    assert result.message.count("WARN: ") == 1, "one finding per rule, the others counted"
    with session_on(Handmade(dialect="openai"), profile="openai") as (session, _):
        result = verdicts(session, "errors_invalid_params")["errors_invalid_params"]
    assert result.verdict == "FAIL" and "request-protocol-constraint" in result.message


def test_plain_text_error_bodies_are_one_finding_of_the_bodies_check() -> None:
    checks = ["errors_missing_key", "errors_invalid_key", "errors_unknown_model", "errors_malformed_json"]
    with session_on(Handmade(plain_text_errors=True)) as (session, _):
        results = verdicts(session, *checks, "errors_bodies")
    assert said(results) == {**dict.fromkeys(checks, "PASS"), "errors_bodies": "FAIL"}
    message = results["errors_bodies"].message
    assert message.count("FAIL: ") == 2, "error-content-type and error-body, once each"
    assert re.search(r"and \d\d more like it: a request with an invalid key; the unknown model", message)


@pytest.mark.parametrize(
    ("spec", "target", "verdict", "words"),
    [
        (Handmade(), DECLARED, "PASS", ""),
        (Handmade(listed_context=True), {}, "PASS", ""),
        (
            Handmade(context_message="prompt rejected"),
            DECLARED,
            "WARN",
            "does not say the prompt is too long",
        ),
        (Handmade(), {}, "SKIP", "[models.hm-chat] context_length = N"),
        (Handmade(max_body_bytes=10_000), DECLARED, "SKIP", "for its size (413)"),
    ],
    ids=["declared-002-dialect", "listed-in-v1-models", "message-silent", "unknown", "body-too-large"],
)
def test_context_length_in_002s_dialect(
    spec: Handmade, target: dict[str, object], verdict: str, words: str
) -> None:
    with session_on(spec, **target) as (session, server):  # type: ignore[arg-type]
        result = verdicts(session, "errors_context_length")["errors_context_length"]
    assert result.verdict == verdict, result.message
    assert words in result.message
    if verdict == "PASS":
        probe = max(server.prompts)
        assert 8192 < probe < 2 * 8192, "sized in the target's tokens (4 characters each), not in words"


def test_the_openai_dialect_needs_the_literal_code() -> None:
    with session_on(Handmade(dialect="openai"), profile="openai", **DECLARED) as (session, _):  # type: ignore[arg-type]
        assert verdicts(session, "errors_context_length")["errors_context_length"].verdict == "PASS"
    with session_on(Handmade(), profile="openai", **DECLARED) as (session, _):  # type: ignore[arg-type]
        result = verdicts(session, "errors_context_length")["errors_context_length"]
    assert result.verdict == "FAIL" and "context-length-code" in result.message


def test_the_context_probe_runs_after_every_other_check() -> None:
    for dedicated in (True, False):
        ordered = [c.id for c in order_checks(select(), dedicated)]
        assert ordered[-1] == "errors_context_length"
        if not dedicated:
            assert ordered[-1 - len(RATELIMIT) : -1] == RATELIMIT


# ---------------------------------------------------------------- rate limits


@pytest.mark.parametrize("rpm", [3, 10])
@pytest.mark.parametrize("charge", ["before", "after"])
def test_tpm_in_the_targets_tokens_charged_before_or_after_passes(rpm: int, charge: str) -> None:
    """Issue 9: a 3-RPM/2,000-TPM key whose model counts 4 characters a token, charging either way."""
    spec = Handmade(rpm=rpm, tpm=2000, tpm_charge=charge)  # type: ignore[arg-type]
    with session_on(spec) as (session, server):
        result = verdicts(session, "ratelimit_tpm_enforced")["ratelimit_tpm_enforced"]
    assert result.verdict == "PASS", result.message
    assert max(server.seen) <= 2000 * 0.55 + 10, "every request well under the TPM, in the target's tokens"


def test_tpm_unenforced_fails_and_a_429_about_requests_is_no_tpm_verdict() -> None:
    """Issue 9: with TPM off, a 429 that the gateway says is about requests passed the TPM check."""
    for spec in (Handmade(rpm=10, limiter="none", tpm_charge="off"), Handmade(rpm=3, tpm_charge="off")):
        with session_on(spec) as (session, _):
            result = verdicts(session, "ratelimit_tpm_enforced")["ratelimit_tpm_enforced"]
        assert result.verdict == "FAIL" and "tpm-unenforced" in result.message, result.message
    for spec in (
        Handmade(rpm=3, limiter="bucket", bucket_capacity=2, tpm_charge="off"),
        Handmade(rpm=3, limiter="bucket", bucket_capacity=2, tpm_charge="off", names_limit=False),
    ):
        with session_on(spec) as (session, _):
            result = verdicts(session, "ratelimit_tpm_enforced")["ratelimit_tpm_enforced"]
        assert result.verdict == "SKIP" and "it is about requests" in result.message, result.message


def test_no_429_ever_is_not_passed() -> None:
    with session_on(Handmade(limiter="none", tpm_charge="off")) as (session, _):
        results = verdicts(session, *RATELIMIT)
    verdicts_by_id = said(results)
    assert verdicts_by_id["ratelimit_rpm_enforced"] == "FAIL"
    for check_id in NEED_A_429:
        assert verdicts_by_id[check_id] == "SKIP", check_id
        assert results[check_id].message.startswith("not checked: no 429 was received")


def test_a_dead_host_or_a_redirect_loop_checks_nothing() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        dead_port = spare.getsockname()[1]
    with session_on(Handmade(redirect_loop=True)) as (session, _):
        looping = said(verdicts(session, *RATELIMIT))
        dead = dataclasses.replace(session.target, base_url=f"http://127.0.0.1:{dead_port}")
    assert set(looping.values()) == {"SKIP"}, looping
    with session_on(Handmade()) as (session, _):
        from gatecheck.client import Client

        with Client(dead) as client:
            session.client = client
            session.ratelimit = dataclasses.replace(session.ratelimit, client=client)
            results = verdicts(session, *RATELIMIT, *ERRORS, "fuzz_valid_requests", "fuzz_invalid_requests")
    assert set(said(results).values()) == {"SKIP"}, {k: r.message for k, r in results.items()}
    assert all(r.message.startswith("not checked: ") for r in results.values())


def test_a_target_declaring_no_rate_limiting_skips_the_area() -> None:
    claimed = frozenset(CAPABILITIES) - {"ratelimit"}
    with session_on(Handmade(limiter="none"), capabilities=claimed) as (session, server):
        results = verdicts(session, *RATELIMIT)
    assert set(said(results).values()) == {"SKIP"}
    assert all("does not offer: ratelimit" in r.message for r in results.values())
    assert not server.seen, "nothing was sent"


@pytest.mark.parametrize(("dialect", "profile"), [("x-ratelimit", "gateway"), ("openai", "openai")])
def test_relayed_upstream_headers_fail_the_headers_check_only(dialect: str, profile: str) -> None:
    spec = Handmade(
        relayed_headers=True, header_dialect=dialect, dialect="openai" if profile == "openai" else "gateway"
    )  # type: ignore[arg-type]
    with session_on(spec, profile=profile) as (session, _):
        results = verdicts(session, "ratelimit_headers", "ratelimit_remaining_monotonic")
    assert said(results) == {"ratelimit_headers": "FAIL", "ratelimit_remaining_monotonic": "SKIP"}
    assert "limit 10000 on a key declared at 5 RPM" in results["ratelimit_headers"].message


def test_headers_missing_on_success_warn_in_openais_dialect_only() -> None:
    spec = Handmade(header_dialect="openai", dialect="openai", headers_on_success=False)
    with session_on(spec, profile="openai") as (session, _):
        result = verdicts(session, "ratelimit_headers")["ratelimit_headers"]
    assert result.verdict == "FAIL" and "ratelimit-headers-on-success (protocol)" in result.message
    with session_on(Handmade(headers_on_success=False)) as (session, _):
        assert verdicts(session, "ratelimit_headers")["ratelimit_headers"].verdict == "PASS"


def test_under_admission_fails_and_a_limiter_that_smooths_bursts_passes() -> None:
    with session_on(Handmade(short_by=1)) as (session, _):
        results = verdicts(session, "ratelimit_rpm_enforced", "ratelimit_rpm_admitted")
    assert said(results) == {"ratelimit_rpm_enforced": "PASS", "ratelimit_rpm_admitted": "FAIL"}
    assert "only 4 requests were admitted" in results["ratelimit_rpm_admitted"].message
    smoothing = Handmade(rpm=5, window_s=4.0, limiter="bucket", bucket_capacity=2)
    with session_on(smoothing) as (session, _):
        results = verdicts(session, "ratelimit_rpm_admitted", "ratelimit_rpm_not_exceeded")
    assert said(results) == {"ratelimit_rpm_admitted": "PASS", "ratelimit_rpm_not_exceeded": "PASS"}


def test_a_plain_text_429_is_a_body_finding_not_an_rpm_one() -> None:
    with session_on(Handmade(plain_text_429=True)) as (session, _):
        results = verdicts(session, "ratelimit_rpm_enforced", "ratelimit_429_body")
    assert said(results) == {"ratelimit_rpm_enforced": "PASS", "ratelimit_429_body": "FAIL"}


@pytest.mark.parametrize("limiter", ["sliding", "fixed", "bucket"])
def test_every_window_algorithm_passes_the_whole_area(limiter: str) -> None:
    with session_on(Handmade(limiter=limiter)) as (session, _):  # type: ignore[arg-type]
        results = verdicts(session, *RATELIMIT)
    assert set(said(results).values()) == {"PASS"}, {
        k: r.message for k, r in results.items() if r.verdict != "PASS"
    }


# ---------------------------------------------------------------- fuzz


def test_a_constraint_accepted_is_reported_once_by_errors_invalid_params() -> None:
    with session_on(Handmade(validates=False)) as (session, _):
        results = verdicts(session, "errors_invalid_params", "fuzz_invalid_requests")
    assert said(results) == {"errors_invalid_params": "FAIL", "fuzz_invalid_requests": "SKIP"}
    assert "as errors_invalid_params reports" in results["fuzz_invalid_requests"].message


def test_zero_fuzz_examples_is_not_checked() -> None:
    with session_on(Handmade()) as (session, server):
        session.settings = RunSettings(fuzz_examples=0)
        results = verdicts(session, "fuzz_valid_requests", "fuzz_invalid_requests")
    assert said(results) == {"fuzz_valid_requests": "SKIP", "fuzz_invalid_requests": "SKIP"}
    assert all("--fuzz-examples 0" in r.message for r in results.values())
    assert not server.prompts


def test_the_second_keys_own_limits_and_the_window_reach_the_rate_limit_checks() -> None:
    target = Target(
        base_url="http://127.0.0.1:9",
        api_key=Secret("main-key"),
        api_key_2=Secret("second-key"),
        rpm=1000,
        tpm=10**6,
        rpm_2=3,
        tpm_2=2000,
        ratelimit_window=3.0,
    )
    with open_session(target) as session:
        setup = session.ratelimit
        assert (setup.rpm, setup.tpm, setup.window_s, setup.dedicated) == (3, 2000, 3.0, True)
        assert session.key_account(setup.key) == "ratelimit" and session.key_account(None) == "main"
    assert plan_settings(target, 0).rpm == 3

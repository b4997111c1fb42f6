"""The target's own tokens: the calibration arithmetic, the TPM burst plan and which limit a 429 names."""

from __future__ import annotations

import httpx
import pytest

from gatecheck.calibration import (
    CALIBRATION_UNITS,
    TokenRate,
    filler,
    limit_named,
    plan_tpm_burst,
    prompt_tokens_of,
    rate_from,
    total_tokens_of,
)


def test_a_rate_converts_both_ways_and_never_rounds_a_request_over_its_budget() -> None:
    half = TokenRate(256, 128 + 3)  # 4 characters a token on "x x x", 3 tokens of message overhead
    assert half.per_unit == pytest.approx(0.5117, abs=1e-4)
    assert half.tokens_for(half.units_for(1000)) <= 1000
    assert half.units_over(1000) * half.per_unit > 1000
    assert TokenRate(256, 256).units_for(100) == 100 and filler(3) == "x x x"
    with pytest.raises(ValueError):
        TokenRate(0, 5)


def test_usage_is_read_in_either_dialect() -> None:
    assert prompt_tokens_of({"usage": {"prompt_tokens": 12}}) == 12
    assert prompt_tokens_of({"usage": {"input_tokens": 9, "output_tokens": 2}}) == 9
    assert total_tokens_of({"usage": {"input_tokens": 9, "output_tokens": 2}}) == 11
    assert total_tokens_of({"usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}) == 11
    for body in (
        {},
        {"usage": None},
        {"usage": {"prompt_tokens": True}},
        {"usage": {"prompt_tokens": 0}},
        [],
    ):
        assert prompt_tokens_of(body) is None
    assert rate_from(CALIBRATION_UNITS, {}) is None


@pytest.mark.parametrize(("rpm", "per_unit"), [(3, 0.5), (5, 1.0), (10, 1.3), (60, 0.5), (10_000, 2.0)])
def test_the_tpm_burst_fills_the_tpm_within_the_rpm_charged_before_or_after(
    rpm: int, per_unit: float
) -> None:
    rate = TokenRate(CALIBRATION_UNITS, round(CALIBRATION_UNITS * per_unit))
    plan = plan_tpm_burst(2000, rpm, rate)
    assert not isinstance(plan, str), plan
    assert plan.request_tokens <= 2000 * 0.55 + 2, "each request well under the TPM"
    fill = -(-2000 // plan.request_tokens)  # charged after serving, the fill-th request crosses the TPM
    assert fill + 1 <= rpm, "and the next one, refused, is still within the RPM"
    assert not plan.exceeded(plan.request_tokens * fill, plan.request_tokens), "charge-after is fine"
    assert plan.exceeded(plan.request_tokens * (fill + 1), plan.request_tokens), "one more is not"


def test_the_tpm_burst_respects_the_context_or_says_why_it_cannot() -> None:
    rate = TokenRate(CALIBRATION_UNITS, CALIBRATION_UNITS)
    plan = plan_tpm_burst(2000, 60, rate, context_length=1000)
    assert not isinstance(plan, str) and plan.request_tokens <= 500
    too_small = plan_tpm_burst(100_000, 250, rate, context_length=8192)
    assert isinstance(too_small, str) and "context of 8192 tokens" in too_small
    assert isinstance(plan_tpm_burst(10, 60, TokenRate(10, 40)), str)


@pytest.mark.parametrize(
    ("headers", "body", "named"),
    [
        (
            {},
            '{"error":{"code":"RATE_LIMIT","message":"tokens per minute (TPM) limit 600, requested 300"}}',
            "tokens",
        ),
        ({}, '{"error":{"code":"RATE_LIMIT","message":"requests per minute (RPM) limit 5."}}', "requests"),
        ({}, '{"error":{"message":"Rate limit reached on tokens per min (TPM): Requested 2000."}}', "tokens"),
        ({}, '{"error":{"message":"Limit type: requests. Current limit: 60, Remaining: 0"}}', "requests"),
        ({}, "Rate limit exceeded: this key's 2000 tokens per minute are used up", "tokens"),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-remaining-requests": "4"}, "slow down", "tokens"),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Remaining-Tokens": "812"}, "{}", "requests"),
        ({"X-RateLimit-Remaining": "3"}, '{"error":{"message":"quota exceeded"}}', None),
        ({}, '{"error":{"message":"too many requests and tokens"}}', None),
    ],
)
def test_a_429_names_its_limit_in_its_body_or_headers(
    headers: dict[str, str], body: str, named: str | None
) -> None:
    assert limit_named(httpx.Headers(headers), body.encode()) == named


def test_the_429_reason_phrase_names_no_limit_so_the_headers_decide() -> None:
    """HTTP's "Too Many Requests" is on every 429: the remaining-tokens header at 0 says tokens."""
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-remaining": "1"}
    assert limit_named(headers, b"Too Many Requests") == "tokens"
    assert (
        limit_named({}, b'{"error": {"code": "too_many_requests", "message": "RPM exceeded"}}') == "requests"
    )
    assert limit_named({}, b"Too Many Requests") is None

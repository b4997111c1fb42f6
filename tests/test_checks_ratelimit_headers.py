"""Rate-limit header dialects read into one shape: limit, remaining, seconds to reset."""

from __future__ import annotations

import httpx
import pytest

from gatecheck.checks import ratelimit_headers as rlh


def read(headers: dict[str, str], dialect: str, now: float | None = None) -> rlh.RateLimitInfo:
    return rlh.read(httpx.Headers(headers), dialect, now)


def test_the_documented_x_ratelimit_headers() -> None:
    info = read(
        {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12"}, "x-ratelimit"
    )
    assert (info.limit, info.remaining, info.reset_s, info.complete) == (60, 0, 12.0, True)


def test_openai_headers_with_duration_resets() -> None:
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "6m0s",
        "x-ratelimit-limit-tokens": "30000",
    }
    info = read(headers, "openai")
    assert (info.limit, info.remaining, info.reset_s) == (500, 499, 360.0)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3s", 3723.0), ("0.5s", 0.5)]
)
def test_openai_durations(text: str, seconds: float) -> None:
    assert rlh.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5", "1x", "1s later"])
def test_unreadable_durations(text: str) -> None:
    assert rlh.parse_duration(text) is None


def test_anthropic_headers_with_an_rfc3339_reset() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
    }
    info = read(headers, "anthropic", now=1767225600.0)  # 2026-01-01T00:00:00Z
    assert (info.limit, info.remaining, info.reset_s) == (50, 0, 30.0)


def test_ietf_draft_07_dictionary_form() -> None:
    info = read({"RateLimit": "limit=10, remaining=3, reset=5", "RateLimit-Policy": "10;w=60"}, "ietf")
    assert (info.limit, info.remaining, info.reset_s) == (10, 3, 5.0)


def test_ietf_draft_08_list_form() -> None:
    info = read({"RateLimit": '"default";r=3;t=5', "RateLimit-Policy": '"default";q=10;w=60'}, "ietf")
    assert (info.limit, info.remaining, info.reset_s) == (10, 3, 5.0)


def test_any_dialect_takes_the_first_complete_one() -> None:
    info = read({"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "2"}, "any")
    assert (info.dialect, info.limit, info.remaining) == ("openai", 5, 2)


def test_missing_or_garbled_headers_are_incomplete() -> None:
    assert not read({}, "x-ratelimit").complete
    assert not read({"X-RateLimit-Limit": "sixty", "X-RateLimit-Remaining": "1"}, "x-ratelimit").complete
    assert not read({}, "any").complete


@pytest.mark.parametrize("dialect", [*rlh.DIALECTS, "any"])
def test_every_dialect_says_which_headers_it_needs(dialect: str) -> None:
    assert rlh.expected_headers(dialect)

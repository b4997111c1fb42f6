"""The rate limiter over real concurrent HTTP: exact admission, headers, windows, per-key limits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from _gateway_helpers import AUTH, CHAT, CLIENT, assert_valid, chat_body, post

from gatecheck.reference import DEMO_KEY, KeySpec, RunningGateway


async def _simultaneous(
    gw: RunningGateway, count: int, body: dict[str, Any], headers: dict[str, str] = AUTH
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=gw.url, limits=limits) as client:
        return await asyncio.gather(*(client.post(CHAT, json=body, headers=headers) for _ in range(count)))


def simultaneous(
    gw: RunningGateway, count: int, body: dict[str, Any], headers: dict[str, str] = AUTH
) -> list[httpx.Response]:
    """``count`` requests in flight at once (one connection each)."""
    return asyncio.run(_simultaneous(gw, count, body, headers))


def test_exactly_rpm_of_many_simultaneous_requests_are_admitted(gateway: Any) -> None:
    gw = gateway(rpm=10, window_seconds=30)
    responses = simultaneous(gw, 40, chat_body(max_tokens=2))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
    for refused in (r for r in responses if r.status_code == 429):
        assert_valid("error.gateway", refused.json())
        assert refused.json()["error"]["code"] == "RATE_LIMIT"
        assert refused.headers["X-RateLimit-Limit"] == "10"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
    admitted = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in responses if r.status_code == 200)
    assert admitted == list(range(10))


def test_exactly_tpm_under_concurrency(gateway: Any) -> None:
    gw = gateway(rpm=1000, tpm=100, window_seconds=30)
    body = chat_body("a b c d e", max_tokens=5)  # 5 prompt + 5 completion = 10 tokens
    statuses = [r.status_code for r in simultaneous(gw, 25, body)]
    assert statuses.count(200) == 10
    refused = post(gw, CHAT, body)
    assert refused.status_code == 429
    assert "tokens per minute" in refused.json()["error"]["message"]
    assert refused.headers["X-RateLimit-Remaining-Tokens"] == "0"


def test_window_ends_and_waiting_retry_after_works(gateway: Any) -> None:
    gw = gateway(rpm=2, window_seconds=0.5)
    assert [r.status_code for r in simultaneous(gw, 3, chat_body(max_tokens=1))].count(200) == 2
    refused = post(gw, CHAT, chat_body(max_tokens=1))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    time.sleep(int(refused.headers["Retry-After"]))
    again = post(gw, CHAT, chat_body(max_tokens=1))
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "1"


def test_remaining_never_increases_within_a_window(gateway: Any) -> None:
    gw = gateway(rpm=8, window_seconds=30)
    remaining = [
        int(post(gw, CHAT, chat_body(max_tokens=1)).headers["X-RateLimit-Remaining"]) for _ in range(10)
    ]
    assert remaining == [7, 6, 5, 4, 3, 2, 1, 0, 0, 0]


def test_keys_have_their_own_windows_and_limits(gateway: Any) -> None:
    gw = gateway(keys=[KeySpec(DEMO_KEY), KeySpec("small", rpm=1)], rpm=5, window_seconds=30)
    small = {"Authorization": "Bearer small"}
    assert [r.status_code for r in simultaneous(gw, 3, chat_body(max_tokens=1), small)].count(200) == 1
    assert [r.status_code for r in simultaneous(gw, 7, chat_body(max_tokens=1))].count(200) == 5


def test_invalid_requests_and_aux_endpoints_are_not_counted(gateway: Any) -> None:
    gw = gateway(rpm=1, window_seconds=30)
    assert post(gw, CHAT, chat_body(temperature=9)).status_code == 400
    for path in ("/v1/models", "/v1/balance"):
        assert CLIENT.get(gw.url + path, headers=AUTH).status_code == 200
    assert post(gw, CHAT, chat_body(max_tokens=1)).status_code == 200

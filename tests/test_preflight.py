"""Preflight: a configuration mistake is one line naming the cause, within seconds, never a run of FAILs."""

from __future__ import annotations

import json

import pytest
from _hostile import Reply, Seen, elapsed, refused_url, scripted

from gatecheck.config import Target
from gatecheck.preflight import PreflightError, is_local, preflight
from gatecheck.redaction import Secret

CANARY = "sk-CANARY-preflight-7f3a9c"
KEY = Secret(CANARY, source="$GATECHECK_API_KEY")
BOUND_S = 12.0
"""Every preflight ends well within this (its requests are bounded at 10 s; here they take ms)."""


def target(url: str, key: Secret | None = KEY, **changes: object) -> Target:
    return Target(base_url=url, api_key=key, **changes)  # type: ignore[arg-type]


def failure_of(made: Target) -> str:
    outcome, seconds = elapsed(lambda: preflight(made))
    assert seconds < BOUND_S
    assert isinstance(outcome, PreflightError), outcome
    message = str(outcome)
    assert "\n" not in message and CANARY not in message
    return message


def api(seen: Seen) -> Reply:
    if seen.path == "/v1/models":
        return Reply(
            200, body=json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        )
    return Reply(200, body=b'{"choices": []}')


def test_a_working_api_passes_and_says_what_answered() -> None:
    with scripted(api) as server:
        assert preflight(target(server.url)) == f"preflight: {server.url} answered 200 to GET /v1/models"
        assert server.seen[0].headers["authorization"] == f"Bearer {CANARY}"


def test_without_a_models_endpoint_the_cheapest_chat_completion_decides() -> None:
    def no_models(seen: Seen) -> Reply:
        return (
            Reply(404, body=b'{"error": {"code": "NOT_FOUND"}}') if seen.path == "/v1/models" else api(seen)
        )

    with scripted(no_models) as server:
        assert preflight(target(server.url)).endswith("200 to POST /v1/chat/completions")
        sent = json.loads(server.seen[-1].body)
        assert sent["max_tokens"] == 1


def test_a_target_that_claims_no_model_list_is_asked_a_chat_completion_only() -> None:
    with scripted(api) as server:
        preflight(target(server.url, capabilities=frozenset({"streaming"})))
        assert [s.path for s in server.seen] == ["/v1/chat/completions"]


def test_connection_refused() -> None:
    url = refused_url()
    assert failure_of(target(url)) == f"cannot reach {url}/v1/models: connection refused"


def test_a_host_name_that_does_not_resolve() -> None:
    message = failure_of(target("http://gatecheck-preflight.invalid"))
    assert "does not resolve (DNS)" in message


def test_an_html_page_is_not_an_api() -> None:
    page = Reply(
        200, {"content-type": "text/html"}, b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>"
    )
    with scripted(lambda seen: page) as server:
        message = failure_of(target(server.url))
    assert message.startswith(f"{server.url}/v1/models does not answer like an API: HTTP 200 text/html")
    assert "Welcome to nginx" in message


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_names_where_the_key_came_from_and_never_prints_it(status: int) -> None:
    echo = Reply(status, body=json.dumps({"error": {"message": f"bad key {CANARY}"}}).encode())
    with scripted(lambda seen: echo) as server:
        message = failure_of(target(server.url))
    assert message.startswith(f"the key in $GATECHECK_API_KEY was rejected: {status} ")
    assert "bad key ***" in message


def test_a_rejected_second_key_is_named_as_the_second() -> None:
    second = "sk-CANARY-second-key-1234"

    def only_the_first(seen: Seen) -> Reply:
        return api(seen) if CANARY in seen.headers.get("authorization", "") else Reply(401, body=b"{}")

    with scripted(only_the_first) as server:
        message = failure_of(target(server.url, api_key_2=Secret(second, source="$GATECHECK_API_KEY_2")))
    assert message.startswith("the key in $GATECHECK_API_KEY_2 was rejected: 401")
    assert "second key" in message and second not in message


def test_a_redirect_means_the_base_url_is_not_the_api() -> None:
    moved = Reply(301, {"location": "https://example.invalid/login"}, b"")
    with scripted(lambda seen: moved) as server:
        message = failure_of(target(server.url))
    assert "redirects (301 to https://example.invalid/login)" in message


def test_no_key_for_a_remote_target_is_refused_before_anything_is_sent() -> None:
    message = failure_of(target("https://gateway.example.invalid", key=None))
    assert message.startswith("no API key for https://gateway.example.invalid: set $GATECHECK_API_KEY")


def test_a_keyless_local_server_is_allowed() -> None:
    with scripted(api) as server:
        preflight(target(server.url, key=None))
        assert "authorization" not in server.seen[0].headers


def test_server_errors_and_rate_limits_are_left_to_the_run() -> None:
    for status in (500, 429):
        with scripted(lambda seen, s=status: Reply(s, body=b'{"error": {"code": "X"}}')) as server:
            assert f"answered {status}" in preflight(target(server.url))


def test_the_embedded_gateway_needs_no_preflight() -> None:
    assert "no preflight" in preflight(Target())


def test_local_means_loopback_or_localhost() -> None:
    assert is_local("http://127.0.0.1:8080") and is_local("http://localhost") and is_local("http://[::1]:80")
    assert not is_local("https://10.0.0.1") and not is_local("https://gw.example.com")

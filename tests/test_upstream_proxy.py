"""The reference gateway in proxy mode, and the upstream area's preconditions.

What the proxy does with each upstream failure is proven by the area's checks against it
(tests/test_upstream_faults.py); here: its options, what it refuses to translate, and the area's
honest SKIP when the target names no harness.
"""

from __future__ import annotations

import argparse

import httpx
import pytest

from gatecheck.checks import RunSettings, run_checks, select
from gatecheck.checks.session import EMBEDDED_MAIN_KEY, open_session
from gatecheck.commands import serve
from gatecheck.config import Target
from gatecheck.errors import ConfigError
from gatecheck.redaction import Secret
from gatecheck.reference import DEMO_KEY, GatewayConfig, RunningGateway
from gatecheck.upstream.embedded import start_pair

UPSTREAM_KEY = "gcu-canary-proxy-test-5f1e"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.configure(parser)
    return parser.parse_args(list(argv))


def test_serve_upstream_options_make_a_proxy_config_without_showing_its_key() -> None:
    args = parse("--upstream", "http://127.0.0.1:8090", "--upstream-timeout", "5", "--upstream-retries", "0")
    config = serve.config_from_args(args, "", UPSTREAM_KEY)
    assert (config.upstream, config.upstream_timeout_s, config.upstream_retries) == (
        "http://127.0.0.1:8090",
        5.0,
        0,
    )
    assert config.upstream_api_key == UPSTREAM_KEY and UPSTREAM_KEY not in repr(config)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"upstream": "ftp://127.0.0.1"}, "upstream"),
        ({"upstream": "http://127.0.0.1:1", "upstream_timeout_s": 0}, "upstream_timeout_s"),
        ({"upstream": "http://127.0.0.1:1", "upstream_retries": 11}, "upstream_retries"),
    ],
)
def test_bad_proxy_options_are_one_config_error(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        GatewayConfig(**options)  # type: ignore[arg-type]


def test_the_proxy_refuses_what_it_cannot_translate_to_chat_completions() -> None:
    with start_pair() as pair:
        body = {
            "model": "deepseek-v4-flash",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        }
        answer = httpx.post(
            pair.gateway.url + "/v1/messages",
            json=body,
            headers={"x-api-key": EMBEDDED_MAIN_KEY},
            trust_env=False,
        )
    assert answer.status_code == 400
    assert "text messages only" in answer.json()["error"]["message"]


def test_without_an_upstream_harness_the_area_is_an_explained_skip(reference_gateway: RunningGateway) -> None:
    target = Target(
        base_url=reference_gateway.url, api_key=Secret(DEMO_KEY), rpm=1_000_000, tpm=1_000_000_000
    )
    with open_session(target, RunSettings(fuzz_examples=0)) as session:
        results = run_checks(session, select([c.id for c in select() if c.area == "upstream"]))
    assert {r.verdict for r in results} == {"SKIP"}
    assert all("no upstream harness" in r.message and "--upstream URL" in r.message for r in results)
    assert session.requests_sent == 0


def test_an_unreachable_harness_is_an_explained_skip(reference_gateway: RunningGateway) -> None:
    target = Target(
        base_url=reference_gateway.url, api_key=Secret(DEMO_KEY), upstream="http://127.0.0.1:9", rpm=1_000_000
    )
    with open_session(target, RunSettings(fuzz_examples=0)) as session:
        (result,) = run_checks(session, select(["upstream_error_is_502"]))
    assert result.verdict == "SKIP" and "did not answer" in result.message

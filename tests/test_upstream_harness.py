"""The upstream harness does exactly what each scenario says, logs exactly what happened, and keeps
its control API to loopback clients.

Every test talks to a harness started in-process on 127.0.0.1 (module fixture, stopped at the
end) with its own canary key, as a gateway would: raw httpx, no gatecheck client in between.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from aiohttp.test_utils import make_mocked_request

from gatecheck.reference import RunningGateway
from gatecheck.sse import decode_chunks
from gatecheck.upstream import SCENARIOS, harness_config, is_loopback, start_harness
from gatecheck.upstream.control import Control, ControlError
from gatecheck.upstream.harness import MALFORMED_MARK, Harness
from gatecheck.upstream.scenarios import DEFAULT_USAGE, ScenarioError, parse_scenario

KEY = "gcu-canary-test-0123456789abcdef"
PROMPT = "Count from 1 to 12."
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def harness() -> Iterator[RunningGateway]:
    with start_harness(harness_config(key=KEY)) as running:
        yield running


@pytest.fixture(scope="module")
def control(harness: RunningGateway) -> Iterator[Control]:
    with Control(harness.url) as client:
        yield client


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        yield client


def chat(nonce: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "any-alias",
        "messages": [{"role": "user", "content": f"{PROMPT} {nonce}"}],
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return {**body, **extra}


def post(
    http: httpx.Client, harness: RunningGateway, body: dict[str, Any], path: str = CHAT
) -> httpx.Response:
    return http.post(harness.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"})


def events(response: httpx.Response) -> list[str]:
    return [e.data for e in decode_chunks([(0, response.content)]).events]


def contents(datas: list[str]) -> list[str]:
    found = []
    for data in datas:
        chunk = json.loads(data) if data.startswith("{") and data.endswith("}") else {}
        for choice in chunk.get("choices") or []:
            if choice.get("delta", {}).get("content"):
                found.append(choice["delta"]["content"])
    return found


# --- scenarios ---------------------------------------------------------------------------------


def test_ok_answers_like_the_reference_model_and_streams_to_done(harness, control, http) -> None:
    nonce = control.register("ok")
    whole = post(http, harness, chat(nonce)).json()
    assert whole["model"] == "any-alias"
    assert whole["choices"][0]["message"]["content"] == " ".join(str(i) for i in range(1, 13))
    streamed = events(post(http, harness, chat(nonce, stream=True)))
    assert "".join(contents(streamed)) == whole["choices"][0]["message"]["content"]
    assert streamed[-1] == "[DONE]" and json.loads(streamed[-2])["usage"]["completion_tokens"] == 12


def test_usage_is_the_scripted_figures_in_body_and_stream(harness, control, http) -> None:
    nonce = control.register("usage")
    usage = post(http, harness, chat(nonce)).json()["usage"]
    expected = {
        "prompt_tokens": DEFAULT_USAGE["prompt_tokens"],
        "completion_tokens": DEFAULT_USAGE["completion_tokens"],
        "total_tokens": DEFAULT_USAGE["total_tokens"],
        "prompt_tokens_details": {"cached_tokens": DEFAULT_USAGE["cached_tokens"]},
        "completion_tokens_details": {"reasoning_tokens": DEFAULT_USAGE["reasoning_tokens"]},
    }
    assert usage == expected
    streamed = events(post(http, harness, chat(nonce, stream=True)))
    assert json.loads(streamed[-2])["usage"] == expected


def test_status_sends_the_error_and_retry_after_then_ok_after_times(harness, control, http) -> None:
    nonce = control.register("status", status=429, retry_after=1.5, times=1)
    first = post(http, harness, chat(nonce))
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert first.json()["error"]["type"] == "rate_limit_error"
    assert post(http, harness, chat(nonce)).status_code == 200
    assert [a["status"] for a in control.attempts(nonce)] == [429, 200]


def test_flap_fails_once_by_default(harness, control, http) -> None:
    nonce = control.register("flap")
    assert [post(http, harness, chat(nonce)).status_code for _ in range(3)] == [503, 200, 200]


def test_reset_before_headers_gives_no_response(harness, control, http) -> None:
    nonce = control.register("reset")
    with pytest.raises(httpx.TransportError):
        post(http, harness, chat(nonce))
    (attempt,) = control.attempts(nonce)
    assert attempt["outcome"] == "reset" and attempt["status"] is None and attempt["t_headers_ns"] is None


def test_reset_after_headers_cuts_the_body(harness, control, http) -> None:
    nonce = control.register("reset", when="after-headers")
    with http.stream(
        "POST", harness.url + CHAT, json=chat(nonce), headers={"Authorization": f"Bearer {KEY}"}
    ) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.TransportError):
            r.read()
    assert control.attempts(nonce)[0]["outcome"] == "reset"


def test_silent_never_answers_then_resets_after_hold(harness, control, http) -> None:
    nonce = control.register("silent", hold_s=0.3)
    started = time.monotonic()
    with pytest.raises(httpx.TransportError):
        post(http, harness, chat(nonce))
    assert 0.3 <= time.monotonic() - started < 2.0
    (attempt,) = control.attempts(nonce)
    assert attempt["outcome"] == "silent" and attempt["status"] is None


def test_slow_first_token_sends_headers_and_role_at_once_content_late(harness, control, http) -> None:
    nonce = control.register("slow-first-token", delay_ms=300)
    streamed = events(post(http, harness, chat(nonce, stream=True)))
    assert streamed[-1] == "[DONE]"
    (attempt,) = control.attempts(nonce)
    assert (attempt["t_headers_ns"] - attempt["t_arrival_ns"]) / 1e6 < 100
    assert (attempt["t_first_token_ns"] - attempt["t_arrival_ns"]) / 1e6 >= 300


@pytest.mark.parametrize("how", ["close", "reset"])
def test_stream_cut_sends_exactly_after_chunks_then_ends_without_finish_or_done(
    harness, control, http, how
) -> None:
    nonce = control.register("stream-cut", after=2, how=how)
    body = chat(nonce, stream=True)
    received = b""
    with http.stream("POST", harness.url + CHAT, json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        try:
            for piece in r.iter_raw():
                received += piece
            ended_cleanly = True
        except httpx.TransportError:
            ended_cleanly = False
    datas = [e.data for e in decode_chunks([(0, received)]).events]
    assert len(contents(datas)) == 2
    assert "[DONE]" not in datas and '"finish_reason":"' not in received.decode()
    assert ended_cleanly is (how == "close")
    assert control.attempts(nonce)[0]["outcome"] == ("cut" if how == "close" else "reset")


def test_stream_stall_sends_after_chunks_then_nothing_until_hold(harness, control, http) -> None:
    nonce = control.register("stream-stall", after=2, hold_s=0.4)
    received = b""
    started = time.monotonic()
    with (
        http.stream(
            "POST",
            harness.url + CHAT,
            json=chat(nonce, stream=True),
            headers={"Authorization": f"Bearer {KEY}"},
        ) as r,
        pytest.raises(httpx.TransportError),
    ):
        for piece in r.iter_raw():
            received += piece
    assert time.monotonic() - started >= 0.4
    assert len(contents([e.data for e in decode_chunks([(0, received)]).events])) == 2
    assert control.attempts(nonce)[0]["outcome"] == "stalled"


def test_stream_error_event_follows_after_chunks_and_closes(harness, control, http) -> None:
    nonce = control.register("stream-error-event", after=3, message="boom")
    datas = events(post(http, harness, chat(nonce, stream=True)))
    assert len(contents(datas)) == 3
    assert json.loads(datas[-1]) == {
        "error": {"message": "boom", "type": "server_error", "param": None, "code": None}
    }


def test_malformed_chunk_is_not_json_and_the_stream_goes_on_to_done(harness, control, http) -> None:
    nonce = control.register("malformed-chunk", after=2)
    datas = events(post(http, harness, chat(nonce, stream=True)))
    bad = [d for d in datas if MALFORMED_MARK in d]
    assert len(bad) == 1 and datas.index(bad[0]) == 3  # role chunk, 2 content chunks, the bad one
    with pytest.raises(ValueError):
        json.loads(bad[0])
    assert len(contents(datas)) == 12 and datas[-1] == "[DONE]"


def test_itl_spaces_the_writes(harness, control, http) -> None:
    nonce = control.register("ok", itl_ms=40, words=5)
    post(http, harness, chat(nonce, stream=True, messages=[{"role": "user", "content": f"say {nonce}"}]))
    (attempt,) = control.attempts(nonce)
    writes = [t for t, text in attempt["sent"] if '"content":"' in text and '"content":""' not in text]
    offsets = [(t - attempt["t_arrival_ns"]) / 1e6 for t in writes]
    assert len(writes) == 5 and all(at >= k * 40 for k, at in enumerate(offsets)), offsets  # never early


def test_messages_endpoint_speaks_anthropic_with_scripted_usage_and_finish(harness, control, http) -> None:
    nonce = control.register(
        "usage", usage={"prompt_tokens": 7, "completion_tokens": 9}, finish_reason="length"
    )
    body = {"model": "any", "max_tokens": 50, "messages": [{"role": "user", "content": f"hello {nonce}"}]}
    message = post(http, harness, body, "/v1/messages").json()
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"] == {"input_tokens": 7, "output_tokens": 9}
    streamed = post(http, harness, {**body, "stream": True}, "/v1/messages")
    names = [e.event for e in decode_chunks([(0, streamed.content)]).events]
    assert names[0] == "message_start" and names[-1] == "message_stop"


# --- the log -----------------------------------------------------------------------------------


def test_the_log_is_exact(harness, control, http) -> None:
    nonce = control.register("ok", itl_ms=5)
    body = chat(nonce, stream=True)
    response = http.post(
        harness.url + CHAT, json=body, headers={"Authorization": f"Bearer {KEY}", "X-Trace": "t-1"}
    )
    (attempt,) = control.attempts(nonce)
    assert attempt["body"] == body and attempt["path"] == CHAT and attempt["method"] == "POST"
    assert attempt["auth"] == "ok" and attempt["scenario"] == "ok" and attempt["attempt"] == 1
    assert attempt["headers"]["Authorization"] == "***" and attempt["headers"]["X-Trace"] == "t-1"
    assert "".join(text for _, text in attempt["sent"]).encode() == response.content
    assert attempt["writes"] == len(attempt["sent"]) == len(events(response))
    stamps = [attempt[k] for k in ("t_arrival_ns", "t_headers_ns", "t_first_token_ns", "t_end_ns")]
    assert stamps == sorted(stamps) and attempt["outcome"] == "complete" and attempt["status"] == 200
    assert [t for t, _ in attempt["sent"]] == sorted(t for t, _ in attempt["sent"])
    assert KEY not in json.dumps(control.attempts(nonce))


def test_the_log_stamps_are_this_hosts_monotonic_clock(harness, control, http) -> None:
    before = time.monotonic_ns()
    nonce = control.register("ok")
    post(http, harness, chat(nonce))
    after = time.monotonic_ns()
    (attempt,) = control.attempts(nonce)
    answered = time.monotonic_ns()
    # The end is stamped once the harness is done: possibly after the client read the whole answer
    # (a busy machine), always before the log answered.
    assert before <= attempt["t_arrival_ns"] <= after
    assert attempt["t_arrival_ns"] <= attempt["t_end_ns"] <= answered
    assert before <= control.info()["clock_ns"]


def test_since_pages_brief_records_for_load_runs(harness, control, http) -> None:
    _, start = control.since(0)
    nonces = [control.register("ok") for _ in range(3)]
    for nonce in nonces:
        post(http, harness, chat(nonce))
    found, next_seq = control.since(start)
    assert [a["nonce"] for a in found] == nonces and next_seq == found[-1]["seq"]
    assert "body" not in found[0] and found[0]["t_first_token_ns"] >= found[0]["t_arrival_ns"]
    assert control.since(next_seq)[0] == []


def test_since_with_a_prefix_pages_only_those_nonces_and_passes_the_others_once(
    harness, control, http
) -> None:
    _, start = control.since(0)
    mine = ["gcnonce-a1a1a1" + f"{n:010x}" for n in range(3)]
    for nonce in [mine[0], "gcnonce-b2b2b20000000001", mine[1], mine[2], "gcnonce-b2b2b20000000002"]:
        post(http, harness, chat(nonce, stream=True))
    found, next_seq = control.since(start, prefix="gcnonce-a1a1a1")
    assert [a["nonce"] for a in found] == mine
    assert next_seq == found[-1]["seq"] + 1, "the other prefix's last attempt is looked at once"
    assert control.since(next_seq, prefix="gcnonce-a1a1a1") == ([], next_seq)
    page, cut = control.since(start, limit=2, prefix="gcnonce-a1a1a1")
    assert [a["nonce"] for a in page] == mine[:2] and cut == page[-1]["seq"]
    assert "token_writes_ns" not in found[0] and control.info()["log_writes"] is False


def test_log_writes_keeps_the_stamp_of_every_token_write(http) -> None:
    """``gatecheck upstream --log-writes``: the stamp of each content write, taken before the write,
    so a client can never have the bytes earlier (what the load test's per-chunk overhead reads)."""
    with (
        start_harness(harness_config(key=KEY, itl_ms=3), log_writes=True) as running,
        Control(running.url) as own,
    ):
        assert own.info()["log_writes"] is True
        nonce = "gcnonce-c3c3c30000000001"
        before = time.monotonic_ns()
        streamed = events(post(http, running, chat(nonce, stream=True)))
        after = time.monotonic_ns()
        ((attempt,), _) = own.since(0)
        answered = time.monotonic_ns()
    writes = attempt["token_writes_ns"]
    assert len(writes) == len(contents(streamed)) == 12
    assert writes[0] == attempt["t_first_token_ns"] and writes == sorted(writes)
    # Each write is stamped before its bytes leave, so before the client has them; the end is
    # stamped once the harness is done, which may be after the client read it all (a busy machine),
    # but before the log answered.
    assert before <= writes[0] and writes[-1] <= after and writes[-1] <= attempt["t_end_ns"] <= answered
    assert writes[-1] - writes[0] >= 10 * 3_000_000, "paced 3 ms apart, stamped as written"


def test_unregistered_nonces_are_ok_and_logged_without_bodies_written(harness, control, http) -> None:
    nonce = "gcnonce-00000000000000aa"
    assert post(http, harness, chat(nonce)).status_code == 200
    (attempt,) = control.attempts(nonce)
    assert attempt["scenario"] == "ok" and attempt["sent"] == [] and attempt["writes"] == 1


def test_a_wrong_or_missing_key_is_refused_and_logged(harness, control, http) -> None:
    nonce = control.register("ok")
    wrong = http.post(harness.url + CHAT, json=chat(nonce), headers={"Authorization": "Bearer nope"})
    missing = http.post(harness.url + CHAT, json=chat(nonce))
    assert wrong.status_code == missing.status_code == 401
    assert [a["auth"] for a in control.attempts(nonce)] == ["wrong", "missing"]


# --- the control API ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.0.0.1", False), ("192.168.1.5", False), ("::ffff:10.0.0.1", False), ("", False), (None, False)],
)  # fmt: skip
def test_is_loopback(remote: str | None, loopback: bool) -> None:
    assert is_loopback(remote) is loopback


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/_gatecheck/info", "/_gatecheck/log?since=0", "/_gatecheck/scenarios"])
async def test_the_control_api_refuses_a_client_that_is_not_on_loopback(path: str) -> None:
    harness = Harness(harness_config(key=KEY))
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("10.1.2.3", 40000) if name == "peername" else default
    )
    request = make_mocked_request("GET", path, transport=transport, app=harness.app())
    reached = mock.AsyncMock()
    response = await harness._loopback_only(request, reached)
    assert response.status == 403 and not reached.called
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("127.0.0.1", 40000) if name == "peername" else default
    )
    await harness._loopback_only(make_mocked_request("GET", path, transport=transport), reached)
    assert reached.called


def test_the_provider_endpoints_do_not_check_the_client_address() -> None:
    """Only the control API is loopback-only: a gateway on another host may call the provider."""
    harness = Harness(harness_config(key=KEY))
    routes = {r.resource.canonical for r in harness.app().router.routes() if r.resource is not None}
    assert {"/v1/chat/completions", "/v1/messages", "/v1/models"} <= routes


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"nonce": "x", "scenario": "ok"}, "nonce"),
        ({"nonce": "gcnonce-0123456789abcdef", "scenario": "explode"}, "one of ok, usage"),
        ({"nonce": "gcnonce-0123456789abcdef", "scenario": "ok", "status": 500}, "ok takes"),
        ({"nonce": "gcnonce-0123456789abcdef", "scenario": "status", "status": 99}, "status: an integer"),
        (
            {"nonce": "gcnonce-0123456789abcdef", "scenario": "usage", "usage": {"prompt_tokens": 1}},
            "required",
        ),
        ([], "JSON object"),
    ],
)
def test_a_bad_registration_says_what_is_allowed(body: object, says: str, control: Control) -> None:
    with pytest.raises(ScenarioError, match=says):
        parse_scenario(body)
    if isinstance(body, dict):
        with pytest.raises(ControlError, match="400"):
            control._call("POST", "scenarios", json=body)


def test_every_scenario_is_listed_and_registers_with_defaults() -> None:
    for name in SCENARIOS:
        _, scenario = parse_scenario({"nonce": "gcnonce-0123456789abcdef", "scenario": name})
        assert scenario.name == name


def test_the_command_prints_the_url_then_the_key_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gatecheck.cli", "upstream", "--port", "0", "--api-key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert process.stdout.readline().strip() == f"key {KEY}"
        assert httpx.get(url + "/_gatecheck/info", trust_env=False).json()["key"] == KEY
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0

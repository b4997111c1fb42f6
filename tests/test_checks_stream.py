"""Stream checks on hand-made wires: exact bytes and arrival times, no server.

Each test builds the stream a check must judge (the documents' own example as the clean case),
seeds it as the shared observation, and runs the check through the runner like the suite does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from _checks_helpers import make_session, stream_exchange

from gatecheck.checks import CHECKS, load_all, run_check
from gatecheck.checks.stream import decode_capture
from gatecheck.client import Exchange
from gatecheck.results import CheckResult
from gatecheck.rules import rules

load_all()

HEAD = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion.chunk",
    "created": 1712345678,
    "model": "deepseek-v4-flash",
}
WORDS = ["Artificial", " intelligence", " is", " a", " field", "."]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def event(payload: Any) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def clean_chunks() -> list[dict[str, Any]]:
    """000's example stream: role first, content deltas, finish, then usage on its own chunk."""
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": word}) for word in WORDS]
    chunks.append(chunk({}, "stop"))
    chunks.append(
        {**HEAD, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}}
    )
    return chunks


def wire(chunks: list[Any], done: bool = True) -> list[bytes]:
    return [event(c) for c in chunks] + ([event("[DONE]")] if done else [])


def judge(
    check_id: str, exchange: Exchange, *, profile: str = "gateway", twin: Exchange | None = None
) -> CheckResult:
    """Run one stream check with ``exchange`` as the shared basic stream."""
    session = make_session(profile=profile)
    session.observations["basic_stream"] = decode_capture(exchange, session.profile.reasoning_field)
    if twin is not None:
        session.observations["basic_answer"] = twin
    return run_check(session, CHECKS[check_id])


STREAM_CHECKS = [
    c.id for c in CHECKS.values() if c.observations == ("basic_stream",) and c.id != "stream_really_streams"
]


@pytest.mark.parametrize("check_id", STREAM_CHECKS)
def test_the_documented_example_stream_passes_every_check(check_id: str) -> None:
    result = judge(check_id, stream_exchange(wire(clean_chunks())))
    assert result.verdict == "PASS", result.message


def test_usage_on_the_finish_chunk_is_fine_for_the_gateway_profile_not_for_openai() -> None:
    chunks = clean_chunks()[:-1]
    chunks[-1] = {**chunks[-1], "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}}
    assert judge("stream_usage_final", stream_exchange(wire(chunks))).verdict == "PASS"
    openai = judge("stream_usage_final", stream_exchange(wire(chunks)), profile="openai")
    assert openai.verdict == "FAIL" and "stream-usage-with-choices" in openai.extra["rules"]


@pytest.mark.parametrize(
    ("check_id", "broken", "rule"),
    [
        ("stream_done_last", lambda c: wire(c, done=False), "stream-missing-done"),
        ("stream_done_last", lambda c: [*wire(c), event(c[1])], "stream-data-after-done"),
        (
            "stream_role_first",
            lambda c: wire([c[0], chunk({"role": "assistant", "content": "x"}), *c[1:]]),
            "stream-role-not-first",
        ),
        (
            "stream_identity_constant",
            lambda c: wire([*c[:3], {**c[3], "id": "chatcmpl-other"}, *c[4:]]),
            "stream-id-changed",
        ),
        (
            "stream_chunk_object",
            lambda c: wire([*c[:2], {**c[2], "object": "chat.completion"}, *c[3:]]),
            "stream-object-wrong",
        ),
        (
            "stream_finish_reason_once",
            lambda c: wire([*c[:-1], chunk({}, "stop"), c[-1]]),
            "stream-finish-reason-repeated",
        ),
        ("stream_usage_final", lambda c: wire(c[:-1]), "stream-usage-missing"),
        ("stream_usage_final", lambda c: wire([c[-1], *c]), "stream-usage-not-last"),
        (
            "stream_chunks_valid",
            lambda c: [event(c[0]), b'data: {"id": \n\n', *wire(c[1:])],
            "stream-invalid-json",
        ),
        ("stream_sse_framing", lambda c: [event(c[0])[:-1], *wire(c[1:])], "sse-multiline-event"),
        ("stream_sse_framing", lambda c: [*wire(c), b"data: [DONE]"], "sse-unterminated"),
    ],
)
def test_each_broken_rule_fails_its_check_and_quotes_the_wire(check_id: str, broken: Any, rule: str) -> None:
    result = judge(check_id, stream_exchange(broken(clean_chunks())))
    # graded by the rule's provenance: documented and sdk rules fail, OpenAI-only (protocol) ones warn
    assert result.verdict == ("WARN" if rules()[rule].provenance == "protocol" else "FAIL"), result.message
    assert rule in result.extra["rules"]
    assert "Received: " in result.message and '"data: ' in result.message  # the wire, as a JSON string
    assert "b'" not in result.message
    assert "Reproduce with:" in result.message


def test_a_wrong_content_type_fails() -> None:
    result = judge(
        "stream_content_type", stream_exchange(wire(clean_chunks()), content_type="application/json")
    )
    assert result.verdict == "FAIL" and "application/json" in result.message


PER_EVENT = {"stream_content_type", "stream_chunks_valid", "stream_chunk_object", "stream_identity_constant"}
"""Checks whose rule is about each chunk that arrived: they judge a partial stream."""


def verdicts(exchange: Exchange, **kwargs: Any) -> dict[str, CheckResult]:
    results = {check_id: judge(check_id, exchange, **kwargs) for check_id in STREAM_CHECKS}
    for result in results.values():
        assert "undeclared_rules" not in result.extra, result
    return results


def assert_owned(results: dict[str, CheckResult], rule: str, judged: set[str]) -> None:
    """stream_completes alone reports ``rule``; ``judged`` checks PASS on what arrived, others say why not."""
    owner = results.pop("stream_completes")
    assert owner.verdict == "FAIL" and owner.extra["rules"] == [rule], owner.message
    for check_id, result in results.items():
        if check_id in judged:
            assert result.verdict == "PASS", f"{check_id}: {result.message}"
        else:
            assert result.verdict == "SKIP", f"{check_id}: {result.verdict} {result.message}"
            assert result.message.startswith("not checked: "), result.message


def test_a_mid_stream_error_is_reported_once_and_what_arrived_is_still_judged() -> None:
    error = {"error": {"code": "UPSTREAM_ERROR", "message": "upstream failed", "request_id": "req-1"}}
    results = verdicts(stream_exchange(wire([*clean_chunks()[:3], error], done=False)))
    owner = results["stream_completes"]
    assert "mid-stream error event" in owner.message and "UPSTREAM_ERROR" in owner.message
    assert "(stream_completes reports it)" in results["stream_done_last"].message
    assert_owned(results, "stream-error-event", PER_EVENT | {"stream_role_first"})


def test_a_fault_in_what_arrived_is_still_reported_when_the_stream_broke_later() -> None:
    error = {"error": {"code": "UPSTREAM_ERROR", "message": "upstream failed", "request_id": "req-1"}}
    chunks = clean_chunks()[:3]
    chunks[2] = chunk({"role": "assistant", "content": " again"})
    result = judge("stream_role_first", stream_exchange(wire([*chunks, error], done=False)))
    assert result.verdict == "FAIL" and result.extra["rules"] == ["stream-role-not-first"], result.message


def test_a_stream_that_stalls_after_its_headers_is_one_finding_and_nothing_passes() -> None:
    # the double's stall-after-headers: 200 and headers, then nothing until the read timeout
    stalled = stream_exchange([], closed=False, error="read timeout: timed out", error_kind="read_timeout")
    results = verdicts(stalled)
    assert "the stream stalled after its headers" in results["stream_completes"].message
    assert_owned(results, "stream-incomplete", set())


def test_a_stream_cut_off_midway_is_one_finding() -> None:
    cut = stream_exchange(
        wire(clean_chunks()[:4], done=False),
        error="protocol error: peer closed connection without sending complete message body",
        error_kind="protocol",
    )
    results = verdicts(cut)
    assert "the stream was cut off after 4 events" in results["stream_completes"].message
    assert_owned(results, "stream-incomplete", PER_EVENT | {"stream_role_first"})


def test_a_stream_answered_500_or_with_no_events_is_one_finding() -> None:
    body = json.dumps({"error": {"code": "INTERNAL_ERROR", "message": "boom", "request_id": "r"}}).encode()
    failed = stream_exchange([body], status=500, content_type="application/json")
    assert_owned(verdicts(failed), "stream-status", set())
    plain = json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode()
    not_a_stream = stream_exchange([plain], content_type="application/json")
    assert_owned(verdicts(not_a_stream), "stream-no-events", set())


def test_a_stream_none_of_whose_events_ends_is_one_framing_finding() -> None:
    one_line_each = [e.replace(b"\n\n", b"\n") for e in wire(clean_chunks())]
    results = verdicts(stream_exchange(one_line_each))
    framing = results.pop("stream_sse_framing")
    assert framing.verdict == "FAIL" and framing.extra["rules"] == ["sse-unterminated"], framing.message
    for check_id, result in results.items():
        assert result.verdict == "SKIP" and "(stream_sse_framing reports it)" in result.message, check_id


@pytest.mark.parametrize("profile", ["gateway", "lenient"])
def test_tool_calls_null_is_one_warning_not_twelve_failures(profile: str) -> None:
    # the double's tool-calls-null: every content delta carries "tool_calls": null, which the SDKs accept
    chunks = clean_chunks()
    for c in chunks[1:-2]:
        c["choices"][0]["delta"]["tool_calls"] = None
    results = verdicts(stream_exchange(wire(chunks)), profile=profile)
    valid = results.pop("stream_chunks_valid")
    assert valid.verdict == "WARN" and valid.extra["rules"] == ["null-optional-field"], valid.message
    assert {r.verdict for r in results.values()} == {"PASS"}, {k: r.message for k, r in results.items()}


def test_an_index_inside_delta_is_caught_by_the_chunk_schema() -> None:
    # the double's index-in-delta: the OpenAI SDK's stream helper raises TypeError on it
    chunks = clean_chunks()
    for c in chunks[:-1]:
        c["choices"][0]["delta"]["index"] = c["choices"][0].pop("index")
    results = verdicts(stream_exchange(wire(chunks)))
    valid = results.pop("stream_chunks_valid")
    assert valid.verdict == "FAIL" and valid.extra["rules"] == ["stream-choice-no-index"], valid.message
    assert '"index" is a required property' in valid.message
    assert {r.verdict for r in results.values()} == {"PASS"}


def test_model_name_instead_of_model_is_caught_by_the_chunk_schema() -> None:
    chunks = [
        {**{k: v for k, v in c.items() if k != "model"}, "model_name": c["model"]} for c in clean_chunks()
    ]
    results = verdicts(stream_exchange(wire(chunks)))
    valid = results.pop("stream_chunks_valid")
    assert valid.verdict == "FAIL" and valid.extra["rules"] == ["stream-chunk-identity-missing"], (
        valid.message
    )
    assert {r.verdict for r in results.values()} == {"PASS"}


def test_a_wrong_object_is_reported_by_its_own_check_only() -> None:
    chunks = [{**c, "object": "chat.completion"} for c in clean_chunks()]
    results = verdicts(stream_exchange(wire(chunks)))
    assert results.pop("stream_chunk_object").verdict == "FAIL"
    assert {r.verdict for r in results.values()} == {"PASS"}


def test_too_few_content_events_is_not_checked_rather_than_passed() -> None:
    full = clean_chunks()
    short = [full[0], *full[1:3], *full[-2:]]  # role, two words, finish, usage
    result = judge("stream_really_streams", stream_exchange(wire(short)))
    assert result.verdict == "SKIP" and "2 content events arrived" in result.message


def test_closing_after_done_is_not_checked_when_done_never_came() -> None:
    missing = stream_exchange(wire(clean_chunks(), done=False))
    assert judge("stream_done_last", missing).verdict == "FAIL"
    result = judge("stream_closes_after_done", missing)
    assert result.verdict == "SKIP" and "stream_done_last reports it" in result.message


def tool_chunks(arguments: list[str], finish: str) -> list[dict[str, Any]]:
    first = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    chunks = [chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
    chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in arguments]
    chunks.append(chunk({}, finish))
    return chunks


def judge_tool_stream(exchange: Exchange) -> CheckResult:
    session = make_session()
    session.observations["tool_stream"] = decode_capture(exchange, session.profile.reasoning_field)
    return run_check(session, CHECKS["stream_tool_call_deltas"])


def test_tool_call_arguments_cut_by_max_tokens_are_not_malformed() -> None:
    cut = judge_tool_stream(stream_exchange(wire(tool_chunks(['{"city": ', '"Bei'], "length"))))
    assert cut.verdict == "PASS", cut.message
    broken = judge_tool_stream(stream_exchange(wire(tool_chunks(['{"city": ', '"Beijing"'], "tool_calls"))))
    assert broken.verdict == "WARN" and broken.extra["rules"] == ["stream-tool-call-arguments-invalid"]
    not_json = judge_tool_stream(stream_exchange(wire(tool_chunks(["city=Bei"], "length"))))
    assert not_json.verdict == "WARN", not_json.message


def test_a_broken_tool_stream_is_reported_by_its_only_reader() -> None:
    stalled = stream_exchange([], closed=False, error="read timeout: timed out", error_kind="read_timeout")
    result = judge_tool_stream(stalled)
    assert result.verdict == "FAIL" and result.extra["rules"] == ["stream-incomplete"], result.message


def test_a_stream_left_open_after_done_fails_and_a_prompt_close_passes() -> None:
    open_wire = stream_exchange(wire(clean_chunks()), closed=False, linger_ms=2000)
    result = judge("stream_closes_after_done", open_wire)
    assert result.verdict == "FAIL" and "still open 2.0 s after [DONE]" in result.message
    late = stream_exchange(wire(clean_chunks()), linger_ms=900)  # closed, but 0.9 s after [DONE]
    assert judge("stream_closes_after_done", late).verdict == "FAIL"
    assert (
        judge("stream_closes_after_done", stream_exchange(wire(clean_chunks()), linger_ms=10)).verdict
        == "PASS"
    )


def test_a_burst_is_a_warning_and_a_paced_stream_passes() -> None:
    burst = judge("stream_really_streams", stream_exchange([b"".join(wire(clean_chunks()))]))
    assert burst.verdict == "WARN" and "one burst" in burst.message
    paced = judge("stream_really_streams", stream_exchange(wire(clean_chunks()), gaps_ms=5))
    assert paced.verdict == "PASS"


def test_streamed_and_plain_answers_that_differ_are_a_warning() -> None:
    streamed = "".join(WORDS)
    twin = stream_exchange(
        [
            json.dumps(
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Other words."}}]}
            ).encode()
        ],
        content_type="application/json",
    )
    # temperature 0 is not a promise of determinism: our judgement, a warning under every profile
    for profile in ("gateway", "openai"):
        differ = judge(
            "stream_matches_nonstream", stream_exchange(wire(clean_chunks())), twin=twin, profile=profile
        )
        assert differ.verdict == "WARN", differ.message
    same = stream_exchange(
        [
            json.dumps(
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": streamed}}]}
            ).encode()
        ],
        content_type="application/json",
    )
    assert (
        judge("stream_matches_nonstream", stream_exchange(wire(clean_chunks())), twin=same).verdict == "PASS"
    )


# --- parallel tool calls in a stream: the check sends its own request ------------------------


def call_delta(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        fragment.update(id=call_id, type="function")
        fragment["function"]["name"] = name
    return chunk({"tool_calls": [fragment]})


WEATHER_PARTS = [
    (0, "call_a", "get_weather", ""),
    (0, None, None, '{"city": '),
    (0, None, None, '"Beijing"}'),
]
TIME_PARTS = [
    (1, "call_b", "get_local_time", ""),
    (1, None, None, '{"city": "Tokyo", '),
    (1, None, None, '"format": "24h"}'),
]


def streaming(parts: list[tuple[int, str | None, str | None, str]]) -> Any:
    """A server streaming these tool-call fragments (role first, finish tool_calls, usage, [DONE])."""
    chunks = [chunk({"role": "assistant", "content": None})]
    chunks += [call_delta(*part) for part in parts]
    chunks += [chunk({}, "tool_calls"), clean_chunks()[-1]]
    body = b"".join(wire(chunks))

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return handler


def judge_parallel(handler: Any) -> CheckResult:
    result = run_check(make_session(handler), CHECKS["stream_parallel_tool_calls"])
    assert "undeclared_rules" not in result.extra, result.extra
    return result


def test_two_streamed_tool_calls_one_after_the_other_pass() -> None:
    result = judge_parallel(streaming(WEATHER_PARTS + TIME_PARTS))
    assert result.verdict == "PASS", result.message


def test_one_streamed_tool_call_where_two_were_asked_is_not_checked() -> None:
    result = judge_parallel(streaming(WEATHER_PARTS))
    assert result.verdict == "SKIP" and "streamed 1 tool call(s)" in result.message


def test_two_tool_calls_under_one_index_fail() -> None:
    same_index = WEATHER_PARTS + [(0, *part[1:]) for part in TIME_PARTS]
    result = judge_parallel(streaming(same_index))
    assert result.verdict == "FAIL" and result.extra["rules"] == ["stream-tool-calls-same-index"], (
        result.message
    )
    assert 'index 0 carries ids ["call_a", "call_b"]' in result.message


def test_interleaved_arguments_are_a_warning_and_shared_ids_a_protocol_deviation() -> None:
    interleaved = [
        WEATHER_PARTS[0],
        TIME_PARTS[0],
        WEATHER_PARTS[1],
        TIME_PARTS[1],
        WEATHER_PARTS[2],
        TIME_PARTS[2],
    ]
    result = judge_parallel(streaming(interleaved))
    assert result.verdict == "WARN" and result.extra["rules"] == ["stream-tool-calls-interleaved"], (
        result.message
    )
    shared = [*WEATHER_PARTS, (1, "call_a", "get_local_time", ""), *TIME_PARTS[1:]]
    same_id = judge_parallel(streaming(shared))
    assert same_id.verdict == "WARN" and same_id.extra["rules"] == ["tool-call-ids-distinct"], same_id.message


def test_a_parallel_tool_stream_answered_500_is_its_own_finding() -> None:
    def fails(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"code": "INTERNAL_ERROR", "message": "boom"}})

    result = judge_parallel(fails)
    assert result.verdict == "FAIL" and result.extra["rules"] == ["stream-status"], result.message

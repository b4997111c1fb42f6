"""Stream checks on hand-made wires: exact bytes and arrival times, no server.

Each test builds the stream a check must judge (the documents' own example as the clean case),
seeds it as the shared observation, and runs the check through the runner like the suite does.
"""

from __future__ import annotations

import json
from typing import Any

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


def test_a_mid_stream_error_is_reported_as_such_by_every_stream_check() -> None:
    error = {"error": {"code": "UPSTREAM_ERROR", "message": "upstream failed", "request_id": "req-1"}}
    broken = stream_exchange(wire([*clean_chunks()[:3], error], done=False))
    for check_id in STREAM_CHECKS:
        result = judge(check_id, broken)
        assert result.verdict == "FAIL", check_id
        assert result.extra["rules"] == ["stream-error-event"], check_id
        assert "mid-stream error event" in result.message and "UPSTREAM_ERROR" in result.message


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

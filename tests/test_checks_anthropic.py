"""The /v1/messages checks on a hand-made gateway and on hand-made streams: no false alarm, no false pass.

``FakeGateway`` is a small Anthropic-compatible gateway written here, independently of the
reference gateway (its own reply text, its own token counting, no shared schemas), served through
httpx's mock transport. Correct, it passes every check; each knob turns on one deviation seen on a
real gateway (LiteLLM's OpenAI envelope on a 401 and ``input_tokens: 0`` in message_start, a bridge
that reports a stop sequence as end_turn...) or one honest behaviour the checks used to call a
failure (a model that never counts, a short answer, an answer ending exactly at max_tokens).
Streams the checks share are seeded by hand where only the wire matters (cut, answered 500).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from _checks_helpers import CANARY_KEY, make_session, stream_exchange

from gatecheck.checks import CHECKS, load_all, run_check
from gatecheck.checks import requests as rq
from gatecheck.checks.anthropic import decode_messages, stop_string_from
from gatecheck.checks.session import Session
from gatecheck.client import Exchange
from gatecheck.results import CheckResult

load_all()

ANTHROPIC_CHECKS = [c.id for c in CHECKS.values() if c.area == "anthropic"]
REPLY = "Sunlight bends inside falling raindrops and splits into the colours of a bright arc across the sky."
MODEL = "deepseek-v4-flash"
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
GATEWAY_CODES = {400: "INVALID_PARAMS", 401: "UNAUTHORIZED", 404: "MODEL_NOT_FOUND"}


@dataclass
class FakeGateway:
    """An Anthropic-compatible gateway (and its chat completions), correct unless a knob says otherwise.

    Tokens are whitespace words; the reply is REPLY whatever the prompt (it never counts), cut at the
    first stop sequence, then at max_tokens.
    """

    reply: str = REPLY
    error_envelope: str = "anthropic"  # anthropic, gateway, both, openai, text
    start_input_tokens: int | None = None  # message_start's input_tokens when not the real count
    stop_sequence_reported: bool = True
    natural_stop_reason: str = "end_turn"
    tool_stop_reason: str = "tool_use"
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.seen.append(body)
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
            "Bearer "
        )
        if key != CANARY_KEY:
            return self.error(401, "invalid x-api-key")
        if body.get("model") != MODEL:
            return self.error(404, f"model: {body.get('model')}")
        if request.url.path == "/v1/chat/completions":
            return self.chat(body)
        return self.messages(body)

    def messages(self, body: dict[str, Any]) -> httpx.Response:
        if "max_tokens" not in body:
            return self.error(400, "max_tokens: Field required")
        for name in ("temperature", "top_p"):
            if not 0 <= body.get(name, 0) <= 1:
                return self.error(400, f"{name}: must be between 0 and 1")
        message = self.message(body)
        if body.get("stream"):
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=self.events(message)
            )
        return httpx.Response(200, json=message)

    def error(self, status: int, text: str) -> httpx.Response:
        anthropic = {"type": "error", "error": {"type": ANTHROPIC_TYPES[status], "message": text}}
        gateway = {"error": {"code": GATEWAY_CODES[status], "message": text, "request_id": "req-1"}}
        bodies = {
            "anthropic": anthropic,
            "gateway": gateway,
            "both": {"type": "error", "error": {**gateway["error"], "type": ANTHROPIC_TYPES[status]}},
            "openai": {"error": {"message": text, "type": "auth_error", "param": None, "code": str(status)}},
        }
        if self.error_envelope == "text":
            return httpx.Response(status, text=f"error: {text}")
        return httpx.Response(status, json=bodies[self.error_envelope])

    def generate(self, body: dict[str, Any]) -> tuple[str, int, str, str | None]:
        """(text, output tokens, why it ended: natural/cap/stop, the stop sequence matched)."""
        text, matched = self.reply, None
        for stop in body.get("stop_sequences") or (
            [body["stop"]] if isinstance(body.get("stop"), str) else []
        ):
            if stop in text:
                text, matched = text[: text.index(stop)], stop
        words = text.split()
        if len(words) > body["max_tokens"]:
            return " ".join(words[: body["max_tokens"]]), body["max_tokens"], "cap", None
        return text, len(words), ("stop" if matched else "natural"), matched

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        text, tokens, why, matched = self.generate(body)
        prompt = len(json.dumps(body["messages"]).split()) + len(json.dumps(body.get("system", "")).split())
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        reason = {"natural": self.natural_stop_reason, "cap": "max_tokens", "stop": "stop_sequence"}[why]
        if why == "stop" and not self.stop_sequence_reported:
            reason, matched = "end_turn", None
        if (body.get("tool_choice") or {}).get("type") == "tool":
            name = body["tool_choice"]["name"]
            content, tokens, reason = (
                [{"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}],
                6,
                self.tool_stop_reason,
            )
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": matched,
            "usage": {"input_tokens": prompt, "output_tokens": tokens},
        }

    def events(self, message: dict[str, Any]) -> bytes:
        usage = message["usage"]
        start_usage = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
        if self.start_input_tokens is not None:
            start_usage["input_tokens"] = self.start_input_tokens
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
        out = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                opened = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": w} for w in block["text"].split(" ")]
            else:
                opened = {**block, "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": p} for p in ('{"city": ', '"Beijing"}')
                ]
            out.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": opened},
                )
            )
            out += [
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                for d in deltas
            ]
            out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
        out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(("message_stop", {"type": "message_stop"}))
        return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in out)

    def chat(self, body: dict[str, Any]) -> httpx.Response:
        text, tokens, why, _ = self.generate(body)
        finish = "length" if why == "cap" else "stop"
        prompt = len(json.dumps(body["messages"]).split())
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_750_000_000,
                "model": MODEL,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": tokens,
                    "total_tokens": prompt + tokens,
                },
            },
        )


def run(
    check_id: str, gateway: FakeGateway, *, profile: str = "gateway", session: Session | None = None
) -> CheckResult:
    """Run one check against ``gateway`` (a fresh session unless one is given)."""
    session = session or make_session(gateway, profile=profile)
    result = run_check(session, CHECKS[check_id])
    assert "undeclared_rules" not in result.extra, result.extra
    return result


def verdicts(gateway: FakeGateway, profile: str = "gateway") -> dict[str, str]:
    session = make_session(gateway, profile=profile)
    return {check_id: run(check_id, gateway, session=session).verdict for check_id in ANTHROPIC_CHECKS}


def test_a_correct_gateway_written_elsewhere_passes_every_check() -> None:
    results = verdicts(FakeGateway())
    assert set(results.values()) == {"PASS"}, results


def test_the_error_envelope_the_profile_expects() -> None:
    for envelope, gateway, openai in (
        ("anthropic", "PASS", "PASS"),
        ("gateway", "PASS", "FAIL"),
        ("both", "PASS", "PASS"),
        ("openai", "FAIL", "FAIL"),
        ("text", "FAIL", "FAIL"),
    ):
        fake = FakeGateway(error_envelope=envelope)
        assert run("anthropic_error_envelope", fake).verdict == gateway, envelope
        assert run("anthropic_error_envelope", fake, profile="openai").verdict == openai, envelope
        assert run("anthropic_error_envelope", fake, profile="lenient").verdict in ("PASS", "WARN"), envelope


def test_a_plain_text_error_is_one_envelope_finding_not_also_a_content_type_one() -> None:
    result = run("anthropic_error_envelope", FakeGateway(error_envelope="text"))
    assert result.extra["rules"] == ["anthropic-error-envelope"]
    assert "the body is not a JSON object" in result.message


def test_litellm_s_openai_envelope_on_a_401_is_found() -> None:
    fake = FakeGateway()
    original = fake.error

    def openai_on_401(status: int, text: str) -> httpx.Response:
        if status == 401:
            return FakeGateway(error_envelope="openai").error(status, text)
        return original(status, text)

    fake.error = openai_on_401  # type: ignore[method-assign]
    result = run("anthropic_error_envelope", fake)
    assert result.verdict == "FAIL"
    assert "an invalid key" in result.message and "without max_tokens" not in result.message
    assert CANARY_KEY not in result.message


def test_a_wrong_anthropic_error_type_is_a_protocol_warning() -> None:
    fake = FakeGateway()

    def api_error(status: int, text: str) -> httpx.Response:
        return httpx.Response(status, json={"type": "error", "error": {"type": "api_error", "message": text}})

    fake.error = api_error  # type: ignore[method-assign]
    result = run("anthropic_error_envelope", fake)
    assert (result.verdict, result.extra["rules"]) == ("WARN", ["anthropic-error-type"])


def test_message_start_input_tokens_zero_is_found_and_its_evidence_shown() -> None:
    result = run("anthropic_stream_input_tokens", FakeGateway(start_input_tokens=0))
    assert result.verdict == "WARN"  # protocol: FAIL under openai
    assert '"input_tokens": 0' in result.message and "message_delta later says" in result.message
    assert (
        run("anthropic_stream_input_tokens", FakeGateway(start_input_tokens=0), profile="openai").verdict
        == "FAIL"
    )


def test_a_stop_sequence_reported_as_end_turn_is_a_protocol_warning() -> None:
    result = run("anthropic_stop_sequences", FakeGateway(stop_sequence_reported=False))
    assert (result.verdict, result.extra["rules"]) == ("WARN", ["anthropic-stop-sequence-reported"])


def test_the_stop_sequence_comes_from_the_answer_whatever_the_model_writes() -> None:
    fake = FakeGateway()
    assert run("anthropic_stop_sequences", fake).verdict == "PASS"
    stop = fake.seen[-1]["stop_sequences"][0]
    assert stop in REPLY and REPLY.index(stop) > 0


def test_an_answer_that_never_reaches_the_stop_sequence_is_not_checked() -> None:
    class Wanders(FakeGateway):
        def generate(self, body: dict[str, Any]) -> tuple[str, int, str, str | None]:
            if body.get("stop_sequences"):
                return "Something else entirely.", 3, "natural", None
            return super().generate(body)

    result = run("anthropic_stop_sequences", Wanders())
    assert result.verdict == "SKIP" and result.message.startswith("not checked: "), result.message


def test_a_short_model_is_not_blamed_for_max_tokens() -> None:
    """A 4-word answer under a cap of 5 cuts nothing: not checked, where the check used to FAIL."""
    result = run("anthropic_stop_reason_max_tokens", FakeGateway(reply="Light in rain."))
    assert result.verdict == "SKIP" and "nothing to cut" in result.message


def test_end_turn_exactly_at_the_cap_is_a_natural_end() -> None:
    exactly = " ".join(["word"] * 48)
    assert run("anthropic_response_valid", FakeGateway(reply=exactly)).verdict == "PASS"


def test_a_natural_end_called_stop_sequence_breaks_the_mapping() -> None:
    fake = FakeGateway(natural_stop_reason="stop_sequence")
    result = run("anthropic_finish_reason_mapping", fake)
    assert (result.verdict, result.extra["rules"]) == ("FAIL", ["anthropic-finish-reason-mapping"])
    chat = next(b for b in fake.seen if "system" not in b and b["messages"][0]["role"] == "system")
    assert chat["messages"][0]["content"] == "You are a helpful assistant."


def test_a_forced_tool_without_stop_reason_tool_use_is_a_protocol_warning() -> None:
    result = run("anthropic_tool_use", FakeGateway(tool_stop_reason="end_turn"))
    assert (result.verdict, result.extra["rules"]) == ("WARN", ["anthropic-tool-use-stop-reason"])


def test_range_checks_fail_a_gateway_that_passes_the_value_on() -> None:
    class Lax(FakeGateway):
        """Passes temperature and top_p on unread, as a bridge to chat completions (0-2) may."""

        def messages(self, body: dict[str, Any]) -> httpx.Response:
            return super().messages({k: v for k, v in body.items() if k not in ("temperature", "top_p")})

    assert run("anthropic_temperature_range", Lax()).verdict == "FAIL"
    assert run("anthropic_top_p_range", Lax()).verdict == "FAIL"


# --- the shared stream: one owner ------------------------------------------------------------------

STREAM_READERS = [c for c in ANTHROPIC_CHECKS if "anthropic_stream" in CHECKS[c].observations]


def seeded(exchange: Exchange, check_id: str) -> CheckResult:
    """Run ``check_id`` with ``exchange`` as the shared stream (and a correct non-streaming twin)."""
    fake = FakeGateway()
    session = make_session(fake)
    session.observations["anthropic_stream"] = decode_messages(exchange)
    return run(check_id, fake, session=session)


def fake_stream(**knobs: Any) -> list[bytes]:
    fake = FakeGateway(**knobs)
    body = rq.anthropic_body(MODEL)
    return [e + b"\n\n" for e in fake.events(fake.message(body)).split(b"\n\n") if e]


@pytest.mark.parametrize("check_id", STREAM_READERS)
def test_a_stream_answered_500_is_one_finding_in_its_owner(check_id: str) -> None:
    result = seeded(
        stream_exchange([b'{"error": "boom"}'], status=500, content_type="application/json"), check_id
    )
    if check_id == "anthropic_stream_events_valid":
        assert (result.verdict, result.extra["rules"]) == ("FAIL", ["anthropic-status"])
    else:
        assert result.verdict == "SKIP"
        assert "(anthropic_stream_events_valid reports it)" in result.message


@pytest.mark.parametrize("check_id", STREAM_READERS)
def test_a_stream_cut_after_its_headers_is_not_passed(check_id: str) -> None:
    """A stream that stalled: it used to PASS every check that found nothing wrong in what came."""
    result = seeded(stream_exchange(fake_stream()[:4], closed=False), check_id)
    if check_id == "anthropic_stream_events_valid":
        assert (result.verdict, result.extra["rules"]) == ("FAIL", ["anthropic-stream-cut"])
    else:
        assert result.verdict == "SKIP" and "cut off before message_stop" in result.message


@pytest.mark.parametrize("check_id", STREAM_READERS)
def test_a_schema_finding_is_the_events_checks_alone(check_id: str) -> None:
    events = fake_stream()
    events[0] = events[0].replace(b'"model": "deepseek-v4-flash"', b'"model": ""')
    result = seeded(stream_exchange(events), check_id)
    if check_id == "anthropic_stream_events_valid":
        assert (result.verdict, result.extra["rules"]) == ("FAIL", ["anthropic-event-schema"])
    else:
        assert result.verdict == "PASS", result.message


def test_no_response_at_all_is_not_checked_anywhere() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    session = make_session(refuse)
    for check_id in ANTHROPIC_CHECKS:
        result = run(check_id, FakeGateway(), session=session)
        assert result.verdict == "SKIP" and result.message.startswith("not checked: "), (
            check_id,
            result.message,
        )


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        (REPLY, "into"),
        ("In one short sentence: what is a rainbow? In one short sentence", "rainbow"),
        ("雨后的天空出现彩虹，是阳光在水滴中折射形成的。", None),
        ("Hi", None),
        ("", None),
    ],
)
def test_the_stop_string_is_a_word_the_answer_reaches_with_text_before_it(
    text: str, stop: str | None
) -> None:
    picked = stop_string_from(text)
    if stop is None:
        assert picked is None or (text.find(picked) > 0 and len(picked) <= 12)
    else:
        assert picked == stop

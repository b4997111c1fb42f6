"""Non-streaming, tools and JSON checks on hand-made servers: calibrated to the target, one finding per cause.

The server of ``_own_words`` writes its own text whatever the prompt asks and counts its own tokens,
as a real model does; the checks must PASS on it, FAIL when it breaks the rule they own, and say
"not checked" (SKIP) when it gave them nothing to judge. The reference-gateway faults that break
the same rules are in tests/test_conformance_faults.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import wave
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from _checks_helpers import make_session
from _own_words import NUMBERS, PARAGRAPH, OwnWords

from gatecheck.checks import CHECKS, load_all, media, run_check
from gatecheck.checks import requests as rq
from gatecheck.checks.chat import pick_stop
from gatecheck.checks.images import image_dimensions, png_problem
from gatecheck.checks.wire import is_json_object_prefix
from gatecheck.results import CheckResult
from gatecheck.schemas import default_store

load_all()


def judge(check_id: str, server: Any, **target: Any) -> CheckResult:
    result = run_check(make_session(server, **target), CHECKS[check_id])
    assert "undeclared_rules" not in result.extra, result.extra
    return result


# --- stop: the stop sequence comes from the target's own answer -----------------------------


def test_stop_passes_on_a_model_that_never_counts() -> None:
    server = OwnWords()
    result = judge("nonstream_stop", server)
    assert result.verdict == "PASS", result.message
    stop = server.bodies[-1]["stop"]
    assert len(stop) == 1 and stop[0] in PARAGRAPH and stop[0] not in NUMBERS.split()


def test_stop_passes_on_a_verbose_model_cut_at_max_tokens() -> None:
    # issue 9: nonstream_stop FAILed when the model never wrote "12" ("finish_reason is 'length' after a
    # stop sequence" although none occurred); the double's "verbose" quirk
    assert judge("nonstream_stop", OwnWords(verbose=True)).verdict == "PASS"


def test_stop_also_passes_on_an_obedient_counting_model() -> None:
    server = OwnWords(counts=True)
    assert judge("nonstream_stop", server).verdict == "PASS"
    assert server.bodies[-1]["stop"] == ["12"]


def test_a_stop_sequence_ignored_fails() -> None:
    result = judge("nonstream_stop", OwnWords(ignore_stop=True))
    assert result.verdict == "FAIL" and result.extra["rules"] == ["stop-ignored"], result.message
    assert "taken from the answer without stop" in result.message


def test_a_stop_that_says_length_is_an_openai_deviation() -> None:
    result = judge("nonstream_stop", OwnWords(stop_says_length=True))
    assert result.verdict == "WARN" and result.extra["rules"] == ["stop-finish-reason"], result.message


def test_stop_is_not_checked_without_an_answer_to_take_it_from() -> None:
    silent = judge("nonstream_stop", OwnWords(silent=True))
    assert silent.verdict == "SKIP" and silent.message.startswith("not checked: the answer without stop")
    one_word = judge(
        "nonstream_stop", answering(200, OwnWords()._completion({"messages": []}, "Hi.", "stop"))
    )
    assert one_word.verdict == "SKIP" and "has no word after its first" in one_word.message
    assert judge("nonstream_stop", OwnWords(short=True)).verdict == "PASS"  # "Fine thanks.": stop "thanks."


def test_stop_on_a_target_that_is_not_deterministic_is_judged_only_when_a_stop_shows() -> None:
    result = judge("nonstream_stop", OwnWords(nondeterministic=True))
    assert result.verdict == "SKIP", result.message
    assert "not deterministic" in result.message
    ignored = judge("nonstream_stop", OwnWords(nondeterministic=True, ignore_stop=True))
    assert ignored.verdict == "FAIL" and ignored.extra["rules"] == ["stop-ignored"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (NUMBERS, ("12", 24)),
        ("one", None),
        ("This is it", ("it", 8)),  # "is" first occurs inside "This": not usable
        ("aa bb aa", ("bb", 3)),
    ],
)
def test_the_stop_sequence_is_a_word_that_first_occurs_where_it_stands(
    answer: str, expected: tuple[str, int] | None
) -> None:
    pick = pick_stop(answer)
    if expected is None:
        assert pick is None
    else:
        assert pick is not None and (pick.text, pick.at) == expected
        assert answer.find(pick.text) == pick.at


# --- max_tokens: judged on the target's own usage -----------------------------------------


def test_max_tokens_passes_on_a_model_that_never_counts() -> None:
    assert judge("nonstream_max_tokens", OwnWords()).verdict == "PASS"


def test_max_tokens_ignored_fails() -> None:
    result = judge("nonstream_max_tokens", OwnWords(ignore_max_tokens=True))
    assert result.verdict == "FAIL" and result.extra["rules"] == ["max-tokens-ignored"], result.message


def test_an_answer_at_the_cap_that_says_stop_fails() -> None:
    result = judge("nonstream_max_tokens", OwnWords(capped_says_stop=True))
    assert result.verdict == "FAIL" and result.extra["rules"] == ["max-tokens-finish-reason"], result.message


def test_a_model_that_writes_less_than_the_cap_is_not_checked() -> None:
    # the old check demanded finish_reason length from a model asked to write 20 numbers
    result = judge("nonstream_max_tokens", OwnWords(short=True))
    assert result.verdict == "SKIP", result.message
    assert "ended by itself after 3 tokens, under the cap of 5" in result.message


# --- JSON mode: a cut at max_tokens is no fault ------------------------------------------------


def test_json_mode_passes_and_json_cut_at_the_cap_is_not_a_failure() -> None:
    assert judge("json_object_mode", OwnWords()).verdict == "PASS"
    # issue 9: JSON cut at max_tokens with finish_reason length FAILed; the double's "long-json" quirk
    server = OwnWords(long_json=True)
    cut = judge("json_object_mode", server)
    assert cut.verdict == "SKIP" and "cut at max_tokens=64" in cut.message, cut.message
    assert [b["max_tokens"] for b in server.bodies] == [48, 64]  # retried once, within --max-output-tokens
    roomy = OwnWords(long_json=True)
    assert judge("json_object_mode", roomy, max_output_tokens=256).verdict == "PASS"
    assert [b["max_tokens"] for b in roomy.bodies] == [48, 256]


def test_json_mode_ignored_fails() -> None:
    result = judge("json_object_mode", OwnWords(ignore_response_format=True))
    assert result.verdict == "FAIL" and result.extra["rules"] == ["json-mode-object"], result.message
    cut_text = judge("json_object_mode", OwnWords(ignore_response_format=True, verbose=True))
    assert cut_text.verdict == "FAIL", "text cut at the cap is no JSON prefix"


def test_structured_output_passes_and_a_cut_is_retried() -> None:
    assert judge("json_schema_output", OwnWords()).verdict == "PASS"


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ('{"name": "blue", "desc', True),
        ('{"a": [1, 2', True),
        ("   ", True),
        ('{"a": 1}', True),
        ('{"a": 1} and more', False),
        ("Sure! {", False),
        ("[1, 2", False),
        ('{"a": }', False),
    ],
)
def test_a_json_object_prefix_is_told_from_broken_json(text: str, prefix: bool) -> None:
    assert is_json_object_prefix(text) is prefix


# --- one root cause, one finding: the shared answers -----------------------------------------


def answering(status: int, body: Any) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return handler


BASIC = [
    "nonstream_schema",
    "nonstream_identity",
    "nonstream_choices",
    "nonstream_finish_reason",
    "nonstream_usage",
]


def test_a_failed_shared_answer_is_reported_once() -> None:
    server = answering(500, {"error": {"code": "INTERNAL_ERROR", "message": "boom", "request_id": "r"}})
    results = {c: judge(c, server) for c in BASIC}
    assert results.pop("nonstream_schema").extra["rules"] == ["chat-status"]
    for check_id, result in results.items():
        assert result.verdict == "SKIP", check_id
        assert (
            result.message
            == "not checked: the chat completion answered 500, not 200 (nonstream_schema reports it)"
        )


def test_a_schema_issue_of_the_shared_answer_is_reported_by_the_schema_check_only() -> None:
    body = OwnWords()._completion({"messages": []}, "Hello there.", "stop")
    body["choices"][0]["logprobs"] = "none"
    body["system_fingerprint"] = None
    results = {c: judge(c, answering(200, body)) for c in BASIC}
    schema = results.pop("nonstream_schema")
    assert schema.verdict == "FAIL" and schema.extra["rules"] == ["chat-schema"], schema.message
    assert {r.verdict for r in results.values()} == {"PASS"}


def test_tool_checks_do_not_copy_a_schema_issue() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_712_345_678,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": 0,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }
    for check_id in ("tools_choice_required", "tools_arguments_valid", "tools_choice_auto"):
        assert judge(check_id, answering(200, body)).verdict == "PASS", check_id


def test_tool_arguments_are_not_checked_when_there_is_no_call_or_the_cap_cut_them() -> None:
    text = OwnWords()._completion({"messages": []}, "No tool for you.", "stop")
    assert judge("tools_choice_required", answering(200, text)).verdict == "FAIL"
    no_call = judge("tools_arguments_valid", answering(200, text))
    assert no_call.verdict == "SKIP" and "tools_choice_required reports it" in no_call.message
    cut = OwnWords()._completion({"messages": []}, "", "length")
    cut["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"ci'}}
        ],
    }
    assert judge("tools_choice_required", answering(200, cut)).verdict == "PASS"
    cut_args = judge("tools_arguments_valid", answering(200, cut))
    assert cut_args.verdict == "SKIP" and "cut inside its arguments" in cut_args.message


# --- a request without stream is answered non-streaming -------------------------------------


def sse_answer(request: httpx.Request) -> httpx.Response:
    """A gateway that streams unless told not to (004's page title says "default streaming")."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def test_a_request_without_stream_answered_as_one_completion_passes() -> None:
    server = OwnWords()
    assert judge("nonstream_default", server).verdict == "PASS"
    assert "stream" not in server.bodies[0]


def test_an_event_stream_for_a_request_without_stream_is_one_finding() -> None:
    result = judge("nonstream_default", sse_answer)
    assert result.verdict == "FAIL" and result.extra["rules"] == ["stream-default-off"], result.message
    for check_id in (*BASIC, "nonstream_usage_details"):
        other = judge(check_id, sse_answer)
        assert other.verdict == "SKIP", check_id
        assert other.message.endswith("was answered with an event stream (nonstream_default reports it)")
    broken = judge("nonstream_default", answering(500, {"error": {"code": "INTERNAL_ERROR"}}))
    assert broken.verdict == "SKIP" and "(nonstream_schema reports it)" in broken.message


# --- reasoning models: reasoning_effort, max_completion_tokens with reasoning, usage details ------


def test_reasoning_effort_is_accepted_by_a_model_that_writes_its_own_text() -> None:
    server = OwnWords(thinks=40)
    assert judge("nonstream_reasoning_effort", server).verdict == "PASS"
    assert [b["reasoning_effort"] for b in server.bodies] == ["low", "medium", "high"]
    assert all("max_tokens" not in b and b["max_completion_tokens"] == 12 for b in server.bodies)


def test_a_refused_reasoning_effort_fails_naming_the_value() -> None:
    result = judge("nonstream_reasoning_effort", OwnWords(thinks=40, refuses_effort=("high",)))
    assert result.verdict == "FAIL" and result.extra["rules"] == ["reasoning-effort-rejected"]
    assert 'reasoning_effort "high" was refused' in result.message and '"medium"' not in result.message


def test_the_cap_with_reasoning_is_judged_on_the_targets_usage() -> None:
    cut_in_reasoning = judge("nonstream_reasoning_cap", OwnWords(thinks=40))
    assert cut_in_reasoning.verdict == "PASS", cut_in_reasoning.message
    after_reasoning = judge("nonstream_reasoning_cap", OwnWords(thinks=3))  # 3 reasoning + 9 of text
    assert after_reasoning.verdict == "PASS", after_reasoning.message
    over = judge("nonstream_reasoning_cap", OwnWords(thinks=8, reasoning_outside_cap=True))
    assert over.verdict == "FAIL" and over.extra["rules"] == ["max-completion-tokens-reasoning"], over.message
    assert "completion_tokens 20, reasoning_tokens 8" in over.message


def test_the_cap_with_reasoning_is_not_checked_without_reasoning_or_without_a_cut() -> None:
    plain = judge("nonstream_reasoning_cap", OwnWords())
    assert plain.verdict == "SKIP" and "shows no reasoning" in plain.message
    short = judge("nonstream_reasoning_cap", OwnWords(thinks=2, short=True))
    assert short.verdict == "SKIP" and "ended by itself after 5 tokens" in short.message, short.message


def test_reasoning_tokens_left_out_of_completion_tokens_is_a_protocol_deviation() -> None:
    result = judge("nonstream_reasoning_cap", OwnWords(thinks=8, usage_without_reasoning=True))
    assert result.verdict == "WARN" and result.extra["rules"] == ["usage-reasoning-tokens"], result.message


def test_usage_details_are_judged_only_when_present() -> None:
    absent = judge("nonstream_usage_details", OwnWords())
    assert absent.verdict == "SKIP" and absent.message.startswith(
        "not checked: the answer's usage gives neither"
    )
    assert judge("nonstream_usage_details", OwnWords(cached=0)).verdict == "PASS"
    over = judge("nonstream_usage_details", OwnWords(cached=500))
    assert over.verdict == "WARN" and over.extra["rules"] == ["usage-cached-tokens"], over.message


# --- multimodal content parts ---------------------------------------------------------------


@dataclass
class Vision:
    """A correct target whose model sees images only: other media are refused with 400 (or break)."""

    modalities: tuple[str, ...] = ("image_url",)
    counts_media: bool = True
    broken: tuple[str, ...] = ()
    text_parts_refused: bool = False
    kinds: list[list[str]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = json.loads(request.content)["messages"][0]["content"]
        kinds = [p["type"] for p in parts]
        self.kinds.append(kinds)
        media = [k for k in kinds if k != "text"]
        if self.text_parts_refused:
            return httpx.Response(400, json={"error": {"code": "INVALID_PARAMS", "message": "strings only"}})
        if any(k in self.broken for k in media):
            return httpx.Response(500, json={"error": {"code": "INTERNAL_ERROR", "message": "boom"}})
        if any(k not in self.modalities for k in media):
            return httpx.Response(400, json={"error": {"code": "INVALID_PARAMS", "message": "unsupported"}})
        prompt = 12 + (258 * len(media) if self.counts_media else 0)
        body = OwnWords()._completion({"messages": []}, "A small picture.", "stop")
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": 4, "total_tokens": prompt + 4}
        return httpx.Response(200, json=body)


def test_multimodal_passes_on_a_model_that_lacks_some_modalities() -> None:
    server = Vision()
    assert judge("nonstream_multimodal", server).verdict == "PASS"
    assert server.kinds == [["text"], *(["text", kind] for kind in rq.MEDIA_PARTS)]
    assert judge("nonstream_multimodal", Vision(modalities=tuple(rq.MEDIA_PARTS))).verdict == "PASS"


def test_multimodal_is_not_checked_when_every_media_part_is_refused() -> None:
    result = judge("nonstream_multimodal", Vision(modalities=()))
    assert result.verdict == "SKIP" and "refused every media part" in result.message


def test_text_parts_refused_or_a_media_part_breaking_the_gateway_fails() -> None:
    refused = judge("nonstream_multimodal", Vision(text_parts_refused=True))
    assert refused.verdict == "FAIL" and refused.extra["rules"] == ["content-text-parts"]
    broken = judge("nonstream_multimodal", Vision(broken=("input_audio",)))
    assert broken.verdict == "FAIL" and broken.extra["rules"] == ["media-part-status"], broken.message
    assert "input_audio content part was answered 500" in broken.message


def test_a_media_part_that_does_not_count_in_usage_is_a_warning() -> None:
    result = judge("nonstream_multimodal", Vision(counts_media=False))
    assert result.verdict == "WARN" and result.extra["rules"] == ["media-part-dropped"], result.message


def test_the_media_payloads_are_small_valid_files() -> None:
    assert png_problem(media.png_image()) == "" and image_dimensions(media.png_image()) == (8, 8)
    with wave.open(io.BytesIO(media.wav_audio())) as audio:
        assert (audio.getnchannels(), audio.getframerate(), audio.getnframes()) == (1, 8000, 2000)
    pdf = media.pdf_document()
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    start = int(pdf.rsplit(b"startxref\n", 1)[1].split()[0])
    offsets = [int(line[:10]) for line in pdf[start:].split(b"\n")[3:8]]
    assert [pdf[o : o + 7] for o in offsets] == [b"%d 0 obj" % n for n in range(1, 6)]
    assert mp4_boxes(media.TINY_MP4) == ["ftyp", "moov", "free", "mdat"]
    assert hashlib.sha256(media.TINY_MP4).hexdigest().startswith("cc35fdc4")
    for make in rq.MEDIA_PARTS.values():
        assert not default_store().issues(
            "openai.chat.request",
            {
                "model": "m",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, make()]}],
            },
        )


def mp4_boxes(data: bytes) -> list[str]:
    """The top-level ISO BMFF boxes, which must cover the file exactly."""
    names, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        assert size >= 8 and pos + size <= len(data)
        names.append(kind.decode())
        pos += size
    return names


# --- tool role messages and parallel tool calls --------------------------------------------------


def tool_answer(calls: list[tuple[str, str, str]], finish: str = "tool_calls") -> dict[str, Any]:
    body = OwnWords()._completion({"messages": []}, "", finish)
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in calls
        ],
    }
    return body


WEATHER_CALL = ("call_a", "get_weather", '{"city": "Beijing"}')
TIME_CALL = ("call_b", "get_local_time", '{"city": "Tokyo", "format": "24h"}')


def test_tool_results_one_or_two_in_a_row_are_accepted() -> None:
    server = OwnWords()
    assert judge("tools_result_turn", server).verdict == "PASS"
    roles = [[m["role"] for m in b["messages"]] for b in server.bodies]
    assert roles == [["user", "assistant", "tool"], ["user", "assistant", "tool", "tool"]]


def test_refusing_two_tool_results_in_a_row_fails() -> None:
    def refuses_two(request: httpx.Request) -> httpx.Response:
        roles = [m["role"] for m in json.loads(request.content)["messages"]]
        if roles[-2:] == ["tool", "tool"]:
            return httpx.Response(
                400, json={"error": {"code": "INVALID_PARAMS", "message": "one tool message"}}
            )
        return OwnWords()(request)

    result = judge("tools_result_turn", refuses_two)
    assert result.verdict == "FAIL" and result.extra["rules"] == ["tool-result-refused"], result.message
    assert "two tool results" in result.message and "one tool result was" not in result.message


def test_parallel_tool_calls_with_their_own_ids_pass() -> None:
    assert (
        judge("tools_parallel_calls", answering(200, tool_answer([WEATHER_CALL, TIME_CALL]))).verdict
        == "PASS"
    )


def test_one_tool_call_where_two_were_asked_is_not_checked() -> None:
    result = judge("tools_parallel_calls", answering(200, tool_answer([WEATHER_CALL])))
    assert result.verdict == "SKIP" and "made 1 tool call(s)" in result.message
    text = judge("tools_parallel_calls", OwnWords())
    assert text.verdict == "SKIP" and "made 0 tool call(s)" in text.message


def test_parallel_tool_calls_sharing_an_id_are_a_protocol_deviation() -> None:
    same = tool_answer([WEATHER_CALL, ("call_a", *TIME_CALL[1:])])
    result = judge("tools_parallel_calls", answering(200, same))
    assert result.verdict == "WARN" and result.extra["rules"] == ["tool-call-ids-distinct"], result.message

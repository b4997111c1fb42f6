"""Non-streaming, tools and JSON checks on hand-made servers: calibrated to the target, one finding per cause.

The server of ``_own_words`` writes its own text whatever the prompt asks and counts its own tokens,
as a real model does; the checks must PASS on it, FAIL when it breaks the rule they own, and say
"not checked" (SKIP) when it gave them nothing to judge. The reference-gateway faults that break
the same rules are in tests/test_conformance_faults.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _checks_helpers import make_session
from _own_words import NUMBERS, PARAGRAPH, OwnWords

from gatecheck.checks import CHECKS, load_all, run_check
from gatecheck.checks.chat import pick_stop
from gatecheck.checks.wire import is_json_object_prefix
from gatecheck.results import CheckResult

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
